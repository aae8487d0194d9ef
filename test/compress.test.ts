/**
 * API.md, "`eventsource-server/node`: compression": `compress: true` on `toNodeHandler` and `sendResponse`, over real
 * sockets, read by clients that decompress as they read (undici's `fetch`, and Node's own zlib on the raw bytes).
 */
import { once } from "node:events";
import { createServer as createHttp1Server, request as http1Request, type IncomingMessage } from "node:http";
import { connect, createServer as createHttp2Server } from "node:http2";
import type { AddressInfo } from "node:net";
import { createBrotliDecompress, createGunzip } from "node:zlib";
import { afterEach, describe, expect, test } from "vitest";
import { order } from "../bench/http/events.mjs";
import { EventChannel, eventSourceResponse, type StreamEnd } from "../src/index.ts";
import { chosenEncoding } from "../src/node/compress.ts";
import { sendResponse, toNodeHandler } from "../src/node.ts";
import { deferred } from "./helpers.ts";

const servers: { close(): void }[] = [];
afterEach(() => {
  for (const server of servers.splice(0)) server.close();
});

async function serve(listener: Parameters<typeof createHttp1Server>[1]): Promise<string> {
  const server = createHttp1Server(listener);
  servers.push({ close: () => server.close() });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

/** A GET whose raw (still compressed) bytes are decoded by `decoder` as they arrive: what the client has read so far. */
function rawGet(url: string, acceptEncoding: string) {
  const text = { value: "" };
  const response = deferred<IncomingMessage>();
  const request = http1Request(url, { headers: { "accept-encoding": acceptEncoding } }, (res) => {
    response.resolve(res);
    const coding = res.headers["content-encoding"];
    const decoded =
      coding === "br" ? res.pipe(createBrotliDecompress()) : coding === "gzip" ? res.pipe(createGunzip()) : res;
    decoded.setEncoding("utf8").on("data", (chunk: string) => {
      text.value += chunk;
    });
    decoded.on("end", () => decodedAll.resolve());
  });
  const decodedAll = deferred();
  request.end();
  return { text, response: response.promise, decoded: decodedAll.promise, destroy: () => request.destroy() };
}

async function until(condition: () => boolean, what: string): Promise<void> {
  for (let tries = 0; !condition(); tries++) {
    if (tries > 200) throw new Error(`gave up waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

describe("chosenEncoding: br or gzip by Accept-Encoding", () => {
  test.each([
    [undefined, undefined],
    ["", undefined],
    ["identity", undefined],
    ["gzip", "gzip"],
    ["br", "br"],
    ["gzip, br", "br"],
    ["gzip;q=1.0, br;q=0.9", "gzip"],
    ["br;q=0.5, gzip", "gzip"],
    ["br;q=0, gzip;q=0", undefined],
    ["deflate, gzip;q=0.2", "gzip"],
    ["*", "br"],
    ["*;q=0.5, gzip", "gzip"],
    ["GZIP", "gzip"],
  ])("%o → %o", (header, expected) => {
    expect(chosenEncoding(header)).toBe(expected);
  });
});

describe("compress: true", () => {
  test.each(["gzip", "br"])(
    "%s: each event arrives decompressed as soon as it is emitted, heartbeats too",
    async (coding) => {
      const channel = new EventChannel();
      const origin = await serve(
        toNodeHandler((request) => channel.response(request, { keepAlive: 200 }), { compress: true }),
      );
      const client = rawGet(`${origin}/`, coding);
      const res = await client.response;
      expect(res.headers["content-encoding"]).toBe(coding);
      expect(res.headers.vary).toBe("accept-encoding");
      expect(res.headers["cache-control"]).toBe("no-cache, no-transform");
      await until(() => client.text.value === ":\n\n", "the first chunk");
      for (let id = 1; id <= 3; id++) {
        channel.emit({ id, data: { n: id } });
        await until(() => client.text.value.endsWith(`id: ${id}\ndata: {"n":${id}}\n\n`), `event ${id}`);
      }
      // Silence: the heartbeat is flushed like an event.
      await until(() => client.text.value.endsWith(":\n\n"), "a heartbeat");
      channel.close();
      client.destroy();
    },
  );

  test("undici's fetch reads a compressed stream event by event, and a client that leaves stops the source", async () => {
    const stopped = deferred();
    const next = deferred();
    async function* waits({ signal }: { signal: AbortSignal }) {
      try {
        yield { event: "first", data: "1" };
        await next.promise;
        yield { event: "second", data: "2" };
        // Until the client leaves: the signal aborts, and the generator returns.
        await new Promise((resolve) => signal.addEventListener("abort", resolve, { once: true }));
      } finally {
        stopped.resolve();
      }
    }
    const origin = await serve(toNodeHandler((request) => eventSourceResponse(waits, { request }), { compress: true }));
    const response = await fetch(origin, { headers: { "accept-encoding": "br" } });
    expect(response.headers.get("content-encoding")).toBe("br");
    const reader = (response.body as ReadableStream<Uint8Array>)
      .pipeThrough(new TextDecoderStream() as never)
      .getReader() as ReadableStreamDefaultReader<string>;
    let text = "";
    while (!text.includes("data: 1\n\n")) text += (await reader.read()).value;
    next.resolve();
    while (!text.includes("data: 2\n\n")) text += (await reader.read()).value;
    expect(text).toBe(":\n\nevent: first\ndata: 1\n\nevent: second\ndata: 2\n\n");
    await reader.cancel();
    await stopped.promise;
  });

  test("a whole stream decompresses to exactly what it wrote, and onClose counts the uncompressed bytes", async () => {
    const ends: StreamEnd[] = [];
    const events = Array.from({ length: 100 }, (_, n) => ({ id: n, data: { n, text: "é ☕ ".repeat(n % 7) } }));
    const origin = await serve(
      toNodeHandler((request) => eventSourceResponse(events, { request, onClose: (end) => ends.push(end) }), {
        compress: true,
      }),
    );
    const plain = await (await fetch(origin, { headers: { "accept-encoding": "identity" } })).text();
    const compressed = await (await fetch(origin, { headers: { "accept-encoding": "gzip" } })).text();
    expect(compressed).toBe(plain);
    expect(ends.map((end) => end.bytes)).toEqual([
      plain.length === 0 ? 0 : new TextEncoder().encode(plain).length,
      new TextEncoder().encode(plain).length,
    ]);
  });

  test("1 KB JSON events take at least 4× fewer bytes on the wire", async () => {
    // The compress scenario of `npm run bench -- --http` sends the same order events.
    const events = Array.from({ length: 300 }, (_, n) => order(n));
    const origin = await serve(
      toNodeHandler((request) => eventSourceResponse(events, { request }), { compress: true }),
    );
    const wire = async (coding: string) => {
      const client = rawGet(`${origin}/`, coding);
      const res = await client.response;
      let bytes = 0;
      res.on("data", (chunk: Buffer) => {
        bytes += chunk.length;
      });
      await client.decoded;
      return { bytes, text: client.text.value };
    };
    const plain = await wire("identity");
    expect(plain.bytes / events.length).toBeGreaterThan(1_000);
    for (const coding of ["gzip", "br"]) {
      const packed = await wire(coding);
      expect(packed.text).toBe(plain.text);
      expect(plain.bytes / packed.bytes, coding).toBeGreaterThan(4);
    }
  });

  test("nothing is compressed unless asked for, accepted, and an event stream not encoded already", async () => {
    const origin = await serve((req, res) => {
      const url = new URL(req.url ?? "/", "http://x");
      const kind = url.searchParams.get("kind");
      if (kind === "text") return sendResponse(res, new Response("plain text"), { compress: true });
      if (kind === "encoded")
        return sendResponse(res, eventSourceResponse(["x"], { headers: { "content-encoding": "identity" } }), {
          compress: true,
        });
      return sendResponse(res, eventSourceResponse(["x"]), { compress: kind !== "off" });
    });
    const codingOf = async (query: string, accept: string) =>
      (await fetch(`${origin}/?${query}`, { headers: { "accept-encoding": accept } })).headers.get("content-encoding");
    expect(await codingOf("kind=off", "gzip, br")).toBeNull();
    expect(await codingOf("kind=text", "gzip, br")).toBeNull();
    expect(await codingOf("kind=encoded", "gzip, br")).toBe("identity");
    expect(await codingOf("kind=on", "identity")).toBeNull();
    expect(await codingOf("kind=on", "deflate")).toBeNull();
    expect(await codingOf("kind=on", "gzip")).toBe("gzip");
  });

  test("a vary of the response's own is kept, with accept-encoding added once", async () => {
    const origin = await serve(
      toNodeHandler(() => eventSourceResponse(["x"], { headers: { vary: "origin" } }), { compress: true }),
    );
    const response = await fetch(origin, { headers: { "accept-encoding": "gzip" } });
    expect(response.headers.get("vary")).toBe("origin, accept-encoding");
    expect(await response.text()).toBe(":\n\ndata: x\n\n");
  });

  test("over HTTP/2 too", async () => {
    const server = createHttp2Server(toNodeHandler(() => eventSourceResponse(["over h2"]), { compress: true }));
    servers.push({ close: () => server.close() });
    server.listen(0, "127.0.0.1");
    await once(server, "listening");
    const session = connect(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
    const stream = session.request({ ":path": "/", "accept-encoding": "gzip" });
    const [headers] = (await once(stream, "response")) as [Record<string, string>];
    expect(headers["content-encoding"]).toBe("gzip");
    let text = "";
    const gunzip = stream.pipe(createGunzip());
    gunzip.setEncoding("utf8").on("data", (chunk: string) => {
      text += chunk;
    });
    await once(gunzip, "end");
    expect(text).toBe(":\n\ndata: over h2\n\n");
    session.close();
  });

  test("the option is checked: a boolean, and no other key", () => {
    const handler = () => new Response();
    expect(() => toNodeHandler(handler, { compress: "yes" } as never)).toThrow(
      new TypeError('toNodeHandler: options.compress must be a boolean, got "yes"'),
    );
    expect(() => toNodeHandler(handler, { compres: true } as never)).toThrow(/did you mean "compress"/);
    expect(() => sendResponse({} as never, new Response(), 1 as never)).toThrow(
      /sendResponse: options must be an object/,
    );
  });
});
