/** The events every HTTP scenario sends, shared by the servers and the client that checks them. */

/** `GET /stream`: event `i` of a throughput run. */
export const small = (i) => ({ event: "tick", id: String(i), data: `hello world ${i}` });
/** `GET /emit?k=K`: what every subscriber of `GET /channel` receives. */
export const news = (k) => ({ event: "news", id: String(k), data: "hello fanout" });
/** `GET /ticker`: event `i` of a stream that runs until its client leaves. */
export const tick = (i) => ({ event: "tick", id: String(i), data: `tick ${i}` });

/** `GET /orders` (the compression scenario): event `n` of an order feed, about 1 KB of JSON whose field names repeat. */
export const order = (n) => ({
  event: "order",
  id: String(n),
  data: {
    id: `ord_${(n * 7919).toString(36)}`,
    customer: { name: `Customer ${n % 37}`, email: `customer${n % 37}@example.com`, tier: ["gold", "silver"][n % 2] },
    items: Array.from({ length: 20 }, (_, i) => ({
      sku: `SKU-${(n + i) % 50}`,
      name: `Item ${(n * 31 + i) % 97}`,
      quantity: (n + i) % 4,
      cents: 199 * i + (n % 13),
    })),
    createdAt: new Date(1_700_000_000_000 + n * 1_000).toISOString(),
  },
});

/** The bare baselines' encoding: no checks (none of these events needs one). */
export const template = (e) => `event: ${e.event}\nid: ${e.id}\ndata: ${e.data}\n\n`;

/** The empty comment every adapter writes first, so that headers leave at once on every runtime. */
export const COMMENT = ":\n\n";

export const HEADERS = {
  "content-type": "text/event-stream; charset=utf-8",
  "cache-control": "no-cache",
};

/** Milliseconds between two events of `GET /ticker`. */
export const TICK_MS = 50;
