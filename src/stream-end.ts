/**
 * What `onClose` is told of a stream: counted as the stream writes, and told once, when it ends. Made only for a stream
 * that has an `onClose`, so an idle stream without one holds nothing for it.
 * @module
 */
import { isThenable, report } from "./errors.ts";
import { lastEventId } from "./last-event-id.ts";
import type { EventInput, StreamEnd } from "./types.ts";

export class Tally {
  readonly #onClose: (end: StreamEnd) => unknown;
  readonly #created = Date.now();
  #events = 0;
  #bytes = 0;
  #lastEventId: string | null;

  /** `request`'s last event ID is read now: the stream lets go of its request at the first read. */
  constructor(onClose: (end: StreamEnd) => unknown, request: Request | undefined) {
    this.#onClose = onClose;
    this.#lastEventId = request === undefined ? null : lastEventId(request);
  }

  wrote(bytes: number): void {
    this.#bytes += bytes;
  }

  /** Counts an event written: `dispatches` when it carries data or an event type. */
  counted(dispatches: boolean, id: string | undefined): void {
    if (dispatches) this.#events++;
    if (id !== undefined) this.#lastEventId = id;
  }

  countInput(input: EventInput): void {
    if (typeof input === "string") this.#events++;
    else this.counted(input.data !== undefined || input.event !== undefined, input.id?.toString());
  }

  /** Calls `onClose`; its throw or rejection is reported, and affects nothing else. */
  tell(reason: StreamEnd["reason"]): void {
    const end = {
      reason,
      events: this.#events,
      bytes: this.#bytes,
      duration: Date.now() - this.#created,
      lastEventId: this.#lastEventId,
    };
    try {
      const told = this.#onClose(end);
      if (isThenable(told)) told.then(undefined, (error) => report(error, "onClose failed"));
    } catch (error) {
      report(error, "onClose failed");
    }
  }
}
