/**
 * eventsource-server/postgres against a real PostgreSQL (a throwaway cluster of Debian's binaries): the shared
 * contract (test/logs/contract.ts), then what only the table does: setup(), LISTEN on the listener or a connection of
 * its own, reading every second without one, a lost notification, trimming in batches, and ids that commit in order
 * under 20 concurrent publishers (and, without the advisory lock, a feed that skips rows).
 */
import { EventChannel, type ServerSentEvent } from "eventsource-server";
import { type PostgresListener, type PostgresPool, postgresLog } from "eventsource-server/postgres";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, test, vi } from "vitest";
import { within } from "../runtime/harness.ts";
import { type PostgresServer, startPostgres } from "../support/postgres.ts";
import { type Engine, eventually, feedRuns, type Gate, logContract, type OpenOptions, until } from "./contract.ts";

const TABLE = "eventsource_events";

let server: PostgresServer | undefined;
let admin: pg.Pool | undefined;

beforeAll(async () => {
  server = await startPostgres();
  admin = poolOf(server);
  await postgresLog({ pool: admin, topic: "setup" }).setup();
}, 300_000);

afterAll(async () => {
  await admin?.end();
  await server?.stop();
});

/** A pool on the test server; an idle connection's error (the server restarting) is expected, not fatal. */
function poolOf(postgres: PostgresServer, max = 4): pg.Pool {
  const pool = new pg.Pool({ ...postgres.config, max });
  pool.on("error", () => {});
  return pool;
}

function running(): { server: PostgresServer; admin: pg.Pool } {
  if (server === undefined || admin === undefined) throw new Error("postgres did not start");
  return { server, admin };
}

/** A pool whose feed reads come back through `gate`. */
function gatedPool(pool: pg.Pool, gate: Gate): PostgresPool {
  return {
    query: (text: string, values?: unknown[]) => {
      const answer = pool.query(text, values);
      return text.includes("eventsource-server feed") ? gate.through(answer) : answer;
    },
    connect: () => pool.connect(),
  };
}

async function rowsOf<Row>(text: string, values: unknown[] = []): Promise<Row[]> {
  return (await running().admin.query(text, values)).rows as Row[];
}

const engine: Engine = {
  label: "postgres",
  name: "postgresLog",
  idPattern: /^[1-9]\d*$/,
  foreignId: "9000000000000000000",
  async open(topic, options: OpenOptions = {}) {
    const pool = poolOf(running().server);
    const log = postgresLog({
      pool: options.gate === undefined ? pool : gatedPool(pool, options.gate),
      topic,
      ...(options.keep === undefined ? {} : { keep: options.keep }),
      ...(options.serialize === undefined ? {} : { serialize: options.serialize }),
    });
    return {
      log,
      async close() {
        await log.close();
        await pool.end();
      },
    };
  },
  async ids(topic) {
    const rows = await rowsOf<{ position: string }>(
      `select id::text as position from ${TABLE} where topic = $1 order by id`,
      [topic],
    );
    return rows.map((row) => row.position);
  },
  async write(topic, fields) {
    const [row] = await rowsOf<{ id: string }>(
      `insert into ${TABLE} (topic, event) values ($1, $2::json) returning id::text as id`,
      [topic, JSON.stringify(fields)],
    );
    return (row as { id: string }).id;
  },
  async bulk(topic, count) {
    await rowsOf(
      `insert into ${TABLE} (topic, event) select $1, json_build_object('data', n::text) from generate_series(0, $2 - 1) as n order by n`,
      [topic, count],
    );
    return engine.ids(topic);
  },
  async clear(topic) {
    await rowsOf(`delete from ${TABLE} where topic = $1`, [topic]);
  },
  async poison(topic) {
    const name = `poison_${topic.replace(/\W/g, "_")}`.slice(0, 60);
    await rowsOf(
      `create function ${name}() returns trigger language plpgsql as $$ begin raise exception 'poisoned'; end $$`,
    );
    await rowsOf(
      `create trigger ${name} before insert on ${TABLE} for each row when (new.topic = '${topic}') execute function ${name}()`,
    );
    return async () => {
      await rowsOf(`drop trigger ${name} on ${TABLE}`);
      await rowsOf(`drop function ${name}()`);
    };
  },
  async outage() {
    const { server: postgres } = running();
    await postgres.crash();
    return () => postgres.start();
  },
};

