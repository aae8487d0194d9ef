/**
 * A PostgreSQL table as the shared log: one row per event, its `bigint` id the event id. Publishes to one topic take a
 * transaction-level advisory lock on it, so their ids commit in order and a feed that reads `id > position` never skips
 * a slower transaction's row; `NOTIFY` only wakes the feed, which reads every second while it has no `LISTEN`
 * connection, so a lost notification loses nothing. The pool is the user's own node-postgres `Pool` (or anything with
 * its `query()` and `connect()`). See docs/scaling.md.
 * @module
 */
import { checkKeys, fail, noop, report, shown } from "../errors.ts";
import { type Serialize, serializerOf } from "../options.ts";
import type { EventLog } from "../types.ts";
import { type Batch, backoffMs, eventOf, type LogEngine, type LogEntry, PAGE, sharedLog, sleep } from "./feed.ts";

/** What a query resolves with: its rows. */
export interface PostgresResult {
  rows: unknown[];
}

/** A notification, as node-postgres gives it. */
export interface PostgresNotification {
  channel: string;
  payload?: string | undefined;
}

/** A connection that `LISTEN`s: a node-postgres `Client`. */
export interface PostgresListener {
  query(text: string, values?: unknown[]): Promise<PostgresResult>;
  on(event: "notification", listener: (message: PostgresNotification) => void): unknown;
  on(event: "end", listener: () => void): unknown;
  on(event: "error", listener: (error: Error) => void): unknown;
  removeListener(event: "notification", listener: (message: PostgresNotification) => void): unknown;
  removeListener(event: "end", listener: () => void): unknown;
  removeListener(event: "error", listener: (error: Error) => void): unknown;
}

/** A connection of the pool's: a node-postgres `PoolClient`. */
export interface PostgresPoolClient extends PostgresListener {
  /** Returns it to the pool; with `true` or an error, closes it instead. */
  release(destroy?: boolean | Error): void;
}

/** A node-postgres `Pool`, or anything with its `query()` and `connect()`. */
export interface PostgresPool {
  query(text: string, values?: unknown[]): Promise<PostgresResult>;
  connect(): Promise<PostgresPoolClient>;
}

/** The options of `postgresLog`. */
export interface PostgresLogOptions {
  /** Runs every query; `feed` takes one connection of it for `LISTEN` when `listener` is absent or lost. */
  pool: PostgresPool;
  /** A connected client used only for the feed's `LISTEN`; closing it stays yours. */
  listener?: PostgresListener | undefined;
  /** The table, made by `setup()`; a name, or `schema.name`. @default "eventsource_events" */
  table?: string | undefined;
  /** The topic in the table: one log, one ordered sequence of ids. */
  topic: string;
  /** Rows of the topic that `publish` keeps, deleting older ones in batches; so how far back a client can resume. @default 10000 */
  keep?: number | undefined;
  /** Turns non-string `data` into text, once, when publishing. @default JSON.stringify */
  serialize?: ((data: unknown) => string) | undefined;
}

/** The log of `postgresLog`: an `EventLog`, and `setup()`. */
export interface PostgresLog extends EventLog {
  /** Creates the table and its index (the primary key, topic then id) when missing; safe from many instances at once. */
  setup(): Promise<void>;
}

const KEYS = ["pool", "listener", "table", "topic", "keep", "serialize"];
const TABLE = /^[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)?$/;
/** Where a feed stands on a topic that had no row when it started: before every id. */
const START = "0";
const ID = /^[1-9]\d{0,18}$/;
const MAX_ID = 2n ** 63n - 1n;
/** How often the feed reads while no `LISTEN` connection is up. */
const POLL_MS = 1_000;
/** With `LISTEN` up, the feed still reads this often: a notification is never the only way an event arrives. */
const LISTENING_POLL_MS = 30_000;
/** Rows one trimming `DELETE` removes at most. */
const TRIM_BATCH = 1_000;
/** A notification's payload is at most 8,000 bytes; a topic longer than this is sent as "", which wakes every feed. */
const MAX_PAYLOAD_CHARS = 1_000;

const isId = (id: string) => ID.test(id) && BigInt(id) <= MAX_ID;

function compare(a: string, b: string): number {
  const [x, y] = [BigInt(a), BigInt(b)];
  return x === y ? 0 : x < y ? -1 : 1;
}

