/**
 * Test-only routes that every runtime test mounts next to its example, so a real client can be told exactly
 * when the server produces an event and can learn when a source's `finally` has run. Web APIs only: the same
 * file runs on Node (through the bridge), Deno, Bun and Next.js.
 *
 * - `GET /probe/gated?key=K`: one `step` event (id 1, 2, …) per `POST /probe/release?key=K`, nothing before;
 *   its `finally` marks K cleaned.
 * - `GET /probe/cleaned?key=K`: answers `cleaned K` once K's `finally` has run (a long poll: no polling loop).
 * - `GET /probe/text`: a multi-line unicode `message` event and a named JSON event, then silence.
 * - `GET /probe/resume`: two events with ids after the client's last event ID, then the body ends, so the
 *   client reconnects (after `retry: 20`) with `Last-Event-ID`.
 * - `GET /probe/flood?key=K`: 64 KiB events as fast as they are read; `GET /probe/produced?key=K` counts them.
 * - `GET /probe/closing?key=K`: as `gated`, with an `onClose` that keeps each end; `GET /probe/ended?key=K`
 *   answers them as JSON once there is one (a long poll).
 * - `GET /probe/utf8-id`: one event with the id `UTF8_ID`, then the body ends; the reconnecting client gets an
 *   event whose data is the `Last-Event-ID` the server read (`lastEventId` decodes a browser's UTF-8 bytes).
 * - `GET /probe/read-in-js`: in the server's own runtime, a body of 1,000 events that a source yields at once, read
 *   whole by `getReader()`, and a body read once and then no more; answers `{ reads, text, advanced }` as JSON, where
 *   `advanced` counts the second body's source advances 100 ms after its one read.
 */
import { eventSourceResponse, type StreamEnd } from "eventsource-server";

/** Data with CRLF, CR, LF, a trailing LF, astral and combining characters: what must reach clients exactly. */
export const UNICODE_DATA = "zeile 1\r\nлиния 2\rライン 3 😀\né e\u0301 ✓\n";
/** What a conforming client makes of `UNICODE_DATA`: every CR and CRLF becomes LF. */
export const UNICODE_SEEN = "zeile 1\nлиния 2\nライン 3 😀\né e\u0301 ✓\n";
export const JSON_DATA = { city: "Zürich", emoji: "🚀", list: [1, 2, 3] };
export const FLOOD_EVENT_BYTES = 64 * 1024;
/** An id a browser sends back as UTF-8 bytes. */
export const UTF8_ID = "café ☕ 42";

interface Gate {
  credits: number;
  wake: (() => void) | undefined;
  cleaned: boolean;
  onCleaned: (() => void)[];
  produced: number;
  ends: StreamEnd[];
}

// On globalThis, because Next.js bundles each route on its own: module state is not shared between routes.
const store = globalThis as typeof globalThis & { eventsourceServerProbe?: Map<string, Gate> };
const gates: Map<string, Gate> = store.eventsourceServerProbe ?? new Map();
store.eventsourceServerProbe = gates;

function gate(key: string): Gate {
  let found = gates.get(key);
  if (found === undefined) {
    found = { credits: 0, wake: undefined, cleaned: false, onCleaned: [], produced: 0, ends: [] };
    gates.set(key, found);
  }
  return found;
}

function markCleaned(g: Gate): void {
  g.cleaned = true;
  for (const notify of g.onCleaned.splice(0)) notify();
}

/** Resolves when a release is available (and takes it), or when `signal` aborts (false). */
async function released(g: Gate, signal: AbortSignal): Promise<boolean> {
  while (g.credits === 0) {
    if (signal.aborted) return false;
    await new Promise<void>((resolve) => {
      const done = (): void => {
        signal.removeEventListener("abort", done);
        g.wake = undefined;
        resolve();
      };
      g.wake = done;
      signal.addEventListener("abort", done, { once: true });
    });
  }
  g.credits -= 1;
  return true;
}

function untilAborted(signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) resolve();
    else signal.addEventListener("abort", () => resolve(), { once: true });
  });
}

