// @ts-check
/**
 * HTTP/2 without TLS (h2c), `node:http2`'s `createServer`: `GET /events`, a tick stream, on
 * http://127.0.0.1:8793 (or $PORT; 0 picks a free port). Many streams share one connection. Run it with
 * `npm run example:http2`.
 */
import { createServer } from "node:http2";
import { eventSourceResponse } from "eventsource-server";
import { toNodeHandler } from "eventsource-server/node";
import { closerOf, onShutdown } from "../shared/shutdown.js";
import { ticks } from "../shared/ticks.js";

/** @param {Request} request */
function handle(request) {
  if (new URL(request.url).pathname === "/events") return eventSourceResponse(ticks, { request, retry: 2_000 });
  return new Response("not found\n", { status: 404 });
}

const server = createServer(toNodeHandler(handle));
// Many streams share one connection, and an HTTP/2 server has no closeAllConnections(): closerOf ends each.
onShutdown(closerOf(server));
server.listen(Number(process.env.PORT ?? 8793), "127.0.0.1", () => {
  const { port } = /** @type {import("node:net").AddressInfo} */ (server.address());
  console.log(`http2 (h2c) example: http://127.0.0.1:${port}/events (Ctrl-C to stop)`);
});
