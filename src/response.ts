import { encodeWith, isRetry, type Serialize, serializerOf } from "./encode.ts";
import { fail, shown } from "./errors.ts";
import { deadline, Watch } from "./keep-alive.ts";
import { isRequest, lastEventId } from "./last-event-id.ts";
import { isBun, isDeno } from "./runtime.ts";
import { badSource, isSource, type Puller, pullerOf } from "./source.ts";
import type { EventInput, EventSourceResponseInit, EventSourceSource, EventStreamLike, KnownKeys } from "./types.ts";
import { utf8 } from "./utf8.ts";

const DEFAULT_HEADERS: readonly (readonly [string, string])[] = [
  ["content-type", "text/event-stream; charset=utf-8"],
  // no-transform: Next.js and some proxies otherwise gzip the stream and hold bytes back.
  ["cache-control", "no-cache, no-transform"],
  // nginx buffers proxied responses unless told not to.
  ["x-accel-buffering", "no"],
];

/** Past this, timers fire at once, so a larger keep-alive would turn into a busy loop. */
const MAX_TIMER_MS = 2 ** 31 - 1;
const DEFAULT_KEEP_ALIVE_MS = 8_000;

/** An empty comment: the first chunk when there is no `retry`, and the heartbeat. */
export const COMMENT = ":\n\n";

/** `init`, checked once, with defaults filled in. */
export interface StreamOptions {
  request: Request | undefined;
  signal: AbortSignal | undefined;
  retry: number | undefined;
  keepAliveMs: number;
  /** 0: no limit. */
  maxDurationMs: number;
  serialize: Serialize;
  onError: (error: unknown) => EventInput | void;
  responseInit: ResponseInit;
}

/**
 * Makes a streaming `text/event-stream` response of an async iterable, an iterable, a `ReadableStream`, or a
 * function returning one of them. Returns at once; the source is read as the client reads the body.
 *
 * Throws a `TypeError`, synchronously, for a source of none of those forms (a bare string included) and for an
 * invalid `init` option.
 *
 * The first chunk (the `retry:` field, else a comment) is written at once, so headers reach the client before
 * the first event. Each event is written as soon as the source yields it, and the source is pulled only as
 * fast as the client reads. When the client leaves or `init.signal` aborts, the source is stopped (a
 * generator's `finally` runs, a stream is cancelled), the context signal aborts and the keep-alive timer ends.
 * When the source throws or yields an invalid event, `onError` is called once and the body closes normally.
 *
 * @param source The events, or a function of `{ signal, lastEventId }` that returns them.
 * @param init `ResponseInit` (`status`, `headers`, …) plus `request`, `signal`, `retry`, `keepAlive`,
 *   `serialize` and `onError`.
 * @returns A `Response` with a `ReadableStream<Uint8Array>` body and the event-stream headers.
 * @see https://html.spec.whatwg.org/multipage/server-sent-events.html
 *
 * @example A Fetch handler that counts to three
 * ```ts
 * import assert from "node:assert/strict";
 * import { eventSourceResponse } from "eventsource-server";
 *
 * async function* count() {
 *   for (let n = 1; n <= 3; n++) yield { event: "count", data: String(n) };
 * }
 * const response = eventSourceResponse(count());
 * assert.equal(response.headers.get("content-type"), "text/event-stream; charset=utf-8");
 * assert.equal(
 *   await response.text(),
 *   ":\n\nevent: count\ndata: 1\n\nevent: count\ndata: 2\n\nevent: count\ndata: 3\n\n",
 * );
 * ```
 *
 * @example A source that resumes after the client's last event ID and stops when the client leaves
 * ```ts
 * import assert from "node:assert/strict";
 * import { eventSourceResponse } from "eventsource-server";
 *
 * const request = new Request("http://localhost/events", { headers: { "last-event-id": "41" } });
 * const response = eventSourceResponse(
 *   async function* ({ signal, lastEventId }) {
 *     let id = Number(lastEventId ?? 0);
 *     while (!signal.aborted) yield { id: ++id, data: "tick" };
 *   },
 *   { request, retry: 2_000 },
 * );
 * const reader = response.body!.pipeThrough(new TextDecoderStream()).getReader();
 * assert.equal((await reader.read()).value, "retry: 2000\n\n");
 * assert.equal((await reader.read()).value, "id: 42\ndata: tick\n\n");
 * await reader.cancel();
 * ```
 */
export function eventSourceResponse<Input extends EventInput>(
  source: EventSourceSource<Input & KnownKeys<Input>>,
  init?: EventSourceResponseInit,
): Response {
  const where = "eventSourceResponse";
  if (!isSource(source)) badSource(where, source);
  const options = streamOptions(where, init);
  return eventStreamResponse(eventStream(source, options), options);
}

