// The run directory: config.json (resolved), metrics.jsonl (one JSON object per epoch),
// summary.csv (one row per epoch), train.log (human log, also echoed to the console), and
// checkpoints/ (see checkpoint.ts). Files that are rewritten go through writeFileAtomic; the
// append-only ones are re-written atomically from the in-memory history on resume so that a
// resumed run never has duplicate epochs.
import fs from 'node:fs';
import path from 'node:path';
import { makeDirectories, writeFileAtomic } from '../io/atomic.js';
import type { EvalResult } from './metrics.js';

export interface EpochRecord {
  epoch: number; // one-based, as printed
  lr: number;
  /** Mean training losses over the epoch, by part name ('total', 'ce', 'kd', 'ce/net0', ...). */
  train: Record<string, number>;
  /** Training top-1 per network (final head), percent. */
  trainTop1: number[];
  /** The test evaluation after this epoch; null on epochs that --eval-every skipped (the last epoch is always evaluated). */
  test: EvalResult | null;
  imagesPerSecond: number;
  /** Seconds spent in training steps and in evaluation this epoch. */
  trainSeconds: number;
  evalSeconds: number;
  /**
   * Seconds of trainSeconds spent waiting for the data loader (this process's part of the epoch
   * after a mid-epoch resume; absent in records written before it was measured).
   */
  dataSeconds?: number;
  /** Resident memory of the process (RSS, MB) at the end of the epoch; absent in older records. */
  rssMegabytes?: number;
  /** Wall time since the run started (across resumes), seconds. */
  elapsedSeconds: number;
  /** Best-so-far mean final-head test top-1 (selected on the test set) and its epoch. */
  bestMeanTop1: number;
  bestEpoch: number;
}

// JSON has no NaN or ±Infinity and JSON.stringify writes them as null, which reads back as "no
// value": a diverged network's test loss would vanish from metrics.jsonl. They are written as the
// strings "NaN", "Infinity", "-Infinity" instead, and read back as numbers (an epoch record holds
// no other strings).
const NON_FINITE_TEXT = new Map<string, number>([['NaN', Number.NaN], ['Infinity', Infinity], ['-Infinity', -Infinity]]);

/** JSON.stringify replacer keeping non-finite numbers as "NaN" / "Infinity" / "-Infinity". */
export function keepNonFinite(_key: string, value: unknown): unknown {
  return typeof value === 'number' && !Number.isFinite(value) ? String(value) : value;
}

/** JSON.parse reviver undoing keepNonFinite (for records whose fields are all numbers). */
export function reviveNonFinite(_key: string, value: unknown): unknown {
  return typeof value === 'string' && NON_FINITE_TEXT.has(value) ? NON_FINITE_TEXT.get(value) : value;
}

/** The summary column of a training loss part other than total/ce/kd: 'ce/net0' → 'train_ce_net0'. */
function trainPartColumn(part: string): string {
  return `train_${part.replace(/[^A-Za-z0-9]+/g, '_')}`;
}

/** The loss parts that have columns of their own (the others come after, by name: trainPartColumn). */
const NAMED_PARTS = ['total', 'ce', 'kd'];

/**
 * The summary.csv columns. The first ones (up to elapsed_seconds) are the original layout, kept in
 * place for readers that go by position; every other number of metrics.jsonl follows, so the CSV
 * holds every metric of the epoch records (rounded: 4 decimals for losses, 2 for percentages).
 */
export function summaryHeader(networks: number, heads: number[], methodHeads: readonly string[] = [], trainParts: readonly string[] = []): string[] {
  const columns = ['epoch', 'lr', 'train_loss', 'train_ce', 'train_kd'];
  for (let n = 0; n < networks; n += 1) columns.push(`train_top1_net${n}`);
  for (let n = 0; n < networks; n += 1) {
    columns.push(`test_top1_net${n}`, `test_top5_net${n}`);
    for (let s = 0; s + 1 < (heads[n] ?? 1); s += 1) columns.push(`test_top1_net${n}_aux${s}`);
    for (const name of methodHeads) columns.push(`test_top1_net${n}_${name}`);
  }
  columns.push('test_top1_ensemble', 'test_top5_ensemble', 'test_top1_mean', 'images_per_s', 'epoch_seconds', 'elapsed_seconds');
  for (const part of trainParts) if (!NAMED_PARTS.includes(part)) columns.push(trainPartColumn(part));
  for (let n = 0; n < networks; n += 1) {
    columns.push(`test_loss_net${n}`);
    for (let s = 0; s + 1 < (heads[n] ?? 1); s += 1) columns.push(`test_top5_net${n}_aux${s}`);
    for (const name of methodHeads) columns.push(`test_top5_net${n}_${name}`);
  }
  columns.push('test_count', 'train_seconds', 'eval_seconds', 'data_seconds', 'rss_mb', 'best_mean_top1', 'best_epoch');
  return columns;
}

