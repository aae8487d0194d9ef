/**
 * The HTTP bench's client, in a process of its own: `node bench/http/client.mjs <scenario> <port> <size> [emits]`,
 * or `… compress <port> <events> <idle connections> <identity|gzip|br>`.
 * Prints one JSON line `{ valid, problems, ...figures }`.
 *
 * No EventSource and no HTTP library: `net.connect`, one GET written by hand, the status line and headers read
 * once, the chunked body decoded by a small state machine. Validity first: before anything is timed, a whole
 * body (or one subscriber's, for the fan-out) is parsed with eventsource-parser and compared event by event
 * with what the server was asked to send. The timed part only counts `data:` fields, which each event here has
 * exactly one of and no comment has.
 */
import { connect } from "node:net";
import { performance } from "node:perf_hooks";
import { createBrotliDecompress, createGunzip } from "node:zlib";
import { createParser } from "eventsource-parser";
import { news, order, small, tick } from "./events.mjs";

const [scenario, portArg, sizeArg, emitsArg, codingArg] = process.argv.slice(2);
const port = Number(portArg);
const size = Number(sizeArg);
const HOST = "127.0.0.1";
const CONNECT_AT_ONCE = 200;
const LIMIT_MS = 120_000;

let unhandled = 0;
process.on("unhandledRejection", (error) => {
  unhandled++;
  console.error(error);
});

const MARK = Buffer.from("data:");
const CRLFCRLF = Buffer.from("\r\n\r\n");

/**
 * One HTTP/1.1 request on its own socket. `onBody(bytes)` gets each decoded piece of the body, `events` counts
 * `data:` fields as they pass (`onCount` is told of each new count), `ended` settles when the body ends.
 */
function request(path, { keep = false, onCount, close = false, coding } = {}) {
  const socket = connect({ host: HOST, port, noDelay: true });
  const conn = {
    socket,
    status: 0,
    headers: "",
    events: 0,
    bytes: 0,
    body: keep ? [] : undefined,
    ready: undefined,
    ended: undefined,
  };
  let head = Buffer.alloc(0);
  let inBody = false;
  let chunked = false;
  let length = Number.POSITIVE_INFINITY;
  // chunked state: the chunk size line being read, the data bytes left in the current chunk, CRLFs to skip
  let sizeLine = "";
  let left = 0;
  let skip = 0;
  let tail = Buffer.alloc(0);
  let readyResolve;
  let readyReject;
  let endResolve;
  let endReject;
  conn.ready = new Promise((resolve, reject) => {
    readyResolve = resolve;
    readyReject = reject;
  });
  conn.ended = new Promise((resolve, reject) => {
    endResolve = resolve;
    endReject = reject;
  });
  conn.ready.catch(() => {});
  conn.ended.catch(() => {});
  let done = false;
  const finish = () => {
    if (done) return;
    done = true;
    endResolve(conn);
  };

  /** Counts `data:` in `bytes`, including one that straddles the previous piece. */
  function count(bytes) {
    let found = 0;
    if (tail.length > 0) {
      const joint = Buffer.concat([tail, bytes.subarray(0, MARK.length - 1)]);
      for (let at = joint.indexOf(MARK); at !== -1 && at < tail.length; at = joint.indexOf(MARK, at + 1)) found++;
    }
    for (let at = bytes.indexOf(MARK); at !== -1; at = bytes.indexOf(MARK, at + MARK.length)) found++;
    const joined = bytes.length >= MARK.length - 1 ? bytes : Buffer.concat([tail, bytes]);
    tail = Buffer.from(joined.subarray(Math.max(0, joined.length - (MARK.length - 1))));
    return found;
  }

  function body(bytes) {
    if (bytes.length === 0) return;
    conn.bytes += bytes.length;
    if (conn.body) conn.body.push(Buffer.from(bytes));
    const found = count(bytes);
    if (found > 0) {
      conn.events += found;
      onCount?.(conn);
    }
    if (conn.bytes >= length) finish();
  }

  function dechunk(data) {
    let i = 0;
    while (i < data.length) {
      if (skip > 0) {
        const n = Math.min(skip, data.length - i);
        skip -= n;
        i += n;
      } else if (left > 0) {
        const n = Math.min(left, data.length - i);
        body(data.subarray(i, i + n));
        left -= n;
        i += n;
        if (left === 0) skip = 2;
      } else {
        const lf = data.indexOf(10, i);
        if (lf === -1) {
          sizeLine += data.toString("latin1", i);
          return;
        }
        sizeLine += data.toString("latin1", i, lf);
        i = lf + 1;
        left = Number.parseInt(sizeLine, 16);
        sizeLine = "";
        if (left === 0) {
          finish();
          return;
        }
      }
    }
  }

  socket.on("data", (data) => {
    if (inBody) return chunked ? dechunk(data) : body(data);
    head = Buffer.concat([head, data]);
    const end = head.indexOf(CRLFCRLF);
    if (end === -1) return;
    conn.headers = head.toString("latin1", 0, end);
    conn.status = Number(conn.headers.slice(9, 12));
    chunked = /\r\ntransfer-encoding:\s*chunked/i.test(conn.headers);
    const declared = /\r\ncontent-length:\s*(\d+)/i.exec(conn.headers);
    if (declared !== null) length = Number(declared[1]);
    inBody = true;
    readyResolve(conn);
    const rest = head.subarray(end + 4);
    head = undefined;
    if (chunked) dechunk(rest);
    else if (length === 0) finish();
    else body(rest);
  });
  socket.on("error", (error) => {
    readyReject(error);
    endReject(error);
  });
  socket.on("close", () => {
    readyReject(new Error(`${path}: connection closed before the headers`));
    finish();
  });
  const connection = close ? "Connection: close\r\n" : "";
  const encoding = coding ? `Accept-Encoding: ${coding}\r\n` : "";
  socket.write(
    `GET ${path} HTTP/1.1\r\nHost: ${HOST}:${port}\r\nAccept: text/event-stream\r\n${encoding}${connection}\r\n`,
  );
  return conn;
}

