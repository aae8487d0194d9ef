/**
 * Which runtime this is, for the few places where the same code would cost more, or do less, on one of them.
 * Each use says what it measured there.
 *
 * @module
 */

export const isBun = "Bun" in globalThis;
export const isDeno = "Deno" in globalThis;
export const isWorkerd =
  (globalThis as { navigator?: { userAgent?: string } }).navigator?.userAgent === "Cloudflare-Workers";
