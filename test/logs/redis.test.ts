/**
 * eventsource-server/redis against a real redis-server: the shared contract (test/logs/contract.ts) with node-redis and
 * with ioredis, then what only a Redis Stream does: XADD's MAXLEN, the feed's own connection, entries written by
 * other programs, a restart that loses the stream, and Bun's built-in client.
 */
import { spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { EventChannel } from "eventsource-server";
import { type RedisClient, redisStreamLog } from "eventsource-server/redis";
import { Redis } from "ioredis";
import { createClient } from "redis";
import { afterAll, beforeAll, describe, expect, test, vi } from "vitest";
import { binary, ROOT, within } from "../runtime/harness.ts";
import { type RedisServer, startRedis } from "../support/redis.ts";
import { type Engine, type Gate, logContract, type OpenOptions, until } from "./contract.ts";

/** A connected node-redis client of the default kind (RESP3 from node-redis 6 on). */
async function connect(url: string, name?: string) {
  return createClient(name === undefined ? { url } : { url, name })
    .on("error", () => {})
    .connect();
}

type NodeRedis = Awaited<ReturnType<typeof connect>>;

let server: RedisServer | undefined;
let folder = "";
let admin: NodeRedis | undefined;

beforeAll(async () => {
  folder = await mkdtemp(join(tmpdir(), "eventsource-redis-"));
  // Saved to an append-only file, so that a stop and a start keep the streams (the outage tests); small stream nodes,
  // so that MAXLEN ~ 10 trims after a few dozen entries instead of hundreds.
  server = await startRedis([
    "--appendonly",
    "yes",
    "--appendfsync",
    "no",
    "--dir",
    folder,
    "--stream-node-max-entries",
    "10",
  ]);
  admin = await connect(server.url);
}, 300_000);

afterAll(async () => {
  await admin?.close();
  await server?.stop();
  await rm(folder, { recursive: true, force: true });
});

function running(): { server: RedisServer; admin: NodeRedis } {
  if (server === undefined || admin === undefined) throw new Error("redis did not start");
  return { server, admin };
}

/** A node-redis client whose XREAD answers come back through `gate`. */
function gatedNodeRedis(client: NodeRedis, gate: Gate): RedisClient {
  return {
    sendCommand: (args: string[]) => {
      const answer = client.sendCommand(args);
      return args[0] === "XREAD" ? gate.through(answer) : answer;
    },
    duplicate: () => client.duplicate(),
  };
}

/** An ioredis client whose XREAD answers come back through `gate`. */
function gatedIoRedis(client: Redis, gate: Gate): RedisClient {
  return {
    call: (command: string, ...args: string[]) => {
      const answer = client.call(command, ...args);
      return command === "XREAD" ? gate.through(answer) : answer;
    },
    duplicate: () => client.duplicate(),
  };
}

/** What both clients' engines share: the server's own commands, through the admin connection. */
function engineOf(label: string, open: Engine["open"]): Engine {
  return {
    label,
    name: "redisStreamLog",
    idPattern: /^\d+-\d+$/,
    foreignId: "1-1",
    open,
    async ids(key) {
      const entries = await running().admin.xRange(key, "-", "+");
      return (entries ?? []).map((entry) => entry.id);
    },
    write: (key, fields) => running().admin.xAdd(key, "*", fields),
    bulk(key, count) {
      const { admin: client } = running();
      return Promise.all(Array.from({ length: count }, (_, n) => client.xAdd(key, "*", { data: String(n) })));
    },
    async clear(key) {
      await running().admin.xTrim(key, "MAXLEN", 0);
    },
    async poison() {
      // Over its memory limit, Redis refuses every write and still serves reads.
      const { admin: client } = running();
      await client.configSet({ maxmemory: "1", "maxmemory-policy": "noeviction" });
      return async () => {
        await client.configSet({ maxmemory: "0" });
      };
    },
    async outage() {
      const { server: redis } = running();
      await redis.stop();
      return () => redis.start();
    },
  };
}

logContract(
  engineOf("node-redis", async (key, options: OpenOptions = {}) => {
    const { server: redis } = running();
    const client = await connect(redis.url);
    const reader = options.gate === undefined ? undefined : await connect(redis.url);
    const log = redisStreamLog({
      client,
      key,
      ...(options.keep === undefined ? {} : { maxLength: options.keep }),
      ...(options.serialize === undefined ? {} : { serialize: options.serialize }),
      ...(reader === undefined || options.gate === undefined ? {} : { reader: gatedNodeRedis(reader, options.gate) }),
    });
    return {
      log,
      async close() {
        await log.close();
        reader?.destroy();
        client.destroy();
      },
    };
  }),
);

logContract(
  engineOf("ioredis", async (key, options: OpenOptions = {}) => {
    const { server: redis } = running();
    const settings = { host: "127.0.0.1", port: redis.port, retryStrategy: () => 100 };
    const client = new Redis(settings).on("error", () => {});
    const reader = options.gate === undefined ? undefined : new Redis(settings).on("error", () => {});
    const log = redisStreamLog({
      client,
      key,
      ...(options.keep === undefined ? {} : { maxLength: options.keep }),
      ...(options.serialize === undefined ? {} : { serialize: options.serialize }),
      ...(reader === undefined || options.gate === undefined ? {} : { reader: gatedIoRedis(reader, options.gate) }),
    });
    return {
      log,
      async close() {
        await log.close();
        reader?.disconnect();
        client.disconnect();
      },
    };
  }),
);

/** The connections Redis has open now, by name. */
async function connections(): Promise<string[]> {
  const list = String(await running().admin.sendCommand(["CLIENT", "LIST"]));
  return list
    .trim()
    .split("\n")
    .map((line) => /\bname=(\S*)/.exec(line)?.[1] ?? "");
}

describe("redisStreamLog, a Redis Stream", () => {
  test("publishes with XADD … MAXLEN ~ 10000 by default, or ~ maxLength", async () => {
    const { server: redis } = running();
    const client = await connect(redis.url);
    const sent: string[][] = [];
    const spy: RedisClient = {
      sendCommand: (args: string[]) => {
        sent.push(args);
        return client.sendCommand(args);
      },
      duplicate: () => client.duplicate(),
    };
    try {
      await redisStreamLog({ client: spy, key: "maxlen-default" }).publish("x");
      await redisStreamLog({ client: spy, key: "maxlen-given", maxLength: 25 }).publish({ event: "e", data: "y" });
      expect(sent).toEqual([
        ["XADD", "maxlen-default", "MAXLEN", "~", "10000", "*", "data", "x"],
        ["XADD", "maxlen-given", "MAXLEN", "~", "25", "*", "event", "e", "data", "y"],
      ]);
    } finally {
      client.destroy();
    }
  });

  test("feeds on a duplicate() of the client, which close() closes; the user's clients stay open", async () => {
    const { server: redis } = running();
    const client = await connect(redis.url, "users-own");
    const log = redisStreamLog({ client, key: "own-reader" });
    const channel = new EventChannel();
    const emitted: unknown[] = [];
    channel.emit = (input) => void emitted.push(input);
    const before = (await connections()).length;
    log.feed(channel);
    const id = await log.publish("x");
    await until(emitted, 1, "events");
    expect(emitted).toEqual([{ id, data: "x" }]);
    // node-redis's duplicate() keeps the name.
    expect((await connections()).filter((name) => name === "users-own")).toHaveLength(2);
    expect((await connections()).length).toBe(before + 1);
    await log.close();
    // close() closes the duplicate from this side; Redis lists it until it has read the close.
    await vi.waitFor(async () => expect((await connections()).filter((name) => name === "users-own")).toHaveLength(1), {
      timeout: 5_000,
      interval: 20,
    });
    expect(await client.ping()).toBe("PONG");
    client.destroy();
  });

  test("feeds on the reader it is given, duplicates nothing, and leaves it open", async () => {
    const { server: redis } = running();
    const client = await connect(redis.url);
    const reader = await connect(redis.url);
    const duplicate = vi.spyOn(client, "duplicate");
    const log = redisStreamLog({ client, reader, key: "given-reader" });
    const channel = new EventChannel();
    const emitted: unknown[] = [];
    channel.emit = (input) => void emitted.push(input);
    log.feed(channel);
    const id = await log.publish("x");
    await until(emitted, 1, "events");
    expect(emitted).toEqual([{ id, data: "x" }]);
    await log.close();
    expect(duplicate).not.toHaveBeenCalled();
    // Still open (a command on it would wait for the feed's last blocked XREAD, up to a second).
    expect(reader.isOpen).toBe(true);
    reader.destroy();
    client.destroy();
  });

  test("reads an entry another program wrote with data, event, retry and comment fields; ignores other fields", async () => {
    const { server: redis, admin: client } = running();
    const own = await connect(redis.url);
    const log = redisStreamLog({ client: own, key: "by-hand" });
    const first = await client.xAdd("by-hand", "*", { data: "hello" });
    const second = await client.xAdd("by-hand", "*", {
      event: "note",
      data: "x",
      retry: "100",
      comment: "c",
      other: "y",
    });
    const third = await client.xAdd("by-hand", "*", { event: "ping" });
    const answer = await log.after(first, { signal: new AbortController().signal });
    const events: unknown[] = [];
    for await (const event of answer as AsyncIterable<unknown>) events.push(event);
    expect(events).toEqual([
      { id: second, event: "note", data: "x", retry: 100, comment: "c" },
      { id: third, event: "ping" },
    ]);
    own.destroy();
  });

  test("checks its options: a TypeError names the option", () => {
    const client = createClient();
    const cases: [unknown, string][] = [
      [undefined, "redisStreamLog: options must be an object, got undefined"],
      [{ client, key: "k", maxLen: 5 }, 'redisStreamLog: options.maxLen is not an option; did you mean "maxLength"?'],
      [
        { client: {}, key: "k" },
        "redisStreamLog: options.client must be a node-redis, ioredis or Bun Redis client, got an object",
      ],
      [{ client, key: "" }, 'redisStreamLog: options.key must be a non-empty string, got ""'],
      [{ client, key: "k", maxLength: 0 }, "redisStreamLog: options.maxLength must be a positive safe integer, got 0"],
      [
        { client, key: "k", reader: "r" },
        'redisStreamLog: options.reader must be a node-redis, ioredis or Bun Redis client, got "r"',
      ],
      [{ client, key: "k", serialize: 1 }, "redisStreamLog: options.serialize must be a function, got 1"],
    ];
    for (const [options, message] of cases) {
      expect(() => redisStreamLog(options as never)).toThrowError(new TypeError(message));
    }
  });
});

describe("redisStreamLog when Redis restarts without saving", () => {
  let bare: RedisServer | undefined;

  beforeAll(async () => {
    bare = await startRedis();
  });

  afterAll(async () => {
    await bare?.stop();
  });

  test("the feed finds its position gone: it disconnects every subscriber, who is told on resuming, and reads on", async () => {
    if (bare === undefined) throw new Error("redis did not start");
    const errors = vi.spyOn(console, "error").mockImplementation(() => {});
    const client = await connect(bare.url);
    const log = redisStreamLog({ client, key: "lost" });
    const channel = new EventChannel({ history: log, onHistoryLost: (id) => ({ event: "reset", data: id }) });
    const emitted: { id?: string | number }[] = [];
    const emit = channel.emit.bind(channel);
    channel.emit = (input) => {
      emit(input);
      emitted.push(input as { id?: string });
    };
    log.feed(channel);
    const seen = await log.publish("seen");
    await until(emitted, 1, "events");
    const subscriber = channel.response();
    const body = subscriber.text();
    await bare.restart();
    const next = await within(log.publish("after the restart"), 10_000, "a publish after the restart");
    // The feed reads the new entry, finds "seen" gone, disconnects, and reads on from the stream's end.
    await within(body, 10_000, "the subscriber to be disconnected");
    expect(emitted.map((event) => event.id)).toEqual([seen]);
    const again = await log.publish("read on");
    await until(emitted, 2, "events");
    expect(emitted.map((event) => event.id)).toEqual([seen, again]);
    expect(next).not.toBe(again);
    const resumed = channel.response(new Request("http://x/", { headers: { "last-event-id": seen } }));
    const reader = resumed.body?.getReader();
    let text = "";
    while (!text.includes("event: reset")) text += new TextDecoder().decode((await reader?.read())?.value);
    expect(text).toContain(`event: reset\ndata: ${seen}\n\n`);
    await reader?.cancel();
    expect(errors.mock.calls.some(([error]) => /cannot show it missed nothing/.test(String(error)))).toBe(true);
    await log.close();
    client.destroy();
  });
});

describe("redisStreamLog on Bun's built-in RedisClient", () => {
  test("publishes, feeds and replays through send()", async () => {
    const { server: redis } = running();
    const script = `
      import { EventChannel } from "${ROOT}src/index.ts";
      import { redisStreamLog } from "${ROOT}src/redis.ts";
      const client = new Bun.RedisClient("${redis.url}");
      const log = redisStreamLog({ client, key: "bun" });
      const first = await log.publish("before");
      const channel = new EventChannel({ history: log });
      const emitted = [];
      const emit = channel.emit.bind(channel);
      channel.emit = (input) => { emit(input); emitted.push(input); };
      log.feed(channel);
      await new Promise((resolve) => setTimeout(resolve, 300));
      const second = await log.publish({ event: "note", data: { n: 1 } });
      while (emitted.length < 1) await new Promise((resolve) => setTimeout(resolve, 10));
      const replayed = [];
      for await (const event of await log.after(first, { signal: new AbortController().signal })) replayed.push(event);
      await log.close();
      client.close();
      console.log(JSON.stringify({ second, emitted, replayed }));
    `;
    const child = spawn(binary("bun"), ["--eval", script], { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
      stdout += chunk;
    });
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => {
      stderr += chunk;
    });
    const code = await within(
      new Promise((resolve) => child.once("exit", resolve)),
      15_000,
      "bun to run the log",
    ).finally(() => child.kill("SIGKILL"));
    expect(code, stderr).toBe(0);
    const { second, emitted, replayed } = JSON.parse(stdout) as {
      second: string;
      emitted: unknown[];
      replayed: unknown[];
    };
    const event = { event: "note", id: second, data: '{"n":1}' };
    expect(emitted).toEqual([event]);
    expect(replayed).toEqual([event]);
  });
});
