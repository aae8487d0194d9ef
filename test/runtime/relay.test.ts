/**
 * examples/relay: a real node:http fake of an OpenAI-style upstream, scripted per request by its `model`, the
 * relay behind the Node bridge, and clients that POST with fetch and read with eventsource-parser (the
 * README's client recipe among them). What is measured happens at the upstream server: when its connection closed.
 */
import { readFile } from "node:fs/promises";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { toNodeHandler } from "eventsource-server/node";
import { afterAll, beforeAll, describe, expect, test, vi } from "vitest";
import { chat } from "../../examples/relay/client.js";
import { relay } from "../../examples/relay/relay.js";
import { type Deferred, deferred, parseWire, readerOf } from "../helpers.ts";
import { listenNode, ROOT, within } from "./harness.ts";

/** One request the fake upstream received: its model, and when its connection closed before the response ended. */
interface UpstreamCall {
  model: string;
  /** Resolves with `performance.now()` when the connection closed with the response unfinished. */
  cutOff: Deferred<number>;
  /** Lets a scripted response go on past its gate. */
  gate: Deferred<void>;
}

const chunk = (content: string) =>
  `data: ${JSON.stringify({ object: "chat.completion.chunk", choices: [{ index: 0, delta: { content } }] })}\n\n`;

/** A whole answer: two tokens, then [DONE]. */
function answer(res: ServerResponse): void {
  res.writeHead(200, { "content-type": "text/event-stream" });
  res.write(chunk("Hel"));
  res.write(chunk("lo"));
  res.end("data: [DONE]\n\n");
}

/** What the fake upstream does for each model name. */
const scripts: Record<string, (res: ServerResponse, call: UpstreamCall) => Promise<void> | void> = {
  ok: answer,
  // The model the README's client recipe asks for.
  demo: answer,
  async "held-first-token"(res, call) {
    res.writeHead(200, { "content-type": "text/event-stream" });
    res.flushHeaders();
    await call.gate.promise;
    res.end(`${chunk("late")}data: [DONE]\n\n`);
  },
  "silent-after-one"(res) {
    res.writeHead(200, { "content-type": "text/event-stream" });
    res.write(chunk("one"));
    // …and then nothing, ever: only the relay closing the connection ends this request.
  },
  "silent-before-headers"() {
    // No status, no headers: the relay is still awaiting fetch when its client leaves.
  },
  "rate-limited"(res) {
    res.writeHead(429, { "content-type": "application/json" });
    res.end('{"error":{"message":"slow down"}}');
  },
  broken(res) {
    res.writeHead(502, { "content-type": "text/plain" });
    res.end("bad gateway");
  },
  "dies-mid-stream"(res) {
    res.writeHead(200, { "content-type": "text/event-stream" });
    res.write(chunk("half"), () => res.socket?.destroy());
  },
  "no-done"(res) {
    res.writeHead(200, { "content-type": "text/event-stream" });
    res.end(chunk("cut"));
  },
};

const calls: UpstreamCall[] = [];
let upstream: Server | undefined;
let upstreamUrl = "";
let relayServer: Awaited<ReturnType<typeof listenNode>> | undefined;
let origin = "";

