/**
 * Deno: examples/deno's handler and the probe routes behind `Deno.serve`, read by Deno's own EventSource
 * (examples/deno/client.ts, one process per client) and by fetch with an independent parser.
 */
import { spawn } from "node:child_process";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import {
  binary,
  type Client,
  type Connect,
  clientScenarios,
  DENO_ENV,
  demoScenario,
  Recorder,
  ROOT,
  type Running,
  type Seen,
  startDenoProbe,
  within,
} from "./harness.ts";

const deno = binary("deno");
const config = `${ROOT}examples/deno/deno.json`;

let server: Running | undefined;
const origin = (): string => {
  if (server === undefined) throw new Error("the Deno server did not start");
  return server.origin;
};

beforeAll(async () => {
  server = await startDenoProbe();
});
afterAll(async () => {
  await server?.stop();
});

/**
 * Deno's own EventSource, in its own process: it prints what it sees, and closing its stdin closes it. What it
 * prints on stderr is kept, and closing the client fails with it: a healthy client prints nothing there.
 */
const denoEventSource: Connect = async (url, types) => {
  const seen = new Recorder();
  const child = spawn(
    deno,
    ["run", "--allow-net=127.0.0.1", "--config", config, "examples/deno/client.ts", url, types.join(",")],
    {
      cwd: ROOT,
      env: { ...process.env, ...DENO_ENV },
      stdio: ["pipe", "pipe", "pipe"],
    },
  );
  let stderr = "";
  child.stderr.setEncoding("utf8").on("data", (chunk: string) => {
    stderr += chunk;
  });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  let partial = "";
  child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
    const lines = (partial + chunk).split("\n");
    partial = lines.pop() ?? "";
    for (const line of lines) {
      const { kind, type, data, lastEventId } = JSON.parse(line) as Record<string, string>;
      if (kind === "open" || kind === "error") seen.push({ kind });
      else if (kind === "event") seen.push({ kind, type, data, lastEventId } as Seen);
    }
  });
  const client: Client = {
    seen,
    close: async () => {
      child.stdin.end();
      try {
        await within(exited, 5_000, "Deno's EventSource client to exit");
      } finally {
        child.kill("SIGKILL");
      }
      if (stderr !== "") throw new Error(`Deno's EventSource client printed on stderr:\n${stderr}`);
    },
  };
  return client;
};

describe("Deno.serve, read by Deno's EventSource", () => {
  clientScenarios("deno EventSource", origin, denoEventSource);
  demoScenario("deno demo", origin);

  // Runs after the scenarios above, whose streams were given `request` and cleaned up when their clients left.
  test("passing request never makes Deno warn about request.signal: the body's cancel reports a client leaving", () => {
    expect(server?.stderr.seen.join("\n")).not.toContain("request.signal");
  });
});
