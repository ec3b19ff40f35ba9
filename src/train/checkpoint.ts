// Training checkpoints on top of io/checkpoint.ts: <run>/checkpoints/checkpoint-e<epoch>-s<step>/
// (net<i>.safetensors with PyTorch names, criterion.safetensors with the method's modules when it
// has any, optimizer.safetensors, state.json, manifest), keep-last-K rotation, and
// <run>/checkpoints/best (marked best: never pruned), labelled best-epoch by the mean over
// networks of the final-head test top-1.
import fs from 'node:fs';
import path from 'node:path';
import { checkpointName, inspectCheckpoints, latestCheckpoint, listCheckpoints, loadCheckpoint, saveCheckpoint, type CheckpointPayload } from '../io/checkpoint.js';
import { CRITERION, validateTrainState, type TrainState, type CheckpointTensors } from './state.js';

export interface SavedTraining extends CheckpointTensors {
  state: TrainState;
}

/**
 * Writes the regular checkpoint (rotated to the newest `keepLast`, 0 = keep all) and/or best;
 * `regular: false` (an epoch --save-every skips) writes best alone. Returns the path of the
 * regular checkpoint, or of best when only best was written.
 */
export function writeTrainCheckpoint(checkpointDir: string, saved: SavedTraining,
  options: { keepLast: number; best: boolean; architectures: string[]; regular?: boolean }): string {
  // SGD creates momentum buffers lazily (a parameter without a gradient yet has none), so the
  // state records which exist: a resume can then tell a lost buffer from one never created.
  const recorded = momentumIndices(saved.extra);
  const state: TrainState = saved.state.optimizers === undefined ? saved.state : {
    ...saved.state,
    optimizers: Object.fromEntries(Object.entries(saved.state.optimizers).map(([set, optimizer]) =>
      [set, { ...optimizer, momentumBuffers: recorded.get(set) ?? [] }])),
  };
  const payload: CheckpointPayload = {
    networks: saved.networks,
    networkMetadata: options.architectures.map((architecture) => ({ architecture })),
    optimizerBuffers: saved.extra,
    tensorFiles: saved.criterion.size > 0 ? { [CRITERION]: saved.criterion } : {},
    state,
  };
  const regular = options.regular ?? true;
  if (!regular && !options.best) throw new Error('lmcl internal: writeTrainCheckpoint with neither a regular checkpoint nor best');
  const keepLast = options.keepLast === 0 ? Infinity : options.keepLast;
  const info = regular ? saveCheckpoint(checkpointDir, checkpointName(state.epoch, state.step), payload, { keepLast }) : null;
  const best = options.best ? saveCheckpoint(checkpointDir, 'best', payload, { best: true }) : null;
  return (info ?? best)!.path;
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

/**
 * Log lines naming the damaged checkpoints (no manifest, a missing file, a wrong size) beside the
 * one a resume chose, which the choice passed over: a resume that falls back to an older
 * checkpoint says so. Nothing when the user named the checkpoint itself.
 */
export function skippedCheckpoints(chosen: string, resume: string | null): string[] {
  if (resume !== null && resume !== 'auto' && path.resolve(resume) === path.resolve(chosen)) return [];
  return inspectCheckpoints(path.dirname(chosen)).damaged.map((damaged) => `skipped damaged checkpoint ${damaged.path}: ${damaged.problem}`);
}

/** Why no checkpoint could be resumed from `target`: its damaged checkpoints, for an error message ('' when none). */
export function describeDamagedCheckpoints(target: string): string {
  const damaged = [path.join(target, 'checkpoints'), target].flatMap((dir) => inspectCheckpoints(dir).damaged)
    .filter((entry) => entry.name !== 'checkpoints');
  return damaged.length === 0 ? '' : ` (damaged: ${damaged.map((entry) => `${entry.path}: ${entry.problem}`).join('; ')})`;
}

/** Parameter indices with a momentum buffer, per parameter set ('<set>.<index>.momentum_buffer'; format 1: '<index>.momentum_buffer' = 'main'). */
function momentumIndices(extra: ReadonlyMap<string, unknown>): Map<string, number[]> {
  const indices = new Map<string, number[]>();
  for (const key of extra.keys()) {
    const match = /^(?:([a-z][a-z0-9_]*)\.)?(\d+)\.momentum_buffer$/.exec(key);
    if (!match) continue; // restoreTensors names unexpected entries
    const set = match[1] ?? 'main';
    indices.set(set, [...(indices.get(set) ?? []), Number(match[2])]);
  }
  for (const list of indices.values()) list.sort((a, b) => a - b);
  return indices;
}

const OPTIMIZER_FILE = 'optimizer.safetensors';

/**
 * Refuses optimizer state that lost momentum buffers (a deleted optimizer.safetensors, a dropped
 * tensor), which would otherwise resume with fresh momentum and silently leave the trajectory.
 * Checkpoints that record their buffers (momentumBuffers per set) must have every one; older ones
 * cannot tell a lost buffer from one never created, so only their first parameter set (every
 * network parameter, all of which get a gradient at every step) must have some after step 0.
 */
function checkOptimizerState(checkpoint: string, state: TrainState, extra: ReadonlyMap<string, unknown>, files: readonly string[]): void {
  const groups = state.optimizers ?? (state.optimizer ? { main: state.optimizer } : undefined);
  if (groups === undefined || groups === null || typeof groups !== 'object') return; // the state's own check names it
  const present = momentumIndices(extra);
  const where = files.includes(OPTIMIZER_FILE) ? OPTIMIZER_FILE : `${OPTIMIZER_FILE} (not in this checkpoint)`;
  for (const [set, group] of Object.entries(groups)) {
    const have = new Set(present.get(set) ?? []);
    const expected = (group as { momentumBuffers?: unknown }).momentumBuffers;
    if (Array.isArray(expected)) {
      const missing = expected.filter((index) => !have.has(index as number));
      if (missing.length > 0) {
        const names = missing.slice(0, 3).map((index) => `${set}.${String(index)}.momentum_buffer`).join(', ');
        throw new Error(`${checkpoint}: incomplete optimizer state: ${where} lacks ${missing.length} of the ${expected.length} momentum buffers ` +
          `of parameter set '${set}' (${names}${missing.length > 3 ? ', ...' : ''}); resuming would restart them from zero`);
      }
      continue;
    }
    const momentum = Math.max(0, ...(group?.paramGroups ?? []).map((entry) => entry.momentum));
    const first = set === Object.keys(groups)[0];
    if (first && momentum > 0 && state.step > 0 && have.size === 0) {
      throw new Error(`${checkpoint}: incomplete optimizer state: ${where} has no momentum buffer for parameter set '${set}' ` +
        `after ${state.step} steps with momentum ${momentum}; resuming would restart momentum from zero`);
    }
  }
}

export function readTrainCheckpoint(checkpoint: string): SavedTraining {
  const loaded = loadCheckpoint(checkpoint);
  const state = validateTrainState(loaded.state, loaded.path);
  checkOptimizerState(loaded.path, state, loaded.optimizerBuffers, Object.keys(loaded.manifest.files));
  return { networks: loaded.networks, criterion: loaded.tensorFiles[CRITERION] ?? new Map(), extra: loaded.optimizerBuffers, state };
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
  try {
    const loaded = loadCheckpoint(source);
    saveCheckpoint(checkpointDir, BEST, {
      networks: loaded.networks, networkMetadata: loaded.networkMetadata, optimizerBuffers: loaded.optimizerBuffers,
      tensorFiles: loaded.tensorFiles, state: loaded.state,
    }, { best: true });
  } catch (error) {
    // best is a convenience copy: failing to rebuild it must not stop the resume.
    return `${bestDir} ${held}; could not rewrite it from ${source}: ${(error as Error).message}`;
  }
  return `${bestDir} ${held}; rewrote it from ${source} (mean top-1 ${state.bestMeanTop1.toFixed(2)}%)`;
}
