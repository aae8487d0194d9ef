/**
 * examples/metrics: the Prometheus example spawned and scraped over HTTP (read by parse-prometheus-text-format, not by
 * prom-client), and the OpenTelemetry example served in this process, read through the SDK's in-memory exporter. The
 * same script of real clients (fetch, read by eventsource-parser; one raw socket that stops reading) runs against each:
 * a client evicted as slow, four that read, a resume from a known id and one from an unknown id, three that leave, and
 * three that maxDuration ends; then every value is checked. Durations come from the server's clock, so each is held
 * between bounds that the clients measured, and a bucket's count is exact whenever those bounds decide it. The recipes
 * of docs/operating.md are checked to be these examples' own lines.
 */
import { readFileSync } from "node:fs";
import { connect } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import { metrics } from "@opentelemetry/api";
import {
  AggregationTemporality,
  DataPointType,
  InMemoryMetricExporter,
  MeterProvider,
  type MetricData,
  PeriodicExportingMetricReader,
} from "@opentelemetry/sdk-metrics";
import { encode } from "eventsource-encoder";
import { toNodeHandler } from "eventsource-server/node";
import parsePrometheus from "parse-prometheus-text-format";
import { afterAll, beforeAll, describe, expect, test, vi } from "vitest";
import { type ParsedEvent, parseWire, readerOf } from "../helpers.ts";
import { bundleExample, listenNode, ROOT, type Running, startServer, within } from "./harness.ts";
import { blocksOfFile } from "./readme-blocks.ts";

/** The limits the examples are started with: short enough for a test, the same for both. */
const MAX_DURATION_MS = 4_000;
const MAX_BUFFERED_BYTES = 64 * 1_024;
/** The examples' histogram boundaries, in seconds. */
const BUCKETS = [1, 10, 60, 300, 900, 1800, 3600];
const REASONS = ["done", "client", "signal", "error", "maxDuration", "evicted", "closed"];

/** A stream read with fetch and eventsource-parser, every byte counted, until the server ends it or the test leaves. */
interface Reading {
  /** When the request was sent, and when its headers arrived: the server made the stream between the two. */
  started: number;
  answered: number;
  /** When `leave()` was called, if it was. */
  left: number | undefined;
  bytes(): number;
  wire(): string;
  events(): ParsedEvent[];
  /** Resolves once `n` events have arrived; fails after 10 s. */
  until(n: number): Promise<void>;
  /** Resolves with `performance.now()` when the body ends (the server ended it, or `leave()`). */
  ended: Promise<number>;
  leave(): Promise<void>;
}

async function open(origin: string, headers: Record<string, string> = {}): Promise<Reading> {
  const started = performance.now();
  const response = await within(fetch(`${origin}/events`, { headers }), 10_000, "the stream's headers");
  expect(response.status).toBe(200);
  const answered = performance.now();
  const reader = readerOf(response);
  const decoder = new TextDecoder();
  let bytes = 0;
  let wire = "";
  let wake: () => void = () => {};
  const ended = (async () => {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) {
        wake();
        return performance.now();
      }
      bytes += value.byteLength;
      wire += decoder.decode(value, { stream: true });
      wake();
    }
  })();
  const events = () => parseWire(wire).events;
  const reading: Reading = {
    started,
    answered,
    left: undefined,
    bytes: () => bytes,
    wire: () => wire,
    events,
    ended,
    async until(n) {
      const deadline = Date.now() + 10_000;
      while (events().length < n) {
        const changed = new Promise<void>((resolve) => {
          wake = resolve;
        });
        await within(changed, Math.max(1, deadline - Date.now()), `event ${events().length + 1} of ${n}: ${wire}`);
      }
    },
    leave() {
      reading.left = performance.now();
      return reader.cancel();
    },
  };
  return reading;
}

