// @ts-check
/**
 * Scaling out with Redis: every instance feeds its EventChannel from one Redis Stream, so an event published on any
 * instance reaches every client, and a client that reconnects to ANY instance resumes after its Last-Event-ID.
 *
 *   POST /events ──XADD──▶ Redis Stream ──XREAD BLOCK──▶ each instance's EventChannel ──▶ its clients
 *                               └──XRANGE: a client resuming on any instance (history.after)
 *
 * Run it with `npm run broker` (see README.md); the environment configures it: REDIS_URL, STREAM, MAXLEN, PORT,
 * RETRY_MS, MAX_DURATION_MS. SIGTERM or Ctrl-C closes every stream with a farewell, so clients resume elsewhere.
 */
import { createServer } from "node:http";
import { EventChannel } from "eventsource-server";
import { toNodeHandler } from "eventsource-server/node";
import { redisStreamLog } from "eventsource-server/redis";
import { createClient } from "redis";
import { closerOf, onShutdown } from "../shared/shutdown.js";

const { REDIS_URL: url = "redis://127.0.0.1:6379", STREAM: key = "events", MAXLEN = "1000" } = process.env;
const { PORT = "8788", RETRY_MS = "1000", MAX_DURATION_MS } = process.env;
const retry = Number(RETRY_MS);
const init = MAX_DURATION_MS === undefined ? { retry } : { retry, maxDuration: Number(MAX_DURATION_MS) };

let started = false;
// An unreachable Redis at start is a mistake to report once; once running, reconnect: the feed reads on from where it was.
const reconnectStrategy = (/** @type {number} */ tries) => (started ? Math.min(100 * tries, 2_000) : false);
const client = createClient({ url, name: `broker-${process.pid}`, socket: { reconnectStrategy } });
client.on("error", (error) => started && console.error(`broker: redis: ${error.message}`));
await client.connect().catch((/** @type {Error} */ error) => {
  console.error(
    `broker: cannot reach Redis at ${url} (${error.message || error.name}): start redis-server, or set REDIS_URL`,
  );
  process.exit(1);
});
started = true;

const log = redisStreamLog({ client, key, maxLength: Number(MAXLEN) });
const channel = new EventChannel({
  history: log,
  // The client's id is gone from the stream (trimmed): it missed an unknown number of events, so it reloads.
  onHistoryLost: (lastEventId) => ({ event: "reset", data: { reason: "history lost", lastEventId } }),
});
log.feed(channel);

/** `{ "event"?: string, "data": string | any JSON }`, appended to the stream; 400 for what the channel would refuse. */
async function publish(/** @type {Request} */ request) {
  try {
    const { event, data = "" } = await request.json();
    return Response.json({ id: await log.publish({ event, data }) }, { status: 201 });
  } catch (error) {
    if (!(error instanceof TypeError || error instanceof SyntaxError)) throw error;
    return Response.json({ error: error.message }, { status: 400 });
  }
}

const server = createServer(
  toNodeHandler((request) => {
    const { pathname } = new URL(request.url);
    if (pathname === "/events") return request.method === "POST" ? publish(request) : channel.response(request, init);
    if (pathname === "/") return new Response(`${channel.subscribers} subscribers; stream "${key}" at /events\n`);
    return new Response("not found\n", { status: 404 });
  }),
);
const close = closerOf(server);
server.listen(Number(PORT), "127.0.0.1", () => {
  const address = /** @type {import("node:net").AddressInfo} */ (server.address());
  console.log(`eventsource-server broker: http://127.0.0.1:${address.port}/events, stream "${key}" at ${url}`);
});

onShutdown(async () => {
  // Each stream ends after its farewell; clients come back after `retry`, to another instance, and resume. Wait
  // (2 s at most) for the farewells to be written before closing what is left.
  channel.close({ retry, comment: "restarting" });
  await Promise.race([
    new Promise((resolve) => server.close(resolve)),
    new Promise((resolve) => setTimeout(resolve, 2_000)),
  ]);
  await close();
  await log.close();
  await client.close();
});
