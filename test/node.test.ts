/**
 * `eventsource-server/node` on Node's own servers, over real sockets on 127.0.0.1: node:http, node:https,
 * node:http2 (h2c and TLS) and Express, read by fetch, node:http and node:http2 clients and eventsource-parser.
 */
import { readdirSync, readFileSync } from "node:fs";
import {
  type ClientRequest,
  createServer,
  request as httpRequest,
  type IncomingMessage,
  type RequestListener,
  type Server,
  ServerResponse,
} from "node:http";
import {
  type ClientHttp2Session,
  type ClientHttp2Stream,
  constants,
  createServer as createHttp2Server,
  createSecureServer,
  type Http2SecureServer,
  type Http2Server,
  type Http2ServerRequest,
  type Http2ServerResponse,
  connect as http2Connect,
} from "node:http2";
import { createServer as createHttpsServer, request as httpsRequest } from "node:https";
import { type AddressInfo, connect } from "node:net";
import { Readable } from "node:stream";
import { EventChannel, eventSourceResponse, lastEventId } from "eventsource-server";
import {
  type FetchHandler,
  type NodeRequest,
  type NodeResponse,
  sendResponse,
  toNodeHandler,
  toRequest,
} from "eventsource-server/node";
import express from "express";
import { generate } from "selfsigned";
import { afterEach, describe, expect, test, vi } from "vitest";
import { collectGarbage, type Deferred, deferred, parseWire, readAll, readerOf, settle } from "./helpers.ts";
import { within } from "./runtime/harness.ts";

type AnyServer = Server | Http2Server | Http2SecureServer;

/** Servers and client sessions a test opened; closed after it, whatever happened. */
const opened: { close(): Promise<void> }[] = [];
afterEach(async () => {
  await Promise.all(opened.splice(0).map((one) => one.close()));
});

/** Starts `server` on 127.0.0.1, port 0, and closes it (and every connection) after the test. */
async function listen(server: AnyServer, scheme = "http"): Promise<string> {
  const sockets = new Set<{ destroy(): void }>();
  server.on("connection", (socket: { destroy(): void; once(event: "close", listener: () => void): void }) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen({ port: 0, host: "127.0.0.1", backlog: 2048 }, resolve));
  opened.push({
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const socket of sockets) socket.destroy();
      }),
  });
  return `${scheme}://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

/** An HTTP/1 server of `listener`; its origin. */
function serve(listener: RequestListener): Promise<string> {
  return listen(createServer(listener));
}

/** An h2c client session, closed after the test. */
function h2(origin: string, options: { ca?: string } = {}): ClientHttp2Session {
  const session = http2Connect(origin, options);
  opened.push({
    close: () =>
      new Promise<void>((resolve) => {
        if (session.destroyed) resolve();
        else session.close(() => resolve());
        session.destroy();
      }),
  });
  return session;
}

/** A source whose events are let out one at a time by the test, counting what it produced. */
function gated(count = Number.POSITIVE_INFINITY) {
  const gates: Deferred<void>[] = [];
  const gate = (i: number): Deferred<void> => {
    gates[i] ??= deferred();
    return gates[i] as Deferred<void>;
  };
  const finished = deferred();
  const state = {
    produced: 0,
    signal: undefined as AbortSignal | undefined,
    release(i: number) {
      gate(i).resolve();
    },
    finished: finished.promise,
    async *events({ signal }: { signal: AbortSignal }) {
      state.signal = signal;
      try {
        for (let i = 1; i <= count; i++) {
          const aborted = new Promise<void>((resolve) => signal.addEventListener("abort", () => resolve()));
          await Promise.race([gate(i).promise, aborted]);
          if (signal.aborted) return;
          state.produced = i;
          yield { event: "step", id: i, data: `step ${i}` };
        }
      } finally {
        finished.resolve();
      }
    },
  };
  return state;
}

/** Reads an HTTP/1 response's body as text until `until` holds. */
function readUntil(res: IncomingMessage, until: (text: string) => boolean, what: string): Promise<string> {
  let text = "";
  res.setEncoding("utf8");
  return within(
    new Promise<string>((resolve, reject) => {
      const onData = (chunk: string): void => {
        text += chunk;
        if (until(text)) {
          res.off("data", onData);
          resolve(text);
        }
      };
      res.on("data", onData);
      res.once("error", reject);
      res.once("end", () => reject(new Error(`the body ended before ${what}: ${JSON.stringify(text)}`)));
    }),
    10_000,
    what,
  );
}

/** Sends one HTTP/1 request without a pooled connection; the response once its headers arrive. */
function get(
  url: string,
  options: { method?: string; headers?: Record<string, string | string[]> } = {},
): { req: ClientRequest; response: Promise<IncomingMessage> } {
  const req = httpRequest(url, { agent: false, ...options });
  const response = within(
    new Promise<IncomingMessage>((resolve, reject) => {
      req.once("response", resolve);
      req.once("error", reject);
    }),
    10_000,
    `the headers of ${url}`,
  );
  req.end();
  return { req, response };
}

const events = (text: string) => parseWire(text).events;

describe("1,000 clients leaving after the first event", () => {
  // First in the file: the counts of timers and sockets are compared with those before it.
  test("toNodeHandler runs 1,000 finally blocks, with no unhandled rejection, timer or socket left", async () => {
    const count = 1_000;
    const before = await baseline();
    let unhandled = 0;
    const onUnhandled = (): void => {
      unhandled += 1;
    };
    process.on("unhandledRejection", onUnhandled);
    let finallies = 0;
    let aborted = 0;
    let resolved = 0;
    const allFinished = deferred();
    const allResolved = deferred();
    const handler = toNodeHandler(() =>
      eventSourceResponse(async function* ({ signal }) {
        try {
          yield { event: "hello", data: "first" };
          // Waits as a real source waits for its next event: until the client leaves.
          await new Promise<void>((resolve) => signal.addEventListener("abort", () => resolve()));
        } finally {
          finallies += 1;
          if (finallies === count) allFinished.resolve();
        }
      }),
    );
    const server = createServer((req, res) => {
      toRequest(req, res).signal.addEventListener("abort", () => {
        aborted += 1;
      });
      void handler(req, res).then(() => {
        resolved += 1;
        if (resolved === count) allResolved.resolve();
      });
    });
    const origin = await listen(server);
    const started = performance.now();
    let open: ReturnType<typeof resourceCounts>;
    try {
      const clients = await within(
        Promise.all(
          Array.from({ length: count }, async (_, i) => {
            const { req, response } = get(`${origin}/events`);
            const res = await response;
            await readUntil(res, (text) => events(text).length > 0, `client ${i}'s first event`);
            return { req, socket: res.socket };
          }),
        ),
        60_000,
        "1,000 clients to read their first event",
      );
      open = resourceCounts();
      await within(
        Promise.all(
          clients.map(({ req, socket }, i) => {
            const closed = new Promise<void>((resolve) => socket.once("close", () => resolve()));
            // Half leave cleanly (FIN), half with a reset (RST), as a closed tab and a dropped network do.
            if (i % 2 === 0) req.destroy();
            else socket.resetAndDestroy();
            return closed;
          }),
        ),
        30_000,
        "1,000 clients to leave",
      );
      await within(Promise.all([allFinished.promise, allResolved.promise]), 30_000, "1,000 finally blocks");
    } finally {
      await Promise.all(opened.splice(0).map((one) => one.close()));
      process.off("unhandledRejection", onUnhandled);
    }
    const elapsedMs = Math.round(performance.now() - started);
    // Vitest's own messages to its main process start short-lived timers; ours would never go.
    const after = await settled(before);
    console.log(
      `node ${process.version}: ${finallies} finally blocks, ${aborted} signals aborted, ${unhandled} unhandled ` +
        `rejections; while open: ${open.timers} timers, ${open.sockets} sockets; after: ${after.timers - before.timers} ` +
        `timers, ${after.sockets - before.sockets} sockets, ${after.servers - before.servers} servers; ${elapsedMs} ms`,
    );
    // The counts while every stream was open show what had to go: a socket at each end, and the keep-alive timer.
    expect(open.sockets).toBeGreaterThanOrEqual(before.sockets + 2 * count);
    expect(open.timers).toBeGreaterThan(before.timers);
    expect(finallies).toBe(count);
    expect(resolved).toBe(count);
    expect(aborted).toBe(count);
    expect(unhandled).toBe(0);
    expect(after.timers).toBeLessThanOrEqual(before.timers);
    expect(after.sockets).toBe(before.sockets);
    expect(after.servers).toBe(before.servers);
  });
});

