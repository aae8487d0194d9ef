import { type EventSourceContext, EventSourceEncoderStream, eventSourceResponse } from "eventsource-server";
import { afterEach, describe, expect, test, vi } from "vitest";
import {
  collectGarbage,
  deferred,
  nextEvents,
  nextText,
  parseWire,
  readAll,
  readerOf,
  settle,
  streamOf,
} from "./helpers.ts";

afterEach(() => {
  vi.useRealTimers();
});

/** A source that counts how often it was advanced and tells when its finally block ran. */
function countingSource(limit = Number.POSITIVE_INFINITY) {
  const state = { advanced: 0, finished: deferred(), finallyRan: false };
  async function* events() {
    try {
      for (let i = 0; i < limit; i++) {
        state.advanced++;
        yield { event: "tick", data: String(i) };
      }
    } finally {
      state.finallyRan = true;
      state.finished.resolve();
    }
  }
  return { state, events: events() };
}

describe("eventSourceResponse: the response", () => {
  test("returns a Response at once, with a byte stream body and status 200", () => {
    const response = eventSourceResponse([]);
    expect(response).toBeInstanceOf(Response);
    expect(response.status).toBe(200);
    expect(response.body).toBeInstanceOf(ReadableStream);
  });

  test("sets the event-stream headers and none of the hop-by-hop or length headers", () => {
    const { headers } = eventSourceResponse([]);
    expect(headers.get("content-type")).toBe("text/event-stream; charset=utf-8");
    expect(headers.get("cache-control")).toBe("no-cache, no-transform");
    expect(headers.get("x-accel-buffering")).toBe("no");
    for (const name of ["connection", "content-length", "transfer-encoding", "content-encoding"]) {
      expect(headers.has(name)).toBe(false);
    }
  });

  test("merges init.headers over the defaults, the caller's value winning, in any HeadersInit form", () => {
    const fromObject = eventSourceResponse([], { headers: { "Cache-Control": "no-store", "x-room": "7" } });
    // Without no-transform, compression middleware (Express's compression()) would hold the stream back.
    expect(fromObject.headers.get("cache-control")).toBe("no-store, no-transform");
    expect(fromObject.headers.get("x-room")).toBe("7");
    expect(fromObject.headers.get("content-type")).toBe("text/event-stream; charset=utf-8");
    const fromPairs = eventSourceResponse([], {
      headers: [
        ["set-cookie", "a=1"],
        ["set-cookie", "b=2"],
      ],
    });
    expect(fromPairs.headers.getSetCookie()).toEqual(["a=1", "b=2"]);
    const fromHeaders = eventSourceResponse([], { headers: new Headers({ "content-type": "text/event-stream" }) });
    expect(fromHeaders.headers.get("content-type")).toBe("text/event-stream");
  });

  test("passes init.status and init.statusText to the Response", () => {
    const response = eventSourceResponse([], { status: 201, statusText: "Created" });
    expect(response.status).toBe(201);
    expect(response.statusText).toBe("Created");
  });
});

