/**
 * Every command in README.md and in each example's README runs as typed, on this checkout after `npm install`:
 * each server command until it serves events, then the client commands written next to it (curl, redis-cli,
 * Deno's client, the relay's client) against it. The commands are read from the READMEs' `sh` blocks and from
 * the Runtimes table, so the test cannot drift from the text: a command without a row in COMMANDS fails, and so
 * does a row whose command no README has any more. Adding a command is one line here.
 *
 * Rows marked `ci` (the Next.js production build) run only in `npm run test:ci`, and only they run there.
 *
 * The only edits made to a command: the port it documents becomes a free one (servers read $PORT), and
 * `redis-cli` talks to this test's own Redis on its port. `npm install`, written before `npm start`, is what this
 * checkout has already done.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { connect } from "node:http2";
import { afterAll, describe, expect, test } from "vitest";
import { parseWire, readerOf } from "../helpers.ts";
import { startPostgres } from "../support/postgres.ts";
import { startRedis } from "../support/redis.ts";
import { freePort, ROOT, within } from "./harness.ts";
import { blocksOfFile, docFiles } from "./readme-blocks.ts";

/**
 * How the test knows a server serves events: a GET that streams one, or a POST whose answer streams one. With
 * `firstChunk`, the stream's first chunk is enough: its events come from the clients' commands (a publish).
 */
type Probe = ({ get: string } | { post: string; body: unknown }) & {
  firstChunk?: true;
  h2c?: true;
  /** A server that refuses a request without credentials: answering with this status is serving. */
  refuses?: number;
};

/** A command run next to a server, in order: it is started once the previous one printed its `ready` text. */
interface Client {
  command: string;
  /** What its output shows once it is connected (default: `expect`). */
  ready?: RegExp;
  /** What its output must show; it is stopped then, if it has not exited by itself. */
  expect: RegExp;
}

interface Row {
  /** Where it runs: the root, or the example folder its README says to run it from. */
  cwd?: string;
  /**
   * A server: the port it documents (replaced by a free one through $PORT, or in `PORT=N` written in the
   * command), and how it is probed. `ci`: too slow for `npm test` (a Next.js production build), so it runs in
   * `npm run test:ci`, which runs only these rows.
   */
  serves?: { port: number; probe: Probe; needs?: "redis" | "postgres"; ci?: true };
  clients?: Client[];
  /** Not run by this test, and why: another test runs it, or it is this test's own caller. */
  elsewhere?: string;
}