/** Checks `init` once, before anything starts, so a bad option throws now and not on the first read. */
export function streamOptions(where: string, init: EventSourceResponseInit | undefined): StreamOptions {
  if (init === undefined) init = {};
  else if (init === null || typeof init !== "object") fail(where, `init must be an object, got ${shown(init)}`);
  const { request, signal, retry, keepAlive, maxDuration, serialize, onError, ...responseInit } = init;
  if (request !== undefined && !isRequest(request)) {
    fail(where, `init.request must be a Request, got ${shown(request)}`);
  }
  if (signal !== undefined && !isSignal(signal)) {
    fail(where, `init.signal must be an AbortSignal, got ${shown(signal)}`);
  }
  if (retry !== undefined && !isRetry(retry)) {
    fail(where, `init.retry must be a non-negative safe integer, got ${shown(retry)}`);
  }
  const keepAliveMs = keepAlive ?? DEFAULT_KEEP_ALIVE_MS;
  if (keepAliveMs !== false && !(Number.isInteger(keepAliveMs) && keepAliveMs >= 0 && keepAliveMs <= MAX_TIMER_MS)) {
    fail(where, `init.keepAlive must be false or whole ms up to ${MAX_TIMER_MS}, got ${shown(keepAliveMs)}`);
  }
  if (maxDuration !== undefined && !(Number.isInteger(maxDuration) && maxDuration > 0 && maxDuration <= MAX_TIMER_MS)) {
    fail(
      where,
      `init.maxDuration must be a positive whole number of ms up to ${MAX_TIMER_MS}, got ${shown(maxDuration)}`,
    );
  }
  if (onError !== undefined && typeof onError !== "function") {
    fail(where, `init.onError must be a function, got ${shown(onError)}`);
  }
  return {
    request,
    signal,
    retry,
    keepAliveMs: keepAliveMs || 0,
    maxDurationMs: maxDuration ?? 0,
    serialize: serializerOf(where, { serialize }),
    onError: onError ?? reportError,
    responseInit,
  };
}

/** Wraps an event-stream body in a `Response` with the default headers under the caller's. */
export function eventStreamResponse(body: ReadableStream<Uint8Array>, options: StreamOptions): Response {
  const headers = new Headers(options.responseInit.headers);
  for (const [name, value] of DEFAULT_HEADERS) if (!headers.has(name)) headers.set(name, value);
  return new Response(body, { ...options.responseInit, headers });
}

/**
 * Arms `maxDuration` for one stream, at its first read: after a time drawn uniformly between 0.9 × and 1 × the
 * limit, so clients that connected together do not all reconnect together. Returns how to disarm it.
 */
export function maxDurationTimer(options: StreamOptions, onDue: () => void): () => void {
  const { maxDurationMs } = options;
  if (maxDurationMs === 0) return noop;
  return deadline(Math.max(1, Math.round(maxDurationMs * (0.9 + 0.1 * Math.random()))), onDue);
}

/** The first chunk: written at once, since some runtimes hold the headers back until the first body byte. */
export function firstChunk(retry: number | undefined): Uint8Array {
  return utf8(retry === undefined ? COMMENT : `retry: ${retry}\n\n`);
}

// Deno's request.signal also aborts after a response has finished normally (its legacy behaviour), and Deno
// warns once per process when a handler reads it. There the body's cancel is what tells of a client leaving.
const requestSignalEndsStreams = !isDeno;

// undici's Request.signal follows the signal the Request was made with only while the Request is alive (it holds
// its controller weakly), so a listener must hold the Request: one nobody else keeps could otherwise be collected,
// and its abort would never reach the stream. Bun's Request.signal is the very signal it was made with, and
// Bun.serve's still aborts once its Request is collected (checked on Bun 1.4): holding the Request there would
// only keep its headers alive (about 440 bytes per idle connection, measured over sockets).
const listenersHoldRequests = !isBun;

/** The signals whose first abort ends a stream: the caller's, and the request's where it is read. */
function signalsOf(options: StreamOptions): AbortSignal[] {
  const signals: AbortSignal[] = [];
  if (options.signal !== undefined) signals.push(options.signal);
  if (options.request !== undefined && requestSignalEndsStreams) signals.push(options.request.signal);
  return signals;
}

