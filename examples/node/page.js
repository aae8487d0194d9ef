// @ts-check
/**
 * The demo page and its icon, read from the files beside this one: `page.html` (plain HTML, CSS and a small
 * script: no build step) with the server code it shows filled in, and `favicon.svg`.
 */
import { readFileSync } from "node:fs";

/** @param {string} name A file in this folder. */
const beside = (name) => readFileSync(new URL(name, import.meta.url), "utf8");

/**
 * The code the page shows: demo.js between its `served` markers, read from demo.js itself, so the page never
 * shows code other than what runs.
 */
function servedCode() {
  const region = /\/\/ #region served\n([\s\S]*?)\n\/\/ #endregion served/.exec(beside("demo.js"))?.[1];
  if (region === undefined) throw new Error("demo.js has no `// #region served` … `// #endregion served`");
  return region;
}

/** @param {string} text */
function escapeHtml(text) {
  return text.replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll(">", "&gt;");
}

/**
 * Light syntax colouring for the code panel: comments and strings, enough to read it at a glance.
 *
 * @param {string} code
 */
function highlighted(code) {
  return escapeHtml(code).replace(/(\/\/[^\n]*)|("(?:[^"\\\n]|\\.)*")/g, (match, comment) =>
    comment === undefined ? `<span class="str">${match}</span>` : `<span class="com">${match}</span>`,
  );
}

/** The tab icon, served on /favicon.svg (and /favicon.ico, for browsers that ask for it anyway). */
export const favicon = beside("favicon.svg");

export const page = beside("page.html").replace("<!-- the served code of demo.js -->", () => highlighted(servedCode()));
