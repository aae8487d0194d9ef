import { EventChannel, type EventHistory, type EventStreamLike } from "eventsource-server";
import fc from "fast-check";
import { afterEach, describe, expect, test, vi } from "vitest";
import { deferred, nextText, type ParsedEvent, parseWire, readAll, readerOf, settle, streamOf } from "./helpers.ts";

afterEach(() => {
  vi.useRealTimers();
});

const url = "http://localhost/events";

function resuming(lastEventId: string | undefined): Request {
  return new Request(url, lastEventId === undefined ? {} : { headers: { "last-event-id": lastEventId } });
}

async function eventsOf(response: Response): Promise<ParsedEvent[]> {
  return parseWire(await readAll(readerOf(response))).events;
}

/** Event n of a log whose ids are "1", "2", …: what the channel emits and what the history returns. */
const logEvent = (n: number) => ({ id: String(n), data: `event ${n}` });
const logEvents = (from: number, to: number) => {
  const events: { id: string; data: string }[] = [];
  for (let n = from; n <= to; n++) events.push(logEvent(n));
  return events;
};

/** A history whose `after` answers when the test says so, and records how it was called. */
function controlledHistory() {
  const calls: { lastEventId: string; signal: AbortSignal; answer: (events: EventStreamLike | null) => void }[] = [];
  const history: EventHistory = {
    after(lastEventId, { signal }) {
      const answer = deferred<EventStreamLike | null>();
      calls.push({ lastEventId, signal, answer: answer.resolve });
      return answer.promise;
    },
  };
  return { history, calls };
}