describe("eventSourceResponse: bad input", () => {
  test.each([
    [42, "got 42"],
    [null, "got null"],
    [undefined, "got undefined"],
    [{ data: "x" }, "got an object"],
    ["hello", 'got "hello"; to send one string, pass [text]'],
    [new String("hello"), "got an object"],
  ])("throws a TypeError at once for the source %o", (source, got) => {
    expect(() => eventSourceResponse(source as never)).toThrowError(
      new TypeError(
        `eventSourceResponse: source must be an async iterable, an iterable, a ReadableStream or a function, ${got}`,
      ),
    );
  });

  test.each([
    [{ retry: -1 }, "init.retry must be a non-negative safe integer, got -1"],
    [{ retry: 1.5 }, "init.retry must be a non-negative safe integer, got 1.5"],
    [{ retry: "1000" }, 'init.retry must be a non-negative safe integer, got "1000"'],
    [{ keepAlive: -5 }, "init.keepAlive must be false or whole ms up to 2147483647, got -5"],
    [{ keepAlive: 2 ** 31 }, "init.keepAlive must be false or whole ms up to 2147483647, got 2147483648"],
    [{ keepAlive: true }, "init.keepAlive must be false or whole ms up to 2147483647, got true"],
    [{ keepAlive: Number.NaN }, "init.keepAlive must be false or whole ms up to 2147483647, got NaN"],
    [{ maxDuration: 0 }, "init.maxDuration must be a positive whole number of ms up to 2147483647, got 0"],
    [{ maxDuration: -1 }, "init.maxDuration must be a positive whole number of ms up to 2147483647, got -1"],
    [{ maxDuration: 1.5 }, "init.maxDuration must be a positive whole number of ms up to 2147483647, got 1.5"],
    [
      { maxDuration: 2 ** 31 },
      "init.maxDuration must be a positive whole number of ms up to 2147483647, got 2147483648",
    ],
    [{ maxDuration: "60000" }, 'init.maxDuration must be a positive whole number of ms up to 2147483647, got "60000"'],
    [{ maxDuration: false }, "init.maxDuration must be a positive whole number of ms up to 2147483647, got false"],
    [{ serialize: "json" }, 'init.serialize must be a function, got "json"'],
    [{ onError: 1 }, "init.onError must be a function, got 1"],
    [{ signal: {} }, "init.signal must be an AbortSignal, got an object"],
    [{ request: "http://x/" }, 'init.request must be a Request, got "http://x/"'],
  ])("throws a TypeError at once for init %o", (init, problem) => {
    expect(() => eventSourceResponse([], init as never)).toThrowError(new TypeError(`eventSourceResponse: ${problem}`));
  });

  test("throws a TypeError for an init that is not an object", () => {
    expect(() => eventSourceResponse([], 5 as never)).toThrowError(
      new TypeError("eventSourceResponse: init must be an object, got 5"),
    );
  });
});

describe("eventSourceResponse: sources", () => {
  const events = [{ event: "a", data: "1" }, "two", { id: 3, data: { n: 3 } }];
  const expected = [{ event: "a", data: "1" }, { data: "two" }, { id: "3", data: '{"n":3}' }];

  test.each([
    ["an array", () => events],
    ["a Set", () => new Set(events)],
    [
      "a generator",
      () =>
        (function* () {
          yield* events;
        })(),
    ],
    [
      "an async generator",
      () =>
        (async function* () {
          yield* events;
        })(),
    ],
    ["a ReadableStream", () => streamOf(events)],
    ["a function returning an array", () => () => events],
    ["an async function returning a stream", () => async () => streamOf(events)],
  ])("reads every event from %s, in order", async (_, make) => {
    const text = await eventSourceResponse(make() as never).text();
    expect(parseWire(text).events).toEqual(expected);
  });

  test("writes exactly the bytes EventSourceEncoderStream makes, after the first chunk", async () => {
    const inputs = ["a\r\nb", { event: "x", id: "", retry: 5, comment: "c\nd", data: [1, "é😀"] }, { event: "y" }];
    const ours = await eventSourceResponse(inputs).text();
    const piped = await new Response(streamOf(inputs).pipeThrough(new EventSourceEncoderStream())).text();
    expect(ours).toBe(`:\n\n${piped}`);
  });

  test("turns non-string data into text with init.serialize", async () => {
    const text = await eventSourceResponse([{ data: 42 }], { serialize: (data) => `<${String(data)}>` }).text();
    expect(parseWire(text).events).toEqual([{ data: "<42>" }]);
  });

  test("calls a function source once, lazily, with the signal and the request's last event ID", async () => {
    const calls: EventSourceContext[] = [];
    const request = new Request("http://localhost/events", { headers: { "Last-Event-ID": "41" } });
    const response = eventSourceResponse(
      (context) => {
        calls.push(context);
        return ["x"];
      },
      { request },
    );
    const reader = readerOf(response);
    await settle();
    expect(calls).toHaveLength(0);
    await nextText(reader);
    await readAll(reader);
    expect(calls).toHaveLength(1);
    expect(calls[0]?.lastEventId).toBe("41");
    expect(calls[0]?.signal).toBeInstanceOf(AbortSignal);
  });

  test("gives a function source lastEventId null without a request, and the query parameter with one", async () => {
    const seen: (string | null)[] = [];
    const source = ({ lastEventId }: EventSourceContext) => {
      seen.push(lastEventId);
      return [];
    };
    await eventSourceResponse(source).text();
    await eventSourceResponse(source, { request: new Request("http://x/?lastEventId=9") }).text();
    expect(seen).toEqual([null, "9"]);
  });
});

