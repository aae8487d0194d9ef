/**
 * The proof that a shared log keeps its promise under faults, the same for every engine: instance processes of an
 * example on one log, the real server, clients of the `eventsource` package spread over the instances behind a
 * stand-in load balancer, and a publisher at a steady rate. Meanwhile one instance is killed with SIGKILL and started
 * again, the log's server itself is restarted, and every client is moved to another instance twice. At the end every
 * client must have every event exactly once, in order, or have been told (onHistoryLost's `reset`) where it missed
 * some: never a silent gap.
 */
import { EventSource, type FetchLikeResponse } from "eventsource";
import type { Running } from "../runtime/harness.ts";
import { within } from "../runtime/harness.ts";

export interface ProofSetup {
  /** Starts one instance; `port` is given when a killed one starts again where it was. */
  startInstance(port?: string): Promise<Running>;
  /** Publishes tick `n` through the log; resolves with its id. */
  publish(n: number): Promise<string>;
  /** Restarts the log's server; resolves once it accepts connections again. */
  restartServer(): Promise<void>;
}

export interface ProofOptions {
  events: number;
  perSecond: number;
  clients: number;
  instances: number;
  /** The tick after which one instance is killed with SIGKILL, and started again. */
  killAt: number;
  /** The tick after which the log's server is restarted (publishing waits for it). */
  restartAt: number;
}

export interface Figures {
  events: number;
  clients: number;
  /** Connections after each client's first. */
  reconnects: number;
  /** Events a client lacks with no `reset` before the next one it got: silent gaps. */
  lost: number;
  /** Events a client got more than once. */
  doubled: number;
  /** Events a client got out of the order they were published in. */
  disordered: number;
  /** Clients told, at least once, that their id was gone (a `reset`), and the events those told clients missed. */
  told: number;
  missedWhileTold: number;
  "clients of the killed instance": number;
  "reconnect gap p50 (ms)": number;
  "reconnect gap p99 (ms)": number;
  "publishing took (ms)": number;
}

type Seen = { kind: "tick"; id: string } | { kind: "reset" };

interface Connection {
  origin: string;
  sentId: string | undefined;
  openedAt?: number;
  endedAt?: number;
  end?: "ended" | "failed" | "moved";
}

/**
 * An `eventsource` client behind a stand-in load balancer: each connection goes to the next instance, and `move()`
 * breaks the open one, as a balancer that moves a client would. The EventSource decides when to reconnect, and with
 * which Last-Event-ID; the first connection sends `seed`, so even it resumes through the log.
 */
class BalancedClient {
  readonly seen: Seen[] = [];
  readonly connections: Connection[] = [];
  /** For each reconnect: ms from losing an open stream to the next stream's first chunk. */
  readonly gaps: number[] = [];
  readonly #origins: string[];
  #next: number;
  #lostAt: number | undefined;
  #break: (() => void) | undefined;
  #moves = 0;
  readonly #source: EventSource;

  constructor(origins: string[], first: number, seed: string) {
    this.#origins = origins;
    this.#next = first;
    this.#source = new EventSource(`${origins[first]}/events`, { fetch: (_url, init) => this.#connect(init, seed) });
    this.#source.addEventListener("tick", (event) => this.seen.push({ kind: "tick", id: event.lastEventId }));
    this.#source.addEventListener("reset", () => this.seen.push({ kind: "reset" }));
  }

  get current(): Connection | undefined {
    return this.connections.at(-1);
  }

  /** The id of the last tick received. */
  get lastId(): string | undefined {
    for (let index = this.seen.length - 1; index >= 0; index--) {
      const entry = this.seen[index];
      if (entry?.kind === "tick") return entry.id;
    }
    return undefined;
  }

