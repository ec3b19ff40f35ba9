// Training checkpoints on top of io/checkpoint.ts: <run>/checkpoints/checkpoint-e<epoch>-s<step>/
// (net<i>.safetensors with PyTorch names, criterion.safetensors with the method's modules when it
// has any, optimizer.safetensors, state.json, manifest), keep-last-K rotation, and
// <run>/checkpoints/best (marked best: never pruned), labelled best-epoch by the mean over
// networks of the final-head test top-1.
import fs from 'node:fs';
import path from 'node:path';
import { checkpointName, latestCheckpoint, loadCheckpoint, saveCheckpoint, type CheckpointPayload } from '../io/checkpoint.js';
import { CRITERION, type TrainState, type CheckpointTensors } from './state.js';

export interface SavedTraining extends CheckpointTensors {
  state: TrainState;
}

export function writeTrainCheckpoint(checkpointDir: string, saved: SavedTraining,
  options: { keepLast: number; best: boolean; architectures: string[] }): string {
  const { state } = saved;
  const payload: CheckpointPayload = {
    networks: saved.networks,
    networkMetadata: options.architectures.map((architecture) => ({ architecture })),
    optimizerBuffers: saved.extra,
    tensorFiles: saved.criterion.size > 0 ? { [CRITERION]: saved.criterion } : {},
    state,
  };
  const info = saveCheckpoint(checkpointDir, checkpointName(state.epoch, state.step), payload, { keepLast: options.keepLast });
  if (options.best) saveCheckpoint(checkpointDir, 'best', payload, { best: true });
  return info.path;
}

/** The checkpoint to resume from, given a run directory, its checkpoints/ folder or a checkpoint. */
export function findResumeCheckpoint(target: string): string | null {
  if (!fs.existsSync(target)) return null;
  if (fs.existsSync(path.join(target, 'checkpoint.json'))) return target;
  for (const dir of [path.join(target, 'checkpoints'), target]) {
    if (!fs.existsSync(dir)) continue;
    const latest = latestCheckpoint(dir);
    if (latest) return latest.path;
  }
  return null;
}

export function readTrainCheckpoint(checkpoint: string): SavedTraining {
  const loaded = loadCheckpoint(checkpoint);
  return { networks: loaded.networks, criterion: loaded.tensorFiles[CRITERION] ?? new Map(), extra: loaded.optimizerBuffers, state: loaded.state as TrainState };
}
