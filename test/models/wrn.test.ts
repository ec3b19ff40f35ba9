// WRN-16-2 / 40-2 / 28-4 students (src/models/wrn_cifar.ts).
// Parameter counts are re-derived here from the layer shapes (method.md §5.1 / wrn_cifar.py), not
// from the model code, and checked against the published CIFAR-100 totals (0.70 M, 2.26 M, 5.87 M).
import { describe, expect, it } from 'vitest';
import { F, manualSeed, optim, tensor, tidy } from '../../src/index.js';
import { createModel, listModels } from '../../src/models/registry.js';
import type { Student } from '../../src/models/types.js';
import { randomArray } from '../helpers/random.js';

// ---- independent arithmetic ------------------------------------------------------------------
const batchNorm = (channels: number): number => 2 * channels; // γ, β (running stats are buffers)
/** Pre-activation block: BN(i), conv3×3 i→o, BN(o), conv3×3 o→o, 1×1 i→o shortcut when i ≠ o. */
const block = (i: number, o: number): number => batchNorm(i) + 9 * i * o + batchNorm(o) + 9 * o * o + (i !== o ? i * o : 0);
const networkBlock = (n: number, i: number, o: number): number => block(i, o) + (n - 1) * block(o, o);

function expectedParameters(depth: number, k: number, inChannels: number, classes: number, auxiliary: boolean): number {
  const n = (depth - 4) / 6;
  const [w0, w1, w2, w3] = [16, 16 * k, 32 * k, 64 * k];
  let total = 9 * inChannels * w0 + networkBlock(n, w0, w1) + networkBlock(n, w1, w2) + networkBlock(n, w2, w3) +
    batchNorm(w3) + (w3 * classes + classes);
  if (auxiliary) {
    total += networkBlock(n, w1, w2) + networkBlock(n, w2, w3); // aux1: copies of block2 + block3
    total += networkBlock(n, w2, w3); // aux2: copy of block3
    total += 2 * batchNorm(w3) + 2 * (w3 * classes + classes); // bn1, bn2, fc1, fc2
  }
  return total;
}

function countParameters(model: Student): number {
  return model.parameters().reduce((total, p) => total + p.size, 0);
}

function randomImages(batch: number, channels: number, size: number) {
  return tensor(randomArray(batch * channels * size * size), [batch, channels, size, size]);
}

