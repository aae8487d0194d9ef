/**
 * What the three shared logs have in common, so that each engine (`redis.ts`, `postgres.ts`, `cloudflare.ts`) is only
 * its commands: `publish`'s checks, the feed into a channel (its position, the history requests waiting for it, its
 * reconnects and what it does when it cannot prove that it missed nothing), and `after`, read page by page. Ids are
 * the log's own positions, so an id means the same on every instance and survives a restart. See docs/scaling.md.
 * @module
 */
import { type EventChannel, isClosed } from "../channel.ts";
import { encodeWith } from "../encode.ts";
import { fail, messageOf, noop, report, shown } from "../errors.ts";
import type { Serialize } from "../options.ts";
import type { EventInput, EventLog, ServerSentEvent } from "../types.ts";

/** One event as a log stores it: the fields `publish` was given, checked, with `data` already text. */
export interface LogRecord {
  event?: string;
  data?: string;
  retry?: number;
  comment?: string;
}

/** An entry read back: its position, and the event it stands for. */
export interface LogEntry {
  id: string;
  event: ServerSentEvent;
}

/** What the feed read after its position. */
export interface Batch {
  entries: LogEntry[];
  /** The log can no longer show that it holds every entry after the position: some may have been missed. */
  gap: boolean;
}

/** One log's commands; everything else is this module's. Positions are the log's own ids, as strings. */
export interface LogEngine {
  /** The function that made the log, for messages: `redisStreamLog`. */
  name: string;
  /** What the log is, for messages: `stream "events"`. */
  what: string;
  /** Whether `id` could be a position of this log at all: anything else is not in it. */
  isId(id: string): boolean;
  /** Negative, zero or positive as position `a` comes before, is, or comes after `b`. */
  compare(a: string, b: string): number;
  /** Stores one event; resolves with its position once it is stored, rejects when it was not. */
  append(record: LogRecord): Promise<string>;
  /** The position of the log's last entry, or the position before any entry. */
  end(): Promise<string>;
  /**
   * Up to `count` entries after `id`, oldest first; `null` when the log cannot show that it still holds every entry
   * after `id` (the entry at `id` is gone, or was never there).
   */
  after(id: string, count: number): Promise<LogEntry[] | null>;
  /**
   * The feed's read: the entries after `position`, waiting about a second for some. Absent for a log that lives in the
   * process that publishes (a Durable Object's storage): `publish` then emits on the fed channel itself.
   */
  read?: ((position: string) => Promise<Batch>) | undefined;
  /** Closes what the log opened itself; a read under way settles soon after. */
  close(): Promise<void>;
}

/** Entries per page, when the feed reads and when `after` replays: one page is what a replay holds in memory. */
export const PAGE = 500;
/** The longest wait between two attempts to reach a log's server; the first waits about 100 ms, then it doubles. */
const MAX_BACKOFF_MS = 2_000;

/**
 * The record of `input`, checked as `emit` checks it (a `TypeError` names the field), with non-string `data` through
 * `serialize` once, so that every instance writes the same bytes. An input with an `id` is a `TypeError`: the log
 * gives the ids.
 */
export function recordOf(where: string, input: EventInput, serialize: Serialize): LogRecord {
  if (typeof input === "string") return { data: input };
  const id = (input as { id?: unknown } | null)?.id;
  if (id !== undefined) fail(where, `input.id must be left out, got ${shown(id)}; the log gives each event its id`);
  // encodeWith checks every field and calls serialize once for non-string data: its text is what is stored.
  let text: string | undefined;
  encodeWith(
    input,
    (data) => {
      text = serialize(data);
      return text;
    },
    where,
  );
  const { event, data, retry, comment } = input;
  const record: LogRecord = {};
  if (event !== undefined) record.event = event;
  if (data !== undefined) record.data = typeof data === "string" ? data : (text as string);
  if (retry !== undefined) record.retry = retry;
  if (comment !== undefined) record.comment = comment;
  return record;
}

/**
 * The event of a stored entry: its known fields (`event`, `data`, `retry`, `comment`) and the entry's position as its
 * `id`. Other fields are left out; a field of the wrong type is kept, so the channel refuses the event and says why.
 */
