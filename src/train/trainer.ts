// The training loop: the method (src/losses/, chosen by --method) supplies the loss, its own
// modules and parameter sets; the loop builds one SGD per parameter set, calls the training step
// (train/step.ts: the method's own or the standard one) once per batch, sets the per-epoch lr on
// every optimizer, evaluates every epoch, writes a run directory with metrics and checkpoints,
// and handles exact resume, Ctrl-C and NaN.
//
// Host reads: a step leaves its loss parts and top-1 counts on the device; they are read in one
// transfer once per log interval (progress line), before a checkpoint and at the end of an epoch
// (train/readings.ts). A NaN/Inf loss is therefore noticed at the next read, named by the step it
// happened in; checkpoints are only written after a read. A finite loss can still produce NaN/Inf
// weights (a huge lr, a loss of 5e22), so every save first checks each tensor it would write
// (train/finite.ts) and refuses a non-finite state: no checkpoint ever holds one, and the exit-3
// message names the last checkpoint that passed the check.
//
// Determinism: one seed drives initialisation (the global generator, seeded before the cohort is
// built) and the data loader (its own generator, restored from the loader state). A checkpoint
// holds every network, the optimizer buffers and hyper-parameters, the schedule position (epoch,
// step, batch position), both RNG states and the partial-epoch meters, so an interrupted and
// resumed run performs exactly the same floating-point operations as an uninterrupted one (on
// any thread count: the kernels split their sums by shape) and ends with the same bits.
import fs from 'node:fs';
import path from 'node:path';
import '../autograd/engine.js'; // installs Tensor.backward
import { tidy } from '../tensor/scope.js';
import { defaultGenerator, manualSeed } from '../tensor/random.js';
import { SGD } from '../optim/sgd.js';
import { engineInfo, setNumThreads } from '../runtime.js';
import { cohortArchitectures, createCohort } from '../models/registry.js';
import type { Student } from '../models/types.js';
import type { Batch } from '../data/types.js';
import type { Tensor } from '../tensor/tensor.js';
import { IndexTensor } from '../tensor/index_tensor.js';
import type { LossParts } from '../losses/parts.js';
import type { Method, MethodContext, ParameterSet } from '../losses/method.js';
import { getMethod, readMethodOptions } from '../losses/registry.js';
import type { MethodOptions, OptionValue } from '../losses/options.js';
import { finalLogits } from '../losses/terms.js';
import { runStep, stepContext } from './step.js';
import { placeCohort, requireDevice } from './device.js';
import { PendingReadings, type NonFiniteStep } from './readings.js';
import { learningRate, type ScheduleOptions } from './schedule.js';
import { countTop1OnDevice, evaluate, top1Masks, type EvalResult } from './metrics.js';
import { Progress, formatDuration, type ProgressOptions } from './progress.js';
import { RunDirectory, type EpochRecord } from './rundir.js';
import { defaultRunName, normaliseKey, resolveTrainConfig, type TrainConfig } from './config.js';
import { STATE_FORMAT, collectTensors, emptyMeters, optimizerGroupsOf, restoreTensors, type EpochMeters, type TrainState } from './state.js';
import {
  describeDamagedCheckpoints, findResumeCheckpoint, readTrainCheckpoint, repairBestCheckpoint, skippedCheckpoints, writeTrainCheckpoint, type SavedTraining,
} from './checkpoint.js';
import { openData, type TrainData } from './data.js';
import { describeNonFinite, findNonFiniteState } from './finite.js';
import { checkInitFiles, initialiseNetworks } from './init_from.js';
import { writeFileAtomic } from '../io/atomic.js';
import { profileStep, profilingStarted, startProfiling, stopProfiling } from '../profiler/profiler.js';
import { attachModuleTimers } from '../profiler/modules.js';
import { measureFmaPeak } from '../profiler/peak.js';
import { buildReport, formatReport, reportJson } from '../profiler/report.js';

/** Steps of this process that run unprofiled before a --profile window (allocator caches, JIT, thread pool). */
export const PROFILE_WARMUP_STEPS = 2;

export interface TrainOptions {
  /** Partial config (flags / config file); defaults are filled by resolveTrainConfig. */
  config: Partial<TrainConfig> | Record<string, unknown>;
  /** Console lines (default: console.log). null: silent. */
  console?: ((line: string) => void) | null;
  progress?: ProgressOptions;
  /** Install a SIGINT handler (default true). */
  handleSignals?: boolean;
  /** Build this method instead of config.method's registry entry (tests, experiments); config.method still names the run. */
  method?: (context: MethodContext<Record<string, OptionValue>>) => Method;
  /** Testing: behave as if interrupted (checkpoint + stop) once this many global steps are done. */
  stopAfterSteps?: number;
  /**
   * --profile N: time every kernel of N steps, after PROFILE_WARMUP_STEPS steps of this process,
   * then log the table (train.log and console), write profile.json in the run directory and go on
   * training with the profiler off (it changes no numbers: the run stays bit-identical).
   */
  profileSteps?: number;
  /** Testing: called after each step's bookkeeping, before the step-boundary yield (tests count host reads per step). */
  onStepEnd?: (info: { epoch: number; batchIndex: number; step: number }) => void;
}

