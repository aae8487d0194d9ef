import { fail, shown } from "./errors.ts";

/**
 * The last event ID a reconnecting client sent: the `Last-Event-ID` header, else the `lastEventId` query parameter
 * (what EventSource polyfills send when they cannot set headers), else `null`. An empty value counts as absent, since a
 * client never sends an empty last event ID. Browsers send a non-ASCII id in the header as UTF-8 bytes, which `Headers`
 * shows one character per byte: a header whose bytes are valid UTF-8 is decoded, so an id such as `"café ☕"` comes back
 * equal to itself; any other value (Node's clients send Latin-1) is kept as it is. Throws a `TypeError` when `request`
 * is not a `Request`.
 * @param request The incoming request.
 * @returns The client's last event ID, or `null`.
 * @see https://html.spec.whatwg.org/multipage/server-sent-events.html#the-last-event-id-header
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { lastEventId } from "eventsource-server";
 *
 * assert.equal(lastEventId(new Request("http://localhost/", { headers: { "last-event-id": "41" } })), "41");
 * assert.equal(lastEventId(new Request("http://localhost/?lastEventId=41")), "41");
 * assert.equal(lastEventId(new Request("http://localhost/")), null);
 * ```
 */
export function lastEventId(request: Request): string | null {
  if (!isRequest(request)) fail("lastEventId", `request must be a Request, got ${shown(request)}`);
  const header = request.headers.get("last-event-id");
  if (header) return NON_ASCII.test(header) ? fromUtf8Bytes(header) : header;
  // Parsing the URL costs more than the header look-up, so only polyfills' requests pay for it.
  if (!request.url.includes("lastEventId=")) return null;
  return new URL(request.url).searchParams.get("lastEventId") || null;
}

const NON_ASCII = /[^\p{ASCII}]/u;
const strictUtf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/**
 * A header value reaches us one character per byte. A browser sends a non-ASCII id as its UTF-8 bytes, so those are
 * decoded; a value that is not valid UTF-8 (Node's clients send Latin-1) is kept byte for byte.
 */
function fromUtf8Bytes(value: string): string {
  const bytes = new Uint8Array(value.length);
  for (let index = 0; index < value.length; index++) {
    const code = value.charCodeAt(index);
    // A Headers object holds byte strings only; anything wider did not come off the wire.
    if (code > 0xff) return value;
    bytes[index] = code;
  }
  try {
    return strictUtf8.decode(bytes);
  } catch {
    return value;
  }
}

/** Duck-typed, so a `Request` from another realm or a framework's own class still counts. */
export function isRequest(value: unknown): value is Request {
  if (value === null || typeof value !== "object") return false;
  const { headers, url } = value as Request;
  return typeof url === "string" && typeof headers?.get === "function";
}
