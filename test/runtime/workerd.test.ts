/**
 * The Cloudflare example (examples/cloudflare), bundled and run in workerd through Miniflare with the compatibility
 * date, flags and bindings of its wrangler.jsonc, read over real sockets and judged by eventsource-parser. A room's
 * history is tested on storage kept in a folder, across a restart of its object and of the whole runtime.
 */
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { Miniflare, supportedCompatibilityDate } from "miniflare";
import { afterAll, afterEach, beforeAll, describe, expect, test } from "vitest";
import { bundle, miniflareOptions, wranglerConfig } from "../../examples/cloudflare/build.mjs";
import { type ParsedEvent, parseWire } from "../helpers.ts";

const EXAMPLE = fileURLToPath(new URL("../../examples/cloudflare/", import.meta.url));
/** Short, so that a dropped client is noticed quickly: on workerd only a write to the dead socket notices it. */
const HEARTBEAT_MS = 200;
/** Every bounded wait in this file fails loudly after this long. */
const DEADLINE_MS = 8_000;

let mf: Miniflare | undefined;
let base: URL;
/** Every stream a test opens, closed after it. */
const streams: AbortController[] = [];
let rooms = 0;

beforeAll(async () => {
  await bundle();
  // Ticks a minute apart: after a stream's first tick, every write a test sees is a heartbeat.
  mf = new Miniflare(miniflareOptions({ bindings: { KEEP_ALIVE_MS: String(HEARTBEAT_MS), TICK_MS: "60000" } }));
  base = await mf.ready;
});

afterEach(() => {
  for (const stream of streams.splice(0)) stream.abort();
});

afterAll(async () => {
  await mf?.dispose();
});

/** An event stream over a real socket: its raw chunks, or whole events as eventsource-parser dispatches them. */
class EventStream {
  readonly #reader: ReadableStreamDefaultReader<Uint8Array>;
  readonly #decoder = new TextDecoder();
  readonly #events: ParsedEvent[] = [];
  #unparsed = "";

  readonly path: string;
  readonly response: Response;
  readonly #controller: AbortController;

  constructor(path: string, response: Response, controller: AbortController) {
    this.path = path;
    this.response = response;
    this.#controller = controller;
    if (response.body === null) throw new Error(`${path} answered without a body`);
    this.#reader = response.body.getReader();
  }

