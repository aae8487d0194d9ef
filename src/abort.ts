/**
 * Listening to abort signals with one listener per signal, however many streams wait on it: the natural shutdown
 * pattern gives one signal to every response, and Node warns (`MaxListenersExceededWarning`) past ten listeners on one
 * signal.
 * @module
 */
import { report } from "./errors.ts";

/** What waits for a signal: told which signal aborted. */
export interface AbortTarget {
  onAbort(signal: AbortSignal): void;
}

// One target, or several once a second one waits on the same signal: most signals (a request's) have one.
const waiting = new WeakMap<AbortSignal, AbortTarget | Set<AbortTarget>>();

// One function for every signal: no closure is made per stream or per signal.
function dispatch(event: Event): void {
  const signal = event.target as AbortSignal;
  const targets = waiting.get(signal);
  waiting.delete(signal);
  if (targets === undefined) return;
  if (!(targets instanceof Set)) {
    targets.onAbort(signal);
    return;
  }
  for (const target of targets) {
    // One stream's failure to end must not keep the others open.
    try {
      target.onAbort(signal);
    } catch (error) {
      report(error, "ending a stream when its signal aborted");
    }
  }
}

/** Calls `target.onAbort(signal)` once, when `signal` aborts. The signal must not have aborted already. */
export function listen(signal: AbortSignal, target: AbortTarget): void {
  const targets = waiting.get(signal);
  if (targets === undefined) {
    waiting.set(signal, target);
    signal.addEventListener("abort", dispatch, { once: true });
  } else if (targets instanceof Set) targets.add(target);
  else if (targets !== target) waiting.set(signal, new Set([targets, target]));
}

/** Stops waiting; the last target to go takes the signal's listener with it. */
export function unlisten(signal: AbortSignal, target: AbortTarget): void {
  const targets = waiting.get(signal);
  if (targets === undefined) return;
  if (targets instanceof Set) {
    targets.delete(target);
    if (targets.size > 0) return;
  } else if (targets !== target) return;
  waiting.delete(signal);
  signal.removeEventListener("abort", dispatch);
}

/** Duck-typed, so a signal from another realm still counts. */
export function isSignal(value: unknown): value is AbortSignal {
  return (
    value !== null &&
    typeof value === "object" &&
    typeof (value as AbortSignal).aborted === "boolean" &&
    typeof (value as AbortSignal).addEventListener === "function"
  );
}
