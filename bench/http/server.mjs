/**
 * One HTTP server, one adapter, one fresh process, on whichever runtime runs it:
 * `node --expose-gc bench/http/server.mjs <adapter> <events>`, `bun bench/http/server.mjs …`,
 * `deno run -A --v8-flags=--expose-gc bench/http/server.mjs …`. Listens on 127.0.0.1, port 0, and prints one
 * JSON line `{ "port": N }` when it accepts connections.
 *
 * Routes, the same for every adapter:
 * - `GET /stream`: `<events>` small events as fast as the client reads, then the end of the body;
 * - `GET /channel`: a subscriber of the one fan-out channel; `GET /emit?k=K` sends event K to all of them;
 * - `GET /idle`: a stream whose source never yields;
 * - `GET /ticker`: an event at once, then one every 50 ms until the client leaves;
 * - `GET /orders`, `GET /orders-idle` (this library on Node only): `<events>` 1 KB JSON events, or none, served
 *   with `compress: true`;
 * - `GET /stats`: after a full garbage collection, the heap, RSS, sources still running, subscribers, timers;
 *   `GET /stats?quick`: the counters and the CPU time used so far, at once.
 */
import process from "node:process";
import { adapters, runtime } from "./adapters.mjs";

const [adapterKey, eventsArg] = process.argv.slice(2);
const make = adapters[adapterKey];
if (make === undefined) throw new Error(`usage: server.mjs <${Object.keys(adapters).join("|")}> <events>`);

const gc = globalThis.gc ?? globalThis.Bun?.gc ?? (() => {});
const settle = () => new Promise((resolve) => setTimeout(resolve, 0));
const timers = () =>
  runtime === "node" ? process.getActiveResourcesInfo().filter((r) => r === "Timeout").length : null;

/** What every adapter shares: counters the stats route reports. */
const counters = { started: 0, stopped: 0, subscribers: 0 };

/** The process's CPU time so far, user and system, in microseconds. */
const cpu = () => {
  const { user, system } = process.cpuUsage();
  return user + system;
};

/** `quick`: the counters only, without the collections that make the memory figures true. */
async function stats(quick) {
  if (quick) return { ...counters, cpu: cpu() };
  for (let i = 0; i < 4; i++) {
    gc(true);
    await settle();
  }
  const { heapUsed, rss } = process.memoryUsage();
  return { heapUsed, rss, running: counters.started - counters.stopped, ...counters, timers: timers() };
}

const server = await make({ events: Number(eventsArg ?? 1000), counters, stats });
process.stdout.write(`${JSON.stringify({ port: server.port, runtime, adapter: adapterKey })}\n`);
