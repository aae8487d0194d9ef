/**
 * The server that test/runtime/hostile.test.ts attacks, the same file on every runtime: `bun hostile-server.ts`
 * (Bun.serve, its `idleTimeout` from $IDLE_TIMEOUT, Bun's default when unset), `deno run hostile-server.ts`
 * (Deno.serve), or bundled for Node (`toNodeHandler`). It prints its URL, then answers:
 *
 * - `GET /channel`: a subscriber of a channel with the default `maxBufferedBytes` (1 MiB), no heartbeat.
 * - `POST /emit?bytes=N&every=MS`: emits an event of N bytes every MS ms on that channel, until `POST /stop`.
 * - `GET /replay` with `Last-Event-ID: 0`: a client resuming from the start of a log of `LOG_EVENTS` events of 4 KiB
 *   (19 MB), read in pages of 100 events per task, as a log answers.
 * - `GET /ticks`: an event every 10 ms until the client leaves; its `finally` counts it as cleaned.
 * - `GET /reject/on-error`, `/reject/on-history-lost`, `/reject/on-close`: a callback that is `async` and rejects;
 *   `POST /emit-lost` emits a live event to the client whose history was lost.
 * - `GET /early-failure`: a source that throws at once and an `onError` that throws too: the body fails before its
 *   first chunk has been sent.
 * - `GET /stats`: what the tests count, and the log's length, as JSON; `GET /heap`: the heap in use after a full
 *   collection.
 *
 * Only what the package exported at 8ba666b is used, so the same server shows the defects fixed since.
 */
import { EventChannel, type EventHistory, eventSourceResponse } from "eventsource-server";

declare const Bun:
  | { serve(options: { hostname: string; port: number; idleTimeout?: number; fetch: Handler }): { port: number } }
  | undefined;
declare const Deno:
  | {
      env: { get(name: string): string | undefined };
      serve(
        options: { hostname: string; port: number; onListen(address: { port: number }): void },
        fetch: Handler,
      ): void;
    }
  | undefined;

type Handler = (request: Request) => Response | Promise<Response>;

/** 4,864 events of 4 KiB: a 19 MB log. */
const LOG_EVENTS = 4_864;
const LOG_DATA = "l".repeat(4 * 1024);

const counts = {
  /** Events read from the log, in all, and by the client that read most. */
  yielded: 0,
  yieldedMost: 0,
  /** Log readers whose iterator was returned (the client left, or its replay was written). */
  logsStopped: 0,
  ticksOpened: 0,
  ticksCleaned: 0,
  /** The callbacks that rejected, as the package called them. */
  rejected: 0,
};

const channel = new EventChannel();
let emitting: ReturnType<typeof setInterval> | undefined;

const history: EventHistory = {
  after: () =>
    (async function* () {
      let mine = 0;
      try {
        for (let id = 1; id <= LOG_EVENTS; id++) {
          counts.yielded++;
          mine++;
          counts.yieldedMost = Math.max(counts.yieldedMost, mine);
          yield { id: String(id), data: LOG_DATA };
          if (id % 100 === 0) await new Promise((resolve) => setTimeout(resolve, 0));
        }
      } finally {
        counts.logsStopped++;
      }
    })(),
};
const replayChannel = new EventChannel({ history });

/** A channel whose log has lost every id, and whose onHistoryLost rejects. */
const lostChannel = new EventChannel({
  history: { after: () => null },
  onHistoryLost: async () => {
    counts.rejected++;
    throw new Error("onHistoryLost rejects");
  },
});

function rejects(label: string): () => Promise<never> {
  return async () => {
    counts.rejected++;
    throw new Error(`${label} rejects`);
  };
}

async function* ticks({ signal }: { signal: AbortSignal }) {
  counts.ticksOpened++;
  try {
    for (let id = 1; !signal.aborted; id++) {
      yield { id, data: `tick ${id}` };
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  } finally {
    counts.ticksCleaned++;
  }
}

function handle(request: Request): Response {
  const url = new URL(request.url);
  switch (url.pathname) {
    case "/channel":
      return channel.response(request, { keepAlive: false });
    case "/emit": {
      const data = "x".repeat(Number(url.searchParams.get("bytes")));
      clearInterval(emitting);
      emitting = setInterval(() => channel.emit(data), Number(url.searchParams.get("every")));
      return new Response(null, { status: 204 });
    }
    case "/stop":
      clearInterval(emitting);
      return new Response(null, { status: 204 });
    case "/replay":
      return replayChannel.response(request, { keepAlive: false });
    case "/ticks":
      return eventSourceResponse(ticks, { request });
    case "/reject/on-error":
      return eventSourceResponse(
        async function* () {
          yield "before the failure";
          // Later than the first bytes: what is tested is the rejection, not a failure before anything was sent.
          await new Promise((resolve) => setTimeout(resolve, 50));
          throw new Error("the source fails");
        },
        { onError: rejects("onError") },
      );
    case "/reject/on-history-lost":
      return lostChannel.response(request);
    case "/reject/on-close":
      return eventSourceResponse(["one event"], { onClose: rejects("onClose") } as never);
    case "/emit-lost":
      lostChannel.emit({ id: "live", data: "live after the lost history" });
      return new Response(null, { status: 204 });
    case "/early-failure":
      return eventSourceResponse(
        () => {
          throw new Error("the source fails at once");
        },
        {
          onError: () => {
            throw new Error("onError fails too");
          },
        },
      );
    case "/heap": {
      // A full collection first (Node and Deno run with --expose-gc): what is left is what is still held.
      if (typeof Bun !== "undefined") (Bun as unknown as { gc(force: boolean): void }).gc(true);
      else (globalThis as { gc?: () => void }).gc?.();
      return Response.json(process.memoryUsage().heapUsed);
    }
    case "/stats":
      return Response.json({
        logEvents: LOG_EVENTS,
        ...counts,
        subscribers: channel.subscribers,
        replaying: replayChannel.subscribers,
        lostSubscribers: lostChannel.subscribers,
      });
    default:
      return new Response("not found\n", { status: 404 });
  }
}

const hostname = "127.0.0.1";
if (typeof Bun !== "undefined") {
  const { IDLE_TIMEOUT: idle } = process.env;
  const server = Bun.serve({
    hostname,
    port: 0,
    fetch: handle,
    ...(idle === undefined ? {} : { idleTimeout: Number(idle) }),
  });
  console.log(`listening on http://${hostname}:${server.port}`);
} else if (typeof Deno !== "undefined") {
  Deno.serve(
    { hostname, port: 0, onListen: ({ port }) => console.log(`listening on http://${hostname}:${port}`) },
    handle,
  );
} else {
  const { createServer } = await import("node:http");
  const { toNodeHandler } = await import("eventsource-server/node");
  const server = createServer(toNodeHandler(handle));
  server.listen(0, hostname, () => {
    const address = server.address() as { port: number };
    console.log(`listening on http://${hostname}:${address.port}`);
  });
}