/** A client that reads the response head and then nothing: its kernel buffers fill, then the server's backlog grows. */
async function stalled(origin: string): Promise<{ started: number; answered: number; close(): void }> {
  const started = performance.now();
  const { port } = new URL(origin);
  const socket = connect(Number(port), "127.0.0.1");
  // The server drops the connection 5 s after the stream ends; by then the test has closed it, or does not care.
  socket.on("error", () => {});
  const head = new Promise<string>((resolve) =>
    socket.once("data", (chunk: Buffer) => {
      socket.pause();
      resolve(chunk.toString("latin1"));
    }),
  );
  socket.write(`GET /events HTTP/1.1\r\nhost: 127.0.0.1:${port}\r\n\r\n`);
  expect(await within(head, 10_000, "the stalled client's response head")).toMatch(/^HTTP\/1\.1 200 /);
  return { started, answered: performance.now(), close: () => socket.destroy() };
}

async function publish(origin: string, data: string): Promise<void> {
  const response = await within(fetch(`${origin}/publish`, { method: "POST", body: data }), 10_000, "a publish");
  expect(response.status).toBe(204);
}

/** What one stream must have reported in its onClose, its duration (s) as bounds the clients measured. */
interface Ended {
  name: string;
  reason: string;
  events: number;
  bytes: number;
  atLeast: number;
  atMost: number;
}

/** What the script did, as the metrics must tell it. */
interface Outcome {
  streams: Ended[];
  emitted: number;
  resumed: number;
  lost: number;
  evicted: number;
  /** The open streams the metrics reported while the four readers and the two resumed ones were open. */
  openMidway: number;
}

const FIRST_CHUNK = ":\n\n";
const note = (id: number, data: string) => encode({ event: "note", id: String(id), data });

/**
 * The script. `openNow` reads the open-streams metric, which is awaited instead of slept on: a client that leaves is
 * seen by the server a moment later.
 */
async function script(origin: string, openNow: () => Promise<number>): Promise<Outcome> {
  async function untilOpen(n: number): Promise<number> {
    const deadline = Date.now() + 10_000;
    for (;;) {
      const seen = await openNow();
      if (seen === n) return performance.now();
      if (Date.now() > deadline) throw new Error(`open streams stayed ${seen}, not ${n}`);
      await sleep(20);
    }
  }
  const seconds = (ms: number) => ms / 1_000;

  // 1. A client that stops reading, alone on the channel, gets 16 MiB: the kernel's socket buffers take 3 to 4 of them
  // here (tcp_wmem allows a socket at most 4 MiB), the rest stays in the server's backlog, far above the cap.
  const slow = await stalled(origin);
  const burst = "x".repeat(1_048_576);
  const bursts = Array.from({ length: 16 }, (_, i) => i + 1);
  for (const _ of bursts) await publish(origin, burst);
  // The cap is enforced once a backlog has stayed above it for a second, at the next emit: this one.
  await sleep(1_100);
  const evictedAfter = performance.now();
  await publish(origin, "last");
  const evictedBy = performance.now();
  slow.close();
  const slowBytes =
    FIRST_CHUNK.length + bursts.reduce((sum, id) => sum + note(id, burst).length, 0) + note(17, "last").length;

  // 2. Four readers; three events; a resume from a known id (18) and from one the channel never had.
  const readers = [];
  for (let i = 0; i < 4; i++) readers.push(await open(origin));
  for (const id of [18, 19, 20]) await publish(origin, `event ${id}`);
  const known = await open(origin, { "last-event-id": "18" });
  const unknown = await open(origin, { "last-event-id": "no-such-id" });
  await known.until(2);
  await unknown.until(1);
  await publish(origin, "event 21");
  for (const one of [...readers, known, unknown]) await one.until(one === known ? 3 : one === unknown ? 2 : 4);
  const openMidway = await openNow();

  const live = (id: number) => ({ event: "note", id: String(id), data: `event ${id}` });
  for (const one of readers) expect(one.events()).toEqual([18, 19, 20, 21].map(live));
  expect(known.events()).toEqual([19, 20, 21].map(live));
  expect(unknown.events()).toEqual([{ event: "reload", data: "" }, live(21)]);
  expect(readers[0]?.wire().startsWith(FIRST_CHUNK)).toBe(true);

  // 3. Two readers and the unknown one leave; the other two readers and the known one stay until maxDuration.
  const [a, b, c, d] = readers as [Reading, Reading, Reading, Reading];
  for (const one of [a, b, unknown]) await one.leave();
  const leftBy = await untilOpen(3);
  const endedBy = await within(Promise.all([c.ended, d.ended, known.ended]), 10_000, "maxDuration to end 3 streams");
  await untilOpen(0);

  const leaver = (name: string, one: Reading): Ended => ({
    name,
    reason: "client",
    events: one.events().length,
    bytes: one.bytes(),
    atLeast: seconds((one.left ?? Number.NaN) - one.answered),
    atMost: seconds(leftBy - one.started),
  });
  const outlived = (name: string, one: Reading, end: number): Ended => ({
    name,
    reason: "maxDuration",
    events: one.events().length,
    bytes: one.bytes(),
    // Drawn between 0.9 and 1 times maxDuration from the first read, which comes after the response is made.
    atLeast: seconds(0.9 * MAX_DURATION_MS),
    atMost: seconds(end - one.started),
  });
  return {
    streams: [
      // 16 bursts and the last event, written though never read.
      {
        name: "slow",
        reason: "evicted",
        events: 17,
        bytes: slowBytes,
        atLeast: seconds(evictedAfter - slow.answered),
        atMost: seconds(evictedBy - slow.started),
      },
      leaver("a", a),
      leaver("b", b),
      leaver("unknown", unknown),
      outlived("c", c, endedBy[0]),
      outlived("d", d, endedBy[1]),
      outlived("known", known, endedBy[2]),
    ],
    emitted: 21,
    resumed: 1,
    lost: 1,
    evicted: 1,
    openMidway,
  };
}

