// Render every ```mermaid block of the Markdown files given as arguments
// with Mermaid itself, inside jsdom, and report each block that does not
// render.
//
// Usage: node tools/check-mermaid.mjs FILE.md...
// Prints one "ok" line per block on stdout. Exits 1 when a block fails or a
// file has no Mermaid block, and 2 on a usage error.
//
// jsdom has no layout engine, so text sizes below are estimates and the SVG
// is not a faithful drawing. Rendering still runs Mermaid's parser and the
// checks that come after it, such as the Gantt chart's date parsing, which
// mermaid.parse() alone skips.
import { readFileSync } from "node:fs";
import { JSDOM } from "jsdom";

const files = process.argv.slice(2);
if (files.length === 0) {
  console.error("usage: node tools/check-mermaid.mjs FILE.md...");
  process.exit(2);
}

const dom = new JSDOM("<!DOCTYPE html><html><body></body></html>", { pretendToBeVisual: true });
for (const name of ["window", "document", "navigator", "Element", "HTMLElement", "SVGElement", "Node", "DOMParser", "CSSStyleSheet", "MutationObserver", "getComputedStyle"]) {
  if (!(name in globalThis)) {
    globalThis[name] = name === "window" ? dom.window : dom.window[name];
  }
}
// Estimated text metrics: 8 px a character, 16 px a line.
const svgElement = dom.window.SVGElement.prototype;
svgElement.getBBox = function () {
  return { x: 0, y: 0, width: 8 * (this.textContent || "").length, height: 16 };
};
svgElement.getComputedTextLength = function () {
  return 8 * (this.textContent || "").length;
};

const { default: mermaid } = await import("mermaid");
mermaid.initialize({ startOnLoad: false, securityLevel: "strict" });

const blockPattern = /^```mermaid[ \t]*\n([\s\S]*?)^```[ \t]*$/gm;
let failures = 0;
let rendered = 0;
for (const file of files) {
  const text = readFileSync(file, "utf8");
  const blocks = [...text.matchAll(blockPattern)].map((match) => match[1]);
  if (blocks.length === 0) {
    console.error(`${file}: no mermaid block found`);
    failures += 1;
    continue;
  }
  for (const [index, block] of blocks.entries()) {
    const label = `${file} block ${index + 1}`;
    try {
      const { diagramType } = await mermaid.parse(block);
      await mermaid.render(`check${rendered}`, block);
      rendered += 1;
      console.log(`ok ${label}: ${diagramType}`);
    } catch (error) {
      failures += 1;
      const message = String(error?.message ?? error).split("\n").slice(0, 4).join("\n  ");
      console.error(`${label} does not render:\n  ${message}`);
    }
  }
}
process.exit(failures === 0 ? 0 : 1);
