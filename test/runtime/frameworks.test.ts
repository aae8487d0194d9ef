/**
 * Express, Fastify and Koa through eventsource-server/node: each serving the probe routes in this process the way
 * its example does (read by the `eventsource` package), and each example spawned and read by real clients; and
 * the h2c example, read by node:http2's client.
 */

import { readFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { connect as http2Connect } from "node:http2";
import type { AddressInfo } from "node:net";
import { EventSource } from "eventsource";
import { toNodeHandler } from "eventsource-server/node";
import express from "express";
import Fastify, { type FastifyInstance } from "fastify";
import Koa from "koa";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { parseWire } from "../helpers.ts";
import {
  bundleExample,
  clientScenarios,
  connectWith,
  fetchEvents,
  ROOT,
  type Running,
  startServer,
  within,
} from "./harness.ts";
import { probe } from "./probe.ts";

const probeOr404 = toNodeHandler((request) => probe(request) ?? new Response("not found\n", { status: 404 }));

/** An http.Server on 127.0.0.1, port 0; its origin, and a close that ends open streams too. */
async function listening(server: Server): Promise<{ origin: string; close(): Promise<void> }> {
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/** Registers the client scenarios against a framework app started in `beforeAll`. */
function inProcess(label: string, start: () => Promise<{ origin: string; close(): Promise<void> }>): void {
  describe(`${label} in this process, read by the eventsource package`, () => {
    let app: Awaited<ReturnType<typeof start>> | undefined;
    beforeAll(async () => {
      app = await start();
    });
    afterAll(async () => {
      await app?.close();
    });
    clientScenarios(label, () => app?.origin ?? "", connectWith(EventSource));
  });
}

inProcess("express", () => {
  const app = express();
  app.use(express.json());
  app.all(/.*/, probeOr404);
  return listening(createServer(app));
});

inProcess("fastify", async () => {
  const app: FastifyInstance = Fastify({ forceCloseConnections: true });
  app.all("/*", (request, reply) => {
    reply.hijack();
    return probeOr404(request.raw, reply.raw);
  });
  await app.listen({ port: 0, host: "127.0.0.1" });
  return {
    origin: `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`,
    close: () => app.close(),
  };
});

inProcess("koa", () => {
  const app = new Koa();
  app.use(async (ctx) => {
    ctx.respond = false;
    await probeOr404(ctx.req, ctx.res);
  });
  return listening(createServer(app.callback()));
});

/** Starts an example as its README says, but bundled so that the package name means this checkout's source. */
function spawned(folder: string, external: string[]): () => Running {
  let running: Running | undefined;
  beforeAll(async () => {
    const outfile = await bundleExample(`examples/${folder}/server.js`, `${folder}-example.test`, external);
    running = await startServer(process.execPath, [outfile], { env: { PORT: "0" } });
  });
  afterAll(async () => {
    await running?.stop();
  });
  return () => {
    if (running === undefined) throw new Error(`examples/${folder} did not start`);
    return running;
  };
}

/** What every framework example serves on `/events`, checked with fetch and with a real EventSource. */
function tickScenarios(label: string, example: () => Running): void {
  test(`${label}: /events resumes after Last-Event-ID with ticks, and retry first`, async () => {
    const { response, events, retries } = await fetchEvents(`${example().origin}/events`, 1, { "last-event-id": "41" });
    expect(response.headers.get("content-type")).toBe("text/event-stream; charset=utf-8");
    expect(retries).toEqual([2_000]);
    expect(events[0]).toMatchObject({ event: "tick", id: "42" });
    expect(Date.parse(events[0]?.data ?? "")).not.toBeNaN();
  });

  test(`${label}: a real EventSource opens and receives ticks with ids`, async () => {
    const client = await connectWith(EventSource)(`${example().origin}/events`, ["tick"]);
    try {
      await client.seen.next("open");
      const tick = await client.seen.next("event");
      expect(tick).toMatchObject({ type: "tick", lastEventId: "1" });
    } finally {
      await client.close();
    }
  });

  test(`${label}: SIGTERM stops the server even with a stream open`, async () => {
    const running = example();
    const response = await fetch(`${running.origin}/events`);
    const reader = response.body?.getReader();
    await reader?.read();
    const exited = new Promise<number | null>((resolve) => running.child.once("exit", (code) => resolve(code)));
    running.child.kill("SIGTERM");
    expect(await within(exited, 5_000, `the ${label} example to exit`)).toBe(0);
    await reader?.cancel().catch(() => {});
  });
}

/** The POST route of a framework example: a JSON body in, one event per word out. */
function wordsScenario(label: string, example: () => Running): void {
  test(`${label}: POST /words answers its JSON body with an event stream`, async () => {
    const response = await fetch(`${example().origin}/words`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ text: "streamed   word by word" }),
    });
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toBe("text/event-stream; charset=utf-8");
    expect(parseWire(await response.text()).events).toEqual(
      ["streamed", "word", "by", "word"].map((data) => ({ event: "word", data })),
    );
  });
}

