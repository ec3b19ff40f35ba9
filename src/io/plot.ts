// Dependency-free SVG line charts of training metrics (used by `lmcl plot`).
//
// plotRunsSvg(runs, { x, ys, title }) draws one series per run × metric on shared axes:
// - colour identifies the run (a 10-colour palette, cycling), the dash pattern identifies the
//   metric; the legend on the right lists every series as "run · metric" (just "run" when there
//   is one metric, just "metric" when there is one run);
// - axes get "nice" ticks (1, 2, 2.5, 5 × 10^k) with light grid lines, the domain is the range of
//   the finite data rounded out to ticks (a constant series gets a small band around its value);
// - missing data: a row without the metric (or the x key) is skipped, so metrics logged on
//   different rows (train loss every step, test accuracy every epoch) still draw as lines; a row
//   whose value is present but not a finite number (NaN, null as written by JSON, ±Infinity)
//   breaks the line there. Each unbroken run of ≥ 2 points is one <polyline>; an isolated point
//   is a small <circle>. Rows are drawn in the order given;
// - the output is a standalone SVG document (XML-escaped labels, no scripts, no external
//   resources). Series are <g class="series" data-run=".." data-metric=".."> groups.
// readMetricsJsonl(path) reads a metrics.jsonl file into rows (tolerating a torn last line).
import fs from 'node:fs';

export interface PlotRun {
  label: string;
  rows: Record<string, unknown>[];
}

export interface PlotOptions {
  /** The row key for the horizontal axis (e.g. 'step' or 'epoch'). */
  x: string;
  /** Row keys drawn on the vertical axis (e.g. ['train_loss', 'test_loss']). */
  ys: string[];
  title?: string;
  /** Pixel size of the whole image (defaults 800 × 450; grows to fit a long legend). */
  width?: number;
  height?: number;
  /** Axis titles (defaults: the x key; the metric name when there is one, else 'value'). */
  xLabel?: string;
  yLabel?: string;
}

const PALETTE = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f', '#bcbd22', '#17becf'];
const DASHES = ['', '7 4', '2 3', '10 3 2 3', '4 2 4 6'];
const CHAR_WIDTH = 6.6; // rough width of a 12px sans-serif character, for layout only

function escapeXml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&apos;' })[c]!);
}

function coordinate(value: number): string {
  return (Math.round(value * 100) / 100).toString();
}

interface Scale {
  min: number;
  max: number;
  ticks: number[];
  step: number;
}

/** Nice ticks covering [low, high] with about `count` intervals. */
export function niceScale(low: number, high: number, count = 6): Scale {
  if (!Number.isFinite(low) || !Number.isFinite(high)) {
    low = 0;
    high = 1;
  }
  if (high < low) [low, high] = [high, low];
  if (high === low) {
    const pad = low === 0 ? 1 : Math.abs(low) * 0.05;
    low -= pad;
    high += pad;
  }
  const raw = (high - low) / count;
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  const step = ([1, 2, 2.5, 5, 10].map((m) => m * magnitude).find((candidate) => candidate >= raw * 0.999) ?? 10 * magnitude);
  const min = Math.floor(low / step + 1e-9) * step;
  const max = Math.ceil(high / step - 1e-9) * step;
  const ticks: number[] = [];
  const n = Math.round((max - min) / step);
  for (let index = 0; index <= n; index += 1) ticks.push(min + index * step);
  return { min, max: max > min ? max : min + step, ticks, step };
}

/** Tick label: as many decimals as the step needs, k/M suffixes for large round numbers. */
export function formatTick(value: number, step: number): string {
  if (Math.abs(value) < step * 1e-6) value = 0;
  const abs = Math.abs(step);
  if (value === 0) return abs >= 1e3 || abs < 1e-4 ? '0' : (0).toFixed(decimalsFor(step));
  if (abs >= 1e6 && abs < 1e15) return `${formatTick(value / 1e6, step / 1e6)}M`;
  if (abs >= 1e3 && abs < 1e15) return `${formatTick(value / 1e3, step / 1e3)}k`;
  if (abs >= 1e15 || (abs > 0 && abs < 1e-4)) return value.toExponential(1);
  return value.toFixed(decimalsFor(step));
}

/** Decimals needed to write multiples of `step` exactly (0.25 → 2, 0.5 → 1, 10 → 0). */
function decimalsFor(step: number): number {
  let decimals = 0;
  while (decimals < 10 && Math.abs(Math.round(step * 10 ** decimals) - step * 10 ** decimals) > 1e-6) decimals += 1;
  return decimals;
}

type Point = [number, number];

