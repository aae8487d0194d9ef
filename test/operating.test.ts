/**
 * API.md, "Operating it": `channel.stats()`, `channel.disconnect()` and `drain()`, sentence by sentence. (`onClose`
 * has its own tests in response.test.ts and isolation.test.ts.) The drain of 1,000 real sockets is at the end.
 */
import { once } from "node:events";
import { mkdtemp } from "node:fs/promises";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { build } from "esbuild";
import { afterEach, describe, expect, test, vi } from "vitest";
import {
  drain,
  EventChannel,
  type EventHistory,
  type EventStreamLike,
  eventSourceResponse,
  type StreamEnd,
} from "../src/index.ts";
import { toNodeHandler } from "../src/node.ts";
import { deferred, nextText, parseWire, readAll, readerOf, settle } from "./helpers.ts";
import { ROOT } from "./runtime/harness.ts";

afterEach(async () => {
  vi.useRealTimers();
  // No test leaves a stream for the next one's drain to count.
  await drain();
});

const request = (lastEventId?: string) =>
  new Request(
    "http://localhost/events",
    lastEventId === undefined ? {} : { headers: { "last-event-id": lastEventId } },
  );

describe("channel.stats()", () => {
  test("counts subscribers open now and ever opened, and successful emits only", async () => {
    const channel = new EventChannel();
    const first = channel.response();
    const second = channel.response();
    expect(channel.stats()).toEqual({ subscribers: 2, opened: 2, emitted: 0, evicted: 0, resumed: 0, historyLost: 0 });
    channel.emit("one");
    expect(() => channel.emit({ event: "a\nb" })).toThrow(TypeError);
    expect(() => channel.emit({ id: " 1", data: "x" })).toThrow(TypeError);
    await first.body?.cancel();
    expect(channel.stats()).toMatchObject({ subscribers: 1, opened: 2, emitted: 1 });
    expect(channel.stats().subscribers).toBe(channel.subscribers);
    channel.close();
    // Readable after close, and cumulative: the closed subscriber is no longer open, and was opened all the same.
    expect(channel.stats()).toEqual({ subscribers: 0, opened: 2, emitted: 1, evicted: 0, resumed: 0, historyLost: 0 });
    expect(await second.text()).toBe(":\n\ndata: one\n\n");
    // A response after close() is no subscriber.
    channel.response();
    expect(channel.stats().opened).toBe(2);
  });

  test("counts a slow subscriber closed as evicted, and not one that left", async () => {
    vi.useFakeTimers();
    const channel = new EventChannel({ maxBufferedBytes: 1_000 });
    const ends: StreamEnd["reason"][] = [];
    const stalled = readerOf(
      channel.response(undefined, { keepAlive: false, onClose: (end) => ends.push(end.reason) }),
    );
    expect(await nextText(stalled)).toBe(":\n\n");
    const leaving = channel.response();
    await leaving.body?.cancel();
    channel.emit({ id: 1, data: "x".repeat(2_000) });
    await vi.advanceTimersByTimeAsync(1_000);
    channel.emit({ id: 2, data: "y" });
    expect(ends).toEqual(["evicted"]);
    expect(channel.stats()).toMatchObject({ subscribers: 0, opened: 2, evicted: 1 });
  });

  test("counts a replay written whole as resumed, and an id the memory lacks as historyLost", async () => {
    const channel = new EventChannel({ replay: 2 });
    for (let id = 1; id <= 3; id++) channel.emit({ id, data: `event ${id}` });
    const found = channel.response(request("2"));
    const lost = channel.response(request("1"));
    const fresh = channel.response();
    channel.close();
    await Promise.all([found.text(), lost.text(), fresh.text()]);
    expect(channel.stats()).toMatchObject({ opened: 3, resumed: 1, historyLost: 1 });
  });

  test("counts a log that does not hold the id, fails, or times out as historyLost; one that answers as resumed", async () => {
    vi.useFakeTimers();
    const answers: Record<string, () => ReturnType<EventHistory["after"]>> = {
      found: () => [{ id: "x", data: "replayed" }],
      missing: () => null,
      failing: () => Promise.reject(new Error("the log is down")),
      silent: () => new Promise(() => {}),
    };
    const errors = vi.spyOn(console, "error").mockImplementation(() => {});
    const channel = new EventChannel({
      history: { after: (id) => (answers[id] as () => ReturnType<EventHistory["after"]>)() },
      historyTimeout: 1_000,
    });
    const bodies = Object.keys(answers).map((id) => channel.response(request(id)));
    await vi.advanceTimersByTimeAsync(1_000);
    expect(channel.stats()).toMatchObject({ opened: 4, resumed: 1, historyLost: 3 });
    channel.close();
    await Promise.all(bodies.map((body) => body.text()));
    expect(errors).toHaveBeenCalledTimes(2);
    errors.mockRestore();
  });

  test("a client that leaves mid-replay counts in neither resumed nor historyLost", async () => {
    const answer = deferred<EventStreamLike | null>();
    const channel = new EventChannel({ history: { after: () => answer.promise } });
    const leaving = channel.response(request("1"));
    await leaving.body?.cancel();
    answer.resolve([{ id: "2", data: "too late" }]);
    await settle();
    expect(channel.stats()).toMatchObject({ opened: 1, resumed: 0, historyLost: 0 });
  });

  test("a channel with neither replay nor history counts every resuming client as historyLost", () => {
    const channel = new EventChannel();
    channel.response(request("7"));
    channel.response();
    expect(channel.stats()).toMatchObject({ opened: 2, resumed: 0, historyLost: 1 });
    channel.close();
  });
});

