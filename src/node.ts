/**
 * The `eventsource-server/node` entry: a Fetch handler on Node's own servers (`node:http`, `node:https`, `node:http2`,
 * and Express, Fastify and Koa). The only module that imports `node:` modules, so the root entry runs on every runtime.
 * @module
 */
import { checkKeys, fail, report, shown } from "./errors.ts";
import { requestOf } from "./node/request.ts";
import { bare, type FetchHandler, isResponse, type NodeRequest, type NodeResponse, send } from "./node/response.ts";

export type { FetchHandler, NodeRequest, NodeResponse } from "./node/response.ts";

/**
 * A Fetch `Request` of Node's request: URL from the `Host` header (`:authority` on HTTP/2, `https:` on TLS, Express's
 * `originalUrl`), every header, the body unless a middleware has read it, and a `signal` that aborts when the client
 * goes away before the response is finished (`res` closing is how it learns). Throws a `TypeError` when no URL can be
 * made, or `new Request()` refuses the method. See docs/runtimes.md.
 * @example A Fetch view of a node:http request
 * ```ts
 * import assert from "node:assert/strict";
 * import { createServer } from "node:http";
 * import { toRequest } from "eventsource-server/node";
 *
 * const server = createServer((req, res) => {
 *   const request = toRequest(req, res);
 *   res.end(`${request.method} ${new URL(request.url).pathname} ${request.headers.get("last-event-id")}`);
 * });
 * await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
 * const { port } = server.address() as { port: number };
 * const answer = await fetch(`http://127.0.0.1:${port}/events`, { headers: { "last-event-id": "41" } });
 * assert.equal(await answer.text(), "GET /events 41");
 * server.close();
 * ```
 */
export function toRequest(req: NodeRequest, res: NodeResponse): Request {
  return requestOf(req, res);
}

/**
 * Writes a Fetch `Response` to Node's response: headers at once, each chunk as it comes, the next read only after
 * `drain`; the body is cancelled when the client leaves, and a body that errors fails the response the client sees. An
 * `EventChannel` subscriber on HTTP/1 is handed off to write to `res` itself. The promise resolves when the response is
 * over, and never rejects. Throws a `TypeError` when `response` is not a `Response`.
 * @example A Fetch `Response` written to a node:http response
 * ```ts
 * import assert from "node:assert/strict";
 * import { createServer } from "node:http";
 * import { eventSourceResponse } from "eventsource-server";
 * import { sendResponse } from "eventsource-server/node";
 *
 * const server = createServer((_req, res) => sendResponse(res, eventSourceResponse(["hello", "world"])));
 * await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
 * const { port } = server.address() as { port: number };
 * const answer = await fetch(`http://127.0.0.1:${port}/`);
 * assert.equal(answer.headers.get("content-type"), "text/event-stream; charset=utf-8");
 * assert.equal(await answer.text(), ":\n\ndata: hello\n\ndata: world\n\n");
 * server.close();
 * ```
 */
export function sendResponse(res: NodeResponse, response: Response, options?: NodeOptions): Promise<void> {
  if (!isResponse(response)) fail("sendResponse", `response must be a Response, got ${shown(response)}`);
  return send(res, response, compressOption("sendResponse", options));
}

/**
 * A request listener for `node:http`, `node:https`, `node:http2` and Express: `toRequest`, the handler, then
 * `sendResponse`. A handler that throws gets a bare `500` (the error goes to `console.error`), a request no `Request`
 * can hold a bare `400`. Throws a `TypeError` when `handler` is not a function.
 * @example A Fetch handler on node:http (or as Express middleware: `app.get("/events", listener)`)
 * ```ts
 * import assert from "node:assert/strict";
 * import { createServer } from "node:http";
 * import { EventChannel } from "eventsource-server";
 * import { toNodeHandler } from "eventsource-server/node";
 *
 * const channel = new EventChannel();
 * const server = createServer(toNodeHandler((request) => channel.response(request)));
 * await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
 * const { port } = server.address() as { port: number };
 * const answer = await fetch(`http://127.0.0.1:${port}/`);
 * const reader = answer.body!.pipeThrough(new TextDecoderStream()).getReader();
 * assert.equal((await reader.read()).value, ":\n\n");
 * channel.emit({ event: "note", data: "hi" });
 * assert.equal((await reader.read()).value, "event: note\ndata: hi\n\n");
 * channel.close();
 * server.close();
 * ```
 */
export function toNodeHandler(
  handler: FetchHandler,
  options?: NodeOptions,
): (req: NodeRequest, res: NodeResponse) => Promise<void> {
  if (typeof handler !== "function") fail("toNodeHandler", `handler must be a function, got ${shown(handler)}`);
  const compress = compressOption("toNodeHandler", options);
  // The response is sent from a callback, not after an `await` here: a suspended frame would hold the Request and the
  // Response for as long as the body lasts.
  return (req, res) => answer(handler, req, res).then((response) => response && send(res, response, compress));
}

/** The options of `toNodeHandler` and `sendResponse`. */
export interface NodeOptions {
  /**
   * Compresses `text/event-stream` responses with `br` or `gzip`, as the request's `Accept-Encoding` prefers, flushing
   * each chunk so that every event arrives at once. See docs/runtimes.md. @default false
   */
  compress?: boolean | undefined;
}

function compressOption(where: string, options: NodeOptions | undefined): boolean {
  if (options === undefined) return false;
  if (options === null || typeof options !== "object") fail(where, `options must be an object, got ${shown(options)}`);
  checkKeys(where, "options", options, ["compress"]);
  const { compress = false } = options;
  if (typeof compress !== "boolean") fail(where, `options.compress must be a boolean, got ${shown(compress)}`);
  return compress;
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
    report(error, "toNodeHandler: the handler failed");
    bare(res, 500);
    return undefined;
  }
}
