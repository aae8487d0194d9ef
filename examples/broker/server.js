// @ts-check
/**
 * Scaling out: one Redis pub/sub channel feeds the EventChannel of every server instance, so an event published
 * anywhere reaches every client, whichever instance it is connected to.
 *
 *   publisher ──PUBLISH──▶ Redis ──▶ instance 1: EventChannel ──▶ its clients
 *                                └─▶ instance 2: EventChannel ──▶ its clients
 *
 * Each message is one event: a JSON object with the fields of an event (`{"event":"note","id":"7","data":…}`),
 * or any other text, which becomes the data of a `message` event. Run it with `npm run broker` (see README.md);
 * REDIS_URL, TOPIC and PORT configure it. Ctrl-C stops it.
 */
import { createServer } from "node:http";
import { EventChannel } from "eventsource-server";
import { toNodeHandler as toNodeListener } from "eventsource-server/node";
import { createClient } from "redis";

const redisUrl = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";
const topic = process.env.TOPIC ?? "events";
const port = Number(process.env.PORT ?? 8788);

// 1,000 events of history: a client that drops for a moment resumes from its Last-Event-ID without a gap.
const channel = new EventChannel({ replay: 1_000 });

/**
 * One Redis message as the event it stands for.
 *
 * @param {string} message
 * @returns {import("eventsource-server").EventInput}
 */
function eventOf(message) {
  if (!message.startsWith("{")) return message;
  try {
    return JSON.parse(message);
  } catch {
    return message;
  }
}

// A client in subscriber mode can run no other command, so it is a connection of its own.
const redis = createClient({ url: redisUrl });
redis.on("error", (error) => console.error(`redis: ${error.message}`));
await redis.connect();
// node-redis subscribes again by itself after a reconnect; what was published in between is lost, since pub/sub
// keeps nothing (use Redis Streams, with their entry ids as event ids, when every event must arrive).
await redis.subscribe(topic, (message) => {
  try {
    channel.emit(eventOf(message));
  } catch (error) {
    // A malformed event is the publisher's bug: report it and keep serving the others.
    console.error(error);
  }
});

/** @param {Request} request */
function handle(request) {
  const { pathname } = new URL(request.url);
  if (pathname === "/events") return channel.response(request, { retry: 2_000 });
  if (pathname === "/") {
    return new Response(`${channel.subscribers} subscribers; events from Redis channel "${topic}" at /events\n`);
  }
  return new Response("not found\n", { status: 404 });
}

const server = createServer(toNodeListener(handle));
server.listen(port, "127.0.0.1", () => {
  const address = server.address();
  const actual = typeof address === "object" && address !== null ? address.port : port;
  console.log(`eventsource-server broker: http://127.0.0.1:${actual}/events, fed by ${redisUrl} "${topic}"`);
});

for (const signal of /** @type {const} */ (["SIGINT", "SIGTERM"])) {
  process.once(signal, async () => {
    // Clients reconnect (to another instance, behind a load balancer) and resume from their Last-Event-ID.
    channel.close();
    server.close();
    server.closeAllConnections();
    await redis.close().catch(() => {});
    process.exit(0);
  });
}
