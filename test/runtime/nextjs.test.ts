/**
 * Next.js: examples/nextjs built for production (`next build`) and served by `next start`, twice: with
 * cacheComponents on (a new Next 16 app's config) and off. Read by the `eventsource` package (the probe routes,
 * switched on by EVENTSOURCE_SERVER_PROBE=1), by fetch with an independent parser (the demo route, hostile last
 * event IDs included), and by Chromium (the demo page). Run by test/ci.vitest.config.ts only.
 */
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { EventSource } from "eventsource";
import type { Browser } from "playwright-core";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import {
  clientScenarios,
  connectWith,
  demoScenario,
  freePort,
  hostileIdsScenario,
  launchChromium,
  RESULTS,
  ROOT,
  type Running,
  startServer,
  within,
} from "./harness.ts";

// Too slow for `npm test`: only test/ci.vitest.config.ts, which sets this, runs it. Anywhere else the whole file is
// reported as skipped, never as passed.
const { EVENTSOURCE_SERVER_CI } = process.env;
describe.runIf(EVENTSOURCE_SERVER_CI === "1")("nextjs (test/ci.vitest.config.ts)", () => {
  const app = `${ROOT}examples/nextjs/`;
  const next = `${app}node_modules/next/dist/bin/next`;

  let browser: Browser | undefined;
  beforeAll(async () => {
    if (!existsSync(next)) throw new Error(`Next.js is not installed: run \`npm ci\` in ${app}`);
    browser = await launchChromium();
  });
  afterAll(async () => {
    await browser?.close();
  });

  // One build each, one after the other into the same .next/: cacheComponents on, as create-next-app writes a new
  // Next 16 app (which rejects `export const dynamic`), and off, as an app from before it.
  for (const cacheComponents of [true, false]) {
    const label = cacheComponents ? "next (cacheComponents)" : "next";
    const env = { NEXT_TELEMETRY_DISABLED: "1", CACHE_COMPONENTS: cacheComponents ? "1" : "0" };

    describe(`built with cacheComponents ${cacheComponents ? "on, as in a new app" : "off"}`, () => {
      let server: Running | undefined;
      const origin = (): string => {
        if (server === undefined) throw new Error("next start did not start");
        return server.origin;
      };

      beforeAll(async () => {
        // Build what is in the checkout now, so the test never serves a stale .next/.
        const build = spawn(process.execPath, [next, "build"], {
          cwd: app,
          env: { ...process.env, ...env },
          stdio: "pipe",
        });
        let log = "";
        build.stdout.on("data", (chunk: Buffer) => (log += chunk));
        build.stderr.on("data", (chunk: Buffer) => (log += chunk));
        try {
          const code = await within(
            new Promise<number | null>((resolve) => build.once("exit", resolve)),
            170_000,
            "next build",
          );
          if (code !== 0) throw new Error(`next build failed (${code}):\n${log}`);
        } finally {
          build.kill("SIGKILL");
        }
        // The example's config as Next reads it: a warning about it would be one a new app's owner sees too.
        expect(log).not.toMatch(/⚠.*(config|cacheComponents|partialPrefetching|dynamic)/i);
        const port = String(await freePort());
        server = await startServer(process.execPath, [next, "start", "-H", "127.0.0.1", "-p", port], {
          cwd: app,
          env: { ...env, EVENTSOURCE_SERVER_PROBE: "1" },
        });
      });
      afterAll(async () => {
        await server?.stop();
      });

      describe("next start, read by the eventsource package", () => {
        clientScenarios(label, origin, connectWith(EventSource));
        demoScenario(`${label} demo`, origin, "/api/events");
        hostileIdsScenario(
          `${label} demo`,
          { url: () => `${origin()}/api/events`, countsFromOne: true },
          () => server?.stderr.seen ?? [],
        );

        test(`${label}: the stream is not compressed, even for a client that accepts gzip`, async () => {
          const response = await fetch(`${origin()}/api/events`, { headers: { "accept-encoding": "gzip, br" } });
          try {
            expect(response.headers.get("content-type")).toBe("text/event-stream; charset=utf-8");
            expect(response.headers.get("content-encoding")).toBeNull();
          } finally {
            await response.body?.cancel();
          }
        });
      });

      test(`${label}: the demo page in Chromium shows live tick events from the route handler`, async () => {
        if (browser === undefined) throw new Error("Chromium did not start");
        const page = await browser.newPage({ viewport: { width: 800, height: 500 } });
        try {
          await page.goto(`${origin()}/`);
          await page.waitForFunction(() => document.getElementById("status")?.textContent === "open", null, {
            timeout: 15_000,
          });
          await page.waitForFunction(() => Number(document.getElementById("count")?.textContent) >= 2, null, {
            timeout: 10_000,
          });
          const items = await page.locator("#events li").allTextContents();
          expect(items.length).toBeGreaterThanOrEqual(2);
          expect(items[0]).toMatch(/^(tick #\d+|stats): /);
          expect(items.some((item) => /^tick #\d+: \d{4}-\d\d-\d\dT/.test(item))).toBe(true);
          if (cacheComponents) await page.screenshot({ path: `${RESULTS}nextjs-demo.png` });
        } finally {
          await page.close();
        }
      });
    });
  }
});
