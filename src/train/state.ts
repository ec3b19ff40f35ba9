// What a training checkpoint holds, independent of how it is stored:
//   net<n>.safetensors     every network's state dict (parameters + buffers), PyTorch names
//   criterion.safetensors  the method's own modules (Embed heads, aggregators, φ ...) as
//                          `criterion.<state-dict name>`, e.g. `criterion.embed.0.0.weight`;
//                          absent when the method has none (baseline, dml)
//   optimizer.safetensors  SGD momentum buffers as `<set>.<index>.momentum_buffer`: one optimizer
//                          per parameter set of the method ('main', ...), index = position of
//                          the parameter in that set
//   state.json             epoch/step/position, each optimizer's hyper-parameters by set name,
//                          schedule, RNG states, loader position, partial-epoch meters, best
//                          metric, metric history, config.
// Format 1 (before methods had parameter sets) stored one optimizer: `state.optimizer` and
// `<index>.momentum_buffer`; it is still read, as the 'main' set (baseline/dml runs had no other).
import type { Tensor } from '../tensor/tensor.js';
import type { Module, StateEntry } from '../nn/module.js';
import type { SGD, SGDStateDict } from '../optim/sgd.js';
import type { LoaderState } from '../data/types.js';
import type { EpochRecord } from './rundir.js';
import { resolveTrainConfig, type TrainConfig } from './config.js';

export const STATE_FORMAT = 'lmcl-train-state/2';
/** Formats this version reads. */
export const READABLE_STATE_FORMATS: readonly string[] = ['lmcl-train-state/1', STATE_FORMAT];
/** Prefix of the method's module entries (and the name of their file). */
export const CRITERION = 'criterion';

/** Sums accumulated during an epoch (saved so a mid-epoch resume reports the same epoch metrics). */
export interface EpochMeters {
  /** Σ over batches of each loss part × batch size. */
  lossSums: Record<string, number>;
  /** Σ correct top-1 (final head) per network. */
  correct: number[];
  seen: number;
  batches: number;
  trainSeconds: number;
}

export function emptyMeters(networks: number): EpochMeters {
  return { lossSums: {}, correct: new Array<number>(networks).fill(0), seen: 0, batches: 0, trainSeconds: 0 };
}

export type OptimizerGroups = SGDStateDict['paramGroups'];

export interface TrainState {
  format: string;
  /** Epoch in progress (zero-based); equal to `epochs` when training has finished. */
  epoch: number;
  /** Batches of `epoch` already trained (the loader resumes there). */
  position: number;
  /** Optimizer steps since the start of the run. */
  step: number;
  lr: number;
  /**
   * Each parameter set's optimizer hyper-parameters, by set name (format 2), and the indices of
   * the parameters that have a momentum buffer (written since checkpoints record them; a resume
   * refuses a checkpoint that lacks one of them).
   */
  optimizers?: Record<string, { paramGroups: OptimizerGroups; momentumBuffers?: number[] }>;
  /** Format 1: the one optimizer (= the 'main' set). */
  optimizer?: { paramGroups: OptimizerGroups };
  /** The global generator (initialisation; anything else drawing from it). */
  rng: number[];
  loader: LoaderState | null;
  meters: EpochMeters;
  bestMeanTop1: number;
  bestEpoch: number;
  elapsedSeconds: number;
  history: EpochRecord[];
  config: TrainConfig;
  /** Why the checkpoint was written: 'epoch', 'interrupt'. */
  reason: string;
}

/** The optimizers' hyper-parameters by set name, from either format. */
export function optimizerGroupsOf(state: TrainState): Record<string, { paramGroups: OptimizerGroups }> {
  if (state.optimizers) return state.optimizers;
  if (state.optimizer) return { main: state.optimizer };
  throw new Error('training state holds no optimizer');
}

export interface CheckpointTensors {
  /** One state dict per network (PyTorch names). */
  networks: Map<string, StateEntry>[];
  /** The method's modules as 'criterion.<name>' (empty map: none). */
  criterion: Map<string, StateEntry>;
  /** SGD momentum buffers as '<set>.<index>.momentum_buffer' (format 1: '<index>.momentum_buffer'). */
  extra: Map<string, StateEntry>;
}

/** Gathers networks, the method's modules and every optimizer's buffers (host copies). */
export function collectTensors(networks: Module[], criterion: Module | null, optimizers: ReadonlyMap<string, SGD>): CheckpointTensors {
  const criterionState = new Map<string, StateEntry>();
  if (criterion) for (const [name, entry] of criterion.stateDict()) criterionState.set(`${CRITERION}.${name}`, entry);
  const extra = new Map<string, StateEntry>();
  for (const [set, optimizer] of optimizers) {
    const optimizerState = optimizer.stateDict();
    const params = optimizer.paramGroups.flatMap((group) => group.params) as Tensor[];
    for (const [index, entry] of Object.entries(optimizerState.state)) {
      extra.set(`${set}.${index}.momentum_buffer`, { shape: [...params[Number(index)]!.shape], data: entry.momentumBuffer });
    }
  }
  return { networks: networks.map((net) => net.stateDict()), criterion: criterionState, extra };
}

