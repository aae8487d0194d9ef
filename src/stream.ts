/**
 * The one lifecycle of every event stream, whatever feeds it (a source, or a channel): first chunk, heartbeats,
 * `maxDuration`, the signals that end it, flow control, why it ended, clean-up. It ends once, through `end`; if its
 * client has not read its last bytes 5 s later, it is dropped, so a client that stopped reading holds no memory.
 * @module
 */
import { type AbortTarget, listen, unlisten } from "./abort.ts";
import { freshBytes, Utf8Pool } from "./bytes.ts";
import { DirectBody } from "./direct-body.ts";
import { type Drainable, openStreams } from "./drain.ts";
import { isThenable, report } from "./errors.ts";
import { offerHandOff, type Sink, signalIsOwn, UNREAD_GRACE_MS, unreadError } from "./handoff.ts";
import { deadline, type Schedule, unwatch, type Watched, watch } from "./keep-alive.ts";
import type { StreamOptions } from "./options.ts";
import {
  bodiesAreDirect,
  requestSignalMeansClientLeft,
  requestSignalNeedsItsRequest,
  timersOutliveTheirRequest,
} from "./runtime.ts";
import { Tally } from "./stream-end.ts";
import type { EventInput, StreamEnd } from "./types.ts";

/** Why a stream ended: one word, as `onClose` is told it. */
export type EndReason = StreamEnd["reason"];

/** An empty comment: the first chunk when there is no `retry`, and the heartbeat. */
const COMMENT = ":\n\n";

/**
 * A high-water mark of one: `pull` is called exactly when nothing is queued. Counted in bytes, the bytes the client has
 * not read yet are `1 - desiredSize`; counted in chunks (the default, which costs Deno less memory per stream), that
 * is how many chunks it has not read.
 */
const BYTES: QueuingStrategy<Uint8Array> = { highWaterMark: 1, size: (chunk) => chunk.byteLength };
const CHUNKS: QueuingStrategy<Uint8Array> = { highWaterMark: 1 };

/** What feeds a stream. */
export interface Producer {
  /** The client is reading and nothing is queued: write more, now or once the promise settles. */
  pull(stream: EventStream): void | Promise<void>;
  /** The stream has ended, for `reason`: stop, and let go of everything. Called once. */
  stop(reason: EndReason, cause: unknown): void;
  /** A heartbeat found unread bytes: the stream is behind, not idle. */
  behind?(stream: EventStream): void;
  /** Whether the stream may be handed to a sink now (no bytes held anywhere but the stream's queue). */
  canHandOff?(): boolean;
  /** A sink's backlog has fallen to what its connection takes at once (Node's `drain`). */
  drained?(): void;
  /** Whether it writes only when pulled (a source): handed off, its stream then pulls it while the sink takes more. */
  readonly driven?: boolean;
  /**
   * Whether it must know how many bytes its client has not read (a channel's cap, a replay's pages), rather than only
   * whether there are any: its stream's queue then counts bytes.
   */
  readonly countsBytes?: boolean;
  /** `last` as this stream's final event, encoded; throws the `TypeError` it deserves. */
  lastText(last: EventInput, where: string): string;
  /** The stream ends now with a final event: write first what its client is owed (a resume's replay). */
  flush?(): void;
}

/**
 * One open stream. One object with its methods on a shared prototype, and it is its own keep-alive entry and its own
 * abort listener: an idle connection holds little more than these fields.
 */
export class EventStream implements Watched, AbortTarget, Drainable {
  silenceMs = 0;
  lastWrite = 0;
  due = 0;
  index = -1;
  schedule: Schedule | undefined;
  timer: ReturnType<typeof setTimeout> | undefined;

  /** Why it ended; `undefined` while open. */
  ended: EndReason | undefined;
  /** When it ended; 0 while open (see `HandOff`). */
  endedAt = 0;
  /** Set at the first pull: its client is reading. */
  reading = false;
  /** Set when `drain` ended it: on Node its connection is then closed, so a closing server need not wait for it. */
  closesConnection = false;
  readonly #producer: Producer;
  // Dropped at the first pull, so that an open stream does not keep its request (and its headers) alive.
  #options: StreamOptions | undefined;
  #controller!: ReadableStreamDefaultController<Uint8Array>;
  #sink: Sink | undefined;
  /** On Bun, the body as the runtime reads it (see direct-body.ts). */
  #direct: DirectBody | undefined;
  #pool: Utf8Pool | undefined;
  #signal: AbortSignal | undefined;
  #requestSignal: AbortSignal | undefined;
  /** Set by the Node entry, which sends this body and cancels it when the client leaves (see `HandOff`). */
  clientWatched = false;
  /** Never read: held while the stream listens to its request's signal (see requestSignalNeedsItsRequest). */
  heldRequest: Request | undefined;
  #stopDeadline: (() => void) | undefined;
  // The first chunk, until the first read: a stream taken over before it writes it to its sink.
  #first: Uint8Array | undefined;
  #onPulled: (() => void) | undefined;
  // Whether the one pull allowed past a full sink has been made (see #drive).
  #ahead = false;
  /** What `onClose` will be told, for a stream that has one. */
  #tally: Tally | undefined;

