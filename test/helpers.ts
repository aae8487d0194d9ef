import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { createParser, type EventSourceMessage } from "eventsource-parser";

/** One event as an independent, spec-following parser saw it. */
export interface ParsedEvent {
  event?: string;
  data: string;
  id?: string;
}

/** Parses wire text with eventsource-parser, never with our own code: what a conforming client would dispatch. */
export function parseWire(text: string): { events: ParsedEvent[]; retries: number[]; comments: string[] } {
  const events: ParsedEvent[] = [];
  const retries: number[] = [];
  const comments: string[] = [];
  const parser = createParser({
    onEvent: (message) => events.push(shape(message)),
    onRetry: (ms) => retries.push(ms),
    onComment: (comment) => comments.push(comment),
  });
  parser.feed(text);
  return { events, retries, comments };
}

function shape(message: EventSourceMessage): ParsedEvent {
  const event: ParsedEvent = { data: message.data };
  if (message.event !== undefined) event.event = message.event;
  if (message.id !== undefined) event.id = message.id;
  return event;
}

/** The body's reader; throws if the response has no body, so a test never reads null by accident. */
export function readerOf(response: Response): ReadableStreamDefaultReader<Uint8Array> {
  if (response.body === null) throw new Error("the response has no body");
  return response.body.getReader();
}

const decoder = new TextDecoder();

/** Reads one chunk and decodes it; fails loudly if the stream has ended. */
export async function nextText(reader: ReadableStreamDefaultReader<Uint8Array>): Promise<string> {
  const { done, value } = await reader.read();
  if (done) throw new Error("the stream ended before the next chunk");
  return decoder.decode(value);
}

/** Reads one chunk and returns the events a conforming parser dispatches from it. */
export async function nextEvents(reader: ReadableStreamDefaultReader<Uint8Array>): Promise<ParsedEvent[]> {
  return parseWire(await nextText(reader)).events;
}

/** Reads to the end and returns the whole text. */
export async function readAll(reader: ReadableStreamDefaultReader<Uint8Array>): Promise<string> {
  let text = "";
  for (;;) {
    const { done, value } = await reader.read();
    if (done) return text + decoder.decode();
    text += decoder.decode(value, { stream: true });
  }
}

export interface Deferred<T> {
  promise: Promise<T>;
  resolve(value: T): void;
  reject(reason: unknown): void;
}

/** `Promise.withResolvers`, which Node 20 lacks. */
export function deferred<T = void>(): Deferred<T> {
  let resolve!: (value: T) => void;
  let reject!: (reason: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/**
 * Lets every queued task run, a fixed number of times: the one way a test shows that something does NOT
 * happen (a source not advanced, a chunk not written) without sleeping for a guessed time.
 */
export async function settle(rounds = 20): Promise<void> {
  for (let i = 0; i < rounds; i++) await new Promise<void>((resolve) => setImmediate(resolve));
}

/** A stream of the given values (`ReadableStream.from`, which the DOM typings here lack). */
export function streamOf<T>(values: Iterable<T>): ReadableStream<T> {
  const iterator = values[Symbol.iterator]();
  return new ReadableStream<T>({
    pull(controller) {
      const { done, value } = iterator.next();
      if (done) controller.close();
      else controller.enqueue(value);
    },
  });
}

/** A full garbage collection, now: what shows that something held only weakly is gone. */
export async function collectGarbage(): Promise<void> {
  setFlagsFromString("--expose-gc");
  const gc = runInNewContext("gc") as () => void;
  gc();
  await settle(2);
  gc();
}