/** Every command the READMEs show, as typed; a client command appears under its server's row. */
const COMMANDS: Record<string, Row> = {
  "npm install && npm start": { elsewhere: "the npm start row: npm install is what this checkout has done" },
  "npm start": { serves: { port: 8787, probe: { get: "/events" } } },
  "npm test": { elsewhere: "the command that runs this test" },
  "npm install eventsource-server": {
    elsewhere: "from the registry; test/package.test.ts installs the packed tarball",
  },
  "npm install && npm pack": { elsewhere: "test/package.test.ts packs a checkout and installs the tarball" },
  "npm install ../eventsource-server/eventsource-server-0.1.0.tgz": {
    elsewhere: "test/package.test.ts, which checks that npm pack names the tarball so",
  },
  "npm run test:ci": { elsewhere: ".ci/run runs it" },
  "cd examples/deno && npx deno task start": { serves: { port: 8787, probe: { get: "/events" } } },
  "npx deno task start": {
    cwd: "examples/deno",
    serves: { port: 8787, probe: { get: "/events" } },
    clients: [
      { command: "npx deno task client http://127.0.0.1:8787/events tick", expect: /"kind":"event","type":"tick"/ },
    ],
  },
  "npx deno task client http://127.0.0.1:8787/events tick": { elsewhere: "a client of npx deno task start" },
  "cd examples/bun && npx bun server.ts": { serves: { port: 8787, probe: { get: "/events" } } },
  "npx bun server.ts": { cwd: "examples/bun", serves: { port: 8787, probe: { get: "/events" } } },
  "npm run dev:cloudflare": { serves: { port: 8787, probe: { get: "/ticks" } } },
  "node examples/cloudflare/dev.mjs": {
    serves: { port: 8787, probe: { get: "/ticks" } },
    clients: [
      { command: "curl -N http://127.0.0.1:8787/ticks", expect: /event: tick\nid: 1\n/ },
      {
        command: "curl -N http://127.0.0.1:8787/rooms/lobby/events",
        ready: /^(retry|:)/m,
        expect: /data: hello, room/,
      },
      { command: "curl -d 'hello, room' http://127.0.0.1:8787/rooms/lobby/publish", expect: /\{"id":"\d+"\}/ },
      // What it replays depends on the room's stored history (dev.mjs keeps it in .wrangler/state across runs).
      { command: "curl -N -H 'Last-Event-ID: 1' http://127.0.0.1:8787/rooms/lobby/events", expect: /^(retry|:)/m },
    ],
  },
  "curl -N http://127.0.0.1:8787/ticks": { elsewhere: "a client of node examples/cloudflare/dev.mjs" },
  "curl -N -H 'Last-Event-ID: 1' http://127.0.0.1:8787/rooms/lobby/events": {
    elsewhere: "a client of node examples/cloudflare/dev.mjs",
  },
  "curl -N http://127.0.0.1:8787/rooms/lobby/events": { elsewhere: "a client of node examples/cloudflare/dev.mjs" },
  "curl -d 'hello, room' http://127.0.0.1:8787/rooms/lobby/publish": {
    elsewhere: "a client of node examples/cloudflare/dev.mjs",
  },
  "cd examples/nextjs && npm ci && npm run build && npm start": {
    serves: { port: 3000, probe: { get: "/api/events" }, ci: true },
  },
  "npm ci && npm run build && PORT=3000 npm start": {
    cwd: "examples/nextjs",
    serves: { port: 3000, probe: { get: "/api/events" }, ci: true },
  },
  "npm run broker": {
    serves: { port: 8788, probe: { get: "/events", firstChunk: true }, needs: "redis" },
    clients: [
      {
        command: "curl -N http://127.0.0.1:8788/events",
        ready: /^(retry|:)/m,
        expect: /event: note\n[\s\S]*data: hello\n/,
      },
      { command: `curl -d '{"event":"note","data":{"n":1}}' http://127.0.0.1:8788/events`, expect: /"id":"\d+-\d+"/ },
      { command: "redis-cli XADD events MAXLEN '~' 1000 '*' data 'hello'", expect: /^\d+-\d+$/m },
    ],
  },
  "PORT=8789 npm run broker": {
    serves: { port: 8789, probe: { get: "/events", firstChunk: true }, needs: "redis" },
  },
  "curl -N http://127.0.0.1:8788/events": { elsewhere: "a client of npm run broker" },
  'curl -d \'{"event":"note","data":{"n":1}}\' http://127.0.0.1:8788/events': {
    elsewhere: "a client of npm run broker",
  },
  "redis-cli XADD events MAXLEN '~' 1000 '*' data 'hello'": { elsewhere: "a client of npm run broker" },
  "npm run example:postgres": {
    serves: { port: 8797, probe: { get: "/events", firstChunk: true }, needs: "postgres" },
    clients: [
      {
        command: "curl -N http://127.0.0.1:8797/events",
        ready: /^(retry|:)/m,
        expect: /event: note\nid: \d+\ndata: \{"n":1\}\n/,
      },
      { command: `curl -d '{"event":"note","data":{"n":1}}' http://127.0.0.1:8797/events`, expect: /"id":"\d+"/ },
    ],
  },
  "curl -N http://127.0.0.1:8797/events": { elsewhere: "a client of npm run example:postgres" },
  'curl -d \'{"event":"note","data":{"n":1}}\' http://127.0.0.1:8797/events': {
    elsewhere: "a client of npm run example:postgres",
  },
  "npm run relay": {
    serves: { port: 8789, probe: { post: "/chat", body: { messages: [{ role: "user", content: "hi" }] } } },
    clients: [
      {
        command: 'node examples/relay/client.js http://127.0.0.1:8789/chat "Say hello"',
        expect: /You said: Say hello\./,
      },
    ],
  },
  'node examples/relay/client.js http://127.0.0.1:8789/chat "Say hello"': { elsewhere: "a client of npm run relay" },
  "npm run example:express": {
    serves: { port: 8790, probe: { get: "/events" } },
    clients: [
      { command: "curl -N http://127.0.0.1:8790/events", expect: /event: tick\nid: 1\n/ },
      {
        command: `curl -N -X POST -H 'content-type: application/json' -d '{"text":"one event per word"}' http://127.0.0.1:8790/words`,
        expect: /event: word\ndata: one\n[\s\S]*data: word\n/,
      },
    ],
  },
  "curl -N http://127.0.0.1:8790/events": { elsewhere: "a client of npm run example:express" },
  "curl -N -X POST -H 'content-type: application/json' -d '{\"text\":\"one event per word\"}' http://127.0.0.1:8790/words":
    {
      elsewhere: "a client of npm run example:express",
    },
  "npm run example:fastify": {
    serves: { port: 8791, probe: { get: "/events" } },
    clients: [
      { command: "curl -N http://127.0.0.1:8791/events", expect: /event: tick\nid: 1\n/ },
      {
        command: `curl -N -X POST -H 'content-type: application/json' -d '{"text":"one event per word"}' http://127.0.0.1:8791/words`,
        expect: /event: word\ndata: one\n[\s\S]*data: word\n/,
      },
    ],
  },
  "curl -N http://127.0.0.1:8791/events": { elsewhere: "a client of npm run example:fastify" },
  "curl -N -X POST -H 'content-type: application/json' -d '{\"text\":\"one event per word\"}' http://127.0.0.1:8791/words":
    {
      elsewhere: "a client of npm run example:fastify",
    },
  "npm run example:koa": {
    serves: { port: 8792, probe: { get: "/events" } },
    clients: [{ command: "curl -N http://127.0.0.1:8792/events", expect: /event: tick\nid: 1\n/ }],
  },
  "curl -N http://127.0.0.1:8792/events": { elsewhere: "a client of npm run example:koa" },
  "npm run example:http2": {
    serves: { port: 8793, probe: { get: "/events", h2c: true } },
    clients: [
      { command: "curl -N --http2-prior-knowledge http://127.0.0.1:8793/events", expect: /event: tick\nid: 1\n/ },
    ],
  },
  "curl -N --http2-prior-knowledge http://127.0.0.1:8793/events": { elsewhere: "a client of npm run example:http2" },
  // The metrics examples emit only what is published: the stream's first chunk shows it is served.
  "npm run example:prometheus": {
    serves: { port: 8794, probe: { get: "/events", firstChunk: true } },
    clients: [
      {
        command: "curl -N http://127.0.0.1:8794/events",
        ready: /^(retry|:)/m,
        expect: /event: note\nid: 1\ndata: hello\n/,
      },
      { command: "curl -i -d 'hello' http://127.0.0.1:8794/publish", expect: /^HTTP\/1\.1 204 /m },
      { command: "curl http://127.0.0.1:8794/metrics", expect: /^sse_events_emitted_total 1$/m },
    ],
  },
  "curl -N http://127.0.0.1:8794/events": { elsewhere: "a client of npm run example:prometheus" },
  "curl -i -d 'hello' http://127.0.0.1:8794/publish": { elsewhere: "a client of npm run example:prometheus" },
  "curl http://127.0.0.1:8794/metrics": { elsewhere: "a client of npm run example:prometheus" },
  "npm run example:opentelemetry": {
    serves: { port: 8795, probe: { get: "/events", firstChunk: true } },
    clients: [{ command: "curl -i -d 'hello' http://127.0.0.1:8795/publish", expect: /^HTTP\/1\.1 204 /m }],
  },
  "curl -i -d 'hello' http://127.0.0.1:8795/publish": { elsewhere: "a client of npm run example:opentelemetry" },
  "npm run example:token": {
    serves: { port: 8796, probe: { get: "/events", refuses: 401 } },
    clients: [
      { command: "node examples/expiring-token/client.js http://127.0.0.1:8796", expect: /^tick \d+ \d{4}-/m },
      { command: "curl -i http://127.0.0.1:8796/events", expect: /^HTTP\/1\.1 401 /m },
    ],
  },
  "node examples/expiring-token/client.js http://127.0.0.1:8796": { elsewhere: "a client of npm run example:token" },
  "curl -i http://127.0.0.1:8796/events": { elsewhere: "a client of npm run example:token" },
};

