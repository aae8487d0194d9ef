/**
 * What every runtime test shares: starting a server process and finding its URL, recording what a real
 * EventSource client saw, and the client scenarios themselves, run the same way against every runtime.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { createServer, type RequestListener, type Server } from "node:http";
import { connect as http2Connect, type IncomingHttpHeaders } from "node:http2";
import type { AddressInfo } from "node:net";
import { fileURLToPath, pathToFileURL } from "node:url";
import { build, type Plugin } from "esbuild";
import { type Browser, chromium } from "playwright-core";
import { expect, test } from "vitest";
import { type ParsedEvent, parseWire, readerOf } from "../helpers.ts";
import { JSON_DATA, UNICODE_SEEN } from "./probe.ts";

export const ROOT = fileURLToPath(new URL("../../", import.meta.url));
/** Where tests write what they leave behind (screenshots, bundles); gitignored. */
export const RESULTS = `${ROOT}test-results/`;

/** A runtime binary from node_modules/.bin, spawned directly (killing `npx` would orphan the runtime). */
export function binary(name: string): string {
  const path = `${ROOT}node_modules/.bin/${name}`;
  // A missing runtime fails the run: a skipped runtime test would report a pass for code that never ran.
  if (!existsSync(path)) throw new Error(`${name} is not installed at ${path}: run npm install in the root`);
  return path;
}

/** Deno, kept offline and inside the project. */
export const DENO_ENV = { DENO_DIR: `${ROOT}.deno`, DENO_NO_UPDATE_CHECK: "1", NO_COLOR: "1" };

/** Rejects with a message that says what was being waited for, if `promise` takes longer than `ms`. */
export function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`gave up after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}

/** Yields each line a stream of text writes, as it comes. */
class Lines {
  readonly seen: string[] = [];
  private waiters: { match: RegExp; resolve: (line: string) => void }[] = [];
  private partial = "";

  feed(chunk: string): void {
    const parts = (this.partial + chunk).split("\n");
    this.partial = parts.pop() ?? "";
    for (const line of parts) {
      this.seen.push(line);
      const matched = this.waiters.filter((w) => w.match.test(line));
      this.waiters = this.waiters.filter((w) => !matched.includes(w));
      for (const w of matched) w.resolve(line);
    }
  }

  /** The first line, already seen or still to come, that matches. */
  wait(match: RegExp, ms: number, what: string): Promise<string> {
    const found = this.seen.find((line) => match.test(line));
    if (found !== undefined) return Promise.resolve(found);
    return within(new Promise<string>((resolve) => this.waiters.push({ match, resolve })), ms, what);
  }
}

/** Stops a child process: SIGTERM, then SIGKILL if it has not exited within 3 s; resolves once it has exited. */
export function stopperOf(child: ChildProcess): () => Promise<void> {
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  return async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill("SIGTERM");
    const killer = setTimeout(() => child.kill("SIGKILL"), 3_000);
    await exited;
    clearTimeout(killer);
  };
}

export interface Running {
  child: ChildProcess;
  /** The `http://127.0.0.1:PORT` the process printed. */
  origin: string;
  stdout: Lines;
  stderr: Lines;
  /** Ends the process (SIGTERM, then SIGKILL) and waits until it has exited. */
  stop(): Promise<void>;
}

/**
 * Spawns a server and waits for it to print its URL; the process is killed if it never does. `command` must be
 * a binary, not a wrapper such as npx that would leave the runtime running when killed.
 */