describe("channel.disconnect(last?)", () => {
  test("ends every open subscriber as closed, after last, and the channel stays open for later responses", async () => {
    const channel = new EventChannel({ replay: 10 });
    const ends: StreamEnd["reason"][] = [];
    const onClose = (end: StreamEnd) => ends.push(end.reason);
    const open = [channel.response(undefined, { onClose }), channel.response(undefined, { onClose })];
    channel.emit({ id: 1, data: "before" });
    channel.disconnect({ retry: 1_000, comment: "moving" });
    expect(channel.subscribers).toBe(0);
    for (const body of open) expect(await body.text()).toBe(":\n\nid: 1\ndata: before\n\n:moving\nretry: 1000\n\n");
    expect(ends).toEqual(["closed", "closed"]);

    const later = channel.response(request("1"));
    channel.emit({ id: 2, data: "after" });
    expect(channel.subscribers).toBe(1);
    channel.close();
    expect(await later.text()).toBe(":\n\nid: 2\ndata: after\n\n");
  });

  test("an invalid last is a TypeError, as emit's would be, and then nothing ends", () => {
    const channel = new EventChannel();
    channel.response();
    expect(() => channel.disconnect({ event: "a\nb" })).toThrow(TypeError);
    expect(() => channel.disconnect({ id: "1 ", data: "x" })).toThrow(/EventChannel\.disconnect/);
    expect(channel.subscribers).toBe(1);
    channel.close();
  });

  test("a subscriber mid-replay gets the rest of its memory replay, then last", async () => {
    const channel = new EventChannel({ replay: 100, maxBufferedBytes: 10 });
    for (let id = 1; id <= 20; id++) channel.emit({ id, data: "x".repeat(2_000) });
    const resuming = channel.response(request("1"));
    channel.disconnect({ comment: "bye" });
    const { events, comments } = parseWire(await resuming.text());
    expect(events.map((event) => event.id)).toEqual(Array.from({ length: 19 }, (_, index) => String(index + 2)));
    expect(comments.at(-1)).toBe("bye");
  });
});

