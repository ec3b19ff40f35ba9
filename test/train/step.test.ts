// The structure methods plug into, exercised by a test-only method that uses all of it: its own
// modules (a linear probe on net0's final feature, saved as criterion.*), a second parameter set
// with its own optimizer settings, its own step (the standard step, then every second batch an
// extra update of the probe alone), extra loss parts. Checked: what the step context says, where
// the method's state lands in checkpoints, bit-exact resume of all of it, train/eval mode, the
// old (format 1) checkpoint layout, and that a step reads nothing to the host between log reads.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import * as F from '../../src/ops/functional.js';
import { Module } from '../../src/nn/module.js';
import { Linear } from '../../src/nn/linear.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { tensor } from '../../src/tensor/creation.js';
import { tidy } from '../../src/tensor/scope.js';
import { train, type TrainResult } from '../../src/train/trainer.js';
import { DmlMethod } from '../../src/losses/dml.js';
import { LossParts } from '../../src/losses/parts.js';
import type { ParameterSet, StepBatch, StepContext, StepResult } from '../../src/losses/method.js';
import type { Student, StudentOutput } from '../../src/models/types.js';
import { loadCheckpoint, saveCheckpoint } from '../../src/io/checkpoint.js';
import { PendingReadings } from '../../src/train/readings.js';
import { native } from '../../src/native/index.js';
import { emptyMeters } from '../../src/train/state.js';
import { countTop1OnDevice, countTopK, top1Masks } from '../../src/train/metrics.js';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'lmcl-step-'));
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

// 160 images / batch 32 = 5 steps per epoch.
const tiny = { arch: 'resnet8', numberNet: 2, method: 'dml', epochs: 2, batchSize: 32, limitTrain: 160, limitTest: 64, evalBatchSize: 64, workers: 0, threads: 2 };

class ProbeCriterion extends Module {
  readonly probe: Linear;
  constructor(features: number, classes: number) {
    super();
    this.probe = this.registerModule('probe', new Linear(features, classes));
  }
  override forward(features: Tensor): Tensor {
    return this.probe.forward(features);
  }
}

interface SeenStep {
  epoch: number;
  step: number;
  batchIndex: number;
  lr: number;
  indices: number[];
  optimizers: string[];
  criterionTraining: boolean;
}

/**
 * dml + a probe on net0's detached final feature, trained only in the method's own step: after
 * the standard step, every second batch, with its own optimizer (the way L-MCL's φ gets its
 * meta update; in the standard step its SGD finds no gradient and leaves it alone).
 */
class ProbedDml extends DmlMethod {
  override readonly criterion: ProbeCriterion;
  readonly seen: SeenStep[] = [];
  evalCalls = 0;

  constructor(networks: readonly Student[], classes: number) {
    super(networks, { kdT: 3 });
    this.criterion = new ProbeCriterion(networks[0]!.featureDim, classes);
  }

  override parameterSets(): readonly ParameterSet[] {
    return [
      { name: 'main', parameters: this.networks.flatMap((net) => net.parameters()) },
      { name: 'probe', parameters: this.criterion.parameters(), optimizer: { momentum: 0.5, nesterov: false } },
    ];
  }

  private probeLoss(output: StudentOutput, labels: Int32Array): Tensor {
    const feature = output.features[output.features.length - 1]!.detach();
    return F.crossEntropy(this.criterion.forward(feature), labels);
  }

  readonly step = (batch: StepBatch, context: StepContext): StepResult => {
    this.seen.push({ epoch: context.epoch, step: context.step, batchIndex: context.batchIndex, lr: context.lr, indices: [...batch.indices],
      optimizers: [...context.optimizers.keys()], criterionTraining: this.criterion.training });
    const result = context.standardStep(batch);
    if (context.batchIndex % 2 === 0) {
      const optimizer = context.optimizers.get('probe')!;
      const probe = this.probeLoss(result.outputs[0]!, batch.y);
      optimizer.zeroGrad();
      probe.backward();
      optimizer.step();
      result.parts.add('probe', probe);
    }
    return result;
  };

  override eval(): void {
    this.evalCalls += 1;
    super.eval();
  }
}

let lastProbe: ProbedDml | null = null;
const probed = ({ networks, classes }: { networks: readonly Student[]; classes: number }): ProbedDml => (lastProbe = new ProbedDml(networks, classes));

function allWeights(result: TrainResult): Float32Array[] {
  return [...result.networks.flatMap((net) => [...net.stateDict().values()]), ...result.method.criterion!.stateDict().values()].map((e) => e.data);
}

function release(result: TrainResult): void {
  for (const net of result.networks) net.dispose();
  result.method.dispose();
}

