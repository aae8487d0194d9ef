// @ts-check
/**
 * What one emit costs with 10,000 subscribers, and what a subscriber costs in memory. Not a test: figures for
 * the README. Run it with `npx tsc && node --expose-gc examples/broker/measure.js` (add `10000 200` to set the
 * subscribers and emits). Deno and Bun run it too (`deno run -A --v8-flags=--expose-gc`, `bun`), with the
 * package name mapped to `src/index.ts`.
 */
import { EventChannel } from "eventsource-server";

const SUBSCRIBERS = Number(process.argv[2] ?? 10_000);
const EMITS = Number(process.argv[3] ?? 200);
/** @type {{ gc?: () => void, Bun?: { gc(force: boolean): void } }} */
const runtime = /** @type {never} */ (globalThis);
// Node and Deno expose V8's gc with --expose-gc; Bun has its own.
const gc = runtime.gc ?? (runtime.Bun ? () => runtime.Bun?.gc(true) : undefined);
if (gc === undefined) throw new Error("run with node --expose-gc (Deno: --v8-flags=--expose-gc)");

function heap() {
  gc?.();
  gc?.();
  return process.memoryUsage().heapUsed;
}

/** A realistic event: a named JSON event with an id, about 80 bytes on the wire. */
function event(/** @type {number} */ n) {
  return { event: "price", id: n, data: { symbol: "ACME", cents: 1_000 + n, at: "2026-01-01T00:00:00.000Z" } };
}

/**
 * @param {string} label
 * @param {boolean} reading true: every subscriber has a read pending, as a server's bridge always does.
 */
async function run(label, reading) {
  const channel = new EventChannel({ replay: 100 });
  const before = heap();
  /** @type {ReadableStreamDefaultReader<Uint8Array>[]} */
  const readers = [];
  for (let i = 0; i < SUBSCRIBERS; i++) {
    const body = channel.response(undefined, { keepAlive: 8_000 }).body;
    if (body === null) throw new Error("no body");
    readers.push(body.getReader());
  }
  const perSubscriber = (heap() - before) / SUBSCRIBERS;
  // Drain the first chunk, then keep one read pending per subscriber.
  await Promise.all(readers.map((reader) => reader.read()));
  let received = 0;
  const pump = (/** @type {ReadableStreamDefaultReader<Uint8Array>} */ reader) => {
    reader.read().then(({ done }) => {
      if (done) return;
      received++;
      pump(reader);
    });
  };
  if (reading) for (const reader of readers) pump(reader);

  let emitMs = 0;
  for (let n = 1; n <= EMITS; n++) {
    const start = performance.now();
    channel.emit(event(n));
    emitMs += performance.now() - start;
    // Let the readers catch up between emits, as they would between real events.
    if (reading) await new Promise((resolve) => setImmediate(resolve));
  }
  if (reading && received !== SUBSCRIBERS * EMITS) throw new Error(`received ${received} of ${SUBSCRIBERS * EMITS}`);
  const closeStart = performance.now();
  channel.close();
  const closeMs = performance.now() - closeStart;
  console.log(
    `${label}: ${SUBSCRIBERS} subscribers, ${EMITS} emits: ` +
      `${(emitMs / EMITS).toFixed(2)} ms per emit (${((emitMs / EMITS / SUBSCRIBERS) * 1e6).toFixed(0)} ns per subscriber), ` +
      `${(perSubscriber / 1024).toFixed(2)} KiB heap per subscriber (Response + stream + queue), close ${closeMs.toFixed(1)} ms`,
  );
}

await run("idle readers (no read pending)", false);
await run("live readers (one read pending each)", true);
