/**
 * examples/broker under faults, the proof for eventsource-server/redis (test/support/proof.ts): three instances as
 * separate processes on one Redis Stream, the real redis-server, 30 `eventsource` clients spread over them, and 2,000
 * events published at 300 a second. Meanwhile one instance is killed with SIGKILL and started again, Redis itself is
 * restarted (saving nothing: the stream is gone, so every feed finds its position gone, disconnects its clients, and
 * each is told with `reset`), and every client is moved to another instance twice. Every client ends with every
 * event once, in order, or was told where it missed some: never a silent gap.
 */
import { redisStreamLog } from "eventsource-server/redis";
import { createClient } from "redis";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { bundleBroker, startBroker } from "../support/broker.ts";
import { underFaults } from "../support/proof.ts";
import { type RedisServer, startRedis } from "../support/redis.ts";

const STREAM = "faults";

let redis: RedisServer | undefined;
let bundle = "";

beforeAll(async () => {
  [redis, bundle] = await Promise.all([startRedis(), bundleBroker("broker-faults.test")]);
}, 300_000);

afterAll(async () => {
  await redis?.stop();
});

describe("examples/broker: instances under faults", () => {
  test("every client gets every event once, in order, or is told: through kill -9, a Redis restart and moves", async () => {
    const server = redis;
    if (server === undefined) throw new Error("redis did not start");
    const client = await createClient({ url: server.url })
      .on("error", () => {})
      .connect();
    const log = redisStreamLog({ client, key: STREAM, maxLength: 100_000 });
    try {
      const env = { REDIS_URL: server.url, STREAM, MAXLEN: "100000", RETRY_MS: "100" };
      const { figures, clients, served } = await underFaults(
        {
          startInstance: (port) => startBroker(bundle, port === undefined ? env : { ...env, PORT: port }),
          publish: (n) => log.publish(n === 0 ? { event: "seed" } : { event: "tick", data: String(n) }),
          restartServer: () => server.restart(),
        },
        { events: 2_000, perSecond: 300, clients: 30, instances: 3, killAt: 700, restartAt: 1_400 },
      );
      console.log(`redis under faults: ${JSON.stringify(figures, null, 2)}`);
      expect(figures.lost).toBe(0);
      expect(figures.doubled).toBe(0);
      expect(figures.disordered).toBe(0);
      // Redis kept nothing across its restart: every client's id was gone, and every client was told so.
      expect(figures.told).toBe(30);
      expect(served.length).toBeGreaterThan(0);
      for (const one of clients) {
        expect(one.connections.filter((connection) => connection.end === "moved").length).toBeGreaterThanOrEqual(2);
      }
    } finally {
      await log.close();
      client.destroy();
    }
  }, 90_000);
});