  /** What a failure message needs to tell why this client is behind: its last tick, and its last connections. */
  describe(): object {
    return {
      lastId: this.lastId,
      resets: this.seen.filter((entry) => entry.kind === "reset").length,
      readyState: this.#source.readyState,
      movesPending: this.#moves,
      connections: this.connections.slice(-3).map(({ origin, sentId, openedAt, end }) => ({
        origin,
        sentId,
        opened: openedAt !== undefined,
        end,
      })),
    };
  }

  /** Breaks the open connection now, or the next one as soon as it opens. */
  move(): void {
    this.#moves += 1;
    if (this.#break !== undefined) this.#break();
  }

  close(): void {
    this.#source.close();
  }

  async #connect(init: Parameters<typeof fetch>[1] & { headers: Record<string, string> }, seed: string) {
    const origin = this.#origins[this.#next % this.#origins.length] as string;
    this.#next += 1;
    const headers = { ...init.headers };
    if (this.connections.length === 0) headers["Last-Event-ID"] = seed;
    const connection: Connection = { origin, sentId: headers["Last-Event-ID"] };
    this.connections.push(connection);
    let response: Response;
    try {
      response = await fetch(`${origin}/events`, { ...init, headers });
    } catch (error) {
      connection.end = "failed";
      throw error;
    }
    const body = response.body;
    if (body === null) throw new Error(`${origin} answered ${response.status} with no body`);
    const reader = body.getReader();
    let fail: (error: Error) => void = () => {};
    const broken = new Promise<never>((_, reject) => {
      fail = reject;
    });
    broken.catch(() => {});
    const lose = (end: NonNullable<Connection["end"]>) => {
      if (connection.end !== undefined) return;
      connection.end = end;
      connection.endedAt = performance.now();
      if (connection.openedAt !== undefined) this.#lostAt = connection.endedAt;
      this.#break = undefined;
    };
    const breakIt = () => {
      this.#moves -= 1;
      lose("moved");
      fail(new Error("moved by the load balancer"));
      reader.cancel().catch(() => {});
    };
    const wrapped = {
      read: async () => {
        try {
          const result = await Promise.race([reader.read(), broken]);
          if (connection.openedAt === undefined) {
            connection.openedAt = performance.now();
            if (this.#lostAt !== undefined) this.gaps.push(connection.openedAt - this.#lostAt);
            this.#lostAt = undefined;
            this.#break = breakIt;
            if (this.#moves > 0) queueMicrotask(breakIt);
          }
          if (result.done) lose("ended");
          return result;
        } catch (error) {
          lose("failed");
          throw error;
        }
      },
      cancel: () => reader.cancel(),
      releaseLock: () => {},
    };
    return {
      body: { getReader: () => wrapped },
      url: response.url,
      status: response.status,
      redirected: response.redirected,
      headers: response.headers,
    } as unknown as FetchLikeResponse;
  }
}

/** The value below which `share` of the sorted values fall. */
function percentile(values: number[], share: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(share * sorted.length))] ?? Number.NaN;
}

/** Two distinct ticks in the middle of the run at which a client moves on purpose. */
function moveMoments(events: number): number[] {
  const moment = () => Math.floor(events * 0.07) + Math.floor(Math.random() * events * 0.8);
  const first = moment();
  let second = moment();
  while (Math.abs(second - first) < events / 60) second = moment();
  return [first, second];
}

