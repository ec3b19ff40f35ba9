// Resume robustness on a tiny job (two resnet8, 160 images of the bundled sample, 2 epochs):
// checkpoints/best rebuilt after a crash between the regular and the best save.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { train, type TrainResult } from '../../src/train/trainer.js';
import { listCheckpoints, loadCheckpoint, saveCheckpoint } from '../../src/io/checkpoint.js';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'lmcl-resume-'));
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

const tiny = { arch: 'resnet8', numberNet: 2, method: 'dml', epochs: 2, batchSize: 32, limitTrain: 160, limitTest: 64, evalBatchSize: 64, workers: 0, threads: 2 };

function release(result: TrainResult): void {
  for (const net of result.networks) net.dispose();
  result.method.dispose();
}

function networkBits(checkpoint: string): Buffer[] {
  return loadCheckpoint(checkpoint).networks.flatMap((net) => [...net.values()].map((entry) => Buffer.from(entry.data.buffer, entry.data.byteOffset, entry.data.byteLength)));
}

/** A copy of a finished run (its checkpoints, config, metrics) to damage. */
function copyRun(source: string, name: string): string {
  const target = path.join(root, name);
  fs.cpSync(source, target, { recursive: true });
  return target;
}

let finished = '';
let bestEpoch = 0;

beforeAll(async () => {
  const result = await train({ config: { ...tiny, out: root, name: 'finished' }, console: null, handleSignals: false });
  expect(result.status).toBe('completed');
  finished = result.runDir;
  bestEpoch = result.bestEpoch;
  release(result);
}, 120_000);

describe('resume', () => {
  const epochCheckpoint = (run: string, epoch: number): string => path.join(run, 'checkpoints', `checkpoint-e000${epoch}-s${epoch * 5}`);

  it('rewrites a missing checkpoints/best (the process died between the regular and the best save)', async () => {
    const run = copyRun(finished, 'best-missing');
    fs.rmSync(path.join(run, 'checkpoints', 'best'), { recursive: true });
    const lines: string[] = [];
    const resumed = await train({ config: { resume: run }, console: (line) => lines.push(line), handleSignals: false });
    release(resumed);
    const best = path.join(run, 'checkpoints', 'best');
    expect(lines.join('\n')).toContain(`${best} was missing (best epoch ${bestEpoch}); rewrote it from ${epochCheckpoint(run, bestEpoch)}`);
    expect(listCheckpoints(path.join(run, 'checkpoints')).find((info) => info.name === 'best')!.manifest.best).toBe(true);
    expect((loadCheckpoint(best).state as { epoch: number }).epoch).toBe(bestEpoch);
    expect(networkBits(best)).toEqual(networkBits(epochCheckpoint(run, bestEpoch)));
  });

  it('rewrites a stale checkpoints/best (another epoch than the state records); leaves a right one alone', async () => {
    const run = copyRun(finished, 'best-stale');
    const other = bestEpoch === 1 ? 2 : 1;
    const wrong = loadCheckpoint(epochCheckpoint(run, other));
    saveCheckpoint(path.join(run, 'checkpoints'), 'best', { networks: wrong.networks, optimizerBuffers: wrong.optimizerBuffers, state: wrong.state }, { best: true });
    const lines: string[] = [];
    const resumed = await train({ config: { resume: run }, console: (line) => lines.push(line), handleSignals: false });
    release(resumed);
    const best = path.join(run, 'checkpoints', 'best');
    expect(lines.join('\n')).toContain(`${best} held epoch ${other}, not the best epoch ${bestEpoch}; rewrote it from ${epochCheckpoint(run, bestEpoch)}`);
    expect(networkBits(best)).toEqual(networkBits(epochCheckpoint(run, bestEpoch)));
    // A right best is left alone.
    const again: string[] = [];
    release(await train({ config: { resume: run }, console: (line) => again.push(line), handleSignals: false }));
    expect(again.join('\n')).not.toMatch(/checkpoints\/best/);
  });
});
