import { EventChannel, type EventChannelOptions, type EventSourceResponseInit } from "eventsource-server";
import fc from "fast-check";
import { afterEach, describe, expect, test, vi } from "vitest";
import { collectGarbage, nextEvents, nextText, type ParsedEvent, parseWire, readAll, readerOf } from "./helpers.ts";

afterEach(() => {
  vi.useRealTimers();
});

const url = "http://localhost/events";

/** A request as a reconnecting client sends it: with its last event ID in the header, or with none. */
function resuming(lastEventId?: string, signal?: AbortSignal): Request {
  const headers: Record<string, string> = lastEventId === undefined ? {} : { "last-event-id": lastEventId };
  return new Request(url, signal === undefined ? { headers } : { headers, signal });
}

/** Reads a body to its end and returns what a conforming parser dispatches from it. */
async function eventsOf(response: Response): Promise<ParsedEvent[]> {
  return parseWire(await readAll(readerOf(response))).events;
}

/** `{ id, data }` events with ids from..to, as the parser reports them. */
function numbered(from: number, to: number): ParsedEvent[] {
  const events: ParsedEvent[] = [];
  for (let n = from; n <= to; n++) events.push({ id: String(n), data: `event ${n}` });
  return events;
}

describe("EventChannel: fan-out", () => {
  test("emit sends identical bytes to every subscriber: the very same Uint8Array", async () => {
    const channel = new EventChannel();
    const readers = [1, 2, 3].map(() => readerOf(channel.response()));
    for (const reader of readers) expect(await nextText(reader)).toBe(":\n\n");
    channel.emit({ event: "note", id: 7, data: { text: "hi" } });
    const chunks = await Promise.all(readers.map((reader) => reader.read()));
    expect(chunks).toHaveLength(3);
    const [first, ...rest] = chunks.map((chunk) => chunk.value);
    for (const value of rest) expect(value).toBe(first);
    expect(parseWire(new TextDecoder().decode(first)).events).toEqual([
      { event: "note", id: "7", data: '{"text":"hi"}' },
    ]);
    channel.close();
  });

  test("emit calls serialize once per event, whatever the number of subscribers", async () => {
    const serialize = vi.fn((data: unknown) => `<${String(data)}>`);
    const channel = new EventChannel({ serialize });
    const responses = Array.from({ length: 100 }, () => channel.response());
    channel.emit({ data: 1 });
    channel.emit({ data: 2 });
    channel.emit("a string is never serialized");
    expect(serialize).toHaveBeenCalledTimes(2);
    channel.close();
    const all = await Promise.all(responses.map(eventsOf));
    expect(all).toHaveLength(100);
    for (const events of all) {
      expect(events).toEqual([{ data: "<1>" }, { data: "<2>" }, { data: "a string is never serialized" }]);
    }
  });

  test("a subscriber receives events emitted before its body is first read", async () => {
    const channel = new EventChannel();
    const response = channel.response();
    expect(channel.subscribers).toBe(1);
    channel.emit("early");
    channel.close();
    expect(await eventsOf(response)).toEqual([{ data: "early" }]);
  });

  test("a subscriber receives nothing emitted before it subscribed, when it has no Last-Event-ID", async () => {
    const channel = new EventChannel({ replay: 10 });
    channel.emit({ id: 1, data: "before" });
    const response = channel.response(resuming());
    channel.emit({ id: 2, data: "after" });
    channel.close();
    expect(await eventsOf(response)).toEqual([{ id: "2", data: "after" }]);
  });

  test("response writes the first chunk at once and sets headers and status as eventSourceResponse does", async () => {
    const channel = new EventChannel();
    const response = channel.response(resuming(), {
      status: 201,
      headers: { "cache-control": "no-store", "x-room": "7" },
      retry: 2_500,
    });
    expect(response.status).toBe(201);
    expect(response.headers.get("content-type")).toBe("text/event-stream; charset=utf-8");
    // A cache-control without no-transform gets it: compression middleware would otherwise hold the stream back.
    expect(response.headers.get("cache-control")).toBe("no-store, no-transform");
    expect(response.headers.get("x-room")).toBe("7");
    expect(response.headers.get("x-accel-buffering")).toBe("no");
    const reader = readerOf(response);
    expect(await nextText(reader)).toBe("retry: 2500\n\n");
    channel.close();
  });
});

