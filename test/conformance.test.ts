/**
 * The rules of WHATWG HTML §9.2 "Server-sent events" that this library relies on, one test each, named after
 * the rule and checked on our encoder's output with eventsource-parser, an independent parser that follows
 * the spec's "interpreting an event stream" algorithm. One rule (the last event ID of a data-less event) is
 * past what eventsource-parser reports, so it is checked with undici's EventSource, a real client.
 *
 * @see https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation
 */
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { EventSourceEncoderStream, encodeEvent, type ServerSentEvent } from "eventsource-server";
import fc from "fast-check";
import { EventSource } from "undici";
import { describe, expect, test } from "vitest";
import { deferred, parseWire } from "./helpers.ts";

const NUM_RUNS = 10_000;

const text = fc.string({
  unit: fc.oneof(
    { weight: 4, arbitrary: fc.constantFrom("a", " ", ":", "\0", "\r", "\n", "\r\n", "é", "😀", "\uFEFF", "data: x") },
    { weight: 1, arbitrary: fc.string({ unit: "binary", minLength: 1, maxLength: 1 }) },
  ),
  maxLength: 10,
});

const anyEvent: fc.Arbitrary<ServerSentEvent> = fc.record(
  {
    comment: text,
    event: text,
    id: fc.oneof(text, fc.double()),
    retry: fc.oneof(fc.maxSafeNat(), fc.double()),
    data: fc.oneof(text, fc.jsonValue()),
  },
  { requiredKeys: [] },
);

/** The wire text of `input`, or null when the encoder refuses it (the encode tests check which it refuses). */
function encodedOrNull(input: ServerSentEvent): string | null {
  try {
    return encodeEvent(input);
  } catch (error) {
    if (error instanceof TypeError) return null;
    throw error;
  }
}

