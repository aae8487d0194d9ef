/**
 * A Durable Object's storage as the shared log: the object that publishes is the one that feeds its channel, so there
 * is no read loop; `publish` writes the event and the counter in one storage transaction, then emits. Ids are the
 * counter, 1, 2, 3…, kept in storage so they survive the object's restarts; events live under zero-padded keys that
 * sort as their numbers do. The storage is typed by the few methods called on it: no workerd import, no type package.
 * See docs/scaling.md.
 * @module
 */
import { checkKeys, fail, noop, shown } from "../errors.ts";
import { type Serialize, serializerOf } from "../options.ts";
import type { EventLog } from "../types.ts";
import { eventOf, type LogEngine, type LogEntry, type LogRecord, sharedLog } from "./feed.ts";

/** The keys a range of `list` covers. */
export interface DurableObjectListRange {
  start?: string;
  end?: string;
  limit?: number;
}

/** What a storage transaction is asked to do: `DurableObjectTransaction`'s `put` and `delete`. */
export interface DurableObjectLogTransaction {
  put(entries: Record<string, unknown>): Promise<void>;
  delete(keys: string[]): Promise<number>;
}

/** A Durable Object's storage (`ctx.storage`), by the methods the log calls. */
export interface DurableObjectLogStorage {
  get(key: string): Promise<unknown>;
  list(options: DurableObjectListRange): Promise<Map<string, unknown>>;
  delete(keys: string[]): Promise<number>;
  transaction<T>(closure: (txn: DurableObjectLogTransaction) => Promise<T>): Promise<T>;
}

/** The options of `durableObjectLog`. */
export interface DurableObjectLogOptions {
  /** Events kept in storage, so how far back a client can resume; each publish deletes the one that falls out. @default 10000 */
  keep?: number | undefined;
  /** What every key of the log starts with, so the object's storage can hold other things, or several logs. @default "event:" */
  prefix?: string | undefined;
  /** Turns non-string `data` into text, once, when publishing. @default JSON.stringify */
  serialize?: ((data: unknown) => string) | undefined;
}

const KEYS = ["keep", "prefix", "serialize"];
/** Every safe integer has at most 16 digits: padded to 16, keys sort as their numbers do. */
const DIGITS = 16;
/** Keys one `list` or `delete` takes at most while dropping what an earlier, larger `keep` kept. */
const BATCH = 128;
/** At most this many batches when an object starts: a later start goes on. */
const STALE_ROUNDS = 100;
const ID = /^(?:0|[1-9]\d{0,15})$/;

/**
 * A Durable Object's storage as a shared `EventLog`, for the channel of the object itself: `publish` stores the event
 * and the counter in one transaction, then emits; `after` lists the stored events after an id. Throws a `TypeError`
 * for an invalid option. See docs/scaling.md.
 * @example A room as a Durable Object (run in Miniflare by test/logs/recipes.test.ts)
 * ```ts ignore
 * import { EventChannel, type EventLog } from "eventsource-server";
 * import { durableObjectLog } from "eventsource-server/cloudflare";
 *
 * export class Room {
 *   readonly log: EventLog;
 *   readonly channel: EventChannel;
 *   constructor(ctx: DurableObjectState) {
 *     this.log = durableObjectLog(ctx.storage, { keep: 1_000 });
 *     this.channel = new EventChannel({ history: this.log, onHistoryLost: () => ({ event: "reset" }) });
 *     this.log.feed(this.channel);
 *   }
 *   async fetch(request: Request): Promise<Response> {
 *     if (request.method === "POST") return Response.json({ id: await this.log.publish(await request.text()) });
 *     return this.channel.response(request);
 *   }
 * }
 * ```
 */
