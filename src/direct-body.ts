/**
 * An event stream's body as Bun's own kind of stream, `type: "direct"`, written straight into the connection. Bun.serve
 * (1.4) reads a default stream's next chunk only once the socket takes more, so it never sees the error that should
 * drop a client who stopped reading: the connection, and its socket's send buffer (about 4 MB on Linux), stay until
 * that client leaves. A direct stream's `close(error)` drops the connection at once, with what it had not sent.
 * @module
 */
import { isThenable, noop } from "./errors.ts";
import { type HandOff, type Sink, UNREAD_GRACE_MS, unreadError } from "./handoff.ts";
import { deadline } from "./keep-alive.ts";

/**
 * What Bun hands a direct stream's `pull`, once: Bun.serve's connection, or a buffer when the body is read in JS (which
 * has `error`). Either's `write` returns a promise while what it holds has not been taken (by the socket, by a read).
 */
interface DirectController {
  write(chunk: Uint8Array): unknown;
  close(error?: unknown): void;
  error?: ((error: unknown) => void) | undefined;
}

/**
 * How much a source's stream writes before it waits for Bun to take it: a body read in JS then gets several events per
 * read rather than one, and yet a reader that stops reading stops the source within a few events (the contract's
 * pull-driven rule), and a stalled client holds no more than this in Bun's buffers.
 */
const PENDING_WRITES = 4;
const PENDING_BYTES = 16 * 1024;

/**
 * The sink of an event stream on Bun: a source's stream writes each event straight into Bun's controller, with no body
 * read in between; any other stream's body is read and written a chunk at a time. Bun sends what was written at the
 * end of each turn of its loop, so an event does not wait for the next one. An internal class: one per open stream, on
 * Bun.
 */
export class DirectBody implements Sink {
  readonly type = "direct";
  /** The bytes written but not yet taken: the stream counts them as unread. */
  pending = 0;
  /** The writes whose bytes have not been taken yet. */
  #writes = 0;
  readonly #stream: HandOff;
  readonly #body: ReadableStream<Uint8Array>;
  /** Made only when the body is read here: a source's stream, handed off, never is. */
  #reader: ReadableStreamDefaultReader<Uint8Array> | undefined;
  #controller!: DirectController;
  #closed = false;
  /** Set by `end()` while bytes are pending: the response ends once they are taken, or is dropped 5 s later. */
  #ending: (() => void) | undefined;
  /** Resolves `pull`'s promise, which Bun reads as the end of the body. */
  #done: (() => void) | undefined;

  constructor(stream: HandOff, body: ReadableStream<Uint8Array>) {
    this.#stream = stream;
    this.#body = body;
  }

  pull(controller: DirectController): Promise<void> {
    this.#controller = controller;
    return new Promise((resolve) => {
      this.#done = resolve;
      void this.#pump();
    });
  }

  cancel(reason: unknown): Promise<void> {
    this.#finish();
    return (this.#reader ?? this.#body).cancel(reason);
  }

  /**
   * The body has failed (its client did not take its last bytes in time, or its source's `onError` threw): while a
   * chunk waits to be taken, the connection goes now; otherwise the pump's next read fails, once the chunk in hand is
   * written.
   */
  drop(error: unknown): void {
    if (this.pending > 0) this.#close(error);
  }

  write(chunk: Uint8Array): void {
    if (this.#closed) return;
    const written = this.#controller.write(chunk);
    if (!isThenable(written)) return;
    const bytes = chunk.byteLength;
    this.pending += bytes;
    this.#writes += 1;
    written.then(() => this.#taken(bytes), noop);
  }

  end(): void {
    if (this.pending === 0) {
      this.#close(undefined);
      return;
    }
    this.#ending = deadline(UNREAD_GRACE_MS, () => this.drop(unreadError()));
  }

  fail(error: unknown): void {
    // Bun sends what was written in this turn of its loop only at its end: an error now would drop it unsent, and a
    // client whose stream failed at once would not even see the headers.
    setTimeout(() => this.#close(error), 0);
  }

  unread(): number {
    return this.pending;
  }

  full(): boolean {
    return this.#writes >= PENDING_WRITES || this.pending >= PENDING_BYTES;
  }

  #taken(bytes: number): void {
    this.pending -= bytes;
    this.#writes -= 1;
    if (this.pending > 0 || this.#closed) return;
    if (this.#ending !== undefined) this.#close(undefined);
    else this.#stream.drained();
  }

  /**
   * Hands a source's stream off before its first read: it then writes while fewer than `PENDING_WRITES` writes and
   * `PENDING_BYTES` bytes are pending. Any other stream (a channel subscriber, written to whatever its backlog) is read
   * here a chunk at a time, each once the last one has been taken: Bun copies what it is given, so a subscriber written
   * straight into Bun would hold up to its channel's cap there, per stalled client, outside the heap.
   */
  async #pump(): Promise<void> {
    if (this.#stream.handOff(this)) return;
    const reader = this.#body.getReader();
    this.#reader = reader;
    while (!this.#closed) {
      let result: ReadableStreamReadResult<Uint8Array>;
      try {
        result = await reader.read();
      } catch (error) {
        this.fail(error);
        return;
      }
      if (this.#closed) return;
      if (result.done) {
        this.#close(undefined);
        return;
      }
      const chunk = result.value;
      const written = this.#controller.write(chunk);
      if (isThenable(written)) {
        this.pending = chunk.byteLength;
        await written;
        this.pending = 0;
      }
    }
  }

  #close(error: unknown): void {
    if (this.#closed) return;
    const controller = this.#controller;
    this.#finish();
    try {
      if (error === undefined) controller.close();
      // Read in JS, the reader sees the error; Bun.serve drops the connection, with whatever it had not sent.
      else if (controller.error !== undefined) controller.error(error);
      else controller.close(error);
    } catch {
      // Closed already: Bun closes it when its client leaves.
    }
  }

  #finish(): void {
    this.#closed = true;
    this.#ending?.();
    this.#done?.();
  }
}
