/**
 * The typed-events rules, checked by the compiler: `npm run typecheck` compiles this file, so an `@ts-expect-error`
 * whose line compiles, or an `expectTypeOf` that does not hold, fails the run. The calls also run under vitest,
 * where the ones that throw show the run-time check behind the type.
 */
import {
  EventChannel,
  type EventInput,
  EventSourceEncoderStream,
  type EventSourceSource,
  type EventStreamLike,
  encodeEvent,
  eventSourceResponse,
  type ServerSentEvent,
} from "eventsource-server";
import { describe, expect, expectTypeOf, test } from "vitest";

type Events = { tick: number; message: string; ping: undefined; note: { text: string } };

describe("untyped code keeps its loose types", () => {
  test("the type parameters default to any event type with any data", () => {
    expectTypeOf<EventInput>().toEqualTypeOf<string | ServerSentEvent>();
    expectTypeOf<ServerSentEvent["event"]>().toEqualTypeOf<string | undefined>();
    expectTypeOf<ServerSentEvent["data"]>().toEqualTypeOf<unknown>();
    expectTypeOf<EventChannel["emit"]>().parameter(0).toEqualTypeOf<string | ServerSentEvent>();
    expectTypeOf<EventSourceEncoderStream["writable"]>().toEqualTypeOf<WritableStream<string | ServerSentEvent>>();
    expectTypeOf<EventStreamLike>().toEqualTypeOf<EventStreamLike<string | ServerSentEvent>>();
  });

  test("an untyped channel takes any event type with any data", () => {
    const channel = new EventChannel();
    channel.emit("hello");
    channel.emit({ event: "anything", data: { n: 1 }, id: 1 });
    channel.emit({ data: [1, 2] });
    const event: ServerSentEvent = { event: "x" };
    channel.emit(event);
    channel.close();
  });
});

describe("ServerSentEvent<Data, Type>", () => {
  test("types data as Data and event as Type", () => {
    expectTypeOf<ServerSentEvent<number, "tick">["data"]>().toEqualTypeOf<number | undefined>();
    expectTypeOf<ServerSentEvent<number, "tick">["event"]>().toEqualTypeOf<"tick" | undefined>();
    // @ts-expect-error: a tick's data is a number
    const wrongData: ServerSentEvent<number, "tick"> = { event: "tick", data: "1" };
    // @ts-expect-error: the event type is "tick"
    const wrongType: ServerSentEvent<number, "tick"> = { event: "tock", data: 1 };
    expect([wrongData, wrongType]).toHaveLength(2);
  });
});

describe("EventChannel<Events>.emit", () => {
  const channel = new EventChannel<Events>();

  test("takes each mapped event type with its own data", () => {
    channel.emit({ event: "tick", data: 1 });
    channel.emit({ event: "note", data: { text: "hi" }, id: "7" });
    channel.emit({ event: "message", data: "hello" });
    expectTypeOf(channel.emit).toBeCallableWith({ event: "tick", data: 1, id: 1, retry: 1_000, comment: "c" });
  });

  test("rejects data of another type than its event type's", () => {
    // @ts-expect-error: a tick's data is a number
    channel.emit({ event: "tick", data: "1" });
    // @ts-expect-error: a note's data is { text: string }
    channel.emit({ event: "note", data: { txt: "hi" } });
    // @ts-expect-error: a message's data is a string
    channel.emit({ data: 1 });
  });

  test("rejects an event type that is not in the map", () => {
    // @ts-expect-error: "tock" is not an event type of this channel
    channel.emit({ event: "tock", data: 1 });
    const other = new EventChannel<{ tick: number }>();
    // @ts-expect-error: without "message" in the map, an event without a type is not allowed to carry data
    other.emit({ data: 1 });
  });

  test("requires data unless its type allows undefined", () => {
    // @ts-expect-error: a tick needs its number
    channel.emit({ event: "tick" });
    channel.emit({ event: "ping" });
    channel.emit({ event: "ping", data: undefined });
  });

  test("takes a bare string only where message data accepts a string", () => {
    channel.emit("hello");
    const numbers = new EventChannel<{ message: number }>();
    // @ts-expect-error: message data is a number
    numbers.emit("hello");
    const noMessage = new EventChannel<{ tick: number }>();
    // @ts-expect-error: the map has no message events
    noMessage.emit("hello");
    const choices = new EventChannel<{ message: "yes" | "no" }>();
    choices.emit("yes");
    // @ts-expect-error: only "yes" or "no"
    choices.emit("maybe");
  });

  test("takes an event with only id, retry or comment on any map, since no client dispatches it", () => {
    const noMessage = new EventChannel<{ tick: number }>();
    noMessage.emit({ id: "42" });
    noMessage.emit({ retry: 10_000, comment: "restarting" });
    // @ts-expect-error: data without an event type is a message event, and this map has none
    noMessage.emit({ id: "42", data: "x" });
  });

  test("rejects a key that is no event field, naming it, and so does the run-time check", () => {
    // @ts-expect-error: "type" is not an event field
    expect(() => channel.emit({ type: "tick", data: 1 })).toThrowError(
      new TypeError('EventChannel.emit: unknown key "type"; put the event type in "event"'),
    );
    const loose = new EventChannel();
    // @ts-expect-error: "type" is not an event field, typed or not
    expect(() => loose.emit({ type: "tick" })).toThrowError(TypeError);
  });
});

