/**
 * Making a Fetch `Request` of Node's request: its URL, headers and body, and a signal that aborts when the client
 * leaves before the response is over.
 * @module
 */
import type { Readable } from "node:stream";
import { fail, shown } from "../errors.ts";
import { CLIENT } from "../handoff.ts";
import { emitter, isFinished, isGone, whenGone } from "./ending.ts";
import type { NodeRequest, NodeResponse } from "./response.ts";

/** `toRequest`, documented in the entry. */
export function requestOf(req: NodeRequest, res: NodeResponse): Request {
  const method = req.method ?? "GET";
  const init: RequestInit & { duplex?: "half" } = { method, headers: headersOf(req) };
  if (method !== "GET" && method !== "HEAD" && !hasBeenRead(req)) {
    init.body = bodyOf(req);
    // Fetch requires this for a streamed request body: the response may start before the body has ended.
    init.duplex = "half";
  }
  const request = new Request(urlOf(req), init);
  // Made without a signal, which would cost undici a signal that follows it, with a finalizer (about twice the rest
  // of the Request, on Node 20): the signal that tells of the client leaving is made at its first read.
  (request as LazySignal)[CLIENT] = res;
  Object.defineProperty(request, "signal", SIGNAL);
  return request;
}

type LazySignal = Request & { [CLIENT]?: NodeResponse | AbortSignal };

// Not enumerable: own keys and a spread stay those of any Request (none).
const SIGNAL: PropertyDescriptor = {
  configurable: true,
  enumerable: false,
  get(this: LazySignal): AbortSignal {
    const held = this[CLIENT] as NodeResponse | AbortSignal;
    if (held instanceof AbortSignal) return held;
    const left = new AbortController();
    abortWhenLeft(held, left);
    this[CLIENT] = left.signal;
    return left.signal;
  },
};

/** Aborts `left` when `res` closes before it has finished: the client went away. */
function abortWhenLeft(res: NodeResponse, left: AbortController): void {
  if (isGone(res)) {
    if (!isFinished(res)) left.abort();
    return;
  }
  const stopWatching = whenGone(res, () => {
    stopWatching();
    left.abort();
  });
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

/** As pairs: the Request copies them into Headers of its own, so a Headers object here would be made twice. */
function headersOf(req: NodeRequest): [string, string][] {
  const headers: [string, string][] = [];
  const cookies: string[] = [];
  const raw = req.rawHeaders;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i] as string;
    const value = raw[i + 1] as string;
    if (name.startsWith(":")) continue;
    // HTTP/2 splits the cookie header into one field per cookie, and they join with "; ", not ", ".
    if (name.toLowerCase() === "cookie") cookies.push(value);
    else headers.push([name, value]);
  }
  if (cookies.length > 0) headers.push(["cookie", cookies.join("; ")]);
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
