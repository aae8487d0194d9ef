/** The fenced code blocks of the README and docs/, for the tests that run them. */
import { readdirSync, readFileSync } from "node:fs";
import { ROOT } from "./harness.ts";

/** One fenced block of a Markdown file: its language, its flag (`ignore`), its text, and the line it starts on. */
export interface Block {
  lang: string;
  flag: string;
  code: string;
  line: number;
}

/** The fenced blocks of a Markdown text, in order. */
export function blocksOf(markdown: string): Block[] {
  const blocks: Block[] = [];
  const fence = /^```(\S*)(?: (\S+))?\n([\s\S]*?)^```$/gm;
  for (const match of markdown.matchAll(fence)) {
    const line = markdown.slice(0, match.index).split("\n").length;
    blocks.push({ lang: match[1] ?? "", flag: match[2] ?? "", code: match[3] ?? "", line });
  }
  return blocks;
}

/** The blocks of a Markdown file of this checkout (a path from the root). */
export function blocksOfFile(path: string): Block[] {
  return blocksOf(readFileSync(`${ROOT}${path}`, "utf8"));
}

/** The Markdown a reader is sent to: the README and every page of docs/, as paths from the root. */
export function docFiles(): string[] {
  const pages = readdirSync(`${ROOT}docs`).filter((name) => name.endsWith(".md"));
  return ["README.md", ...pages.sort().map((name) => `docs/${name}`)];
}

/** The fenced blocks of the README and of every page of docs/, each with the file it is in. */
export function docBlocks(): (Block & { file: string })[] {
  return docFiles().flatMap((file) => blocksOfFile(file).map((block) => ({ ...block, file })));
}
