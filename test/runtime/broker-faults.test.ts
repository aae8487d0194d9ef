/**
 * Instances under faults: three instances of examples/broker as separate processes, one redis-server, 30
 * clients spread over them, and a publisher XADDing 3,000 events at about 300 per second. While it runs, one
 * instance is killed with SIGKILL and started again on the same port, Redis drops another instance's feed
 * connection while clients move onto it, every client moves to another instance twice on purpose, and
 * `maxDuration` ends streams by itself. Every client must end with every event exactly
 * once, in order: 0 lost, 0 doubled.
 */
import { createClient } from "redis";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { type BrokerEnv, bundleBroker, startBroker } from "../support/broker.ts";
import { type RedisServer, startRedis } from "../support/redis.ts";
import { type Received, ResumingClient } from "../support/resuming-client.ts";
import { type Running, within } from "./harness.ts";

const EVENTS = 3_000;
const PER_SECOND = 300;
const CLIENTS = 30;
const INSTANCES = 3;
/** The publisher's event number at which one instance is killed. */
const KILL_AT = 1_000;
/**
 * The event number at which Redis drops one instance's feed connection (the instance reads again about half a
 * second later), and the one at which the clients of another instance move onto it while its feed is behind
 * them: the history must wait for the feed, or those clients get events twice.
 */
const CUT_FEED_AT = 2_000;
const MOVE_ONTO_LAGGING_AT = 2_030;
const STREAM = "faults";

let redis: RedisServer | undefined;
let bundle = "";

beforeAll(async () => {
  [redis, bundle] = await Promise.all([startRedis(), bundleBroker("broker-faults.test")]);
}, 300_000);

afterAll(async () => {
  await redis?.stop();
});

/** The value below which `share` of the sorted values fall. */
function percentile(values: number[], share: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(share * sorted.length))] ?? Number.NaN;
}

/** Two distinct publisher event numbers in the middle of the run, at which a client moves on purpose. */
function moveMoments(): number[] {
  const moment = () => 200 + Math.floor(Math.random() * (EVENTS - 600));
  const first = moment();
  let second = moment();
  while (Math.abs(second - first) < 50) second = moment();
  return [first, second];
}

