/**
 * Hostile clients against real Bun.serve, Deno.serve and node:http servers (test/runtime/hostile-server.ts, one
 * process per test), over real sockets: raw node:net clients that send a request and never read a byte, clients that
 * reset their connection, and a churn of clients that come and go. Each test measures the server's memory as the
 * kernel reports it (its RSS, and the bytes its sockets hold unsent) before, at the peak, and after, and prints the
 * figures. test/hostile-node.test.ts holds the Node versions that need Node's own objects; here Node runs the same
 * server, for comparison. `npm test` runs a sized-down version; `npm run test:ci` runs the sizes of issue 21.
 */
import { once } from "node:events";
import { readFileSync } from "node:fs";
import { connect, type Socket } from "node:net";
import { beforeAll, describe, expect, test } from "vitest";
import { parseWire, readerOf } from "../helpers.ts";
import { binary, bundleExample, DENO_ENV, ROOT, type Running, startServer, within } from "./harness.ts";

const { EVENTSOURCE_SERVER_CI } = process.env;
const FULL = EVENTSOURCE_SERVER_CI === "1";
/** Clients that never read, on one channel: issue 21's 500 under test:ci, 100 under npm test (2 shared cores). */
const STALLED = FULL ? 500 : 100;
/** Clients resuming from the start of the 19 MB log and never reading. */
const RESUMING = 20;
/** Connect-read-leave cycles, and how many at a time. */
const CHURN = FULL ? 2_000 : 400;
const RESETS = FULL ? 500 : 100;

const SERVER = `${ROOT}test/runtime/hostile-server.ts`;
const MB = 1_000_000;

type RuntimeName = "node" | "bun, idleTimeout 0" | "bun, default idleTimeout" | "deno";

let nodeBundle = "";
beforeAll(async () => {
  nodeBundle = await bundleExample("test/runtime/hostile-server.ts", "hostile-server");
});

/** What one test opened: its server and its clients, ended after it whatever happened (tests run concurrently). */
type Opened = { close(): Promise<void> | void }[];

/** Runs `body` with a list of what it opens, and closes all of it at the end. */
function scoped<T>(body: (opened: Opened) => Promise<T>): () => Promise<T> {
  return async () => {
    const opened: Opened = [];
    try {
      return await body(opened);
    } finally {
      await Promise.all(opened.map((one) => one.close()));
    }
  };
}

interface Server extends Running {
  port: number;
  pid: number;
  stats(): Promise<Stats>;
  /** The server's heap in use after a full collection. */
  heap(): Promise<number>;
}

interface Stats {
  logEvents: number;
  yielded: number;
  yieldedMost: number;
  logsStopped: number;
  ticksOpened: number;
  ticksCleaned: number;
  rejected: number;
  subscribers: number;
  replaying: number;
  lostSubscribers: number;
}

async function start(opened: Opened, runtime: RuntimeName): Promise<Server> {
  let running: Running;
  if (runtime === "node") running = await startServer(process.execPath, ["--expose-gc", nodeBundle]);
  else if (runtime === "deno") {
    const config = `${ROOT}examples/deno/deno.json`;
    const args = ["run", "--allow-net=127.0.0.1", "--v8-flags=--expose-gc", "--config", config, SERVER];
    running = await startServer(binary("deno"), args, { env: DENO_ENV });
  } else {
    const env: Record<string, string> = runtime === "bun, idleTimeout 0" ? { IDLE_TIMEOUT: "0" } : {};
    running = await startServer(binary("bun"), [SERVER], { env, cwd: `${ROOT}test/runtime/` });
  }
  opened.push({ close: () => running.stop() });
  const pid = running.child.pid as number;
  return {
    ...running,
    port: Number(new URL(running.origin).port),
    pid,
    stats: async () => (await (await within(fetch(`${running.origin}/stats`), 10_000, "/stats")).json()) as Stats,
    heap: async () => (await (await within(fetch(`${running.origin}/heap`), 10_000, "/heap")).json()) as number,
  };
}

