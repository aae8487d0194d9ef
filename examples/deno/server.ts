/**
 * The demo on Deno: a page that shows live events, and the event stream it listens to, on
 * http://127.0.0.1:8787 (or $PORT; 0 picks a free port). Run it from this folder with `npx deno task start`.
 */
import { type EventSourceContext, eventSourceResponse } from "eventsource-server";

/**
 * A `tick` event with the time every second, and a `stats` event with JSON data every fifth tick. It resumes
 * the count after the client's last event ID, and stops waiting the moment the client leaves.
 */
async function* ticks({ signal, lastEventId }: EventSourceContext) {
  let id = Number(lastEventId) || 0;
  const started = Date.now();
  while (!signal.aborted) {
    id += 1;
    yield { event: "tick", id, data: new Date().toISOString() };
    if (id % 5 === 0) yield { event: "stats", data: { ticks: id, uptimeMs: Date.now() - started } };
    await sleep(1_000, signal);
  }
}

/** Waits `ms`, or less if `signal` aborts first. */
function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
  });
}

const page = `<!doctype html>
<html lang="en">
<meta charset="utf-8">
<title>eventsource-server on Deno</title>
<h1>eventsource-server on Deno</h1>
<p>Status: <span id="status">connecting…</span></p>
<ul id="events"></ul>
<script>
  const source = new EventSource("/events");
  const list = document.getElementById("events");
  const status = document.getElementById("status");
  function show(event) {
    const item = document.createElement("li");
    item.textContent = event.type + (event.lastEventId ? " #" + event.lastEventId : "") + ": " + event.data;
    list.prepend(item);
    while (list.children.length > 20) list.lastElementChild.remove();
  }
  source.onopen = () => { status.textContent = "open"; };
  source.onerror = () => { status.textContent = "reconnecting…"; };
  source.addEventListener("tick", show);
  source.addEventListener("stats", show);
</script>
`;

/** The Fetch handler: the page on `/`, the event stream on `/events`. */
export function handle(request: Request): Response {
  const { pathname } = new URL(request.url);
  if (pathname === "/") return new Response(page, { headers: { "content-type": "text/html; charset=utf-8" } });
  // `request` gives the stream its signal (the client left) and its Last-Event-ID (where to resume).
  if (pathname === "/events") return eventSourceResponse(ticks, { request, retry: 2_000 });
  return new Response("not found\n", { status: 404 });
}

if (import.meta.main) {
  const server = Deno.serve(
    {
      hostname: "127.0.0.1",
      port: Number(Deno.env.get("PORT") ?? 8787),
      onListen: ({ port }) => console.log(`eventsource-server demo: http://127.0.0.1:${port}/ (Ctrl-C to stop)`),
    },
    handle,
  );
  await server.finished;
}
