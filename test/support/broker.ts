/**
 * examples/broker and examples/postgres as the tests run them: bundled once per test file with the package name mapped
 * to this checkout's source (no build, never a stale dist/), then started as real Node processes, one per instance.
 */
import { build } from "esbuild";
import { bundleExample, PACKAGE_ALIAS, RESULTS, ROOT, type Running, startServer } from "../runtime/harness.ts";

/** Bundles examples/broker/server.js into test-results/<name>.mjs; redis stays external (from node_modules). */
export async function bundleBroker(name: string): Promise<string> {
  const outfile = `${RESULTS}${name}.mjs`;
  await build({
    entryPoints: [`${ROOT}examples/broker/server.js`],
    bundle: true,
    platform: "node",
    format: "esm",
    outfile,
    external: ["redis"],
    alias: PACKAGE_ALIAS,
    logLevel: "silent",
  });
  return outfile;
}

/** The example's settings, as its environment variables. */
export interface BrokerEnv {
  REDIS_URL: string;
  STREAM: string;
  PORT?: string;
  MAXLEN?: string;
  RETRY_MS?: string;
  MAX_DURATION_MS?: string;
}

/**
 * Starts one instance and resolves once it prints its URL, which it does only after its feed knows where the
 * stream ends: an entry added after that reaches its channel.
 */
export function startBroker(bundle: string, env: BrokerEnv): Promise<Running> {
  return startServer(process.execPath, [bundle], { env: { PORT: "0", ...env } as Record<string, string> });
}

/** Bundles examples/postgres/server.js into test-results/<name>.mjs; pg stays external (from node_modules). */
export function bundlePostgresExample(name: string): Promise<string> {
  return bundleExample("examples/postgres/server.js", name, ["pg"]);
}

/** The postgres example's settings, as its environment variables. */
export interface PostgresExampleEnv {
  DATABASE_URL: string;
  TOPIC: string;
  PORT?: string;
  KEEP?: string;
  RETRY_MS?: string;
}

/** Starts one instance of examples/postgres; resolves once it prints its URL, after setup() and feed(). */
export function startPostgresExample(bundle: string, env: PostgresExampleEnv): Promise<Running> {
  return startServer(process.execPath, [bundle], { env: { PORT: "0", ...env } as Record<string, string> });
}
