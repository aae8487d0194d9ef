/**
 * `EventChannel`: `emit` from anywhere, and every subscriber receives the event. Each event is checked and encoded
 * once, and the same bytes are written to every subscriber; what a resuming client is owed is `history.ts`'s
 * business, and each stream's life is `stream.ts`'s.
 *
 * @module
 */
import { Utf8Pool } from "./bytes.ts";
import { encodeWith } from "./encode.ts";
import { fail, shown } from "./errors.ts";
import { offerHandOff } from "./handoff.ts";
import { type Entry, type MemoryHistory, memoryHistory, resumableId, writeEntry } from "./history.ts";
import { isRequest } from "./last-event-id.ts";
import { type ChannelOptions, channelOptions, streamOptions } from "./options.ts";
import { eventStreamResponse, requestedId } from "./response.ts";
import { Resume } from "./resume.ts";
import { type EndReason, EventStream, type Producer } from "./stream.ts";
import type { EventChannelOptions, EventInput, EventSourceResponseInit } from "./types.ts";

/** How long a subscriber's backlog may stay above `maxBufferedBytes` before it is closed. */
const OVER_CAP_MS = 1_000;

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
  readonly #options: ChannelOptions;
  // The channel's own memory: its events' bytes are shared by its subscribers, and by no one else.
  readonly #pool = new Utf8Pool();
  readonly #memory: MemoryHistory | undefined;
  readonly #subscribers = new Set<Subscriber>();
  #closed = false;

  constructor(options?: EventChannelOptions<Events>) {
    this.#options = channelOptions("EventChannel", options as EventChannelOptions | undefined);
    this.#memory = this.#options.replay > 0 ? memoryHistory(this.#options.replay) : undefined;
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
    const entry = this.#entry("EventChannel.emit", input);
    this.#memory?.remember(entry);
    if (this.#subscribers.size === 0) return;
    const now = Date.now();
    // Deleting from a Set while iterating it is safe: an evicted subscriber is simply not visited again.
    for (const subscriber of this.#subscribers) subscriber.send(entry, now);
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
    if (init?.serialize !== undefined) {
      fail(where, "init.serialize has no effect on a channel; pass serialize to new EventChannel(options)");
    }
    if (init?.onError !== undefined) {
      fail(where, "init.onError has no effect on a channel, which has no source that could fail");
    }
    const options = streamOptions(where, init);
    if (request !== undefined) options.request = request;
    const subscriber = new Subscriber(this.#subscribers, this.#options.maxBufferedBytes);
    const stream = new EventStream(subscriber, options);
    subscriber.stream = stream;
    // The first chunk is written, and a signal that has already aborted is seen, right here.
    const body = stream.body();
    if (this.#closed) stream.end("closed");
    if (stream.ended !== undefined) return eventStreamResponse(body, options);
    // Everything from here to the end is synchronous: no emit can fall between the first chunk and the joining.
    this.#subscribers.add(subscriber);
    const id = requestedId(options);
    if (id !== null) this.#resume(subscriber, id);
    offerHandOff(body, stream);
    return eventStreamResponse(body, options);
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
    const farewell = last === undefined ? undefined : this.#entry("EventChannel.close", last);
    if (this.#closed) return;
    this.#closed = true;
    for (const subscriber of this.#subscribers) subscriber.close(farewell);
    this.#memory?.clear();
  }

  /** An event as the channel keeps it: checked (its id must be one a client can send back), encoded once. */
  #entry(where: string, input: EventInput<Events>): Entry {
    const event = input as EventInput;
    const id = resumableId(where, event);
    const bytes = this.#pool.bytes(encodeWith(event, this.#options.serialize, where));
    return {
      id,
      bytes,
      dispatches: typeof event === "string" || event.data !== undefined || event.event !== undefined,
    };
  }

  /** A client that sent a `Last-Event-ID` resumes from the channel's history, if it has one. */
  #resume(subscriber: Subscriber, lastId: string): void {
    const { history, serialize, onHistoryLost, historyTimeoutMs, maxBufferedBytes } = this.#options;
    const memory = this.#memory;
    if (history === undefined && memory === undefined && onHistoryLost === undefined) return;
    const resume = new Resume(subscriber.stream, lastId, {
      serialize,
      onHistoryLost,
      historyTimeoutMs,
      maxBufferedBytes,
      done: () => {
        subscriber.resume = undefined;
      },
    });
    subscriber.resume = resume;
    if (history !== undefined) resume.fromLog(history);
    // No history at all holds nothing: every resuming client has lost what it missed.
    else resume.fromMemory(memory?.after(lastId) ?? null, memory?.all() ?? []);
  }
}

/** One open subscriber: its stream's producer, fed by `emit`, and by its replay while it resumes. */
class Subscriber implements Producer {
  stream!: EventStream;
  /** While it resumes: the replay, and the live events held and filtered meanwhile. */
  resume: Resume | undefined;
  /** When its backlog went above the cap, if it has stayed there since. */
  overSince: number | undefined;
  readonly #subscribers: Set<Subscriber>;
  readonly #maxBufferedBytes: number;

  constructor(subscribers: Set<Subscriber>, maxBufferedBytes: number) {
    this.#subscribers = subscribers;
    this.#maxBufferedBytes = maxBufferedBytes;
  }

  send(entry: Entry, now: number): void {
    const { resume } = this;
    if (resume === undefined) writeEntry(this.stream, entry, now);
    else resume.offer(entry, now);
    this.#check(now);
  }

  close(farewell: Entry | undefined): void {
    this.resume?.flush();
    if (farewell !== undefined) writeEntry(this.stream, farewell);
    this.stream.end("closed");
  }

  pull(): void {
    // Called only when nothing is queued: whatever the backlog was, it has fallen to nothing.
    this.drained();
    this.resume?.pull();
  }

  /** Its backlog has fallen to nothing since the last check: a later one starts its second over again. */
  drained(): void {
    this.overSince = undefined;
  }

  stop(_reason: EndReason, cause: unknown): void {
    this.#subscribers.delete(this);
    this.resume?.stop(cause);
    this.resume = undefined;
  }

  behind(): void {
    this.#check(Date.now());
  }

  canHandOff(): boolean {
    return this.resume === undefined;
  }

  /**
   * A backlog above the cap is closed only once it has stayed there a second, each time it goes over: a burst, or
   * one event larger than the cap, still reaches a client that reads it, while one that stopped reading is closed
   * at the next check.
   */
  #check(now: number): void {
    const { resume } = this;
    // While a replay is written, only the live events held behind it count: the replay is read only as fast as
    // the client reads it, and is what the client asked for.
    const behind = resume?.replaying ? resume.heldBytes : this.stream.unread();
    if (behind <= this.#maxBufferedBytes) this.overSince = undefined;
    else if (this.overSince === undefined) this.overSince = now;
    else if (now - this.overSince >= OVER_CAP_MS) this.stream.end("evicted");
  }
}
