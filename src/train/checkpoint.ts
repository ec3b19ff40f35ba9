// Training checkpoints on top of io/checkpoint.ts: <run>/checkpoints/checkpoint-e<epoch>-s<step>/
// (net<i>.safetensors with PyTorch names, optimizer.safetensors, state.json, manifest), keep-last-K
// rotation, and <run>/checkpoints/best (marked best: never pruned), labelled best-epoch by the mean
// over networks of the final-head test top-1.
import fs from 'node:fs';
import path from 'node:path';
import { checkpointName, latestCheckpoint, loadCheckpoint, saveCheckpoint } from '../io/checkpoint.js';
import type { TrainState, CheckpointTensors } from './state.js';

export interface SavedTraining extends CheckpointTensors {
  state: TrainState;
}

export function writeTrainCheckpoint(checkpointDir: string, payload: SavedTraining,
  options: { keepLast: number; best: boolean; architectures: string[] }): string {
  const { state } = payload;
  const networkMetadata = options.architectures.map((architecture) => ({ architecture }));
  const info = saveCheckpoint(checkpointDir, checkpointName(state.epoch, state.step),
    { networks: payload.networks, networkMetadata, optimizerBuffers: payload.extra, state }, { keepLast: options.keepLast });
  if (options.best) {
    saveCheckpoint(checkpointDir, 'best', { networks: payload.networks, networkMetadata, optimizerBuffers: payload.extra, state }, { best: true });
  }
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
  return { networks: loaded.networks, extra: loaded.optimizerBuffers, state: loaded.state as TrainState };
}
