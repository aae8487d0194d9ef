/**
 * A client's Last-Event-ID is untrusted input. Every example that resumes from one is started for real (Node's
 * bundled with the package name mapped to src/, Bun and Deno as their READMEs run them, the Worker in Miniflare,
 * the broker on a real redis-server, the PostgreSQL example on a real PostgreSQL) and sent ids that `Number(id) || 0` misreads: Infinity, a rounded
 * neighbour, a count it never gave. Each must get a healthy stream, and the example must log nothing.
 * The Next.js route gets the same check in test/runtime/nextjs.test.ts.
 */
import { readFileSync } from "node:fs";
import { Miniflare } from "miniflare";
import { afterAll, beforeAll, describe } from "vitest";
import { bundle, miniflareOptions } from "../../examples/cloudflare/build.mjs";
import { bundleBroker, bundlePostgresExample, startBroker, startPostgresExample } from "../support/broker.ts";
import { type PostgresServer, startPostgres } from "../support/postgres.ts";
import { type RedisServer, startRedis } from "../support/redis.ts";
import {
  binary,
  bundleExample,
  bundleNodeDemo,
  DENO_ENV,
  hostileIdsScenario,
  ROOT,
  type Running,
  startServer,
  within,
} from "./harness.ts";

/** A server process started in `beforeAll` and stopped in `afterAll`. */
function started(start: () => Promise<Running>): () => Running {
  let running: Running | undefined;
  beforeAll(async () => {
    running = await start();
  });
  afterAll(async () => {
    await running?.stop();
  });
  return () => {
    if (running === undefined) throw new Error("the example did not start");
    return running;
  };
}

/** Its stderr, as lines. */
const stderrOf = (example: () => Running) => () => example().stderr.seen;

for (const [folder, external] of [
  ["express", ["express"]],
  ["fastify", ["fastify"]],
  ["koa", ["koa"]],
] as const) {
  describe(`examples/${folder}`, () => {
    const example = started(async () => {
      const outfile = await bundleExample(`examples/${folder}/server.js`, `${folder}-hostile-ids.test`, [...external]);
      return startServer(process.execPath, [outfile], { env: { PORT: "0" } });
    });
    hostileIdsScenario(
      `${folder} example`,
      { url: () => `${example().origin}/events`, countsFromOne: true },
      stderrOf(example),
    );
  });
}

describe("examples/http2 (h2c)", () => {
  const example = started(async () => {
    const outfile = await bundleExample("examples/http2/server.js", "http2-hostile-ids.test");
    return startServer(process.execPath, [outfile], { env: { PORT: "0" } });
  });
  hostileIdsScenario(
    "http2 example",
    { url: () => `${example().origin}/events`, countsFromOne: true, h2c: true },
    stderrOf(example),
  );
});

describe("examples/node (the channel's memory history)", () => {
  const example = started(async () => {
    const outfile = await bundleNodeDemo("node-demo-hostile-ids.test");
    return startServer(process.execPath, [outfile], { env: { PORT: "0" } });
  });
  hostileIdsScenario("node demo", { url: () => `${example().origin}/events` }, stderrOf(example));
});

describe("examples/bun, as its README runs it", () => {
  const example = started(() =>
    startServer(binary("bun"), ["server.ts"], { cwd: `${ROOT}examples/bun`, env: { PORT: "0" } }),
  );
  hostileIdsScenario(
    "bun example",
    { url: () => `${example().origin}/events`, countsFromOne: true },
    stderrOf(example),
  );
});

describe("examples/deno, with the permissions of its start task", () => {
  const example = started(() => {
    // `deno task start` runs the runtime in a child shell that a signal to `deno task` would orphan: run the task's
    // own command line, with its permissions, directly.
    const { tasks } = JSON.parse(readFileSync(`${ROOT}examples/deno/deno.json`, "utf8")) as {
      tasks: { start?: string };
    };
    const words = (tasks.start ?? "").split(" ").filter((word) => !/^[A-Z_]+=/.test(word));
    if (words[0] !== "deno") throw new Error(`the start task is not a deno command: ${tasks.start}`);
    return startServer(binary("deno"), words.slice(1), {
      cwd: `${ROOT}examples/deno`,
      env: { ...DENO_ENV, PORT: "0" },
    });
  });
  hostileIdsScenario(
    "deno example",
    { url: () => `${example().origin}/events`, countsFromOne: true },
    stderrOf(example),
  );
});

describe("examples/cloudflare in Miniflare", () => {
  let mf: Miniflare | undefined;
  let origin = "";
  const printed: string[] = [];
  let rooms = 0;
  beforeAll(async () => {
    await bundle();
    mf = new Miniflare(
      miniflareOptions({ bindings: { TICK_MS: "1000" }, output: (text) => printed.push(...text.split("\n")) }),
    );
    origin = (await mf.ready).origin;
  });
  afterAll(async () => {
    await mf?.dispose();
  });
  const quiet = () => printed.filter((line) => line.trim() !== "");

  hostileIdsScenario("cloudflare /ticks", { url: () => `${origin}/ticks`, countsFromOne: true }, quiet);
  hostileIdsScenario(
    "cloudflare room (history in storage)",
    {
      // A room of its own for each stream, so each sees only the two events published for it.
      url: () => `${origin}/rooms/hostile-${++rooms}/events`,
      async publish(url) {
        for (const text of ["one", "two"]) {
          const response = await fetch(url.replace(/\/events$/, "/publish"), { method: "POST", body: text });
          if (response.status !== 201) throw new Error(`publish answered ${response.status}`);
        }
      },
    },
    quiet,
  );
});

describe("examples/broker on a real redis-server", () => {
  let redis: RedisServer | undefined;
  // Registered before the broker's own hooks: Redis starts first and stops last.
  beforeAll(async () => {
    redis = await startRedis();
  });
  afterAll(async () => {
    await redis?.stop();
  });
  const example = started(async () => {
    if (redis === undefined) throw new Error("redis did not start");
    const outfile = await bundleBroker("broker-hostile-ids.test");
    return startBroker(outfile, { REDIS_URL: redis.url, STREAM: "hostile-ids" });
  });
  hostileIdsScenario(
    "broker",
    {
      url: () => `${example().origin}/events`,
      entryIds: true,
      async publish(url) {
        for (const n of [1, 2]) {
          const response = await within(
            fetch(url, { method: "POST", body: JSON.stringify({ data: { n } }) }),
            10_000,
            "POST /events",
          );
          if (response.status !== 201) throw new Error(`publish answered ${response.status}`);
        }
      },
    },
    stderrOf(example),
  );
});

describe("examples/postgres on a real PostgreSQL", () => {
  let postgres: PostgresServer | undefined;
  // Registered before the example's own hooks: PostgreSQL starts first and stops last.
  beforeAll(async () => {
    postgres = await startPostgres();
  }, 300_000);
  afterAll(async () => {
    await postgres?.stop();
  });
  const example = started(async () => {
    if (postgres === undefined) throw new Error("postgres did not start");
    const outfile = await bundlePostgresExample("postgres-hostile-ids.test");
    return startPostgresExample(outfile, { DATABASE_URL: postgres.url, TOPIC: "hostile-ids" });
  });
  hostileIdsScenario(
    "postgres",
    {
      url: () => `${example().origin}/events`,
      async publish(url) {
        for (const n of [1, 2]) {
          const response = await within(
            fetch(url, { method: "POST", body: JSON.stringify({ data: { n } }) }),
            10_000,
            "POST /events",
          );
          if (response.status !== 201) throw new Error(`publish answered ${response.status}`);
        }
      },
    },
    stderrOf(example),
  );
});
