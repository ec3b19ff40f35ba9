// `lmcl eval | export | plot | info`.
import fs from 'node:fs';
import path from 'node:path';
import { Command, Option } from 'commander';
import { integer } from './parse.js';
import { makeDirectories } from '../io/atomic.js';
import { loadCheckpoint } from '../io/checkpoint.js';
import { writeSafetensors } from '../io/safetensors.js';
import { plotPanelsSvg, type PlotGroup, type PlotPanel } from '../io/plot.js';
import { defaultTrainConfig } from '../train/config.js';
import { didYouMean } from '../suggest.js';
import { engineInfo, setNumThreads } from '../runtime.js';
import { listModels } from '../models/registry.js';
import { evaluateCheckpoint, evaluateWeights } from '../train/evaluate.js';
import type { EvalResult } from '../train/metrics.js';
import { DATASET_NAMES } from '../data/datasets.js';
import { exportedNetworkMetadata, verifiedCriterionTensors, verifiedNetworkTensors } from '../train/export.js';
import { flattenRecord, keepNonFinite, readHistory } from '../train/rundir.js';

interface EvalOptions {
  data?: string;
  limitTest?: number;
  evalBatchSize?: number;
  threads?: number;
  json?: boolean;
  weights?: string;
  arch?: string;
  dataset?: string;
  imageSize?: number;
  auxiliary?: boolean;
  device?: 'cpu' | 'cuda';
}

/** Per network and head top-1/top-5, the ensemble and the test loss (the text form of `lmcl eval`). */
function printEvalResult(result: EvalResult): void {
  result.heads.forEach((heads, n) => {
    heads.forEach((head, s) => {
      const label = s === heads.length - 1 ? 'final head' : `aux head ${s}`;
      console.log(`  net${n} ${label.padEnd(10)} top-1 ${head.top1.toFixed(2)}%  top-5 ${head.top5.toFixed(2)}%`);
    });
  });
  console.log(`  ensemble (mean softmax) top-1 ${result.ensemble.top1.toFixed(2)}%  top-5 ${result.ensemble.top5.toFixed(2)}%`);
  // NaN/±Inf is printed as such: a diverged network's loss must be visible, not dropped.
  console.log(`  test loss (final head, mean cross-entropy) ${result.loss.map((value, n) => `net${n} ${value.toFixed(4)}`).join(', ')}`);
  const broken = result.loss.flatMap((value, n) => (Number.isFinite(value) ? [] : [`net${n}`]));
  if (broken.length > 0) console.log(`  warning: ${broken.join(', ')} gave non-finite logits (rows with NaN/Inf logits count as wrong)`);
}

async function evalWeights(file: string, options: EvalOptions): Promise<void> {
  const evaluated = await evaluateWeights(file, options);
  const { result, load } = evaluated;
  if (options.json) {
    process.stdout.write(`${JSON.stringify({
      weights: file, architecture: evaluated.architecture, auxiliary: evaluated.auxiliary, dataset: evaluated.config.dataset, data: evaluated.source,
      renamed: load.renamed, converted: load.converted, notes: evaluated.notes, ...result,
    }, keepNonFinite, 2)}\n`);
    return;
  }
  const renamed = load.renamed.length > 0 ? `, ${load.renamed.length} renamed by the alias table` : '';
  console.log(`weights ${file} (${evaluated.architecture}${evaluated.auxiliary ? ' with auxiliary heads' : ''}, ${load.loaded} tensors${renamed}) ` +
    `on ${result.count} test images of ${evaluated.config.dataset} (${evaluated.source})`);
  for (const note of evaluated.notes) console.log(`  note: ${note}`);
  printEvalResult(result);
}