export type TrainStatus = 'completed' | 'interrupted' | 'nonfinite';

export interface TrainResult {
  status: TrainStatus;
  /** Process exit code the CLI should use: 0, 130 (interrupted), 3 (non-finite loss). */
  exitCode: number;
  runDir: string;
  config: TrainConfig;
  /** Test metrics of the last completed epoch (null if none completed in this process or before). */
  final: EvalResult | null;
  bestMeanTop1: number;
  bestEpoch: number;
  epochsCompleted: number;
  step: number;
  message: string;
  /** The networks (still alive; the caller disposes them) — used by tests to compare weights. */
  networks: Student[];
  /** The method (its criterion still alive; the caller disposes it). */
  method: Method;
}

/** The run diverged: a non-finite loss at a read, or non-finite weights/buffers at a save. */
class NonFiniteError extends Error {
  constructor(readonly kind: 'loss' | 'state', message: string) {
    super(message);
  }
}

/**
 * Options that must match between a checkpoint and the resuming run (others may change, e.g.
 * --out); the method's registry entry adds its own (resumeKeys, e.g. dml's kdT).
 */
const resumeInvariant: readonly string[] = ['arch', 'numberNet', 'method', 'epochs', 'batchSize', 'lr', 'weightDecay', 'momentum', 'nesterov',
  'lrType', 'milestones', 'gamma', 'warmupEpochs', 'seed', 'dataset', 'imageSize', 'sampler', 'flip', 'limitTrain', 'trainPerClass', 'limitTest', 'auxiliary', 'initFrom', 'decoder'];

/** The resume-relevant options where `now` differs from the checkpoint's `recorded` config. */
function resumeDifferences(recorded: TrainConfig, now: TrainConfig): string[] {
  const invariant = [...resumeInvariant, ...getMethod(recorded.method).resumeKeys];
  return invariant.filter((key) => JSON.stringify(recorded[key]) !== JSON.stringify(now[key]));
}

function describeDifferences(keys: readonly string[], recorded: TrainConfig, now: TrainConfig): string {
  return keys.map((k) => `${k} (checkpoint ${JSON.stringify(recorded[k])}, now ${JSON.stringify(now[k])})`).join(', ');
}

/**
 * Why a run cannot be continued for more epochs than it was scheduled for, and what to do
 * instead. The epoch count is part of the schedule: a cosine lr is ½·lr·(1+cos(π·e/E)), so a
 * larger E changes the lr of every epoch, those already trained included, and a finished cosine
 * run has annealed to ~0: "continuing" it would jump the lr back up mid-run.
 */
function extensionRefusal(dir: string, recorded: TrainConfig, now: TrainConfig, epochsDone: number): string {
  const done = epochsDone >= recorded.epochs ? `finished its ${recorded.epochs} epochs` : `was scheduled for ${recorded.epochs} epochs (${epochsDone} done)`;
  const why = recorded.lrType === 'cosine'
    ? `its cosine schedule spans exactly ${recorded.epochs} epochs (the lr reaches ~0 at the end), so ${now.epochs} epochs would be a different schedule, ` +
      'changing the lr of the epochs already trained and raising it again after they end'
    : 'the epoch count is part of the schedule a resume continues exactly';
  return `--resume: ${dir} ${done} and cannot be extended to ${now.epochs}: ${why}. ` +
    `To train for ${now.epochs} epochs, start a new run with --epochs ${now.epochs} (without --resume, or with another --name).`;
}

/** The config a checkpoint was written with (its state.json), resolved; null when unreadable. */
function recordedConfig(checkpoint: string): { config: TrainConfig; epoch: number } | null {
  try {
    const state = (JSON.parse(fs.readFileSync(path.join(checkpoint, 'state.json'), 'utf8')) as { state?: { config?: Record<string, unknown>; epoch?: unknown } }).state;
    if (!state?.config || typeof state.epoch !== 'number') return null;
    return { config: resolveTrainConfig({ ...state.config, resume: null }), epoch: state.epoch };
  } catch {
    return null;
  }
}

function uniqueRunDir(out: string, name: string): string {
  let candidate = path.join(out, name);
  for (let k = 2; fs.existsSync(candidate); k += 1) candidate = path.join(out, `${name}_${k}`);
  return candidate;
}

