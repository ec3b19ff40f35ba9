// Elementwise ops: forward vs float64 references (broadcasting), gradients by finite differences
// (first and second order), bad input. Tolerances: forward rtol 1e-6 (one float32 rounding),
// transcendental 2e-6; gradients see gradcheck.ts.
import { describe, expect, it } from 'vitest';
import { F, Tensor, engineInfo, tensor } from '../../src/index.js';
import { referenceBinary } from '../reference/broadcast_reference.js';
import { gradcheck, gradgradcheck } from '../helpers/gradcheck.js';
import { expectClose, randomAwayFromZeroTensor, randomPositiveTensor, randomTensor } from '../helpers/random.js';
import { forEachDevice } from '../helpers/devices.js';

const shapePairs: [number[], number[]][] = [
  [[7], [7]],
  [[3, 5], [5]],
  [[4, 1, 3], [1, 6, 1]],
  [[2, 3, 4, 5], [3, 1, 5]],
  [[1], [9, 2]],
  [[130, 33], [130, 1]],
  [[], [2, 3]],
];

const binaryOps = [
  ['add', F.add, (x: number, y: number) => x + y],
  ['sub', F.sub, (x: number, y: number) => x - y],
  ['mul', F.mul, (x: number, y: number) => x * y],
  ['div', F.div, (x: number, y: number) => x / y],
  ['maximum', F.maximum, (x: number, y: number) => Math.max(x, y)],
  ['minimum', F.minimum, (x: number, y: number) => Math.min(x, y)],
] as const;

describe('binary elementwise ops', () => {
  for (const [name, op, reference] of binaryOps) {
    it(`${name} gradients (first and second order) pass finite differences`, () => {
      const kinked = name === 'maximum' || name === 'minimum';
      const pairs: [number[], number[]][] = kinked ? [[[3, 4], [3, 4]], [[2, 5], [2, 5]]] : [[[3, 4], [4]], [[2, 1, 3], [2, 5, 1]]];
      for (const [aShape, bShape] of pairs) {
        const a = randomTensor(aShape, { requiresGrad: true });
        // Keep max/min away from ties (finite differences straddling a kink are meaningless).
        const b = name === 'div'
          ? randomPositiveTensor(bShape, { requiresGrad: true })
          : kinked
            ? tensor(a.toFloat32Array().map((v) => v + (Math.random() < 0.5 ? -1 : 1) * (0.1 + 0.9 * Math.random())), bShape, { requiresGrad: true })
            : randomTensor(bShape, { requiresGrad: true });
        const fn = (x: typeof a, y: typeof b) => (op as (p: typeof a, q: typeof b) => typeof a)(x, y);
        gradcheck(fn, [a, b]);
        if (name !== 'maximum' && name !== 'minimum') gradgradcheck(fn, [a, b]);
      }
    });
  }

  it('rejects incompatible shapes, non-tensors and disposed tensors with clear errors', () => {
    const a = randomTensor([3, 4]);
    const b = randomTensor([5]);
    expect(() => F.add(a, b)).toThrow(/add: shapes \[3, 4\] and \[5\] cannot be broadcast/);
    expect(() => F.mul(a, 'x' as never)).toThrow(/mul: argument 'b' must be a Tensor/);
    expect(() => F.add(null as never, a)).toThrow(/add: argument 'a' must be a Tensor/);
    const c = randomTensor([3, 4]);
    c.dispose();
    expect(() => F.add(a, c)).toThrow(/was disposed/);
    expect(() => F.div(a, 0)).toThrow(/division by the scalar 0/);
  });
});

const unaryOps = [
  ['neg', F.neg, (x: number) => -x, 'any'],
  ['exp', F.exp, Math.exp, 'any'],
  ['log', F.log, Math.log, 'positive'],
  ['sqrt', F.sqrt, Math.sqrt, 'positive'],
  ['rsqrt', F.rsqrt, (x: number) => 1 / Math.sqrt(x), 'positive'],
  ['reciprocal', F.reciprocal, (x: number) => 1 / x, 'positive'],
  ['square', F.square, (x: number) => x * x, 'any'],
  ['tanh', F.tanh, Math.tanh, 'any'],
  ['sigmoid', F.sigmoid, (x: number) => 1 / (1 + Math.exp(-x)), 'any'],
  ['relu', F.relu, (x: number) => Math.max(0, x), 'any'],
  ['abs', F.abs, Math.abs, 'any'],
] as const;