describe("eventSourceResponse: streaming", () => {
  test("writes a comment first, at once, before the source yields anything", async () => {
    const reader = readerOf(eventSourceResponse(new ReadableStream()));
    expect(await nextText(reader)).toBe(":\n\n");
    await reader.cancel();
  });

  test("writes init.retry first, as a retry field", async () => {
    const reader = readerOf(eventSourceResponse(new ReadableStream(), { retry: 2_500 }));
    const first = await nextText(reader);
    expect(first).toBe("retry: 2500\n\n");
    expect(parseWire(first).retries).toEqual([2_500]);
    await reader.cancel();
  });

  test("delivers each event as soon as the source yields it, while the source waits for the next", async () => {
    const gate = deferred();
    async function* slow() {
      yield "first";
      await gate.promise;
      yield "second";
    }
    const reader = readerOf(eventSourceResponse(slow()));
    await nextText(reader);
    expect(await nextEvents(reader)).toEqual([{ data: "first" }]);
    gate.resolve();
    expect(await nextEvents(reader)).toEqual([{ data: "second" }]);
  });

  test("advances the source at most 8 times for a reader that never reads", async () => {
    const { state, events } = countingSource();
    const response = eventSourceResponse(events);
    readerOf(response);
    await settle();
    expect(state.advanced).toBeLessThanOrEqual(8);
  });

  test("stops advancing the source when the consumer stops reading", async () => {
    const { state, events } = countingSource();
    const reader = readerOf(eventSourceResponse(events));
    for (let i = 0; i < 4; i++) await nextText(reader);
    await settle();
    const advanced = state.advanced;
    expect(advanced).toBeGreaterThanOrEqual(3);
    await settle();
    expect(state.advanced).toBe(advanced);
    expect(advanced).toBeLessThanOrEqual(3 + 8);
    await reader.cancel();
  });

  test("closes the body when the source ends, and aborts the context signal", async () => {
    let signal: AbortSignal | undefined;
    const response = eventSourceResponse((context) => {
      signal = context.signal;
      return ["only"];
    });
    expect(parseWire(await response.text()).events).toEqual([{ data: "only" }]);
    expect(signal?.aborted).toBe(true);
  });
});

