// @ts-check
/**
 * A Redis Stream as the shared, ordered log behind every instance's `EventChannel`:
 *
 * - the feed: ONE `XREAD BLOCK` loop per instance, on a connection of its own, passing each entry to `emit`
 *   with the entry id as the event id;
 * - the history: `after(id)` is an `XRANGE` after that id, `null` when the stream no longer holds it (trimmed by
 *   `MAXLEN ~`, or never in it), and it waits, when this instance's feed has not reached that id yet (just
 *   restarted, or lagging), until it has. The channel relies on that wait: the client's own id must show up
 *   among the live events it holds for that client, or it could not tell which of them the client already has.
 *
 * An entry's fields are `data` (the event's data, as text) and, optionally, `event` (its type).
 */

/** Entries read per `XRANGE` page while replaying, and per `XREAD` while feeding. */
const PAGE = 500;
/** How long one `XREAD` blocks before it asks again (and notices a stop). */
const BLOCK_MS = 2_000;
/** A history request waits at most this long for the feed to reach its id; then the client is told to reload. */
const FEED_WAIT_MS = 10_000;

/**
 * A stream entry id, `<ms>-<seq>`, as two numbers that compare in the stream's order; `undefined` for
 * anything else (an id from elsewhere, or garbage sent as `Last-Event-ID`).
 *
 * @param {string} id
 * @returns {[bigint, bigint] | undefined}
 */
export function parseEntryId(id) {
  const match = /^(\d{1,20})-(\d{1,20})$/.exec(id);
  if (match === null) return undefined;
  return [BigInt(match[1] ?? "0"), BigInt(match[2] ?? "0")];
}

/**
 * Negative, zero or positive as entry id `a` comes before, is, or comes after `b`.
 *
 * @param {[bigint, bigint]} a
 * @param {[bigint, bigint]} b
 */
function compare(a, b) {
  if (a[0] !== b[0]) return a[0] < b[0] ? -1 : 1;
  return a[1] === b[1] ? 0 : a[1] < b[1] ? -1 : 1;
}

/**
 * One stream entry as the event it stands for.
 *
 * @param {{ id: string, message: Record<string, string> }} entry
 * @returns {import("eventsource-server").ServerSentEvent}
 */
export function eventOf({ id, message }) {
  const { event, data = "" } = message;
  return event === undefined ? { id, data } : { id, event, data };
}

/**
 * @typedef {{ id: string, message: Record<string, string> }} Entry
 * @typedef {object} StreamCommands The commands the history runs (a node-redis client has them).
 * @property {(key: string, start: string, end: string, options: { COUNT: number }) => Promise<Entry[] | null>} xRange
 * @property {(key: string, end: string, start: string, options: { COUNT: number }) => Promise<Entry[] | null>} xRevRange
 * @typedef {object} StreamReader The connection the feed blocks on (a node-redis client of its own).
 * @property {(stream: { key: string, id: string }, options: { BLOCK: number, COUNT: number }) => Promise<{ messages: Entry[] }[] | null>} xRead
 * @property {() => void} destroy
 */

/**
 * The log of one Redis Stream: its feed into `emit`, and its history for `new EventChannel({ history })`.
 *
 * @param {{ commands: StreamCommands, reader: StreamReader, key: string, emit: (event: import("eventsource-server").ServerSentEvent) => void }} options
 *   `commands` runs `XRANGE`; `reader` is a connection used only for the blocking `XREAD` (a connection that
 *   blocks can run nothing else); `emit` receives every entry, in order, from the one the stream ends with
 *   when `start()` is called.
 */