/** Answers a `/probe/…` request, or returns `undefined` for any other path. */
export function probe(request: Request): Response | Promise<Response> | undefined {
  const url = new URL(request.url);
  if (!url.pathname.startsWith("/probe/")) return undefined;
  const key = url.searchParams.get("key") ?? "";
  switch (url.pathname) {
    case "/probe/gated":
    case "/probe/closing": {
      const g = gate(key);
      const onClose =
        url.pathname === "/probe/closing"
          ? (end: StreamEnd) => {
              g.ends.push(end);
              markCleaned(g);
            }
          : undefined;
      return eventSourceResponse(
        async function* ({ signal }) {
          try {
            for (let id = 1; await released(g, signal); id++) {
              g.produced = id;
              yield { event: "step", id, data: `step ${id}` };
            }
          } finally {
            markCleaned(g);
          }
        },
        // No heartbeat: on runtimes that hold the headers until the first body byte, only the library's first
        // chunk can open the client before the first event.
        { request, keepAlive: false, onClose },
      );
    }
    case "/probe/ended": {
      const g = gate(key);
      const answer = () => Response.json(g.ends);
      if (g.ends.length > 0) return answer();
      return new Promise((resolve) => g.onCleaned.push(() => resolve(answer())));
    }
    case "/probe/release": {
      const g = gate(key);
      g.credits += 1;
      g.wake?.();
      return new Response(null, { status: 204 });
    }
    case "/probe/cleaned": {
      const g = gate(key);
      const body = `cleaned ${key}\n`;
      if (g.cleaned) return new Response(body);
      return new Promise((resolve) => g.onCleaned.push(() => resolve(new Response(body))));
    }
    case "/probe/produced":
      return new Response(String(gate(key).produced));
    case "/probe/text":
      return eventSourceResponse(
        async function* ({ signal }) {
          yield UNICODE_DATA;
          yield { event: "json", data: JSON_DATA };
          await untilAborted(signal);
        },
        { request },
      );
    case "/probe/resume":
      return eventSourceResponse(
        function* ({ lastEventId }) {
          const after = Number(lastEventId ?? 0);
          for (let id = after + 1; id <= after + 2; id++) {
            yield { event: "resume", id, data: `after ${lastEventId ?? "none"}` };
          }
        },
        { request, retry: 20 },
      );
    case "/probe/utf8-id":
      return eventSourceResponse(
        function* ({ lastEventId }) {
          if (lastEventId === null) yield { event: "id", id: UTF8_ID, data: "first visit" };
          else yield { event: "id", data: `resumed after ${lastEventId}` };
        },
        { request, retry: 20 },
      );
    case "/probe/flood": {
      const g = gate(key);
      const filler = "x".repeat(FLOOD_EVENT_BYTES);
      return eventSourceResponse(
        async function* () {
          try {
            for (;;) {
              g.produced += 1;
              yield { id: g.produced, data: filler };
              // A task boundary per event: a bridge that ignores backpressure then floods memory slowly enough
              // for the test, in the same process, to see it and fail, instead of starving the event loop.
              await new Promise((resolve) => setTimeout(resolve, 0));
            }
          } finally {
            markCleaned(g);
          }
        },
        { request },
      );
    }
    case "/probe/read-in-js":
      return readInJs();
    default:
      return new Response("no such probe\n", { status: 404 });
  }
}

async function readInJs(): Promise<Response> {
  const events = Array.from({ length: 1_000 }, (_, i) => ({ id: String(i), data: `event ${i}` }));
  const reader = (eventSourceResponse(events).body as ReadableStream<Uint8Array>).getReader();
  const decoder = new TextDecoder();
  let text = "";
  let reads = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    reads += 1;
    text += decoder.decode(value, { stream: true });
  }
  let advanced = 0;
  const stalled = eventSourceResponse(
    (function* () {
      for (let i = 0; ; i++) {
        advanced += 1;
        yield { data: `event ${i}` };
      }
    })(),
    { keepAlive: false },
  ).body as ReadableStream<Uint8Array>;
  const stalledReader = stalled.getReader();
  await stalledReader.read();
  await new Promise((resolve) => setTimeout(resolve, 100));
  await stalledReader.cancel();
  return Response.json({ reads, text, advanced });
}
