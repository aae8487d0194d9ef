// @ts-check
/**
 * The demo: a page that shows live events, and the event stream it listens to, on http://127.0.0.1:8787
 * (or $PORT). Run it with `npm start`; Ctrl-C stops it.
 */
import { createServer } from "node:http";
import { eventSourceResponse } from "eventsource-server";
import { toNodeHandler } from "eventsource-server/node";
import { page } from "./page.js";

/**
 * A `tick` event with the time every second, and a `stats` event with JSON data every fifth second. It resumes
 * the count after the client's last event ID, and stops waiting the moment the client leaves.
 *
 * @param {{ signal: AbortSignal, lastEventId: string | null }} context
 */
async function* ticks({ signal, lastEventId }) {
  let id = Number(lastEventId) || 0;
  const started = Date.now();
  while (!signal.aborted) {
    id += 1;
    yield { event: "tick", id, data: new Date().toISOString() };
    if (id % 5 === 0) {
      yield { event: "stats", data: { ticks: id, uptimeMs: Date.now() - started, memory: process.memoryUsage().rss } };
    }
    await sleep(1_000, signal);
  }
}

/** @param {number} ms @param {AbortSignal} signal */
function sleep(ms, signal) {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
    function done() {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve(undefined);
    }
  });
}

/** @param {Request} request */
export function handle(request) {
  const { pathname } = new URL(request.url);
  if (pathname === "/") return new Response(page, { headers: { "content-type": "text/html; charset=utf-8" } });
  if (pathname === "/events") return eventSourceResponse(ticks, { request, retry: 2_000 });
  return new Response("not found\n", { status: 404 });
}

const port = Number(process.env.PORT ?? 8787);
const server = createServer(toNodeHandler(handle));
server.listen(port, "127.0.0.1", () => {
  // With PORT=0 the system picks the port, so print the one it picked.
  const { port: actual } = /** @type {import("node:net").AddressInfo} */ (server.address());
  console.log(`eventsource-server demo: http://127.0.0.1:${actual}/ (Ctrl-C to stop)`);
});

for (const signal of /** @type {const} */ (["SIGINT", "SIGTERM"])) {
  process.once(signal, () => {
    console.log("stopping");
    server.close(() => process.exit(0));
    // Open event streams never end by themselves; close their connections so close() can finish.
    server.closeAllConnections();
  });
}