/** The fewest timers, sockets and servers seen over ten samples 20 ms apart: vitest's own come and go. */
async function baseline(): Promise<ReturnType<typeof resourceCounts>> {
  let least = resourceCounts();
  for (let i = 0; i < 10; i++) {
    await new Promise((resolve) => setTimeout(resolve, 20));
    const now = resourceCounts();
    least = {
      timers: Math.min(least.timers, now.timers),
      sockets: Math.min(least.sockets, now.sockets),
      servers: Math.min(least.servers, now.servers),
    };
  }
  return least;
}

/** The resource counts once they are back to `before` or below, or as they are after 5 s of waiting. */
async function settled(before: ReturnType<typeof resourceCounts>): Promise<ReturnType<typeof resourceCounts>> {
  const deadline = Date.now() + 5_000;
  for (;;) {
    await settle();
    const now = resourceCounts();
    const back = now.timers <= before.timers && now.sockets <= before.sockets && now.servers <= before.servers;
    if (back || Date.now() > deadline) return now;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/**
 * Reads `read()` until it has not changed over three rounds of the task queue in a row, and returns it; fails if
 * it passes `bound` or never stops changing.
 */
async function steady(read: () => number, bound: number, what: string): Promise<number> {
  const deadline = Date.now() + 10_000;
  let last = -1;
  let unchanged = 0;
  while (unchanged < 3) {
    const now = read();
    if (now >= bound) throw new Error(`passed ${bound} waiting for ${what}`);
    unchanged = now === last ? unchanged + 1 : 0;
    last = now;
    if (Date.now() > deadline) throw new Error(`gave up waiting for ${what}: still changing at ${now}`);
    await settle(50);
  }
  return last;
}

function resourceCounts(): { timers: number; sockets: number; servers: number } {
  const info = process.getActiveResourcesInfo();
  const counted = (name: string) => info.filter((one) => one === name).length;
  return { timers: counted("Timeout"), sockets: counted("TCPSocketWrap"), servers: counted("TCPServerWrap") };
}

describe("sendResponse over node:http", () => {
  test("the headers arrive before the source yields, then each event arrives alone as it is yielded", async () => {
    const source = gated();
    const origin = await serve(toNodeHandler((request) => eventSourceResponse(source.events, { request })));
    const response = await within(fetch(origin), 10_000, "the headers");
    const reader = readerOf(response);
    try {
      expect(response.status).toBe(200);
      expect(response.headers.get("content-type")).toBe("text/event-stream; charset=utf-8");
      expect(source.produced).toBe(0);
      expect(new TextDecoder().decode((await reader.read()).value)).toBe(":\n\n");
      for (const id of [1, 2, 3]) {
        source.release(id);
        const chunk = await within(reader.read(), 10_000, `step ${id}`);
        expect(events(new TextDecoder().decode(chunk.value))).toEqual([
          { event: "step", id: String(id), data: `step ${id}` },
        ]);
        expect(source.produced).toBe(id);
      }
    } finally {
      await reader.cancel();
    }
    await within(source.finished, 10_000, "the source's finally");
  });

  test("the status and headers go out before the body's first byte exists", async () => {
    const first = deferred<Uint8Array>();
    const origin = await serve(
      toNodeHandler(
        () =>
          new Response(
            new ReadableStream<Uint8Array>({
              async pull(controller) {
                controller.enqueue(await first.promise);
                controller.close();
              },
            }),
            { status: 202, headers: { "content-type": "text/event-stream" } },
          ),
      ),
    );
    const res = await get(origin).response;
    expect(res.statusCode).toBe(202);
    expect(res.headers["content-type"]).toBe("text/event-stream");
    first.resolve(new TextEncoder().encode("data: late\n\n"));
    expect(await readUntil(res, (text) => text.endsWith("\n\n"), "the body")).toBe("data: late\n\n");
  });

  test("a multi-line Unicode event reaches eventsource-parser exactly", async () => {
    const data = "héllo wörld ☕\r\nсекунда 😀\rlast line, then an empty one\n";
    const origin = await serve(
      toNodeHandler(() => eventSourceResponse([{ event: "ünïcode", id: "é-1", data }, "done"])),
    );
    const text = await (await fetch(origin)).text();
    expect(events(text)).toEqual([
      { event: "ünïcode", id: "é-1", data: data.replace(/\r\n?/g, "\n") },
      { data: "done" },
    ]);
  });

  test("a client that stops reading holds the source to a bounded number of events, and reading again resumes it", async () => {
    const eventBytes = 64 * 1024;
    let advanced = 0;
    const finished = deferred();
    const origin = await serve(
      toNodeHandler(() =>
        eventSourceResponse(
          async function* () {
            try {
              for (;;) {
                advanced += 1;
                yield "x".repeat(eventBytes);
                // A task boundary per event, as a real source has: without one, a sender that ignored
                // backpressure would never let the test look.
                await new Promise((resolve) => setImmediate(resolve));
              }
            } finally {
              finished.resolve();
            }
          },
          { keepAlive: false },
        ),
      ),
    );
    const { req, response } = get(origin);
    const res = await response;
    res.socket.pause();
    // Kernel buffers on loopback hold a few MiB: 1,024 events of 64 KiB is 64 MiB, far past them.
    const bound = 1_024;
    const stoppedAt = await steady(() => advanced, bound, "the source to stop while the client is paused");
    expect(stoppedAt).toBeGreaterThan(0);
    expect(stoppedAt).toBeLessThan(bound);
    res.socket.resume();
    res.resume();
    const deadline = Date.now() + 10_000;
    while (advanced < stoppedAt + 100) {
      if (Date.now() > deadline) throw new Error(`the source did not resume: ${advanced} after ${stoppedAt}`);
      await settle(10);
    }
    req.destroy();
    await within(finished.promise, 10_000, "the source's finally");
    console.log(`node ${process.version}: a paused client held the source to ${stoppedAt} events of 64 KiB`);
  });

  test("HEAD gets the headers only, and the body is cancelled unread", async () => {
    const cancelled = deferred<unknown>();
    let pulls = 0;
    const listener = toNodeHandler(
      () =>
        new Response(
          new ReadableStream<Uint8Array>(
            {
              pull() {
                pulls += 1;
              },
              cancel: (reason) => cancelled.resolve(reason),
            },
            { highWaterMark: 0 },
          ),
          { headers: { "content-type": "text/event-stream" } },
        ),
    );
    const over = deferred();
    const origin = await serve((req, res) => void listener(req, res).then(() => over.resolve()));
    const res = await get(origin, { method: "HEAD" }).response;
    expect(res.headers["content-type"]).toBe("text/event-stream");
    expect(await readAll(readerOf(new Response(Readable.toWeb(res) as ReadableStream<Uint8Array>)))).toBe("");
    await within(cancelled.promise, 10_000, "the body to be cancelled");
    await within(over.promise, 10_000, "sendResponse to resolve");
    expect(pulls).toBe(0);
  });

  test("several set-cookie headers reach the client as they were set, with the status text", async () => {
    const origin = await serve(
      toNodeHandler(() => {
        const headers = new Headers({ "x-kind": "cookies" });
        headers.append("set-cookie", "a=1; Path=/");
        headers.append("set-cookie", "b=2, with a comma; Path=/");
        return new Response("ok", { status: 201, statusText: "Made", headers });
      }),
    );
    const res = await get(origin).response;
    res.resume();
    expect(res.statusCode).toBe(201);
    expect(res.statusMessage).toBe("Made");
    expect(res.headers["set-cookie"]).toEqual(["a=1; Path=/", "b=2, with a comma; Path=/"]);
    expect(res.headers["x-kind"]).toBe("cookies");
  });

  test("a body that errors mid-stream destroys the connection: the client sees a failure, not an end", async () => {
    const errorLog = vi.spyOn(console, "error").mockImplementation(() => {});
    const source = gated(2);
    const boom = new Error("the source broke");
    const origin = await serve(
      toNodeHandler(() =>
        eventSourceResponse(
          async function* (context) {
            yield* source.events(context);
            throw boom;
          },
          {
            onError: (error) => {
              throw error;
            },
          },
        ),
      ),
    );
    const { response } = get(origin);
    const res = await response;
    source.release(1);
    await readUntil(res, (text) => events(text).length === 1, "the first event");
    const failed = new Promise<unknown>((resolve) => res.once("error", resolve));
    const closed = new Promise<boolean>((resolve) => res.once("close", () => resolve(res.complete)));
    source.release(2);
    expect(await within(failed, 10_000, "the response to fail")).toMatchObject({ code: "ECONNRESET" });
    expect(await closed).toBe(false);
    expect(errorLog).toHaveBeenCalledWith(
      expect.stringMatching(/^sendResponse: the body failed: Error: the source broke \(at /),
    );
  });

  test("a body chunk that is not bytes fails the connection and cancels the body", async () => {
    const errorLog = vi.spyOn(console, "error").mockImplementation(() => {});
    const cancelled = deferred<unknown>();
    const origin = await serve(
      toNodeHandler(
        () =>
          new Response(
            new ReadableStream({
              start(controller) {
                controller.enqueue(42);
              },
              cancel: (reason) => cancelled.resolve(reason),
            }),
          ),
      ),
    );
    const res = await get(origin).response;
    const failed = new Promise<unknown>((resolve) => res.once("error", resolve));
    res.resume();
    expect(await within(failed, 10_000, "the response to fail")).toMatchObject({ code: "ECONNRESET" });
    expect(await within(cancelled.promise, 10_000, "the body to be cancelled")).toMatchObject({
      code: "ERR_INVALID_ARG_TYPE",
    });
    expect(errorLog).toHaveBeenCalledTimes(1);
  });

  test("sendResponse resolves after the client leaves, with the body cancelled", async () => {
    const source = gated();
    const over = deferred();
    const origin = await serve((_req, res) => {
      void sendResponse(res, eventSourceResponse(source.events)).then(() => over.resolve());
    });
    const { req, response } = get(origin);
    await response;
    req.destroy();
    await within(Promise.all([over.promise, source.finished]), 10_000, "sendResponse and the finally block");
  });

  test("sendResponse rejects a value that is not a Response with a TypeError, synchronously", async () => {
    const origin = await serve((_req, res) => {
      expect(() => sendResponse(res, "hello" as unknown as Response)).toThrowError(
        new TypeError('sendResponse: response must be a Response, got "hello"'),
      );
      res.end();
    });
    (await get(origin).response).resume();
  });
});

describe("toNodeHandler", () => {
  test.each([
    ["rejects", () => Promise.reject(new Error("secret detail"))],
    [
      "throws",
      () => {
        throw new Error("secret detail");
      },
    ],
  ])("a handler that %s gets a bare 500, and the error goes to console.error only", async (_, handler) => {
    const errorLog = vi.spyOn(console, "error").mockImplementation(() => {});
    const origin = await serve(toNodeHandler(handler as FetchHandler));
    const response = await fetch(origin);
    expect(response.status).toBe(500);
    expect(response.headers.get("content-type")).toBeNull();
    expect(await response.text()).toBe("");
    expect(errorLog).toHaveBeenCalledTimes(1);
    expect(String(errorLog.mock.calls[0]?.[0])).toContain("secret detail");
  });

  test("a handler that returns no Response gets a bare 500 that says why in the log", async () => {
    const errorLog = vi.spyOn(console, "error").mockImplementation(() => {});
    const origin = await serve(toNodeHandler((() => "text") as unknown as FetchHandler));
    const response = await fetch(origin);
    expect(response.status).toBe(500);
    expect(await response.text()).toBe("");
    expect(errorLog).toHaveBeenCalledWith(
      expect.stringMatching(
        /^toNodeHandler: the handler failed: TypeError: toNodeHandler: handler must return a Response, got "text"/,
      ),
    );
  });

  test("a Host header that is more than a host gets a bare 400, and the handler is not called", async () => {
    const handler = vi.fn(() => new Response("never"));
    const origin = await serve(toNodeHandler(handler));
    const res = await get(origin, { headers: { host: "evil.test/x?" } }).response;
    res.resume();
    expect(res.statusCode).toBe(400);
    expect(handler).not.toHaveBeenCalled();
  });

  test("toNodeHandler rejects a handler that is not a function with a TypeError", () => {
    expect(() => toNodeHandler("handler" as unknown as FetchHandler)).toThrowError(
      new TypeError('toNodeHandler: handler must be a function, got "handler"'),
    );
  });
});

/** Waits, polling every 10 ms, until `check` holds; fails with `what` after 10 s. */
async function until(check: () => boolean, what: string): Promise<void> {
  await within(
    (async () => {
      while (!check()) await new Promise((resolve) => setTimeout(resolve, 10));
    })(),
    10_000,
    what,
  );
}

describe("toNodeHandler, memory", () => {
  test("a stream whose handler never reads request.signal makes no signal, and still stops when its client leaves", async () => {
    const count = 20;
    const aborts = vi.spyOn(AbortController.prototype, "abort");
    let cancelled = 0;
    const allCancelled = deferred();
    const origin = await serve(
      toNodeHandler((request) => {
        const source = new ReadableStream({
          start(controller) {
            controller.enqueue({ data: "first" });
          },
          cancel() {
            cancelled += 1;
            if (cancelled === count) allCancelled.resolve();
          },
        });
        return eventSourceResponse(source, { request });
      }),
    );
    const clients = await Promise.all(
      Array.from({ length: count }, async () => {
        const client = get(origin);
        await readUntil(await client.response, (text) => text.includes("data: first\n\n"), "the first event");
        return client;
      }),
    );
    for (const client of clients) client.req.destroy();
    await within(allCancelled.promise, 10_000, "every source to be cancelled");
    // The Node entry cancels the body itself: a signal made for the stream would cost an AbortController and, when
    // the client leaves, an abort with its DOMException.
    expect(aborts).not.toHaveBeenCalled();
    aborts.mockRestore();
  });

  test("an open stream does not keep its Response alive: only the body is needed to send it", async () => {
    const responses: WeakRef<Response>[] = [];
    const origin = await serve(
      toNodeHandler((request) => {
        const response = eventSourceResponse(new ReadableStream(), { request });
        responses.push(new WeakRef(response));
        return response;
      }),
    );
    const clients = await Promise.all(Array.from({ length: 20 }, () => get(origin).response));
    await collectGarbage();
    expect(responses.filter((ref) => ref.deref() !== undefined)).toHaveLength(0);
    for (const res of clients) res.destroy();
  });
});

describe("an eventSourceResponse through toNodeHandler: its source written straight to the response", () => {
  test("1,000 events a source yields at once arrive whole and in order, with no body read, in a few writes", async () => {
    const events = Array.from({ length: 1_000 }, (_, i) => ({ id: String(i), data: `event ${i}` }));
    const origin = await serve(toNodeHandler((request) => eventSourceResponse(events, { request })));
    const reads = vi.spyOn(ReadableStreamDefaultReader.prototype, "read");
    const writes = vi.spyOn(ServerResponse.prototype, "write");
    const res = await get(origin).response;
    const body = await readUntil(res, (text) => text.includes("data: event 999\n\n"), "event 999");
    expect(parseWire(body).events).toEqual(events);
    // One write per turn of the loop, not one per event: the socket takes about 16 KiB (Node 20) before it is full.
    console.log(`1,000 events in ${writes.mock.calls.length} writes, ${reads.mock.calls.length} body reads`);
    expect(reads.mock.calls.length).toBe(0);
    expect(writes.mock.calls.length).toBeLessThan(100);
    reads.mockRestore();
    writes.mockRestore();
  });

  test("an event yielded before an await reaches the client before the source goes on", async () => {
    const received: Deferred<void>[] = Array.from({ length: 5 }, () => deferred<void>());
    async function* source() {
      for (let i = 0; i < received.length; i++) {
        yield { id: String(i), data: `event ${i}` };
        // Resumed only once the client holds event i: an event held back for a later write would never arrive.
        await received[i]?.promise;
      }
    }
    const origin = await serve(toNodeHandler((request) => eventSourceResponse(source(), { request })));
    const res = await get(origin).response;
    const body = await readUntil(
      res,
      (text) => {
        for (const [i, arrived] of received.entries()) if (text.includes(`data: event ${i}\n\n`)) arrived.resolve();
        return text.includes("data: event 4\n\n");
      },
      "the five events, each before the next was made",
    );
    expect(parseWire(body).events.map((event) => event.data)).toEqual(received.map((_, i) => `event ${i}`));
  });
});

describe("an EventChannel through toNodeHandler: handed off to the response once its stream is drained", () => {
  test("every client gets every event once and in order, with no body read per event, and leaves when it goes", async () => {
    const channel = new EventChannel();
    const origin = await serve(toNodeHandler((request) => channel.response(request)));
    const reads = vi.spyOn(ReadableStreamDefaultReader.prototype, "read");
    const clients = [get(origin), get(origin), get(origin)];
    const responses = await Promise.all(clients.map((client) => client.response));
    await until(() => channel.subscribers === 3, "three subscribers");
    const bodies = responses.map((res) => readUntil(res, (text) => text.includes("data: 200\n\n"), "event 200"));
    for (let n = 1; n <= 200; n++) {
      channel.emit({ id: n, data: String(n) });
      if (n % 50 === 0) await settle();
    }
    const want = Array.from({ length: 200 }, (_, i) => ({ id: String(i + 1), data: String(i + 1) }));
    for (const body of await Promise.all(bodies)) expect(parseWire(body).events).toEqual(want);
    // The first chunk and at most a few events go through the stream; the rest are written by the channel.
    expect(reads.mock.calls.length).toBeLessThan(30);
    reads.mockRestore();
    clients[0]?.req.destroy();
    await until(() => channel.subscribers === 2, "the subscriber of the client that left to go");
    channel.close();
  });

  test("an idle client that has been handed off gets heartbeats", async () => {
    const channel = new EventChannel();
    const origin = await serve(toNodeHandler((request) => channel.response(request, { keepAlive: 50 })));
    const res = await get(origin).response;
    const text = await readUntil(res, (body) => body.split(":\n\n").length > 3, "two heartbeats");
    expect(text.startsWith(":\n\n:\n\n:\n\n")).toBe(true);
    channel.close();
  });

  test("close(last) writes the farewell to a handed-off client, then ends its response", async () => {
    const channel = new EventChannel();
    const origin = await serve(toNodeHandler((request) => channel.response(request)));
    const res = await get(origin).response;
    const head = readUntil(res, (body) => body.includes("data: one"), "the first event");
    await until(() => channel.subscribers === 1, "the subscriber");
    channel.emit("one");
    await head;
    const rest: string[] = [];
    res.on("data", (chunk: string) => rest.push(chunk));
    const ended = new Promise<void>((resolve) => res.once("end", resolve));
    channel.close({ comment: "bye", retry: 500 });
    await within(ended, 10_000, "the end of the response");
    expect(rest.join("")).toBe(":bye\nretry: 500\n\n");
    expect(channel.subscribers).toBe(0);
  });

  test("a client that stops reading is closed after a second above maxBufferedBytes; one that reads gets all", async () => {
    const channel = new EventChannel({ maxBufferedBytes: 64 * 1024 });
    const origin = await serve(toNodeHandler((request) => channel.response(request)));
    const reader = await get(origin).response;
    // A client that sends its request and never reads a byte.
    const stalled = connect(Number(new URL(origin).port), "127.0.0.1");
    stalled.pause();
    opened.push({ close: async () => void stalled.destroy() });
    stalled.write("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    await until(() => channel.subscribers === 2, "both subscribers");
    let received = 0;
    reader.on("data", (chunk: Buffer) => {
      received += chunk.byteLength;
    });
    const kilobyte = "x".repeat(1024);
    let sent = 0;
    // Bounded: 64 MB at most, far more than the kernel's buffers and the cap can hold.
    for (let n = 1; n <= 65_536 && channel.subscribers === 2; n++) {
      channel.emit(kilobyte);
      sent += kilobyte.length + 8;
      if (n % 256 === 0) await new Promise((resolve) => setTimeout(resolve, 20));
    }
    expect(channel.subscribers).toBe(1);
    await until(() => received >= sent, "every byte sent to the client that reads");
    channel.close();
  });
});

/** A server whose handler hands each Request to the test, and answers with what `answer` makes of it. */
async function seeRequests(answer: (request: Request) => Response | Promise<Response> = () => new Response("ok")) {
  const seen: Request[] = [];
  const origin = await serve(
    toNodeHandler((request) => {
      seen.push(request);
      return answer(request);
    }),
  );
  return { origin, seen };
}

describe("toRequest over node:http", () => {
  test("a stream given a request of toRequest and piped some other way still stops when its client leaves", async () => {
    const cancelled = deferred();
    const origin = await serve((req, res) => {
      const source = new ReadableStream({
        start(controller) {
          controller.enqueue({ data: "first" });
        },
        cancel: () => cancelled.resolve(),
      });
      const response = eventSourceResponse(source, { request: toRequest(req, res) });
      res.writeHead(response.status, Object.fromEntries(response.headers));
      // Nothing cancels a piped body when its client leaves: the request's signal, made at the first read, does.
      Readable.fromWeb(response.body as import("node:stream/web").ReadableStream).pipe(res);
    });
    const client = get(origin);
    await readUntil(await client.response, (text) => text.includes("data: first\n\n"), "the first event");
    client.req.destroy();
    await within(cancelled.promise, 10_000, "the source to be cancelled");
  });

  test("method, URL and every header, repeated ones kept and cookies joined as cookies", async () => {
    const { origin, seen } = await seeRequests();
    const res = await get(`${origin}/path/here?q=1`, {
      method: "DELETE",
      // Node's own req.headers keeps only the first user-agent; a Request keeps both.
      headers: { "x-tag": ["a", "b"], cookie: ["one=1", "two=2"], "user-agent": ["first", "second"] },
    }).response;
    res.resume();
    expect(seen).toHaveLength(1);
    const request = seen[0] as Request;
    expect(request.method).toBe("DELETE");
    expect(request.url).toBe(`${origin}/path/here?q=1`);
    expect(request.headers.get("x-tag")).toBe("a, b");
    expect(request.headers.get("cookie")).toBe("one=1; two=2");
    expect(request.headers.get("user-agent")).toBe("first, second");
  });

  test("a request target that starts with // is a path on this host, not another host", async () => {
    const { origin, seen } = await seeRequests();
    (await get(`${origin}/`, { headers: {} }).response).resume();
    const res = await new Promise<IncomingMessage>((resolve, reject) => {
      const req = httpRequest({ host: "127.0.0.1", port: new URL(origin).port, path: "//evil.test/x", agent: false });
      req.once("response", resolve).once("error", reject).end();
    });
    res.resume();
    expect(seen.map((request) => request.url)).toEqual([`${origin}/`, `${origin}//evil.test/x`]);
  });

  test("a POST body reaches the handler as a stream", async () => {
    const { origin } = await seeRequests(async (request) => new Response(`got ${await request.text()}`));
    const response = await fetch(origin, { method: "POST", body: "é".repeat(100_000) });
    expect(await response.text()).toBe(`got ${"é".repeat(100_000)}`);
  });

  test("Last-Event-ID reaches the source's context, and non-ASCII bytes reach Headers one character per byte", async () => {
    const contexts: (string | null)[] = [];
    const { origin, seen } = await seeRequests((request) =>
      eventSourceResponse(
        ({ lastEventId }) => {
          contexts.push(lastEventId);
          return [{ data: "next" }];
        },
        { request },
      ),
    );
    await (await fetch(origin, { headers: { "last-event-id": "41" } })).text();
    // What a browser puts on the wire for an id the server set as "café ☕": its UTF-8 bytes, written here by hand
    // since Node's client refuses characters past U+00FF. Headers shows them one character per byte, the form
    // lastEventId() decodes, as it does for a Fetch runtime's own request.
    const { port } = new URL(origin);
    const socket = connect(Number(port), "127.0.0.1");
    const head = `GET / HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nConnection: close\r\nLast-Event-ID: `;
    socket.end(Buffer.concat([Buffer.from(head), Buffer.from("café ☕"), Buffer.from("\r\n\r\n")]));
    socket.resume();
    await within(new Promise((resolve) => socket.once("close", resolve)), 10_000, "the raw response");
    expect(seen).toHaveLength(2);
    expect(seen[1]?.headers.get("last-event-id")).toBe(Buffer.from("café ☕").toString("latin1"));
    expect(contexts).toEqual(["41", lastEventId(seen[1] as Request)]);
  });

  test("the signal aborts when the client leaves before the end", async () => {
    const source = gated();
    const { origin, seen } = await seeRequests(() => eventSourceResponse(source.events));
    const { req, response } = get(origin);
    await response;
    const request = seen[0] as Request;
    expect(request.signal.aborted).toBe(false);
    const aborted = new Promise<void>((resolve) => request.signal.addEventListener("abort", () => resolve()));
    req.destroy();
    await within(aborted, 10_000, "the signal to abort");
  });

  test("a signal first read after the client has left is aborted already, and is the same signal at each read", async () => {
    const left = deferred();
    const origin = await serve((req, res) => {
      const request = toRequest(req, res);
      res.flushHeaders();
      res.once("close", () => {
        // Read for the first time only now: it is made at its first read.
        expect(request.signal.aborted).toBe(true);
        expect(request.signal).toBe(request.signal);
        expect(request.signal).toBeInstanceOf(AbortSignal);
        left.resolve();
      });
    });
    const { req, response } = get(origin);
    await response;
    req.destroy();
    await within(left.promise, 10_000, "the client to leave");
  });

  test("the request is a Request in every respect, its signal included", async () => {
    const seen: Request[] = [];
    const origin = await serve(
      toNodeHandler(async (request) => {
        seen.push(request, request.clone());
        return new Response(`${request.method} ${await request.text()} ${request.signal.aborted}`);
      }),
    );
    const answer = await fetch(origin, { method: "POST", body: "hello", headers: { "x-one": "1" } });
    expect(await answer.text()).toBe("POST hello false");
    const request = seen[0] as Request;
    expect(request).toBeInstanceOf(Request);
    expect(request.headers.get("x-one")).toBe("1");
    expect(request.bodyUsed).toBe(true);
    expect(Object.keys(request)).toEqual([]);
    expect(seen[1]).toBeInstanceOf(Request);
    expect(await seen[1]?.text()).toBe("hello");
  });

  test("fetch(request), new Request(request) and clone() take the handler's request as any other", async () => {
    // The upstream echoes what it was sent; the client names it in its Host header, so request.url points there.
    const upstream = await serve(async (req, res) => {
      let body = "";
      for await (const chunk of req) body += chunk;
      res.end(`${req.method} ${req.url} ${req.headers["x-one"]} ${body}`);
    });
    const copies: Request[] = [];
    const origin = await serve(
      toNodeHandler((request) => {
        if (request.method === "GET") copies.push(new Request(request), request.clone());
        return fetch(request);
      }),
    );
    const host = new URL(upstream).host;
    const send = async (method: string, body?: string): Promise<string> => {
      const req = httpRequest(`${origin}/path?q=1`, { agent: false, method, headers: { host, "x-one": "1" } });
      const answer = new Promise<IncomingMessage>((resolve, reject) =>
        req.once("response", resolve).once("error", reject),
      );
      req.end(body);
      const res = await within(answer, 10_000, `the answer to ${method}`);
      let text = "";
      for await (const chunk of res) text += chunk;
      return text;
    };
    expect(await send("GET")).toBe("GET /path?q=1 1 ");
    expect(await send("POST", "hello")).toBe("POST /path?q=1 1 hello");
    for (const copy of copies) {
      expect(copy).toBeInstanceOf(Request);
      expect(copy.url).toBe(`${upstream}/path?q=1`);
      expect(copy.headers.get("x-one")).toBe("1");
    }
    expect(copies).toHaveLength(2);
  });

  test("the signal aborts when the client leaves even when only the signal was kept, after a garbage collection", async () => {
    // undici's Request.signal follows the signal it was made with only while the Request is alive.
    const count = 50;
    let aborted = 0;
    const allAborted = deferred();
    const origin = await serve((req, res) => {
      toRequest(req, res).signal.addEventListener("abort", () => {
        if (++aborted === count) allAborted.resolve();
      });
      res.flushHeaders();
    });
    const clients = await Promise.all(
      Array.from({ length: count }, async () => {
        const { req, response } = get(origin);
        await response;
        return req;
      }),
    );
    await collectGarbage();
    for (const req of clients) req.destroy();
    await within(allAborted.promise, 10_000, `${count} signals to abort (${aborted} did)`);
  });

  test("the signal never aborts after a normal finish", async () => {
    const seen: Request[] = [];
    const closed = deferred();
    const listener = toNodeHandler((request) => {
      seen.push(request);
      return eventSourceResponse(["one", "two"]);
    });
    const origin = await serve((req, res) => {
      res.once("close", () => closed.resolve());
      void listener(req, res);
    });
    expect(events(await (await fetch(origin)).text())).toEqual([{ data: "one" }, { data: "two" }]);
    await within(closed.promise, 10_000, "the response to close");
    await settle();
    expect(seen[0]?.signal.aborted).toBe(false);
  });
});

describe("behind express.json()", () => {
  async function app() {
    const made = express();
    made.use(express.json());
    const bodies: (ReadableStream | null)[] = [];
    made.post("/words", (req, res) => {
      const request = toRequest(req, res);
      bodies.push(request.body);
      const words = String((req.body as { text?: unknown }).text).split(" ");
      return sendResponse(res, eventSourceResponse(words, { request }));
    });
    made.post(
      "/handler",
      toNodeHandler((request) => {
        bodies.push(request.body);
        return eventSourceResponse([request.method]);
      }),
    );
    const router = express.Router();
    router.get(
      "/where",
      toNodeHandler((request) => new Response(request.url)),
    );
    made.use("/mounted", router);
    return { origin: await serve(made), bodies };
  }

  test("a POST whose JSON body express.json() has read is a Request with no body, and no error", async () => {
    const errorLog = vi.spyOn(console, "error");
    const { origin, bodies } = await app();
    const post = (path: string) =>
      fetch(`${origin}${path}`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ text: "stream these words" }),
      });
    const words = await post("/words");
    expect(words.status).toBe(200);
    expect(events(await words.text())).toEqual([{ data: "stream" }, { data: "these" }, { data: "words" }]);
    const handled = await post("/handler");
    expect(events(await handled.text())).toEqual([{ data: "POST" }]);
    expect(bodies).toEqual([null, null]);
    expect(errorLog).not.toHaveBeenCalled();
  });

  test("a route under a mounted router sees the URL the client asked for", async () => {
    const { origin } = await app();
    expect(await (await fetch(`${origin}/mounted/where?x=1`)).text()).toBe(`${origin}/mounted/where?x=1`);
  });
});

describe("over node:http2", () => {
  /** Opens a stream and collects its text; resolves with it and the close code when the stream closes. */
  function open(session: ClientHttp2Session, headers: Record<string, string>) {
    const stream = session.request(headers);
    let text = "";
    const waiters: { until: (text: string) => boolean; resolve: () => void }[] = [];
    stream.setEncoding("utf8");
    const response = new Promise<Record<string, unknown>>((resolve) => stream.once("response", resolve));
    stream.on("data", (chunk: string) => {
      text += chunk;
      for (const waiter of waiters.filter((one) => one.until(text))) waiter.resolve();
    });
    const closed = new Promise<number>((resolve) => stream.once("close", () => resolve(stream.rstCode ?? -1)));
    // A reset stream emits an error too; it is what the test checks, through `closed`.
    stream.on("error", () => {});
    return {
      stream: stream as ClientHttp2Stream,
      response,
      closed,
      text: () => text,
      until: (until: (text: string) => boolean, what: string) =>
        within(
          new Promise<void>((resolve) => {
            if (until(text)) resolve();
            else waiters.push({ until, resolve });
          }),
          10_000,
          what,
        ),
    };
  }

  function serveH2(listener: (req: Http2ServerRequest, res: Http2ServerResponse) => void): Promise<string> {
    return listen(createHttp2Server(listener));
  }

  test("headers first, then each event alone, and the stream closes cleanly at the end", async () => {
    const source = gated(2);
    const origin = await serveH2(toNodeHandler((request) => eventSourceResponse(source.events, { request })));
    const one = open(h2(origin), { ":path": "/" });
    const headers = await within(one.response, 10_000, "the headers");
    expect(headers[":status"]).toBe(200);
    expect(headers["content-type"]).toBe("text/event-stream; charset=utf-8");
    expect(source.produced).toBe(0);
    for (const id of [1, 2]) {
      source.release(id);
      await one.until((text) => events(text).length === id, `step ${id}`);
      expect(source.produced).toBe(id);
    }
    expect(await within(one.closed, 10_000, "the end")).toBe(constants.NGHTTP2_NO_ERROR);
  });

  test.each([
    [{ ":authority": "example.test:8443" }, "http://example.test:8443/where?x=1"],
    [{ host: "fallback.test" }, "http://fallback.test/where?x=1"],
  ])("the URL's host is :authority, or Host when it is absent (%o)", async (given, url) => {
    const { origin, seen } = await (async () => {
      const requests: Request[] = [];
      const at = await serveH2(
        toNodeHandler((request) => {
          requests.push(request);
          return new Response("ok");
        }),
      );
      return { origin: at, seen: requests };
    })();
    const one = open(h2(origin), { ":path": "/where?x=1", ...given, "x-tag": "kept" });
    await within(one.closed, 10_000, "the response");
    expect(seen).toHaveLength(1);
    expect(seen[0]?.url).toBe(url);
    const names = [...(seen[0] as Request).headers.keys()];
    expect(names.filter((name) => name.startsWith(":"))).toEqual([]);
    expect(seen[0]?.headers.get("x-tag")).toBe("kept");
  });

  test("several set-cookie headers arrive, and a connection header is left out without a warning", async () => {
    const warnings: Error[] = [];
    const onWarning = (warning: Error): void => {
      warnings.push(warning);
    };
    process.on("warning", onWarning);
    try {
      const origin = await serveH2(
        toNodeHandler(() => {
          const headers = new Headers({ connection: "keep-alive", "keep-alive": "timeout=5" });
          headers.append("set-cookie", "a=1");
          headers.append("set-cookie", "b=2");
          return new Response("ok", { headers });
        }),
      );
      const one = open(h2(origin), { ":path": "/" });
      const headers = await within(one.response, 10_000, "the headers");
      expect(headers["set-cookie"]).toEqual(["a=1", "b=2"]);
      expect(headers).not.toHaveProperty("connection");
      expect(headers).not.toHaveProperty("keep-alive");
      expect(await one.closed).toBe(constants.NGHTTP2_NO_ERROR);
      await settle();
      // Node drops an HTTP/2 connection header itself, with a process warning that says the code is wrong.
      expect(warnings).toEqual([]);
    } finally {
      process.off("warning", onWarning);
    }
  });

  test("a body that errors resets its stream with INTERNAL_ERROR, and the connection's other streams go on", async () => {
    const errorLog = vi.spyOn(console, "error").mockImplementation(() => {});
    const steady = gated();
    const breaking = gated(1);
    const origin = await serveH2(
      toNodeHandler((request) => {
        if (new URL(request.url).pathname === "/steady") return eventSourceResponse(steady.events, { request });
        return eventSourceResponse(
          async function* (context) {
            yield* breaking.events(context);
            throw new Error("broken");
          },
          {
            request,
            onError: (error) => {
              throw error;
            },
          },
        );
      }),
    );
    const session = h2(origin);
    const kept = open(session, { ":path": "/steady" });
    const broken = open(session, { ":path": "/breaking" });
    steady.release(1);
    await kept.until((text) => events(text).length === 1, "the steady stream's first event");
    breaking.release(1);
    await broken.until((text) => events(text).length === 1, "the breaking stream's event");
    expect(await within(broken.closed, 10_000, "the breaking stream to close")).toBe(constants.NGHTTP2_INTERNAL_ERROR);
    steady.release(2);
    await kept.until((text) => events(text).length === 2, "the steady stream's next event");
    expect(session.destroyed).toBe(false);
    expect(errorLog).toHaveBeenCalledTimes(1);
  });

  test("the signal aborts when the client closes its stream, and never after a normal finish", async () => {
    const source = gated();
    const seen: Request[] = [];
    const closed: Promise<void>[] = [];
    const listener = toNodeHandler((request) => {
      seen.push(request);
      return new URL(request.url).pathname === "/finite"
        ? eventSourceResponse(["one"])
        : eventSourceResponse(source.events);
    });
    const origin = await serveH2((req, res) => {
      closed.push(new Promise((resolve) => res.once("close", () => resolve())));
      void listener(req, res);
    });
    const session = h2(origin);
    const finite = open(session, { ":path": "/finite" });
    expect(await within(finite.closed, 10_000, "the finite stream")).toBe(constants.NGHTTP2_NO_ERROR);
    await within(closed[0] as Promise<void>, 10_000, "the server side to close");
    const endless = open(session, { ":path": "/endless" });
    await within(endless.response, 10_000, "the endless stream's headers");
    const aborted = new Promise<void>((resolve) => seen[1]?.signal.addEventListener("abort", () => resolve()));
    endless.stream.close(constants.NGHTTP2_CANCEL);
    await within(aborted, 10_000, "the signal to abort");
    await within(source.finished, 10_000, "the source's finally");
    expect(seen[0]?.signal.aborted).toBe(false);
  });
});

describe("over TLS", () => {
  async function certificate(): Promise<{ key: string; cert: string }> {
    const made = await generate([{ name: "commonName", value: "127.0.0.1" }], {
      keyType: "ec",
      extensions: [{ name: "subjectAltName", altNames: [{ type: 7, ip: "127.0.0.1" }] }],
    });
    return { key: made.private, cert: made.cert };
  }

  const urlHandler = toNodeHandler((request) => eventSourceResponse([request.url], { request }));

  test("a request on node:https has an https: URL", async () => {
    const { key, cert } = await certificate();
    const origin = await listen(createHttpsServer({ key, cert }, urlHandler), "https");
    const res = await within(
      new Promise<IncomingMessage>((resolve, reject) => {
        httpsRequest(`${origin}/secure?x=1`, { ca: cert, agent: false })
          .once("response", resolve)
          .once("error", reject)
          .end();
      }),
      10_000,
      "the https response",
    );
    const text = await readUntil(res, (body) => events(body).length === 1, "the event");
    expect(events(text)).toEqual([{ data: `${origin}/secure?x=1` }]);
    res.destroy();
  });

  test("a request on HTTP/2 over TLS has an https: URL", async () => {
    const { key, cert } = await certificate();
    const origin = await listen(createSecureServer({ key, cert }, urlHandler), "https");
    const stream = h2(origin, { ca: cert }).request({ ":path": "/secure" });
    stream.setEncoding("utf8");
    let text = "";
    stream.on("data", (chunk: string) => {
      text += chunk;
    });
    await within(new Promise((resolve) => stream.once("end", resolve)), 10_000, "the h2 response");
    expect(events(text)).toEqual([{ data: `${origin}/secure` }]);
  });
});

describe("Readable.fromWeb(response.body).pipe(res), the usual one-liner", () => {
  /** A server that sends `make()`'s response the usual way; the piped stream and the server's close, for the test. */
  async function piping(make: () => Response) {
    const sent = { piped: undefined as Readable | undefined, closed: deferred(), failed: deferred<unknown>() };
    const origin = await serve((_req, res) => {
      const response = make();
      res.writeHead(response.status, Object.fromEntries(response.headers));
      sent.piped = Readable.fromWeb(response.body as import("node:stream/web").ReadableStream);
      sent.piped.once("error", (error) => sent.failed.resolve(error));
      sent.piped.pipe(res);
      res.once("close", () => sent.closed.resolve());
    });
    return { origin, sent };
  }

  test("leaves the source running after the client left, where sendResponse stops it", async () => {
    const pipedSource = gated();
    const { origin, sent } = await piping(() => eventSourceResponse(pipedSource.events));
    const sentSource = gated();
    const sending = await serve(toNodeHandler(() => eventSourceResponse(sentSource.events)));
    for (const [at, source] of [
      [origin, pipedSource],
      [sending, sentSource],
    ] as const) {
      const { req, response } = get(at);
      const res = await response;
      source.release(1);
      await readUntil(res, (text) => events(text).length === 1, "the first event");
      req.destroy();
    }
    await within(sentSource.finished, 10_000, "sendResponse's finally block");
    expect(sentSource.signal?.aborted).toBe(true);
    await within(sent.closed.promise, 10_000, "the piped response to close");
    let pipedFinished = false;
    void pipedSource.finished.then(() => {
      pipedFinished = true;
    });
    await settle(100);
    // The pipe unpiped itself when the socket closed, but nothing cancelled the body: the source still waits,
    // its signal (and with it the stream's keep-alive) still live.
    expect(pipedFinished).toBe(false);
    expect(pipedSource.signal?.aborted).toBe(false);
    // Only destroying the Node stream by hand cancels the body.
    sent.piped?.destroy();
    await within(pipedSource.finished, 10_000, "the piped source's finally after destroy()");
  });

  test("leaves the client waiting when the body errors, where sendResponse fails the connection", async () => {
    const source = gated(1);
    const { origin, sent } = await piping(() =>
      eventSourceResponse(
        async function* (context) {
          yield* source.events(context);
          throw new Error("the source broke");
        },
        {
          onError: (error) => {
            throw error;
          },
        },
      ),
    );
    const { req, response } = get(origin);
    const res = await response;
    source.release(1);
    await readUntil(res, (text) => events(text).length === 1, "the first event");
    let ended = false;
    res.once("end", () => {
      ended = true;
    });
    res.once("error", () => {
      ended = true;
    });
    expect(await within(sent.failed.promise, 10_000, "the piped body to error")).toMatchObject({
      message: "the source broke",
    });
    await settle(100);
    expect(ended).toBe(false);
    expect(res.complete).toBe(false);
    req.destroy();
  });
});

describe("the root entry", () => {
  test("no file it can reach imports a node: module", () => {
    const sources = readdirSync(new URL("../src/", import.meta.url)).filter((name) => name.endsWith(".ts"));
    expect(sources).toContain("node.ts");
    const importersOf = (specifier: string) =>
      sources.filter((name) =>
        new RegExp(`^\\s*(import|export)\\b[^;]*\\bfrom\\s+["']${specifier}`, "m").test(
          readFileSync(new URL(`../src/${name}`, import.meta.url), "utf8"),
        ),
      );
    // Only src/node/ imports node: modules, and only the ./node entry imports src/node/.
    expect(importersOf("node:")).toEqual([]);
    expect(importersOf("\\./node/")).toEqual(["node.ts"]);
  });

  test("node.ts's types are the contract's", () => {
    const handler: (req: NodeRequest, res: NodeResponse) => Promise<void> = toNodeHandler(() => new Response());
    expect(typeof handler).toBe("function");
  });
});
