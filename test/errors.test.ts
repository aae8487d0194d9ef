import { describe, expect, test } from "vitest";
import { fail, shown } from "../src/errors.ts";

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
