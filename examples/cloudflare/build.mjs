// @ts-check
/**
 * Bundles the Worker (workerd runs JavaScript, and resolves no npm names) and turns wrangler.jsonc into Miniflare
 * options, so the dev server and the tests run what wrangler would deploy. `node build.mjs` only bundles.
 */
import { readFileSync } from "node:fs";
import { fileURLToPath, pathToFileURL } from "node:url";
import { build } from "esbuild";

const here = (/** @type {string} */ path) => fileURLToPath(new URL(path, import.meta.url));

/** The bundle, gitignored. */
export const scriptPath = here("dist/worker.js");

/**
 * wrangler.jsonc, parsed: comments and trailing commas are JSONC, the rest is JSON.
 *
 * @returns {{ main: string, compatibility_date: string, compatibility_flags?: string[], alias?: Record<string, string>,
 *   vars?: Record<string, string>, durable_objects?: { bindings: { name: string, class_name: string }[] } }}
 */
export function wranglerConfig() {
  const text = readFileSync(here("wrangler.jsonc"), "utf8")
    // A string is kept whole, so a "//" inside one is not taken for a comment.
    .replace(/"(?:\\.|[^"\\])*"|\/\/[^\n]*|\/\*[\s\S]*?\*\//g, (match) => (match.startsWith('"') ? match : ""))
    .replace(/,(\s*[}\]])/g, "$1");
  return JSON.parse(text);
}

/** Bundles `main` of wrangler.jsonc to `dist/worker.js`, with its `alias`: `eventsource-server` is this checkout's source. */
export async function bundle() {
  const config = wranglerConfig();
  await build({
    entryPoints: [here(config.main)],
    outfile: scriptPath,
    bundle: true,
    format: "esm",
    platform: "neutral",
    target: "es2022",
    // As wrangler does: "alias" maps a package name to a path relative to wrangler.jsonc.
    alias: Object.fromEntries(Object.entries(config.alias ?? {}).map(([name, path]) => [name, here(path)])),
    external: ["cloudflare:*"],
    // As wrangler's default module rules do: an imported `.html` file is a Text module, its text.
    loader: { ".html": "text" },
    sourcemap: true,
    logLevel: "warning",
  });
  return scriptPath;
}

/**
 * Miniflare options for the bundle, with the compatibility date, flags, vars and Durable Objects of wrangler.jsonc.
 *
 * @param {{ host?: string, port?: number, bindings?: Record<string, string>, persist?: string,
 *   output?: (text: string) => void }} [overrides] `bindings` win over `vars`; `persist` is a folder that keeps the
 *   Durable Objects' storage when Miniflare stops, so a new Miniflare on the same folder finds it (without it,
 *   storage lasts as long as this Miniflare); `output` receives what workerd prints (the Worker's console
 *   included) instead of this process's stdout and stderr.
 * @returns {import("miniflare").MiniflareOptions}
 */
export function miniflareOptions(overrides = {}) {
  const config = wranglerConfig();
  return {
    modules: true,
    scriptPath,
    compatibilityDate: config.compatibility_date,
    compatibilityFlags: config.compatibility_flags ?? [],
    bindings: { ...config.vars, ...overrides.bindings },
    durableObjects: Object.fromEntries(
      (config.durable_objects?.bindings ?? []).map(({ name, class_name }) => [
        name,
        { className: class_name, useSQLite: true },
      ]),
    ),
    ...(overrides.persist === undefined ? {} : { durableObjectsPersist: overrides.persist }),
    ...(overrides.output === undefined ? {} : { handleRuntimeStdio: printingTo(overrides.output) }),
    host: overrides.host ?? "127.0.0.1",
    port: overrides.port ?? 0,
  };
}

/**
 * @param {(text: string) => void} output
 * @returns {(stdout: import("node:stream").Readable, stderr: import("node:stream").Readable) => void}
 */
function printingTo(output) {
  return (stdout, stderr) => {
    for (const stream of [stdout, stderr]) stream.on("data", (/** @type {Buffer} */ chunk) => output(chunk.toString()));
  };
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  console.log(`bundled ${await bundle()}`);
}
