/**
 * The three log entries as a user receives them: no runtime dependency (they import nothing but the package's own
 * modules, so importing one needs neither a client library nor workerd), an `EventLog` each, exported from the root
 * as a type, and clients typed by the few methods called on them, so the clients users have fit, and so does an
 * object with only those methods. `npm run typecheck` compiles this file: a type that does not fit fails the run.
 */
import { readFileSync } from "node:fs";
import { dirname, join, normalize } from "node:path";
import { EventChannel, type EventHistory, type EventLog } from "eventsource-server";
import { type DurableObjectLogStorage, durableObjectLog } from "eventsource-server/cloudflare";
import { type PostgresListener, type PostgresLog, type PostgresPool, postgresLog } from "eventsource-server/postgres";
import { type RedisClient, redisStreamLog } from "eventsource-server/redis";
import type { Redis } from "ioredis";
import type pg from "pg";
import type { createClient } from "redis";
import { describe, expect, expectTypeOf, test } from "vitest";
import { ROOT } from "../runtime/harness.ts";

/** Every module an entry loads, itself included, as paths from the root; fails on an import that is not relative. */
function modulesOf(entry: string): { modules: string[]; outside: string[] } {
  const modules: string[] = [];
  const outside: string[] = [];
  const queue = [entry];
  while (queue.length > 0) {
    const path = queue.shift() as string;
    if (modules.includes(path)) continue;
    modules.push(path);
    const text = readFileSync(join(ROOT, path), "utf8");
    for (const [, specifier = ""] of text.matchAll(/^(?:import|export)[^;]*?from\s+"([^"]+)"/gms)) {
      if (specifier.startsWith(".")) queue.push(normalize(join(dirname(path), specifier)));
      else outside.push(`${path}: ${specifier}`);
    }
  }
  return { modules, outside };
}

describe("the log entries", () => {
  test.each(["src/redis.ts", "src/postgres.ts", "src/cloudflare.ts"])(
    "%s imports nothing but the package's own modules",
    (entry) => {
      const { modules, outside } = modulesOf(entry);
      expect(modules).toContain("src/logs/feed.ts");
      expect(outside).toEqual([]);
    },
  );

  test("the package has no runtime dependency", () => {
    const manifest = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as {
      dependencies?: unknown;
      peerDependencies?: unknown;
      optionalDependencies?: unknown;
    };
    expect(manifest.dependencies).toBeUndefined();
    expect(manifest.peerDependencies).toBeUndefined();
    expect(manifest.optionalDependencies).toBeUndefined();
  });

  test("each returns an EventLog, the root's type, which is a channel's history", () => {
    expectTypeOf(redisStreamLog).returns.toEqualTypeOf<EventLog>();
    expectTypeOf(durableObjectLog).returns.toEqualTypeOf<EventLog>();
    expectTypeOf(postgresLog).returns.toEqualTypeOf<PostgresLog>();
    expectTypeOf<PostgresLog>().toExtend<EventLog & { setup(): Promise<void> }>();
    expectTypeOf<EventLog>().toExtend<EventHistory>();
    expectTypeOf<EventLog["publish"]>().returns.toEqualTypeOf<Promise<string>>();
    expectTypeOf<EventLog["close"]>().returns.toEqualTypeOf<Promise<void>>();
    // A channel of typed events is fed too.
    const log = redisStreamLog({ client: { call: async () => null, duplicate: () => null }, key: "k" });
    log.feed(new EventChannel<{ tick: number }>());
    void log.close();
  });

  test("the clients users have fit the structural types: node-redis, ioredis, a pg Pool and Client", () => {
    expectTypeOf<ReturnType<typeof createClient>>().toExtend<RedisClient>();
    expectTypeOf<Redis>().toExtend<RedisClient>();
    expectTypeOf<pg.Pool>().toExtend<PostgresPool>();
    expectTypeOf<pg.Client>().toExtend<PostgresListener>();
  });

  test("and so does an object with only the methods each log calls: no client or workerd types are needed", async () => {
    const sent: string[][] = [];
    const redis: RedisClient = {
      sendCommand: async (args: string[]) => {
        sent.push(args);
        return "1-0";
      },
      duplicate: () => redis,
    };
    expect(await redisStreamLog({ client: redis, key: "k" }).publish("x")).toBe("1-0");
    expect(sent).toEqual([["XADD", "k", "MAXLEN", "~", "10000", "*", "data", "x"]]);

    const pool: PostgresPool = {
      query: async () => ({ rows: [{ id: "7" }] }),
      connect: () => Promise.reject(new Error("not needed to publish")),
    };
    expect(await postgresLog({ pool, topic: "t", keep: 1_000_000 }).publish("x")).toBe("7");

    const data = new Map<string, unknown>();
    const storage: DurableObjectLogStorage = {
      get: async (key) => data.get(key),
      list: async () => new Map(),
      delete: async () => 0,
      transaction: (closure) =>
        closure({
          put: async (entries) => {
            for (const [key, value] of Object.entries(entries)) data.set(key, value);
          },
          delete: async () => 0,
        }),
    };
    expect(await durableObjectLog(storage).publish("x")).toBe("1");
    expect(data.get("event:last")).toBe(1);
    // The channel takes every one as its history.
    new EventChannel({ history: durableObjectLog(storage) }).close();
  });
});