/** Picks the run directory and (when resuming) the checkpoint to restore. */
function locateRun(config: TrainConfig): { dir: string; checkpoint: string | null; notes: string[] } {
  const name = config.name ?? defaultRunName(config);
  if (config.resume === null) return { dir: uniqueRunDir(config.out, name), checkpoint: null, notes: [] };
  if (config.resume === 'auto') {
    // The newest <name> or <name>_<k> folder whose checkpoint was written with this command's
    // resume-relevant options (defaults included: `--resume auto` means "continue this command",
    // so a run with another --lr is not it). Every folder passed over is named with the reason.
    const candidates: { dir: string; checkpoint: string; mtime: number; recorded: TrainConfig; epoch: number; differences: string[] }[] = [];
    const notes: string[] = [];
    if (fs.existsSync(config.out)) {
      for (const entry of fs.readdirSync(config.out)) {
        if (entry !== name && !new RegExp(`^${name.replace(/[.+]/g, '\\$&')}_\\d+$`).test(entry)) continue;
        const dir = path.join(config.out, entry);
        const checkpoint = findResumeCheckpoint(dir);
        if (!checkpoint) {
          const damaged = describeDamagedCheckpoints(dir);
          if (damaged) notes.push(`--resume auto: skipped ${dir}, no complete checkpoint${damaged}`);
          continue;
        }
        const recorded = recordedConfig(checkpoint);
        if (!recorded) {
          notes.push(`--resume auto: skipped ${dir}, its checkpoint ${checkpoint} has no readable state.json config`);
          continue;
        }
        candidates.push({ dir, checkpoint, mtime: fs.statSync(checkpoint).mtimeMs, recorded: recorded.config, epoch: recorded.epoch,
          differences: resumeDifferences(recorded.config, config) });
      }
    }
    candidates.sort((a, b) => b.mtime - a.mtime);
    const matching = candidates.filter((candidate) => candidate.differences.length === 0);
    const picked = matching[0];
    if (picked) {
      const where = picked.epoch >= picked.recorded.epochs ? `finished, ${picked.epoch}/${picked.recorded.epochs} epochs: nothing left to train` : `${picked.epoch}/${picked.recorded.epochs} epochs done`;
      notes.push(`--resume auto: picked ${picked.dir} (${where}), the newest of ${matching.length} run${matching.length > 1 ? 's' : ''} in ${config.out} with these options`);
      return { dir: picked.dir, checkpoint: picked.checkpoint, notes };
    }
    // Asking for more epochs than the newest such run was scheduled for is an attempt to extend it.
    const extended = candidates.find((candidate) => candidate.differences.length === 1 && candidate.differences[0] === 'epochs' && config.epochs > candidate.recorded.epochs);
    if (extended) throw new Error(extensionRefusal(extended.dir, extended.recorded, config, extended.epoch));
    for (const candidate of candidates) notes.push(`--resume auto: passed over ${candidate.dir}: ${describeDifferences(candidate.differences, candidate.recorded, config)} differ`);
    const dir = uniqueRunDir(config.out, name);
    notes.push(`--resume auto: no run in ${config.out} has these options; starting a fresh run in ${dir}`);
    return { dir, checkpoint: null, notes };
  }
  const target = config.resume;
  if (!fs.existsSync(target)) throw new Error(`--resume ${target}: no such run directory or checkpoint`);
  const checkpoint = findResumeCheckpoint(target);
  if (!checkpoint) throw new Error(`--resume ${target}: no complete checkpoint found there${describeDamagedCheckpoints(target)}`);
  // A checkpoint path lives in <run>/checkpoints/...; the run directory is the folder above it.
  let dir = path.resolve(target);
  while (!fs.existsSync(path.join(dir, 'config.json')) && path.dirname(dir) !== dir) dir = path.dirname(dir);
  if (!fs.existsSync(path.join(dir, 'config.json'))) dir = path.resolve(target);
  return { dir, checkpoint, notes: [] };
}

const SET_NAME = /^[a-z][a-z0-9_]*$/;

/** Every network parameter in exactly one set, no parameter twice, set names unique and checkpoint-safe. */
function checkParameterSets(sets: readonly ParameterSet[], networks: Student[], method: Method): void {
  if (sets.length === 0) throw new Error(`method ${method.name}: parameterSets() returned no set`);
  const owner = new Map<Tensor, string>();
  for (const set of sets) {
    if (!SET_NAME.test(set.name)) throw new Error(`method ${method.name}: parameter set name '${set.name}' must match ${SET_NAME}`);
    if (sets.filter((other) => other.name === set.name).length > 1) throw new Error(`method ${method.name}: two parameter sets are named '${set.name}'`);
    for (const param of set.parameters) {
      const previous = owner.get(param);
      if (previous !== undefined) throw new Error(`method ${method.name}: parameter ${param.name ?? '?'} is in sets '${previous}' and '${set.name}'`);
      owner.set(param, set.name);
    }
  }
  const missing = [...networks.flatMap((net) => net.parameters()), ...(method.criterion?.parameters() ?? [])].filter((param) => !owner.has(param));
  if (missing.length > 0) throw new Error(`method ${method.name}: ${missing.length} trainable parameter(s) (e.g. ${missing[0]!.name ?? '?'}) are in no parameter set`);
}

