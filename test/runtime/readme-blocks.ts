/** The fenced code blocks of the README, for the tests that run them. */
import { readFileSync } from "node:fs";
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
