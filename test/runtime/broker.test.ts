/**
 * examples/broker, for real: a redis-server on a free port, instances of the example as separate Node
 * processes sharing one Redis Stream, clients reading with the `eventsource` package or with fetch and an
 * independent parser, and events published with POST /events or straight into the stream.
 */
import { spawn } from "node:child_process";
import { EventSource, type FetchLikeResponse } from "eventsource";
import { createClient } from "redis";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { type ParsedEvent, parseWire, readerOf } from "../helpers.ts";
import { bundleBroker, startBroker } from "../support/broker.ts";
import { freePort, type RedisServer, startRedis } from "../support/redis.ts";
import { Recorder, type Running, within } from "./harness.ts";

/** The delay the instances ask clients to wait before reconnecting, in the response and in the farewell. */
const RETRY_MS = 300;

let redis: RedisServer | undefined;
let publisher: ReturnType<typeof createClient> | undefined;
let bundle = "";
const running: Running[] = [];

beforeAll(async () => {
  // Small stream nodes, so MAXLEN ~ 10 trims after a few dozen entries instead of hundreds.
  [redis, bundle] = await Promise.all([startRedis(["--stream-node-max-entries", "10"]), bundleBroker("broker.test")]);
  publisher = createClient({ url: redis.url });
  await publisher.connect();
}, 300_000);

afterAll(async () => {
  await Promise.all(running.map((instance) => instance.stop()));
  await publisher?.close();
  await redis?.stop();
});

function redisUrl(): string {
  if (redis === undefined) throw new Error("redis did not start");
  return redis.url;
}

function commands(): ReturnType<typeof createClient> {
  if (publisher === undefined) throw new Error("redis did not start");
  return publisher;
}

/** An instance of the example on `stream`, stopped after the file's tests (if a test has not stopped it). */
async function instance(stream: string, env: Record<string, string> = {}): Promise<Running> {
  const started = await startBroker(bundle, {
    REDIS_URL: redisUrl(),
    STREAM: stream,
    RETRY_MS: String(RETRY_MS),
    ...env,
  });
  running.push(started);
  return started;
}

/** Publishes one event through an instance's POST route; resolves with its entry id. */
async function post(origin: string, event: { event?: string; data: unknown }): Promise<string> {
  const response = await fetch(`${origin}/events`, { method: "POST", body: JSON.stringify(event) });
  expect(response.status).toBe(201);
  const { id } = (await response.json()) as { id: string };
  return id;
}

/** A client's open event stream, read with fetch and parsed by eventsource-parser. */
interface Stream {
  /** Resolves once the first chunk has arrived: the server has subscribed this client to its channel. */
  opened: Promise<void>;
  /** Reads until `n` events have arrived in total, and returns them all. */
  events(n: number): Promise<ParsedEvent[]>;
  /** Reads to the end of the stream, and returns all it carried. */
  rest(): Promise<ReturnType<typeof parseWire>>;
  close(): Promise<void>;
}

async function openStream(url: string, headers: Record<string, string> = {}): Promise<Stream> {
  const response = await within(fetch(url, { headers }), 10_000, `fetch ${url}`);
  expect(response.headers.get("content-type")).toBe("text/event-stream; charset=utf-8");
  const reader = readerOf(response);
  const decoder = new TextDecoder();
  let wire = "";
  let ended = false;
  async function readMore(what: string): Promise<void> {
    const { done, value } = await within(reader.read(), 10_000, what);
    if (done) ended = true;
    else wire += decoder.decode(value, { stream: true });
  }
  const opened = readMore(`the first chunk of ${url}`);
  return {
    opened,
    async events(n) {
      // One read at a time: a second read racing the first would wait for a chunk that may never come.
      await opened;
      while (parseWire(wire).events.length < n) {
        if (ended) throw new Error(`${url} ended while waiting for event ${n}:\n${wire}`);
        await readMore(`event ${parseWire(wire).events.length + 1}`);
      }
      return parseWire(wire).events;
    },
    async rest() {
      await opened;
      while (!ended) await readMore(`the end of ${url}`);
      return parseWire(wire);
    },
    close: () => reader.cancel(),
  };
}

/**
 * The `eventsource` package behind a stand-in load balancer: its first connection goes to `origins[0]`, each
 * later one to the next origin. The EventSource itself decides when to reconnect and what Last-Event-ID to
 * send; `sent` records where each connection went and the id it carried.
 */
