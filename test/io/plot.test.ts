// plotRunsSvg: well-formed standalone SVG, one series per run × metric, gaps break lines.
import { describe, expect, it } from 'vitest';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import { formatTick, niceScale, plotPanelsSvg, plotRunsSvg, readMetricsJsonl } from '../../src/io/plot.js';

/** Whether the optional dependency sharp (which renders SVG with librsvg) loads here. */
function sharpLoads(): boolean {
  try {
    createRequire(import.meta.url)('sharp');
    return true;
  } catch {
    return false;
  }
}

/** A minimal XML well-formedness check: balanced tags, quoted attributes, escaped text. */
function parseXml(text: string): { name: string; attributes: Record<string, string>; parent: number }[] {
  const elements: { name: string; attributes: Record<string, string>; parent: number }[] = [];
  const stack: number[] = [];
  const tag = /<(\/?)([A-Za-z][\w:-]*)((?:\s+[\w:-]+="[^"<]*")*)\s*(\/?)>/y;
  let index = 0;
  let rootClosed = false;
  while (index < text.length) {
    const next = text.indexOf('<', index);
    const chunk = next < 0 ? text.slice(index) : text.slice(index, next);
    if (/&(?!(amp|lt|gt|quot|apos);)/.test(chunk)) throw new Error(`unescaped '&' in text near ${index}`);
    if (chunk.includes('>')) throw new Error(`stray '>' near ${index}`);
    if (chunk.trim() !== '' && stack.length === 0) throw new Error('text outside the root element');
    if (next < 0) break;
    tag.lastIndex = next;
    const match = tag.exec(text);
    if (!match) throw new Error(`malformed tag at ${next}: ${text.slice(next, next + 60)}`);
    const [, closing, name, rawAttributes, selfClosing] = match;
    if (closing) {
      const open = stack.pop();
      if (open === undefined || elements[open]!.name !== name) throw new Error(`mismatched </${name}>`);
      if (stack.length === 0) rootClosed = true;
    } else {
      if (rootClosed || (stack.length === 0 && elements.length > 0)) throw new Error('more than one root element');
      const attributes: Record<string, string> = {};
      for (const [, key, value] of rawAttributes!.matchAll(/([\w:-]+)="([^"]*)"/g)) {
        if (key! in attributes) throw new Error(`duplicate attribute ${key}`);
        attributes[key!] = value!;
      }
      elements.push({ name: name!, attributes, parent: stack.at(-1) ?? -1 });
      if (selfClosing) {
        if (stack.length === 0) rootClosed = true;
      } else stack.push(elements.length - 1);
    }
    index = tag.lastIndex;
  }
  if (stack.length > 0 || !rootClosed) throw new Error('unclosed elements');
  return elements;
}

function curve(n: number, f: (i: number) => number): Record<string, number>[] {
  return Array.from({ length: n }, (_, i) => ({ step: i * 100, epoch: i, loss: f(i), acc: 1 - f(i) / 3 }));
}

