/**
 * An SVG chart of a results JSON, written by hand (no dependency): one panel per scenario, one bar per adapter,
 * the bar's length its ratio to the scenario's baseline. `node bench/chart.mjs [results.json]` writes the .svg.
 */
import { readFileSync, writeFileSync } from "node:fs";

const COLORS = { ours: "#1f6feb", a: "#8b949e", b: "#6e7681" };
const PEER = "#d29922";
const LABEL = {
  ours: "eventsource-server",
  hono: "hono",
  h3: "h3",
  "better-sse": "better-sse",
  "eventsource-encoder": "eventsource-encoder",
  a: "baseline (a)",
  b: "baseline (b)",
};
const escapeXml = (s) => String(s).replace(/[<>&"]/g, (c) => `&#${c.charCodeAt(0)};`);

export function renderChart(results) {
  const panels = results.blocks.filter((b) => b.baseline !== undefined);
  const width = 760;
  const barArea = 380;
  const left = 170;
  const rowH = 18;
  const parts = [];
  let y = 40;
  for (const block of panels) {
    const title =
      block.scenario === "idle"
        ? `idle on ${block.runtime}: heap per connection, × baseline (${block.baseline}), shorter is better`
        : `${block.scenario} on ${block.runtime}: speed, × baseline (${block.baseline}), longer is better`;
    parts.push(`<text x="10" y="${y}" font-weight="bold">${escapeXml(title)}</text>`);
    y += 8;
    const max = Math.max(1, ...block.rows.map((r) => r.ratio ?? 0));
    const scale = barArea / max;
    const one = left + scale;
    for (const row of block.rows) {
      const name = LABEL[row.adapter] ?? row.adapter;
      const emulated = row.emulated && !/^[ab]$/.test(row.adapter) ? " *" : "";
      parts.push(`<text x="${left - 6}" y="${y + 13}" text-anchor="end">${escapeXml(name + emulated)}</text>`);
      if (row.missing) parts.push(`<text x="${left + 4}" y="${y + 13}" fill="#6e7681">not available</text>`);
      else if (!row.valid) parts.push(`<text x="${left + 4}" y="${y + 13}" fill="#cf222e">invalid output</text>`);
      else if (row.ratio !== null) {
        const w = Math.max(1, row.ratio * scale);
        parts.push(
          `<rect x="${left}" y="${y + 3}" width="${w.toFixed(1)}" height="${rowH - 5}" fill="${COLORS[row.adapter] ?? PEER}"/>`,
        );
        parts.push(`<text x="${(left + w + 4).toFixed(1)}" y="${y + 13}">${row.ratio.toFixed(2)}×</text>`);
      }
      y += rowH;
    }
    parts.push(
      `<line x1="${one.toFixed(1)}" x2="${one.toFixed(1)}" y1="${y - rowH * block.rows.length}" y2="${y}" stroke="#cf222e" stroke-dasharray="3,3"/>`,
    );
    y += 22;
  }
  const m = results.meta;
  const foot = `${m.date.slice(0, 10)} · ${m.machine} · Node ${m.node} · * emulated channel (the package has none)`;
  parts.push(`<text x="10" y="${y}" fill="#6e7681">${escapeXml(foot)}</text>`);
  const height = y + 12;
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="system-ui, sans-serif" font-size="12">`,
    `<rect width="100%" height="100%" fill="#fff"/>`,
    `<text x="10" y="20" font-size="15" font-weight="bold">eventsource-server vs peers (dashed line: the baseline, 1×)</text>`,
    ...parts,
    "</svg>",
    "",
  ].join("\n");
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const file = process.argv[2] ?? new URL("results.json", import.meta.url).pathname;
  const svg = file.replace(/\.json$/, ".svg");
  writeFileSync(svg, renderChart(JSON.parse(readFileSync(file, "utf8"))));
  process.stdout.write(`written: ${svg}\n`);
}