describe("eventSourceResponse: the client leaving", () => {
  test("a request nobody else holds still ends its stream when it aborts, after a garbage collection", async () => {
    // undici's Request.signal follows the signal the Request was made with only while the Request is alive.
    const count = 20;
    const controllers: AbortController[] = [];
    const readers = [];
    let stopped = 0;
    for (let i = 0; i < count; i++) {
      const controller = new AbortController();
      controllers.push(controller);
      const request = new Request("http://localhost/events", { signal: controller.signal });
      readers.push(
        readerOf(
          eventSourceResponse(
            async function* ({ signal }) {
              yield "open";
              await new Promise((resolve) => signal.addEventListener("abort", resolve, { once: true }));
              stopped++;
            },
            { request, keepAlive: false },
          ),
        ),
      );
    }
    for (const reader of readers) expect(await nextEvents(reader)).toEqual([]);
    for (const reader of readers) expect(await nextEvents(reader)).toEqual([{ data: "open" }]);
    await collectGarbage();
    for (const controller of controllers) controller.abort();
    for (const reader of readers) expect(await reader.read()).toEqual({ done: true, value: undefined });
    expect(stopped).toBe(count);
  });

  test("cancelling the body runs the source's finally block", async () => {
    const { state, events } = countingSource();
    const reader = readerOf(eventSourceResponse(events));
    await nextText(reader);
    expect(await nextEvents(reader)).toEqual([{ event: "tick", data: "0" }]);
    await reader.cancel();
    await state.finished.promise;
  });

  test("cancelling the body cancels a ReadableStream source with the same reason", async () => {
    const cancelled = deferred<unknown>();
    const source = new ReadableStream({ cancel: (reason) => cancelled.resolve(reason) });
    const reader = readerOf(eventSourceResponse(source));
    await nextText(reader);
    await reader.cancel("bye");
    expect(await cancelled.promise).toBe("bye");
  });

  test("cancelling the body before anything was read still cancels a ReadableStream source", async () => {
    const cancelled = deferred<unknown>();
    const source = new ReadableStream({ cancel: (reason) => cancelled.resolve(reason) });
    const reader = readerOf(eventSourceResponse(source));
    await reader.cancel("gone early");
    expect(await cancelled.promise).toBe("gone early");
  });

  test("aborting init.signal before the first read closes a generator source, which then never runs", async () => {
    let ran = false;
    const events = (async function* () {
      ran = true;
      yield "never";
    })();
    const text = await eventSourceResponse(events, { signal: AbortSignal.abort() }).text();
    expect(text).toBe(":\n\n");
    expect(await events.next()).toEqual({ done: true, value: undefined });
    expect(ran).toBe(false);
  });

  test("cancelling the body aborts the context signal at once, so a source blocked in an await can stop", async () => {
    const aborted = deferred();
    const { promise: never } = deferred();
    const finished = deferred();
    const response = eventSourceResponse(async function* ({ signal }) {
      signal.addEventListener("abort", () => aborted.resolve());
      try {
        yield "first";
        // Blocked: return() alone cannot reach this generator until the await settles.
        await Promise.race([never, new Promise((resolve) => signal.addEventListener("abort", resolve))]);
        yield "never sent";
      } finally {
        finished.resolve();
      }
    });
    const reader = readerOf(response);
    await nextText(reader);
    await nextText(reader);
    const pending = reader.read();
    await settle();
    await reader.cancel();
    await aborted.promise;
    await finished.promise;
    expect((await pending).done).toBe(true);
  });

  test("a finally block that throws on cancel goes to onError, not to an unhandled rejection", async () => {
    const onError = vi.fn();
    async function* failing() {
      try {
        yield "x";
        yield "y";
      } finally {
        // biome-ignore lint/correctness/noUnsafeFinally: the point of the test is a finally that throws.
        throw new Error("clean-up failed");
      }
    }
    const reader = readerOf(eventSourceResponse(failing(), { onError }));
    await nextText(reader);
    await nextText(reader);
    await reader.cancel();
    await vi.waitFor(() => expect(onError).toHaveBeenCalledWith(new Error("clean-up failed")));
  });

  test("aborting init.signal ends the source and closes the body normally", async () => {
    const { state, events } = countingSource();
    const controller = new AbortController();
    const reader = readerOf(eventSourceResponse(events, { signal: controller.signal }));
    await nextText(reader);
    await nextText(reader);
    controller.abort();
    await state.finished.promise;
    let rest = "";
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      rest += new TextDecoder().decode(value);
    }
    expect(parseWire(rest).events.length).toBeLessThanOrEqual(1);
  });

  test("aborting the request's signal ends a source blocked in an await and closes the body", async () => {
    const client = new AbortController();
    const request = new Request("http://localhost/", { signal: client.signal });
    const finished = deferred();
    let contextSignal: AbortSignal | undefined;
    const response = eventSourceResponse(
      async function* ({ signal }) {
        contextSignal = signal;
        try {
          yield "first";
          await new Promise((resolve) => signal.addEventListener("abort", resolve));
        } finally {
          finished.resolve();
        }
      },
      { request },
    );
    const reader = readerOf(response);
    await nextText(reader);
    await nextText(reader);
    const end = reader.read();
    client.abort();
    expect((await end).done).toBe(true);
    await finished.promise;
    expect(contextSignal?.aborted).toBe(true);
  });

  test("an init.signal aborted before the first read closes the body after the first chunk, never calling the source", async () => {
    const source = vi.fn(() => ["x"]);
    const text = await eventSourceResponse(source, { signal: AbortSignal.abort() }).text();
    expect(text).toBe(":\n\n");
    expect(source).not.toHaveBeenCalled();
  });
});

