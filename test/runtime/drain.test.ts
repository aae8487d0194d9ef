/**
 * The deploy recipe of docs/operating.md, on Express, Bun and Deno: a real server with 50 open event streams gets
 * SIGTERM, stops accepting, and `drain({ within: 2_000, last: { retry: 1_000 } })` ends every stream with the retry
 * first; the process then exits by itself within `within` plus a second, with nothing left running.
 * (node:http with 1,000 streams is in test/operating.test.ts.)
 */
import { type ChildProcess, spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { build } from "esbuild";
import { describe, expect, test } from "vitest";
import { readAll, readerOf } from "../helpers.ts";
import { binary, DENO_ENV, freePort, RESULTS, ROOT, within } from "./harness.ts";

const FIXTURES = `${ROOT}test/fixtures/drain/`;
const STREAMS = 50;

/** The Express fixture bundled, so that the package names mean this checkout's source. */
async function expressBundle(): Promise<string> {
  const outfile = `${RESULTS}drain/express.mjs`;
  await build({
    entryPoints: [`${FIXTURES}express.js`],
    bundle: true,
    platform: "node",
    format: "esm",
    outfile,
    packages: "external",
    alias: { "eventsource-server/node": `${ROOT}src/node.ts`, "eventsource-server": `${ROOT}src/index.ts` },
    logLevel: "silent",
  });
  return outfile;
}

async function drainsOnSigterm(command: string, args: string[], env: Record<string, string> = {}): Promise<void> {
  const port = await freePort();
  const child: ChildProcess = spawn(command, args, {
    cwd: FIXTURES,
    env: { ...process.env, ...env, PORT: String(port) },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  const listening = new Promise<void>((resolve) => {
    child.stdout?.setEncoding("utf8").on("data", (chunk: string) => {
      output += chunk;
      if (output.includes("listening")) resolve();
    });
  });
  child.stderr?.setEncoding("utf8").on("data", (chunk: string) => {
    output += chunk;
  });
  const exited = new Promise<number | null>((resolve) => child.once("exit", resolve));
  try {
    await within(listening, 20_000, `the server to listen:\n${output}`);
    const readers = await Promise.all(
      Array.from({ length: STREAMS }, async () => readerOf(await fetch(`http://127.0.0.1:${port}/`))),
    );
    await Promise.all(readers.map((reader) => reader.read()));
    const started = performance.now();
    child.kill("SIGTERM");
    const texts = await Promise.all(readers.map((reader) => readAll(reader)));
    for (const text of texts) expect(text).toBe("retry: 1000\n\n");
    expect(await within(exited, 10_000, `the process to exit:\n${output}`)).toBe(0);
    expect(performance.now() - started).toBeLessThan(2_000 + 1_000);
    expect(output).toContain(`drained ${STREAMS}`);
  } finally {
    child.kill("SIGKILL");
  }
}

describe("drain() on SIGTERM: every stream ends with the retry, and the process exits within `within` + 1 s", () => {
  test("Express", async () => {
    await drainsOnSigterm(process.execPath, [await expressBundle()]);
  });

  test("Bun.serve", async () => {
    await drainsOnSigterm(binary("bun"), ["bun.ts"]);
  });

  test("Deno.serve", async () => {
    const config = `${ROOT}examples/deno/deno.json`;
    await drainsOnSigterm(
      binary("deno"),
      ["run", "--allow-net=127.0.0.1", "--allow-env=PORT", "--config", config, "deno.ts"],
      DENO_ENV,
    );
  });
});

test("every line of each excerpt in docs/operating.md is in its fixture, in order", () => {
  const page = readFileSync(`${ROOT}docs/operating.md`, "utf8");
  const excerpts = [...page.matchAll(/```ts ignore\n\/\/ (test\/fixtures\/drain\/[\w.]+)\n([\s\S]*?)```/g)];
  expect(excerpts.map(([, file]) => file)).toEqual(["test/fixtures/drain/bun.ts", "test/fixtures/drain/deno.ts"]);
  for (const [, file, code] of excerpts) {
    const source = readFileSync(`${ROOT}${file}`, "utf8");
    let from = 0;
    for (const line of (code as string).split("\n").filter((one) => one.trim() !== "")) {
      const at = source.indexOf(`${line}\n`, from);
      expect(at, `${JSON.stringify(line)} in ${file}`).toBeGreaterThanOrEqual(0);
      from = at + line.length;
    }
  }
});
