// @ts-check
/**
 * The demo behind `npm start`, on http://127.0.0.1:8787 (or $PORT; 0 picks a free port). Ctrl-C stops it.
 *
 * One `EventChannel` feeds every open tab: a `tick` every second, and a `note` each time someone publishes from
 * the page's box. Every event has an id, and the channel keeps the last 500, so a tab whose connection drops
 * (the page's Drop button asks the server to end it) reconnects by itself with `Last-Event-ID` and gets what it
 * missed before the live events: nothing lost, nothing doubled. The page shows the code below, between the
 * `served` markers, and a test checks that it shows exactly that.
 */
import { createServer } from "node:http";
import { EventChannel } from "eventsource-server";
import { toNodeHandler } from "eventsource-server/node";
import { closerOf, onShutdown } from "../shared/shutdown.js";
import { favicon, page } from "./page.js";

/** The Drop button's switches: one AbortController per open tab, by the tab's name. */
const drops = new Map();

/**
 * The signal that ends this tab's stream when its Drop button is pressed.
 *
 * @param {Request} request
 * @returns {AbortSignal | undefined}
 */
function dropSignal(request) {
  const tab = new URL(request.url).searchParams.get("tab");
  if (tab === null) return undefined;
  const controller = new AbortController();
  drops.set(tab, controller);
  // The stream is over (client gone, or dropped): forget the switch, unless a reconnect has replaced it.
  request.signal.addEventListener("abort", () => drops.get(tab) === controller && drops.delete(tab), { once: true });
  return controller.signal;
}

// #region served
const channel = new EventChannel({ replay: 500 }); // keeps the last 500 events
let lastId = 0;
/** @param {string} event @param {object} fields */
function emit(event, fields) {
  channel.emit({ event, id: String(++lastId), data: { ...fields, at: Date.now() } });
}
// Each tick carries the channel's counters: open tabs, streams opened, resumed, lost, evicted.
setInterval(() => emit("tick", channel.stats()), 1_000);

/** @param {Request} request */
async function handle(request) {
  const { pathname } = new URL(request.url);
  if (pathname === "/events") {
    // A browser that reconnects sends Last-Event-ID: the channel replays
    // what it missed, then goes live. The Drop button aborts its signal.
    return channel.response(request, { retry: 2_000, signal: dropSignal(request) });
  }
  if (pathname === "/publish" && request.method === "POST") {
    emit("note", { text: (await request.text()).slice(0, 280) });
    return new Response(null, { status: 204 });
  }
  return demoRoutes(request); // the page, its icon, the Drop button
}
// #endregion served

/**
 * Everything the page needs besides the stream and the publish box.
 *
 * @param {Request} request
 * @returns {Response}
 */
function demoRoutes(request) {
  const url = new URL(request.url);
  if (url.pathname === "/") return new Response(page, { headers: { "content-type": "text/html; charset=utf-8" } });
  if (url.pathname === "/favicon.svg" || url.pathname === "/favicon.ico") {
    return new Response(favicon, { headers: { "content-type": "image/svg+xml", "cache-control": "max-age=86400" } });
  }
  if (url.pathname === "/drop" && request.method === "POST") {
    const controller = drops.get(url.searchParams.get("tab") ?? "");
    controller?.abort();
    return new Response(null, { status: controller === undefined ? 404 : 204 });
  }
  return new Response("not found\n", { status: 404 });
}

const port = Number(process.env.PORT ?? 8787);
const server = createServer(toNodeHandler(handle));
const close = closerOf(server);
server.listen(port, "127.0.0.1", () => {
  // With PORT=0 the system picks the port, so print the one it picked.
  const { port: actual } = /** @type {import("node:net").AddressInfo} */ (server.address());
  console.log(`eventsource-server demo: http://127.0.0.1:${actual}/ (Ctrl-C to stop)`);
});

onShutdown(() => {
  console.log("stopping");
  channel.close();
  return close();
});
