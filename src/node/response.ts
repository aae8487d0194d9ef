/**
 * Writing a Fetch `Response` to Node's response: headers at once, the body with backpressure, a hand-off to the
 * connection for a channel's subscriber, and every way the client can leave, on HTTP/1 and HTTP/2.
 * @module
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Http2ServerRequest, Http2ServerResponse } from "node:http2";
import type { Socket } from "node:net";
import { report } from "../errors.ts";
import { type HandOff, handOffOf, UNREAD_ERROR_NAME, UNREAD_GRACE_MS } from "../handoff.ts";
import { Compressor, chosenEncoding, type Encoding } from "./compress.ts";
import { broken, dropped, ended, finished, firstOf, isGone, isHttp2, socketOf, whenGone } from "./ending.ts";
import { canHandOff, ResponseSink, TurnSink, whileHandedOff } from "./sink.ts";

/** A request of `node:http` or `node:https` (and so of Express, Fastify and Koa), or of `node:http2`. */
export type NodeRequest = IncomingMessage | Http2ServerRequest;

/** The response that goes with a `NodeRequest`. */
export type NodeResponse = ServerResponse | Http2ServerResponse;

/** A Fetch handler: what Deno, Bun, workerd and Next.js serve, and what `toNodeHandler` turns into a listener. */
export type FetchHandler = (request: Request) => Response | Promise<Response>;
// RFC 9113 §8.2.2: an HTTP/2 response must not carry these; Node drops them itself, with a process warning.
const CONNECTION_HEADERS = new Set(["connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade"]);
/** Not an `async` function: its frame would hold the Response, and its headers, for as long as the body lasts. */
export function send(res: NodeResponse, response: Response, compress = false): Promise<void> {
  try {
    const body = response.body;
    if (isGone(res)) return cancelled(body);
    const eventStream = isEventStream(response);
    // Only event streams, and only those not encoded already: anything else is the handler's to compress.
    const encoding =
      compress && eventStream && !response.headers.has("content-encoding") && !res.headersSent
        ? chosenEncoding(res.req?.headers["accept-encoding"])
        : undefined;
    if (!res.headersSent) writeHead(res, response, encoding);
    if (body === null || res.req?.method === "HEAD") return Promise.all([cancelled(body), finished(res)]).then(noop);
    return pump(res, body, eventStream, encoding);
  } catch (error) {
    // A header Node refuses: as before, a rejected promise rather than a throw.
    return Promise.reject(error);
  }
}

function noop(): void {}

/** Both kinds take bytes, but their typings share no `write` overload. */
function writeTo(res: NodeResponse, bytes: Uint8Array): boolean {
  return (res as { write(chunk: Uint8Array): boolean }).write(bytes);
}

