/**
 * Server-Sent Events for any runtime that speaks the Fetch API. `eventSourceResponse(source)` turns an async iterable
 * of events into a streaming `Response`; `EventChannel` fans events emitted from anywhere out to every connected
 * client; `EventSourceEncoderStream` and `encodeEvent` are the encoder under it; `lastEventId(request)` reads where a
 * reconnecting client left off.
 * @see https://html.spec.whatwg.org/multipage/server-sent-events.html
 * @module
 */
export { EventChannel } from "./channel.ts";
export { type DrainOptions, drain } from "./drain.ts";
export { encodeEvent } from "./encode.ts";
export { EventSourceEncoderStream } from "./encoder-stream.ts";
export { lastEventId } from "./last-event-id.ts";
export { eventSourceResponse } from "./response.ts";
export type {
  EncodeOptions,
  EventChannelOptions,
  EventChannelStats,
  EventHistory,
  EventInput,
  EventLog,
  EventSourceContext,
  EventSourceResponseInit,
  EventSourceSource,
  EventStreamLike,
  ServerSentEvent,
  StreamEnd,
} from "./types.ts";
