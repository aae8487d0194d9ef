/**
 * The tick stream the examples serve, and the one safe reading of the number in a client's last event ID.
 *
 * Plain JavaScript with JSDoc types, so that Node runs it as it is, Deno, Bun and Next.js import it, and the
 * Worker's bundle takes it in; `examples/shared/tsconfig.json` type-checks it.
 */

/**
 * The number in a last event ID written as `String(n)` writes a safe integer (digits only, no leading zero);
 * `null` for anything else, or none.
 *
 * The id comes from the client, so it is untrusted input. `Number(id) || 0` turns a thousand 9s or `"1e400"`
 * into Infinity (an id no event can carry: every request then fails), rounds `"9007199254740993"` to its
 * neighbour (whose next id is itself, so events would share an id), and reads `"-1"`, `" 5"` and `"0x10"` as
 * counts this server never gave.
 *
 * @param {string | null} lastEventId The client's last event ID, as `lastEventId(request)` returns it.
 * @returns {number | null}
 */
export function numericId(lastEventId) {
  // At most 16 digits (every safe integer fits): a longer id is turned down before Number() reads it.
  if (lastEventId === null || !/^(?:0|[1-9]\d{0,15})$/.test(lastEventId)) return null;
  const id = Number(lastEventId);
  return Number.isSafeInteger(id) ? id : null;
}

/**
 * A `tick` event with the time every `everyMs`, numbered by `id`, and a `stats` event with JSON data every fifth
 * tick. It resumes the count after the client's last event ID (from the start when that is not a count), and
 * stops waiting the moment the stream ends.
 *
 * @param {import("eventsource-server").EventSourceContext} context The stream's `signal` and the client's
 *   `lastEventId`.
 * @param {{ everyMs?: number }} [options] `everyMs`: time between two ticks, 1000 by default.
 */
export async function* ticks({ signal, lastEventId }, { everyMs = 1_000 } = {}) {
  let id = numericId(lastEventId) ?? 0;
  const started = Date.now();
  while (!signal.aborted) {
    // Past the largest safe integer, id + 1 would equal id: the count starts over rather than repeat an id.
    id = id < Number.MAX_SAFE_INTEGER ? id + 1 : 1;
    yield { event: "tick", id, data: new Date().toISOString() };
    if (id % 5 === 0) yield { event: "stats", data: { ticks: id, uptimeMs: Date.now() - started } };
    await sleep(everyMs, signal);
  }
}

/**
 * Resolves after `ms`, or at once when `signal` aborts; either way it leaves no timer and no listener behind.
 *
 * @param {number} ms
 * @param {AbortSignal} signal
 * @returns {Promise<void>}
 */
function sleep(ms, signal) {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
  });
}
