import {
  EventChannel,
  EventSourceEncoderStream,
  type EventSourceResponseInit,
  eventSourceResponse,
} from "eventsource-server";
import { afterEach, describe, expect, test, vi } from "vitest";
// Internal: the schedule's own isolation has no public observable but a tampered signal (see the test using it).
import { deadline, silenceTimer } from "../src/keep-alive.ts";
import { nextText, parseWire, readAll, readerOf, settle } from "./helpers.ts";

// Regression tests for issue items 10 (chunks of unrelated streams share memory), 11 (one throw stops every
// heartbeat) and 12 (one AbortSignal for many streams warns MaxListenersExceededWarning). API.md: "Every chunk
// belongs to its own stream".

afterEach(() => {
  vi.useRealTimers();
});

const url = "http://localhost/events";
const decoder = new TextDecoder();

/** Reads a body to its end and returns every chunk as it came. */
async function chunksOf(reader: ReadableStreamDefaultReader<Uint8Array>): Promise<Uint8Array[]> {
  const chunks: Uint8Array[] = [];
  for (;;) {
    const { done, value } = await reader.read();
    if (done) return chunks;
    chunks.push(value);
  }
}

/** True when the UTF-8 bytes of `text` are anywhere in the memory behind `chunk`: its whole ArrayBuffer, not its view. */
function reaches(chunk: Uint8Array, text: string): boolean {
  return Buffer.from(chunk.buffer).includes(text);
}

/** Moves an ArrayBuffer elsewhere, as `postMessage(…, [buffer])` to a worker does: it is detached here. */
function transfer(buffer: ArrayBufferLike): void {
  structuredClone(buffer, { transfer: [buffer as ArrayBuffer] });
}

