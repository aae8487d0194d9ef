/**
 * onClose on workerd, whose runtime never cancels a body when its client leaves: with `enable_request_signal`,
 * `request.signal` aborts when the next heartbeat meets the closed connection, and only then can the stream end. The
 * test checks that onClose still comes, exactly once, with `client` and what was sent; and that drain() ends nothing.
 */
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { build } from "esbuild";
import { Miniflare } from "miniflare";
import { afterAll, beforeAll, expect, test } from "vitest";
import type { StreamEnd } from "../../src/index.ts";
import { readerOf } from "../helpers.ts";
import { RESULTS, ROOT, within } from "./harness.ts";

const WORKER = `
import { drain, eventSourceResponse } from "eventsource-server";

const ends = new Map();
export default {
  fetch(request) {
    const url = new URL(request.url);
    const key = url.searchParams.get("key") ?? "";
    if (url.pathname === "/ended") return Response.json(ends.get(key) ?? []);
    if (url.pathname === "/drain") return drain().then((count) => Response.json(count));
    return eventSourceResponse(
      async function* ({ signal }) {
        yield { id: 1, data: "one" };
        await new Promise((resolve) => signal.addEventListener("abort", resolve, { once: true }));
      },
      { request, keepAlive: 200, onClose: (end) => ends.set(key, [...(ends.get(key) ?? []), end]) },
    );
  },
};
`;

let mf: Miniflare | undefined;
let origin = "";

beforeAll(async () => {
  const dir = `${RESULTS}workerd-onclose/`;
  await mkdir(dir, { recursive: true });
  await writeFile(`${dir}worker.js`, WORKER);
  await build({
    entryPoints: [`${dir}worker.js`],
    bundle: true,
    format: "esm",
    platform: "neutral",
    outfile: `${dir}worker.mjs`,
    alias: { "eventsource-server": `${ROOT}src/index.ts` },
    logLevel: "silent",
  });
  const wrangler = await readFile(`${ROOT}examples/cloudflare/wrangler.jsonc`, "utf8");
  const date = /"compatibility_date":\s*"([^"]+)"/.exec(wrangler)?.[1];
  mf = new Miniflare({
    modules: true,
    scriptPath: `${dir}worker.mjs`,
    compatibilityDate: date,
    compatibilityFlags: ["enable_request_signal"],
    host: "127.0.0.1",
    port: 0,
  });
  origin = String(await mf.ready).replace(/\/$/, "");
}, 60_000);

afterAll(async () => {
  await mf?.dispose();
});

test("a client that leaves is reported once, as client, when the next heartbeat finds it gone", async () => {
  const controller = new AbortController();
  const response = await within(fetch(`${origin}/?key=left`, { signal: controller.signal }), 10_000, "the stream");
  const reader = readerOf(response);
  const decoder = new TextDecoder();
  let text = "";
  while (!text.includes("data: one\n\n")) text += decoder.decode((await reader.read()).value);
  controller.abort();
  let ends: StreamEnd[] = [];
  for (let tries = 0; ends.length === 0 && tries < 50; tries++) {
    await new Promise((resolve) => setTimeout(resolve, 100));
    ends = (await (await fetch(`${origin}/ended?key=left`)).json()) as StreamEnd[];
  }
  expect(ends).toEqual([
    { reason: "client", events: 1, bytes: expect.any(Number), duration: expect.any(Number), lastEventId: "1" },
  ]);
  // The bytes include the first chunk, the event and the heartbeats written before the one that failed.
  expect(ends[0]?.bytes).toBeGreaterThanOrEqual(new TextEncoder().encode(":\n\nid: 1\ndata: one\n\n").length);
  await new Promise((resolve) => setTimeout(resolve, 600));
  expect(await (await fetch(`${origin}/ended?key=left`)).json()).toHaveLength(1);
});

test("drain() ends nothing on workerd, where one request cannot end another's stream, and resolves 0", async () => {
  const controller = new AbortController();
  const response = await within(fetch(`${origin}/?key=open`, { signal: controller.signal }), 10_000, "the stream");
  const reader = readerOf(response);
  const decoder = new TextDecoder();
  let text = "";
  while (!text.includes("data: one\n\n")) text += decoder.decode((await reader.read()).value);
  expect(await (await fetch(`${origin}/drain`)).json()).toBe(0);
  // Still open: a heartbeat comes after the drain.
  expect(decoder.decode((await within(reader.read(), 5_000, "a heartbeat")).value)).toBe(":\n\n");
  controller.abort();
});
