import { Utf8Pool } from "./bytes.ts";
import { encodeWith } from "./encode.ts";
import { serializerOf } from "./options.ts";
import type { EncodeOptions, EventInput } from "./types.ts";

/**
 * A `TransformStream` that turns each event into one chunk: the UTF-8 bytes of `encodeEvent(input)`. An invalid input
 * errors the stream with the `TypeError` that `encodeEvent` would throw. Constructing it with a `serialize` that is not
 * a function throws a `TypeError`.
 * @param options `serialize` turns non-string `data` into text.
 * @default serialize JSON.stringify
 * @see https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation
 * @example Events piped into bytes, as a body
 * ```ts
 * import assert from "node:assert/strict";
 * import { EventSourceEncoderStream } from "eventsource-server";
 *
 * const events = new ReadableStream({
 *   start(controller) {
 *     controller.enqueue({ event: "greeting", data: "hello" });
 *     controller.enqueue({ data: [1, 2] });
 *     controller.close();
 *   },
 * });
 * const body = events.pipeThrough(new EventSourceEncoderStream());
 * assert.equal(await new Response(body).text(), "event: greeting\ndata: hello\n\ndata: [1,2]\n\n");
 * ```
 */
export class EventSourceEncoderStream<
  Events extends Record<string, unknown> = Record<string, unknown>,
> extends TransformStream<EventInput<Events>, Uint8Array> {
  constructor(options?: EncodeOptions) {
    const serialize = serializerOf("EventSourceEncoderStream", options);
    // Each encoder stream's chunks are in memory of its own.
    const pool = new Utf8Pool();
    super({
      transform(input, controller) {
        controller.enqueue(pool.bytes(encodeWith(input, serialize, "encodeEvent")));
      },
    });
  }
}
