/**
 * Every options object of the package, checked once, before anything starts: defaults filled in, each bad value a
 * `TypeError` that names it, and each unknown key a `TypeError` that names the closest known one.
 * @module
 */
import { isSignal } from "./abort.ts";
import { checkKeys, fail, report, shown } from "./errors.ts";
import { isRequest } from "./last-event-id.ts";
import type {
  EncodeOptions,
  EventChannelOptions,
  EventHistory,
  EventInput,
  EventSourceResponseInit,
  StreamEnd,
} from "./types.ts";

export type Serialize = (data: unknown) => string;

/** Past this, timers fire at once, so a larger value would turn a timer into a busy loop. */
export const MAX_TIMER_MS = 2 ** 31 - 1;
const DEFAULT_KEEP_ALIVE_MS = 8_000;
const DEFAULT_MAX_BUFFERED_BYTES = 1024 * 1024;
const DEFAULT_HISTORY_TIMEOUT_MS = 10_000;

// ResponseInit's own keys, and those workerd adds to its ResponseInit.
const RESPONSE_INIT_KEYS = ["status", "statusText", "headers", "cf", "encodeBody", "webSocket"];
const STREAM_KEYS = ["request", "signal", "retry", "keepAlive", "serialize", "onError", "maxDuration", "onClose"];
const INIT_KEYS = [...STREAM_KEYS, ...RESPONSE_INIT_KEYS];
const ENCODE_KEYS = ["serialize"];
const CHANNEL_KEYS = ["replay", "history", "onHistoryLost", "maxBufferedBytes", "historyTimeout", "serialize"];

/** `init` of `eventSourceResponse` and `channel.response`, checked, with defaults filled in. */
export interface StreamOptions {
  request: Request | undefined;
  signal: AbortSignal | undefined;
  retry: number | undefined;
  /** 0: no heartbeat. */
  keepAliveMs: number;
  /** 0: no limit. */
  maxDurationMs: number;
  serialize: Serialize;
  onError: (error: unknown) => unknown;
  onClose: ((end: StreamEnd) => unknown) | undefined;
  responseInit: ResponseInit;
}

/** `new EventChannel(options)`, checked, with defaults filled in. */
export interface ChannelOptions {
  replay: number;
  history: EventHistory | undefined;
  onHistoryLost: ((lastEventId: string) => unknown) | undefined;
  maxBufferedBytes: number;
  historyTimeoutMs: number;
  serialize: Serialize;
}

/** True for what the wire's `retry` field can carry: a whole number of milliseconds, 0 or more. */
export function isRetry(value: unknown): value is number {
  return typeof value === "number" && Number.isSafeInteger(value) && value >= 0;
}

function isTimerMs(value: unknown, least: number): value is number {
  return typeof value === "number" && Number.isInteger(value) && value >= least && value <= MAX_TIMER_MS;
}

function checkObject(where: string, path: string, value: unknown): asserts value is object {
  if (value === null || typeof value !== "object") fail(where, `${path} must be an object, got ${shown(value)}`);
}

/** The `serialize` of an encoder's options (`encodeEvent`, the encoder stream), checked. */
export function serializerOf(where: string, options: EncodeOptions | undefined): Serialize {
  if (options === undefined) return JSON.stringify;
  checkObject(where, "options", options);
  checkKeys(where, "options", options, ENCODE_KEYS);
  return serializeOption(where, "options", options.serialize);
}

function serializeOption(where: string, path: string, serialize: unknown): Serialize {
  if (serialize === undefined) return JSON.stringify;
  if (typeof serialize !== "function") fail(where, `${path}.serialize must be a function, got ${shown(serialize)}`);
  return serialize as Serialize;
}

