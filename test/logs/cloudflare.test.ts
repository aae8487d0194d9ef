/**
 * eventsource-server/cloudflare in Miniflare (workerd, with SQLite-backed Durable Object storage): the Worker of
 * test/logs/worker/ gives each name a Durable Object with a `durableObjectLog` over its storage and an `EventChannel`
 * fed by it, driven over RPC and read over HTTP. The storage is the real one, and so are the object's restarts.
 */
import type { Readable } from "node:stream";
import { build } from "esbuild";
import { EventChannel, type ServerSentEvent } from "eventsource-server";
import { type DurableObjectLogStorage, durableObjectLog } from "eventsource-server/cloudflare";
import { Miniflare } from "miniflare";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { wranglerConfig } from "../../examples/cloudflare/build.mjs";
import { deferred, parseWire, readerOf } from "../helpers.ts";
import { PACKAGE_ALIAS, RESULTS, ROOT, within } from "../runtime/harness.ts";

let mf: Miniflare | undefined;
let origin = "";
let names = 0;

beforeAll(async () => {
  const script = `${RESULTS}log-object.mjs`;
  await build({
    entryPoints: [`${ROOT}test/logs/worker/log-object.ts`],
    bundle: true,
    format: "esm",
    platform: "neutral",
    target: "es2022",
    outfile: script,
    external: ["cloudflare:*"],
    alias: PACKAGE_ALIAS,
    logLevel: "silent",
  });
  const config = wranglerConfig();
  mf = new Miniflare({
    modules: true,
    scriptPath: script,
    compatibilityDate: config.compatibility_date,
    compatibilityFlags: config.compatibility_flags ?? [],
    durableObjects: { LOGS: { className: "LogObject", useSQLite: true } },
    host: "127.0.0.1",
    port: 0,
    // The object restarted on purpose is logged by workerd as an error: expected here, and not this test's output.
    handleRuntimeStdio: (stdout: Readable, stderr: Readable) => {
      stdout.resume();
      stderr.resume();
    },
  });
  origin = (await mf.ready).origin;
}, 60_000);

afterAll(async () => {
  await mf?.dispose();
});

/** How a log is made in the Worker: the options of durableObjectLog, and whether its channel is fed at once. */
interface Settings {
  keep?: number;
  prefix?: string;
  feed?: boolean;
  countSerialize?: boolean;
}

/** An error, as the Worker hands it back over RPC. */
interface Failure {
  name: string;
  message: string;
}

/** The RPC methods of test/logs/worker/log-object.ts's LogObject. */
interface Stub {
  open(settings?: Settings): Promise<void>;
  feed(): Promise<void>;
  publish(...inputs: unknown[]): Promise<(string | Failure)[]>;
  publishLarge(bytes: number): Promise<string | Failure>;
  after(id: string): Promise<ServerSentEvent[] | null | Failure>;
  emitted(): Promise<ServerSentEvent[]>;
  counts(): Promise<{ transactions: number; serialized: number }>;
  stored(): Promise<Record<string, unknown>>;
  closeChannel(): Promise<void>;
  closeLog(): Promise<void>;
  restart(): Promise<void>;
  born(): Promise<string>;
}

/**
 * A Durable Object of its own for each test: `stub()` is a stub of it (a new one after a restart: a stub of an object
 * that restarted keeps failing).
 */
async function object(settings?: Settings): Promise<{ name: string; stub: () => Stub }> {
  if (mf === undefined) throw new Error("miniflare did not start");
  names += 1;
  const name = `log-${names}`;
  const namespace = await mf.getDurableObjectNamespace("LOGS");
  const stub = () => namespace.get(namespace.idFromName(name)) as unknown as Stub;
  if (settings !== undefined) await stub().open(settings);
  return { name, stub };
}

