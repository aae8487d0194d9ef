/**
 * Every contender as an HTTP server on the runtime that runs this file, used the way its README shows: Fetch
 * handlers on `Bun.serve` and `Deno.serve`; on Node, this library through one bridge function (`nodeListener`),
 * Hono through `@hono/node-server`, h3 through its own `serve` (srvx) everywhere, better-sse with its `node:http`
 * session on Node and its Fetch response elsewhere, and a bare baseline per runtime that writes pre-encoded bytes
 * (to the `ServerResponse` on Node, into a `ReadableStream` of the runtime's own on Bun and Deno).
 *
 * Each export takes `{ events, counters, stats }` and resolves to `{ port }` once it listens on 127.0.0.1.
 * `counters.started`/`stopped` count sources begun and finished (a generator's `finally`, a cancelled stream, a
 * closed response); `counters.subscribers` counts `GET /channel` clients.
 */
import process from "node:process";
import { COMMENT, HEADERS, news, order, small, TICK_MS, template, tick } from "./events.mjs";

export const runtime = "Bun" in globalThis ? "bun" : "Deno" in globalThis ? "deno" : "node";
const HOST = "127.0.0.1";
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const utf8 = new TextEncoder();
const bytesOf = (e) => utf8.encode(template(e));

/** An entry of this library: of its dist/, or of the private build whose index.js `BENCH_LIB` names. */
function ourEntry(name) {
  const { BENCH_LIB } = process.env;
  if (!BENCH_LIB) return name === "index" ? "eventsource-server" : `eventsource-server/${name}`;
  return new URL(`${name}.js`, new URL(BENCH_LIB, "file:///")).href;
}

/**
 * The one place that turns a Fetch handler into a `node:http` listener for this library: its own Node entry,
 * with `compress: true` for the compression scenario's routes only.
 */
async function nodeListener(handler) {
  const { toNodeHandler } = await import(ourEntry("node"));
  const plain = toNodeHandler(handler);
  const compressed = toNodeHandler(handler, { compress: true });
  return (req, res) => (req.url.startsWith("/orders") ? compressed : plain)(req, res);
}

/** Serves a Fetch handler: `Bun.serve` or `Deno.serve`, or on Node the listener `onNode` makes of it. */
async function listenFetch(fetch, onNode) {
  if (runtime === "bun") {
    // Bun closes a connection after 10 s of silence by default; an idle event stream must outlive that.
    return { port: globalThis.Bun.serve({ hostname: HOST, port: 0, idleTimeout: 0, fetch }).port };
  }
  if (runtime === "deno") {
    return new Promise((resolve) => {
      globalThis.Deno.serve({ hostname: HOST, port: 0, onListen: ({ port }) => resolve({ port }) }, fetch);
    });
  }
  return listenNode(await onNode(fetch));
}

async function listenNode(listener) {
  const { createServer } = await import("node:http");
  const server = createServer(listener);
  await new Promise((resolve) => server.listen(0, HOST, resolve));
  return { port: server.address().port };
}

/** The routes every adapter shares and that are not part of what is measured: stats and emit. */
function control(path, url, ctx, emit) {
  if (path === "/stats") return ctx.stats(url.endsWith("?quick"));
  if (path === "/emit") {
    const k = Number(url.slice(url.indexOf("?k=") + 3));
    emit(k);
    return Promise.resolve({ emitted: k, subscribers: ctx.counters.subscribers });
  }
  return undefined;
}
/** The path of a request's URL, absolute (Fetch) or not (`node:http`). */
const pathOf = (url) => {
  const start = url.startsWith("/") ? 0 : url.indexOf("/", url.indexOf("//") + 2);
  const query = url.indexOf("?", start);
  return url.slice(start, query === -1 ? undefined : query);
};

/** A Fetch handler with the control routes in front of `handle(path, request)`. */
function withControl(ctx, emit, handle) {
  return (request) => {
    const path = pathOf(request.url);
    const answer = control(path, request.url, ctx, emit);
    if (answer !== undefined) return answer.then((body) => Response.json(body));
    return handle(path, request);
  };
}

/** A source that never yields and never ends (the idle scenario's). */
const silent = () => ({
  [Symbol.asyncIterator]: () => ({
    next: () => new Promise(() => {}),
    return: async () => ({ done: true, value: undefined }),
  }),
});

