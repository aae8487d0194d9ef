/**
 * A real redis-server for the tests that need one: found on PATH, installed with apt-get when it is missing and
 * the tests run as root (once per run, however many test files ask at the same time), started on a free port
 * of 127.0.0.1 with nothing saved to disk, and stopped by its pid.
 *
 * A machine where it can be neither found nor installed fails the tests that need it, with one line that says
 * what to install: a skipped test would report a pass for code that never ran.
 */
import { spawn } from "node:child_process";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { currentPath, findOnPath, findOrInstall, freePort } from "./install.ts";

export { findOnPath, freePort };

/** What to type when the tests cannot install redis-server themselves. */
export const INSTALL_HINT =
  "redis-server is not on PATH: install it (Debian/Ubuntu: `sudo apt-get install -y redis-server`, macOS: `brew install redis`) or run the tests as root to let them install it";

/** Where concurrent test processes take turns to install: apt-get and dpkg allow one at a time anyway. */
const LOCK_FILE = join(tmpdir(), "eventsource-server-redis-install.lock");

export interface FindOptions {
  /** The PATH to search and to run apt-get with. Default: this process's. */
  path?: string;
  /** The user id deciding whether installing is allowed. Default: this process's. */
  uid?: number;
  /** The lock file that serialises installs. Default: one in the system's temporary folder. */
  lockFile?: string;
}

let found: Promise<string> | undefined;

/**
 * The path of redis-server. Missing and root: `apt-get update && apt-get install -y redis-server`, run by one
 * caller at a time (a lock file shared by every test process), and skipped by the callers that find it
 * installed once they get the lock. Missing and not root: rejects with `INSTALL_HINT`.
 */
export function redisServer(options: FindOptions = {}): Promise<string> {
  if (Object.keys(options).length > 0) return findOrInstallRedis(options);
  found ??= findOrInstallRedis({});
  return found;
}

function findOrInstallRedis(options: FindOptions): Promise<string> {
  const path = options.path ?? currentPath();
  return findOrInstall(() => findOnPath("redis-server", path), {
    path,
    ...(options.uid === undefined ? {} : { uid: options.uid }),
    lockFile: options.lockFile ?? LOCK_FILE,
    debianPackage: "redis-server",
    hint: INSTALL_HINT,
  });
}

export interface RedisServer {
  /** `redis://127.0.0.1:PORT` */
  url: string;
  port: number;
  pid: number;
  /** SIGTERM, then SIGKILL after 3 s; resolves once the process has exited. */
  stop(): Promise<void>;
  /**
   * Starts it again after `stop()`, on the same port, with the same arguments: an empty server unless `extra` made it
   * save (`--appendonly yes --dir <folder>`).
   */
  start(): Promise<void>;
  /** `stop()`, then `start()`. */
  restart(): Promise<void>;
}

/**
 * Starts redis-server on a free port of 127.0.0.1, saving nothing to disk; resolves once it accepts clients.
 * `extra` adds configuration arguments (`["--stream-node-max-entries", "10"]`).
 */
export async function startRedis(extra: string[] = []): Promise<RedisServer> {
  const binary = await redisServer();
  // A port taken between freePort() and redis-server binding it makes redis-server exit: try another one.
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    try {
      return await launch(binary, port, extra);
    } catch (error) {
      if (attempt === 3) throw error;
    }
  }
}

async function launch(binary: string, port: number, extra: string[]): Promise<RedisServer> {
  const args = ["--bind", "127.0.0.1", "--port", String(port), "--save", "", "--appendonly", "no"];
  const child = spawn(binary, [...args, "--daemonize", "no", ...extra], {
    cwd: tmpdir(),
    stdio: ["ignore", "pipe", "pipe"],
  });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill("SIGTERM");
    const killer = setTimeout(() => child.kill("SIGKILL"), 3_000);
    await exited;
    clearTimeout(killer);
  };
  let log = "";
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    await new Promise<void>((resolve, reject) => {
      child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
        log += chunk;
        if (log.includes("Ready to accept connections")) resolve();
      });
      child.stderr.setEncoding("utf8").on("data", (chunk: string) => {
        log += chunk;
      });
      child.once("error", reject);
      child.once("exit", (code) => reject(new Error(`redis-server exited (${code}) before it was ready:\n${log}`)));
      timer = setTimeout(() => reject(new Error(`redis-server was not ready within 10 s:\n${log}`)), 10_000);
    });
  } catch (error) {
    await stop();
    throw error;
  } finally {
    clearTimeout(timer);
  }
  if (child.pid === undefined) throw new Error("redis-server has no pid");
  const server: RedisServer = {
    url: `redis://127.0.0.1:${port}`,
    port,
    pid: child.pid,
    stop,
    async start() {
      const next = await launch(binary, port, extra);
      server.pid = next.pid;
      server.stop = next.stop;
    },
    async restart() {
      await server.stop();
      await server.start();
    },
  };
  return server;
}
