/**
 * examples/broker, for real: a redis-server on a free port, the example spawned as its own Node process, SSE
 * clients reading with fetch and an independent parser, and events published with the redis client.
 * A machine without redis-server fails this file: a skipped test would report a pass for code that never ran.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { build } from "esbuild";
import { createClient } from "redis";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { type ParsedEvent, parseWire, readerOf } from "../helpers.ts";
import { freePort, PACKAGE_ALIAS, RESULTS, ROOT, type Running, startServer, stopperOf, within } from "./harness.ts";

const REDIS_SERVER = "/usr/bin/redis-server";
const TOPIC = "events";

/** A client's open event stream, read with fetch and parsed by eventsource-parser. */
interface Stream {
  /** Resolves once the first chunk has arrived: the server has subscribed this client to its channel. */
  opened: Promise<void>;
  /** Reads until `n` events have arrived in total, and returns them all. */
  events(n: number): Promise<ParsedEvent[]>;
  close(): Promise<void>;
}

async function openStream(url: string, headers: Record<string, string> = {}): Promise<Stream> {
  const response = await within(fetch(url, { headers }), 10_000, `fetch ${url}`);
  expect(response.headers.get("content-type")).toBe("text/event-stream; charset=utf-8");
  const reader = readerOf(response);
  const decoder = new TextDecoder();
  let wire = "";
  async function readMore(what: string): Promise<void> {
    const { done, value } = await within(reader.read(), 10_000, what);
    if (done) throw new Error(`${url} ended while waiting for ${what}:\n${wire}`);
    wire += decoder.decode(value, { stream: true });
  }
  const opened = readMore(`the first chunk of ${url}`);
  return {
    opened,
    async events(n) {
      // One read at a time: a second read racing the first would wait for a chunk that may never come.
      await opened;
      while (parseWire(wire).events.length < n) await readMore(`event ${parseWire(wire).events.length + 1}`);
      return parseWire(wire).events;
    },
    close: () => reader.cancel(),
  };
}

/** Starts redis-server on 127.0.0.1 and a free port, with nothing saved to disk; resolves once it accepts clients. */
async function startRedis(): Promise<{ url: string; stop(): Promise<void> }> {
  if (!existsSync(REDIS_SERVER)) {
    throw new Error(`${REDIS_SERVER} is missing: apt-get update && apt-get install -y redis-server`);
  }
  const port = await freePort();
  const child: ChildProcess = spawn(
    REDIS_SERVER,
    ["--bind", "127.0.0.1", "--port", String(port), "--save", "", "--appendonly", "no"],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  const stop = stopperOf(child);
  let log = "";
  try {
    await within(
      new Promise<void>((resolve, reject) => {
        child.stdout?.setEncoding("utf8").on("data", (chunk: string) => {
          log += chunk;
          if (log.includes("Ready to accept connections")) resolve();
        });
        child.once("error", reject);
        child.once("exit", (code) => reject(new Error(`redis-server exited (${code}) before it was ready:\n${log}`)));
      }),
      10_000,
      "redis-server to accept connections",
    );
  } catch (error) {
    await stop();
    throw error;
  }
  return { url: `redis://127.0.0.1:${port}`, stop };
}

describe("examples/broker: Redis pub/sub feeding an EventChannel", () => {
  let redis: Awaited<ReturnType<typeof startRedis>> | undefined;
  let broker: Running | undefined;
  let publisher: ReturnType<typeof createClient> | undefined;
  let origin = "";

  beforeAll(async () => {
    redis = await startRedis();
    // The example imports the package by name; bundling maps that name to this checkout's source, so the test
    // needs no build and never runs a stale dist/. redis stays external and resolves from node_modules.
    const outfile = `${RESULTS}broker-server.test.mjs`;
    await build({
      entryPoints: [`${ROOT}examples/broker/server.js`],
      bundle: true,
      platform: "node",
      format: "esm",
      outfile,
      external: ["redis"],
      alias: PACKAGE_ALIAS,
      logLevel: "silent",
    });
    // It prints its URL only once it has subscribed, so nothing published after that is missed.
    broker = await startServer(process.execPath, [outfile], { env: { PORT: "0", REDIS_URL: redis.url } });
    origin = broker.origin;
    publisher = createClient({ url: redis.url });
    await publisher.connect();
  });

  afterAll(async () => {
    await publisher?.close().catch(() => {});
    await broker?.stop();
    await redis?.stop();
  });

  async function publish(event: unknown): Promise<void> {
    // PUBLISH answers with the number of subscribers that got the message: the example, and only it.
    if (publisher === undefined) throw new Error("the publisher did not connect");
    expect(await publisher.publish(TOPIC, typeof event === "string" ? event : JSON.stringify(event))).toBe(1);
  }

  test("an event published to Redis reaches two connected clients", async () => {
    const alice = await openStream(`${origin}/events`);
    const bob = await openStream(`${origin}/events`);
    try {
      await Promise.all([alice.opened, bob.opened]);
      await publish({ event: "note", id: "n1", data: { text: "hello from redis" } });
      await publish("plain text is the data of a message event");
      const expected = [
        { event: "note", id: "n1", data: '{"text":"hello from redis"}' },
        { data: "plain text is the data of a message event" },
      ];
      expect(await alice.events(2)).toEqual(expected);
      expect(await bob.events(2)).toEqual(expected);
    } finally {
      await Promise.all([alice.close(), bob.close()]);
    }
  });

  test("a client that reconnects with Last-Event-ID gets what was published while it was away", async () => {
    const watcher = await openStream(`${origin}/events`);
    try {
      await watcher.opened;
      for (const id of ["r1", "r2", "r3"]) await publish({ id, data: `resume ${id}` });
      // Once the watcher has seen r3, the example has emitted all three onto its channel.
      expect((await watcher.events(3)).map((event) => event.id)).toEqual(["r1", "r2", "r3"]);
    } finally {
      await watcher.close();
    }
    const returning = await openStream(`${origin}/events`, { "last-event-id": "r1" });
    try {
      expect(await returning.events(2)).toEqual([
        { id: "r2", data: "resume r2" },
        { id: "r3", data: "resume r3" },
      ]);
    } finally {
      await returning.close();
    }
  });

  test("a malformed event is reported by the example and does not stop the next one", async () => {
    const client = await openStream(`${origin}/events`);
    try {
      await client.opened;
      await publish({ type: "tick" });
      await publish({ event: "tick", data: "after the bad one" });
      expect(await client.events(1)).toEqual([{ event: "tick", data: "after the bad one" }]);
      await broker?.stderr.wait(/unknown key "type"/, 5_000, "the example to report the malformed event");
    } finally {
      await client.close();
    }
  });
});
