/**
 * A Cloudflare Worker that sends Server-Sent Events.
 *
 * - `GET /`: a page that explains the example and shows a room live, with a box to publish into it.
 * - `GET /ticks`: a `tick` event every `TICK_MS`, numbered by `id`; a client that reconnects with
 *   `Last-Event-ID: 41` continues at 42. `GET /ticks/stats` counts the tick streams open and closed in this isolate.
 * - `GET /rooms/:room/events`: the room's events; a client that reconnects with `Last-Event-ID` first gets what
 *   it missed, from the room's storage, even after the room's object restarted. `POST /rooms/:room/publish` sends
 *   the body (JSON, or else text) to everyone in the room. `GET /rooms/:room/subscribers` says how many are
 *   listening. `POST /rooms/:room/restart` restarts the room's object, to watch its clients resume. Each room is one
 *   Durable Object.
 *
 * workerd never cancels a response body when its client disconnects. With the compatibility flag
 * `enable_request_signal`, `request.signal` aborts instead, when the next write (a heartbeat, at the latest)
 * meets the closed connection; passing `request` is what lets the stream notice.
 */
import { DurableObject } from "cloudflare:workers";
import { EventChannel, type EventLog, type EventSourceContext, eventSourceResponse } from "eventsource-server";
import { durableObjectLog } from "eventsource-server/cloudflare";
import { ticks } from "../../shared/ticks.js";
// A Text module: wrangler imports `.html` files as their text, and build.mjs does the same.
import page from "./page.html";

export interface Env {
  ROOMS: DurableObjectNamespace<Room>;
  /** Silence (ms) before a heartbeat comment. */
  KEEP_ALIVE_MS: string;
  /** Time (ms) between two ticks. */
  TICK_MS: string;
  /** Events each room keeps in its storage for clients that reconnect. */
  HISTORY_LIMIT: string;
}

/** Tick streams of this isolate: per isolate, so only good for a demo and its tests. */
const stats = { open: 0, closed: 0 };

export default {
  async fetch(request, env): Promise<Response> {
    const url = new URL(request.url);
    if (request.method === "GET" && url.pathname === "/") {
      const html = page.replaceAll("{{HISTORY_LIMIT}}", String(Number(env.HISTORY_LIMIT)));
      return new Response(html, { headers: { "content-type": "text/html; charset=utf-8" } });
    }
    if (request.method === "GET" && url.pathname === "/ticks") {
      const everyMs = millisecondsOf(env.TICK_MS, "TICK_MS");
      return eventSourceResponse((context) => countedTicks(context, everyMs), {
        request,
        retry: 2_000,
        keepAlive: millisecondsOf(env.KEEP_ALIVE_MS, "KEEP_ALIVE_MS"),
      });
    }
    if (request.method === "GET" && url.pathname === "/ticks/stats") return Response.json(stats);

    const route = /^\/rooms\/([^/]+)\/(events|publish|subscribers|restart)$/.exec(url.pathname);
    if (route === null) return new Response("not found\n", { status: 404 });
    const [, name = "", action] = route;
    const room = env.ROOMS.getByName(decodeURIComponent(name));
    if (action === "events" && request.method === "GET") return room.fetch(request);
    if (action === "subscribers" && request.method === "GET") {
      return Response.json({ subscribers: await room.subscribers() });
    }
    if (action === "publish" && request.method === "POST") {
      const id = await room.publish(await dataOf(request));
      return Response.json({ id }, { status: 201 });
    }
    if (action === "restart" && request.method === "POST") {
      await room.restart();
      return Response.json({ restarting: true }, { status: 202 });
    }
    return new Response("method not allowed\n", { status: 405 });
  },
} satisfies ExportedHandler<Env>;

// #region room
/**
 * One room: every subscriber gets every published event. Its recent events live in the object's storage, so a
 * client that reconnects with `Last-Event-ID` gets what it missed even when the object has restarted in between
 * (evicted, deployed, crashed, or `POST /rooms/:room/restart`).
 */
export class Room extends DurableObject<Env> {
  readonly #log: EventLog;
  readonly #channel: EventChannel;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    // The room's log, in the object's storage: the newest HISTORY_LIMIT events, and the last id given, so ids go on
    // from where the last object stopped.
    this.#log = durableObjectLog(ctx.storage, { keep: Number(env.HISTORY_LIMIT) });
    this.#channel = new EventChannel({
      history: this.#log,
      // The client's id is older than the room keeps: it missed an unknown number of events, so it is told to
      // start over, and then gets live events. (No id: its next reconnect, before a live event, is told again.)
      onHistoryLost: (lastEventId) => ({ event: "reset", data: { lastEventId } }),
    });
    this.#log.feed(this.#channel);
  }

  /** The room's event stream for one subscriber. */
  override fetch(request: Request): Response {
    return this.#channel.response(request, {
      retry: 2_000,
      keepAlive: millisecondsOf(this.env.KEEP_ALIVE_MS, "KEEP_ALIVE_MS"),
    });
  }

  /**
   * Stores `data` as the next event, then sends it to every subscriber as a `message` event; returns its id. In that
   * order (the log's publish does both): every event a client has received is in the log it resumes from.
   */
  publish(data: unknown): Promise<string> {
    return this.#log.publish({ data });
  }

  /** How many streams are open. */
  subscribers(): number {
    return this.#channel.subscribers;
  }

  /**
   * Throws this object away, as an eviction or a deploy would: its streams end and its clients reconnect to a new
   * one, which resumes them from storage. Here so the page and the tests can show it; leave it out of a real room.
   */
  restart(): void {
    // After this call has answered: an abort inside the call would fail the call, and workerd would log it as an
    // uncaught exception. abort() throws, to stop whatever code called it; here that is the end of this timer.
    setTimeout(() => {
      try {
        this.ctx.abort("restarted on request");
      } catch {}
    }, 0);
  }
}
// #endregion room

/** The examples' ticks, one every `everyMs`, counted in `stats` while their stream is open. */
async function* countedTicks(context: EventSourceContext, everyMs: number) {
  stats.open += 1;
  try {
    yield* ticks(context, { everyMs });
  } finally {
    // Runs when the client leaves: on workerd, when the next heartbeat meets the closed connection.
    stats.open -= 1;
    stats.closed += 1;
  }
}

/** The published event's data: the parsed body when it is JSON, else its text. */
async function dataOf(request: Request): Promise<unknown> {
  const text = await request.text();
  return request.headers.get("content-type")?.startsWith("application/json") ? JSON.parse(text) : text;
}

function millisecondsOf(value: string, name: string): number {
  const ms = Number(value);
  if (!Number.isSafeInteger(ms) || ms < 0) throw new Error(`${name} must be whole milliseconds, got ${value}`);
  return ms;
}