/** Runs the whole proof; resolves with its figures once every client has the last event, and everything stopped. */
export async function underFaults(
  setup: ProofSetup,
  options: ProofOptions,
): Promise<{ figures: Figures; clients: BalancedClient[]; ids: string[]; served: BalancedClient[] }> {
  const { events, perSecond, clients: count, instances: many, killAt, restartAt } = options;
  const instances: Running[] = [];
  const clients: BalancedClient[] = [];
  let killed: Promise<BalancedClient[]> | undefined;
  try {
    // Every client starts from this event, so even its first connection resumes through the log.
    const seed = await setup.publish(0);
    instances.push(...(await Promise.all(Array.from({ length: many }, () => setup.startInstance()))));
    const origins = instances.map((instance) => instance.origin);
    for (let n = 0; n < count; n++) clients.push(new BalancedClient(origins, n % many, seed));
    await within(
      (async () => {
        while (!clients.every((client) => client.current?.openedAt !== undefined)) {
          await new Promise((resolve) => setTimeout(resolve, 20));
        }
      })(),
      15_000,
      "every client to connect",
    );

    const moves = new Map<number, BalancedClient[]>();
    for (const client of clients) {
      for (const moment of moveMoments(events)) moves.set(moment, [...(moves.get(moment) ?? []), client]);
    }

    const victim = 1;
    async function killAndRestart(): Promise<BalancedClient[]> {
      const instance = instances[victim] as Running;
      const served = clients.filter((client) => client.current?.origin === instance.origin && !client.current.end);
      const exited = new Promise((resolve) => instance.child.once("exit", resolve));
      instance.child.kill("SIGKILL");
      await exited;
      instances[victim] = await setup.startInstance(new URL(instance.origin).port);
      return served;
    }

    const ids: string[] = [];
    let start = performance.now();
    const began = start;
    for (let n = 1; n <= events; n++) {
      const wait = start + (n * 1_000) / perSecond - performance.now();
      if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
      ids.push(await setup.publish(n));
      if (n === killAt) killed = killAndRestart();
      if (n === restartAt) {
        const paused = performance.now();
        await setup.restartServer();
        // The schedule goes on from where it was, without a burst to catch up.
        start += performance.now() - paused;
      }
      for (const client of moves.get(n) ?? []) client.move();
    }
    const publishedMs = performance.now() - began;
    const last = ids.at(-1) as string;
    await within(
      (async () => {
        while (!clients.every((client) => client.lastId === last))
          await new Promise((resolve) => setTimeout(resolve, 20));
      })(),
      20_000,
      "every client to get the last event",
    ).catch((error: Error) => {
      const behind = clients.filter((client) => client.lastId !== last).map((client) => client.describe());
      throw new Error(`${error.message} (${last}); those behind: ${JSON.stringify(behind)}`);
    });
    const served = await within(killed ?? Promise.resolve([]), 10_000, "the killed instance to start again");
    for (const client of clients) client.close();

    // The judgement: each client's ticks against what was published, in order, the resets in between.
    const position = new Map(ids.map((id, index) => [id, index]));
    let lost = 0;
    let doubled = 0;
    let disordered = 0;
    let told = 0;
    let missedWhileTold = 0;
    for (const client of clients) {
      const had = new Set<string>();
      // The seed (index -1) is where every client starts.
      let at = -1;
      let reset = false;
      for (const entry of client.seen) {
        if (entry.kind === "reset") {
          reset = true;
          continue;
        }
        if (had.has(entry.id)) {
          doubled += 1;
          continue;
        }
        had.add(entry.id);
        const index = position.get(entry.id);
        if (index === undefined || index <= at) {
          disordered += 1;
          continue;
        }
        const missed = index - at - 1;
        if (missed > 0 && reset) missedWhileTold += missed;
        else lost += missed;
        at = index;
        reset = false;
      }
      if (client.seen.some((entry) => entry.kind === "reset")) told += 1;
    }
    const gaps = clients.flatMap((client) => client.gaps);
    const figures: Figures = {
      events,
      clients: count,
      reconnects: clients.reduce((sum, client) => sum + client.connections.length - 1, 0),
      lost,
      doubled,
      disordered,
      told,
      missedWhileTold,
      "clients of the killed instance": served.length,
      "reconnect gap p50 (ms)": Math.round(percentile(gaps, 0.5)),
      "reconnect gap p99 (ms)": Math.round(percentile(gaps, 0.99)),
      "publishing took (ms)": Math.round(publishedMs),
    };
    return { figures, clients, ids, served };
  } finally {
    for (const client of clients) client.close();
    await Promise.allSettled([killed]);
    await Promise.all(instances.map((instance) => instance.stop()));
  }
}
