/**
 * The three logs of docs/scaling.md, run as written: the Redis and the PostgreSQL server as Node processes against
 * their real servers, the Durable Object in Miniflare on storage kept in a folder, across a restart of the runtime.
 * The only edits: the port, 8787, becomes a free one, and the Durable Object gets a Worker in front of it. Each must
 * publish, stream, resume a client from its Last-Event-ID, and tell one whose id the log does not hold.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { build } from "esbuild";
import { Miniflare } from "miniflare";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { wranglerConfig } from "../../examples/cloudflare/build.mjs";
import { type ParsedEvent, parseWire, readerOf } from "../helpers.ts";
import { freePort, PACKAGE_ALIAS, RESULTS, stopperOf, within } from "../runtime/harness.ts";
import { blocksOfFile } from "../runtime/readme-blocks.ts";
import { type PostgresServer, startPostgres } from "../support/postgres.ts";
import { type RedisServer, startRedis } from "../support/redis.ts";

const DIR = `${RESULTS}recipes/`;

/** The one block of docs/scaling.md that imports this entry. */
function blockOf(entry: string): string {
  const blocks = blocksOfFile("docs/scaling.md").filter((block) =>
    block.code.includes(`from "eventsource-server/${entry}"`),
  );
  expect(blocks).toHaveLength(1);
  return (blocks[0] as { code: string }).code;
}

/** Bundles a block, the package names meaning this checkout's source. */
async function bundled(name: string, code: string, platform: "node" | "neutral"): Promise<string> {
  await mkdir(DIR, { recursive: true });
  const source = `${DIR}${name}.${platform === "node" ? "mjs" : "ts"}`;
  await writeFile(source, code);
  const outfile = `${DIR}${name}.bundle.mjs`;
  await build({
    entryPoints: [source],
    bundle: true,
    platform,
    format: "esm",
    target: "es2022",
    outfile,
    external: ["redis", "pg", "cloudflare:*"],
    alias: PACKAGE_ALIAS,
    logLevel: "silent",
  });
  return outfile;
}

/** A stream's events, read until there are `count`. */
async function eventsOf(response: Response, count: number): Promise<ParsedEvent[]> {
  const reader = readerOf(response);
  const decoder = new TextDecoder();
  let text = "";
  try {
    while (parseWire(text).events.length < count) {
      const { done, value } = await within(reader.read(), 10_000, `${count} events`);
      if (done) throw new Error(`the stream ended after ${JSON.stringify(text)}`);
      text += decoder.decode(value, { stream: true });
    }
    return parseWire(text).events.slice(0, count);
  } finally {
    await reader.cancel();
  }
}

async function publish(origin: string, text: string): Promise<string> {
  const response = await fetch(`${origin}/`, { method: "POST", body: text });
  expect(response.status).toBe(200);
  return ((await response.json()) as { id: string }).id;
}

/**
 * What every recipe does: a publish reaches an open stream with the log's id; a client resuming from the first id
 * gets the second; one with an id the log does not hold gets `reset`.
 */
async function keepsThePromise(origin: string, foreignId: string): Promise<void> {
  const open = await within(fetch(`${origin}/`), 10_000, "a stream");
  const ids = [await publish(origin, "hello"), await publish(origin, "world")];
  expect(await eventsOf(open, 2)).toEqual([
    { id: ids[0], data: "hello" },
    { id: ids[1], data: "world" },
  ]);
  const resumed = await fetch(`${origin}/`, { headers: { "last-event-id": ids[0] as string } });
  expect(await eventsOf(resumed, 1)).toEqual([{ id: ids[1], data: "world" }]);
  const lost = await fetch(`${origin}/`, { headers: { "last-event-id": foreignId } });
  expect(await eventsOf(lost, 1)).toEqual([{ event: "reset", data: "" }]);
}