describe("eventSourceResponse: errors", () => {
  test("a source that throws calls onError once, writes the event it returns and closes normally", async () => {
    const boom = new Error("database down");
    const onError = vi.fn(() => ({ event: "error", data: "try later" }));
    async function* failing() {
      yield "one";
      throw boom;
    }
    const text = await eventSourceResponse(failing(), { onError }).text();
    expect(onError).toHaveBeenCalledTimes(1);
    expect(onError).toHaveBeenCalledWith(boom);
    expect(parseWire(text).events).toEqual([{ data: "one" }, { event: "error", data: "try later" }]);
  });

  test("nothing of an error reaches the wire unless onError returns it", async () => {
    const text = await eventSourceResponse(
      (async function* () {
        yield "one";
        throw new Error("secret connection string");
      })(),
      { onError: () => {} },
    ).text();
    expect(text).toBe(":\n\ndata: one\n\n");
  });

  test("reports a source's error with console.error by default", async () => {
    const spy = vi.spyOn(console, "error").mockImplementation(() => {});
    const boom = new Error("boom");
    await eventSourceResponse(
      (async function* () {
        yield* [];
        throw boom;
      })(),
    ).text();
    expect(spy).toHaveBeenCalledWith(
      expect.stringMatching(
        /^eventSourceResponse: the source failed: Error: boom \(at .*response\.test\.ts:\d+:\d+\)\)?$/,
      ),
    );
  });

  test("an invalid event calls onError with its TypeError and stops the source", async () => {
    const { state } = countingSource();
    const onError = vi.fn();
    async function* bad() {
      try {
        yield "fine";
        yield { type: "tick" } as never;
        yield "never";
      } finally {
        state.finished.resolve();
      }
    }
    const text = await eventSourceResponse(bad(), { onError }).text();
    await state.finished.promise;
    expect(parseWire(text).events).toEqual([{ data: "fine" }]);
    expect(onError).toHaveBeenCalledTimes(1);
    expect(onError).toHaveBeenCalledWith(
      new TypeError('encodeEvent: unknown key "type"; put the event type in "event"'),
    );
  });

  test("data that is a promise calls onError with a TypeError, and the event onError returns is written", async () => {
    const onError = vi.fn(() => ({ event: "error", data: "try again" }));
    async function* source() {
      yield "fine";
      yield { event: "late", data: Promise.resolve(1) };
    }
    const text = await eventSourceResponse(source(), { onError, serialize: () => "never used" }).text();
    expect(parseWire(text).events).toEqual([{ data: "fine" }, { event: "error", data: "try again" }]);
    expect(onError).toHaveBeenCalledTimes(1);
    expect(onError).toHaveBeenCalledWith(
      new TypeError(
        "encodeEvent: input.data must not be a promise or another thenable; await it before sending the event",
      ),
    );
  });

  test("an error from serialize reaches onError as a TypeError whose cause is the original", async () => {
    const tooDeep = new RangeError("too deep");
    const onError = vi.fn();
    const serialize = (): string => {
      throw tooDeep;
    };
    expect(await eventSourceResponse([{ data: 1 }], { serialize, onError }).text()).toBe(":\n\n");
    expect(onError).toHaveBeenCalledTimes(1);
    expect(onError).toHaveBeenCalledWith(
      expect.objectContaining({
        name: "TypeError",
        message: "encodeEvent: input.data could not be serialized: too deep",
        cause: tooDeep,
      }),
    );
  });

  test("a function source that returns something unreadable goes to onError", async () => {
    const onError = vi.fn();
    const text = await eventSourceResponse(() => 42 as never, { onError }).text();
    expect(text).toBe(":\n\n");
    expect(onError).toHaveBeenCalledWith(
      new TypeError(
        "eventSourceResponse: source must be an async iterable, an iterable, a ReadableStream or a function, got 42",
      ),
    );
  });

  test("a throw from onError errors the body", async () => {
    const fatal = new Error("onError failed");
    const response = eventSourceResponse(
      (async function* () {
        yield* [];
        throw new Error("source failed");
      })(),
      {
        onError: () => {
          throw fatal;
        },
      },
    );
    await expect(response.text()).rejects.toThrowError(fatal);
  });
});

