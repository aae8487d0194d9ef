// @ts-check
/**
 * An EventChannel on node:http, measured for Prometheus through prom-client: `GET /events` is the stream, `POST
 * /publish` emits its body as a `note` event, and `GET /metrics` is the scrape. On http://127.0.0.1:8794 (or $PORT;
 * 0 picks a free port); MAX_DURATION_MS and MAX_BUFFERED_BYTES shrink the channel's limits for a test. Run it with
 * `npm run example:prometheus`; Ctrl-C stops it.
 */
import { createServer } from "node:http";
import { EventChannel } from "eventsource-server";
import { toNodeHandler } from "eventsource-server/node";
import client from "prom-client";

const { PORT, MAX_DURATION_MS, MAX_BUFFERED_BYTES } = process.env;

const channel = new EventChannel({
  replay: 1_000,
  maxBufferedBytes: Number(MAX_BUFFERED_BYTES ?? 1_048_576),
  // A client whose Last-Event-ID is no longer kept is told to reload its state, then gets live events.
  onHistoryLost: () => ({ event: "reload" }),
});

let lastId = 0;

const registry = new client.Registry();

// What each stream counts comes from its onClose, once, when it ends.
const closed = new client.Counter({
  name: "sse_streams_closed_total",
  help: "Event streams ended, by why they ended (onClose's reason)",
  labelNames: ["reason"],
  registers: [registry],
});
// Every reason is a series from the start, so that rate() sees the first end of each.
for (const reason of ["done", "client", "signal", "error", "maxDuration", "evicted", "closed"]) {
  closed.inc({ reason }, 0);
}
const eventsSent = new client.Counter({
  name: "sse_events_sent_total",
  help: "Events written to streams that have ended, replays included",
  registers: [registry],
});
const sentBytes = new client.Counter({
  name: "sse_sent_bytes_total",
  help: "Bytes written to streams that have ended, first chunks and heartbeats included",
  registers: [registry],
});
const duration = new client.Histogram({
  name: "sse_stream_duration_seconds",
  help: "How long event streams lasted",
  buckets: [1, 10, 60, 300, 900, 1800, 3600],
  registers: [registry],
});

/** @param {import("eventsource-server").StreamEnd} end */
function onClose(end) {
  closed.inc({ reason: end.reason });
  eventsSent.inc(end.events);
  sentBytes.inc(end.bytes);
  duration.observe(end.duration / 1_000);
}

// What the channel counts is read at each scrape: stats() holds totals, which each scrape copies.
new client.Gauge({
  name: "sse_streams_open",
  help: "Event streams open now",
  registers: [registry],
  collect() {
    this.set(channel.subscribers);
  },
});
new client.Counter({
  name: "sse_events_emitted_total",
  help: "Events emitted on the channel, each written to every stream open then",
  registers: [registry],
  collect() {
    this.reset();
    this.inc(channel.stats().emitted);
  },
});
new client.Counter({
  name: "sse_resumes_total",
  help: "Clients that came back with a Last-Event-ID: resumed from it, or lost (it was no longer kept)",
  labelNames: ["result"],
  registers: [registry],
  collect() {
    const { resumed, historyLost } = channel.stats();
    this.reset();
    this.inc({ result: "resumed" }, resumed);
    this.inc({ result: "lost" }, historyLost);
  },
});
new client.Counter({
  name: "sse_evictions_total",
  help: "Streams closed because their client read too slowly (maxBufferedBytes)",
  registers: [registry],
  collect() {
    this.reset();
    this.inc(channel.stats().evicted);
  },
});

/** @param {Request} request */
async function handle(request) {
  const { pathname } = new URL(request.url);
  if (pathname === "/events") {
    return channel.response(request, { maxDuration: Number(MAX_DURATION_MS ?? 15 * 60_000), onClose });
  }
  if (pathname === "/metrics") {
    return new Response(await registry.metrics(), { headers: { "content-type": registry.contentType } });
  }
  if (pathname === "/publish" && request.method === "POST") {
    // Open to anyone here, to keep the example short; an app emits from its own code.
    channel.emit({ event: "note", id: String(++lastId), data: await request.text() });
    return new Response(null, { status: 204 });
  }
  return new Response("not found: GET /events, GET /metrics, POST /publish\n", { status: 404 });
}

const server = createServer(toNodeHandler(handle));
server.listen(Number(PORT ?? 8794), "127.0.0.1", () => {
  const { port } = /** @type {import("node:net").AddressInfo} */ (server.address());
  console.log(`prometheus example: http://127.0.0.1:${port}/events and /metrics (Ctrl-C to stop)`);
});

for (const signal of /** @type {const} */ (["SIGINT", "SIGTERM"])) {
  process.once(signal, () => {
    server.close(() => process.exit(0));
    // Open event streams never end by themselves; close their connections so close() can finish.
    server.closeAllConnections();
  });
}
