// `lmcl eval | export | plot | info`.
import fs from 'node:fs';
import path from 'node:path';
import { Command, Option } from 'commander';
import { integer } from './parse.js';
import { makeDirectories } from '../io/atomic.js';
import { loadCheckpoint } from '../io/checkpoint.js';
import { writeSafetensors } from '../io/safetensors.js';
import { plotRunsSvg } from '../io/plot.js';
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
      'or, with --weights, a bare safetensors state dict (no run directory)')
    .argument('[checkpoint]', 'a run directory (its latest checkpoint), its checkpoints/ folder, or a checkpoint directory (e.g. .../checkpoints/best)')
    .option('--weights <file>', 'evaluate this .safetensors state dict instead (lmcl export, or torch weights; loaded strictly, the authors\' names through the alias table)')
    .option('--arch <name>', "with --weights: the architecture (default: the file's metadata)")
    .option('--auxiliary', "with --weights: build the auxiliary heads (default: the file's metadata, else whether it holds auxiliary_classifier.* tensors)")
    .addOption(new Option('--dataset <name>', 'with --weights: dataset, as for train (default: the bundled sample when neither --dataset nor --data is given)').choices([...DATASET_NAMES]))
    .option('--data <dir>', "dataset folder (default: the one the run used; 'bundled' = the repo's Fashion-MNIST sample; with --weights: as for train)")
    .option('--image-size <n>', 'with --weights: input size (imagefolder), as for train', integer('--image-size', 1))
    .option('--limit-test <n>', 'only the first N test images (default: as in the run; with --weights: all)', integer('--limit-test'))
    .option('--eval-batch-size <n>', 'batch size', integer('--eval-batch-size', 1))
    .option('--threads <n>', 'native CPU threads', integer('--threads'))
    .option('--json', 'print the result as JSON')
    .showHelpAfterError()
    .action(async (target: string | undefined, options: EvalOptions) => {
      if (options.threads) setNumThreads(options.threads);
      if (options.weights !== undefined) {
        if (target !== undefined) throw new Error(`eval: give a checkpoint or --weights, not both ('${target}' and --weights ${options.weights})`);
        await evalWeights(options.weights, options);
        return;
      }
      const weightsOnly = (['arch', 'auxiliary', 'dataset', 'imageSize'] as const).filter((key) => options[key] !== undefined);
      if (weightsOnly.length > 0) {
        const flags = weightsOnly.map((key) => `--${key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`).join(', ');
        throw new Error(`eval: ${flags} only go with --weights (a checkpoint's run config fixes them)`);
      }
      if (target === undefined) throw new Error('eval: give a run or checkpoint directory, or --weights FILE');
      const { result, checkpoint, config } = await evaluateCheckpoint(target, options);
      if (options.json) {
        process.stdout.write(`${JSON.stringify({ checkpoint, ...result }, keepNonFinite, 2)}\n`);
        return;
      }
      console.log(`checkpoint ${checkpoint} (${config.method}, ${config.arch}×${config.numberNet}) on ${result.count} test images`);
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

export function plotCommand(): Command {
  return new Command('plot')
    .description('draw loss/accuracy curves of one or more run directories (metrics.jsonl) to SVG')
    .argument('<runs...>', 'run directories')
    .option('-o, --output <file>', 'output SVG (with several --metrics: one file per set, suffixed)', 'plot.svg')
    .option('--metrics <sets>', `comma-separated: ${Object.keys(metricSets).join(', ')}, or column names of summary.csv`, 'loss,accuracy')
    .showHelpAfterError()
    .action((runs: string[], options: { output: string; metrics: string }) => {
      const loaded = runs.map((dir) => ({ label: path.basename(path.resolve(dir)), rows: readHistory(dir).map(flattenRecord) }));
      const columns = [...new Set(loaded.flatMap((run) => run.rows.flatMap((row) => Object.keys(row))))];
      const sets = options.metrics.split(',').map((s) => s.trim()).filter(Boolean);
      const written: string[] = [];
      for (const set of sets) {
        const ys = metricSets[set] ? metricSets[set]!(columns) : columns.includes(set) ? [set] : null;
        if (!ys || ys.length === 0) throw new Error(`plot: no columns for '${set}' (known sets: ${Object.keys(metricSets).join(', ')}; columns: ${columns.join(', ')})`);
        const file = sets.length === 1 ? options.output : options.output.replace(/(\.svg)?$/i, `-${set}.svg`);
        const svg = plotRunsSvg(loaded, { x: 'epoch', ys, title: `${set}: ${loaded.map((r) => r.label).join(', ')}`, yLabel: set === 'accuracy' ? 'test top-1 (%)' : undefined });
        fs.writeFileSync(file, svg);
        written.push(file);
      }
      console.log(`wrote ${written.join(', ')}`);
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
