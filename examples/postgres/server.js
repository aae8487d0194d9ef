// @ts-check
/**
 * Scaling out with PostgreSQL: every instance feeds its EventChannel from one topic of a table, so an event published
 * on any instance reaches every client, and a client that reconnects to ANY instance resumes after its Last-Event-ID.
 *
 *   POST /events ──INSERT (advisory lock, NOTIFY)──▶ table ──LISTEN, then SELECT id > position──▶ each instance
 *                                                      └──SELECT: a client resuming on any instance (history.after)
 *
 * Run it with `npm run example:postgres` (see README.md); the environment configures it: DATABASE_URL (or the PG*
 * variables), TOPIC, KEEP, PORT, RETRY_MS, MAX_DURATION_MS. SIGTERM or Ctrl-C closes every stream with a farewell.
 */
import { createServer } from "node:http";
import { EventChannel } from "eventsource-server";
import { toNodeHandler } from "eventsource-server/node";
import { postgresLog } from "eventsource-server/postgres";
import pg from "pg";
import { closerOf, onShutdown } from "../shared/shutdown.js";

const { DATABASE_URL: url, TOPIC: topic = "events", KEEP = "10000" } = process.env;
const { PORT = "8797", RETRY_MS = "1000", MAX_DURATION_MS } = process.env;
const retry = Number(RETRY_MS);
const init = MAX_DURATION_MS === undefined ? { retry } : { retry, maxDuration: Number(MAX_DURATION_MS) };

const pool = new pg.Pool(url === undefined ? {} : { connectionString: url });
// An idle connection that breaks (the server restarting) is dropped by the pool; the next query takes a new one.
pool.on("error", (error) => console.error(`postgres example: ${error.message}`));
const log = postgresLog({ pool, topic, keep: Number(KEEP) });
// The table, if it is missing; an unreachable server at start is a mistake to report once.
await log.setup().catch((/** @type {Error} */ error) => {
  console.error(
    `postgres example: cannot reach PostgreSQL at ${url ?? "$PGHOST"} (${error.message || error.name}): start it, or set DATABASE_URL`,
  );
  process.exit(1);
});

const channel = new EventChannel({
  history: log,
  // The client's id is gone from the table (trimmed): it missed an unknown number of events, so it reloads.
  onHistoryLost: (lastEventId) => ({ event: "reset", data: { reason: "history lost", lastEventId } }),
});
log.feed(channel);

/** `{ "event"?: string, "data": string | any JSON }`, appended to the topic; 400 for what the channel would refuse. */
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
    if (pathname === "/") return new Response(`${channel.subscribers} subscribers; topic "${topic}" at /events\n`);
    return new Response("not found\n", { status: 404 });
  }),
);
const close = closerOf(server);
server.listen(Number(PORT), "127.0.0.1", () => {
  const address = /** @type {import("node:net").AddressInfo} */ (server.address());
  console.log(`eventsource-server postgres: http://127.0.0.1:${address.port}/events, topic "${topic}"`);
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
  await pool.end();
});
