/**
 * A real PostgreSQL server for the tests that need one: Debian's binaries (`/usr/lib/postgresql/<version>/bin`, the
 * newest) or the ones on PATH; when there are none and the tests run as root, `apt-get install -y postgresql` (once
 * per run, however many test files ask). Each test file gets a throwaway cluster: `initdb` in a temporary folder as
 * an unprivileged user (PostgreSQL refuses to run as root), the server listening only on a unix socket in that
 * folder, stopped by its pid, and the folder removed.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { chown, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { currentPath, findOnPath, findOrInstall } from "./install.ts";

/** What to type when the tests cannot install PostgreSQL themselves. */
export const POSTGRES_INSTALL_HINT =
  "PostgreSQL is not installed: install it (Debian/Ubuntu: `sudo apt-get install -y postgresql`, macOS: `brew install postgresql`) or run the tests as root to let them install it";

const LOCK_FILE = join(tmpdir(), "eventsource-server-postgres-install.lock");
const DEBIAN = "/usr/lib/postgresql";

/** The folder of `postgres` and `initdb`: Debian's newest version, else the one on PATH. */
function findBin(): string | undefined {
  if (existsSync(DEBIAN)) {
    const versions = readdirSync(DEBIAN)
      .filter((version) => existsSync(join(DEBIAN, version, "bin", "postgres")))
      .sort((a, b) => Number(b) - Number(a));
    if (versions[0] !== undefined) return join(DEBIAN, versions[0], "bin");
  }
  const initdb = findOnPath("initdb", currentPath());
  return initdb === undefined ? undefined : dirname(initdb);
}

let found: Promise<string> | undefined;

/** The folder of PostgreSQL's server binaries, installed first when missing and root. */
export function postgresBin(): Promise<string> {
  found ??= findOrInstall(findBin, { lockFile: LOCK_FILE, debianPackage: "postgresql", hint: POSTGRES_INSTALL_HINT });
  return found;
}

/** The user the server runs as: this one, or, as root, `postgres` (which the Debian package makes) or `nobody`. */
function serverUser(): { uid: number; gid: number } | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const users = readFileSync("/etc/passwd", "utf8").split("\n");
  for (const name of ["postgres", "nobody"]) {
    const fields = users.find((line) => line.startsWith(`${name}:`))?.split(":");
    if (fields !== undefined) return { uid: Number(fields[2]), gid: Number(fields[3]) };
  }
  throw new Error("running as root, and neither a postgres nor a nobody user exists to run PostgreSQL as");
}

/** Runs a binary to its end as `user`; rejects with its output when it fails. */
function run(command: string, args: string[], user: { uid: number; gid: number } | undefined): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const child = spawn(command, args, { ...user, cwd: tmpdir(), stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
      output += chunk;
    });
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => {
      output += chunk;
    });
    child.once("error", reject);
    child.once("exit", (code, signal) => {
      if (code === 0) resolve();
      else reject(new Error(`${command} ${args.join(" ")} failed (${code ?? signal}):\n${output}`));
    });
  });
}

export interface PostgresServer {
  /** The folder of the server's unix socket: node-postgres's `host`. */
  host: string;
  /** `postgresql://postgres@/postgres?host=<folder>`, for a `connectionString` or `DATABASE_URL`. */
  url: string;
  /** node-postgres connection options. */
  config: { host: string; user: string; database: string };
  pid: number;
  /**
   * Stops the server as a crash would (SIGQUIT: an immediate shutdown, recovered from the write-ahead log at the next
   * start), keeping its folder.
   */
  crash(): Promise<void>;
  /** Starts it again after `crash()`, on the same folder; resolves once it accepts connections. */
  start(): Promise<void>;
  /** `crash()`, then `start()`. */
  restart(): Promise<void>;
  /** Stops the server (SIGINT, a fast shutdown) and removes its folder. */
  stop(): Promise<void>;
}

/** A throwaway cluster, started; resolves once it accepts connections. */
export async function startPostgres(): Promise<PostgresServer> {
  const bin = await postgresBin();
  const user = serverUser();
  const folder = await mkdtemp(join(tmpdir(), "eventsource-pg-"));
  if (user !== undefined) await chown(folder, user.uid, user.gid);
  const data = join(folder, "data");
  await run(join(bin, "initdb"), ["-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"], user);
  // Nothing here must survive a crash of the machine, so nothing is flushed to disk (faster, on a shared machine); a
  // commit is still written to the log before it is acknowledged, so it survives a crash of the server (`crash()`).
  const args = ["-D", data, "-k", folder, "-c", "listen_addresses=", "-c", "fsync=off", "-c", "full_page_writes=off"];
  args.push("-c", "max_connections=200");
  let child = await launch(join(bin, "postgres"), args, user);
  const server: PostgresServer = {
    host: folder,
    url: `postgresql://postgres@/postgres?host=${encodeURIComponent(folder)}`,
    config: { host: folder, user: "postgres", database: "postgres" },
    pid: child.pid as number,
    async crash() {
      await stopped(child, "SIGQUIT");
    },
    async start() {
      child = await launch(join(bin, "postgres"), args, user);
      server.pid = child.pid as number;
    },
    async restart() {
      await server.crash();
      await server.start();
    },
    async stop() {
      await stopped(child, "SIGINT");
      await rm(folder, { recursive: true, force: true });
    },
  };
  return server;
}

/** Starts `postgres`; resolves once its log says it accepts connections. */
async function launch(
  binary: string,
  args: string[],
  user: { uid: number; gid: number } | undefined,
): Promise<ChildProcess> {
  const child = spawn(binary, args, { ...user, cwd: tmpdir(), stdio: ["ignore", "pipe", "pipe"] });
  let log = "";
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    await new Promise<void>((resolve, reject) => {
      const onData = (chunk: string) => {
        log += chunk;
        if (log.includes("database system is ready to accept connections")) resolve();
      };
      child.stdout?.setEncoding("utf8").on("data", onData);
      child.stderr?.setEncoding("utf8").on("data", onData);
      child.once("error", reject);
      child.once("exit", (code) => reject(new Error(`postgres exited (${code}) before it was ready:\n${log}`)));
      timer = setTimeout(() => reject(new Error(`postgres was not ready within 30 s:\n${log}`)), 30_000);
    });
  } catch (error) {
    await stopped(child, "SIGQUIT");
    throw error;
  } finally {
    clearTimeout(timer);
  }
  if (child.pid === undefined) throw new Error("postgres has no pid");
  return child;
}

/** Sends `signal`, then SIGKILL after 10 s; resolves once the process has exited. */
async function stopped(child: ChildProcess, signal: NodeJS.Signals): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  child.kill(signal);
  const killer = setTimeout(() => child.kill("SIGKILL"), 10_000);
  await exited;
  clearTimeout(killer);
}
