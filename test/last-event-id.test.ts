import { lastEventId } from "eventsource-server";
import { describe, expect, test } from "vitest";

const request = (url: string, lastEventIdHeader?: string): Request =>
  new Request(url, lastEventIdHeader === undefined ? {} : { headers: { "last-event-id": lastEventIdHeader } });

describe("lastEventId", () => {
  test("lastEventId returns the Last-Event-ID header", () => {
    expect(lastEventId(request("http://x/", "41"))).toBe("41");
  });

  test("lastEventId reads the header whatever the case of its name", () => {
    expect(lastEventId(new Request("http://x/", { headers: { "LAST-EVENT-ID": "41" } }))).toBe("41");
  });

  test("lastEventId prefers the header to the lastEventId query parameter", () => {
    expect(lastEventId(request("http://x/?lastEventId=query", "header"))).toBe("header");
  });

  test("lastEventId falls back to the lastEventId query parameter without the header", () => {
    expect(lastEventId(request("http://x/events?topic=a&lastEventId=42"))).toBe("42");
  });

  test("lastEventId decodes the query parameter as a polyfill encodes it", () => {
    const id = "a b&c=d/é+?#";
    expect(lastEventId(request(`http://x/?lastEventId=${encodeURIComponent(id)}`))).toBe(id);
  });

  test("lastEventId decodes a header whose bytes are UTF-8, as a browser sends a non-ASCII id", () => {
    // A Headers object shows each byte of the value as one character: the UTF-8 bytes of the id, seen as Latin-1.
    const onTheWire = String.fromCharCode(...new TextEncoder().encode("café ☕ 42"));
    expect(onTheWire).not.toBe("café ☕ 42");
    expect(lastEventId(request("http://x/", onTheWire))).toBe("café ☕ 42");
  });

  test.each([
    ["a Latin-1 é, which is not UTF-8", "caf\u00e9"],
    ["a UTF-8 sequence cut short", "\u00e2\u0098"],
    ["a byte that UTF-8 never uses", "\u00ff1"],
    ["plain ASCII", "id-42"],
  ])("lastEventId keeps %s byte for byte", (_case, escaped) => {
    const value = JSON.parse(`"${escaped}"`) as string;
    expect(lastEventId(request("http://x/", value))).toBe(value);
  });

  test("lastEventId takes the first lastEventId query parameter when there are several", () => {
    expect(lastEventId(request("http://x/?lastEventId=1&lastEventId=2"))).toBe("1");
  });

  test("lastEventId falls back to the query parameter when the header is empty", () => {
    expect(lastEventId(request("http://x/?lastEventId=42", ""))).toBe("42");
  });

  test.each([
    ["no header and no query", "http://x/"],
    ["an empty query parameter", "http://x/?lastEventId="],
    ["a query parameter with no value", "http://x/?lastEventId"],
    ["a parameter whose name only ends in lastEventId", "http://x/?notlastEventId=5"],
    ["lastEventId= inside another parameter's value", "http://x/?q=lastEventId%3D5"],
    ["the parameter name in another case", "http://x/?lasteventid=5"],
  ])("lastEventId returns null for %s", (_case, url) => {
    expect(lastEventId(request(url))).toBeNull();
  });

  test("lastEventId returns null when both the header and the query parameter are empty", () => {
    expect(lastEventId(request("http://x/?lastEventId=", ""))).toBeNull();
  });

  test("lastEventId accepts a request-like object from another realm or framework", () => {
    const foreign = { url: "http://x/", headers: new Headers({ "last-event-id": "7" }) };
    expect(lastEventId(foreign as unknown as Request)).toBe("7");
  });

  test.each<[string, unknown, string]>([
    ["undefined", undefined, "got undefined"],
    ["null", null, "got null"],
    ["a URL string", "http://x/?lastEventId=1", 'got "http://x/?lastEventId=1"'],
    ["a URL object", new URL("http://x/?lastEventId=1"), "got an object"],
    ["a Headers object", new Headers({ "last-event-id": "1" }), "got an object"],
    ["an object without headers", { url: "http://x/" }, "got an object"],
  ])("lastEventId rejects %s with a TypeError", (_case, value, got) => {
    expect(() => lastEventId(value as Request)).toThrowError(
      new TypeError(`lastEventId: request must be a Request, ${got}`),
    );
  });
});
