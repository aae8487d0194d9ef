/**
 * Every code block of README.md and docs/ runs in a test. The doc tests (`npm run doctest`) run the plain `ts`
 * blocks; this file runs the ones they skip, as written, on the runtime each is for: the README's first server
 * on node:http, the handler of "One handler, every runtime" (docs/runtimes.md) behind a real `Deno.serve`, `Bun.serve`, `node:http` and workerd (Miniflare), and a Next.js route
 * module called as Next calls it. The only edit made to a block is its port: 8787 becomes a free one.
 * A block that no row of RUNNERS claims fails the first test, so a new snippet cannot go untested.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { getEventListeners } from "node:events";
import { existsSync } from "node:fs";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { build, type Plugin } from "esbuild";
import { Miniflare } from "miniflare";
import { afterEach, describe, expect, test, vi } from "vitest";
import { readerOf } from "../helpers.ts";
import { binary, DENO_ENV, fetchEvents, freePort, RESULTS, ROOT, within } from "./harness.ts";
import { type Block, docBlocks } from "./readme-blocks.ts";

const BLOCKS = docBlocks();

/** Who runs each kind of block: this file (`here`), or another test, named. */
const RUNNERS: { name: string; claims(block: Block): boolean; runBy: string }[] = [
  { name: "a command line", claims: (b) => b.lang === "sh", runBy: "test/runtime/commands.test.ts" },
  {
    name: "a text diagram or sample output",
    // A block without a language, or in `text`, is not code: the doc tests and this file leave it alone.
    claims: (b) => b.lang === "" || b.lang === "text",
    runBy: "nothing: it is a picture",
  },
  {
    name: "the handler of One handler, every runtime",
    claims: (b) => b.code.includes("export function handler(request: Request)"),
    runBy: "here, and by npm run doctest",
  },
  {
    name: "a doc-tested example",
    claims: (b) => ["ts", "js"].includes(b.lang) && b.flag === "" && b.code.includes("node:assert/strict"),
    runBy: "npm run doctest",
  },
  { name: "Deno.serve", claims: (b) => b.code.startsWith("Deno.serve("), runBy: "here" },
  {
    name: "Bun.serve",
    claims: (b) => b.code.startsWith("Bun.serve(") && !b.code.includes("idleTimeout"),
    runBy: "here",
  },
  {
    name: "Bun.serve without its idle timeout",
    claims: (b) => b.code.includes("idleTimeout: 0"),
    runBy: "test/runtime/bun-stall.test.ts",
  },
  { name: "the first server", claims: (b) => b.code.includes("async function* clock("), runBy: "here" },
  {
    name: "node:http",
    claims: (b) =>
      b.flag === "ignore" &&
      b.code.includes("createServer(") &&
      !b.code.includes("async function* clock(") &&
      !b.code.includes("compress: true") &&
      !/from "eventsource-server\/(redis|postgres)"/.test(b.code),
    runBy: "here",
  },
  {
    name: "the EventLog interface",
    claims: (b) => b.code.startsWith("interface EventLog extends EventHistory {"),
    runBy: "test/logs/entries.test.ts, which holds the root's EventLog type to it",
  },
  {
    name: "the Redis log",
    claims: (b) => b.code.includes('from "eventsource-server/redis"'),
    runBy: "test/logs/recipes.test.ts, which runs it against a real redis-server",
  },
  {
    name: "the PostgreSQL log",
    claims: (b) => b.code.includes('from "eventsource-server/postgres"'),
    runBy: "test/logs/recipes.test.ts, which runs it against a real PostgreSQL",
  },
  {
    name: "the Durable Object log",
    claims: (b) => b.code.includes('from "eventsource-server/cloudflare"'),
    runBy: "test/logs/recipes.test.ts, which runs it in Miniflare, across a restart of the runtime",
  },
  { name: "a Cloudflare Worker", claims: (b) => b.code.includes('from "cloudflare:workers"'), runBy: "here" },
  { name: "its wrangler.jsonc", claims: (b) => b.lang === "jsonc", runBy: "here" },
  { name: "a Next.js route", claims: (b) => b.code.includes("export function GET("), runBy: "here" },
  {
    name: "the Node entry's functions",
    claims: (b) =>
      b.code.startsWith('import { sendResponse, toNodeHandler, toRequest } from "eventsource-server/node";'),
    runBy: "here: the names exist; test/node.test.ts holds each to its contract",
  },
  {
    name: "a framework excerpt",
    claims: (b) => /^\/\/ examples\/(express|fastify|koa)\/server\.js\n/.test(b.code),
    runBy: "test/runtime/frameworks.test.ts, which runs the example and checks the excerpt is in it",
  },
  {
    name: "the compress option",
    claims: (b) => b.flag === "ignore" && b.code.includes("toNodeHandler(handler, { compress: true })"),
    runBy: "test/compress.test.ts, which serves toNodeHandler(handler, { compress: true }) to decompressing clients",
  },
  {
    name: "a drain fixture excerpt",
    claims: (b) => /^\/\/ test\/fixtures\/drain\/\w+\.(ts|js)\n/.test(b.code),
    runBy: "test/runtime/drain.test.ts, which runs the fixture and checks the excerpt is in it",
  },
  {
    name: "a metrics excerpt",
    claims: (b) => /^\/\/ examples\/metrics\/(prometheus|opentelemetry)\.js\n/.test(b.code),
    runBy: "test/runtime/metrics.test.ts, which runs the example and checks the excerpt is in it",
  },
  {
    name: "the SIGTERM recipe",
    claims: (b) => b.code.includes('process.once("SIGTERM"') && !b.code.startsWith("// test/fixtures/"),
    runBy: "test/operating.test.ts, whose node:http test makes the same two calls on 1,000 open streams",
  },
  {
    name: "the relay recipe",
    claims: (b) => b.code.includes("export async function relay("),
    runBy: "test/runtime/relay.test.ts",
  },
  {
    name: "the expiring token recipe",
    claims: (b) => b.code.includes("async function expiryOf("),
    runBy: "test/runtime/expiring-token.test.ts",
  },
  {
    name: "the re-authenticating client recipe",
    claims: (b) => b.code.includes("export function authorizedEventSource("),
    runBy: "test/runtime/expiring-token.test.ts",
  },
  {
    name: "the POST stream client recipe",
    claims: (b) => b.code.includes("export async function* chat("),
    runBy: "test/runtime/relay.test.ts",
  },
];

