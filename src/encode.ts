/**
 * The wire format: every event this package writes is made here, as a string, with every field checked. No streams and
 * no timers, so the rules can be tested on their own.
 * @see https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation
 * @module
 */
import { fail, isThenable, messageOf, noop, shown } from "./errors.ts";
import { isRetry, type Serialize, serializerOf } from "./options.ts";
import type { EncodeOptions, EventInput } from "./types.ts";

/** Keys people reach for from other libraries, and the field that means the same here. */
const RENAMED: Readonly<Record<string, string>> = {
  type: "event",
  name: "event",
  message: "data",
  payload: "data",
  lastEventId: "id",
  comments: "comment",
};

/**
 * One event as the text a client reads, ending with the blank line that dispatches it: comment lines, `event`, `id`,
 * `retry`, then one `data:` line per line of `data` (split on CRLF, CR and LF). Throws a `TypeError` naming the field
 * for a value that cannot be written safely, an unknown key, `data` that is a thenable, and a `serialize` that throws
 * or returns no string. See docs/reference.md.
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { encodeEvent } from "eventsource-server";
 *
 * assert.equal(encodeEvent({ event: "note", id: 7, data: "two\nlines" }), "event: note\nid: 7\ndata: two\ndata: lines\n\n");
 * assert.equal(encodeEvent({ data: { ok: true } }), 'data: {"ok":true}\n\n');
 * ```
 */
export function encodeEvent(input: EventInput, options?: EncodeOptions): string {
  return encodeWith(input, serializerOf("encodeEvent", options), "encodeEvent");
}

/** `encodeEvent` with a checked serializer, for the modules that encode many events; `where` names the API in errors. */
export function encodeWith(input: EventInput, serialize: Serialize, where: string): string {
  // The most common event, a string with no line break, costs one concatenation.
  if (typeof input === "string") return `data: ${joinLines(input, "data: ")}\n\n`;
  if (!isPlainObject(input)) {
    fail(where, `input must be a string or a plain object, got ${shown(input)}`);
  }

  let event: unknown;
  let data: unknown;
  let id: unknown;
  let retry: unknown;
  let comment: unknown;
  for (const key in input) {
    const value: unknown = input[key as keyof typeof input];
    switch (key) {
      case "event":
        event = value;
        break;
      case "data":
        data = value;
        break;
      case "id":
        id = value;
        break;
      case "retry":
        retry = value;
        break;
      case "comment":
        comment = value;
        break;
      default: {
        const instead = RENAMED[key];
        const hint = instead === undefined ? "" : `; put the ${hintOf(instead)} in "${instead}"`;
        fail(where, `unknown key ${shown(key)}${hint}`);
      }
    }
  }

  if (comment !== undefined && typeof comment !== "string") {
    fail(where, `input.comment must be a string, got ${shown(comment)}`);
  }
  if (event !== undefined) {
    if (typeof event !== "string") fail(where, `input.event must be a string, got ${shown(event)}`);
    // A line break would end the field early and let the rest be read as fields of the caller's choosing.
    if (hasBreak(event, false)) {
      fail(where, `input.event must not contain CR or LF, got ${shown(event)}`);
    }
  }
  if (id !== undefined) {
    if (typeof id === "number") {
      if (!Number.isFinite(id)) fail(where, `input.id must be a string or a finite number, got ${shown(id)}`);
    } else if (typeof id !== "string") {
      fail(where, `input.id must be a string or a finite number, got ${shown(id)}`);
    } else if (hasBreak(id, true)) {
      // Clients ignore an id field that holds a NUL, so the caller's id would silently not take effect.
      fail(where, `input.id must not contain CR, LF or NUL, got ${shown(id)}`);
    }
  }
  if (retry !== undefined && !isRetry(retry)) {
    fail(where, `input.retry must be a non-negative safe integer, got ${shown(retry)}`);
  }
  // The data lines after the first "data: ", or undefined when no data line is sent.
  let body: string | undefined;
  if (data !== undefined) {
    const serialized = typeof data === "string" ? data : serializeData(data, serialize, where);
    if (typeof serialized !== "string") badSerialized(where, data, serialized);
    // JSON.stringify escapes every control character, so its text has no line break to split on.
    body = serialize === JSON.stringify && typeof data !== "string" ? serialized : joinLines(serialized, "data: ");
  } else if (event !== undefined) {
    // A client drops an event whose data buffer is empty, so a named event with no data needs one empty line.
    body = "";
  }

  // The common shapes are made by one template each: Bun encodes a string made in one step faster than one built up
  // with `+=`.
  if (comment === undefined && retry === undefined && body !== undefined) {
    if (event === undefined) return id === undefined ? `data: ${body}\n\n` : `id: ${id}\ndata: ${body}\n\n`;
    return id === undefined ? `event: ${event}\ndata: ${body}\n\n` : `event: ${event}\nid: ${id}\ndata: ${body}\n\n`;
  }
  let text = comment === undefined ? "" : `:${joinLines(comment, ":")}\n`;
  if (event !== undefined) text += `event: ${event}\n`;
  if (id !== undefined) text += `id: ${id}\n`;
  if (retry !== undefined) text += `retry: ${retry}\n`;
  if (body !== undefined) text += `data: ${body}\n`;
  return `${text}\n`;
}

