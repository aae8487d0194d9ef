// @ts-check
/**
 * The smallest correct bridge from `node:http` to a Fetch handler, for servers that have no Fetch adapter of
 * their own. It does the three things an event stream needs from a bridge:
 * - it sends the headers at once (`flushHeaders`), before the first body byte;
 * - it writes each chunk as it comes, and waits for `drain` when the socket is full, so a slow client slows
 *   the source instead of filling memory;
 * - it cancels the body when the connection closes early, so the source's clean-up runs; the request's
 *   `signal` aborts too.
 */
import { Readable } from "node:stream";

/**
 * Wraps a Fetch handler as a `node:http` request listener.
 *
 * @param {(request: Request) => Response | Promise<Response>} handler
 * @returns {(req: import("node:http").IncomingMessage, res: import("node:http").ServerResponse) => Promise<void>}
 */
export function toNodeListener(handler) {
  return async (req, res) => {
    const gone = new AbortController();
    res.once("close", () => gone.abort());
    let response;
    try {
      response = await handler(toRequest(req, gone.signal));
    } catch (error) {
      console.error(error);
      res.writeHead(500).end();
      return;
    }
    res.statusCode = response.status;
    res.statusMessage = response.statusText;
    for (const [name, value] of response.headers) if (name !== "set-cookie") res.setHeader(name, value);
    const cookies = response.headers.getSetCookie();
    if (cookies.length > 0) res.setHeader("set-cookie", cookies);
    res.flushHeaders();
    if (response.body === null) {
      res.end();
      return;
    }
    await pipeBody(response.body, res);
  };
}

/**
 * @param {import("node:http").IncomingMessage} req
 * @param {AbortSignal} signal
 */
function toRequest(req, signal) {
  const url = new URL(req.url ?? "/", `http://${req.headers.host ?? "localhost"}`);
  const headers = new Headers();
  for (const [name, value] of Object.entries(req.headers)) {
    if (Array.isArray(value)) for (const one of value) headers.append(name, one);
    else if (value !== undefined) headers.set(name, value);
  }
  const hasBody = req.method !== "GET" && req.method !== "HEAD";
  return new Request(url, {
    method: req.method ?? "GET",
    headers,
    signal,
    ...(hasBody ? { body: /** @type {ReadableStream} */ (Readable.toWeb(req)), duplex: "half" } : {}),
  });
}

/**
 * @param {ReadableStream<Uint8Array>} body
 * @param {import("node:http").ServerResponse} res
 */
async function pipeBody(body, res) {
  const reader = body.getReader();
  // The client left: cancelling the body is what tells the source to stop.
  const onClose = () => {
    reader.cancel().catch(() => {});
  };
  res.once("close", onClose);
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done || res.destroyed) break;
      if (!res.write(value)) await drained(res);
    }
  } catch (error) {
    // The body errored (its source's onError threw): end the response abruptly, as the stream did.
    console.error(error);
    res.destroy();
    return;
  } finally {
    res.off("close", onClose);
  }
  res.end();
}

/** @param {import("node:http").ServerResponse} res */
function drained(res) {
  return new Promise((resolve) => {
    const done = () => {
      res.off("drain", done);
      res.off("close", done);
      resolve(undefined);
    };
    res.on("drain", done);
    res.on("close", done);
  });
}
