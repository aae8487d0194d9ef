/**
 * Every contender, used the way its README shows, with the least glue that makes it send our events.
 *
 * An adapter has `respond(source)`: a Response (or a promise of one) whose body carries the events of
 * `source`, an async iterable of `{ event, id, data }` (data a string, or an object to JSON-encode). It may
 * have `channel()`: `{ subscribe(): Promise<Response>, emit(event), close() }` for the fan-out scenario,
 * `emulated: true` when the package has no channel of its own and the glue keeps the subscriber set.
 */
import { createChannel, createResponse } from "better-sse";
import { encode } from "eventsource-encoder";
import { createEventStream, H3 } from "h3";
import { Hono } from "hono";
import { streamSSE } from "hono/streaming";

// BENCH_LIB names a private build's index.js, measured in place of dist/ (an older commit's, or a patched copy).
const lib = await import(process.env.BENCH_LIB || "eventsource-server");

const HEADERS = { "content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache" };
const textOf = (data) => (typeof data === "string" ? data : JSON.stringify(data));

/** A Fetch-style router keeps each request's source here until its handler runs. */
const sources = new Map();
let nextKey = 0;
function requestFor(source) {
  const key = String(nextKey++);
  sources.set(key, source);
  return { key, request: new Request(`http://localhost/?s=${key}`) };
}
function take(url) {
  const key = new URL(url).searchParams.get("s");
  const source = sources.get(key);
  sources.delete(key);
  return source;
}

/** A subscriber set for the peers that have no channel: the glue a user of that package would write. */
function emulatedChannel(open) {
  const subscribers = new Set();
  return {
    emulated: true,
    subscribers,
    subscribe: () => open(subscribers),
    emit(event) {
      for (const send of subscribers) send(event);
    },
    close() {
      subscribers.clear();
    },
  };
}

// ---------------------------------------------------------------- this library
const ours = {
  name: "eventsource-server",
  respond: (source) => lib.eventSourceResponse(source),
  channel() {
    if (typeof lib.EventChannel !== "function") return undefined;
    const channel = new lib.EventChannel();
    return {
      subscribe: async () => channel.response(),
      emit: (event) => channel.emit(event),
      close: () => channel.close(),
    };
  },
};

// ---------------------------------------------------------------- hono: streamSSE
const hono = new Hono();
hono.get("/", (c) => {
  const source = take(c.req.url);
  return streamSSE(c, async (stream) => {
    if (typeof source === "function") return source(stream);
    for await (const e of source) {
      if (stream.aborted) break;
      await stream.writeSSE({ event: e.event, id: e.id, data: textOf(e.data) });
    }
  });
});
const honoAdapter = {
  name: "hono streamSSE",
  respond: (source) => hono.fetch(requestFor(source).request),
  channel: () =>
    emulatedChannel(async (subscribers) => {
      // The handler keeps the stream open until the client leaves, as a hono user would.
      const response = await hono.fetch(
        requestFor((stream) => {
          const send = (e) => stream.writeSSE({ event: e.event, id: e.id, data: textOf(e.data) });
          subscribers.add(send);
          return new Promise((resolve) =>
            stream.onAbort(() => {
              subscribers.delete(send);
              resolve();
            }),
          );
        }).request,
      );
      return response;
    }),
};

// ---------------------------------------------------------------- h3 v2: createEventStream
const h3 = new H3();
h3.get("/", (event) => {
  const source = take(event.req.url);
  const stream = createEventStream(event);
  let closed = false;
  stream.onClosed(() => {
    closed = true;
  });
  if (typeof source === "function") {
    source(stream);
    return stream;
  }
  (async () => {
    for await (const e of source) {
      if (closed) break;
      await stream.push({ event: e.event, id: String(e.id), data: textOf(e.data) });
    }
    await stream.close();
  })().catch(console.error);
  return stream;
});
const h3Adapter = {
  name: "h3 createEventStream",
  respond: (source) => h3.fetch(requestFor(source).request),
  channel: () =>
    emulatedChannel((subscribers) =>
      h3.fetch(
        requestFor((stream) => {
          const send = (e) => stream.push({ event: e.event, id: String(e.id), data: textOf(e.data) });
          subscribers.add(send);
          stream.onClosed(() => subscribers.delete(send));
        }).request,
      ),
    ),
};