describe('plotRunsSvg', () => {
  it('draws one polyline per run × metric with axes, ticks, labels and a legend', () => {
    const runs = [
      { label: 'resnet32 <a&b>', rows: curve(20, (i) => 2.3 * Math.exp(-i / 5)) },
      { label: 'wrn_16_2', rows: curve(15, (i) => 2.3 * Math.exp(-i / 4)) },
      { label: 'vgg8', rows: curve(10, (i) => 2.3 / (1 + i)) },
    ];
    const svg = plotRunsSvg(runs, { x: 'step', ys: ['loss', 'acc'], title: 'CIFAR-100 "cohort"' });
    const elements = parseXml(svg);
    expect(elements[0]!.name).toBe('svg');
    expect(elements[0]!.attributes.xmlns).toBe('http://www.w3.org/2000/svg');
    expect(elements.filter((e) => e.name === 'polyline')).toHaveLength(6);
    const series = elements.filter((e) => e.attributes.class === 'series');
    expect(series.map((e) => [e.attributes['data-run'], e.attributes['data-metric']])).toEqual([
      ['resnet32 &lt;a&amp;b&gt;', 'loss'], ['resnet32 &lt;a&amp;b&gt;', 'acc'],
      ['wrn_16_2', 'loss'], ['wrn_16_2', 'acc'], ['vgg8', 'loss'], ['vgg8', 'acc'],
    ]);
    expect(svg).toContain('CIFAR-100 &quot;cohort&quot;');
    expect(svg).toContain('resnet32 &lt;a&amp;b&gt; · loss');
    // Every point lies inside the plot area (the clip rectangle).
    const clip = elements.find((e) => e.name === 'rect' && e.parent >= 0 && elements[e.parent]!.name === 'clipPath')!.attributes;
    const [x0, y0] = [Number(clip.x), Number(clip.y)];
    const [x1, y1] = [x0 + Number(clip.width), y0 + Number(clip.height)];
    for (const polyline of elements.filter((e) => e.name === 'polyline')) {
      for (const point of polyline.attributes.points!.split(' ')) {
        const [px, py] = point.split(',').map(Number) as [number, number];
        expect(px).toBeGreaterThanOrEqual(x0 - 1e-6);
        expect(px).toBeLessThanOrEqual(x1 + 1e-6);
        expect(py).toBeGreaterThanOrEqual(y0 - 1e-6);
        expect(py).toBeLessThanOrEqual(y1 + 1e-6);
      }
    }
    // Tick labels on both axes, axis titles, legend entries for all six series.
    const labels = [...svg.matchAll(/<text[^>]*>([^<]*)<\/text>/g)].map((m) => m[1]);
    expect(labels).toContain('0');
    expect(labels).toContain('step');
    expect(labels).toContain('value');
    expect(elements.filter((e) => e.name === 'line' && e.parent >= 0 && elements[e.parent]!.attributes.class === 'legend')).toHaveLength(6);
  });

  it('breaks lines at NaN / null values but not at rows that lack the metric', () => {
    const rows: Record<string, unknown>[] = [
      { step: 0, loss: 2 }, { step: 1, loss: 1.8 }, { step: 1, test_acc: 0.1 }, { step: 2, loss: 1.7 },
      { step: 3, loss: Number.NaN }, { step: 4, loss: 1.5 }, { step: 5, loss: 1.4 },
      { step: 6, loss: null }, { step: 7, loss: 1.2 }, { step: 8, loss: Infinity }, { step: 9, loss: 1 }, { step: 10, loss: 0.9 },
    ];
    const svg = plotRunsSvg([{ label: 'r', rows }], { x: 'step', ys: ['loss', 'test_acc'] });
    const elements = parseXml(svg);
    const lossGroup = elements.findIndex((e) => e.attributes['data-metric'] === 'loss');
    const accGroup = elements.findIndex((e) => e.attributes['data-metric'] === 'test_acc');
    const children = (group: number, name: string) => elements.filter((e) => e.parent === group && e.name === name);
    expect(children(lossGroup, 'polyline').map((p) => p.attributes.points!.split(' ').length)).toEqual([3, 2, 2]);
    expect(children(lossGroup, 'circle')).toHaveLength(1); // the isolated point at step 7
    expect(children(accGroup, 'circle')).toHaveLength(1);
  });

  it('handles empty and constant data', () => {
    const empty = plotRunsSvg([{ label: 'r', rows: [] }], { x: 'epoch', ys: ['loss'] });
    expect(() => parseXml(empty)).not.toThrow();
    expect(empty).toContain('no data');
    const flat = plotRunsSvg([{ label: 'r', rows: curve(5, () => 1) }], { x: 'epoch', ys: ['loss'] });
    const points = parseXml(flat).find((e) => e.name === 'polyline')!.attributes.points!;
    expect(points).not.toMatch(/NaN|Infinity/);
    expect(() => plotRunsSvg([], { x: 'step', ys: [] })).toThrow(/ys: string\[\] \(non-empty\)/);
  });

  it('chooses nice ticks and labels', () => {
    expect(niceScale(0.03, 2.31, 6)).toMatchObject({ min: 0, max: 2.5, step: 0.5 });
    expect(niceScale(0, 78_000, 8)).toMatchObject({ min: 0, max: 80_000, step: 10_000 });
    expect(formatTick(0.1 + 0.2, 0.1)).toBe('0.3');
    expect(formatTick(0.75, 0.25)).toBe('0.75');
    expect(formatTick(20_000, 10_000)).toBe('20k');
    expect(formatTick(1_500_000, 500_000)).toBe('1500k');
    expect(formatTick(3_000_000, 1_000_000)).toBe('3M');
    expect(formatTick(-1e-17, 0.2)).toBe('0.0');
    expect(formatTick(0, 2000)).toBe('0');
  });
});