/** Writes the body as it comes, until it ends or the client goes. */
async function pump(
  res: NodeResponse,
  body: ReadableStream<Uint8Array>,
  eventStream: boolean,
  encoding: Encoding | undefined,
): Promise<void> {
  const reader = body.getReader();
  let cleanedUp: Promise<void> | undefined;
  // The client left: cancelling the body is what stops the source and runs its clean-up; a read that was waiting for
  // the next event then resolves as done.
  const onGone = (): void => {
    cleanedUp ??= reader.cancel().catch(() => {});
  };
  const stopWatching = whenGone(res, onGone);
  // A stream of this package on HTTP/1 is handed off: it then writes to the response itself, and this waits for the end
  // (the stream's, or the client's, which cancels the body).
  const offer = handOffOf(body);
  if (offer !== undefined) offer.clientWatched = true;
  // An event stream's client that has not read its last bytes 5 s after the stream ended is gone or stalled: its
  // connection is dropped, so it holds no memory. Any other body may be a slow download, and is waited for.
  const grace = eventStream ? () => graceLeft(offer) : undefined;
  // A compressed stream stays on this path: its bytes go through the compressor, which the channel cannot drive.
  const compressor =
    encoding === undefined ? undefined : new Compressor(encoding, (bytes) => isGone(res) || writeTo(res, bytes));
  const sinkable = offer !== undefined && compressor === undefined && canHandOff(res);
  let sink: ResponseSink | undefined;
  // Captured now: Node detaches the socket from the response once it has finished.
  const socket = socketOf(res);
  let behind = false;
  try {
    // A source's own stream is taken before its first read: it then writes to `res` itself, with no body in between.
    for (let handedOff = sinkable && offer.handOff(new TurnSink(res)); ; ) {
      if (handedOff) {
        await whileHandedOff(res, () => offer?.drained());
        break;
      }
      const { done, value } = await reader.read();
      if (done || isGone(res)) break;
      let full: boolean;
      if (compressor === undefined) full = !writeTo(res, value);
      else {
        await compressor.write(value);
        full = res.writableLength >= res.writableHighWaterMark;
      }
      // The body ended while its client was behind: the connection closes after the last bytes (see `ended`).
      if (full && (await drained(res, socket, reader, grace))) behind = true;
      // A channel subscriber is taken as soon as its body holds nothing.
      if (sinkable) {
        sink ??= new ResponseSink(res);
        handedOff = offer.handOff(sink);
      }
    }
  } catch (error) {
    // The body errored (a source's onError threw; its client did not read its last bytes), or held something that is
    // not bytes: a clean end would tell the client that all was sent. Cancelling stops a source still running.
    const unread = (error as Error | null)?.name === UNREAD_ERROR_NAME;
    if (!unread) report(error, "sendResponse: the body failed");
    compressor?.close();
    if (unread) dropped(res, socket);
    else {
      // Node sends what was written in this turn of its loop (the first chunk, the events before the failure) only at
      // its end: destroyed now, the client would not see them.
      await new Promise((resolve) => setImmediate(resolve));
      broken(res);
    }
    await reader.cancel(error).catch(() => {});
    return;
  } finally {
    stopWatching();
  }
  // A response handed off and finished counts as gone too: Node destroys it once its end has gone out.
  if (isGone(res)) {
    compressor?.close();
    await (cleanedUp ?? reader.cancel().catch(() => {}));
  } else {
    await compressor?.end();
    await (grace === undefined ? finished(res) : ended(res, socket, grace(), behind));
  }
  // drain() ended it: the connection is not kept alive, so a server that is closing does not wait for it.
  if (offer?.closesConnection === true) socket?.end();
}

function writeHead(res: NodeResponse, response: Response, encoding: Encoding | undefined): void {
  const http2 = isHttp2(res);
  for (const [name, value] of response.headers) {
    if (name === "set-cookie" || (http2 && CONNECTION_HEADERS.has(name))) continue;
    res.setHeader(name, value);
  }
  if (encoding !== undefined) {
    res.setHeader("content-encoding", encoding);
    // A cache, or a proxy, must not serve this coding to a client that did not ask for it.
    const vary = String(res.getHeader("vary") ?? "");
    if (!/(^|,)\s*(accept-encoding|\*)\s*(,|$)/i.test(vary))
      res.setHeader("vary", vary === "" ? "accept-encoding" : `${vary}, accept-encoding`);
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

/**
 * Waits until the socket takes more, or the client has gone; true if the body ended meanwhile. Its client then has what
 * is left of an event stream's grace to take more, or is dropped. When the body errors, the wait ends with its error.
 */
async function drained(
  res: NodeResponse,
  socket: Socket | null,
  reader: ReadableStreamDefaultReader<Uint8Array>,
  grace: (() => number) | undefined,
): Promise<boolean> {
  let bodyEnded = false;
  const room = firstOf(res, ["drain", "close"]);
  const ending = reader.closed.then(async () => {
    bodyEnded = true;
    if (grace !== undefined && !(await within(room, grace()))) dropped(res, socket);
  });
  await Promise.race([room, ending]);
  return bodyEnded;
}

/** What is left of an event stream's 5 s to read its last bytes: they count from the stream's end, when it is known. */
function graceLeft(offer: HandOff | undefined): number {
  const endedAt = offer?.endedAt ?? 0;
  return endedAt === 0 ? UNREAD_GRACE_MS : Math.max(0, endedAt + UNREAD_GRACE_MS - Date.now());
}

/** Whether `promise` settled within `ms`. */
function within(promise: Promise<void>, ms: number): Promise<boolean> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms, false);
    void promise.then(() => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}

function isEventStream(response: Response): boolean {
  return response.headers.get("content-type")?.toLowerCase().startsWith("text/event-stream") ?? false;
}

/** An empty answer with this status, or a broken response if the headers have gone out already. */
export function bare(res: NodeResponse, status: number): void {
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

export function isResponse(value: unknown): value is Response {
  if (value === null || typeof value !== "object") return false;
  const { status, headers } = value as Response;
  return typeof status === "number" && typeof headers?.getSetCookie === "function" && "body" in value;
}
