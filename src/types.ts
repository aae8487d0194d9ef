import type { EventChannel } from "./channel.ts";

/**
 * One event, as the fields of the wire format; every field is optional. `ServerSentEvent<number, "tick">` is a `tick`
 * event whose data is a number.
 * @see https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation
 */
export interface ServerSentEvent<Data = unknown, Type extends string = string> {
  /** The event type a client listens for with `addEventListener`; must not contain CR or LF. Omitted: `message`. */
  event?: Type | undefined;
  /**
   * A string is sent as is, one `data:` line per line; anything else goes through `serialize` (`JSON.stringify` by
   * default). A promise or another thenable is a `TypeError`: await it first.
   */
  data?: Data | undefined;
  /** The client's new last event ID; must not contain CR, LF or NUL. `""` resets it. */
  id?: string | number | undefined;
  /** The client's reconnection time in milliseconds: a non-negative safe integer. */
  retry?: number | undefined;
  /** Written as comment lines, which clients never dispatch. */
  comment?: string | undefined;
}

/**
 * What a source may yield and what `emit` takes: a bare string (the data of a `message` event) or an event. With a map
 * from event type to data type (declared with `type`, not `interface`), only those types, each with its own data; an
 * event with only `id`, `retry` or `comment` is always allowed. See docs/typescript.md.
 */
export type EventInput<Events extends Record<string, unknown> = Record<string, unknown>> =
  // A map with an index signature names no event types: every type is allowed, with that data.
  string extends keyof Events
    ? MessageString<Events[string]> | ServerSentEvent<Events[string]>
    :
        | MessageString<MessageData<Events>>
        | ControlEvent
        | { [Type in keyof Events & string]: EventOfType<Events[Type], Type> }[keyof Events & string];

/**
 * One event of a map's type `Type`: `event` is required (a `message` event may leave it out), and so is `data` unless
 * `Data` allows `undefined`.
 */
export type EventOfType<Data, Type extends string> = ServerSentEvent<Data, Type> &
  (Type extends "message" ? unknown : { event: Type }) &
  (undefined extends Data ? unknown : { data: Data });

/** An event with only `id`, `retry` or `comment`: no client dispatches it, so every event map allows it. */
export type ControlEvent = ServerSentEvent<undefined, never>;

/** The data type of a map's `message` events; `never` when the map has none. */
type MessageData<Events> = "message" extends keyof Events ? Events["message"] : never;

/** The bare strings a `message` event with this data type accepts. */
type MessageString<Data> = unknown extends Data ? string : Extract<Data, string>;

/** The keys an event object may have. */
type EventField = keyof ServerSentEvent;

/**
 * `unknown` when every object in `Input` has only event fields; otherwise the unknown keys, typed so no value fits: a
 * source's inferred yield type is not checked for excess keys, so `{ type: "tick" }` would pass.
 */
export type KnownKeys<Input> = Input extends string
  ? unknown
  : { [Key in Exclude<keyof Input, EventField>]: "is not an event field: use event, data, id, retry or comment" };

/** What a function source is called with. */
export interface EventSourceContext {
  /** Aborts the moment the stream ends for any reason: client gone, `init.signal`, source done, error. */
  signal: AbortSignal;
  /** The `Last-Event-ID` of `init.request` (see `lastEventId`), or `null`. */
  lastEventId: string | null;
}

/**
 * A sequence of events: async iterable, iterable or stream. An iterable must be an object: a bare string is an iterable
 * of characters, never a sequence of events.
 */
export type EventStreamLike<Input extends EventInput = EventInput> =
  | AsyncIterable<Input>
  | (Iterable<Input> & object)
  | ReadableStream<Input>;

/** What `eventSourceResponse` takes: a sequence of events, or a function called once to make one. */
export type EventSourceSource<Input extends EventInput = EventInput> =
  | EventStreamLike<Input>
  | ((context: EventSourceContext) => EventStreamLike<Input> | Promise<EventStreamLike<Input>>);

/** Options shared by the encoder, the encoder stream and the channel. */
export interface EncodeOptions {
  /** Turns non-string `data` into text; must return a string. @default JSON.stringify */
  serialize?: ((data: unknown) => string) | undefined;
}

/** `ResponseInit` plus the options of an event stream. */
export interface EventSourceResponseInit extends ResponseInit {
  /** The request being answered: its `signal` ends the stream, its `Last-Event-ID` reaches a function source. */
  request?: Request | undefined;
  /** Aborting it ends the stream cleanly: the source is stopped and the body closes normally. */
  signal?: AbortSignal | undefined;
  /** Reconnection time in ms, written first as a `retry:` field. */
  retry?: number | undefined;
  /**
   * Milliseconds of silence before a comment line is written to keep the connection open; `false` or `0`: none.
   * @default 8000
   */
  keepAlive?: number | false | undefined;
  /** Turns non-string `data` into text; must return a string. @default JSON.stringify */
  serialize?: ((data: unknown) => string) | undefined;
  /**
   * Called once when the source throws or yields an invalid event; the event it returns (or resolves with) is written
   * before the body closes. A throw or a rejection errors the body.
   * @default console.error
   */
  onError?: ((error: unknown) => EventInput | void | PromiseLike<EventInput | void>) | undefined;
  /**
   * Ends the stream normally between 0.9 × and 1 × this many ms after the first read, so the client reconnects (to any
   * instance) and resumes; the spread keeps clients from reconnecting together. Up to 2147483647.
   */
  maxDuration?: number | undefined;
  /** Called once when the stream ends, whatever the way, with why and what it wrote; a throw is only reported. */
  onClose?: ((end: StreamEnd) => unknown) | undefined;
}