/** The server process's resident memory, from the kernel. */
function rss(server: Server): number {
  const status = readFileSync(`/proc/${server.pid}/status`, "utf8");
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1]) * 1024;
}

/**
 * The server's ends of the connections from `clients` that the kernel still holds, closed by the process or not, and
 * the bytes they hold unsent (an orphaned socket keeps its send buffer until its client reads it or the kernel gives
 * up). From /proc/net/tcp: a socket's local and remote addresses in hex, its state, then its send queue.
 */
function serverEnds(server: Server, clients: Socket[]): { sockets: number; unsent: number } {
  const ports = new Set(clients.map((client) => client.localPort));
  let sockets = 0;
  let unsent = 0;
  for (const line of readFileSync("/proc/net/tcp", "utf8").split("\n").slice(1)) {
    const [, local, remote, , queues] = line.trim().split(/\s+/);
    if (local === undefined || remote === undefined || queues === undefined) continue;
    if (Number.parseInt(local.split(":")[1] ?? "", 16) !== server.port) continue;
    if (!ports.has(Number.parseInt(remote.split(":")[1] ?? "", 16))) continue;
    sockets++;
    unsent += Number.parseInt(queues.split(":")[0] ?? "", 16);
  }
  return { sockets, unsent };
}

/** `n` clients that send their request over a raw socket and never read a byte of the answer. */
async function neverReading(opened: Opened, server: Server, path: string, n: number, headers = ""): Promise<Socket[]> {
  const sockets: Socket[] = [];
  for (let i = 0; i < n; i++) {
    const socket = connect(server.port, "127.0.0.1");
    // Paused before it connects: Node never reads it, and only the kernel's buffers take what the server writes.
    socket.pause();
    socket.on("error", () => {});
    socket.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\n${headers}\r\n`);
    sockets.push(socket);
  }
  opened.push({ close: () => dropAll(sockets) });
  await Promise.all(sockets.map((socket) => (socket.connecting ? once(socket, "connect") : undefined)));
  return sockets;
}

function dropAll(sockets: Socket[]): void {
  for (const socket of sockets) socket.destroy();
}

/** Polls `check` every 100 ms until it holds; fails loudly, with what it last saw, after `ms`. */
async function until<T>(read: () => T | Promise<T>, check: (value: T) => boolean, ms: number, what: string) {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await read();
    if (check(value)) return value;
    if (Date.now() > deadline)
      throw new Error(`gave up after ${ms} ms waiting for ${what}; last saw ${JSON.stringify(value)}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const mb = (bytes: number) => `${(bytes / MB).toFixed(0)} MB`;
const kb = (bytes: number) => `${(bytes / 1_000).toFixed(0)} KB`;

// At issue 21's size, one runtime at a time: 500 stalled clients fill 2 GB of the kernel's socket buffers, past the
// point where it starts to squeeze every socket's (tcp_mem), so running them side by side would skew the figures.
const stalledDescribe = FULL ? describe.sequential : describe.concurrent;

stalledDescribe(`${STALLED} clients that never read, on a channel emitting 64 KiB 20 times a second`, () => {
  /**
   * Connects the clients, emits until the channel has evicted every one, then watches the server's ends of their
   * connections. Returns the figures, printed too.
   */
  async function stallAndEvict(opened: Opened, runtime: RuntimeName) {
    const server = await start(opened, runtime);
    await server.stats();
    const baseline = rss(server);
    const clients = await neverReading(opened, server, "/channel", STALLED);
    await until(server.stats, (stats) => stats.subscribers === STALLED, 20_000, "every client to subscribe");
    await within(fetch(`${server.origin}/emit?bytes=65536&every=50`, { method: "POST" }), 10_000, "/emit");
    const started = performance.now();
    let peak = baseline;
    let peakUnsent = 0;
    const sample = () => {
      peak = Math.max(peak, rss(server));
      peakUnsent = Math.max(peakUnsent, serverEnds(server, clients).unsent);
    };
    await until(
      async () => {
        sample();
        return (await server.stats()).subscribers;
      },
      (subscribers) => subscribers === 0,
      30_000,
      "the channel to evict every client",
    );
    const evicted = performance.now();
    await within(fetch(`${server.origin}/stop`, { method: "POST" }), 10_000, "/stop");
    return { server, clients, baseline, peak, peakUnsent, evictedAfter: evicted - started, evicted, sample };
  }

  test.each(["node", "bun, idleTimeout 0", "bun, default idleTimeout"] as const)(
    "%s: each is evicted, its connection dropped within 5 s, and its memory released",
    (runtime) =>
      scoped(async (opened) => {
        const { server, clients, baseline, peak, peakUnsent, evictedAfter, evicted, sample } = await stallAndEvict(
          opened,
          runtime,
        );
        // The contract's 5 s after the end, and time for a loaded machine to show it.
        const dropped = await until(
          () => {
            sample();
            return serverEnds(server, clients);
          },
          (ends) => ends.sockets === 0,
          8_000,
          "the server to drop every evicted client's connection",
        );
        const droppedAfter = performance.now() - evicted;
        // Issue 21 measures 10 s after the eviction; npm test, once the connections are gone.
        if (FULL) await pause(10_000 - droppedAfter);
        const released = rss(server);
        const releasedAfter = performance.now() - evicted;
        console.log(
          `${runtime}: ${STALLED} stalled clients evicted after ${(evictedAfter / 1_000).toFixed(1)} s, their ` +
            `connections dropped ${(droppedAfter / 1_000).toFixed(1)} s later; RSS ${mb(baseline)} before, ` +
            `${mb(peak)} at the peak (${kb((peak - baseline) / STALLED)} per client), ${mb(released)} ` +
            `${(releasedAfter / 1_000).toFixed(1)} s after the eviction; unsent in the server's sockets: ` +
            `${mb(peakUnsent)} at the peak (${kb(peakUnsent / STALLED)} per client), ` +
            `${mb(dropped.unsent)} once dropped`,
        );
        expect(droppedAfter).toBeLessThan(7_500);
        // Issue 21 measured 2.4 MB per stalled client on Bun, a copy of its backlog that Bun held outside the heap.
        expect((peak - baseline) / STALLED).toBeLessThan(MB);
        // Issue 21's target for Bun. Node's heap keeps more of what it grew to until a later collection.
        expect(released - baseline).toBeLessThan((runtime === "node" ? 100 : 50) * MB);
      })(),
    60_000,
  );

  test(
    "deno: each is evicted, but Deno keeps its connection until the client leaves (docs/runtimes.md)",
    scoped(async (opened) => {
      const { server, clients, baseline, peak, evictedAfter, sample } = await stallAndEvict(opened, "deno");
      // Past the 5 s in which the package errors each body: Deno reads it only once the socket takes more.
      await pause(6_500);
      sample();
      const held = serverEnds(server, clients);
      const heldRss = rss(server);
      dropAll(clients);
      const gone = await until(
        () => serverEnds(server, clients),
        (ends) => ends.sockets === 0,
        8_000,
        "Deno to let go of the connections once their clients left",
      );
      const after = rss(server);
      console.log(
        `deno: ${STALLED} stalled clients evicted after ${(evictedAfter / 1_000).toFixed(1)} s; RSS ${mb(baseline)} ` +
          `before, ${mb(peak)} at the peak (${kb((peak - baseline) / STALLED)} per client), ${mb(heldRss)} 6.5 s ` +
          `after the eviction with ${held.sockets} connections still open holding ${mb(held.unsent)} unsent ` +
          `(${kb(held.unsent / STALLED)} per client), ${mb(after)} once the clients left (${mb(gone.unsent)} unsent)`,
      );
      // A canary: when Deno drops a connection whose body errored while its socket was full, this fails, and the
      // Deno paragraph of docs/runtimes.md can go.
      expect(held.sockets).toBe(STALLED);
      expect(after - baseline).toBeLessThan(150 * MB);
    }),
    60_000,
  );
});

describe.concurrent(`${RESUMING} clients resuming from the start of a 19 MB log, never reading`, () => {
  test.each(["node", "bun, idleTimeout 0", "deno"] as const)(
    "%s: the log is read only as fast as each client reads, and let go of when it leaves",
    (runtime) =>
      scoped(async (opened) => {
        const server = await start(opened, runtime);
        await server.stats();
        const baseline = rss(server);
        const clients = await neverReading(opened, server, "/replay", RESUMING, "Last-Event-ID: 0\r\n");
        // Each client's kernel buffers take about 4 MB (a thousand events), a page and the cap a few more; the old
        // replay read the whole log for each.
        const { logEvents } = await server.stats();
        const bound = Math.floor(logEvents * 0.4);
        let peak = baseline;
        let last = -1;
        let unchanged = 0;
        const held = await until(
          async () => {
            peak = Math.max(peak, rss(server));
            const stats = await server.stats();
            if (stats.yieldedMost >= bound) throw new Error(`a client was sent ${stats.yieldedMost} events of the log`);
            unchanged = stats.yielded === last && stats.replaying === RESUMING ? unchanged + 1 : 0;
            last = stats.yielded;
            return stats;
          },
          () => unchanged >= 5,
          20_000,
          "the log reads to stop",
        );
        dropAll(clients);
        const stopped = await until(
          server.stats,
          (stats) => stats.replaying === 0 && stats.logsStopped === RESUMING,
          10_000,
          "every client's log reader to be stopped once it left",
        );
        const after = rss(server);
        console.log(
          `${runtime}: ${RESUMING} clients resuming from the start of a log of ${logEvents} events of 4 KiB: at most ` +
            `${held.yieldedMost} events read for one client, ${held.yielded} in all; RSS ${mb(baseline)} before, ` +
            `${mb(peak)} at the peak, ${mb(after)} after they left`,
        );
        expect(held.yieldedMost).toBeLessThan(bound);
        expect(stopped.logsStopped).toBe(RESUMING);
        expect(peak - baseline).toBeLessThan(150 * MB);
      })(),
  );
});

/** Reads a response to its end: its text, and whether the body failed instead of ending cleanly. */
async function readToEnd(response: Response): Promise<{ text: string; failed: boolean }> {
  const reader = readerOf(response);
  const decoder = new TextDecoder();
  let text = "";
  try {
    for (;;) {
      const { done, value } = await within(reader.read(), 10_000, `the body of ${response.url}`);
      if (done) return { text, failed: false };
      text += decoder.decode(value, { stream: true });
    }
  } catch {
    return { text, failed: true };
  }
}

const EVERY_RUNTIME = ["node", "bun, idleTimeout 0", "deno"] as const;

/** Fails, saying so, when the server has exited (an unhandled rejection ends Bun and Deno) or stopped answering. */
async function alive(server: Server, after: string): Promise<Stats> {
  try {
    return await server.stats();
  } catch (error) {
    const { exitCode, signalCode } = server.child;
    throw new Error(`the server stopped answering ${after} (exit: ${exitCode ?? signalCode ?? "none"}): ${error}`);
  }
}

describe.concurrent("callbacks that are async and reject", () => {
  test.each(EVERY_RUNTIME)(
    "%s: onError, onHistoryLost and onClose that reject are reported, and the server carries on",
    (runtime) =>
      scoped(async (opened) => {
        const server = await start(opened, runtime);
        // onError rejects: handled as a throw, so the body fails after what was written before.
        const failing = await readToEnd(await within(fetch(`${server.origin}/reject/on-error`), 10_000, "on-error"));
        expect(parseWire(failing.text).events).toEqual([{ data: "before the failure" }]);
        expect(failing.failed).toBe(true);
        // onHistoryLost rejects: reported, and the client gets live events all the same.
        const controller = new AbortController();
        opened.push({ close: () => controller.abort() });
        const lost = await within(
          fetch(`${server.origin}/reject/on-history-lost`, {
            headers: { "last-event-id": "gone" },
            signal: controller.signal,
          }),
          10_000,
          "on-history-lost",
        );
        await until(
          () => alive(server, "after onHistoryLost rejected"),
          (stats) => stats.rejected === 2 && stats.lostSubscribers === 1,
          10_000,
          "onHistoryLost",
        );
        await within(fetch(`${server.origin}/emit-lost`, { method: "POST" }), 10_000, "/emit-lost");
        const reader = readerOf(lost);
        let text = "";
        while (parseWire(text).events.length === 0) {
          const { value } = await within(reader.read(), 10_000, "the live event after the lost history");
          text += new TextDecoder().decode(value);
        }
        expect(parseWire(text).events).toEqual([{ id: "live", data: "live after the lost history" }]);
        // onClose rejects: reported, nothing else.
        await readToEnd(await within(fetch(`${server.origin}/reject/on-close`), 10_000, "on-close"));
        const stats = await until(
          () => alive(server, "after onClose rejected"),
          (counted) => counted.rejected === 3,
          10_000,
          "onClose",
        );
        expect(stats.rejected).toBe(3);
        expect(server.child.exitCode).toBeNull();
        const reported = server.stderr.seen.join("\n");
        for (const label of ["onError", "onHistoryLost", "onClose"]) expect(reported).toContain(`${label} rejects`);
      })(),
  );
});

describe.concurrent("a stream whose source and onError fail before its first bytes are sent", () => {
  test.each(EVERY_RUNTIME)("%s: its client sees the stream's start, then a failure", (runtime) =>
    scoped(async (opened) => {
      const server = await start(opened, runtime);
      const response = await within(fetch(`${server.origin}/early-failure`), 10_000, "the headers");
      expect(response.status).toBe(200);
      expect(response.headers.get("content-type")).toBe("text/event-stream; charset=utf-8");
      const { text, failed } = await readToEnd(response);
      expect(text).toBe(":\n\n");
      expect(failed).toBe(true);
      expect(server.child.exitCode).toBeNull();
    })(),
  );
});

/** `n` clients that reset their connection (RST) as soon as its first bytes arrive, 50 at a time. */
async function resets(opened: Opened, server: Server, n: number): Promise<void> {
  for (let done = 0; done < n; done += 50) {
    const batch = Array.from({ length: Math.min(50, n - done) }, () => {
      const socket = connect(server.port, "127.0.0.1");
      socket.on("error", () => {});
      opened.push({ close: () => void socket.destroy() });
      socket.write("GET /ticks HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
      socket.once("data", () => socket.resetAndDestroy());
      return once(socket, "close");
    });
    await within(Promise.all(batch), 10_000, "a batch of resets");
  }
}

/** `n` clients that read their first event and leave, 50 at a time. */
async function churn(server: Server, n: number): Promise<void> {
  for (let done = 0; done < n; done += 50) {
    const batch = Array.from({ length: Math.min(50, n - done) }, async () => {
      const controller = new AbortController();
      const response = await fetch(`${server.origin}/ticks`, { signal: controller.signal });
      const reader = readerOf(response);
      let text = "";
      while (parseWire(text).events.length === 0) text += new TextDecoder().decode((await reader.read()).value);
      controller.abort();
      await reader.closed.catch(() => {});
    });
    await within(Promise.all(batch), 10_000, "a batch of clients coming and going");
  }
}

describe.concurrent(`${RESETS} clients that reset their connection and ${CHURN} that come and go, twice`, () => {
  test.each(EVERY_RUNTIME)(
    "%s: every source is stopped, and a second round leaves no more heap than the first",
    (runtime) =>
      scoped(async (opened) => {
        const server = await start(opened, runtime);
        await server.stats();
        const baseline = rss(server);
        const after: number[] = [];
        const heaps: number[] = [];
        for (let round = 1; round <= 2; round++) {
          await resets(opened, server, RESETS);
          await churn(server, CHURN);
          await until(
            server.stats,
            (counted) =>
              counted.ticksOpened === round * (RESETS + CHURN) && counted.ticksCleaned === counted.ticksOpened,
            10_000,
            `every source's finally, round ${round}`,
          );
          heaps.push(await server.heap());
          after.push(rss(server));
        }
        const [first = 0, second = 0] = after;
        const [firstHeap = 0, secondHeap = 0] = heaps;
        const perCycle = (secondHeap - firstHeap) / (RESETS + CHURN);
        console.log(
          `${runtime}: ${RESETS} resets and ${CHURN} clients coming and going, twice: every source stopped; RSS ` +
            `${mb(baseline)} before, ${mb(first)} after the first round, ${mb(second)} after the second; heap after ` +
            `a full collection ${kb(firstHeap)}, then ${kb(secondHeap)} (${perCycle.toFixed(0)} B per cycle)`,
        );
        // A second round must not add to what the first left after a full collection: 2 KB per cycle would be a leak.
        expect(perCycle).toBeLessThan(2_000);
        expect(server.child.exitCode).toBeNull();
      })(),
  );
});

describe.concurrent("the runtimes themselves, without the package (test/runtime/stalled-body.ts)", () => {
  interface State {
    pulled: number;
    open: boolean;
  }

  test.each([
    ["bun", "", "keeps"],
    ["bun", "?direct", "drops"],
    ["deno", "", "keeps"],
  ] as const)(
    "%s%s: a body that errors while its client reads nothing %s the connection",
    // A canary of the runtimes' own timing, not of this package: on a loaded machine Bun has once let go of a default
    // stream's connection whose socket had not quite filled. Another try tells a runtime that changed from a slow turn.
    { retry: 2 },
    (runtime, query, what) =>
      scoped(async (opened) => {
        const file = `${ROOT}test/runtime/stalled-body.ts`;
        const running =
          runtime === "bun"
            ? await startServer(binary("bun"), [file])
            : await startServer(binary("deno"), ["run", "--allow-net=127.0.0.1", file], { env: DENO_ENV });
        opened.push({ close: () => running.stop() });
        const server: Server = {
          ...running,
          port: Number(new URL(running.origin).port),
          pid: running.child.pid as number,
          stats: () => Promise.reject(new Error("no stats here")),
          heap: () => Promise.reject(new Error("no heap here")),
        };
        const kept = what === "keeps";
        const state = async () => (await (await fetch(`${server.origin}/state`)).json()) as State;
        const clients = await neverReading(opened, server, `/body${query}`, 1);
        let last = -1;
        let unchanged = 0;
        const full = await until(
          state,
          (now) => {
            unchanged = now.pulled === last ? unchanged + 1 : 0;
            last = now.pulled;
            return now.pulled > 0 && unchanged >= 5;
          },
          10_000,
          "the body to stop being pulled",
        );
        const before = serverEnds(server, clients);
        await within(fetch(`${server.origin}/error`, { method: "POST" }), 10_000, "/error");
        // The 5 s the package gives a client to read its last bytes, and a margin.
        await pause(kept ? 6_000 : 500);
        const after = await state();
        const ends = serverEnds(server, clients);
        console.log(
          `${runtime}${query} without the package: ${mb(full.pulled)} taken from the body, then it stopped; ` +
            `${mb(before.unsent)} unsent in the socket; after the body errored: ` +
            `${after.open ? "still open" : "dropped"}, ` +
            `${ends.sockets} socket holding ${mb(ends.unsent)} unsent`,
        );
        // A canary where it is kept: when the runtime drops such a connection itself, docs/runtimes.md can say so.
        const seen = JSON.stringify({ full, before, after, ends });
        expect(after.open, seen).toBe(kept);
        expect(ends.sockets, seen).toBe(kept ? 1 : 0);
        dropAll(clients);
        await until(state, (now) => !now.open, 10_000, "the runtime to let go of the response once its client left");
      })(),
  );
});