/** The counts a histogram must show: per boundary, the streams certainly at or below it and those possibly so. */
function bucketBounds(streams: Ended[]): { le: number; atLeast: number; atMost: number }[] {
  return BUCKETS.map((le) => ({
    le,
    atLeast: streams.filter((s) => s.atMost <= le).length,
    atMost: streams.filter((s) => s.atLeast <= le).length,
  }));
}

// The server's clock rounds to whole ms, the clients' does not.
const SLACK_S = 0.002;

function expectDurations(streams: Ended[], sum: number, countAtOrBelow: (le: number) => number): void {
  const low = streams.reduce((total, s) => total + s.atLeast, 0);
  const high = streams.reduce((total, s) => total + s.atMost, 0);
  expect(sum).toBeGreaterThanOrEqual(low - SLACK_S * streams.length);
  expect(sum).toBeLessThanOrEqual(high + SLACK_S * streams.length);
  for (const { le, atLeast, atMost } of bucketBounds(streams)) {
    const count = countAtOrBelow(le);
    expect(count, `streams of at most ${le} s`).toBeGreaterThanOrEqual(atLeast);
    expect(count, `streams of at most ${le} s`).toBeLessThanOrEqual(atMost);
  }
}

/** How many streams ended for each reason, every reason listed. */
function byReason(streams: Ended[]): Record<string, number> {
  return Object.fromEntries(REASONS.map((reason) => [reason, streams.filter((s) => s.reason === reason).length]));
}

const total = (streams: Ended[], field: "events" | "bytes") => streams.reduce((sum, s) => sum + s[field], 0);

interface PrometheusFamily {
  name: string;
  type: string;
  metrics: {
    value?: string;
    labels?: Record<string, string>;
    buckets?: Record<string, string>;
    sum?: string;
    count?: string;
  }[];
}