/** Runs (or resumes) a training job. */
export async function train(options: TrainOptions): Promise<TrainResult> {
  const started = Date.now();
  let config = resolveTrainConfig(options.config as Record<string, unknown>);
  const say = options.console === undefined ? (line: string) => console.log(line) : options.console;
  requireDevice(config.device, 'train');
  if (config.threads > 0) setNumThreads(config.threads);

  const { dir, checkpoint, notes: locateNotes } = locateRun(config);
  let saved: SavedTraining | null = null;
  if (checkpoint) {
    saved = readTrainCheckpoint(checkpoint);
    // Resolved, so a method option the checkpoint predates compares as its default.
    const old = resolveTrainConfig({ ...saved.state.config, resume: null });
    // The checkpoint's config is the base; options given now override it, except those that
    // define the trajectory (an error when they differ).
    const given = Object.fromEntries(Object.entries(options.config as Record<string, unknown>)
      .filter(([, value]) => value !== undefined).map(([key, value]) => [normaliseKey(key), value]));
    const merged = resolveTrainConfig({ ...old, ...given, resume: config.resume });
    const conflicting = resumeDifferences(old, merged);
    if (conflicting.length === 1 && conflicting[0] === 'epochs' && merged.epochs > old.epochs) throw new Error(extensionRefusal(dir, old, merged, saved.state.epoch));
    if (conflicting.length > 0) throw new Error(`--resume: ${describeDifferences(conflicting, old, merged)} differ from the checkpoint`);
    config = merged;
  }

  // The --init-from mistakes that need no network, caught before the run directory is made.
  if (!saved && config.initFrom !== null) checkInitFiles(config.initFrom, cohortArchitectures(config.arch, config.numberNet).length);

  // ---- data, cohort, method, optimizers -----------------------------------------------------
  // All of these can fail on the user's input (a missing data folder, an unknown architecture, a
  // batch the sampler cannot fill): they run before the run directory exists, so a failed start
  // leaves no empty run folder behind (and no half-built objects: the loader's worker threads
  // would keep the process alive).
  const data: TrainData = openData(config, { device: config.device });
  const entry = getMethod(config.method);
  let initLines: string[] = [];
  const { networks, method, parameterSets } = ((): { networks: Student[]; method: Method; parameterSets: readonly ParameterSet[] } => {
    let built: Student[] = [];
    let made: Method | null = null;
    try {
      manualSeed(config.seed);
      built = createCohort(config.arch, config.numberNet, {
        numClasses: data.classes,
        inChannels: data.channels,
        imageSize: data.imageSize,
        auxiliary: config.auxiliary,
      });
      // --init-from before the method is built (it may derive state from the networks); a resume
      // takes the checkpoint's weights instead.
      if (!saved && config.initFrom !== null) initLines = initialiseNetworks(built, config.initFrom, !config.initNonStrict);
      const methodOptions = readMethodOptions(entry, config);
      const methodContext = { networks: built, classes: data.classes, options: methodOptions, trainLabels: data.trainLabels, seed: config.seed };
      made = options.method ? options.method(methodContext) : entry.create(methodContext);
      // Before anything holds parameter tensors (the sets, the optimizers): moving replaces them.
      placeCohort(built, made, config.device);
      const sets = made.parameterSets();
      checkParameterSets(sets, built, made);
      return { networks: built, method: made, parameterSets: sets };
    } catch (error) {
      for (const net of built) net.dispose();
      made?.dispose();
      data.close();
      throw error;
    }
  })();
  // One SGD per parameter set: the run's SGD flags, then the set's overrides; lr follows the schedule.
  const optimizers = new Map<string, SGD>(parameterSets.map((set) => [set.name, new SGD(set.parameters,
    { lr: config.lr, momentum: config.momentum, nesterov: config.nesterov, weightDecay: config.weightDecay, ...set.optimizer })]));
  const mainOptimizer = optimizers.get(parameterSets[0]!.name)!;
  const schedule: ScheduleOptions = { lr: config.lr, epochs: config.epochs, type: config.lrType, milestones: config.milestones, gamma: config.gamma, warmupEpochs: config.warmupEpochs };

  let epoch = 0;
  let position = 0;
  let step = 0;
  let meters: EpochMeters = emptyMeters(networks.length);
  let best = { meanTop1: -1, epoch: 0 };
  let history: EpochRecord[] = [];
  let elapsedBefore = 0;
  if (saved) {
    const state = saved.state;
    restoreTensors(saved, networks, method.criterion, optimizers, optimizerGroupsOf(state), checkpoint!);
    // A checkpoint written before saves were checked may hold NaN weights: never continue from one.
    const poisoned = findNonFiniteState(networks, method.criterion, optimizers);
    if (poisoned.length > 0) {
      for (const net of networks) net.dispose();
      method.dispose();
      data.close();
      throw new Error(`--resume: ${checkpoint} holds non-finite values (${describeNonFinite(poisoned)}); resume from an earlier checkpoint`);
    }
    defaultGenerator.setState(state.rng);
    if (state.loader) data.train.loadState(state.loader);
    epoch = state.epoch;
    position = state.position;
    step = state.step;
    meters = state.meters;
    best = { meanTop1: state.bestMeanTop1, epoch: state.bestEpoch };
    history = state.history;
    elapsedBefore = state.elapsedSeconds;
  }

  const progress = new Progress({ intervalSeconds: config.logInterval, ...options.progress, quiet: options.progress?.quiet ?? say === null });
  let run: RunDirectory;
  try {
    run = new RunDirectory(dir, say === null ? null : (line) => {
      progress.clear();
      say(line);
    });
  } catch (error) {
    for (const net of networks) net.dispose();
    method.dispose();
    data.close();
    throw error;
  }
  const info = engineInfo();
  const paramCounts = networks.map((net) => net.parameters().reduce((a, p) => a + p.size, 0));
  // The fields besides the options are listed in rundir.ts (RUN_RECORD_FIELDS), so that this
  // file read back with --config reproduces the run.
  run.writeConfig({
    ...config,
    runDir: dir,
    dataset: { name: config.dataset, source: data.source, train: data.trainCount, test: data.testCount, classes: data.classes,
      channels: data.channels, imageSize: data.imageSize, mean: data.mean, std: data.std, flip: data.flip, classNames: data.classNames },
    ensemble: 'mean of softmax probabilities of the final heads',
    selection: 'best epoch = highest mean over networks of the final-head test top-1 (selected on the test set; labelled best-epoch)',
    networks: networks.map((net, n) => ({ index: n, architecture: net.architecture, parameters: paramCounts[n], stages: net.stageCount })),
    parameterSets: parameterSets.map((set) => ({ name: set.name, parameters: set.parameters.reduce((a, p) => a + p.size, 0), optimizer: set.optimizer ?? {} })),
    engine: info,
    node: process.version,
    resumedFrom: checkpoint,
  });
  for (const line of locateNotes) run.log(line);
  if (saved) for (const line of skippedCheckpoints(checkpoint!, config.resume)) run.log(line);
  if (saved) run.log(`resuming ${dir} from ${checkpoint} at epoch ${epoch + 1}, batch ${position} (step ${step})`);
  else run.log(`run directory ${dir}`);
  for (const line of initLines) run.log(line);
  // A crash between an epoch's regular and best saves leaves best missing or stale.
  const bestRepair = saved ? repairBestCheckpoint(run.checkpointDir, checkpoint!, saved.state) : null;
  if (bestRepair) run.log(bestRepair);
  const optionText = Object.entries(entry.options as MethodOptions).map(([key, option]) => `${option.flag} ${String(config[key])}`).join(' ');
  run.log(`${config.method}${optionText ? ` (${optionText})` : ''} cohort: ${networks.map((net, n) => `${net.architecture} (${paramCounts[n]!.toLocaleString('en-US')} params)`).join(' + ')}; ` +
    `data ${data.description}; ${config.epochs} epochs × ${data.train.batchesPerEpoch} batches of ${Math.min(config.batchSize, data.trainCount)}; ` +
    `lr ${config.lr} ${config.lrType}${config.warmupEpochs ? ` +${config.warmupEpochs} warm-up` : ''}; engine ${info.simd}, ${info.threads} threads`);

  // ---- signals --------------------------------------------------------------------------------
  let interruptRequested = false;
  const onSigint = (): void => {
    if (interruptRequested) {
      progress.clear();
      process.stderr.write('second Ctrl-C: exiting without a checkpoint\n');
      process.exit(130);
    }
    interruptRequested = true;
    progress.log('Ctrl-C: saving a checkpoint at the next step boundary (press again to quit immediately)');
  };
  const handleSignals = options.handleSignals ?? true;
  if (handleSignals) process.on('SIGINT', onSigint);

  const readings = new PendingReadings();
  let lastRead = Date.now();
  // The newest checkpoint known to hold only finite values: the one resumed from (checked above)
  // or the last one this process wrote (checked before writing).
  let lastFiniteCheckpoint: string | null = checkpoint;
  /** A non-finite total read back stops the run (NonFiniteError). */
  const stopIfNonFinite = (bad: NonFiniteStep | null): void => {
    if (bad) {
      const where = bad.step;
      // The loop reports the steps that completed with a finite loss.
      step = where.step;
      throw new NonFiniteError('loss', `loss is ${bad.values.total} at epoch ${where.epoch + 1}, batch ${where.batchIndex + 1} (step ${where.step + 1}): ` +
        `${Object.entries(bad.values).map(([k, v]) => `${k}=${v}`).join(' ')}`);
    }
  };
  /** Reads the waiting steps into the meters (before a checkpoint and at an epoch's end). */
  const readPending = (): void => {
    lastRead = Date.now();
    stopIfNonFinite(readings.readInto(meters));
  };
  /** The same for a progress line: the event loop keeps running while the device catches up. */
  const readPendingAsync = async (): Promise<void> => {
    lastRead = Date.now();
    stopIfNonFinite(await readings.readIntoAsync(meters));
  };

  /** Writes a checkpoint; the caller has read every pending step (readPending). */
  const saveCheckpoint = (reason: string, regular = true): string => {
    if (readings.size > 0) throw new Error('lmcl internal: checkpoint with unread steps');
    const poisoned = findNonFiniteState(networks, method.criterion, optimizers);
    if (poisoned.length > 0) {
      throw new NonFiniteError('state', `NaN/Inf in the training state after step ${step} (epoch ${epoch + (position > 0 ? 1 : 0)}, ${reason} checkpoint not written): ` +
        describeNonFinite(poisoned));
    }
    const state: TrainState = {
      format: STATE_FORMAT, epoch, position, step, lr: mainOptimizer.paramGroups[0]!.lr,
      optimizers: Object.fromEntries([...optimizers].map(([name, optimizer]) => [name, { paramGroups: optimizer.stateDict().paramGroups }])),
      rng: defaultGenerator.getState(), loader: data.train.state(), meters,
      bestMeanTop1: best.meanTop1, bestEpoch: best.epoch,
      elapsedSeconds: elapsedBefore + (Date.now() - started) / 1000, history, config, reason,
    };
    const written = writeTrainCheckpoint(run.checkpointDir, { state, ...collectTensors(networks, method.criterion, optimizers) },
      { keepLast: config.keepLast, best: reason === 'epoch' && best.epoch === epoch, regular, architectures: networks.map((net) => net.architecture) });
    lastFiniteCheckpoint = written;
    return written;
  };

  // ---- --profile: a window of steps timed op by op -------------------------------------------
  const profileFrom = PROFILE_WARMUP_STEPS;
  const profileUntil = options.profileSteps ? PROFILE_WARMUP_STEPS + options.profileSteps : 0;
  let stepsThisProcess = 0;
  let detachModuleTimers: (() => void) | null = null;
  const reportProfile = (): void => {
    if (!detachModuleTimers) return;
    const records = stopProfiling();
    detachModuleTimers();
    detachModuleTimers = null;
    const peak = measureFmaPeak();
    const report = buildReport(records, {
      description: `profile of steps ${profileFrom + 1}..${profileFrom + records.steps} of this process (${config.method}, ${config.arch}×${config.numberNet}, batch ${config.batchSize})`,
      peak: { gflops: peak.gflops, threads: peak.threads, simd: peak.simd },
    });
    for (const line of formatReport(report).split('\n')) run.log(line);
    writeFileAtomic(path.join(dir, 'profile.json'), `${reportJson(report)}\n`);
    run.log(`profile written to ${path.join(dir, 'profile.json')}; training continues with the profiler off`);
  };

  const finish = (status: TrainStatus, exitCode: number, message: string): TrainResult => {
    reportProfile(); // a run that ended inside the window still reports the steps it profiled
    if (handleSignals) process.off('SIGINT', onSigint);
    data.close();
    readings.discard();
    const last = history[history.length - 1];
    return { status, exitCode, runDir: dir, config, final: last ? last.test : null, bestMeanTop1: best.meanTop1, bestEpoch: best.epoch,
      epochsCompleted: history.length, step, message, networks, method };
  };

  // ---- the loop -------------------------------------------------------------------------------
  const batches = data.train.batchesPerEpoch;
  const classes = data.classes;
  try {
    while (epoch < config.epochs) {
      const lr = learningRate(schedule, epoch);
      for (const optimizer of optimizers.values()) for (const group of optimizer.paramGroups) group.lr = lr;
      for (const net of networks) net.train();
      method.train();
      // Seconds per step include waiting for the data (honest images/s); the wait itself is
      // also summed on its own (dataSeconds: a loader that cannot keep up shows there).
      let tick = Date.now();
      let dataSeconds = 0;
      let waitStart = tick;
      for await (const loaded of data.train.epoch(epoch, position)) {
        dataSeconds += (Date.now() - waitStart) / 1000;
        // The labels go to the run's device once per batch; every op of the step reads them there.
        const batch = { ...loaded, y: IndexTensor.from(loaded.y, config.device) };
        const context = stepContext(method, { epoch, step, batchIndex: position, batchesPerEpoch: batches, lr, classes, networks, optimizers });
        let done: { parts: LossParts; correct: Tensor[] };
        const profiled = stepsThisProcess >= profileFrom && stepsThisProcess < profileUntil;
        if (profiled && !detachModuleTimers) {
          startProfiling();
          detachModuleTimers = attachModuleTimers([...networks, ...(method.criterion ? [method.criterion] : [])]);
        }
        const body = () => tidy(() => {
          const result = runStep(method, batch, context);
          const masks = top1Masks(batch.y, classes, config.device);
          return { parts: result.parts, correct: result.outputs.map((output) => countTop1OnDevice(finalLogits(output), masks)) };
        });
        try {
          done = profiled ? profileStep(body) : body();
        } finally {
          batch.x.dispose();
          batch.y.dispose();
        }
        stepsThisProcess += 1;
        if (profiled && stepsThisProcess === profileUntil) reportProfile();
        for (const optimizer of optimizers.values()) optimizer.zeroGrad();
        const size = batch.y.length;
        readings.push({ epoch, batchIndex: position, step, batchSize: size, parts: done.parts, correct: done.correct });
        meters.seen += size;
        meters.batches += 1;
        const now = Date.now();
        meters.trainSeconds += (now - tick) / 1000;
        tick = now;
        position += 1;
        step += 1;

        // Read the step's numbers only when a line is due (or the log interval passed, for quiet runs).
        if (progress.due(position, batches) || now - lastRead >= config.logInterval * 1000) {
          await readPendingAsync();
          const rate = meters.seen / Math.max(meters.trainSeconds, 1e-9);
          const remainingBatches = (config.epochs - epoch) * batches - position;
          progress.update({
            epoch, epochs: config.epochs, batch: position, batches, imagesPerSecond: rate,
            etaSeconds: (remainingBatches * Math.min(config.batchSize, data.trainCount)) / Math.max(rate, 1e-9),
            loss: meters.lossSums.total! / meters.seen, lr, top1: meters.correct.map((c) => (100 * c) / meters.seen),
          });
        }
        options.onStepEnd?.({ epoch, batchIndex: position - 1, step: step - 1 });

        // Step boundary: honour Ctrl-C (the await lets the signal handler run).
        const yieldStart = Date.now();
        await new Promise<void>((resolve) => setImmediate(resolve));
        // The yield is not training time; a read above is (on a device it waits for the queued
        // steps to finish: leaving it out would count kernel launches, not images trained).
        tick += Date.now() - yieldStart;
        // --save-every-steps: a mid-epoch checkpoint (long epochs lose at most N steps to a kill);
        // an epoch's last step is saved by the epoch end just below.
        if (config.saveEverySteps > 0 && step % config.saveEverySteps === 0 && position < batches) {
          readPending();
          saveCheckpoint('steps');
        }
        const stopForTest = options.stopAfterSteps !== undefined && step >= options.stopAfterSteps;
        if (interruptRequested || stopForTest) {
          readPending();
          const file = saveCheckpoint('interrupt');
          run.log(`interrupted at epoch ${epoch + 1}, batch ${position}/${batches} (step ${step}); checkpoint ${file}`);
          run.log(`resume with: lmcl train --resume ${dir}`);
          return finish('interrupted', 130, `interrupted; resume with --resume ${dir}`);
        }
        waitStart = Date.now();
      }

      // ---- end of epoch: evaluate, record, checkpoint -------------------------------------------
      readPending();
      const evalStart = Date.now();
      // --eval-every N: the test split after every N-th epoch and after the last; evaluation reads
      // no random numbers and changes no state, so skipping it leaves training bit-identical.
      const evaluateNow = (epoch + 1) % config.evalEvery === 0 || epoch + 1 === config.epochs;
      // evaluate() puts the networks and the method's modules in eval mode and back.
      const testBatches = function* (): Generator<Batch, void, undefined> {
        let done = 0;
        for (const batch of data.testBatches()) {
          yield batch;
          done += 1;
          progress.evaluating(epoch, config.epochs, done, data.testBatchCount);
        }
      };
      const test = evaluateNow ? await evaluate(networks, testBatches(), classes, method) : null;
      const evalSeconds = (Date.now() - evalStart) / 1000;
      if (test && test.meanTop1 > best.meanTop1) best = { meanTop1: test.meanTop1, epoch: epoch + 1 };
      const train: Record<string, number> = {};
      for (const [key, value] of Object.entries(meters.lossSums)) train[key] = value / Math.max(meters.seen, 1);
      const record: EpochRecord = {
        epoch: epoch + 1, lr, train, trainTop1: meters.correct.map((c) => (100 * c) / Math.max(meters.seen, 1)), test,
        imagesPerSecond: meters.seen / Math.max(meters.trainSeconds, 1e-9), trainSeconds: meters.trainSeconds, evalSeconds, dataSeconds,
        rssMegabytes: Math.round(process.memoryUsage.rss() / 2 ** 20),
        elapsedSeconds: elapsedBefore + (Date.now() - started) / 1000, bestMeanTop1: best.meanTop1, bestEpoch: best.epoch,
      };
      history = [...history, record];
      run.writeHistory(history);
      run.log(formatEpoch(record, config.epochs));
      epoch += 1;
      position = 0;
      meters = emptyMeters(networks.length);
      // --save-every N: the regular checkpoint after every N-th epoch and the last; a best epoch
      // in between still writes best (a run interrupted between saves resumes from the last one).
      const regular = epoch % config.saveEvery === 0 || epoch === config.epochs;
      if (regular || best.epoch === epoch) saveCheckpoint('epoch', regular);
    }
  } catch (error) {
    if (error instanceof NonFiniteError) {
      const what = error.kind === 'loss' ? 'non-finite loss' : 'non-finite weights';
      const kept = lastFiniteCheckpoint ? `the last good checkpoint (all values finite) is kept: ${lastFiniteCheckpoint}` : 'no finite checkpoint was written before this';
      run.log(`stopping: ${what} — ${error.message}`);
      run.log(kept);
      return finish('nonfinite', 3, `${what}: ${error.message}; ${kept}`);
    }
    if (handleSignals) process.off('SIGINT', onSigint);
    if (detachModuleTimers && profilingStarted()) {
      stopProfiling();
      detachModuleTimers();
    }
    data.close();
    throw error;
  }

  const last = history[history.length - 1]!;
  // The last epoch is always evaluated; a history from before --eval-every existed still has one.
  const lastTest = last.test ?? [...history].reverse().find((record) => record.test !== null)!.test!;
  const total = elapsedBefore + (Date.now() - started) / 1000;
  const otherHeads = (n: number): string => {
    const entries = [...(lastTest.heads[n] ?? []).slice(0, -1).map((head, s) => `aux${s} ${head.top1.toFixed(2)}%`),
      ...Object.entries(lastTest.methodHeads ?? {}).map(([name, list]) => `${name} ${list[n]?.top1.toFixed(2) ?? '?'}%`)];
    return entries.length > 0 ? ` (${entries.join(', ')})` : '';
  };
  run.log(`done in ${formatDuration(total)} (${total.toFixed(0)} s). Final epoch ${last.epoch} test top-1 (final head): ` +
    `${lastTest.networks.map((h, n) => `net${n} ${h.top1.toFixed(2)}%${otherHeads(n)}`).join(', ')}; ensemble (mean softmax) ${lastTest.ensemble.top1.toFixed(2)}%`);
  run.log(`best-epoch (selected on the test set, mean final-head top-1): epoch ${best.epoch}, ${best.meanTop1.toFixed(2)}%`);
  run.log(`run directory: ${dir}`);
  return finish('completed', 0, 'completed');
}