describe("WHATWG HTML §9.2 event stream rules, on our encoder's output", () => {
  test("a line ends with CRLF, LF or CR, so the encoder ends every line with a single LF and writes no CR at all", () => {
    let checked = 0;
    fc.assert(
      fc.property(anyEvent, (input) => {
        const wire = encodedOrNull(input);
        if (wire === null) return;
        checked++;
        expect(wire).not.toContain("\r");
        expect(wire.endsWith("\n")).toBe(true);
        // Every line is a field we mean to write, a comment, or the final blank line: nothing else is.
        for (const line of wire.slice(0, -1).split("\n")) expect(line).toMatch(/^(?:(?:event|data|id|retry): |:|$)/);
      }),
      { numRuns: NUM_RUNS },
    );
    expect(checked).toBeGreaterThan(NUM_RUNS / 10);
  });

  test("one space after the colon is removed from a value, so every leading space of a value survives", () => {
    const wire = encodeEvent({ event: " spaced", id: "  7", data: "   three\n two" });
    expect(parseWire(wire).events).toEqual([{ event: " spaced", id: "  7", data: "   three\n two" }]);
  });

  test("a field name ends at the first colon, so colons inside values are kept", () => {
    const wire = encodeEvent({ event: "a:b", id: "1:2", data: "data: x\n:y" });
    expect(parseWire(wire)).toEqual({
      events: [{ event: "a:b", id: "1:2", data: "data: x\n:y" }],
      retries: [],
      comments: [],
    });
  });

  test("data lines are appended to the data buffer joined by LF, and only the final LF is removed", () => {
    expect(parseWire(encodeEvent("a\nb\nc")).events).toEqual([{ data: "a\nb\nc" }]);
    expect(parseWire(encodeEvent("trailing\n")).events).toEqual([{ data: "trailing\n" }]);
    expect(parseWire(encodeEvent("\n\n")).events).toEqual([{ data: "\n\n" }]);
  });

  test("a blank line dispatches the event: each encoded event ends in exactly one, and without it nothing dispatches", () => {
    fc.assert(
      fc.property(anyEvent, (input) => {
        const wire = encodedOrNull({ ...input, data: input.data ?? "x" });
        if (wire === null) return;
        expect(wire.indexOf("\n\n")).toBe(wire.length - 2);
        expect(parseWire(wire).events).toHaveLength(1);
        // The spec discards an event still pending when the stream ends before its blank line.
        expect(parseWire(wire.slice(0, -1)).events).toHaveLength(0);
      }),
      { numRuns: NUM_RUNS },
    );
  });

  test("an empty data buffer dispatches nothing, so an event with only id, retry or comment reaches no listener", () => {
    for (const input of [{ id: "42" }, { retry: 5 }, { comment: "ping" }, { comment: "c", id: "1", retry: 0 }]) {
      expect(parseWire(encodeEvent(input)).events).toEqual([]);
    }
    // An event type alone is not data either: the encoder adds an empty data line so that it dispatches.
    expect(parseWire(encodeEvent({ event: "ready" })).events).toEqual([{ event: "ready", data: "" }]);
  });

  test("dispatch sets the last event ID before it checks for data, so an id-only event still moves a client's Last-Event-ID", async () => {
    // eventsource-parser drops the id of a block without data (and so does the `eventsource` npm client built
    // on it), so this rule is checked with undici's EventSource, whose parser follows the dispatch steps.
    let connections = 0;
    const reconnected = deferred<string | string[] | undefined>();
    const server = createServer((request, response) => {
      connections++;
      if (connections === 1) {
        response.writeHead(200, { "content-type": "text/event-stream" });
        response.end(encodeEvent({ retry: 1 }) + encodeEvent({ id: "41", data: "x" }) + encodeEvent({ id: "42" }));
      } else {
        reconnected.resolve(request.headers["last-event-id"]);
        // 204 tells an EventSource to stop reconnecting.
        response.writeHead(204).end();
      }
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const { port } = server.address() as AddressInfo;
    const source = new EventSource(`http://127.0.0.1:${port}/`);
    const messages: [string, string][] = [];
    source.onmessage = (message) => messages.push([message.data, message.lastEventId]);
    try {
      expect(await reconnected.promise).toBe("42");
      expect(messages).toEqual([["x", "41"]]);
    } finally {
      source.close();
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  });

  test("an id field that contains NUL is ignored by clients, so the encoder refuses to write one", () => {
    // Written by hand: the encoder cannot produce it. The event arrives, but without the id it was sent with.
    expect(parseWire("id: a\0b\ndata: x\n\n").events).toEqual([{ data: "x" }]);
    expect(() => encodeEvent({ id: "a\0b", data: "x" })).toThrowError(
      new TypeError('encodeEvent: input.id must not contain CR, LF or NUL, got "a\\u0000b"'),
    );
  });

  test("retry is honoured only when it is ASCII digits, and every retry the encoder accepts is written so", () => {
    // Written by hand: what a client does with the values the encoder refuses.
    for (const ignored of ["-1", "1.5", "1e3", "NaN", " 5"])
      expect(parseWire(`retry: ${ignored}\n\n`).retries).toEqual([]);
    fc.assert(
      fc.property(fc.maxSafeNat(), (retry) => {
        const wire = encodeEvent({ retry });
        expect(wire).toMatch(/^retry: [0-9]+\n\n$/);
        expect(parseWire(wire).retries).toEqual([retry]);
      }),
      { numRuns: NUM_RUNS },
    );
  });

  test("the event type is message unless the event field is a non-empty string", () => {
    // eventsource-parser reports the default type, "message", as no event type.
    expect(parseWire(encodeEvent("x")).events).toEqual([{ data: "x" }]);
    expect(parseWire(encodeEvent({ event: "", data: "x" })).events).toEqual([{ data: "x" }]);
    expect(parseWire(encodeEvent({ event: "message", data: "x" })).events).toEqual([{ event: "message", data: "x" }]);
    expect(parseWire(encodeEvent({ event: "tick", data: "x" })).events).toEqual([{ event: "tick", data: "x" }]);
  });

  test("one leading byte order mark is stripped by clients, so none is ever written, even before data that starts with U+FEFF", async () => {
    fc.assert(
      fc.property(anyEvent, (input) => {
        const wire = encodedOrNull(input);
        if (wire !== null) expect(wire.charCodeAt(0)).not.toBe(0xfeff);
      }),
      { numRuns: NUM_RUNS },
    );
    const stream = new EventSourceEncoderStream();
    const writer = stream.writable.getWriter();
    const reader = stream.readable.getReader();
    const read = reader.read();
    await writer.write("\uFEFFbom");
    const { value } = await read;
    // The first bytes are "data: ", never EF BB BF, and the U+FEFF of the data comes through.
    expect(Array.from(value?.subarray(0, 6) ?? [])).toEqual([0x64, 0x61, 0x74, 0x61, 0x3a, 0x20]);
    const received = new TextDecoder("utf-8", { ignoreBOM: false }).decode(value);
    expect(parseWire(received).events).toEqual([{ data: "\uFEFFbom" }]);
  });

  test("a line that starts with a colon is a comment, which clients ignore whatever it holds", () => {
    const wire = encodeEvent({ comment: "data: injected\n\nevent: evil\r\nid: 666" });
    expect(wire).toBe(":data: injected\n:\n:event: evil\n:id: 666\n\n");
    expect(parseWire(wire)).toEqual({
      events: [],
      retries: [],
      comments: ["data: injected", "", "event: evil", "id: 666"],
    });
  });
});