/** A scrape as `name{label="value"}` → number, the way PromQL names each series; histograms as their own series. */
function samples(text: string): Record<string, number> {
  const flat: Record<string, number> = {};
  for (const family of parsePrometheus(text) as PrometheusFamily[]) {
    for (const metric of family.metrics) {
      const labels = Object.entries(metric.labels ?? {}).map(([key, value]) => `${key}="${value}"`);
      const series = (suffix: string, more: string[] = []) =>
        `${family.name}${suffix}${[...labels, ...more].length > 0 ? `{${[...labels, ...more].join(",")}}` : ""}`;
      if (family.type === "HISTOGRAM") {
        for (const [le, count] of Object.entries(metric.buckets ?? {}))
          flat[series("_bucket", [`le="${le}"`])] = Number(count);
        flat[series("_sum")] = Number(metric.sum);
        flat[series("_count")] = Number(metric.count);
      } else {
        flat[series("")] = Number(metric.value);
      }
    }
  }
  return flat;
}

/** One series of a scrape; NaN when it is missing, so that a check on it fails. */
function seriesValue(scraped: Record<string, number>, series: string): number {
  return scraped[series] ?? Number.NaN;
}

describe("examples/metrics/prometheus.js, spawned and scraped", () => {
  let example: Running | undefined;
  beforeAll(async () => {
    const outfile = await bundleExample("examples/metrics/prometheus.js", "metrics-prometheus.test", ["prom-client"]);
    example = await startServer(process.execPath, [outfile], {
      env: { PORT: "0", MAX_DURATION_MS: String(MAX_DURATION_MS), MAX_BUFFERED_BYTES: String(MAX_BUFFERED_BYTES) },
    });
  });
  afterAll(async () => {
    await example?.stop();
  });

  async function scrape(): Promise<{ contentType: string | null; sse: Record<string, number> }> {
    const response = await within(fetch(`${example?.origin}/metrics`), 10_000, "a scrape");
    expect(response.status).toBe(200);
    const all = samples(await response.text());
    return {
      contentType: response.headers.get("content-type"),
      sse: Object.fromEntries(Object.entries(all).filter(([name]) => name.startsWith("sse_"))),
    };
  }

  test("before any client, every series exists at zero, each reason included", async () => {
    const { contentType, sse } = await scrape();
    expect(contentType).toBe("text/plain; version=0.0.4; charset=utf-8");
    expect(sse).toEqual({
      sse_streams_open: 0,
      ...Object.fromEntries(REASONS.map((reason) => [`sse_streams_closed_total{reason="${reason}"}`, 0])),
      sse_events_sent_total: 0,
      sse_sent_bytes_total: 0,
      sse_events_emitted_total: 0,
      'sse_resumes_total{result="resumed"}': 0,
      'sse_resumes_total{result="lost"}': 0,
      sse_evictions_total: 0,
      ...Object.fromEntries(BUCKETS.map((le) => [`sse_stream_duration_seconds_bucket{le="${le}"}`, 0])),
      'sse_stream_duration_seconds_bucket{le="+Inf"}': 0,
      sse_stream_duration_seconds_sum: 0,
      sse_stream_duration_seconds_count: 0,
    });
  });

  test("after a scripted run, every series says exactly what the clients did", async () => {
    const origin = example?.origin ?? "";
    const outcome = await script(origin, async () => seriesValue((await scrape()).sse, "sse_streams_open"));
    const { streams } = outcome;
    expect(outcome.openMidway).toBe(6);

    const { sse } = await scrape();
    const buckets = Object.fromEntries(
      Object.entries(sse).filter(([name]) => name.startsWith("sse_stream_duration_seconds_bucket")),
    );
    const sum = seriesValue(sse, "sse_stream_duration_seconds_sum");
    const rest = Object.fromEntries(
      Object.entries(sse).filter(([name]) => !name.startsWith("sse_stream_duration_seconds_")),
    );
    expect(rest).toEqual({
      sse_streams_open: 0,
      ...Object.fromEntries(
        Object.entries(byReason(streams)).map(([reason, n]) => [`sse_streams_closed_total{reason="${reason}"}`, n]),
      ),
      sse_events_sent_total: total(streams, "events"),
      sse_sent_bytes_total: total(streams, "bytes"),
      sse_events_emitted_total: outcome.emitted,
      'sse_resumes_total{result="resumed"}': outcome.resumed,
      'sse_resumes_total{result="lost"}': outcome.lost,
      sse_evictions_total: outcome.evicted,
    });
    expect(seriesValue(sse, "sse_stream_duration_seconds_count")).toBe(streams.length);
    expect(buckets['sse_stream_duration_seconds_bucket{le="+Inf"}']).toBe(streams.length);
    expect(Object.keys(buckets)).toHaveLength(BUCKETS.length + 1);
    expectDurations(streams, sum, (le) => buckets[`sse_stream_duration_seconds_bucket{le="${le}"}`] ?? Number.NaN);
  });
});