export function eventOf(id: string, fields: Readonly<Record<string, unknown>>): ServerSentEvent {
  const event: ServerSentEvent = {};
  const { event: type, data, retry, comment } = fields;
  if (comment !== undefined) event.comment = comment as string;
  if (type !== undefined) event.event = type as string;
  event.id = id;
  // A number stored as text (Redis keeps only strings) is a number again.
  if (retry !== undefined)
    event.retry = typeof retry === "string" && /^\d{1,15}$/.test(retry) ? Number(retry) : (retry as number);
  if (data !== undefined) event.data = data;
  return event;
}

/** Whether the channel would write this event: an entry written by hand may not be one. */
function isSendable(event: ServerSentEvent): boolean {
  if (event.data !== undefined && typeof event.data !== "string") return false;
  try {
    encodeWith(event, JSON.stringify, "");
    return true;
  } catch {
    return false;
  }
}

/** Resolves after `ms`, or at once when `signal` aborts. */
export function sleep(ms: number, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
    function done(): void {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    }
  });
}

/** How long to wait before attempt `attempt + 1`: doubling from about 100 ms, jittered so instances spread out. */
export function backoffMs(attempt: number): number {
  return Math.min(MAX_BACKOFF_MS, 50 * 2 ** attempt) * (0.5 + Math.random() / 2);
}

/** `promise`, or a rejection with `signal.reason` as soon as `signal` aborts. */
function raced<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    if (signal.aborted) onAbort();
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener("abort", onAbort);
        resolve(value);
      },
      (error: unknown) => {
        signal.removeEventListener("abort", onAbort);
        reject(error);
      },
    );
  });
}

/**
 * `task()`, tried again with backoff while it fails (a server that is unreachable, restarting, failing over), until
 * `signal` aborts: then it rejects with the signal's reason.
 */
export async function retrying<T>(signal: AbortSignal, task: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    if (signal.aborted) throw signal.reason;
    try {
      return await raced(task(), signal);
    } catch {
      await sleep(backoffMs(attempt), signal);
    }
  }
}

/** A history request waiting for the feed to reach an id. */
interface Waiter {
  id: string;
  done(): void;
}

/** The message of an error, for a line of `console.error`. */
/**
 * The `EventLog` of an engine: `publish` checks and appends, `feed` emits every entry published from then on, in order,
 * `after` replays page by page once the feed has reached the client's id, and `close` stops it all.
 */
