/**
 * The push side: `emit` from anywhere, and every connected client receives the event. Each event is checked
 * and encoded once, and the same bytes are queued for every subscriber, so the cost of an emit is one encode
 * plus one queue push per client.
 *
 * @module
 */
import { encodeWith, isRetry, type Serialize, serializerOf } from "./encode.ts";
import { fail, shown } from "./errors.ts";
import { type Handoff, handoffs, type Sink } from "./handoff.ts";
import { type Entry, idOf, type MemoryHistory, memoryHistory, type Resume, resume } from "./history.ts";
import { type SilenceTimer, silenceTimer } from "./keep-alive.ts";
import { isRequest } from "./last-event-id.ts";
import {
  COMMENT,
  eventStreamResponse,
  firstChunk,
  maxDurationTimer,
  noop,
  onAbort,
  requestedId,
  type StreamOptions,
  streamOptions,
} from "./response.ts";
import type { EventChannelOptions, EventHistory, EventInput, EventSourceResponseInit } from "./types.ts";
import { utf8 } from "./utf8.ts";

const DEFAULT_MAX_BUFFERED_BYTES = 1024 * 1024;

/** How long a subscriber's backlog may stay above `maxBufferedBytes` before it is closed. */
const OVER_CAP_MS = 1_000;

/** Options people reach for here that belong to each response, and where to put them instead. */
const PER_RESPONSE = new Set([
  "keepAlive",
  "retry",
  "headers",
  "status",
  "signal",
  "request",
  "onError",
  "maxDuration",
]);

// Encoded once: every heartbeat of every subscriber is the same bytes.
const HEARTBEAT = utf8(COMMENT);

// What the next enqueue weighs in a subscriber's byte-counting queue, when not its length. Set only around one
// synchronous enqueue, so one variable serves every subscriber, and their queues share one size function.
let weightOfNext: number | undefined;
const weigh = (chunk: Uint8Array): number => weightOfNext ?? chunk.byteLength;

/** Enqueues a chunk that weighs `weight` bytes against `maxBufferedBytes`, whatever its length. */
function enqueueWeighing(controller: ReadableStreamDefaultController<Uint8Array>, bytes: Uint8Array, weight: number) {
  weightOfNext = weight;
  try {
    controller.enqueue(bytes);
  } finally {
    weightOfNext = undefined;
  }
}

/** One open subscriber stream. */
interface Subscriber {
  /** Its stream's controller, or, once `sendResponse` has handed it off, a sink writing to the response. */
  controller: ReadableStreamDefaultController<Uint8Array> | Sink;
  /** Its channel, as `sendResponse` sees it. */
  handoff: Handoff;
  keepAliveMs: number;
  /** Set at the first pull: the body has been read. */
  reading: boolean;
  /** When its backlog went above the cap, if it has stayed there since; `undefined` while it is not above. */
  overSince: number | undefined;
  /** While it resumes from a shared log: the seam that holds and de-duplicates its live events. */
  resume: Resume | undefined;
  stopListening: () => void;
  /** Disarms its `maxDuration`, armed at the first read. */
  stopDeadline: () => void;
}

/** Subscribers sharing one keep-alive value share one timer: 10,000 clients cost one timer, not 10,000. */
interface KeepAliveGroup {
  timer: SilenceTimer;
  members: Set<Subscriber>;
}

