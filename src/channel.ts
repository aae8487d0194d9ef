/**
 * `EventChannel`: `emit` from anywhere, and every subscriber receives the event. Each event is checked and encoded
 * once, and the same bytes are written to every subscriber; what a resuming client is owed is `history.ts`'s business,
 * and each stream's life is `stream.ts`'s.
 * @module
 */
import { Utf8Pool } from "./bytes.ts";
import { encodeWith } from "./encode.ts";
import { fail, shown } from "./errors.ts";
import { type Entry, type MemoryHistory, memoryHistory, resumableId, writeEntry } from "./history.ts";
import { isRequest } from "./last-event-id.ts";
import { type ChannelOptions, channelOptions, streamOptions } from "./options.ts";
import { eventStreamResponse, requestedId } from "./response.ts";
import { Resume } from "./resume.ts";
import { type EndReason, EventStream, type Producer } from "./stream.ts";
import type { EventChannelOptions, EventChannelStats, EventInput, EventSourceResponseInit } from "./types.ts";

/** The counters of `stats()`, shared by a channel and its subscribers. */
type Counts = Omit<EventChannelStats, "subscribers">;

/** How long a subscriber's backlog may stay above `maxBufferedBytes` before it is closed. */
const OVER_CAP_MS = 1_000;

// The channels `close()` was called on: a shared log's feed stops feeding one (src/logs/feed.ts).
const closedChannels = new WeakSet<object>();

/** Whether `close()` was called on this channel. */
export function isClosed(channel: object): boolean {
  return closedChannels.has(channel);
}

/**
 * A broadcast channel: `emit` an event once, and every client connected through `response()` receives it. Each event is
 * checked and encoded once; a subscriber whose unread bytes stay above `maxBufferedBytes` for a second is closed, and a
 * client that reconnects with a `Last-Event-ID` resumes from `replay` or `history`. Throws a `TypeError` for an invalid
 * option. See docs/channel.md.
 * @example Every subscriber gets each event, and a client that comes back resumes after its last id
 * ```ts
 * import assert from "node:assert/strict";
 * import { EventChannel } from "eventsource-server";
 *
 * const channel = new EventChannel({ replay: 100 });
 * const first = channel.response();
 * channel.emit({ id: 1, data: "one" });
 * channel.emit({ id: 2, data: "two" });
 * const resumed = channel.response(new Request("http://localhost/", { headers: { "last-event-id": "1" } }));
 * channel.close();
 * assert.equal(await first.text(), ":\n\nid: 1\ndata: one\n\nid: 2\ndata: two\n\n");
 * assert.equal(await resumed.text(), ":\n\nid: 2\ndata: two\n\n");
 * ```
 */
export class EventChannel<Events extends Record<string, unknown> = Record<string, unknown>> {
  readonly #options: ChannelOptions;
  // The channel's own memory: its events' bytes are shared by its subscribers, and by no one else.
  readonly #pool = new Utf8Pool();
  readonly #memory: MemoryHistory | undefined;
  readonly #subscribers = new Set<Subscriber>();
  readonly #counts: Counts = { opened: 0, emitted: 0, evicted: 0, resumed: 0, historyLost: 0 };
  #closed = false;

  constructor(options?: EventChannelOptions<Events>) {
    this.#options = channelOptions("EventChannel", options as EventChannelOptions | undefined);
    this.#memory = this.#options.replay > 0 ? memoryHistory(this.#options.replay) : undefined;
  }

  /** The number of open subscriber streams. */
  get subscribers(): number {
    return this.#subscribers.size;
  }

