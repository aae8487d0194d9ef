/**
 * Node: `toNodeHandler` of eventsource-server/node serving the probe routes in this process, read by the `eventsource`
 * package, undici's EventSource, and plain fetch with an independent parser; and the demo itself, spawned.
 */
import { readFile } from "node:fs/promises";
import { EventSource as EventSourcePackage } from "eventsource";
import { toNodeHandler } from "eventsource-server/node";
import { EventSource as UndiciEventSource } from "undici";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { type ParsedEvent, parseWire, readerOf, settle } from "../helpers.ts";
import {
  bundleNodeDemo,
  clientScenarios,
  connectWith,
  freePort,
  listenNode,
  ROOT,
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
  const demoOrigin = (): string => {
    if (demo === undefined) throw new Error("the demo did not start");
    return demo.origin;
  };
  beforeAll(async () => {
    const outfile = await bundleNodeDemo("node-demo.test");
    demo = await startServer(process.execPath, [outfile], { env: { PORT: String(await freePort()) } });
  });
  afterAll(async () => {
    await demo?.stop();
  });

  /** An open stream on the demo, read with fetch and eventsource-parser. */
  async function openDemoStream(path: string, headers: Record<string, string> = {}) {
    const response = await within(fetch(`${demoOrigin()}${path}`, { headers }), 10_000, `fetch ${path}`);
    expect(response.headers.get("content-type")).toBe("text/event-stream; charset=utf-8");
    const reader = readerOf(response);
    const decoder = new TextDecoder();
    let wire = "";
    return {
      /** Reads until an event matches, and returns every event so far. */
      async until(match: (event: ParsedEvent) => boolean): Promise<ParsedEvent[]> {
        for (let reads = 0; reads < 100; reads++) {
          const { events } = parseWire(wire);
          if (events.some(match)) return events;
          const { done, value } = await within(reader.read(), 10_000, `the next chunk of ${path}`);
          if (done) throw new Error(`${path} ended:\n${wire}`);
          wire += decoder.decode(value, { stream: true });
        }
        throw new Error(`no matching event in 100 chunks of ${path}:\n${wire}`);
      },
      /** Resolves once the stream has ended normally. */
      async ended(): Promise<void> {
        for (let reads = 0; reads < 100; reads++) {
          const { done } = await within(reader.read(), 10_000, `the end of ${path}`);
          if (done) return;
        }
        throw new Error(`${path} did not end`);
      },
      close: () => reader.cancel(),
    };
  }

  const publish = (text: string) =>
    within(fetch(`${demoOrigin()}/publish`, { method: "POST", body: text }), 10_000, "POST /publish");

  test("node demo: a note published with POST /publish reaches every open stream, with the same id", async () => {
    const alice = await openDemoStream("/events");
    const bob = await openDemoStream("/events");
    try {
      await Promise.all([alice.until((e) => e.event === "tick"), bob.until((e) => e.event === "tick")]);
      expect((await publish("hello, both")).status).toBe(204);
      const isNote = (e: ParsedEvent) => e.event === "note" && JSON.parse(e.data).text === "hello, both";
      const [seenByAlice, seenByBob] = await Promise.all([alice.until(isNote), bob.until(isNote)]);
      expect(seenByAlice.find(isNote)?.id).toMatch(/^\d+$/);
      expect(seenByAlice.find(isNote)?.id).toBe(seenByBob.find(isNote)?.id);
    } finally {
      await Promise.all([alice.close(), bob.close()]);
    }
  });

  test("node demo: a client resuming from Last-Event-ID gets every event after it, in order, nothing lost", async () => {
    const first = await openDemoStream("/events");
    const [tick] = await first.until((e) => e.event === "tick");
    await first.close();
    const lastSeen = Number(tick?.id);
    expect(lastSeen).toBeGreaterThan(0);
    expect((await publish("while away")).status).toBe(204);
    const resumed = await openDemoStream("/events", { "last-event-id": String(lastSeen) });
    try {
      const events = await resumed.until((e) => e.event === "note" && JSON.parse(e.data).text === "while away");
      const ids = events.map((e) => Number(e.id));
      expect(ids[0]).toBe(lastSeen + 1);
      expect(ids).toEqual(ids.map((_, i) => lastSeen + 1 + i));
    } finally {
      await resumed.close();
    }
  });

  test("node demo: POST /drop ends that tab's stream normally, and an unknown tab is a 404", async () => {
    const tab = await openDemoStream("/events?tab=t1");
    await tab.until((e) => e.event === "tick");
    expect((await fetch(`${demoOrigin()}/drop?tab=t1`, { method: "POST" })).status).toBe(204);
    await tab.ended();
    expect((await fetch(`${demoOrigin()}/drop?tab=nobody`, { method: "POST" })).status).toBe(404);
  });

  test("node demo: the page shows demo.js's served code byte for byte, and its icon is served", async () => {
    const source = await readFile(`${ROOT}examples/node/demo.js`, "utf8");
    const region = /\/\/ #region served\n([\s\S]*?)\n\/\/ #endregion served/.exec(source)?.[1];
    expect(region).toContain("channel.response(request, { retry: 2_000, signal: dropSignal(request) });");
    const html = await (await fetch(`${demoOrigin()}/`)).text();
    expect(html).toContain('<link rel="icon" href="/favicon.svg"');
    const shown = /<pre><code>([\s\S]*?)<\/code><\/pre>/.exec(html)?.[1] ?? "";
    const text = shown
      .replace(/<[^>]+>/g, "")
      .replaceAll("&lt;", "<")
      .replaceAll("&gt;", ">")
      .replaceAll("&amp;", "&");
    expect(text).toBe(region);
    for (const path of ["/favicon.svg", "/favicon.ico"]) {
      const icon = await fetch(`${demoOrigin()}${path}`);
      expect(icon.status).toBe(200);
      expect(icon.headers.get("content-type")).toBe("image/svg+xml");
      expect(await icon.text()).toMatch(/^<svg /);
    }
  });

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