/** Restores what collectTensors saved (strict: every network and the criterion must load exactly). */
export function restoreTensors(saved: CheckpointTensors, networks: Module[], criterion: Module | null, optimizers: ReadonlyMap<string, SGD>,
  groups: Record<string, { paramGroups: OptimizerGroups }>, source: string): void {
  if (saved.networks.length !== networks.length) {
    throw new Error(`${source}: the checkpoint holds ${saved.networks.length} networks, this run has ${networks.length}`);
  }
  networks.forEach((net, n) => {
    try {
      net.loadStateDict(saved.networks[n]!);
    } catch (error) {
      throw new Error(`${source}: network ${n}: ${(error as Error).message}`, { cause: error });
    }
  });
  const criterionEntries = new Map<string, StateEntry>();
  for (const [name, entry] of saved.criterion) {
    if (!name.startsWith(`${CRITERION}.`)) throw new Error(`${source}: unexpected method entry '${name}'`);
    criterionEntries.set(name.slice(CRITERION.length + 1), entry);
  }
  if (criterion) {
    try {
      criterion.loadStateDict(criterionEntries);
    } catch (error) {
      throw new Error(`${source}: the method's modules: ${(error as Error).message}`, { cause: error });
    }
  } else if (criterionEntries.size > 0) {
    throw new Error(`${source}: the checkpoint holds method weights (${[...criterionEntries.keys()].slice(0, 3).join(', ')}, ...) but this run's method has none`);
  }

  const buffers = new Map<string, Record<number, { momentumBuffer: Float32Array }>>();
  for (const [name, entry] of saved.extra) {
    const match = /^(?:([a-z][a-z0-9_]*)\.)?(\d+)\.momentum_buffer$/.exec(name);
    if (!match) throw new Error(`${source}: unexpected optimizer entry '${name}'`);
    const set = match[1] ?? 'main'; // format 1: the only optimizer
    if (!optimizers.has(set)) throw new Error(`${source}: optimizer state for parameter set '${set}', which this run's method does not have`);
    const state = buffers.get(set) ?? {};
    state[Number(match[2])] = { momentumBuffer: entry.data };
    buffers.set(set, state);
  }
  for (const [set, optimizer] of optimizers) {
    const paramGroups = groups[set]?.paramGroups;
    if (!paramGroups) throw new Error(`${source}: no optimizer state for parameter set '${set}' (the checkpoint has ${Object.keys(groups).join(', ')})`);
    optimizer.loadStateDict({ state: buffers.get(set) ?? {}, paramGroups });
  }
}

// ---- validation of a state read back from state.json --------------------------------------------
// A damaged or hand-edited state.json must fail with the field named, not with a JS property
// error deep in the loop (meters: null) or by being taken as something else (step: "x" would
// concatenate). Each field is checked for the type and range the trainer writes.

