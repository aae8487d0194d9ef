/**
 * One event, as the fields of the `text/event-stream` wire format. Every field is optional.
 *
 * @see https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation
 */
export interface ServerSentEvent {
  /** The event type a client listens for with `addEventListener`; must not contain CR or LF. Omitted: `message`. */
  event?: string | undefined;
  /** A string is sent as is, one `data:` line per line; anything else goes through `serialize` (`JSON.stringify` by default). */
  data?: unknown;
  /** The client's new last event ID; must not contain CR, LF or NUL. `""` resets it. */
  id?: string | number | undefined;
  /** The client's reconnection time in milliseconds: a non-negative safe integer. */
  retry?: number | undefined;
  /** Written as comment lines, which clients never dispatch. */
  comment?: string | undefined;
}

/** What a source may yield: a bare string is the data of a `message` event. */
export type EventInput = string | ServerSentEvent;

/** What a function source is called with. */
export interface EventSourceContext {
  /** Aborts the moment the stream ends for any reason: client gone, `init.signal`, source done, error. */
  signal: AbortSignal;
  /** The `Last-Event-ID` of `init.request` (see `lastEventId`), or `null`. */
  lastEventId: string | null;
}

/** A sequence of events: async iterable, iterable (but never a bare string) or stream. */
export type EventStreamLike = AsyncIterable<EventInput> | Iterable<EventInput> | ReadableStream<EventInput>;

/** What `eventSourceResponse` takes: a sequence of events, or a function called once to make one. */
export type EventSourceSource =
  | EventStreamLike
  | ((context: EventSourceContext) => EventStreamLike | Promise<EventStreamLike>);

/** Options shared by the encoder, the encoder stream and the channel. */
export interface EncodeOptions {
  /**
   * Turns non-string `data` into text; must return a string.
   * @default JSON.stringify
   */
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
  /**
   * Turns non-string `data` into text; must return a string.
   * @default JSON.stringify
   */
  serialize?: ((data: unknown) => string) | undefined;
  /**
   * Called once when the source throws or yields an invalid event; an event it returns is written before the body closes.
   * @default console.error
   */
  onError?: ((error: unknown) => EventInput | void) | undefined;
  /**
   * Ends the stream normally after a time drawn uniformly between 0.9 × and 1 × this many ms from the first read,
   * so the client reconnects (to whichever instance) and resumes, and clients that connected together do not
   * all reconnect together. A positive whole number of ms up to 2147483647.
   * @default undefined (no limit)
   */
  maxDuration?: number | undefined;
}

/**
 * A log of events that outlives this process and that every instance shares (Redis Streams, a database, a
 * Durable Object's storage), from which `EventChannel` replays what a reconnecting client missed.
 */
export interface EventHistory {
  /**
   * The events after the one with this id, oldest first; `null` when this log does not hold that id (it was
   * trimmed, or never written here). Called once per resuming client, right when `channel.response()` is called.
   * When this instance's live feed has not yet reached `lastEventId`, it must not resolve before it has.
   * `signal` aborts when that client leaves before its replay has been written.
   */
  after(
    lastEventId: string,
    context: { signal: AbortSignal },
  ): EventStreamLike | null | Promise<EventStreamLike | null>;
}

/** The options of `new EventChannel(options)`. */
export interface EventChannelOptions {
  /**
   * How many of the latest events to keep, so a client that reconnects with the `Last-Event-ID` of one of
   * them receives every event after it. `0` keeps none.
   * @default 0
   */
  replay?: number | undefined;
  /**
   * A log shared by every instance that replays what a resuming client missed; a channel has `replay` or
   * `history`, not both.
   */
  history?: EventHistory | undefined;
  /**
   * Called with a resuming client's `Last-Event-ID` when the history does not hold it: that client missed an
   * unknown number of events. The event it returns is written first (say, one that tells the page to reload
   * its state), then live events only.
   * @default undefined: a `replay` channel sends its whole memory, a `history` channel live events only
   */
  onHistoryLost?: ((lastEventId: string) => EventInput | void) | undefined;
  /**
   * Unread bytes a subscriber may hold for a second before its stream is closed (its client then reconnects and
   * resumes from the history); protects the server's memory from a client that stopped reading, while a burst
   * or one large event still reaches every client that reads it.
   * @default 1048576 (1 MiB)
   */
  maxBufferedBytes?: number | undefined;
  /**
   * Turns non-string `data` into text; must return a string. Called once per `emit`, whatever the number of
   * subscribers.
   * @default JSON.stringify
   */
  serialize?: ((data: unknown) => string) | undefined;
}