// ---------------------------------------------------------------- better-sse: Fetch mode
// Its default serializer JSON-encodes strings too ("hello" arrives as "\"hello\""), so strings go through as is.
const serializer = (data) => textOf(data);
const betterSse = {
  name: "better-sse (Fetch)",
  respond(source) {
    // A Fetch session ends only when its request's signal aborts: that is how the glue closes the body.
    const done = new AbortController();
    const request = new Request("http://localhost/", { signal: done.signal });
    return createResponse(request, { serializer }, async (session) => {
      try {
        for await (const e of source) {
          if (!session.isConnected) break;
          session.push(e.data, e.event, String(e.id));
        }
      } finally {
        done.abort();
      }
    });
  },
  channel() {
    const channel = createChannel();
    return {
      subscribe: () =>
        new Promise((resolve) => {
          const response = createResponse(new Request("http://localhost/"), { serializer }, (session) => {
            channel.register(session);
          });
          resolve(response);
        }),
      emit: (e) => channel.broadcast(e.data, e.event, { eventId: String(e.id) }),
      close() {},
    };
  },
};

// ---------------------------------------------------------------- eventsource-encoder + a pull-based stream
const encoderAdapter = {
  name: "eventsource-encoder + glue",
  respond(source) {
    const iterator = source[Symbol.asyncIterator]();
    const bytes = new TextEncoder();
    const body = new ReadableStream(
      {
        async pull(controller) {
          const r = await iterator.next();
          if (r.done) return controller.close();
          const e = r.value;
          controller.enqueue(bytes.encode(encode({ event: e.event, id: e.id, data: textOf(e.data) })));
        },
        cancel: () => iterator.return?.(),
      },
      { highWaterMark: 1 },
    );
    return new Response(body, { headers: HEADERS });
  },
  channel: () =>
    fanOutChannel((e) => new TextEncoder().encode(encode({ event: e.event, id: e.id, data: textOf(e.data) }))),
};

/** Subscribers are stream controllers; each emit encodes once and enqueues the same bytes to all. */
function fanOutChannel(bytesOf) {
  const controllers = new Set();
  return {
    emulated: true,
    subscribers: controllers,
    async subscribe() {
      let mine;
      const body = new ReadableStream({
        start(c) {
          mine = c;
          controllers.add(c);
        },
        cancel() {
          controllers.delete(mine);
        },
      });
      return new Response(body, { headers: HEADERS });
    },
    emit(e) {
      const chunk = bytesOf(e);
      for (const c of controllers) c.enqueue(chunk);
    },
    close() {
      for (const c of controllers) c.close();
      controllers.clear();
    },
  };
}

// ---------------------------------------------------------------- baselines
/** (a) The floor: chunks encoded before the clock starts, enqueued by one pull-based stream. */
const baselineA = {
  name: "baseline (a) pre-encoded",
  baseline: true,
  prepare: async (source) => {
    const chunks = [];
    for await (const e of source) chunks.push(templateBytes(e));
    return chunks;
  },
  respond(source, chunks) {
    let i = 0;
    const body = new ReadableStream(
      {
        async pull(controller) {
          if (chunks === undefined) return pullFrom(source, controller, (e) => templateBytes(e));
          if (i === chunks.length) controller.close();
          else controller.enqueue(chunks[i++]);
        },
        cancel: () => source[Symbol.asyncIterator]().return?.(),
      },
      { highWaterMark: 1 },
    );
    return new Response(body, { headers: HEADERS });
  },
  // `pre` maps each event id to bytes the worker encoded before the clock started
  channel: (pre) => fanOutChannel((e) => pre.get(e.id)),
  prepareFanout: (events) => new Map(events.map((e) => [e.id, templateBytes(e)])),
};

const utf8 = new TextEncoder();
function templateBytes(e) {
  return utf8.encode(template(e));
}
/** No checks at all; multi-line data is split so the output stays valid. */
function template(e) {
  const data = typeof e.data === "string" ? e.data.replaceAll("\n", "\ndata: ") : JSON.stringify(e.data);
  return `event: ${e.event}\nid: ${e.id}\ndata: ${data}\n\n`;
}
async function pullFrom(iterable, controller, bytesOf) {
  const r = await iterable[Symbol.asyncIterator]().next();
  if (r.done) controller.close();
  else controller.enqueue(bytesOf(r.value));
}

/** (b) What a hand-written endpoint does: a template string and TextEncoder.encode per event, in pull. */
const baselineB = {
  name: "baseline (b) template+encode",
  baseline: true,
  respond(source) {
    const iterator = source[Symbol.asyncIterator]();
    const body = new ReadableStream(
      {
        async pull(controller) {
          const r = await iterator.next();
          if (r.done) controller.close();
          else controller.enqueue(utf8.encode(template(r.value)));
        },
        cancel: () => iterator.return?.(),
      },
      { highWaterMark: 1 },
    );
    return new Response(body, { headers: HEADERS });
  },
  channel: () => fanOutChannel((e) => utf8.encode(template(e))),
};

export const adapters = {
  ours,
  hono: honoAdapter,
  h3: h3Adapter,
  "better-sse": betterSse,
  "eventsource-encoder": encoderAdapter,
  a: baselineA,
  b: baselineB,
};
