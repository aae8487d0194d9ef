/**
 * `npm run bench -- --http [--quick] [--only=throughput,fanout] [--runtimes=node,bun] [--adapters=ours,bare]
 * [--reps=N] [--out=file.json]`
 *
 * Real sockets on 127.0.0.1: for each runtime, scenario and repetition, every adapter gets a fresh server process
 * (`server.mjs`) and a fresh client process (`client.mjs`, always on Node), both with the file-descriptor limit
 * raised to the hard limit. Repetitions are interleaved, as in the in-process bench; each figure is the median
 * of the repetitions, and a ratio is taken to the bare baseline of the same runtime in the same run. An adapter
 * whose bytes fail the parser check in any repetition is shown as invalid, without a ratio. A full run writes
 * bench/results-http.json and .md; `--quick` writes to the system temp folder unless `--out` is given.
 */
import { spawn } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { bin, commandOutput, denoEnv, runMeta } from "../meta.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const bench = resolve(here, "..");
const root = resolve(bench, "..");
const RUNTIMES = {
  node: [process.execPath, "--expose-gc"],
  bun: [bin("bun")],
  deno: [bin("deno"), "run", "-A", "--v8-flags=--expose-gc"],
};
const NAMES = {
  ours: { node: "eventsource-server/node", bun: "eventsource-server", deno: "eventsource-server" },
  hono: { node: "hono streamSSE + @hono/node-server", bun: "hono streamSSE", deno: "hono streamSSE" },
  h3: { node: "h3 createEventStream + srvx", bun: "h3 createEventStream + srvx", deno: "h3 createEventStream + srvx" },
  "better-sse": { node: "better-sse (node:http)", bun: "better-sse (Fetch)", deno: "better-sse (Fetch)" },
  bare: {
    node: "bare: bytes to ServerResponse",
    bun: "bare: bytes into a ReadableStream",
    deno: "bare: bytes into a ReadableStream",
  },
};

/** Each scenario: its size, the figures it reports, the one its ratio is taken on, and which way is better. */
function scenarios(quick) {
  return {
    throughput: {
      size: quick ? 20_000 : 200_000,
      what: "events",
      key: "eventsPerSec",
      higher: true,
      figures: ["eventsPerSec", "ms"],
    },
    fanout: {
      size: quick ? 1_000 : 10_000,
      emits: quick ? 5 : 20,
      what: "subscribers",
      key: "p50",
      higher: false,
      figures: ["p50", "p99", "max"],
    },
    idle: {
      size: quick ? 1_000 : 10_000,
      what: "connections",
      key: "heapPerConn",
      higher: false,
      figures: ["heapPerConn", "rssPerConn", "timersPerConn"],
    },
    churn: {
      size: quick ? 1_000 : 20_000,
      what: "cycles",
      key: "ms",
      higher: false,
      figures: ["ms", "cyclesPerSec", "running", "heapDelta", "rssDelta"],
    },
    // Node only, this library only: one row per Accept-Encoding, its ratio taken to the uncompressed row.
    compress: {
      size: quick ? 500 : 2_000,
      idle: quick ? 200 : 1_000,
      codings: ["identity", "gzip", "br"],
      what: "events",
      key: "bytesPerEvent",
      higher: false,
      figures: ["bytesPerEvent", "cpuPerEvent", "heapPerConn", "rssPerConn"],
    },
  };
}

/** Every child still running, killed by its pid if this process is stopped. */
const live = new Set();
for (const signal of ["SIGINT", "SIGTERM"]) {
  process.on(signal, () => {
    for (const proc of live) proc.kill("SIGKILL");
    process.exit(130);
  });
}