export function redisStreamLog({ commands, reader, key, emit }) {
  /** The id of the last entry passed to `emit` (or the stream's last entry when the feed started). */
  let position = /** @type {[bigint, bigint]} */ ([0n, 0n]);
  let positionText = "0-0";
  /** @type {Set<{ id: [bigint, bigint], resolve: () => void }>} History requests waiting for the feed. */
  const waiters = new Set();
  let stopped = false;
  /** @type {Promise<void> | undefined} */
  let loop;

  /** @param {Entry} entry */
  function advance(entry) {
    try {
      emit(eventOf(entry));
    } catch (error) {
      // A malformed entry is the publisher's bug: report it and keep serving the others.
      console.error(error);
    }
    moveTo(entry.id);
  }

  /**
   * Records that the feed has reached the entry with this id, and wakes the history requests waiting for it.
   *
   * @param {string} text
   */
  function moveTo(text) {
    position = parseEntryId(text) ?? position;
    positionText = text;
    for (const waiter of waiters) {
      if (compare(waiter.id, position) <= 0) {
        waiters.delete(waiter);
        waiter.resolve();
      }
    }
  }

  async function feed() {
    while (!stopped) {
      let reply;
      try {
        reply = await reader.xRead({ key, id: positionText }, { BLOCK: BLOCK_MS, COUNT: PAGE });
      } catch (error) {
        if (stopped) return;
        // The reader reconnects by itself; reading again from `position` loses nothing the stream still holds.
        console.error(`broker: XREAD ${key} failed: ${error instanceof Error ? error.message : error}`);
        await new Promise((resolve) => setTimeout(resolve, 500));
        continue;
      }
      for (const stream of reply ?? []) for (const entry of stream.messages) advance(entry);
    }
  }

  /**
   * Resolves once the feed has emitted the entry with this id (or a later one); rejects when `signal` aborts
   * or after FEED_WAIT_MS.
   *
   * @param {[bigint, bigint]} id
   * @param {string} text
   * @param {AbortSignal} signal
   */
  function reached(id, text, signal) {
    if (compare(id, position) <= 0) return Promise.resolve();
    if (signal.aborted) return Promise.reject(signal.reason);
    return new Promise((resolve, reject) => {
      const waiter = { id, resolve: () => done(() => resolve(undefined)) };
      const timer = setTimeout(
        () => done(() => reject(new Error(`broker: the feed did not reach ${text} within ${FEED_WAIT_MS} ms`))),
        FEED_WAIT_MS,
      );
      const onAbort = () => done(() => reject(signal.reason));
      /** @param {() => void} settle */
      function done(settle) {
        waiters.delete(waiter);
        clearTimeout(timer);
        signal.removeEventListener("abort", onAbort);
        settle();
      }
      waiters.add(waiter);
      signal.addEventListener("abort", onAbort, { once: true });
    });
  }

  /**
   * The entries after `from`, page by page, from a first page already read. A page that no longer starts
   * with the last entry replayed means the stream was trimmed past it meanwhile: that is a failure (the
   * channel then tells the client to reload), never a silent gap.
   *
   * @param {Entry[]} first entries after `from`
   * @param {string} from
   * @param {AbortSignal} signal
   */
  async function* replay(first, from, signal) {
    let page = first;
    let last = from;
    for (;;) {
      for (const entry of page) {
        if (signal.aborted) return;
        yield eventOf(entry);
        last = entry.id;
      }
      if (page.length < PAGE) return;
      const next = (await commands.xRange(key, last, "+", { COUNT: PAGE + 1 })) ?? [];
      if (next[0]?.id !== last) throw new Error(`broker: ${key} was trimmed past ${last} during a replay`);
      page = next.slice(1);
    }
  }

  /** @type {import("eventsource-server").EventHistory} */
  const history = {
    async after(lastEventId, { signal }) {
      const id = parseEntryId(lastEventId);
      if (id === undefined) return null;
      // Inclusive, so the first entry says whether the stream still holds the client's id: an id older than
      // the first entry was trimmed away, and XRANGE alone would answer from the first entry, hiding the gap.
      const page = (await commands.xRange(key, lastEventId, "+", { COUNT: PAGE + 1 })) ?? [];
      if (page[0]?.id !== lastEventId) return null;
      await reached(id, lastEventId, signal);
      return replay(page.slice(1), lastEventId, signal);
    },
  };

  return {
    history,
    /** The id of the last entry emitted, or the stream's last entry when the feed started. */
    get position() {
      return positionText;
    },
    /** Starts the feed after the stream's current last entry; resolves once that position is known. */
    async start() {
      const [last] = (await commands.xRevRange(key, "+", "-", { COUNT: 1 })) ?? [];
      if (last !== undefined) moveTo(last.id);
      loop = feed();
    },
    /** Ends the feed and closes `reader`, which belongs to it: a blocked `XREAD` rejects, and the loop ends. */
    async stop() {
      stopped = true;
      reader.destroy();
      await loop;
    },
  };
}
