/**
 * A Redis Stream as the shared log: `XADD … MAXLEN ~` to publish, one `XREAD BLOCK` loop per instance on a connection
 * of its own to feed, `XRANGE` to replay. Entry ids (`1764650000000-0`) are the event ids. The client is the user's
 * own, typed by the few methods called on it: node-redis 4 or later (`sendCommand`), ioredis 5 or later (`call`), or
 * Bun's `RedisClient` (`send`). See docs/scaling.md.
 * @module
 */
import { checkKeys, fail, noop, shown } from "../errors.ts";
import { type Serialize, serializerOf } from "../options.ts";
import type { EventLog } from "../types.ts";
import { type Batch, eventOf, type LogEngine, type LogEntry, type LogRecord, PAGE, sharedLog } from "./feed.ts";

/** A node-redis client (4 or later): the log sends raw commands with `sendCommand`. */
export interface NodeRedisClient {
  sendCommand(args: string[]): Promise<unknown>;
  duplicate(): unknown;
}

/** An ioredis client (5 or later): the log sends raw commands with `call`. */
export interface IoRedisClient {
  call(command: string, ...args: string[]): Promise<unknown>;
  duplicate(): unknown;
}

/** Bun's built-in `RedisClient`: the log sends raw commands with `send`. */
export interface BunRedisClient {
  send(command: string, args: string[]): Promise<unknown>;
  duplicate(): unknown;
}

/** A connected Redis client of one of the libraries the log knows. */
export type RedisClient = NodeRedisClient | IoRedisClient | BunRedisClient;

/** The options of `redisStreamLog`. */
export interface RedisStreamLogOptions {
  /** A connected client; publishing and replaying use it. Closing it stays yours. */
  client: RedisClient;
  /** The stream's key. */
  key: string;
  /** `XADD … MAXLEN ~ maxLength`: about how many entries the stream keeps, so how far back a client can resume. @default 10000 */
  maxLength?: number | undefined;
  /**
   * A connected client used only for the feed's blocking `XREAD` (a blocked connection can run nothing else); closing
   * it stays yours. @default client.duplicate(), connected by the feed and closed by `close()`
   */
  reader?: RedisClient | undefined;
  /** Turns non-string `data` into text, once, when publishing. @default JSON.stringify */
  serialize?: ((data: unknown) => string) | undefined;
}

const KEYS = ["client", "key", "maxLength", "reader", "serialize"];
/** How long one `XREAD` blocks before it is sent again. */
const BLOCK_MS = 1_000;
/** Where a feed stands on a stream that had no entry when it started: before every id Redis gives. */
const START = "0-0";

type Send = (args: string[]) => Promise<unknown>;

/** The function that sends one raw command on `client`, or `undefined` when it is no client the log knows. */
function senderOf(client: unknown): Send | undefined {
  const { call, sendCommand, send } = (client ?? {}) as Partial<IoRedisClient & NodeRedisClient & BunRedisClient>;
  // ioredis first: it has a sendCommand too, which takes a Command object.
  if (typeof call === "function") return ([command = "", ...args]) => call.call(client, command, ...args);
  if (typeof sendCommand === "function") return (args) => sendCommand.call(client, args);
  if (typeof send === "function") return ([command = "", ...args]) => send.call(client, command, args);
  return undefined;
}

/** The methods of a client that the log calls when it opened the client itself. */
interface OwnClient {
  on?(event: string, listener: (error: unknown) => void): unknown;
  connect?(): Promise<unknown>;
  isOpen?: boolean;
  status?: string;
  destroy?(): unknown;
  disconnect?(): unknown;
  close?(): unknown;
}

/** A reader of the log's own making (`client.duplicate()`), connected. */
async function duplicateOf(client: RedisClient, opened: (own: OwnClient) => void): Promise<Send> {
  const own = (await client.duplicate()) as OwnClient;
  opened(own);
  // node-redis and ioredis emit "error" while they reconnect, and an EventEmitter with no listener throws it: the feed
  // reports a failure itself, once per outage.
  own.on?.("error", noop);
  // node-redis makes it closed; ioredis connects it at once, unless the client was made with lazyConnect.
  if (own.isOpen === false || own.status === "wait") await own.connect?.();
  const send = senderOf(own);
  if (send === undefined) throw new TypeError("redisStreamLog: client.duplicate() returned no client the log knows");
  return send;
}

