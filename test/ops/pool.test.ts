// 2-D pooling: forward and backward vs the float64 reference, first- and second-order finite
// differences, NaN/−inf/tie semantics, determinism, argmax-index memory, bad input.
// Tolerances: avg/adaptive forward and backward rtol 1e-5 (float32 window sums), max pooling
// values exact (it copies them), max backward 1e-6 (overlapping windows add up in float32);
// gradcheck see gradcheck.ts. Max-pool finite differences use inputs
// whose values are at least 0.05 apart, so the ±0.01 perturbations never change an argmax.
import { describe, expect, it } from 'vitest';
import { F, Tensor, grad, memory, noGrad, tensor, tidy } from '../../src/index.js';
import { native } from '../../src/native/index.js';
import { maxPoolIndexCounters } from '../../src/ops/pool.js';
import {
  poolOutputSize, referenceAdaptiveAvgPool, referenceAdaptiveAvgPoolBackward, referenceAvgPool, referenceAvgPoolBackward,
  referenceMaxPool, referenceMaxPoolBackward, type PoolConfig,
} from '../reference/pool_reference.js';
import { gradcheck, gradgradcheck } from '../helpers/gradcheck.js';
import { expectClose, randomArray, randomTensor } from '../helpers/random.js';

interface Case {
  shape: number[];
  kernel: number | [number, number];
  stride?: number | [number, number];
  padding?: number | [number, number];
}

const cases: Case[] = [
  { shape: [2, 3, 8, 8], kernel: 2 },
  { shape: [1, 2, 5, 7], kernel: 3, stride: 1, padding: 1 },
  { shape: [2, 1, 7, 6], kernel: 3, stride: 2, padding: 1 },
  { shape: [1, 2, 6, 9], kernel: [2, 3], stride: [1, 2], padding: [1, 1] },
  { shape: [3, 5, 5], kernel: 2, stride: 1 }, // [C, H, W]
  { shape: [2, 2, 4, 6], kernel: [4, 6] }, // the whole plane
  { shape: [1, 1, 9, 4], kernel: [4, 2], stride: [3, 3], padding: [2, 1] },
  { shape: [32, 16, 16, 16], kernel: 2 },
];

const pair = (value: number | [number, number]): [number, number] => (typeof value === 'number' ? [value, value] : value);

function configOf(c: Case): PoolConfig {
  const kernel = pair(c.kernel);
  return {
    planes: c.shape.slice(0, -2).reduce((p, e) => p * e, 1),
    height: c.shape[c.shape.length - 2]!,
    width: c.shape[c.shape.length - 1]!,
    kernel,
    stride: c.stride === undefined ? kernel : pair(c.stride),
    padding: pair(c.padding ?? 0),
  };
}

function outShapeOf(c: Case): number[] {
  return [...c.shape.slice(0, -2), ...poolOutputSize(configOf(c))];
}

/** Distinct positive values at least 0.05 apart (so are their squares), in random order: no near-ties. */
function spacedTensor(shape: number[], options: { requiresGrad?: boolean } = {}): Tensor {
  const size = shape.reduce((p, e) => p * e, 1);
  const values = Float32Array.from({ length: size }, (_, i) => 0.5 + i * 0.05);
  for (let i = size - 1; i > 0; i -= 1) {
    const j = Math.floor(Math.random() * (i + 1));
    [values[i], values[j]] = [values[j]!, values[i]!];
  }
  return tensor(values, shape, options);
}

describe('avgPool2d', () => {
  it('forward and backward match the float64 reference (count_include_pad)', () => {
    for (const c of cases) {
      const config = configOf(c);
      const x = randomTensor(c.shape, { requiresGrad: true, scale: 2 });
      const out = F.avgPool2d(x, c.kernel, c.stride, c.padding);
      expect(out.shape).toEqual(outShapeOf(c));
      expectClose(out.toFloat32Array(), referenceAvgPool(x.toFloat32Array(), config), { rtol: 1e-5, atol: 1e-6, label: `avg ${JSON.stringify(c)}` });
      const dy = randomTensor(out.shape as number[]);
      const [dx] = grad(out, [x], { gradOutputs: [dy] });
      expectClose(dx!.toFloat32Array(), referenceAvgPoolBackward(dy.toFloat32Array(), config), { rtol: 1e-5, atol: 1e-6, label: `avg backward ${JSON.stringify(c)}` });
    }
  });

  it('gradcheck and gradgradcheck', () => {
    for (const c of cases.slice(0, 7)) {
      const x = randomTensor(c.shape, { requiresGrad: true });
      gradcheck((t) => F.avgPool2d(t, c.kernel, c.stride, c.padding), [x]);
      gradgradcheck((t) => F.avgPool2d(t, c.kernel, c.stride, c.padding), [x]);
      gradgradcheck((t) => F.square(F.avgPool2d(F.square(t), c.kernel, c.stride, c.padding)), [x]);
    }
  });
});

