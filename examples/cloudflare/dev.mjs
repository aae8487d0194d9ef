// @ts-check
/**
 * Runs the Worker locally in Miniflare (workerd) on http://127.0.0.1:8787, or $PORT: `node examples/cloudflare/dev.mjs`.
 * Ctrl-C stops it.
 */
import { Miniflare } from "miniflare";
import { bundle, miniflareOptions } from "./build.mjs";

await bundle();
const mf = new Miniflare(miniflareOptions({ port: Number(process.env.PORT ?? 8787) }));
const url = await mf.ready;
console.log(`Worker on ${url}`);
console.log(`  curl -N ${url}ticks`);
console.log(`  curl -N ${url}rooms/lobby/events`);
console.log(`  curl -d 'hello' ${url}rooms/lobby/publish`);

for (const signal of /** @type {const} */ (["SIGINT", "SIGTERM"])) {
  process.once(signal, () => {
    mf.dispose().then(
      () => process.exit(0),
      (error) => {
        console.error(error);
        process.exit(1);
      },
    );
  });
}