// ---------------------------------------------------------------- this library
async function ours(ctx) {
  const lib = await import(ourEntry("index"));
  const { counters, events } = ctx;
  const channel = new lib.EventChannel();
  async function* stream() {
    counters.started++;
    try {
      for (let i = 0; i < events; i++) yield small(i);
    } finally {
      counters.stopped++;
    }
  }
  async function* orders() {
    for (let i = 0; i < events; i++) yield order(i);
  }
  async function* ticker() {
    counters.started++;
    try {
      for (let i = 0; ; i++) {
        yield tick(i);
        await sleep(TICK_MS);
      }
    } finally {
      counters.stopped++;
    }
  }
  const fetch = withControl(
    ctx,
    (k) => channel.emit(news(k)),
    (path, request) => {
      switch (path) {
        case "/stream":
          return lib.eventSourceResponse(stream(), { request });
        case "/channel":
          counters.subscribers++;
          return channel.response(request);
        case "/idle":
          return lib.eventSourceResponse(silent(), { request });
        case "/ticker":
          return lib.eventSourceResponse(ticker(), { request });
        case "/orders":
          return lib.eventSourceResponse(orders(), { request });
        case "/orders-idle":
          return lib.eventSourceResponse(silent(), { request });
        default:
          return new Response(null, { status: 404 });
      }
    },
  );
  return listenFetch(fetch, nodeListener);
}

// ---------------------------------------------------------------- hono: streamSSE
async function hono(ctx) {
  const { Hono } = await import("hono");
  const { streamSSE } = await import("hono/streaming");
  const { counters, events } = ctx;
  const subscribers = new Set();
  const app = new Hono();
  const aborted = (stream) => new Promise((resolve) => stream.onAbort(resolve));
  app.get("/stream", (c) =>
    streamSSE(c, async (stream) => {
      counters.started++;
      try {
        for (let i = 0; i < events && !stream.aborted; i++) await stream.writeSSE(small(i));
      } finally {
        counters.stopped++;
      }
    }),
  );
  app.get("/channel", (c) =>
    streamSSE(c, async (stream) => {
      subscribers.add(stream);
      counters.subscribers++;
      await stream.write(COMMENT);
      await aborted(stream);
      subscribers.delete(stream);
    }),
  );
  app.get("/idle", (c) =>
    streamSSE(c, async (stream) => {
      await stream.write(COMMENT);
      await aborted(stream);
    }),
  );
  app.get("/ticker", (c) =>
    streamSSE(c, async (stream) => {
      counters.started++;
      try {
        for (let i = 0; !stream.aborted; i++) {
          await stream.writeSSE(tick(i));
          await stream.sleep(TICK_MS);
        }
      } finally {
        counters.stopped++;
      }
    }),
  );
  const fetch = withControl(
    ctx,
    (k) => {
      for (const stream of subscribers) stream.writeSSE(news(k));
    },
    (_path, request) => app.fetch(request),
  );
  return listenFetch(fetch, async (handler) => {
    const { getRequestListener } = await import("@hono/node-server");
    return getRequestListener(handler);
  });
}

// ---------------------------------------------------------------- h3 v2: createEventStream, served by srvx
async function h3(ctx) {
  const { H3, createEventStream, serve } = await import("h3");
  const { counters, events } = ctx;
  const subscribers = new Set();
  const app = new H3();
  app.get("/stream", (event) => {
    const stream = createEventStream(event);
    let closed = false;
    stream.onClosed(() => {
      closed = true;
    });
    (async () => {
      counters.started++;
      try {
        for (let i = 0; i < events && !closed; i++) await stream.push(small(i));
        await stream.close();
      } finally {
        counters.stopped++;
      }
    })().catch(console.error);
    return stream;
  });
  app.get("/channel", (event) => {
    const stream = createEventStream(event);
    subscribers.add(stream);
    counters.subscribers++;
    stream.onClosed(() => subscribers.delete(stream));
    stream.pushComment("");
    return stream;
  });
  app.get("/idle", (event) => {
    const stream = createEventStream(event);
    stream.pushComment("");
    return stream;
  });
  app.get("/ticker", (event) => {
    const stream = createEventStream(event);
    let closed = false;
    counters.started++;
    stream.onClosed(() => {
      closed = true;
    });
    (async () => {
      try {
        for (let i = 0; !closed; i++) {
          await stream.push(tick(i));
          await sleep(TICK_MS);
        }
      } finally {
        counters.stopped++;
      }
    })().catch(console.error);
    return stream;
  });
  const fetch = withControl(
    ctx,
    (k) => {
      for (const stream of subscribers) stream.push(news(k));
    },
    (_path, request) => app.fetch(request),
  );
  const server = serve({ fetch }, { hostname: HOST, port: 0, silent: true, bun: { idleTimeout: 0 } });
  await server.ready();
  return { port: Number(new URL(server.url).port) };
}

