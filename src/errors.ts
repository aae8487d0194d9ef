/**
 * The one way this package builds a `TypeError`, so every message reads the same: `<api>: <what is wrong>, got
 * <value>`, with an optional `; <the fix>`. `options.cause` keeps the error that led to this one.
 */
export function fail(where: string, problem: string, options?: ErrorOptions): never {
  throw new TypeError(`${where}: ${problem}`, options);
}

/** A value as an error message may show it: strings quoted and clipped, objects never opened. */
export function shown(value: unknown): string {
  if (typeof value === "string") {
    // JSON.stringify escapes CR, LF and NUL, so a bad character can be seen in the message.
    const quoted = JSON.stringify(value);
    return quoted.length > 40 ? `${quoted.slice(0, 39)}…` : quoted;
  }
  if (typeof value === "function") return "a function";
  if (typeof value === "bigint") return `${value}n`;
  if (typeof value === "symbol") return "a symbol";
  if (Array.isArray(value)) return "an array";
  if (value !== null && typeof value === "object") return "an object";
  return String(value);
}

/** What an error says, for a message of ours that wraps it. */
export function messageOf(error: unknown): string {
  return error instanceof Error ? error.message || error.name : shown(error);
}

/**
 * Fails for the first own key of `object` that is not in `known`, naming the closest known one: a misspelt option would
 * otherwise be ignored without a word.
 */
export function checkKeys(where: string, path: string, object: object, known: readonly string[]): void {
  for (const key of Object.keys(object)) {
    if (!known.includes(key)) {
      fail(where, `${path}.${key} is not an option; did you mean ${JSON.stringify(closest(key, known))}?`);
    }
  }
}

/** The word of `words` fewest single-character edits away from `word` (Levenshtein), ignoring case. */
function closest(word: string, words: readonly string[]): string {
  let best = words[0] ?? "";
  let bestDistance = Number.POSITIVE_INFINITY;
  for (const candidate of words) {
    const distance = editDistance(word.toLowerCase(), candidate.toLowerCase());
    if (distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  return best;
}

function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, index) => index);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      const substitution = (previous[j - 1] as number) + (a[i - 1] === b[j - 1] ? 0 : 1);
      current[j] = Math.min((previous[j] as number) + 1, (current[j - 1] as number) + 1, substitution);
    }
    previous = current;
  }
  return previous[b.length] as number;
}

/** Identical reports within this long of a printed one are counted, and summed up in one line when it is over. */
const STORM_MS = 1_000;
// Each line printed in the last STORM_MS, and how many identical reports have come since.
const recent = new Map<string, number>();

/**
 * Where every failure that has no caller to go to is reported: one line saying what failed and where (the error's
 * first stack frame), never a stack trace, so a source that fails on every request cannot flood the log. Identical
 * lines within a second of a printed one are counted, and their count printed once the second is over.
 */
export function report(error: unknown, what = "eventsource-server"): void {
  const line = `${what}: ${described(error)}`;
  const repeats = recent.get(line);
  if (repeats !== undefined) {
    recent.set(line, repeats + 1);
    return;
  }
  recent.set(line, 0);
  console.error(line);
  const timer = setTimeout(() => {
    const more = recent.get(line) ?? 0;
    recent.delete(line);
    if (more > 0) console.error(`${line} (and ${more} more times within ${STORM_MS / 1_000} s)`);
  }, STORM_MS);
  // A summary to come must not keep a process alive that has nothing else to do.
  (timer as { unref?(): void }).unref?.();
}

/** An error as one line: its name and message, and the first frame of its stack (duck-typed: any realm's Error). */
function described(error: unknown): string {
  const { name, message, stack } = (error ?? {}) as Partial<Error>;
  if (typeof message !== "string") return typeof error === "string" ? error : String(error);
  const frame = stack
    ?.split("\n")
    .find((line) => line.trimStart().startsWith("at "))
    ?.trim();
  const text = `${name ?? "Error"}: ${message.split("\n", 1)[0]}`;
  return frame === undefined ? text : `${text} (${frame})`;
}

export function isThenable(value: unknown): value is PromiseLike<unknown> {
  return typeof (value as PromiseLike<unknown> | null)?.then === "function";
}

export function noop(): void {}
