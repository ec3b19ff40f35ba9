// `lmcl train --device cuda`: the trainer's device path (train/device.ts places the cohort and the
// method's modules before the optimizers take their parameters; the DataLoader makes each batch's
// images on the device; the top-1 masks follow the logits). On a machine with a CUDA device, each
// method trains a tiny job on the CPU and on CUDA from the same seed, and the two runs agree: the
// same data order (labels, bank indices and the RNG stay on the host), per-epoch losses within 1e-3
// relative (different float association in every kernel, over 5 steps), the final weights within
// 2e-3 of their scale, and the CUDA run's checkpoint evaluates on the CPU (`lmcl eval`) to the
// accuracy the trainer reported. Without a device those blocks are skipped (named so), and the
// refusal is checked instead: a clear error before a run directory exists.
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

// 160 images / batch 32 = 5 steps per epoch (L-MCL: a meta phase every 2 batches).
const tiny = { arch: 'resnet8', numberNet: 2, epochs: 1, batchSize: 32, limitTrain: 160, limitTest: 64, evalBatchSize: 64, workers: 0, threads: 2 };
const methods: { method: string; extra: Record<string, unknown> }[] = [
  { method: 'baseline', extra: { numberNet: 1 } },
  { method: 'dml', extra: {} },
  { method: 'mcl', extra: { sampler: 'm-per-class' } },
  { method: 'mcl', extra: { sampler: 'm-per-class', contrast: 'bank', negK: 16 } },
  { method: 'lmcl', extra: { sampler: 'm-per-class', metaFreq: 2 } },
];

function weights(result: TrainResult): Float32Array[] {
  return result.networks.flatMap((net) => [...net.stateDict().values()].map((entry) => entry.data));
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
    it(`${label}: one epoch on CUDA agrees with the CPU run; its checkpoint evaluates on the CPU`, async () => {
      const run = async (device: Device): Promise<TrainResult> =>
        train({ config: { ...tiny, method, ...extra, device, out: root, name: `${label.replace(/\W+/g, '-')}-${device}` }, console: null, handleSignals: false });
      const cpu = await run('cpu');
      const gpu = await run('cuda');
      try {
        expect(gpu.status).toBe('completed');
        const [cpuLosses, gpuLosses] = [epochLosses(cpu.runDir), epochLosses(gpu.runDir)];
        expect(gpuLosses.length).toBe(cpuLosses.length);
        cpuLosses.forEach((losses, epoch) => {
          for (const [name, value] of Object.entries(losses)) {
            expect(Math.abs(gpuLosses[epoch]![name]! - value), `epoch ${epoch} ${name}`).toBeLessThanOrEqual(1e-3 * Math.max(1, Math.abs(value)));
          }
        });
        const [a, b] = [weights(cpu), weights(gpu)];
        a.forEach((values, k) => {
          const scale = values.reduce((m, v) => Math.max(m, Math.abs(v)), 1e-6);
          const worst = values.reduce((m, v, e) => Math.max(m, Math.abs(v - b[k]![e]!)), 0);
          expect(worst / scale, `state tensor ${k}`).toBeLessThanOrEqual(2e-3);
        });
        const evaluated = await evaluateCheckpoint(gpu.runDir);
        expect(evaluated.result.networks.map((net) => net.top1)).toEqual(gpu.final?.networks.map((net) => net.top1));
      } finally {
        release(cpu);
        release(gpu);
      }
    }, 120_000);
  }
});