describe('WRN CIFAR students', () => {
  it('are registered', () => {
    expect(listModels()).toEqual(expect.arrayContaining(['wrn_16_2', 'wrn_40_2', 'wrn_28_4']));
  });

  it('have the parameter counts of the reference layout', () => {
    // Hand-expanded WRN-16-2, 100 classes (n = 2, widths 16/32/64/128):
    //   conv1 432; block1: (32+4608+64+9216+512) + (64+9216+64+9216) = 32 992;
    //   block2: (64+18432+128+36864+2048) + (128+36864+128+36864) = 131 520;
    //   block3: (128+73728+256+147456+8192) + (256+147456+256+147456) = 525 184;
    //   bn1 256; fc 12 900  → 703 284.
    expect(expectedParameters(16, 2, 3, 100, false)).toBe(703_284);
    const cases: [string, number, number, number][] = [
      ['wrn_16_2', 16, 2, 0.70e6],
      ['wrn_40_2', 40, 2, 2.26e6],
      ['wrn_28_4', 28, 4, 5.87e6],
    ];
    for (const [name, depth, k, published] of cases) {
      for (const auxiliary of [false, true]) {
        const model = createModel(name, { numClasses: 100, auxiliary });
        const expected = expectedParameters(depth, k, 3, 100, auxiliary);
        expect(countParameters(model), `${name} auxiliary=${auxiliary}`).toBe(expected);
        if (!auxiliary) expect(Math.abs(expected - published) / published, name).toBeLessThan(0.01);
        expect(model.featureDim).toBe(64 * k);
        expect(model.stageCount).toBe(auxiliary ? 3 : 1);
        expect(model.architecture).toBe(name);
        model.dispose();
      }
    }
    const gray = createModel('wrn_16_2', { numClasses: 10, inChannels: 1, imageSize: 28 });
    expect(countParameters(gray)).toBe(expectedParameters(16, 2, 1, 10, false));
    gray.dispose();
  });

  it('uses the reference state-dict names and initialisation', () => {
    manualSeed(7);
    const plain = createModel('wrn_16_2', { numClasses: 10 });
    const plainKeys = [...plain.stateDict().keys()];
    expect(plainKeys.slice(0, 7)).toEqual([
      'conv1.weight',
      'block1.layer.0.bn1.weight', 'block1.layer.0.bn1.bias', 'block1.layer.0.bn1.running_mean',
      'block1.layer.0.bn1.running_var', 'block1.layer.0.bn1.num_batches_tracked', 'block1.layer.0.conv1.weight',
    ]);
    for (const key of ['block1.layer.0.convShortcut.weight', 'block2.layer.1.conv2.weight', 'bn1.running_var', 'fc.weight', 'fc.bias']) {
      expect(plainKeys, key).toContain(key);
    }
    // No shortcut where the widths agree (second block of a group).
    expect(plainKeys).not.toContain('block1.layer.1.convShortcut.weight');
    plain.dispose();

    // With auxiliary branches: one network of lmcl_wrn_cifar.py ('backbone.' + the plain names).
    const model = createModel('wrn_16_2', { numClasses: 10, auxiliary: true });
    const state = model.stateDict();
    const keys = [...state.keys()];
    expect(keys.filter((key) => key.startsWith('backbone.')).map((key) => key.slice('backbone.'.length))).toEqual(plainKeys);
    for (const key of [
      'auxiliary_classifier.block_extractor1.0.layer.0.convShortcut.weight',
      'auxiliary_classifier.block_extractor1.1.layer.1.bn2.weight',
      'auxiliary_classifier.block_extractor2.0.layer.0.conv1.weight',
      'auxiliary_classifier.bn1.weight', 'auxiliary_classifier.bn2.bias',
      'auxiliary_classifier.fc1.weight', 'auxiliary_classifier.fc2.bias',
    ]) expect(keys, key).toContain(key);
    expect(keys.every((key) => key.startsWith('backbone.') || key.startsWith('auxiliary_classifier.'))).toBe(true);
    expect(state.get('backbone.block2.layer.0.conv1.weight')!.shape).toEqual([64, 32, 3, 3]);
    expect(state.get('auxiliary_classifier.block_extractor2.0.layer.0.convShortcut.weight')!.shape).toEqual([128, 64, 1, 1]);
    // Conv init N(0, 2 / (9·64)) on a 64·32·9 = 18 432-element weight: sample std within 3 %.
    for (const key of ['backbone.block2.layer.0.conv1.weight', 'auxiliary_classifier.block_extractor1.0.layer.0.conv1.weight']) {
      const w = state.get(key)!.data;
      const std = Math.sqrt(w.reduce((s, v) => s + v * v, 0) / w.length);
      expect(Math.abs(std / Math.sqrt(2 / (9 * 64)) - 1), key).toBeLessThan(0.03);
    }
    expect([...state.get('backbone.fc.bias')!.data].every((v) => v === 0)).toBe(true);
    expect([...state.get('auxiliary_classifier.fc1.bias')!.data].every((v) => v === 0)).toBe(true);
    expect([...state.get('auxiliary_classifier.bn2.weight')!.data].every((v) => v === 1)).toBe(true);
    model.dispose();
  });

  it('returns one stage without and three stages with auxiliary branches', () => {
    for (const auxiliary of [false, true]) {
      const model = createModel('wrn_16_2', { numClasses: 5, imageSize: 16, auxiliary });
      tidy(() => {
        const out = model.forward(randomImages(2, 3, 16));
        expect(out.features.length).toBe(auxiliary ? 3 : 1);
        expect(out.logits.length).toBe(auxiliary ? 3 : 1);
        for (const feature of out.features) expect(feature.shape).toEqual([2, 128]);
        for (const logit of out.logits) expect(logit.shape).toEqual([2, 5]);
      });
      model.dispose();
    }
  });

  it('accepts 1-channel 28×28 inputs (Fashion-MNIST; final map 7×7, pooled adaptively)', () => {
    const model = createModel('wrn_16_2', { numClasses: 10, inChannels: 1, imageSize: 28, auxiliary: true });
    tidy(() => {
      const out = model.forward(randomImages(2, 1, 28));
      expect(out.features.map((f) => f.shape)).toEqual([[2, 128], [2, 128], [2, 128]]);
      expect(out.logits.map((l) => l.shape)).toEqual([[2, 10], [2, 10], [2, 10]]);
      for (const logit of out.logits) expect(logit.toFloat32Array().every(Number.isFinite)).toBe(true);
    });
    model.dispose();
  });

  it('overfits one small batch (wrn_16_2, 8×8, all three heads trained)', () => {
    manualSeed(11);
    const model = createModel('wrn_16_2', { numClasses: 4, imageSize: 8, auxiliary: true });
    const optimizer = new optim.SGD(model.parameters(), { lr: 0.05, momentum: 0.9 });
    const images = randomArray(4 * 3 * 8 * 8);
    const labels = Int32Array.from([0, 1, 2, 3]);
    const losses: number[] = [];
    for (let step = 0; step < 8; step += 1) {
      losses.push(tidy(() => {
        model.zeroGrad();
        const out = model.forward(tensor(images, [4, 3, 8, 8]));
        const loss = out.logits.map((logit) => F.crossEntropy(logit, labels)).reduce((a, b) => F.add(a, b));
        loss.backward();
        optimizer.step();
        return loss.item();
      }));
    }
    expect(losses.every(Number.isFinite)).toBe(true);
    expect(losses[losses.length - 1]!).toBeLessThan(0.25 * losses[0]!);
    optimizer.dispose();
    model.dispose();
  });
});
