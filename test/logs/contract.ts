/**
 * The contract every shared log keeps (API.md, "Shared logs"), one test per sentence, run by each engine's test file
 * against its real server: test/logs/redis.test.ts (node-redis and ioredis), test/logs/postgres.test.ts. What only one
 * engine does is tested in its own file.
 */
import type { EventLog, ServerSentEvent } from "eventsource-server";
import { EventChannel } from "eventsource-server";
import { afterEach, describe, expect, test, vi } from "vitest";
import { deferred, parseWire, readerOf } from "../helpers.ts";
import { within } from "../runtime/harness.ts";

/**
 * A door the feed's reads come back through: while it is shut, what a read returned waits there, so the feed stays
 * where it is. How a test makes one instance's feed lag behind the log.
 */
export class Gate {
  /** Reads that have come back through the gate. */
  passed = 0;
  #open = deferred();
  #parked = deferred();
  #shut = false;
  /** What reads return from now on waits (a read under way included). */
  shut(): void {
    if (this.#shut) return;
    this.#shut = true;
    this.#open = deferred();
    this.#parked = deferred();
  }
  /** Lets what waits go, and later reads through. */
  open(): void {
    this.#shut = false;
    this.#open.resolve();
  }
  /** Resolves once a read's answer waits at the shut gate. */
  get parked(): Promise<void> {
    return this.#parked.promise;
  }
  /** A feed read's answer, once the gate lets it through. */
  async through<T>(answer: Promise<T>): Promise<T> {
    const value = await answer;
    if (this.#shut) {
      this.#parked.resolve();
      await this.#open.promise;
    }
    this.passed += 1;
    return value;
  }
}

export interface OpenOptions {
  /** Entries the log keeps (Redis `maxLength`, Postgres `keep`). */
  keep?: number;
  serialize?: (data: unknown) => string;
  /** The feed's reads pass this gate. */
  gate?: Gate;
}

/** One instance of a log, as an application has it, with the connections it was given. */
export interface Instance {
  log: EventLog;
  /** Closes the log, then the connections the test made for it. */
  close(): Promise<void>;
}

/** What the suite needs of an engine: its logs, and a few direct actions on its server. */
export interface Engine {
  label: string;
  /** The function's name in messages: `redisStreamLog`. */
  name: string;
  /** What every id this log gives looks like. */
  idPattern: RegExp;
  /** A well-formed id that this log never gave. */
  foreignId: string;
  open(name: string, options?: OpenOptions): Promise<Instance>;
  /** The ids the log holds now, oldest first. */
  ids(name: string): Promise<string[]>;
  /** Writes an entry with these fields straight into the log, as another program might; resolves with its id. */
  write(name: string, fields: Record<string, string>): Promise<string>;
  /** Writes `count` message events straight into the log, quickly; resolves with their ids. */
  bulk(name: string, count: number): Promise<string[]>;
  /** Removes every entry of the log, as trimming would. */
  clear(name: string): Promise<void>;
  /** Makes every write to the log fail until the returned function is called. */
  poison(name: string): Promise<() => Promise<void>>;
  /** Stops the server, keeping what it holds, until the returned function starts it again. */
  outage(): Promise<() => Promise<void>>;
}

/** What a channel's `emit` received, in order. */
function recorded(channel: EventChannel): ServerSentEvent[] {
  const emitted: ServerSentEvent[] = [];
  const emit = channel.emit.bind(channel);
  channel.emit = (input) => {
    emit(input);
    emitted.push(input as ServerSentEvent);
  };
  return emitted;
}

/** Resolves once `done()` is true, looking every 5 ms (the feed runs on the server's time); fails after 10 s. */
export async function eventually(done: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!done()) {
    if (Date.now() > deadline) throw new Error(`gave up waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** Resolves once `list` has `count` items; fails loudly after 10 s. */
export async function until<T>(list: T[], count: number, what: string): Promise<T[]> {
  await eventually(() => list.length >= count, `${count} ${what} (got ${list.length})`);
  return list;
}

/** Every event of a history answer. */
async function collect(answer: Awaited<ReturnType<EventLog["after"]>>): Promise<ServerSentEvent[] | null> {
  if (answer === null) return null;
  const events: ServerSentEvent[] = [];
  for await (const event of answer as AsyncIterable<ServerSentEvent>) events.push(event);
  return events;
}

/**
 * Resolves once the feed into a channel runs: it starts where the log ends when its first read answers, so a marker
 * published at once may still be history. Markers are published until one is fed, and the last one, `newest()`, has
 * been fed too; then `emitted` is emptied.
 */
export async function feedRuns(
  log: EventLog,
  emitted: ServerSentEvent[],
  newest: () => Promise<string | undefined>,
): Promise<void> {
  for (let attempt = 0; emitted.length === 0; attempt++) {
    if (attempt === 50) throw new Error("the feed did not start within 50 markers");
    await log.publish({ comment: "feed started" });
    const deadline = Date.now() + 200;
    while (emitted.length === 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 5));
  }
  const last = await newest();
  await eventually(() => emitted.at(-1)?.id === last, "the last marker to be fed");
  emitted.length = 0;
}

const never = () => new AbortController().signal;

/** `log.after(id)`, always as a promise (a history may answer synchronously). */
function afterOf(log: EventLog, id: string, signal = never()) {
  return Promise.resolve(log.after(id, { signal }));
}

export function logContract(engine: Engine): void {
  const { name } = engine;
  const instances: Instance[] = [];
  let names = 0;

  /** A name of its own for each log of a test: a Redis key, a Postgres topic. */
  function fresh(): string {
    names += 1;
    return `contract-${engine.label.replace(/\W/g, "-")}-${process.pid}-${names}`;
  }

  async function open(key: string, options?: OpenOptions): Promise<EventLog> {
    const instance = await engine.open(key, options);
    instances.push(instance);
    return instance.log;
  }

  /** A log fed into a fresh channel, and what the channel was emitted. */
  async function fed(key: string, options?: OpenOptions & { channel?: EventChannel }) {
    const log = await open(key, options);
    const channel = options?.channel ?? new EventChannel({ history: log });
    const emitted = recorded(channel);
    log.feed(channel);
    await started(key, log, emitted);
    return { log, channel, emitted };
  }

  function started(key: string, log: EventLog, emitted: ServerSentEvent[]): Promise<void> {
    return feedRuns(log, emitted, async () => (await engine.ids(key)).at(-1));
  }

  afterEach(async () => {
    await Promise.all(instances.splice(0).map((instance) => instance.close()));
  });

  describe(`${engine.label}: publish`, () => {
    test("resolves with the log's own position as the event id, later publishes with later ids", async () => {
      const key = fresh();
      const log = await open(key);
      const ids = [await log.publish("a"), await log.publish({ event: "b", data: 1 })];
      for (const id of ids) expect(id).toMatch(engine.idPattern);
      expect(await engine.ids(key)).toEqual(ids);
    });

    test.each<[string, unknown]>([
      ["a line break in event", { event: "a\nb", data: "x" }],
      ["an unknown key", { type: "tick", data: "x" }],
      ["a negative retry", { retry: -1 }],
      ["a number", 42],
      ["a promise as data", { data: Promise.resolve(1) }],
    ])("rejects %s with emit's TypeError, and writes nothing", async (_, input) => {
      const key = fresh();
      const log = await open(key);
      let expected: unknown;
      try {
        new EventChannel().emit(input as never);
      } catch (error) {
        expected = error;
      }
      expect(expected).toBeInstanceOf(TypeError);
      const message = (expected as Error).message.replace("EventChannel.emit", `${name}.publish`);
      await expect(log.publish(input as never)).rejects.toThrowError(new TypeError(message));
      expect(await engine.ids(key)).toEqual([]);
    });

    test("rejects an input with its own id with a TypeError: the log gives the ids", async () => {
      const key = fresh();
      const log = await open(key);
      await expect(log.publish({ id: "7", data: "x" })).rejects.toThrowError(
        new TypeError(`${name}.publish: input.id must be left out, got "7"; the log gives each event its id`),
      );
      expect(await engine.ids(key)).toEqual([]);
    });

    test("serializes non-string data once, so every instance writes the same bytes", async () => {
      const key = fresh();
      let calls = 0;
      // A serializer whose output changes with each call: an instance that serialized again would differ.
      const serialize = (data: unknown) => `${JSON.stringify(data)} #${++calls}`;
      const publisher = await open(key, { serialize });
      const [one, two] = [await fed(key), await fed(key)];
      // Both feeds have passed the second one's start.
      const marker = await publisher.publish("both started");
      await eventually(
        () => one.emitted.at(-1)?.id === marker && two.emitted.at(-1)?.id === marker,
        "both feeds to pass the marker",
      );
      one.emitted.length = 0;
      two.emitted.length = 0;
      calls = 0;
      const id = await publisher.publish({ event: "note", data: { n: 1 } });
      expect(calls).toBe(1);
      await Promise.all([until(one.emitted, 1, "events"), until(two.emitted, 1, "events")]);
      const expected = { event: "note", id, data: '{"n":1} #1' };
      expect(one.emitted).toEqual([expected]);
      expect(two.emitted).toEqual([expected]);
      expect(await collect(await afterOf(one.log, id))).toEqual([]);
    });

