// `lmcl train --device cuda`: the trainer's device path (train/device.ts places the cohort and the
// method's modules before the optimizers take their parameters; the DataLoader makes each batch's
// images on the device; the top-1 masks follow the logits). On a machine with a CUDA device, each
// method trains a tiny job on the CPU and on CUDA from the same seed (the same data order: labels,
// bank indices and the RNG stay on the host), and the two runs agree:
// - one step (batch 64; L-MCL with its meta phase at that step): the losses, a pure forward
//   comparison, within 1e-5 relative; the weights after the update within 1e-3 of the cohort's
//   weight scale (buffers: of the buffers' scale). Measured on the CPU (Xeon VM, 2026-12-04): a
//   relative 1e-7 perturbation of every initial weight (about one float rounding) moves the one-step
//   weights by up to 8e-5 of that scale and the losses by up to 3e-7 — except meta_hypergrad_norm, a
//   reading of a hypergradient that nearly cancels, which moves 1.1e-2 (compared within 1e-1).
//   A per-tensor scale would not do: batch-norm biases after one step are sums that nearly cancel
//   (a batch norm follows), and their own scale is 1e-3 of the weights'.
// - one epoch of 5 steps (L-MCL: a meta phase every 2 batches): completes, the per-epoch losses
//   within 3e-2 relative, and the CUDA run's checkpoint evaluates on the CPU (`lmcl eval`) to the
//   accuracy the trainer reported. The weights are not compared there: on Fashion-MNIST (constant
//   backgrounds: many activations share one value and cross zero together) a relative 1e-7 to
//   3e-7 perturbation of the initial weights moves them by up to 6.5e-4 of their scale within 2
//   steps and 1.8e-3 within 5, and a 1e-6 one moves the epoch losses by up to 8e-3 within 5 (same
//   machine and date); another device's rounding does the same. The one-step comparison is the
//   tight one.
// Without a device those blocks are skipped (named so), and the refusal is checked instead: a clear
// error before a run directory exists.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { train, type TrainResult } from '../../src/train/trainer.js';
import { evaluateCheckpoint } from '../../src/train/evaluate.js';
import { DataLoader } from '../../src/data/loader.js';
import { top1Masks } from '../../src/train/metrics.js';
import { deviceAvailability } from '../helpers/devices.js';
import type { Device } from '../../src/tensor/tensor.js';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'lmcl-device-'));
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

const cuda = deviceAvailability().find((entry) => entry.device === 'cuda')!;

// 160 images / batch 32 = 5 steps per epoch (L-MCL: a meta phase every 2 batches); one step: 64 / 64.
const tiny = { arch: 'resnet8', numberNet: 2, epochs: 1, batchSize: 32, limitTrain: 160, limitTest: 64, evalBatchSize: 64, workers: 0, threads: 2 };
const oneStep = { ...tiny, batchSize: 64, limitTrain: 64 };
const methods: { method: string; extra: Record<string, unknown> }[] = [
  { method: 'baseline', extra: { numberNet: 1 } },
  { method: 'dml', extra: {} },
  { method: 'mcl', extra: { sampler: 'm-per-class' } },
  { method: 'mcl', extra: { sampler: 'm-per-class', contrast: 'bank', negK: 16 } },
  { method: 'lmcl', extra: { sampler: 'm-per-class', metaFreq: 2 } },
];

/**
 * Worst |a − b| over the cohort's state, each entry against its group's scale: the largest |value|
 * of the network's parameters, or of its buffers (running statistics); batch counters exactly.
 */
function cohortDifference(a: TrainResult, b: TrainResult): { worst: number; where: string } {
  let result = { worst: 0, where: '' };
  a.networks.forEach((net, n) => {
    const [left, right] = [net.stateDict(), b.networks[n]!.stateDict()];
    const groupOf = (key: string): string => (key.includes('running_') ? 'buffers' : 'parameters');
    const scale = new Map<string, number>();
    for (const [key, entry] of left) {
      if (key.includes('num_batches')) continue;
      scale.set(groupOf(key), entry.data.reduce((m, v) => Math.max(m, Math.abs(v)), scale.get(groupOf(key)) ?? 1e-6));
    }
    for (const [key, entry] of left) {
      const other = right.get(key)!.data;
      if (key.includes('num_batches')) {
        expect([...other], key).toEqual([...entry.data]);
        continue;
      }
      const worst = entry.data.reduce((m, v, e) => Math.max(m, Math.abs(v - other[e]!)), 0) / scale.get(groupOf(key))!;
      if (worst > result.worst) result = { worst, where: `network ${n} ${key}` };
    }
  });
  return result;
}

function release(result: TrainResult): void {
  for (const net of result.networks) net.dispose();
  result.method.dispose();
}

function epochLosses(runDir: string): Record<string, number>[] {
  return fs.readFileSync(path.join(runDir, 'metrics.jsonl'), 'utf8').trim().split('\n')
    .map((line) => (JSON.parse(line) as { train: Record<string, number> }).train);
}