// Forward values on every device (gradients by finite differences: CPU, below).
forEachDevice('elementwise forward', (device) => {
  for (const [name, op, reference] of binaryOps) {
    it(`${name} matches the float64 reference with broadcasting`, () => {
      for (const [aShape, bShape] of shapePairs) {
        const a = randomTensor(aShape, { device });
        const b = name === 'div' ? randomPositiveTensor(bShape, { device }) : randomTensor(bShape, { device });
        const out = (op as (x: typeof a, y: typeof b) => typeof a)(a, b);
        const expected = referenceBinary(a.toFloat32Array(), aShape, b.toFloat32Array(), bShape, reference);
        expect(out.shape).toEqual(expected.shape);
        expect(out.device).toBe(device);
        expectClose(out.toFloat32Array(), expected.values, { rtol: 1e-6, atol: 1e-7, label: `${name} ${JSON.stringify([aShape, bShape])}` });
      }
    });
  }

  it('scalar forms match', () => {
    const a = randomTensor([4, 5], { device });
    const values = a.toFloat32Array();
    expectClose(F.add(a, 2.5).toFloat32Array(), Array.from(values, (v) => v + 2.5), { rtol: 1e-6 });
    expectClose(F.mul(a, -3).toFloat32Array(), Array.from(values, (v) => v * -3), { rtol: 1e-6 });
    expectClose(F.sub(1, a).toFloat32Array(), Array.from(values, (v) => 1 - v), { rtol: 1e-6 });
    expectClose(F.div(a, 4).toFloat32Array(), Array.from(values, (v) => v / 4), { rtol: 1e-6 });
  });

  for (const [name, op, reference, domain] of unaryOps) {
    it(`${name} matches the float64 reference`, () => {
      for (const shape of [[1], [17], [3, 5, 7]]) {
        const x = domain === 'positive' ? randomPositiveTensor(shape, { device }) : randomTensor(shape, { scale: 3, device });
        expectClose(op(x).toFloat32Array(), Array.from(x.toFloat32Array(), reference), { rtol: 2e-6, atol: 1e-7, label: name });
      }
    });
  }

  it('sigmoid saturates without NaN', () => {
    const out = F.sigmoid(tensor([-1000, 1000, 0], [3], { device })).toFloat32Array();
    expect(Array.from(out)).toEqual([0, 1, 0.5]);
  });

  it('pow with a scalar exponent', () => {
    const x = randomPositiveTensor([5, 2], { device });
    expectClose(F.pow(x, 3).toFloat32Array(), Array.from(x.toFloat32Array(), (v) => v ** 3), { rtol: 2e-6 });
  });

  it('countNonFinite finds NaN and Infinity', () => {
    expect(F.countNonFinite(tensor([1, Number.NaN, Number.POSITIVE_INFINITY, -2], [4], { device }))).toBe(2);
  });
});

// Runs without a GPU: zero-element 'cuda' tensors need no device memory (native/binding/args.h).
describe('elementwise ops and devices', () => {
  it('inputs on different devices are an Error, never a silent copy', () => {
    const onCpu = tensor([], [0]);
    const onCuda = Tensor.empty([0], 'cuda');
    expect(() => F.add(onCpu, onCuda)).toThrow(/add: expected all tensors on the same device, got 'cpu' and 'cuda'/);
    expect(() => F.maximum(onCuda, onCpu)).toThrow(/same device/);
  });

  it('inputs all on cuda reach the CUDA entry point (the stub without a CUDA build)', () => {
    const a = Tensor.empty([0], 'cuda');
    const b = Tensor.empty([0], 'cuda');
    if (!engineInfo().cudaCompiled) expect(() => F.add(a, b)).toThrow(/lmcl was built without CUDA/);
    else expect(() => F.add(a, b).dispose()).not.toThrow(/built without CUDA/);
  });
});

describe('unary elementwise ops', () => {
  for (const [name, op, reference, domain] of unaryOps) {
    it(`${name}: gradient and gradient of gradient`, () => {
      const x = domain === 'positive'
        ? randomPositiveTensor([4, 3], { requiresGrad: true })
        : name === 'relu' || name === 'abs'
          ? randomAwayFromZeroTensor([4, 3], { requiresGrad: true })
          : randomTensor([4, 3], { requiresGrad: true, scale: 2 });
      gradcheck(op, [x], { epsilon: name === 'relu' || name === 'abs' ? 1e-3 : 1e-2 });
      if (name !== 'relu' && name !== 'abs') gradgradcheck(op, [x]);
    });
  }

  it('pow with a scalar exponent: gradients', () => {
    const x = randomPositiveTensor([5, 2], { requiresGrad: true });
    gradcheck((t) => F.pow(t, 1.5), [x]);
    gradgradcheck((t) => F.pow(t, 3), [x]);
  });

  it('relu second order: the gradient of the gradient flows through the mask', () => {
    const x = randomAwayFromZeroTensor([6, 4], { requiresGrad: true });
    const w = randomTensor([6, 4], { requiresGrad: true });
    gradgradcheck((a, b) => F.mul(F.relu(a), b), [x, w]);
  });

  it('expand broadcasts and its gradient sums back', () => {
    const x = randomTensor([3, 1], { requiresGrad: true });
    const out = F.expand(x, [2, 3, 4]);
    expect(out.shape).toEqual([2, 3, 4]);
    gradcheck((t) => F.expand(t, [2, 3, 4]), [x]);
    expect(() => F.expand(x, [2, 2])).toThrow(/expand/);
  });
});