  constructor(producer: Producer, options: StreamOptions) {
    this.#producer = producer;
    this.#options = options;
    if (options.onClose !== undefined) this.#tally = new Tally(options.onClose, options.request);
  }

  /** The stream as a response body, offered to Node's entry (see handoff.ts). */
  body(): ReadableStream<Uint8Array> {
    let body = new ReadableStream<Uint8Array>(this, this.#producer.countsBytes ? BYTES : CHUNKS);
    if (bodiesAreDirect) {
      this.#direct = new DirectBody(this, body);
      body = new ReadableStream(this.#direct as unknown as UnderlyingSource<Uint8Array>, { highWaterMark: 1 });
    }
    offerHandOff(body, this);
    return body;
  }

  /** From now on `drain` may end it; not on workerd, where one request cannot end another's stream. */
  enlist(): void {
    if (timersOutliveTheirRequest && this.ended === undefined) openStreams.add(this);
  }

  start(controller: ReadableStreamDefaultController<Uint8Array>): void {
    this.#controller = controller;
    const options = this.#options as StreamOptions;
    // Written at once: some runtimes hold the headers back until the first body byte.
    const first = freshBytes(options.retry === undefined ? COMMENT : `retry: ${options.retry}\n\n`);
    controller.enqueue(first);
    this.#first = first;
    this.#tally?.wrote(first.byteLength);
    const { signal, request } = options;
    if (signal?.aborted) {
      this.end("signal", signal.reason);
      return;
    }
    if (signal !== undefined) {
      this.#signal = signal;
      listen(signal, this);
    }
    // A request of the Node entry's makes its signal only when it is read: it is read at the first read instead, and
    // not at all when the entry sends this body, since the entry then cancels it when the client leaves.
    if (request !== undefined && !signalIsOwn(request)) this.#watchRequest(request);
  }

  /** Ends the stream when its request's signal tells that its client left (at once, if it has already). */
  #watchRequest(request: Request): void {
    if (!requestSignalMeansClientLeft) return;
    const requestSignal = request.signal;
    if (requestSignal.aborted) {
      this.end("client", requestSignal.reason);
      return;
    }
    this.#requestSignal = requestSignal;
    listen(requestSignal, this);
    if (requestSignalNeedsItsRequest && !signalIsOwn(request)) this.heldRequest = request;
  }

  pull(): void | Promise<void> {
    if (this.ended !== undefined) return;
    if (!this.reading) this.#startReading();
    if (this.ended !== undefined) return;
    return this.#producer.pull(this);
  }

  /** The first read, or a take-over before it: the client is there, so the timers start. */
  #startReading(): void {
    this.reading = true;
    this.#first = undefined;
    const options = this.#options as StreamOptions;
    this.#options = undefined;
    if (options.request !== undefined && signalIsOwn(options.request) && !this.clientWatched) {
      this.#watchRequest(options.request);
      if (this.ended !== undefined) return;
    }
    this.enlist();
    // Watched from the first read: a response nobody reads needs no heartbeat, and keeps no timer alive.
    if (options.keepAliveMs > 0) watch(this, options.keepAliveMs);
    const { maxDurationMs } = options;
    // Drawn between 0.9 and 1 times the limit, so that clients that connected together do not reconnect together.
    if (maxDurationMs > 0) {
      const ms = Math.max(1, Math.round(maxDurationMs * (0.9 + 0.1 * Math.random())));
      this.#stopDeadline = deadline(ms, () => this.#endSafely("maxDuration"));
    }
  }

  cancel(reason: unknown): void {
    this.end("client", reason, false);
  }

