/**
 * One scenario, one adapter, one fresh process: `node --expose-gc bench/worker.mjs <scenario> <adapter> <size>`.
 * Prints one JSON line: `{ valid, problems, ...figures }`. Validity first: the output is parsed with
 * eventsource-parser and compared event by event with what was sent, before anything is timed.
 */
import { performance } from "node:perf_hooks";
import { createParser } from "eventsource-parser";
import { adapters } from "./adapters.mjs";

const [scenario, adapterKey, sizeArg] = process.argv.slice(2);
const adapter = adapters[adapterKey];
const size = Number(sizeArg);
if (adapter === undefined || !(size > 0))
  throw new Error(`usage: worker.mjs <scenario> <adapter> <size>, got ${process.argv}`);

let unhandled = 0;
process.on("unhandledRejection", () => {
  unhandled++; // counted and reported: the disconnect scenario's figure, and a flag anywhere else
});

const gc = globalThis.gc ?? globalThis.Bun?.gc ?? (() => {});
const settle = () => new Promise((resolve) => setImmediate(resolve));
const heapUsed = () => process.memoryUsage().heapUsed;
const timers = () =>
  typeof process.getActiveResourcesInfo === "function"
    ? process.getActiveResourcesInfo().filter((r) => r === "Timeout").length
    : Number.NaN;
async function collect() {
  for (let i = 0; i < 3; i++) {
    gc(true);
    await settle();
  }
}

// ---------------------------------------------------------------- the events
const BIG = Array.from({ length: 1024 }, (_, i) => `line ${String(i).padStart(4, "0")} ${"x".repeat(53)}`).join("\n");
const ITEMS = Array.from({ length: 8 }, (_, i) => ({
  sku: `SKU-${1000 + i}`,
  qty: i + 1,
  price: 9.99 + i,
  tags: ["a", "b"],
}));
const kinds = {
  small: (i) => ({ event: "tick", id: String(i), data: `hello world ${i}` }),
  json: (i) => ({
    event: "order",
    id: String(i),
    data: { n: i, customer: { name: "Ada Lovelace", email: "ada@example.com", city: "London" }, items: ITEMS },
  }),
  // 64 KiB of LF-separated lines, the first of which changes per event
  large: (i) => ({ event: "blob", id: String(i), data: `event ${i}\n${BIG}` }),
};

async function* events(kind, n) {
  for (let i = 0; i < n; i++) yield kind(i);
}

/** The text a conforming client must dispatch for `e`. */
const expectedOf = (e) => ({
  event: e.event,
  id: e.id,
  data: typeof e.data === "string" ? e.data : JSON.stringify(e.data),
});

/** Feeds text to eventsource-parser and checks each dispatched event against `expect(index)`. */
function checker(expect) {
  const problems = [];
  let count = 0;
  const parser = createParser({
    onEvent(m) {
      const want = expect(count++);
      if (want === undefined) {
        if (problems.length < 3) problems.push(`event ${count - 1} was not sent: ${JSON.stringify(m).slice(0, 120)}`);
        return;
      }
      for (const field of ["event", "id", "data"]) {
        if (m[field] !== want[field] && problems.length < 3) {
          problems.push(
            `event ${count - 1} ${field}: got ${JSON.stringify(m[field])?.slice(0, 80)}, want ${JSON.stringify(want[field]).slice(0, 80)}`,
          );
        }
      }
    },
  });
  const decoder = new TextDecoder();
  return {
    problems,
    feed: (bytes) => parser.feed(decoder.decode(bytes, { stream: true })),
    count: () => count,
  };
}

async function readBytes(response, onChunk) {
  const reader = (await response).body.getReader();
  let bytes = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) return bytes;
    bytes += value.byteLength;
    onChunk?.(value);
  }
}

// ---------------------------------------------------------------- throughput: small, json, large
async function throughput(kind) {
  const prepared = adapter.prepare ? await adapter.prepare(events(kind, size)) : undefined;
  // 1. validity, which also warms the code up: parse everything and compare event by event
  const check = checker((i) => (i < size ? expectedOf(kind(i)) : undefined));
  const validBytes = await readBytes(adapter.respond(events(kind, size), prepared), check.feed);
  if (check.count() !== size) check.problems.push(`dispatched ${check.count()} events, want ${size}`);
  // 2. the timed run: the body read to the end, bytes counted
  await collect();
  const t0 = performance.now();
  const bytes = await readBytes(adapter.respond(events(kind, size), prepared));
  const ms = performance.now() - t0;
  if (bytes !== validBytes) check.problems.push(`timed run wrote ${bytes} bytes, the checked run ${validBytes}`);
  return { problems: check.problems, ms, bytes, eventsPerSec: (size / ms) * 1000 };
}

