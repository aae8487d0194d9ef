import { EventChannel, type EventChannelOptions, type EventSourceResponseInit } from "eventsource-server";
import fc from "fast-check";
import { afterEach, describe, expect, test, vi } from "vitest";
import { nextEvents, nextText, type ParsedEvent, parseWire, readAll, readerOf } from "./helpers.ts";

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
    expect(response.headers.get("cache-control")).toBe("no-store");
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
  test("one that leaves more than maxBufferedBytes unread is closed; a fast one gets everything", async () => {
    // Each event below is 24 bytes on the wire: "id: NN\ndata: event NN\n\n" for two-digit ids.
    const channel = new EventChannel({ replay: 100, maxBufferedBytes: 100 });
    const slow = readerOf(channel.response(resuming()));
    const fast = readerOf(channel.response(resuming()));
    expect(await nextText(fast)).toBe(":\n\n");
    const fastEvents: ParsedEvent[] = [];
    let n = 10;
    while (channel.subscribers === 2) {
      if (n > 99) throw new Error("the slow subscriber was never evicted");
      channel.emit({ id: n, data: `event ${n}` });
      fastEvents.push(...(await nextEvents(fast)));
      n++;
    }
    // ":\n\n" (3 bytes) + 4 events (96) fit in 100; the fifth passes it.
    expect(n).toBe(15);
    expect(channel.subscribers).toBe(1);
    for (; n < 20; n++) {
      channel.emit({ id: n, data: `event ${n}` });
      fastEvents.push(...(await nextEvents(fast)));
    }
    expect(fastEvents).toEqual(numbered(10, 19));

    // The slow client still gets what was queued, then its stream ends normally, and it reconnects.
    const firstVisit = parseWire(await readAll(slow)).events;
    expect(firstVisit).toEqual(numbered(10, 14));
    const resumed = channel.response(resuming(firstVisit.at(-1)?.id));
    expect(channel.subscribers).toBe(2);
    channel.emit({ id: 20, data: "event 20" });
    channel.close();
    expect(await eventsOf(resumed)).toEqual(numbered(15, 20));
    expect(parseWire(await readAll(fast)).events).toEqual(numbered(20, 20));
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
    expect(vi.getTimerCount()).toBe(1);
    for (const reader of [a, b, c, quiet]) expect(await nextText(reader)).toBe(":\n\n");

    const heard = { a: 0, b: 0, c: 0, quiet: 0 };
    const listen = (reader: ReadableStreamDefaultReader<Uint8Array>, name: keyof typeof heard) =>
      reader.read().then((chunk) => {
        heard[name]++;
        return chunk;
      });
    const next = { a: listen(a, "a"), b: listen(b, "b"), c: listen(c, "c"), quiet: listen(quiet, "quiet") };
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

  test("close stops every keep-alive timer", () => {
    vi.useFakeTimers();
    const channel = new EventChannel();
    channel.response(undefined, { keepAlive: 1_000 });
    channel.response();
    expect(vi.getTimerCount()).toBe(1);
    channel.close();
    expect(vi.getTimerCount()).toBe(0);
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
      'EventChannel: unknown option "keepAlive"; pass keepAlive to channel.response(request, init)',
    ],
    [{ history: 10 }, 'EventChannel: unknown option "history"'],
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
