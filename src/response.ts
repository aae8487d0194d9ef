/**
 * `eventSourceResponse`: a stream fed by a source, and the headers of every event-stream response.
 * @module
 */
import { encodeWith } from "./encode.ts";
import { isThenable, noop } from "./errors.ts";
import { resumableId } from "./history.ts";
import { lastEventId } from "./last-event-id.ts";
import { type Serialize, type StreamOptions, streamOptions } from "./options.ts";
import { badSource, isSource, type Puller, pullerOf } from "./source.ts";
import { type EndReason, EventStream, type Producer } from "./stream.ts";
import type { EventInput, EventSourceResponseInit, EventSourceSource, EventStreamLike, KnownKeys } from "./types.ts";

const DEFAULT_HEADERS: readonly (readonly [string, string])[] = [
  ["content-type", "text/event-stream; charset=utf-8"],
  // no-transform: compression middleware (Express's compression()), Next.js and some proxies otherwise compress the
  // stream and hold its bytes back.
  ["cache-control", "no-cache, no-transform"],
  // nginx buffers proxied responses unless told not to.
  ["x-accel-buffering", "no"],
];

/**
 * A streaming `text/event-stream` response of an async iterable, an iterable, a `ReadableStream`, or a function of `{
 * signal, lastEventId }` returning one; returns at once. The first chunk is written at once, the source is pulled only
 * as fast as the client reads, and it is stopped (a generator's `finally` runs) when the stream ends. Throws a
 * `TypeError` for a source of none of those forms and for an invalid option. See docs/reference.md.
 * @example A Fetch handler's answer: events from a generator, pulled as the client reads
 * ```ts
 * import assert from "node:assert/strict";
 * import { eventSourceResponse } from "eventsource-server";
 *
 * async function* count() {
 *   for (let n = 1; n <= 3; n++) yield { event: "count", data: String(n) };
 * }
 * const response = eventSourceResponse(count(), { retry: 2_000 });
 * assert.equal(response.headers.get("content-type"), "text/event-stream; charset=utf-8");
 * assert.equal(
 *   await response.text(),
 *   "retry: 2000\n\nevent: count\ndata: 1\n\nevent: count\ndata: 2\n\nevent: count\ndata: 3\n\n",
 * );
 * ```
 */
export function eventSourceResponse<Input extends EventInput>(
  source: EventSourceSource<Input & KnownKeys<Input>>,
  init?: EventSourceResponseInit,
): Response {
  const where = "eventSourceResponse";
  if (!isSource(source)) badSource(where, source);
  const options = streamOptions(where, init);
  return eventStreamResponse(new EventStream(new SourceProducer(source, options), options).body(), options);
}

/** Wraps an event-stream body in a `Response` with the default headers under the caller's. */
export function eventStreamResponse(body: ReadableStream<Uint8Array>, options: StreamOptions): Response {
  const headers = new Headers(options.responseInit.headers);
  for (const [name, value] of DEFAULT_HEADERS) if (!headers.has(name)) headers.set(name, value);
  const cacheControl = headers.get("cache-control") as string;
  if (!/(^|,)\s*no-transform\s*(,|$)/i.test(cacheControl))
    headers.set("cache-control", `${cacheControl}, no-transform`);
  return new Response(body, { ...options.responseInit, headers });
}

/** The last event ID of the request being answered, or `null` without one. */
export function requestedId(options: StreamOptions): string | null {
  return options.request === undefined ? null : lastEventId(options.request);
}

/**
 * A source as a stream's producer: one event per pull, `onError` for a source that fails, and the source stopped (a
 * generator's `finally` run, a stream cancelled) whenever the stream ends first.
 */
class SourceProducer implements Producer {
  #source: EventSourceSource | undefined;
  // Dropped at the first pull, with the stream's, so that an open stream does not keep its request alive.
  #options: StreamOptions | undefined;
  readonly #serialize: Serialize;
  readonly #onError: StreamOptions["onError"];
  // Only a function source is given a signal, so only it pays for an AbortController, made when it is called.
  #context: AbortController | undefined;
  #stream!: EventStream;
  #puller: Puller | undefined;
  // Set when the source has ended by itself, so it is not stopped a second time.
  #sourceDone = false;
  #onResult: ((result: IteratorResult<unknown>) => void) | undefined;
  #onFailure: ((error: unknown) => void) | undefined;

  constructor(source: EventSourceSource, options: StreamOptions) {
    this.#source = source;
    this.#options = options;
    this.#serialize = options.serialize;
    this.#onError = options.onError;
  }

  /** Handed off, its stream pulls it straight into the sink. */
  get driven(): boolean {
    return true;
  }

