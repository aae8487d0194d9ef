/**
 * The one way this package builds a `TypeError`, so every message reads the same:
 * `<api>: <what is wrong>, got <value>`, with an optional `; <the fix>`. `options.cause` keeps the error that
 * led to this one.
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
