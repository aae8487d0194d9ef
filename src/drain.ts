/**
 * `drain()`: ends every stream of this package open in the process, spread over a time, for a deploy. Open streams are
 * kept in one set under a global symbol, so every copy of the package in the process (one bundled by a framework, one
 * of the app's own) joins the same registry.
 * @module
 */
import { checkKeys, fail, report, shown } from "./errors.ts";
import { deadline } from "./keep-alive.ts";
import { MAX_TIMER_MS } from "./options.ts";
import type { EventInput } from "./types.ts";

/** Versioned: a copy of the package with another version of this protocol keeps a registry of its own. */
const OPEN = Symbol.for("eventsource-server.openStreams.v1");

/** What an open stream offers `drain`, in any copy of the package. */
export interface Drainable {
  /** Throws the `TypeError` this stream would throw for `last` as its final event. */
  checkLast(last: EventInput): void;
  /** Writes `last` (if given) and ends the stream as `closed`; false when it has already ended. */
  drainEnd(last: EventInput | undefined): boolean;
}

const registry = globalThis as Record<symbol, Set<Drainable> | undefined>;
registry[OPEN] ??= new Set();

/** Every open stream of the process that `drain` may end: a body from its first read, a subscriber from `response()`. */
export const openStreams: Set<Drainable> = registry[OPEN];

/** The options of `drain(options)`. */
export interface DrainOptions {
  /** Each stream ends at a moment drawn uniformly between now and this many ms from now. @default 0 */
  within?: number | undefined;
  /** Written to every stream before it ends, encoded with that stream's `serialize`. */
  last?: EventInput | undefined;
}

/**
 * Ends every stream of this package open in the process now (every copy of the package), each at a moment drawn
 * uniformly over `within` ms, writing `last` first; resolves with how many it ended, once they all have. Rejects with a
 * `TypeError`, ending nothing, for an invalid option or a `last` a stream would refuse. See docs/operating.md.
 * @example On SIGTERM: every open stream ends with a last event, and its client reconnects elsewhere
 * ```ts
 * import assert from "node:assert/strict";
 * import { drain, eventSourceResponse } from "eventsource-server";
 *
 * const endless = eventSourceResponse(async function* ({ signal }) {
 *   while (!signal.aborted) yield await new Promise<string>((resolve) => setTimeout(resolve, 50, "tick"));
 * });
 * const reader = endless.body!.pipeThrough(new TextDecoderStream()).getReader();
 * assert.equal((await reader.read()).value, ":\n\n");
 * assert.equal(await drain({ within: 100, last: { retry: 1_000 } }), 1);
 * let rest = "";
 * for (let read = await reader.read(); !read.done; read = await reader.read()) rest += read.value;
 * assert.match(rest, /retry: 1000\n\n$/);
 * ```
 */
export async function drain(options?: DrainOptions): Promise<number> {
  const where = "drain";
  if (options === undefined) options = {};
  if (options === null || typeof options !== "object") fail(where, `options must be an object, got ${shown(options)}`);
  checkKeys(where, "options", options, ["within", "last"]);
  const { within = 0, last } = options;
  if (!(Number.isInteger(within) && within >= 0 && within <= MAX_TIMER_MS)) {
    fail(where, `options.within must be a whole number of ms from 0 to ${MAX_TIMER_MS}, got ${shown(within)}`);
  }
  const streams = [...openStreams];
  if (last !== undefined) for (const stream of streams) stream.checkLast(last);
  // Taken out now: a later drain() does not count them again, and they end only here or on their own.
  for (const stream of streams) openStreams.delete(stream);
  const ends = streams.map((stream) => {
    const ms = Math.round(Math.random() * within);
    if (ms === 0) return endOne(stream, last);
    return new Promise<boolean>((resolve) => deadline(ms, () => resolve(endOne(stream, last))));
  });
  return (await Promise.all(ends)).filter(Boolean).length;
}

/** One stream's end; its failure is its own, and the others still end. */
function endOne(stream: Drainable, last: EventInput | undefined): boolean {
  try {
    return stream.drainEnd(last);
  } catch (error) {
    report(error, "drain: ending a stream");
    return false;
  }
}