describe("every chunk belongs to its own stream", () => {
  test("a response's chunks give no access to the bytes of another response's events", async () => {
    // Bob's first chunk is made before Alice's event and his event after it, so at least one of his chunks would
    // sit in the same pooled memory as her event if responses shared one.
    const bob = readerOf(eventSourceResponse(["bob"]));
    const alice = readerOf(eventSourceResponse(["alice-secret"]));
    expect(parseWire(await readAll(alice)).events).toEqual([{ data: "alice-secret" }]);
    const bobChunks = await chunksOf(bob);
    expect(bobChunks.map((chunk) => decoder.decode(chunk))).toEqual([":\n\n", "data: bob\n\n"]);
    expect(bobChunks.map((chunk) => reaches(chunk, "alice-secret"))).toEqual([false, false]);
  });

  test("transferring one response's chunk buffers leaves another response's queued chunk whole", async () => {
    const alice = readerOf(eventSourceResponse(["alice"]));
    const bob = readerOf(eventSourceResponse(["bob"]));
    // Reading Bob's first chunk makes his stream pull: his event is encoded and queued, unread.
    expect(await nextText(bob)).toBe(":\n\n");
    const aliceChunks = await chunksOf(alice);
    expect(aliceChunks).toHaveLength(2);
    // Alice hands her chunks to a worker (each buffer once: a buffer can be transferred only once).
    for (const buffer of new Set(aliceChunks.map((chunk) => chunk.buffer))) transfer(buffer);
    expect(await nextText(bob)).toBe("data: bob\n\n");
    expect((await bob.read()).done).toBe(true);
  });

  test("transferring a chunk of one channel leaves another channel's queued events whole", async () => {
    const a = new EventChannel();
    const b = new EventChannel();
    const aReader = readerOf(a.response());
    const bReader = readerOf(b.response());
    for (const reader of [aReader, bReader]) expect(await nextText(reader)).toBe(":\n\n");
    b.emit("b-1");
    a.emit("a-1");
    b.emit("b-2");
    a.close();
    b.close();
    const aChunks = await chunksOf(aReader);
    expect(aChunks.map((chunk) => decoder.decode(chunk))).toEqual(["data: a-1\n\n"]);
    for (const buffer of new Set(aChunks.map((chunk) => chunk.buffer))) transfer(buffer);
    expect(await readAll(bReader)).toBe("data: b-1\n\ndata: b-2\n\n");
  });

  test("a subscriber's chunks give no access to the bytes of another channel's events", async () => {
    const a = new EventChannel();
    const b = new EventChannel();
    const aReader = readerOf(a.response());
    const bReader = readerOf(b.response());
    a.emit("a-news-1");
    b.emit("b-secret");
    a.emit("a-news-2");
    a.close();
    b.close();
    const aChunks = await chunksOf(aReader);
    const bChunks = await chunksOf(bReader);
    expect(aChunks.map((chunk) => decoder.decode(chunk))).toEqual([
      ":\n\n",
      "data: a-news-1\n\n",
      "data: a-news-2\n\n",
    ]);
    expect(bChunks.map((chunk) => decoder.decode(chunk))).toEqual([":\n\n", "data: b-secret\n\n"]);
    expect(aChunks.map((chunk) => reaches(chunk, "b-secret"))).toEqual([false, false, false]);
    expect(bChunks.map((chunk) => reaches(chunk, "a-news"))).toEqual([false, false]);
  });

  test("what a channel writes for one client alone (first chunk, replay from a log, onHistoryLost) shares no memory with another subscriber", async () => {
    const channel = new EventChannel({
      history: { after: (id) => (id === "1" ? [{ id: "2", data: "replayed-for-resumer" }] : null) },
      onHistoryLost: (id) => ({ event: "reset", data: `lost-${id}-for-one` }),
    });
    const clients = {
      plain: readerOf(channel.response()),
      resumer: readerOf(channel.response(new Request(url, { headers: { "last-event-id": "1" } }))),
      lost: readerOf(channel.response(new Request(url, { headers: { "last-event-id": "x" } }))),
    };
    await settle(); // the log has answered both resuming clients
    const live = "id: 3\ndata: live\n\n";
    channel.emit({ id: "3", data: "live" });
    channel.close();
    const chunks = {
      plain: await chunksOf(clients.plain),
      resumer: await chunksOf(clients.resumer),
      lost: await chunksOf(clients.lost),
    };
    expect(parseWire(chunks.resumer.map((chunk) => decoder.decode(chunk)).join("")).events).toEqual([
      { id: "2", data: "replayed-for-resumer" },
      { id: "3", data: "live" },
    ]);
    expect(parseWire(chunks.lost.map((chunk) => decoder.decode(chunk)).join("")).events).toEqual([
      { event: "reset", data: "lost-x-for-one" },
      { id: "3", data: "live" },
    ]);
    // The live event's chunk is the channel's, shared by design; everything else was written for its client alone.
    const own = (name: keyof typeof chunks) => chunks[name].filter((chunk) => decoder.decode(chunk) !== live);
    const othersOf = (name: keyof typeof chunks) =>
      (Object.keys(chunks) as (keyof typeof chunks)[])
        .filter((other) => other !== name)
        .flatMap((other) => chunks[other]);
    expect([own("plain").length, own("resumer").length, own("lost").length]).toEqual([1, 2, 2]);
    const shared: string[] = [];
    for (const name of ["plain", "resumer", "lost"] as const) {
      const buffers = new Set(othersOf(name).map((chunk) => chunk.buffer));
      for (const chunk of own(name)) if (buffers.has(chunk.buffer)) shared.push(`${name}: ${decoder.decode(chunk)}`);
    }
    expect(shared).toEqual([]);
    const others = othersOf("resumer").concat(othersOf("lost"));
    expect(others.filter((chunk) => reaches(chunk, "replayed-for-resumer") && !chunks.resumer.includes(chunk))).toEqual(
      [],
    );
    expect(others.filter((chunk) => reaches(chunk, "lost-x-for-one") && !chunks.lost.includes(chunk))).toEqual([]);
  });

  test("an encoder stream's chunks give no access to the bytes of another encoder stream's events", async () => {
    const alice = new EventSourceEncoderStream();
    const bob = new EventSourceEncoderStream();
    const aliceIn = alice.writable.getWriter();
    const bobIn = bob.writable.getWriter();
    const aliceOut = alice.readable.getReader();
    const bobOut = bob.readable.getReader();
    /** Writes one event and reads its chunk, so the order of encoding is the order of these calls. */
    const encode = async (
      writer: WritableStreamDefaultWriter<string>,
      reader: ReadableStreamDefaultReader<Uint8Array>,
      text: string,
    ) => {
      const written = writer.write(text);
      const { value } = await reader.read();
      await written;
      return value as Uint8Array;
    };
    const bobChunks = [await encode(bobIn, bobOut, "bob-1")];
    const aliceChunk = await encode(aliceIn, aliceOut, "alice-secret");
    bobChunks.push(await encode(bobIn, bobOut, "bob-2"));
    expect(decoder.decode(aliceChunk)).toBe("data: alice-secret\n\n");
    expect(bobChunks.map((chunk) => decoder.decode(chunk))).toEqual(["data: bob-1\n\n", "data: bob-2\n\n"]);
    expect(bobChunks.map((chunk) => reaches(chunk, "alice-secret"))).toEqual([false, false]);
  });
});

