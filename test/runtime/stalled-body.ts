/**
 * The smallest reproduction, without the package, of what a runtime does with a response body that errors while its
 * client reads nothing: `bun stalled-body.ts` (Bun.serve, idleTimeout 0) or `deno run --allow-net=127.0.0.1
 * stalled-body.ts` (Deno.serve). test/runtime/hostile.test.ts runs it, as the client that never reads. It prints its
 * URL, then answers:
 *
 * - `GET /body`: 64 KiB chunks, pulled one at a time (a high-water mark of one byte) as the runtime takes them, until
 *   the socket is full. `GET /body?direct` on Bun: the same bytes from a `type: "direct"` stream.
 * - `POST /error`: errors that body (`controller.error`, or a direct stream's `close(error)`).
 * - `GET /state`: `{ pulled, open }`: the bytes the runtime has taken from the body, and whether it still holds the
 *   response (Bun: `server.pendingRequests` above this request; Deno: `info.completed` not settled).
 *
 * Bun 1.4.5 and Deno 2.9.5 take about 4 MB (what the socket holds), then stop pulling; after `/error`, Bun's default
 * stream and Deno keep the connection, with its unsent bytes, until the client reads or leaves; Bun's direct stream
 * drops it at once.
 */

declare const Bun:
  | {
      serve(options: { hostname: string; port: number; idleTimeout: number; fetch(request: Request): Response }): {
        port: number;
        pendingRequests: number;
      };
    }
  | undefined;
declare const Deno: {
  serve(
    options: { hostname: string; port: number; onListen(address: { port: number }): void },
    fetch: (request: Request, info: { completed: Promise<void> }) => Response,
  ): void;
};

const CHUNK = 64 * 1024;
let pulled = 0;
let fail: ((error: Error) => void) | undefined;
let completed = false;

function body(direct: boolean): ReadableStream<Uint8Array> {
  if (direct) {
    return new ReadableStream({
      type: "direct",
      async pull(controller: { write(chunk: Uint8Array): unknown; close(error?: Error): void }) {
        fail = (error) => controller.close(error);
        for (;;) {
          pulled += CHUNK;
          await controller.write(new Uint8Array(CHUNK));
        }
      },
    } as unknown as UnderlyingDefaultSource<Uint8Array>);
  }
  return new ReadableStream<Uint8Array>(
    {
      start(controller) {
        fail = (error) => controller.error(error);
      },
      pull(controller) {
        pulled += CHUNK;
        controller.enqueue(new Uint8Array(CHUNK));
      },
    },
    { highWaterMark: 1, size: (chunk) => chunk.byteLength },
  );
}

function handle(request: Request, open: () => boolean): Response {
  const url = new URL(request.url);
  switch (url.pathname) {
    case "/body":
      return new Response(body(url.searchParams.has("direct")));
    case "/error":
      fail?.(new Error("the client reads nothing"));
      return new Response(null, { status: 204 });
    case "/state":
      return Response.json({ pulled, open: open() });
    default:
      return new Response(null, { status: 404 });
  }
}

const hostname = "127.0.0.1";
if (typeof Bun !== "undefined") {
  let pending = (): number => 0;
  // The request asking is pending too.
  const server = Bun.serve({
    hostname,
    port: 0,
    idleTimeout: 0,
    fetch: (request) => handle(request, () => pending() > 1),
  });
  pending = () => server.pendingRequests;
  console.log(`listening on http://${hostname}:${server.port}`);
} else {
  Deno.serve(
    { hostname, port: 0, onListen: ({ port }) => console.log(`listening on http://${hostname}:${port}`) },
    (request, info) => {
      if (new URL(request.url).pathname === "/body") {
        completed = false;
        info.completed.then(
          () => (completed = true),
          () => (completed = true),
        );
      }
      return handle(request, () => !completed);
    },
  );
}
