import {
  EventChannel,
  type EventChannelOptions,
  type EventHistory,
  EventSourceEncoderStream,
  type EventSourceResponseInit,
  type EventStreamLike,
  encodeEvent,
  eventSourceResponse,
} from "eventsource-server";
import { afterEach, beforeEach, describe, expect, test, vi } from "vitest";
import { deferred, nextText, type ParsedEvent, parseWire, readAll, readerOf, settle } from "./helpers.ts";

// Regression tests for issue items 4 (an async callback that rejects crashes the process), 5 (a history.after that
// never settles holds its client forever), 6 (the duplicate filter never switches off after a replay), 8 (a late
// history answer is left open) and 9 (ids that cannot come back in a Last-Event-ID header). API.md: "Resuming:
// `replay` and `history`".

// Every unhandled rejection while a test runs, so that one is a failure of that test. Vitest stands its own report
// down while another listener exists, so afterEach fails the test for any rejection the test itself did not check.
const unhandled: unknown[] = [];
const onUnhandled = (reason: unknown): void => {
  unhandled.push(reason);
};

beforeEach(() => {
  unhandled.length = 0;
  process.on("unhandledRejection", onUnhandled);
});

afterEach(async () => {
  vi.useRealTimers();
  await settle();
  process.off("unhandledRejection", onUnhandled);
  expect(unhandled, "unhandled rejections").toEqual([]);
});

const url = "http://localhost/events";

function resuming(lastEventId: string): Request {
  return new Request(url, { headers: { "last-event-id": lastEventId } });
}

async function eventsOf(response: Response): Promise<ParsedEvent[]> {
  return parseWire(await readAll(readerOf(response))).events;
}

const logEvent = (n: number) => ({ id: String(n), data: `event ${n}` });

/**
 * Options with what today's types do not take yet (an async `onError` or `onHistoryLost`, `historyTimeout`): the
 * contract allows them, so the test states them as a caller would, untyped.
 */
function channelOptions(options: Record<string, unknown>): EventChannelOptions {
  return options as EventChannelOptions;
}
function responseInit(init: Record<string, unknown>): EventSourceResponseInit {
  return init as EventSourceResponseInit;
}

/** A source that fails before yielding anything. */
async function* failing() {
  yield* [];
  throw new Error("source failed");
}

/** A history whose `after` answers when the test says so, and records its signal. */
function controlledHistory() {
  const calls: { signal: AbortSignal; answer: (events: EventStreamLike | null) => void }[] = [];
  const history: EventHistory = {
    after(_lastEventId, { signal }) {
      const answer = deferred<EventStreamLike | null>();
      calls.push({ signal, answer: answer.resolve });
      return answer.promise;
    },
  };
  return { history, calls };
}

/** What `after` may answer with, each telling whether it was closed: a stream cancelled, an iterator returned. */
const closableAnswers: [string, () => { answer: EventStreamLike; closed: () => boolean }][] = [
  [
    "a ReadableStream",
    () => {
      let closed = false;
      const answer = new ReadableStream({
        cancel() {
          closed = true;
        },
      });
      return { answer, closed: () => closed };
    },
  ],
  [
    "an async iterator",
    () => {
      let closed = false;
      const answer: AsyncIterable<never> = {
        [Symbol.asyncIterator]: () => ({
          next: () => new Promise<IteratorResult<never>>(() => {}),
          return: async () => {
            closed = true;
            return { done: true, value: undefined };
          },
        }),
      };
      return { answer, closed: () => closed };
    },
  ],
];

