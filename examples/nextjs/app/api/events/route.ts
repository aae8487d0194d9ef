import { eventSourceResponse } from "eventsource-server";
import { ticks } from "../../../../shared/ticks.js";

// No `export const dynamic = "force-dynamic"`: with cacheComponents (on in a new Next 16 app) Next rejects it, and
// a route that reads its request is dynamic without it.
export function GET(request: Request): Response {
  // `request` gives the stream its signal (the client left) and its Last-Event-ID (where to resume).
  return eventSourceResponse(ticks, { request, retry: 2_000 });
}