export function durableObjectLog(storage: DurableObjectLogStorage, options: DurableObjectLogOptions = {}): EventLog {
  const where = "durableObjectLog";
  for (const method of ["get", "list", "delete", "transaction"] as const) {
    if (typeof (storage as Partial<DurableObjectLogStorage> | null)?.[method] !== "function") {
      fail(where, `storage must be a Durable Object's storage (ctx.storage), got ${shown(storage)}`);
    }
  }
  if (options === null || typeof options !== "object") fail(where, `options must be an object, got ${shown(options)}`);
  checkKeys(where, "options", options, KEYS);
  const { keep = 10_000, prefix = "event:" } = options;
  if (!(Number.isSafeInteger(keep) && keep > 0))
    fail(where, `options.keep must be a positive safe integer, got ${shown(keep)}`);
  if (typeof prefix !== "string") fail(where, `options.prefix must be a string, got ${shown(prefix)}`);
  const serialize: Serialize = serializerOf(where, { serialize: options.serialize });

  const counterKey = `${prefix}last`;
  const keyOf = (id: number) => `${prefix}${String(id).padStart(DIGITS, "0")}`;
  // ":" sorts right after the digits, and before "last": the end of every event key, and of nothing else.
  const endKey = `${prefix}:`;
  // The newest id given; undefined until read from storage.
  let last = 0;
  let loading: Promise<void> | undefined;
  // Publishes one after another, so ids are given, stored and emitted in one order.
  let turn: Promise<unknown> = Promise.resolve();

  /** Reads the counter, and drops what a larger `keep` of an earlier deployment left behind. */
  function loaded(): Promise<void> {
    loading ??= (async () => {
      const stored = await storage.get(counterKey);
      if (stored !== undefined && !(Number.isSafeInteger(stored) && (stored as number) >= 0)) {
        throw new Error(`${where}: ${counterKey} holds ${shown(stored)}, not an id`);
      }
      last = (stored as number | undefined) ?? 0;
      if (last <= keep) return;
      for (let round = 0; round < STALE_ROUNDS; round++) {
        const stale = await storage.list({ start: keyOf(0), end: keyOf(last - keep + 1), limit: BATCH });
        if (stale.size === 0) return;
        await storage.delete([...stale.keys()]);
      }
    })();
    // A failed read is tried again by the next call, not remembered.
    loading.catch(() => {
      loading = undefined;
    });
    return loading;
  }

  /** `task`, after every earlier publish has settled. */
  function inTurn<T>(task: () => Promise<T>): Promise<T> {
    const next = turn.then(task);
    turn = next.then(noop, noop);
    return next;
  }

  const engine: LogEngine = {
    name: where,
    what: `storage under ${shown(prefix)}`,
    isId: (id) => ID.test(id) && Number.isSafeInteger(Number(id)),
    compare: (a, b) => Number(a) - Number(b),
    append(record: LogRecord) {
      return inTurn(async () => {
        await loaded();
        const id = last + 1;
        await storage.transaction(async (txn) => {
          // The event and the counter together: a restarted object goes on from the last id stored, never reusing one.
          await txn.put({ [keyOf(id)]: record, [counterKey]: id });
          if (id > keep) await txn.delete([keyOf(id - keep)]);
        });
        last = id;
        return String(id);
      });
    },
    end() {
      return inTurn(async () => {
        await loaded();
        return String(last);
      });
    },
    async after(text, count) {
      await loaded();
      const id = Number(text);
      if (id > last) return null;
      const page = await storage.list({ start: keyOf(id + 1), end: endKey, limit: count });
      const entries: LogEntry[] = [];
      for (const [key, value] of page) {
        const position = String(Number(key.slice(prefix.length)));
        entries.push({ id: position, event: eventOf(position, (value ?? {}) as Record<string, unknown>) });
      }
      // Ids have no gaps and only the oldest are deleted: the id after the client's, still stored, proves that every
      // later one is. So an id itself trimmed away still resumes while the next one is kept ("0" while the first is).
      if (id < last && entries[0]?.id !== String(id + 1)) return null;
      return entries;
    },
    async close() {
      // Nothing was opened: the storage is the object's.
    },
  };
  return sharedLog(engine, serialize);
}
