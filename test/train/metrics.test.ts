// Accuracy with non-finite logits: a row with any NaN/±Inf logit counts as wrong, in the host
// count (countTopK), the device count of the training step (countTop1OnDevice), evaluate() (per
// head and the ensemble), and the test loss is reported as non-finite, not dropped.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { randn, tensor } from '../../src/tensor/creation.js';
import { tidy } from '../../src/tensor/scope.js';
import { createCohort } from '../../src/models/registry.js';
import { countTop1OnDevice, countTopK, evaluate, top1Masks } from '../../src/train/metrics.js';
import { RunDirectory, readHistory, type EpochRecord } from '../../src/train/rundir.js';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'lmcl-metrics-'));
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

const { NaN: nan } = Number;
const inf = Number.POSITIVE_INFINITY;
// 3 classes; each row's target is (or would be, comparing finite values only) the largest logit.
const rows: [number[], number][] = [
  [[nan, nan, nan], 0], // all NaN, label 0: nothing compares above a NaN target
  [[0.1, nan, 0.3], 1], // NaN target
  [[nan, 2, 1], 1], // NaN elsewhere, target the largest finite logit
  [[inf, 1, 2], 0], // +Inf target
  [[3, -inf, 2], 0], // -Inf elsewhere
  [[1, 5, 2], 1], // finite and correct
  [[1, 5, 2], 2], // finite and wrong at top-1, right at top-2
];
const logits = Float32Array.from(rows.flatMap(([row]) => row));
const labels = Int32Array.from(rows.map(([, label]) => label));

function onDevice(values: Float32Array, targets: Int32Array, classes: number): number {
  return tidy(() => {
    const count = countTop1OnDevice(tensor(values, [targets.length, classes]), top1Masks(targets, classes));
    const value = count.item();
    count.dispose();
    return value;
  });
}

describe('top-k with non-finite logits', () => {
  it('countTopK: a row with a NaN or ±Inf logit is wrong for every k', () => {
    expect(countTopK(logits, labels, 3, 1)).toBe(1);
    expect(countTopK(logits, labels, 3, 2)).toBe(2);
    expect(countTopK(logits, labels, 3, 3)).toBe(2);
  });

  it('the device count of the training step agrees with countTopK (these rows, and random rows with NaN/Inf sprinkled in)', () => {
    expect(onDevice(logits, labels, 3)).toBe(1);
    for (const [count, classes] of [[64, 10], [33, 7]] as const) {
      const values = Float32Array.from({ length: count * classes }, () => {
        const u = Math.random();
        return u < 0.02 ? nan : u < 0.03 ? inf : u < 0.04 ? -inf : Math.round(Math.random() * 4) / 2;
      });
      const targets = Int32Array.from({ length: count }, () => Math.floor(Math.random() * classes));
      expect(onDevice(values, targets, classes)).toBe(countTopK(values, targets, classes, 1));
    }
  });

  it('evaluate(): a NaN network scores 0% per head and in the ensemble, and its test loss is NaN', async () => {
    const [net] = createCohort('resnet8', 1, { numClasses: 10, inChannels: 1, imageSize: 28 });
    const fc = net!.stateDict().get('fc.weight')!;
    net!.loadStateDict({ ...Object.fromEntries(net!.stateDict()), 'fc.weight': { shape: fc.shape, data: new Float32Array(fc.data.length).fill(nan) } });
    const y = Int32Array.from({ length: 8 }, (_, i) => i % 10);
    const result = await evaluate([net!], [{ x: randn([8, 1, 28, 28]), y }], 10);
    net!.dispose();
    expect(result.networks[0]).toEqual({ top1: 0, top5: 0 });
    expect(result.ensemble).toEqual({ top1: 0, top5: 0 });
    expect(result.meanTop1).toBe(0);
    expect(Number.isNaN(result.loss[0])).toBe(true);
  });

  it('metrics.jsonl keeps a NaN/Inf test loss (JSON would write null) and reads it back as a number', () => {
    const record: EpochRecord = {
      epoch: 1, lr: 0.1, train: { total: 1 }, trainTop1: [10],
      test: { networks: [{ top1: 0, top5: 0 }], heads: [[{ top1: 0, top5: 0 }]], ensemble: { top1: 0, top5: 0 }, meanTop1: 0, loss: [nan, inf], count: 8 },
      imagesPerSecond: 1, trainSeconds: 1, evalSeconds: 1, elapsedSeconds: 2, bestMeanTop1: 0, bestEpoch: 1,
    };
    const run = new RunDirectory(path.join(root, 'run'), null);
    run.writeHistory([record]);
    expect(fs.readFileSync(path.join(root, 'run', 'metrics.jsonl'), 'utf8')).toContain('"loss":["NaN","Infinity"]');
    const [read] = readHistory(path.join(root, 'run'));
    expect(read!.test.loss).toEqual([nan, inf]);
    expect(read).toEqual(record);
  });
});
