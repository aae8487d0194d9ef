import fc from "fast-check";
import { describe, expect, test } from "vitest";
import { utf8 } from "../src/utf8.ts";

describe("utf8", () => {
  test("gives the same bytes as TextEncoder for any string, lone surrogates included", () => {
    const encoder = new TextEncoder();
    fc.assert(
      fc.property(fc.string({ unit: "binary" }), (text) => {
        expect(utf8(text)).toEqual(encoder.encode(text));
      }),
      { numRuns: 10_000 },
    );
  });

  test("encodes a text too long for the scratch buffer whole", () => {
    const text = "é😀\n".repeat(20_000);
    const bytes = utf8(text);
    expect(bytes.byteLength).toBe(new TextEncoder().encode(text).byteLength);
    expect(new TextDecoder().decode(bytes)).toBe(text);
  });

  test("gives every chunk a buffer of its own, so a later text never overwrites an earlier one", () => {
    const first = utf8("data: first\n\n");
    const second = utf8("data: other\n\n");
    expect(first.buffer).not.toBe(second.buffer);
    expect(first.byteLength).toBe(first.buffer.byteLength);
    expect(new TextDecoder().decode(first)).toBe("data: first\n\n");
  });
});