/** Adds `listener` to every signal, once; or, when one has already aborted, returns it and adds nothing. */
function listen(signals: AbortSignal[], listener: EventListenerObject): AbortSignal | undefined {
  const aborted = signals.find((s) => s.aborted);
  if (aborted === undefined) for (const signal of signals) signal.addEventListener("abort", listener, { once: true });
  return aborted;
}

function unlisten(signals: AbortSignal[], listener: EventListenerObject): void {
  for (const signal of signals) signal.removeEventListener("abort", listener);
}

/**
 * Calls `onEnd` once, the first time the request or the caller's signal aborts; returns the function that
 * stops listening. An already-aborted signal calls `onEnd` at once.
 */
export function onAbort(options: StreamOptions, onEnd: (reason: unknown) => void): () => void {
  const signals = signalsOf(options);
  // Most streams have no signal to watch: they pay for no listener.
  if (signals.length === 0) return noop;
  const listener = {
    request: listenersHoldRequests ? options.request : undefined,
    handleEvent: (event: Event): void => onEnd((event.target as AbortSignal).reason),
  };
  const aborted = listen(signals, listener);
  if (aborted !== undefined) {
    onEnd(aborted.reason);
    return noop;
  }
  return () => unlisten(signals, listener);
}

function eventStream(source: EventSourceSource, options: StreamOptions): ReadableStream<Uint8Array> {
  return new ReadableStream<Uint8Array>(new EventStreamSource(source, options), { highWaterMark: 1 });
}

/**
 * The body of one `eventSourceResponse`: the source, its puller, and every way the stream ends. One object with
 * its methods on a shared prototype, rather than a dozen closures made per stream, and it is its own keep-alive
 * watch and its own abort listener: an idle connection holds little more than this object's fields (measured on
 * Node 20 with 10,000 idle streams: about 1 KB less per stream than closures, and about 80 B less again than
 * with a watch object of its own).
 */
class EventStreamSource extends Watch {
  readonly #source: EventSourceSource;
  // Dropped at the first pull, so that an open stream does not keep its request (and its headers) alive.
  #options: StreamOptions | undefined;
  readonly #serialize: Serialize;
  readonly #onError: StreamOptions["onError"];
  // Only a function source is given a signal, so only it pays for an AbortController, made when it is called.
  #context: AbortController | undefined;
  #controller!: ReadableStreamDefaultController<Uint8Array>;
  #puller: Puller | undefined;
  // Set when the source has ended by itself, so it is not stopped a second time.
  #sourceDone = false;
  #ended = false;
  // The signals this stream listens to, as their listener itself (handleEvent).
  #signals: AbortSignal[] | undefined;
  /** Never read: held while the stream listens to its signal (see listenersHoldRequests). */
  heldRequest: Request | undefined;
  #stopDeadline = noop;
  #onResult: ((result: IteratorResult<unknown>) => void) | undefined;
  #onFailure: ((error: unknown) => void) | undefined;

  constructor(source: EventSourceSource, options: StreamOptions) {
    super();
    this.#source = source;
    this.#options = options;
    this.#serialize = options.serialize;
    this.#onError = options.onError;
  }

  start(controller: ReadableStreamDefaultController<Uint8Array>): void {
    this.#controller = controller;
    const options = this.#options as StreamOptions;
    controller.enqueue(firstChunk(options.retry));
    const signals = signalsOf(options);
    if (signals.length === 0) return;
    // The stream is the listener, rather than a listener object and two closures made for it.
    const aborted = listen(signals, this);
    if (aborted !== undefined) {
      this.#end(aborted.reason, true);
      return;
    }
    this.#signals = signals;
    if (listenersHoldRequests) this.heldRequest = options.request;
  }

  /** The request's or the caller's signal aborted. */
  handleEvent(event: Event): void {
    this.#end((event.target as AbortSignal).reason, true);
  }

