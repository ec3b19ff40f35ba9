// Training checkpoints on top of io/checkpoint.ts: <run>/checkpoints/checkpoint-e<epoch>-s<step>/
// (net<i>.safetensors with PyTorch names, criterion.safetensors with the method's modules when it
// has any, optimizer.safetensors, state.json, manifest), keep-last-K rotation, and
// <run>/checkpoints/best (marked best: never pruned), labelled best-epoch by the mean over
// networks of the final-head test top-1.
import fs from 'node:fs';
import path from 'node:path';
import { checkpointName, latestCheckpoint, listCheckpoints, loadCheckpoint, saveCheckpoint, type CheckpointPayload } from '../io/checkpoint.js';
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

const BEST = 'best';

/** Epoch and batch position recorded in a checkpoint's state.json (null when unreadable). */
function recordedPosition(checkpoint: string): { epoch: number; position: number } | null {
  try {
    const state = (JSON.parse(fs.readFileSync(path.join(checkpoint, 'state.json'), 'utf8')) as { state?: { epoch?: unknown; position?: unknown } }).state;
    return typeof state?.epoch === 'number' && typeof state.position === 'number' ? { epoch: state.epoch, position: state.position } : null;
  } catch {
    return null;
  }
}

/**
 * On resume: makes `checkpoints/best` hold the run's best epoch again. The best save comes after
 * the epoch's regular save, so a process that dies between the two leaves best missing (first
 * best epoch) or one best epoch behind. The resumed state records which epoch is best, and the
 * regular end-of-epoch checkpoint of that epoch (epoch = bestEpoch, position 0) holds exactly
 * what best would, so best is rewritten from it (usually the checkpoint being resumed from).
 * Returns a line for the log, or null when best was already right (or no epoch has finished).
 */
export function repairBestCheckpoint(checkpointDir: string, resumedFrom: string, state: Pick<TrainState, 'bestEpoch' | 'bestMeanTop1'>): string | null {
  const bestEpoch = state.bestEpoch;
  if (!(Number.isSafeInteger(bestEpoch) && bestEpoch >= 1)) return null;
  const isBestEpochEnd = (checkpoint: string): boolean => {
    const recorded = recordedPosition(checkpoint);
    return recorded !== null && recorded.epoch === bestEpoch && recorded.position === 0;
  };
  const complete = listCheckpoints(checkpointDir);
  const best = complete.find((info) => info.name === BEST);
  if (best && isBestEpochEnd(best.path)) return null;
  const held = best ? `held epoch ${recordedPosition(best.path)?.epoch ?? '?'}, not the best epoch ${bestEpoch}` : `was missing (best epoch ${bestEpoch})`;
  const bestDir = path.join(checkpointDir, BEST);
  // The checkpoint resumed from first, then the others, newest first.
  const candidates = [resumedFrom, ...complete.filter((info) => !info.manifest.best).reverse().map((info) => info.path)];
  const source = candidates.find(isBestEpochEnd);
  if (source === undefined) return `${bestDir} ${held}, and no checkpoint of epoch ${bestEpoch} is left to rebuild it from; it is rewritten at the next best epoch`;
  const loaded = loadCheckpoint(source);
  saveCheckpoint(checkpointDir, BEST, {
    networks: loaded.networks, networkMetadata: loaded.networkMetadata, optimizerBuffers: loaded.optimizerBuffers,
    tensorFiles: loaded.tensorFiles, state: loaded.state,
  }, { best: true });
  return `${bestDir} ${held}; rewrote it from ${source} (mean top-1 ${state.bestMeanTop1.toFixed(2)}%)`;
}
