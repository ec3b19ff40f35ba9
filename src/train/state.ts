// What a training checkpoint holds, independent of how it is stored:
//   tensors  net<n>.<PyTorch name>            every network's state dict (parameters + buffers)
//            objective<i>.<name>              modules owned by the objective (MCL heads, later)
//            optimizer.<index>.momentum_buffer  SGD momentum buffers by global parameter index
//   state    JSON: epoch/step/position, optimizer hyper-parameters, schedule, RNG states, loader
//            position, partial-epoch meters, best metric, metric history, config.
import type { Tensor } from '../tensor/tensor.js';
import type { Module, StateEntry } from '../nn/module.js';
import type { SGD, SGDStateDict } from '../optim/sgd.js';
import type { LoaderState } from '../data/types.js';
import type { EpochRecord } from './rundir.js';
import type { TrainConfig } from './config.js';

export const STATE_FORMAT = 'lmcl-train-state/1';

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

export interface TrainState {
  format: string;
  /** Epoch in progress (zero-based); equal to `epochs` when training has finished. */
  epoch: number;
  /** Batches of `epoch` already trained (the loader resumes there). */
  position: number;
  /** Optimizer steps since the start of the run. */
  step: number;
  lr: number;
  optimizer: { paramGroups: SGDStateDict['paramGroups'] };
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

export interface CheckpointTensors {
  /** One state dict per network (PyTorch names). */
  networks: Map<string, StateEntry>[];
  /** SGD momentum buffers as '<global parameter index>.momentum_buffer', and objective modules as 'objective<i>.<name>'. */
  extra: Map<string, StateEntry>;
}

/** Gathers networks, objective modules and optimizer buffers (host copies). */
export function collectTensors(networks: Module[], objectiveModules: Module[], optimizer: SGD): CheckpointTensors {
  const extra = new Map<string, StateEntry>();
  objectiveModules.forEach((module, i) => {
    for (const [name, entry] of module.stateDict()) extra.set(`objective${i}.${name}`, entry);
  });
  const optimizerState = optimizer.stateDict();
  const params = optimizer.paramGroups.flatMap((group) => group.params) as Tensor[];
  for (const [index, entry] of Object.entries(optimizerState.state)) {
    const param = params[Number(index)]!;
    extra.set(`${index}.momentum_buffer`, { shape: [...param.shape], data: entry.momentumBuffer });
  }
  return { networks: networks.map((net) => net.stateDict()), extra };
}

/** Restores what collectTensors saved (strict: every network must load exactly). */
export function restoreTensors(saved: CheckpointTensors, networks: Module[], objectiveModules: Module[], optimizer: SGD,
  paramGroups: SGDStateDict['paramGroups'], source: string): void {
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
  objectiveModules.forEach((module, i) => {
    const prefix = `objective${i}.`;
    const entries = new Map<string, StateEntry>();
    for (const [name, entry] of saved.extra) if (name.startsWith(prefix)) entries.set(name.slice(prefix.length), entry);
    module.loadStateDict(entries);
  });
  const state: Record<number, { momentumBuffer: Float32Array }> = {};
  for (const [name, entry] of saved.extra) {
    if (name.startsWith('objective')) continue;
    const match = /^(\d+)\.momentum_buffer$/.exec(name);
    if (!match) throw new Error(`${source}: unexpected optimizer entry '${name}'`);
    state[Number(match[1])] = { momentumBuffer: entry.data };
  }
  optimizer.loadStateDict({ state, paramGroups });
}