/** The upstream call for `model`, once the relay has made it. */
async function callFor(model: string): Promise<UpstreamCall> {
  for (let tries = 0; tries < 500; tries++) {
    const call = calls.find((c) => c.model === model);
    if (call !== undefined) return call;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  throw new Error(`the upstream never got a request for ${model}`);
}

beforeAll(async () => {
  upstream = createServer(async (req: IncomingMessage, res: ServerResponse) => {
    let text = "";
    for await (const part of req) text += part;
    const { model, stream } = JSON.parse(text) as { model: string; stream: boolean };
    expect(stream).toBe(true);
    const call: UpstreamCall = { model, cutOff: deferred<number>(), gate: deferred() };
    res.once("close", () => {
      if (!res.writableFinished) call.cutOff.resolve(performance.now());
    });
    calls.push(call);
    const script = scripts[model];
    if (script === undefined) throw new Error(`no script for ${model}`);
    await script(res, call);
  });
  await new Promise<void>((resolve) => upstream?.listen(0, "127.0.0.1", resolve));
  upstreamUrl = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}/v1/chat/completions`;
  relayServer = await listenNode(toNodeHandler, (request) =>
    relay(request, { url: upstreamUrl, headers: { authorization: "Bearer test" } }, { keepAlive: 100 }),
  );
  origin = relayServer.origin;
});

afterAll(async () => {
  await relayServer?.close();
  upstream?.closeAllConnections();
  await new Promise<void>((resolve) => upstream?.close(() => resolve()));
});

const post = (model: string, signal?: AbortSignal) =>
  within(
    fetch(`${origin}/chat`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model, messages: [{ role: "user", content: "hi" }] }),
      ...(signal ? { signal } : {}),
    }),
    10_000,
    `POST /chat for ${model}`,
  );

/** Reads a whole response body as text. */
async function wireOf(response: Response): Promise<string> {
  return within(response.text(), 10_000, "the relay's stream to end");
}

describe("examples/relay: POST /chat re-serves an OpenAI-style stream", () => {
  test("each upstream chunk is one event, the JSON text as it came, ending with [DONE]", async () => {
    const response = await post("ok");
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toBe("text/event-stream; charset=utf-8");
    const { events } = parseWire(await wireOf(response));
    expect(events.map((e) => e.data)).toEqual([chunk("Hel").slice(6, -2), chunk("lo").slice(6, -2), "[DONE]"]);
  });

  test("the README's client recipe (fetch and EventSourceParserStream) reads the answer's text", async () => {
    let text = "";
    for await (const part of chat(`${origin}/chat`, "hi")) text += part;
    expect(text).toBe("Hello");
  });

  test.each([
    ["rate-limited", 429, { error: { message: "slow down" } }],
    ["broken", 502, { error: { message: "bad gateway" } }],
  ])(
    "an upstream %s answer keeps its status %i and has a JSON body, before any stream starts",
    async (model, status, body) => {
      const response = await post(model);
      expect(response.status).toBe(status);
      expect(response.headers.get("content-type")).toBe("application/json");
      expect(await response.json()).toEqual(body);
    },
  );

  test("an upstream that cannot be reached is a 502 with a JSON body, and the relay logs why", async () => {
    const logged = vi.spyOn(console, "error").mockImplementation(() => {});
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, "127.0.0.1", resolve));
    const { port } = closed.address() as AddressInfo;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    const unreachable = await listenNode(toNodeHandler, (request) =>
      relay(request, { url: `http://127.0.0.1:${port}/` }),
    );
    try {
      const response = await fetch(`${unreachable.origin}/chat`, { method: "POST", body: "{}" });
      expect(response.status).toBe(502);
      expect(await response.json()).toEqual({ error: { message: "the upstream is unreachable" } });
      expect(logged.mock.calls).toEqual([["relay:", expect.objectContaining({ message: "fetch failed" })]]);
    } finally {
      await unreachable.close();
    }
  });

  test("a body that is not JSON is a 400 with a JSON error, and reaches no upstream", async () => {
    const before = calls.length;
    const response = await within(fetch(`${origin}/chat`, { method: "POST", body: "hello" }), 10_000, "POST");
    expect(response.status).toBe(400);
    expect(await response.json()).toEqual({ error: { message: "the body must be a JSON object" } });
    expect(calls.length).toBe(before);
  });

  test("the first chunk and keep-alives reach the client before the first token", async () => {
    const response = await post("held-first-token");
    const reader = readerOf(response);
    const decoder = new TextDecoder();
    try {
      expect(decoder.decode((await within(reader.read(), 10_000, "the first chunk")).value)).toBe(":\n\n");
      expect(decoder.decode((await within(reader.read(), 10_000, "a keep-alive")).value)).toBe(":\n\n");
      (await callFor("held-first-token")).gate.resolve();
      let wire = "";
      while (!wire.includes("[DONE]")) {
        const { done, value } = await within(reader.read(), 10_000, "the token");
        if (done) throw new Error(`ended early:\n${wire}`);
        wire += decoder.decode(value, { stream: true });
      }
      expect(parseWire(wire).events.map((e) => e.data)).toEqual([chunk("late").slice(6, -2), "[DONE]"]);
    } finally {
      await reader.cancel();
    }
  });

  test("a client leaving while the upstream is silent mid-stream closes the upstream connection", async () => {
    const response = await post("silent-after-one");
    const reader = readerOf(response);
    let wire = "";
    while (!wire.includes("one")) {
      const { value } = await within(reader.read(), 10_000, "the first token");
      wire += new TextDecoder().decode(value);
    }
    const call = await callFor("silent-after-one");
    const left = performance.now();
    await reader.cancel();
    // The upstream would stay silent forever: only the relay closing it resolves this.
    const closedAfterMs = (await within(call.cutOff.promise, 2_000, "the upstream connection to close")) - left;
    console.log(`upstream closed ${closedAfterMs.toFixed(1)} ms after the client left mid-stream`);
  });

  test("a client leaving before the upstream has answered at all closes the upstream connection", async () => {
    const controller = new AbortController();
    const pending = post("silent-before-headers", controller.signal).catch((error: unknown) => error);
    const call = await callFor("silent-before-headers");
    const left = performance.now();
    controller.abort();
    expect(await pending).toMatchObject({ name: "AbortError" });
    const closedAfterMs = (await within(call.cutOff.promise, 2_000, "the upstream connection to close")) - left;
    console.log(`upstream closed ${closedAfterMs.toFixed(1)} ms after the client left before the headers`);
  });

  test.each([
    ["dies-mid-stream", "half"],
    ["no-done", "cut"],
  ])(
    "an upstream that %s gives the client the event onError chooses, then a normal end, and the relay logs why",
    async (model, token) => {
      const logged = vi.spyOn(console, "error").mockImplementation(() => {});
      const response = await post(model);
      expect(response.status).toBe(200);
      const { events } = parseWire(await wireOf(response));
      expect(events).toEqual([
        { data: chunk(token).slice(6, -2) },
        { event: "error", data: '{"message":"the upstream stream broke off"}' },
      ]);
      expect(logged.mock.calls).toEqual([["relay:", expect.any(Error)]]);
    },
  );

  test("the recipes of docs/recipes.md are relay.js's and client.js's own code, byte for byte", async () => {
    const readme = await readFile(`${ROOT}docs/recipes.md`, "utf8");
    for (const file of ["examples/relay/relay.js", "examples/relay/client.js"]) {
      const source = await readFile(`${ROOT}${file}`, "utf8");
      const recipe = /\/\/ #region recipe\n([\s\S]*?)\n\/\/ #endregion recipe/.exec(source)?.[1];
      expect(recipe, `${file} has a recipe region`).toBeDefined();
      // A boolean, so a failure names the file instead of printing the whole page.
      expect(
        readme.includes(`\`\`\`js ignore\n${recipe}\n\`\`\``),
        `docs/recipes.md holds ${file}'s recipe verbatim`,
      ).toBe(true);
    }
  });
});