export async function startServer(
  command: string,
  args: string[],
  options: { cwd?: string; env?: Record<string, string>; readyMs?: number } = {},
): Promise<Running> {
  const child = spawn(command, args, {
    cwd: options.cwd ?? ROOT,
    env: { ...process.env, ...options.env },
    stdio: ["pipe", "pipe", "pipe"],
  });
  const stdout = new Lines();
  const stderr = new Lines();
  child.stdout?.setEncoding("utf8").on("data", (chunk: string) => stdout.feed(chunk));
  child.stderr?.setEncoding("utf8").on("data", (chunk: string) => stderr.feed(chunk));
  const stop = stopperOf(child);
  try {
    const failed = new Promise<never>((_, reject) => {
      child.once("error", reject);
      child.once("exit", (code, signal) =>
        reject(new Error(`${command} exited (${code ?? signal}) before listening:\n${stderr.seen.join("\n")}`)),
      );
    });
    const line = await Promise.race([
      stdout.wait(/http:\/\/127\.0\.0\.1:\d+/, options.readyMs ?? 20_000, `${command} to print its URL`),
      failed,
    ]);
    const origin = /http:\/\/127\.0\.0\.1:\d+/.exec(line)?.[0];
    if (origin === undefined) throw new Error(`no URL in ${JSON.stringify(line)}`);
    return { child, origin, stdout, stderr, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}

/** What an EventSource client did, in order. */
export type Seen =
  | { kind: "open" }
  | { kind: "error" }
  | { kind: "event"; type: string; data: string; lastEventId: string };

/** Keeps what a client saw, and hands it out in order to a test that awaits it. */
export class Recorder {
  private readonly items: Seen[] = [];
  private read = 0;
  private waiter: (() => void) | undefined;

  push(item: Seen): void {
    this.items.push(item);
    this.waiter?.();
  }

  /** The next thing seen that matches `kind` (others before it are skipped); fails after `ms`. */
  async next<K extends Seen["kind"]>(kind: K, ms = 10_000): Promise<Extract<Seen, { kind: K }>> {
    const deadline = Date.now() + ms;
    for (;;) {
      while (this.read < this.items.length) {
        const item = this.items[this.read++] as Seen;
        if (item.kind === kind) return item as Extract<Seen, { kind: K }>;
      }
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no ${kind} within ${ms} ms; saw ${JSON.stringify(this.items)}`);
      await within(
        new Promise<void>((resolve) => {
          this.waiter = resolve;
        }),
        left,
        `a client's ${kind}; saw ${JSON.stringify(this.items)}`,
      );
      this.waiter = undefined;
    }
  }

  /** The next `n` events, whatever opens and errors come between them. */
  async events(n: number, ms = 10_000): Promise<Extract<Seen, { kind: "event" }>[]> {
    const events: Extract<Seen, { kind: "event" }>[] = [];
    while (events.length < n) events.push(await this.next("event", ms));
    return events;
  }
}

/** A connected client: what it sees, and a way to close it as a user would. */
export interface Client {
  seen: Recorder;
  close(): Promise<void>;
}

/** Opens a real EventSource on `url`, listening for `message` and each of `types`. */
export type Connect = (url: string, types: string[]) => Promise<Client>;

/** The same structural shape all EventSource implementations share, for the clients that run in Node. */
interface EventSourceLike {
  addEventListener(type: string, listener: (event: { data?: unknown; lastEventId?: unknown }) => void): void;
  close(): void;
}

/** A `Connect` for an EventSource class that runs in this process (the `eventsource` package, undici's). */
export function connectWith(EventSourceClass: new (url: string) => EventSourceLike): Connect {
  return async (url, types) => {
    const seen = new Recorder();
    const source = new EventSourceClass(url);
    source.addEventListener("open", () => seen.push({ kind: "open" }));
    source.addEventListener("error", () => seen.push({ kind: "error" }));
    for (const type of ["message", ...types]) {
      source.addEventListener(type, (event) =>
        seen.push({ kind: "event", type, data: String(event.data), lastEventId: String(event.lastEventId) }),
      );
    }
    return { seen, close: async () => source.close() };
  };
}

let keys = 0;
/** A key no other test uses, so gates on a shared server never cross. */
export function uniqueKey(label: string): string {
  keys += 1;
  return `${label.replace(/\W+/g, "-")}-${process.pid}-${keys}`;
}

async function text(url: string, init?: RequestInit): Promise<string> {
  const response = await within(fetch(url, init), 10_000, `fetch ${url}`);
  expect(response.status).toBeLessThan(300);
  return response.text();
}

/**
 * Registers the client scenarios for one runtime and one client. `origin` is read when a test runs, so the
 * server may start in `beforeAll`.
 */
export function clientScenarios(label: string, origin: () => string, connect: Connect): void {
  const release = (key: string) => text(`${origin()}/probe/release?key=${key}`, { method: "POST" });
  const produced = async (key: string) => Number(await text(`${origin()}/probe/produced?key=${key}`));

  test(`${label}: the client opens before the first event is produced, and gets each event before the next is produced`, async () => {
    const key = uniqueKey(label);
    const client = await connect(`${origin()}/probe/gated?key=${key}`, ["step"]);
    try {
      await client.seen.next("open", 5_000);
      expect(await produced(key)).toBe(0);
      for (const id of [1, 2, 3]) {
        await release(key);
        const event = await client.seen.next("event");
        expect(event).toEqual({ kind: "event", type: "step", data: `step ${id}`, lastEventId: String(id) });
        // The server has produced this event and no other: it reached the client on its own.
        expect(await produced(key)).toBe(id);
      }
    } finally {
      await client.close();
    }
  });

  test(`${label}: multi-line unicode data and a named JSON event arrive exactly`, async () => {
    const client = await connect(`${origin()}/probe/text`, ["json"]);
    try {
      const [message, json] = await client.seen.events(2);
      expect(message).toEqual({ kind: "event", type: "message", data: UNICODE_SEEN, lastEventId: "" });
      expect(json?.type).toBe("json");
      expect(JSON.parse(json?.data ?? "")).toEqual(JSON_DATA);
    } finally {
      await client.close();
    }
  });

  test(`${label}: a reconnecting client sends Last-Event-ID and the server resumes after it`, async () => {
    const client = await connect(`${origin()}/probe/resume`, ["resume"]);
    try {
      const events = await client.seen.events(4);
      expect(events.map((e) => [e.lastEventId, e.data])).toEqual([
        ["1", "after none"],
        ["2", "after none"],
        ["3", "after 2"],
        ["4", "after 2"],
      ]);
    } finally {
      await client.close();
    }
  });

  test(`${label}: a client that leaves ends the stream once, and onClose says so with the bytes it was sent`, async () => {
    const key = uniqueKey(label);
    const client = await connect(`${origin()}/probe/closing?key=${key}`, ["step"]);
    try {
      await release(key);
      expect((await client.seen.next("event")).data).toBe("step 1");
    } finally {
      await client.close();
    }
    const ended = JSON.parse(await text(`${origin()}/probe/ended?key=${key}`)) as Record<string, unknown>[];
    const sent = ":\n\n" + "event: step\nid: 1\ndata: step 1\n\n";
    expect(ended).toEqual([
      {
        reason: "client",
        events: 1,
        bytes: new TextEncoder().encode(sent).length,
        duration: expect.any(Number),
        lastEventId: "1",
      },
    ]);
    // Exactly once: a second look, a moment later, finds the same single end.
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(JSON.parse(await text(`${origin()}/probe/ended?key=${key}`))).toHaveLength(1);
  });

  test(`${label}: closing the client runs the source's finally on the server`, async () => {
    const key = uniqueKey(label);
    const client = await connect(`${origin()}/probe/gated?key=${key}`, ["step"]);
    try {
      await release(key);
      expect((await client.seen.next("event")).data).toBe("step 1");
    } finally {
      await client.close();
    }
    // A long poll that answers once the finally block has run: no sleep, and a deadline that fails loudly.
    expect(await text(`${origin()}/probe/cleaned?key=${key}`)).toBe(`cleaned ${key}\n`);
  });
}

/** A server in this process: `toNodeHandler` (or another listener maker) serving `handler` on 127.0.0.1, port 0. */
export async function listenNode(
  toNodeListener: (handler: (request: Request) => Response | Promise<Response>) => RequestListener,
  handler: (request: Request) => Response | Promise<Response>,
): Promise<{ origin: string; server: Server; close(): Promise<void> }> {
  const server = createServer(toNodeListener(handler));
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    origin: `http://127.0.0.1:${port}`,
    server,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** A port that was free a moment ago, for servers that cannot be told to pick one (Next.js). */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** Reads a stream with fetch and the independent parser until `n` events have arrived, then cancels it. */
export async function fetchEvents(
  url: string,
  n: number,
  headers: Record<string, string> = {},
): Promise<{ response: Response; events: ParsedEvent[]; retries: number[] }> {
  const response = await within(fetch(url, { headers }), 10_000, `fetch ${url}`);
  const reader = readerOf(response);
  const decoder = new TextDecoder();
  let wire = "";
  try {
    for (;;) {
      const parsed = parseWire(wire);
      if (parsed.events.length >= n) return { response, events: parsed.events, retries: parsed.retries };
      const { done, value } = await within(reader.read(), 10_000, `event ${parsed.events.length + 1} of ${url}`);
      if (done) throw new Error(`${url} ended after ${parsed.events.length} of ${n} events:\n${wire}`);
      wire += decoder.decode(value, { stream: true });
    }
  } finally {
    await reader.cancel();
  }
}

/** The demo every example serves on `path`: ticks with ids, resumed after Last-Event-ID, and JSON stats. */
export function demoScenario(label: string, origin: () => string, path = "/events"): void {
  test(`${label}: the demo resumes its ticks after Last-Event-ID and sends JSON stats every fifth tick`, async () => {
    const { response, events, retries } = await fetchEvents(`${origin()}${path}`, 2, { "last-event-id": "44" });
    expect(response.headers.get("content-type")).toBe("text/event-stream; charset=utf-8");
    expect(retries).toEqual([2_000]);
    expect(events).toHaveLength(2);
    expect(events[0]).toMatchObject({ event: "tick", id: "45" });
    expect(Date.parse(events[0]?.data ?? "")).not.toBeNaN();
    expect(events[1]?.event).toBe("stats");
    expect(JSON.parse(events[1]?.data ?? "")).toMatchObject({ ticks: 45 });
  });
}

/** Debian's Chromium, launched the way RUNTIMES.md says works offline here. */
export const CHROMIUM = "/usr/bin/chromium";

export async function launchChromium(): Promise<Browser> {
  // A missing browser fails the run: a skipped browser test would report a pass for code that never ran.
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: apt-get update && apt-get install -y chromium`);
  return chromium.launch({
    executablePath: CHROMIUM,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--no-first-run",
    ],
  });
}

/**
 * Chromium's native EventSource, in a page of the server's own origin (EventSource is same-origin unless the
 * server sends CORS headers). Closing the client calls `source.close()`, as a page would, then closes the page.
 */
export function chromiumConnect(browser: () => Browser, landing: (origin: string) => string): Connect {
  return async (url, types) => {
    const seen = new Recorder();
    const page = await browser().newPage();
    try {
      await page.exposeFunction("recordSeen", (item: Seen) => seen.push(item));
      await page.goto(landing(new URL(url).origin));
      await page.evaluate(
        ({ url, types }) => {
          const record = (globalThis as unknown as { recordSeen(item: unknown): void }).recordSeen;
          const source = new EventSource(url);
          (globalThis as unknown as { source: EventSource }).source = source;
          source.onopen = () => record({ kind: "open" });
          source.onerror = () => record({ kind: "error" });
          for (const type of ["message", ...types]) {
            source.addEventListener(type, (event) => {
              const { data, lastEventId } = event as MessageEvent<string>;
              record({ kind: "event", type, data, lastEventId });
            });
          }
        },
        { url, types },
      );
    } catch (error) {
      await page.close();
      throw error;
    }
    return {
      seen,
      close: async () => {
        await page.evaluate(() => (globalThis as unknown as { source: EventSource }).source.close());
        await page.close();
      },
    };
  };
}

/** examples/deno's handler plus the probe routes behind `Deno.serve`, on a port Deno picks. */
export function startDenoProbe(): Promise<Running> {
  const serve = `
import { handle } from "${ROOT}examples/deno/server.ts";
import { probe } from "${ROOT}test/runtime/probe.ts";
Deno.serve(
  { hostname: "127.0.0.1", port: 0, onListen: ({ port }) => console.log("listening on http://127.0.0.1:" + port) },
  (request) => probe(request) ?? handle(request),
);
`;
  const config = `${ROOT}examples/deno/deno.json`;
  return startServer(binary("deno"), ["eval", "--ext=ts", "--config", config, serve], { env: DENO_ENV });
}

/**
 * examples/bun's handler plus the probe routes behind `Bun.serve`, on a port Bun picks. Bun maps
 * "eventsource-server" to src/ through the tsconfig nearest each importing file (examples/bun/ and test/).
 */
export function startBunProbe(): Promise<Running> {
  const serve = `
import { handle } from "${ROOT}examples/bun/server.ts";
import { probe } from "${ROOT}test/runtime/probe.ts";
const server = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: (request) => probe(request) ?? handle(request) });
console.log("listening on http://127.0.0.1:" + server.port);
`;
  return startServer(binary("bun"), ["--eval", serve], { cwd: `${ROOT}examples/bun` });
}

/** The package's names mapped to this checkout's source, for bundling an example as a user would write it. */
export const PACKAGE_ALIAS = {
  "eventsource-server": `${ROOT}src/index.ts`,
  "eventsource-server/node": `${ROOT}src/node.ts`,
  "eventsource-server/redis": `${ROOT}src/redis.ts`,
  "eventsource-server/postgres": `${ROOT}src/postgres.ts`,
  "eventsource-server/cloudflare": `${ROOT}src/cloudflare.ts`,
};

/**
 * esbuild: each module's `import.meta.url` stays its own file's URL, not the bundle's, so an example that reads a
 * file beside it (the Node demo's page) finds it when bundled.
 */
const ownImportMetaUrl: Plugin = {
  name: "own-import-meta-url",
  setup(builder) {
    builder.onLoad({ filter: /[\\/]examples[\\/].*\.js$/ }, async (args) => {
      const code = await readFile(args.path, "utf8");
      return {
        contents: code.replaceAll("import.meta.url", JSON.stringify(pathToFileURL(args.path).href)),
        loader: "js",
      };
    });
  },
};

/**
 * An example bundled with the package names mapped to src/, so no build and no stale dist/; the packages in
 * `external` (a framework) stay imports, resolved from node_modules.
 */
export async function bundleExample(entry: string, name: string, external: string[] = []): Promise<string> {
  const outfile = `${RESULTS}${name}.mjs`;
  await build({
    entryPoints: [`${ROOT}${entry}`],
    bundle: true,
    platform: "node",
    format: "esm",
    outfile,
    external,
    alias: PACKAGE_ALIAS,
    plugins: [ownImportMetaUrl],
    logLevel: "silent",
  });
  return outfile;
}

/** examples/node/demo.js bundled with the package name mapped to src/, so no build and no stale dist/. */
export function bundleNodeDemo(name: string): Promise<string> {
  return bundleExample("examples/node/demo.js", name);
}

/**
 * Last event IDs a client may send that a careless `Number(id) || 0` misreads: Infinity (a thousand 9s,
 * `1e400`), a number rounded to its neighbour (`2 ** 53 + 1`), or a count the server never gave (a sign,
 * whitespace, hex, words).
 */
export const HOSTILE_IDS = ["9".repeat(1_000), "1e400", "9007199254740993", "-1", " 5", "0x10", "abc"];

/** An id as a test name shows it: a thousand 9s would make the name unreadable. */
export function shownId(id: string): string {
  return id.length > 20 ? `"${id.slice(0, 8)}…" (${id.length} chars)` : JSON.stringify(id);
}

/** An open event stream read as text chunks, over fetch or over HTTP/2 without TLS (which fetch does not speak). */
interface WireStream {
  status: number;
  contentType: string | null;
  /** The next chunk, or `undefined` once the stream has ended. */
  next(): Promise<string | undefined>;
  close(): Promise<void>;
}

async function fetchStream(url: string, headers: Record<string, string>): Promise<WireStream> {
  const response = await within(fetch(url, { headers }), 10_000, `fetch ${url}`);
  const reader = readerOf(response);
  const decoder = new TextDecoder();
  return {
    status: response.status,
    contentType: response.headers.get("content-type"),
    async next() {
      const { done, value } = await reader.read();
      return done ? undefined : decoder.decode(value, { stream: true });
    },
    close: () => reader.cancel(),
  };
}

async function h2cStream(url: string, headers: Record<string, string>): Promise<WireStream> {
  const { origin, pathname, search } = new URL(url);
  const session = http2Connect(origin);
  session.on("error", () => {});
  const stream = session.request({ ":path": `${pathname}${search}`, ...headers });
  stream.setEncoding("utf8");
  const chunks: (string | undefined)[] = [];
  let waiting: (() => void) | undefined;
  const push = (chunk: string | undefined) => {
    chunks.push(chunk);
    waiting?.();
  };
  stream.on("data", push);
  stream.once("end", () => push(undefined));
  stream.once("error", () => push(undefined));
  const responseHeaders = await within(
    new Promise<IncomingHttpHeaders>((resolve) => stream.once("response", resolve)),
    10_000,
    `the headers of ${url}`,
  );
  return {
    status: Number(responseHeaders[":status"]),
    contentType: String(responseHeaders["content-type"] ?? null),
    async next() {
      while (chunks.length === 0) await new Promise<void>((resolve) => (waiting = resolve));
      return chunks.shift();
    },
    async close() {
      stream.close();
      session.destroy();
    },
  };
}

/** How one example is asked for its stream in a hostile-ids check. */
export interface HostileTarget {
  /** The stream's URL. */
  url(): string;
  /** Makes the events the stream carries, for a stream fed by publishing (a room, a broker); ticks need none. */
  publish?(url: string): Promise<void>;
  /** Ticks numbered 1, 2, 3… after an id the example cannot resume from: the first must be 1. */
  countsFromOne?: true;
  /** Ids are Redis Stream entry ids (`<ms>-<seq>`), not counts. */
  entryIds?: true;
  /** HTTP/2 without TLS. */
  h2c?: true;
}

/** An id as numbers that compare in the order the server gives them; `undefined` for an id it would never give. */
function idOrder(id: string, target: HostileTarget): bigint[] | undefined {
  const pattern = target.entryIds ? /^(\d+)-(\d+)$/ : /^(\d+)$/;
  const parts = pattern.exec(id)?.slice(1).map(BigInt);
  if (parts === undefined || (!target.entryIds && !Number.isSafeInteger(Number(id)))) return undefined;
  return parts;
}

function isBefore(a: bigint[], b: bigint[]): boolean {
  const [a0 = 0n, a1 = 0n] = a;
  const [b0 = 0n, b1 = 0n] = b;
  return a0 < b0 || (a0 === b0 && a1 < b1);
}

/**
 * Opens the stream with `id` as its `Last-Event-ID` (header, or `lastEventId` query parameter) and checks that
 * it is healthy: 200, an event stream, and two events whose ids are unique and increasing (safe integers, or
 * entry ids for a Redis Stream). A tick source must start over at 1, unless digits arrived: fetch's `Headers`
 * trims a header's `" 5"` to `"5"`, which resumes at 6, and HTTP/2 drops a header value with leading
 * whitespace altogether. Returns what was wrong, or an empty list.
 */
export async function hostileIdProblems(target: HostileTarget, id: string, via: "header" | "query"): Promise<string[]> {
  const base = target.url();
  const url = via === "query" ? `${base}${base.includes("?") ? "&" : "?"}lastEventId=${encodeURIComponent(id)}` : base;
  const headers = via === "header" ? { "last-event-id": id } : {};
  const stream = await (target.h2c ? h2cStream : fetchStream)(url, headers);
  const problems: string[] = [];
  let wire = "";
  try {
    if (stream.status !== 200) problems.push(`status ${stream.status}`);
    if (stream.contentType !== "text/event-stream; charset=utf-8") problems.push(`content-type ${stream.contentType}`);
    if (problems.length > 0) return problems;
    let published = target.publish === undefined;
    const withIds = () => parseWire(wire).events.filter((event) => event.id !== undefined);
    while (withIds().length < 2) {
      const chunk = await within(stream.next(), 10_000, `events with ids from ${url}; got ${JSON.stringify(wire)}`);
      if (chunk === undefined) return [`the stream ended after ${JSON.stringify(wire)}`];
      wire += chunk;
      // The first chunk (the retry field) means the subscriber is in: what is published now reaches it.
      if (!published) {
        published = true;
        await target.publish?.(base);
      }
    }
    const ids = withIds().map((event) => event.id ?? "");
    const order = ids.map((one) => idOrder(one, target));
    if (order.includes(undefined)) {
      problems.push(`ids the server would not give: ${ids.join(", ")}`);
    } else if (!order.every((one, i) => i === 0 || isBefore(order[i - 1] as bigint[], one as bigint[]))) {
      problems.push(`ids that do not increase: ${ids.join(", ")}`);
    }
    if (target.countsFromOne) {
      const arrived = via === "query" ? id : target.h2c ? (id === id.trim() ? id : "") : id.trim();
      const first = /^\d+$/.test(arrived) && Number.isSafeInteger(Number(arrived)) ? Number(arrived) + 1 : 1;
      if (ids[0] !== String(first)) problems.push(`first id ${ids[0]}, not ${first}`);
    }
  } finally {
    await stream.close();
  }
  return problems;
}

/**
 * One test for one example: every hostile id, in the header and in the query, all at once; then nothing on its
 * stderr. The failures are listed together, by id, so one run shows every id an example mishandles.
 */
export function hostileIdsScenario(label: string, target: HostileTarget, stderr: () => string[]): void {
  test(`${label}: every hostile Last-Event-ID, in the header or the query, gets a healthy stream and logs nothing`, async () => {
    const cases = HOSTILE_IDS.flatMap((id) => (["header", "query"] as const).map((via) => ({ id, via })));
    const results = await Promise.all(
      cases.map(async ({ id, via }) => {
        const problems = await hostileIdProblems(target, id, via).catch((error: Error) => [error.message]);
        return problems.map((problem) => `${shownId(id)} in the ${via}: ${problem}`);
      }),
    );
    expect(results.flat()).toEqual([]);
    expect(stderr()).toEqual([]);
  });
}
