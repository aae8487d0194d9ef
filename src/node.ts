/**
 * The `eventsource-server/node` entry: a Fetch handler on Node's own servers (`node:http`, `node:https`,
 * `node:http2`'s compatibility API, and Express, Fastify and Koa, which are built on them). `toRequest` makes a
 * `Request` of Node's request, `sendResponse` writes a `Response` to Node's response with backpressure, and
 * `toNodeHandler` is the two around a handler.
 *
 * The only file of this package that imports `node:` modules, so the root entry still runs on every runtime.
 *
 * @module
 */
import { fail, shown } from "./errors.ts";
import { requestOf } from "./node/request.ts";
import { bare, type FetchHandler, isResponse, type NodeRequest, type NodeResponse, send } from "./node/response.ts";

export type { FetchHandler, NodeRequest, NodeResponse } from "./node/response.ts";

/**
 * Makes a Fetch `Request` of a request of `node:http`, `node:https` or `node:http2`.
 *
 * The URL is built from the `Host` header (on HTTP/2 `:authority`, else `Host`), with `https:` on a TLS
 * socket, and from Express's `originalUrl` where a router has cut `url` short. Headers are all kept, repeated
 * ones included, HTTP/2 pseudo-headers left out. A method other than `GET` and `HEAD` gets the body as a
 * stream, unless a middleware has already read it (Express's `express.json()`): then the `Request` has no body,
 * and the parsed body is where the middleware put it (`req.body`). The `signal` aborts when the client goes
 * away before the response is finished, and never after a normal finish.
 *
 * Throws a `TypeError` when the request's host or target cannot make a URL, and when `new Request()` refuses
 * the method (`CONNECT`, `TRACE`).
 *
 * @param req Node's request.
 * @param res Node's response to it: its `close` before the end is how `signal` learns that the client left.
 * @returns A `Request` for a Fetch handler.
 *
 * @example The request a Fetch handler sees, on a real `node:http` server
 * ```ts
 * import assert from "node:assert/strict";
 * import { createServer } from "node:http";
 * import { toRequest } from "eventsource-server/node";
 *
 * const seen: Request[] = [];
 * const server = createServer((req, res) => {
 *   seen.push(toRequest(req, res));
 *   res.end();
 * });
 * await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
 * const { port } = server.address() as { port: number };
 * await (await fetch(`http://127.0.0.1:${port}/events?room=1`, { headers: { "last-event-id": "41" } })).text();
 * await new Promise((resolve) => server.close(resolve));
 *
 * assert.equal(seen[0]?.url, `http://127.0.0.1:${port}/events?room=1`);
 * assert.equal(seen[0]?.headers.get("last-event-id"), "41");
 * ```
 */
export function toRequest(req: NodeRequest, res: NodeResponse): Request {
  return requestOf(req, res);
}

/**
 * Writes a Fetch `Response` to Node's response, for as long as its body lasts.
 *
 * Status, status text (on HTTP/1; HTTP/2 has none) and headers, several `set-cookie` kept, are sent at once,
 * before the first body byte. Each body chunk is written as it comes; when the socket is full the next chunk is
 * not read until `drain`, so a slow client slows the source instead of filling memory. When the client goes
 * away first, the body is cancelled (so the source's clean-up runs) and the promise resolves. For `HEAD`, the
 * headers only, and the body is cancelled. A body that errors is reported with `console.error` and ends the
 * response as a failure the client can see: on HTTP/1 the connection is destroyed, on HTTP/2 the stream is
 * reset with `INTERNAL_ERROR`, and the connection's other streams go on. The promise never rejects.
 *
 * The body of an `EventChannel` subscriber, on HTTP/1, is handed off once it holds nothing more: its channel
 * then writes each event to `res` itself (one write per client instead of a read, a pull and their promises),
 * and its unread bytes, capped by `maxBufferedBytes`, are those Node holds for `res`.
 *
 * Throws a `TypeError` when `response` is not a `Response`.
 *
 * @param res Node's response; nothing may have been written to it yet.
 * @param response The Fetch response to send.
 * @returns A promise that resolves when the response is over: sent whole, or the client gone and the body's
 *   clean-up done.
 *
 * @example An event stream from a route of any Node server
 * ```ts
 * import assert from "node:assert/strict";
 * import { createServer } from "node:http";
 * import { eventSourceResponse } from "eventsource-server";
 * import { sendResponse, toRequest } from "eventsource-server/node";
 *
 * const server = createServer((req, res) => {
 *   const request = toRequest(req, res);
 *   return sendResponse(res, eventSourceResponse(["one", "two"], { request }));
 * });
 * await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
 * const { port } = server.address() as { port: number };
 * const response = await fetch(`http://127.0.0.1:${port}/`);
 * assert.equal(response.headers.get("content-type"), "text/event-stream; charset=utf-8");
 * assert.equal(await response.text(), ":\n\ndata: one\n\ndata: two\n\n");
 * await new Promise((resolve) => server.close(resolve));
 * ```
 */
