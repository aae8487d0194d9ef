/**
 * `npm run bench [-- --quick] [-- --chart] [-- --only=small,json] [-- --reps=N] [-- --no-runtimes]`
 *
 * Every scenario runs each adapter in a fresh child process, repetitions interleaved (rep 1 of every adapter,
 * then rep 2, …), and reports the median with min–max and the ratio to a baseline measured in the same run.
 * An adapter whose output fails the parser check in any repetition is shown as invalid, without a ratio.
 * A full run writes bench/results.json and bench/results.md; `--quick` (smaller sizes, 2 reps) writes to the
 * system temp folder unless `--out=<file.json>` is given. `--chart` also writes the SVG chart next to the JSON.
 */
import { spawn } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { renderChart } from "./chart.mjs";
import { denoEnv, runMeta } from "./meta.mjs";
import { measureSizes } from "./size.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, "..");
const args = process.argv.slice(2);
const flag = (name) => args.includes(`--${name}`);
const option = (name) => args.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
if (flag("http")) {
  // Real sockets, every runtime: a bench of its own (bench/http/run.mjs).
  await (await import("./http/run.mjs")).main(args);
  process.exit(0);
}

const quick = flag("quick");
const SIZES = quick
  ? { small: 20_000, json: 5_000, large: 200, fanout: 1_000, idle: 1_000, disconnect: 200 }
  : { small: 200_000, json: 50_000, large: 2_000, fanout: 10_000, idle: 10_000, disconnect: 1_000 };
const reps = Number(option("reps") ?? (quick ? 2 : 5));
const ADAPTERS = (option("adapters") ?? "ours,hono,h3,better-sse,eventsource-encoder,a,b").split(",");
const SCENARIOS = (option("only") ?? "small,json,large,fanout,idle,disconnect").split(",");
// Bun and Deno run the throughput scenarios (the ones whose speed depends on the runtime's own encoder).
const RUNTIME_SCENARIOS = SCENARIOS.filter((s) => ["small", "json", "large"].includes(s));
const runtimes = !flag("no-runtimes") && RUNTIME_SCENARIOS.length > 0;
const out = resolve(
  option("out") ?? (quick ? join(tmpdir(), "eventsource-server-bench-quick.json") : join(here, "results.json")),
);
const CHILD_LIMIT_MS = 180_000;

const bin = (name) => join(root, "node_modules", ".bin", name);
const RUNTIMES = {
  node: { cmd: process.execPath, args: ["--expose-gc"] },
  bun: { cmd: bin("bun"), args: [] },
  deno: { cmd: bin("deno"), args: ["run", "-A", "--v8-flags=--expose-gc"] },
};

