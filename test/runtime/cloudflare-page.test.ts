/**
 * The Cloudflare example's page (`GET /`) in Chromium, served by workerd through Miniflare: two tabs in one room,
 * a publish from one seen in the other, a dropped connection and a restarted room object both resumed with
 * nothing lost or doubled, and a console with no errors. Run by test/ci.vitest.config.ts only, like chromium.test.ts.
 */
import { mkdir } from "node:fs/promises";
import { Miniflare } from "miniflare";
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { bundle, miniflareOptions } from "../../examples/cloudflare/build.mjs";
import { launchChromium, RESULTS } from "./harness.ts";

const WAIT = { timeout: 10_000 };

// Too slow for `npm test`, and a fresh machine has no Chromium: only test/ci.vitest.config.ts, which sets this,
// runs it. Anywhere else the whole file is reported as skipped, never as passed.
const { EVENTSOURCE_SERVER_CI } = process.env;
describe.runIf(EVENTSOURCE_SERVER_CI === "1")("the Cloudflare example's page in Chromium", () => {
  let browser: Browser | undefined;
  let worker: Miniflare | undefined;
  let origin: URL;
  /** What workerd printed: the channel reports a failed replay with console.error. */
  let printed = "";

  beforeAll(async () => {
    await bundle();
    worker = new Miniflare(
      miniflareOptions({
        output: (text) => {
          printed += text;
        },
      }),
    );
    origin = await worker.ready;
    browser = await launchChromium();
  });

  afterAll(async () => {
    await browser?.close();
    await worker?.dispose();
  });

  /** A tab on the page, recording every console error, page error and failed or 4xx/5xx request. */
  async function tab(problems: string[]): Promise<Page> {
    if (browser === undefined) throw new Error("Chromium did not start");
    const page = await browser.newPage({ viewport: { width: 900, height: 900 } });
    page.on("console", (message) => {
      if (message.type() === "error" || message.type() === "warning") problems.push(`console: ${message.text()}`);
    });
    page.on("pageerror", (error) => problems.push(`page error: ${error.message}`));
    page.on("requestfailed", (request) => {
      // The page's own EventSource, closed by the Drop button, is aborted on purpose.
      if (!request.url().includes("/events")) problems.push(`failed: ${request.url()}`);
    });
    page.on("response", (response) => {
      if (response.status() >= 400) problems.push(`${response.status()}: ${response.url()}`);
    });
    await page.goto(new URL("/", origin).href);
    await open(page);
    return page;
  }

  function open(page: Page): Promise<unknown> {
    return page.waitForFunction(() => document.getElementById("status")?.textContent === "open", null, WAIT);
  }

  /** The room's messages the page shows, oldest first, as "#id text". */
  async function messages(page: Page): Promise<string[]> {
    const lines = await page.locator("#log li").allTextContents();
    return lines.filter((line) => line.startsWith("#")).reverse();
  }

  function until(page: Page, count: number): Promise<unknown> {
    return page.waitForFunction(
      (count) =>
        [...document.querySelectorAll("#log li")].filter((li) => li.textContent?.startsWith("#")).length >= count,
      count,
      WAIT,
    );
  }

  test("two tabs share a room, resume after a drop and after the room's object restarts, with a clean console", async () => {
    const problems: string[] = [];
    const writer = await tab(problems);
    const reader = await tab(problems);
    try {
      await expect(writer.locator("h1").textContent()).resolves.toBe("eventsource-server on Cloudflare Workers");

      await writer.fill("#message", "hello from the first tab");
      await writer.click("#publish button");
      await until(reader, 1);

      // Drop: the reader reconnects at once with ?lastEventId=1.
      await reader.click("#drop");
      await open(reader);
      await writer.fill("#message", "after the drop");
      await writer.click("#publish button");
      await until(reader, 2);

      // Restart: both tabs' streams end; while they wait to reconnect, an event is published to the new object.
      await reader.click("#restart");
      await reader.waitForFunction(() => document.getElementById("status")?.className === "closed", null, WAIT);
      const published = await fetch(new URL("/rooms/lobby/publish", origin), {
        method: "POST",
        body: "while both tabs were away",
        signal: AbortSignal.timeout(WAIT.timeout),
      });
      expect(published.status).toBe(201);
      await until(reader, 3);
      await until(writer, 3);
      await open(reader);

      const expected = ["#1 hello from the first tab", "#2 after the drop", "#3 while both tabs were away"];
      expect(await messages(reader)).toEqual(expected);
      expect(await messages(writer)).toEqual(expected);
      await mkdir(RESULTS, { recursive: true });
      await reader.screenshot({ path: `${RESULTS}cloudflare-page.png`, fullPage: true });
      expect(problems).toEqual([]);
      // Only the restart's own lines: workerd reports the streams ctx.abort() broke, with a stack of addresses.
      const lines = printed.split("\n").filter((line) => line.trim() !== "");
      expect(
        lines.filter((line) => !/outputGateBroken; jsg\.Error: restarted on request$|^stack: /.test(line)),
      ).toEqual([]);
    } finally {
      await writer.close();
      await reader.close();
    }
  });
});