function balancedEventSource(origins: string[], firstId?: string) {
  const seen = new Recorder();
  const sent: { origin: string; lastEventId: string | undefined }[] = [];
  const source = new EventSource(`${origins[0]}/events`, {
    fetch: (_url, init): Promise<FetchLikeResponse> => {
      const origin = origins[Math.min(sent.length, origins.length - 1)] as string;
      const headers: Record<string, string> = { ...init.headers };
      if (sent.length === 0 && firstId !== undefined) headers["Last-Event-ID"] = firstId;
      sent.push({ origin, lastEventId: headers["Last-Event-ID"] });
      return fetch(`${origin}/events`, { ...init, headers });
    },
  });
  source.addEventListener("open", () => seen.push({ kind: "open" }));
  source.addEventListener("error", () => seen.push({ kind: "error" }));
  for (const type of ["message", "tick", "reset"]) {
    source.addEventListener(type, (event) =>
      seen.push({ kind: "event", type, data: String(event.data), lastEventId: String(event.lastEventId) }),
    );
  }
  return { seen, sent, close: () => source.close() };
}

describe("examples/broker: a Redis Stream feeding the EventChannel of every instance", () => {
  let first: Running;
  let second: Running;

  beforeAll(async () => {
    [first, second] = await Promise.all([instance("shared"), instance("shared")]);
  });

  test("an event published with POST reaches clients of both instances, its stream entry id as its event id", async () => {
    const alice = await openStream(`${first.origin}/events`);
    const bob = await openStream(`${second.origin}/events`);
    try {
      await Promise.all([alice.opened, bob.opened]);
      const noteId = await post(first.origin, { event: "note", data: { text: "hello from redis" } });
      // What `redis-cli XADD shared '*' data 'plain text'` does: no event field is a message event.
      const plainId = await commands().xAdd("shared", "*", { data: "plain text is the data of a message event" });
      expect(noteId).toMatch(/^\d+-\d+$/);
      const expected = [
        { event: "note", id: noteId, data: '{"text":"hello from redis"}' },
        { id: plainId, data: "plain text is the data of a message event" },
      ];
      expect(await alice.events(2)).toEqual(expected);
      expect(await bob.events(2)).toEqual(expected);
    } finally {
      await Promise.all([alice.close(), bob.close()]);
    }
  });

  test("POST answers 400 for an event the channel would refuse, and it never enters the stream", async () => {
    const before = await commands().xLen("shared");
    const response = await fetch(`${first.origin}/events`, {
      method: "POST",
      body: JSON.stringify({ event: "two\nlines", data: "x" }),
    });
    expect(response.status).toBe(400);
    expect(((await response.json()) as { error: string }).error).toMatch(/event/);
    expect(await commands().xLen("shared")).toBe(before);
  });

  test("a client that reconnects to the other instance with its Last-Event-ID gets exactly what it missed", async () => {
    const ids = [];
    for (const n of [1, 2, 3]) ids.push(await post(first.origin, { event: "tick", data: `resume ${n}` }));
    const watcher = await openStream(`${first.origin}/events`, { "last-event-id": ids[0] as string });
    try {
      // Replayed from the stream by the instance it connected to.
      expect((await watcher.events(2)).map((event) => event.id)).toEqual(ids.slice(1));
    } finally {
      await watcher.close();
    }
    const returning = await openStream(`${second.origin}/events`, { "last-event-id": ids[1] as string });
    try {
      const live = await post(second.origin, { event: "tick", data: "live" });
      expect(await returning.events(2)).toEqual([
        { event: "tick", id: ids[2], data: "resume 3" },
        { event: "tick", id: live, data: "live" },
      ]);
    } finally {
      await returning.close();
    }
  });

  test("a malformed entry written straight into the stream is reported, and the next one still arrives", async () => {
    const client = await openStream(`${first.origin}/events`);
    try {
      await client.opened;
      await commands().xAdd("shared", "*", { event: "two\nlines", data: "refused by emit" });
      const next = await commands().xAdd("shared", "*", { event: "tick", data: "after the bad one" });
      // The previous test's last event may reach this new client first, if this instance's feed emits it a little
      // later than the other instance's did: what matters is that the bad entry never arrives and the next one does.
      let events = await client.events(1);
      while (events.at(-1)?.id !== next && events.length < 3) events = await client.events(events.length + 1);
      expect(events.filter((event) => event.data === "refused by emit")).toEqual([]);
      expect(events.at(-1)).toEqual({ event: "tick", id: next, data: "after the bad one" });
      await first.stderr.wait(
        /input\.event must not contain CR or LF/,
        5_000,
        "the example to report the malformed entry",
      );
    } finally {
      await client.close();
    }
  });
});

