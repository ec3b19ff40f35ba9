// Dependency-free SVG line charts of training metrics (used by `lmcl plot`).
//
// plotPanelsSvg(groups, panels, options) draws panels stacked in one SVG document, each with its
// own axes, metrics and legend (`lmcl plot`: train and test curves in separate panels).
// plotRunsSvg(runs, { x, ys, title }) is the one-panel form, one group per run.
// - A group is one run or several (seeds of one configuration): several are drawn as the mean
//   over the runs with a ±1 standard deviation band (sample std; only at x values every run of
//   the group has, so a run still in progress ends the mean there);
// - colour identifies the group, the dash pattern the metric (with one group: the colour is the
//   metric's); the legend on the right lists every series as "group · metric" (just "group" when
//   there is one metric, just "metric" when there is one group), with metric names turned into
//   words by `metricLabel`; the image widens to fit the longest legend entry, never clipping it;
// - axes get "nice" ticks (1, 2, 2.5, 5 × 10^k; whole numbers only with `integerX`, e.g.
//   epochs) with light grid lines; `logY` draws the vertical axis in powers of ten (values ≤ 0
//   cannot be drawn there and break the line). The domain is the range of the finite data
//   rounded out to ticks (a constant series gets a small band around its value);
// - missing data: a row without the metric (or the x key) is skipped, so metrics logged on
//   different rows (train loss every step, test accuracy every epoch) still draw as lines; a row
//   whose value is present but not a finite number (NaN, null as written by JSON, ±Infinity)
//   breaks the line there. Each unbroken run of ≥ 2 points is one <polyline>; an isolated point
//   is a small <circle>. Rows are drawn in the order given;
// - the output is a standalone SVG document (XML-escaped labels, no scripts, no external
//   resources). Series are <g class="series" data-run=".." data-metric=".."> groups, bands
//   <path class="band">. The clip paths' ids are derived from a hash of the document, so two
//   plots inlined in one HTML page never share an id (a shared id clips one plot to the other's
//   area).
// readMetricsJsonl(path) reads a metrics.jsonl file into rows (tolerating a torn last line).
import { createHash } from 'node:crypto';
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
  /** A logarithmic vertical axis. */
  logY?: boolean;
  /** Whole-number ticks on the horizontal axis (epochs). */
  integerX?: boolean;
}

/** Runs drawn as one series per metric: one run as is, several (seeds) as mean ± std. */
export interface PlotGroup {
  label: string;
  runs: PlotRun[];
}

/** One panel of plotPanelsSvg: its metrics, shared x key, titles. */
export interface PlotPanel {
  ys: string[];
  title?: string;
  yLabel?: string;
}

export interface PanelsOptions {
  x: string;
  title?: string;
  xLabel?: string;
  /** Width of the whole image (default 800; grows to fit the legend) and height of each panel (default 320). */
  width?: number;
  panelHeight?: number;
  logY?: boolean;
  integerX?: boolean;
  /** Legend words for a metric (default: the metric name). */
  metricLabel?: (metric: string) => string;
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
  /** Logarithmic (min, max and ticks are values; positions go by log10). */
  log?: boolean;
}

/** Nice ticks covering [low, high] with about `count` intervals; `integer`: whole-number steps only. */
export function niceScale(low: number, high: number, count = 6, integer = false): Scale {
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
  const multiples = [1, 2, 2.5, 5, 10].map((m) => m * magnitude).filter((candidate) => !integer || (candidate >= 1 && Number.isInteger(candidate)));
  const step = multiples.find((candidate) => candidate >= raw * 0.999) ?? (integer ? Math.max(1, Math.ceil(raw)) : 10 * magnitude);
  const min = Math.floor(low / step + 1e-9) * step;
  const max = Math.ceil(high / step - 1e-9) * step;
  const ticks: number[] = [];
  const n = Math.round((max - min) / step);
  for (let index = 0; index <= n; index += 1) ticks.push(min + index * step);
  return { min, max: max > min ? max : min + step, ticks, step };
}