/** Checks a stream's `init` once, before anything starts, so a bad option throws now and not on the first read. */
export function streamOptions(where: string, init: EventSourceResponseInit | undefined): StreamOptions {
  if (init === undefined) init = {};
  checkObject(where, "init", init);
  checkKeys(where, "init", init, INIT_KEYS);
  const { request, signal, retry, keepAlive, maxDuration, serialize, onError, onClose, ...responseInit } = init;
  if (request !== undefined && !isRequest(request)) {
    fail(where, `init.request must be a Request, got ${shown(request)}`);
  }
  if (signal !== undefined && !isSignal(signal)) {
    fail(where, `init.signal must be an AbortSignal, got ${shown(signal)}`);
  }
  if (retry !== undefined && !isRetry(retry)) {
    fail(where, `init.retry must be a non-negative safe integer, got ${shown(retry)}`);
  }
  const keepAliveMs = keepAlive ?? DEFAULT_KEEP_ALIVE_MS;
  if (keepAliveMs !== false && !isTimerMs(keepAliveMs, 0)) {
    fail(where, `init.keepAlive must be false or whole ms up to ${MAX_TIMER_MS}, got ${shown(keepAliveMs)}`);
  }
  if (maxDuration !== undefined && !isTimerMs(maxDuration, 1)) {
    fail(
      where,
      `init.maxDuration must be a positive whole number of ms up to ${MAX_TIMER_MS}, got ${shown(maxDuration)}`,
    );
  }
  if (onError !== undefined && typeof onError !== "function") {
    fail(where, `init.onError must be a function, got ${shown(onError)}`);
  }
  if (onClose !== undefined && typeof onClose !== "function") {
    fail(where, `init.onClose must be a function, got ${shown(onClose)}`);
  }
  return {
    request,
    signal,
    retry,
    keepAliveMs: keepAliveMs || 0,
    maxDurationMs: maxDuration ?? 0,
    serialize: serializeOption(where, "init", serialize),
    onError: onError ?? reportSourceError,
    onClose,
    responseInit,
  };
}

/** The default `onError`: the source failed, or yielded what cannot be sent. */
function reportSourceError(error: unknown): void {
  report(error, "eventSourceResponse: the source failed");
}

/** Options people reach for on a channel that belong to each response, and where to put them instead. */
const PER_RESPONSE = [
  "keepAlive",
  "retry",
  "headers",
  "status",
  "signal",
  "request",
  "onError",
  "maxDuration",
  "onClose",
];

/** Checks `new EventChannel(options)`. */
export function channelOptions(where: string, options: EventChannelOptions | undefined): ChannelOptions {
  if (options === undefined) options = {};
  checkObject(where, "options", options);
  for (const key of Object.keys(options)) {
    if (PER_RESPONSE.includes(key))
      fail(where, `options.${key} is not an option; pass it to channel.response(request, init)`);
  }
  checkKeys(where, "options", options, CHANNEL_KEYS);
  const {
    replay = 0,
    history,
    onHistoryLost,
    maxBufferedBytes = DEFAULT_MAX_BUFFERED_BYTES,
    historyTimeout = DEFAULT_HISTORY_TIMEOUT_MS,
    serialize,
  } = options;
  if (!isRetry(replay)) fail(where, `options.replay must be a non-negative safe integer, got ${shown(replay)}`);
  if (history !== undefined && typeof (history as EventHistory | null)?.after !== "function") {
    fail(
      where,
      `options.history must be an object with an after(lastEventId, { signal }) method, got ${shown(history)}`,
    );
  }
  if (history !== undefined && replay > 0) {
    fail(where, "options.replay and options.history cannot both be set; a channel has one history");
  }
  if (onHistoryLost !== undefined && typeof onHistoryLost !== "function") {
    fail(where, `options.onHistoryLost must be a function, got ${shown(onHistoryLost)}`);
  }
  if (!(isRetry(maxBufferedBytes) && maxBufferedBytes > 0)) {
    fail(where, `options.maxBufferedBytes must be a positive safe integer, got ${shown(maxBufferedBytes)}`);
  }
  if (!isTimerMs(historyTimeout, 1)) {
    fail(
      where,
      `options.historyTimeout must be a whole number of ms from 1 to ${MAX_TIMER_MS}, got ${shown(historyTimeout)}`,
    );
  }
  return {
    replay,
    history,
    onHistoryLost: onHistoryLost as ((lastEventId: string) => EventInput | undefined) | undefined,
    maxBufferedBytes,
    historyTimeoutMs: historyTimeout,
    serialize: serializeOption(where, "options", serialize),
  };
}