describe("examples/broker: instances that stop, and history that is gone", () => {
  test("SIGTERM sends a farewell and ends every stream; the eventsource client resumes on another instance", async () => {
    const stream = "farewell";
    const [leaving, staying] = await Promise.all([instance(stream), instance(stream)]);
    const client = balancedEventSource([leaving.origin, staying.origin]);
    const raw = await openStream(`${leaving.origin}/events`);
    try {
      await client.seen.next("open");
      await raw.opened;
      const e1 = await post(staying.origin, { event: "tick", data: "1" });
      expect(await client.seen.next("event")).toMatchObject({ type: "tick", data: "1", lastEventId: e1 });

      const exited = new Promise((resolve) => leaving.child.once("exit", (code) => resolve(code)));
      leaving.child.kill("SIGTERM");
      // The farewell: the retry and the comment, then a normal end of the stream.
      const rest = await raw.rest();
      expect(rest.retries).toEqual([RETRY_MS, RETRY_MS]);
      expect(rest.comments).toContain("restarting");
      expect(await within(exited, 10_000, "the instance to exit")).toBe(0);

      // While the client waits RETRY_MS to reconnect, two events go by; then one after it is back.
      await client.seen.next("error");
      const e2 = await post(staying.origin, { event: "tick", data: "2" });
      const e3 = await post(staying.origin, { event: "tick", data: "3" });
      await client.seen.next("open");
      const e4 = await post(staying.origin, { event: "tick", data: "4" });
      const after = await client.seen.events(3);
      expect(after.map((event) => [event.lastEventId, event.data])).toEqual([
        [e2, "2"],
        [e3, "3"],
        [e4, "4"],
      ]);
      expect(client.sent).toEqual([
        { origin: leaving.origin, lastEventId: undefined },
        { origin: staying.origin, lastEventId: e1 },
      ]);
    } finally {
      client.close();
      await raw.close();
    }
  });

  test("a client whose id was trimmed out of the stream receives the reset event, then live events", async () => {
    const stream = "trimmed";
    const small = await instance(stream, { MAXLEN: "10" });
    const ids: string[] = [];
    for (let n = 0; n < 60; n++) ids.push(await post(small.origin, { data: String(n) }));
    const trimmed = ids[0] as string;
    // MAXLEN ~ 10 trimmed the oldest entries: the stream no longer starts with the first one.
    const [oldest] = (await commands().xRange(stream, "-", "+", { COUNT: 1 })) ?? [];
    expect(oldest?.id).not.toBe(trimmed);

    const client = balancedEventSource([small.origin], trimmed);
    try {
      const [reset] = await client.seen.events(1);
      expect(reset?.type).toBe("reset");
      expect(JSON.parse(reset?.data ?? "")).toEqual({ reason: "history lost", lastEventId: trimmed });
      const live = await post(small.origin, { data: "live after the reset" });
      // The instance's feed may still be emitting the last of the 60 when the client connects (seen once in CI): the
      // client then gets those too, as live events after the reset, each once and in order, before the new one.
      const arrived = [];
      for (let last = undefined; last?.lastEventId !== live; ) {
        [last] = await client.seen.events(1);
        arrived.push(last);
      }
      const caughtUp = arrived.slice(0, -1).map((event) => event?.lastEventId);
      expect(caughtUp).toEqual(ids.slice(ids.length - caughtUp.length));
      expect(arrived.at(-1)).toEqual({
        kind: "event",
        type: "message",
        data: "live after the reset",
        lastEventId: live,
      });
      expect(client.sent).toEqual([{ origin: small.origin, lastEventId: trimmed }]);
    } finally {
      client.close();
    }
  });

  test("an instance that cannot reach Redis at start prints one line and exits non-zero", async () => {
    const nobody = `redis://127.0.0.1:${await freePort()}`;
    const child = spawn(process.execPath, [bundle], {
      env: { ...process.env, REDIS_URL: nobody, PORT: "0" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stderr = "";
    let stdout = "";
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => {
      stderr += chunk;
    });
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
      stdout += chunk;
    });
    try {
      const code = await within(
        new Promise((resolve) => child.once("exit", (exit) => resolve(exit))),
        10_000,
        "the instance to give up",
      );
      expect(code).toBe(1);
      expect(stdout).toBe("");
      expect(stderr.trimEnd().split("\n")).toEqual([
        expect.stringMatching(new RegExp(`^broker: cannot reach Redis at ${nobody} \\(.+\\): start redis-server`)),
      ]);
    } finally {
      child.kill("SIGKILL");
    }
  });
});
