/**
 * Behind nginx with its default settings (proxy buffering on, HTTP/1.0 to the upstream, no gzip of its own): each event
 * still reaches the client before the next is emitted, plain and compressed (docs/runtimes.md), read by clients that
 * decompress as they read.
 */
import { createServer, request as httpRequest, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { createBrotliDecompress, createGunzip } from "node:zlib";
import { createParser, type EventSourceMessage } from "eventsource-parser";
import { EventChannel } from "eventsource-server";
import { toNodeHandler } from "eventsource-server/node";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { within } from "./runtime/harness.ts";
import { type Nginx, startNginx } from "./support/nginx.ts";

let channel: EventChannel;
let server: Server;
let nginx: Nginx;

beforeAll(async () => {
  channel = new EventChannel();
  server = createServer(toNodeHandler((request) => channel.response(request), { compress: true }));
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  nginx = await startNginx(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
}, 240_000);

afterAll(async () => {
  channel?.close();
  await nginx?.stop();
  server?.closeAllConnections();
  await new Promise((resolve) => server?.close(resolve));
});

/**
 * A GET through nginx that decodes the body as it arrives (gunzip or brotli, by the response's own content-encoding),
 * with each event an independent parser dispatches.
 */
function subscribe(acceptEncoding: string) {
  const events: EventSourceMessage[] = [];
  const parser = createParser({ onEvent: (event) => events.push(event) });
  const response = new Promise<IncomingMessage>((resolve, reject) => {
    const request = httpRequest(
      nginx.origin,
      { agent: false, headers: { accept: "text/event-stream", "accept-encoding": acceptEncoding } },
      resolve,
    );
    request.on("error", reject);
    request.end();
  });
  const started = response.then((res) => {
    const coding = res.headers["content-encoding"];
    const decoded =
      coding === "gzip" ? res.pipe(createGunzip()) : coding === "br" ? res.pipe(createBrotliDecompress()) : res;
    decoded.setEncoding("utf8").on("data", (text: string) => parser.feed(text));
    return res;
  });
  return { events, response: started };
}

/** Waits until `events` holds `count`; fails, saying which, after 5 s (nginx buffers 4–8 KB when not told otherwise). */
async function received(events: EventSourceMessage[], count: number, what: string): Promise<void> {
  const deadline = Date.now() + 5_000;
  while (events.length < count) {
    if (Date.now() > deadline) throw new Error(`${what}: ${events.length} of ${count} events arrived within 5 s`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

describe("through nginx with its default settings", () => {
  test.each([
    ["identity", undefined],
    ["gzip", "gzip"],
    ["br", "br"],
  ])("Accept-Encoding %s: each event arrives before the next is emitted", async (acceptEncoding, coding) => {
    const client = subscribe(acceptEncoding);
    const res = await within(client.response, 5_000, "the response's headers, through nginx");
    expect(res.statusCode).toBe(200);
    expect(res.headers["content-encoding"]).toBe(coding);
    expect(res.headers["content-type"]).toBe("text/event-stream; charset=utf-8");
    for (let n = 1; n <= 3; n++) {
      // Small events: far below any buffer nginx would fill before it sends.
      channel.emit({ event: "tick", id: `${acceptEncoding}-${n}`, data: JSON.stringify({ n }) });
      await received(client.events, n, `event ${n}`);
    }
    expect(client.events).toEqual(
      [1, 2, 3].map((n) => ({ event: "tick", id: `${acceptEncoding}-${n}`, data: `{"n":${n}}` })),
    );
    res.destroy();
  });
});
