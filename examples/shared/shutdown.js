/**
 * The one way the examples stop on Ctrl-C or SIGTERM, on Node, Bun and Deno alike (each has `process`).
 *
 * An event stream never ends by itself, so a server that waits for its open requests to finish waits for every
 * client to leave: whatever stops an example must end its open streams too.
 */

/**
 * On the first SIGINT (Ctrl-C) or SIGTERM, runs `stop`, then exits: with 0 once it has finished, or with 1 after
 * printing why it failed. A second signal while `stop` runs ends the process at once.
 *
 * @param {() => unknown} stop Ends the open streams and closes the server; may return a promise.
 */
export function onShutdown(stop) {
  const shutdown = () => {
    // From here on a signal gets the runtime's default: a second Ctrl-C ends a stop that hangs.
    process.off("SIGINT", shutdown);
    process.off("SIGTERM", shutdown);
    Promise.resolve()
      .then(stop)
      .then(
        () => process.exit(0),
        (error) => {
          console.error(error);
          process.exit(1);
        },
      );
  };
  process.on("SIGINT", shutdown);
  process.on("SIGTERM", shutdown);
}

/**
 * A `stop` for a `node:http` or `node:http2` server: it stops accepting connections, destroys the open ones,
 * and resolves once the server has closed (at once, if `server.close()` was called already). Tracking the
 * sockets works for both (an HTTP/2 server has no `closeAllConnections()`), so call it before the server
 * listens, to see every connection.
 *
 * @param {import("node:net").Server} server
 * @returns {() => Promise<void>}
 */
export function closerOf(server) {
  /** @type {Set<import("node:net").Socket>} */
  const sockets = new Set();
  server.on("connection", (/** @type {import("node:net").Socket} */ socket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
  });
  return () =>
    new Promise((resolve, reject) => {
      if (server.listening) server.close((error) => (error ? reject(error) : resolve()));
      else resolve();
      for (const socket of sockets) socket.destroy();
    });
}