/** Splits a run's rows into unbroken segments of finite (x, y) points (see the file comment). */
function segmentsOf(rows: readonly Record<string, unknown>[], x: string, y: string): Point[][] {
  const segments: Point[][] = [];
  let current: Point[] = [];
  const flush = (): void => {
    if (current.length > 0) segments.push(current);
    current = [];
  };
  for (const row of rows) {
    if (row === null || typeof row !== 'object') continue;
    if (!(y in row) || row[y] === undefined || !(x in row) || row[x] === undefined) continue;
    const xv = row[x];
    const yv = row[y];
    if (typeof xv === 'number' && Number.isFinite(xv) && typeof yv === 'number' && Number.isFinite(yv)) current.push([xv, yv]);
    else flush();
  }
  flush();
  return segments;
}

/** Renders the chart as a standalone SVG document (see the file comment). */
export function plotRunsSvg(runs: readonly PlotRun[], options: PlotOptions): string {
  if (!Array.isArray(runs)) throw new TypeError('plotRunsSvg: runs must be an array of { label, rows }');
  if (!options || typeof options.x !== 'string' || !Array.isArray(options.ys) || options.ys.length === 0) {
    throw new TypeError('plotRunsSvg: options must be { x: string, ys: string[] (non-empty), title? }');
  }
  const { x, ys } = options;
  const series = runs.flatMap((run, runIndex) =>
    ys.map((metric, metricIndex) => ({
      run: run.label,
      metric,
      label: runs.length === 1 ? metric : ys.length === 1 ? run.label : `${run.label} · ${metric}`,
      color: PALETTE[runIndex % PALETTE.length]!,
      dash: DASHES[metricIndex % DASHES.length]!,
      segments: segmentsOf(run.rows ?? [], x, metric),
    })),
  );

  let xLow = Infinity, xHigh = -Infinity, yLow = Infinity, yHigh = -Infinity;
  for (const { segments } of series) {
    for (const segment of segments) {
      for (const [px, py] of segment) {
        xLow = Math.min(xLow, px);
        xHigh = Math.max(xHigh, px);
        yLow = Math.min(yLow, py);
        yHigh = Math.max(yHigh, py);
      }
    }
  }
  const hasData = Number.isFinite(xLow);
  const xScale = hasData ? niceScale(xLow, xHigh, 8) : niceScale(0, 1, 5);
  const yScale = hasData ? niceScale(yLow, yHigh, 6) : niceScale(0, 1, 5);

  // Layout.
  const longest = series.reduce((max, item) => Math.max(max, item.label.length), 0);
  const legendWidth = Math.min(320, Math.max(110, 44 + longest * CHAR_WIDTH));
  const legendRow = 18;
  const titleHeight = options.title ? 34 : 14;
  const yTickWidth = Math.max(...yScale.ticks.map((tick) => formatTick(tick, yScale.step).length)) * CHAR_WIDTH;
  const margin = { top: titleHeight + 6, right: legendWidth + 16, bottom: 52, left: Math.max(56, yTickWidth + 34) };
  const width = Math.max(320, options.width ?? 800);
  const height = Math.max(240, options.height ?? 450, margin.top + series.length * legendRow + 20);
  const plotWidth = width - margin.left - margin.right;
  const plotHeight = height - margin.top - margin.bottom;
  const px = (value: number): number => margin.left + ((value - xScale.min) / (xScale.max - xScale.min)) * plotWidth;
  const py = (value: number): number => margin.top + plotHeight - ((value - yScale.min) / (yScale.max - yScale.min)) * plotHeight;
  const left = margin.left, right = margin.left + plotWidth, top = margin.top, bottom = margin.top + plotHeight;

  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="Helvetica, Arial, sans-serif" font-size="12">`,
  );
  out.push(`<defs><clipPath id="lmcl-plot-area"><rect x="${left}" y="${top}" width="${coordinate(plotWidth)}" height="${coordinate(plotHeight)}"/></clipPath></defs>`);
  out.push(`<rect x="0" y="0" width="${width}" height="${height}" fill="#ffffff"/>`);
  if (options.title) out.push(`<text class="title" x="${coordinate(left + plotWidth / 2)}" y="22" text-anchor="middle" font-size="15" font-weight="bold">${escapeXml(options.title)}</text>`);

  // Grid and ticks.
  out.push('<g class="grid" stroke="#e5e5e5" stroke-width="1">');
  for (const tick of xScale.ticks) out.push(`<line x1="${coordinate(px(tick))}" y1="${top}" x2="${coordinate(px(tick))}" y2="${coordinate(bottom)}"/>`);
  for (const tick of yScale.ticks) out.push(`<line x1="${left}" y1="${coordinate(py(tick))}" x2="${coordinate(right)}" y2="${coordinate(py(tick))}"/>`);
  out.push('</g>');
  out.push('<g class="axes" stroke="#333333" stroke-width="1">');
  out.push(`<line x1="${left}" y1="${coordinate(bottom)}" x2="${coordinate(right)}" y2="${coordinate(bottom)}"/>`);
  out.push(`<line x1="${left}" y1="${top}" x2="${left}" y2="${coordinate(bottom)}"/>`);
  for (const tick of xScale.ticks) out.push(`<line x1="${coordinate(px(tick))}" y1="${coordinate(bottom)}" x2="${coordinate(px(tick))}" y2="${coordinate(bottom + 5)}"/>`);
  for (const tick of yScale.ticks) out.push(`<line x1="${left - 5}" y1="${coordinate(py(tick))}" x2="${left}" y2="${coordinate(py(tick))}"/>`);
  out.push('</g>');
  out.push('<g class="tick-labels" fill="#333333">');
  for (const tick of xScale.ticks) {
    out.push(`<text x="${coordinate(px(tick))}" y="${coordinate(bottom + 18)}" text-anchor="middle">${escapeXml(formatTick(tick, xScale.step))}</text>`);
  }
  for (const tick of yScale.ticks) {
    out.push(`<text x="${left - 8}" y="${coordinate(py(tick) + 4)}" text-anchor="end">${escapeXml(formatTick(tick, yScale.step))}</text>`);
  }
  out.push('</g>');
  const xLabel = options.xLabel ?? x;
  const yLabel = options.yLabel ?? (ys.length === 1 ? ys[0]! : 'value');
  out.push(`<text class="x-label" x="${coordinate(left + plotWidth / 2)}" y="${coordinate(height - 12)}" text-anchor="middle" font-size="13">${escapeXml(xLabel)}</text>`);
  const yLabelX = 16;
  const yLabelY = coordinate(top + plotHeight / 2);
  out.push(`<text class="y-label" x="${yLabelX}" y="${yLabelY}" text-anchor="middle" font-size="13" transform="rotate(-90 ${yLabelX} ${yLabelY})">${escapeXml(yLabel)}</text>`);

  // Series.
  out.push('<g class="plot" clip-path="url(#lmcl-plot-area)" fill="none" stroke-width="1.6" stroke-linejoin="round" stroke-linecap="round">');
  for (const item of series) {
    const dash = item.dash ? ` stroke-dasharray="${item.dash}"` : '';
    out.push(`<g class="series" data-run="${escapeXml(item.run)}" data-metric="${escapeXml(item.metric)}" stroke="${item.color}"${dash}>`);
    for (const segment of item.segments) {
      if (segment.length === 1) {
        const [sx, sy] = segment[0]!;
        out.push(`<circle cx="${coordinate(px(sx))}" cy="${coordinate(py(sy))}" r="2" fill="${item.color}" stroke="none"/>`);
      } else {
        out.push(`<polyline points="${segment.map(([sx, sy]) => `${coordinate(px(sx))},${coordinate(py(sy))}`).join(' ')}"/>`);
      }
    }
    out.push('</g>');
  }
  out.push('</g>');
  if (!hasData) out.push(`<text class="no-data" x="${coordinate(left + plotWidth / 2)}" y="${coordinate(top + plotHeight / 2)}" text-anchor="middle" fill="#888888">no data</text>`);

  // Legend.
  out.push(`<g class="legend" transform="translate(${coordinate(right + 16)} ${top})">`);
  series.forEach((item, index) => {
    const y = index * legendRow + 8;
    const dash = item.dash ? ` stroke-dasharray="${item.dash}"` : '';
    out.push(`<line x1="0" y1="${y}" x2="28" y2="${y}" stroke="${item.color}" stroke-width="2"${dash}/>`);
    out.push(`<text x="34" y="${y + 4}" fill="#222222">${escapeXml(item.label)}</text>`);
  });
  out.push('</g>');
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}

/**
 * Reads a metrics.jsonl file (one JSON object per line) into rows. Blank lines are skipped; a torn
 * last line (no trailing newline, e.g. from a crash mid-append) is ignored; any other bad line is
 * an Error naming the file and line.
 */
export function readMetricsJsonl(file: string): Record<string, unknown>[] {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') throw new Error(`metrics file '${file}' not found`, { cause: error });
    throw new Error(`metrics file '${file}': cannot read: ${(error as Error).message}`, { cause: error });
  }
  const lines = text.split('\n');
  const rows: Record<string, unknown>[] = [];
  lines.forEach((line, index) => {
    if (line.trim() === '') return;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch (error) {
      if (index === lines.length - 1) return; // torn last line
      throw new Error(`metrics file '${file}', line ${index + 1}: invalid JSON: ${(error as Error).message}`, { cause: error });
    }
    if (value === null || typeof value !== 'object' || Array.isArray(value)) {
      throw new Error(`metrics file '${file}', line ${index + 1}: expected a JSON object`);
    }
    rows.push(value as Record<string, unknown>);
  });
  return rows;
}