export function sharedLog(engine: LogEngine, serialize: Serialize): EventLog {
  const { name, compare } = engine;
  let channel: EventChannel | undefined;
  // Whether the feed runs: history requests wait for it only then.
  let feeding = false;
  let closed = false;
  // The id of the last entry emitted, or where the feed started; undefined until the log has said where its end is.
  let position: string | undefined;
  const waiters = new Set<Waiter>();
  // Aborted by close(): ends the feed's waits between attempts.
  const stopping = new AbortController();
  let closing: Promise<void> | undefined;

  function moveTo(id: string): void {
    position = id;
    for (const waiter of waiters) if (compare(waiter.id, id) <= 0) waiter.done();
  }

  /** The feed is over: nothing waits for it any more, and `after` answers from the log alone. */
  function stopFeeding(): void {
    feeding = false;
    for (const waiter of waiters) waiter.done();
  }

  /**
   * Resolves once the feed has emitted the entry at `id` (or a later one), at once when there is no feed; rejects with
   * the reason of `signal` when it aborts first.
   */
  function reached(id: string, signal: AbortSignal): Promise<void> {
    if (!feeding || (position !== undefined && compare(id, position) <= 0)) return Promise.resolve();
    if (signal.aborted) return Promise.reject(signal.reason);
    return new Promise<void>((resolve, reject) => {
      const waiter: Waiter = { id, done: () => settle(resolve) };
      const onAbort = () => settle(() => reject(signal.reason));
      function settle(how: () => void): void {
        waiters.delete(waiter);
        signal.removeEventListener("abort", onAbort);
        how();
      }
      waiters.add(waiter);
      signal.addEventListener("abort", onAbort, { once: true });
    });
  }

  /**
   * Emits one entry; an entry the channel refuses (written by hand, say) is reported and skipped. False once the
   * channel is closed: the feed stops.
   */
  function emit(target: EventChannel, entry: LogEntry): boolean {
    if (isClosed(target)) {
      stopFeeding();
      return false;
    }
    try {
      target.emit(entry.event);
    } catch (error) {
      if (isClosed(target)) {
        stopFeeding();
        return false;
      }
      report(new Error(`${name}: skipped entry ${entry.id} of ${engine.what}: ${messageOf(error)}`, { cause: error }));
    }
    moveTo(entry.id);
    return true;
  }

  /** The pull feed: read after the position, emit, again; reconnect with backoff; on a gap, disconnect and jump. */
  async function run(target: EventChannel, read: (position: string) => Promise<Batch>): Promise<void> {
    let failures = 0;
    while (feeding) {
      try {
        if (position === undefined) {
          moveTo(await engine.end());
        } else {
          const { entries, gap } = await read(position);
          if (!feeding) return;
          if (gap) {
            // Clients of this instance may have missed entries without a word: each reconnects and resumes, or is told
            // its id is gone. Where the log ends now is read on the next turn.
            report(
              new Error(
                `${name}: the feed of ${engine.what} cannot show it missed nothing after ${position} (trimmed, or lost with a server that restarted); disconnecting its subscribers and reading on from the end`,
              ),
            );
            position = undefined;
            if (isClosed(target)) stopFeeding();
            else target.disconnect();
            continue;
          }
          for (const entry of entries) if (!emit(target, entry)) return;
        }
        failures = 0;
      } catch (error) {
        if (!feeding) return;
        // Once per outage: a server that stays away for a minute must not write a line per attempt.
        if (failures === 0) {
          report(
            new Error(`${name}: the feed of ${engine.what} failed, reconnecting: ${messageOf(error)}`, {
              cause: error,
            }),
          );
        }
        failures += 1;
        await sleep(backoffMs(failures), stopping.signal);
      }
      if (isClosed(target)) stopFeeding();
    }
  }

  /** The entries after `from`, page by page; a page that no longer follows on means the log was trimmed meanwhile. */
  async function* replay(first: LogEntry[], from: string, signal: AbortSignal): AsyncGenerator<ServerSentEvent> {
    let page = first;
    let last = from;
    for (;;) {
      for (const entry of page) {
        if (signal.aborted) return;
        // The feed skipped it too (and said so): an entry the channel would refuse is no event of this log.
        if (isSendable(entry.event)) yield entry.event;
        last = entry.id;
      }
      if (page.length < PAGE) return;
      const next = await retrying(signal, () => engine.after(last, PAGE));
      if (next === null) throw new Error(`${name}: ${engine.what} was trimmed past ${last} during a replay`);
      page = next;
    }
  }

  return {
    feed(given) {
      const target = given as unknown as EventChannel;
      if (closed) fail(`${name}.feed`, "the log is closed; make a new one");
      if (channel !== undefined) fail(`${name}.feed`, "a log feeds one channel, once; make one log per channel");
      const { emit: emitOf, disconnect } = (target ?? {}) as Partial<EventChannel>;
      if (typeof emitOf !== "function" || typeof disconnect !== "function") {
        fail(`${name}.feed`, `channel must be an EventChannel, got ${shown(target)}`);
      }
      feeding = true;
      channel = target;
      if (engine.read === undefined) {
        // Entries are emitted by publish: the feed only needs to know where the log ended when it started.
        engine.end().then(moveTo, (error: unknown) => {
          report(error);
          stopFeeding();
        });
      } else {
        run(target, engine.read.bind(engine)).then(noop, report);
      }
    },

    async publish(input) {
      const record = recordOf(`${name}.publish`, input, serialize);
      const id = await engine.append(record);
      // A log without a read of its own feeds from here: stored first, then emitted, in the order of the ids.
      const target = channel;
      if (engine.read === undefined && feeding && target !== undefined && position !== undefined) {
        if (compare(id, position) > 0) emit(target, { id, event: eventOf(id, record as Record<string, unknown>) });
      }
      return id;
    },

    async after(lastEventId, { signal }) {
      if (typeof lastEventId !== "string" || !engine.isId(lastEventId)) return null;
      const first = await retrying(signal, () => engine.after(lastEventId, PAGE));
      if (first === null) return null;
      // The channel finds the client's id among the live events it holds for it, so the feed must have emitted it.
      await reached(lastEventId, signal);
      return replay(first, lastEventId, signal);
    },

    close() {
      if (closing !== undefined) return closing;
      closed = true;
      stopFeeding();
      stopping.abort();
      // The loop ends at its next step; a read on the user's own reader may block a second longer, which close()
      // need not wait for.
      closing = engine.close();
      return closing;
    },
  };
}
