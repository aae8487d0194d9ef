/**
 * examples/broker/stream-log.js against a real redis-server: the feed (one XREAD BLOCK loop into `emit`) and
 * the history (`after(id)`, an XRANGE that answers null for an id the stream no longer holds, and waits for
 * the feed when the feed is behind the client).
 */
import type { ServerSentEvent as Event } from "eventsource-server";
import { createClient } from "redis";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { parseEntryId, redisStreamLog } from "../../examples/broker/stream-log.js";
import { deferred, settle } from "../helpers.ts";
import { type RedisServer, startRedis } from "../support/redis.ts";
import { within } from "./harness.ts";

type Redis = ReturnType<typeof createClient>;

let redis: RedisServer | undefined;
let commands: Redis | undefined;
let streams = 0;

beforeAll(async () => {
  // Small stream nodes, so MAXLEN ~ trims after a few dozen entries instead of hundreds.
  redis = await startRedis(["--stream-node-max-entries", "10"]);
  commands = createClient({ url: redis.url });
  await commands.connect();
}, 300_000);

afterAll(async () => {
  await commands?.close();
  await redis?.stop();
});

function client(): Redis {
  if (commands === undefined) throw new Error("redis did not start");
  return commands;
}

/** A stream key of its own for each test. */
function freshKey(): string {
  streams += 1;
  return `log-test-${streams}`;
}

/** A log over `key` with its own reader connection; `events` is what it emitted. */
async function openLog(key: string) {
  const reader = client().duplicate();
  await reader.connect();
  const events: Event[] = [];
  let wanted: { count: number; done: () => void } | undefined;
  const log = redisStreamLog({
    commands: client() as never,
    reader: reader as never,
    key,
    emit: (event: Event) => {
      events.push(event);
      if (wanted !== undefined && events.length >= wanted.count) wanted.done();
    },
  });
  return {
    log,
    events,
    /** Resolves once `count` events have been emitted in all. */
    emitted(count: number): Promise<Event[]> {
      if (events.length >= count) return Promise.resolve(events);
      const done = deferred();
      wanted = { count, done: () => done.resolve() };
      return within(
        done.promise.then(() => events),
        5_000,
        `${count} events from the feed`,
      );
    },
  };
}

async function add(key: string, fields: Record<string, string>, maxLength?: number): Promise<string> {
  return maxLength === undefined
    ? client().xAdd(key, "*", fields)
    : client().xAdd(key, "*", fields, { TRIM: { strategy: "MAXLEN", strategyModifier: "~", threshold: maxLength } });
}

/** Everything `after` answered, read to the end. */
async function collect(answer: unknown): Promise<Event[] | null> {
  if (answer === null) return null;
  const events: Event[] = [];
  for await (const event of answer as AsyncIterable<Event>) events.push(event);
  return events;
}

describe("examples/broker stream-log: a Redis Stream as the shared log", () => {
  test("parseEntryId reads <ms>-<seq> ids in the stream's order and nothing else", () => {
    expect(parseEntryId("1700000000000-3")).toEqual([1700000000000n, 3n]);
    for (const text of ["", "42", "1-2-3", "a-1", "1-", "café ☕ 42"]) expect(parseEntryId(text)).toBeUndefined();
  });

  test("the feed emits each entry added after start, in order, its entry id as the event id", async () => {
    const key = freshKey();
    await add(key, { data: "before start" });
    const { log, emitted } = await openLog(key);
    try {
      await log.start();
      const first = await add(key, { data: "plain" });
      const second = await add(key, { event: "note", data: '{"n":1}' });
      expect(await emitted(2)).toEqual([
        { id: first, data: "plain" },
        { id: second, event: "note", data: '{"n":1}' },
      ]);
      expect(log.position).toBe(second);
    } finally {
      await log.stop();
    }
  });

  test("history.after answers every entry after the id, oldest first, across XRANGE pages", async () => {
    const key = freshKey();
    const ids: string[] = [];
    for (let n = 0; n < 1_203; n++) ids.push(await add(key, { data: String(n) }));
    const { log } = await openLog(key);
    try {
      await log.start();
      const replayed = await collect(await log.history.after(ids[1] ?? "", { signal: new AbortController().signal }));
      expect(replayed).toHaveLength(1_201);
      expect(replayed?.map((event) => event.id)).toEqual(ids.slice(2));
      expect(replayed?.at(-1)).toEqual({ id: ids.at(-1), data: "1202" });
      // The newest entry: nothing after it.
      expect(
        await collect(await log.history.after(ids.at(-1) ?? "", { signal: new AbortController().signal })),
      ).toEqual([]);
    } finally {
      await log.stop();
    }
  });

  test("history.after answers null for an id trimmed out of the stream, one never in it, and a text that is no id", async () => {
    const key = freshKey();
    const ids: string[] = [];
    for (let n = 0; n < 60; n++) ids.push(await add(key, { data: String(n) }, 10));
    const [first] = (await client().xRange(key, "-", "+", { COUNT: 1 })) ?? [];
    const trimmed = ids[0] ?? "";
    // MAXLEN ~ 10 dropped the oldest nodes: the first entry left is newer than the first one added.
    expect(first?.id).not.toBe(trimmed);
    const { log } = await openLog(key);
    try {
      await log.start();
      const signal = new AbortController().signal;
      expect(await log.history.after(trimmed, { signal })).toBeNull();
      const [ms] = (ids.at(-1) ?? "").split("-");
      expect(await log.history.after(`${ms}-999999`, { signal })).toBeNull();
      expect(await log.history.after("not-an-id", { signal })).toBeNull();
      // The first entry the stream still holds is history: everything after it comes back.
      expect(await collect(await log.history.after(first?.id ?? "", { signal }))).toHaveLength(
        ids.length - 1 - ids.indexOf(first?.id ?? ""),
      );
    } finally {
      await log.stop();
    }
  });

  test("history.after waits until this instance's feed has reached the client's id", async () => {
    const key = freshKey();
    const older = await add(key, { data: "older" });
    const newest = await add(key, { data: "newest" });
    // A feed that has not started (an instance just restarting) is behind every entry of the stream.
    const { log } = await openLog(key);
    try {
      let answered = false;
      const answer = Promise.resolve(log.history.after(newest, { signal: new AbortController().signal })).then(
        (value) => {
          answered = true;
          return value;
        },
      );
      await settle();
      expect(answered).toBe(false);
      await log.start();
      expect(await collect(await within(answer, 5_000, "after() once the feed reached the id"))).toEqual([]);
      // An id the feed has already passed is answered at once.
      expect(await collect(await log.history.after(older, { signal: new AbortController().signal }))).toEqual([
        { id: newest, data: "newest" },
      ]);
    } finally {
      await log.stop();
    }
  });

  test("a history request waiting for the feed ends when its signal aborts", async () => {
    const key = freshKey();
    const id = await add(key, { data: "one" });
    const { log } = await openLog(key);
    try {
      const leaving = new AbortController();
      const answer = Promise.resolve(log.history.after(id, { signal: leaving.signal }));
      leaving.abort(new Error("the client left"));
      await expect(answer).rejects.toThrowError("the client left");
    } finally {
      await log.stop();
    }
  });

  test("stop ends a feed blocked in XREAD", async () => {
    const { log } = await openLog(freshKey());
    await log.start();
    await within(log.stop(), 3_000, "the feed to stop");
  });
});
