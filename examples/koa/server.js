// @ts-check
/**
 * Koa 3: `GET /events`, a tick stream, on http://127.0.0.1:8792 (or $PORT; 0 picks a free port). Run it with
 * `npm run example:koa`.
 */
import { setTimeout as sleep } from "node:timers/promises";
import { eventSourceResponse } from "eventsource-server";
import { toNodeHandler } from "eventsource-server/node";
import Koa from "koa";

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

const events = toNodeHandler((request) => eventSourceResponse(ticks, { request, retry: 2_000 }));

const app = new Koa();
app.use(async (ctx, next) => {
  if (ctx.method !== "GET" || ctx.path !== "/events") return next();
  // Koa writes nothing of its own for this request: the response is toNodeHandler's.
  ctx.respond = false;
  await events(ctx.req, ctx.res);
});

const server = app.listen(Number(process.env.PORT ?? 8792), "127.0.0.1", () => {
  const { port } = /** @type {import("node:net").AddressInfo} */ (server.address());
  console.log(`koa example: http://127.0.0.1:${port}/events (Ctrl-C to stop)`);
});

for (const signal of /** @type {const} */ (["SIGINT", "SIGTERM"])) {
  process.once(signal, () => {
    server.close(() => process.exit(0));
    // Open event streams never end by themselves; close their connections so close() can finish.
    server.closeAllConnections();
  });
}
