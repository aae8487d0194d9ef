// @ts-check
/**
 * Scaling out: one Redis Stream is the ordered log every server instance reads, so an event published anywhere
 * reaches every client, and a client that reconnects to ANY instance resumes after its Last-Event-ID.
 *
 *   POST /events ──XADD MAXLEN ~──▶ Redis Stream ──XREAD BLOCK──▶ instance 1: EventChannel ──▶ its clients
 *                                               └──XREAD BLOCK──▶ instance 2: EventChannel ──▶ its clients
 *   a client resuming on any instance ◀──XRANGE (history.after)──┘
 *
 * Event ids are the stream's entry ids. Run it with `npm run broker` (see README.md); the environment
 * configures it: REDIS_URL, STREAM, MAXLEN, PORT, RETRY_MS, MAX_DURATION_MS. SIGTERM or Ctrl-C closes every
 * stream with a farewell, so the clients reconnect elsewhere and resume.
 */
import { createServer } from "node:http";
import { EventChannel, encodeEvent } from "eventsource-server";
import { toNodeHandler } from "eventsource-server/node";
import { createClient } from "redis";
import { closerOf, onShutdown } from "../shared/shutdown.js";
import { redisStreamLog } from "./stream-log.js";

const {
  REDIS_URL: redisUrl = "redis://127.0.0.1:6379",
  STREAM: key = "events",
  MAXLEN = "1000",
  PORT = "8788",
  RETRY_MS = "1000",
  MAX_DURATION_MS,
} = process.env;
/** How many entries XADD keeps (about: `MAXLEN ~` trims whole nodes, which is far cheaper than exactly). */
const maxLength = Number(MAXLEN);
const port = Number(PORT);
/** The reconnection delay sent to clients, and in the farewell when this instance stops. */
const retryMs = Number(RETRY_MS);
/** Ends each stream after about this long (between 90 % and all of it), so clients spread over instances. */
const maxDuration = MAX_DURATION_MS === undefined ? undefined : Number(MAX_DURATION_MS);

let started = false;
const commands = createClient({
  url: redisUrl,
  // Named, so CLIENT LIST tells each instance's connections apart.
  name: `broker-${process.pid}`,
  // At start, an unreachable Redis is a mistake to report once, not a reason to retry forever; once running,
  // reconnect (the feed reads again from where it was, so nothing is lost while the stream still holds it).
  socket: { reconnectStrategy: (retries) => (started ? Math.min(100 * retries, 2_000) : false) },
});
commands.on("error", (error) => {
  if (started) console.error(`broker: redis: ${error.message}`);
});
// XREAD BLOCK holds its connection until an entry comes: it gets a connection of its own.
const reader = commands.duplicate({ name: `broker-${process.pid}-feed` });
reader.on("error", (error) => {
  if (started) console.error(`broker: redis (feed): ${error.message}`);
});
try {
  await commands.connect();
  await reader.connect();
} catch (error) {
  console.error(
    `broker: cannot reach Redis at ${redisUrl} (${error instanceof Error ? error.message || error.name : error}): start redis-server, or set REDIS_URL`,
  );
  process.exit(1);
}
started = true;

const log = redisStreamLog({ commands, reader, key, emit: (event) => channel.emit(event) });
const channel = new EventChannel({
  history: log.history,
  // The client's id was trimmed out of the stream (or is not an id of it): it missed an unknown number of
  // events, so it is told to reload its state; live events follow.
  onHistoryLost: (lastEventId) => ({ event: "reset", data: { reason: "history lost", lastEventId } }),
});
await log.start();

/**
 * Publishes one event: `{ "event"?: string, "data": string | any JSON }` appended to the stream.
 *
 * @param {Request} request
 */
async function publish(request) {
  let event;
  try {
    const body = await request.json();
    event = { event: body.event, data: typeof body.data === "string" ? body.data : JSON.stringify(body.data ?? "") };
    if (event.event === undefined) delete event.event;
    // The same checks the channel makes, before the event enters the log that every instance reads.
    encodeEvent(event);
  } catch (error) {
    return Response.json({ error: error instanceof Error ? error.message : String(error) }, { status: 400 });
  }
  const id = await commands.xAdd(key, "*", event, {
    TRIM: { strategy: "MAXLEN", strategyModifier: "~", threshold: maxLength },
  });
  return Response.json({ id }, { status: 201 });
}

/** @param {Request} request */
function handle(request) {
  const { pathname } = new URL(request.url);
  if (pathname === "/events" && request.method === "POST") return publish(request);
  if (pathname === "/events") {
    return channel.response(request, maxDuration === undefined ? { retry: retryMs } : { retry: retryMs, maxDuration });
  }
  if (pathname === "/") {
    return new Response(
      `${channel.subscribers} subscribers; Redis stream "${key}" at /events (GET to read, POST to publish)\n`,
    );
  }
  return new Response("not found\n", { status: 404 });
}

/** Open responses, so shutdown can wait until each farewell has been written. */
/** @type {Set<import("node:http").ServerResponse>} */
const open = new Set();
const listener = toNodeHandler(handle);
const server = createServer((req, res) => {
  open.add(res);
  res.once("close", () => open.delete(res));
  return listener(req, res);
});
const close = closerOf(server);
server.listen(port, "127.0.0.1", () => {
  const address = server.address();
  const actual = typeof address === "object" && address !== null ? address.port : port;
  console.log(`eventsource-server broker: http://127.0.0.1:${actual}/events, stream "${key}" at ${redisUrl}`);
});

onShutdown(async () => {
  // The farewell asks clients to come back after retryMs, to another instance behind a load balancer; they
  // send their Last-Event-ID and resume from the stream. Every stream then ends normally: wait (2 s at most)
  // until each farewell is written before closing what is left.
  channel.close({ retry: retryMs, comment: "restarting" });
  server.close();
  const ended = [...open].map((res) => new Promise((resolve) => res.once("close", resolve)));
  await Promise.race([Promise.all(ended), new Promise((resolve) => setTimeout(resolve, 2_000))]);
  await close();
  await log.stop();
  await commands.close().catch(() => {});
});
