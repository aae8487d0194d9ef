/** What both benches record about the run: the machine, the runtimes' versions and the commit. */
import { execFileSync } from "node:child_process";
import { cpus, totalmem } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
export const root = resolve(here, "..");
export const bin = (name) => join(root, "node_modules", ".bin", name);
/** Deno's cache lives in the project, and it never looks for updates. */
export const denoEnv = { DENO_DIR: join(here, ".deno"), DENO_NO_UPDATE_CHECK: "1" };

/** The first line `cmd` prints, or "?" when it fails. */
export function commandOutput(cmd, args) {
  try {
    return execFileSync(cmd, args, { encoding: "utf8", env: { ...process.env, ...denoEnv } })
      .trim()
      .split("\n")[0];
  } catch {
    return "?";
  }
}

export function runMeta(quick) {
  return {
    date: new Date().toISOString(),
    quick,
    machine: `${cpus()[0]?.model ?? "?"}, ${cpus().length} cores, ${Math.round(totalmem() / 2 ** 30)} GiB`,
    node: process.version,
    bun: commandOutput(bin("bun"), ["--version"]),
    deno: commandOutput(bin("deno"), ["--version"]),
    commit: commandOutput("git", ["-C", root, "rev-parse", "--short", "HEAD"]),
  };
}
