// Draws the report as an SVG bar chart, by hand: one horizontal bar per workload for the
// privdav/Apache ratio, the parity line at 1.0 and each workload's target as a tick.
import { BenchReport, formatNumber } from './report';

const plotWidth = 520;
const rightMargin = 150;
// Wide enough for the longest label at 13 px (about 7.3 px per character in DejaVu Sans).
const characterWidth = 7.3;
const rowHeight = 30;
const top = 70;
const bottomSpace = 60;

function escapeXml(text: string): string {
  return text.replace(/[<>&"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

export function renderChart(report: BenchReport): string {
  const rows = report.workloads.filter((workload) => workload.ratio !== null);
  const largest = Math.max(1.5, ...rows.map((row) => Math.max(row.ratio ?? 0, row.ratioTarget ?? 0)));
  // Cap the axis so one runaway ratio does not flatten the rest; longer bars are marked with "▸".
  const axisMax = Math.min(6, Math.ceil(largest * 1.1 * 2) / 2);
  const labels = rows.map((row) => `${row.title}${row.noisy ? ' (noisy)' : ''}`);
  const labelWidth = Math.ceil(Math.max(200, ...labels.map((label) => label.length * characterWidth)) + 30);
  const width = labelWidth + plotWidth + rightMargin;
  const x = (ratio: number): number => labelWidth + (Math.min(ratio, axisMax) / axisMax) * plotWidth;
  const height = top + rows.length * rowHeight + bottomSpace;
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" ` +
      'font-family="DejaVu Sans, Arial, sans-serif" font-size="13">',
    `<rect width="${width}" height="${height}" fill="#ffffff"/>`,
    `<text x="20" y="28" font-size="17" font-weight="bold">privdav / Apache mod_dav_fs (ratio &gt; 1: privdav ahead)</text>`,
    `<text x="20" y="50" fill="#555">${escapeXml(
      `${report.metadata.startedAt} · ${report.metadata.mode}, ${report.metadata.rounds} round(s), medians · ticks: targets`,
    )}</text>`,
  ];
  const axisBottom = top + rows.length * rowHeight;
  for (let tick = 0; tick <= axisMax + 1e-9; tick += 0.5) {
    const tickX = x(tick);
    const isParity = Math.abs(tick - 1) < 1e-9;
    parts.push(
      `<line x1="${tickX}" y1="${top - 6}" x2="${tickX}" y2="${axisBottom}" stroke="${isParity ? '#333' : '#ddd'}" ` +
        `stroke-width="${isParity ? 1.5 : 1}"${isParity ? ' stroke-dasharray="5,3"' : ''}/>`,
      `<text x="${tickX}" y="${axisBottom + 18}" text-anchor="middle" fill="#555">${tick.toFixed(1)}</text>`,
    );
  }
  rows.forEach((row, index) => {
    const ratio = row.ratio as number;
    const y = top + index * rowHeight;
    const colour = row.met === null ? '#8a9bb0' : row.met ? '#3a9a5b' : '#c8483c';
    const label = labels[index];
    // A workload with an absolute target (cold start) shows privdav's figure beside the ratio.
    const absolute =
      row.maximumTarget !== null && row.privdav !== null
        ? ` · ${formatNumber(row.privdav.median)} ${row.unit} (≤ ${row.maximumTarget})`
        : '';
    parts.push(
      `<text x="${labelWidth - 10}" y="${y + 19}" text-anchor="end">${escapeXml(label)}</text>`,
      `<rect x="${labelWidth}" y="${y + 6}" width="${Math.max(1, x(ratio) - labelWidth)}" height="${rowHeight - 12}" ` +
        `fill="${colour}"${row.noisy ? ' fill-opacity="0.6"' : ''}/>`,
      `<text x="${x(ratio) + 6}" y="${y + 19}" paint-order="stroke" stroke="#fff" stroke-width="3">${ratio.toFixed(2)}${ratio > axisMax ? ' ▸' : ''}${escapeXml(absolute)}</text>`,
    );
    if (row.ratioTarget !== null) {
      const targetX = x(row.ratioTarget);
      parts.push(
        `<line x1="${targetX}" y1="${y + 2}" x2="${targetX}" y2="${y + rowHeight - 2}" stroke="#000" stroke-width="3"/>`,
      );
    }
  });
  parts.push(
    `<text x="20" y="${height - 14}" fill="#555">green: target met · red: missed · grey: no ratio target · ` +
      'times (µs/entry, ms) inverted so that &gt; 1 still means privdav ahead</text>',
    '</svg>',
    '',
  );
  return parts.join('\n');
}