/** Why a stream ended, and what it wrote: what `onClose` is called with. */
export interface StreamEnd {
  /**
   * `done`: the source finished; `client`: the body was cancelled or `init.request`'s signal aborted; `signal`:
   * `init.signal` aborted; `error`: the source threw or yielded an invalid event; `maxDuration`; `evicted`: a channel
   * closed it as slow; `closed`: `channel.close()`.
   */
  reason: "done" | "client" | "signal" | "error" | "maxDuration" | "evicted" | "closed";
  /** Inputs written that carry data or an event type, or are a bare string. */
  events: number;
  /** Bytes the stream wrote, first chunk and heartbeats included, read by the client or not. */
  bytes: number;
  /** Milliseconds from the response's creation to its end. */
  duration: number;
  /** The id of the last event written with an id, else the request's `Last-Event-ID`, else `null`. */
  lastEventId: string | null;
}

/**
 * A log of events that outlives this process and that every instance shares (Redis Streams, a database, a Durable
 * Object's storage), from which `EventChannel` replays what a reconnecting client missed.
 */
export interface EventHistory {
  /**
   * The events after the one with this id, oldest first, or `null` when the log does not hold it. Called once per
   * resuming client; must not resolve before this instance's live feed has reached `lastEventId`. `signal` aborts when
   * the client leaves before its replay is written.
   */
  after(
    lastEventId: string,
    context: { signal: AbortSignal },
  ): EventStreamLike | null | Promise<EventStreamLike | null>;
}

/**
 * A shared log that is also a channel's `history`: `publish` appends from any process, and `feed(channel)` emits every
 * entry published after it was called on this instance's channel, with the entry's position as the event's id. Made by
 * `redisStreamLog` (`eventsource-server/redis`), `postgresLog` (`eventsource-server/postgres`) and `durableObjectLog`
 * (`eventsource-server/cloudflare`). See docs/scaling.md.
 */
export interface EventLog extends EventHistory {
  /**
   * Emits on `channel` every entry published from now on, once each, in the log's order; once per log. A feed into a
   * channel that was closed stops. Throws a `TypeError` when called twice, after `close()`, or with no channel. A
   * channel of typed events is fed what was published, as published.
   */
  feed<Events extends Record<string, unknown>>(channel: EventChannel<Events>): void;
  /**
   * Appends one event and resolves with its id, the log's own position. Rejects with a `TypeError`, before anything is
   * written, for an input `emit` would refuse and for one with an `id` of its own; with the client's error when the
   * write fails.
   */
  publish(input: EventInput): Promise<string>;
  /** Stops the feed and closes the connections the log opened itself; the clients it was given stay open. */
  close(): Promise<void>;
}

/** The options of `new EventChannel(options)`; `Events` is the channel's map of event types. */
export interface EventChannelOptions<Events extends Record<string, unknown> = Record<string, unknown>> {
  /** How many of the latest events to keep for clients that reconnect. @default 0 */
  replay?: number | undefined;
  /** A log every instance shares, replayed to resuming clients; not together with `replay`. */
  history?: EventHistory | undefined;
  /**
   * Called with a resuming client's `Last-Event-ID` when the history does not hold it; the event it returns (or
   * resolves with, within `historyTimeout`) is written first, then live events. A throw is only reported.
   * @default undefined: a `replay` channel sends its whole memory, a `history` channel live events only
   */
  onHistoryLost?:
    | ((lastEventId: string) => EventInput<Events> | void | PromiseLike<EventInput<Events> | void>)
    | undefined;
  /**
   * Unread bytes a subscriber may hold for a second before its stream is closed (its client then resumes).
   * @default 1048576 (1 MiB)
   */
  maxBufferedBytes?: number | undefined;
  /**
   * Milliseconds a `history` may take to answer `after` and each next event, and `onHistoryLost` to settle; past it the
   * log has failed for that client, who gets `onHistoryLost`. @default 10000
   */
  historyTimeout?: number | undefined;
  /** Turns non-string `data` into text, once per `emit`. @default JSON.stringify */
  serialize?: ((data: unknown) => string) | undefined;
}

/** What `channel.stats()` returns: every counter is cumulative over the channel's life. */
export interface EventChannelStats {
  /** Subscriber streams open now (the same as `channel.subscribers`). */
  subscribers: number;
  /** Subscriber streams ever opened. */
  opened: number;
  /** Successful `emit()` calls. */
  emitted: number;
  /** Subscribers closed as slow. */
  evicted: number;
  /** Resuming clients whose id was found and whose whole replay was written. */
  resumed: number;
  /** Resuming clients sent the `onHistoryLost` case: id not found, or a log that failed or timed out. */
  historyLost: number;
}