logContract(engine);

/** The log fed into a channel that records what it is emitted; resolves once the feed runs. */
async function recording(log: ReturnType<typeof postgresLog>, topic: string) {
  const channel = new EventChannel({ history: log });
  const emitted: ServerSentEvent[] = [];
  const emit = channel.emit.bind(channel);
  channel.emit = (input) => {
    emit(input);
    emitted.push(input as ServerSentEvent);
  };
  log.feed(channel);
  await feedRuns(log, emitted, async () => (await engine.ids(topic)).at(-1));
  return { channel, emitted };
}

/** The backends LISTENing on the table's channel now. */
async function listeners(): Promise<number[]> {
  // pg_listening_channels() answers for its own backend only: ask every backend through pg_stat_activity's last query.
  const rows = await rowsOf<{ pid: number }>(
    `select pid from pg_stat_activity where query = 'LISTEN "${TABLE}"' and state = 'idle'`,
  );
  return rows.map((row) => row.pid);
}

/** Resolves once the backends LISTENing satisfy `done`; fails after 5 s. */
async function listening(done: (pids: number[]) => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 5_000;
  while (!done(await listeners())) {
    if (Date.now() > deadline) throw new Error(`gave up waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

describe("postgresLog, a table", () => {
  test("setup() creates the table and its primary key (topic, id); again, and from five instances at once, too", async () => {
    const pool = poolOf(running().server);
    try {
      const logs = Array.from({ length: 5 }, () => postgresLog({ pool, table: "setup_race", topic: "t" }));
      await Promise.all(logs.map((log) => log.setup()));
      await logs[0]?.setup();
      const columns = await rowsOf<{ column_name: string; data_type: string }>(
        "select column_name, data_type from information_schema.columns where table_name = 'setup_race' order by ordinal_position",
      );
      expect(columns).toEqual([
        { column_name: "topic", data_type: "text" },
        { column_name: "id", data_type: "bigint" },
        { column_name: "event", data_type: "json" },
      ]);
      const [index] = await rowsOf<{ indexdef: string }>(
        "select indexdef from pg_indexes where tablename = 'setup_race'",
      );
      expect(index?.indexdef).toMatch(/UNIQUE INDEX setup_race_pkey ON public\.setup_race USING btree \(topic, id\)/);
    } finally {
      await pool.end();
    }
  });

  test("LISTENs on the listener it is given, only once fed, and wakes at once on a publish; close() UNLISTENs", async () => {
    const { server: postgres } = running();
    const pool = poolOf(postgres);
    const listener = new pg.Client(postgres.config);
    await listener.connect();
    const [{ pid }] = (await listener.query("select pg_backend_pid() as pid")).rows as [{ pid: number }];
    try {
      const log = postgresLog({ pool, listener, topic: "given-listener" });
      expect(await listeners()).toEqual([]);
      const { emitted } = await recording(log, "given-listener");
      await listening((pids) => pids.includes(pid), "the listener to LISTEN");
      expect(await listeners()).toEqual([pid]);
      const sent = performance.now();
      const id = await log.publish("x");
      await until(emitted, 1, "events");
      // Woken by the notification, not by a read every second.
      expect(performance.now() - sent).toBeLessThan(500);
      expect(emitted).toEqual([{ id, data: "x" }]);
      await log.close();
      expect((await listener.query("select pg_listening_channels() as channel")).rows).toEqual([]);
      expect(await listeners()).toEqual([]);
    } finally {
      await listener.end();
      await pool.end();
    }
  });

  test("without a listener, LISTENs on a connection of its own, which close() gives back", async () => {
    const pool = poolOf(running().server);
    try {
      const log = postgresLog({ pool, topic: "own-listener" });
      const { emitted } = await recording(log, "own-listener");
      await listening((pids) => pids.length === 1, "a connection of the pool's to LISTEN");
      const id = await log.publish("x");
      await until(emitted, 1, "events");
      expect(emitted).toEqual([{ id, data: "x" }]);
      expect((await listeners()).length).toBe(1);
      await log.close();
      // Given back to the pool, not closed: every connection of the pool is idle in it, none LISTENs.
      expect(pool.idleCount).toBe(pool.totalCount);
      expect(await listeners()).toEqual([]);
    } finally {
      await pool.end();
    }
  });

  test("when the listener's connection is lost, LISTENs on a connection of the pool's, and nothing is missed", async () => {
    const { server: postgres } = running();
    const pool = poolOf(postgres);
    const listener = new pg.Client(postgres.config);
    listener.on("error", () => {});
    await listener.connect();
    const [{ pid }] = (await listener.query("select pg_backend_pid() as pid")).rows as [{ pid: number }];
    try {
      const log = postgresLog({ pool, listener, topic: "lost-listener" });
      const { emitted } = await recording(log, "lost-listener");
      await listening((pids) => pids.includes(pid), "the listener to LISTEN");
      await rowsOf("select pg_terminate_backend($1)", [pid]);
      const first = await log.publish("while it switches");
      await listening((pids) => pids.length === 1 && pids[0] !== pid, "a pool connection to LISTEN");
      const sent = performance.now();
      const second = await log.publish("after it");
      await until(emitted, 2, "events");
      expect(performance.now() - sent).toBeLessThan(500);
      expect(emitted.map((event) => event.id)).toEqual([first, second]);
      await log.close();
    } finally {
      await listener.end().catch(() => {});
      await pool.end();
    }
  });
});

describe("postgresLog without a notification", () => {
  test("with no LISTEN connection to be had, reads the table every second, so every event still arrives", async () => {
    const pool = poolOf(running().server);
    let reads = 0;
    const noListen: PostgresPool = {
      query: (text: string, values?: unknown[]) => {
        if (text.includes("eventsource-server feed")) reads += 1;
        return pool.query(text, values);
      },
      connect: () => Promise.reject(new Error("no connection for LISTEN")),
    };
    try {
      const log = postgresLog({ pool: noListen, topic: "polled" });
      const { emitted } = await recording(log, "polled");
      const id = await log.publish("x");
      await within(until(emitted, 1, "events"), 2_500, "the event, read within a second or so");
      expect(emitted).toEqual([{ id, data: "x" }]);
      const before = reads;
      await new Promise((resolve) => setTimeout(resolve, 1_300));
      // About one read a second: never a busy loop, never a wait for a notification that cannot come.
      expect(reads - before).toBeGreaterThanOrEqual(1);
      expect(reads - before).toBeLessThanOrEqual(2);
      await log.close();
    } finally {
      await pool.end();
    }
  });

  test("a lost notification loses nothing: the event comes with the next one, in order", async () => {
    const { server: postgres } = running();
    const pool = poolOf(postgres);
    const client = new pg.Client(postgres.config);
    await client.connect();
    let dropping = false;
    const handlers = new Map<unknown, (message: pg.Notification) => void>();
    // The listener as the log sees it: a notification that never arrives while `dropping`.
    const listener = {
      query: (text: string, values?: unknown[]) => client.query(text, values),
      on(event: string, handler: (message: pg.Notification) => void) {
        if (event !== "notification") return client.on(event as "end", handler as () => void);
        const filtered = (message: pg.Notification) => {
          if (!dropping) handler(message);
        };
        handlers.set(handler, filtered);
        return client.on("notification", filtered);
      },
      removeListener(event: string, handler: (message: pg.Notification) => void) {
        return client.removeListener(event, handlers.get(handler) ?? handler);
      },
    } as unknown as PostgresListener;
    try {
      const log = postgresLog({ pool, listener, topic: "lost-notification" });
      const { emitted } = await recording(log, "lost-notification");
      await listening((pids) => pids.length === 1, "the listener to LISTEN");
      dropping = true;
      const first = await log.publish("its notification is lost");
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect(emitted).toEqual([]);
      dropping = false;
      const second = await log.publish("notified");
      await until(emitted, 2, "events");
      expect(emitted.map((event) => event.id)).toEqual([first, second]);
      await log.close();
    } finally {
      await client.end();
      await pool.end();
    }
  });
});

describe("postgresLog while PostgreSQL is down", () => {
  test("the feed tries again with backoff, a handful of times in a second and a half, then reads on", async () => {
    const { server: postgres } = running();
    const pool = poolOf(postgres);
    let attempts = 0;
    const counting: PostgresPool = {
      query: (text: string, values?: unknown[]) => {
        if (text.includes("eventsource-server feed")) attempts += 1;
        return pool.query(text, values);
      },
      connect: () => pool.connect(),
    };
    const errors = vi.spyOn(console, "error").mockImplementation(() => {});
    try {
      const log = postgresLog({ pool: counting, topic: "backoff" });
      const { emitted } = await recording(log, "backoff");
      await postgres.crash();
      const before = attempts;
      await new Promise((resolve) => setTimeout(resolve, 1_500));
      // About 100, 200, 400, 800 ms apart: a feed without backoff would try thousands of times.
      expect(attempts - before).toBeGreaterThanOrEqual(2);
      expect(attempts - before).toBeLessThanOrEqual(7);
      await postgres.start();
      const id = await within(
        (async () => {
          for (;;) {
            try {
              return await log.publish("after the outage");
            } catch {
              await new Promise((resolve) => setTimeout(resolve, 50));
            }
          }
        })(),
        10_000,
        "a publish after the outage",
      );
      await until(emitted, 1, "events");
      expect(emitted).toEqual([{ id, data: "after the outage" }]);
      await log.close();
    } finally {
      errors.mockRestore();
      await pool.end();
    }
  });
});

describe("postgresLog trimming", () => {
  test("keeps the newest `keep` rows of its topic", async () => {
    const pool = poolOf(running().server);
    try {
      const log = postgresLog({ pool, topic: "keep-5", keep: 5 });
      const ids: string[] = [];
      for (let n = 0; n < 20; n++) ids.push(await log.publish(String(n)));
      expect(await engine.ids("keep-5")).toEqual(ids.slice(-5));
    } finally {
      await pool.end();
    }
  });

  test("deletes in batches of 1,000 at most, oldest first, and keeps 10,000 by default", async () => {
    const pool = poolOf(running().server);
    const deletes: unknown[][] = [];
    const spy: PostgresPool = {
      query: (text: string, values?: unknown[]) => {
        if (text.startsWith("delete")) deletes.push(values ?? []);
        return pool.query(text, values);
      },
      connect: () => pool.connect(),
    };
    try {
      await engine.bulk("batches", 2_500);
      const log = postgresLog({ pool: spy, topic: "batches", keep: 5 });
      await log.publish("one");
      expect((await engine.ids("batches")).length).toBe(2_501 - 1_000);
      await log.publish("two");
      expect((await engine.ids("batches")).length).toBe(1_502 - 1_000);
      const last = await log.publish("three");
      const kept = await engine.ids("batches");
      expect(kept).toHaveLength(5);
      expect(kept.at(-1)).toBe(last);
      expect(deletes).toEqual([
        ["batches", 5, 1_000],
        ["batches", 5, 1_000],
        ["batches", 5, 1_000],
      ]);
      await postgresLog({ pool: spy, topic: "default-keep" }).publish("x");
      expect(deletes.at(-1)).toEqual(["default-keep", 10_000, 1_000]);
    } finally {
      await pool.end();
    }
  });
});

describe("postgresLog's options", () => {
  test("an invalid option is a TypeError that names it", () => {
    const pool = { query: async () => ({ rows: [] }), connect: async () => ({}) } as unknown as PostgresPool;
    const cases: [unknown, string][] = [
      [null, "postgresLog: options must be an object, got null"],
      [{ pool, topic: "t", keepp: 1 }, 'postgresLog: options.keepp is not an option; did you mean "keep"?'],
      [
        { pool: {}, topic: "t" },
        "postgresLog: options.pool must be a pg Pool (with query() and connect()), got an object",
      ],
      [
        { pool, topic: "t", listener: {} },
        "postgresLog: options.listener must be a connected pg Client, got an object",
      ],
      [
        { pool, topic: "t", table: "events; drop table x" },
        'postgresLog: options.table must be a table name (letters, digits, _, an optional schema.), at most 63 characters, got "events; drop table x"',
      ],
      [{ pool, topic: "" }, 'postgresLog: options.topic must be a non-empty string without NUL, got ""'],
      [{ pool, topic: "t", keep: 1.5 }, "postgresLog: options.keep must be a positive safe integer, got 1.5"],
    ];
    for (const [options, message] of cases) {
      expect(() => postgresLog(options as never)).toThrowError(new TypeError(message));
    }
  });
});

describe("postgresLog under 20 concurrent publishers", () => {
  const PUBLISHERS = 20;
  const EVENTS = 10_000;
  /** Without the lock about one row in a hundred is skipped on this machine: 3,000 events show it, in a third the time. */
  const UNLOCKED_EVENTS = 3_000;

  /** 20 publishers, each with a connection of its own, sending EVENTS in all to one topic while one feed reads. */
  async function race(topic: string, events: number, publish: (pool: pg.Pool, n: number) => Promise<unknown>) {
    const { server: postgres } = running();
    const feedPool = poolOf(postgres, 2);
    const pools = Array.from({ length: PUBLISHERS }, () => poolOf(postgres, 1));
    const log = postgresLog({ pool: feedPool, topic, keep: 100_000 });
    const { emitted } = await recording(log, topic);
    const markers = (await engine.ids(topic)).length;
    try {
      let next = 0;
      const started = performance.now();
      await Promise.all(
        pools.map(async (pool) => {
          for (let n = next++; n < events; n = next++) await publish(pool, n);
        }),
      );
      const ms = performance.now() - started;
      const ids = (await engine.ids(topic)).slice(markers);
      // Every row is in the table: a feed that read them all in order has emitted exactly these ids.
      await eventually(() => emitted.at(-1)?.id === ids.at(-1), "the feed to reach the last row").catch(() => {});
      const seen = new Set(emitted.map((event) => String(event.id)));
      const skipped = ids.filter((id) => !seen.has(id)).length;
      const inOrder = emitted.every(
        (event, n) => n === 0 || BigInt(String(event.id)) > BigInt(String(emitted[n - 1]?.id)),
      );
      return { ms: Math.round(ms), rows: ids.length, skipped, emitted: emitted.length, inOrder };
    } finally {
      await log.close();
      await Promise.all([feedPool.end(), ...pools.map((pool) => pool.end())]);
    }
  }

  test("with the advisory lock, 10,000 events from 20 publishers reach the feed, none skipped, in id order", async () => {
    const logs = new Map<pg.Pool, ReturnType<typeof postgresLog>>();
    const result = await race("locked", EVENTS, (pool, n) => {
      let log = logs.get(pool);
      if (log === undefined) {
        log = postgresLog({ pool, topic: "locked", keep: 100_000 });
        logs.set(pool, log);
      }
      return log.publish(String(n));
    });
    console.log(`postgres, 20 publishers with the lock: ${JSON.stringify(result)}`);
    expect(result.rows).toBe(EVENTS);
    expect(result.skipped).toBe(0);
    expect(result.emitted).toBe(EVENTS);
    expect(result.inOrder).toBe(true);
  }, 60_000);

  test("without it, the same INSERT from 20 publishers commits out of id order, and the feed skips rows", async () => {
    const result = await race("unlocked", UNLOCKED_EVENTS, (pool, n) =>
      pool.query(
        `insert into ${TABLE} (topic, event) values ($1, $2::json) returning id::text as id, pg_notify($3, $1)`,
        ["unlocked", JSON.stringify({ data: String(n) }), TABLE],
      ),
    );
    console.log(`postgres, 20 publishers without the lock: ${JSON.stringify(result)}`);
    expect(result.rows).toBe(UNLOCKED_EVENTS);
    expect(result.skipped).toBeGreaterThan(0);
  }, 60_000);
});