describe('trainer device path (device-independent parts)', () => {
  it('the DataLoader refuses an unknown device; top-1 masks default to the CPU', () => {
    const split = { name: 'tiny', count: 2, channels: 1, height: 2, width: 2, classes: 2, pixels: new Uint8Array(8), labels: Int32Array.from([0, 1]) };
    const options = { batchSize: 2, sampler: 'shuffle' as const, augment: false, flip: false, padding: 0, mean: [0], std: [1], seed: 0, workers: 0 };
    expect(() => new DataLoader(split as never, { ...options, device: 'tpu' as Device })).toThrow(/DataLoader: device must be 'cpu' or 'cuda', got "tpu"/);
    const masks = top1Masks(Int32Array.from([1, 0]), 2);
    expect(masks.target.device).toBe('cpu');
    expect(Array.from(masks.target.toFloat32Array())).toEqual([0, 1, 1, 0]);
    for (const mask of Object.values(masks)) mask.dispose();
  });

  // Skipped where a CUDA device IS present: the refusal it checks cannot happen there (the CUDA
  // block below covers that machine).
  it.skipIf(cuda.skipReason === null)('--device cuda without a device: a clear error before any run directory exists', async () => {
    const out = path.join(root, 'refused');
    await expect(train({ config: { ...tiny, method: 'dml', device: 'cuda', out, name: 'x' }, console: null, handleSignals: false }))
      .rejects.toThrow(/train --device cuda: no CUDA device \(.+\); use --device cpu/);
    expect(fs.existsSync(path.join(out, 'x'))).toBe(false);
  });
});

// GPU-only: skipped (its name says why) without a CUDA device, as every CUDA block (helpers/devices.ts).
const cudaDescribe = cuda.skipReason === null ? describe : describe.skip;
cudaDescribe(`trainer on CUDA vs CPU${cuda.skipReason === null ? '' : ` [skipped, ${cuda.skipReason}]`}`, () => {
  for (const { method, extra } of methods) {
    const label = `${method}${extra.contrast ? ' (bank)' : ''}`;
    const run = async (base: Record<string, unknown>, options: Record<string, unknown>, device: Device, tag: string): Promise<TrainResult> =>
      train({ config: { ...base, method, ...extra, ...options, device, out: root, name: `${label.replace(/\W+/g, '-')}-${tag}-${device}` }, console: null, handleSignals: false });

    it(`${label}: one step on CUDA agrees with the CPU (losses 1e-5, weights 1e-3 of their scale)`, async () => {
      const options = method === 'lmcl' ? { metaFreq: 1 } : {};
      const cpu = await run(oneStep, options, 'cpu', 'step');
      const gpu = await run(oneStep, options, 'cuda', 'step');
      try {
        expect(gpu.status).toBe('completed');
        const [cpuLosses, gpuLosses] = [epochLosses(cpu.runDir), epochLosses(gpu.runDir)];
        expect(Object.keys(gpuLosses[0]!).sort()).toEqual(Object.keys(cpuLosses[0]!).sort());
        for (const [name, value] of Object.entries(cpuLosses[0]!)) {
          const tolerance = name === 'meta_hypergrad_norm' ? 1e-1 : 1e-5;
          expect(Math.abs(gpuLosses[0]![name]! - value), name).toBeLessThanOrEqual(tolerance * Math.max(1, Math.abs(value)));
        }
        const { worst, where } = cohortDifference(cpu, gpu);
        expect(worst, where).toBeLessThanOrEqual(1e-3);
      } finally {
        release(cpu);
        release(gpu);
      }
    }, 120_000);

    it(`${label}: one epoch on CUDA completes, its losses follow the CPU run's, its checkpoint evaluates on the CPU and on CUDA`, async () => {
      const cpu = await run(tiny, {}, 'cpu', 'epoch');
      const gpu = await run(tiny, {}, 'cuda', 'epoch');
      try {
        expect(gpu.status).toBe('completed');
        const [cpuLosses, gpuLosses] = [epochLosses(cpu.runDir), epochLosses(gpu.runDir)];
        expect(gpuLosses.length).toBe(cpuLosses.length);
        cpuLosses.forEach((losses, epoch) => {
          for (const [name, value] of Object.entries(losses)) {
            if (name === 'meta_hypergrad_norm') continue;  // a reading, compared in the one-step case
            expect(Math.abs(gpuLosses[epoch]![name]! - value), `epoch ${epoch} ${name}`).toBeLessThanOrEqual(3e-2 * Math.max(1, Math.abs(value)));
          }
        });
        const evaluated = await evaluateCheckpoint(gpu.runDir);
        expect(evaluated.result.networks.map((net) => net.top1)).toEqual(gpu.final?.networks.map((net) => net.top1));
        // lmcl eval --device cuda: the same images, top-1 within one image of the CPU's (float sums differ).
        const onDevice = await evaluateCheckpoint(gpu.runDir, { device: 'cuda' });
        expect(onDevice.result.count).toBe(evaluated.result.count);
        onDevice.result.networks.forEach((net, n) => {
          expect(Math.abs(net.top1 - evaluated.result.networks[n]!.top1)).toBeLessThanOrEqual(100 / evaluated.result.count + 1e-9);
        });
      } finally {
        release(cpu);
        release(gpu);
      }
    }, 120_000);
  }
});
