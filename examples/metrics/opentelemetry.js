// @ts-check
/**
 * The channel of prometheus.js, measured through the OpenTelemetry metrics API instead: `GET /events` is the stream
 * and `POST /publish` emits its body as a `note` event; the measurements go wherever the app's OpenTelemetry SDK sends
 * them. The SDK must be set up before this module runs (instruments made earlier measure nothing), so run it as
 * `node --import ./examples/metrics/telemetry.js examples/metrics/opentelemetry.js` (`npm run example:opentelemetry`),
 * which prints the measurements every 10 s. On http://127.0.0.1:8795 (or $PORT; 0 picks a free port); Ctrl-C stops it.
 * Imported rather than run, it only exports `handle`, the Fetch handler.
 */
import { createServer } from "node:http";
import { fileURLToPath } from "node:url";
import { metrics, ValueType } from "@opentelemetry/api";
import { EventChannel } from "eventsource-server";
import { toNodeHandler } from "eventsource-server/node";

const { PORT, MAX_DURATION_MS, MAX_BUFFERED_BYTES } = process.env;

const channel = new EventChannel({
  replay: 1_000,
  maxBufferedBytes: Number(MAX_BUFFERED_BYTES ?? 1_048_576),
  // A client whose Last-Event-ID is no longer kept is told to reload its state, then gets live events.
  onHistoryLost: () => ({ event: "reload" }),
});
let lastId = 0;

const meter = metrics.getMeter("eventsource-server-example");

// What each stream counts comes from its onClose, once, when it ends. The duration's count per reason is the number
// of streams closed for that reason, as signalr.server.connection.duration's is per signalr.connection.status.
const duration = meter.createHistogram("sse.server.stream.duration", {
  description: "How long event streams lasted",
  unit: "s",
  advice: { explicitBucketBoundaries: [1, 10, 60, 300, 900, 1800, 3600] },
});
const sentEvents = meter.createCounter("sse.server.sent.events", {
  description: "Events written to streams that have ended, replays included",
  unit: "{event}",
  valueType: ValueType.INT,
});
const sentBytes = meter.createCounter("sse.server.io", {
  description: "Bytes written to streams that have ended, first chunks and heartbeats included",
  unit: "By",
  valueType: ValueType.INT,
});

/** @param {import("eventsource-server").StreamEnd} end */
function onClose(end) {
  duration.record(end.duration / 1_000, { "sse.close.reason": end.reason });
  sentEvents.add(end.events);
  sentBytes.add(end.bytes);
}

// What the channel counts is observed at each collection: stats() holds totals, which is what an observable reports.
meter
  .createObservableUpDownCounter("sse.server.active_streams", {
    description: "Event streams open now",
    unit: "{stream}",
    valueType: ValueType.INT,
  })
  .addCallback((result) => result.observe(channel.subscribers));
meter
  .createObservableCounter("sse.server.emitted.events", {
    description: "Events emitted on the channel, each written to every stream open then",
    unit: "{event}",
    valueType: ValueType.INT,
  })
  .addCallback((result) => result.observe(channel.stats().emitted));
meter
  .createObservableCounter("sse.server.resumes", {
    description: "Clients that came back with a Last-Event-ID: resumed from it, or lost (it was no longer kept)",
    unit: "{stream}",
    valueType: ValueType.INT,
  })
  .addCallback((result) => {
    const { resumed, historyLost } = channel.stats();
    result.observe(resumed, { "sse.resume.result": "resumed" });
    result.observe(historyLost, { "sse.resume.result": "lost" });
  });
meter
  .createObservableCounter("sse.server.evictions", {
    description: "Streams closed because their client read too slowly (maxBufferedBytes)",
    unit: "{stream}",
    valueType: ValueType.INT,
  })
  .addCallback((result) => result.observe(channel.stats().evicted));

/** @param {Request} request */
export async function handle(request) {
  const { pathname } = new URL(request.url);
  if (pathname === "/events") {
    return channel.response(request, { maxDuration: Number(MAX_DURATION_MS ?? 15 * 60_000), onClose });
  }
  if (pathname === "/publish" && request.method === "POST") {
    // Open to anyone here, to keep the example short; an app emits from its own code.
    channel.emit({ event: "note", id: String(++lastId), data: await request.text() });
    return new Response(null, { status: 204 });
  }
  return new Response("not found: GET /events, POST /publish\n", { status: 404 });
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const server = createServer(toNodeHandler(handle));
  server.listen(Number(PORT ?? 8795), "127.0.0.1", () => {
    const { port } = /** @type {import("node:net").AddressInfo} */ (server.address());
    console.log(`opentelemetry example: http://127.0.0.1:${port}/events (Ctrl-C to stop)`);
  });
  for (const signal of /** @type {const} */ (["SIGINT", "SIGTERM"])) {
    process.once(signal, () => {
      server.close(() => process.exit(0));
      // Open event streams never end by themselves; close their connections so close() can finish.
      server.closeAllConnections();
    });
  }
}