/** Closes a client the log opened, at once: a blocked `XREAD` on it rejects. */
function closeOwn(own: OwnClient): void {
  try {
    if (typeof own.destroy === "function") own.destroy();
    else if (typeof own.disconnect === "function") own.disconnect();
    else own.close?.();
  } catch {
    // Already closed, or never connected: either way nothing is left open.
  }
}

const ENTRY_ID = /^(\d{1,20})-(\d{1,20})$/;

/** An entry id as two numbers that compare in the stream's order; `undefined` for anything else. */
function parseId(id: string): [bigint, bigint] | undefined {
  const match = ENTRY_ID.exec(id);
  if (match === null) return undefined;
  const parts: [bigint, bigint] = [BigInt(match[1] as string), BigInt(match[2] as string)];
  // Redis ids are two unsigned 64-bit numbers.
  return parts[0] < 2n ** 64n && parts[1] < 2n ** 64n ? parts : undefined;
}

function compare(a: string, b: string): number {
  const [x, y] = [parseId(a), parseId(b)];
  if (x === undefined || y === undefined) return a < b ? -1 : a > b ? 1 : 0;
  if (x[0] !== y[0]) return x[0] < y[0] ? -1 : 1;
  return x[1] === y[1] ? 0 : x[1] < y[1] ? -1 : 1;
}

const decoder = new TextDecoder();

/** A reply's string (a client set to return buffers gives bytes). */
function textOf(value: unknown): string {
  if (typeof value === "string") return value;
  if (value instanceof Uint8Array) return decoder.decode(value);
  return String(value);
}

/** An entry's fields: a flat array of names and values (RESP2), or a map of them (RESP3, Bun). */
function fieldsOf(raw: unknown): Record<string, string> {
  const fields: Record<string, string> = {};
  if (Array.isArray(raw)) {
    for (let i = 0; i + 1 < raw.length; i += 2) fields[textOf(raw[i])] = textOf(raw[i + 1]);
  } else if (raw instanceof Map) {
    for (const [name, value] of raw) fields[textOf(name)] = textOf(value);
  } else if (raw !== null && typeof raw === "object") {
    for (const [name, value] of Object.entries(raw)) fields[name] = textOf(value);
  }
  return fields;
}

/** The entries of an `XRANGE` or `XREVRANGE` reply: `[id, fields]` pairs, or node-redis's `{ id, message }`. */
function entriesOf(reply: unknown): LogEntry[] {
  if (!Array.isArray(reply)) return [];
  return reply.map((raw: unknown) => {
    const [id, fields] = Array.isArray(raw)
      ? raw
      : [(raw as { id?: unknown }).id, (raw as { message?: unknown }).message];
    const text = textOf(id);
    return { id: text, event: eventOf(text, fieldsOf(fields)) };
  });
}

/** The entries of an `XREAD` reply on one key: `null`, `[[key, entries]]` (RESP2), or a map from key to entries. */
function entriesOfRead(reply: unknown): LogEntry[] {
  if (reply === null || reply === undefined) return [];
  if (Array.isArray(reply)) {
    const [first] = reply as unknown[];
    if (Array.isArray(first)) return entriesOf(first[1]);
    // node-redis's parsed shape: [{ name, messages }].
    return entriesOf((first as { messages?: unknown } | undefined)?.messages);
  }
  if (reply instanceof Map) return entriesOf([...reply.values()][0]);
  if (typeof reply === "object") return entriesOf(Object.values(reply)[0]);
  return [];
}

/** The fields an entry is written with. Redis wants at least one, so an event with none gets an empty `empty`. */
function fieldsOfRecord(record: LogRecord): string[] {
  const fields: string[] = [];
  if (record.event !== undefined) fields.push("event", record.event);
  if (record.data !== undefined) fields.push("data", record.data);
  if (record.retry !== undefined) fields.push("retry", String(record.retry));
  if (record.comment !== undefined) fields.push("comment", record.comment);
  return fields.length > 0 ? fields : ["empty", ""];
}

