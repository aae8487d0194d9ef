/**
 * One resuming client's seam: its replay written as fast as it reads, the live events held meanwhile, and those it
 * already has dropped once a log has answered. Ids are opaque here, so the only order relied on is the live feed's: it
 * comes in the log's order.
 * @module
 */
import { freshBytes } from "./bytes.ts";
import { encodeWith } from "./encode.ts";
import { isThenable, noop, report } from "./errors.ts";
import { type Entry, resumableId, writeEntry } from "./history.ts";
import { deadline } from "./keep-alive.ts";
import type { Serialize } from "./options.ts";
import { type Puller, pullerOf } from "./source.ts";
import type { EventStream } from "./stream.ts";
import type { EventHistory, EventInput } from "./types.ts";

/** A replay writes this much at a time, at most, before it waits for its client to read. */
const PAGE_BYTES = 16 * 1024;

/** What a resume needs of its channel. */
export interface ResumeOptions {
  serialize: Serialize;
  onHistoryLost: ((lastEventId: string) => unknown) | undefined;
  historyTimeoutMs: number;
  maxBufferedBytes: number;
  /** Called once the replay is written (`lost`: the history failed the client) and the held events released. */
  settled(lost: boolean): void;
  /** Called once when nothing is held or filtered any more: live events can go straight to the client. */
  done(): void;
}

/** The `onHistoryLost` event, written for one client alone. */
interface Lost {
  input: EventInput;
  bytes: Uint8Array;
}

class Timeout extends Error {
  override name = "TimeoutError";
}

/**
 * One client's resume, from the call to `response()` until the live feed has passed its replay. The channel hands it
 * every live event (`offer`) and tells it when the client has read everything (`pull`).
 */
export class Resume {
  /** The bytes of the live events held while the replay is written. */
  heldBytes = 0;

  /** Whether the replay is still being written: the client's unread bytes are then its own request's. */
  get replaying(): boolean {
    return !this.#finished;
  }
  readonly #stream: EventStream;
  readonly #lastId: string;
  readonly #options: ResumeOptions;
  #held: Entry[] = [];
  // The history failed this client (it does not hold its id, or broke): onHistoryLost tells it.
  #lost = false;
  // The ring did not hold its id, even when its whole memory is sent instead: counted as lost all the same.
  #missed = false;
  // Set once the replay is written and the held events dealt with: live events then go straight through.
  #finished = false;
  #finishing = false;
  #stopped = false;
  // The memory ring's answer, and how far it has been written.
  #entries: Entry[] | undefined;
  #written = 0;
  // A log's signal (until its answer has been read whole), its answer, and the wait for the client to read.
  #fromLog = false;
  #abort: AbortController | undefined;
  #puller: Puller | undefined;
  #room: (() => void) | undefined;
  // The ids replayed from a log, while a live event may still be one of them.
  #replayed: Set<string> | undefined;
  #lastReplayed: string | undefined;

  constructor(stream: EventStream, lastId: string, options: ResumeOptions) {
    this.#stream = stream;
    this.#lastId = lastId;
    this.#options = options;
  }

