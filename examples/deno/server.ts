/**
 * The examples' ticks on Deno: the shared page on `/` and the event stream it listens to on `/events`, on
 * http://127.0.0.1:8787 (or $PORT; 0 picks a free port). Run it from this folder with `npx deno task start`.
 */
import { eventSourceResponse } from "eventsource-server";
import { onShutdown } from "../shared/shutdown.js";
import { ticks } from "../shared/ticks.js";

// Read once, at start-up: the start task allows reading ../shared and nothing else.
const page = await Deno.readTextFile(new URL("../shared/page.html", import.meta.url));

/** The Fetch handler: the page on `/`, the event stream on `/events`. */
export function handle(request: Request): Response {
  const { pathname } = new URL(request.url);
  if (pathname === "/") return new Response(page, { headers: { "content-type": "text/html; charset=utf-8" } });
  // `request` gives the stream its signal (the client left) and its Last-Event-ID (where to resume).
  if (pathname === "/events") return eventSourceResponse(ticks, { request, retry: 2_000 });
  return new Response("not found\n", { status: 404 });
}

if (import.meta.main) {
  // server.shutdown() waits for open requests to finish, and an event stream never does; aborting the server's
  // signal closes the open connections too.
  const stopping = new AbortController();
  const server = Deno.serve(
    {
      hostname: "127.0.0.1",
      port: Number(Deno.env.get("PORT") ?? 8787),
      signal: stopping.signal,
      onListen: ({ port }) => console.log(`eventsource-server on Deno: http://127.0.0.1:${port}/ (Ctrl-C to stop)`),
    },
    handle,
  );
  onShutdown(() => {
    stopping.abort();
    return server.finished;
  });
}