// ---------------------------------------------------------------- better-sse: node:http on Node, Fetch elsewhere
async function betterSse(ctx) {
  const { createChannel, createResponse, createSession } = await import("better-sse");
  const { counters, events } = ctx;
  // Its default serializer JSON-encodes strings too, so strings go through as they are.
  const options = { serializer: (data) => data };
  const channel = createChannel();
  const routes = {
    async "/stream"(session) {
      counters.started++;
      try {
        for (let i = 0; i < events && session.isConnected; i++) {
          const e = small(i);
          session.push(e.data, e.event, e.id);
        }
      } finally {
        counters.stopped++;
      }
    },
    "/channel"(session) {
      counters.subscribers++;
      channel.register(session);
    },
    "/idle"() {},
    "/ticker"(session) {
      counters.started++;
      let i = 0;
      const push = () => {
        const e = tick(i++);
        session.push(e.data, e.event, e.id);
      };
      push();
      const timer = setInterval(push, TICK_MS);
      session.once("disconnected", () => {
        clearInterval(timer);
        counters.stopped++;
      });
    },
  };
  const emit = (k) => {
    const e = news(k);
    channel.broadcast(e.data, e.event, { eventId: e.id });
  };
  if (runtime === "node") {
    return listenNode(async (req, res) => {
      const path = pathOf(req.url);
      const answer = control(path, req.url, ctx, emit);
      if (answer !== undefined) return res.end(JSON.stringify(await answer));
      const route = routes[path];
      if (route === undefined) return res.writeHead(404).end();
      const session = await createSession(req, res, options);
      await route(session);
      if (route === routes["/stream"]) res.end();
    });
  }
  const fetch = withControl(ctx, emit, (path, request) => {
    const route = routes[path];
    if (route === undefined) return new Response(null, { status: 404 });
    if (route !== routes["/stream"]) return createResponse(request, options, route);
    // A Fetch session ends only when its request's signal aborts: that is how a finished stream ends its body.
    const done = new AbortController();
    const signal = AbortSignal.any([request.signal, done.signal]);
    return createResponse(new Request(request.url, { signal }), options, async (session) => {
      try {
        await route(session);
      } finally {
        done.abort();
      }
    });
  });
  return listenFetch(fetch);
}

// ---------------------------------------------------------------- bare baselines
async function bare(ctx) {
  const { counters, events } = ctx;
  const chunks = Array.from({ length: events }, (_, i) => bytesOf(small(i)));
  const comment = utf8.encode(COMMENT);
  const emitted = new Map();
  const bytesOfNews = (k) => {
    if (!emitted.has(k)) emitted.set(k, bytesOf(news(k)));
    return emitted.get(k);
  };
  if (runtime === "node") {
    const subscribers = new Set();
    const emit = (k) => {
      const bytes = bytesOfNews(k);
      for (const res of subscribers) res.write(bytes);
    };
    return listenNode(async (req, res) => {
      const path = pathOf(req.url);
      const answer = control(path, req.url, ctx, emit);
      if (answer !== undefined) return res.end(JSON.stringify(await answer));
      res.writeHead(200, HEADERS);
      res.write(comment);
      if (path === "/stream") {
        counters.started++;
        for (let i = 0; i < events && !res.destroyed; i++) {
          if (!res.write(chunks[i])) await new Promise((resolve) => res.once("drain", resolve).once("close", resolve));
        }
        counters.stopped++;
        res.end();
      } else if (path === "/channel") {
        counters.subscribers++;
        subscribers.add(res);
        res.once("close", () => subscribers.delete(res));
      } else if (path === "/ticker") {
        counters.started++;
        let i = 0;
        res.write(bytesOf(tick(i++)));
        const timer = setInterval(() => res.write(bytesOf(tick(i++))), TICK_MS);
        res.once("close", () => {
          clearInterval(timer);
          counters.stopped++;
        });
      }
    });
  }
  const controllers = new Set();
  const emit = (k) => {
    const bytes = bytesOfNews(k);
    for (const controller of controllers) controller.enqueue(bytes);
  };
  const streams = {
    "/stream": () => {
      let i = 0;
      return {
        start(controller) {
          counters.started++;
          controller.enqueue(comment);
        },
        pull(controller) {
          if (i < events) controller.enqueue(chunks[i++]);
          else {
            counters.stopped++;
            controller.close();
          }
        },
        cancel() {
          counters.stopped++;
        },
      };
    },
    "/channel": () => {
      let mine;
      return {
        start(controller) {
          counters.subscribers++;
          mine = controller;
          controllers.add(controller);
          controller.enqueue(comment);
        },
        cancel() {
          controllers.delete(mine);
        },
      };
    },
    "/idle": () => ({
      start(controller) {
        controller.enqueue(comment);
      },
    }),
    "/ticker": () => {
      let i = 0;
      return {
        start(controller) {
          counters.started++;
          controller.enqueue(comment);
        },
        async pull(controller) {
          if (i > 0) await sleep(TICK_MS);
          controller.enqueue(bytesOf(tick(i++)));
        },
        cancel() {
          counters.stopped++;
        },
      };
    },
  };
  const fetch = withControl(ctx, emit, (path) => {
    const underlying = streams[path];
    if (underlying === undefined) return new Response(null, { status: 404 });
    return new Response(new ReadableStream(underlying(), { highWaterMark: 1 }), { headers: HEADERS });
  });
  return listenFetch(fetch);
}

export const adapters = { ours, hono, h3, "better-sse": betterSse, bare };