  /** One of its signals aborted. */
  onAbort(signal: AbortSignal): void {
    this.end(signal === this.#signal ? "signal" : "client", signal.reason);
  }

  /** Writes bytes now, whatever the backlog. */
  write(bytes: Uint8Array, now?: number): void {
    if (this.#sink === undefined) this.#controller.enqueue(bytes);
    else this.#sink.write(bytes);
    this.#tally?.wrote(bytes.byteLength);
    // A stream that is not watched (no keep-alive, or not yet read) pays for no clock read.
    if (this.silenceMs !== 0) this.lastWrite = now ?? Date.now();
  }

  /** Counts an event written, for `onClose`: `dispatches` when it carries data or an event type. */
  counted(dispatches: boolean, id: string | undefined): void {
    this.#tally?.counted(dispatches, id);
  }

  /** Counts an input written, for `onClose`. */
  countInput(input: EventInput): void {
    this.#tally?.countInput(input);
  }

  /** Writes a text in this stream's own memory. */
  writeText(text: string): void {
    this.#pool ??= new Utf8Pool();
    this.write(this.#pool.bytes(text));
  }

  /** Bytes written that its client has not taken yet; chunks, unless its producer `countsBytes` (see `CHUNKS`). */
  unread(): number {
    if (this.#sink !== undefined) return this.#sink.unread();
    return 1 - (this.#controller.desiredSize ?? 1) + (this.#direct?.pending ?? 0);
  }

  onSilence(): void {
    if (this.unread() > 0) {
      // Not idle but behind: a heartbeat queued behind unread bytes helps no one.
      this.#producer.behind?.(this);
      return;
    }
    // Idle: its slab goes, and the next event starts a small one.
    this.#pool?.release();
    this.write(freshBytes(COMMENT));
  }

  onWatchFailed(error: unknown): void {
    report(error, "a stream's heartbeat or deadline failed");
    this.end("error", error);
  }

  /**
   * Moves the stream's output to `sink`, if every byte queued so far has been read (so none can come after the sink's)
   * and its producer holds nothing back. Synchronous: no write falls between the check and the move.
   */
  handOff(sink: Sink): boolean {
    if (this.ended !== undefined || this.#sink !== undefined) return false;
    if (!this.reading) {
      // A source's stream, taken before its first read: no body is read at all, and the source is pulled straight
      // into the sink (Node: ServerResponse.write), with the sink's backlog as backpressure.
      const first = this.#first;
      if (!this.#producer.driven || first === undefined) return false;
      this.#startReading();
      this.#sink = sink;
      sink.write(first);
      this.#drive();
      return true;
    }
    if (!(this.#producer.canHandOff?.() ?? false) || this.unread() !== 0) return false;
    this.#sink = sink;
    return true;
  }

  /** Its sink's backlog has fallen (see `Sink`). */
  drained(): void {
    this.#producer.drained?.();
    if (this.#producer.driven) this.#drive();
  }

  /** Pulls a driven producer while its sink takes more, one pull at a time. */
  #drive(): void {
    const sink = this.#sink as Sink;
    while (this.ended === undefined) {
      // One pull past a full sink, as a body holds one chunk its client has not read: a source that is done then ends
      // the stream even when its client reads nothing more, and the 5 s grace can drop it.
      if (!sink.full()) this.#ahead = false;
      else if (this.#ahead) return;
      else this.#ahead = true;
      const pulled = this.#producer.pull(this);
      if (isThenable(pulled)) {
        this.#onPulled ??= () => this.#drive();
        pulled.then(this.#onPulled, (error) => this.fail(error));
        return;
      }
    }
  }

  checkLast(last: EventInput): void {
    this.#producer.lastText(last, "drain");
  }

  /** `drain` ends it as `closed`, with `last` as its final event; false if it had ended already. */
  drainEnd(last: EventInput | undefined): boolean {
    if (this.ended !== undefined) return false;
    this.#producer.flush?.();
    if (last !== undefined) {
      this.writeText(this.#producer.lastText(last, "drain"));
      this.countInput(last);
    }
    this.closesConnection = true;
    this.end("closed");
    return true;
  }

  /**
   * Every way the stream ends comes through here, once: its timers and listeners go, its producer stops, and, with
   * `closeBody`, the body closes after its queued bytes (not when the body was cancelled or must error).
   */
  end(reason: EndReason, cause?: unknown, closeBody = true): void {
    if (this.ended !== undefined) return;
    this.ended = reason;
    this.endedAt = Date.now();
    this.#options = undefined;
    openStreams.delete(this);
    unwatch(this);
    this.#stopDeadline?.();
    try {
      this.#producer.stop(reason, cause);
    } catch (error) {
      report(error, "stopping a stream's source failed");
    }
    try {
      // The caller's signal is the caller's code: its failure fails this stream, and only this one.
      if (this.#signal !== undefined) unlisten(this.#signal, this);
      if (this.#requestSignal !== undefined) unlisten(this.#requestSignal, this);
    } catch (error) {
      report(error, "a stream's signal failed");
      this.ended = reason = "error";
    }
    this.heldRequest = undefined;
    if (closeBody) this.#close();
    this.#tally?.tell(reason);
    this.#tally = undefined;
  }

  /** Ends the stream with its body errored: the client sees a failure, not a clean end. */
  fail(error: unknown): void {
    this.end("error", error, false);
    if (this.#sink !== undefined) this.#sink.fail(error);
    else {
      this.#controller.error(error);
      this.#direct?.drop(error);
    }
  }

  #endSafely(reason: EndReason): void {
    try {
      this.end(reason);
    } catch (error) {
      this.onWatchFailed(error);
    }
  }

  #close(): void {
    if (this.#sink !== undefined) {
      this.#sink.end();
      return;
    }
    const controller = this.#controller;
    const unread = this.unread();
    try {
      controller.close();
    } catch {
      // Already closed or errored by the runtime: nothing is left to close.
      return;
    }
    if (unread > 0) {
      // Erroring a stream that has been read to its end does nothing, so this can be armed unconditionally.
      deadline(UNREAD_GRACE_MS, () => {
        const error = unreadError();
        controller.error(error);
        this.#direct?.drop(error);
      });
    }
  }
}
