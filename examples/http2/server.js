// @ts-check
/**
 * HTTP/2 without TLS (h2c), `node:http2`'s `createServer`: `GET /events`, a tick stream, on
 * http://127.0.0.1:8793 (or $PORT; 0 picks a free port). Many streams share one connection. Run it with
 * `npm run example:http2`.
 */
import { createServer } from "node:http2";
import { setTimeout as sleep } from "node:timers/promises";
import { eventSourceResponse } from "eventsource-server";
import { toNodeHandler } from "eventsource-server/node";

/**
 * A `tick` event with the time every second, resuming after the client's last event ID, until the client leaves.
 *
 * @param {import("eventsource-server").EventSourceContext} context
 */
async function* ticks({ signal, lastEventId }) {
  let id = Number(lastEventId) || 0;
  while (!signal.aborted) {
    yield { event: "tick", id: ++id, data: new Date().toISOString() };
    await sleep(1_000, undefined, { signal }).catch(() => {});
  }
}

/** @param {Request} request */
function handle(request) {
  if (new URL(request.url).pathname === "/events") return eventSourceResponse(ticks, { request, retry: 2_000 });
  return new Response("not found\n", { status: 404 });
}

const server = createServer(toNodeHandler(handle));
/** @type {Set<import("node:http2").ServerHttp2Session>} */
const sessions = new Set();
server.on("session", (session) => {
  sessions.add(session);
  session.once("close", () => sessions.delete(session));
});
server.listen(Number(process.env.PORT ?? 8793), "127.0.0.1", () => {
  const { port } = /** @type {import("node:net").AddressInfo} */ (server.address());
  console.log(`http2 (h2c) example: http://127.0.0.1:${port}/events (Ctrl-C to stop)`);
});

for (const signal of /** @type {const} */ (["SIGINT", "SIGTERM"])) {
  process.once(signal, () => {
    server.close(() => process.exit(0));
    // An HTTP/2 server has no closeAllConnections: end each session, open streams and all.
    for (const session of sessions) session.destroy();
  });
}