export function formatEpoch(record: EpochRecord, epochs: number): string {
  const test = record.test;
  const nets = test?.networks.map((h, n) => {
    const aux = (test.heads[n] ?? []).slice(0, -1).map((a, s) => ` aux${s} ${a.top1.toFixed(2)}`).join('') +
      Object.entries(test.methodHeads ?? {}).map(([name, list]) => ` ${name} ${list[n]?.top1.toFixed(2) ?? '?'}`).join('');
    return `net${n} ${h.top1.toFixed(2)}/${h.top5.toFixed(2)}${aux}`;
  }).join('  ');
  const parts = Object.entries(record.train).filter(([k]) => !k.includes('/')).map(([k, v]) => `${k} ${v.toFixed(4)}`).join(' ');
  return `epoch ${record.epoch}/${epochs} lr ${record.lr.toPrecision(4)} train ${parts} top1 ${record.trainTop1.map((v) => v.toFixed(2)).join('/')} | ` +
    (test ? `test top1/top5 ${nets}  ensemble ${test.ensemble.top1.toFixed(2)}/${test.ensemble.top5.toFixed(2)} | ` : 'test not evaluated (--eval-every) | ') +
    `${record.imagesPerSecond.toFixed(0)} img/s, ${(record.trainSeconds + record.evalSeconds).toFixed(1)} s` +
    (record.dataSeconds !== undefined ? ` (data ${record.dataSeconds.toFixed(1)} s)` : '') +
    (record.rssMegabytes !== undefined ? `, RSS ${record.rssMegabytes} MB` : '');
}
