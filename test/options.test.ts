import {
  EventChannel,
  type EventChannelOptions,
  EventSourceEncoderStream,
  type EventSourceResponseInit,
  encodeEvent,
  eventSourceResponse,
} from "eventsource-server";
import { describe, expect, test } from "vitest";

// Regression tests for issue item 14: an unknown own key of any options object is a TypeError that names the key
// and the closest known option; and a caller's cache-control always keeps no-transform.

/** A response from each API that takes an `EventSourceResponseInit`, and the name its errors start with. */
const responders: [string, (init: EventSourceResponseInit) => Response][] = [
  ["eventSourceResponse", (init) => eventSourceResponse([], init)],
  [
    "EventChannel.response",
    (init) => {
      const channel = new EventChannel();
      try {
        return channel.response(undefined, init);
      } finally {
        channel.close();
      }
    },
  ],
];

/** An init with keys its type does not list: the contract's newer options, and workerd's own `ResponseInit` keys. */
function looseInit(init: Record<string, unknown>): EventSourceResponseInit {
  return init as EventSourceResponseInit;
}

/** Every key API.md lists for `EventSourceResponseInit`, with a valid value, `serialize` and `onError` aside. */
function everyKnownResponseKey(): Record<string, unknown> {
  return {
    request: new Request("http://localhost/events"),
    signal: new AbortController().signal,
    retry: 1_000,
    keepAlive: false,
    maxDuration: 60_000,
    onClose: () => {},
    status: 200,
    statusText: "OK",
    headers: { "x-room": "7" },
    // workerd adds these to its own ResponseInit; elsewhere they are ignored by the Response constructor.
    cf: {},
    encodeBody: "automatic",
    webSocket: null,
  };
}

describe("unknown options: EventSourceResponseInit", () => {
  test.each([
    ["retyr", 1_000, "retry"],
    ["keepalive", 1_000, "keepAlive"],
    ["maxDurration", 60_000, "maxDuration"],
    ["onclose", () => {}, "onClose"],
    ["singal", new AbortController().signal, "signal"],
    ["requests", new Request("http://localhost/"), "request"],
    ["statuss", 201, "status"],
    ["header", { "x-room": "7" }, "headers"],
    ["encodebody", "manual", "encodeBody"],
  ])("eventSourceResponse: init.%s is a TypeError that names the closest known option", (key, value, closest) => {
    expect(() => eventSourceResponse([], looseInit({ [key]: value }))).toThrowError(
      new TypeError(`eventSourceResponse: init.${key} is not an option; did you mean "${closest}"?`),
    );
  });

  test.each([
    ["retyr", 1_000, "retry"],
    ["keepalive", 1_000, "keepAlive"],
    ["onclose", () => {}, "onClose"],
    ["statuss", 201, "status"],
  ])(
    "channel.response: init.%s is a TypeError that names the closest known option, and nothing joins",
    (key, value, closest) => {
      const channel = new EventChannel();
      expect(() => channel.response(undefined, looseInit({ [key]: value }))).toThrowError(
        new TypeError(`EventChannel.response: init.${key} is not an option; did you mean "${closest}"?`),
      );
      expect(channel.subscribers).toBe(0);
      channel.close();
    },
  );

  test.each(responders)(
    "%s: an unknown key is an error, while every known key, workerd's ResponseInit keys and an inherited key are not",
    (where, respond) => {
      expect(() => respond(looseInit({ ...everyKnownResponseKey(), retyr: 1_000 }))).toThrowError(
        new TypeError(`${where}: init.retyr is not an option; did you mean "retry"?`),
      );
      const known = everyKnownResponseKey();
      if (where === "eventSourceResponse") Object.assign(known, { serialize: JSON.stringify, onError: () => {} });
      expect(respond(looseInit(known)).status).toBe(200);
      // Only own keys are options: a key on the prototype is not the caller's.
      expect(respond(Object.create({ retyr: 1_000 }) as EventSourceResponseInit).status).toBe(200);
    },
  );
});

describe("unknown options: EventChannel, encodeEvent and EventSourceEncoderStream", () => {
  test.each([
    ["replai", 10, "replay"],
    ["histroy", { after: () => null }, "history"],
    ["onHistoryLots", () => {}, "onHistoryLost"],
    ["maxBufferedByte", 1_024, "maxBufferedBytes"],
    ["historyTimout", 5_000, "historyTimeout"],
    ["serialise", JSON.stringify, "serialize"],
  ])("new EventChannel({ %s }) is a TypeError that names the closest known option", (key, value, closest) => {
    expect(() => new EventChannel({ [key]: value } as EventChannelOptions)).toThrowError(
      new TypeError(`EventChannel: options.${key} is not an option; did you mean "${closest}"?`),
    );
  });

  test.each([
    ["serialise", "serialize"],
    ["serializer", "serialize"],
  ])("encodeEvent(input, { %s }) is a TypeError that names the closest known option", (key, closest) => {
    expect(() => encodeEvent("hello", { [key]: JSON.stringify } as never)).toThrowError(
      new TypeError(`encodeEvent: options.${key} is not an option; did you mean "${closest}"?`),
    );
    // The one known option is still accepted.
    expect(encodeEvent({ data: 1 }, { serialize: (data) => `<${String(data)}>` })).toBe("data: <1>\n\n");
  });

  test("new EventSourceEncoderStream({ serialise }) is a TypeError that names the closest known option", () => {
    expect(() => new EventSourceEncoderStream({ serialise: JSON.stringify } as never)).toThrowError(
      new TypeError('EventSourceEncoderStream: options.serialise is not an option; did you mean "serialize"?'),
    );
    expect(new EventSourceEncoderStream({ serialize: JSON.stringify })).toBeInstanceOf(TransformStream);
  });
});

describe("headers", () => {
  test.each(responders)(
    "%s: a caller's cache-control without no-transform gets it appended, and one with it is kept",
    (_where, respond) => {
      const cacheControl = (headers: HeadersInit) => respond({ headers }).headers.get("cache-control");
      expect(cacheControl({ "cache-control": "no-cache" })).toBe("no-cache, no-transform");
      expect(cacheControl([["Cache-Control", "no-store"]])).toBe("no-store, no-transform");
      expect(cacheControl(new Headers({ "cache-control": "private, max-age=0" }))).toBe(
        "private, max-age=0, no-transform",
      );
      expect(cacheControl({ "cache-control": "no-store, no-transform" })).toBe("no-store, no-transform");
      expect(cacheControl({ "cache-control": "no-transform" })).toBe("no-transform");
      // The defaults, and the headers that are never set.
      const { headers } = respond({});
      expect(headers.get("cache-control")).toBe("no-cache, no-transform");
      const neverSet = ["connection", "content-length", "transfer-encoding", "content-encoding"];
      expect(neverSet.filter((name) => headers.has(name))).toEqual([]);
    },
  );
});
