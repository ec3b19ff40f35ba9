// ShuffleNetV2 0.5× / 1× CIFAR students (src/models/shufflenetv2_cifar.ts).
// Parameter counts are re-derived here from the layer shapes (method.md §5.1 /
// shufflenetv2_cifar.py), not from the model code; 1× on CIFAR-100 is the published 1.36 M.
import { describe, expect, it } from 'vitest';
import { F, manualSeed, optim, tensor, tidy } from '../../src/index.js';
import { createModel, listModels } from '../../src/models/registry.js';
import { channelShuffle } from '../../src/models/shufflenetv2_cifar.js';
import type { Student } from '../../src/models/types.js';
import { randomArray } from '../helpers/random.js';

// ---- independent arithmetic (no conv has a bias; BN counts γ and β) --------------------------
/** BasicBlock(c), h = c/2: 1×1 h→h, BN, dw3×3 (9h), BN, 1×1 h→h, BN = 2h² + 9h + 3·2h. */
const basic = (c: number): number => {
  const h = c / 2;
  return h * h + 2 * h + 9 * h + 2 * h + h * h + 2 * h;
};
/** DownBlock(i → o), m = o/2: left dw3×3(i) + BN(i) + 1×1 i→m + BN(m); right 1×1 i→m + BN(m) + dw3×3(m) + BN(m) + 1×1 m→m + BN(m). */
const down = (i: number, o: number): number => {
  const m = o / 2;
  return 9 * i + 2 * i + i * m + 2 * m + i * m + 2 * m + 9 * m + 2 * m + m * m + 2 * m;
};
const stage = (i: number, o: number, blocks: number): number => down(i, o) + blocks * basic(o);

function expectedParameters(widths: [number, number, number], inChannels: number, classes: number, auxiliary: boolean): number {
  const [o0, o1, o2] = widths;
  const head = o2 * 1024 + 2 * 1024; // 1×1 conv → 1024, BN(1024)
  const fc = 1024 * classes + classes;
  let total = 9 * inChannels * 24 + 2 * 24 + stage(24, o0, 3) + stage(o0, o1, 7) + stage(o1, o2, 3) + head + fc;
  if (auxiliary) total += stage(o0, o1, 7) + stage(o1, o2, 3) + head + stage(o1, o2, 3) + head + 2 * fc;
  return total;
}

function countParameters(model: Student): number {
  return model.parameters().reduce((total, p) => total + p.size, 0);
}

function randomImages(batch: number, channels: number, size: number) {
  return tensor(randomArray(batch * channels * size * size), [batch, channels, size, size]);
}

