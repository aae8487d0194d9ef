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
import type { IncomingMessage, ServerResponse } from "node:http";
import { constants, type Http2ServerRequest, type Http2ServerResponse } from "node:http2";
import type { Readable } from "node:stream";
import { fail, shown } from "./errors.ts";
import { handOffOf } from "./handoff.ts";
import { writableLengthIsExact } from "./runtime.ts";
import { type Sink, UNREAD_ERROR_NAME, UNREAD_GRACE_MS } from "./stream.ts";

/** A request of `node:http` or `node:https` (and so of Express, Fastify and Koa), or of `node:http2`. */
export type NodeRequest = IncomingMessage | Http2ServerRequest;

/** The response that goes with a `NodeRequest`. */
export type NodeResponse = ServerResponse | Http2ServerResponse;

/** A Fetch handler: what Deno, Bun, workerd and Next.js serve, and what `toNodeHandler` turns into a listener. */
export type FetchHandler = (request: Request) => Response | Promise<Response>;

// RFC 9113 §8.2.2: an HTTP/2 response must not carry these; Node drops them itself, with a process warning.
const CONNECTION_HEADERS = new Set(["connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade"]);

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
  const method = req.method ?? "GET";
  const left = new AbortController();
  const init: RequestInit & { duplex?: "half" } = { method, headers: headersOf(req), signal: left.signal };
  if (method !== "GET" && method !== "HEAD" && !hasBeenRead(req)) {
    init.body = bodyOf(req);
    // Fetch requires this for a streamed request body: the response may start before the body has ended.
    init.duplex = "half";
  }
  const request = new Request(urlOf(req), init);
  abortWhenLeft(res, left, request);
  return request;
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

/**
 * Not an `async` function: its frame would hold the Response for as long as the body lasts (measured over sockets
 * with 10,000 idle connections on Node 20: about 900 B of heap more per connection, and still about 300 B more
 * when an `async` frame returns `pump`'s promise instead of awaiting it).
 */
function send(res: NodeResponse, response: Response): Promise<void> {
  try {
    const body = response.body;
    if (isGone(res)) return cancelled(body);
    if (!res.headersSent) writeHead(res, response);
    if (body === null || res.req?.method === "HEAD") return Promise.all([cancelled(body), ended(res)]).then(noop);
    return pump(res, body, isEventStream(response));
  } catch (error) {
    // A header Node refuses: as before, a rejected promise rather than a throw.
    return Promise.reject(error);
  }
}

function noop(): void {}

/** Writes the body as it comes, until it ends or the client goes. */
async function pump(res: NodeResponse, body: ReadableStream<Uint8Array>, eventStream: boolean): Promise<void> {
  // An event stream's client that has not read its last bytes 5 s after the stream ended is gone or stalled:
  // its connection is dropped, so it holds no memory. Any other body may be a slow download, and is waited for.
  const graceMs = eventStream ? UNREAD_GRACE_MS : undefined;
  const reader = body.getReader();
  let cleanedUp: Promise<void> | undefined;
  // The client left: cancelling the body is what stops the source and runs its clean-up; a read that was
  // waiting for the next event then resolves as done.
  const onGone = (): void => {
    cleanedUp ??= reader.cancel().catch(() => {});
  };
  const stopWatching = whenGone(res, onGone);
  // A channel subscriber on HTTP/1 is handed off as soon as its stream holds nothing: the channel then writes to
  // the response itself, and this waits for the end (the channel's, or the client's, which cancels the body).
  const offer = canHandOff(res) ? handOffOf(body) : undefined;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done || isGone(res)) break;
      // Both kinds take bytes, but their typings share no `write` overload.
      if (!(res as { write(chunk: Uint8Array): boolean }).write(value)) await drained(res, reader, graceMs);
      if (offer?.handOff(new ResponseSink(res as ServerResponse))) {
        await whileHandedOff(res, () => offer.drained());
        break;
      }
    }
  } catch (error) {
    // The body errored (a source's onError threw; its client did not read its last bytes), or held something that
    // is not bytes: a clean end would tell the client that all was sent. Cancelling stops a source still running.
    if ((error as Error | null)?.name !== UNREAD_ERROR_NAME) console.error(error);
    broken(res);
    await reader.cancel(error).catch(() => {});
    return;
  } finally {
    stopWatching();
  }
  if (isGone(res)) {
    await (cleanedUp ?? reader.cancel().catch(() => {}));
    return;
  }
  await ended(res, graceMs);
}

/**
 * Calls `onGone` when the client goes away before the response is over. On HTTP/2 a stream the client resets
 * with `NO_ERROR` emits `aborted` and `close` on the stream, but no `close` on the response.
 */
function whenGone(res: NodeResponse, onGone: () => void): () => void {
  // An HTTP/1 request's own close only means that its body has been read: the response's close is the one.
  const watched: [Pick<Readable, "on" | "off">, string][] = [[emitter(res), "close"]];
  if (isHttp2(res)) {
    const stream = res.stream as unknown as Pick<Readable, "on" | "off">;
    watched.push([stream, "close"], [stream, "aborted"]);
  }
  const listener = (): void => {
    if (!isFinished(res)) onGone();
  };
  for (const [source, name] of watched) source.on(name, listener);
  return () => {
    for (const [source, name] of watched) source.off(name, listener);
  };
}

