/**
 * What the Node entry knows of a response and its connection: whether the client has gone or the response
 * finished, and the ways a response ends (finished, ended with a grace for its last bytes, dropped, broken), on
 * HTTP/1 and HTTP/2.
 * @module
 */
import { constants, type Http2ServerResponse } from "node:http2";
import type { Socket } from "node:net";
import type { Readable } from "node:stream";
import { deadline } from "../keep-alive.ts";
import type { NodeResponse } from "./response.ts";

/**
 * Calls `onGone` when the client goes away before the response is over. On HTTP/2 a stream the client resets with
 * `NO_ERROR` emits `aborted` and `close` on the stream, but no `close` on the response.
 */
export function whenGone(res: NodeResponse, onGone: () => void): () => void {
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

/** Whether the connection (or the HTTP/2 stream) is closed already: nothing written now would arrive. */
export function isGone(res: NodeResponse): boolean {
  return isHttp2(res) ? res.stream.destroyed : res.destroyed;
}

/** Whether the response was sent whole: its end written out, and on HTTP/2 the stream closed without a reset. */
export function isFinished(res: NodeResponse): boolean {
  // Node's HTTP/2 compatibility layer reports writableFinished for a stream the client reset, too.
  return isHttp2(res) ? res.writableEnded && res.stream.rstCode === constants.NGHTTP2_NO_ERROR : res.writableFinished;
}

/** Ends the response and waits until it has gone out, or the client has gone. */
export async function finished(res: NodeResponse): Promise<void> {
  res.end();
  // Node emits finish and close from later callbacks, so listening after end() misses neither.
  if (!res.writableFinished && !isGone(res)) await firstOf(res, ["finish", "close"]);
}

/**
 * Ends an event stream's response, whose client has `ms` to take the rest or has its connection dropped. A client that
 * was behind at the end may leave its last bytes in the kernel's buffers (up to a few MB), where Node cannot see
 * whether they are ever read, for as long as the server keeps the connection alive: its connection is dropped too,
 * unless it has sent more since (its next request, which a client sends only once it has read this response whole).
 */
export async function ended(res: NodeResponse, socket: Socket | null, ms: number, wasBehind: boolean): Promise<void> {
  const behind = socket !== null && (wasBehind || res.writableLength > 0);
  const readAtEnd = socket?.bytesRead;
  res.end();
  const stop = deadline(ms, () => {
    socket?.off("close", stop);
    const unsent = !res.writableFinished && !isGone(res);
    const unread = behind && !socket.destroyed && socket.bytesRead === readAtEnd;
    if (unsent || unread) dropped(res, socket);
  });
  // A connection that closes first has nothing left to drop, and keeps no timer running.
  if (behind) socket.once("close", stop);
  // Node emits finish and close from later callbacks, so listening after end() misses neither.
  if (!res.writableFinished && !isGone(res)) await firstOf(res, ["finish", "close"]);
  if (!behind) stop();
}

/**
 * Drops the connection of a client that did not read its last bytes in time. On HTTP/1 with a reset: a plain close
 * leaves the kernel holding what the socket had not sent (up to its send buffer, about 4 MB on Linux) until the client
 * reads it or the kernel gives up, minutes later.
 */
export function dropped(res: NodeResponse, socket: Socket | null): void {
  if (socket?.destroyed === true) return;
  try {
    if (typeof socket?.resetAndDestroy === "function") {
      socket.resetAndDestroy();
      return;
    }
  } catch {
    // Only a plain TCP socket can be reset (not a TLS one): closed as any other failure.
  }
  broken(res);
}

/** Ends the response so that the client sees a failure, not a clean end of the body. */
export function broken(res: NodeResponse): void {
  // Destroying an HTTP/2 response would reset the stream with NO_ERROR, the code of a normal close.
  if (isHttp2(res)) res.stream.close(constants.NGHTTP2_INTERNAL_ERROR);
  else res.destroy();
}

/** Resolves on the first of these events, and leaves no listener behind. */
export function firstOf(res: NodeResponse, names: string[]): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      for (const name of names) emitter(res).off(name, done);
      resolve();
    };
    for (const name of names) emitter(res).on(name, done);
  });
}

/** An HTTP/1 response's connection; null on HTTP/2, where the connection is shared, and once Node has detached it. */
export function socketOf(res: NodeResponse): Socket | null {
  return isHttp2(res) ? null : res.socket;
}

export function isHttp2(res: NodeResponse): res is Http2ServerResponse {
  return "stream" in res;
}

/** Both kinds of response are event emitters, but their typings share no `on` overload. */
export function emitter(res: NodeResponse): Pick<Readable, "on" | "once" | "off"> {
  return res as unknown as Pick<Readable, "on" | "once" | "off">;
}