/** `init` with `onClose`, which API.md adds to EventSourceResponseInit and today's type lacks. */
function withOnClose(
  init: EventSourceResponseInit,
  onClose: (end: { reason: string }) => void,
): EventSourceResponseInit {
  return Object.assign(init, { onClose });
}

/**
 * A real AbortSignal whose listeners cannot be removed: a stream that listens to it throws when it ends. The one
 * way found to make one stream's end throw inside the shared keep-alive schedule through the public API.
 */
function signalThatThrowsOnRemove(): AbortSignal {
  const { signal } = new AbortController();
  signal.removeEventListener = () => {
    throw new Error("removeEventListener failed");
  };
  return signal;
}

describe("the keep-alive schedule isolates its streams", () => {
  test.each(["eventSourceResponse", "channel.response"])(
    "a throw while one %s stream ends by maxDuration ends it alone, with reason error: the others keep their heartbeats and deadlines",
    async (api) => {
      vi.useFakeTimers();
      vi.spyOn(Math, "random").mockReturnValue(0); // every deadline at 0.9 × maxDuration
      vi.spyOn(console, "error").mockImplementation(() => {});
      const reasons: string[] = [];
      const init = withOnClose({ signal: signalThatThrowsOnRemove(), maxDuration: 1_000, keepAlive: false }, (end) =>
        reasons.push(end.reason),
      );
      const channel = new EventChannel();
      const failing = readerOf(
        api === "eventSourceResponse"
          ? eventSourceResponse(new ReadableStream(), init)
          : channel.response(undefined, init),
      );
      const beating = readerOf(eventSourceResponse(new ReadableStream(), { keepAlive: 1_000 }));
      const due = readerOf(channel.response(undefined, { keepAlive: false, maxDuration: 5_000 }));
      for (const reader of [failing, beating, due]) expect(await nextText(reader)).toBe(":\n\n");

      let failingEnd: string | undefined;
      const failingEnded = failing.read().then(
        ({ done }) => {
          failingEnd = done ? "closed" : "wrote more";
        },
        () => {
          failingEnd = "errored";
        },
      );
      let dueEnded = false;
      const dueEnd = due.read().then(({ done }) => {
        dueEnded = done;
      });
      let heartbeats = 0;
      const heard = (async () => {
        while (!(await beating.read()).done) heartbeats++;
      })();
      // The failing stream's deadline falls at 900 ms; the heartbeats at 1, 2, 3, 4 and 5 s; the other deadline at 4.5 s.
      const escaped = await vi.advanceTimersByTimeAsync(5_000).then(
        () => undefined,
        (error: unknown) => error,
      );
      expect(heartbeats).toBe(5);
      expect(dueEnded).toBe(true);
      expect(escaped).toBeUndefined();
      // The failing stream has ended too (closed or errored: the contract names only its reason).
      expect(["closed", "errored"]).toContain(failingEnd);
      expect(reasons).toEqual(["error"]);
      await beating.cancel();
      await Promise.all([heard, dueEnd, failingEnded]);
      channel.close();
      expect(vi.getTimerCount()).toBe(0);
    },
  );

  test("silenceTimer and deadline: a callback that throws leaves every other watch on time, and nothing escapes the timer", async () => {
    // Internal module (src/keep-alive.ts): the contract puts each stream's failure isolation in the shared
    // schedule, and no public stream makes its heartbeat itself throw.
    vi.useFakeTimers();
    vi.spyOn(console, "error").mockImplementation(() => {});
    const start = Date.now();
    const beats: number[] = [];
    let dueAt: number | undefined;
    const throwing = silenceTimer(1_000, () => {
      throw new Error("heartbeat failed");
    });
    const steady = silenceTimer(1_000, () => beats.push(Date.now() - start));
    const stopBroken = deadline(500, () => {
      throw new Error("deadline failed");
    });
    const stopDue = deadline(2_500, () => {
      dueAt = Date.now() - start;
    });
    const escaped = await vi.advanceTimersByTimeAsync(3_000).then(
      () => undefined,
      (error: unknown) => error,
    );
    expect(beats).toEqual([1_000, 2_000, 3_000]);
    expect(dueAt).toBe(2_500);
    expect(escaped).toBeUndefined();
    throwing.stop();
    steady.stop();
    stopBroken();
    stopDue();
    expect(vi.getTimerCount()).toBe(0);
  });
});