function writeHead(res: NodeResponse, response: Response): void {
  const http2 = isHttp2(res);
  for (const [name, value] of response.headers) {
    if (name === "set-cookie" || (http2 && CONNECTION_HEADERS.has(name))) continue;
    res.setHeader(name, value);
  }
  // Headers iterates each set-cookie on its own, but one setHeader per value would keep only the last.
  const cookies = response.headers.getSetCookie();
  if (cookies.length > 0) res.setHeader("set-cookie", cookies);
  if (http2) {
    // HTTP/2 has no status text (Node warns when one is set), and writeHead sends the headers at once.
    res.writeHead(response.status);
    return;
  }
  if (response.statusText === "") res.writeHead(response.status);
  else res.writeHead(response.status, response.statusText);
  // HTTP/1 holds the headers until the first write; a stream's first event may be a long way off.
  res.flushHeaders();
}

/** Whether a channel subscriber may be handed off to `res`: HTTP/1 responses whose unsent bytes Node counts. */
function canHandOff(res: NodeResponse): res is ServerResponse {
  return !isHttp2(res) && writableLengthIsExact;
}

/** A channel subscriber's bytes written to an HTTP/1 response: its unread bytes are those Node still holds. */
class ResponseSink implements Sink {
  readonly #res: ServerResponse;
  constructor(res: ServerResponse) {
    this.#res = res;
  }
  write(chunk: Uint8Array): void {
    // The client may have gone a moment before its close event ends the subscription.
    if (!this.#res.destroyed) this.#res.write(chunk);
  }
  end(): void {
    this.#res.end();
  }
  destroy(): void {
    this.#res.destroy();
  }
  unread(): number {
    return this.#res.writableLength;
  }
}

/** Waits for the end of a stream handed off to `res`, telling it each time the socket drains. */
async function whileHandedOff(res: NodeResponse, onDrain: () => void): Promise<void> {
  emitter(res).on("drain", onDrain);
  await firstOf(res, ["finish", "close"]);
  emitter(res).off("drain", onDrain);
}

/** Ends the response and waits until it has gone out, or the client has gone, or `graceMs` have passed. */
async function ended(res: NodeResponse, graceMs?: number): Promise<void> {
  res.end();
  // Node emits finish and close from later callbacks, so listening after end() misses neither.
  if (res.writableFinished || isGone(res)) return;
  if (!(await within(firstOf(res, ["finish", "close"]), graceMs))) broken(res);
}

/**
 * Waits until the socket takes more, or the client has gone. When the body ends meanwhile, an event stream's
 * client has `graceMs` more to take it, or is dropped; when the body errors, the wait ends with its error.
 */
function drained(
  res: NodeResponse,
  reader: ReadableStreamDefaultReader<Uint8Array>,
  graceMs: number | undefined,
): Promise<void> {
  const room = firstOf(res, ["drain", "close"]);
  const bodyEnded = reader.closed.then(async () => {
    if (!(await within(room, graceMs))) broken(res);
  });
  return Promise.race([room, bodyEnded]);
}

/** Whether `promise` settled within `ms` (forever without `ms`). */
function within(promise: Promise<void>, ms: number | undefined): Promise<boolean> {
  if (ms === undefined) return promise.then(() => true);
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms, false);
    promise.then(() => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}

function isEventStream(response: Response): boolean {
  return response.headers.get("content-type")?.toLowerCase().startsWith("text/event-stream") ?? false;
}

/** Resolves on the first of these events, and leaves no listener behind. */
function firstOf(res: NodeResponse, names: string[]): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      for (const name of names) emitter(res).off(name, done);
      resolve();
    };
    for (const name of names) emitter(res).on(name, done);
  });
}

/** Ends the response so that the client sees a failure, not a clean end of the body. */
function broken(res: NodeResponse): void {
  // Destroying an HTTP/2 response would reset the stream with NO_ERROR, the code of a normal close.
  if (isHttp2(res)) res.stream.close(constants.NGHTTP2_INTERNAL_ERROR);
  else res.destroy();
}

/** An empty answer with this status, or a broken response if the headers have gone out already. */
function bare(res: NodeResponse, status: number): void {
  if (isGone(res)) return;
  if (res.headersSent) {
    broken(res);
    return;
  }
  res.statusCode = status;
  res.setHeader("content-length", "0");
  res.end();
}

async function cancelled(body: ReadableStream<Uint8Array> | null): Promise<void> {
  await body?.cancel().catch(() => {});
}

function isHttp2(res: NodeResponse): res is Http2ServerResponse {
  return "stream" in res;
}

/** Whether the connection (or the HTTP/2 stream) is closed already: nothing written now would arrive. */
function isGone(res: NodeResponse): boolean {
  return isHttp2(res) ? res.stream.destroyed : res.destroyed;
}

