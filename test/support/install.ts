/**
 * Finding a server binary the tests need, and installing its Debian package when it is missing and the tests run as
 * root: once per run, however many test files ask at the same time (a lock file makes the others wait, then find it
 * installed). A machine where it can be neither found nor installed fails the tests that need it, with one line that
 * says what to install: a skipped test would report a pass for code that never ran.
 */
import { spawn } from "node:child_process";
import { accessSync, constants, openSync, readFileSync, unlinkSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { delimiter, join } from "node:path";

/** apt-get on a fresh machine: about 20 s; waiting for another installer (ours or the system's) may add more. */
const INSTALL_MS = 300_000;

/** This process's PATH. */
export function currentPath(): string {
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

export interface InstallOptions {
  /** The PATH to search and to run apt-get with. Default: this process's. */
  path?: string;
  /** The user id deciding whether installing is allowed. Default: this process's. */
  uid?: number;
  /** The lock file that serialises installs. */
  lockFile: string;
  /** The Debian package that holds the binary. */
  debianPackage: string;
  /** The one line that says what to install, when the tests cannot. */
  hint: string;
}

/**
 * The binary `find()` finds. Missing and root: `apt-get update && apt-get install -y <package>`, run by one caller
 * at a time, and skipped by the callers that find it installed once they get the lock. Missing and not root: rejects
 * with the hint.
 */
export async function findOrInstall(find: () => string | undefined, options: InstallOptions): Promise<string> {
  const path = options.path ?? currentPath();
  const existing = find();
  if (existing !== undefined) return existing;
  if ((options.uid ?? process.getuid?.()) !== 0) throw new Error(options.hint);
  const aptGet = findOnPath("apt-get", path);
  if (aptGet === undefined) throw new Error(`${options.hint} (apt-get is not on PATH either)`);
  await withLock(options.lockFile, async () => {
    // Another test process may have installed it while this one waited for the lock.
    if (find() !== undefined) return;
    // A lock held by another apt-get (the system's, another project's) is waited for, not a failure.
    const wait = ["-o", "DPkg::Lock::Timeout=240"];
    await run(aptGet, [...wait, "update", "-qq"], path);
    await run(aptGet, [...wait, "install", "-y", "-qq", "--no-install-recommends", options.debianPackage], path);
  });
  const installed = find();
  if (installed === undefined) throw new Error(`apt-get installed ${options.debianPackage}, but it cannot be found`);
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
    if (Date.now() > deadline) throw new Error(`gave up waiting for ${file}, held by another install`);
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