// ---------------------------------------------------------------- fanout
const FAN_EMITS = 20;
async function fanout() {
  const pre = adapter.prepareFanout?.(Array.from({ length: FAN_EMITS + 1 }, (_, k) => fanEvent(k)));
  const channel = adapter.channel?.(pre);
  if (channel === undefined) return { problems: [], missing: true };
  await collect();
  const heap0 = heapUsed();
  const timers0 = timers();
  const counts = new Float64Array(size);
  let waiting;
  let target = 0;
  let reached = 0;
  const probe = checker((i) => expectedOf(fanEvent(i)));
  const readers = [];
  for (let s = 0; s < size; s++) {
    const reader = (await channel.subscribe()).body.getReader();
    readers.push(reader);
    (async () => {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) return;
        if (s === 0) probe.feed(value);
        const before = counts[s];
        counts[s] += value.byteLength;
        if (target > 0 && before < target && counts[s] >= target && ++reached === size) waiting?.();
      }
    })().catch(() => {});
  }
  // better-sse connects its sessions on setImmediate; first bytes (retry, comment) arrive in these turns too
  for (let i = 0; i < 5; i++) await settle();
  await collect();
  const heapPerSub = (heapUsed() - heap0) / size;
  const timersPerSub = (timers() - timers0) / size;

  const arrive = (bytes) =>
    new Promise((resolve, reject) => {
      target = bytes;
      reached = 0;
      for (let s = 0; s < size; s++) if (counts[s] >= target) reached++;
      if (reached === size) return resolve();
      const deadline = setTimeout(() => reject(new Error(`fanout: ${reached}/${size} got the event in 30 s`)), 30_000);
      waiting = () => {
        clearTimeout(deadline);
        resolve();
      };
    });

  const base = counts[0];
  const problems = probe.problems;
  for (let s = 1; s < size; s++) {
    if (counts[s] !== base) {
      problems.push(`subscriber ${s} had ${counts[s]} bytes before the first emit, subscriber 0 ${base}`);
      break;
    }
  }
  // the first emit is a warm-up, and tells how many bytes one event is for this adapter
  channel.emit(fanEvent(0));
  await arrive(base + 1);
  for (let i = 0; i < 3; i++) await settle();
  const per = counts[0] - base;
  const times = [];
  for (let k = 1; k <= FAN_EMITS; k++) {
    const t0 = performance.now();
    channel.emit(fanEvent(k));
    await arrive(base + per * (k + 1));
    times.push(performance.now() - t0);
  }
  for (let i = 0; i < 3; i++) await settle();
  if (probe.count() !== FAN_EMITS + 1)
    problems.push(`subscriber 0 dispatched ${probe.count()} events, want ${FAN_EMITS + 1}`);
  const total = base + per * (FAN_EMITS + 1);
  const off = counts.findIndex((c) => c !== total);
  if (off !== -1) problems.push(`subscriber ${off} got ${counts[off]} bytes, want ${total}`);
  times.sort((x, y) => x - y);
  const msPerEmit = times[times.length >> 1];
  for (const r of readers) r.cancel().catch(() => {});
  channel.close();
  return { problems, emulated: channel.emulated === true, msPerEmit, heapPerSub, timersPerSub, bytesPerEvent: per };
}
const fanEvent = (k) => ({ event: "news", id: String(1000 + k), data: "hello fanout" });

// ---------------------------------------------------------------- idle
/** A source that never yields, and never ends. */
const silent = () => ({
  [Symbol.asyncIterator]: () => ({
    next: () => new Promise(() => {}),
    return: async () => ({ done: true, value: undefined }),
  }),
});
async function idle() {
  await collect();
  const heap0 = heapUsed();
  const timers0 = timers();
  const readers = [];
  let opened = 0;
  for (let s = 0; s < size; s++) {
    const reader = (await adapter.respond(silent())).body.getReader();
    readers.push(reader);
    // the first chunk (a comment or retry, if the adapter writes one), then a read that stays pending
    (async () => {
      for (;;) {
        const { done } = await reader.read();
        opened++;
        if (done) return;
      }
    })().catch(() => {});
  }
  for (let i = 0; i < 5; i++) await settle();
  await collect();
  const heapPerConn = (heapUsed() - heap0) / size;
  const timersPerConn = (timers() - timers0) / size;
  for (const r of readers) r.cancel().catch(() => {});
  return { problems: [], heapPerConn, timersPerConn, firstChunks: opened / size };
}

// ---------------------------------------------------------------- disconnect
async function disconnect() {
  await collect();
  const timers0 = timers();
  const finallyAt = new Float64Array(size).fill(Number.NaN);
  const cancelAt = new Float64Array(size);
  async function* ticker(s) {
    try {
      for (let i = 0; ; i++) {
        yield { event: "tick", id: String(i), data: `hello ${s}` };
        await settle();
      }
    } finally {
      finallyAt[s] = performance.now();
    }
  }
  const sessions = [];
  for (let s = 0; s < size; s++) sessions.push(adapter.respond(ticker(s)));
  let firstEvents = 0;
  await Promise.all(
    sessions.map(async (response, s) => {
      const reader = (await response).body.getReader();
      const check = checker((i) => ({ event: "tick", id: String(i), data: `hello ${s}` }));
      while (check.count() === 0) {
        const { done, value } = await reader.read();
        if (done) break;
        check.feed(value);
      }
      if (check.count() > 0 && check.problems.length === 0) firstEvents++;
      cancelAt[s] = performance.now();
      await reader.cancel();
    }),
  );
  await new Promise((resolve) => setTimeout(resolve, 100)); // the window the contract allows
  let cleaned = 0;
  for (let s = 0; s < size; s++) if (finallyAt[s] - cancelAt[s] <= 100) cleaned++;
  const problems = firstEvents === size ? [] : [`${size - firstEvents} bodies did not carry a valid first event`];
  return { problems, cleaned, of: size, unhandled, timersLeft: timers() - timers0 };
}

// ---------------------------------------------------------------- main
const run = {
  small: () => throughput(kinds.small),
  json: () => throughput(kinds.json),
  large: () => throughput(kinds.large),
  fanout,
  idle,
  disconnect,
}[scenario];
if (run === undefined) throw new Error(`unknown scenario ${scenario}`);
const result = await run();
if (unhandled > 0 && scenario !== "disconnect") result.problems.push(`${unhandled} unhandled rejections`);
result.valid = result.problems.length === 0;
process.stdout.write(`${JSON.stringify(result)}\n`);
process.exit(0);
