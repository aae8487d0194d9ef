import { fail, shown } from "./errors.ts";

/**
 * The last event ID a reconnecting client sent: the `Last-Event-ID` header, else the `lastEventId` query
 * parameter (what EventSource polyfills send when they cannot set headers), else `null`.
 *
 * An empty value counts as absent, since a client never sends an empty last event ID. Throws a `TypeError`
 * when `request` is not a `Request`.
 *
 * @param request The incoming request.
 * @returns The client's last event ID, or `null`.
 * @see https://html.spec.whatwg.org/multipage/server-sent-events.html#the-last-event-id-header
 *
 * @example Read the header, or the query parameter
 * ```ts
 * import assert from "node:assert/strict";
 * import { lastEventId } from "eventsource-server";
 *
 * assert.equal(lastEventId(new Request("http://x/", { headers: { "last-event-id": "41" } })), "41");
 * assert.equal(lastEventId(new Request("http://x/?lastEventId=42")), "42");
 * assert.equal(lastEventId(new Request("http://x/")), null);
 * ```
 */
export function lastEventId(request: Request): string | null {
  if (!isRequest(request)) fail("lastEventId", `request must be a Request, got ${shown(request)}`);
  const header = request.headers.get("last-event-id");
  if (header) return header;
  // Parsing the URL costs more than the header look-up, so only polyfills' requests pay for it.
  if (!request.url.includes("lastEventId=")) return null;
  return new URL(request.url).searchParams.get("lastEventId") || null;
}

/** Duck-typed, so a `Request` from another realm or a framework's own class still counts. */
export function isRequest(value: unknown): value is Request {
  if (value === null || typeof value !== "object") return false;
  const { headers, url } = value as Request;
  return typeof url === "string" && typeof headers?.get === "function";
}
