/**
 * examples/postgres, for real: a throwaway PostgreSQL, instances of the example as separate Node processes on one
 * topic, clients reading with fetch and an independent parser, events published with POST /events. First its routes,
 * then the proof for eventsource-server/postgres under faults (test/support/proof.ts): three instances
 * as separate processes on one topic, a real PostgreSQL, 30 `eventsource` clients spread over them, and 2,000 events
 * published at 300 a second. Meanwhile one instance is killed with SIGKILL and started again, PostgreSQL itself
 * crashes and starts again (keeping every committed row, so the feeds reconnect and read on from where they were), and
 * every client is moved to another instance twice. Every client ends with every event once, in order.
 */
import { spawn } from "node:child_process";
import { postgresLog } from "eventsource-server/postgres";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { parseWire, readerOf } from "../helpers.ts";
import { bundlePostgresExample, startPostgresExample } from "../support/broker.ts";
import { type PostgresServer, startPostgres } from "../support/postgres.ts";
import { underFaults } from "../support/proof.ts";
import { type Running, within } from "./harness.ts";

const TOPIC = "faults";

let postgres: PostgresServer | undefined;
let bundle = "";
const running: Running[] = [];

beforeAll(async () => {
  [postgres, bundle] = await Promise.all([startPostgres(), bundlePostgresExample("postgres-example.test")]);
}, 300_000);

afterAll(async () => {
  await Promise.all(running.map((instance) => instance.stop()));
  await postgres?.stop();
});

async function instance(topic: string): Promise<Running> {
  if (postgres === undefined) throw new Error("postgres did not start");
  const started = await startPostgresExample(bundle, { DATABASE_URL: postgres.url, TOPIC: topic, RETRY_MS: "300" });
  running.push(started);
  return started;
}

async function post(origin: string, body: unknown): Promise<Response> {
  return fetch(`${origin}/events`, { method: "POST", body: JSON.stringify(body) });
}

/** Reads a stream until it has `count` events. */
async function eventsOf(response: Response, count: number) {
  const reader = readerOf(response);
  const decoder = new TextDecoder();
  let text = "";
  while (parseWire(text).events.length < count) {
    const { done, value } = await within(reader.read(), 10_000, `${count} events`);
    if (done) throw new Error(`the stream ended after ${JSON.stringify(text)}`);
    text += decoder.decode(value, { stream: true });
  }
  await reader.cancel();
  return parseWire(text).events;
}

describe("examples/postgres: one topic of a table feeding the EventChannel of every instance", () => {
  test("an event published on one instance reaches a client of the other, its bigint id as the event id", async () => {
    const [first, second] = await Promise.all([instance("shared"), instance("shared")]);
    const listening = await fetch(`${second.origin}/events`);
    const response = await post(first.origin, { event: "note", data: { n: 1 } });
    expect(response.status).toBe(201);
    const { id } = (await response.json()) as { id: string };
    expect(id).toMatch(/^\d+$/);
    expect(await eventsOf(listening, 1)).toEqual([{ event: "note", id, data: '{"n":1}' }]);
    // A client that comes back to the first instance with an older id gets what it missed.
    const later = (await (await post(second.origin, { data: "later" })).json()) as { id: string };
    const resumed = await fetch(`${first.origin}/events`, { headers: { "last-event-id": id } });
    expect(await eventsOf(resumed, 1)).toEqual([{ id: later.id, data: "later" }]);
  });

  test("POST answers 400 for an event the channel would refuse", async () => {
    const one = await instance("refused");
    const response = await post(one.origin, { event: "two\nlines", data: "x" });
    expect(response.status).toBe(400);
    expect(((await response.json()) as { error: string }).error).toMatch(/input\.event must not contain CR or LF/);
  });

  test("an instance that cannot reach PostgreSQL at start prints one line and exits non-zero", async () => {
    const child = spawn(process.execPath, [bundle], {
      env: { ...process.env, DATABASE_URL: "postgresql://postgres@/postgres?host=/nonexistent", PORT: "0" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stderr = "";
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => {
      stderr += chunk;
    });
    try {
      const code = await within(new Promise((resolve) => child.once("exit", resolve)), 10_000, "the instance to exit");
      expect(code).toBe(1);
      expect(stderr.trimEnd().split("\n")).toEqual([
        expect.stringMatching(/^postgres example: cannot reach PostgreSQL at postgresql:\/\/.+ \(.+\): start it/),
      ]);
    } finally {
      child.kill("SIGKILL");
    }
  });
});

describe("examples/postgres: instances under faults", () => {
  test("every client gets every event once, in order: through kill -9, a crash of PostgreSQL and moves", async () => {
    const server = postgres;
    if (server === undefined) throw new Error("postgres did not start");
    const pool = new pg.Pool({ ...server.config, max: 2 });
    pool.on("error", () => {});
    const log = postgresLog({ pool, topic: TOPIC, keep: 100_000 });
    await log.setup();
    /** Publishes, trying again while the server is down: no publish is under way when it goes. */
    async function publish(n: number): Promise<string> {
      for (let attempt = 1; ; attempt++) {
        try {
          return await log.publish(n === 0 ? { event: "seed" } : { event: "tick", data: String(n) });
        } catch (error) {
          if (attempt === 100) throw error;
          await new Promise((resolve) => setTimeout(resolve, 50));
        }
      }
    }
    try {
      const env = { DATABASE_URL: server.url, TOPIC, KEEP: "100000", RETRY_MS: "100" };
      const { figures, clients, served } = await underFaults(
        {
          startInstance: (port) => startPostgresExample(bundle, port === undefined ? env : { ...env, PORT: port }),
          publish,
          restartServer: () => server.restart(),
        },
        { events: 2_000, perSecond: 300, clients: 30, instances: 3, killAt: 700, restartAt: 1_400 },
      );
      console.log(`postgres under faults: ${JSON.stringify(figures, null, 2)}`);
      expect(figures.lost).toBe(0);
      expect(figures.doubled).toBe(0);
      expect(figures.disordered).toBe(0);
      // PostgreSQL kept every row through its crash: no feed lost its position, so nobody had to be told.
      expect(figures.told).toBe(0);
      expect(served.length).toBeGreaterThan(0);
      for (const one of clients) {
        expect(one.connections.filter((connection) => connection.end === "moved").length).toBeGreaterThanOrEqual(2);
      }
    } finally {
      await log.close();
      await pool.end();
    }
  }, 90_000);
});