/** One data point of an exported metric: a sum's value, or a histogram's counts. */
type Point = number | { count: number; sum: number; min: number; max: number; boundaries: number[]; counts: number[] };

/** The instruments of one export: each with its unit and kind, and its points as `name{key=value}` → point. */
function exported(data: MetricData[]): { kinds: Record<string, string>; points: Record<string, Point> } {
  const kinds: Record<string, string> = {};
  const points: Record<string, Point> = {};
  for (const metric of data) {
    const { name, unit } = metric.descriptor;
    const monotonic =
      metric.dataPointType === DataPointType.SUM ? (metric.isMonotonic ? " monotonic" : " up-down") : "";
    kinds[name] = `${DataPointType[metric.dataPointType]}${monotonic} ${unit}`;
    for (const point of metric.dataPoints) {
      const attributes = Object.entries(point.attributes).map(([key, value]) => `${key}=${String(value)}`);
      const key = `${name}${attributes.length > 0 ? `{${attributes.join(",")}}` : ""}`;
      const { value } = point;
      if (typeof value === "number") points[key] = value;
      else if ("buckets" in value && Array.isArray(value.buckets.boundaries)) {
        points[key] = {
          count: value.count,
          sum: value.sum ?? Number.NaN,
          min: value.min ?? Number.NaN,
          max: value.max ?? Number.NaN,
          boundaries: value.buckets.boundaries,
          counts: value.buckets.counts,
        };
      }
    }
  }
  return { kinds, points };
}

