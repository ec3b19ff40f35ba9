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
import type { TrainConfig } from './config.js';

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
