/**
 * `node bench/compress.mjs`: what `compress: true` costs and saves on Node, over real sockets, for 1 KB JSON events:
 * bytes on the wire per event, CPU time per event in the server, and heap plus native memory (RSS) per idle
 * connection, for identity, gzip and br. Run it after `npm run build`; it prints one table. Nothing here asserts.
 */
import { once } from "node:events";
import { createServer, request } from "node:http";
import { EventChannel } from "../dist/index.js";
import { toNodeHandler } from "../dist/node.js";

const EVENTS = 2_000;
const IDLE = Number(process.argv[2] ?? 1_000);
// One coding per process gives clean memory figures: `node --expose-gc bench/compress.mjs 1000 gzip`.
const CODINGS = process.argv[3]?.split(",") ?? ["identity", "gzip", "br"];

/** A 1 KB JSON event of an order feed: repeated field names, varying values. */
function order(n) {
  return {
    event: "order",
    id: n,
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
  };
}

async function serve(channel) {
  const server = createServer(toNodeHandler((req) => channel.response(req, { keepAlive: false }), { compress: true }));
  server.maxConnections = IDLE * 2;
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  return server;
}

/** Opens a stream with this Accept-Encoding; resolves once its first bytes arrived, counting every byte after. */
function open(port, coding, counter) {
  return new Promise((resolve) => {
    const req = request({ port, host: "127.0.0.1", headers: { "accept-encoding": coding } }, (res) => {
      res.once("data", () => resolve(req));
      res.on("data", (chunk) => {
        counter.bytes += chunk.length;
      });
    });
    req.end();
  });
}

function settle() {
  return new Promise((resolve) => setTimeout(resolve, 200));
}

const rows = [];
for (const coding of CODINGS) {
  const channel = new EventChannel();
  const server = await serve(channel);
  const { port } = server.address();
  // Throughput and size: one client, EVENTS events.
  const counter = { bytes: 0 };
  const client = await open(port, coding, counter);
  counter.bytes = 0;
  const cpu = process.cpuUsage();
  for (let n = 0; n < EVENTS; n++) {
    channel.emit(order(n));
    if (n % 50 === 0) await new Promise((resolve) => setImmediate(resolve));
  }
  while (counter.bytes === 0) await settle();
  await settle();
  const used = process.cpuUsage(cpu);
  client.destroy();
  await settle();
  // Memory: IDLE idle connections.
  globalThis.gc?.();
  await settle();
  const before = { heap: process.memoryUsage().heapUsed, rss: process.memoryUsage().rss };
  const idle = [];
  for (let i = 0; i < IDLE; i += 100) {
    idle.push(...(await Promise.all(Array.from({ length: 100 }, () => open(port, coding, { bytes: 0 })))));
  }
  globalThis.gc?.();
  await settle();
  const after = { heap: process.memoryUsage().heapUsed, rss: process.memoryUsage().rss };
  rows.push({
    coding,
    wire: counter.bytes / EVENTS,
    cpu: (used.user + used.system) / EVENTS,
    heap: (after.heap - before.heap) / IDLE,
    rss: (after.rss - before.rss) / IDLE,
  });
  for (const req of idle) req.destroy();
  channel.close();
  server.close();
  await settle();
}

const plain = 1_365; // bytes per event without compression, as measured by the identity row
console.log(
  `Node ${process.version}, ${EVENTS} events of 1 KB JSON, ${IDLE} idle connections (client and server in one process)`,
);
console.log(
  "| coding | bytes per event | × fewer | server+client CPU µs per event | heap B per idle connection | RSS B per idle connection |",
);
console.log("|---|---:|---:|---:|---:|---:|");
for (const row of rows) {
  console.log(
    `| ${row.coding} | ${row.wire.toFixed(0)} | ${(plain / row.wire).toFixed(1)}× | ${row.cpu.toFixed(1)} | ${row.heap.toFixed(0)} | ${row.rss.toFixed(0)} |`,
  );
}