describe("drain({ within, last })", () => {
  test("ends every open stream as closed after writing last, and resolves with their count", async () => {
    const ends: StreamEnd["reason"][] = [];
    const onClose = (end: StreamEnd) => ends.push(end.reason);
    const channel = new EventChannel();
    async function* forever() {
      for (let n = 0; ; n++) yield { data: n };
    }
    const source = readerOf(eventSourceResponse(forever(), { onClose, serialize: (data) => `<${data}>` }));
    await nextText(source);
    const subscriber = channel.response(undefined, { onClose });
    expect(await drain({ last: { retry: 1_000, data: 7 } })).toBe(2);
    expect(ends).toEqual(["closed", "closed"]);
    // Each stream's last event is encoded with its own serialize.
    expect((await readAll(source)).endsWith("retry: 1000\ndata: <7>\n\n")).toBe(true);
    expect(await subscriber.text()).toBe(":\n\nretry: 1000\ndata: 7\n\n");
    // The channel stays open, and a stream opened later is not affected.
    const later = channel.response();
    channel.emit("still here");
    channel.close();
    expect(await later.text()).toBe(":\n\ndata: still here\n\n");
  });

  test("a body not read yet is not drained; a subscriber is, from response()", async () => {
    const channel = new EventChannel();
    const unread = eventSourceResponse(["a"]);
    const subscriber = channel.response();
    expect(await drain()).toBe(1);
    expect(await unread.text()).toBe(":\n\ndata: a\n\n");
    expect(await subscriber.text()).toBe(":\n\n");
  });

  test("an invalid within or last rejects with a TypeError, and nothing ends", async () => {
    const channel = new EventChannel();
    channel.response();
    const source = readerOf(eventSourceResponse((async function* () {})(), { keepAlive: false }));
    await expect(drain({ within: -1 })).rejects.toThrow(TypeError);
    await expect(drain({ within: 1.5 })).rejects.toThrow(/options\.within/);
    await expect(drain({ last: { event: "a\nb" } })).rejects.toThrow(TypeError);
    await expect(drain({ last: { id: " 3" } })).rejects.toThrow(TypeError);
    await expect(drain({ last: { data: 1n } })).rejects.toThrow(/serialized/);
    await expect(drain({ wthin: 10 } as never)).rejects.toThrow(/did you mean "within"/);
    expect(channel.subscribers).toBe(1);
    expect(await drain()).toBe(1);
    await source.cancel();
  });

  test("spreads the ends uniformly over within, and counts neither a stream that ended first nor one an earlier call took", async () => {
    vi.useFakeTimers();
    const channel = new EventChannel();
    const ended: number[] = [];
    const start = Date.now();
    const bodies = Array.from({ length: 200 }, () =>
      channel.response(undefined, { keepAlive: false, onClose: () => ended.push(Date.now() - start) }),
    );
    const draining = drain({ within: 10_000 });
    // A second call while the first is under way finds nothing left to drain.
    expect(await drain()).toBe(0);
    await vi.advanceTimersByTimeAsync(1);
    // One leaves on its own before its moment: not counted.
    const leaver = bodies.find((_, index) => index === 199) as Response;
    await leaver.body?.cancel();
    await vi.advanceTimersByTimeAsync(10_000);
    const drained = await draining;
    expect(drained + 1).toBeGreaterThanOrEqual(199);
    expect(drained).toBeLessThanOrEqual(200);
    expect(Math.max(...ended)).toBeLessThanOrEqual(10_000 + 1);
    // Uniform over 10 s: each quarter holds about a quarter of the ends.
    const quarters: number[] = [0, 0, 0, 0];
    for (const ms of ended) {
      const quarter = Math.min(3, Math.floor(ms / 2_500));
      quarters[quarter] = (quarters[quarter] ?? 0) + 1;
    }
    for (const count of quarters) expect(count).toBeGreaterThan(20);
    expect(channel.subscribers).toBe(0);
  });

  test("every copy of the package in the process shares one registry", async () => {
    // A second copy, as a framework's bundle would hold one: its own classes, its own module state.
    const outfile = join(await mkdtemp(join(tmpdir(), "eventsource-server-copy-")), "copy.mjs");
    await build({
      entryPoints: [join(ROOT, "src/index.ts")],
      bundle: true,
      format: "esm",
      outfile,
      logLevel: "silent",
    });
    const copy = (await import(outfile)) as typeof import("../src/index.ts");
    expect(copy.EventChannel).not.toBe(EventChannel);
    const theirs = new copy.EventChannel().response();
    const ours = new EventChannel().response();
    // Either copy's drain ends both.
    expect(await copy.drain()).toBe(2);
    expect(await theirs.text()).toBe(":\n\n");
    expect(await ours.text()).toBe(":\n\n");
  });

  test("on node:http, server.close() completes within `within` + 1 s when drain ends 1,000 open streams spread over it", async () => {
    const channel = new EventChannel();
    const ends: number[] = [];
    const server = createServer(
      toNodeHandler((req) => channel.response(req, { onClose: () => ends.push(performance.now()) })),
    );
    server.maxConnections = 2_000;
    server.listen(0, "127.0.0.1");
    await once(server, "listening");
    const { port } = server.address() as AddressInfo;
    const readers = await Promise.all(
      Array.from({ length: 1_000 }, async () => readerOf(await fetch(`http://127.0.0.1:${port}/events`))),
    );
    await Promise.all(readers.map((reader) => nextText(reader)));
    expect(channel.subscribers).toBe(1_000);

    const started = performance.now();
    const closed = new Promise<number>((resolve) => server.close(() => resolve(performance.now())));
    const drained = await drain({ within: 5_000, last: { retry: 1_000 } });
    const closedAt = await closed;
    expect(drained).toBe(1_000);
    expect(closedAt - started).toBeLessThan(5_000 + 1_000);
    const texts = await Promise.all(readers.map((reader) => readAll(reader)));
    for (const text of texts) expect(text.endsWith("retry: 1000\n\n")).toBe(true);
    const seconds = [0, 0, 0, 0, 0];
    for (const at of ends) {
      const second = Math.min(4, Math.floor((at - started) / 1_000));
      seconds[second] = (seconds[second] ?? 0) + 1;
    }
    // Spread over the five seconds, about 200 in each, not all at once.
    for (const count of seconds) expect(count).toBeGreaterThan(120);
  }, 30_000);
});
