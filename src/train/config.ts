// The resolved training configuration: every option with its default filled in. The CLI parses
// flags (and --config FILE) into a partial config; resolveTrainConfig() fills and checks it, and
// the trainer writes the result (plus engine info, seed and data source) to <run>/config.json.
// Method options (e.g. --kd-T) come from the method registry and sit flat beside the others.
import { checkSchedule, type LrType } from './schedule.js';
import { getMethod, methodNames, methodOptions } from '../losses/registry.js';
import { listModels } from '../models/registry.js';
import { didYouMean } from '../suggest.js';

export type SamplerName = 'shuffle' | 'm-per-class';

/** The trainer's own options (every method has them). */
export interface CommonTrainConfig {
  /** Architecture name, or a comma-separated list (one per network). */
  arch: string;
  numberNet: number;
  method: string;
  epochs: number;
  batchSize: number;
  lr: number;
  weightDecay: number;
  momentum: number;
  nesterov: boolean;
  lrType: LrType;
  milestones: number[];
  gamma: number;
  warmupEpochs: number;
  seed: number;
  dataset: string;
  /** Dataset directory (null: the dataset's default location / the bundled sample). */
  data: string | null;
  /** Input size (null: the dataset's own size). */
  imageSize: number | null;
  sampler: SamplerName;
  /** Horizontal-flip augmentation (off for digits / clothing). Null: the dataset's default. */
  flip: boolean | null;
  /** Use only the first N training / test images (0: all). For quick runs and tests. */
  limitTrain: number;
  /** The first N training images of each class, in file order (0: all); applied before limitTrain. */
  trainPerClass: number;
  limitTest: number;
  evalBatchSize: number;
  /** Parent folder of run directories. */
  out: string;
  /** Run directory name under `out` (null: derived from method, arch, dataset, seed). */
  name: string | null;
  /** null, 'auto' or a run directory / checkpoint path. */
  resume: string | null;
  /**
   * Safetensors state dicts to initialise the networks from (null: the architectures' own init):
   * one file for every network, or one per network. Ignored when resuming (the checkpoint's
   * weights win).
   */
  initFrom: string[] | null;
  /** Load --init-from files non-strictly: what fits, the rest stays initialised (listed in the log). */
  initNonStrict: boolean;
  device: 'cpu' | 'cuda';
  /** Native threads (0: the engine's default). */
  threads: number;
  /** Data worker threads (0: prepare batches on the main thread). */
  workers: number;
  /** Image folders: who decodes the files ('auto': sharp when installed and workers ≥ 1, else the pure-JS decoders). */
  decoder: 'auto' | 'js' | 'sharp';
  /** Checkpoints to keep besides best (0: keep every one). */
  keepLast: number;
  /** Checkpoint at the end of every N-th epoch and of the last (best is still written at every best epoch). */
  saveEvery: number;
  /** Also checkpoint every N optimizer steps, mid-epoch included (0: only at epoch ends). */
  saveEverySteps: number;
  /** Evaluate on the test split after every N-th epoch and after the last (1: every epoch). */
  evalEvery: number;
  auxiliary: boolean;
  /** Seconds between plain progress lines (no TTY). */
  logInterval: number;
}

/**
 * The resolved configuration: the common options plus every registered method's options under
 * their config keys (values validated by the option; read typed with readMethodOptions).
 */
export interface TrainConfig extends CommonTrainConfig {
  [methodOption: string]: unknown;
}

