// --save-every N (epochs) and --keep-last 0 (keep every checkpoint).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { train } from '../../src/train/trainer.js';
import { loadCheckpoint } from '../../src/io/checkpoint.js';
import { resolveTrainConfig } from '../../src/train/config.js';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'lmcl-save-every-'));
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

// 64 images / batch 32 = 2 steps per epoch.
const tiny = { arch: 'resnet8', numberNet: 1, method: 'baseline', epochs: 5, batchSize: 32, limitTrain: 64, limitTest: 32, evalBatchSize: 64, workers: 0, threads: 1 };

async function checkpointsOf(config: Record<string, unknown>): Promise<{ names: string[]; dir: string; bestEpoch: number }> {
  const result = await train({ config: { ...tiny, out: root, ...config }, console: null, handleSignals: false });
  for (const net of result.networks) net.dispose();
  result.method.dispose();
  expect(result.status).toBe('completed');
  const dir = path.join(result.runDir, 'checkpoints');
  return { names: fs.readdirSync(dir).filter((name) => !name.startsWith('.')).sort(), dir, bestEpoch: result.bestEpoch };
}

describe('checkpoint schedule', () => {
  it('--keep-last 0 keeps every epoch checkpoint', async () => {
    const { names } = await checkpointsOf({ name: 'keep-all', keepLast: 0 });
    expect(names).toEqual(['best', 'checkpoint-e0001-s2', 'checkpoint-e0002-s4', 'checkpoint-e0003-s6', 'checkpoint-e0004-s8', 'checkpoint-e0005-s10']);
  });

  it('--save-every 2 saves after epochs 2, 4 and the last; best is still the best epoch', async () => {
    const { names, dir, bestEpoch } = await checkpointsOf({ name: 'every-2', keepLast: 0, saveEvery: 2 });
    expect(names).toEqual(['best', 'checkpoint-e0002-s4', 'checkpoint-e0004-s8', 'checkpoint-e0005-s10']);
    expect((loadCheckpoint(path.join(dir, 'best')).state as { epoch: number }).epoch).toBe(bestEpoch);
  });

  it('--save-every with --keep-last rotates only the saved ones', async () => {
    const { names } = await checkpointsOf({ name: 'every-2-keep-1', keepLast: 1, saveEvery: 2 });
    expect(names).toEqual(['best', 'checkpoint-e0005-s10']);
  });

  it('refuses --save-every 0 and a negative --keep-last', () => {
    expect(() => resolveTrainConfig({ saveEvery: 0 })).toThrow(/--save-every must be an integer ≥ 1, got 0/);
    expect(() => resolveTrainConfig({ keepLast: -1 })).toThrow(/--keep-last must be an integer ≥ 0 \(0 = keep all\), got -1/);
  });
});
