/**
 * The test support that brings up redis-server: found on PATH, installed when missing (as root), started on a
 * free port and stopped by its pid. The install path runs against a PATH that hides the real redis-server and
 * holds a stand-in apt-get, so it is exercised for real (processes, PATH lookup, the lock) without reinstalling.
 */
import { spawn } from "node:child_process";
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createClient } from "redis";
import { afterEach, describe, expect, test } from "vitest";
import { findOnPath, INSTALL_HINT, redisServer, startRedis } from "./redis.ts";

const folders: string[] = [];

afterEach(() => {
  for (const folder of folders.splice(0)) rmSync(folder, { recursive: true, force: true });
});

/** An empty folder of its own, removed after the test. */
function folder(): string {
  const path = mkdtempSync(join(tmpdir(), "redis-support-"));
  folders.push(path);
  return path;
}

/**
 * A folder holding only a stand-in `apt-get` that logs each call (with DEBIAN_FRONTEND) and, on `install`,
 * puts an executable `redis-server` beside itself, as the real one puts it on PATH.
 */
function fakeAptGet(): { bin: string; calls: () => string[] } {
  const bin = folder();
  const log = join(bin, "calls.log");
  writeFileSync(
    join(bin, "apt-get"),
    `#!/bin/sh
echo "DEBIAN_FRONTEND=$DEBIAN_FRONTEND $*" >> '${log}'
case "$*" in *" install "*) printf '#!/bin/sh\\n' > '${bin}/redis-server'; /bin/chmod +x '${bin}/redis-server';; esac
`,
  );
  chmodSync(join(bin, "apt-get"), 0o755);
  return { bin, calls: () => readFileSync(log, "utf8").trim().split("\n") };
}

describe("test support: redis-server", () => {
  test("findOnPath reports redis-server missing on a PATH that hides it, and finds it where it is", () => {
    const empty = folder();
    expect(findOnPath("redis-server", empty)).toBeUndefined();
    const { bin } = fakeAptGet();
    expect(findOnPath("apt-get", `${empty}:${bin}`)).toBe(join(bin, "apt-get"));
  });

  test("missing and not root: fails with one line that says what to install", async () => {
    const hidden = folder();
    await expect(redisServer({ path: hidden, uid: 1000 })).rejects.toThrowError(INSTALL_HINT);
    expect(INSTALL_HINT).not.toContain("\n");
    expect(INSTALL_HINT).toMatch(/apt-get install -y redis-server/);
  });

  test("missing and root without apt-get: fails with the same line, naming apt-get", async () => {
    await expect(redisServer({ path: folder(), uid: 0 })).rejects.toThrowError(/apt-get is not on PATH either/);
  });

  test("missing and root: apt-get update, then a non-interactive install, once for two callers at the same time", async () => {
    const { bin, calls } = fakeAptGet();
    const lockFile = join(folder(), "install.lock");
    const [first, second] = await Promise.all([
      redisServer({ path: bin, uid: 0, lockFile }),
      redisServer({ path: bin, uid: 0, lockFile }),
    ]);
    expect(first).toBe(join(bin, "redis-server"));
    expect(second).toBe(first);
    expect(calls()).toEqual([
      "DEBIAN_FRONTEND=noninteractive -o DPkg::Lock::Timeout=240 update -qq",
      "DEBIAN_FRONTEND=noninteractive -o DPkg::Lock::Timeout=240 install -y -qq --no-install-recommends redis-server",
    ]);
  });

  test("a lock left behind by an installer that died is taken over", async () => {
    const { bin, calls } = fakeAptGet();
    const lockFile = join(folder(), "install.lock");
    const dead = spawn(process.execPath, ["-e", ""]);
    await new Promise((resolve) => dead.once("exit", resolve));
    writeFileSync(lockFile, String(dead.pid));
    expect(await redisServer({ path: bin, uid: 0, lockFile })).toBe(join(bin, "redis-server"));
    expect(calls()).toHaveLength(2);
  });

  // The first test of a run on a machine without redis-server installs it: apt-get may take a minute.
  test("startRedis serves on a free port of 127.0.0.1 and stop ends that process", { timeout: 300_000 }, async () => {
    const server = await startRedis();
    let stopped = false;
    try {
      expect(server.url).toBe(`redis://127.0.0.1:${server.port}`);
      const client = createClient({ url: server.url });
      await client.connect();
      try {
        expect(await client.ping()).toBe("PONG");
        // Nothing is saved: a test run leaves no dump.rdb or appendonly file behind.
        expect(await client.configGet("save")).toEqual({ save: "" });
        expect(await client.configGet("appendonly")).toEqual({ appendonly: "no" });
      } finally {
        await client.close();
      }
      await server.stop();
      stopped = true;
      expect(() => process.kill(server.pid, 0)).toThrowError(/ESRCH/);
    } finally {
      if (!stopped) await server.stop();
    }
  });
});