describe("EventChannel history: the memory ring (replay)", () => {
  test("an id the ring no longer holds gets the onHistoryLost event, then live events only", async () => {
    const onHistoryLost = vi.fn((id: string) => ({ event: "reset", data: `lost after ${id}` }));
    const channel = new EventChannel({ replay: 3, onHistoryLost });
    for (let n = 1; n <= 6; n++) channel.emit(logEvent(n));
    const response = channel.response(resuming("2"));
    channel.emit(logEvent(7));
    channel.close();
    expect(onHistoryLost).toHaveBeenCalledExactlyOnceWith("2");
    expect(await eventsOf(response)).toEqual([{ event: "reset", data: "lost after 2" }, logEvent(7)]);
  });

  test("an id the ring holds never calls onHistoryLost", async () => {
    const onHistoryLost = vi.fn(() => ({ event: "reset" }));
    const channel = new EventChannel({ replay: 3, onHistoryLost });
    for (let n = 1; n <= 3; n++) channel.emit(logEvent(n));
    const response = channel.response(resuming("2"));
    channel.close();
    expect(await eventsOf(response)).toEqual([logEvent(3)]);
    expect(onHistoryLost).not.toHaveBeenCalled();
  });

  test("onHistoryLost that returns nothing leaves the client with live events only", async () => {
    const channel = new EventChannel({ replay: 2, onHistoryLost: () => {} });
    for (let n = 1; n <= 4; n++) channel.emit(logEvent(n));
    const response = channel.response(resuming("1"));
    channel.emit(logEvent(5));
    channel.close();
    expect(await eventsOf(response)).toEqual([logEvent(5)]);
  });

  test("a channel with no history calls onHistoryLost for every resuming client, and never for a new one", async () => {
    const onHistoryLost = vi.fn(() => "reload");
    const channel = new EventChannel({ onHistoryLost });
    const resumed = channel.response(resuming("9"));
    const fresh = channel.response(resuming(undefined));
    channel.emit(logEvent(10));
    channel.close();
    expect(await eventsOf(resumed)).toEqual([{ data: "reload" }, logEvent(10)]);
    expect(await eventsOf(fresh)).toEqual([logEvent(10)]);
    expect(onHistoryLost).toHaveBeenCalledTimes(1);
  });

  test("the ring keeps each event in bytes of its own, so a kept event does not keep a shared slab alive", async () => {
    const channel = new EventChannel({ replay: 10 });
    for (let n = 1; n <= 4; n++) channel.emit(logEvent(n));
    const reader = readerOf(channel.response(resuming("1")));
    const chunks: Uint8Array[] = [];
    for (let n = 0; n < 4; n++) chunks.push((await reader.read()).value as Uint8Array);
    const replayed = chunks.slice(1);
    expect(replayed.map((chunk) => chunk.byteLength === chunk.buffer.byteLength)).toEqual([true, true, true]);
    expect(new TextDecoder().decode(replayed[0])).toBe("id: 2\ndata: event 2\n\n");
    channel.close();
  });

  test("an onHistoryLost that throws or returns an invalid event is reported, and the client gets live events", async () => {
    const errors = vi.spyOn(console, "error").mockImplementation(() => {});
    const failure = new Error("no state to reload");
    const throwing = new EventChannel({
      onHistoryLost: () => {
        throw failure;
      },
    });
    const invalid = new EventChannel({ onHistoryLost: () => ({ event: "a\nb" }) });
    const responses = [throwing.response(resuming("1")), invalid.response(resuming("1"))];
    for (const channel of [throwing, invalid]) {
      channel.emit(logEvent(2));
      channel.close();
    }
    for (const response of responses) expect(await eventsOf(response)).toEqual([logEvent(2)]);
    expect(errors).toHaveBeenCalledTimes(2);
    // One line each: what failed, the error, and where it was thrown.
    expect(errors.mock.calls[0]?.[0]).toMatch(/^EventChannel: onHistoryLost failed: Error: no state to reload \(at /);
    expect(errors.mock.calls[1]?.[0]).toMatch(
      /^EventChannel: onHistoryLost: TypeError: EventChannel: onHistoryLost: input\.event must not contain CR or LF, got "a\\nb" \(at /,
    );
  });
});

describe("EventChannel history: a shared log (history)", () => {
  test("after is called once per resuming client, right when response() is called, and never without an id", () => {
    const { history, calls } = controlledHistory();
    const channel = new EventChannel({ history });
    channel.response(resuming(undefined));
    expect(calls).toHaveLength(0);
    channel.response(resuming("41"));
    expect(calls.map((call) => call.lastEventId)).toEqual(["41"]);
    channel.response(new Request(`${url}?lastEventId=7`));
    expect(calls.map((call) => call.lastEventId)).toEqual(["41", "7"]);
    channel.close();
  });

  test("the log's events come first, in order, then the live ones, and the client counts as a subscriber meanwhile", async () => {
    const { history, calls } = controlledHistory();
    const channel = new EventChannel({ history });
    const response = channel.response(resuming("2"));
    expect(channel.subscribers).toBe(1);
    channel.emit(logEvent(6));
    calls[0]?.answer(logEvents(3, 5));
    await settle();
    channel.emit(logEvent(7));
    channel.close();
    expect(await eventsOf(response)).toEqual(logEvents(3, 7));
  });

  test("live events held while after runs are written once, whether the log is behind or ahead of the feed", async () => {
    const { history, calls } = controlledHistory();
    const channel = new EventChannel({ history });
    const behind = channel.response(resuming("2"));
    const ahead = channel.response(resuming("2"));
    for (let n = 3; n <= 6; n++) channel.emit(logEvent(n));
    // One log answered before the feed got past 4; the other had 3 to 9 when the feed was only at 6.
    calls[0]?.answer(logEvents(3, 4));
    calls[1]?.answer(logEvents(3, 9));
    await settle();
    for (let n = 7; n <= 10; n++) channel.emit(logEvent(n));
    channel.close();
    expect(await eventsOf(behind)).toEqual(logEvents(3, 10));
    expect(await eventsOf(ahead)).toEqual(logEvents(3, 10));
  });

  test("a client whose id this instance's feed has not reached yet gets everything after it once", async () => {
    // The instance restarted at 5 while the client had seen 8: the log waits for the feed to reach 8 (as the
    // contract requires of it), so the client's own id shows up among the held events.
    const { history, calls } = controlledHistory();
    const channel = new EventChannel({ history });
    const response = channel.response(resuming("8"));
    for (let n = 6; n <= 9; n++) channel.emit(logEvent(n));
    calls[0]?.answer(logEvents(9, 11));
    await settle();
    for (let n = 10; n <= 12; n++) channel.emit(logEvent(n));
    channel.close();
    expect(await eventsOf(response)).toEqual(logEvents(9, 12));
  });

  test("replayed events are encoded with the channel's serialize", async () => {
    const channel = new EventChannel({
      history: { after: () => [{ id: "2", data: { n: 2 } }] },
      serialize: (data) => `<${JSON.stringify(data)}>`,
    });
    const response = channel.response(resuming("1"));
    await settle();
    channel.close();
    expect(await eventsOf(response)).toEqual([{ id: "2", data: '<{"n":2}>' }]);
  });

  test("after may answer with an async iterable, an iterable or a ReadableStream, or synchronously", async () => {
    const answers: (() => EventStreamLike)[] = [
      () =>
        (async function* () {
          yield logEvent(2);
          yield logEvent(3);
        })(),
      () => new Set([logEvent(2), logEvent(3)]),
      () => streamOf([logEvent(2), logEvent(3)]),
    ];
    for (const answer of answers) {
      const channel = new EventChannel({ history: { after: () => Promise.resolve(answer()) } });
      const sync = new EventChannel({ history: { after: answer } });
      const responses = [channel.response(resuming("1")), sync.response(resuming("1"))];
      await settle();
      for (const c of [channel, sync]) {
        c.emit(logEvent(4));
        c.close();
      }
      for (const response of responses) expect(await eventsOf(response)).toEqual(logEvents(2, 4));
    }
  });

  test("null: the onHistoryLost event first, then the held events after the client's id, then live ones", async () => {
    const { history, calls } = controlledHistory();
    const channel = new EventChannel({ history, onHistoryLost: (id) => ({ event: "reset", data: id }) });
    const response = channel.response(resuming("4"));
    for (let n = 3; n <= 6; n++) channel.emit(logEvent(n));
    calls[0]?.answer(null);
    await settle();
    channel.emit(logEvent(7));
    channel.close();
    expect(await eventsOf(response)).toEqual([{ event: "reset", data: "4" }, ...logEvents(5, 7)]);
  });

  test("null without onHistoryLost: live events only", async () => {
    const { history, calls } = controlledHistory();
    const channel = new EventChannel({ history });
    const response = channel.response(resuming("old"));
    channel.emit(logEvent(1));
    calls[0]?.answer(null);
    await settle();
    channel.emit(logEvent(2));
    channel.close();
    expect(await eventsOf(response)).toEqual(logEvents(1, 2));
  });

  test.each<[string, (id: string) => EventStreamLike | null | Promise<EventStreamLike | null>]>([
    [
      "after throws",
      () => {
        throw new Error("log down");
      },
    ],
    ["after rejects", () => Promise.reject(new Error("log down"))],
    [
      "the log's events fail after two",
      () =>
        (async function* () {
          yield logEvent(3);
          yield logEvent(4);
          throw new Error("log down");
        })(),
    ],
    ["the log holds an invalid event after two", () => [logEvent(3), logEvent(4), { id: "a\nb" }]],
  ])(
    "%s: reported, what was replayed stays, then the onHistoryLost event and the live events after it",
    async (_case, after) => {
      const errors = vi.spyOn(console, "error").mockImplementation(() => {});
      const channel = new EventChannel({ history: { after }, onHistoryLost: () => ({ event: "reset" }) });
      const response = channel.response(resuming("2"));
      for (let n = 3; n <= 5; n++) channel.emit(logEvent(n));
      await settle();
      channel.emit(logEvent(6));
      channel.close();
      const events = await eventsOf(response);
      const replayed = events.findIndex((event) => event.event === "reset");
      expect(replayed).toBeGreaterThanOrEqual(0);
      // Before the reset: the replay up to the failure. After it: every live event after the last id replayed.
      expect([...events.slice(0, replayed), ...events.slice(replayed + 1)]).toEqual(logEvents(3, 6));
      expect(errors).toHaveBeenCalledTimes(1);
    },
  );

  test("a client that leaves before its replay is written aborts after's signal and stops reading the log", async () => {
    const stopped = deferred();
    const { history, calls } = controlledHistory();
    const channel = new EventChannel({ history });
    const reader = readerOf(channel.response(resuming("1")));
    expect(await nextText(reader)).toBe(":\n\n");
    const signal = calls[0]?.signal;
    expect(signal?.aborted).toBe(false);
    let yielded = 0;
    calls[0]?.answer(
      (async function* () {
        try {
          for (let n = 2; ; n++) {
            yielded++;
            yield logEvent(n);
            await new Promise((resolve) => setTimeout(resolve, 1));
          }
        } finally {
          stopped.resolve();
        }
      })(),
    );
    expect(await nextText(reader)).toBe("id: 2\ndata: event 2\n\n");
    await reader.cancel();
    expect(signal?.aborted).toBe(true);
    expect(channel.subscribers).toBe(0);
    await stopped.promise;
    expect(yielded).toBeLessThan(5);
    channel.close();
  });

  test("after's signal does not abort once the replay has been written", async () => {
    const { history, calls } = controlledHistory();
    const channel = new EventChannel({ history });
    const reader = readerOf(channel.response(resuming("1")));
    calls[0]?.answer([logEvent(2)]);
    await settle();
    await reader.cancel();
    expect(calls[0]?.signal.aborted).toBe(false);
  });

  test("replayed bytes are not held to maxBufferedBytes", async () => {
    vi.useFakeTimers();
    // 20 replayed events of about 1 KB against a cap of 100 bytes.
    const big = (n: number) => ({ id: String(n), data: "x".repeat(1_000) });
    const channel = new EventChannel({
      history: { after: () => Array.from({ length: 20 }, (_, n) => big(n + 2)) },
      maxBufferedBytes: 100,
    });
    const response = channel.response(resuming("1"), { keepAlive: false });
    await vi.advanceTimersByTimeAsync(0);
    for (let second = 0; second < 3; second++) {
      await vi.advanceTimersByTimeAsync(1_000);
      channel.emit(logEvent(22 + second));
    }
    expect(channel.subscribers).toBe(1);
    channel.close();
    const events = await eventsOf(response);
    expect(events).toHaveLength(23);
    expect(events.map((event) => event.id)).toEqual(Array.from({ length: 23 }, (_, n) => String(n + 2)));
  });

  test("close(last) during a replay stops it and writes last", async () => {
    const { history, calls } = controlledHistory();
    const channel = new EventChannel({ history });
    const response = channel.response(resuming("1"));
    channel.emit(logEvent(3));
    channel.close({ comment: "restarting", retry: 5_000 });
    expect(calls[0]?.signal.aborted).toBe(true);
    expect(await response.text()).toBe(":\n\n:restarting\nretry: 5000\n\n");
  });
});

describe("EventChannel history: the seam, under any interleaving", () => {
  test("every resuming client gets every event after its id exactly once, in log order", async () => {
    // A log of n events with ids "1".."n". The feed emits them in order. A client resumes after id k at feed
    // position f0; the log answers `after(k)` when the feed is at `answerAt` (never before k: the contract's one
    // condition), with what it held at some point `head` (log behind the feed: head < answerAt; ahead: above it),
    // yielding its events with pauses while the feed goes on.
    const stats = { clients: 0, ahead: 0, behind: 0, feedBehindClient: 0 };
    const scenario = fc
      .record({
        n: fc.integer({ min: 2, max: 25 }),
        f0: fc.nat(),
        k: fc.nat(),
        answerAt: fc.nat(),
        head: fc.nat(),
        pauses: fc.array(fc.nat({ max: 3 }), { maxLength: 60 }),
        asStream: fc.boolean(),
      })
      .map(({ n, f0, k, answerAt, head, ...rest }) => {
        const from = f0 % (n + 1);
        const id = 1 + (k % n);
        const earliest = Math.max(from, id);
        const at = earliest + (answerAt % (n - earliest + 1));
        return { n, f0: from, k: id, answerAt: at, head: earliest + (head % (n - earliest + 1)), ...rest };
      });
    await fc.assert(
      fc.asyncProperty(scenario, async ({ n, f0, k, answerAt, head, pauses, asStream }) => {
        const pause = async () => {
          for (let i = pauses.shift() ?? 0; i > 0; i--) await Promise.resolve();
        };
        const answered = deferred<void>();
        const history: EventHistory = {
          async after(lastEventId) {
            await answered.promise;
            const events = logEvents(Number(lastEventId) + 1, head);
            if (asStream) return events;
            return (async function* () {
              for (const event of events) {
                await pause();
                yield event;
              }
            })();
          },
        };
        const channel = new EventChannel({ history });
        let position = 0;
        const feed = () => channel.emit(logEvent(++position));
        while (position < f0) feed();
        if (position >= answerAt) answered.resolve();
        const response = channel.response(resuming(String(k)));
        while (position < n) {
          feed();
          if (position === answerAt) answered.resolve();
          await pause();
        }
        await settle(3);
        channel.close();
        expect(await eventsOf(response)).toEqual(logEvents(k + 1, n));
        stats.clients++;
        if (head > answerAt) stats.ahead++;
        if (head < answerAt) stats.behind++;
        if (k > f0) stats.feedBehindClient++;
      }),
      { numRuns: 300 },
    );
    expect(stats.clients).toBe(300);
    expect(stats.ahead).toBeGreaterThan(30);
    expect(stats.behind).toBeGreaterThan(30);
    expect(stats.feedBehindClient).toBeGreaterThan(30);
  });

  test("clients that leave mid-replay leave nothing running and disturb no one", async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 0, max: 12 }), fc.integer({ min: 0, max: 12 }), async (leaveAfter, n) => {
        const finished = deferred();
        const history: EventHistory = {
          after: (lastEventId, { signal }) =>
            (async function* () {
              try {
                for (let id = Number(lastEventId) + 1; id <= n && !signal.aborted; id++) {
                  await Promise.resolve();
                  yield logEvent(id);
                }
              } finally {
                finished.resolve();
              }
            })(),
        };
        const channel = new EventChannel({ history });
        const leaving = readerOf(channel.response(resuming("0")));
        const staying = channel.response(resuming("0"));
        await nextText(leaving);
        // One chunk per replayed event: at most n can be read before the live feed starts.
        for (let read = 0; read < Math.min(leaveAfter, n); read++) await nextText(leaving);
        await leaving.cancel();
        expect(channel.subscribers).toBe(1);
        await finished.promise;
        channel.emit(logEvent(n + 1));
        await settle(2);
        channel.close();
        expect(await eventsOf(staying)).toEqual(logEvents(1, n + 1));
      }),
      { numRuns: 100 },
    );
  });
});