describe('readMetricsJsonl', () => {
  it('reads rows, skips blank lines and a torn last line, names bad lines', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lmcl-plot-'));
    try {
      const good = path.join(dir, 'metrics.jsonl');
      fs.writeFileSync(good, '{"step":1,"loss":2}\n\n{"step":2,"loss":null}\n{"step":3,"lo');
      expect(readMetricsJsonl(good)).toEqual([{ step: 1, loss: 2 }, { step: 2, loss: null }]);
      const bad = path.join(dir, 'bad.jsonl');
      fs.writeFileSync(bad, '{"step":1}\nnot json\n{"step":2}\n');
      expect(() => readMetricsJsonl(bad)).toThrow(/metrics file '.*bad\.jsonl', line 2: invalid JSON/);
      expect(() => readMetricsJsonl(path.join(dir, 'none.jsonl'))).toThrow(/not found/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

/** Rows of an epoch history: epochs 1..n, metrics by column name. */
function epochs(n: number, metrics: Record<string, (epoch: number) => number>): Record<string, number>[] {
  return Array.from({ length: n }, (_, i) => ({ epoch: i + 1, ...Object.fromEntries(Object.entries(metrics).map(([key, f]) => [key, f(i + 1)])) }));
}

const describe_ = (column: string): string => ({ test_top1_net0: 'net0 test top-1', test_top1_net1: 'net1 test top-1', train_loss: 'train loss (total)' })[column] ?? column;

describe('plotPanelsSvg', () => {
  const seedRuns = [0, 1, 2].map((seed) => ({
    label: `dml_resnet8x2_fashion-mnist_seed${seed}`,
    rows: epochs(12, { train_loss: (e) => 2 / e + seed * 0.01, test_top1_net0: (e) => 80 + e + seed, test_top1_net1: (e) => 79 + e - seed }),
  }));
  const groups = [{ label: 'dml_resnet8x2_fashion-mnist_seed* (mean ± std, seeds 0,1,2)', runs: seedRuns }, { label: 'baseline_resnet8x2_fashion-mnist_seed0', runs: [seedRuns[0]!] }];
  const panels = [{ ys: ['train_loss'], title: 'train loss' }, { ys: ['test_top1_net0', 'test_top1_net1'], title: 'test top-1 (%)' }];

  it('draws train and test in separate panels, each clipped to its own area with an id unique to the document', () => {
    const svg = plotPanelsSvg(groups, panels, { x: 'epoch', integerX: true, metricLabel: describe_ });
    const elements = parseXml(svg);
    const panelGroups = elements.filter((e) => e.attributes.class === 'panel');
    expect(panelGroups.map((e) => e.attributes['data-title'])).toEqual(['train loss', 'test top-1 (%)']);
    const ids = elements.flatMap((e) => (e.attributes.id ? [e.attributes.id] : []));
    expect(ids).toHaveLength(2);
    expect(new Set(ids).size).toBe(2);
    // Each plot area uses its own panel's clip path.
    const uses = elements.filter((e) => e.attributes['clip-path']).map((e) => e.attributes['clip-path']);
    expect(uses).toEqual(ids.map((id) => `url(#${id})`));
    // Another plot (other data) gets other ids, so two inlined in one page do not collide.
    const other = plotPanelsSvg([groups[1]!], panels, { x: 'epoch', integerX: true });
    const otherIds = parseXml(other).flatMap((e) => (e.attributes.id ? [e.attributes.id] : []));
    expect(otherIds.some((id) => ids.includes(id))).toBe(false);
    // The same input gives the same document (ids from a hash, not a random number).
    expect(plotPanelsSvg(groups, panels, { x: 'epoch', integerX: true, metricLabel: describe_ })).toBe(svg);
  });

  it('puts only whole numbers on an epoch axis, however few epochs', () => {
    for (const n of [1, 2, 3, 12, 37]) {
      const svg = plotPanelsSvg([{ label: 'r', runs: [{ label: 'r', rows: epochs(n, { train_loss: (e) => 1 / e }) }] }], [{ ys: ['train_loss'] }], { x: 'epoch', integerX: true });
      const ticks = parseXml(svg).filter((e) => e.attributes.class === 'x-tick');
      const labels = [...svg.matchAll(/<text class="x-tick"[^>]*>([^<]*)<\/text>/g)].map((m) => m[1]!);
      expect(ticks.length).toBeGreaterThan(0);
      expect(labels.length).toBe(ticks.length);
      for (const label of labels) expect(label, `${n} epochs: tick ${label}`).toMatch(/^-?\d+$/);
    }
  });

  it("names network and head in the legend, and widens the image so that default run names are not cut", () => {
    const svg = plotPanelsSvg(groups, panels, { x: 'epoch', integerX: true, metricLabel: describe_ });
    const elements = parseXml(svg);
    const width = Number(elements[0]!.attributes.width);
    const legendTexts = [...svg.matchAll(/<g class="legend" transform="translate\(([\d.]+) [\d.]+\)">([^]*?)<\/g>/g)];
    expect(legendTexts).toHaveLength(2);
    const entries = legendTexts.flatMap((m) => [...m[2]!.matchAll(/<text x="34"[^>]*>([^<]*)<\/text>/g)].map((t) => ({ x: Number(m[1]), text: t[1]! })));
    expect(entries.map((e) => e.text)).toContain('dml_resnet8x2_fashion-mnist_seed* (mean ± std, seeds 0,1,2) · net0 test top-1');
    expect(entries.map((e) => e.text)).toContain('baseline_resnet8x2_fashion-mnist_seed0 · net1 test top-1');
    // 12px Helvetica averages well under 6.6 px a character: the whole text lies inside the image.
    for (const entry of entries) expect(entry.x + 34 + entry.text.length * 6.6, entry.text).toBeLessThanOrEqual(width);
  });

  it('a metric a run does not have is not in the legend; a long title fits and is centred on the image', () => {
    const single = { label: 'baseline_single', runs: [{ label: 'baseline_single', rows: epochs(5, { test_top1_net0: (e) => 70 + e }) }] };
    const title = 'a title much longer than the plot area of this figure, which used to start left of the image';
    const svg = plotPanelsSvg([single], [{ ys: ['test_top1_net0', 'test_top1_net1'] }], { x: 'epoch', integerX: true, title, metricLabel: describe_ });
    const elements = parseXml(svg);
    expect(elements.filter((e) => e.attributes.class === 'series').map((e) => e.attributes['data-metric'])).toEqual(['test_top1_net0']);
    const width = Number(elements[0]!.attributes.width);
    const titleElement = elements.find((e) => e.attributes.class === 'title')!;
    expect(Number(titleElement.attributes.x)).toBeCloseTo(width / 2, 5);
    expect(title.length * 6.6 * 1.4).toBeLessThanOrEqual(width);
  });

  it.runIf(sharpLoads())('renders to PNG (librsvg through sharp) at its declared size, with ink in every panel', async () => {
    const sharp = (await import('sharp')).default;
    const svg = plotPanelsSvg(groups, panels, { x: 'epoch', integerX: true, metricLabel: describe_, title: 'dml vs baseline' });
    const declared = parseXml(svg)[0]!.attributes;
    const { data, info } = await sharp(Buffer.from(svg)).removeAlpha().raw().toBuffer({ resolveWithObject: true });
    expect([info.width, info.height]).toEqual([Number(declared.width), Number(declared.height)]);
    // Coloured (non-grey) pixels: the series. Each panel's band of rows holds some.
    const coloured = (row0: number, row1: number): number => {
      let count = 0;
      for (let y = row0; y < row1; y += 1) for (let x = 0; x < info.width; x += 1) {
        const p = (y * info.width + x) * 3;
        if (Math.max(data[p]!, data[p + 1]!, data[p + 2]!) - Math.min(data[p]!, data[p + 1]!, data[p + 2]!) > 60) count += 1;
      }
      return count;
    };
    const half = Math.floor(info.height / 2);
    expect(coloured(0, half)).toBeGreaterThan(200);
    expect(coloured(half, info.height)).toBeGreaterThan(200);
  });

  it('draws several seeds as their mean with a ±std band', () => {
    const svg = plotPanelsSvg(groups, panels, { x: 'epoch', integerX: true, metricLabel: describe_ });
    const elements = parseXml(svg);
    const seriesOf = (run: string, metric: string): number => elements.findIndex((e) => e.attributes['data-run'] === run && e.attributes['data-metric'] === metric);
    const mean = seriesOf(groups[0]!.label, 'test_top1_net0');
    const bands = elements.filter((e) => e.parent === mean && e.name === 'path' && e.attributes.class === 'band');
    expect(bands).toHaveLength(1);
    // 12 epochs: 12 points along the top, 12 back along the bottom.
    expect(bands[0]!.attributes.d!.match(/[\d.]+,[\d.]+/g)).toHaveLength(24);
    expect(bands[0]!.attributes.d).toMatch(/^M .* Z$/);
    expect(elements.filter((e) => e.parent === mean && e.name === 'polyline')).toHaveLength(1);
    // A single run has no band.
    expect(elements.filter((e) => e.parent === seriesOf(groups[1]!.label, 'test_top1_net0') && e.name === 'path')).toHaveLength(0);
    // The mean line passes through the mean: seeds 0, 1, 2 of net0 at epoch 1 are 81, 82, 83.
    const values = meanAndBandAt(svg, groups[0]!.label, 'test_top1_net0');
    expect(values.meanY).toBeCloseTo(values.yOf(82), 1);
    expect(values.bandTop).toBeCloseTo(values.yOf(83), 1); // std of 81, 82, 83 is 1
  });

  it('--logy: a logarithmic axis with 1-2-5 ticks; values ≤ 0 are left out', () => {
    const rows = epochs(10, { train_loss: (e) => 2.3 / e ** 1.5, test_top1_net0: (e) => (e === 4 ? 0 : e) });
    const svg = plotPanelsSvg([{ label: 'r', runs: [{ label: 'r', rows }] }], [{ ys: ['train_loss'] }, { ys: ['test_top1_net0'] }], { x: 'epoch', integerX: true, logY: true });
    const elements = parseXml(svg);
    const labels = [...svg.matchAll(/<text class="y-tick"[^>]*>([^<]*)<\/text>/g)].map((m) => m[1]!);
    for (const label of labels) expect(label).toMatch(/^(1|2|5)(0*|e-?\d+)$|^0\.0*(1|2|5)$/);
    expect(labels).toContain('0.1');
    expect(labels).toContain('1');
    // Ticks equally spaced per decade: 0.1 → 1 spans as many pixels as 1 → 10.
    const y = (label: string): number => Number(new RegExp(`<text class="y-tick" x="[\\d.]+" y="([\\d.]+)"[^>]*>${label.replace('.', '\\.')}</text>`).exec(svg)![1]);
    expect(y('0.1') - y('1')).toBeCloseTo(y('1') - y('10'), 0);
    // The zero at epoch 4 breaks the second panel's line: epochs 1-3 and 5-10.
    const accuracy = elements.findIndex((e) => e.attributes['data-metric'] === 'test_top1_net0');
    expect(elements.filter((e) => e.parent === accuracy && e.name === 'polyline').map((e) => e.attributes.points!.split(' ').length)).toEqual([3, 6]);
  });
});

/** The mean line's and the band's top y at the first epoch of a series, and the y of a value on its panel's axis. */
function meanAndBandAt(svg: string, run: string, metric: string): { meanY: number; bandTop: number; yOf: (value: number) => number } {
  const group = new RegExp(`<g class="series" data-run="${run.replace(/[*().±]/g, (c) => `\\${c}`)}" data-metric="${metric}"[^>]*>([^]*?)</g>`).exec(svg)![1]!;
  const meanY = Number(/<polyline points="[\d.]+,([\d.]+)/.exec(group)![1]);
  const bandTop = Number(/<path class="band" d="M [\d.]+,([\d.]+)/.exec(group)![1]);
  // The panel holding the series: its y tick labels map values to pixels linearly.
  const panel = svg.slice(0, svg.indexOf(group)).lastIndexOf('<g class="panel"');
  const ticks = [...svg.slice(panel, svg.indexOf(group)).matchAll(/<text class="y-tick" x="[\d.]+" y="([\d.]+)"[^>]*>([^<]*)<\/text>/g)].map((m) => [Number(m[2]), Number(m[1]) - 4] as const);
  const [[v0, y0], [v1, y1]] = [ticks[0]!, ticks[ticks.length - 1]!];
  return { meanY, bandTop, yOf: (value) => y0 + ((value - v0) / (v1 - v0)) * (y1 - y0) };
}
