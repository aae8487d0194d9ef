/**
 * An event stream's body as Bun's own kind of stream, `type: "direct"`, written straight into the connection. Bun.serve
 * (1.4) reads a default stream's next chunk only once the socket takes more, so it never sees the error that should
 * drop a client who stopped reading: the connection, and its socket's send buffer (about 4 MB on Linux), stay until
 * that client leaves. A direct stream's `close(error)` drops the connection at once, with what it had not sent.
 * @module
 */
import { isThenable } from "./errors.ts";

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
 * Pumps the event stream's own body into Bun's controller, a chunk at a time: the next read only once the last chunk
 * has been taken, so a client that stops reading stops the source as before. Bun sends what was written at the end of
 * each turn of its loop, so an event does not wait for the next one. An internal class: one per open stream, on Bun.
 */
export class DirectBody {
  readonly type = "direct";
  /** The bytes written but not yet taken: the stream counts them as unread. */
  unread = 0;
  readonly #reader: ReadableStreamDefaultReader<Uint8Array>;
  #controller: DirectController | undefined;
  #closed = false;

  constructor(reader: ReadableStreamDefaultReader<Uint8Array>) {
    this.#reader = reader;
  }

  pull(controller: DirectController): Promise<void> {
    this.#controller = controller;
    return this.#pump(controller);
  }

  cancel(reason: unknown): Promise<void> {
    this.#closed = true;
    return this.#reader.cancel(reason);
  }

  /**
   * The body has failed (its client did not take its last bytes in time, or its source's `onError` threw): while a
   * chunk waits to be taken, the connection goes now; otherwise the pump's next read fails, once the chunk in hand is
   * written.
   */
  drop(error: unknown): void {
    if (this.unread > 0) this.#close(error);
  }

  /** Resolves when the body has ended: Bun.serve ends the response then. */
  async #pump(controller: DirectController): Promise<void> {
    for (;;) {
      let result: ReadableStreamReadResult<Uint8Array>;
      try {
        result = await this.#reader.read();
      } catch (error) {
        // Bun sends what was written in this turn of its loop only at its end: an error now would drop it unsent,
        // and a client whose stream failed at once would not even see the headers.
        await new Promise((resolve) => setTimeout(resolve, 0));
        this.#close(error);
        return;
      }
      if (this.#closed) return;
      if (result.done) {
        this.#close(undefined);
        return;
      }
      const chunk = result.value;
      const written = controller.write(chunk);
      if (isThenable(written)) {
        this.unread = chunk.byteLength;
        await written;
        this.unread = 0;
        if (this.#closed) return;
      }
    }
  }

  #close(error: unknown): void {
    if (this.#closed) return;
    this.#closed = true;
    const controller = this.#controller as DirectController;
    try {
      if (error === undefined) controller.close();
      // Read in JS, the reader sees the error; Bun.serve drops the connection, with whatever it had not sent.
      else if (controller.error !== undefined) controller.error(error);
      else controller.close(error);
    } catch {
      // Closed already: Bun closes it when its client leaves.
    }
  }
}