describe("EventChannel<Events>: close and onHistoryLost", () => {
  test("close(last) takes what emit takes", () => {
    const channel = new EventChannel<{ tick: number }>();
    expectTypeOf(channel.close).parameter(0).toEqualTypeOf<EventInput<{ tick: number }> | undefined>();
    // @ts-expect-error: a tick's data is a number
    expect(() => channel.close({ event: "tick", data: Promise.resolve(1) })).toThrowError(TypeError);
    channel.close({ retry: 10_000, comment: "restarting" });
  });

  test("onHistoryLost returns one of the channel's events", () => {
    const channel = new EventChannel<{ tick: number; reload: undefined }>({
      replay: 10,
      onHistoryLost: () => ({ event: "reload" }),
    });
    // @ts-expect-error: "reload" is not in this channel's map
    const untyped = new EventChannel<{ tick: number }>({ replay: 10, onHistoryLost: () => ({ event: "reload" }) });
    const loose = new EventChannel({ replay: 10, onHistoryLost: () => ({ event: "reload", data: 1 }) });
    loose.emit({ event: "anything", data: "goes" });
    for (const each of [channel, untyped, loose]) each.close();
  });
});

describe("EventInput<Events>", () => {
  test("is what EventChannel<Events>.emit takes", () => {
    expectTypeOf<EventChannel<Events>["emit"]>().parameter(0).toEqualTypeOf<EventInput<Events>>();
    const input: EventInput<Events> = { event: "tick", data: 1 };
    expect(encodeEvent(input)).toBe("event: tick\ndata: 1\n\n");
  });
});

describe("EventSourceEncoderStream<Events>", () => {
  test("takes only the mapped events on its writable side", async () => {
    const stream = new EventSourceEncoderStream<{ tick: number }>();
    expectTypeOf(stream.writable).toEqualTypeOf<WritableStream<EventInput<{ tick: number }>>>();
    const writer = stream.writable.getWriter();
    const read = new Response(stream.readable).text();
    await writer.write({ event: "tick", data: 1 });
    // @ts-expect-error: a tick's data is a number
    const wrong = writer.write({ event: "tick", data: "1" });
    await wrong;
    await writer.close();
    // The run-time check knows no map: a string is sent as it is.
    expect(await read).toBe("event: tick\ndata: 1\n\nevent: tick\ndata: 1\n\n");
  });
});

describe("eventSourceResponse", () => {
  test("rejects a bare string as the source, as the run-time check does", () => {
    // @ts-expect-error: a string is an iterable of characters, never a source
    expect(() => eventSourceResponse("hello")).toThrowError(TypeError);
    // @ts-expect-error: nor is it a source's type
    const source: EventSourceSource = "hello";
    expect(source).toBe("hello");
  });

  test("infers the event type from a generator, with no annotation", async () => {
    async function* ticks() {
      yield { event: "tick", data: 1 };
      yield "a bare string";
    }
    expect(await eventSourceResponse(ticks()).text()).toBe(":\n\nevent: tick\ndata: 1\n\ndata: a bare string\n\n");
  });

  test("rejects a generator that yields a key that is no event field", async () => {
    async function* misspelt() {
      yield { type: "tick", data: 1 };
    }
    // @ts-expect-error: "type" is not an event field
    const response = eventSourceResponse(misspelt(), { onError: () => ({ event: "error", data: "misspelt" }) });
    expect(await response.text()).toBe(":\n\nevent: error\ndata: misspelt\n\n");
  });

  test("infers the event type from an array, a ReadableStream and a function source, and checks it", async () => {
    eventSourceResponse([{ event: "tick", data: 1 }, "x"]);
    // @ts-expect-error: "type" is not an event field
    eventSourceResponse([{ type: "tick", data: 1 }]);

    eventSourceResponse(new ReadableStream<ServerSentEvent<number, "tick">>());
    // @ts-expect-error: "name" is not an event field
    eventSourceResponse(new ReadableStream<{ name: string; data: number }>());

    eventSourceResponse(async function* ({ signal }) {
      if (!signal.aborted) yield { event: "tick", data: 1 };
    });
    eventSourceResponse(async ({ lastEventId }) => [{ id: lastEventId ?? "", data: 1 }]);
    // @ts-expect-error: "payload" is not an event field
    const response = eventSourceResponse(() => [{ payload: 1, data: 1 }]);
    await response.body?.cancel();
  });

  test("checks a source against an event map given as its type argument", () => {
    async function* ticks(): AsyncGenerator<EventInput<{ tick: number }>> {
      yield { event: "tick", data: 1 };
    }
    eventSourceResponse<EventInput<{ tick: number }>>(ticks());
    async function* untyped() {
      yield { event: "tick", data: "1" };
    }
    // @ts-expect-error: a tick's data is a number, and "tick" was widened to string
    eventSourceResponse<EventInput<{ tick: number }>>(untyped());
  });

  test("lets onError return any event, whatever the source's types", () => {
    async function* ticks(): AsyncGenerator<EventInput<{ tick: number }>> {
      yield { event: "tick", data: 1 };
    }
    eventSourceResponse(ticks(), { onError: () => ({ event: "error", data: { reason: "unavailable" } }) });
  });
});
