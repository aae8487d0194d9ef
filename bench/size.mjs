/**
 * Bundle size as a user pays it: esbuild, tree-shaken imports of the built package, minified, then gzipped.
 * `node bench/size.mjs` prints the table on its own.
 */
import { gzipSync } from "node:zlib";
import { build } from "esbuild";

const ENTRIES = [
  { name: "eventSourceResponse alone", code: 'export { eventSourceResponse } from "eventsource-server";' },
  { name: "the whole package", code: 'export * from "eventsource-server";' },
  {
    name: "hono streamSSE (for scale; with the Hono app)",
    code: 'export { Hono } from "hono"; export { streamSSE } from "hono/streaming";',
  },
  { name: "better-sse (for scale)", code: 'export * from "better-sse";', platform: "node" },
  { name: "eventsource-encoder (for scale)", code: 'export { encode } from "eventsource-encoder";' },
];

export async function measureSizes(root) {
  const sizes = [];
  // A private build under test (BENCH_LIB) is measured in place of the package's dist/.
  const ours = process.env.BENCH_LIB || "eventsource-server";
  for (const entry of ENTRIES) {
    try {
      const result = await build({
        stdin: {
          contents: entry.code.replace('"eventsource-server"', JSON.stringify(ours)),
          resolveDir: root,
          loader: "js",
        },
        bundle: true,
        minify: true,
        treeShaking: true,
        format: "esm",
        platform: entry.platform ?? "neutral",
        mainFields: ["module", "main"],
        write: false,
        logLevel: "silent",
      });
      const bytes = result.outputFiles[0].contents;
      sizes.push({ name: entry.name, min: bytes.byteLength, gzip: gzipSync(bytes, { level: 9 }).byteLength });
    } catch (error) {
      sizes.push({ name: entry.name, min: Number.NaN, gzip: Number.NaN, error: String(error).slice(0, 200) });
    }
  }
  return sizes;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { fileURLToPath } = await import("node:url");
  const root = fileURLToPath(new URL("..", import.meta.url));
  for (const s of await measureSizes(root)) process.stdout.write(`${s.name}: ${s.min} B min, ${s.gzip} B gzip\n`);
}
