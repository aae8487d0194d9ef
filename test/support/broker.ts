/**
 * examples/broker as the tests run it: bundled once per test file with the package name mapped to this
 * checkout's source (no build, never a stale dist/), then started as real Node processes, one per instance.
 */
import { build } from "esbuild";
import { RESULTS, ROOT, type Running, startServer } from "../runtime/harness.ts";

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
    alias: { "eventsource-server": `${ROOT}src/index.ts` },
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
