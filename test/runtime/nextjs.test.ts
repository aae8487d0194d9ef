/**
 * Next.js: examples/nextjs built for production (`next build`) and served by `next start`, read by the
 * `eventsource` package (the probe routes, switched on by EVENTSOURCE_SERVER_PROBE=1), by fetch with an
 * independent parser (the demo route), and by Chromium (the demo page). Run by test/ci.vitest.config.ts only.
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
  const env = { NEXT_TELEMETRY_DISABLED: "1" };

  let server: Running | undefined;
  const origin = (): string => {
    if (server === undefined) throw new Error("next start did not start");
    return server.origin;
  };

  beforeAll(async () => {
    if (!existsSync(next)) throw new Error(`Next.js is not installed: run \`npm ci\` in ${app}`);
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
    clientScenarios("next", origin, connectWith(EventSource));
    demoScenario("next demo", origin, "/api/events");

    test("next: the stream is not compressed, even for a client that accepts gzip", async () => {
      const response = await fetch(`${origin()}/api/events`, { headers: { "accept-encoding": "gzip, br" } });
      try {
        expect(response.headers.get("content-type")).toBe("text/event-stream; charset=utf-8");
        expect(response.headers.get("content-encoding")).toBeNull();
      } finally {
        await response.body?.cancel();
      }
    });
  });

  describe("the Next.js demo page in Chromium", () => {
    let browser: Browser | undefined;
    beforeAll(async () => {
      browser = await launchChromium();
    });
    afterAll(async () => {
      await browser?.close();
    });

    test("the page shows live tick events from the route handler", async () => {
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
        expect(items[0]).toMatch(/^tick #\d+: \d{4}-\d\d-\d\dT/);
        await page.screenshot({ path: `${RESULTS}nextjs-demo.png` });
      } finally {
        await page.close();
      }
    });
  });
});