const commonDefaults: Readonly<CommonTrainConfig> = Object.freeze({
  arch: 'resnet14',
  numberNet: 2,
  method: 'lmcl',
  epochs: 12,
  batchSize: 64,
  lr: 0.1,
  weightDecay: 5e-4,
  momentum: 0.9,
  nesterov: true,
  lrType: 'cosine' as LrType,
  milestones: [] as number[],
  gamma: 0.1,
  warmupEpochs: 0,
  seed: 0,
  dataset: 'fashion-mnist',
  data: null,
  imageSize: null,
  sampler: 'shuffle' as SamplerName,
  flip: null,
  limitTrain: 0,
  trainPerClass: 0,
  limitTest: 0,
  evalBatchSize: 256,
  out: 'runs',
  name: null,
  resume: null,
  initFrom: null,
  initNonStrict: false,
  device: 'cpu' as const,
  threads: 0,
  workers: 1,
  decoder: 'auto' as const,
  keepLast: 2,
  saveEvery: 1,
  saveEverySteps: 0,
  evalEvery: 1,
  auxiliary: false,
  logInterval: 10,
});

/** Every method option once; building it checks the registry (no key shared inconsistently or taken by the trainer). */
export const sharedMethodOptions = methodOptions(undefined, new Set(Object.keys(commonDefaults)));

export const defaultTrainConfig: Readonly<TrainConfig> = Object.freeze({
  ...commonDefaults,
  ...Object.fromEntries([...sharedMethodOptions].map(([key, shared]) => [key, shared.option.default])),
});

const keys = new Set(Object.keys(defaultTrainConfig));

/** Accepts camelCase or kebab-case keys (config files may use the flag names). */
export function normaliseKey(key: string): string {
  const camel = key.replace(/[-_]([a-zA-Z])/g, (_, c: string) => c.toUpperCase());
  if (camel === 'kdt' || camel === 'kdT') return 'kdT';
  return camel;
}

/** An option key as a config file would write it: 'limitTrain' → 'limit-train', 'kdT' → 'kd-T' (the flag's own spelling). */
export function kebabKey(key: string): string {
  const methodFlag = sharedMethodOptions.get(key)?.option.flag;
  return methodFlag ? methodFlag.replace(/^--/, '') : key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}

/**
 * "unknown option 'lr-typ' (did you mean 'lr-type'?)": the suggestion in the spelling the key was
 * given in (kebab-case for 'lr-typ', camelCase for 'lrTyp'); `extra` are keys known besides the
 * training options (the CLI's 'quiet' and 'config').
 */
export function unknownOptionMessage(rawKey: string, extra: readonly string[] = []): string {
  const known = [...keys, ...extra];
  const kebab = /[-_]/.test(rawKey);
  const spelt = known.map((key) => (kebab ? kebabKey(key) : key));
  const suggestion = didYouMean(rawKey, spelt);
  return `unknown option '${rawKey}'${suggestion || ` (known: ${spelt.join(', ')})`}`;
}

/** The largest --seed: Generator.seed takes 32-bit seeds. */
export const MAX_SEED = 0xffffffff;

function isInt(value: unknown, min: number): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= min;
}

