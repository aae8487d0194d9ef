/**
 * The seam between a stream and Node's entry: a source's stream before its first read, or a channel subscriber once its
 * body holds nothing, is handed to a sink that writes to the HTTP/1 response itself, so every event costs one write
 * instead of a read, a pull and their promises. The offer is a property of the body under a global
 * symbol, not an entry in a module's map: an app that has two copies of this package (one bundled by a framework, one
 * of its own) still hands off between them.
 * @module
 */

/** How long an ended stream's last bytes may wait for their client before the connection is dropped. */
export const UNREAD_GRACE_MS = 5_000;

/** The name of the error that drops a stream whose client did not read its last bytes: not worth a log line. */
export const UNREAD_ERROR_NAME = "EventStreamUnreadError";

/** The error that drops a stream whose client did not read its last bytes in time. */
export function unreadError(): Error {
  const error = new Error(`the client did not read the stream's last bytes within ${UNREAD_GRACE_MS / 1_000} s`);
  error.name = UNREAD_ERROR_NAME;
  return error;
}

/** Where a stream's bytes go once it is handed off: straight to the connection, without the body in between. */
export interface Sink {
  write(bytes: Uint8Array): void;
  /**
   * Ends the response normally, once the bytes written have gone out; a client that has not read them all 5 s later
   * (`UNREAD_GRACE_MS`) has its connection dropped.
   */
  end(): void;
  /** Drops the connection as a failure, which the sink reports: the stream errored. */
  fail(error: unknown): void;
  /** Bytes written but not yet taken by the client. */
  unread(): number;
  /** Whether it holds as much as it should until it drains (Node: a write returned false; its mark is 64 KiB from 22). */
  full(): boolean;
}

/** On a `Request` made by the Node entry: its Node response, then, once read, its signal (see node/request.ts). */
export const CLIENT = Symbol.for("eventsource-server.nodeClient.v1");

/** Whether `request.signal` is one of the Node entry's own, which needs no `Request` kept alive to abort. */
export function signalIsOwn(request: Request): boolean {
  return CLIENT in request;
}

/** Versioned: a copy of the package with another version of this seam does not take what it cannot drive. */
const HAND_OFF = Symbol.for("eventsource-server.handOff.v1");

/** What a body that can be handed off offers. */
export interface HandOff {
  /**
   * Moves the stream's output to `sink` when every byte queued so far has been read and nothing is held back (a replay
   * under way); true when it did. After that, `sink.unread()` is what the channel's cap reads.
   */
  handOff(sink: Sink): boolean;
  /** The sink's backlog has fallen (Node's `drain`): a backlog above the cap starts its second over again. */
  drained(): void;
  /**
   * Set by the Node entry, which sends the body and cancels it when the client leaves: a request of its own then need
   * not make the signal that would tell the same (an `AbortController`, and a `DOMException` when it aborts).
   */
  clientWatched?: boolean;
  /** Whether the stream asks its connection to close once it has ended (`drain()` ended it). */
  closesConnection?: boolean;
  /**
   * When it ended (`Date.now()`), 0 while open: its client's 5 s to read the last bytes count from then, not from when a
   * body that queued them reaches its end.
   */
  endedAt?: number;
}

export function offerHandOff(body: ReadableStream<Uint8Array>, stream: HandOff): void {
  (body as unknown as Record<symbol, HandOff>)[HAND_OFF] = stream;
}

export function handOffOf(body: ReadableStream<Uint8Array>): HandOff | undefined {
  const offer = (body as unknown as Record<symbol, HandOff | undefined>)[HAND_OFF];
  return typeof offer?.handOff === "function" ? offer : undefined;
}