describe("examples/metrics/opentelemetry.js, served in this process and read through an in-memory exporter", () => {
  const exporter = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE);
  // Exports only when flushed: the test decides when a collection happens.
  const reader = new PeriodicExportingMetricReader({ exporter, exportIntervalMillis: 3_600_000 });
  const provider = new MeterProvider({ readers: [reader] });
  let server: Awaited<ReturnType<typeof listenNode>> | undefined;

  beforeAll(async () => {
    vi.stubEnv("MAX_DURATION_MS", String(MAX_DURATION_MS));
    vi.stubEnv("MAX_BUFFERED_BYTES", String(MAX_BUFFERED_BYTES));
    // As OpenTelemetry asks, the SDK is registered before the module that makes the instruments is loaded.
    metrics.setGlobalMeterProvider(provider);
    const { handle } = await import("../../examples/metrics/opentelemetry.js");
    server = await listenNode(toNodeHandler, handle);
  });
  afterAll(async () => {
    await server?.close();
    await provider.shutdown();
    metrics.disable();
    vi.unstubAllEnvs();
  });

  async function collect(): Promise<ReturnType<typeof exported>> {
    await reader.forceFlush();
    const last = exporter.getMetrics().at(-1);
    const scope = last?.scopeMetrics.find((one) => one.scope.name === "eventsource-server-example");
    if (scope === undefined) throw new Error("the export has no metrics of the example's meter");
    return exported(scope.metrics);
  }

  test("after a scripted run, every instrument says exactly what the clients did", async () => {
    const before = await collect();
    expect(before.points).toEqual({
      "sse.server.active_streams": 0,
      "sse.server.emitted.events": 0,
      "sse.server.resumes{sse.resume.result=resumed}": 0,
      "sse.server.resumes{sse.resume.result=lost}": 0,
      "sse.server.evictions": 0,
    });

    const outcome = await script(server?.origin ?? "", async () => {
      const active = (await collect()).points["sse.server.active_streams"];
      return typeof active === "number" ? active : Number.NaN;
    });
    const { streams } = outcome;
    expect(outcome.openMidway).toBe(6);

    const { kinds, points } = await collect();
    expect(kinds).toEqual({
      "sse.server.stream.duration": "HISTOGRAM s",
      "sse.server.sent.events": "SUM monotonic {event}",
      "sse.server.io": "SUM monotonic By",
      "sse.server.active_streams": "SUM up-down {stream}",
      "sse.server.emitted.events": "SUM monotonic {event}",
      "sse.server.resumes": "SUM monotonic {stream}",
      "sse.server.evictions": "SUM monotonic {stream}",
    });
    const durations = Object.entries(points).filter(([key]) => key.startsWith("sse.server.stream.duration"));
    const sums = Object.fromEntries(Object.entries(points).filter(([key]) => !key.startsWith("sse.server.stream.")));
    expect(sums).toEqual({
      "sse.server.sent.events": total(streams, "events"),
      "sse.server.io": total(streams, "bytes"),
      "sse.server.active_streams": 0,
      "sse.server.emitted.events": outcome.emitted,
      "sse.server.resumes{sse.resume.result=resumed}": outcome.resumed,
      "sse.server.resumes{sse.resume.result=lost}": outcome.lost,
      "sse.server.evictions": outcome.evicted,
    });

    // One histogram per reason that occurred: its count is the streams closed for that reason.
    const counted = Object.entries(byReason(streams)).filter(([, n]) => n > 0);
    expect(durations.map(([key]) => key).sort()).toEqual(
      counted.map(([reason]) => `sse.server.stream.duration{sse.close.reason=${reason}}`).sort(),
    );
    for (const [reason, n] of counted) {
      const point = points[`sse.server.stream.duration{sse.close.reason=${reason}}`];
      if (point === undefined || typeof point === "number") throw new Error(`no histogram for ${reason}`);
      const ended = streams.filter((s) => s.reason === reason);
      expect(point.count, reason).toBe(n);
      expect(point.boundaries).toEqual(BUCKETS);
      expect(point.counts.reduce((sum, count) => sum + count, 0)).toBe(n);
      expect(point.min).toBeGreaterThanOrEqual(Math.min(...ended.map((s) => s.atLeast)) - SLACK_S);
      expect(point.max).toBeLessThanOrEqual(Math.max(...ended.map((s) => s.atMost)) + SLACK_S);
      // Bucket i counts the streams above boundary i - 1 and at most boundary i: summed, those at most boundary i.
      expectDurations(ended, point.sum, (le) =>
        point.counts.slice(0, BUCKETS.indexOf(le) + 1).reduce((sum, count) => sum + count, 0),
      );
    }
  });
});

describe("the Metrics section of docs/operating.md", () => {
  const excerpts = blocksOfFile("docs/operating.md")
    .map((block) => /^\/\/ (examples\/metrics\/[\w-]+\.js)\n([\s\S]*)$/.exec(block.code))
    .filter((match) => match !== null);

  test("quotes both recipes from their examples", () => {
    expect(excerpts.map(([, file]) => file)).toEqual([
      "examples/metrics/prometheus.js",
      "examples/metrics/opentelemetry.js",
    ]);
  });

  test.each(excerpts.map(([, file, code]) => [file as string, code as string]))(
    "every line of the excerpt of %s is in that file, in order",
    (file, code) => {
      const source = readFileSync(`${ROOT}${file}`, "utf8");
      let from = 0;
      for (const line of code.split("\n").filter((one) => one.trim() !== "")) {
        const at = source.indexOf(`${line}\n`, from);
        expect(at, `${JSON.stringify(line)} in ${file} after offset ${from}`).toBeGreaterThanOrEqual(0);
        from = at + line.length;
      }
    },
  );
});
