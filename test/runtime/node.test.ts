/**
 * Node: `toNodeHandler` of eventsource-server/node serving the probe routes in this process, read by the `eventsource`
 * package, undici's EventSource, and plain fetch with an independent parser; and the demo itself, spawned.
 */
import { EventSource as EventSourcePackage } from "eventsource";
import { toNodeHandler } from "eventsource-server/node";
import { EventSource as UndiciEventSource } from "undici";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { parseWire, readerOf, settle } from "../helpers.ts";
import {
  bundleNodeDemo,
  clientScenarios,
  connectWith,
  demoScenario,
  freePort,
  listenNode,
  type Running,
  startServer,
  uniqueKey,
  within,
} from "./harness.ts";
import { FLOOD_EVENT_BYTES, probe } from "./probe.ts";

let server: Awaited<ReturnType<typeof listenNode>> | undefined;
const origin = (): string => {
  if (server === undefined) throw new Error("the server did not start");
  return server.origin;
};

beforeAll(async () => {
  server = await listenNode(toNodeHandler, (request) => probe(request) ?? new Response("not found\n", { status: 404 }));
});
afterAll(async () => {
  await server?.close();
});

describe("toNodeHandler on node:http, read by the eventsource package", () => {
  clientScenarios("eventsource", origin, connectWith(EventSourcePackage));
});

describe("toNodeHandler on node:http, read by undici's EventSource", () => {
  clientScenarios("undici", origin, connectWith(UndiciEventSource));
});

describe("toNodeHandler on node:http, read by fetch and eventsource-parser", () => {
  const decoder = new TextDecoder();
  const produced = async (key: string): Promise<number> =>
    Number(await (await fetch(`${origin()}/probe/produced?key=${key}`)).text());

  test("the headers and a first comment arrive before the source produces anything, then each event alone", async () => {
    const key = uniqueKey("fetch");
    const response = await within(fetch(`${origin()}/probe/gated?key=${key}`), 10_000, "the headers");
    const reader = readerOf(response);
    try {
      expect(response.headers.get("content-type")).toBe("text/event-stream; charset=utf-8");
      expect(response.headers.get("cache-control")).toBe("no-cache, no-transform");
      expect(decoder.decode((await reader.read()).value)).toBe(":\n\n");
      expect(await produced(key)).toBe(0);
      for (const id of [1, 2]) {
        await fetch(`${origin()}/probe/release?key=${key}`, { method: "POST" });
        const chunk = await within(reader.read(), 10_000, `step ${id}`);
        expect(parseWire(decoder.decode(chunk.value)).events).toEqual([
          { event: "step", id: String(id), data: `step ${id}` },
        ]);
        expect(await produced(key)).toBe(id);
      }
    } finally {
      await reader.cancel();
    }
  });

  test("a client that stops reading stops the source, and leaving runs its finally", async () => {
    const key = uniqueKey("flood");
    const response = await fetch(`${origin()}/probe/flood?key=${key}`);
    const reader = readerOf(response);
    // Socket buffers and stream queues hold a few MiB at most; a source not held back passes this at once.
    const limit = (64 * 1024 * 1024) / FLOOD_EVENT_BYTES;
    try {
      await reader.read();
      const deadline = Date.now() + 10_000;
      let last = -1;
      let unchanged = 0;
      while (unchanged < 3) {
        const now = await produced(key);
        expect(now).toBeLessThan(limit);
        unchanged = now === last ? unchanged + 1 : 0;
        last = now;
        if (Date.now() > deadline) throw new Error(`the source never stopped: ${now} events produced`);
        await settle(50);
      }
      expect(last).toBeGreaterThan(0);
    } finally {
      await reader.cancel();
    }
    const cleaned = await within(fetch(`${origin()}/probe/cleaned?key=${key}`), 10_000, "the finally block");
    expect(await cleaned.text()).toBe(`cleaned ${key}\n`);
  });
});

describe("examples/node/demo.js, spawned", () => {
  let demo: Running | undefined;
  beforeAll(async () => {
    const outfile = await bundleNodeDemo("node-demo.test");
    demo = await startServer(process.execPath, [outfile], { env: { PORT: String(await freePort()) } });
  });
  afterAll(async () => {
    await demo?.stop();
  });

  demoScenario("node demo", () => demo?.origin ?? "");

  test("node demo: SIGTERM stops the server even with a stream open", async () => {
    if (demo === undefined) throw new Error("the demo did not start");
    const response = await fetch(`${demo.origin}/events`);
    const reader = readerOf(response);
    await reader.read();
    const exited = new Promise<number | null>((resolve) => demo?.child.once("exit", (code) => resolve(code)));
    demo.child.kill("SIGTERM");
    expect(await within(exited, 5_000, "the demo to exit")).toBe(0);
    await reader.cancel().catch(() => {});
  });
});