/**
 * A PostgreSQL table as a shared `EventLog`, one topic of it: `publish` is one `INSERT` under an advisory lock on the
 * topic, the feed reads `id > position` when `NOTIFY` wakes it (or every second without `LISTEN`), `after` reads the
 * rows after an id. Call `setup()` once to create the table. Throws a `TypeError` for an invalid option. See
 * docs/scaling.md.
 * @example A server on node:http, any number of instances, one PostgreSQL (run by test/logs/recipes.test.ts)
 * ```js ignore
 * import { createServer } from "node:http";
 * import { EventChannel } from "eventsource-server";
 * import { toNodeHandler } from "eventsource-server/node";
 * import { postgresLog } from "eventsource-server/postgres";
 * import pg from "pg";
 *
 * const pool = new pg.Pool({ connectionString: process.env.DATABASE_URL }).on("error", console.error);
 * const log = postgresLog({ pool, topic: "events" });
 * await log.setup();
 * const channel = new EventChannel({ history: log, onHistoryLost: () => ({ event: "reset" }) });
 * log.feed(channel);
 *
 * const handler = async (request) =>
 *   request.method === "POST" ? Response.json({ id: await log.publish(await request.text()) }) : channel.response(request);
 * createServer(toNodeHandler(handler)).listen(8787);
 * ```
 */
