import { type EncodeOptions, type EventInput, EventSourceEncoderStream } from "eventsource-server";
import { describe, expect, test } from "vitest";
import { parseWire } from "./helpers.ts";

/** Pipes `inputs` through a new encoder stream and returns the readable side's reader. */
function encoded(inputs: readonly unknown[], options?: EncodeOptions): ReadableStreamDefaultReader<Uint8Array> {
  const events = new ReadableStream<EventInput>({
    start(controller) {
      for (const input of inputs) controller.enqueue(input as EventInput);
      controller.close();
    },
  });
  return events.pipeThrough(new EventSourceEncoderStream(options)).getReader();
}

/** Every chunk until the end, each kept apart so a test can count them. */
async function chunksOf(reader: ReadableStreamDefaultReader<Uint8Array>): Promise<Uint8Array[]> {
  const chunks: Uint8Array[] = [];
  for (;;) {
    const { done, value } = await reader.read();
    if (done) return chunks;
    chunks.push(value);
  }
}

const strictUtf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
const ascii = (text: string): number[] => Array.from(text, (char) => char.charCodeAt(0));

describe("EventSourceEncoderStream", () => {
  test("EventSourceEncoderStream is a TransformStream", () => {
    expect(new EventSourceEncoderStream()).toBeInstanceOf(TransformStream);
  });

  test("EventSourceEncoderStream turns each input into exactly one chunk that parses to that one event", async () => {
    const inputs: EventInput[] = ["hello", { event: "tick", data: "1" }, { id: 7, data: "a\r\nb" }, "last"];
    const chunks = await chunksOf(encoded(inputs));
    expect(chunks).toHaveLength(4);
    expect(chunks.map((chunk) => parseWire(strictUtf8.decode(chunk)).events)).toEqual([
      [{ data: "hello" }],
      [{ event: "tick", data: "1" }],
      [{ id: "7", data: "a\nb" }],
      [{ data: "last" }],
    ]);
  });

  test("EventSourceEncoderStream writes a comment-only or id-only input as its own chunk that dispatches nothing", async () => {
    const chunks = await chunksOf(encoded([{ comment: "ping" }, { id: "9" }]));
    expect(chunks).toHaveLength(2);
    expect(chunks.map((chunk) => parseWire(strictUtf8.decode(chunk)))).toEqual([
      { events: [], retries: [], comments: ["ping"] },
      { events: [], retries: [], comments: [] },
    ]);
  });

  test("EventSourceEncoderStream writes UTF-8 bytes, astral characters included", async () => {
    const chunks = await chunksOf(encoded(["é😀"]));
    expect(chunks).toHaveLength(1);
    expect(chunks[0]).toBeInstanceOf(Uint8Array);
    // "data: " é (C3 A9) 😀 (F0 9F 98 80) LF LF, written out by hand from the UTF-8 tables.
    expect(Array.from(chunks[0]!)).toEqual([...ascii("data: "), 0xc3, 0xa9, 0xf0, 0x9f, 0x98, 0x80, 0x0a, 0x0a]);
  });

  test("EventSourceEncoderStream writes a lone surrogate as the UTF-8 bytes of U+FFFD", async () => {
    const chunks = await chunksOf(encoded(["a\uD800b"]));
    expect(chunks).toHaveLength(1);
    expect(Array.from(chunks[0]!)).toEqual([...ascii("data: a"), 0xef, 0xbf, 0xbd, ...ascii("b\n\n")]);
    expect(parseWire(strictUtf8.decode(chunks[0]!)).events).toEqual([{ data: "a\uFFFDb" }]);
  });

  test("EventSourceEncoderStream serializes non-string data with JSON.stringify by default", async () => {
    const chunks = await chunksOf(encoded([{ data: { n: 1 } }]));
    expect(chunks).toHaveLength(1);
    expect(parseWire(strictUtf8.decode(chunks[0]!)).events).toEqual([{ data: '{"n":1}' }]);
  });

  test("EventSourceEncoderStream passes non-string data through options.serialize", async () => {
    const chunks = await chunksOf(encoded([{ data: 5 }, "as is"], { serialize: (data) => `<${String(data)}>` }));
    expect(chunks).toHaveLength(2);
    expect(chunks.map((chunk) => parseWire(strictUtf8.decode(chunk)).events)).toEqual([
      [{ data: "<5>" }],
      [{ data: "as is" }],
    ]);
  });
});