/** The columns' layout: networks, heads per network, method heads (from an evaluated record), training loss parts. */
export interface SummaryShape {
  networks: number;
  heads: number[];
  methodHeads: string[];
  /** Every loss part of the history, in order of first appearance. */
  trainParts: string[];
}

/**
 * The layout of a history's summary columns: taken from its first evaluated epoch, or (before the
 * first evaluation of a run with --eval-every) one final head per network.
 */
export function summaryShape(history: readonly EpochRecord[]): SummaryShape {
  const trainParts = [...new Set(history.flatMap((record) => Object.keys(record.train)))];
  const evaluated = history.find((record) => record.test !== null);
  if (evaluated?.test) {
    return { networks: evaluated.test.networks.length, heads: evaluated.test.heads.map((h) => h.length), methodHeads: Object.keys(evaluated.test.methodHeads ?? {}), trainParts };
  }
  const networks = history[0]?.trainTop1.length ?? 0;
  return { networks, heads: new Array<number>(networks).fill(1), methodHeads: [], trainParts };
}

export function summaryRow(record: EpochRecord, shape: SummaryShape = summaryShape([record])): string[] {
  const fmt = (value: number | undefined, digits = 4): string => (value === undefined ? '' : Number(value.toFixed(digits)).toString());
  const row = [String(record.epoch), fmt(record.lr, 6), fmt(record.train.total), fmt(record.train.ce), fmt(record.train.kd ?? 0)];
  for (const value of record.trainTop1) row.push(fmt(value, 2));
  const test = record.test;
  for (let n = 0; n < shape.networks; n += 1) {
    // An epoch that was not evaluated leaves its test cells empty (never a carried-over value).
    row.push(fmt(test?.networks[n]?.top1, 2), fmt(test?.networks[n]?.top5, 2));
    const heads = test?.heads[n] ?? [];
    for (let s = 0; s + 1 < (shape.heads[n] ?? 1); s += 1) row.push(fmt(heads[s]?.top1, 2));
    for (const name of shape.methodHeads) row.push(fmt(test?.methodHeads?.[name]?.[n]?.top1, 2));
  }
  row.push(fmt(test?.ensemble.top1, 2), fmt(test?.ensemble.top5, 2), fmt(test?.meanTop1, 2), fmt(record.imagesPerSecond, 1),
    fmt(record.trainSeconds + record.evalSeconds, 1), fmt(record.elapsedSeconds, 1));
  for (const part of shape.trainParts) if (!NAMED_PARTS.includes(part)) row.push(fmt(record.train[part]));
  for (let n = 0; n < shape.networks; n += 1) {
    row.push(fmt(test?.loss[n]));
    const heads = test?.heads[n] ?? [];
    for (let s = 0; s + 1 < (shape.heads[n] ?? 1); s += 1) row.push(fmt(heads[s]?.top5, 2));
    for (const name of shape.methodHeads) row.push(fmt(test?.methodHeads?.[name]?.[n]?.top5, 2));
  }
  row.push(test ? String(test.count) : '', fmt(record.trainSeconds, 1), fmt(record.evalSeconds, 1), fmt(record.dataSeconds, 1), fmt(record.rssMegabytes, 0),
    fmt(record.bestMeanTop1, 2), String(record.bestEpoch));
  return row;
}

export class RunDirectory {
  readonly dir: string;
  readonly checkpointDir: string;
  private readonly logPath: string;
  private console: ((line: string) => void) | null;

  constructor(dir: string, consoleLine: ((line: string) => void) | null) {
    this.dir = dir;
    this.checkpointDir = path.join(dir, 'checkpoints');
    this.logPath = path.join(dir, 'train.log');
    this.console = consoleLine;
    makeDirectories(this.checkpointDir, `run directory ${dir}`);
  }

  /** A line to the human log (timestamped) and to the console. */
  log(line: string): void {
    const stamp = new Date().toISOString().replace('T', ' ').replace(/\..*$/, '');
    fs.appendFileSync(this.logPath, `${stamp} ${line}\n`);
    this.console?.(line);
  }

  writeConfig(resolved: unknown): void {
    writeFileAtomic(path.join(this.dir, 'config.json'), `${JSON.stringify(resolved, null, 2)}\n`);
  }

