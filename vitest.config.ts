import { fileURLToPath } from "node:url";
import { configDefaults, defineConfig } from "vitest/config";

const source = (file: string): string => fileURLToPath(new URL(`./src/${file}`, import.meta.url));

export default defineConfig({
  resolve: {
    // Examples and tests import the package by name, as users do; here that name means this checkout's source.
    // Exact regular expressions: a string alias is a prefix, and would send "eventsource-server/node" to
    // "src/index.ts/node".
    alias: [
      { find: /^eventsource-server$/, replacement: source("index.ts") },
      { find: /^eventsource-server\/node$/, replacement: source("node.ts") },
      { find: /^eventsource-server\/redis$/, replacement: source("redis.ts") },
      { find: /^eventsource-server\/postgres$/, replacement: source("postgres.ts") },
      { find: /^eventsource-server\/cloudflare$/, replacement: source("cloudflare.ts") },
    ],
  },
  test: {
    include: ["test/**/*.test.ts"],
    // Chromium (the browser tests and the Cloudflare page), Next.js and Bun's 12 s stalled reader run only under
    // test/ci.vitest.config.ts, from .ci/run: with the last, npm test took 3 minutes on this project's shared machine.
    exclude: [
      ...configDefaults.exclude,
      "test/runtime/chromium.test.ts",
      "test/runtime/cloudflare-page.test.ts",
      "test/runtime/nextjs.test.ts",
      "test/runtime/bun-stall.test.ts",
    ],
    // undici's EventSource, a client the tests use on purpose, warns once per process that it is experimental: a
    // passing run prints nothing on stderr.
    execArgv: ["--disable-warning=UNDICI-ES"],
    // Unhandled rejections fail the run (vitest's default); never turn that off.
    dangerouslyIgnoreUnhandledErrors: false,
    // Most test files wait on sockets, child processes and timers, not on the CPU: one file at a time (vitest's
    // default on two cores) used about half a core and took 4.6 minutes; three at a time take about 2.
    maxWorkers: 3,
    testTimeout: 20_000,
    hookTimeout: 60_000,
    restoreMocks: true,
  },
});