describe('maxPool2d', () => {
  it('forward and backward match the reference (values exact, gradient to the argmax)', () => {
    for (const c of cases) {
      const config = configOf(c);
      const x = randomTensor(c.shape, { requiresGrad: true, scale: 2 });
      const out = F.maxPool2d(x, c.kernel, c.stride, c.padding);
      expect(out.shape).toEqual(outShapeOf(c));
      const ref = referenceMaxPool(x.toFloat32Array(), config);
      expect(Array.from(out.toFloat32Array())).toEqual(Array.from(ref.values, Math.fround));
      const dy = randomTensor(out.shape as number[]);
      const [dx] = grad(out, [x], { gradOutputs: [dy] });
      expectClose(dx!.toFloat32Array(), referenceMaxPoolBackward(dy.toFloat32Array(), ref.indices, config), { rtol: 1e-6, atol: 1e-6, label: `max backward ${JSON.stringify(c)}` });
    }
  });

  it('pads with −inf, propagates NaN and sends tied gradients to the first maximum', () => {
    const negative = tensor(Float32Array.from({ length: 9 }, () => -1 - Math.random()), [1, 1, 3, 3]);
    const padded = F.maxPool2d(negative, 3, 1, 1);
    expect(Array.from(padded.toFloat32Array()).every((v) => v < -1)).toBe(true);
    const withNaN = tensor([1, Number.NaN, 3, 4, 5, 6, 7, 8], [1, 1, 2, 4]);
    expect(Array.from(F.maxPool2d(withNaN, 2).toFloat32Array()).map((v) => Number.isNaN(v))).toEqual([true, false]);
    // As in PyTorch, a later NaN replaces an earlier one: the gradient goes to the last NaN.
    const twoNaN = tensor([Number.NaN, 1, Number.NaN, 4], [1, 1, 1, 4], { requiresGrad: true });
    const [gNaN] = grad(F.maxPool2d(twoNaN, [1, 4]), [twoNaN], { gradOutputs: [tensor([1], [1, 1, 1, 1])] });
    expect(Array.from(gNaN!.toFloat32Array())).toEqual([0, 0, 1, 0]);
    const tied = tensor([2, 2, 2, 2], [1, 1, 2, 2], { requiresGrad: true });
    const [g] = grad(F.maxPool2d(tied, 2), [tied], { gradOutputs: [tensor([5], [1, 1, 1, 1])] });
    expect(Array.from(g!.toFloat32Array())).toEqual([5, 0, 0, 0]);
  });

  it('gradcheck and gradgradcheck (values spaced so no argmax changes)', () => {
    for (const c of cases.slice(0, 7)) {
      const x = spacedTensor(c.shape, { requiresGrad: true });
      gradcheck((t) => F.maxPool2d(t, c.kernel, c.stride, c.padding), [x], { epsilon: 1e-2 });
      gradgradcheck((t) => F.maxPool2d(t, c.kernel, c.stride, c.padding), [x]);
      gradgradcheck((t) => F.square(F.maxPool2d(F.mul(t, t), c.kernel, c.stride, c.padding)), [x]);
    }
  });

  it('third order works too (scatter and gather alternate)', () => {
    const x = spacedTensor([1, 2, 4, 4], { requiresGrad: true });
    const y = F.sum(F.pow(F.maxPool2d(x, 2), 3));
    const [g1] = grad(y, [x], { createGraph: true });
    const [g2] = grad(F.sum(F.square(g1!)), [x], { createGraph: true });
    const [g3] = grad(F.sum(g2!), [x]);
    // y = Σ m³ over the maxima m: g1 = 3m² at the argmax, Σ g1² = 9 Σ m⁴, its gradient 36 m³,
    // and the gradient of Σ 36 m³ is 108 m² (at the argmax, 0 elsewhere).
    const values = x.toFloat32Array();
    const maxima = referenceMaxPool(values, { planes: 2, height: 4, width: 4, kernel: [2, 2], stride: [2, 2], padding: [0, 0] });
    const expected = new Float64Array(32);
    maxima.indices.forEach((index, o) => {
      const plane = Math.floor(o / 4);
      expected[plane * 16 + index] = 108 * maxima.values[o]! ** 2;
    });
    expectClose(g3!.toFloat32Array(), expected, { rtol: 1e-5, atol: 1e-5 });
  });
});

