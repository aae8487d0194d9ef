// @ts-check
/**
 * Koa 3: `GET /events`, a tick stream, on http://127.0.0.1:8792 (or $PORT; 0 picks a free port). Run it with
 * `npm run example:koa`.
 */
import { eventSourceResponse } from "eventsource-server";
import { toNodeHandler } from "eventsource-server/node";
import Koa from "koa";
import { closerOf, onShutdown } from "../shared/shutdown.js";
import { ticks } from "../shared/ticks.js";

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
onShutdown(closerOf(server));