describe("one AbortSignal for many streams", () => {
  test.each(["eventSourceResponse", "channel.response"])(
    "%s: one signal shared by 50 streams prints no MaxListenersExceededWarning, and its abort closes every body",
    async (api) => {
      const warnings: Error[] = [];
      const onWarning = (warning: Error) => warnings.push(warning);
      process.on("warning", onWarning);
      try {
        const controller = new AbortController();
        const init = { signal: controller.signal, keepAlive: false } as const;
        const channel = new EventChannel();
        const readers = Array.from({ length: 50 }, () =>
          readerOf(
            api === "eventSourceResponse"
              ? eventSourceResponse(new ReadableStream(), init)
              : channel.response(undefined, init),
          ),
        );
        const firsts = await Promise.all(readers.map((reader) => nextText(reader)));
        expect(firsts).toEqual(Array.from({ length: 50 }, () => ":\n\n"));
        controller.abort();
        const rests = await Promise.all(readers.map((reader) => readAll(reader)));
        expect(rests).toEqual(Array.from({ length: 50 }, () => ""));
        expect(channel.subscribers).toBe(0);
        await settle(); // process 'warning' is emitted on a later tick
        expect(warnings.filter((warning) => warning.name === "MaxListenersExceededWarning").map(String)).toEqual([]);
        channel.close();
      } finally {
        process.off("warning", onWarning);
      }
    },
  );
});

// Last in this file: before the rebuild the heartbeat was one process-wide chunk, and this test detached it.
describe("heartbeats", () => {
  test("transferring a heartbeat of one channel leaves another channel's heartbeats whole", async () => {
    vi.useFakeTimers();
    const a = new EventChannel();
    const b = new EventChannel();
    const aReader = readerOf(a.response(undefined, { keepAlive: 1_000 }));
    const bReader = readerOf(b.response(undefined, { keepAlive: 1_000 }));
    for (const reader of [aReader, bReader]) expect(await nextText(reader)).toBe(":\n\n");
    const aBeat = aReader.read();
    const bBeat = bReader.read();
    await vi.advanceTimersByTimeAsync(1_000);
    const aChunk = (await aBeat).value as Uint8Array;
    expect(decoder.decode(aChunk)).toBe(":\n\n");
    transfer(aChunk.buffer);
    expect(decoder.decode((await bBeat).value)).toBe(":\n\n");
    const bNext = bReader.read();
    await vi.advanceTimersByTimeAsync(1_000);
    expect(decoder.decode((await bNext).value)).toBe(":\n\n");
    // Cancelled rather than closed: a closed stream's unread heartbeat would wait 5 s for its client.
    await Promise.all([aReader.cancel(), bReader.cancel()]);
    a.close();
    b.close();
    expect(vi.getTimerCount()).toBe(0);
  });
});