/** Fills defaults into `partial` (unknown keys are an error) and validates every field. */
export function resolveTrainConfig(partial: Record<string, unknown> = {}): TrainConfig {
  const config: Record<string, unknown> = { ...defaultTrainConfig, milestones: [...defaultTrainConfig.milestones] };
  // Two spellings of one option ('limit-train' and 'limit_train') would otherwise keep the last silently.
  const spelling = new Map<string, string>();
  for (const [rawKey, value] of Object.entries(partial)) {
    if (value === undefined) continue;
    const key = normaliseKey(rawKey);
    if (!keys.has(key)) throw new Error(unknownOptionMessage(rawKey));
    const earlier = spelling.get(key);
    if (earlier !== undefined) throw new Error(`options '${earlier}' and '${rawKey}' both set ${key}: give it once`);
    spelling.set(key, rawKey);
    config[key] = value;
  }
  const c = config as unknown as TrainConfig;
  const given = new Set(Object.keys(partial).filter((k) => partial[k] !== undefined).map(normaliseKey));
  // The main job: with neither --dataset nor --data, train on the bundled sample (even when the
  // full Fashion-MNIST is installed system-wide, which `--dataset fashion-mnist` picks up).
  if (!given.has('dataset') && !given.has('data')) c.data = 'bundled';
  if (typeof c.arch !== 'string' || c.arch.trim() === '') throw new Error('--arch: expected an architecture name');
  // 'resnet8,,resnet14' is a typo, not a cohort of two: every entry of the list must name something.
  if (c.arch.split(',').some((entry) => entry.trim() === '')) throw new Error(`--arch: an empty name in '${c.arch}' (expected names separated by single commas)`);
  // Checked here, before any data is read: a typo should not wait for a dataset to load.
  for (const name of c.arch.split(',').map((entry) => entry.trim())) {
    if (!listModels().includes(name)) throw new Error(`--arch: unknown architecture '${name}'${didYouMean(name, listModels())}. Known: ${listModels().join(', ')}`);
  }
  const archCount = c.arch.split(',').length;
  if (archCount > 1 && !given.has('numberNet')) c.numberNet = archCount;
  if (!isInt(c.numberNet, 1)) throw new Error(`--number-net must be an integer ≥ 1, got ${String(c.numberNet)}`);
  if (typeof c.method !== 'string' || !methodNames().includes(c.method)) {
    const suggestion = typeof c.method === 'string' ? didYouMean(c.method, methodNames()) : '';
    throw new Error(`--method must be one of ${methodNames().join(', ')}, got '${String(c.method)}'${suggestion}`);
  }
  // Method-dependent defaults (registry entry): MCL's two-images-per-class batches, L-MCL's stages.
  const entry = getMethod(c.method);
  if (!given.has('sampler')) c.sampler = entry.defaultSampler ?? 'shuffle';
  if (!given.has('auxiliary')) c.auxiliary = entry.defaultAuxiliary ?? false;
  if (!isInt(c.batchSize, 1)) throw new Error(`--batch-size must be an integer ≥ 1, got ${String(c.batchSize)}`);
  if (!isInt(c.evalBatchSize, 1)) throw new Error(`--eval-batch-size must be an integer ≥ 1, got ${String(c.evalBatchSize)}`);
  for (const [name, value] of [['weight-decay', c.weightDecay], ['momentum', c.momentum], ['gamma', c.gamma], ['log-interval', c.logInterval]] as const) {
    if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) throw new Error(`--${name} must be a finite number ≥ 0, got ${String(value)}`);
  }
  // Every method's options are checked (and kept, with defaults), whichever method runs: a
  // config file written for one method stays valid for another, as before.
  for (const [key, shared] of sharedMethodOptions) config[key] = shared.option.validate(config[key]);
  // Numbers only: Number(true) is 1 and Number('') is 0, so a converted `[true]` would be a milestone.
  if (!Array.isArray(c.milestones) || !c.milestones.every((m: unknown) => typeof m === 'number')) {
    throw new Error(`--milestones: expected a list of epoch numbers, got ${JSON.stringify(c.milestones)}`);
  }
  c.milestones = [...c.milestones];
  checkSchedule({ lr: c.lr, epochs: c.epochs, type: c.lrType, milestones: c.milestones, gamma: c.gamma, warmupEpochs: c.warmupEpochs });
  // The generators are seeded with 32 bits (tensor/random.ts): a larger seed would give the stream
  // of a smaller one (2^32 + 1 ≡ 1), so it is refused rather than silently aliased.
  if (!isInt(c.seed, 0) || c.seed > MAX_SEED) throw new Error(`--seed must be an integer in [0, ${MAX_SEED}] (the generators take 32-bit seeds), got ${String(c.seed)}`);
  if (c.imageSize !== null && !isInt(c.imageSize, 1)) throw new Error(`--image-size must be an integer ≥ 1, got ${String(c.imageSize)}`);
  if (c.sampler !== 'shuffle' && c.sampler !== 'm-per-class') throw new Error(`--sampler must be shuffle or m-per-class, got '${String(c.sampler)}'`);
  if (c.flip !== null && typeof c.flip !== 'boolean') throw new Error('--flip must be true or false');
  for (const [name, value] of [['limit-train', c.limitTrain], ['train-per-class', c.trainPerClass], ['limit-test', c.limitTest], ['threads', c.threads], ['workers', c.workers]] as const) {
    if (!isInt(value, 0)) throw new Error(`--${name} must be an integer ≥ 0, got ${String(value)}`);
  }
  if (c.decoder !== 'auto' && c.decoder !== 'js' && c.decoder !== 'sharp') throw new Error(`--decoder must be auto, js or sharp, got '${String(c.decoder)}'`);
  if (c.decoder === 'sharp' && c.workers === 0) throw new Error('--decoder sharp decodes in the data workers (it is asynchronous): use --workers 1 or more, or --decoder js');
  if (!isInt(c.evalEvery, 1)) throw new Error(`--eval-every must be an integer ≥ 1, got ${String(c.evalEvery)}`);
  if (!isInt(c.saveEverySteps, 0)) throw new Error(`--save-every-steps must be an integer ≥ 0, got ${String(c.saveEverySteps)}`);
  if (!isInt(c.keepLast, 0)) throw new Error(`--keep-last must be an integer ≥ 0 (0 = keep all), got ${String(c.keepLast)}`);
  if (!isInt(c.saveEvery, 1)) throw new Error(`--save-every must be an integer ≥ 1, got ${String(c.saveEvery)}`);
  if (c.device !== 'cpu' && c.device !== 'cuda') throw new Error(`--device must be cpu or cuda, got '${String(c.device)}'`);
  if (typeof c.nesterov !== 'boolean' || typeof c.auxiliary !== 'boolean') throw new Error('--nesterov/--auxiliary must be booleans');
  if (typeof c.out !== 'string' || c.out === '') throw new Error('--out: expected a folder');
  // A plain folder name: no separators, not '.'/'..' (they name the parent) and not hidden ('..'
  // used to become runs/.._2); checkpoint scratch folders are the dot-names.
  if (c.name !== null && (typeof c.name !== 'string' || c.name.trim() === '' || /[\\/]/.test(c.name) || c.name.startsWith('.'))) {
    throw new Error(`--name: expected a plain folder name (no '/', not starting with '.'), got ${JSON.stringify(c.name)}`);
  }
  if (c.resume !== null && (typeof c.resume !== 'string' || c.resume === '')) throw new Error("--resume: expected 'auto' or a run directory");
  if (c.data !== null && (typeof c.data !== 'string' || c.data.trim() === '')) throw new Error(`--data: expected a folder, got ${JSON.stringify(c.data)}`);
  c.initFrom = parseInitFrom(c.initFrom);
  if (typeof c.initNonStrict !== 'boolean') throw new Error('--init-non-strict must be true or false');
  return c;
}

/** --init-from: a comma-separated list (the flag) or a list of paths (a config file); every entry a path. */
function parseInitFrom(value: unknown): string[] | null {
  if (value === null) return null;
  const entries = typeof value === 'string' ? value.split(',').map((entry) => entry.trim())
    : Array.isArray(value) && value.every((entry) => typeof entry === 'string') ? (value as string[]).map((entry) => entry.trim()) : null;
  if (entries === null) throw new Error(`--init-from: expected safetensors files (comma-separated), got ${JSON.stringify(value)}`);
  if (entries.length === 0 || entries.some((entry) => entry === '')) {
    throw new Error(`--init-from: an empty file name in ${JSON.stringify(value)} (expected one file, or one per network separated by single commas)`);
  }
  return entries;
}

/** Default run directory name: <method>_<arch>x<N>_<dataset>_seed<seed>. */
export function defaultRunName(config: TrainConfig): string {
  const arch = config.arch.includes(',') ? config.arch.replace(/,/g, '+') : `${config.arch}x${config.numberNet}`;
  return `${config.method}_${arch}_${config.dataset}_seed${config.seed}`.replace(/[^A-Za-z0-9_.+-]/g, '-');
}