export function sendResponse(res: NodeResponse, response: Response): Promise<void> {
  if (!isResponse(response)) fail("sendResponse", `response must be a Response, got ${shown(response)}`);
  return send(res, response);
}

/**
 * Turns a Fetch handler into a request listener for `node:http`, `node:https` and `node:http2`, and a route
 * handler for Express: `toRequest`, the handler, then `sendResponse`.
 *
 * A handler that throws or rejects gets a `500` with an empty body, and the error goes to `console.error`;
 * nothing of it reaches the client. A request that cannot be a `Request` (a `Host` header that is no host, a
 * `CONNECT`) gets a `400` with an empty body. The listener's promise never rejects.
 *
 * Throws a `TypeError` when `handler` is not a function.
 *
 * @param handler A function from `Request` to `Response` (or a promise of one), as on Deno, Bun or workerd.
 * @returns A listener whose promise resolves when the response is over.
 *
 * @example The same handler as on every Fetch runtime, on `node:http`
 * ```ts
 * import assert from "node:assert/strict";
 * import { createServer } from "node:http";
 * import { eventSourceResponse } from "eventsource-server";
 * import { toNodeHandler } from "eventsource-server/node";
 *
 * async function* countdown() {
 *   for (let n = 3; n > 0; n--) yield { event: "count", data: String(n) };
 * }
 * const server = createServer(toNodeHandler((request) => eventSourceResponse(countdown(), { request })));
 * await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
 * const { port } = server.address() as { port: number };
 * const text = await (await fetch(`http://127.0.0.1:${port}/`)).text();
 * assert.equal(text, ":\n\nevent: count\ndata: 3\n\nevent: count\ndata: 2\n\nevent: count\ndata: 1\n\n");
 * await new Promise((resolve) => server.close(resolve));
 * ```
 */
export function toNodeHandler(handler: FetchHandler): (req: NodeRequest, res: NodeResponse) => Promise<void> {
  if (typeof handler !== "function") fail("toNodeHandler", `handler must be a function, got ${shown(handler)}`);
  // The response is sent from a callback, not after an `await` here: a suspended frame would hold the Request
  // and the Response for as long as the body lasts.
  return (req, res) => answer(handler, req, res).then((response) => response && send(res, response));
}

/** The handler's Response to this request, or `undefined` once a bare 400 or 500 has been sent instead. */
async function answer(handler: FetchHandler, req: NodeRequest, res: NodeResponse): Promise<Response | undefined> {
  let request: Request;
  try {
    request = toRequest(req, res);
  } catch {
    // The client sent what no Request can hold: its fault, so no log line for anyone to flood.
    bare(res, 400);
    return undefined;
  }
  try {
    const response = await handler(request);
    if (!isResponse(response)) fail("toNodeHandler", `handler must return a Response, got ${shown(response)}`);
    return response;
  } catch (error) {
    console.error(error);
    bare(res, 500);
    return undefined;
  }
}
