import { afterEach, describe, expect, test, vi } from "vitest";
import { fail, report, shown } from "../src/errors.ts";
import { eventSourceResponse } from "../src/index.ts";

describe("shown", () => {
  test.each([
    ["a\nb\r\0", '"a\\nb\\r\\u0000"'],
    [42, "42"],
    [Number.NaN, "NaN"],
    [null, "null"],
    [undefined, "undefined"],
    [10n, "10n"],
    [[1, 2], "an array"],
    [{ secret: "password" }, "an object"],
    [() => {}, "a function"],
    [Symbol("s"), "a symbol"],
  ])("shows %o as %s, never an object's contents", (value, expected) => {
    expect(shown(value)).toBe(expected);
  });

  test("clips a long string at 40 characters", () => {
    const text = shown("x".repeat(100));
    expect(text).toHaveLength(40);
    expect(text.endsWith("…")).toBe(true);
  });
});

describe("fail", () => {
  test("throws a TypeError that names the API first", () => {
    expect(() => fail("encodeEvent", "input.id must be a string")).toThrowError(
      new TypeError("encodeEvent: input.id must be a string"),
    );
  });
});

describe("the default error report under a storm", () => {
  afterEach(() => {
    vi.useRealTimers();
    vi.restoreAllMocks();
  });

  /** A source that fails at once, as one that fails on every request does. */
  async function* failing(): AsyncGenerator<string> {
    yield* [];
    throw new Error("the database is down");
  }

  test("a source that fails on every request logs one line, then one count a second later, not a stack each", async () => {
    vi.useFakeTimers();
    const lines: unknown[][] = [];
    vi.spyOn(console, "error").mockImplementation((...args) => lines.push(args));
    for (let request = 0; request < 100; request++) await eventSourceResponse(failing()).text();
    expect(lines).toHaveLength(1);
    const [first] = lines[0] as [string];
    expect(first).toMatch(
      /^eventSourceResponse: the source failed: Error: the database is down \(at .*errors\.test\.ts:\d+:\d+\)?\)$/,
    );
    expect(first).not.toContain("\n");
    await vi.advanceTimersByTimeAsync(1_000);
    expect(lines).toEqual([[first], [`${first} (and 99 more times within 1 s)`]]);
    // The storm is over: the next failure is a line of its own again.
    await eventSourceResponse(failing()).text();
    expect(lines).toHaveLength(3);
  });

  test("onError still gets every error, and different failures are each a line", async () => {
    vi.useFakeTimers();
    const lines: unknown[][] = [];
    vi.spyOn(console, "error").mockImplementation((...args) => lines.push(args));
    const seen: unknown[] = [];
    for (let request = 0; request < 50; request++) {
      await eventSourceResponse(failing(), { onError: (error) => void seen.push(error) }).text();
    }
    expect(seen).toHaveLength(50);
    expect(lines).toHaveLength(0);
    const same = () => new TypeError("one");
    report(same(), "here");
    report("a plain string", "there");
    // The same error from the same place: counted, not printed.
    report(same(), "here");
    expect(lines.map(([line]) => String(line).replace(/ \(at .*\)$/, ""))).toEqual([
      "here: TypeError: one",
      "there: a plain string",
    ]);
  });
});
