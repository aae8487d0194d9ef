/**
 * Chromium's native EventSource, driven by playwright-core against Debian's /usr/bin/chromium, reading the
 * probe routes on Node (toNodeHandler), Deno and Bun; and a screenshot of the Node demo page showing live events.
 * Run by test/ci.vitest.config.ts only.
 */
import { mkdir } from "node:fs/promises";
import { toNodeHandler } from "eventsource-server/node";
import type { Browser, Page } from "playwright-core";
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

    /** A tab on the demo, with every console message, page error and failed request it produced. */
    async function openTab(): Promise<{ page: Page; problems: string[] }> {
      const page = await theBrowser().newPage({ viewport: { width: 1280, height: 860 } });
      const problems: string[] = [];
      page.on("console", (message) => {
        if (message.type() === "error" || message.type() === "warning") problems.push(`console: ${message.text()}`);
      });
      page.on("pageerror", (error) => problems.push(`page error: ${error.message}`));
      page.on("requestfailed", (request) => {
        // The Drop button ends the stream on purpose; any other failed request is a bug.
        if (!new URL(request.url()).pathname.startsWith("/events")) problems.push(`failed: ${request.url()}`);
      });
      page.on("response", (response) => {
        if (response.status() >= 400) problems.push(`${response.status()}: ${response.url()}`);
      });
      await page.goto(`${demo?.origin}/`);
      await page.waitForFunction(() => document.querySelector("#status")?.textContent === "live", null, {
        timeout: 10_000,
      });
      return { page, problems };
    }

    /** The ids in a tab's log, oldest first. */
    const idsOf = async (page: Page): Promise<number[]> =>
      (
        await page.locator("#log .row").evaluateAll((rows) => rows.map((row) => Number(row.getAttribute("data-id"))))
      ).reverse();

    /** Waits until a tab's log holds a note with this text, and returns that row's id. */
    async function noteIn(page: Page, text: string): Promise<number> {
      const row = page.locator("#log .row.note", { hasText: JSON.stringify(text) });
      await row.waitFor({ timeout: 10_000 });
      return Number(await row.getAttribute("data-id"));
    }

    async function publish(page: Page, text: string): Promise<void> {
      await page.fill("#note", text);
      await page.click("#publish button");
    }

    test("a note published in one tab reaches another; a dropped tab resumes from Last-Event-ID with nothing lost; no console errors", async () => {
      const first = await openTab();
      const second = await openTab();
      try {
        await publish(first.page, "hello from the first tab");
        const helloId = await noteIn(second.page, "hello from the first tab");
        expect(await noteIn(first.page, "hello from the first tab")).toBe(helloId);

        // Wait for one more event, so the second tab's last id is known before it drops.
        await second.page.waitForFunction(
          (after) => Number(document.querySelector("#log .row")?.getAttribute("data-id")) > after,
          helloId,
          { timeout: 10_000 },
        );
        const idsBefore = await idsOf(second.page);
        await second.page.click("#drop");
        await second.page.waitForFunction(
          () => document.querySelector("#status")?.textContent === "reconnecting…",
          null,
          {
            timeout: 10_000,
          },
        );
        const lastBeforeDrop = Number(await second.page.locator("#log .row").first().getAttribute("data-id"));
        expect(lastBeforeDrop).toBeGreaterThanOrEqual(idsBefore.at(-1) ?? 0);
        // Published while the second tab is away (its browser waits 2 s before reconnecting).
        await publish(first.page, "sent while the second tab was away");
        const awayId = await noteIn(first.page, "sent while the second tab was away");

        expect(await noteIn(second.page, "sent while the second tab was away")).toBe(awayId);
        await second.page.waitForFunction(() => document.querySelector("#status")?.textContent === "live", null, {
          timeout: 10_000,
        });
        const banner = second.page.locator("#banner");
        await expect.poll(() => banner.textContent(), { timeout: 10_000 }).toContain("Resumed with nothing lost");
        expect(await banner.textContent()).toContain(`Last-Event-ID: ${lastBeforeDrop}`);
        const awayRow = second.page.locator("#log .row.note", { hasText: "sent while the second tab was away" });
        expect(await awayRow.getAttribute("class")).toContain("replayed");

        // Nothing lost, nothing doubled: from its first event on, the second tab saw every id once, in order.
        const ids = await idsOf(second.page);
        expect(ids.length).toBeGreaterThan(3);
        const first_ = ids[0] ?? 0;
        expect(ids).toEqual(ids.map((_, i) => first_ + i));
        expect(ids).toContain(lastBeforeDrop + 1);
        // The page shows the channel's stats(), from the ticks: both tabs open, three streams opened (the second
        // tab's twice), and the second tab's reconnect counted as resumed.
        const stat = (id: string) => second.page.locator(`#${id}`).textContent();
        await expect.poll(() => stat("resumed"), { timeout: 10_000 }).toBe("1");
        expect(await stat("subscribers")).toBe("2");
        expect(await stat("opened")).toBe("3");
        expect(await stat("historyLost")).toBe("0");
        expect(await stat("evicted")).toBe("0");

        await mkdir(RESULTS, { recursive: true });
        await second.page.screenshot({ path: `${RESULTS}node-demo.png` });
        expect(first.problems).toEqual([]);
        expect(second.problems).toEqual([]);
      } finally {
        await first.page.close();
        await second.page.close();
      }
    });
  });
});