describe("eventSourceResponse: maxDuration", () => {
  test("the stream ends normally between 0.9 and 1 times maxDuration after the first read, with the clean-up of init.signal", async () => {
    vi.useFakeTimers();
    vi.spyOn(Math, "random").mockReturnValue(0);
    let context: EventSourceContext | undefined;
    const finished = deferred();
    async function* waiting(given: EventSourceContext) {
      context = given;
      try {
        yield "first";
        await new Promise((resolve) => given.signal.addEventListener("abort", resolve, { once: true }));
      } finally {
        finished.resolve();
      }
    }
    const reader = readerOf(eventSourceResponse(waiting, { maxDuration: 10_000, keepAlive: 1_000 }));
    expect(await nextText(reader)).toBe(":\n\n");
    expect(await nextEvents(reader)).toEqual([{ data: "first" }]);
    const rest = readAll(reader);
    await vi.advanceTimersByTimeAsync(8_999);
    expect(context?.signal.aborted).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    expect(context?.signal.aborted).toBe(true);
    await finished.promise;
    // Only heartbeats came in between, and the body ended as a clean close.
    expect(parseWire(await rest).events).toEqual([]);
    expect(vi.getTimerCount()).toBe(0);
  });

  test("the time before the first read does not count", async () => {
    vi.useFakeTimers();
    vi.spyOn(Math, "random").mockReturnValue(0.999_999);
    const response = eventSourceResponse(new ReadableStream(), { maxDuration: 1_000, keepAlive: false });
    await vi.advanceTimersByTimeAsync(5_000);
    expect(vi.getTimerCount()).toBe(0);
    const reader = readerOf(response);
    expect(await nextText(reader)).toBe(":\n\n");
    let ended = false;
    const end = reader.read().then((chunk) => {
      ended = chunk.done === true;
    });
    await vi.advanceTimersByTimeAsync(999);
    expect(ended).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    await end;
    expect(ended).toBe(true);
  });

  test("streams that started together end spread over the last tenth of maxDuration", async () => {
    vi.useFakeTimers();
    const endedAt: number[] = [];
    const readers = Array.from({ length: 50 }, () =>
      readerOf(eventSourceResponse(new ReadableStream(), { maxDuration: 100_000, keepAlive: false })),
    );
    const start = Date.now();
    await Promise.all(readers.map((reader) => nextText(reader)));
    const ends = readers.map((reader) => reader.read().then(() => endedAt.push(Date.now() - start)));
    await vi.advanceTimersByTimeAsync(100_000);
    await Promise.all(ends);
    expect(endedAt).toHaveLength(50);
    expect(Math.min(...endedAt)).toBeGreaterThanOrEqual(90_000);
    expect(Math.max(...endedAt)).toBeLessThanOrEqual(100_000);
    // Spread, not bunched: at least half of 50 draws land in distinct seconds of the 10-second window.
    expect(new Set(endedAt.map((ms) => Math.floor(ms / 1_000))).size).toBeGreaterThanOrEqual(5);
  });

  test("a stream that ends first takes its maxDuration timer with it", async () => {
    vi.useFakeTimers();
    const reader = readerOf(eventSourceResponse(["only"], { maxDuration: 60_000, keepAlive: false }));
    expect(await readAll(reader)).toBe(":\n\ndata: only\n\n");
    expect(vi.getTimerCount()).toBe(0);
  });
});