  pull(): void | Promise<void> {
    if (this.#ended) return;
    if (this.#puller !== undefined) return this.#advance(this.#puller);
    const options = this.#options as StreamOptions;
    this.#options = undefined;
    // Watched from the first pull: a response nobody reads needs no heartbeat, and must not keep a timer alive.
    if (options.keepAliveMs > 0) this.watch(options.keepAliveMs);
    this.#stopDeadline = maxDurationTimer(options, () => this.#end(undefined, true));
    return this.#open(options);
  }

  cancel(reason: unknown): void {
    this.#end(reason, false);
  }

  /** The keep-alive's heartbeat. */
  onSilence(): void {
    // A client that has not read the last chunk is not idle; piling heartbeats behind it helps no one.
    if ((this.#controller.desiredSize ?? 0) > 0) this.#controller.enqueue(utf8(COMMENT));
  }

  #write(text: string): void {
    this.#controller.enqueue(utf8(text));
    this.touch();
  }

  /** Every way the stream ends comes through here, once. */
  #end(reason: unknown, closeBody: boolean): void {
    if (this.#ended) return;
    this.#ended = true;
    this.stop();
    this.#stopDeadline();
    if (this.#signals !== undefined) {
      unlisten(this.#signals, this);
      this.#signals = undefined;
      this.heldRequest = undefined;
    }
    this.#context?.abort(reason);
    if (this.#puller !== undefined) {
      if (!this.#sourceDone) this.#stopSource(this.#puller, reason);
    } else if (typeof this.#source !== "function") {
      // Ended before the first pull: a stream given to us must still be cancelled, a generator still closed.
      try {
        this.#stopSource(pullerOf("eventSourceResponse", this.#source), reason);
      } catch (error) {
        this.#report(error);
      }
    }
    if (closeBody) this.#controller.close();
  }

  #stopSource(puller: Puller, reason: unknown): void {
    // A failing finally block must not become an unhandled rejection; it is the source's error all the same.
    try {
      const stopped = puller.stop(reason);
      if (isThenable(stopped)) stopped.then(undefined, (error) => this.#report(error));
    } catch (error) {
      this.#report(error);
    }
  }

  #report(error: unknown): void {
    try {
      this.#onError(error);
    } catch {
      // The stream has already ended; there is nothing left for onError's own error to end.
    }
  }

  /** The source threw or rejected: it is finished, as a for-of loop would treat it, so nothing is left to stop. */
  #sourceFailed(error: unknown): void {
    this.#sourceDone = true;
    this.#failed(error);
  }

  /** `onError` decides the last words, then the body closes; a throw from `onError` errors the body. */
  #failed(error: unknown): void {
    if (this.#ended) return;
    try {
      const fallback = this.#onError(error);
      if (fallback !== undefined) this.#write(encodeWith(fallback, this.#serialize, "encodeEvent"));
    } catch (fatal) {
      this.#end(fatal, false);
      this.#controller.error(fatal);
      return;
    }
    this.#end(error, true);
  }

  #deliver(result: IteratorResult<unknown>): void {
    if (this.#ended) return;
    if (result.done) {
      this.#sourceDone = true;
      this.#end(undefined, true);
      return;
    }
    let text: string;
    try {
      text = encodeWith(result.value as EventInput, this.#serialize, "encodeEvent");
    } catch (error) {
      // An invalid event leaves the source suspended at its yield: end() stops it.
      this.#failed(error);
      return;
    }
    this.#write(text);
  }

  /**
   * One event per pull. Plain callbacks rather than async functions: each `await` layer would cost a promise per
   * event, and a synchronous source costs none at all.
   */
  #advance(from: Puller): void | Promise<void> {
    let next: ReturnType<Puller["next"]>;
    try {
      next = from.next();
    } catch (error) {
      this.#sourceFailed(error);
      return;
    }
    // Promise.resolve returns a native promise as it is, so this costs nothing for the common source.
    if (isThenable(next)) {
      // Made once per stream, not once per event.
      this.#onResult ??= (result) => this.#deliver(result);
      this.#onFailure ??= (error) => this.#sourceFailed(error);
      return Promise.resolve(next).then(this.#onResult, this.#onFailure);
    }
    this.#deliver(next);
  }

  async #open(options: StreamOptions): Promise<void> {
    const source = this.#source;
    let opened: Puller;
    try {
      let made: EventStreamLike;
      if (typeof source === "function") {
        this.#context = new AbortController();
        made = await source({ signal: this.#context.signal, lastEventId: requestedId(options) });
      } else {
        made = source;
      }
      opened = pullerOf("eventSourceResponse", made);
    } catch (error) {
      this.#sourceFailed(error);
      return;
    }
    this.#puller = opened;
    // The client may have left while the function was running; its source must still be stopped.
    if (this.#ended) {
      this.#stopSource(opened, this.#context?.signal.reason);
      return;
    }
    return this.#advance(opened);
  }
}

/** The last event ID of the request being answered, or `null` without one. */
export function requestedId(options: StreamOptions): string | null {
  return options.request === undefined ? null : lastEventId(options.request);
}

function isSignal(value: unknown): value is AbortSignal {
  return (
    value !== null &&
    typeof value === "object" &&
    typeof (value as AbortSignal).aborted === "boolean" &&
    typeof (value as AbortSignal).addEventListener === "function"
  );
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return typeof (value as PromiseLike<unknown> | null)?.then === "function";
}

export function noop(): void {}

function reportError(error: unknown): void {
  console.error(error);
}