function describeValue(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return `an array of ${value.length}`;
  if (typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'object') return 'an object';
  return `${typeof value} ${String(value)}`;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

const isCount = (value: unknown): value is number => typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
const isFiniteNumber = (value: unknown): value is number => typeof value === 'number' && Number.isFinite(value);

/**
 * Checks a state read from `source`'s state.json field by field (TrainState above) and returns it
 * typed; throws an Error naming the file and the field otherwise.
 */
export function validateTrainState(value: unknown, source: string): TrainState {
  const fail = (field: string, expected: string, got: unknown): never => {
    throw new Error(`${source}: state.json: field '${field}' must be ${expected}, got ${describeValue(got)}`);
  };
  if (!isRecord(value)) return fail('state', 'an object (the training state)', value);
  const state = value;
  if (typeof state.format !== 'string' || !READABLE_STATE_FORMATS.includes(state.format)) {
    fail('format', `one of ${READABLE_STATE_FORMATS.join(', ')}`, state.format);
  }
  for (const field of ['epoch', 'position', 'step', 'bestEpoch'] as const) if (!isCount(state[field])) fail(field, 'an integer ≥ 0', state[field]);
  if (!isFiniteNumber(state.lr) || state.lr < 0) fail('lr', 'a finite number ≥ 0', state.lr);
  if (!isFiniteNumber(state.bestMeanTop1)) fail('bestMeanTop1', 'a finite number', state.bestMeanTop1);
  if (!isFiniteNumber(state.elapsedSeconds) || state.elapsedSeconds < 0) fail('elapsedSeconds', 'a finite number ≥ 0', state.elapsedSeconds);
  if (state.reason !== undefined && typeof state.reason !== 'string') fail('reason', 'a string', state.reason);

  const rngState = (field: string, rng: unknown): void => {
    const ok = Array.isArray(rng) && rng.length === 5 && rng.slice(0, 4).every((word) => isCount(word) && word <= 0xffffffff) && typeof rng[4] === 'number';
    if (!ok) fail(field, 'the 5-number generator state (four 32-bit words and the spare normal)', rng);
  };
  rngState('rng', state.rng);
  if (state.loader !== null) {
    if (!isRecord(state.loader)) fail('loader', 'null or { epoch, position, epochRngState }', state.loader);
    const loader = state.loader as Record<string, unknown>;
    for (const field of ['epoch', 'position'] as const) if (!isCount(loader[field])) fail(`loader.${field}`, 'an integer ≥ 0', loader[field]);
    rngState('loader.epochRngState', loader.epochRngState);
  }

  if (!isRecord(state.meters)) fail('meters', 'an object { lossSums, correct, seen, batches, trainSeconds }', state.meters);
  const meters = state.meters as Record<string, unknown>;
  if (!isRecord(meters.lossSums)) fail('meters.lossSums', 'an object of numbers', meters.lossSums);
  for (const [part, sum] of Object.entries(meters.lossSums as Record<string, unknown>)) if (typeof sum !== 'number') fail(`meters.lossSums.${part}`, 'a number', sum);
  if (!Array.isArray(meters.correct) || !meters.correct.every(isCount)) fail('meters.correct', 'an array of counts (one per network)', meters.correct);
  for (const field of ['seen', 'batches'] as const) if (!isCount(meters[field])) fail(`meters.${field}`, 'an integer ≥ 0', meters[field]);
  if (!isFiniteNumber(meters.trainSeconds) || meters.trainSeconds < 0) fail('meters.trainSeconds', 'a finite number ≥ 0', meters.trainSeconds);

  const groupsField = state.format === 'lmcl-train-state/1' ? 'optimizer' : 'optimizers';
  const groups: Record<string, unknown> = groupsField === 'optimizer' ? { main: state.optimizer } : (state.optimizers as Record<string, unknown>);
  if (!isRecord(groups) || Object.keys(groups).length === 0) fail(groupsField, 'an object of optimizer states by parameter set name', state[groupsField]);
  for (const [set, group] of Object.entries(groups)) {
    const field = groupsField === 'optimizer' ? 'optimizer' : `optimizers.${set}`;
    if (!isRecord(group) || !Array.isArray(group.paramGroups) || group.paramGroups.length === 0 || !group.paramGroups.every(isRecord)) {
      fail(field, 'an object { paramGroups: [{ lr, momentum, ... }] }', group);
    }
    const record = group as Record<string, unknown>;
    if (record.momentumBuffers !== undefined && !(Array.isArray(record.momentumBuffers) && record.momentumBuffers.every(isCount))) {
      fail(`${field}.momentumBuffers`, 'an array of parameter indices', record.momentumBuffers);
    }
  }

  if (!Array.isArray(state.history)) fail('history', 'an array of epoch records', state.history);
  (state.history as unknown[]).forEach((record, index) => {
    const at = `history.${index}`;
    if (!isRecord(record)) return fail(at, 'an epoch record', record);
    if (record.epoch !== index + 1) fail(`${at}.epoch`, `${index + 1} (records are in epoch order)`, record.epoch);
    if (!isRecord(record.train)) fail(`${at}.train`, 'an object of mean losses', record.train);
    if (!Array.isArray(record.trainTop1)) fail(`${at}.trainTop1`, 'an array (one per network)', record.trainTop1);
    if (record.test !== null && (!isRecord(record.test) || !Array.isArray(record.test.networks) || !isRecord(record.test.ensemble))) {
      fail(`${at}.test`, 'an evaluation result (or null: an epoch --eval-every skipped)', record.test);
    }
    return undefined;
  });
  if ((state.history as unknown[]).length !== state.epoch) {
    throw new Error(`${source}: state.json: field 'history' has ${(state.history as unknown[]).length} epoch records, but 'epoch' says ${String(state.epoch)} epochs are done`);
  }
  if ((state.bestEpoch as number) > (state.epoch as number)) fail('bestEpoch', `at most epoch (${String(state.epoch)})`, state.bestEpoch);
  const config = resolveStateConfig(state.config, source);
  if ((meters.correct as unknown[]).length !== config.numberNet) fail('meters.correct', `one count per network (${config.numberNet})`, meters.correct);
  return state as unknown as TrainState;
}

/** The run configuration a state.json records, resolved (defaults filled); errors name the file and the option. */
export function resolveStateConfig(config: unknown, source: string): TrainConfig {
  if (!isRecord(config)) throw new Error(`${source}: state.json: field 'config' must be an object (the run configuration), got ${describeValue(config)}`);
  try {
    return resolveTrainConfig({ ...config, resume: null });
  } catch (error) {
    throw new Error(`${source}: state.json: field 'config': ${(error as Error).message}`, { cause: error });
  }
}
