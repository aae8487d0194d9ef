/**
 * examples/postgres under faults, the proof for eventsource-server/postgres (test/support/proof.ts): three instances
 * as separate processes on one topic, a real PostgreSQL, 30 `eventsource` clients spread over them, and 2,000 events
 * published at 300 a second. Meanwhile one instance is killed with SIGKILL and started again, PostgreSQL itself
 * crashes and starts again (keeping every committed row, so the feeds reconnect and read on from where they were), and
 * every client is moved to another instance twice. Every client ends with every event once, in order.
 */
import { postgresLog } from "eventsource-server/postgres";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { bundlePostgresExample, startPostgresExample } from "../support/broker.ts";
import { type PostgresServer, startPostgres } from "../support/postgres.ts";
import { underFaults } from "../support/proof.ts";

const TOPIC = "faults";

let postgres: PostgresServer | undefined;
let bundle = "";

beforeAll(async () => {
  [postgres, bundle] = await Promise.all([startPostgres(), bundlePostgresExample("postgres-faults.test")]);
}, 300_000);

afterAll(async () => {
  await postgres?.stop();
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