export function evalCommand(): Command {
  return new Command('eval')
    .description('evaluate a checkpoint on the test split: top-1/top-5 per network, per head, and the ensemble (mean of softmax of the final heads); ' +
      'or, with --weights, a bare safetensors state dict (no run directory); on the CPU unless --device cuda, whatever device trained the run')
    .argument('[checkpoints...]', 'a run directory (its latest checkpoint), its checkpoints/ folder, or a checkpoint directory (e.g. .../checkpoints/best); ' +
      'several: their networks evaluated together, the ensemble over all of them (independent runs must share their data)')
    .option('--weights <file>', 'evaluate this .safetensors state dict instead (lmcl export, or torch weights; loaded strictly, the authors\' names through the alias table)')
    .option('--arch <name>', "with --weights: the architecture (default: the file's metadata)")
    .option('--auxiliary', "with --weights: build the auxiliary heads (default: the file's metadata, else whether it holds auxiliary_classifier.* tensors)")
    .addOption(new Option('--dataset <name>', 'with --weights: dataset, as for train (default: the bundled sample when neither --dataset nor --data is given)').choices([...DATASET_NAMES]))
    .option('--data <dir>', "dataset folder (default: the one the run used; 'bundled' = the repo's Fashion-MNIST sample; with --weights: as for train)")
    .option('--image-size <n>', 'with --weights: input size (imagefolder), as for train', integer('--image-size', 1))
    .option('--limit-test <n>', 'only the first N test images (default: as in the run; with --weights: all)', integer('--limit-test'))
    .option('--eval-batch-size <n>', 'batch size', integer('--eval-batch-size', 1))
    .option('--threads <n>', 'native CPU threads', integer('--threads'))
    .addOption(new Option('--device <device>', 'where the networks and the test batches live').choices(['cpu', 'cuda']).default('cpu'))
    .option('--json', 'print the result as JSON')
    .showHelpAfterError()
    .action(async (targets: string[], options: EvalOptions) => {
      if (options.threads) setNumThreads(options.threads);
      if (options.weights !== undefined) {
        if (targets.length > 0) throw new Error(`eval: give a checkpoint or --weights, not both ('${targets[0]}' and --weights ${options.weights})`);
        await evalWeights(options.weights, options);
        return;
      }
      const weightsOnly = (['arch', 'auxiliary', 'dataset', 'imageSize'] as const).filter((key) => options[key] !== undefined);
      if (weightsOnly.length > 0) {
        const flags = weightsOnly.map((key) => `--${key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`).join(', ');
        throw new Error(`eval: ${flags} only go with --weights (a checkpoint's run config fixes them)`);
      }
      if (targets.length === 0) throw new Error('eval: give a run or checkpoint directory, or --weights FILE');
      const { result, checkpoint, config, checkpoints, sources } = await evaluateCheckpoint(targets, options);
      if (options.json) {
        process.stdout.write(`${JSON.stringify({ checkpoint, ...(checkpoints.length > 1 ? { checkpoints, sources } : {}), ...result }, keepNonFinite, 2)}\n`);
        return;
      }
      if (checkpoints.length === 1) {
        console.log(`checkpoint ${checkpoint} (${config.method}, ${config.arch}×${config.numberNet}) on ${result.count} test images`);
      } else {
        console.log(`${checkpoints.length} checkpoints, their ${sources.length} networks together on ${result.count} test images:`);
        sources.forEach((source, n) => console.log(`  net${n} = ${source.checkpoint} net${source.net}`));
      }
      printEvalResult(result);
    });
}

export function exportCommand(): Command {
  return new Command('export')
    .description("write one network's weights (or the method's own, --criterion) as a safetensors file (PyTorch state-dict names; loads with safetensors.torch.load_file)")
    .argument('<checkpoint>', 'a run directory (latest checkpoint) or a checkpoint directory')
    .addOption(new Option('--net <index>', 'which network of the cohort').default(0).argParser(integer('--net')))
    .option('--criterion', "the method's modules instead (Embed heads, aggregators, ...: names criterion.*)")
    .requiredOption('-o, --output <file>', 'output .safetensors file')
    .showHelpAfterError()
    .action((target: string, options: { net: number; output: string; criterion?: boolean }) => {
      const resolved = fs.existsSync(path.join(target, 'checkpoints')) ? path.join(target, 'checkpoints') : target;
      const loaded = loadCheckpoint(resolved);
      if (options.criterion) {
        const method = (loaded.state as { config?: { method?: string } } | null)?.config?.method ?? 'unknown';
        const criterion = verifiedCriterionTensors(loaded);
        makeDirectories(path.dirname(path.resolve(options.output)), `export: --output ${options.output}`);
        writeSafetensors(options.output, criterion, { format: 'pt', method, source: loaded.path });
        const count = [...criterion.values()].reduce((a, e) => a + e.data.length, 0);
        console.log(`wrote ${options.output}: method ${method}'s modules, ${criterion.size} tensors, ${count.toLocaleString('en-US')} values`);
        return;
      }
      const network = verifiedNetworkTensors(loaded, options.net);
      const metadata: Record<string, string> = { ...loaded.networkMetadata[options.net], ...exportedNetworkMetadata(loaded, options.net), source: loaded.path };
      makeDirectories(path.dirname(path.resolve(options.output)), `export: --output ${options.output}`);
      writeSafetensors(options.output, network, metadata);
      const count = [...network.values()].reduce((a, e) => a + e.data.length, 0);
      console.log(`wrote ${options.output}: network ${options.net} (${metadata.architecture ?? 'unknown architecture'}), ${network.size} tensors, ${count.toLocaleString('en-US')} values`);
    });
}