describe('adaptiveAvgPool2d', () => {
  const adaptiveCases: [number[], [number, number]][] = [
    [[128, 64, 8, 8], [1, 1]], // global average pooling (ResNet head)
    [[2, 3, 7, 10], [3, 5]],
    [[1, 2, 4, 5], [9, 9]], // larger than the input: bins overlap
    [[3, 6, 6], [4, 4]],
    [[2, 1, 5, 5], [5, 5]],
    [[1, 1, 1, 1], [1, 1]],
  ];

  it('forward and backward match the reference (PyTorch bins)', () => {
    for (const [shape, size] of adaptiveCases) {
      const planes = shape.slice(0, -2).reduce((p, e) => p * e, 1);
      const [height, width] = shape.slice(-2) as [number, number];
      const x = randomTensor(shape, { requiresGrad: true, scale: 2, offset: 0.5 });
      const out = F.adaptiveAvgPool2d(x, size);
      expect(out.shape).toEqual([...shape.slice(0, -2), ...size]);
      expectClose(out.toFloat32Array(), referenceAdaptiveAvgPool(x.toFloat32Array(), planes, height, width, ...size), { rtol: 1e-5, atol: 1e-6, label: `adaptive ${JSON.stringify([shape, size])}` });
      const dy = randomTensor(out.shape as number[]);
      const [dx] = grad(out, [x], { gradOutputs: [dy] });
      expectClose(dx!.toFloat32Array(), referenceAdaptiveAvgPoolBackward(dy.toFloat32Array(), planes, height, width, ...size), { rtol: 1e-5, atol: 1e-7, label: `adaptive backward ${JSON.stringify([shape, size])}` });
    }
  });

  it('gradcheck and gradgradcheck', () => {
    for (const [shape, size] of adaptiveCases.slice(1)) {
      const x = randomTensor(shape, { requiresGrad: true });
      gradcheck((t) => F.adaptiveAvgPool2d(t, size), [x]);
      gradgradcheck((t) => F.square(F.adaptiveAvgPool2d(F.square(t), size)), [x]);
    }
    const x = randomTensor([2, 3, 4, 4], { requiresGrad: true });
    gradgradcheck((t) => F.square(F.adaptiveAvgPool2d(F.square(t), 1)), [x]);
  });
});

