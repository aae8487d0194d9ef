/**
 * The sinks a stream of this package is handed off to on HTTP/1 (see handoff.ts): its bytes go to the `ServerResponse`
 * itself, with no body read in between.
 * @module
 */
import type { ServerResponse } from "node:http";
import type { Socket } from "node:net";
import { report } from "../errors.ts";
import { type Sink, UNREAD_GRACE_MS } from "../handoff.ts";
import { writableLengthIsExact } from "../runtime.ts";
import { broken, emitter, ended, firstOf, isHttp2 } from "./ending.ts";
import type { NodeResponse } from "./response.ts";

/** Whether a stream may be handed off to `res`: HTTP/1 responses whose unsent bytes Node counts. */
export function canHandOff(res: NodeResponse): res is ServerResponse {
  return !isHttp2(res) && writableLengthIsExact;
}

/** A channel subscriber's bytes written to an HTTP/1 response: its unread bytes are those Node still holds. */
export class ResponseSink implements Sink {
  readonly res: ServerResponse;
  readonly #socket: Socket | null;
  constructor(res: ServerResponse) {
    this.res = res;
    this.#socket = res.socket;
  }
  write(chunk: Uint8Array): void {
    // The client may have gone a moment before its close event ends the subscription.
    if (!this.res.destroyed) this.res.write(chunk);
  }
  end(): void {
    void ended(this.res, this.#socket, UNREAD_GRACE_MS, false);
  }
  fail(error: unknown): void {
    report(error, "sendResponse: the body failed");
    // After what was written in this turn of the loop has gone out, as in pump.
    setImmediate(broken, this.res);
  }
  unread(): number {
    return this.res.writableLength;
  }
  full(): boolean {
    return this.res.writableNeedDrain;
  }
}

/**
 * A source's bytes, pulled by its stream as fast as the client takes them: what one turn of the loop produced goes out
 * as one write at its end, so a source that yields at once costs one chunk of the response per turn instead of one
 * per event (each a chunk header, the bytes and a CRLF through the socket's stream), and no event waits past its turn.
 */
export class TurnSink extends ResponseSink {
  readonly #held: Uint8Array[] = [];
  #heldBytes = 0;
  override write(chunk: Uint8Array): void {
    if (this.res.destroyed) return;
    if (this.#heldBytes === 0) process.nextTick(flushTurn, this);
    this.#held.push(chunk);
    this.#heldBytes += chunk.byteLength;
  }
  /** Writes what this turn held back, as one chunk. */
  flush(): void {
    const held = this.#held;
    if (held.length === 0) return;
    const bytes = held.length === 1 ? (held[0] as Uint8Array) : Buffer.concat(held, this.#heldBytes);
    held.length = 0;
    this.#heldBytes = 0;
    super.write(bytes);
  }
  override end(): void {
    this.flush();
    super.end();
  }
  override fail(error: unknown): void {
    this.flush();
    super.fail(error);
  }
  override unread(): number {
    return this.res.writableLength + this.#heldBytes;
  }
  override full(): boolean {
    return this.res.writableNeedDrain || this.unread() >= this.res.writableHighWaterMark;
  }
}

function flushTurn(sink: TurnSink): void {
  sink.flush();
}

/** Waits for the end of a stream handed off to `res`, telling it each time the socket drains. */
export async function whileHandedOff(res: NodeResponse, onDrain: () => void): Promise<void> {
  emitter(res).on("drain", onDrain);
  await firstOf(res, ["finish", "close"]);
  emitter(res).off("drain", onDrain);
}