/** The pages whose commands a newcomer types: the README, docs/, and each example's README. */
function readmes(): string[] {
  const examples = readdirSync(`${ROOT}examples`, { withFileTypes: true })
    .filter((entry) => entry.isDirectory() && existsSync(`${ROOT}examples/${entry.name}/README.md`))
    .map((entry) => `examples/${entry.name}/README.md`);
  return [...docFiles(), ...examples];
}

/** Each command of a README: the lines of its `sh` blocks (comments cut), and the Runtimes table's commands. */
function commandsOf(path: string): string[] {
  const commands: string[] = [];
  for (const block of blocksOfFile(path).filter((b) => b.lang === "sh")) {
    for (const line of block.code.split("\n")) {
      const command = line.replace(/\s+#\s.*$/, "").trim();
      if (command !== "") commands.push(command);
    }
  }
  if (path === "README.md") {
    const text = readFileSync(`${ROOT}${path}`, "utf8");
    const table = text.slice(text.indexOf("| Runtime | Version tested | Run the example |"));
    for (const row of table.split("\n").slice(2)) {
      if (!row.startsWith("|")) break;
      const cell = row.split("|")[3] ?? "";
      const command = /`([^`]+)`/.exec(cell)?.[1];
      if (command !== undefined) commands.push(command);
    }
  }
  return commands;
}

const DOCUMENTED = readmes().flatMap((path) => commandsOf(path).map((command) => ({ path, command })));

/** A process in its own group, so that stopping it stops npm, sh and the runtime they started. */
interface Spawned {
  child: ChildProcess;
  /** What it wrote to stdout (curl's progress meter, on stderr, is kept apart). */
  stdout(): string;
  /** Both streams, for failure messages. */
  output(): string;
  exited: Promise<number | null>;
  stop(): Promise<void>;
}

const running = new Set<Spawned>();

function run(command: string, cwd: string, env: Record<string, string>): Spawned {
  const child = spawn("sh", ["-c", command], {
    cwd: `${ROOT}${cwd}`,
    env: { ...process.env, ...env, NO_COLOR: "1" },
    detached: true,
    stdio: ["pipe", "pipe", "pipe"],
  });
  let output = "";
  let stdout = "";
  child.stdout?.setEncoding("utf8").on("data", (chunk: string) => {
    stdout += chunk;
    output += chunk;
  });
  child.stderr?.setEncoding("utf8").on("data", (chunk: string) => {
    output += chunk;
  });
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  const spawned: Spawned = {
    child,
    stdout: () => stdout,
    output: () => output,
    exited,
    async stop() {
      running.delete(spawned);
      if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
      const group = -child.pid;
      const signal = (name: NodeJS.Signals) => {
        try {
          process.kill(group, name);
        } catch {
          // The group has exited already.
        }
      };
      signal("SIGTERM");
      const killer = setTimeout(() => signal("SIGKILL"), 5_000);
      await exited;
      clearTimeout(killer);
      // npm and sh may exit before the runtime they started: make sure the whole group is gone.
      signal("SIGKILL");
    },
  };
  running.add(spawned);
  return spawned;
}

afterAll(async () => {
  await Promise.all([...running].map((spawned) => spawned.stop()));
});

/** Resolves once the output matches; fails if the process exits first, or after `ms`. */
async function printed(spawned: Spawned, match: RegExp, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!match.test(spawned.stdout())) {
    if (spawned.child.exitCode !== null && !match.test(spawned.stdout())) {
      throw new Error(`${what}: exited (${spawned.child.exitCode}) without printing ${match}:\n${spawned.output()}`);
    }
    if (Date.now() > deadline) throw new Error(`${what}: no ${match} within ${ms} ms:\n${spawned.output()}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** Probes a server until it streams an event: a build step (tsc, next build) may come first. */
async function servesEvents(origin: string, probe: Probe, server: Spawned, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    if (server.child.exitCode !== null) throw new Error(`exited (${server.child.exitCode}):\n${server.output()}`);
    const init: RequestInit =
      "get" in probe
        ? {}
        : { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(probe.body) };
    const url = `${origin}${"get" in probe ? probe.get : probe.post}`;
    if (probe.h2c) {
      // HTTP/2 without TLS (h2c), which fetch does not speak: node:http2's client, until the first event.
      if (await h2cServesAnEvent(url)) return;
      if (Date.now() > deadline) throw new Error(`nothing served ${url} within ${ms} ms:\n${server.output()}`);
      await new Promise((resolve) => setTimeout(resolve, 200));
      continue;
    }
    // Not yet listening (a build may come first): the connection is refused at once, so try again.
    const response = await fetch(url, init).catch(() => undefined);
    if (response !== undefined && probe.refuses !== undefined) {
      expect(response.status).toBe(probe.refuses);
      await response.body?.cancel();
      return;
    }
    if (response !== undefined) {
      expect(response.headers.get("content-type")).toBe("text/event-stream; charset=utf-8");
      const reader = readerOf(response);
      const decoder = new TextDecoder();
      let wire = "";
      try {
        while (probe.firstChunk ? wire === "" : parseWire(wire).events.length === 0) {
          const { done, value } = await within(reader.read(), 10_000, `an event from ${url}`);
          if (done) throw new Error(`${url} ended without an event:\n${wire}`);
          wire += decoder.decode(value, { stream: true });
        }
      } finally {
        await reader.cancel();
      }
      return;
    }
    if (Date.now() > deadline) throw new Error(`nothing served ${url} within ${ms} ms:\n${server.output()}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

/** GETs `url` over h2c; true once an event arrives, false when nothing listens there yet. */
function h2cServesAnEvent(url: string): Promise<boolean> {
  const { origin, pathname } = new URL(url);
  return new Promise((resolve, reject) => {
    const session = connect(origin);
    session.once("error", () => resolve(false));
    const stream = session.request({ ":path": pathname });
    let wire = "";
    stream.setEncoding("utf8");
    stream.on("response", (headers) => {
      if (headers["content-type"] !== "text/event-stream; charset=utf-8") {
        reject(new Error(`${url} answered ${String(headers["content-type"])}`));
      }
    });
    stream.on("data", (chunk: string) => {
      wire += chunk;
      if (parseWire(wire).events.length > 0) {
        session.destroy();
        resolve(true);
      }
    });
    stream.once("error", () => resolve(false));
  });
}

describe("README commands", () => {
  test("every command the READMEs show has a row, and every row's command is still in a README", () => {
    expect(DOCUMENTED.length).toBeGreaterThan(10);
    for (const { path, command } of DOCUMENTED) {
      expect(COMMANDS[command], `${path}: \`${command}\` has no row in COMMANDS`).toBeDefined();
    }
    const shown = new Set(DOCUMENTED.map(({ command }) => command));
    for (const command of Object.keys(COMMANDS)) {
      expect(shown.has(command), `\`${command}\` is in no README any more: drop its row`).toBe(true);
    }
    // Nothing left bare that only works with node_modules/.bin on PATH.
    for (const { path, command } of DOCUMENTED) {
      expect(command, `${path}: ${command}`).not.toMatch(/(^|&& )(deno|bun|tsc|vitest|next) /);
    }
  });

  const { EVENTSOURCE_SERVER_CI } = process.env;
  const CI = EVENTSOURCE_SERVER_CI === "1";
  for (const [command, row] of Object.entries(COMMANDS).filter(([, r]) => r.serves !== undefined)) {
    const where = row.serves?.ci ? test.runIf(CI) : test.skipIf(CI);
    // Each row runs in one of the two configs; the name says where, so a skip in the other one says why.
    const only = row.serves?.ci
      ? " (only in npm run test:ci: a Next.js production build is too slow for npm test)"
      : CI
        ? " (only in npm test: npm run test:ci runs just the Next.js rows)"
        : "";
    where(
      `\`${command}\` serves events, and its clients work against it, as typed${only}`,
      async () => {
        const serves = row.serves;
        if (serves === undefined) throw new Error("not a server");
        const port = await freePort();
        const redis = serves.needs === "redis" ? await startRedis() : undefined;
        const postgres = serves.needs === "postgres" ? await startPostgres() : undefined;
        const env = {
          PORT: String(port),
          ...(redis ? { REDIS_URL: `redis://127.0.0.1:${redis.port}` } : {}),
          ...(postgres ? { DATABASE_URL: postgres.url } : {}),
        };
        const here = (text: string) =>
          text
            .replaceAll(`127.0.0.1:${serves.port}`, `127.0.0.1:${port}`)
            .replace(/^redis-cli /, `redis-cli -p ${redis?.port} `);
        const server = run(command.replace(`PORT=${serves.port} `, `PORT=${port} `), row.cwd ?? "", env);
        const clients: Spawned[] = [];
        try {
          await servesEvents(`http://127.0.0.1:${port}`, serves.probe, server, serves.ci ? 300_000 : 120_000);
          for (const client of row.clients ?? []) {
            const spawned = run(here(client.command), row.cwd ?? "", env);
            clients.push(spawned);
            await printed(spawned, client.ready ?? client.expect, 30_000, client.command);
          }
          for (const [i, client] of (row.clients ?? []).entries()) {
            const spawned = clients[i] as Spawned;
            await printed(spawned, client.expect, 30_000, client.command);
            // A one-shot command must also have succeeded.
            if (spawned.child.exitCode !== null) expect(spawned.child.exitCode, client.command).toBe(0);
          }
        } finally {
          for (const spawned of clients) await spawned.stop();
          await server.stop();
          await redis?.stop();
          await postgres?.stop();
        }
      },
      400_000,
    );
  }
});
