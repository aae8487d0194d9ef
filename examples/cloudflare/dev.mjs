// @ts-check
/**
 * Runs the Worker locally in Miniflare (workerd) on http://127.0.0.1:8787, or $PORT: `node examples/cloudflare/dev.mjs`.
 * Ctrl-C stops it. The rooms' storage is kept in .wrangler/state (where `wrangler dev` keeps it), so a room's history
 * outlives a restart of this server too.
 */
import { fileURLToPath } from "node:url";
import { Miniflare } from "miniflare";
import { onShutdown } from "../shared/shutdown.js";
import { bundle, miniflareOptions } from "./build.mjs";

await bundle();
const persist = fileURLToPath(new URL(".wrangler/state/v3/do", import.meta.url));
const mf = new Miniflare(miniflareOptions({ port: Number(process.env.PORT ?? 8787), persist }));
const url = await mf.ready;
console.log(`Worker on ${url} (open it in a browser)`);
console.log(`  curl -N ${url}ticks`);
console.log(`  curl -N ${url}rooms/lobby/events`);
console.log(`  curl -d 'hello' ${url}rooms/lobby/publish`);
onShutdown(() => mf.dispose());