describe('ShuffleNetV2 CIFAR students', () => {
  it('are registered', () => {
    expect(listModels()).toEqual(expect.arrayContaining(['shufflenetv2_0.5x', 'shufflenetv2_1x']));
  });

  it('shuffles channels as view(N, 2, C/2, H, W).permute(0, 2, 1, 3, 4)', () => {
    // Channel c holds the value c: groups [0 1 2 | 3 4 5] interleave to 0 3 1 4 2 5.
    const x = tensor(Float32Array.from([0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5]), [1, 6, 1, 2]);
    const y = channelShuffle(x);
    expect(y.shape).toEqual([1, 6, 1, 2]);
    expect([...y.toFloat32Array()]).toEqual([0, 0, 3, 3, 1, 1, 4, 4, 2, 2, 5, 5]);
  });

  it('have the parameter counts of the reference layout', () => {
    // Hand-expanded 1×, 100 classes: stem 648 + 48; layer1 = down(24→116) 7 398 + 3·basic(116)
    // (= 2·58² + 15·58 = 7 598 each) ...; the total is the published 1.36 M.
    expect(down(24, 116)).toBe(9 * 24 + 48 + 24 * 58 + 116 + 24 * 58 + 116 + 9 * 58 + 116 + 58 * 58 + 116);
    expect(basic(116)).toBe(7598);
    expect(expectedParameters([116, 232, 464], 3, 100, false)).toBe(1_356_104);
    const cases: [string, [number, number, number]][] = [
      ['shufflenetv2_0.5x', [48, 96, 192]],
      ['shufflenetv2_1x', [116, 232, 464]],
    ];
    for (const [name, widths] of cases) {
      for (const auxiliary of [false, true]) {
        const model = createModel(name, { numClasses: 100, auxiliary });
        expect(countParameters(model), `${name} auxiliary=${auxiliary}`).toBe(expectedParameters(widths, 3, 100, auxiliary));
        expect(model.featureDim).toBe(1024);
        expect(model.stageCount).toBe(auxiliary ? 3 : 1);
        expect(model.architecture).toBe(name);
        model.dispose();
      }
    }
    const published = 1.36e6;
    expect(Math.abs(expectedParameters([116, 232, 464], 3, 100, false) - published) / published).toBeLessThan(0.01);
    const gray = createModel('shufflenetv2_0.5x', { numClasses: 10, inChannels: 1, imageSize: 28 });
    expect(countParameters(gray)).toBe(expectedParameters([48, 96, 192], 1, 10, false));
    gray.dispose();
  });

  it('uses the reference state-dict names', () => {
    const plain = createModel('shufflenetv2_0.5x', { numClasses: 10 });
    const plainState = plain.stateDict();
    const plainKeys = [...plainState.keys()];
    expect(plainKeys.slice(0, 3)).toEqual(['conv1.weight', 'bn1.weight', 'bn1.bias']);
    expect(plainKeys.slice(-4)).toEqual(['bn2.running_var', 'bn2.num_batches_tracked', 'linear.weight', 'linear.bias']);
    for (const key of ['layer1.0.conv5.weight', 'layer1.0.bn4.running_mean', 'layer1.3.conv3.weight', 'layer2.7.bn2.bias', 'layer3.3.conv1.weight', 'conv2.weight']) {
      expect(plainKeys, key).toContain(key);
    }
    expect(plainKeys).not.toContain('layer2.8.conv1.weight');
    expect(plainState.get('layer1.0.conv1.weight')!.shape).toEqual([24, 1, 3, 3]); // depthwise, stride 2
    expect(plainState.get('layer1.0.conv2.weight')!.shape).toEqual([24, 24, 1, 1]);
    expect(plainState.get('layer2.1.conv2.weight')!.shape).toEqual([48, 1, 3, 3]);
    plain.dispose();

    const model = createModel('shufflenetv2_0.5x', { numClasses: 10, auxiliary: true });
    const keys = [...model.stateDict().keys()];
    expect(keys.filter((key) => key.startsWith('backbone.')).map((key) => key.slice('backbone.'.length))).toEqual(plainKeys);
    for (const key of [
      'auxiliary_classifier.block_extractor1.0.0.conv1.weight', 'auxiliary_classifier.block_extractor1.0.7.bn3.weight',
      'auxiliary_classifier.block_extractor1.1.3.conv3.weight', 'auxiliary_classifier.block_extractor1.2.weight',
      'auxiliary_classifier.block_extractor1.3.running_mean', 'auxiliary_classifier.block_extractor2.0.0.conv4.weight',
      'auxiliary_classifier.block_extractor2.1.weight', 'auxiliary_classifier.block_extractor2.2.bias',
      'auxiliary_classifier.fc1.weight', 'auxiliary_classifier.fc2.bias',
    ]) expect(keys, key).toContain(key);
    expect(keys.every((key) => key.startsWith('backbone.') || key.startsWith('auxiliary_classifier.'))).toBe(true);
    model.dispose();
  });

  it('returns one stage without and three stages with auxiliary branches', () => {
    for (const auxiliary of [false, true]) {
      const model = createModel('shufflenetv2_0.5x', { numClasses: 5, imageSize: 16, auxiliary });
      tidy(() => {
        const out = model.forward(randomImages(2, 3, 16));
        expect(out.features.map((f) => f.shape)).toEqual(new Array(auxiliary ? 3 : 1).fill([2, 1024]));
        expect(out.logits.map((l) => l.shape)).toEqual(new Array(auxiliary ? 3 : 1).fill([2, 5]));
      });
      model.dispose();
    }
  });

  it('accepts 1-channel 28×28 inputs (Fashion-MNIST; final map 4×4, pooled adaptively)', () => {
    const model = createModel('shufflenetv2_0.5x', { numClasses: 10, inChannels: 1, imageSize: 28, auxiliary: true });
    tidy(() => {
      const out = model.forward(randomImages(2, 1, 28));
      expect(out.features.map((f) => f.shape)).toEqual([[2, 1024], [2, 1024], [2, 1024]]);
      expect(out.logits.map((l) => l.shape)).toEqual([[2, 10], [2, 10], [2, 10]]);
      for (const logit of out.logits) expect(logit.toFloat32Array().every(Number.isFinite)).toBe(true);
    });
    model.dispose();
  });

  it('overfits one small batch (shufflenetv2_0.5x, 16×16, all three heads trained)', () => {
    manualSeed(5);
    const model = createModel('shufflenetv2_0.5x', { numClasses: 4, imageSize: 16, auxiliary: true });
    const optimizer = new optim.SGD(model.parameters(), { lr: 0.05, momentum: 0.9 });
    const images = randomArray(4 * 3 * 16 * 16);
    const labels = Int32Array.from([0, 1, 2, 3]);
    const losses: number[] = [];
    for (let step = 0; step < 8; step += 1) {
      losses.push(tidy(() => {
        model.zeroGrad();
        const out = model.forward(tensor(images, [4, 3, 16, 16]));
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