/** The JSON answer of a control route. */
async function control(path) {
  const conn = request(path, { keep: true, close: true });
  await conn.ended;
  conn.socket.destroy();
  return JSON.parse(Buffer.concat(conn.body).toString("utf8"));
}

/** Parses `bytes` and compares each event with `expect(i)`; returns the problems and the event count. */
function check(bytes, expect, want) {
  const problems = [];
  let count = 0;
  const parser = createParser({
    onEvent(m) {
      const e = expect(count++);
      for (const field of ["event", "id", "data"]) {
        const want = typeof e[field] === "string" ? e[field] : JSON.stringify(e[field]);
        if (m[field] !== want && problems.length < 3) {
          problems.push(`event ${count - 1} ${field}: got ${JSON.stringify(m[field])}, want ${JSON.stringify(want)}`);
        }
      }
    },
  });
  parser.feed(Buffer.concat(bytes).toString("utf8"));
  if (count !== want) problems.push(`${count} events dispatched, want ${want}`);
  return problems;
}

const within = (promise, ms, what) =>
  Promise.race([
    promise,
    new Promise((_, reject) => setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms).unref()),
  ]);

/** Opens `n` connections to `path`, `CONNECT_AT_ONCE` at a time, each ready once its headers arrive. */
async function openMany(n, path, options) {
  const conns = [];
  for (let i = 0; i < n; i += CONNECT_AT_ONCE) {
    const batch = [];
    for (let j = i; j < Math.min(n, i + CONNECT_AT_ONCE); j++) batch.push(request(path, options(j)));
    await Promise.all(batch.map((c) => c.ready));
    conns.push(...batch);
  }
  return conns;
}

const quantile = (sorted, q) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
const median = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];