describe("eventSourceResponse: keep-alive", () => {
  test("a silent source gets a comment after keepAlive ms, and its timer ends with the stream", async () => {
    vi.useFakeTimers();
    const reader = readerOf(eventSourceResponse(new ReadableStream(), { keepAlive: 1_000 }));
    expect(await nextText(reader)).toBe(":\n\n");
    let arrived = false;
    const heartbeat = reader.read().then((chunk) => {
      arrived = true;
      return chunk;
    });
    await vi.advanceTimersByTimeAsync(999);
    expect(arrived).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    const { value } = await heartbeat;
    const text = new TextDecoder().decode(value);
    expect(text).toMatch(/^:/);
    expect(parseWire(text).events).toEqual([]);
    await reader.cancel();
    expect(vi.getTimerCount()).toBe(0);
  });

  test("keeps writing a comment after each further silence, 8 s by default", async () => {
    vi.useFakeTimers();
    const reader = readerOf(eventSourceResponse(new ReadableStream()));
    await nextText(reader);
    for (let beat = 0; beat < 3; beat++) {
      let arrived = false;
      const next = reader.read().then(() => {
        arrived = true;
      });
      await vi.advanceTimersByTimeAsync(7_999);
      expect(arrived).toBe(false);
      await vi.advanceTimersByTimeAsync(1);
      await next;
    }
    await reader.cancel();
    expect(vi.getTimerCount()).toBe(0);
  });

  test("every event written restarts the silence", async () => {
    vi.useFakeTimers();
    const events = new TransformStream<string, string>();
    const writer = events.writable.getWriter();
    const reader = readerOf(eventSourceResponse(events.readable, { keepAlive: 1_000 }));
    await nextText(reader);
    await vi.advanceTimersByTimeAsync(600);
    const written = writer.write("news");
    expect(await nextEvents(reader)).toEqual([{ data: "news" }]);
    await written;
    let arrived = false;
    const heartbeat = reader.read().then((chunk) => {
      arrived = true;
      return chunk;
    });
    await vi.advanceTimersByTimeAsync(999);
    expect(arrived).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    expect(new TextDecoder().decode((await heartbeat).value)).toBe(":\n\n");
    await reader.cancel();
    expect(vi.getTimerCount()).toBe(0);
  });

  test("a client that stops reading gets one heartbeat, not a pile of them", async () => {
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout", "Date"] });
    const reader = readerOf(eventSourceResponse(new ReadableStream(), { keepAlive: 1_000 }));
    await nextText(reader);
    await vi.advanceTimersByTimeAsync(10_000);
    expect(await nextText(reader)).toBe(":\n\n");
    let more = false;
    const next = reader.read().then(() => {
      more = true;
    });
    await settle();
    expect(more).toBe(false);
    await reader.cancel();
    await next;
  });

  test("a response nobody reads starts no timer; the first read starts it", async () => {
    vi.useFakeTimers();
    const response = eventSourceResponse(new ReadableStream());
    expect(vi.getTimerCount()).toBe(0);
    const reader = readerOf(response);
    await nextText(reader);
    expect(vi.getTimerCount()).toBe(1);
    await reader.cancel();
    expect(vi.getTimerCount()).toBe(0);
  });

  test.each([false, 0] as const)("keepAlive %s starts no timer at all", async (keepAlive) => {
    vi.useFakeTimers();
    const reader = readerOf(eventSourceResponse(new ReadableStream(), { keepAlive }));
    await nextText(reader);
    expect(vi.getTimerCount()).toBe(0);
    await reader.cancel();
  });

  test("the timer ends when the source ends, when init.signal aborts, and on an error", async () => {
    vi.useFakeTimers();
    await eventSourceResponse(["done"]).text();
    expect(vi.getTimerCount()).toBe(0);
    const controller = new AbortController();
    const reader = readerOf(eventSourceResponse(new ReadableStream(), { signal: controller.signal }));
    await nextText(reader);
    controller.abort();
    expect((await reader.read()).done).toBe(true);
    expect(vi.getTimerCount()).toBe(0);
    await eventSourceResponse(
      (async function* () {
        yield* [];
        throw new Error("x");
      })(),
      { onError: () => {} },
    ).text();
    expect(vi.getTimerCount()).toBe(0);
  });
});
