/**
 * The links of the documentation: every relative link of the README, docs/, bench/ and the examples' READMEs
 * leads to a file of this checkout, and every `#anchor` to a heading of the page it names (slugged as GitHub
 * does), so a page that is renamed or a heading that is reworded cannot leave a reader at a dead end.
 * (That every code block runs is test/runtime/readme.test.ts's business.)
 */
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import GithubSlugger from "github-slugger";
import { describe, expect, test } from "vitest";
import { ROOT } from "./runtime/harness.ts";

/** Every Markdown page a reader can reach, as paths from the root. */
function pages(): string[] {
  const docs = readdirSync(join(ROOT, "docs")).filter((name) => name.endsWith(".md"));
  const examples = readdirSync(join(ROOT, "examples")).filter((name) =>
    existsSync(join(ROOT, "examples", name, "README.md")),
  );
  return [
    "README.md",
    "bench/README.md",
    ...docs.map((name) => `docs/${name}`),
    ...examples.map((name) => `examples/${name}/README.md`),
  ];
}

/** A page's text with its fenced code blocks and inline code blanked, so links written as code are not links. */
function prose(path: string): string {
  return readFileSync(join(ROOT, path), "utf8")
    .replace(/^```[\s\S]*?^```$/gm, "")
    .replace(/`[^`\n]*`/g, (code) => (code.includes("](") ? "" : code));
}

/** The anchors GitHub gives a page's headings. */
function anchorsOf(path: string): Set<string> {
  const slugger = new GithubSlugger();
  const headings = prose(path).match(/^#{1,6} .+$/gm) ?? [];
  return new Set(headings.map((heading) => slugger.slug(heading.replace(/^#+ /, ""))));
}

/** The relative links of a page: `[text](target)`, with the target's path resolved from the root. */
function linksOf(path: string): { target: string; file: string; anchor: string | undefined }[] {
  const links = [...prose(path).matchAll(/\]\(([^)\s]+)\)/g)].map((match) => match[1] as string);
  return links
    .filter((target) => !/^[a-z]+:/i.test(target))
    .map((target) => {
      const [file = "", anchor] = target.split("#");
      return { target, file: file === "" ? path : relative(ROOT, join(ROOT, dirname(path), file)), anchor };
    });
}

describe("the links of the documentation", () => {
  test("the pages are the README, docs/ and the examples' READMEs, and the README links to every page of docs/", () => {
    const all = pages();
    expect(all.filter((page) => page.startsWith("docs/")).length).toBeGreaterThanOrEqual(8);
    const fromReadme = new Set(linksOf("README.md").map((link) => link.file));
    for (const page of all.filter((one) => one.startsWith("docs/"))) expect(fromReadme, page).toContain(page);
  });

  test.each(pages())("every relative link of %s leads to a file, and every anchor to a heading", (path) => {
    for (const { target, file, anchor } of linksOf(path)) {
      expect(existsSync(join(ROOT, file)), `${path}: ${target} (no file ${file})`).toBe(true);
      if (anchor !== undefined) expect(anchorsOf(file), `${path}: ${target}`).toContain(anchor);
    }
  });

  test("the README stays short: at most 250 lines", () => {
    expect(readFileSync(join(ROOT, "README.md"), "utf8").split("\n").length).toBeLessThanOrEqual(250);
  });
});