describe("examples/express, spawned", () => {
  const example = spawned("express", ["express"]);
  wordsScenario("express example", example);
  tickScenarios("express example", example);
});

describe("examples/fastify, spawned", () => {
  const example = spawned("fastify", ["fastify"]);
  wordsScenario("fastify example", example);
  tickScenarios("fastify example", example);
});

describe("examples/koa, spawned", () => {
  const example = spawned("koa", ["koa"]);
  tickScenarios("koa example", example);
});

describe("examples/http2 (h2c), spawned", () => {
  const example = spawned("http2", []);

  test("http2 example: two streams on one connection each get their ticks, resumed after Last-Event-ID", async () => {
    const session = http2Connect(example().origin);
    try {
      const texts = await Promise.all(
        ["41", "99"].map(
          (last) =>
            new Promise<{ status: unknown; text: string }>((resolve, reject) => {
              const stream = session.request({ ":path": "/events", "last-event-id": last });
              let status: unknown;
              let text = "";
              stream.once("response", (headers) => {
                status = headers[":status"];
              });
              stream.setEncoding("utf8");
              stream.on("data", (chunk: string) => {
                text += chunk;
                if (parseWire(text).events.length > 0) {
                  stream.close();
                  resolve({ status, text });
                }
              });
              stream.once("error", reject);
            }),
        ),
      );
      expect(texts.map(({ status }) => status)).toEqual([200, 200]);
      expect(texts.map(({ text }) => parseWire(text).events[0]?.id)).toEqual(["42", "100"]);
    } finally {
      session.destroy();
    }
  });

  test("http2 example: SIGTERM stops the server even with a stream open", async () => {
    const running = example();
    const session = http2Connect(running.origin);
    session.on("error", () => {});
    const stream = session.request({ ":path": "/events" });
    stream.on("error", () => {});
    await within(new Promise((resolve) => stream.once("data", resolve)), 10_000, "the first chunk");
    const exited = new Promise<number | null>((resolve) => running.child.once("exit", (code) => resolve(code)));
    running.child.kill("SIGTERM");
    expect(await within(exited, 5_000, "the http2 example to exit")).toBe(0);
    session.destroy();
  });
});

describe("the Node section of docs/runtimes.md", () => {
  const readme = readFileSync(`${ROOT}docs/runtimes.md`, "utf8");
  const excerpts = [...readme.matchAll(/```js ignore\n\/\/ (examples\/[\w-]+\/server\.js)\n([\s\S]*?)```/g)];

  test("quotes Express, Fastify and Koa from their examples", () => {
    expect(excerpts.map(([, file]) => file)).toEqual([
      "examples/express/server.js",
      "examples/fastify/server.js",
      "examples/koa/server.js",
    ]);
  });

  test.each(excerpts.map(([, file, code]) => [file as string, code as string]))(
    "every line of the excerpt of %s is in that file, in order",
    (file, code) => {
      const source = readFileSync(`${ROOT}${file}`, "utf8");
      let from = 0;
      for (const line of code.split("\n").filter((one) => one.trim() !== "")) {
        const at = source.indexOf(`${line}\n`, from);
        expect(at, `${JSON.stringify(line)} in ${file} after offset ${from}`).toBeGreaterThanOrEqual(0);
        from = at + line.length;
      }
    },
  );
});