describe('pooling determinism and memory', () => {
  it('gives the same bits twice', () => {
    const data = randomArray(64 * 16 * 16 * 16, 3);
    const run = () => {
      const x = tensor(data, [64, 16, 16, 16], { requiresGrad: true });
      const outs = [F.avgPool2d(x, 3, 2, 1), F.maxPool2d(x, 3, 2, 1), F.adaptiveAvgPool2d(x, 1), F.adaptiveAvgPool2d(x, [5, 7])];
      const loss = outs.reduce((total, out) => F.add(total, F.sum(F.square(out))), F.sum(x));
      const [g] = grad(loss, [x]);
      return [...outs.map((out) => out.toFloat32Array()), g!.toFloat32Array()];
    };
    const first = run();
    const second = run();
    first.forEach((values, index) => expect(Buffer.from(second[index]!.buffer).equals(Buffer.from(values.buffer))).toBe(true));
  });

  it('frees the max-pool argmax indices after backward or with the graph, and allocates none without one', () => {
    const x = randomTensor([4, 3, 8, 8], { requiresGrad: true });
    const before = memory();
    const indicesBefore = maxPoolIndexCounters();
    for (let i = 0; i < 3; i += 1) {
      const y = F.maxPool2d(x, 2);
      const loss = F.sum(y);
      loss.backward();
      loss.dispose();
      y.dispose();
      x.grad?.dispose();
      x.grad = null;
      noGrad(() => F.maxPool2d(x, 3, 1, 1)).dispose();
      tidy(() => {
        F.sum(F.square(F.maxPool2d(F.mul(x, 2), 2))).backward();
      });
      x.grad?.dispose();
      x.grad = null;
      // A recorded forward that is never differentiated: disposing the output frees the graph
      // node and with it the indices.
      F.maxPool2d(x, 3, 2, 1).dispose();
      tidy(() => F.sum(F.avgPool2d(F.maxPool2d(x, 2), 2))).dispose();
    }
    const after = memory();
    expect(after.nativeLiveBytes).toBe(before.nativeLiveBytes);
    expect(after.liveTensors).toBe(before.liveTensors);
    expect(maxPoolIndexCounters()).toEqual(indicesBefore);
  });

  it('second order: the indices shared by the forward, scatter and gather nodes are freed with the last of them', () => {
    const x = spacedTensor([4, 3, 8, 8], { requiresGrad: true });
    const indicesBefore = maxPoolIndexCounters();
    for (let i = 0; i < 3; i += 1) {
      tidy(() => {
        const out = F.maxPool2d(x, 2);
        const [gx] = grad(F.sum(F.square(out)), [x], { createGraph: true });
        expect(maxPoolIndexCounters().liveBuffers).toBe(indicesBefore.liveBuffers + 1);
        F.sum(F.square(gx!)).backward(); // traverses the forward and scatter nodes again
      });
      x.grad?.dispose();
      x.grad = null;
      expect(maxPoolIndexCounters()).toEqual(indicesBefore);
    }
    const before = memory();
    tidy(() => {
      const [gx] = grad(F.sum(F.square(F.maxPool2d(x, 3, 1, 1))), [x], { createGraph: true });
      const [ggx] = grad(F.sum(F.square(gx!)), [x], { createGraph: true });
      F.sum(F.mul(ggx!, gx!)).backward();
    });
    x.grad?.dispose();
    x.grad = null;
    const after = memory();
    expect(after.nativeLiveBytes).toBe(before.nativeLiveBytes);
    expect(after.liveTensors).toBe(before.liveTensors);
    expect(maxPoolIndexCounters()).toEqual(indicesBefore);
  });

  it('a second backward through a released max-pool node fails with a clear error', () => {
    const x = randomTensor([1, 1, 4, 4], { requiresGrad: true });
    const y = F.sum(F.maxPool2d(x, 2));
    y.backward();
    expect(() => y.backward()).toThrow(/maxPool2d backward: the argmax indices of this maxPool2d were already freed/);
  });
});