describe("EventChannel: replay", () => {
  test("a client whose Last-Event-ID is in the history gets every later event, then live ones", async () => {
    const channel = new EventChannel({ replay: 5 });
    for (let n = 1; n <= 8; n++) channel.emit({ id: n, data: `event ${n}` });
    // History is 4..8; the client saw up to 5.
    const response = channel.response(resuming("5"));
    channel.emit({ id: 9, data: "event 9" });
    channel.close();
    expect(await eventsOf(response)).toEqual(numbered(6, 9));
  });

  test("replay includes events without an id that followed the client's last id", async () => {
    const channel = new EventChannel({ replay: 10 });
    channel.emit({ id: "a", data: "1" });
    channel.emit("2");
    channel.emit({ event: "x", data: "3" });
    const response = channel.response(resuming("a"));
    channel.close();
    expect(await eventsOf(response)).toEqual([{ data: "2" }, { event: "x", data: "3" }]);
  });

  test("the lastEventId query parameter picks the replay as the header does", async () => {
    const channel = new EventChannel({ replay: 10 });
    for (let n = 1; n <= 3; n++) channel.emit({ id: n, data: `event ${n}` });
    const response = channel.response(new Request(`${url}?lastEventId=1`));
    channel.close();
    expect(await eventsOf(response)).toEqual(numbered(2, 3));
  });

  test("a Last-Event-ID that is not in the history gets the whole history", async () => {
    const channel = new EventChannel({ replay: 3 });
    for (let n = 1; n <= 6; n++) channel.emit({ id: n, data: `event ${n}` });
    const dropped = channel.response(resuming("2"));
    const unknown = channel.response(resuming("from another server"));
    channel.close();
    expect(await eventsOf(dropped)).toEqual(numbered(4, 6));
    expect(await eventsOf(unknown)).toEqual(numbered(4, 6));
  });

  test("with replay 0 nothing is kept and a Last-Event-ID gets live events only", async () => {
    const channel = new EventChannel();
    channel.emit({ id: 1, data: "event 1" });
    const response = channel.response(resuming("1"));
    channel.emit({ id: 2, data: "event 2" });
    channel.close();
    expect(await eventsOf(response)).toEqual(numbered(2, 2));
  });

  test("a client that resumes while events keep coming sees each event exactly once, in order", async () => {
    // A model of the contract, checked against any interleaving of emits and (re)connections: history is the
    // last `replay` events; an id found in it (newest match) replays what followed; an unknown id replays it
    // all; no id replays nothing; then every later emit follows.
    const stats = { clients: 0, replayed: 0 };
    const action = fc.oneof(
      fc.record({ emit: fc.option(fc.constantFrom("1", "2", "3", "4", "x"), { nil: undefined }) }),
      fc.record({ connect: fc.option(fc.constantFrom("1", "2", "3", "4", "x", "gone"), { nil: undefined }) }),
      fc.constant({ producer: true }),
    );
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 0, max: 4 }), fc.array(action, { maxLength: 25 }), async (replay, steps) => {
        const channel = new EventChannel({ replay });
        let emitted: ParsedEvent[] = [];
        const clients: { response: Response; expected: ParsedEvent[] }[] = [];
        let serial = 0;
        const emit = (id: string | undefined): void => {
          const event: ParsedEvent = { data: `#${++serial}` };
          if (id !== undefined) event.id = id;
          channel.emit(id === undefined ? event.data : { id, data: event.data });
          emitted.push(event);
          for (const client of clients) client.expected.push(event);
        };
        // A producer in another task, emitting between the connections below: concurrency as a server sees it.
        const producers: Promise<void>[] = [];
        for (const step of steps) {
          if ("producer" in step) {
            producers.push(Promise.resolve().then(() => emit(`p${serial}`)));
          } else if ("emit" in step) {
            emit(step.emit);
          } else {
            const history = replay === 0 ? [] : emitted.slice(-replay);
            let expected: ParsedEvent[] = [];
            if (step.connect !== undefined) {
              const at = history.map((event) => event.id).lastIndexOf(step.connect);
              expected = history.slice(at + 1);
            }
            clients.push({ response: channel.response(resuming(step.connect)), expected: [...expected] });
          }
          emitted = emitted.slice(-10);
          await Promise.resolve();
        }
        await Promise.all(producers);
        channel.close();
        for (const client of clients) expect(await eventsOf(client.response)).toEqual(client.expected);
        stats.clients += clients.length;
        stats.replayed += clients.filter((client) => client.expected.length > 0).length;
      }),
      { numRuns: 200 },
    );
    // The runs above must have exercised what they claim to: many clients, many of them resuming from history.
    expect(stats.clients).toBeGreaterThan(200);
    expect(stats.replayed).toBeGreaterThan(100);
  });

  test("an id emitted twice resumes after its newest occurrence", async () => {
    const channel = new EventChannel({ replay: 10 });
    channel.emit({ id: "same", data: "1" });
    channel.emit("2");
    channel.emit({ id: "same", data: "3" });
    channel.emit("4");
    const response = channel.response(resuming("same"));
    channel.close();
    expect(await eventsOf(response)).toEqual([{ data: "4" }]);
  });
});

