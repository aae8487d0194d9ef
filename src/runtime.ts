/**
 * What differs between the runtimes this package runs on, each as a named capability with the versions it was checked
 * on. Every other module asks these questions, never which runtime this is.
 * @module
 */

const isBun = "Bun" in globalThis;
const isDeno = "Deno" in globalThis;
const isWorkerd = (globalThis as { navigator?: { userAgent?: string } }).navigator?.userAgent === "Cloudflare-Workers";

/**
 * Whether `request.signal` aborting means that the client left. Deno (2.x, checked on 2.9) also aborts it after a
 * response has finished normally, its legacy behaviour, and warns once per process when a handler reads it: there the
 * body's cancel is what tells of a client leaving.
 */
export const requestSignalMeansClientLeft = !isDeno;

/**
 * Whether a response body is best a `type: "direct"` stream (see direct-body.ts). Bun.serve (1.4) reads any other body
 * only when the socket takes more, so it never sees the error that drops a client who stopped reading.
 */
export const bodiesAreDirect = isBun;

/**
 * Whether a `Request`'s signal follows the signal it was made with only while the `Request` is alive. undici (Node 20
 * to 24) holds that link weakly, so a listener must keep the `Request`; Bun's (1.4) `Request.signal` is the very signal
 * it was made with, and keeping the `Request` would only keep its headers alive.
 */
export const requestSignalNeedsItsRequest = !isBun;

/**
 * Whether one timer may serve the streams of many requests. workerd ties a timer, like a stream, to the request that
 * made it: a shared timer would write into other requests' streams (an error there) and die with the first.
 */
export const timersOutliveTheirRequest = !isWorkerd;

/**
 * Whether a fresh `ArrayBuffer` per chunk costs more than the chunk's own work, so chunks are cut from a slab. Node (20
 * to 24) and Deno (2.9) back every buffer outside the heap, at about 1 µs each; Bun's (1.4) `TextEncoder.encode` is
 * faster than any copy, and workerd gains little.
 */
export const freshBuffersAreDear = !isBun && !isWorkerd;

/**
 * Whether Node's `ServerResponse` reports its unsent bytes in `writableLength`, which a channel's cap then reads after
 * a hand-off. Node's own does; the `node:http` of Bun (1.4) and Deno (2.9) count them in their own ways.
 */
export const writableLengthIsExact = !isBun && !isDeno;
