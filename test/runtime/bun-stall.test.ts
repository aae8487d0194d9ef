/**
 * Bun closes a connection whose reader stalls for 10 s, heartbeats or not: a client that stops reading lets the
 * socket buffers fill, Bun cannot write, and its `idleTimeout` (10 s by default) counts that as silence; the
 * library's heartbeat waits for the client to read, so it cannot help. The README's Bun warning gives the fix;
 * this test runs that very block behind a real `Bun.serve`, next to the same server with Bun's default, stalls a
 * raw TCP reader on each for 12 s, then reads again: the default's stream has ended, the fixed one is still live.
 * About 13 s: run by `npm run test:ci` (test/ci.vitest.config.ts), since `npm test` was at 3 minutes with it.
 */
import { mkdir, writeFile } from "node:fs/promises";
import { connect, type Socket } from "node:net";
import { afterAll, beforeAll, expect, test } from "vitest";
import { binary, RESULTS, ROOT, type Running, startServer, within } from "./harness.ts";
import { docBlocks } from "./readme-blocks.ts";

/** Longer than Bun's default idle timeout (10 s), so that the default server has closed the stalled stream. */
const STALL_MS = 12_000;

const fix = docBlocks().filter((block) => block.code.includes("idleTimeout: 0"));

let server: Running | undefined;

beforeAll(async () => {
  expect(fix).toHaveLength(1);
  const block = fix[0]?.code ?? "";
  // The README's block as written, and the same server with Bun's default idle timeout, for contrast.
  const withDefault = block.replace("idleTimeout: 0, ", "");
  expect(withDefault).not.toBe(block);
  const module = `
import { eventSourceResponse } from "eventsource-server";
const filler = "x".repeat(16 * 1024);
let produced = 0;
/** A stream that writes as fast as its reader reads: a stalled reader soon fills every buffer between them. */
function handler(request: Request): Response {
  if (new URL(request.url).pathname === "/produced") return new Response(String(produced));
  return eventSourceResponse(async function* ({ signal }) {
    while (!signal.aborted) {
      yield { id: ++produced, data: filler };
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
  }, { request });
}
${block.replace("port: 8787", "port: 0").replace("Bun.serve(", "const fixed = Bun.serve(")}
${withDefault.replace("port: 8787", "port: 0").replace("Bun.serve(", "const plain = Bun.serve(")}
console.log("fixed http://127.0.0.1:" + fixed.port + " plain http://127.0.0.1:" + plain.port);
`;
  await mkdir(`${RESULTS}readme/`, { recursive: true });
  const path = `${RESULTS}readme/bun-stall.ts`;
  await writeFile(path, module);
  await writeFile(
    `${RESULTS}readme/tsconfig.json`,
    JSON.stringify({ compilerOptions: { paths: { "eventsource-server": [`${ROOT}src/index.ts`] } } }),
  );
  server = await startServer(binary("bun"), [path], { cwd: `${RESULTS}readme/` });
});

afterAll(async () => {
  await server?.stop();
});

/** A raw HTTP/1.1 reader that stops reading after its first bytes, until `resume()`. */
function stalledReader(port: number) {
  let text = "";
  const socket: Socket = connect(port, "127.0.0.1", () =>
    socket.write("GET /events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"),
  );
  socket.setEncoding("latin1");
  socket.once("data", (chunk: string) => {
    text += chunk;
    socket.pause();
  });
  const ended = new Promise<void>((resolve) => socket.once("close", () => resolve()));
  socket.once("end", () => socket.destroy());
  return {
    socket,
    ended,
    /** The ids of the events read so far. */
    ids: () => [...text.matchAll(/\nid: (\d+)\n/g)].map((match) => Number(match[1])),
    resume() {
      socket.on("data", (chunk: string) => {
        text += chunk;
      });
      socket.resume();
    },
  };
}

test("Bun.serve with the README's idleTimeout: 0 keeps a stalled reader's stream open past 10 s; the default closes it", async () => {
  if (server === undefined) throw new Error("the Bun server did not start");
  const ports = [...server.stdout.seen.join("\n").matchAll(/127\.0\.0\.1:(\d+)/g)].map((match) => Number(match[1]));
  expect(ports).toHaveLength(2);
  const [fixedPort = 0, plainPort = 0] = ports;
  const fixed = stalledReader(fixedPort);
  const plain = stalledReader(plainPort);
  try {
    await new Promise((resolve) => setTimeout(resolve, STALL_MS));
    const producedAtResume = Number(await (await fetch(`http://127.0.0.1:${fixedPort}/produced`)).text());
    fixed.resume();
    plain.resume();
    // The default server ended the stalled stream: what was buffered drains, then the end.
    await within(plain.ended, 10_000, "Bun's default to have closed the stalled stream");
    // The fixed one is live: reading again, the client gets events the source produced after the stall.
    const live = async (): Promise<void> => {
      while (!fixed.ids().some((id) => id > producedAtResume)) {
        if (fixed.socket.destroyed) throw new Error("the fixed server closed the stalled stream too");
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    };
    await within(live(), 10_000, "an event produced after the stall, on the fixed server");
    expect(fixed.socket.destroyed).toBe(false);
  } finally {
    fixed.socket.destroy();
    plain.socket.destroy();
  }
}, 40_000);