export function postgresLog(options: PostgresLogOptions): PostgresLog {
  const where = "postgresLog";
  if (options === null || typeof options !== "object") fail(where, `options must be an object, got ${shown(options)}`);
  checkKeys(where, "options", options, KEYS);
  const { pool, listener, table = "eventsource_events", topic, keep = 10_000 } = options;
  if (typeof pool?.query !== "function" || typeof pool.connect !== "function") {
    fail(where, `options.pool must be a pg Pool (with query() and connect()), got ${shown(pool)}`);
  }
  if (listener !== undefined && (typeof listener?.query !== "function" || typeof listener.on !== "function")) {
    fail(where, `options.listener must be a connected pg Client, got ${shown(listener)}`);
  }
  if (typeof table !== "string" || !TABLE.test(table) || table.length > 63) {
    fail(
      where,
      `options.table must be a table name (letters, digits, _, an optional schema.), at most 63 characters, got ${shown(table)}`,
    );
  }
  if (typeof topic !== "string" || topic === "" || topic.includes("\0")) {
    fail(where, `options.topic must be a non-empty string without NUL, got ${shown(topic)}`);
  }
  if (!(Number.isSafeInteger(keep) && keep > 0))
    fail(where, `options.keep must be a positive safe integer, got ${shown(keep)}`);
  const serialize: Serialize = serializerOf(where, { serialize: options.serialize });

  // LISTEN and pg_notify take the name as it is: the lower case an unquoted table name folds to.
  const channelName = table.toLowerCase();
  const payload = topic.length <= MAX_PAYLOAD_CHARS ? topic : "";
  const lockKey = `${channelName} ${topic}`;
  // The lock is held to the end of the statement's own transaction, so the next publish to the topic takes its id
  // only once this one has committed: ids commit in order. OFFSET 0 keeps the planner from folding the lock away.
  const insert = `insert into ${table} (topic, event) select $1, $2::json from (select pg_advisory_xact_lock(hashtextextended($3, 0)) offset 0) as turn returning id::text as id, pg_notify($4, $5)`;
  const trim = `delete from ${table} where topic = $1 and id in (select id from ${table} where topic = $1 and id <= (select id from ${table} where topic = $1 order by id desc offset $2 limit 1) order by id limit $3)`;
  // As text: a client set to parse bigint into a number would round ids past 2 ** 53. Named apart from `id`, or ORDER BY
  // would sort by the text.
  const page = `select id::text as position, event::text as event from ${table} where topic = $1 and id >= $2 order by id limit $3`;
  // The same read, named for pg_stat_activity: the feed's.
  const next = `select /* eventsource-server feed */ ${page.slice("select ".length)}`;
  // Trimming walks the newest `keep` ids each time: once every hundredth of `keep` publishes is enough.
  const trimEvery = Math.max(1, Math.floor(keep / 100));
  let published = 0;

  // The feed's LISTEN connection, while one is up.
  let listening: { detach(): void; client: PostgresListener; own: boolean } | undefined;
  let connecting = false;
  let listenerLost = false;
  let closed = false;
  const stopping = new AbortController();
  // Set by a notification; the feed clears it before each read, so one that arrives during the read is not missed.
  let woken = false;
  let wake: () => void = noop;

  function wakeUp(): void {
    woken = true;
    wake();
  }

  function entriesOf(rows: unknown[]): LogEntry[] {
    return rows.map((row) => {
      const { position, event } = row as { position: string; event: string };
      return { id: position, event: eventOf(position, JSON.parse(event) as Record<string, unknown>) };
    });
  }

  /** LISTENs on `client`; resolves once it does, after which a lost connection is noticed and replaced. */
  async function subscribe(client: PostgresListener, own: boolean): Promise<void> {
    let gone = false;
    const onNotification = (message: PostgresNotification) => {
      if (message.channel === channelName && (message.payload === topic || message.payload === "")) wakeUp();
    };
    const lost = () => {
      if (gone) return;
      gone = true;
      detach();
      if (listening?.client === client) listening = undefined;
      if (own) (client as PostgresPoolClient).release(true);
      else listenerLost = true;
      wakeUp();
      startListening();
    };
    const detach = () => {
      client.removeListener("notification", onNotification);
      client.removeListener("end", lost);
      client.removeListener("error", lost);
    };
    client.on("notification", onNotification);
    client.on("end", lost);
    // A pool's client with no "error" listener throws the error; the user's listener keeps the listeners it has.
    if (own) client.on("error", lost);
    try {
      await client.query(`LISTEN "${channelName}"`);
    } catch (error) {
      lost();
      throw error;
    }
    if (gone) return;
    if (closed) {
      detach();
      await unlisten(client, own);
      return;
    }
    listening = { detach, client, own };
    // Rows committed before LISTEN was up sent their notifications to nobody: read them now.
    wakeUp();
  }

  /** Keeps trying to have a LISTEN connection, with backoff, until one is up or the log is closed. */
  function startListening(): void {
    if (listening !== undefined || connecting || closed) return;
    connecting = true;
    void (async () => {
      for (let attempt = 1; listening === undefined && !closed; attempt++) {
        try {
          if (listener !== undefined && !listenerLost) await subscribe(listener, false);
          else await subscribe(await pool.connect(), true);
        } catch {
          await sleep(backoffMs(attempt), stopping.signal);
        }
      }
    })().finally(() => {
      connecting = false;
    });
  }

  /** Ends a LISTEN: the pool's connection goes back to it clean (or closed, if that fails); the user's stays open. */
  async function unlisten(client: PostgresListener, own: boolean): Promise<void> {
    try {
      await client.query(`UNLISTEN "${channelName}"`);
      if (own) (client as PostgresPoolClient).release();
    } catch (error) {
      if (own) (client as PostgresPoolClient).release(error instanceof Error ? error : true);
    }
  }

  /** Resolves at the next notification, or after `ms`, or when the log closes. */
  function nap(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const timer = setTimeout(done, ms);
      wake = done;
      stopping.signal.addEventListener("abort", done, { once: true });
      function done(): void {
        clearTimeout(timer);
        wake = noop;
        stopping.signal.removeEventListener("abort", done);
        resolve();
      }
    });
  }

  const engine: LogEngine = {
    name: where,
    what: `topic ${shown(topic)} of ${table}`,
    isId,
    compare,
    async append(record) {
      const { rows } = await pool.query(insert, [topic, JSON.stringify(record), lockKey, channelName, payload]);
      const id = (rows[0] as { id?: unknown } | undefined)?.id;
      if (typeof id !== "string") throw new Error(`${where}: the INSERT into ${table} returned no id`);
      // The row is committed: a failed trim is reported, never a failed publish.
      if (published++ % trimEvery === 0) {
        await pool.query(trim, [topic, keep, TRIM_BATCH]).then(noop, report);
      }
      return id;
    },
    async end() {
      const { rows } = await pool.query(`select coalesce(max(id), 0)::text as id from ${table} where topic = $1`, [
        topic,
      ]);
      return (rows[0] as { id: string }).id;
    },
    async after(id, count) {
      // Inclusive: the first row says whether the topic still holds the client's id.
      const { rows } = await pool.query(page, [topic, id, count + 1]);
      const entries = entriesOf(rows);
      return entries[0]?.id === id ? entries.slice(1) : null;
    },
    async read(position): Promise<Batch> {
      startListening();
      woken = false;
      const { rows } = await pool.query(next, [topic, position, PAGE + 1]);
      let entries = entriesOf(rows);
      let proven = true;
      if (position === START) {
        // No row to check: the topic was never trimmed while it holds fewer than `keep` rows.
        if (entries.length > 0) {
          const counted = await pool.query(
            `select count(*)::int as n from (select 1 from ${table} where topic = $1 limit $2) as kept`,
            [topic, keep],
          );
          proven = (counted.rows[0] as { n: number }).n < keep;
        }
      } else if (entries.length > 0) {
        // Rows are trimmed oldest first, and read here in one snapshot: the row at the position proves that every
        // row after it is there too.
        proven = entries[0]?.id === position;
        if (proven) entries = entries.slice(1);
      }
      if (entries.length === 0 && !woken) await nap(listening === undefined ? POLL_MS : LISTENING_POLL_MS);
      return { entries, gap: !proven };
    },
    async close() {
      closed = true;
      stopping.abort();
      const current = listening;
      listening = undefined;
      if (current !== undefined) {
        current.detach();
        await unlisten(current.client, current.own);
      }
    },
  };
  const log = sharedLog(engine, serialize);
  return {
    ...log,
    async setup() {
      const client = await pool.connect();
      try {
        await client.query("begin");
        // Instances that start together would race to create the same table: one at a time.
        await client.query("select pg_advisory_xact_lock(hashtextextended($1, 0))", [`${channelName} setup`]);
        await client.query(
          `create table if not exists ${table} (topic text not null, id bigint generated always as identity, event json not null, primary key (topic, id))`,
        );
        await client.query("commit");
        client.release();
      } catch (error) {
        await client.query("rollback").catch(noop);
        client.release(error instanceof Error ? error : true);
        throw error;
      }
    },
  };
}
