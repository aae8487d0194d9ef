/**
 * Bun: examples/bun's handler and the probe routes behind `Bun.serve`, read by the `eventsource` package and
 * by Node's fetch with an independent parser (Bun has no EventSource of its own).
 */
import { EventSource } from "eventsource";
import { afterAll, beforeAll, describe } from "vitest";
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
