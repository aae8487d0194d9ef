/**
 * Chromium's native EventSource, driven by playwright-core against Debian's /usr/bin/chromium, reading the
 * probe routes on Node (toNodeHandler), Deno and Bun; and a screenshot of the Node demo page showing live events.
 * Run by test/ci.vitest.config.ts only.
 */
import { mkdir } from "node:fs/promises";
import { toNodeHandler } from "eventsource-server/node";
import type { Browser } from "playwright-core";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import {
  bundleNodeDemo,
  chromiumConnect,
  clientScenarios,
  freePort,
  launchChromium,
  listenNode,
  RESULTS,
  type Running,
  startBunProbe,
  startDenoProbe,
  startServer,
} from "./harness.ts";
import { probe, UTF8_ID } from "./probe.ts";

// Too slow for `npm test`: only test/ci.vitest.config.ts, which sets this, runs it. Anywhere else the whole file is
// reported as skipped, never as passed.
const { EVENTSOURCE_SERVER_CI } = process.env;
describe.runIf(EVENTSOURCE_SERVER_CI === "1")("chromium (test/ci.vitest.config.ts)", () => {
  let browser: Browser | undefined;
  const theBrowser = (): Browser => {
    if (browser === undefined) throw new Error("Chromium did not start");
    return browser;
  };
  // Any same-origin page will do as the place the EventSource is opened from.
  const connect = chromiumConnect(theBrowser, (origin) => `${origin}/probe/produced?key=landing`);

  beforeAll(async () => {
    browser = await launchChromium();
  });

  /** Chromium sends a non-ASCII id back as UTF-8 bytes, and the server must read the id it sent. */
  const utf8IdScenario = (label: string, origin: () => string): void => {
    test(`${label}: a non-ASCII id comes back from Chromium's EventSource equal to itself`, async () => {
      const client = await connect(`${origin()}/probe/utf8-id`, ["id"]);
      try {
        const [first, resumed] = await client.seen.events(2);
        expect(first).toEqual({ kind: "event", type: "id", data: "first visit", lastEventId: UTF8_ID });
        expect(resumed?.data).toBe(`resumed after ${UTF8_ID}`);
      } finally {
        await client.close();
      }
    });
  };
  afterAll(async () => {
    await browser?.close();
  });

  describe("Chromium's EventSource on Node's toNodeHandler", () => {
    let bridge: Awaited<ReturnType<typeof listenNode>> | undefined;
    beforeAll(async () => {
      bridge = await listenNode(toNodeHandler, (r) => probe(r) ?? new Response("not found\n", { status: 404 }));
    });
    afterAll(async () => {
      await bridge?.close();
    });
    clientScenarios("chromium on node", () => bridge?.origin ?? "", connect);
    utf8IdScenario("chromium on node", () => bridge?.origin ?? "");
  });

  describe("Chromium's EventSource on Deno.serve", () => {
    let server: Running | undefined;
    beforeAll(async () => {
      server = await startDenoProbe();
    });
    afterAll(async () => {
      await server?.stop();
    });
    clientScenarios("chromium on deno", () => server?.origin ?? "", connect);
    utf8IdScenario("chromium on deno", () => server?.origin ?? "");
  });

  describe("Chromium's EventSource on Bun.serve", () => {
    let server: Running | undefined;
    beforeAll(async () => {
      server = await startBunProbe();
    });
    afterAll(async () => {
      await server?.stop();
    });
    clientScenarios("chromium on bun", () => server?.origin ?? "", connect);
    utf8IdScenario("chromium on bun", () => server?.origin ?? "");
  });

  describe("the Node demo page in Chromium", () => {
    let demo: Running | undefined;
    beforeAll(async () => {
      const outfile = await bundleNodeDemo("node-demo.chromium");
      demo = await startServer(process.execPath, [outfile], { env: { PORT: String(await freePort()) } });
    });
    afterAll(async () => {
      await demo?.stop();
    });

    test("the demo page shows live tick events, and a screenshot records it", async () => {
      const page = await theBrowser().newPage({ viewport: { width: 800, height: 500 } });
      try {
        await page.goto(`${demo?.origin}/`);
        await page.waitForFunction(() => document.getElementById("status")?.textContent === "open", null, {
          timeout: 10_000,
        });
        // Six events: five ticks, one a second, and the JSON stats event that follows the fifth.
        await page.waitForFunction(() => Number(document.getElementById("count")?.textContent) >= 6, null, {
          timeout: 15_000,
        });
        const items = await page.locator("#events li").allTextContents();
        expect(items.length).toBeGreaterThanOrEqual(6);
        expect(items).toContainEqual(expect.stringMatching(/^tick #5: \d{4}-\d\d-\d\dT/));
        expect(items).toContainEqual(expect.stringMatching(/^stats( #5)?: \{"ticks":5,/));
        await mkdir(RESULTS, { recursive: true });
        await page.screenshot({ path: `${RESULTS}node-demo.png` });
      } finally {
        await page.close();
      }
    });
  });
});