    test("keeps comment, retry, event and data as they were published", async () => {
      const key = fresh();
      const { log, emitted } = await fed(key);
      const inputs = [
        "plain",
        { event: "multi", data: "line 1\nline 2\r\nline 3" },
        { comment: "only a comment" },
        { retry: 2_500, data: "" },
        {},
      ];
      const ids: string[] = [];
      for (const input of inputs) ids.push(await log.publish(input));
      await until(emitted, inputs.length, "events");
      const expected = inputs.map((input, n) => ({
        ...(typeof input === "string" ? { data: input } : input),
        id: ids[n],
      }));
      expect(emitted).toEqual(expected);
      const marker = await open(key);
      expect(await collect(await afterOf(marker, ids[0] as string))).toEqual(expected.slice(1));
    });

    test("a failed write rejects publish, and nothing is fed", async () => {
      const key = fresh();
      const { log, emitted } = await fed(key);
      const undo = await engine.poison(key);
      try {
        await expect(log.publish("never stored")).rejects.toThrowError();
      } finally {
        await undo();
      }
      const id = await log.publish("stored");
      await until(emitted, 1, "events");
      expect(emitted).toEqual([{ id, data: "stored" }]);
    });
  });

  describe(`${engine.label}: feed`, () => {
    test("starts at the log's end when it is called: what was published before is history, not live", async () => {
      const key = fresh();
      const before = await (await open(key)).publish("before");
      const { log, emitted } = await fed(key);
      const live = await log.publish("live");
      await until(emitted, 1, "events");
      expect(emitted).toEqual([{ id: live, data: "live" }]);
      // After `before`: the markers that showed the feed running (history to it too), then the live event.
      const replayed = (await collect(await afterOf(log, before))) ?? [];
      expect(replayed.at(-1)).toEqual({ id: live, data: "live" });
      for (const event of replayed.slice(0, -1)) expect(event.comment).toBe("feed started");
    });

    test("emits every entry once, in the log's order, from publishers on two instances at once", async () => {
      const key = fresh();
      const { emitted } = await fed(key);
      const [a, b] = [await open(key), await open(key)];
      await Promise.all(Array.from({ length: 100 }, (_, n) => (n % 2 === 0 ? a : b).publish(String(n))));
      const ids = (await engine.ids(key)).slice(-100);
      await until(emitted, 100, "events");
      await new Promise((resolve) => setTimeout(resolve, 50));
      expect(emitted.map((event) => event.id)).toEqual(ids);
    });

    test("is once per log: a second feed, a feed after close() and a feed of no channel are TypeErrors", async () => {
      const key = fresh();
      const log = await open(key);
      expect(() => log.feed({} as EventChannel)).toThrowError(
        new TypeError(`${name}.feed: channel must be an EventChannel, got an object`),
      );
      log.feed(new EventChannel());
      expect(() => log.feed(new EventChannel())).toThrowError(
        new TypeError(`${name}.feed: a log feeds one channel, once; make one log per channel`),
      );
      const other = await open(key);
      await other.close();
      expect(() => other.feed(new EventChannel())).toThrowError(
        new TypeError(`${name}.feed: the log is closed; make a new one`),
      );
    });

    test("skips an entry the channel refuses, says so once, and goes on", async () => {
      const key = fresh();
      const { log, emitted } = await fed(key);
      const errors = vi.spyOn(console, "error").mockImplementation(() => {});
      const bad = await engine.write(key, { event: "line\nbreak", data: "x" });
      const good = await log.publish("after it");
      await until(emitted, 1, "events");
      expect(emitted).toEqual([{ id: good, data: "after it" }]);
      expect(errors).toHaveBeenCalledTimes(1);
      expect(String(errors.mock.calls[0]?.[0])).toContain(`${name}: skipped entry ${bad} of`);
      // Replayed, it is skipped too: a resuming client gets what a live one got.
      const first = (await engine.ids(key)).at(-3) as string;
      expect(await collect(await afterOf(log, first))).toEqual([{ id: good, data: "after it" }]);
    });

    test("stops feeding a channel that was closed: it reads no more, reports nothing, and after() no longer waits", async () => {
      const key = fresh();
      const gate = new Gate();
      const { log, channel } = await fed(key, { gate });
      const errors = vi.spyOn(console, "error").mockImplementation(() => {});
      channel.close();
      await log.publish("to a closed channel");
      // Time for the read it wakes (a blocked XREAD returns it, a notification wakes the feed) to see the channel.
      await new Promise((resolve) => setTimeout(resolve, 300));
      const reads = gate.passed;
      const later = await (await open(key)).publish("later");
      // A feed that still ran would read `later` at once: a blocked read returns it, its notification wakes the feed.
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect(gate.passed).toBe(reads);
      gate.shut();
      const answer = await within(afterOf(log, later), 2_000, "after() with a stopped feed");
      gate.open();
      expect(await collect(answer)).toEqual([]);
      expect(errors).not.toHaveBeenCalled();
    });
  });

  describe(`${engine.label}: after`, () => {
    test("replays the entries after an id, oldest first, page after page", async () => {
      const key = fresh();
      const ids = await engine.bulk(key, 1_201);
      const log = await open(key);
      const events = await collect(await afterOf(log, ids[0] as string));
      expect(events?.length).toBe(1_200);
      expect(events?.map((event) => event.id)).toEqual(ids.slice(1));
      expect(events?.[0]).toEqual({ id: ids[1], data: "1" });
    });

    test("answers null for an id that was trimmed, an id the log never gave, and a string that is no id", async () => {
      const key = fresh();
      const log = await open(key, { keep: 10 });
      const first = await log.publish("first");
      for (let n = 0; n < 60; n++) await log.publish(String(n));
      const kept = await engine.ids(key);
      expect(kept).not.toContain(first);
      for (const id of [first, engine.foreignId, "café ☕", ""]) {
        expect(await afterOf(log, id), id).toBeNull();
      }
      expect(await collect(await afterOf(log, kept.at(-2) as string))).toEqual([{ id: kept.at(-1), data: "59" }]);
    });

    test("waits while this instance's feed has not reached the id, and answers once it has", async () => {
      const key = fresh();
      const gate = new Gate();
      const { log, emitted } = await fed(key, { gate });
      gate.shut();
      await log.publish("lets the feed park at the gate");
      await within(gate.parked, 5_000, "the feed to park at the gate");
      const id = await (await open(key)).publish("behind the gate");
      let answered = false;
      const answer = afterOf(log, id).then((value) => {
        answered = true;
        return value;
      });
      await new Promise((resolve) => setTimeout(resolve, 200));
      expect(answered).toBe(false);
      gate.open();
      expect(await collect(await within(answer, 5_000, "after() once the feed moved on"))).toEqual([]);
      // It answered only once the feed had emitted the id: the channel finds the client's id among the held events.
      expect(emitted.map((event) => event.id)).toContain(id);
    });

    test("stops waiting for the feed when the signal aborts, rejecting with its reason", async () => {
      const key = fresh();
      const gate = new Gate();
      const { log } = await fed(key, { gate });
      gate.shut();
      await log.publish("lets the feed park at the gate");
      await within(gate.parked, 5_000, "the feed to park at the gate");
      const id = await (await open(key)).publish("behind the gate");
      const abort = new AbortController();
      const answer = afterOf(log, id, abort.signal);
      const reason = new Error("the client left");
      abort.abort(reason);
      await expect(answer).rejects.toBe(reason);
      gate.open();
    });

    test("of a log that feeds no channel, answers from the log without waiting", async () => {
      const key = fresh();
      const publisher = await open(key);
      const id = await publisher.publish("one");
      const next = await publisher.publish("two");
      expect(await collect(await afterOf(publisher, id))).toEqual([{ id: next, data: "two" }]);
    });

    test("retries while the server is unreachable, and answers once it is back", async () => {
      const key = fresh();
      const log = await open(key);
      const id = await log.publish("before the outage");
      const next = await log.publish("also before");
      const restart = await engine.outage();
      const answer = afterOf(log, id, AbortSignal.timeout(20_000));
      await new Promise((resolve) => setTimeout(resolve, 300));
      await restart();
      expect(await collect(await within(answer, 15_000, "after() once the server is back"))).toEqual([
        { id: next, data: "also before" },
      ]);
    });

    test("while the server is unreachable, gives up when the signal aborts", async () => {
      const key = fresh();
      const log = await open(key);
      const id = await log.publish("before the outage");
      const restart = await engine.outage();
      try {
        const abort = new AbortController();
        const answer = afterOf(log, id, abort.signal);
        await new Promise((resolve) => setTimeout(resolve, 300));
        const reason = new Error("timed out");
        abort.abort(reason);
        await expect(answer).rejects.toBe(reason);
      } finally {
        await restart();
      }
    });

    test("fails a replay when the log was trimmed past it meanwhile: never a silent gap", async () => {
      const key = fresh();
      const ids = await engine.bulk(key, 1_100);
      const log = await open(key);
      const answer = (await afterOf(log, ids[0] as string)) as AsyncIterable<ServerSentEvent>;
      const iterator = answer[Symbol.asyncIterator]();
      expect((await iterator.next()).value).toEqual({ id: ids[1], data: "1" });
      await engine.clear(key);
      await expect(
        (async () => {
          for (;;) if ((await iterator.next()).done) return "done";
        })(),
      ).rejects.toThrowError(/was trimmed past .* during a replay/);
    });
  });

  describe(`${engine.label}: the feed under faults`, () => {
    test("survives the server going away: reconnects with backoff and goes on from its last position", async () => {
      const key = fresh();
      const { log, emitted } = await fed(key);
      const errors = vi.spyOn(console, "error").mockImplementation(() => {});
      const before = await log.publish("before");
      await until(emitted, 1, "events");
      const restart = await engine.outage();
      // Long enough for the feed to fail and try again a few times.
      await new Promise((resolve) => setTimeout(resolve, 600));
      await restart();
      const publisher = await open(key);
      const after = [await publisher.publish("after 1"), await publisher.publish("after 2")];
      await until(emitted, 3, "events");
      expect(emitted.map((event) => event.id)).toEqual([before, ...after]);
      // Once per outage at most, not once per attempt (a client that queues commands while it reconnects, as ioredis
      // does, fails none).
      const reports = errors.mock.calls.filter(([error]) => String(error).includes("failed, reconnecting"));
      expect(reports.length).toBeLessThanOrEqual(1);
    });

    test("disconnects every subscriber and reads on from the end when the entry at its position is gone", async () => {
      const key = fresh();
      const gate = new Gate();
      const errors = vi.spyOn(console, "error").mockImplementation(() => {});
      const log = await open(key, { keep: 10, gate });
      const channel = new EventChannel({
        history: log,
        onHistoryLost: (lastEventId) => ({ event: "reset", data: lastEventId }),
      });
      const emitted = recorded(channel);
      // Everything the channel is emitted in this test, never emptied.
      const everything = recorded(channel);
      log.feed(channel);
      await started(key, log, emitted);
      const seen = await log.publish("seen");
      await until(emitted, 1, "events");
      const subscriber = channel.response();
      const ended = deferred();
      const reader = readerOf(subscriber);
      void (async () => {
        let text = "";
        for (;;) {
          const { done, value } = await reader.read();
          if (done) break;
          text += new TextDecoder().decode(value);
        }
        ended.resolve();
        return text;
      })();
      gate.shut();
      await log.publish("lets the feed park at the gate");
      await within(gate.parked, 5_000, "the feed to park at the gate");
      // Far more than the log keeps, while the feed is held: its position is trimmed away.
      const publisher = await open(key, { keep: 10 });
      const skipped: string[] = [];
      for (let n = 0; n < 60; n++) skipped.push(await publisher.publish(String(n)));
      expect(await engine.ids(key)).not.toContain(seen);
      gate.open();
      await within(ended.promise, 10_000, "the subscriber to be disconnected");
      expect(channel.subscribers).toBe(0);
      expect(String(errors.mock.calls[0]?.[0])).toMatch(/cannot show it missed nothing/);
      // Read on from the end: nothing in between is emitted, and what comes next is live.
      emitted.length = 0;
      await feedRuns(log, emitted, async () => (await engine.ids(key)).at(-1));
      const next = await publisher.publish("after the jump");
      await until(emitted, 1, "events");
      expect(emitted).toEqual([{ id: next, data: "after the jump" }]);
      expect(everything.filter((event) => skipped.includes(String(event.id)))).toEqual([]);
      // The client resumes with its id, which is gone: it is told.
      const again = channel.response(new Request("http://x/", { headers: { "last-event-id": seen } }));
      const text = await readFirstEvents(again, 1);
      expect(text).toEqual([{ event: "reset", data: seen }]);
    });
  });
}

/** The first `count` events of a response, parsed. */
async function readFirstEvents(response: Response, count: number) {
  const reader = readerOf(response);
  let text = "";
  const deadline = Date.now() + 10_000;
  for (;;) {
    const events = parseWire(text).events;
    if (events.length >= count) {
      await reader.cancel();
      return events.slice(0, count);
    }
    if (Date.now() > deadline) throw new Error(`gave up waiting for ${count} events, got ${text}`);
    const { done, value } = await reader.read();
    if (done) throw new Error(`the stream ended after ${text}`);
    text += new TextDecoder().decode(value);
  }
}
