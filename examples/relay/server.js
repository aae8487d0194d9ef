// @ts-check
/**
 * The relay on http://127.0.0.1:8789 (or $PORT; 0 picks a free port): `POST /chat` re-serves the stream of the
 * OpenAI-style endpoint at $UPSTREAM_URL (with `authorization: Bearer $UPSTREAM_KEY` when that is set), or, with no
 * UPSTREAM_URL, of a built-in fake that runs offline. Run it with `npm run relay`; Ctrl-C stops it.
 */
import { createServer } from "node:http";
import { toNodeHandler } from "eventsource-server/node";
import { closerOf, onShutdown } from "../shared/shutdown.js";
import { startFakeUpstream } from "./fake-upstream.js";
import { relay } from "./relay.js";

const { PORT, UPSTREAM_URL, UPSTREAM_KEY } = process.env;
const fake = UPSTREAM_URL === undefined ? await startFakeUpstream() : undefined;
const upstream = {
  url: UPSTREAM_URL ?? fake?.url ?? "",
  headers: UPSTREAM_KEY === undefined ? {} : { authorization: `Bearer ${UPSTREAM_KEY}` },
};

/** @param {Request} request */
function handle(request) {
  const { pathname } = new URL(request.url);
  if (pathname === "/chat" && request.method === "POST") return relay(request, upstream);
  if (pathname === "/chat")
    return new Response("POST a JSON chat request here\n", { status: 405, headers: { allow: "POST" } });
  return new Response("not found: POST /chat\n", { status: 404 });
}

const server = createServer(toNodeHandler(handle));
const close = closerOf(server);
server.listen(Number(PORT ?? 8789), "127.0.0.1", () => {
  const { port } = /** @type {import("node:net").AddressInfo} */ (server.address());
  console.log(`relay: POST http://127.0.0.1:${port}/chat (Ctrl-C to stop)`);
  console.log(fake === undefined ? `upstream: ${upstream.url}` : "upstream: the built-in fake (set UPSTREAM_URL)");
});

onShutdown(() => {
  fake?.stop();
  return close();
});