  pull(stream: EventStream): void | Promise<void> {
    if (this.#puller !== undefined) return this.#advance(this.#puller);
    this.#stream = stream;
    return this.#open();
  }

  lastText(last: EventInput, where: string): string {
    // Checked as a channel checks it: `drain`'s last event is the same for every stream.
    resumableId(where, last);
    return encodeWith(last, this.#serialize, where);
  }

  stop(_reason: EndReason, cause: unknown): void {
    this.#context?.abort(cause);
    const puller = this.#puller;
    if (puller !== undefined) {
      if (!this.#sourceDone) this.#stopSource(puller, cause);
      return;
    }
    const source = this.#source;
    this.#source = undefined;
    this.#options = undefined;
    // Ended before the first pull: a stream given to us must still be cancelled, a generator still closed.
    if (source !== undefined && typeof source !== "function") {
      try {
        this.#stopSource(pullerOf("eventSourceResponse", source), cause);
      } catch (error) {
        this.#report(error);
      }
    }
  }

  #stopSource(puller: Puller, reason: unknown): void {
    this.#sourceDone = true;
    // A failing finally block must not become an unhandled rejection; it is the source's error all the same.
    try {
      const stopped = puller.stop(reason);
      if (isThenable(stopped)) stopped.then(undefined, (error) => this.#report(error));
    } catch (error) {
      this.#report(error);
    }
  }

  /** An error after the stream has ended: `onError` hears of it, and nothing it says can reach the wire. */
  #report(error: unknown): void {
    try {
      const answer = this.#onError(error);
      if (isThenable(answer)) answer.then(undefined, noop);
    } catch {
      // The stream has already ended; there is nothing left for onError's own error to end.
    }
  }

  /** The source threw or rejected: it is finished, as a for-of loop would treat it, so nothing is left to stop. */
  #sourceFailed(error: unknown): void | Promise<void> {
    this.#sourceDone = true;
    return this.#failed(error);
  }

  /**
   * `onError` decides the last words, then the body closes; a throw from `onError`, or a rejection of the promise an
   * `async` one returns, errors the body.
   */
  #failed(error: unknown): void | Promise<void> {
    const stream = this.#stream;
    if (stream.ended !== undefined) return;
    let answer: unknown;
    try {
      answer = this.#onError(error);
    } catch (fatal) {
      stream.fail(fatal);
      return;
    }
    if (!isThenable(answer)) return this.#lastWords(answer, error);
    return Promise.resolve(answer).then(
      (resolved) => this.#lastWords(resolved, error),
      (fatal) => {
        if (stream.ended === undefined) stream.fail(fatal);
      },
    );
  }

  #lastWords(fallback: unknown, error: unknown): void {
    const stream = this.#stream;
    if (stream.ended !== undefined) return;
    if (fallback !== undefined) {
      try {
        stream.writeText(encodeWith(fallback as EventInput, this.#serialize, "eventSourceResponse: onError"));
        stream.countInput(fallback as EventInput);
      } catch (fatal) {
        stream.fail(fatal);
        return;
      }
    }
    stream.end("error", error);
  }

  #deliver(result: IteratorResult<unknown>): void | Promise<void> {
    const stream = this.#stream;
    if (stream.ended !== undefined) return;
    if (result.done) {
      this.#sourceDone = true;
      stream.end("done");
      return;
    }
    const input = result.value as EventInput;
    let text: string;
    try {
      text = encodeWith(input, this.#serialize, "encodeEvent");
    } catch (error) {
      // An invalid event leaves the source suspended at its yield: the stream's end stops it.
      return this.#failed(error);
    }
    stream.writeText(text);
    stream.countInput(input);
  }

  /**
   * One event per pull. Plain callbacks rather than async functions: each `await` layer would cost a promise per event,
   * and a synchronous source costs none at all.
   */
  #advance(from: Puller): void | Promise<void> {
    let next: ReturnType<Puller["next"]>;
    try {
      next = from.next();
    } catch (error) {
      return this.#sourceFailed(error);
    }
    if (isThenable(next)) {
      // Made once per stream, not once per event.
      this.#onResult ??= (result) => this.#deliver(result);
      this.#onFailure ??= (error) => this.#sourceFailed(error);
      // Promise.resolve returns a native promise as it is, so this costs nothing for the common source.
      return Promise.resolve(next).then(this.#onResult, this.#onFailure);
    }
    return this.#deliver(next);
  }

  async #open(): Promise<void> {
    const source = this.#source as EventSourceSource;
    const options = this.#options as StreamOptions;
    this.#source = undefined;
    this.#options = undefined;
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
      return this.#sourceFailed(error);
    }
    this.#puller = opened;
    // The client may have left while the function was running; its source must still be stopped.
    if (this.#stream.ended !== undefined) {
      this.#stopSource(opened, this.#context?.signal.reason);
      return;
    }
    return this.#advance(opened);
  }
}
