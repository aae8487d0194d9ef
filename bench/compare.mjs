/**
 * `node bench/compare.mjs <before/index.js> <after/index.js> [--runtimes=node,bun,deno] [--only=small,json,large]
 * [--reps=N]`
 *
 * Two builds of this library, A and B, side by side on the in-process throughput scenarios: each repetition runs A, B
 * and the baseline (b) in fresh child processes, one after the other, so that both builds see the same drift of a
 * noisy machine. Prints, per runtime and scenario, each one's median time with its min–max, and B's speed as a multiple
 * of A's: a ratio inside the two spreads is noise. Build an older commit with `git worktree add /tmp/before <commit>`,
 * a `node_modules` symlink, and `npx tsc` there.
 */
import { spawn } from "node:child_process";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { denoEnv } from "./meta.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, "..");
const args = process.argv.slice(2);
const option = (name) => args.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
const [before, after] = args.filter((a) => !a.startsWith("--")).map((path) => resolve(path));
if (before === undefined || after === undefined) {
  throw new Error("usage: node bench/compare.mjs <before/index.js> <after/index.js> [--runtimes=…] [--only=…]");
}

const SIZES = { small: 200_000, json: 50_000, large: 2_000 };
const bin = (name) => join(root, "node_modules", ".bin", name);
const RUNTIMES = {
  node: { cmd: process.execPath, args: ["--expose-gc"] },
  bun: { cmd: bin("bun"), args: [] },
  deno: { cmd: bin("deno"), args: ["run", "-A", "--v8-flags=--expose-gc"] },
};
const runtimes = (option("runtimes") ?? "node,bun,deno").split(",");
const scenarios = (option("only") ?? Object.keys(SIZES).join(",")).split(",");
const reps = Number(option("reps") ?? 7);
/** Who runs, and with which build: the baseline comes with B's, though it uses nothing of it. */
const CONTENDERS = [
  { name: "A", adapter: "ours", lib: before },
  { name: "B", adapter: "ours", lib: after },
  { name: "b", adapter: "b", lib: after },
];

/** One fresh worker process; resolves with its time in ms, or throws with why there was none. */
function timed(runtime, scenario, { adapter, lib }) {
  const { cmd, args: pre } = RUNTIMES[runtime];
  return new Promise((done, failed) => {
    const proc = spawn(cmd, [...pre, join(here, "worker.mjs"), scenario, adapter, String(SIZES[scenario])], {
      cwd: root,
      env: { ...process.env, ...(runtime === "deno" ? denoEnv : {}), BENCH_LIB: lib },
      stdio: ["ignore", "pipe", "inherit"],
    });
    let stdout = "";
    proc.stdout.on("data", (data) => {
      stdout += data;
    });
    proc.on("close", (code) => {
      const result = JSON.parse(stdout.trim().split("\n").pop() || "{}");
      if (result.valid) done(result.ms);
      else failed(new Error(`${runtime} ${scenario} ${lib}: exit ${code}, ${result.problems?.join("; ")}`));
    });
  });
}

const median = (xs) => {
  const sorted = [...xs].sort((x, y) => x - y);
  const middle = sorted.length >> 1;
  return sorted.length % 2 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
};
const spread = (xs) => `${Math.round(median(xs))} ms (${Math.round(Math.min(...xs))}–${Math.round(Math.max(...xs))})`;

console.log(`A: ${before}\nB: ${after}\n${reps} interleaved repetitions each\n`);
console.log("| runtime | scenario | A | B | b | B's speed ×A |\n|---|---|---:|---:|---:|---:|");
for (const runtime of runtimes) {
  for (const scenario of scenarios) {
    const times = CONTENDERS.map(() => []);
    for (let rep = 0; rep < reps; rep++) {
      for (const [index, contender] of CONTENDERS.entries())
        times[index].push(await timed(runtime, scenario, contender));
    }
    const [a, b, baseline] = times;
    const speed = (median(a) / median(b)).toFixed(2);
    console.log(`| ${runtime} | ${scenario} | ${spread(a)} | ${spread(b)} | ${spread(baseline)} | ${speed}× |`);
  }
}