describe("examples/broker: instances under faults", () => {
  test("every client gets every event exactly once, in order, through kill -9, a cut feed, moves and maxDuration", async () => {
    if (redis === undefined) throw new Error("redis did not start");
    const publisher = createClient({ url: redis.url });
    await publisher.connect();
    const instances: Running[] = [];
    const clients: ResumingClient[] = [];
    const runs: Promise<void>[] = [];
    let killed: Promise<ResumingClient[]> | undefined;
    /** For each client of the killed instance, the index of the connection it had there. */
    let dropped = new Map<ResumingClient, number>();
    try {
      const env: BrokerEnv = {
        REDIS_URL: redis.url,
        STREAM,
        MAXLEN: "100000",
        RETRY_MS: "100",
        MAX_DURATION_MS: "2500",
      };
      // Every client starts from this entry, so even its first connection resumes through the history.
      const seed = await publisher.xAdd(STREAM, "*", { event: "seed", data: "" });
      instances.push(...(await Promise.all(Array.from({ length: INSTANCES }, () => startBroker(bundle, env)))));
      const origins = instances.map((instance) => instance.origin);

      const deadline = performance.now() + 45_000;
      for (let n = 0; n < CLIENTS; n++) {
        const client = new ResumingClient(`client ${n}`, origins, n % INSTANCES, seed);
        clients.push(client);
        const run = client.run(deadline);
        // Judged below, through Promise.all: a client that fails early must not count as an unhandled rejection.
        run.catch(() => {});
        runs.push(run);
      }
      await within(Promise.all(clients.map((client) => client.opened)), 10_000, "every client to connect");

      const moves = new Map<number, ResumingClient[]>();
      for (const client of clients) {
        for (const moment of moveMoments()) moves.set(moment, [...(moves.get(moment) ?? []), client]);
      }

      // The killed instance, and the clients it was serving when it died.
      const victim = 1;
      const victimOrigin = origins[victim] as string;
      async function killAndRestart(): Promise<ResumingClient[]> {
        const instance = instances[victim] as Running;
        const exited = new Promise((resolve) => instance.child.once("exit", resolve));
        const served = clients.filter((client) => client.current?.origin === victimOrigin && client.current.opened);
        dropped = new Map(served.map((client) => [client, client.connections.length - 1]));
        instance.child.kill("SIGKILL");
        await exited;
        const port = new URL(victimOrigin).port;
        instances[victim] = await startBroker(bundle, { ...env, PORT: port });
        return served;
      }

      // Redis drops the feed connection of this instance: its feed falls behind the other instances'.
      const lagging = 2;
      async function cutFeed(): Promise<void> {
        const name = `broker-${instances[lagging]?.child.pid}-feed`;
        const list = String(await publisher.sendCommand(["CLIENT", "LIST"]));
        const id = /\bid=(\d+)/.exec(list.split("\n").find((line) => line.includes(` name=${name} `)) ?? "")?.[1];
        if (id === undefined) throw new Error(`no Redis connection named ${name}:\n${list}`);
        await publisher.sendCommand(["CLIENT", "KILL", "ID", id]);
      }
      /** Moves made on top of the two planned ones: onto the lagging instance. */
      const extraMoves = new Map<ResumingClient, number>();

      const ids: string[] = [];
      const started = performance.now();
      for (let n = 1; n <= EVENTS; n++) {
        const due = started + (n * 1_000) / PER_SECOND;
        const wait = due - performance.now();
        if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
        ids.push(
          await publisher.xAdd(
            STREAM,
            "*",
            { event: "tick", data: String(n) },
            {
              TRIM: { strategy: "MAXLEN", strategyModifier: "~", threshold: 100_000 },
            },
          ),
        );
        if (n === KILL_AT) killed = killAndRestart();
        if (n === CUT_FEED_AT) await cutFeed();
        if (n === MOVE_ONTO_LAGGING_AT) {
          // Each client's next instance is the one after its current one: these go to the lagging instance.
          for (const client of clients) {
            const { current } = client;
            if (current === undefined || current.origin !== origins[lagging - 1] || current.end !== undefined) continue;
            client.move();
            extraMoves.set(client, 1);
          }
        }
        for (const client of moves.get(n) ?? []) client.move();
      }
      const publishedMs = performance.now() - started;
      const last = ids.at(-1) as string;
      await within(
        Promise.all(clients.map((client) => client.reached(last))),
        15_000,
        "every client to get the last event",
      );
      const served = await within(killed ?? Promise.resolve([]), 10_000, "the killed instance to restart");
      for (const client of clients) client.stop();
      await Promise.all(runs);

      // The judgement: each client's events against what was published.
      const expected: Received[] = ids.map((id, n) => ({ id, event: "tick", data: String(n + 1) }));
      let lost = 0;
      let doubled = 0;
      for (const client of clients) {
        const seen = new Map<string, number>();
        for (const event of client.received) seen.set(event.id, (seen.get(event.id) ?? 0) + 1);
        lost += ids.filter((id) => !seen.has(id)).length;
        doubled += client.received.length - seen.size;
      }
      const reconnects = clients.reduce((sum, client) => sum + client.connections.length - 1, 0);
      const connections = clients.flatMap((client) => client.connections);
      const count = (end: string) => connections.filter((connection) => connection.end === end).length;
      const gaps = clients.flatMap((client) => client.gaps);
      const figures = {
        events: EVENTS,
        clients: CLIENTS,
        reconnects,
        "ended by the server (maxDuration)": count("ended"),
        "failed (the killed instance, refused connections)": count("failed"),
        "moved on purpose": count("moved"),
        "clients of the killed instance": served.length,
        "clients moved onto the lagging instance": extraMoves.size,
        lost,
        doubled,
        "reconnect gap p50 (ms)": Math.round(percentile(gaps, 0.5)),
        "reconnect gap p99 (ms)": Math.round(percentile(gaps, 0.99)),
        "publishing took (ms)": Math.round(publishedMs),
      };
      console.log(`broker under faults: ${JSON.stringify(figures, null, 2)}`);

      expect(lost).toBe(0);
      expect(doubled).toBe(0);
      for (const client of clients) expect(client.received, client.name).toEqual(expected);
      for (const client of clients) expect(client.notices, `${client.name} was never told to reset`).toEqual([]);

      // Every client of the killed instance lost that stream and resumed on another instance with its id.
      expect(served.length).toBeGreaterThan(0);
      for (const client of served) {
        const at = dropped.get(client) ?? -1;
        const lostOne = client.connections[at];
        const next = client.connections[at + 1];
        expect(lostOne?.origin).toBe(victimOrigin);
        expect(next?.origin, `${client.name} went elsewhere`).not.toBe(victimOrigin);
        expect(next?.sentId, `${client.name} resumed with its Last-Event-ID`).toBe(lostOne?.lastId);
        expect(next?.sentId).not.toBeNull();
      }
      // Every client moved twice on purpose, and every reconnect sent the id of the last event received.
      for (const client of clients) {
        const planned = 2 + (extraMoves.get(client) ?? 0);
        expect(client.connections.filter((connection) => connection.end === "moved")).toHaveLength(planned);
        for (const [n, connection] of client.connections.entries()) {
          if (n > 0) expect(connection.sentId).toBe(client.connections[n - 1]?.lastId);
        }
      }
      // The lagging instance saw its feed connection dropped, and clients moved onto it meanwhile.
      await instances[lagging]?.stderr.wait(
        /XREAD faults failed/,
        1_000,
        "the lagging instance to report its cut feed",
      );
      expect(extraMoves.size).toBeGreaterThan(0);
      // maxDuration ended streams by itself.
      expect(count("ended")).toBeGreaterThan(0);
    } finally {
      for (const client of clients) client.stop();
      await Promise.allSettled([...runs, killed]);
      await Promise.all(instances.map((instance) => instance.stop()));
      await publisher.close();
    }
  }, 90_000);
});