/**
 * Powers of ten covering [low, high] (both > 0); within two decades also 2× and 5× (a loss from
 * 0.3 to 2.3 gets 0.2, 0.5, 1, 2, 5 rather than two ticks).
 */
export function logScale(low: number, high: number): Scale {
  if (!(low > 0) || !(high > 0) || !Number.isFinite(low) || !Number.isFinite(high)) {
    low = 1;
    high = 10;
  }
  const lowPower = Math.floor(Math.log10(low) + 1e-9);
  let highPower = Math.ceil(Math.log10(high) - 1e-9);
  if (highPower === lowPower) highPower += 1;
  const dense = highPower - lowPower <= 2;
  const candidates: number[] = [];
  for (let power = lowPower; power <= highPower; power += 1) {
    for (const multiple of dense ? [1, 2, 5] : [1]) candidates.push(Number((multiple * 10 ** power).toPrecision(1)));
  }
  // The domain: the nearest candidates around the data (not always whole decades).
  const min = [...candidates].reverse().find((tick) => tick <= low * (1 + 1e-9)) ?? candidates[0]!;
  const max = candidates.find((tick) => tick >= high * (1 - 1e-9)) ?? candidates[candidates.length - 1]!;
  const ticks = candidates.filter((tick) => tick >= min && tick <= max);
  return { min, max: max > min ? max : min * 10, ticks, step: 0, log: true };
}

function tickLabel(value: number, scale: Scale): string {
  if (!scale.log) return formatTick(value, scale.step);
  if (value >= 1e-3 && value < 1e6) return String(Number(value.toPrecision(1)));
  return value.toExponential(0);
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
function segmentsOf(rows: readonly Record<string, unknown>[], x: string, y: string, drawable: (value: number) => boolean = Number.isFinite): Point[][] {
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
    if (typeof xv === 'number' && Number.isFinite(xv) && typeof yv === 'number' && Number.isFinite(yv) && drawable(yv)) current.push([xv, yv]);
    else flush();
  }
  flush();
  return segments;
}

/** [x, low, high] of a ±std band. */
type BandPoint = [number, number, number];

interface Series {
  run: string;
  metric: string;
  label: string;
  color: string;
  dash: string;
  segments: Point[][];
  bands: BandPoint[][];
}

/**
 * The mean over a group's runs of one metric, at the x values every run has a drawable value
 * for, with the ±std band (sample standard deviation); a missing x breaks both.
 */
function meanOfRuns(runs: readonly PlotRun[], x: string, y: string, drawable: (value: number) => boolean): { segments: Point[][]; bands: BandPoint[][] } {
  const perRun = runs.map((run) => {
    const values = new Map<number, number>();
    for (const segment of segmentsOf(run.rows ?? [], x, y, drawable)) for (const [px, py] of segment) values.set(px, py);
    return values;
  });
  const xs = [...new Set(perRun.flatMap((values) => [...values.keys()]))].sort((a, b) => a - b);
  const segments: Point[][] = [];
  const bands: BandPoint[][] = [];
  let line: Point[] = [];
  let band: BandPoint[] = [];
  const flush = (): void => {
    if (line.length > 0) segments.push(line);
    if (band.length > 0) bands.push(band);
    line = [];
    band = [];
  };
  for (const px of xs) {
    const values = perRun.map((map) => map.get(px));
    if (values.some((value) => value === undefined)) {
      flush();
      continue;
    }
    const known = values as number[];
    const mean = known.reduce((a, v) => a + v, 0) / known.length;
    const std = known.length > 1 ? Math.sqrt(known.reduce((a, v) => a + (v - mean) ** 2, 0) / (known.length - 1)) : 0;
    line.push([px, mean]);
    band.push([px, mean - std, mean + std]);
  }
  flush();
  return { segments, bands };
}

const LEGEND_ROW = 18;