/**
 * A broadcast channel of events: `emit` an event once, and every client connected through `response()`
 * receives it. Use one channel per topic, in a long-lived place (a module, a Durable Object).
 *
 * `emit` checks and encodes each event once and queues the same bytes for every subscriber; it never awaits
 * and never waits for a slow client. Each subscriber counts its unread bytes, and one whose backlog stays above
 * `maxBufferedBytes` for a second is closed (normally, so its client reconnects and resumes) while the others
 * go on; a burst, or one event larger than the cap, still reaches every client that reads it.
 *
 * A client that reconnects with a `Last-Event-ID` resumes: with `replay: N` from the last `N` events kept in
 * memory, with `history` from a log every instance shares (its `after(id)`), receiving every event after its
 * id, then the live ones, with nothing lost or doubled. A client whose id the history does not hold gets the
 * `onHistoryLost` event, then live events; without `onHistoryLost`, a `replay` channel sends its whole memory
 * and a `history` channel live events only. A client without a `Last-Event-ID` receives live events only.
 *
 * Throws a `TypeError` for an invalid option: `replay` must be a non-negative safe integer, `history` an object
 * with an `after` method (and not together with `replay`), `onHistoryLost` and `serialize` functions,
 * `maxBufferedBytes` a positive safe integer.
 *
 * @param options `replay` or `history`, `onHistoryLost`, `maxBufferedBytes` and `serialize`.
 * @see https://html.spec.whatwg.org/multipage/server-sent-events.html#the-last-event-id-header
 *
 * @example Every subscriber receives every event emitted after it subscribed
 * ```ts
 * import assert from "node:assert/strict";
 * import { EventChannel } from "eventsource-server";
 *
 * const channel = new EventChannel();
 * const alice = channel.response(new Request("http://localhost/events"));
 * const bob = channel.response(new Request("http://localhost/events"));
 * assert.equal(channel.subscribers, 2);
 * channel.emit({ event: "note", data: "hello" });
 * channel.close();
 * assert.equal(await alice.text(), ":\n\nevent: note\ndata: hello\n\n");
 * assert.equal(await bob.text(), ":\n\nevent: note\ndata: hello\n\n");
 * ```
 *
 * @example A reconnecting client resumes after its last event ID
 * ```ts
 * import assert from "node:assert/strict";
 * import { EventChannel } from "eventsource-server";
 *
 * const channel = new EventChannel({ replay: 100 });
 * for (let id = 1; id <= 3; id++) channel.emit({ id, data: `event ${id}` });
 * const request = new Request("http://localhost/events", { headers: { "last-event-id": "2" } });
 * const response = channel.response(request, { retry: 1_000 });
 * channel.emit({ id: 4, data: "event 4" });
 * channel.close();
 * assert.equal(await response.text(), "retry: 1000\n\nid: 3\ndata: event 3\n\nid: 4\ndata: event 4\n\n");
 * ```
 */
export class EventChannel<Events extends Record<string, unknown> = Record<string, unknown>> {
  readonly #serialize: Serialize;
  readonly #maxBufferedBytes: number;
  readonly #memory: MemoryHistory | undefined;
  readonly #history: EventHistory | undefined;
  readonly #onHistoryLost: ((lastEventId: string) => EventInput | void) | undefined;
  readonly #subscribers = new Set<Subscriber>();
  readonly #keepAlive = new Map<number, KeepAliveGroup>();
  #closed = false;
  // One per channel, shared by its subscribers: what `sendResponse` may do with them.
  readonly #handoff: Handoff;

