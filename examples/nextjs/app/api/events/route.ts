import { type EventSourceContext, eventSourceResponse } from "eventsource-server";

// Every request is a new stream: never prerender or cache this route.
export const dynamic = "force-dynamic";

/**
 * A `tick` event with the time every second, and a `stats` event with JSON data every fifth tick. It resumes
 * the count after the client's last event ID, and stops waiting the moment the client leaves.
 */
async function* ticks({ signal, lastEventId }: EventSourceContext) {
  let id = Number(lastEventId) || 0;
  const started = Date.now();
  while (!signal.aborted) {
    id += 1;
    yield { event: "tick", id, data: new Date().toISOString() };
    if (id % 5 === 0) yield { event: "stats", data: { ticks: id, uptimeMs: Date.now() - started } };
    await sleep(1_000, signal);
  }
}

/** Waits `ms`, or less if `signal` aborts first. */
function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
  });
}

export function GET(request: Request): Response {
  // `request` gives the stream its signal (the client left) and its Last-Event-ID (where to resume).
  return eventSourceResponse(ticks, { request, retry: 2_000 });
}
