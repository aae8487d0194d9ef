/**
 * Text to UTF-8 bytes, each chunk in memory that belongs to one owner: one stream, or one channel for the events all
 * its subscribers share. No chunk of one response may give access to another's bytes (`chunk.buffer`), and transferring
 * one response's buffer must never empty another response's chunk.
 * @module
 */
import { freshBuffersAreDear } from "./runtime.ts";

const encoder = new TextEncoder();

/** A slab never grows past this: one kept chunk keeps its whole slab alive. */
const MAX_SLAB_BYTES = 16 * 1024;
/** A new owner's first slab: an owner that writes a few events and then idles holds little. */
const MIN_SLAB_BYTES = 512;

/** Bytes of its own, for what one owner writes once (a first chunk, a heartbeat) or keeps for long. */
export function freshBytes(text: string): Uint8Array {
  return encoder.encode(text);
}

/**
 * One owner's slabs: each text is written once into the current slab and handed out as a view of it, so a chunk keeps
 * its bytes, and a new slab is started when one is full or its buffer was transferred (detached). Slabs start small and
 * double up to 16 KB, since an idle owner still holds its last slab until `release()`.
 */
export class Utf8Pool {
  #slab: Uint8Array | undefined;
  #used = 0;
  #next = MIN_SLAB_BYTES;

  bytes(text: string): Uint8Array {
    // encodeInto writes at most 3 bytes per UTF-16 code unit.
    const most = text.length * 3;
    if (!freshBuffersAreDear || most > MAX_SLAB_BYTES) return encoder.encode(text);
    let slab = this.#slab;
    if (slab === undefined || most > slab.byteLength - this.#used) {
      slab = new Uint8Array(Math.max(this.#next, most));
      this.#next = Math.min(this.#next * 2, MAX_SLAB_BYTES);
      this.#slab = slab;
      this.#used = 0;
    }
    const start = this.#used;
    this.#used += encoder.encodeInto(text, slab.subarray(start)).written;
    return slab.subarray(start, this.#used);
  }

  /** Lets go of the current slab (the owner has gone idle): its next chunk starts a small one. */
  release(): void {
    this.#slab = undefined;
    this.#next = MIN_SLAB_BYTES;
  }
}

/**
 * `bytes` in a buffer of their own: for chunks kept long after they were sent (a replay ring), so that a small chunk
 * does not keep a whole slab alive.
 */
export function ownBytes(bytes: Uint8Array): Uint8Array {
  return bytes.byteLength === bytes.buffer.byteLength ? bytes : bytes.slice();
}
