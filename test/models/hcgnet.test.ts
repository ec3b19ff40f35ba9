// HCGNet-A1 / A2 CIFAR students (src/models/hcgnet_cifar.ts).
// Parameter counts are re-derived here from the layer shapes of hcgnet_cifar.py /
// lmcl_hcgnet_cifar.py (not from the model code) and checked against the published totals
// (HCGNet README: A1 1.1 M, A2 3.1 M). The dilation-2 depthwise conv, which the model evaluates as
// a spread 5×5 kernel, is checked against a direct float64 dilated convolution, and one SMG module
// against a float64 re-implementation of the reference formulas.
import { describe, expect, it } from 'vitest';
import { F, tensor, tidy } from '../../src/index.js';
import { createModel, listModels } from '../../src/models/registry.js';
import { Dilated3x3Conv2d, SMGModule } from '../../src/models/hcgnet_cifar.js';
import type { Student } from '../../src/models/types.js';
import { expectClose, randomArray } from '../helpers/random.js';

// ---- independent arithmetic -------------------------------------------------------------------
const bn = (c: number): number => 2 * c; // γ, β of BatchNorm2d / BatchNorm1d
const conv1x1Bias = (i: number, o: number): number => i * o + o; // nn.Conv2d(i, o, 1) with bias

/** SMG(in = i, growth g): bn_size 4, groups 4, reduction 2 (→ g), forget 2 (→ g/2). */
function smg(i: number, g: number): number {
  return bn(i) + i * 4 * g // conv1_1x1: BN + 1×1 i → 4g
    + bn(4 * g) + (4 * g / 4) * g * 9 // conv2_3x3: BN + 3×3 4g → g, groups 4
    + 2 * (bn(g) + 9 * g) // conv_3x3, conv_5x5: BN + depthwise 3×3
    + 2 * conv1x1Bias(g, 1) // global_context3x3 / 5x5
    + conv1x1Bias(2 * g, g) + bn(g) // fcall, bn_attention
    + 2 * conv1x1Bias(g, g) // fc3x3, fc5x5
    + conv1x1Bias(g, 1) + bn(g / 2) // global_forget_context, bn_forget
    + conv1x1Bias(g, g / 2) + conv1x1Bias(g / 2, g); // fc1, fc2
}

/** Transition(i → o): 1×1 i → i − ⌊(i−o)/2⌋, 3×3 s2 → o, reduction and forget factors 4 (floored). */
function transition(i: number, o: number): number {
  const m = i - Math.floor((i - o) / 2);
  const ra = Math.floor((2 * o) / 4);
  const rf = Math.floor(o / 4);
  return bn(i) + i * m + bn(m) + 9 * m * o + 2 * (bn(o) + 9 * o) + 2 * conv1x1Bias(o, 1)
    + conv1x1Bias(2 * o, ra) + bn(ra) + 2 * conv1x1Bias(ra, o)
    + conv1x1Bias(o, 1) + bn(rf) + conv1x1Bias(o, rf) + conv1x1Bias(rf, o);
}

const hybrid = (layers: number, i: number, g: number): number =>
  Array.from({ length: layers }, (_, k) => smg(i + g * k, g)).reduce((a, b) => a + b, 0);

function expected(growth: [number, number, number], inChannels: number, classes: number, auxiliary: boolean) {
  const stem = 2 * growth[0];
  const b1 = stem + 8 * growth[0];
  const t1 = Math.floor(b1 / 2);
  const b2 = t1 + 8 * growth[1];
  const t2 = Math.floor(b2 / 2);
  const d = t2 + 8 * growth[2];
  let total = 9 * inChannels * stem + hybrid(8, stem, growth[0]) + transition(b1, t1) + hybrid(8, t1, growth[1])
    + transition(b2, t2) + hybrid(8, t2, growth[2]) + bn(d) + (d * classes + classes);
  if (auxiliary) {
    total += hybrid(8, t1, growth[1]) + transition(b2, t2) + hybrid(8, t2, growth[2]) + bn(d); // aux1
    total += hybrid(8, t2, growth[2]) + bn(d); // aux2
    total += 2 * (d * classes + classes); // fc1, fc2
  }
  return { d, total };
}

function countParameters(model: Student): number {
  return model.parameters().reduce((total, p) => total + p.size, 0);
}

function randomImages(batch: number, channels: number, size: number) {
  return tensor(randomArray(batch * channels * size * size), [batch, channels, size, size]);
}