  constructor(options?: EventChannelOptions<Events>) {
    const where = "EventChannel";
    this.#serialize = serializerOf(where, options);
    const {
      replay = 0,
      history,
      onHistoryLost,
      maxBufferedBytes = DEFAULT_MAX_BUFFERED_BYTES,
      ...rest
    } = options ?? {};
    if (!isRetry(replay)) fail(where, `options.replay must be a non-negative safe integer, got ${shown(replay)}`);
    if (history !== undefined && typeof (history as EventHistory | null)?.after !== "function") {
      fail(
        where,
        `options.history must be an object with an after(lastEventId, { signal }) method, got ${shown(history)}`,
      );
    }
    if (history !== undefined && replay > 0) {
      fail(where, "options.replay and options.history cannot both be set; a channel has one history");
    }
    if (onHistoryLost !== undefined && typeof onHistoryLost !== "function") {
      fail(where, `options.onHistoryLost must be a function, got ${shown(onHistoryLost)}`);
    }
    if (!(isRetry(maxBufferedBytes) && maxBufferedBytes > 0)) {
      fail(where, `options.maxBufferedBytes must be a positive safe integer, got ${shown(maxBufferedBytes)}`);
    }
    for (const key of Object.keys(rest)) {
      if (key === "serialize") continue;
      const hint = PER_RESPONSE.has(key) ? `; pass ${key} to channel.response(request, init)` : "";
      fail(where, `unknown option ${shown(key)}${hint}`);
    }
    this.#memory = replay > 0 ? memoryHistory(replay) : undefined;
    this.#history = history;
    this.#onHistoryLost = onHistoryLost;
    this.#maxBufferedBytes = maxBufferedBytes;
    this.#handoff = {
      cap: maxBufferedBytes,
      take: (subscriber, sink) => this.#take(subscriber as Subscriber, sink),
      drained: (subscriber) => {
        (subscriber as Subscriber).overSince = undefined;
      },
    };
  }

  /** The number of open subscriber streams. */
  get subscribers(): number {
    return this.#subscribers.size;
  }

  /**
   * Sends one event to every subscriber, and keeps it in the history when `replay` is set. Returns at once:
   * the bytes are queued, never awaited.
   *
   * Throws a `TypeError`, and sends nothing, for an input `encodeEvent` would reject, and after `close()`.
   *
   * @param input A string (the data of a `message` event) or an event object.
   *
   * @example Emit a named event with JSON data
   * ```ts
   * import assert from "node:assert/strict";
   * import { EventChannel } from "eventsource-server";
   *
   * const channel = new EventChannel();
   * const response = channel.response();
   * channel.emit({ event: "price", data: { symbol: "ACME", cents: 1234 } });
   * assert.throws(() => channel.emit({ event: "a\nb" }), TypeError);
   * channel.close();
   * assert.throws(() => channel.emit("late"), TypeError);
   * assert.equal(await response.text(), ':\n\nevent: price\ndata: {"symbol":"ACME","cents":1234}\n\n');
   * ```
   */
  emit(input: EventInput<Events>): void {
    if (this.#closed) fail("EventChannel.emit", "the channel is closed; make a new EventChannel");
    const bytes = utf8(encodeWith(input, this.#serialize, "EventChannel.emit"));
    const entry: Entry = { id: idOf(input), bytes };
    this.#memory?.remember(entry);
    let now = 0;
    // Deleting from a Set while iterating it is safe: an evicted subscriber is simply not visited again.
    for (const subscriber of this.#subscribers) {
      const { controller, resume } = subscriber;
      if (resume === undefined || resume.pass(entry)) controller.enqueue(bytes);
      if ((controller.desiredSize ?? 0) < 0 || resume !== undefined) {
        if (this.#isOverCap(subscriber)) {
          if (now === 0) now = Date.now();
          this.#overCap(subscriber, now);
        }
      }
    }
    for (const group of this.#keepAlive.values()) group.timer.touch();
  }

  /**
   * A streaming `text/event-stream` response that subscribes to this channel, at once: every event emitted
   * after this call reaches it, even before its body is first read. When the request carries a `Last-Event-ID`
   * (header or `lastEventId` query parameter), the history is replayed first (see the class).
   *
   * The first chunk (the `retry:` field, else a comment) is written at once. The subscriber leaves when its
   * body is cancelled, when the request's signal or `init.signal` aborts (the body then closes normally), when
   * it stays more than `maxBufferedBytes` behind for a second, when its `maxDuration` is up, or when the channel
   * closes. After `close()`, the body closes right after its first chunk.
   *
   * Throws a `TypeError` for a `request` that is not a `Request` and for an invalid `init` option, as
   * `eventSourceResponse` does. `init.serialize` and `init.onError` are `TypeError`s too: a channel encodes once
   * for every subscriber (pass `serialize` to the constructor), and has no source that could fail.
   *
   * @param request The request being answered: its signal ends the subscription, its `Last-Event-ID` picks the
   *   replay. Also accepted as `init.request`.
   * @param init `ResponseInit` (`status`, `headers`, …) plus `signal`, `retry` and `keepAlive` (default 8000 ms).
   * @returns A `Response` with a `ReadableStream<Uint8Array>` body and the event-stream headers.
   *
   * @example A Fetch handler
   * ```ts
   * import assert from "node:assert/strict";
   * import { EventChannel } from "eventsource-server";
   *
   * const channel = new EventChannel({ replay: 50 });
   * function handle(request: Request): Response {
   *   return channel.response(request, { retry: 2_000 });
   * }
   * const response = handle(new Request("http://localhost/events"));
   * assert.equal(response.headers.get("content-type"), "text/event-stream; charset=utf-8");
   * channel.emit("hello");
   * channel.close();
   * assert.equal(await response.text(), "retry: 2000\n\ndata: hello\n\n");
   * ```
   */
  response(request?: Request, init?: EventSourceResponseInit): Response {
    const where = "EventChannel.response";
    if (request !== undefined && !isRequest(request)) {
      const hint = request !== null && typeof request === "object" ? "; options go in the second argument" : "";
      fail(where, `request must be a Request, got ${shown(request)}${hint}`);
    }
    const options = streamOptions(where, init);
    if (init?.serialize !== undefined) {
      fail(where, "init.serialize has no effect on a channel; pass serialize to new EventChannel(options)");
    }
    if (init?.onError !== undefined) {
      fail(where, "init.onError has no effect on a channel, which has no source that could fail");
    }
    if (request !== undefined) options.request = request;
    return eventStreamResponse(this.#subscribe(options), options);
  }

  /**
   * Ends every subscriber stream normally and stops every timer; their clients reconnect (to wherever the
   * channel's replacement is). `last`, when given, is written to every open subscriber first, as its final event
   * (a farewell such as `{ retry: 1_000, comment: "restarting" }`). Calling it again does nothing. After it,
   * `emit` throws and `response()` is a body that closes right after its first chunk.
   *
   * Throws a `TypeError`, and closes nothing, for a `last` that `emit` would reject.
   *
   * @param last The final event of every open stream.
   *
   * @example Close the channel when its topic ends
   * ```ts
   * import assert from "node:assert/strict";
   * import { EventChannel } from "eventsource-server";
   *
   * const channel = new EventChannel();
   * const response = channel.response();
   * channel.close();
   * assert.equal(channel.subscribers, 0);
   * assert.equal(await response.text(), ":\n\n");
   * ```
   *
   * @example A farewell before a restart: a short reconnection time, and a comment
   * ```ts
   * import assert from "node:assert/strict";
   * import { EventChannel } from "eventsource-server";
   *
   * const channel = new EventChannel();
   * const response = channel.response();
   * channel.close({ retry: 1_000, comment: "restarting" });
   * assert.equal(await response.text(), ":\n\n:restarting\nretry: 1000\n\n");
   * ```
   */
  close(last?: EventInput<Events>): void {
    const farewell = last === undefined ? undefined : utf8(encodeWith(last, this.#serialize, "EventChannel.close"));
    if (this.#closed) return;
    this.#closed = true;
    for (const subscriber of this.#subscribers) {
      if (farewell !== undefined) subscriber.controller.enqueue(farewell);
      this.#leave(subscriber, true);
    }
    this.#memory?.clear();
  }

  /** Everything from the subscriber's first chunk to its joining happens in one synchronous step: no emit can fall between. */
  #subscribe(options: StreamOptions): ReadableStream<Uint8Array> {
    const max = this.#maxBufferedBytes;
    let subscriber: Subscriber | undefined;
    const stream = new ReadableStream<Uint8Array>(
      {
        start: (controller) => {
          // The first chunk weighs as much as the whole cap, so the stream asks for more (calls pull) only once
          // a reader has taken it: that first pull is the first read.
          enqueueWeighing(controller, firstChunk(options.retry), max);
          if (this.#closed) return controller.close();
          let abortedAlready = false;
          const stopListening = onAbort(options, () => {
            if (subscriber === undefined) abortedAlready = true;
            else this.#leave(subscriber, true);
          });
          if (abortedAlready) return controller.close();
          const joining: Subscriber = {
            controller,
            handoff: this.#handoff,
            keepAliveMs: options.keepAliveMs,
            reading: false,
            overSince: undefined,
            resume: undefined,
            stopListening,
            stopDeadline: noop,
          };
          subscriber = joining;
          this.#join(joining);
          const id = requestedId(options);
          if (id === null) return;
          // Replayed bytes are not held to maxBufferedBytes: the client asked for them, and closing it for them
          // would only make it ask again. Each replayed chunk weighs one byte, not none: workerd never delivers a
          // chunk that weighs nothing (nor a fraction of a byte).
          const replayed = (bytes: Uint8Array): void => enqueueWeighing(controller, bytes, 1);
          this.#replay(joining, id, replayed);
        },
        pull: () => {
          if (subscriber === undefined) return;
          // Called only while the backlog is below the cap, so whatever it was above, it has fallen back.
          subscriber.overSince = undefined;
          if (subscriber.reading) return;
          subscriber.reading = true;
          const reading = subscriber;
          reading.stopDeadline = maxDurationTimer(options, () => this.#leave(reading, true));
        },
        cancel: () => {
          if (subscriber !== undefined) this.#leave(subscriber, false);
        },
      },
      // A byte-counting queue: desiredSize is maxBufferedBytes minus the bytes this client has not read yet.
      { highWaterMark: max, size: weigh },
    );
    if (subscriber !== undefined) handoffs.set(stream, subscriber);
    return stream;
  }

  /**
   * Moves a subscriber from its stream to `sink`, once the stream holds nothing more (every byte queued so far has
   * been read, so none can come after the sink's) and no replay is under way. Synchronous: no emit falls between
   * the check and the move.
   */
  #take(subscriber: Subscriber, sink: Sink): boolean {
    if (!this.#subscribers.has(subscriber) || subscriber.resume !== undefined || !subscriber.reading) return false;
    if (subscriber.controller.desiredSize !== this.#maxBufferedBytes) return false;
    subscriber.controller = sink;
    return true;
  }

  /** Writes what a client resuming after `id` missed, now from memory, or as a shared log answers. */
  #replay(subscriber: Subscriber, id: string, replayed: (bytes: Uint8Array) => void): void {
    const history = this.#history;
    if (history === undefined) {
      const missed = this.#memory?.after(id) ?? null;
      if (missed !== null) {
        for (const bytes of missed) replayed(bytes);
        return;
      }
      if (this.#onHistoryLost !== undefined) {
        const lost = this.#lost(id);
        if (lost !== undefined) replayed(lost);
      } else if (this.#memory !== undefined) {
        // The memory's whole history: the client missed at least that much (the choice made in 0.1).
        for (const bytes of this.#memory.all()) replayed(bytes);
      }
      return;
    }
    subscriber.resume = resume(history, id, this.#serialize, {
      replayed: (bytes) => {
        if (this.#subscribers.has(subscriber)) replayed(bytes);
      },
      live: (bytes) => {
        if (this.#subscribers.has(subscriber)) subscriber.controller.enqueue(bytes);
      },
      lost: () => this.#lost(id),
      done: () => {
        subscriber.resume = undefined;
      },
    });
  }

  /** The encoded `onHistoryLost` event for a client resuming after `id`, if there is one. */
  #lost(id: string): Uint8Array | undefined {
    const onHistoryLost = this.#onHistoryLost;
    if (onHistoryLost === undefined) return undefined;
    try {
      const event = onHistoryLost(id);
      return event === undefined ? undefined : utf8(encodeWith(event, this.#serialize, "EventChannel: onHistoryLost"));
    } catch (error) {
      // The client gets live events all the same; the broken callback is the server's to fix.
      console.error(error);
      return undefined;
    }
  }

  /** Unread live bytes above the cap; before the first read, the first chunk's weight aside (see #subscribe). */
  #isOverCap(subscriber: Subscriber): boolean {
    const unreadAboveCap = -(subscriber.controller.desiredSize ?? 0);
    const held = subscriber.resume?.heldBytes() ?? 0;
    return (subscriber.reading ? unreadAboveCap : unreadAboveCap - this.#maxBufferedBytes) + held > 0;
  }

  /**
   * A backlog above the cap is closed only once it has stayed there a second: a burst, or one event larger than
   * the cap, still reaches a client that reads it, while one that stopped reading is closed at the next check.
   */
  #overCap(subscriber: Subscriber, now: number): void {
    if (subscriber.overSince === undefined) subscriber.overSince = now;
    else if (now - subscriber.overSince >= OVER_CAP_MS) this.#leave(subscriber, true);
  }

  #join(subscriber: Subscriber): void {
    this.#subscribers.add(subscriber);
    const { keepAliveMs } = subscriber;
    if (keepAliveMs === 0) return;
    let group = this.#keepAlive.get(keepAliveMs);
    if (group === undefined) {
      const members = new Set<Subscriber>();
      const idle = this.#maxBufferedBytes;
      const timer = silenceTimer(keepAliveMs, () => {
        const now = Date.now();
        for (const member of members) {
          // Only an idle client needs a heartbeat: one with unread bytes is not silent, and piling comments
          // behind it helps no one. On workerd this write is also what reveals a client that has gone.
          if (member.controller.desiredSize === idle) member.controller.enqueue(HEARTBEAT);
          else if (this.#isOverCap(member)) this.#overCap(member, now);
        }
      });
      group = { timer, members };
      this.#keepAlive.set(keepAliveMs, group);
    }
    group.members.add(subscriber);
  }

  /** Every way a subscriber leaves comes through here; it is harmless to call twice. */
  #leave(subscriber: Subscriber, closeBody: boolean): void {
    if (!this.#subscribers.delete(subscriber)) return;
    subscriber.stopListening();
    subscriber.stopDeadline();
    subscriber.resume?.stop();
    subscriber.resume = undefined;
    const group = this.#keepAlive.get(subscriber.keepAliveMs);
    if (group?.members.delete(subscriber) && group.members.size === 0) {
      group.timer.stop();
      this.#keepAlive.delete(subscriber.keepAliveMs);
    }
    // The unread bytes stay queued: a closed stream still delivers them, then ends, and the client reconnects.
    if (closeBody) subscriber.controller.close();
  }
}
