import { isBun, isWorkerd } from "./runtime.ts";

const encoder = new TextEncoder();

// A fresh ArrayBuffer is dear where V8 backs it outside the heap: under Node about 1 µs for an event-sized text
// over 64 bytes, under Deno 0.8 µs for any, more than the rest of the event's work (measured on Node 20 and
// Deno 2.9). There, bytes are written into a shared slab and handed out as views of it. Bun's own encode() is
// faster than any copy (about 30 ns), and workerd keeps fresh buffers: it gains little and is the runtime least
// seen here.
const usesSlabs = !isBun && !isWorkerd;
// As small as keeps the cost of a new slab out of sight (a few hundred events each), since one chunk kept alive
// keeps its whole slab: this is also the most a stalled client's queue or a kept chunk can pin per chunk.
const SLAB_BYTES = 16 * 1024;
// encodeInto writes at most 3 bytes per UTF-16 code unit: a text of up to this many units always fits a slab.
const MAX_SLAB_UNITS = SLAB_BYTES / 3;
let slab = new Uint8Array(0);
let used = 0;

/**
 * The UTF-8 bytes of `text`. Under Node and Deno, a view of a shared slab: each region is written once and never
 * again, so a chunk handed to a consumer keeps its bytes, and a new slab is started when one is full (or when a
 * consumer has transferred its buffer, which leaves it detached and empty). Elsewhere, and for a text longer than
 * a slab, a buffer of its own.
 */
export function utf8(text: string): Uint8Array {
  if (!usesSlabs || text.length > MAX_SLAB_UNITS) return encoder.encode(text);
  if (text.length * 3 > slab.length - used) {
    slab = new Uint8Array(SLAB_BYTES);
    used = 0;
  }
  const start = used;
  used += encoder.encodeInto(text, slab.subarray(start)).written;
  return slab.subarray(start, used);
}

/**
 * `bytes` in a buffer of their own: for chunks kept long after they were sent (a replay ring), so that a small
 * chunk does not keep a whole slab alive.
 */
export function ownBytes(bytes: Uint8Array): Uint8Array {
  return bytes.byteLength === bytes.buffer.byteLength ? bytes : bytes.slice();
}