function sameBits(a: Float32Array[], b: Float32Array[]): boolean {
  return a.length === b.length && a.every((x, k) => Buffer.from(x.buffer, x.byteOffset, x.byteLength).equals(Buffer.from(b[k]!.buffer, b[k]!.byteOffset, b[k]!.byteLength)));
}

describe('a method with its own modules, parameter sets and step', () => {
  let reference: Float32Array[] = [];
  let referenceDir = '';

  it('gets the batch indices, batch index, step, lr and its optimizers in the step context', async () => {
    const result = await train({ config: { ...tiny, out: root, name: 'probe' }, console: null, handleSignals: false, method: probed });
    expect(result.status).toBe('completed');
    const method = lastProbe!;
    expect(method.seen.map((s) => s.step)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(method.seen.map((s) => s.batchIndex)).toEqual([0, 1, 2, 3, 4, 0, 1, 2, 3, 4]);
    // Cosine over 2 epochs: 0.1, then 0.1·½(1 + cos(π/2)) = 0.05.
    expect(method.seen.map((s) => s.lr)).toEqual([0.1, 0.1, 0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.05, 0.05]);
    expect(method.seen.every((s) => s.optimizers.join() === 'main,probe' && s.criterionTraining)).toBe(true);
    for (const epoch of [0, 1]) {
      const indices = method.seen.filter((s) => s.epoch === epoch).flatMap((s) => s.indices);
      expect(indices).toHaveLength(160);
      expect(new Set(indices).size).toBe(160); // a shuffled epoch visits every image once
      expect(Math.min(...indices)).toBe(0);
      expect(Math.max(...indices)).toBe(159);
    }
    expect(method.evalCalls).toBe(2); // evaluation puts the criterion in eval mode once per epoch
    expect(method.criterion.training).toBe(true);
    const last = JSON.parse(fs.readFileSync(path.join(result.runDir, 'metrics.jsonl'), 'utf8').trim().split('\n')[1]!);
    expect(last.train.probe).toBeGreaterThan(0);
    referenceDir = result.runDir;
    reference = allWeights(result);
    release(result);
  });

  it('saves its modules as criterion.* beside the networks and every optimizer by set name', () => {
    const dir = path.join(referenceDir, 'checkpoints', 'checkpoint-e0002-s10');
    expect(fs.existsSync(path.join(dir, 'criterion.safetensors'))).toBe(true);
    const loaded = loadCheckpoint(dir);
    expect([...loaded.tensorFiles.criterion!.keys()].sort()).toEqual(['criterion.probe.bias', 'criterion.probe.weight']);
    expect([...loaded.networks[0]!.keys()].some((k) => k.startsWith('criterion'))).toBe(false);
    const keys = [...loaded.optimizerBuffers.keys()];
    expect(keys.filter((k) => k.startsWith('probe.')).sort()).toEqual(['probe.0.momentum_buffer', 'probe.1.momentum_buffer']);
    expect(keys.filter((k) => k.startsWith('main.')).length).toBe(loaded.networks.reduce((a, net) => a + [...net.keys()].filter((k) => !/running_|num_batches/.test(k)).length, 0));
    expect(keys.every((k) => /^(main|probe)\.\d+\.momentum_buffer$/.test(k))).toBe(true);
    const state = loaded.state as { format: string; optimizers: Record<string, { paramGroups: { momentum: number; nesterov: boolean; lr: number }[] }> };
    expect(state.format).toBe('lmcl-train-state/2');
    expect(state.optimizers.probe!.paramGroups[0]).toMatchObject({ momentum: 0.5, nesterov: false, lr: 0.05 });
    expect(state.optimizers.main!.paramGroups[0]).toMatchObject({ momentum: 0.9, nesterov: true, lr: 0.05 });
  });

  it('resumes bit for bit mid-epoch: networks, criterion, both optimizers', async () => {
    const first = await train({ config: { ...tiny, out: root, name: 'probe-resume' }, console: null, handleSignals: false, method: probed, stopAfterSteps: 7 });
    expect(first.status).toBe('interrupted');
    release(first);
    const resumed = await train({ config: { resume: first.runDir, out: root }, console: null, handleSignals: false, method: probed });
    expect(resumed.step).toBe(10);
    expect(sameBits(allWeights(resumed), reference)).toBe(true);
    release(resumed);
    const a = loadCheckpoint(path.join(referenceDir, 'checkpoints', 'checkpoint-e0002-s10'));
    const b = loadCheckpoint(path.join(resumed.runDir, 'checkpoints', 'checkpoint-e0002-s10'));
    expect([...b.optimizerBuffers.keys()]).toEqual([...a.optimizerBuffers.keys()]);
    expect(sameBits([...a.optimizerBuffers.values()].map((e) => e.data), [...b.optimizerBuffers.values()].map((e) => e.data))).toBe(true);
  });

  it('a NaN in the method\'s own weights (a set of its own, networks finite) is not saved either', async () => {
    // The probe's last update of epoch 2 runs with lr 1e300: the networks and every loss stay
    // finite, only criterion.probe.* is not.
    class ProbeBlowsUp extends ProbedDml {
      // Field initialisers run in order: this captures ProbedDml's step before the override below.
      private readonly probedStep = this.step;
      override readonly step = (batch: StepBatch, context: StepContext): StepResult => {
        if (context.step === 9) for (const group of context.optimizers.get('probe')!.paramGroups) group.lr = 1e300;
        return this.probedStep(batch, context);
      };
    }
    const result = await train({ config: { ...tiny, out: root, name: 'probe-nan' }, console: null, handleSignals: false,
      method: ({ networks, classes }) => new ProbeBlowsUp(networks, classes) });
    expect(result.status).toBe('nonfinite');
    expect(result.exitCode).toBe(3);
    expect(result.networks.every((net) => [...net.stateDict().values()].every((entry) => entry.data.every(Number.isFinite)))).toBe(true);
    release(result);
    expect(result.message).toMatch(/^non-finite weights: .*after step 10 .*criterion\.probe\.weight/);
    expect(result.message).toContain(`is kept: ${path.join(result.runDir, 'checkpoints', 'checkpoint-e0001-s5')}`);
    expect(fs.existsSync(path.join(result.runDir, 'checkpoints', 'checkpoint-e0002-s10'))).toBe(false);
  });

  it('refuses a checkpoint whose method weights this run cannot hold', async () => {
    await expect(train({ config: { ...tiny, resume: path.join(referenceDir, 'checkpoints', 'checkpoint-e0001-s5'), out: root }, console: null, handleSignals: false }))
      .rejects.toThrow(/parameter set 'probe'|method weights/);
  });
});

describe('checkpoint format 1 (one optimizer, <index>.momentum_buffer)', () => {
  it('still resumes, bit for bit', async () => {
    const full = await train({ config: { ...tiny, out: root, name: 'v2' }, console: null, handleSignals: false });
    const expected = full.networks.flatMap((net) => [...net.stateDict().values()].map((e) => e.data));
    release(full);
    // Rewrite the epoch-1 checkpoint in the format-1 layout the trainer wrote before parameter sets.
    const source = loadCheckpoint(path.join(full.runDir, 'checkpoints', 'checkpoint-e0001-s5'));
    const { optimizers, ...rest } = source.state as { optimizers: Record<string, unknown> } & Record<string, unknown>;
    expect(Object.keys(optimizers)).toEqual(['main']);
    const oldState = { ...rest, format: 'lmcl-train-state/1', optimizer: optimizers.main };
    const oldBuffers = new Map([...source.optimizerBuffers].map(([key, entry]) => [key.replace(/^main\./, ''), entry]));
    expect([...oldBuffers.keys()].every((key) => /^\d+\.momentum_buffer$/.test(key))).toBe(true);
    const oldRun = path.join(root, 'v1');
    fs.mkdirSync(oldRun);
    fs.copyFileSync(path.join(full.runDir, 'config.json'), path.join(oldRun, 'config.json'));
    saveCheckpoint(path.join(oldRun, 'checkpoints'), 'checkpoint-e0001-s5', { networks: source.networks, optimizerBuffers: oldBuffers, state: oldState });
    const resumed = await train({ config: { resume: oldRun, out: root }, console: null, handleSignals: false });
    expect(resumed.step).toBe(10);
    expect(sameBits(resumed.networks.flatMap((net) => [...net.stateDict().values()].map((e) => e.data)), expected)).toBe(true);
    release(resumed);
  });
});

describe('host reads', () => {
  it('download is reached only through Tensor.toFloat32Array / toFloat32ArrayAsync (so spying on them sees every read); the loop uses no other host read', () => {
    const walk = (dir: string): string[] => fs.readdirSync(dir, { withFileTypes: true })
      .flatMap((e) => (e.isDirectory() ? walk(path.join(dir, e.name)) : [path.join(dir, e.name)]));
    const src = path.join(import.meta.dirname, '..', '..', 'src');
    const callers = walk(src).filter((file) => file.endsWith('.ts') && /\.download(Async)?\(/.test(fs.readFileSync(file, 'utf8')));
    expect(callers.map((file) => path.relative(src, file))).toEqual([path.join('tensor', 'tensor.ts')]);
    // The other host read (a count returned by the addon) is used only by the finiteness check a
    // state passes before it is saved or resumed (train/finite.ts); the per-step test below counts
    // its native calls too.
    const stepCode = [...walk(path.join(src, 'train')), ...walk(path.join(src, 'losses'))];
    expect(stepCode.filter((file) => /countNonFinite\(/.test(fs.readFileSync(file, 'utf8'))).map((file) => path.relative(src, file)))
      .toEqual([path.join('train', 'finite.ts')]);
  });

  async function downloadsPerStep(logInterval: number): Promise<number[]> {
    const spy = vi.spyOn(Tensor.prototype, 'toFloat32Array');
    const spyAsync = vi.spyOn(Tensor.prototype, 'toFloat32ArrayAsync');
    const counting = vi.spyOn(native(), 'countNonFinite');
    const counts: number[] = [];
    try {
      let before = 0;
      const result = await train({
        config: { ...tiny, logInterval, out: root, name: `reads-${logInterval}` }, console: null, progress: { quiet: true }, handleSignals: false,
        onStepEnd: () => {
          const reads = spy.mock.calls.length + spyAsync.mock.calls.length + counting.mock.calls.length;
          counts.push(reads - before);
          before = reads;
        },
      });
      release(result);
    } finally {
      spy.mockRestore();
      spyAsync.mockRestore();
      counting.mockRestore();
    }
    return counts;
  }

  it('a step reads nothing to the host between log reads (and each read is one download)', async () => {
    // Steps 0 and 5 open an epoch: the window before them holds evaluation, the checkpoint and
    // (step 0) BatchNorm's one-time read of num_batches_tracked. Every other step reads nothing.
    const quiet = await downloadsPerStep(1e6);
    expect(quiet).toHaveLength(10);
    expect([1, 2, 3, 4, 6, 7, 8, 9].map((k) => quiet[k])).toEqual([0, 0, 0, 0, 0, 0, 0, 0]);
    expect(quiet[5]).toBeGreaterThan(0);
    // Control: reading at every step (--log-interval 0) shows up as exactly one download per step.
    const eager = await downloadsPerStep(0);
    expect([1, 2, 3, 4, 6, 7, 8, 9].map((k) => eager[k])).toEqual([1, 1, 1, 1, 1, 1, 1, 1]);
  });

  for (const mode of ['readInto', 'readIntoAsync'] as const) {
    it(`PendingReadings.${mode}: one download for many steps, the same float64 sums as reading each at once, stops at a NaN total`, async () => {
      const readings = new PendingReadings();
      const expected = emptyMeters(2);
      const values: number[][] = [[0.5, 1.25, 2], [0.75, 0.125, 3], [Number.NaN, 1, 1]];
      const liveBefore = native().memoryStats().cpuLiveBytes;
      values.forEach(([ce, kd, correct], step) => {
        // As a step makes them: in a tidy scope, the parts keeping their own views.
        const parts = tidy(() => new LossParts().add('ce', tensor(Float32Array.of(ce!), [])).add('ce', tensor(Float32Array.of(kd!), [])).add('total', tensor(Float32Array.of(ce! + kd!), [])));
        readings.push({ epoch: 0, batchIndex: step, step, batchSize: 4, parts, correct: [tensor(Float32Array.of(correct!), []), tensor(Float32Array.of(1), [])] });
        if (step < 2) {
          expected.lossSums.ce = (expected.lossSums.ce ?? 0) + (Math.fround(ce!) + Math.fround(kd!)) * 4;
          expected.lossSums.total = (expected.lossSums.total ?? 0) + Math.fround(ce! + kd!) * 4;
          expected.correct[0]! += correct!;
          expected.correct[1]! += 1;
        }
      });
      const spy = vi.spyOn(Tensor.prototype, mode === 'readInto' ? 'toFloat32Array' : 'toFloat32ArrayAsync');
      const meters = emptyMeters(2);
      let bad;
      try {
        bad = mode === 'readInto' ? readings.readInto(meters) : await readings.readIntoAsync(meters);
        expect(spy).toHaveBeenCalledTimes(1);
      } finally {
        spy.mockRestore();
      }
      expect(bad!.step.step).toBe(2);
      expect(Number.isNaN(bad!.values.total)).toBe(true);
      expect(meters).toEqual(expected);
      expect(readings.size).toBe(0);
      expect(native().memoryStats().cpuLiveBytes).toBe(liveBefore); // every step's scalars released
    });
  }
});

describe('top-1 counted on the device', () => {
  it('equals countTopK on logits with many ties', () => {
    for (const [rows, classes] of [[37, 7], [64, 10], [5, 2]] as const) {
      const logits = Float32Array.from({ length: rows * classes }, () => Math.round(Math.random() * 3) / 2 - 0.75);
      const labels = Int32Array.from({ length: rows }, () => Math.floor(Math.random() * classes));
      const onDevice = tidy(() => {
        const count = countTop1OnDevice(tensor(logits, [rows, classes]), top1Masks(labels, classes));
        const value = count.item();
        count.dispose();
        return value;
      });
      expect(onDevice).toBe(countTopK(logits, labels, classes, 1));
    }
  });
});