  /** The next chunk as it came off the socket. */
  async chunk(): Promise<string> {
    const result = await withDeadline(this.#reader.read(), `${this.path}: no chunk`);
    if (result.done) throw new Error(`${this.path} ended while a chunk was awaited`);
    const text = this.#decoder.decode(result.value, { stream: true });
    this.#unparsed += text;
    // An event ends with a blank line; nothing else in our wire has one, so the text up to the last is whole events.
    const end = this.#unparsed.lastIndexOf("\n\n") + 2;
    if (end >= 2) {
      this.#events.push(...parseWire(this.#unparsed.slice(0, end)).events);
      this.#unparsed = this.#unparsed.slice(end);
    }
    return text;
  }

  /** The next `count` events, in order; reads as many chunks (heartbeats included) as that takes, within the deadline. */
  next(count = 1): Promise<ParsedEvent[]> {
    const take = async (): Promise<ParsedEvent[]> => {
      while (this.#events.length < count) await this.chunk();
      return this.#events.splice(0, count);
    };
    return withDeadline(take(), `${this.path}: not ${count} event(s)`);
  }

  /** Resolves when the stream ends cleanly; fails if an event or anything but a heartbeat comes first. */
  async end(): Promise<void> {
    const rest = async (): Promise<string> => {
      let text = "";
      for (;;) {
        const { done, value } = await this.#reader.read();
        if (done) return text;
        text += this.#decoder.decode(value, { stream: true });
      }
    };
    expect(parseWire(await withDeadline(rest(), `${this.path}: no end`)).events).toEqual([]);
    expect(this.#events).toEqual([]);
  }

  /** Events parsed but not yet taken by `next`. */
  get pending(): number {
    return this.#events.length;
  }

  /** Drops the connection, as a closed browser tab does. */
  drop(): void {
    this.#controller.abort();
  }
}

async function open(path: string, headers: HeadersInit = {}, origin = base): Promise<EventStream> {
  const controller = new AbortController();
  streams.push(controller);
  const response = await withDeadline(
    fetch(new URL(path, origin), { headers, signal: controller.signal }),
    `${path}: no response`,
  );
  expect(response.status).toBe(200);
  return new EventStream(path, response, controller);
}

/** `promise`, or a loud failure naming `what` when it takes longer than the deadline. */
async function withDeadline<T>(promise: Promise<T>, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} within ${DEADLINE_MS} ms`)), DEADLINE_MS);
  });
  try {
    return await Promise.race([promise, late]);
  } finally {
    clearTimeout(timer);
  }
}

async function getJson(path: string, origin = base): Promise<Record<string, number>> {
  const response = await fetch(new URL(path, origin), { signal: AbortSignal.timeout(DEADLINE_MS) });
  expect(response.status).toBe(200);
  return (await response.json()) as Record<string, number>;
}

async function publish(
  room: string,
  body: string,
  { contentType = "text/plain; charset=utf-8", origin = base }: { contentType?: string; origin?: URL } = {},
): Promise<string> {
  const response = await fetch(new URL(`/rooms/${room}/publish`, origin), {
    method: "POST",
    headers: { "content-type": contentType },
    body,
    signal: AbortSignal.timeout(DEADLINE_MS),
  });
  expect(response.status).toBe(201);
  return ((await response.json()) as { id: string }).id;
}

/** Publishes one more event and checks that `stream` receives it next, and nothing else: it is live now. */
async function goesOnLive(stream: EventStream, room: string, origin = base): Promise<void> {
  const live = await publish(room, "live", { origin });
  expect(await stream.next()).toEqual([{ id: live, data: "live" }]);
  expect(stream.pending).toBe(0);
}

/**
 * Asks the Worker for a number until it is `expected`. The number changes inside workerd, in another process, when
 * a heartbeat meets a closed socket: there is no promise on this side to await, so this polls, within a deadline.
 */
async function untilReported(path: string, key: string, expected: number): Promise<void> {
  const deadline = Date.now() + DEADLINE_MS;
  for (;;) {
    const value = (await getJson(path))[key];
    if (value === expected) return;
    if (Date.now() > deadline)
      throw new Error(`${path}: ${key} is still ${value} after ${DEADLINE_MS} ms, not ${expected}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

function newRoom(): string {
  rooms += 1;
  return `room-${rooms}`;
}

describe("the example's wrangler.jsonc", () => {
  test("names a compatibility date the installed workerd supports, with request.signal turned on", () => {
    const config = wranglerConfig();
    expect(config.compatibility_date).toMatch(/^\d{4}-\d{2}-\d{2}$/);
    expect(config.compatibility_date <= supportedCompatibilityDate).toBe(true);
    expect(config.compatibility_flags).toEqual(["enable_request_signal"]);
  });
});

describe("the example's README", () => {
  test("quotes the Room class of src/index.ts byte for byte", async () => {
    const source = await readFile(`${EXAMPLE}src/index.ts`, "utf8");
    const region = /\/\/ #region room\n([\s\S]*?)\n\/\/ #endregion room/.exec(source)?.[1];
    expect(region).toContain("export class Room extends DurableObject<Env>");
    const readme = await readFile(`${EXAMPLE}README.md`, "utf8");
    // A boolean, so a failure names the file instead of printing the whole README.
    expect(readme.includes(`\`\`\`ts\n${region}\n\`\`\``), "README.md holds the Room class verbatim").toBe(true);
  });
});

describe("GET /ticks on workerd", () => {
  test("answers at once with the event-stream headers, and the retry field comes first", async () => {
    const ticks = await open("/ticks");
    expect(ticks.response.headers.get("content-type")).toBe("text/event-stream; charset=utf-8");
    expect(ticks.response.headers.get("cache-control")).toBe("no-cache, no-transform");
    expect(ticks.response.headers.get("x-accel-buffering")).toBe("no");
    expect(ticks.response.headers.has("connection")).toBe(false);
    expect(ticks.response.headers.has("content-length")).toBe(false);
    expect(await ticks.chunk()).toMatch(/^retry: 2000\n\n/);
  });

  test("sends the first tick without waiting for the next one, a minute later", async () => {
    const ticks = await open("/ticks");
    const [tick] = await ticks.next();
    expect(tick).toMatchObject({ event: "tick", id: "1" });
    expect(Number.isNaN(Date.parse(tick?.data ?? ""))).toBe(false);
    expect(ticks.pending).toBe(0);
  });

  test.each([
    ["the Last-Event-ID header", "/ticks", { "last-event-id": "41" }],
    ["the lastEventId query parameter", "/ticks?lastEventId=41", {}],
  ])("resumes after the id in %s", async (_, path, headers) => {
    const ticks = await open(path, headers);
    expect(await ticks.next()).toEqual([{ event: "tick", id: "42", data: expect.any(String) }]);
  });

  test("runs the source's finally block when the client drops, at the next heartbeat, through request.signal", async () => {
    // Streams of earlier tests close at their own next heartbeat; start from none open.
    await untilReported("/ticks/stats", "open", 0);
    const { closed } = await getJson("/ticks/stats");
    const ticks = await open("/ticks");
    await ticks.next();
    expect(await getJson("/ticks/stats")).toEqual({ open: 1, closed });

    ticks.drop();
    await untilReported("/ticks/stats", "closed", (closed ?? 0) + 1);
    expect(await getJson("/ticks/stats")).toEqual({ open: 0, closed: (closed ?? 0) + 1 });
  });
});

describe("a room (one Durable Object with an EventChannel) on workerd", () => {
  test("answers a subscriber at once, before anything is published, with only the retry field", async () => {
    const room = newRoom();
    const subscriber = await open(`/rooms/${room}/events`);
    expect(subscriber.response.headers.get("content-type")).toBe("text/event-stream; charset=utf-8");
    expect(await subscriber.chunk()).toBe("retry: 2000\n\n");
  });

  test("delivers each publish on its own, before the next one exists", async () => {
    const room = newRoom();
    const subscriber = await open(`/rooms/${room}/events`);
    for (const data of ["one", "two", "three"]) {
      const id = await publish(room, data);
      expect(await subscriber.next()).toEqual([{ id, data }]);
      expect(subscriber.pending).toBe(0);
    }
  });

  test("delivers multi-line unicode text exactly, and JSON as JSON", async () => {
    const room = newRoom();
    const subscriber = await open(`/rooms/${room}/events`);
    const text = "héllo wörld 😀\r\nzweite Zeile\rdritte\n\n: not a comment\ndata: not a field\n";
    const textId = await publish(room, text);
    const json = { greeting: "grüß dich 👋", lines: "a\nb", n: 3 };
    const jsonId = await publish(room, JSON.stringify(json), { contentType: "application/json" });

    const [first, second] = await subscriber.next(2);
    expect(first).toEqual({ id: textId, data: text.replace(/\r\n?/g, "\n") });
    expect(second?.id).toBe(jsonId);
    expect(JSON.parse(second?.data ?? "")).toEqual(json);
  });

  test("gives one publish to each of three subscribers", async () => {
    const room = newRoom();
    const subscribers = [
      await open(`/rooms/${room}/events`),
      await open(`/rooms/${room}/events`),
      await open(`/rooms/${room}/events`),
    ];
    expect(await getJson(`/rooms/${room}/subscribers`)).toEqual({ subscribers: 3 });

    const id = await publish(room, "to everyone");
    const received = await Promise.all(subscribers.map((subscriber) => subscriber.next()));
    expect(received).toEqual([
      [{ id, data: "to everyone" }],
      [{ id, data: "to everyone" }],
      [{ id, data: "to everyone" }],
    ]);
  });

  test("replays what a subscriber missed when it reconnects with Last-Event-ID, then goes on live", async () => {
    const room = newRoom();
    const first = await open(`/rooms/${room}/events`);
    const seen = await publish(room, "seen");
    expect(await first.next()).toEqual([{ id: seen, data: "seen" }]);
    first.drop();

    const missed = [await publish(room, "missed 1"), await publish(room, "missed 2")];
    const again = await open(`/rooms/${room}/events`, { "last-event-id": seen });
    expect(await again.next(2)).toEqual([
      { id: missed[0], data: "missed 1" },
      { id: missed[1], data: "missed 2" },
    ]);
    await goesOnLive(again, room);
  });

  test("replays every event to Last-Event-ID 0 while the room still keeps its first", async () => {
    const room = newRoom();
    const ids = [await publish(room, "first"), await publish(room, "second")];
    const again = await open(`/rooms/${room}/events`, { "last-event-id": "0" });
    expect(await again.next(2)).toEqual([
      { id: ids[0], data: "first" },
      { id: ids[1], data: "second" },
    ]);
    await goesOnLive(again, room);
  });

  test("loses a dropped subscriber at the next heartbeat, and keeps serving the others", async () => {
    const room = newRoom();
    const staying = await open(`/rooms/${room}/events`);
    const leaving = await open(`/rooms/${room}/events`);
    expect(await getJson(`/rooms/${room}/subscribers`)).toEqual({ subscribers: 2 });

    leaving.drop();
    await untilReported(`/rooms/${room}/subscribers`, "subscribers", 1);
    const id = await publish(room, "still here");
    expect(await staying.next()).toEqual([{ id, data: "still here" }]);
  });
});

describe("GET / on workerd", () => {
  test("answers a page that explains the example, lists its routes and declares its own icon", async () => {
    const response = await fetch(new URL("/", base), { signal: AbortSignal.timeout(DEADLINE_MS) });
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toBe("text/html; charset=utf-8");
    const html = await response.text();
    expect(html).toContain("<h1>eventsource-server on Cloudflare Workers</h1>");
    // The room keeps the number of events wrangler.jsonc says, and the page says so.
    const { HISTORY_LIMIT } = wranglerConfig().vars ?? {};
    expect(html).toContain(`keeps its last ${HISTORY_LIMIT} events`);
    for (const route of [
      "GET /ticks",
      "GET /rooms/:room/events",
      "POST /rooms/:room/publish",
      "GET /rooms/:room/subscribers",
      "POST /rooms/:room/restart",
    ]) {
      expect(html.replace(/<[^>]+>/g, "")).toContain(route);
    }
    // A declared icon: the browser asks for no /favicon.ico, which would be a 404 and a console error.
    expect(html).toMatch(/<link rel="icon" href="data:image\/svg\+xml,[^"]+">/);
    expect(html).toContain("new EventSource(`/rooms/");
  });
});

describe("a room's history in its Durable Object's storage, across restarts", () => {
  let persist = "";
  /** Every Miniflare this block starts, disposed after it. */
  const running: Miniflare[] = [];
  /** What workerd printed: the channel reports a failed replay with console.error, so a test can pass and print one. */
  let printed = "";

  beforeAll(async () => {
    persist = await mkdtemp(join(tmpdir(), "eventsource-server-workerd-"));
  });

  afterEach(() => {
    const lines = printed.split("\n").filter((line) => line.trim() !== "");
    printed = "";
    // Only the restart test's own line: workerd reports the streams that ctx.abort() broke, with a stack of addresses.
    const unexpected = lines.filter(
      (line) => !/outputGateBroken; jsg\.Error: restarted on request$|^stack: /.test(line),
    );
    expect(unexpected).toEqual([]);
  });

  afterAll(async () => {
    await Promise.all(running.splice(0).map((worker) => worker.dispose()));
    await rm(persist, { recursive: true, force: true });
  });

  /** A workerd whose rooms keep `historyLimit` events in `persist`: the storage a previous one left is found. */
  async function startWorker(historyLimit: number): Promise<{ origin: URL; stop(): Promise<void> }> {
    const worker = new Miniflare(
      miniflareOptions({
        bindings: { KEEP_ALIVE_MS: String(HEARTBEAT_MS), TICK_MS: "60000", HISTORY_LIMIT: String(historyLimit) },
        persist,
        output: (text) => {
          printed += text;
        },
      }),
    );
    running.push(worker);
    const origin = await worker.ready;
    return {
      origin,
      async stop() {
        running.splice(running.indexOf(worker), 1);
        await worker.dispose();
      },
    };
  }

  test("a client resumes from storage after the whole runtime restarts, and ids go on where they stopped", async () => {
    const room = newRoom();
    const before = await startWorker(10);
    const subscriber = await open(`/rooms/${room}/events`, {}, before.origin);
    const seen = await publish(room, "seen", { origin: before.origin });
    expect(await subscriber.next()).toEqual([{ id: "1", data: "seen" }]);
    subscriber.drop();
    await publish(room, "missed before the restart", { origin: before.origin });
    await before.stop();

    const after = await startWorker(10);
    await publish(room, "missed after the restart", { origin: after.origin });
    const again = await open(`/rooms/${room}/events`, { "last-event-id": seen }, after.origin);
    expect(await again.next(2)).toEqual([
      { id: "2", data: "missed before the restart" },
      { id: "3", data: "missed after the restart" },
    ]);
    const live = await publish(room, "live", { origin: after.origin });
    expect(live).toBe("4");
    expect(await again.next()).toEqual([{ id: "4", data: "live" }]);
    expect(again.pending).toBe(0);
  });

  test("a restart of the room's object ends its streams, and a client resumes from a new object", async () => {
    const room = newRoom();
    const worker = await startWorker(10);
    const subscriber = await open(`/rooms/${room}/events`, {}, worker.origin);
    const seen = await publish(room, "seen", { origin: worker.origin });
    expect(await subscriber.next()).toEqual([{ id: seen, data: "seen" }]);

    const restart = await fetch(new URL(`/rooms/${room}/restart`, worker.origin), {
      method: "POST",
      signal: AbortSignal.timeout(DEADLINE_MS),
    });
    expect(restart.status).toBe(202);
    expect(await restart.json()).toEqual({ restarting: true });
    await subscriber.end();
    // The new object counts only its own streams: the old one's went with it.
    expect(await getJson(`/rooms/${room}/subscribers`, worker.origin)).toEqual({ subscribers: 0 });

    const missed = await publish(room, "missed", { origin: worker.origin });
    expect(Number(missed)).toBe(Number(seen) + 1);
    const again = await open(`/rooms/${room}/events`, { "last-event-id": seen }, worker.origin);
    expect(await again.next()).toEqual([{ id: missed, data: "missed" }]);
    await goesOnLive(again, room, worker.origin);
  });

  test("a client that resumes while events are published gets each one once, in order", async () => {
    const room = newRoom();
    const worker = await startWorker(100);
    const seen = await publish(room, "seen", { origin: worker.origin });
    await publish(room, "missed", { origin: worker.origin });
    // The subscriber's replay is read from storage while these are stored and emitted: the seam.
    const during = Array.from({ length: 20 }, (_, i) => publish(room, `during ${i}`, { origin: worker.origin }));
    const again = await open(`/rooms/${room}/events`, { "last-event-id": seen }, worker.origin);
    const ids = await Promise.all(during);
    const last = Math.max(...ids.map(Number));
    expect(last).toBe(22);
    const received = await again.next(last - Number(seen));
    expect(received.map((event) => event.id)).toEqual(Array.from({ length: 21 }, (_, i) => String(i + 2)));
    await goesOnLive(again, room, worker.origin);
  });

  describe("with the newest 3 of 5 events kept", () => {
    let worker: Awaited<ReturnType<typeof startWorker>>;
    let room = "";

    beforeAll(async () => {
      worker = await startWorker(3);
      room = newRoom();
      for (let i = 1; i <= 5; i++) await publish(room, `event ${i}`, { origin: worker.origin });
    });

    test("the id just before the oldest kept event resumes with all three", async () => {
      const again = await open(`/rooms/${room}/events`, { "last-event-id": "2" }, worker.origin);
      expect(await again.next(3)).toEqual([
        { id: "3", data: "event 3" },
        { id: "4", data: "event 4" },
        { id: "5", data: "event 5" },
      ]);
    });

    test("the newest id resumes with nothing to replay, then live events", async () => {
      const again = await open(`/rooms/${room}/events`, { "last-event-id": "5" }, worker.origin);
      await goesOnLive(again, room, worker.origin);
    });

    test.each([
      ["an id trimmed out of storage", "1"],
      ["the id before the first, once the first is trimmed", "0"],
      ["an id this room never gave", "99"],
      ["an id of another kind", "café ☕ 042"],
    ])("%s gets the reset event, then live events only", async (_, lastEventId) => {
      const query = `?lastEventId=${encodeURIComponent(lastEventId)}`;
      const again = await open(`/rooms/${room}/events${query}`, {}, worker.origin);
      expect(await again.next()).toEqual([{ event: "reset", data: JSON.stringify({ lastEventId }) }]);
      await goesOnLive(again, room, worker.origin);
    });
  });

  test("a smaller limit after a restart trims what the earlier one kept", async () => {
    const room = newRoom();
    const before = await startWorker(5);
    for (let i = 1; i <= 5; i++) await publish(room, `event ${i}`, { origin: before.origin });
    await before.stop();

    const after = await startWorker(2);
    const lost = await open(`/rooms/${room}/events`, { "last-event-id": "2" }, after.origin);
    expect(await lost.next()).toEqual([{ event: "reset", data: JSON.stringify({ lastEventId: "2" }) }]);
    const resumed = await open(`/rooms/${room}/events`, { "last-event-id": "3" }, after.origin);
    expect(await resumed.next(2)).toEqual([
      { id: "4", data: "event 4" },
      { id: "5", data: "event 5" },
    ]);
  });
});