  /** Rewrites metrics.jsonl and summary.csv from the whole history (atomic, no duplicates on resume). */
  writeHistory(history: EpochRecord[]): void {
    writeFileAtomic(path.join(this.dir, 'metrics.jsonl'), history.map((record) => JSON.stringify(record, keepNonFinite)).join('\n') + (history.length ? '\n' : ''));
    if (history.length === 0) return;
    const shape = summaryShape(history);
    const header = summaryHeader(shape.networks, shape.heads, shape.methodHeads, shape.trainParts);
    const lines = [header.join(','), ...history.map((record) => summaryRow(record, shape).join(','))];
    writeFileAtomic(path.join(this.dir, 'summary.csv'), `${lines.join('\n')}\n`);
  }
}

/**
 * The fields of a run's config.json that the trainer adds beside the options (trainer.ts,
 * writeConfig): records of what ran, some of them paths of the host it ran on. `dataset` is
 * among them as a record ({ name, source, ... }) in place of the option's name.
 */
export const RUN_RECORD_FIELDS: readonly string[] = ['runDir', 'ensemble', 'selection', 'networks', 'parameterSets', 'engine', 'node', 'resumedFrom'];

/** Whether a config mapping is a run's config.json (as opposed to a config file written by hand). */
export function isRunRecord(values: Readonly<Record<string, unknown>>): boolean {
  const dataset = values.dataset;
  return 'engine' in values && 'runDir' in values && dataset !== null && typeof dataset === 'object' && typeof (dataset as { name?: unknown }).name === 'string';
}

/**
 * The options of a run's config.json, for `lmcl train --config <run>/config.json` (reproduce a
 * run): the trainer's records are dropped, `dataset` becomes its name, `resume` is dropped (a
 * reproduction is a fresh run), and `data` / `out` are dropped when they are absolute paths that do
 * not exist on this host (the run came from another machine; the defaults or flags apply). Each
 * change is said in `notes` (except for options given as flags, `givenAsFlags`, which replace the
 * file's anyway), so the reproduction is never silently different.
 */
export function optionsFromRunRecord(values: Readonly<Record<string, unknown>>, file: string, givenAsFlags: ReadonlySet<string> = new Set()):
  { options: Record<string, unknown>; notes: string[] } {
  const options: Record<string, unknown> = {};
  const dropped: string[] = [];
  const notes: string[] = [];
  for (const [key, value] of Object.entries(values)) {
    if (RUN_RECORD_FIELDS.includes(key)) {
      dropped.push(key);
      continue;
    }
    if (key === 'dataset') {
      options.dataset = (value as { name: string }).name;
      continue;
    }
    if (key === 'resume') {
      if (value !== null) notes.push(`config file '${file}': not resuming as the recorded run did (resume ${JSON.stringify(value)}): this is a fresh run`);
      continue;
    }
    if ((key === 'data' || key === 'out') && typeof value === 'string' && path.isAbsolute(value) && !fs.existsSync(value)) {
      // A flag replaces it anyway: saying it is dropped would only confuse.
      if (!givenAsFlags.has(key)) notes.push(`config file '${file}': ${key} ${JSON.stringify(value)} does not exist on this host; using the default (give --${key} to choose)`);
      continue;
    }
    options[key] = value;
  }
  notes.unshift(`config file '${file}' is a run's config.json: reusing its options; its records (${dropped.join(', ')}) are not options and are ignored`);
  return { options, notes };
}

/** Reads metrics.jsonl of a run directory (for plot and resume). */
export function readHistory(dir: string): EpochRecord[] {
  const file = path.join(dir, 'metrics.jsonl');
  if (!fs.existsSync(file)) throw new Error(`${dir}: no metrics.jsonl (not an lmcl run directory?)`);
  return fs
    .readFileSync(file, 'utf8')
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line, index) => {
      try {
        return JSON.parse(line, reviveNonFinite) as EpochRecord;
      } catch {
        throw new Error(`${file}: line ${index + 1} is not valid JSON`);
      }
    });
}

/** One epoch record as a flat row (the summary.csv columns as numbers), for plots. */
export function flattenRecord(record: EpochRecord): Record<string, number> {
  const shape = summaryShape([record]);
  const header = summaryHeader(shape.networks, shape.heads, shape.methodHeads, shape.trainParts);
  const row = summaryRow(record, shape);
  const flat: Record<string, number> = {};
  header.forEach((key, index) => {
    const value = row[index];
    if (value !== undefined && value !== '') flat[key] = Number(value);
  });
  // Unrounded (a plot of a loss near 0 on a log axis needs more than 4 decimals).
  record.test?.loss.forEach((value, n) => {
    flat[`test_loss_net${n}`] = value;
  });
  return flat;
}
