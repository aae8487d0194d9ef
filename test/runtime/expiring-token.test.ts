/**
 * examples/expiring-token: the server spawned with tokens of 2 s and a tick every 100 ms, read by its own client (the
 * `eventsource` package asking for a fresh token before each connection). A stream ends in its token's last tenth,
 * the client comes back with a new token and its Last-Event-ID, and no tick is lost or doubled; a stale, forged or
 * missing token gets a 401. The recipes of docs/recipes.md are the example's own code, byte for byte.
 */
import { readFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { authorizedEventSource } from "../../examples/expiring-token/client.js";
import { readerOf } from "../helpers.ts";
import { bundleExample, Recorder, ROOT, type Running, startServer, within } from "./harness.ts";

const TOKEN_TTL_MS = 2_000;
/** How late the client may see an end the server made at the expiry: the first read, a timer, a loopback hop. */
const LATE_MS = 50;

let example: Running | undefined;
const origin = () => example?.origin ?? "";

beforeAll(async () => {
  const outfile = await bundleExample("examples/expiring-token/server.js", "expiring-token.test");
  example = await startServer(process.execPath, [outfile], {
    env: { PORT: "0", TOKEN_TTL_MS: String(TOKEN_TTL_MS), TICK_MS: "100" },
  });
});
afterAll(async () => {
  await example?.stop();
});

interface Issued {
  token: string;
  expiresAt: number;
  /** When the client asked for it: its connection was made after. */
  askedAt: number;
}

async function issue(): Promise<Issued> {
  const askedAt = Date.now();
  const response = await within(fetch(`${origin()}/token`, { method: "POST" }), 10_000, "a token");
  expect(response.status).toBe(200);
  return { ...((await response.json()) as { token: string; expiresAt: number }), askedAt };
}

function eventsWith(authorization: string | undefined): Promise<Response> {
  const headers: Record<string, string> = authorization === undefined ? {} : { authorization };
  return within(fetch(`${origin()}/events`, { headers }), 10_000, "GET /events");
}

describe("examples/expiring-token, spawned", () => {
  test("a stream ends by its token's expiry, and the client resumes with a fresh token, losing and doubling nothing", async () => {
    const issued: Issued[] = [];
    const seen = new Recorder();
    // Everything the client saw, in order, with the time of each end.
    const log: ({ kind: "open" } | { kind: "end"; at: number } | { kind: "tick"; id: number })[] = [];
    const source = authorizedEventSource(`${origin()}/events`, async () => {
      const one = await issue();
      issued.push(one);
      return one.token;
    });
    source.addEventListener("open", () => {
      log.push({ kind: "open" });
      seen.push({ kind: "open" });
    });
    source.addEventListener("error", () => {
      log.push({ kind: "end", at: Date.now() });
      seen.push({ kind: "error" });
    });
    source.addEventListener("tick", (event) => {
      log.push({ kind: "tick", id: Number(event.lastEventId) });
      seen.push({ kind: "event", type: "tick", data: event.data, lastEventId: event.lastEventId });
    });
    try {
      await seen.next("open");
      await seen.next("error", 5_000);
      await seen.next("open", 5_000);
      await seen.events(10);

      expect(issued).toHaveLength(2);
      const [first, second] = issued as [Issued, Issued];
      const ends = log.filter((item) => item.kind === "end");
      expect(ends).toHaveLength(1);
      const firstEnd = ends[0]?.at ?? Number.NaN;
      // Not before the token's last tenth: maxDuration was the time it had left when the stream was made...
      expect(firstEnd).toBeGreaterThanOrEqual(0.1 * first.askedAt + 0.9 * first.expiresAt - 2);
      // ...and not after its expiry, but for the moment the client takes to see it.
      expect(firstEnd).toBeLessThanOrEqual(first.expiresAt + LATE_MS);
      // The reconnect asked for a new token after the end, when the first had expired: the old one would be refused.
      expect(second.token).not.toBe(first.token);
      expect(second.askedAt).toBeGreaterThanOrEqual(firstEnd);
      expect(second.askedAt).toBeGreaterThan(first.expiresAt);

      // Ticks on both streams, and one run of ids across them: those emitted while the client was away (about ten:
      // retry is 1 s, a tick every 100 ms) came first on the second stream, replayed after its Last-Event-ID.
      const kinds = log.map((item) => item.kind).join(" ");
      expect(kinds).toMatch(/^open( tick)+ end open( tick){10,}$/);
      const ids = log.flatMap((item) => (item.kind === "tick" ? [item.id] : []));
      expect(ids).toEqual(ids.map((_, i) => (ids[0] ?? Number.NaN) + i));
    } finally {
      source.close();
    }
  });

  test("a request with an expired, forged or missing token gets a 401 and no stream", async () => {
    const stale = await issue();
    const fresh = await eventsWith(`Bearer ${stale.token}`);
    expect(fresh.status).toBe(200);
    expect(fresh.headers.get("content-type")).toBe("text/event-stream; charset=utf-8");
    await readerOf(fresh).cancel();

    const [expiresAt, mac] = stale.token.split(".");
    const forged = `${Number(expiresAt) + 3_600_000}.${mac}`;
    await within(new Promise((resolve) => setTimeout(resolve, stale.expiresAt - Date.now() + 1)), 5_000, "expiry");
    for (const authorization of [`Bearer ${stale.token}`, `Bearer ${forged}`, "Bearer nonsense", undefined]) {
      const refused = await eventsWith(authorization);
      expect(refused.status, String(authorization)).toBe(401);
      expect(refused.headers.get("www-authenticate")).toBe('Bearer error="invalid_token"');
      expect(await refused.text()).toBe("the token is missing, invalid or expired\n");
    }
  });
});

describe("the expiring token recipe of docs/recipes.md", () => {
  const recipes = readFileSync(`${ROOT}docs/recipes.md`, "utf8");
  test.each(["examples/expiring-token/server.js", "examples/expiring-token/client.js"])(
    "holds the recipe region of %s byte for byte",
    (file) => {
      const source = readFileSync(`${ROOT}${file}`, "utf8");
      const region = /\/\/ #region recipe\n([\s\S]*?)\/\/ #endregion recipe\n/.exec(source)?.[1];
      expect(region, `${file} has a recipe region`).toBeDefined();
      expect(recipes).toContain(`\`\`\`js ignore\n${region}\`\`\`\n`);
    },
  );
});
