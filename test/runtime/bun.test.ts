/**
 * Bun: examples/bun's handler and the probe routes behind `Bun.serve`, read by the `eventsource` package and
 * by Node's fetch with an independent parser (Bun has no EventSource of its own).
 */
import { EventSource } from "eventsource";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { parseWire } from "../helpers.ts";
import { clientScenarios, connectWith, demoScenario, type Running, startBunProbe } from "./harness.ts";

let server: Running | undefined;
const origin = (): string => {
  if (server === undefined) throw new Error("the Bun server did not start");
  return server.origin;
};

beforeAll(async () => {
  server = await startBunProbe();
});
afterAll(async () => {
  await server?.stop();
});

describe("Bun.serve, read by the eventsource package", () => {
  clientScenarios("bun", origin, connectWith(EventSource));
  demoScenario("bun demo", origin);
});

describe("Bun, a body read in JS", () => {
  test("1,000 events that a source yields at once arrive whole and in order, several to a read, and a reader that stops stops the source", async () => {
    const { reads, text, advanced } = (await (await fetch(`${origin()}/probe/read-in-js`)).json()) as {
      reads: number;
      text: string;
      advanced: number;
    };
    expect(parseWire(text).events).toEqual(
      Array.from({ length: 1_000 }, (_, i) => ({ id: String(i), data: `event ${i}` })),
    );
    // Bun's direct stream gives a read what was written since the last one, and up to four writes go ahead of a read.
    console.log(`bun: 1,000 events in ${reads} reads; a body read once advanced its source ${advanced} times`);
    expect(reads).toBeLessThanOrEqual(250);
    // API.md: pull-driven, a source advanced at most 8 times for a reader that does not read.
    expect(advanced).toBeLessThanOrEqual(8);
  });
});
