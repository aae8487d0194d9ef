// @ts-check
/**
 * Fastify 5: `GET /events`, a tick stream, and `POST /words`, which answers a JSON body (parsed by Fastify) with
 * an event stream. On http://127.0.0.1:8791 (or $PORT; 0 picks a free port). Run it with
 * `npm run example:fastify`.
 */
import { eventSourceResponse } from "eventsource-server";
import { sendResponse, toRequest } from "eventsource-server/node";
import Fastify from "fastify";
import { onShutdown } from "../shared/shutdown.js";
import { ticks } from "../shared/ticks.js";

// close() waits for open connections, and an event stream never ends by itself: close them too.
const app = Fastify({ forceCloseConnections: true });

app.get("/events", (request, reply) => {
  // From here on Fastify sends nothing of its own: the response is sendResponse's.
  reply.hijack();
  const response = eventSourceResponse(ticks, { request: toRequest(request.raw, reply.raw), retry: 2_000 });
  return sendResponse(reply.raw, response);
});

app.post("/words", (request, reply) => {
  reply.hijack();
  const body = /** @type {{ text?: unknown } | undefined} */ (request.body);
  const words = String(body?.text ?? "").split(" ");
  const events = words.filter(Boolean).map((word) => ({ event: "word", data: word }));
  return sendResponse(reply.raw, eventSourceResponse(events, { request: toRequest(request.raw, reply.raw) }));
});

await app.listen({ port: Number(process.env.PORT ?? 8791), host: "127.0.0.1" });
const { port } = /** @type {import("node:net").AddressInfo} */ (app.server.address());
console.log(`fastify example: http://127.0.0.1:${port}/events (Ctrl-C to stop)`);
onShutdown(() => app.close());