/**
 * `serialize(data)`, with the two ways it goes wrong named: a promise would serialize as `{}` and send nothing of its
 * value, and an error from `serialize` (a cycle, a `BigInt`) would not say which field it came from.
 */
function serializeData(data: unknown, serialize: Serialize, where: string): unknown {
  // Only objects and functions can be thenables: a typeof test and one property read, for non-string data only.
  if (
    (typeof data === "object" || typeof data === "function") &&
    data !== null &&
    typeof (data as { then?: unknown }).then === "function"
  ) {
    fail(where, "input.data must not be a promise or another thenable; await it before sending the event");
  }
  try {
    return serialize(data);
  } catch (error) {
    fail(where, `input.data could not be serialized: ${messageOf(error)}`, { cause: error });
  }
}

function badSerialized(where: string, data: unknown, serialized: unknown): never {
  if (isThenable(serialized)) {
    // emit never awaits, so the promise is dropped: its rejection must not become an unhandled one.
    Promise.resolve(serialized).then(noop, noop);
    fail(where, "serialize returned a promise; it must return a string synchronously");
  }
  if (serialized === undefined && (typeof data === "function" || typeof data === "symbol")) {
    fail(
      where,
      `input.data must be a string or a value serialize can write, got ${shown(data)}; send its result instead`,
    );
  }
  // JSON.stringify gives undefined for what JSON cannot hold (a toJSON that returns nothing, say): say what was given.
  const hint = serialized === undefined ? ` for ${shown(data)}; make serialize return a string for it` : "";
  fail(where, `input.data must serialize to a string, got ${shown(serialized)}${hint}`);
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (value === null || typeof value !== "object") return false;
  const proto: unknown = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

/**
 * True when `value` holds a CR or LF, or with `nul` a NUL. A short field is scanned in one pass, since on Bun each
 * `includes` call costs more than the whole scan of an event name or id; a long one is left to the native search.
 */
function hasBreak(value: string, nul: boolean): boolean {
  if (value.length > 64) return value.includes("\n") || value.includes("\r") || (nul && value.includes("\0"));
  for (let i = 0; i < value.length; i++) {
    const code = value.charCodeAt(i);
    if (code <= 13 && (code === 10 || code === 13 || (nul && code === 0))) return true;
  }
  return false;
}

function hintOf(field: string): string {
  return field === "event" ? "event type" : field;
}

/**
 * `value` with `prefix` after each line break, every CRLF and CR made LF, as clients read them: put after a first
 * `prefix` and followed by LF, each line of `value` becomes one field line.
 */
function joinLines(value: string, prefix: string): string {
  // includes() scans natively: a string with no line break needs no regex, no array and no loop.
  if (!value.includes("\r")) {
    if (!value.includes("\n")) return value;
  } else {
    // CRLF must come first in the alternation, or "a\r\nb" reaches the client as "a\n\nb".
    value = value.replace(/\r\n?/g, "\n");
  }
  // One native replaceAll makes a flat string; joining line by line would build a rope of slices.
  return value.replaceAll("\n", `\n${prefix}`);
}