/** Runs a Node recipe with `env`; resolves once it answers HTTP on its port. */
async function runNode(name: string, entry: string, env: Record<string, string>) {
  const port = await freePort();
  const script = await bundled(name, blockOf(entry).replaceAll("8787", String(port)), "node");
  const child: ChildProcess = spawn(process.execPath, [script], {
    env: { ...process.env, ...env },
    stdio: ["ignore", "ignore", "pipe"],
  });
  let stderr = "";
  child.stderr?.setEncoding("utf8").on("data", (chunk: string) => {
    stderr += chunk;
  });
  const origin = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 20_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`the ${name} recipe exited (${child.exitCode}):\n${stderr}`);
    const response = await fetch(`${origin}/`, { signal: AbortSignal.timeout(1_000) }).catch(() => undefined);
    if (response !== undefined) {
      await response.body?.cancel();
      break;
    }
    if (Date.now() > deadline) throw new Error(`the ${name} recipe did not answer within 20 s:\n${stderr}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return { origin, stop: stopperOf(child) };
}

/** The code of the one `@example` in `src/logs/<entry>.ts`'s JSDoc, its ` * ` margins taken off. */
async function jsdocExampleOf(entry: string): Promise<string> {
  const source = await readFile(new URL(`../../src/logs/${entry}.ts`, import.meta.url), "utf8");
  const examples = [...source.matchAll(/ \* @example[^\n]*\n \* ```\w+ ignore\n([\s\S]*?) \* ```\n/g)];
  expect(examples).toHaveLength(1);
  return (examples[0]?.[1] ?? "").replace(/^ \*( |$)/gm, "");
}

test.each(["redis", "postgres", "cloudflare"])(
  "the JSDoc example of eventsource-server/%s is its recipe in docs/scaling.md, which the tests below run",
  async (entry) => {
    expect(await jsdocExampleOf(entry)).toBe(blockOf(entry));
  },
);

describe("the recipes of docs/scaling.md", () => {
  let redis: RedisServer | undefined;
  let postgres: PostgresServer | undefined;

  beforeAll(async () => {
    [redis, postgres] = await Promise.all([startRedis(), startPostgres()]);
  }, 300_000);

  afterAll(async () => {
    await Promise.all([redis?.stop(), postgres?.stop()]);
  });

  test("the Redis log publishes, streams, resumes and tells", async () => {
    if (redis === undefined) throw new Error("redis did not start");
    const recipe = await runNode("redis", "redis", { REDIS_URL: redis.url });
    try {
      await keepsThePromise(recipe.origin, "1-1");
    } finally {
      await recipe.stop();
    }
  });

  test("the PostgreSQL log publishes, streams, resumes and tells", async () => {
    if (postgres === undefined) throw new Error("postgres did not start");
    const recipe = await runNode("postgres", "postgres", { DATABASE_URL: postgres.url });
    try {
      await keepsThePromise(recipe.origin, "999999");
    } finally {
      await recipe.stop();
    }
  });

  test("the Durable Object log publishes, streams, resumes after the runtime restarts, and tells", async () => {
    const worker = `${blockOf("cloudflare")}
export default { fetch: (request: Request, env: { ROOMS: DurableObjectNamespace }) => env.ROOMS.getByName("room").fetch(request) };
`;
    const script = await bundled("cloudflare", worker, "neutral");
    const persist = await mkdtemp(join(tmpdir(), "eventsource-recipe-"));
    const config = wranglerConfig();
    const start = () =>
      new Miniflare({
        modules: true,
        scriptPath: script,
        compatibilityDate: config.compatibility_date,
        compatibilityFlags: config.compatibility_flags ?? [],
        durableObjects: { ROOMS: { className: "Room", useSQLite: true } },
        durableObjectsPersist: persist,
        host: "127.0.0.1",
        port: 0,
      });
    let mf = start();
    try {
      const origin = (await mf.ready).origin;
      await keepsThePromise(origin, "99");
      // The runtime restarts: the new object reads the counter and the events from storage.
      await mf.dispose();
      mf = start();
      const again = (await mf.ready).origin;
      const next = await publish(again, "after the restart");
      expect(next).toBe("3");
      const resumed = await fetch(`${again}/`, { headers: { "last-event-id": "1" } });
      expect(await eventsOf(resumed, 2)).toEqual([
        { id: "2", data: "world" },
        { id: "3", data: "after the restart" },
      ]);
    } finally {
      await mf.dispose();
      await rm(persist, { recursive: true, force: true });
    }
  });
});