/** Both kinds of response are event emitters, but their typings share no `on` overload. */
function emitter(res: NodeResponse): Pick<Readable, "on" | "once" | "off"> {
  return res as unknown as Pick<Readable, "on" | "once" | "off">;
}

/** Whether the response was sent whole: its end written out, and on HTTP/2 the stream closed without a reset. */
function isFinished(res: NodeResponse): boolean {
  // Node's HTTP/2 compatibility layer reports writableFinished for a stream the client reset, too.
  return isHttp2(res) ? res.writableEnded && res.stream.rstCode === constants.NGHTTP2_NO_ERROR : res.writableFinished;
}

function isResponse(value: unknown): value is Response {
  if (value === null || typeof value !== "object") return false;
  const { status, headers } = value as Response;
  return typeof status === "number" && typeof headers?.getSetCookie === "function" && "body" in value;
}

/**
 * Aborts `left`, which `request.signal` follows, when `res` closes before it has finished: the client went away.
 * A Request's signal follows the one it was made with only while the Request is alive (undici holds it weakly),
 * so the listener holds `request` until the response closes: a caller that keeps only `request.signal` still
 * hears of the client leaving (without this, 166 of 1,000 such signals never aborted once the GC had run).
 */
function abortWhenLeft(res: NodeResponse, left: AbortController, request: Request): void {
  if (isGone(res)) {
    left.abort();
    return;
  }
  const stopWatching = whenGone(res, () => {
    stopWatching();
    if (!request.signal.aborted) left.abort();
  });
  // Let go of the request once the response is over, whichever way.
  emitter(res).once("close", () => setImmediate(stopWatching));
}

function urlOf(req: NodeRequest): string {
  const http2 = req.httpVersionMajor === 2;
  const authority = http2 ? req.headers[":authority"] : undefined;
  const host = (typeof authority === "string" && authority) || req.headers.host || "localhost";
  const encrypted = (req.socket as { encrypted?: boolean } | null)?.encrypted === true;
  const origin = new URL(`${encrypted ? "https:" : "http:"}//${host}`);
  // "evil.test/x?" would make a path of its own: a Host header must be a host and nothing else.
  if (origin.href !== `${origin.origin}/` || origin.username !== "" || origin.password !== "") {
    fail("toRequest", `the Host header must be a host, got ${shown(host)}`);
  }
  // Express cuts `url` to what is below the router's mount point; the client asked for `originalUrl`.
  const originalUrl = (req as { originalUrl?: unknown }).originalUrl;
  const target = typeof originalUrl === "string" ? originalUrl : (req.url ?? "/");
  // Concatenated, never resolved against the origin: "//evil.test/x" is a path on this host, not another host.
  if (target.startsWith("/")) return `${origin.origin}${target}`;
  // RFC 9112 §3.2.2: a request to a proxy names the whole URL, and then its host is the one that counts.
  if (/^https?:\/\//i.test(target)) return new URL(target).href;
  fail("toRequest", `the request target must be a path or an http(s) URL, got ${shown(target)}`);
}

function headersOf(req: NodeRequest): Headers {
  const headers = new Headers();
  const cookies: string[] = [];
  const raw = req.rawHeaders;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i] as string;
    const value = raw[i + 1] as string;
    if (name.startsWith(":")) continue;
    // HTTP/2 splits the cookie header into one field per cookie, and they join with "; ", not ", ".
    if (name.toLowerCase() === "cookie") cookies.push(value);
    else headers.append(name, value);
  }
  if (cookies.length > 0) headers.set("cookie", cookies.join("; "));
  return headers;
}

/** A body parser (Express's `express.json()`, Fastify's own) has read the body already, or begun to. */
function hasBeenRead(req: NodeRequest): boolean {
  return req.readableDidRead || req.readableEnded;
}

/** The request body, read only as fast as the handler reads it. */
function bodyOf(req: NodeRequest): ReadableStream<Uint8Array> {
  const stream: Readable = req;
  let settled = false;
  const listeners = {
    data(chunk: Uint8Array): void {
      controller?.enqueue(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength));
      if ((controller?.desiredSize ?? 0) <= 0) stream.pause();
    },
    end(): void {
      settle(() => controller?.close());
    },
    error(error: unknown): void {
      settle(() => controller?.error(error));
    },
    close(): void {
      settle(() => controller?.error(new Error("toRequest: the client went away before the whole body arrived")));
    },
  };
  let controller: ReadableStreamDefaultController<Uint8Array> | undefined;
  function settle(action: () => void): void {
    if (settled) return;
    settled = true;
    detach();
    action();
  }
  function detach(): void {
    for (const [name, listener] of Object.entries(listeners)) stream.off(name, listener);
  }
  return new ReadableStream<Uint8Array>({
    start(streamController) {
      controller = streamController;
      // Paused before the data listener goes on, so nothing flows until the handler reads.
      stream.pause();
      for (const [name, listener] of Object.entries(listeners)) stream.on(name, listener);
    },
    pull() {
      stream.resume();
    },
    cancel() {
      settled = true;
      detach();
      // Read and drop the rest, so a keep-alive connection can take its next request.
      stream.resume();
    },
  });
}
