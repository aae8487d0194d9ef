/**
 * What a channel keeps of its events for resuming clients: each event with the id a client will send back, and the
 * memory ring (`replay: N`) of the last N. A shared log (`history`) is the user's; `resume.ts` reads either.
 * @module
 */
import { ownBytes } from "./bytes.ts";
import { fail, shown } from "./errors.ts";
import type { EventStream } from "./stream.ts";
import type { EventInput } from "./types.ts";

/** One emitted event as a history keeps it: its bytes, and its `id` as the client will echo it. */
export interface Entry {
  id: string | undefined;
  bytes: Uint8Array;
  /** Whether a client dispatches it (it carries data or an event type, or is a bare string). */
  dispatches: boolean;
}

/** Writes a kept event to a stream, counted as one. */
export function writeEntry(stream: EventStream, entry: Entry, now?: number): void {
  stream.write(entry.bytes, now);
  stream.counted(entry.dispatches, entry.id);
}

// HTTP trims a header value's leading and trailing spaces and tabs, and a lone surrogate cannot survive UTF-8: a client
// could never send such an id back.
const UNRESUMABLE_ID = /^[ \t]|[ \t]$|\p{Surrogate}/u;

/**
 * The id a client will send back for this event: the `id:` field exactly as written, or none. An id that could not come
 * back unchanged in a `Last-Event-ID` header is a `TypeError`: a client could never resume from it.
 */
export function resumableId(where: string, input: EventInput): string | undefined {
  if (typeof input === "string" || input === null || typeof input !== "object") return undefined;
  const { id } = input as { id?: unknown };
  if (id === undefined) return undefined;
  const text = String(id);
  if (UNRESUMABLE_ID.test(text)) {
    fail(
      where,
      `input.id must not start or end with a space or tab, nor hold a lone surrogate, got ${shown(text)}; a client could not send it back to resume`,
    );
  }
  return text;
}

/** The last `size` events emitted by this process. */
export interface MemoryHistory {
  remember(entry: Entry): void;
  /** Every event after the newest one with this id, oldest first; `null` when none has it. */
  after(id: string): Entry[] | null;
  /** Every event kept, oldest first. */
  all(): Entry[];
  clear(): void;
}

/** A ring of `size` entries: `next` is where the next one goes, which is the oldest once the ring is full. */
export function memoryHistory(size: number): MemoryHistory {
  const ring: Entry[] = [];
  let next = 0;

  function from(age: number): Entry[] {
    const count = ring.length;
    const oldest = count < size ? 0 : next;
    const entries: Entry[] = [];
    for (; age < count; age++) entries.push(ring[(oldest + age) % count] as Entry);
    return entries;
  }

  return {
    remember(live) {
      // Kept for as long as the ring lasts: in bytes of its own, not a view that would keep a whole slab alive.
      const entry = { ...live, bytes: ownBytes(live.bytes) };
      if (ring.length < size) ring.push(entry);
      else ring[next] = entry;
      next = (next + 1) % size;
    },
    after(id) {
      const count = ring.length;
      const oldest = count < size ? 0 : next;
      // Newest first: an id emitted twice resumes after its latest occurrence.
      for (let age = count - 1; age >= 0; age--) {
        if (ring[(oldest + age) % count]?.id === id) return from(age + 1);
      }
      return null;
    },
    all: () => from(0),
    clear() {
      ring.length = 0;
      next = 0;
    },
  };
}
