import fc from "fast-check";
import { describe, expect, test } from "vitest";
import { Utf8Pool } from "../src/bytes.ts";

describe("Utf8Pool", () => {
  test("gives the same bytes as TextEncoder for any string, lone surrogates included", () => {
    const encoder = new TextEncoder();
    const pool = new Utf8Pool();
    fc.assert(
      fc.property(fc.string({ unit: "binary" }), (text) => {
        expect(pool.bytes(text)).toEqual(encoder.encode(text));
      }),
      { numRuns: 10_000 },
    );
  });

  test("encodes a text too long for a slab whole", () => {
    const text = "é😀\n".repeat(20_000);
    const bytes = new Utf8Pool().bytes(text);
    expect(bytes.byteLength).toBe(new TextEncoder().encode(text).byteLength);
    expect(new TextDecoder().decode(bytes)).toBe(text);
  });

  test("never writes over a chunk it has handed out, across many slabs", () => {
    const pool = new Utf8Pool();
    const texts = Array.from({ length: 5_000 }, (_, n) => `id: ${n}\ndata: ${"é".repeat(n % 50)}\n\n`);
    const chunks = texts.map((text) => pool.bytes(text));
    const decoder = new TextDecoder();
    expect(chunks.map((chunk) => decoder.decode(chunk))).toEqual(texts);
  });

  test("starts a new slab when a consumer has transferred the buffer of an earlier chunk", () => {
    const pool = new Utf8Pool();
    const first = pool.bytes("data: first\n\n");
    structuredClone(first.buffer, { transfer: [first.buffer as ArrayBuffer] });
    expect(first.byteLength).toBe(0);
    expect(new TextDecoder().decode(pool.bytes("data: second\n\n"))).toBe("data: second\n\n");
  });

  test("two pools never share a buffer", () => {
    const alice = new Utf8Pool().bytes("data: alice's secret\n\n");
    const bob = new Utf8Pool().bytes("data: bob\n\n");
    expect(alice.buffer).not.toBe(bob.buffer);
    expect(new TextDecoder().decode(bob.buffer as ArrayBuffer)).not.toContain("alice");
  });
});
