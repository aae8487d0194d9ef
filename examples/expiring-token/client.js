// @ts-check
/**
 * A client of server.js: the `eventsource` package, asking for a fresh token before each connection, so that its
 * reconnects carry credentials that are still valid along with the Last-Event-ID it sends by itself. Run it:
 * `node examples/expiring-token/client.js http://127.0.0.1:8796`. The code between the `recipe` markers is in
 * docs/recipes.md, byte for byte.
 */
// #region recipe
import { EventSource } from "eventsource";

/**
 * An EventSource whose every connection, the first and each reconnect, sends `authorization: Bearer <token>` with a
 * token fresh from `getToken`.
 *
 * @param {string | URL} url The stream.
 * @param {() => Promise<string>} getToken Called before each connection.
 */
export function authorizedEventSource(url, getToken) {
  return new EventSource(url, {
    fetch: async (input, init) =>
      fetch(input, { ...init, headers: { ...init?.headers, authorization: `Bearer ${await getToken()}` } }),
  });
}
// #endregion recipe

// Run as a command (not imported): print each tick, and each token asked for.
if (process.argv[1] === import.meta.filename) {
  const origin = process.argv[2] ?? "http://127.0.0.1:8796";
  const source = authorizedEventSource(`${origin}/events`, async () => {
    const { token, expiresAt } = await (await fetch(`${origin}/token`, { method: "POST" })).json();
    console.log(`connecting with a token valid until ${new Date(expiresAt).toISOString()}`);
    return token;
  });
  source.addEventListener("tick", (event) => console.log(`tick ${event.lastEventId} ${event.data}`));
  source.addEventListener("error", () => {
    if (source.readyState === EventSource.CLOSED) console.error("refused: the server did not take the token");
  });
}
