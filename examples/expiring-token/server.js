// @ts-check
/**
 * A stream that ends before its credentials do, on http://127.0.0.1:8796 (or $PORT; 0 picks a free port): `POST
 * /token` issues a token, valid for TOKEN_TTL_MS (10 s by default, short so that you see it happen), and `GET /events`
 * with `authorization: Bearer <token>` gets a tick every TICK_MS (default 1 s) until the token has almost run out; the
 * client then reconnects with a fresh token and resumes from its Last-Event-ID. Run it with `npm run example:token`;
 * Ctrl-C stops it. The code between the `recipe` markers is in docs/recipes.md, byte for byte.
 */
import { createServer } from "node:http";
import { EventChannel } from "eventsource-server";
import { toNodeHandler } from "eventsource-server/node";

const { PORT, TOKEN_TTL_MS, TICK_MS } = process.env;

const channel = new EventChannel({ replay: 1_000 });
let lastId = 0;
const ticker = setInterval(
  () => channel.emit({ event: "tick", id: String(++lastId), data: new Date().toISOString() }),
  Number(TICK_MS ?? 1_000),
);

// A token is its expiry (ms since the epoch) and an HMAC of it, under a key this process makes. An app would use
// its own, a JWT say, whose `exp` is in seconds: `exp * 1_000` is the same expiry.
const key = await crypto.subtle.generateKey({ name: "HMAC", hash: "SHA-256" }, false, ["sign", "verify"]);
const encoder = new TextEncoder();

/** @param {number} ttlMs */
async function issueToken(ttlMs) {
  const expiresAt = Date.now() + ttlMs;
  const mac = await crypto.subtle.sign("HMAC", key, encoder.encode(String(expiresAt)));
  return { token: `${expiresAt}.${Buffer.from(mac).toString("base64url")}`, expiresAt };
}

// #region recipe
/**
 * When the token expires, in ms since the epoch; null if it is not one of ours.
 *
 * @param {string} token
 */
async function expiryOf(token) {
  const [expiresAt = "", mac = ""] = token.split(".");
  const signed = await crypto.subtle.verify("HMAC", key, Buffer.from(mac, "base64url"), encoder.encode(expiresAt));
  return signed ? Number(expiresAt) : null;
}

/** @param {Request} request */
async function events(request) {
  const token = /^Bearer (\S+)$/i.exec(request.headers.get("authorization") ?? "")?.[1];
  const expiresAt = token === undefined ? null : await expiryOf(token);
  // maxDuration takes whole ms from 1 to 2147483647 (about 24.8 days); a longer-lived token is cut to that.
  const left = Math.min(Math.floor((expiresAt ?? 0) - Date.now()), 2_147_483_647);
  if (left < 1) {
    return new Response("the token is missing, invalid or expired\n", {
      status: 401,
      headers: { "www-authenticate": 'Bearer error="invalid_token"' },
    });
  }
  // The stream ends between 0.9 and 1 times `left` after its first read, which comes at once: before the token
  // expires, and spread over its last tenth, so that clients whose tokens were issued together do not come back
  // together. The client reconnects with a fresh token, and the channel replays what it missed.
  return channel.response(request, { maxDuration: left, retry: 1_000 });
}
// #endregion recipe

/** @param {Request} request */
async function handle(request) {
  const { pathname } = new URL(request.url);
  if (pathname === "/events") return events(request);
  if (pathname === "/token" && request.method === "POST") {
    // Anyone gets one here; an app issues it to the signed-in user (from the session cookie), or its auth server does.
    return Response.json(await issueToken(Number(TOKEN_TTL_MS ?? 10_000)));
  }
  return new Response("not found: GET /events, POST /token\n", { status: 404 });
}

const server = createServer(toNodeHandler(handle));
server.listen(Number(PORT ?? 8796), "127.0.0.1", () => {
  const { port } = /** @type {import("node:net").AddressInfo} */ (server.address());
  console.log(`expiring-token example: http://127.0.0.1:${port}/events (Ctrl-C to stop)`);
});

for (const signal of /** @type {const} */ (["SIGINT", "SIGTERM"])) {
  process.once(signal, () => {
    clearInterval(ticker);
    server.close(() => process.exit(0));
    // Open event streams never end by themselves; close their connections so close() can finish.
    server.closeAllConnections();
  });
}
