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

  test("never writes over a chunk it has handed out, across many slabs", () => {
    const texts = Array.from({ length: 5_000 }, (_, n) => `id: ${n}\ndata: ${"é".repeat(n % 50)}\n\n`);
    const chunks = texts.map(utf8);
    const decoder = new TextDecoder();
    expect(chunks.map((chunk) => decoder.decode(chunk))).toEqual(texts);
  });

  test("starts a new slab when a consumer has transferred the buffer of an earlier chunk", () => {
    const first = utf8("data: first\n\n");
    structuredClone(first.buffer, { transfer: [first.buffer] });
    expect(first.byteLength).toBe(0);
    expect(new TextDecoder().decode(utf8("data: second\n\n"))).toBe("data: second\n\n");
  });
});