/** Runs one child; resolves with its JSON line, or an invalid result saying why there was none. */
function child(runtime, scenario, adapter, size) {
  const { cmd, args: pre } = RUNTIMES[runtime];
  return new Promise((done) => {
    const proc = spawn(cmd, [...pre, join(here, "worker.mjs"), scenario, adapter, String(size)], {
      cwd: root,
      env: { ...process.env, ...(runtime === "deno" ? denoEnv : {}) },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    proc.stdout.on("data", (d) => {
      stdout += d;
    });
    proc.stderr.on("data", (d) => {
      stderr += d;
    });
    const limit = setTimeout(() => proc.kill("SIGKILL"), CHILD_LIMIT_MS);
    proc.on("close", (code, signal) => {
      clearTimeout(limit);
      const line = stdout.trim().split("\n").pop();
      try {
        done(JSON.parse(line));
      } catch {
        const why = signal === "SIGKILL" ? `no result within ${CHILD_LIMIT_MS / 1000} s` : `exit ${code}`;
        done({ valid: false, problems: [`${why}: ${stderr.trim().split("\n").slice(-3).join(" | ").slice(0, 300)}`] });
      }
    });
  });
}

const median = (xs) => {
  const s = [...xs].sort((x, y) => x - y);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

/** The figure each scenario is judged on, whether lower is better, and the baseline its ratio is taken to. */
const METRIC = {
  small: { key: "ms", unit: "ms", baseline: "b" },
  json: { key: "ms", unit: "ms", baseline: "b" },
  large: { key: "ms", unit: "ms", baseline: "b" },
  fanout: { key: "msPerEmit", unit: "ms/emit", baseline: "a" },
  idle: { key: "heapPerConn", unit: "B heap/conn", baseline: "a" },
  disconnect: { key: "cleaned", unit: "cleaned", baseline: undefined },
};
const EXTRA = {
  fanout: ["heapPerSub", "timersPerSub"],
  idle: ["timersPerConn"],
  disconnect: ["unhandled", "timersLeft"],
  small: ["bytes"],
  json: ["bytes"],
  large: ["bytes"],
};

async function scenarioRun(runtime, scenario) {
  const size = SIZES[scenario];
  const adapters = runtime === "node" ? ADAPTERS : ADAPTERS;
  const runs = Object.fromEntries(adapters.map((a) => [a, []]));
  const n = ["fanout", "idle", "disconnect"].includes(scenario) ? Math.min(reps, 3) : reps;
  for (let r = 0; r < n; r++) {
    for (const a of adapters) {
      const result = await child(runtime, scenario, a, size);
      runs[a].push(result);
      process.stderr.write(`  ${runtime} ${scenario} rep ${r + 1}/${n} ${a}: ${summary(scenario, result)}\n`);
    }
  }
  const { key, baseline } = METRIC[scenario];
  const rows = adapters.map((a) => {
    const results = runs[a];
    const valid = results.every((x) => x.valid);
    const missing = results.some((x) => x.missing);
    const values = results.map((x) => x[key]).filter((v) => typeof v === "number");
    const row = {
      adapter: a,
      valid,
      missing,
      emulated: results.some((x) => x.emulated),
      problems: [...new Set(results.flatMap((x) => x.problems ?? []))].slice(0, 3),
      median: values.length ? median(values) : null,
      min: values.length ? Math.min(...values) : null,
      max: values.length ? Math.max(...values) : null,
      values,
    };
    for (const extra of EXTRA[scenario] ?? []) row[extra] = median(results.map((x) => x[extra] ?? Number.NaN));
    return row;
  });
  const base = rows.find((r) => r.adapter === baseline);
  for (const row of rows) {
    if (!row.valid || row.missing || base === undefined || !base.valid || row.median === null) row.ratio = null;
    else if (scenario === "idle")
      row.ratio = row.median / base.median; // heap: × baseline, lower is better
    else row.ratio = base.median / row.median; // time: × baseline speed, higher is faster
  }
  return { runtime, scenario, size, reps: n, baseline, unit: METRIC[scenario].unit, rows };
}

function summary(scenario, r) {
  if (r.missing) return "no channel";
  const key = METRIC[scenario].key;
  const v = typeof r[key] === "number" ? r[key].toFixed(2) : "-";
  return `${v}${r.valid ? "" : ` INVALID ${r.problems?.[0] ?? ""}`}`;
}

function version(pkg) {
  try {
    return JSON.parse(readFileSync(join(root, "node_modules", pkg, "package.json"), "utf8")).version;
  } catch {
    return "?";
  }
}

const NAMES = {
  ours: "eventsource-server",
  hono: `hono ${version("hono")} streamSSE`,
  h3: `h3 ${version("h3")} createEventStream`,
  "better-sse": `better-sse ${version("better-sse")} (Fetch)`,
  "eventsource-encoder": `eventsource-encoder ${version("eventsource-encoder")} + glue`,
  a: "baseline (a) pre-encoded chunks",
  b: "baseline (b) template + encode",
};
function nameOf(scenario, row) {
  let name = NAMES[row.adapter] ?? row.adapter;
  if (scenario === "fanout" && row.adapter === "better-sse") name = `better-sse ${version("better-sse")} Channel`;
  if (scenario === "fanout" && row.adapter === "ours") name = "eventsource-server EventChannel";
  if (row.emulated && !row.adapter.match(/^[ab]$/)) name += " (emulated channel)";
  return name;
}

const fmt = (v, digits = 1) => (v === null || Number.isNaN(v) ? "–" : Number(v).toFixed(digits));
function table(block) {
  const { scenario, runtime, size, reps: n, unit, baseline } = block;
  const extras = EXTRA[scenario] ?? [];
  const ratioHead =
    baseline === undefined
      ? ""
      : scenario === "idle"
        ? ` × baseline (${baseline}) heap |`
        : ` × baseline (${baseline}) |`;
  const lines = [
    `### ${scenario} on ${runtime} (${size.toLocaleString("en")}${scenario === "fanout" ? " subscribers" : scenario === "idle" || scenario === "disconnect" ? " connections" : " events"}, ${n} reps)`,
    "",
    `| adapter | median ${unit} | min–max |${ratioHead} ${extras.join(" | ")}${extras.length ? " |" : ""}`,
    `|---|---:|---:|${baseline === undefined ? "" : "---:|"}${extras.map(() => "---:|").join("")}`,
  ];
  for (const row of block.rows) {
    const digits = scenario === "fanout" ? 2 : scenario === "disconnect" ? 0 : 1;
    let cells;
    if (row.missing) cells = ["not available yet", "", ...(baseline === undefined ? [] : [""])];
    else {
      const valid = row.valid ? "" : ` **invalid**: ${row.problems[0] ?? ""}`.replaceAll("|", "\\|");
      const value = scenario === "disconnect" ? `${fmt(row.median, 0)}/${size}` : fmt(row.median, digits);
      cells = [`${value}${valid}`, `${fmt(row.min, digits)}–${fmt(row.max, digits)}`];
      if (baseline !== undefined) cells.push(row.ratio === null ? "–" : `${row.ratio.toFixed(2)}×`);
    }
    for (const e of extras) cells.push(row.missing ? "" : fmt(row[e], e.startsWith("timers") ? 2 : 0));
    lines.push(`| ${nameOf(scenario, row)} | ${cells.join(" | ")} |`);
  }
  return lines.join("\n");
}

// ---------------------------------------------------------------- main
const started = Date.now();
const lib = process.env.BENCH_LIB || "eventsource-server (dist/)";
const meta = {
  ...runMeta(quick),
  lib,
  versions: Object.fromEntries(
    ["hono", "h3", "better-sse", "eventsource-encoder", "eventsource-parser", "esbuild"].map((p) => [p, version(p)]),
  ),
};
const blocks = [];
for (const scenario of SCENARIOS) {
  process.stderr.write(`${scenario} (${SIZES[scenario]})\n`);
  blocks.push(await scenarioRun("node", scenario));
}
if (runtimes) {
  for (const runtime of ["bun", "deno"]) {
    for (const scenario of RUNTIME_SCENARIOS) {
      process.stderr.write(`${scenario} on ${runtime}\n`);
      blocks.push(await scenarioRun(runtime, scenario));
    }
  }
}
const sizes = await measureSizes(root);
const results = { meta, sizes, blocks, seconds: Math.round((Date.now() - started) / 1000) };

const md = [
  `## Benchmark results (${meta.quick ? "quick" : "full"} run, ${meta.date.slice(0, 10)})`,
  "",
  `${meta.machine}; Node ${meta.node}, Bun ${meta.bun}, ${meta.deno}; commit ${meta.commit}; library: ${lib}.`,
  `Peers: ${Object.entries(meta.versions)
    .map(([k, v]) => `${k} ${v}`)
    .join(", ")}. Run took ${results.seconds} s.`,
  "",
  "Times are the median of fresh processes, min–max beside it; the ratio is the baseline's median divided by the",
  "adapter's (higher is faster), except for idle heap (the adapter's heap over the baseline's, lower is better).",
  "Each adapter's output is parsed with eventsource-parser and compared event by event before it is timed.",
  "",
  ...blocks.flatMap((b) => [table(b), ""]),
  "### Size (esbuild, minified, gzip)",
  "",
  "| import | min bytes | gzip bytes |",
  "|---|---:|---:|",
  ...sizes.map((s) => `| ${s.name} | ${s.min} | ${s.gzip} |`),
  "",
].join("\n");

mkdirSync(dirname(out), { recursive: true });
writeFileSync(out, `${JSON.stringify(results, null, 2)}\n`);
writeFileSync(out.replace(/\.json$/, ".md"), md);
if (flag("chart")) writeFileSync(out.replace(/\.json$/, ".svg"), renderChart(results));
process.stdout.write(`${md}\nwritten: ${out}\n`);