describe("EventSourceEncoderStream errors", () => {
  test.each<[string, unknown, string]>([
    ["an unknown key", { type: "tick" }, 'encodeEvent: unknown key "type"; put the event type in "event"'],
    ["a line break in event", { event: "a\nb" }, 'encodeEvent: input.event must not contain CR or LF, got "a\\nb"'],
    ["a NUL in id", { id: "a\0b" }, 'encodeEvent: input.id must not contain CR, LF or NUL, got "a\\u0000b"'],
    ["a fractional retry", { retry: 1.5 }, "encodeEvent: input.retry must be a non-negative safe integer, got 1.5"],
    ["a null input", null, "encodeEvent: input must be a string or a plain object, got null"],
    ["an array input", ["x"], "encodeEvent: input must be a string or a plain object, got an array"],
  ])(
    "EventSourceEncoderStream errors the stream on %s with the TypeError encodeEvent throws",
    async (_case, input, message) => {
      const reader = encoded(["before", input, "after"]);
      const { value } = await reader.read();
      expect(parseWire(strictUtf8.decode(value)).events).toEqual([{ data: "before" }]);
      await expect(reader.read()).rejects.toThrowError(new TypeError(message));
    },
  );

  test("EventSourceEncoderStream rejects the write of an invalid input and errors its readable side", async () => {
    const stream = new EventSourceEncoderStream();
    const writer = stream.writable.getWriter();
    const reader = stream.readable.getReader();
    const error = new TypeError('encodeEvent: unknown key "name"; put the event type in "event"');
    // The readable side holds no chunk in reserve, so a write is only transformed once a read is waiting.
    const read = reader.read();
    await expect(writer.write({ name: "tick" } as never)).rejects.toThrowError(error);
    await expect(read).rejects.toThrowError(error);
    await expect(writer.closed).rejects.toThrowError(error);
  });

  test("EventSourceEncoderStream errors the stream when serialize returns something other than a string", async () => {
    const reader = encoded([{ data: 1 }], { serialize: () => 5 as unknown as string });
    await expect(reader.read()).rejects.toThrowError(
      new TypeError("encodeEvent: input.data must serialize to a string, got 5"),
    );
  });

  test("EventSourceEncoderStream errors the stream with a TypeError for data that is a promise", async () => {
    const reader = encoded(["before", { data: Promise.resolve(1) }], { serialize: () => "never used" });
    expect(new TextDecoder().decode((await reader.read()).value)).toBe("data: before\n\n");
    await expect(reader.read()).rejects.toThrowError(
      new TypeError(
        "encodeEvent: input.data must not be a promise or another thenable; await it before sending the event",
      ),
    );
  });

  test("EventSourceEncoderStream errors the stream with a TypeError that keeps serialize's error as its cause", async () => {
    const node: { self?: unknown } = {};
    node.self = node;
    await expect(encoded([{ data: node }]).read()).rejects.toThrowError(
      expect.objectContaining({
        name: "TypeError",
        message: expect.stringMatching(
          /^encodeEvent: input\.data could not be serialized: Converting circular structure to JSON/,
        ),
        cause: expect.any(TypeError),
      }),
    );
  });

  test.each<[string, unknown, string]>([
    ["a number as serialize", { serialize: 5 }, "options.serialize must be a function, got 5"],
    ["an object as serialize", { serialize: {} }, "options.serialize must be a function, got an object"],
    ["null as options", null, "options must be an object, got null"],
    ["a function as options", JSON.stringify, "options must be an object, got a function"],
  ])("new EventSourceEncoderStream throws a TypeError for %s", (_case, options, problem) => {
    expect(() => new EventSourceEncoderStream(options as EncodeOptions)).toThrowError(
      new TypeError(`EventSourceEncoderStream: ${problem}`),
    );
  });
});