/** The one block a runner claims; fails if there is none, or more than one. */
function blockOf(name: string): Block {
  const runner = RUNNERS.find((r) => r.name === name);
  const claimed = BLOCKS.filter((block) => runner?.claims(block));
  if (claimed.length !== 1) throw new Error(`README.md and docs/ have ${claimed.length} blocks for ${name}, not 1`);
  return claimed[0] as Block;
}

const HANDLER = blockOf("the handler of One handler, every runtime").code;
const DIR = `${RESULTS}readme/`;

/** Writes the handler and a block after it into one module under test-results/readme/, with a free port. */
async function moduleOf(name: string, code: string, port = 0, handler = HANDLER): Promise<string> {
  await mkdir(DIR, { recursive: true });
  // Bun reads `paths` from the tsconfig nearest the file: the package name is this checkout's source.
  await writeFile(
    `${DIR}tsconfig.json`,
    JSON.stringify({ compilerOptions: { paths: { "eventsource-server": [`${ROOT}src/index.ts`] } } }),
  );
  const path = `${DIR}${name}`;
  await writeFile(path, `${handler}\n${code.replaceAll("8787", String(port))}`);
  return path;
}

/** Waits until something answers HTTP on `origin`; fails loudly after 20 s. */
async function answering(origin: string, child: ChildProcess): Promise<void> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`the server exited (${child.exitCode})`);
    const response = await fetch(origin, { signal: AbortSignal.timeout(1_000) }).catch(() => undefined);
    if (response !== undefined) {
      await response.body?.cancel();
      return;
    }
    if (Date.now() > deadline) throw new Error(`nothing answered on ${origin} within 20 s`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** Spawns a README block's server, waits until it answers, and checks that it resumes ticks after Last-Event-ID. */
async function servesTicks(command: string, args: string[], port: number, cwd = ROOT): Promise<void> {
  const child = spawn(command, args, { cwd, env: { ...process.env, ...DENO_ENV }, stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
    output += chunk;
  });
  child.stderr.setEncoding("utf8").on("data", (chunk: string) => {
    output += chunk;
  });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  try {
    const origin = `http://127.0.0.1:${port}`;
    await answering(`${origin}/`, child).catch((error: Error) => {
      throw new Error(`${error.message}\n${output}`);
    });
    await ticksResume(`${origin}/events`);
  } finally {
    child.kill("SIGTERM");
    const killer = setTimeout(() => child.kill("SIGKILL"), 3_000);
    await exited;
    clearTimeout(killer);
  }
}

/** The handler's contract: retry 2000, then ticks numbered on from the client's Last-Event-ID. */
async function ticksResume(url: string): Promise<void> {
  const { response, events, retries } = await fetchEvents(url, 2, { "last-event-id": "41" });
  expect(response.headers.get("content-type")).toBe("text/event-stream; charset=utf-8");
  expect(retries).toEqual([2_000]);
  expect(events.map((e) => [e.event, e.id])).toEqual([
    ["tick", "42"],
    ["tick", "43"],
  ]);
  expect(Date.parse(events[0]?.data ?? "")).not.toBeNaN();
}

/** esbuild: the package names mean this checkout's source. */
const checkoutImports: Plugin = {
  name: "checkout-imports",
  setup(builder) {
    builder.onResolve({ filter: /^eventsource-server(\/node)?$/ }, (args) => ({
      path: args.path === "eventsource-server" ? `${ROOT}src/index.ts` : `${ROOT}src/node.ts`,
    }));
  },
};

describe("the code blocks of README.md and docs/", () => {
  test("the Node entry's block names functions that eventsource-server/node exports", async () => {
    const block = blockOf("the Node entry's functions");
    const node = await import("eventsource-server/node");
    const named = [...block.code.matchAll(/^(\w+)\(/gm)].map((match) => match[1]);
    expect(named).toEqual(["toNodeHandler", "toRequest", "sendResponse"]);
    for (const name of named) expect(typeof node[name as keyof typeof node]).toBe("function");
  });

  test("every code block is claimed by exactly one runner, and each runner's test file exists", () => {
    expect(BLOCKS.length).toBeGreaterThan(10);
    for (const block of BLOCKS) {
      const claimants = RUNNERS.filter((runner) => runner.claims(block)).map((runner) => runner.name);
      expect(claimants, `${block.file} line ${block.line} (${block.lang} ${block.flag})`).toHaveLength(1);
    }
    for (const runner of RUNNERS) {
      const file = /test\/\S+\.ts/.exec(runner.runBy)?.[0];
      if (file !== undefined) expect(existsSync(`${ROOT}${file}`), `${runner.runBy} exists`).toBe(true);
      expect(
        BLOCKS.some((block) => runner.claims(block)),
        `a block for ${runner.name}`,
      ).toBe(true);
    }
  });

  describe("the tick handler of One handler, every runtime", () => {
    afterEach(() => {
      vi.useRealTimers();
    });

    test("keeps at most one abort listener on the context signal, however many ticks it runs", async () => {
      const path = await moduleOf("handler-listeners.ts", "export { ticks };");
      const { ticks } = (await import(path)) as {
        ticks(context: { signal: AbortSignal; lastEventId: string | null }): AsyncGenerator<{ id: number }>;
      };
      vi.useFakeTimers();
      const controller = new AbortController();
      const source = ticks({ signal: controller.signal, lastEventId: "9" });
      let peak = 0;
      for (let tick = 10; tick < 1_010; tick++) {
        const next = source.next();
        // Mid-wait, where a leaking snippet has one listener more per tick it has run.
        await vi.advanceTimersByTimeAsync(999);
        peak = Math.max(peak, getEventListeners(controller.signal, "abort").length);
        await vi.advanceTimersByTimeAsync(1);
        expect((await next).value?.id).toBe(tick);
      }
      expect(peak).toBe(1);
      const last = source.next();
      controller.abort();
      expect((await last).done).toBe(true);
      expect(getEventListeners(controller.signal, "abort")).toHaveLength(0);
      expect(vi.getTimerCount()).toBe(0);
    });

    test("starts from the first tick when the client's Last-Event-ID is not a safe whole number", async () => {
      const { handler } = (await import(await moduleOf("handler-hostile.ts", ""))) as {
        handler(request: Request): Response;
      };
      const hostile = ["9".repeat(1_000), "1e400", "9007199254740993", "-1", "abc", "Infinity", "NaN"];
      for (const id of hostile) {
        const response = handler(new Request("http://localhost/events", { headers: { "last-event-id": id } }));
        const reader = readerOf(response);
        const decoder = new TextDecoder();
        try {
          expect(decoder.decode((await reader.read()).value)).toBe("retry: 2000\n\n");
          expect(decoder.decode((await reader.read()).value), `Last-Event-ID ${id.slice(0, 20)}`).toMatch(
            /^event: tick\nid: 1\ndata: /,
          );
        } finally {
          await reader.cancel();
        }
      }
    });

    test("streams a hundred ticks through eventSourceResponse without a MaxListenersExceededWarning", async () => {
      const { handler } = (await import(await moduleOf("handler-warnings.ts", ""))) as {
        handler(request: Request): Response;
      };
      const warnings: string[] = [];
      const onWarning = (warning: Error) => warnings.push(`${warning.name}: ${warning.message}`);
      process.on("warning", onWarning);
      vi.useFakeTimers();
      const reader = readerOf(handler(new Request("http://localhost/events")));
      const decoder = new TextDecoder();
      let wire = "";
      try {
        while (!wire.includes("id: 100\n")) {
          const read = reader.read();
          await vi.advanceTimersByTimeAsync(1_000);
          wire += decoder.decode((await read).value);
        }
      } finally {
        await reader.cancel();
        process.off("warning", onWarning);
      }
      expect(warnings).toEqual([]);
    });
  });

  test("the Deno block serves the handler behind a real Deno.serve", async () => {
    const port = await freePort();
    const path = await moduleOf("deno.ts", blockOf("Deno.serve").code, port);
    const config = `${ROOT}examples/deno/deno.json`;
    await servesTicks(binary("deno"), ["run", "--allow-net=127.0.0.1", "--config", config, path], port);
  });

  test("the Bun block serves the handler behind a real Bun.serve", async () => {
    const port = await freePort();
    const path = await moduleOf("bun.ts", blockOf("Bun.serve").code, port);
    await servesTicks(binary("bun"), [path], port, DIR);
  });

  test("the Node block serves the handler behind node:http", async () => {
    const port = await freePort();
    const path = await moduleOf("node.ts", blockOf("node:http").code, port);
    const outfile = `${DIR}node.bundle.mjs`;
    await build({
      entryPoints: [path],
      bundle: true,
      platform: "node",
      format: "esm",
      outfile,
      plugins: [checkoutImports],
      logLevel: "silent",
    });
    await servesTicks(process.execPath, [outfile], port);
  });

  test("the Next.js block is a route module whose GET streams the handler's ticks, with no segment config", async () => {
    const route = (await import(await moduleOf("next-route.ts", blockOf("a Next.js route").code))) as {
      dynamic?: string;
      GET(request: Request): Response;
    };
    // `dynamic` breaks `next build` under cacheComponents (Next 16's default); reading the request is enough.
    expect(route.dynamic).toBeUndefined();
    const controller = new AbortController();
    const response = route.GET(
      new Request("http://localhost/api/events", { headers: { "last-event-id": "41" }, signal: controller.signal }),
    );
    const reader = readerOf(response);
    try {
      const text = new TextDecoder().decode((await reader.read()).value);
      expect(text).toBe("retry: 2000\n\n");
      expect(new TextDecoder().decode((await reader.read()).value)).toMatch(/^event: tick\nid: 42\ndata: \d{4}-/);
    } finally {
      await reader.cancel();
    }
  });

  test("the first server of the README serves its clock on node:http", async () => {
    const port = await freePort();
    const path = await moduleOf("first-server.js", blockOf("the first server").code, port, "");
    const outfile = `${DIR}first-server.bundle.mjs`;
    await build({
      entryPoints: [path],
      bundle: true,
      platform: "node",
      format: "esm",
      outfile,
      plugins: [checkoutImports],
      logLevel: "silent",
    });
    const child = spawn(process.execPath, [outfile], { stdio: ["ignore", "ignore", "pipe"] });
    const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
    try {
      await answering(`http://127.0.0.1:${port}/`, child);
      const { response, events } = await fetchEvents(`http://127.0.0.1:${port}/`, 2);
      expect(response.headers.get("content-type")).toBe("text/event-stream; charset=utf-8");
      expect(events.map((event) => event.event)).toEqual(["time", "time"]);
      expect(Date.parse(events[1]?.data ?? "")).not.toBeNaN();
    } finally {
      child.kill("SIGTERM");
      await exited;
    }
  });

  test("the Cloudflare block runs in workerd with the README's wrangler settings: ticks, and a room that replays", async () => {
    const wrangler = JSON.parse(blockOf("its wrangler.jsonc").code.replace(/^\s*\/\/.*$/gm, "")) as {
      compatibility_date: string;
      compatibility_flags: string[];
    };
    // The block must say what examples/cloudflare really runs with.
    const real = await readFile(`${ROOT}examples/cloudflare/wrangler.jsonc`, "utf8");
    expect(real).toContain(`"compatibility_date": "${wrangler.compatibility_date}"`);
    for (const flag of wrangler.compatibility_flags) expect(real).toContain(`"${flag}"`);

    // workerd takes only handlers as named exports: the handler becomes a plain function of the module.
    const handler = HANDLER.replace("export function handler(", "function handler(");
    const entry = await moduleOf("worker.ts", blockOf("a Cloudflare Worker").code, 0, handler);
    const worker = `${DIR}worker.mjs`;
    await build({
      entryPoints: [entry],
      bundle: true,
      format: "esm",
      platform: "neutral",
      outfile: worker,
      external: ["cloudflare:*"],
      plugins: [checkoutImports],
      logLevel: "silent",
    });
    const mf = new Miniflare({
      modules: true,
      scriptPath: worker,
      compatibilityDate: wrangler.compatibility_date,
      compatibilityFlags: wrangler.compatibility_flags,
      durableObjects: { ROOMS: { className: "Room", useSQLite: true } },
      host: "127.0.0.1",
      port: 0,
    });
    try {
      const base = await mf.ready;
      await ticksResume(`${base}ticks`);

      const room = `${base}?room=readme`;
      const response = await within(fetch(room), 10_000, "the room's stream");
      const reader = readerOf(response);
      const decoder = new TextDecoder();
      try {
        expect(decoder.decode((await within(reader.read(), 10_000, "the first chunk")).value)).toBe(":\n\n");
        const published = await fetch(room, { method: "POST", body: "hello, room" });
        expect(published.status).toBe(204);
        const text = decoder.decode((await within(reader.read(), 10_000, "the published event")).value);
        expect(text).toMatch(/^id: [0-9a-f-]{36}\ndata: hello, room\n\n$/);
      } finally {
        await reader.cancel();
      }
    } finally {
      await mf.dispose();
    }
  });
});
