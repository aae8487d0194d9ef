/**
 * The examples' ticks on Bun: the shared page on `/` and the event stream it listens to on `/events`, on
 * http://127.0.0.1:8787 (or $PORT; 0 picks a free port). Run it from this folder with `npx bun server.ts`.
 */
import { eventSourceResponse } from "eventsource-server";
import { onShutdown } from "../shared/shutdown.js";
import { ticks } from "../shared/ticks.js";

// Just the parts of Bun's API used here, so this file type-checks without `@types/bun`.
declare global {
  interface ImportMeta {
    main: boolean;
  }
}
declare const Bun: {
  env: Record<string, string | undefined>;
  file(path: URL): Blob;
  serve(options: {
    hostname: string;
    port: number;
    idleTimeout?: number;
    fetch(request: Request): Response | Promise<Response>;
  }): {
    port: number;
    stop(closeActiveConnections?: boolean): Promise<void>;
  };
};

const page = new URL("../shared/page.html", import.meta.url);

/** The Fetch handler: the page on `/`, the event stream on `/events`. */
export function handle(request: Request): Response {
  const { pathname } = new URL(request.url);
  // Bun.file is read as the response is sent, and its type comes from the extension (text/html;charset=utf-8).
  if (pathname === "/") return new Response(Bun.file(page));
  // `request` gives the stream its signal (the client left) and its Last-Event-ID (where to resume).
  if (pathname === "/events") return eventSourceResponse(ticks, { request, retry: 2_000 });
  return new Response("not found\n", { status: 404 });
}

if (import.meta.main) {
  // Bun.serve closes a connection after 10 s in which it could write nothing (`idleTimeout`): silence, which the
  // library's keep-alive prevents, but also a client that stops reading, which no heartbeat can fix. Event
  // streams turn it off (README, "Bun closes a connection…"; test/runtime/bun-stall.test.ts).
  const server = Bun.serve({
    hostname: "127.0.0.1",
    port: Number(Bun.env.PORT ?? 8787),
    idleTimeout: 0,
    fetch: handle,
  });
  console.log(`eventsource-server on Bun: http://127.0.0.1:${server.port}/ (Ctrl-C to stop)`);
  // `true`: close the open event streams too, which never end by themselves.
  onShutdown(() => server.stop(true));
}