const metricSets: Record<string, (columns: string[]) => string[]> = {
  loss: (columns) => columns.filter((c) => c === 'train_loss' || c === 'train_ce' || c === 'train_kd' || /^test_loss_net\d+$/.test(c)),
  accuracy: (columns) => columns.filter((c) => /^test_top1_(net\d+|ensemble)$/.test(c)),
  'train-accuracy': (columns) => columns.filter((c) => /^train_top1_net\d+$/.test(c)),
  lr: (columns) => columns.filter((c) => c === 'lr'),
};

/** Legend words for a summary.csv column: 'test_top1_net0' → 'net0 test top-1', 'train_ce' → 'train CE'. */
export function describeColumn(column: string): string {
  let match: RegExpExecArray | null;
  if ((match = /^test_top([15])_net(\d+)$/.exec(column))) return `net${match[2]} test top-${match[1]}`;
  if ((match = /^test_top([15])_net(\d+)_(\w+)$/.exec(column))) return `net${match[2]} ${match[3]} test top-${match[1]}`;
  if ((match = /^test_top([15])_ensemble$/.exec(column))) return `ensemble test top-${match[1]}`;
  if (column === 'test_top1_mean') return 'mean of nets test top-1';
  if ((match = /^test_loss_net(\d+)$/.exec(column))) return `net${match[1]} test loss`;
  if ((match = /^train_top1_net(\d+)$/.exec(column))) return `net${match[1]} train top-1`;
  if (column === 'train_loss') return 'train loss (total)';
  if (column === 'train_ce' || column === 'train_kd') return `train ${column.slice(6).toUpperCase()}`;
  if ((match = /^train_(.+)$/.exec(column))) return `train ${match[1]}`;
  return column;
}

/** The panels of a metric set: train and test columns apart (a loss set gives a train and a test panel). */
function panelsOf(set: string, columns: string[]): PlotPanel[] {
  const titles: Record<string, [string, string]> = {
    loss: ['train loss', 'test loss (final heads)'], accuracy: ['train top-1 (%)', 'test top-1 (%)'],
    'train-accuracy': ['train top-1 (%)', 'test top-1 (%)'], lr: ['learning rate', 'learning rate'],
  };
  const [trainTitle, testTitle] = titles[set] ?? [set, set];
  const train = columns.filter((c) => c.startsWith('train_'));
  const test = columns.filter((c) => c.startsWith('test_'));
  const other = columns.filter((c) => !c.startsWith('train_') && !c.startsWith('test_'));
  const panels: PlotPanel[] = [];
  if (train.length > 0) panels.push({ ys: train, title: trainTitle, yLabel: set === 'loss' ? 'loss' : trainTitle });
  if (test.length > 0) panels.push({ ys: test, title: testTitle, yLabel: set === 'loss' ? 'loss' : testTitle });
  if (other.length > 0) panels.push({ ys: other, title: titles[set] ? trainTitle : other.join(', ') });
  return panels;
}

/** Options that make two runs different experiments (not seeds of one): the rest of the config without seed, paths and machine settings. */
const NOT_EXPERIMENT_DEFINING = new Set(['seed', 'name', 'out', 'resume', 'data', 'device', 'threads', 'workers', 'keepLast', 'saveEvery', 'saveEverySteps',
  'evalEvery', 'evalBatchSize', 'logInterval']);

function experimentKey(config: Record<string, unknown>): string {
  const dataset = config.dataset;
  return JSON.stringify(Object.keys(defaultTrainConfig).filter((key) => !NOT_EXPERIMENT_DEFINING.has(key)).map((key) =>
    [key, key === 'dataset' && dataset !== null && typeof dataset === 'object' ? (dataset as { name?: unknown }).name : config[key] ?? null]));
}

/**
 * Runs whose config.json differ only by the seed (and settings that do not change the
 * experiment) become one group, drawn as mean ± std; a run without config.json, or a repeated
 * seed, stays on its own.
 */
