/**
 * A real redis-server for the tests that need one: found on PATH, installed with apt-get when it is missing and
 * the tests run as root (once per run, however many test files ask at the same time), started on a free port
 * of 127.0.0.1 with nothing saved to disk, and stopped by its pid.
 *
 * A machine where it can be neither found nor installed fails the tests that need it, with one line that says
 * what to install: a skipped test would report a pass for code that never ran.
 */
import { spawn } from "node:child_process";
import { accessSync, constants, openSync, readFileSync, unlinkSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";

/** What to type when the tests cannot install redis-server themselves. */
export const INSTALL_HINT =
  "redis-server is not on PATH: install it (Debian/Ubuntu: `sudo apt-get install -y redis-server`, macOS: `brew install redis`) or run the tests as root to let them install it";

/** Where concurrent test processes take turns to install: apt-get and dpkg allow one at a time anyway. */
const LOCK_FILE = join(tmpdir(), "eventsource-server-redis-install.lock");

/** apt-get on a fresh machine: about 20 s; waiting for another installer (ours or the system's) may add more. */
const INSTALL_MS = 300_000;

/** This process's PATH. */
function currentPath(): string {
  const { PATH = "" } = process.env;
  return PATH;
}

/** The first executable called `name` in the directories of `path` (a PATH value), or `undefined`. */
export function findOnPath(name: string, path = currentPath()): string | undefined {
  for (const directory of path.split(delimiter)) {
    if (directory === "") continue;
    const candidate = join(directory, name);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // Not here, or not executable: the next directory may have it.
    }
  }
  return undefined;
}

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
  if (Object.keys(options).length > 0) return findOrInstall(options);
  found ??= findOrInstall({});
  return found;
}

async function findOrInstall(options: FindOptions): Promise<string> {
  const path = options.path ?? currentPath();
  const existing = findOnPath("redis-server", path);
  if (existing !== undefined) return existing;
  if ((options.uid ?? process.getuid?.()) !== 0) throw new Error(INSTALL_HINT);
  const aptGet = findOnPath("apt-get", path);
  if (aptGet === undefined) throw new Error(`${INSTALL_HINT} (apt-get is not on PATH either)`);
  await withLock(options.lockFile ?? LOCK_FILE, async () => {
    // Another test process may have installed it while this one waited for the lock.
    if (findOnPath("redis-server", path) !== undefined) return;
    // A lock held by another apt-get (the system's, another project's) is waited for, not a failure.
    const wait = ["-o", "DPkg::Lock::Timeout=240"];
    await run(aptGet, [...wait, "update", "-qq"], path);
    await run(aptGet, [...wait, "install", "-y", "-qq", "--no-install-recommends", "redis-server"], path);
  });
  const installed = findOnPath("redis-server", path);
  if (installed === undefined) throw new Error(`apt-get installed redis-server, but it is not on PATH (${path})`);
  return installed;
}

/** Runs `command` to its end; rejects with its output when it fails. */
function run(command: string, args: string[], path: string): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const child = spawn(command, args, {
      env: { ...process.env, PATH: path, DEBIAN_FRONTEND: "noninteractive" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let output = "";
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
      output += chunk;
    });
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => {
      output += chunk;
    });
    const timer = setTimeout(() => child.kill("SIGKILL"), INSTALL_MS);
    child.once("error", (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.once("exit", (code, signal) => {
      clearTimeout(timer);
      if (code === 0) resolve();
      else reject(new Error(`${command} ${args.join(" ")} failed (${code ?? signal}):\n${output}`));
    });
  });
}

/**
 * Runs `task` while holding `file`, created exclusively with this process's pid in it. A lock left by a
 * process that died is taken over; a live holder is waited for, up to INSTALL_MS.
 */
async function withLock(file: string, task: () => Promise<void>): Promise<void> {
  const deadline = Date.now() + INSTALL_MS;
  for (;;) {
    try {
      const fd = openSync(file, "wx");
      writeFileSync(fd, String(process.pid));
      break;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
    }
    if (!isAlive(Number(readText(file)))) {
      unlinkQuietly(file);
      continue;
    }
    if (Date.now() > deadline) throw new Error(`gave up waiting for ${file}, held by another redis-server install`);
    // Another process is installing: nothing to await across processes, so look again shortly.
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  try {
    await task();
  } finally {
    unlinkQuietly(file);
  }
}

function readText(file: string): string {
  try {
    return readFileSync(file, "utf8");
  } catch {
    return "";
  }
}

function unlinkQuietly(file: string): void {
  try {
    unlinkSync(file);
  } catch {
    // Already gone: another waiter took the stale lock over first.
  }
}

/** Whether a process with this pid runs. An empty or unreadable lock (a holder between open and write) counts as live. */
function isAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** A port that was free a moment ago on 127.0.0.1. */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (address === null || typeof address === "string") throw new Error("no port");
  return address.port;
}

export interface RedisServer {
  /** `redis://127.0.0.1:PORT` */
  url: string;
  port: number;
  pid: number;
  /** SIGTERM, then SIGKILL after 3 s; resolves once the process has exited. */
  stop(): Promise<void>;
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
  return { url: `redis://127.0.0.1:${port}`, port, pid: child.pid, stop };
}
