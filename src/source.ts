import { fail, shown } from "./errors.ts";
import type { EventStreamLike } from "./types.ts";

/** Every accepted source form, seen one way: values pulled one at a time, and a way to stop early. */
export interface Puller {
  /** The next value; a plain result when the source is synchronous, so no promise is spent on it. */
  next(): IteratorResult<unknown> | PromiseLike<IteratorResult<unknown>>;
  /** Stops the source before its end: a generator's `finally` runs, a stream is cancelled. */
  stop(reason: unknown): unknown;
}

/** True for a value `pullerOf` accepts, or a function that may return one. */
export function isSource(value: unknown): boolean {
  return typeof value === "function" || isStreamLike(value);
}

/** Turns a stream, an async iterable or an iterable into a `Puller`; anything else is a `TypeError`. */
export function pullerOf(where: string, source: EventStreamLike): Puller {
  if (!isStreamLike(source)) badSource(where, source);
  // A stream is read through its reader even where it is also async iterable: it is fewer promises per value.
  if (typeof (source as ReadableStream).getReader === "function") {
    const reader = (source as ReadableStream<unknown>).getReader();
    // Workers type a finished read's value as optional, which IteratorResult does not allow.
    return { next: () => reader.read() as Promise<IteratorResult<unknown>>, stop: (reason) => reader.cancel(reason) };
  }
  return new IteratorPuller(
    Symbol.asyncIterator in source
      ? (source as AsyncIterable<unknown>)[Symbol.asyncIterator]()
      : (source as Iterable<unknown>)[Symbol.iterator](),
  );
}

/** An iterator seen as a `Puller`, with its methods on the prototype: an idle stream holds no closures for it. */
class IteratorPuller implements Puller {
  readonly #iterator: Iterator<unknown> | AsyncIterator<unknown>;
  constructor(iterator: Iterator<unknown> | AsyncIterator<unknown>) {
    this.#iterator = iterator;
  }
  next(): IteratorResult<unknown> | PromiseLike<IteratorResult<unknown>> {
    return this.#iterator.next();
  }
  stop(): unknown {
    return this.#iterator.return?.();
  }
}

const expected = "source must be an async iterable, an iterable, a ReadableStream or a function";

function isStreamLike(value: unknown): value is EventStreamLike {
  if (value === null || typeof value !== "object") return false;
  // A String object iterates over characters, which is never what was meant.
  if (value instanceof String) return false;
  return (
    typeof (value as ReadableStream).getReader === "function" ||
    typeof (value as AsyncIterable<unknown>)[Symbol.asyncIterator] === "function" ||
    typeof (value as Iterable<unknown>)[Symbol.iterator] === "function"
  );
}

function fixFor(source: unknown): string {
  return typeof source === "string" ? "; to send one string, pass [text]" : "";
}

/** The message `eventSourceResponse` throws for a source it cannot read. */
export function badSource(where: string, source: unknown): never {
  fail(where, `${expected}, got ${shown(source)}${fixFor(source)}`);
}