describe("async callbacks: a rejection is handled like a throw, never unhandled", () => {
  test("an async onError that rejects errors the body with its rejection, and leaves no unhandled rejection", async () => {
    const failure = new Error("onError failed");
    const response = eventSourceResponse(
      failing(),
      responseInit({
        onError: async () => {
          throw failure;
        },
      }),
    );
    const ended = await response.text().then(
      () => "closed normally",
      (error: unknown) => error,
    );
    await settle();
    expect(unhandled).toEqual([]);
    expect(ended).toBe(failure);
  });

  test("the event an async onError resolves with is written before the body closes, as a returned one is", async () => {
    const resolved = eventSourceResponse(
      failing(),
      responseInit({ onError: async () => ({ event: "failed", data: "sorry" }) }),
    );
    expect(parseWire(await resolved.text()).events).toEqual([{ event: "failed", data: "sorry" }]);
    const nothing = eventSourceResponse(failing(), responseInit({ onError: async () => {} }));
    expect(await nothing.text()).toBe(":\n\n");
  });

  test("an async onHistoryLost that rejects is reported with console.error, then the client gets live events, and nothing is unhandled", async () => {
    const errors = vi.spyOn(console, "error").mockImplementation(() => {});
    const failure = new Error("no state to reload");
    const channel = new EventChannel(
      channelOptions({
        onHistoryLost: async () => {
          throw failure;
        },
      }),
    );
    const response = channel.response(resuming("1"));
    channel.emit(logEvent(2));
    await settle();
    channel.emit(logEvent(3));
    channel.close();
    const events = await eventsOf(response);
    await settle();
    expect(unhandled).toEqual([]);
    expect(events).toEqual([logEvent(2), logEvent(3)]);
    expect(errors).toHaveBeenCalledTimes(1);
    expect(errors.mock.calls[0]?.[0]).toMatch(/^EventChannel: onHistoryLost failed: Error: no state to reload \(at /);
  });

  test.each<[string, Record<string, unknown>]>([
    ["a channel without a history", {}],
    ["a log that does not hold the id", { history: { after: () => null } }],
    ["a replay ring that does not hold the id", { replay: 5 }],
  ])(
    "%s: the event an async onHistoryLost resolves with comes first, and live events wait behind it",
    async (_case, options) => {
      vi.spyOn(console, "error").mockImplementation(() => {});
      const channel = new EventChannel(
        channelOptions({ ...options, onHistoryLost: async (id: string) => ({ event: "reset", data: id }) }),
      );
      const response = channel.response(resuming("1"));
      channel.emit(logEvent(2)); // before onHistoryLost has answered
      await settle();
      channel.emit(logEvent(3));
      channel.close();
      expect(await eventsOf(response)).toEqual([{ event: "reset", data: "1" }, logEvent(2), logEvent(3)]);
    },
  );

  test("a serialize that returns a promise is a TypeError naming serialize, and a rejected one is never unhandled", async () => {
    const late = () => Promise.reject(new Error("serialized too late"));
    const early = async () => "text";
    const failures: unknown[] = [];
    const collect = (run: () => unknown): void => {
      try {
        run();
        failures.push("no error");
      } catch (error) {
        failures.push(error);
      }
    };
    for (const serialize of [late, early]) {
      collect(() => encodeEvent({ data: 1 }, { serialize: serialize as never }));
      const channel = new EventChannel({ serialize: serialize as never });
      collect(() => channel.emit({ data: 1 }));
      channel.close();
      const onError = vi.fn();
      await eventSourceResponse([{ data: 1 }], { serialize: serialize as never, onError }).text();
      expect(onError).toHaveBeenCalledTimes(1);
      failures.push(onError.mock.calls[0]?.[0]);
      const encoded = new Response(
        new ReadableStream({
          start(controller) {
            controller.enqueue({ data: 1 });
            controller.close();
          },
        }).pipeThrough(new EventSourceEncoderStream({ serialize: serialize as never })),
      ).text();
      failures.push(
        await encoded.then(
          () => "no error",
          (error: unknown) => error,
        ),
      );
    }
    await settle();
    expect(unhandled).toEqual([]);
    expect(failures).toHaveLength(8);
    // The wording is free; what is pinned: a TypeError that names serialize and says it returned a promise.
    for (const failure of failures) {
      expect(failure).toBeInstanceOf(TypeError);
      expect((failure as TypeError).message).toMatch(/serialize/);
      expect((failure as TypeError).message).toMatch(/promise|thenable/i);
    }
  });
});

describe("history.after is bounded: historyTimeout", () => {
  test("an after that never settles fails after 10 s by default: its signal aborts, and the client gets onHistoryLost, then live events", async () => {
    vi.useFakeTimers();
    vi.spyOn(console, "error").mockImplementation(() => {});
    const { history, calls } = controlledHistory();
    const channel = new EventChannel({ history, onHistoryLost: (id) => ({ event: "reset", data: id }) });
    const response = channel.response(resuming("1"), { keepAlive: false });
    channel.emit(logEvent(2));
    await vi.advanceTimersByTimeAsync(9_999);
    expect(calls[0]?.signal.aborted).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    expect(calls[0]?.signal.aborted).toBe(true);
    channel.emit(logEvent(3));
    channel.close();
    expect(await eventsOf(response)).toEqual([{ event: "reset", data: "1" }, logEvent(2), logEvent(3)]);
  });

  test("historyTimeout sets the bound: a whole number of ms from 1 to 2147483647, and anything else is a TypeError", async () => {
    vi.useFakeTimers();
    vi.spyOn(console, "error").mockImplementation(() => {});
    const { history, calls } = controlledHistory();
    const channel = new EventChannel(
      channelOptions({ history, historyTimeout: 50, onHistoryLost: () => ({ event: "reset" }) }),
    );
    const response = channel.response(resuming("1"), { keepAlive: false });
    await vi.advanceTimersByTimeAsync(49);
    expect(calls[0]?.signal.aborted).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    expect(calls[0]?.signal.aborted).toBe(true);
    channel.emit(logEvent(2));
    channel.close();
    expect(await eventsOf(response)).toEqual([{ event: "reset", data: "" }, logEvent(2)]);
    for (const historyTimeout of [1, 2_147_483_647]) {
      expect(() => new EventChannel(channelOptions({ history, historyTimeout })).close()).not.toThrow();
    }
    const invalid = [0, -1, 1.5, 2 ** 31, Number.NaN, "50", false];
    expect(invalid).toHaveLength(7);
    for (const historyTimeout of invalid) {
      expect(() => new EventChannel(channelOptions({ history, historyTimeout }))).toThrowError(
        expect.objectContaining({ name: "TypeError", message: expect.stringContaining("historyTimeout") }),
      );
    }
  });

  test("each wait for the log's next event is bounded too: the replay so far stays, then onHistoryLost, and the log's iterator is returned", async () => {
    vi.useFakeTimers();
    vi.spyOn(console, "error").mockImplementation(() => {});
    let returned = false;
    const stalls: AsyncIterable<{ id: string; data: string }> = {
      [Symbol.asyncIterator]: () => {
        let sent = false;
        return {
          next: () => {
            if (sent) return new Promise(() => {});
            sent = true;
            return Promise.resolve({ done: false, value: logEvent(2) });
          },
          return: async () => {
            returned = true;
            return { done: true, value: undefined };
          },
        };
      },
    };
    const channel = new EventChannel({ history: { after: () => stalls }, onHistoryLost: () => ({ event: "reset" }) });
    const response = channel.response(resuming("1"), { keepAlive: false });
    await vi.advanceTimersByTimeAsync(0);
    channel.emit(logEvent(3)); // held while the log stalls
    await vi.advanceTimersByTimeAsync(10_000);
    expect(returned).toBe(true);
    channel.emit(logEvent(4));
    channel.close();
    expect(await eventsOf(response)).toEqual([logEvent(2), { event: "reset", data: "" }, logEvent(3), logEvent(4)]);
  });

  test("an async onHistoryLost that never settles holds live events for 10 s at most", async () => {
    vi.useFakeTimers();
    vi.spyOn(console, "error").mockImplementation(() => {});
    const channel = new EventChannel(channelOptions({ onHistoryLost: () => new Promise(() => {}) }));
    const reader = readerOf(channel.response(resuming("1"), { keepAlive: false }));
    expect(await nextText(reader)).toBe(":\n\n");
    channel.emit(logEvent(2));
    let next: string | undefined;
    const arrived = nextText(reader).then((text) => {
      next = text;
    });
    await vi.advanceTimersByTimeAsync(9_999);
    expect(next).toBeUndefined();
    await vi.advanceTimersByTimeAsync(1);
    await arrived;
    expect(parseWire(next ?? "").events).toEqual([logEvent(2)]);
    channel.close();
  });
});

describe("the duplicate filter ends with the replay", () => {
  test("a live event that reuses a replayed id is delivered once the live feed has passed the last replayed id", async () => {
    // The log is ahead of this instance's feed at the moment of subscribing: 2 and 3 went out on the feed before
    // response() was called, so they never come live again. 4 comes live, which is past everything replayed, and
    // a later event that uses id 2 again is a new event.
    const channel = new EventChannel({ history: { after: () => [logEvent(2), logEvent(3)] } });
    channel.emit(logEvent(2));
    channel.emit(logEvent(3));
    const response = channel.response(resuming("1"));
    await settle();
    channel.emit(logEvent(4));
    channel.emit({ id: "2", data: "id 2, used again" });
    channel.close();
    expect(await eventsOf(response)).toEqual([
      logEvent(2),
      logEvent(3),
      logEvent(4),
      { id: "2", data: "id 2, used again" },
    ]);
  });
});

describe("a late answer from the log is closed", () => {
  test.each(closableAnswers)("%s that after resolves with once its client has left is closed", async (_kind, make) => {
    const { history, calls } = controlledHistory();
    const channel = new EventChannel({ history });
    const reader = readerOf(channel.response(resuming("1")));
    expect(await nextText(reader)).toBe(":\n\n");
    await reader.cancel();
    expect(calls[0]?.signal.aborted).toBe(true);
    const late = make();
    calls[0]?.answer(late.answer);
    await settle();
    expect(late.closed()).toBe(true);
    channel.close();
  });

  test.each(closableAnswers)("%s that after resolves with once it has timed out is closed", async (_kind, make) => {
    vi.useFakeTimers();
    vi.spyOn(console, "error").mockImplementation(() => {});
    const { history, calls } = controlledHistory();
    const channel = new EventChannel({ history, onHistoryLost: () => ({ event: "reset" }) });
    const response = channel.response(resuming("1"), { keepAlive: false });
    await vi.advanceTimersByTimeAsync(10_000);
    const late = make();
    calls[0]?.answer(late.answer);
    await vi.advanceTimersByTimeAsync(0);
    expect(late.closed()).toBe(true);
    channel.emit(logEvent(2));
    channel.close();
    expect(await eventsOf(response)).toEqual([{ event: "reset", data: "" }, logEvent(2)]);
  });
});

describe("ids a client could not send back unchanged", () => {
  // Leading or trailing spaces and tabs are trimmed from a Last-Event-ID header by HTTP; a lone surrogate cannot be
  // encoded as UTF-8. The TypeError's wording is free: only its class is pinned.
  const unreturnable = [" 1", "1 ", "\t1", "1\t", "\uD800", "a\uDC00b"];

  test.each(unreturnable)(
    "emit rejects the id %j with a TypeError and sends nothing, while encodeEvent and eventSourceResponse still write it",
    async (id) => {
      const channel = new EventChannel();
      const response = channel.response();
      expect(() => channel.emit({ id, data: "x" })).toThrowError(TypeError);
      // "" resets the client's id, and an id with spaces inside comes back as it is: both stay allowed.
      channel.emit({ id: "", data: "reset" });
      channel.emit({ id: "a b", data: "inner space" });
      channel.close();
      expect(await eventsOf(response)).toEqual([
        { id: "", data: "reset" },
        { id: "a b", data: "inner space" },
      ]);
      expect(encodeEvent({ id, data: "x" })).toBe(`id: ${id}\ndata: x\n\n`);
      const written = await readAll(readerOf(eventSourceResponse([{ id, data: "x" }])));
      expect(written).toBe(`:\n\nid: ${new TextDecoder().decode(new TextEncoder().encode(id))}\ndata: x\n\n`);
    },
  );

  test("close(last) with such an id is a TypeError, and nothing is closed", async () => {
    const channel = new EventChannel();
    const response = channel.response();
    expect(() => channel.close({ id: " 9", comment: "restarting" })).toThrowError(TypeError);
    expect(channel.subscribers).toBe(1);
    channel.emit("still open");
    channel.close();
    expect(await eventsOf(response)).toEqual([{ data: "still open" }]);
  });

  test("an onHistoryLost event with such an id is invalid: reported, then the client gets live events", async () => {
    const errors = vi.spyOn(console, "error").mockImplementation(() => {});
    const channel = new EventChannel({ onHistoryLost: () => ({ event: "reset", id: "7 " }) });
    const response = channel.response(resuming("1"));
    channel.emit(logEvent(2));
    await settle();
    channel.close();
    expect(await eventsOf(response)).toEqual([logEvent(2)]);
    expect(errors).toHaveBeenCalledTimes(1);
    expect(errors.mock.calls[0]?.[0]).toMatch(/^EventChannel: onHistoryLost: TypeError: /);
  });
});