describe("EventChannel: a slow subscriber", () => {
  /** `{ id, data }` with `size` bytes of data: one event of about that size on the wire. */
  const sized = (id: number, size: number) => ({ id, data: "x".repeat(size) });

  test("one whose backlog stays above maxBufferedBytes for a second is closed at the next emit, not before", async () => {
    vi.useFakeTimers();
    const channel = new EventChannel({ maxBufferedBytes: 1_000 });
    const stalled = readerOf(channel.response(undefined, { keepAlive: false }));
    expect(await nextText(stalled)).toBe(":\n\n");
    channel.emit(sized(1, 2_000));
    await vi.advanceTimersByTimeAsync(999);
    channel.emit(sized(2, 10));
    expect(channel.subscribers).toBe(1);
    await vi.advanceTimersByTimeAsync(1);
    channel.emit(sized(3, 10));
    expect(channel.subscribers).toBe(0);
    // What was queued is still delivered, then the stream ends normally and the client reconnects.
    expect(parseWire(await readAll(stalled)).events.map((event) => event.id)).toEqual(["1", "2", "3"]);
  });

  test("one that stopped reading is closed at the first heartbeat a second after its backlog passed the cap", async () => {
    vi.useFakeTimers();
    const channel = new EventChannel({ maxBufferedBytes: 1_000 });
    const stalled = readerOf(channel.response(undefined, { keepAlive: 1_500 }));
    expect(await nextText(stalled)).toBe(":\n\n");
    channel.emit(sized(1, 2_000));
    await vi.advanceTimersByTimeAsync(1_499);
    expect(channel.subscribers).toBe(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(channel.subscribers).toBe(0);
    // Its unread bytes wait 5 s for the client; then the body errors, so the runtime drops the connection.
    await vi.advanceTimersByTimeAsync(5_000);
    expect(vi.getTimerCount()).toBe(0);
    await expect(readAll(stalled)).rejects.toThrowError("the client did not read the stream's last bytes within 5 s");
  });

  test("a backlog that falls to the cap between two checks starts its second over again", async () => {
    vi.useFakeTimers();
    const channel = new EventChannel({ maxBufferedBytes: 1_000 });
    const reader = readerOf(channel.response(undefined, { keepAlive: false }));
    expect(await nextText(reader)).toBe(":\n\n");
    channel.emit(sized(1, 2_000));
    await vi.advanceTimersByTimeAsync(900);
    expect((await nextEvents(reader)).map((event) => event.id)).toEqual(["1"]);
    channel.emit(sized(2, 2_000));
    await vi.advanceTimersByTimeAsync(900);
    channel.emit(sized(3, 10));
    expect(channel.subscribers).toBe(1);
    await vi.advanceTimersByTimeAsync(100);
    channel.emit(sized(4, 10));
    expect(channel.subscribers).toBe(0);
    await reader.cancel();
  });

  test("1,000 events of 2 KB emitted in one task reach every client that reads them", async () => {
    const channel = new EventChannel();
    const readers = Array.from({ length: 20 }, () => readerOf(channel.response(undefined, { keepAlive: false })));
    for (const reader of readers) expect(await nextText(reader)).toBe(":\n\n");
    for (let id = 1; id <= 1_000; id++) channel.emit(sized(id, 2_048));
    channel.emit({ id: "last", data: "done" });
    expect(channel.subscribers).toBe(20);
    const received = await Promise.all(
      readers.map(async (reader) => parseWire(await readUntil(reader, "last")).events),
    );
    expect(received).toHaveLength(20);
    for (const events of received) {
      expect(events).toHaveLength(1_001);
      expect(events.map((event) => event.id)).toEqual([
        ...Array.from({ length: 1_000 }, (_, n) => String(n + 1)),
        "last",
      ]);
    }
    expect(channel.subscribers).toBe(20);
    channel.close();
  });

  test("one event larger than the cap reaches every client that reads it, each time, with no reconnect", async () => {
    const channel = new EventChannel({ maxBufferedBytes: 1_000 });
    const readers = Array.from({ length: 5 }, () => readerOf(channel.response(undefined, { keepAlive: false })));
    for (const reader of readers) expect(await nextText(reader)).toBe(":\n\n");
    for (let id = 1; id <= 5; id++) {
      channel.emit(sized(id, 5_000));
      for (const reader of readers) expect((await nextEvents(reader)).map((event) => event.id)).toEqual([String(id)]);
      expect(channel.subscribers).toBe(5);
    }
    channel.close();
  });

  test("a stalled client holds at most maxBufferedBytes plus what is emitted in about a second", async () => {
    vi.useFakeTimers();
    const cap = 10_000;
    const channel = new EventChannel({ maxBufferedBytes: cap });
    const stalled = readerOf(channel.response(undefined, { keepAlive: false }));
    const fast = readerOf(channel.response(undefined, { keepAlive: false }));
    expect(await nextText(stalled)).toBe(":\n\n");
    expect(await nextText(fast)).toBe(":\n\n");
    // 1,000 bytes every 100 ms: 10,000 bytes a second.
    let ticks = 0;
    while (channel.subscribers === 2) {
      if (++ticks > 100) throw new Error("the stalled client was never closed");
      channel.emit(sized(ticks, 1_000 - 20));
      expect((await nextEvents(fast)).map((event) => event.id)).toEqual([String(ticks)]);
      await vi.advanceTimersByTimeAsync(100);
    }
    const held = new TextEncoder().encode(await readAll(stalled)).byteLength;
    expect(held).toBeGreaterThan(cap);
    expect(held).toBeLessThanOrEqual(cap + 11 * 1_000);
    await fast.cancel();
  });
});

/** Reads until an event with this id has arrived, and returns the text. */
async function readUntil(reader: ReadableStreamDefaultReader<Uint8Array>, id: string): Promise<string> {
  const chunks: string[] = [];
  const decoder = new TextDecoder();
  // Each emit is one chunk, so the id line is found in the chunk that carries it.
  while (!chunks.at(-1)?.includes(`id: ${id}\n`)) {
    const { done, value } = await reader.read();
    if (done) throw new Error(`the stream ended before the event with id ${id}`);
    chunks.push(decoder.decode(value, { stream: true }));
  }
  return chunks.join("");
}

describe("EventChannel: close(last)", () => {
  test("close(last) writes last to every open subscriber as its final event, then ends every stream", async () => {
    const channel = new EventChannel();
    const responses = [channel.response(), channel.response(undefined, { retry: 500 })];
    channel.emit("news");
    channel.close({ retry: 10_000, comment: "restarting" });
    expect(channel.subscribers).toBe(0);
    const texts = await Promise.all(responses.map((response) => readAll(readerOf(response))));
    expect(texts).toEqual([
      ":\n\ndata: news\n\n:restarting\nretry: 10000\n\n",
      "retry: 500\n\ndata: news\n\n:restarting\nretry: 10000\n\n",
    ]);
    expect(parseWire(texts[0] ?? "").retries).toEqual([10_000]);
  });

  test("close(last) with an invalid last is a TypeError, and nothing is closed", async () => {
    const channel = new EventChannel();
    const reader = readerOf(channel.response());
    expect(() => channel.close({ id: "a\nb" })).toThrowError(
      new TypeError('EventChannel.close: input.id must not contain CR, LF or NUL, got "a\\nb"'),
    );
    expect(channel.subscribers).toBe(1);
    channel.emit("still open");
    channel.close("bye");
    expect(parseWire(await readAll(reader)).events).toEqual([{ data: "still open" }, { data: "bye" }]);
  });

  test("close(last) a second time does nothing", async () => {
    const channel = new EventChannel();
    const response = channel.response();
    channel.close("bye");
    channel.close("again");
    expect(await response.text()).toBe(":\n\ndata: bye\n\n");
  });

  test("a response after close(last) closes right after its first chunk", async () => {
    const channel = new EventChannel();
    channel.close("bye");
    expect(await channel.response(undefined, { retry: 1 }).text()).toBe("retry: 1\n\n");
  });
});

describe("EventChannel: maxDuration", () => {
  test("a subscriber leaves between 0.9 and 1 times maxDuration after its first read, and its body closes normally", async () => {
    vi.useFakeTimers();
    const channel = new EventChannel();
    const draws = [0, 0.999_999];
    vi.spyOn(Math, "random").mockImplementation(() => draws.shift() ?? 0.5);
    const early = readerOf(channel.response(undefined, { maxDuration: 10_000, keepAlive: false }));
    const late = readerOf(channel.response(undefined, { maxDuration: 10_000, keepAlive: false }));
    // Time before the first read does not count.
    await vi.advanceTimersByTimeAsync(60_000);
    expect(channel.subscribers).toBe(2);
    expect(await nextText(early)).toBe(":\n\n");
    expect(await nextText(late)).toBe(":\n\n");
    await vi.advanceTimersByTimeAsync(8_999);
    expect(channel.subscribers).toBe(2);
    await vi.advanceTimersByTimeAsync(1);
    expect(channel.subscribers).toBe(1);
    expect(await early.read()).toEqual({ done: true, value: undefined });
    await vi.advanceTimersByTimeAsync(999);
    expect(channel.subscribers).toBe(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(channel.subscribers).toBe(0);
    expect(await late.read()).toEqual({ done: true, value: undefined });
    expect(vi.getTimerCount()).toBe(0);
  });

  test("maxDuration timers end with the subscriber that left first", async () => {
    vi.useFakeTimers();
    const channel = new EventChannel();
    const reader = readerOf(channel.response(undefined, { maxDuration: 5_000, keepAlive: false }));
    expect(await nextText(reader)).toBe(":\n\n");
    expect(vi.getTimerCount()).toBe(1);
    await reader.cancel();
    expect(vi.getTimerCount()).toBe(0);
  });
});

describe("EventChannel: leaving", () => {
  test("a cancelled body leaves the channel at once", async () => {
    const channel = new EventChannel();
    const kept = channel.response();
    const reader = readerOf(channel.response());
    expect(channel.subscribers).toBe(2);
    await reader.cancel();
    expect(channel.subscribers).toBe(1);
    channel.emit("still delivered");
    channel.close();
    expect(await eventsOf(kept)).toEqual([{ data: "still delivered" }]);
  });

  test("an aborted request leaves the channel at once, and its body closes normally", async () => {
    const channel = new EventChannel();
    const client = new AbortController();
    const response = channel.response(resuming(undefined, client.signal));
    const reader = readerOf(response);
    expect(await nextText(reader)).toBe(":\n\n");
    channel.emit("before");
    client.abort();
    expect(channel.subscribers).toBe(0);
    channel.emit("after");
    expect(parseWire(await readAll(reader)).events).toEqual([{ data: "before" }]);
    channel.close();
  });

  test("a request nobody else holds still takes its subscriber out when it aborts, after a garbage collection", async () => {
    const channel = new EventChannel();
    const controllers = Array.from({ length: 20 }, () => new AbortController());
    const readers = controllers.map((controller) => readerOf(channel.response(resuming(undefined, controller.signal))));
    for (const reader of readers) expect(await nextText(reader)).toBe(":\n\n");
    await collectGarbage();
    for (const controller of controllers) controller.abort();
    expect(channel.subscribers).toBe(0);
    for (const reader of readers) expect(await reader.read()).toEqual({ done: true, value: undefined });
  });

  test("an aborted init.signal leaves the channel at once, and its body closes normally", async () => {
    const channel = new EventChannel();
    const stop = new AbortController();
    const response = channel.response(undefined, { signal: stop.signal });
    expect(channel.subscribers).toBe(1);
    stop.abort();
    expect(channel.subscribers).toBe(0);
    channel.emit("after");
    expect(await readAll(readerOf(response))).toBe(":\n\n");
    channel.close();
  });

  test("a request aborted before response() never joins, and its body closes after the first chunk", async () => {
    const channel = new EventChannel();
    const response = channel.response(resuming(undefined, AbortSignal.abort()));
    expect(channel.subscribers).toBe(0);
    channel.emit("after");
    expect(await readAll(readerOf(response))).toBe(":\n\n");
    channel.close();
  });

  test("close ends every stream normally, and a later response closes at once", async () => {
    const channel = new EventChannel({ replay: 10 });
    const responses = [channel.response(), channel.response(), channel.response()];
    channel.emit({ id: 1, data: "last" });
    expect(channel.subscribers).toBe(3);
    channel.close();
    expect(channel.subscribers).toBe(0);
    for (const response of responses) expect(await eventsOf(response)).toEqual([{ id: "1", data: "last" }]);
    const late = channel.response(resuming("0"), { retry: 10 });
    expect(channel.subscribers).toBe(0);
    expect(await readAll(readerOf(late))).toBe("retry: 10\n\n");
    channel.close();
  });
});

describe("EventChannel: keep-alive", () => {
  test("subscribers share one timer, whatever their keepAlive values, and no timer outlives the last subscriber", async () => {
    vi.useFakeTimers();
    const channel = new EventChannel();
    const a = readerOf(channel.response(undefined, { keepAlive: 1_000 }));
    const b = readerOf(channel.response(undefined, { keepAlive: 1_000 }));
    const c = readerOf(channel.response(undefined, { keepAlive: 3_000 }));
    const quiet = readerOf(channel.response(undefined, { keepAlive: false }));
    // Watched from the first read: a subscriber nobody reads keeps no timer alive.
    expect(vi.getTimerCount()).toBe(0);
    for (const reader of [a, b, c, quiet]) expect(await nextText(reader)).toBe(":\n\n");

    const heard = { a: 0, b: 0, c: 0, quiet: 0 };
    const listen = (reader: ReadableStreamDefaultReader<Uint8Array>, name: keyof typeof heard) =>
      reader.read().then((chunk) => {
        heard[name]++;
        return chunk;
      });
    const next = { a: listen(a, "a"), b: listen(b, "b"), c: listen(c, "c"), quiet: listen(quiet, "quiet") };
    expect(vi.getTimerCount()).toBe(1);
    await vi.advanceTimersByTimeAsync(999);
    expect(heard).toEqual({ a: 0, b: 0, c: 0, quiet: 0 });
    await vi.advanceTimersByTimeAsync(1);
    expect(heard).toEqual({ a: 1, b: 1, c: 0, quiet: 0 });
    expect(parseWire(new TextDecoder().decode((await next.a).value)).comments).toEqual([""]);

    // An emit is not silence: it reaches everyone and pushes every heartbeat back.
    next.a = listen(a, "a");
    next.b = listen(b, "b");
    await vi.advanceTimersByTimeAsync(500);
    channel.emit("news");
    expect(heard).toEqual({ a: 1, b: 1, c: 0, quiet: 0 });
    await Promise.all([next.a, next.b, next.c, next.quiet]);
    expect(heard).toEqual({ a: 2, b: 2, c: 1, quiet: 1 });
    next.a = listen(a, "a");
    await vi.advanceTimersByTimeAsync(999);
    expect(heard.a).toBe(2);
    await vi.advanceTimersByTimeAsync(1);
    expect(heard.a).toBe(3);

    await Promise.all([a.cancel(), b.cancel()]);
    expect(vi.getTimerCount()).toBe(1);
    await c.cancel();
    expect(vi.getTimerCount()).toBe(0);
    await quiet.cancel();
    expect(channel.subscribers).toBe(0);
  });

  test("a subscriber with unread bytes gets no heartbeat piled behind them", async () => {
    vi.useFakeTimers();
    const channel = new EventChannel();
    const reader = readerOf(channel.response(undefined, { keepAlive: 1_000 }));
    await vi.advanceTimersByTimeAsync(3_000);
    // Only the first chunk was ever queued: the client never read it, so it was not idle.
    expect(await nextText(reader)).toBe(":\n\n");
    channel.close();
    expect(vi.getTimerCount()).toBe(0);
    expect(await reader.read()).toEqual({ done: true, value: undefined });
  });

  test("close stops every keep-alive timer", async () => {
    vi.useFakeTimers();
    const channel = new EventChannel();
    const readers = [readerOf(channel.response(undefined, { keepAlive: 1_000 })), readerOf(channel.response())];
    for (const reader of readers) expect(await nextText(reader)).toBe(":\n\n");
    const ends = readers.map((reader) => reader.read());
    expect(vi.getTimerCount()).toBe(1);
    channel.close();
    expect(vi.getTimerCount()).toBe(0);
    expect(await Promise.all(ends)).toEqual([
      { done: true, value: undefined },
      { done: true, value: undefined },
    ]);
  });
});

describe("EventChannel: errors", () => {
  test("emit rejects an invalid event with a TypeError and sends nothing", async () => {
    const channel = new EventChannel();
    const response = channel.response();
    expect(() => channel.emit({ event: "a\nb", data: "x" })).toThrowError(
      new TypeError('EventChannel.emit: input.event must not contain CR or LF, got "a\\nb"'),
    );
    expect(() => channel.emit({ type: "tick" } as never)).toThrowError(
      new TypeError('EventChannel.emit: unknown key "type"; put the event type in "event"'),
    );
    channel.emit("valid");
    channel.close();
    expect(await eventsOf(response)).toEqual([{ data: "valid" }]);
  });

  test("emit rejects data that is a promise, or that serialize cannot serialize, with a TypeError and sends nothing", async () => {
    const channel = new EventChannel();
    const response = channel.response();
    expect(() => channel.emit({ event: "late", data: Promise.resolve(1) })).toThrowError(
      new TypeError(
        "EventChannel.emit: input.data must not be a promise or another thenable; await it before sending the event",
      ),
    );
    expect(() => channel.emit({ data: { count: 1n } })).toThrowError(
      expect.objectContaining({
        name: "TypeError",
        message: "EventChannel.emit: input.data could not be serialized: Do not know how to serialize a BigInt",
        cause: expect.any(TypeError),
      }),
    );
    channel.emit("valid");
    channel.close();
    expect(await eventsOf(response)).toEqual([{ data: "valid" }]);
  });

  test("emit after close is a TypeError", () => {
    const channel = new EventChannel();
    channel.close();
    expect(() => channel.emit("late")).toThrowError(
      new TypeError("EventChannel.emit: the channel is closed; make a new EventChannel"),
    );
  });

  test.each<[unknown, string]>([
    [5, "EventChannel: options must be an object, got 5"],
    [{ replay: -1 }, "EventChannel: options.replay must be a non-negative safe integer, got -1"],
    [{ replay: 1.5 }, "EventChannel: options.replay must be a non-negative safe integer, got 1.5"],
    [{ replay: "10" }, 'EventChannel: options.replay must be a non-negative safe integer, got "10"'],
    [{ maxBufferedBytes: 0 }, "EventChannel: options.maxBufferedBytes must be a positive safe integer, got 0"],
    [
      { maxBufferedBytes: Number.POSITIVE_INFINITY },
      "EventChannel: options.maxBufferedBytes must be a positive safe integer, got Infinity",
    ],
    [{ serialize: "json" }, 'EventChannel: options.serialize must be a function, got "json"'],
    [
      { keepAlive: 1_000 },
      "EventChannel: options.keepAlive is not an option; pass it to channel.response(request, init)",
    ],
    [
      { history: 10 },
      "EventChannel: options.history must be an object with an after(lastEventId, { signal }) method, got 10",
    ],
    [
      { history: {} },
      "EventChannel: options.history must be an object with an after(lastEventId, { signal }) method, got an object",
    ],
    [
      { replay: 10, history: { after: () => null } },
      "EventChannel: options.replay and options.history cannot both be set; a channel has one history",
    ],
    [{ onHistoryLost: "reset" }, 'EventChannel: options.onHistoryLost must be a function, got "reset"'],
    [
      { maxDuration: 1_000 },
      "EventChannel: options.maxDuration is not an option; pass it to channel.response(request, init)",
    ],
    [{ replays: 10 }, 'EventChannel: options.replays is not an option; did you mean "replay"?'],
  ])("new EventChannel(%o) is a TypeError that names the option", (options, message) => {
    expect(() => new EventChannel(options as EventChannelOptions)).toThrowError(new TypeError(message));
  });

  test.each<[unknown, unknown, string]>([
    [
      { retry: 10 },
      undefined,
      "EventChannel.response: request must be a Request, got an object; options go in the second argument",
    ],
    ["http://localhost/", undefined, 'EventChannel.response: request must be a Request, got "http://localhost/"'],
    [undefined, { retry: -1 }, "EventChannel.response: init.retry must be a non-negative safe integer, got -1"],
    [
      undefined,
      { keepAlive: 0.5 },
      "EventChannel.response: init.keepAlive must be false or whole ms up to 2147483647, got 0.5",
    ],
    [undefined, { signal: "stop" }, 'EventChannel.response: init.signal must be an AbortSignal, got "stop"'],
    [
      undefined,
      { maxDuration: 0 },
      "EventChannel.response: init.maxDuration must be a positive whole number of ms up to 2147483647, got 0",
    ],
    [
      undefined,
      { serialize: String },
      "EventChannel.response: init.serialize has no effect on a channel; pass serialize to new EventChannel(options)",
    ],
    [
      undefined,
      { onError: () => {} },
      "EventChannel.response: init.onError has no effect on a channel, which has no source that could fail",
    ],
  ])("response(%o, %o) is a TypeError, and nothing joins", (request, init, message) => {
    const channel = new EventChannel();
    expect(() => channel.response(request as Request, init as EventSourceResponseInit)).toThrowError(
      new TypeError(message),
    );
    expect(channel.subscribers).toBe(0);
  });
});