// ---------------------------------------------------------------- one client, many events
async function throughput() {
  const checked = request("/stream", { keep: true });
  await within(checked.ended, LIMIT_MS, "the checked body");
  checked.socket.destroy();
  const problems = check(checked.body, small, size);
  if (!checked.headers.toLowerCase().includes("content-type: text/event-stream")) problems.push("no event-stream type");
  if (problems.length > 0) return { problems };
  const t0 = performance.now();
  const timed = request("/stream");
  await within(timed.ended, LIMIT_MS, "the timed body");
  const ms = performance.now() - t0;
  timed.socket.destroy();
  if (timed.events !== size) problems.push(`timed run: ${timed.events} data fields, want ${size}`);
  if (timed.bytes !== checked.bytes) problems.push(`timed run: ${timed.bytes} bytes, checked run ${checked.bytes}`);
  return { problems, ms, eventsPerSec: (size / ms) * 1000, bytes: timed.bytes };
}

// ---------------------------------------------------------------- one emit, many clients
async function fanout() {
  const emits = Number(emitsArg ?? 20);
  const arrived = new Float64Array(size);
  let waiting = 0;
  let wanted = 0;
  let allArrived;
  const onCount = (i) => (conn) => {
    if (conn.events === wanted) {
      arrived[i] = performance.now();
      if (--waiting === 0) allArrived();
    }
  };
  const watched = new Set([0, size >> 1, size - 1]);
  const conns = await within(
    openMany(size, "/channel", (i) => ({ keep: watched.has(i), onCount: onCount(i) })),
    LIMIT_MS,
    `${size} subscribers`,
  );
  // A subscriber is counted once the server has it, which may be a moment after its headers left.
  for (let t = 0; t < 100; t++) {
    if ((await control("/stats?quick")).subscribers >= size) break;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  const problems = [];
  const times = { p50: [], p99: [], max: [] };
  for (let k = 0; k <= emits; k++) {
    wanted = k + 1;
    waiting = size;
    const all = new Promise((resolve) => {
      allArrived = resolve;
    });
    const t0 = performance.now();
    control(`/emit?k=${k}`).catch((error) => problems.push(String(error)));
    try {
      await within(all, 30_000, `emit ${k}`);
    } catch (error) {
      problems.push(`${error.message}: ${waiting} of ${size} subscribers did not get it`);
      break;
    }
    if (k === 0) continue; // the first emit warms up, and is not timed
    const latencies = Array.from(arrived, (at) => at - t0).sort((a, b) => a - b);
    times.p50.push(quantile(latencies, 0.5));
    times.p99.push(quantile(latencies, 0.99));
    times.max.push(latencies[latencies.length - 1]);
  }
  for (const i of watched) problems.push(...check(conns[i].body, news, emits + 1).map((p) => `subscriber ${i}: ${p}`));
  const off = conns.findIndex((c) => c.events !== emits + 1);
  if (off !== -1) problems.push(`subscriber ${off} counted ${conns[off].events} events, want ${emits + 1}`);
  for (const c of conns) c.socket.destroy();
  return {
    problems,
    p50: median(times.p50),
    p99: median(times.p99),
    max: median(times.max),
  };
}

// ---------------------------------------------------------------- many idle clients
async function idle() {
  const before = await control("/stats");
  const conns = await within(
    openMany(size, "/idle", () => ({ keep: true })),
    LIMIT_MS,
    `${size} idle connections`,
  );
  await new Promise((resolve) => setTimeout(resolve, 500));
  const after = await control("/stats");
  const problems = [];
  const bad = conns.findIndex((c) => c.status !== 200);
  if (bad !== -1) problems.push(`connection ${bad}: status ${conns[bad].status}`);
  for (const i of [0, size - 1]) problems.push(...check(conns[i].body, news, 0).map((p) => `connection ${i}: ${p}`));
  for (const c of conns) c.socket.destroy();
  return {
    problems,
    heapPerConn: (after.heapUsed - before.heapUsed) / size,
    rssPerConn: (after.rss - before.rss) / size,
    timersPerConn: after.timers === null ? null : (after.timers - before.timers) / size,
  };
}

// ---------------------------------------------------------------- connect, read one event, leave
async function churn() {
  const concurrency = 100;
  const before = await control("/stats");
  const problems = [];
  let next = 0;
  let valid = 0;
  const t0 = performance.now();
  async function worker() {
    while (next < size) {
      next++;
      let firstEvent;
      const got = new Promise((resolve) => {
        firstEvent = resolve;
      });
      const conn = request("/ticker", { keep: true, onCount: () => firstEvent() });
      await within(Promise.race([got, conn.ended]), 30_000, "the first event");
      conn.socket.destroy();
      const mine = check(conn.body, tick, conn.events);
      if (mine.length === 0 && conn.events >= 1) valid++;
      else if (problems.length < 3) problems.push(...mine);
    }
  }
  await Promise.all(Array.from({ length: concurrency }, worker));
  const ms = performance.now() - t0;
  // every source has stopped within a tick and a half, if it stops at all
  await new Promise((resolve) => setTimeout(resolve, 500));
  const after = await control("/stats");
  if (valid !== size) problems.push(`${size - valid} of ${size} cycles did not read a valid first event`);
  return {
    problems,
    ms,
    cyclesPerSec: (size / ms) * 1000,
    running: after.running,
    heapDelta: after.heapUsed - before.heapUsed,
    rssDelta: after.rss - before.rss,
  };
}

// ---------------------------------------------------------------- compress: 1 KB JSON events, then idle
/** The body's bytes as the server sent them, decompressed as `content-encoding` says, whole. */
async function decompressed(conn) {
  const coding = /\r\ncontent-encoding:\s*(\S+)/i.exec(conn.headers)?.[1] ?? "identity";
  if (coding === "identity") return { coding, bytes: conn.body };
  const inflate = coding === "br" ? createBrotliDecompress() : createGunzip();
  const bytes = [];
  inflate.on("data", (piece) => bytes.push(piece));
  const done = new Promise((resolve, reject) => inflate.on("end", resolve).on("error", reject));
  for (const piece of conn.body) inflate.write(piece);
  inflate.end();
  await done;
  return { coding, bytes };
}

async function compress() {
  const coding = codingArg;
  const idleCount = Number(emitsArg);
  const checked = request("/orders", { keep: true, coding });
  await within(checked.ended, LIMIT_MS, "the checked body");
  checked.socket.destroy();
  const body = await decompressed(checked);
  const problems = check(body.bytes, order, size);
  if (body.coding !== coding) problems.push(`content-encoding ${body.coding}, want ${coding}`);
  if (problems.length > 0) return { problems };
  const cpuBefore = (await control("/stats?quick")).cpu;
  const timed = request("/orders", { coding });
  await within(timed.ended, LIMIT_MS, "the timed body");
  const cpuAfter = (await control("/stats?quick")).cpu;
  timed.socket.destroy();
  if (coding === "identity" && timed.events !== size) problems.push(`timed run: ${timed.events} events, want ${size}`);
  const before = await control("/stats");
  const conns = await within(
    openMany(idleCount, "/orders-idle", () => ({ keep: true, coding })),
    LIMIT_MS,
    `${idleCount} idle connections`,
  );
  await new Promise((resolve) => setTimeout(resolve, 500));
  const after = await control("/stats");
  const bad = conns.findIndex(
    (c) => c.status !== 200 || !c.headers.toLowerCase().includes(`content-encoding: ${coding}`),
  );
  if (bad !== -1 && coding !== "identity") problems.push(`idle connection ${bad}: ${conns[bad].headers}`);
  for (const c of conns) c.socket.destroy();
  return {
    problems,
    bytesPerEvent: timed.bytes / size,
    cpuPerEvent: (cpuAfter - cpuBefore) / size,
    heapPerConn: (after.heapUsed - before.heapUsed) / idleCount,
    rssPerConn: (after.rss - before.rss) / idleCount,
  };
}

const run = { throughput, fanout, idle, churn, compress }[scenario];
if (run === undefined || !(port > 0) || !(size > 0)) {
  throw new Error(
    `usage: client.mjs <throughput|fanout|idle|churn> <port> <size> [emits] | compress <port> <events> <idle> <coding>, got ${process.argv}`,
  );
}
let result;
try {
  result = await run();
} catch (error) {
  result = { problems: [String(error?.message ?? error)] };
}
if (unhandled > 0) result.problems.push(`${unhandled} unhandled rejections`);
result.valid = result.problems.length === 0;
process.stdout.write(`${JSON.stringify(result)}\n`);
process.exit(0);
