// The runtime tests that are too slow or too heavy for `npm test`: Chromium (a real browser), Next.js (a
// production build), Bun's stalled reader (12 s of waiting), and the README's Next.js commands, as typed.
// `.ci/run` runs them with `vitest run --config test/ci.vitest.config.ts`.
import { configDefaults, defineConfig } from "vitest/config";
import base from "../vitest.config.ts";

export default defineConfig({
  ...base,
  test: {
    ...base.test,
    // Replaces the base list (mergeConfig would append to it and run every test again).
    include: [
      "test/runtime/chromium.test.ts",
      "test/runtime/cloudflare-page.test.ts",
      "test/runtime/nextjs.test.ts",
      "test/runtime/bun-stall.test.ts",
      // At issue 21's sizes (npm test runs it sized down).
      "test/runtime/hostile.test.ts",
      // Only its rows marked `ci` (the Next.js commands, as typed) run here; npm test runs the others.
      "test/runtime/commands.test.ts",
    ],
    // The base config excludes the first four from npm test.
    exclude: configDefaults.exclude,
    env: { EVENTSOURCE_SERVER_CI: "1" },
    // A Next.js production build takes about half a minute on two shared cores.
    hookTimeout: 180_000,
    // One file at a time: the browser and the Next.js build each want both cores.
    fileParallelism: false,
  },
});