/** Restarts the object, and resolves once a new one answers. */
async function restarted(stub: () => Stub): Promise<void> {
  const before = await stub().born();
  await stub().restart();
  const deadline = Date.now() + 10_000;
  for (;;) {
    // A call may still meet the old object going away.
    const now = await stub()
      .born()
      .catch(() => before);
    if (now !== before) return;
    if (Date.now() > deadline) throw new Error("the object did not restart within 10 s");
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** An SSE connection to a name's channel, read with an independent parser. */
async function subscribe(name: string, lastEventId?: string) {
  const headers: Record<string, string> = lastEventId === undefined ? {} : { "last-event-id": lastEventId };
  const response = await within(fetch(`${origin}/${name}/events`, { headers }), 10_000, "the stream");
  const reader = readerOf(response);
  const decoder = new TextDecoder();
  let text = "";
  const ended = deferred();
  return {
    /** Resolves with the first `count` events once they have arrived. */
    async events(count: number) {
      for (;;) {
        const { events } = parseWire(text);
        if (events.length >= count) return events.slice(0, count);
        const { done, value } = await within(reader.read(), 10_000, `${count} events`);
        if (done) {
          ended.resolve();
          throw new Error(`the stream ended after ${JSON.stringify(text)}`);
        }
        text += decoder.decode(value, { stream: true });
      }
    },
    /** Resolves once the stream has ended. */
    async end() {
      for (;;) {
        const { done, value } = await within(reader.read(), 10_000, "the stream to end");
        if (done) return;
        text += decoder.decode(value, { stream: true });
      }
    },
    cancel: () => reader.cancel(),
  };
}

describe("durableObjectLog in a Durable Object", () => {
  test("publish answers 1, 2, 3…: a counter in storage, which goes on after the object restarts", async () => {
    const { stub } = await object({});
    expect(await stub().publish("a", "b")).toEqual(["1", "2"]);
    await restarted(stub);
    expect(await stub().publish("c")).toEqual(["3"]);
  });

  test("publish writes the event and the counter in one transaction, then emits on the fed channel", async () => {
    const { stub } = await object({});
    const [id] = await stub().publish({ event: "note", data: { n: 1 } });
    expect(id).toBe("1");
    expect((await stub().counts()).transactions).toBe(1);
    expect(await stub().stored()).toEqual({
      "event:0000000000000001": { event: "note", data: '{"n":1}' },
      "event:last": 1,
    });
    expect(await stub().emitted()).toEqual([{ event: "note", id: "1", data: '{"n":1}' }]);
  });

  test("publish checks the input as emit does, and refuses an id: a TypeError, and nothing stored", async () => {
    const { stub } = await object({});
    const answers = await stub().publish({ event: "a\nb", data: "x" }, { type: "tick" }, { id: "7", data: "x" });
    expect(answers).toEqual([
      { name: "TypeError", message: 'durableObjectLog.publish: input.event must not contain CR or LF, got "a\\nb"' },
      { name: "TypeError", message: 'durableObjectLog.publish: unknown key "type"; put the event type in "event"' },
      {
        name: "TypeError",
        message: 'durableObjectLog.publish: input.id must be left out, got "7"; the log gives each event its id',
      },
    ]);
    expect(await stub().stored()).toEqual({});
    expect(await stub().emitted()).toEqual([]);
  });

  test("publish serializes data once, and stores and emits that text", async () => {
    const { stub } = await object({ countSerialize: true });
    await stub().publish({ data: [1, 2] });
    expect((await stub().counts()).serialized).toBe(1);
    expect(await stub().emitted()).toEqual([{ id: "1", data: "[1,2] #1" }]);
    expect(await stub().after("0")).toEqual([{ id: "1", data: "[1,2] #1" }]);
  });

  test("a failed write rejects publish: nothing is emitted, and the next publish takes the same id", async () => {
    const { stub } = await object({});
    // More than storage takes in one value.
    const failed = await stub().publishLarge(3 * 1024 * 1024);
    expect(failed).toEqual({ name: "Error", message: expect.any(String) });
    expect(await stub().emitted()).toEqual([]);
    const [id] = await stub().publish("stored");
    expect(id).toBe("1");
  });

  test("the feed starts at the end: what was published before is history, not live", async () => {
    const { stub } = await object({ feed: false });
    await stub().publish("before");
    await stub().feed();
    await stub().publish("live");
    expect(await stub().emitted()).toEqual([{ id: "2", data: "live" }]);
    expect(await stub().after("1")).toEqual([{ id: "2", data: "live" }]);
  });

  test("publishes made at once are emitted once each, in the order of their ids", async () => {
    const { stub } = await object({});
    const ids = await stub().publish(...Array.from({ length: 50 }, (_, n) => String(n)));
    expect(ids).toEqual(Array.from({ length: 50 }, (_, n) => String(n + 1)));
    expect((await stub().emitted()).map((event) => event.id)).toEqual(ids);
  });

  describe("after(id), with the newest 3 of 5 kept", () => {
    let stub: () => Stub;

    beforeAll(async () => {
      ({ stub } = await object({ keep: 3 }));
      await stub().publish("1");
      for (let n = 2; n <= 5; n++) await stub().publish(String(n));
    });

    test("replays the events after an id, oldest first; the id just before the oldest kept one resumes too", async () => {
      expect(await stub().after("3")).toEqual([
        { id: "4", data: "4" },
        { id: "5", data: "5" },
      ]);
      expect(await stub().after("2")).toEqual([
        { id: "3", data: "3" },
        { id: "4", data: "4" },
        { id: "5", data: "5" },
      ]);
      expect(await stub().after("5")).toEqual([]);
    });

    test.each([
      ["an id trimmed away", "1"],
      ["the id before the first, once the first is trimmed", "0"],
      ["an id the log never gave", "6"],
      ["a string that is no id", "café ☕"],
      ["a number with a leading zero", "04"],
    ])("answers null for %s", async (_, id) => {
      expect(await stub().after(id)).toBeNull();
    });

    test("keeps only the newest 3 in storage", async () => {
      expect(Object.keys(await stub().stored()).sort()).toEqual([
        "event:0000000000000003",
        "event:0000000000000004",
        "event:0000000000000005",
        "event:last",
      ]);
    });
  });

  test("a smaller keep after a restart drops what the larger one kept", async () => {
    const { stub } = await object({ keep: 10 });
    await stub().publish(...Array.from({ length: 6 }, (_, n) => String(n)));
    await restarted(stub);
    await stub().open({ keep: 2 });
    expect(await stub().after("4")).toEqual([
      { id: "5", data: "4" },
      { id: "6", data: "5" },
    ]);
    expect(await stub().after("3")).toBeNull();
    expect(Object.keys(await stub().stored()).sort()).toEqual([
      "event:0000000000000005",
      "event:0000000000000006",
      "event:last",
    ]);
  });

  test("two logs with different prefixes share one storage without touching each other", async () => {
    const { stub } = await object({ prefix: "a/" });
    await stub().publish("in a");
    await stub().open({ prefix: "b/" });
    expect(await stub().publish("in b")).toEqual(["1"]);
    expect(Object.keys(await stub().stored()).sort()).toEqual([
      "a/0000000000000001",
      "a/last",
      "b/0000000000000001",
      "b/last",
    ]);
  });

  test("a publish into a closed channel is stored, and neither emitted nor an error", async () => {
    const { stub } = await object({});
    await stub().closeChannel();
    expect(await stub().publish("after close")).toEqual(["1"]);
    expect(await stub().emitted()).toEqual([]);
    expect(await stub().after("0")).toEqual([{ id: "1", data: "after close" }]);
  });

  test("close() stops the feed: later publishes are stored, not emitted", async () => {
    const { stub } = await object({});
    await stub().closeLog();
    expect(await stub().publish("after close")).toEqual(["1"]);
    expect(await stub().emitted()).toEqual([]);
  });

  test("a client resumes with exactly the events it missed after the object restarts", async () => {
    const { name, stub } = await object({});
    const first = await subscribe(name);
    await stub().publish("one", "two");
    expect(await first.events(2)).toEqual([
      { id: "1", data: "one" },
      { id: "2", data: "two" },
    ]);
    await restarted(stub);
    await first.end();
    // Published to the new object while the client is away.
    expect(await stub().publish("three", "four")).toEqual(["3", "4"]);
    const resumed = await subscribe(name, "2");
    expect(await resumed.events(2)).toEqual([
      { id: "3", data: "three" },
      { id: "4", data: "four" },
    ]);
    await stub().publish("five");
    expect(await resumed.events(3)).toEqual([
      { id: "3", data: "three" },
      { id: "4", data: "four" },
      { id: "5", data: "five" },
    ]);
    await resumed.cancel();
  });
});

describe("durableObjectLog's publish, emit and after, on a storage that answers when told", () => {
  /** Storage in memory whose transactions resolve only when the test says: a write stored, its answer not yet back. */
  function heldStorage() {
    const data = new Map<string, unknown>();
    const held: (() => void)[] = [];
    const storage: DurableObjectLogStorage = {
      get: async (key) => data.get(key),
      async list({ start = "", end = "\uffff", limit = Number.POSITIVE_INFINITY }) {
        const keys = [...data.keys()].filter((key) => key >= start && key < end).sort();
        return new Map(keys.slice(0, limit).map((key) => [key, data.get(key)]));
      },
      async delete(keys) {
        for (const key of keys) data.delete(key);
        return keys.length;
      },
      async transaction(closure) {
        const result = await closure({
          put: async (entries) => {
            for (const [key, value] of Object.entries(entries)) data.set(key, value);
          },
          delete: (keys) => storage.delete(keys),
        });
        await new Promise<void>((resolve) => held.push(resolve));
        return result;
      },
    };
    return { storage, release: () => held.shift()?.() };
  }

  test("emits an event only once its write has resolved, in the order of the ids", async () => {
    const { storage, release } = heldStorage();
    const log = durableObjectLog(storage);
    const channel = new EventChannel({ history: log });
    const emitted: ServerSentEvent[] = [];
    channel.emit = (input) => void emitted.push(input as ServerSentEvent);
    log.feed(channel);
    const first = log.publish("one");
    const second = log.publish("two");
    await new Promise((resolve) => setTimeout(resolve, 10));
    // The first is stored, its write not yet answered; the second waits its turn.
    expect(emitted).toEqual([]);
    release();
    expect(await first).toBe("1");
    expect(emitted).toEqual([{ id: "1", data: "one" }]);
    await new Promise((resolve) => setTimeout(resolve, 10));
    release();
    expect(await second).toBe("2");
    expect(emitted.map((event) => event.id)).toEqual(["1", "2"]);
  });

  test("checks its arguments: a TypeError names what is wrong", () => {
    const { storage } = heldStorage();
    const cases: [unknown, unknown, string][] = [
      [{}, undefined, "durableObjectLog: storage must be a Durable Object's storage (ctx.storage), got an object"],
      [storage, { keep: 0 }, "durableObjectLog: options.keep must be a positive safe integer, got 0"],
      [storage, { prefix: 1 }, "durableObjectLog: options.prefix must be a string, got 1"],
      [storage, { keeep: 3 }, 'durableObjectLog: options.keeep is not an option; did you mean "keep"?'],
    ];
    for (const [given, options, message] of cases) {
      expect(() => durableObjectLog(given as never, options as never)).toThrowError(new TypeError(message));
    }
  });
});