  /** Resumes from the memory ring: `entries` is what it holds after the client's id, or `null`. */
  fromMemory(entries: Entry[] | null, all: Entry[]): void {
    this.#missed = entries === null;
    // Without onHistoryLost, a client the ring has lost gets its whole memory (the choice made in 0.1).
    if (entries === null && this.#options.onHistoryLost === undefined) entries = all;
    this.#lost = entries === null;
    this.#entries = entries ?? [];
    this.#writeEntries();
  }

  /** Resumes from a log: `after` is called now, and each wait for it is bounded by `historyTimeout`. */
  fromLog(history: EventHistory): void {
    const abort = new AbortController();
    this.#fromLog = true;
    this.#abort = abort;
    this.#read(history, abort.signal).then(undefined, report);
  }

  /** A live event: held while the replay is written, then written unless the client already has it. */
  offer(entry: Entry, now: number): void {
    if (!this.#finished) {
      this.#held.push(entry);
      this.heldBytes += entry.bytes.byteLength;
      return;
    }
    // Filtering, after a log's replay, until the live feed has passed it.
    const { id } = entry;
    if (id !== undefined && this.#replayed?.has(id)) {
      if (id === this.#lastReplayed) this.#done();
      return;
    }
    // An id the log did not replay: the feed is past the replay, so nothing later can be a duplicate.
    if (id !== undefined) this.#done();
    writeEntry(this.#stream, entry, now);
  }

  /** The client has read everything written: the replay goes on. */
  pull(): void {
    if (this.#entries !== undefined) this.#writeEntries();
    const room = this.#room;
    this.#room = undefined;
    room?.();
  }

  /**
   * The channel is closing: writes, now, what the client is owed and can be written at once (the rest of the memory's
   * answer, or of a log's answer that gives its events synchronously, then the held events). Anything else is left: the
   * client resumes from the last id it has.
   */
  flush(): void {
    if (this.#finishing || this.#stopped) return;
    if (this.#entries !== undefined) {
      const entries = this.#entries;
      while (this.#written < entries.length) writeEntry(this.#stream, entries[this.#written++] as Entry);
      this.#finish();
      return;
    }
    const puller = this.#puller;
    // Only between two reads of the log: a read under way is the log's to finish.
    if (puller === undefined || this.#room === undefined) return;
    for (;;) {
      const result = puller.next();
      if (isThenable(result)) {
        Promise.resolve(result).then(undefined, noop);
        return;
      }
      if (result.done) break;
      this.#replay(result.value as EventInput);
    }
    this.#abort = undefined;
    this.#finish();
  }

  /** The client has gone, or its stream ended: stop reading the log, and let go of everything. */
  stop(reason?: unknown): void {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#abort?.abort(reason);
    stopQuietly(this.#puller, reason);
    this.#room?.();
    this.#held = [];
    this.#entries = undefined;
    this.#replayed = undefined;
  }

  /** Whether the client has a page of the replay still to read: then the replay waits for it. */
  #isFull(): boolean {
    return this.#stream.unread() >= Math.min(PAGE_BYTES, this.#options.maxBufferedBytes);
  }

  /** Writes the memory ring's events, a page at a time, and finishes once they are all written. */
  #writeEntries(): void {
    const entries = this.#entries as Entry[];
    while (this.#written < entries.length && !this.#isFull())
      writeEntry(this.#stream, entries[this.#written++] as Entry);
    if (this.#written === entries.length) this.#finish();
  }

  /** Reads a log's answer as fast as the client reads it. */
  async #read(history: EventHistory, signal: AbortSignal): Promise<void> {
    try {
      // Called before the first await: `after` runs right when response() is called.
      const events = await this.#within(history.after(this.#lastId, { signal }));
      if (this.#stopped) return;
      if (events === null || events === undefined) {
        this.#lost = true;
      } else {
        const puller = pullerOf("EventChannel: history.after", events as never);
        this.#puller = puller;
        for (;;) {
          if (this.#isFull()) await new Promise<void>((resolve) => (this.#room = resolve));
          if (this.#stopped || this.#finishing) return;
          const result = await this.#within(puller.next());
          if (this.#stopped) return;
          if (result.done) break;
          this.#replay(result.value as EventInput);
        }
        // Read whole: there is nothing left for the signal to stop.
        this.#abort = undefined;
      }
    } catch (error) {
      if (this.#stopped) return;
      // What was replayed stays written; the client is then handled as one the history has lost.
      report(error, "EventChannel: the history failed");
      this.#lost = true;
      this.#abort?.abort(error);
      stopQuietly(this.#puller, error);
    }
    this.#finish();
  }

  /** Writes one event of the log for this client alone, so in its stream's own memory. */
  #replay(input: EventInput): void {
    this.#stream.writeText(encodeWith(input, this.#options.serialize, "EventChannel: history.after"));
    this.#stream.countInput(input);
    const id = typeof input === "string" ? undefined : input.id;
    if (id !== undefined) {
      this.#replayed ??= new Set();
      this.#replayed.add(String(id));
      this.#lastReplayed = String(id);
    }
  }

  /** `value`, bounded by `historyTimeout`; an answer that comes too late is stopped (cancelled, or returned). */
  #within<T>(value: T | PromiseLike<T>): Promise<T> {
    if (!isThenable(value)) return Promise.resolve(value);
    const ms = this.#options.historyTimeoutMs;
    return new Promise<T>((resolve, reject) => {
      let late = false;
      const cancel = deadline(ms, () => {
        late = true;
        reject(new Timeout(`EventChannel: the history did not answer within ${ms} ms`));
      });
      Promise.resolve(value).then(
        (answer) => {
          cancel();
          if (late || this.#stopped) stopLate(answer);
          else resolve(answer);
        },
        (error) => {
          cancel();
          if (!late) reject(error);
        },
      );
    });
  }

  /** The replay is written, or has failed: a client the history lost is told first, then the held events. */
  #finish(): void {
    if (this.#finishing) return;
    this.#finishing = true;
    if (!this.#lost) {
      this.#release(undefined);
      return;
    }
    const told = this.#tell();
    if (isThenable(told)) told.then((lost) => this.#release(lost), report);
    else this.#release(told);
  }

  /**
   * Writes the held events the client does not have, then, after a log's replay, filters live events until the feed has
   * passed it.
   */
  #release(lost: Lost | undefined): void {
    if (this.#stopped) return;
    if (lost !== undefined) {
      this.#stream.write(lost.bytes);
      this.#stream.countInput(lost.input);
    }
    const held = this.#held;
    this.#held = [];
    this.heldBytes = 0;
    this.#entries = undefined;
    this.#finished = true;
    const replayed = this.#replayed;
    // The cut, after a log's answer: the last held event the client already has (its own id, or a replayed one).
    // Everything after it is newer than anything replayed, since the live feed comes in the log's order. The memory
    // ring's answer was taken when the client came, so every held event is newer.
    let from = 0;
    let passed = false;
    if (this.#fromLog) {
      for (let index = held.length - 1; index >= 0; index--) {
        const { id } = held[index] as Entry;
        if (id === undefined) continue;
        if (id === this.#lastId || replayed?.has(id)) {
          from = index + 1;
          passed ||= id === this.#lastReplayed;
          break;
        }
        // A held event that was not replayed, after the cut: the feed is already past the replay.
        passed = true;
      }
    }
    for (let index = from; index < held.length; index++) writeEntry(this.#stream, held[index] as Entry);
    this.#options.settled(this.#lost || this.#missed);
    if (replayed === undefined || passed) this.#done();
  }

  /** The `onHistoryLost` event, encoded in the client's own memory, if there is one; its failures are reported. */
  #tell(): Lost | undefined | Promise<Lost | undefined> {
    const { onHistoryLost } = this.#options;
    if (onHistoryLost === undefined) return undefined;
    try {
      const event = onHistoryLost(this.#lastId);
      if (!isThenable(event)) return this.#encodeLost(event);
      return this.#within(event).then(
        (resolved) => this.#encodeLost(resolved),
        (error) => {
          report(error, "EventChannel: onHistoryLost failed");
          return undefined;
        },
      );
    } catch (error) {
      // The client gets live events all the same; the broken callback is the server's to fix.
      report(error, "EventChannel: onHistoryLost failed");
      return undefined;
    }
  }

  #encodeLost(event: unknown): Lost | undefined {
    if (event === undefined) return undefined;
    const where = "EventChannel: onHistoryLost";
    const input = event as EventInput;
    try {
      resumableId(where, input);
      return { input, bytes: freshBytes(encodeWith(input, this.#options.serialize, where)) };
    } catch (error) {
      report(error, where);
      return undefined;
    }
  }

  #done(): void {
    this.#replayed = undefined;
    this.#options.done();
  }
}

/** An answer that came too late for its client: a stream is cancelled, an iterator returned. */
function stopLate(answer: unknown): void {
  if (answer === null || typeof answer !== "object") return;
  try {
    stopQuietly(pullerOf("EventChannel: history.after", answer as never), new Timeout("too late"));
  } catch {
    // Not a sequence of events: there is nothing to stop.
  }
}

function stopQuietly(puller: Puller | null | undefined, reason: unknown): void {
  try {
    const stopped = puller?.stop(reason);
    if (isThenable(stopped)) stopped.then(undefined, noop);
  } catch {
    // A log that fails to stop has nothing left to tell this client.
  }
}