describe('pooling bad input', () => {
  it('rejects wrong ranks, bad kernels, excess padding and disposed tensors with clear errors', () => {
    const x = randomTensor([1, 2, 5, 5]);
    expect(() => F.avgPool2d(randomTensor([5, 5]), 2)).toThrow(/avgPool2d: argument 'x' must be 4-D \(\[N, C, H, W\]\) or 3-D/);
    expect(() => F.maxPool2d(randomTensor([1, 1, 1, 5, 5]), 2)).toThrow(/maxPool2d: argument 'x' must be 4-D/);
    expect(() => F.avgPool2d(x, 6)).toThrow(/avgPool2d: kernel \[6, 6\] is larger than the padded input \(input \[5, 5\]/);
    expect(() => F.maxPool2d(x, [2, 8], 1, [0, 1])).toThrow(/maxPool2d: kernel \[2, 8\] is larger than the padded input/);
    expect(() => F.avgPool2d(x, 2.5)).toThrow(/avgPool2d: kernel must be an integer >= 1/);
    expect(() => F.maxPool2d(x, 0)).toThrow(/maxPool2d: kernel must be an integer >= 1/);
    expect(() => F.maxPool2d(x, 2, 0)).toThrow(/maxPool2d: stride must be an integer >= 1/);
    expect(() => F.maxPool2d(x, 2, 1, -1)).toThrow(/maxPool2d: padding must be an integer >= 0/);
    expect(() => F.maxPool2d(x, 3, 1, 2)).toThrow(/maxPool2d: padding must be at most half the kernel size, got padding \[2, 2\] for kernel \[3, 3\]/);
    expect(() => F.avgPool2d(x, [2, 2], [1, 1], [1, 2])).toThrow(/avgPool2d: padding must be at most half the kernel size/);
    expect(() => F.avgPool2d(x, [2, 2, 2] as never)).toThrow(/avgPool2d: kernel must be an integer >= 1 or a pair/);
    expect(() => F.adaptiveAvgPool2d(x, 0)).toThrow(/adaptiveAvgPool2d: outputSize must be an integer >= 1/);
    expect(() => F.adaptiveAvgPool2d(x, [2, 1.5] as never)).toThrow(/adaptiveAvgPool2d: outputSize/);
    expect(() => F.adaptiveAvgPool2d(randomTensor([4]), 1)).toThrow(/adaptiveAvgPool2d: argument 'x' must be 4-D/);
    expect(() => F.maxPool2d(null as never, 2)).toThrow(/maxPool2d: argument 'x' must be a Tensor/);
    const disposed = randomTensor([1, 1, 4, 4]);
    disposed.dispose();
    expect(() => F.avgPool2d(disposed, 2)).toThrow(/avgPool2d.*was disposed/);
  });

  it('the native layer re-validates its arguments (sizes, geometry, indices) and never crashes', () => {
    const addon = native();
    const h = (t: Tensor) => t.storage.handle;
    const x = randomTensor([2, 4, 4]);
    const out = Tensor.empty([2, 2, 2]);
    const small = Tensor.empty([3]);
    const params = [2, 4, 4, 2, 2, 2, 2, 0, 0];
    expect(() => addon.avgPool2dForward(h(x), h(small), params)).toThrow(/avgPool2dForward: argument 'out' holds 3 floats but the op needs 8/);
    expect(() => addon.avgPool2dForward(h(x), h(out), [2, 4, 4, 2, 2, 2, 2, 0])).toThrow(/avgPool2dForward: argument 'params' must be/);
    expect(() => addon.avgPool2dForward(h(x), h(out), [2, 4, 4, 2, 2, 0, 2, 0, 0])).toThrow(/stride must be >= 1/);
    expect(() => addon.avgPool2dForward(h(x), h(out), [2, 4, 4, 2, 2, 2, 2, 2, 0])).toThrow(/padding must be at most half/);
    expect(() => addon.avgPool2dForward(h(x), h(out), [2, 4, 4, 9, 2, 2, 2, 0, 0])).toThrow(/kernel larger than the padded input/);
    expect(() => addon.maxPool2dForward(h(x), h(out), h(small), params)).toThrow(/argument 'indices'/);
    expect(() => addon.adaptiveAvgPool2dForward(h(x), h(out), [2, 4, 4, 0, 2])).toThrow(/output size must be >= 1/);
    expect(() => addon.adaptiveAvgPool2dForward(h(x), h(out), [2, 4, 4, 3, 3])).toThrow(/argument 'out' holds 8 floats but the op needs 18/);
    expect(() => addon.avgPool2dForward(h(x), h(out), [1e9, 1e9, 4, 2, 2, 2, 2, 0, 0])).toThrow(/too large|not supported/);
    // Garbage argmax indices: rejected, never used to address memory.
    const indices = addon.alloc('cpu', 8 * 4);
    try {
      addon.upload(indices, Int32Array.from([0, 1, 2, 3, 4, 5, 99, -1]), 0);
      expect(() => addon.maxPool2dBackward(h(out), indices, h(x), params)).toThrow(/maxPool2dBackward: argmax indices out of range/);
      expect(() => addon.maxPool2dGather(h(x), indices, h(out), params)).toThrow(/maxPool2dGather: argmax indices out of range/);
    } finally {
      addon.free(indices);
    }
    expect(() => addon.maxPool2dBackward(h(out), indices, h(x), params)).toThrow(/disposed/);
  });
});
