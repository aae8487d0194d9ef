/**
 * The package as a user receives it: packed from a checkout that has no dist/ (what a git clone, and so an
 * install from a git URL, starts from), installed offline into a scratch app, and imported there through every
 * entry of the exports map.
 */
import { execFile } from "node:child_process";
import { cp, mkdir, mkdtemp, readFile, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { promisify } from "node:util";
import { expect, test } from "vitest";
import { ROOT } from "./runtime/harness.ts";

const run = promisify(execFile);

type Conditions = { types?: string; default?: string } | string;

/** The exports map, with each entry's conditions. */
async function exportsMap(): Promise<Record<string, Conditions>> {
  const manifest = JSON.parse(await readFile(`${ROOT}package.json`, "utf8")) as { exports: Record<string, Conditions> };
  return manifest.exports;
}

/** The checkout's files as git sees them (tracked, or new and not ignored): never dist/ or node_modules/. */
async function checkoutFiles(): Promise<string[]> {
  const { stdout } = await run("git", ["ls-files", "--cached", "--others", "--exclude-standard", "-z"], { cwd: ROOT });
  return stdout.split("\0").filter((path) => path !== "");
}

test("npm pack builds dist/ itself, and the tarball installs offline and imports through every exports entry", async () => {
  const scratch = await mkdtemp(join(tmpdir(), "eventsource-server-pack-"));
  try {
    // A clone-like copy: the checkout's files without dist/, and the dev tools (TypeScript) of this one.
    const clone = join(scratch, "clone");
    const files = await checkoutFiles();
    expect(files).toContain("package.json");
    for (const path of files) {
      await mkdir(dirname(join(clone, path)), { recursive: true });
      await cp(join(ROOT, path), join(clone, path)).catch((error: NodeJS.ErrnoException) => {
        // A file deleted in the working tree but still in the index is not part of the checkout.
        if (error.code !== "ENOENT") throw error;
      });
    }
    expect(files.some((path) => path.startsWith("dist/"))).toBe(false);
    await symlink(join(ROOT, "node_modules"), join(clone, "node_modules"), "dir");

    const { stdout } = await run("npm", ["pack", "--json", "--pack-destination", scratch], {
      cwd: clone,
      timeout: 120_000,
    });
    const [packed] = JSON.parse(stdout) as { filename: string; files: { path: string }[] }[];
    if (packed === undefined) throw new Error(`npm pack printed no package:\n${stdout}`);
    const inTarball = new Set(packed.files.map((file) => file.path));
    // The README's install-from-a-checkout line names the tarball npm pack makes.
    const readme = await readFile(join(ROOT, "README.md"), "utf8");
    expect(readme).toContain(`npm install ../eventsource-server/${packed.filename} `);

    const entries = await exportsMap();
    expect(Object.keys(entries)).toContain(".");
    for (const [entry, conditions] of Object.entries(entries)) {
      const targets = typeof conditions === "string" ? [conditions] : Object.values(conditions);
      for (const target of targets)
        expect(inTarball, `${entry} → ${target} is in the tarball`).toContain(target.slice(2));
    }

    const app = join(scratch, "app");
    await mkdir(app);
    await writeFile(join(app, "package.json"), JSON.stringify({ name: "scratch-app", private: true, type: "module" }));
    await run("npm", ["install", "--offline", "--no-audit", "--no-fund", join(scratch, packed.filename)], {
      cwd: app,
      timeout: 120_000,
    });

    // Every code entry is imported by its public name; each must export what the source entry exports.
    const codeEntries = Object.keys(entries).filter((entry) => !entry.endsWith(".json"));
    const probe = `
      const names = {};
      for (const entry of ${JSON.stringify(codeEntries)}) {
        const specifier = entry === "." ? "eventsource-server" : "eventsource-server/" + entry.slice(2);
        names[entry] = Object.keys(await import(specifier)).sort();
      }
      const { encodeEvent, eventSourceResponse } = await import("eventsource-server");
      const text = await eventSourceResponse([{ event: "packed", data: encodeEvent("ok") }]).text();
      console.log(JSON.stringify({ names, text }));
    `;
    const result = await run(process.execPath, ["--input-type=module", "--eval", probe], { cwd: app });
    const { names, text } = JSON.parse(result.stdout) as { names: Record<string, string[]>; text: string };
    for (const entry of codeEntries) {
      const source = entry === "." ? "index" : entry.slice(2);
      const expected = Object.keys(await import(`${ROOT}src/${source}.ts`)).sort();
      expect(expected.length).toBeGreaterThan(0);
      expect(names[entry], `the exports of ${entry}`).toEqual(expected);
    }
    expect(text).toBe(":\n\nevent: packed\ndata: data: ok\ndata: \ndata: \n\n");
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
}, 240_000);