describe('HCGNet CIFAR students', () => {
  it('are registered', () => {
    expect(listModels()).toEqual(expect.arrayContaining(['hcgnet_a1', 'hcgnet_a2']));
  });

  it('have the reference widths and parameter counts', () => {
    expect(expected([12, 24, 36], 3, 100, false)).toEqual({ d: 414, total: 1_102_651 });
    expect(expected([24, 36, 64], 3, 100, false)).toEqual({ d: 716, total: 3_133_679 });
    const cases: [string, [number, number, number], number][] = [
      ['hcgnet_a1', [12, 24, 36], 1.1e6],
      ['hcgnet_a2', [24, 36, 64], 3.1e6],
    ];
    for (const [name, growth, published] of cases) {
      for (const auxiliary of [false, true]) {
        const model = createModel(name, { numClasses: 100, auxiliary });
        const { d, total } = expected(growth, 3, 100, auxiliary);
        expect(countParameters(model), `${name} auxiliary=${auxiliary}`).toBe(total);
        if (!auxiliary) expect(Math.abs(total - published) / published, name).toBeLessThan(0.02);
        expect(model.featureDim).toBe(d);
        expect(model.stageCount).toBe(auxiliary ? 3 : 1);
        expect(model.architecture).toBe(name);
        model.dispose();
      }
    }
  });

  it('uses the reference state-dict names', () => {
    const plain = createModel('hcgnet_a1', { numClasses: 10 });
    const state = plain.stateDict();
    const keys = [...state.keys()];
    expect(keys.slice(0, 3)).toEqual(['features.conv0.weight', 'features.HybridBlock1.SMG1.conv1_1x1.norm.weight', 'features.HybridBlock1.SMG1.conv1_1x1.norm.bias']);
    expect(keys.slice(-2)).toEqual(['classifier.weight', 'classifier.bias']);
    for (const key of [
      'features.HybridBlock1.SMG8.conv_5x5.conv.weight', 'features.HybridBlock2.SMG3.bn_attention.running_var',
      'features.Transition1.fcall.bias', 'features.Transition2.bn_forget.weight', 'features.HybridBlock3.SMG1.global_forget_context.weight',
      'features.norm5.running_mean',
    ]) expect(keys, key).toContain(key);
    expect(state.get('features.conv0.weight')!.shape).toEqual([24, 3, 3, 3]);
    expect(state.get('features.HybridBlock1.SMG1.conv2_3x3.conv.weight')!.shape).toEqual([12, 12, 3, 3]); // 48 → 12, groups 4
    expect(state.get('features.HybridBlock1.SMG1.conv_5x5.conv.weight')!.shape).toEqual([12, 1, 3, 3]); // dilated depthwise
    expect(state.get('features.Transition1.conv1_1x1.conv.weight')!.shape).toEqual([90, 120, 1, 1]); // 120 − (120−60)/2
    expect(state.get('features.Transition2.bn_forget.weight')!.shape).toEqual([31]); // ⌊126 / 4⌋
    expect(state.get('features.Transition2.fcall.weight')!.shape).toEqual([63, 252, 1, 1]); // ⌊2·126 / 4⌋
    plain.dispose();

    const model = createModel('hcgnet_a1', { numClasses: 10, auxiliary: true });
    const auxKeys = [...model.stateDict().keys()];
    expect(auxKeys.filter((key) => key.startsWith('backbone.')).map((key) => key.slice('backbone.'.length))).toEqual(keys);
    for (const key of [
      'auxiliary_classifier.block_extractor1.0.SMG1.conv1_1x1.norm.weight', 'auxiliary_classifier.block_extractor1.1.fc2.bias',
      'auxiliary_classifier.block_extractor1.2.SMG8.fc5x5.weight', 'auxiliary_classifier.block_extractor1.3.running_var',
      'auxiliary_classifier.block_extractor2.0.SMG4.bn_forget.bias', 'auxiliary_classifier.block_extractor2.1.weight',
      'auxiliary_classifier.fc1.weight', 'auxiliary_classifier.fc2.bias',
    ]) expect(auxKeys, key).toContain(key);
    expect(auxKeys.every((key) => key.startsWith('backbone.') || key.startsWith('auxiliary_classifier.'))).toBe(true);
    model.dispose();
  });

  it('evaluates the dilation-2 depthwise 3×3 exactly (forward and weight gradient)', () => {
    const [n, c, h, w] = [2, 3, 6, 5];
    const conv = new Dilated3x3Conv2d(c, c, c);
    const xData = randomArray(n * c * h * w);
    const rData = randomArray(n * c * h * w);
    const weight = conv.weight.toFloat32Array();
    const at = (img: number, ch: number, y: number, x: number): number =>
      y < 0 || y >= h || x < 0 || x >= w ? 0 : xData[((img * c + ch) * h + y) * w + x]!;
    // out[n, c, y, x] = Σ_ij w[c, 0, i, j] · x[n, c, y + 2i − 2, x + 2j − 2] (padding 2, dilation 2).
    const expectedOut = new Float64Array(n * c * h * w);
    const expectedGrad = new Float64Array(c * 9);
    for (let img = 0; img < n; img += 1) for (let ch = 0; ch < c; ch += 1) for (let y = 0; y < h; y += 1) for (let x = 0; x < w; x += 1) {
      const o = ((img * c + ch) * h + y) * w + x;
      for (let i = 0; i < 3; i += 1) for (let j = 0; j < 3; j += 1) {
        const v = at(img, ch, y + 2 * i - 2, x + 2 * j - 2);
        expectedOut[o]! += weight[ch * 9 + i * 3 + j]! * v;
        expectedGrad[ch * 9 + i * 3 + j]! += rData[o]! * v;
      }
    }
    tidy(() => {
      const out = conv.forward(tensor(xData, [n, c, h, w]));
      expect(out.shape).toEqual([n, c, h, w]);
      expectClose(out.toFloat32Array(), expectedOut, { rtol: 1e-5, atol: 1e-5, label: 'dilated conv forward' });
      F.sum(F.mul(out, tensor(rData, [n, c, h, w]))).backward();
      expect(conv.weight.grad!.shape).toEqual([c, 1, 3, 3]);
      expectClose(conv.weight.grad!.toFloat32Array(), expectedGrad, { rtol: 1e-4, atol: 1e-4, label: 'dilated conv weight grad' });
    });
    conv.dispose();
  });

  it('computes an SMG module as the reference formulas (eval mode, float64 re-implementation)', () => {
    // SMG(in 4, growth 4): eval mode with fresh running statistics, so every BN is x / sqrt(1 + eps).
    const [n, cin, g, h, w] = [2, 4, 4, 5, 5];
    const module = new SMGModule(cin, g).eval();
    const p = new Map([...module.stateDict()].map(([name, entry]) => [name, Float64Array.from(entry.data)]));
    const bnScale = 1 / Math.sqrt(1 + 1e-5);
    type Map4 = { c: number; data: Float64Array }; // [n, c, h, w]
    const conv = (x: Map4, weight: Float64Array, bias: Float64Array | null, out: number, k: number, groups: number, pad: number, dil: number): Map4 => {
      const perIn = x.c / groups;
      const perOut = out / groups;
      const data = new Float64Array(n * out * h * w);
      for (let img = 0; img < n; img += 1) for (let o = 0; o < out; o += 1) for (let y = 0; y < h; y += 1) for (let xx = 0; xx < w; xx += 1) {
        let acc = bias ? bias[o]! : 0;
        const group = Math.floor(o / perOut);
        for (let ci = 0; ci < perIn; ci += 1) for (let i = 0; i < k; i += 1) for (let j = 0; j < k; j += 1) {
          const yy = y + i * dil - pad;
          const xj = xx + j * dil - pad;
          if (yy < 0 || yy >= h || xj < 0 || xj >= w) continue;
          acc += weight[((o * perIn + ci) * k + i) * k + j]! * x.data[((img * x.c + group * perIn + ci) * h + yy) * w + xj]!;
        }
        data[((img * out + o) * h + y) * w + xx] = acc;
      }
      return { c: out, data };
    };
    const bnRelu = (x: Map4): Map4 => ({ c: x.c, data: x.data.map((v) => Math.max(0, v * bnScale)) });
    const get = (name: string): Float64Array => p.get(name)!;
    /** Σ_hw t · softmax_hw(1×1 conv of t): [n][c]. */
    const contextPool = (t: Map4, prefix: string): number[][] => {
      const logits = conv(t, get(`${prefix}.weight`), get(`${prefix}.bias`), 1, 1, 1, 0, 1).data;
      return Array.from({ length: n }, (_, img) => {
        const row = logits.slice(img * h * w, (img + 1) * h * w);
        const max = Math.max(...row);
        const e = row.map((v) => Math.exp(v - max));
        const z = e.reduce((a, b) => a + b, 0);
        return Array.from({ length: t.c }, (_, ch) => {
          let acc = 0;
          for (let q = 0; q < h * w; q += 1) acc += t.data[(img * t.c + ch) * h * w + q]! * (e[q]! / z);
          return acc;
        });
      });
    };
    const dense = (v: number[], prefix: string, out: number): number[] =>
      Array.from({ length: out }, (_, o) => v.reduce((acc, value, i) => acc + get(`${prefix}.weight`)[o * v.length + i]! * value, get(`${prefix}.bias`)[o]!));
    const sigmoid = (v: number): number => 1 / (1 + Math.exp(-v));

    const xData = Float64Array.from(randomArray(n * cin * h * w));
    const x: Map4 = { c: cin, data: xData };
    const a = conv(bnRelu(x), get('conv1_1x1.conv.weight'), null, 4 * g, 1, 1, 0, 1);
    const t = conv(bnRelu(a), get('conv2_3x3.conv.weight'), null, g, 3, 4, 1, 1);
    const u3 = conv(bnRelu(t), get('conv_3x3.conv.weight'), null, g, 3, g, 1, 1);
    const u5 = conv(bnRelu(t), get('conv_5x5.conv.weight'), null, g, 3, g, 2, 2);
    const s = contextPool(t, 'global_forget_context');
    const p3 = contextPool(u3, 'global_context3x3');
    const p5 = contextPool(u5, 'global_context5x5');
    const expectedOut = new Float64Array(n * (cin + g) * h * w);
    for (let img = 0; img < n; img += 1) {
      const gate = dense(dense(s[img]!, 'fc1', g / 2).map((v) => Math.tanh(v * bnScale)), 'fc2', g).map(sigmoid);
      const z = dense([...p3[img]!, ...p5[img]!], 'fcall', g).map((v) => Math.tanh(v * bnScale));
      const w3 = dense(z, 'fc3x3', g);
      const w5 = dense(z, 'fc5x5', g);
      for (let ch = 0; ch < cin; ch += 1) for (let q = 0; q < h * w; q += 1) {
        expectedOut[(img * (cin + g) + ch) * h * w + q] = xData[(img * cin + ch) * h * w + q]!;
      }
      for (let ch = 0; ch < g; ch += 1) {
        const e3 = Math.exp(w3[ch]!);
        const e5 = Math.exp(w5[ch]!);
        const fused = (e3 * p3[img]![ch]! + e5 * p5[img]![ch]!) / (e3 + e5);
        for (let q = 0; q < h * w; q += 1) {
          expectedOut[(img * (cin + g) + cin + ch) * h * w + q] = t.data[(img * g + ch) * h * w + q]! * gate[ch]! + fused;
        }
      }
    }
    tidy(() => {
      const out = module.forward(tensor(Float32Array.from(xData), [n, cin, h, w]));
      expect(out.shape).toEqual([n, cin + g, h, w]);
      expectClose(out.toFloat32Array(), expectedOut, { rtol: 1e-4, atol: 1e-5, label: 'SMG forward' });
    });
    module.dispose();
  });

  it('runs one forward/backward with three stages, gradients reaching every parameter', () => {
    const model = createModel('hcgnet_a1', { numClasses: 5, imageSize: 8, auxiliary: true });
    tidy(() => {
      const out = model.forward(randomImages(2, 3, 8));
      expect(out.features.map((f) => f.shape)).toEqual([[2, 414], [2, 414], [2, 414]]);
      expect(out.logits.map((l) => l.shape)).toEqual([[2, 5], [2, 5], [2, 5]]);
      const labels = Int32Array.from([1, 3]);
      const loss = out.logits.map((logit) => F.crossEntropy(logit, labels)).reduce((a, b) => F.add(a, b));
      expect(Number.isFinite(loss.item())).toBe(true);
      loss.backward();
    });
    const missing = model.namedParameters().filter(([, p]) => !p.grad).map(([name]) => name);
    expect(missing).toEqual([]);
    for (const [name, p] of model.namedParameters()) {
      expect(p.grad!.toFloat32Array().every(Number.isFinite), name).toBe(true);
    }
    // Spot checks that gradients are not all zero in the gates and the dilated branch.
    for (const name of ['backbone.features.HybridBlock2.SMG1.conv_5x5.conv.weight', 'backbone.features.Transition1.fc2.weight',
      'auxiliary_classifier.block_extractor1.1.fc3x3.weight', 'auxiliary_classifier.block_extractor2.0.SMG8.fc1.weight']) {
      const grad = model.getParameter(name)!.grad!.toFloat32Array();
      expect(grad.some((v) => v !== 0), name).toBe(true);
    }
    model.dispose();
  });

  it('accepts 1-channel 28×28 inputs (Fashion-MNIST), plain model', () => {
    const model = createModel('hcgnet_a1', { numClasses: 10, inChannels: 1, imageSize: 28 });
    expect(countParameters(model)).toBe(expected([12, 24, 36], 1, 10, false).total);
    tidy(() => {
      const out = model.forward(randomImages(2, 1, 28));
      expect(out.features.map((f) => f.shape)).toEqual([[2, 414]]);
      expect(out.logits.map((l) => l.shape)).toEqual([[2, 10]]);
      expect(out.logits[0]!.toFloat32Array().every(Number.isFinite)).toBe(true);
    });
    model.dispose();
  });
});