/** Renders panels stacked in one standalone SVG document (see the file comment). */
export function plotPanelsSvg(groups: readonly PlotGroup[], panels: readonly PlotPanel[], options: PanelsOptions): string {
  if (!Array.isArray(groups) || groups.some((group) => !group || !Array.isArray(group.runs) || group.runs.length === 0)) {
    throw new TypeError('plotPanelsSvg: groups must be an array of { label, runs } with at least one run each');
  }
  if (!Array.isArray(panels) || panels.length === 0 || panels.some((panel) => !Array.isArray(panel?.ys) || panel.ys.length === 0)) {
    throw new TypeError('plotPanelsSvg: panels must be a non-empty array of { ys: string[] (non-empty) }');
  }
  if (!options || typeof options.x !== 'string') throw new TypeError('plotPanelsSvg: options must be { x: string, ... }');
  const { x } = options;
  const metricLabel = options.metricLabel ?? ((metric: string) => metric);
  const logY = options.logY ?? false;
  const drawable = logY ? (value: number) => value > 0 : () => true;

  const built = panels.map((panel) => {
    const series: Series[] = groups.flatMap((group, groupIndex) => panel.ys.map((metric: string, metricIndex: number): Series => {
      const { segments, bands } = group.runs.length === 1
        ? { segments: segmentsOf(group.runs[0]!.rows ?? [], x, metric, drawable), bands: [] }
        : meanOfRuns(group.runs, x, metric, drawable);
      const words = metricLabel(metric);
      return {
        run: group.label,
        metric,
        label: groups.length === 1 ? words : panel.ys.length === 1 ? group.label : `${group.label} · ${words}`,
        // One group: the colour tells the metrics apart; several: the colour is the group's.
        color: PALETTE[(groups.length === 1 ? metricIndex : groupIndex) % PALETTE.length]!,
        dash: groups.length === 1 ? '' : DASHES[metricIndex % DASHES.length]!,
        segments,
        bands,
      };
    // A metric a run does not have (net1 of a single-network run, KD of a baseline) is neither
    // drawn nor listed in the legend.
    })).filter((item: Series) => item.segments.some((segment: readonly unknown[]) => segment.length > 0) || item.bands.some((band: readonly unknown[]) => band.length > 0));
    let xLow = Infinity, xHigh = -Infinity, yLow = Infinity, yHigh = -Infinity;
    for (const item of series) {
      for (const [px, py] of item.segments.flat()) {
        xLow = Math.min(xLow, px);
        xHigh = Math.max(xHigh, px);
        yLow = Math.min(yLow, py);
        yHigh = Math.max(yHigh, py);
      }
      for (const [, low, high] of item.bands.flat()) {
        if (!logY || low > 0) yLow = Math.min(yLow, low);
        yHigh = Math.max(yHigh, high);
      }
    }
    const hasData = Number.isFinite(xLow);
    const xScale = hasData ? niceScale(xLow, xHigh, 8, options.integerX ?? false) : niceScale(0, 1, 5, options.integerX ?? false);
    const yScale = logY ? logScale(yLow, yHigh) : hasData ? niceScale(yLow, yHigh, 6) : niceScale(0, 1, 5);
    return { panel, series, hasData, xScale, yScale };
  });

  // Layout: the legend is as wide as its longest entry (never clipped), the image as wide as needed.
  const longest = Math.max(0, ...built.flatMap(({ series }) => series.map((item) => item.label.length)));
  const legendWidth = Math.max(110, 44 + longest * CHAR_WIDTH);
  const titleHeight = options.title ? 34 : 8;
  const panelTitleHeight = 22;
  const yTickWidth = Math.max(...built.flatMap(({ yScale }) => yScale.ticks.map((tick) => tickLabel(tick, yScale).length))) * CHAR_WIDTH;
  const margin = { right: Math.ceil(legendWidth) + 16, bottom: 52, left: Math.max(56, yTickWidth + 34) };
  const minimumPlotWidth = 360;
  // The title (15px bold: ~1.4 × a 12px character) must fit too; it is centred on the whole image.
  const titleWidth = options.title ? Math.ceil(options.title.length * CHAR_WIDTH * 1.4) + 24 : 0;
  const width = Math.max(320, options.width ?? 800, margin.left + minimumPlotWidth + margin.right, titleWidth);
  const plotWidth = width - margin.left - margin.right;
  const panelHeights = built.map(({ series }) => Math.max(220, options.panelHeight ?? 320, panelTitleHeight + series.length * LEGEND_ROW + 20 + margin.bottom));
  const height = titleHeight + panelHeights.reduce((a, h) => a + h, 0);

  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="Helvetica, Arial, sans-serif" font-size="12">`);
  out.push(`<rect x="0" y="0" width="${width}" height="${height}" fill="#ffffff"/>`);
  if (options.title) out.push(`<text class="title" x="${coordinate(width / 2)}" y="22" text-anchor="middle" font-size="15" font-weight="bold">${escapeXml(options.title)}</text>`);
  let panelTop = titleHeight;
  built.forEach(({ panel, series, hasData, xScale, yScale }, panelIndex) => {
    const top = panelTop + panelTitleHeight;
    const plotHeight = panelHeights[panelIndex]! - panelTitleHeight - margin.bottom;
    panelTop += panelHeights[panelIndex]!;
    const left = margin.left, right = margin.left + plotWidth, bottom = top + plotHeight;
    const px = (value: number): number => left + ((value - xScale.min) / (xScale.max - xScale.min)) * plotWidth;
    const position = yScale.log ? (value: number) => Math.log10(Math.max(value, yScale.min * 1e-3)) : (value: number) => value;
    const py = (value: number): number => bottom - ((position(value) - position(yScale.min)) / (position(yScale.max) - position(yScale.min))) * plotHeight;
    const clipId = `${CLIP_PLACEHOLDER}-${panelIndex}`;
    out.push(`<g class="panel" data-title="${escapeXml(panel.title ?? '')}">`);
    out.push(`<defs><clipPath id="${clipId}"><rect x="${left}" y="${coordinate(top)}" width="${coordinate(plotWidth)}" height="${coordinate(plotHeight)}"/></clipPath></defs>`);
    if (panel.title) out.push(`<text class="panel-title" x="${coordinate(left + plotWidth / 2)}" y="${coordinate(top - 7)}" text-anchor="middle" font-size="13" font-weight="bold">${escapeXml(panel.title)}</text>`);

    // Grid and ticks.
    out.push('<g class="grid" stroke="#e5e5e5" stroke-width="1">');
    for (const tick of xScale.ticks) out.push(`<line x1="${coordinate(px(tick))}" y1="${coordinate(top)}" x2="${coordinate(px(tick))}" y2="${coordinate(bottom)}"/>`);
    for (const tick of yScale.ticks) out.push(`<line x1="${left}" y1="${coordinate(py(tick))}" x2="${coordinate(right)}" y2="${coordinate(py(tick))}"/>`);
    out.push('</g>');
    out.push('<g class="axes" stroke="#333333" stroke-width="1">');
    out.push(`<line x1="${left}" y1="${coordinate(bottom)}" x2="${coordinate(right)}" y2="${coordinate(bottom)}"/>`);
    out.push(`<line x1="${left}" y1="${coordinate(top)}" x2="${left}" y2="${coordinate(bottom)}"/>`);
    for (const tick of xScale.ticks) out.push(`<line x1="${coordinate(px(tick))}" y1="${coordinate(bottom)}" x2="${coordinate(px(tick))}" y2="${coordinate(bottom + 5)}"/>`);
    for (const tick of yScale.ticks) out.push(`<line x1="${left - 5}" y1="${coordinate(py(tick))}" x2="${left}" y2="${coordinate(py(tick))}"/>`);
    out.push('</g>');
    out.push('<g class="tick-labels" fill="#333333">');
    for (const tick of xScale.ticks) out.push(`<text class="x-tick" x="${coordinate(px(tick))}" y="${coordinate(bottom + 18)}" text-anchor="middle">${escapeXml(tickLabel(tick, xScale))}</text>`);
    for (const tick of yScale.ticks) out.push(`<text class="y-tick" x="${left - 8}" y="${coordinate(py(tick) + 4)}" text-anchor="end">${escapeXml(tickLabel(tick, yScale))}</text>`);
    out.push('</g>');
    const xLabel = options.xLabel ?? x;
    const yLabel = panel.yLabel ?? (panel.ys.length === 1 ? metricLabel(panel.ys[0]!) : 'value');
    out.push(`<text class="x-label" x="${coordinate(left + plotWidth / 2)}" y="${coordinate(bottom + 40)}" text-anchor="middle" font-size="13">${escapeXml(xLabel)}</text>`);
    const yLabelX = 16;
    const yLabelY = coordinate(top + plotHeight / 2);
    out.push(`<text class="y-label" x="${yLabelX}" y="${yLabelY}" text-anchor="middle" font-size="13" transform="rotate(-90 ${yLabelX} ${yLabelY})">${escapeXml(yLabel)}</text>`);

    // Series (bands under their lines).
    out.push(`<g class="plot" clip-path="url(#${clipId})" fill="none" stroke-width="1.6" stroke-linejoin="round" stroke-linecap="round">`);
    for (const item of series) {
      const dash = item.dash ? ` stroke-dasharray="${item.dash}"` : '';
      out.push(`<g class="series" data-run="${escapeXml(item.run)}" data-metric="${escapeXml(item.metric)}" stroke="${item.color}"${dash}>`);
      for (const band of item.bands) {
        if (band.length < 2) continue;
        const upper = band.map(([bx, , high]) => `${coordinate(px(bx))},${coordinate(py(high))}`);
        const lower = [...band].reverse().map(([bx, low]) => `${coordinate(px(bx))},${coordinate(py(low))}`);
        out.push(`<path class="band" d="M ${[...upper, ...lower].join(' L ')} Z" fill="${item.color}" fill-opacity="0.18" stroke="none"/>`);
      }
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
    out.push(`<g class="legend" transform="translate(${coordinate(right + 16)} ${coordinate(top)})">`);
    series.forEach((item, index) => {
      const y = index * LEGEND_ROW + 8;
      const dash = item.dash ? ` stroke-dasharray="${item.dash}"` : '';
      out.push(`<line x1="0" y1="${y}" x2="28" y2="${y}" stroke="${item.color}" stroke-width="2"${dash}/>`);
      out.push(`<text x="34" y="${y + 4}" fill="#222222">${escapeXml(item.label)}</text>`);
    });
    out.push('</g>');
    out.push('</g>');
  });
  out.push('</svg>');
  const document = `${out.join('\n')}\n`;
  const id = `lmcl-plot-${createHash('sha256').update(document).digest('hex').slice(0, 12)}`;
  return document.split(CLIP_PLACEHOLDER).join(id);
}

/** Stands for the document's clip-path id prefix until the document is hashed. */
const CLIP_PLACEHOLDER = '@lmcl-clip@';

/** Renders one panel of runs (one group per run) as a standalone SVG document (see the file comment). */
export function plotRunsSvg(runs: readonly PlotRun[], options: PlotOptions): string {
  if (!Array.isArray(runs)) throw new TypeError('plotRunsSvg: runs must be an array of { label, rows }');
  if (!options || typeof options.x !== 'string' || !Array.isArray(options.ys) || options.ys.length === 0) {
    throw new TypeError('plotRunsSvg: options must be { x: string, ys: string[] (non-empty), title? }');
  }
  const groups = runs.map((run) => ({ label: run.label, runs: [run] }));
  const titleHeight = options.title ? 34 : 8;
  return plotPanelsSvg(groups, [{ ys: options.ys, yLabel: options.yLabel }], {
    x: options.x, title: options.title, xLabel: options.xLabel, width: options.width, logY: options.logY, integerX: options.integerX,
    panelHeight: options.height !== undefined ? options.height - titleHeight : 450 - titleHeight,
  });
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