/**
 * A Redis Stream as a shared `EventLog`: `publish` is an `XADD … MAXLEN ~`, the feed one `XREAD BLOCK` loop on a
 * connection of its own, `after` an `XRANGE`. Throws a `TypeError` for an invalid option. See docs/scaling.md.
 * @example A server on node:http, any number of instances, one Redis (run by test/logs/recipes.test.ts)
 * ```js ignore
 * import { createServer } from "node:http";
 * import { EventChannel } from "eventsource-server";
 * import { toNodeHandler } from "eventsource-server/node";
 * import { redisStreamLog } from "eventsource-server/redis";
 * import { createClient } from "redis";
 *
 * const client = await createClient({ url: process.env.REDIS_URL }).connect();
 * const log = redisStreamLog({ client, key: "events" });
 * const channel = new EventChannel({ history: log, onHistoryLost: () => ({ event: "reset" }) });
 * log.feed(channel);
 *
 * const handler = async (request) =>
 *   request.method === "POST" ? Response.json({ id: await log.publish(await request.text()) }) : channel.response(request);
 * createServer(toNodeHandler(handler)).listen(8787);
 * ```
 */
export function redisStreamLog(options: RedisStreamLogOptions): EventLog {
  const where = "redisStreamLog";
  if (options === null || typeof options !== "object") fail(where, `options must be an object, got ${shown(options)}`);
  checkKeys(where, "options", options, KEYS);
  const { client, key, maxLength = 10_000, reader } = options;
  const send = senderOf(client);
  if (send === undefined) {
    fail(where, `options.client must be a node-redis, ioredis or Bun Redis client, got ${shown(client)}`);
  }
  if (typeof client.duplicate !== "function" && reader === undefined) {
    fail(where, "options.client has no duplicate(); pass options.reader, a connection of its own for the feed");
  }
  if (typeof key !== "string" || key === "") fail(where, `options.key must be a non-empty string, got ${shown(key)}`);
  if (!(Number.isSafeInteger(maxLength) && maxLength > 0)) {
    fail(where, `options.maxLength must be a positive safe integer, got ${shown(maxLength)}`);
  }
  const readerSend = reader === undefined ? undefined : senderOf(reader);
  if (reader !== undefined && readerSend === undefined) {
    fail(where, `options.reader must be a node-redis, ioredis or Bun Redis client, got ${shown(reader)}`);
  }
  const serialize: Serialize = serializerOf(where, { serialize: options.serialize });

  // The feed's connection: the user's reader, or a duplicate made when the feed first reads.
  let feedSend: Promise<Send> | undefined;
  let own: OwnClient | undefined;
  let closed = false;

  function feedConnection(): Promise<Send> {
    if (readerSend !== undefined) return Promise.resolve(readerSend);
    if (feedSend === undefined) {
      const made = duplicateOf(client, (opened) => {
        own = opened;
        if (closed) closeOwn(opened);
      });
      feedSend = made;
      // A duplicate that could not connect is closed, and the next read makes another.
      made.catch(() => {
        if (own !== undefined) closeOwn(own);
        own = undefined;
        feedSend = undefined;
      });
    }
    return feedSend;
  }

  const engine: LogEngine = {
    name: where,
    what: `stream ${shown(key)}`,
    isId: (id) => parseId(id) !== undefined,
    compare,
    async append(record) {
      return textOf(await send(["XADD", key, "MAXLEN", "~", String(maxLength), "*", ...fieldsOfRecord(record)]));
    },
    async end() {
      return entriesOf(await send(["XREVRANGE", key, "+", "-", "COUNT", "1"]))[0]?.id ?? START;
    },
    async after(id, count) {
      // Inclusive, so the first entry says whether the stream still holds the client's id: XRANGE alone would answer
      // from the first entry after a trimmed id, hiding the gap.
      const page = entriesOf(await send(["XRANGE", key, id, "+", "COUNT", String(count + 1)]));
      return page[0]?.id === id ? page.slice(1) : null;
    },
    async read(position): Promise<Batch> {
      const feed = await feedConnection();
      const args = ["XREAD", "COUNT", String(PAGE), "BLOCK", String(BLOCK_MS), "STREAMS", key, position];
      const entries = entriesOfRead(await feed(args));
      if (entries.length === 0) return { entries, gap: false };
      // Trimming removes the oldest entries only, so the entry at the position, still there after the read, proves
      // that nothing between it and what was read is gone. A stream that had no entry when the feed started has none
      // to check: it was never trimmed while it holds fewer than maxLength (MAXLEN ~ trims down to at least that).
      const proven =
        position === START
          ? Number(await feed(["XLEN", key])) < maxLength
          : entriesOf(await feed(["XRANGE", key, position, position])).length === 1;
      return { entries, gap: !proven };
    },
    async close() {
      closed = true;
      if (own !== undefined) closeOwn(own);
    },
  };
  return sharedLog(engine, serialize);
}