export function groupSeeds(runs: readonly { dir: string; label: string; rows: Record<string, number>[] }[]): PlotGroup[] {
  const keyed = runs.map((run) => {
    const file = path.join(run.dir, 'config.json');
    const config = fs.existsSync(file) ? (JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, unknown>) : null;
    return { run, key: config ? experimentKey(config) : null, seed: config?.seed };
  });
  const groups: PlotGroup[] = [];
  const taken = new Set<number>();
  keyed.forEach((entry, index) => {
    if (taken.has(index)) return;
    const members = entry.key === null ? [index] : keyed.flatMap((other, k) => (other.key === entry.key && !taken.has(k) ? [k] : []));
    const seeds = members.map((k) => keyed[k]!.seed);
    if (members.length < 2 || new Set(seeds).size !== seeds.length) {
      taken.add(index);
      groups.push({ label: entry.run.label, runs: [{ label: entry.run.label, rows: entry.run.rows }] });
      return;
    }
    for (const k of members) taken.add(k);
    const labels = members.map((k) => keyed[k]!.run.label.replace(/seed\d+/, 'seed*'));
    const common = labels.every((label) => label === labels[0]) ? labels[0]! : entry.run.label;
    groups.push({ label: `${common} (mean ± std, seeds ${seeds.map(String).join(',')})`, runs: members.map((k) => ({ label: keyed[k]!.run.label, rows: keyed[k]!.run.rows })) });
  });
  return groups;
}

export function plotCommand(): Command {
  return new Command('plot')
    .description('draw loss/accuracy curves of one or more run directories (metrics.jsonl) to one SVG: a panel per metric set, train and test apart; runs that differ only by --seed as mean ± std')
    .argument('<runs...>', 'run directories')
    .option('-o, --output <file>', 'output SVG', 'plot.svg')
    .option('--metrics <sets>', `comma-separated: ${Object.keys(metricSets).join(', ')}, or column names of summary.csv`, 'loss,accuracy')
    .option('--logy', 'logarithmic vertical axis (values ≤ 0 are left out)')
    .action((runs: string[], options: { output: string; metrics: string; logy?: boolean }) => {
      const loaded = runs.map((dir) => ({ dir, label: path.basename(path.resolve(dir)), rows: readHistory(dir).map(flattenRecord) }));
      const columns = [...new Set(loaded.flatMap((run) => run.rows.flatMap((row) => Object.keys(row))))];
      const sets = options.metrics.split(',').map((s) => s.trim()).filter(Boolean);
      const panels: PlotPanel[] = [];
      for (const set of sets) {
        const ys = metricSets[set] ? metricSets[set]!(columns) : columns.includes(set) ? [set] : null;
        if (!ys || ys.length === 0) throw new Error(`plot: no columns for '${set}' (known sets: ${Object.keys(metricSets).join(', ')}; columns: ${columns.join(', ')})${didYouMean(set, [...Object.keys(metricSets), ...columns])}`);
        panels.push(...panelsOf(set, ys));
      }
      const groups = groupSeeds(loaded);
      const svg = plotPanelsSvg(groups, panels, { x: 'epoch', integerX: true, logY: options.logy ?? false, metricLabel: describeColumn,
        title: groups.map((group) => group.label).join(', ') });
      makeDirectories(path.dirname(path.resolve(options.output)), `plot: --output ${options.output}`);
      fs.writeFileSync(options.output, svg);
      console.log(`wrote ${options.output}: ${panels.map((panel) => panel.title).join(', ')}`);
    });
}

export function infoCommand(): Command {
  return new Command('info')
    .description('native build (path, why it was chosen, SIMD level), threads, CUDA availability, architectures')
    .option('--json', 'print as JSON')
    .action((options: { json?: boolean }) => {
      const info = engineInfo();
      if (options.json) {
        process.stdout.write(`${JSON.stringify({ engine: info, node: process.version, architectures: listModels() }, null, 2)}\n`);
        return;
      }
      const record = info as unknown as Record<string, unknown>;
      console.log(`lmcl native addon: ${info.path}`);
      console.log(`  chosen because: ${info.reason}`);
      for (const [key, value] of Object.entries(record)) {
        if (key === 'path' || key === 'reason') continue;
        console.log(`  ${key}: ${typeof value === 'object' ? JSON.stringify(value) : String(value)}`);
      }
      console.log(`node ${process.version}, ${process.platform}/${process.arch}`);
      console.log(`architectures: ${listModels().join(', ')}`);
    });
}
