/**
 * A Durable Object's recent events, kept in its storage so that they outlive the object: the log a room's
 * `EventChannel` resumes reconnecting clients from (its `history`).
 *
 * The layout, in the object's key-value storage:
 *
 * | key | value |
 * |---|---|
 * | `lastId` | the newest id ever given, a number: ids go 1, 2, 3… with no gap and never repeat, restarts included |
 * | `event:0000000000000042` | the event with id `"42"`, as `{ id: "42", data }` |
 *
 * Ids are zero-padded to 16 digits (every safe integer fits) so that keys sort as their numbers do, and
 * `list({ start: keyOf(n + 1) })` reads the events after `n`, oldest first. Only the newest `limit` are kept.
 */
import type { EventHistory, EventInput } from "eventsource-server";
import { numericId } from "../../shared/ticks.js";

/** An event of the log: its id, and the data every subscriber receives as a `message` event. */
export interface StoredEvent {
  id: string;
  data: unknown;
}

const LAST_ID = "lastId";
const PREFIX = "event:";
/** Events read per `list()` while replaying: a long history is read a page at a time, never all at once. */
const PAGE = 128;
/** Keys per `delete()`: the most one call accepts. */
const DELETE_BATCH = 128;

/** The storage key of the event with id `id`. */
export function keyOf(id: number): string {
  return `${PREFIX}${String(id).padStart(16, "0")}`;
}

/** The room's log in `storage`: `append` when publishing, and the channel's `history` (its `after`) when resuming. */
export class StoredEvents implements EventHistory {
  readonly #storage: DurableObjectStorage;
  readonly #limit: number;
  #lastId = 0;

  /** Call `load()` before anything else, inside `ctx.blockConcurrencyWhile`. */
  constructor(storage: DurableObjectStorage, limit: number) {
    if (!Number.isSafeInteger(limit) || limit < 1) throw new Error(`the history limit must be 1 or more, got ${limit}`);
    this.#storage = storage;
    this.#limit = limit;
  }

  /** Reads the newest id, so the next one follows it, and drops what a larger limit of an earlier deployment kept. */
  async load(): Promise<void> {
    this.#lastId = (await this.#storage.get<number>(LAST_ID)) ?? 0;
    if (this.#lastId <= this.#limit) return;
    const end = keyOf(this.#lastId - this.#limit + 1);
    // Bounded: 1,000 rounds of 128 keys is far more than any limit this example would have been deployed with.
    for (let round = 0; round < 1_000; round++) {
      const stale = await this.#storage.list({ prefix: PREFIX, end, limit: DELETE_BATCH });
      if (stale.size === 0) return;
      await this.#storage.delete([...stale.keys()]);
    }
  }

  /**
   * Stores an event with the next id and trims the log to `limit`, in one atomic write (calls made without an
   * `await` between them are one batch); resolves once it is stored, so the caller emits only what the log holds.
   */
  async append(data: unknown): Promise<StoredEvent> {
    // If a write fails, workerd resets the object, so this counter never runs ahead of what storage holds.
    this.#lastId += 1;
    const event: StoredEvent = { id: String(this.#lastId), data };
    const writes: Promise<unknown>[] = [
      this.#storage.put<unknown>({ [keyOf(this.#lastId)]: event, [LAST_ID]: this.#lastId }),
    ];
    if (this.#lastId > this.#limit) writes.push(this.#storage.delete(keyOf(this.#lastId - this.#limit)));
    await Promise.all(writes);
    return event;
  }

  /**
   * The events after `lastEventId`, oldest first; `null` unless every one of them is still stored (the id is older
   * than the log keeps, or is not an id this log gave). The id just before the oldest kept event resumes: nothing
   * after it is missing.
   */
  async after(lastEventId: string, { signal }: { signal: AbortSignal }): Promise<AsyncIterable<EventInput> | null> {
    // The number in an id this log gives ("42"), or "0", the id before the first; null for any other string,
    // which was never written here.
    const id = numericId(lastEventId);
    if (id === null || id > this.#lastId) return null;
    const first = await this.#page(keyOf(id + 1));
    if (id < this.#lastId && first[0]?.id !== String(id + 1)) return null;
    return this.#replay(id, first, signal);
  }

  async #page(start: string): Promise<StoredEvent[]> {
    return [...(await this.#storage.list<StoredEvent>({ prefix: PREFIX, start, limit: PAGE })).values()];
  }

  /** `page`, then the pages after it, checking that the ids follow on: a gap would be events lost without a word. */
  async *#replay(after: number, page: StoredEvent[], signal: AbortSignal): AsyncGenerator<EventInput> {
    let expected = after + 1;
    while (page.length > 0 && !signal.aborted) {
      for (const event of page) {
        // Only more than `limit` appends during one replay can trim ahead of it; the channel then treats the
        // client as one whose id is gone, and its onHistoryLost event tells it to reload.
        if (event.id !== String(expected)) throw new Error(`history: event ${expected} was trimmed during a replay`);
        expected += 1;
        yield { id: event.id, data: event.data };
      }
      if (page.length < PAGE) return;
      page = await this.#page(keyOf(expected));
    }
  }
}