  /** The open subscribers, and counters over the channel's whole life (readable after `close()`). */
  stats(): EventChannelStats {
    return { subscribers: this.#subscribers.size, ...this.#counts };
  }

  /**
   * Sends one event to every subscriber, and keeps it when `replay` is set; returns at once, never awaiting. Throws a
   * `TypeError`, and sends nothing, for an input `encodeEvent` rejects, an id no client could send back, and after
   * `close()`.
   */
  emit(input: EventInput<Events>): void {
    if (this.#closed) fail("EventChannel.emit", "the channel is closed; make a new EventChannel");
    const entry = this.#entry("EventChannel.emit", input);
    this.#counts.emitted++;
    this.#memory?.remember(entry);
    if (this.#subscribers.size === 0) return;
    const now = Date.now();
    // Deleting from a Set while iterating it is safe: an evicted subscriber is simply not visited again.
    for (const subscriber of this.#subscribers) subscriber.send(entry, now);
  }

  /**
   * A `text/event-stream` response subscribed at once: every event emitted after this call reaches it. With a
   * `Last-Event-ID`, what the client missed comes first. `init` takes `eventSourceResponse`'s options but `serialize`
   * and `onError` (a `TypeError`: the channel encodes once, and has no source to fail).
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
    const subscriber = new Subscriber(this.#subscribers, this.#options, this.#counts);
    const stream = new EventStream(subscriber, options);
    subscriber.stream = stream;
    // The first chunk is written, and a signal that has already aborted is seen, right here.
    const body = stream.body();
    if (this.#closed) stream.end("closed");
    if (stream.ended !== undefined) return eventStreamResponse(body, options);
    // Everything from here to the end is synchronous: no emit can fall between the first chunk and the joining.
    this.#subscribers.add(subscriber);
    this.#counts.opened++;
    stream.enlist();
    const id = requestedId(options);
    if (id !== null) this.#resume(subscriber, id);
    return eventStreamResponse(body, options);
  }

  /**
   * Writes `last`, if given, to every open subscriber, then ends every stream normally; their clients reconnect.
   * Calling it again does nothing; after it `emit` throws, and `response()` closes after its first chunk.
   */
  close(last?: EventInput<Events>): void {
    const farewell = last === undefined ? undefined : this.#entry("EventChannel.close", last);
    if (this.#closed) return;
    this.#closed = true;
    closedChannels.add(this);
    for (const subscriber of this.#subscribers) subscriber.close(farewell);
    this.#memory?.clear();
  }

  /**
   * Like `close(last)` for the subscribers open now, but the channel stays open: later `response()` calls subscribe as
   * usual. Their clients reconnect and resume. Throws a `TypeError`, and ends nothing, for a `last` `emit` would refuse.
   */
  disconnect(last?: EventInput<Events>): void {
    const farewell = last === undefined ? undefined : this.#entry("EventChannel.disconnect", last);
    for (const subscriber of this.#subscribers) subscriber.close(farewell);
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
    const counts = this.#counts;
    // Nothing to resume from, and nothing to tell: the client has lost what it missed, and gets live events.
    if (history === undefined && memory === undefined && onHistoryLost === undefined) {
      counts.historyLost++;
      return;
    }
    const resume = new Resume(subscriber.stream, lastId, {
      serialize,
      onHistoryLost,
      historyTimeoutMs,
      maxBufferedBytes,
      settled: (lost) => {
        if (lost) counts.historyLost++;
        else counts.resumed++;
      },
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
  readonly #options: ChannelOptions;
  readonly #counts: Counts;

  constructor(subscribers: Set<Subscriber>, options: ChannelOptions, counts: Counts) {
    this.#subscribers = subscribers;
    this.#options = options;
    this.#counts = counts;
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

  stop(reason: EndReason, cause: unknown): void {
    if (reason === "evicted") this.#counts.evicted++;
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

  /** Its cap, and its replay's pages, are counted in bytes. */
  get countsBytes(): boolean {
    return true;
  }

  lastText(last: EventInput, where: string): string {
    resumableId(where, last);
    return encodeWith(last, this.#options.serialize, where);
  }

  flush(): void {
    this.resume?.flush();
  }

  /**
   * A backlog above the cap is closed only once it has stayed there a second, each time it goes over: a burst, or one
   * event larger than the cap, still reaches a client that reads it, while one that stopped reading is closed at the
   * next check.
   */
  #check(now: number): void {
    const { resume } = this;
    // While a replay is written, only the live events held behind it count: the replay is read only as fast as the
    // client reads it, and is what the client asked for.
    const behind = resume?.replaying ? resume.heldBytes : this.stream.unread();
    if (behind <= this.#options.maxBufferedBytes) this.overSince = undefined;
    else if (this.overSince === undefined) this.overSince = now;
    else if (now - this.overSince >= OVER_CAP_MS) this.stream.end("evicted");
  }
}
