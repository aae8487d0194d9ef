/**
 * What a resuming client is owed: the events after its `Last-Event-ID`, then the live ones, each exactly once.
 *
 * Two histories answer that question. The memory ring (`replay: N`) holds the last N events of this process and
 * answers at once, so nothing can be emitted between its answer and the first live event. A shared log
 * (`history`: Redis Streams, a Durable Object's storage) answers later, while live events keep coming; the seam
 * below holds those live events for the client until the log has answered, then drops the ones the client
 * already has. Ids are opaque here, so the only order the seam relies on is the live feed's: it comes in the
 * log's order.
 *
 * @module
 */
import { encodeWith, type Serialize } from "./encode.ts";
import { type Puller, pullerOf } from "./source.ts";
import type { EventHistory, EventInput } from "./types.ts";
import { ownBytes, utf8 } from "./utf8.ts";

/** One emitted event as a history keeps it: its bytes, and its `id` as the client will echo it. */
export interface Entry {
  id: string | undefined;
  bytes: Uint8Array;
}

/** The id a client will send back for this event: the `id:` field exactly as written, or none. */
export function idOf(input: EventInput): string | undefined {
  if (typeof input === "string") return undefined;
  const { id } = input;
  return id === undefined ? undefined : String(id);
}

/** The last `size` events emitted by this process. */
export interface MemoryHistory {
  remember(entry: Entry): void;
  /** The bytes of every event after the newest one with this id, oldest first; `null` when none has it. */
  after(id: string): Uint8Array[] | null;
  /** The bytes of every event kept, oldest first. */
  all(): Uint8Array[];
  clear(): void;
}

/** A ring of `size` entries: `next` is where the next one goes, which is the oldest once the ring is full. */
export function memoryHistory(size: number): MemoryHistory {
  const ring: Entry[] = [];
  let next = 0;

  function bytesFrom(age: number): Uint8Array[] {
    const count = ring.length;
    const oldest = count < size ? 0 : next;
    const bytes: Uint8Array[] = [];
    for (; age < count; age++) bytes.push((ring[(oldest + age) % count] as Entry).bytes);
    return bytes;
  }

  return {
    remember(live) {
      // Kept for as long as the ring lasts: in bytes of its own, not a view that would keep a whole slab alive.
      const entry = { id: live.id, bytes: ownBytes(live.bytes) };
      if (ring.length < size) ring.push(entry);
      else ring[next] = entry;
      next = (next + 1) % size;
    },
    after(id) {
      const count = ring.length;
      const oldest = count < size ? 0 : next;
      // Newest first: an id emitted twice resumes after its latest occurrence.
      for (let age = count - 1; age >= 0; age--) {
        if (ring[(oldest + age) % count]?.id === id) return bytesFrom(age + 1);
      }
      return null;
    },
    all: () => bytesFrom(0),
    clear() {
      ring.length = 0;
      next = 0;
    },
  };
}

/** The channel's side of one client's resume: where the seam writes. */
export interface ResumeTarget {
  /** Writes bytes the client asked for by resuming; they are not held to `maxBufferedBytes`. */
  replayed(bytes: Uint8Array): void;
  /** Writes a live event that had been held. */
  live(bytes: Uint8Array): void;
  /** The encoded event for a client whose id the log does not hold (`onHistoryLost`), or `undefined`. */
  lost(): Uint8Array | undefined;
  /** Nothing is held or filtered any more: live events can go straight to the client. */
  done(): void;
}

/** One client's resume from a shared log, from the call to `after` until the live feed has passed its replay. */
export interface Resume {
  /** A live event for this client: `true` to write it now, `false` when it is held or was already replayed. */
  pass(entry: Entry): boolean;
  /** The bytes of the live events held while the log answers. */
  heldBytes(): number;
  /** The client has gone: if the log is still answering, `after`'s signal aborts and its events stop being read. */
  stop(reason?: unknown): void;
}

/**
 * Calls `history.after(lastId)` at once and writes its events to `target`, holding the live events that arrive
 * meanwhile. When the log has answered, the held events up to the last one the client already has (its own id,
 * or a replayed one) are dropped, the rest are written, and later live events whose id was replayed are dropped
 * until the live feed passes the last replayed id. A `null` answer or a failure writes `target.lost()` first.
 */
export function resume(history: EventHistory, lastId: string, serialize: Serialize, target: ResumeTarget): Resume {
  const abort = new AbortController();
  const { signal } = abort;
  let held: Entry[] = [];
  let heldBytes = 0;
  const replayed = new Set<string>();
  let lastReplayed: string | undefined;
  let answering = true;
  let puller: Puller | undefined;

  const seam: Resume = {
    heldBytes: () => heldBytes,
    pass(entry) {
      if (answering) {
        held.push(entry);
        heldBytes += entry.bytes.byteLength;
        return false;
      }
      if (entry.id === undefined || !replayed.has(entry.id)) return true;
      // The live feed has reached the log's last answer: nothing after this was replayed.
      if (entry.id === lastReplayed) target.done();
      return false;
    },
    stop(reason) {
      // Once the log has answered, there is nothing left to abort: only the filtering of live events remains.
      if (!answering || signal.aborted) return;
      abort.abort(reason);
      stopQuietly(puller, reason);
    },
  };

  async function replay(): Promise<boolean> {
    try {
      // Called before the first await: `after` runs right when response() is called.
      const events = await history.after(lastId, { signal });
      if (events === null || signal.aborted) return false;
      const opened = pullerOf("EventChannel: history.after", events);
      puller = opened;
      for (;;) {
        const result = await opened.next();
        if (signal.aborted) return false;
        if (result.done) return true;
        const input = result.value as EventInput;
        const bytes = utf8(encodeWith(input, serialize, "EventChannel: history.after"));
        const id = idOf(input);
        if (id !== undefined) {
          replayed.add(id);
          lastReplayed = id;
        }
        target.replayed(bytes);
      }
    } catch (error) {
      if (signal.aborted) return false;
      // The replay before the failure stays written; the client is then treated as one the log has lost.
      console.error(error);
      stopQuietly(puller, error);
      return false;
    }
  }

  function finish(complete: boolean): void {
    answering = false;
    if (!complete) {
      const lost = target.lost();
      if (lost !== undefined) target.replayed(lost);
    }
    // The cut: the last held event the client already has. Everything after it is newer than anything replayed,
    // since the live feed comes in the log's order.
    let from = 0;
    let caughtUp = replayed.size === 0;
    for (let index = held.length - 1; index >= 0; index--) {
      const { id } = held[index] as Entry;
      if (id === undefined) continue;
      if (from === 0 && (id === lastId || replayed.has(id))) from = index + 1;
      if (id === lastReplayed) {
        caughtUp = true;
        break;
      }
    }
    for (let index = from; index < held.length; index++) target.live((held[index] as Entry).bytes);
    held = [];
    heldBytes = 0;
    // Until the live feed passes the last replayed event, live events may still be ones the client has.
    if (caughtUp) target.done();
  }

  void replay().then((complete) => {
    if (!signal.aborted) finish(complete);
  });
  return seam;
}

function stopQuietly(puller: Puller | undefined, reason: unknown): void {
  try {
    const stopped = puller?.stop(reason) as PromiseLike<unknown> | undefined;
    stopped?.then?.(undefined, () => {});
  } catch {
    // A log that fails to stop has nothing left to tell this client.
  }
}