/** Runs `cmd args` with the descriptor limit raised; resolves with the process and its first stdout line. */
function start(cmd, args, env) {
  const proc = spawn("sh", ["-c", 'ulimit -n "$(ulimit -Hn)"; exec "$@"', "sh", cmd, ...args], {
    cwd: root,
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  live.add(proc);
  proc.on("close", () => live.delete(proc));
  let stdout = "";
  let stderr = "";
  proc.stderr.on("data", (d) => {
    stderr += d;
  });
  const line = new Promise((resolveLine, reject) => {
    proc.stdout.on("data", (d) => {
      stdout += d;
      const end = stdout.indexOf("\n");
      if (end !== -1) resolveLine(stdout.slice(0, end));
    });
    proc.on("close", (code, signal) =>
      reject(new Error(`exit ${code ?? signal}: ${stderr.trim().split("\n").slice(-3).join(" | ").slice(0, 300)}`)),
    );
  });
  line.catch(() => {});
  return { proc, line, stderr: () => stderr };
}

function stop(proc) {
  if (proc.exitCode === null && proc.signalCode === null) proc.kill("SIGKILL");
}

const CHILD_LIMIT_MS = 240_000;
const timeout = (ms) =>
  new Promise((_, reject) => setTimeout(() => reject(new Error(`nothing within ${ms / 1000} s`)), ms));

/**
 * One fresh server and one fresh client: the client's JSON result, or an invalid one saying why there was none.
 * In the compression scenario, `row` is the coding the client accepts and the server is this library's.
 */
async function once(runtime, row, scenario, spec) {
  const adapter = spec.codings ? "ours" : row;
  const [cmd, ...pre] = RUNTIMES[runtime];
  const server = start(
    cmd,
    [...pre, join(here, "server.mjs"), adapter, String(spec.size)],
    runtime === "deno" ? denoEnv : {},
  );
  let client;
  try {
    const { port } = JSON.parse(await Promise.race([server.line, timeout(30_000)]));
    const extra = spec.codings ? [String(spec.idle), row] : [String(spec.emits ?? "")];
    const clientArgs = [join(here, "client.mjs"), scenario, String(port), String(spec.size), ...extra];
    client = start(process.execPath, clientArgs, {});
    return JSON.parse(await Promise.race([client.line, timeout(CHILD_LIMIT_MS)]));
  } catch (error) {
    return {
      valid: false,
      problems: [`${error.message} ${server.stderr().trim().split("\n").slice(-2).join(" | ").slice(0, 200)}`],
    };
  } finally {
    if (client) stop(client.proc);
    stop(server.proc);
  }
}

const median = (xs) => {
  const s = xs.filter((x) => typeof x === "number").sort((a, b) => a - b);
  if (s.length === 0) return null;
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

async function block(runtime, scenario, spec, allAdapters, reps) {
  const adapters = spec.codings ?? allAdapters;
  const runs = Object.fromEntries(adapters.map((a) => [a, []]));
  for (let r = 0; r < reps; r++) {
    for (const a of adapters) {
      const result = await once(runtime, a, scenario, spec);
      runs[a].push(result);
      const v = result[spec.key];
      process.stderr.write(
        `  ${runtime} ${scenario} rep ${r + 1}/${reps} ${a}: ${typeof v === "number" ? v.toFixed(1) : "-"}${result.valid ? "" : ` INVALID ${result.problems?.[0] ?? ""}`}\n`,
      );
    }
  }
  const rows = adapters.map((a) => {
    const results = runs[a];
    const row = {
      adapter: a,
      valid: results.every((x) => x.valid),
      problems: [...new Set(results.flatMap((x) => x.problems ?? []))].slice(0, 3),
      values: results.map((x) => x[spec.key]),
    };
    for (const f of spec.figures) row[f] = median(results.map((x) => x[f]));
    return row;
  });
  const base = rows.find((r) => r.adapter === (spec.codings ? "identity" : "bare"));
  for (const row of rows) {
    const ok = row.valid && base?.valid && typeof row[spec.key] === "number" && typeof base[spec.key] === "number";
    // × bare: above 1 is better for throughput (speed), below 1 is better for times and memory (cost)
    row.ratio = ok ? row[spec.key] / base[spec.key] : null;
  }
  const { size, emits, idle, key, figures } = spec;
  return { runtime, scenario, size, emits, idle, reps, key, figures, rows };
}

const fmt = (v, digits = 1) => (v === null || v === undefined || Number.isNaN(v) ? "–" : Number(v).toFixed(digits));
const HEADS = {
  eventsPerSec: "events/s",
  ms: "ms",
  p50: "p50 ms",
  p99: "p99 ms",
  max: "max ms",
  heapPerConn: "heap B/conn",
  rssPerConn: "RSS B/conn",
  timersPerConn: "timers/conn",
  cyclesPerSec: "cycles/s",
  running: "sources left",
  heapDelta: "heap after − before, KB",
  rssDelta: "RSS after − before, KB",
  bytesPerEvent: "bytes/event on the wire",
  cpuPerEvent: "server CPU µs/event",
};
function digitsOf(f) {
  if (f === "timersPerConn") return 2;
  if (["eventsPerSec", "heapPerConn", "rssPerConn", "running", "cyclesPerSec", "bytesPerEvent"].includes(f)) return 0;
  return 1;
}
function table(b) {
  const what = {
    throughput: "events, one client",
    fanout: `subscribers, ${b.emits} emits`,
    idle: "idle connections",
    churn: "connect-read-leave cycles, 100 at a time",
    compress: `1 KB JSON events to one client, then ${b.idle?.toLocaleString("en")} idle connections`,
  }[b.scenario];
  const base = b.scenario === "compress" ? "identity" : "bare";
  const lines = [
    `### ${b.scenario} on ${b.runtime} (${b.size.toLocaleString("en")} ${what}, ${b.reps} reps)`,
    "",
    `| ${b.scenario === "compress" ? "Accept-Encoding" : "adapter"} | ${b.figures.map((f) => HEADS[f]).join(" | ")} | × ${base} (${HEADS[b.key]}) |`,
    `|---|${b.figures.map(() => "---:|").join("")}---:|`,
  ];
  for (const row of b.rows) {
    const cells = b.figures.map((f) => {
      const v = f.endsWith("Delta") && typeof row[f] === "number" ? row[f] / 1024 : row[f];
      return fmt(v, digitsOf(f));
    });
    if (!row.valid)
      cells[0] += ` **invalid**: ${String(row.problems[0] ?? "")
        .replaceAll("|", "\\|")
        .slice(0, 160)}`;
    lines.push(
      `| ${NAMES[row.adapter]?.[b.runtime] ?? `\`${row.adapter}\``} | ${cells.join(" | ")} | ${row.ratio === null ? "–" : `${row.ratio.toFixed(2)}×`} |`,
    );
  }
  return lines.join("\n");
}

export async function main(args) {
  const option = (name) => args.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
  const quick = args.includes("--quick");
  const specs = scenarios(quick);
  const only = (option("only") ?? Object.keys(specs).join(",")).split(",");
  const runtimes = (option("runtimes") ?? "node,bun,deno").split(",");
  const adapters = (option("adapters") ?? "ours,hono,h3,better-sse,bare").split(",");
  const reps = Number(option("reps") ?? (quick ? 1 : 3));
  const out = resolve(
    option("out") ??
      (quick ? join(tmpdir(), "eventsource-server-bench-http-quick.json") : join(bench, "results-http.json")),
  );
  const started = Date.now();
  const meta = {
    ...runMeta(quick),
    fdLimit: commandOutput("sh", ["-c", "ulimit -Hn"]),
  };
  const blocks = [];
  for (const runtime of runtimes) {
    for (const scenario of only) {
      if (scenario === "compress" && runtime !== "node") continue; // `compress` is an option of the Node entry
      process.stderr.write(`${scenario} on ${runtime} (${specs[scenario].size})\n`);
      blocks.push(await block(runtime, scenario, specs[scenario], adapters, reps));
    }
  }
  const seconds = Math.round((Date.now() - started) / 1000);
  const md = [
    `## HTTP benchmark results (${quick ? "quick" : "full"} run, ${meta.date.slice(0, 10)})`,
    "",
    `${meta.machine}; Node ${meta.node}, Bun ${meta.bun}, ${meta.deno}; commit ${meta.commit}. Run took ${seconds} s.`,
    "",
    "Each figure is the median of fresh server processes on 127.0.0.1, read by a raw-socket client in its own Node",
    "process. Before anything is timed, a whole body is parsed with eventsource-parser and checked event by event.",
    "× bare is the adapter's figure over the bare baseline's on the same runtime: above 1× is faster for events/s,",
    "below 1× is better for times and memory. Fan-out: the time from the `emit` request to the moment half, 99 %",
    "and all of the subscribers hold the event's last byte, median over the emits. Churn: memory after all cycles",
    "and a full collection, less memory before; sources left is how many were still running half a second after.",
    "Compress (Node, this library with `compress: true`): the client accepts one coding and decompresses the checked",
    "body whole before parsing it; bytes are the timed body's, CPU the server's during it, memory per idle stream.",
    "",
    ...blocks.flatMap((b) => [table(b), ""]),
  ].join("\n");
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, `${JSON.stringify({ meta, blocks, seconds }, null, 2)}\n`);
  writeFileSync(out.replace(/\.json$/, ".md"), md);
  process.stdout.write(`${md}\nwritten: ${out}\n`);
}
