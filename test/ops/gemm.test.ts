// matmul and linear (src/ops/gemm.ts): forward and gradients against the float64 GEMM reference
// (test/reference/gemm_reference.ts), finite-difference gradcheck / gradgradcheck
// (test/helpers/gradcheck.ts: relative tolerance 2e-2 first order, 3e-2 second order), a
// Hessian-vector product through a small MLP, bad input, determinism and no leaked tensors.
// Reference tolerance per element: |got − ref| ≤ 1e-5·√k·(1 + |ref|), k = length of the dot
// products (float32 accumulation error grows like √k).
import { describe, expect, it } from 'vitest';
import { F, Tensor, grad, memory, noGrad, tensor, tidy } from '../../src/index.js';
import { gradcheck, gradgradcheck } from '../helpers/gradcheck.js';
import { randomArray, randomTensor } from '../helpers/random.js';
import { gemmReference } from '../reference/gemm_reference.js';

function expectWithin(actual: Float32Array, expected: Float64Array, k: number, label: string): void {
  expect(actual.length, label).toBe(expected.length);
  const scale = 1e-5 * Math.sqrt(Math.max(1, k));
  for (let i = 0; i < expected.length; i++) {
    const allowed = scale * (1 + Math.abs(expected[i]!));
    if (!(Math.abs(actual[i]! - expected[i]!) <= allowed)) {
      expect.fail(`${label}: element ${i} is ${actual[i]}, expected ${expected[i]} (allowed error ${allowed.toExponential(2)})`);
    }
  }
}

/** op(A)·op(B) in float64 for dense row-major A (rows×cols as stored) and B. */
function reference(a: Float32Array, b: Float32Array, m: number, n: number, k: number, transposeA = false, transposeB = false): Float64Array {
  return gemmReference(a, b, new Float32Array(m * n), transposeA, transposeB, m, n, k, 1, 0);
}

const size = (shape: readonly number[]): number => shape.reduce((p, e) => p * e, 1);

// [aShape, bShape, expected output shape]
const matmulCases: [number[], number[], number[]][] = [
  [[1, 1], [1, 1], [1, 1]],
  [[3, 5], [5, 4], [3, 4]],
  [[17, 33], [33, 9], [17, 9]],
  [[64, 70], [70, 65], [64, 65]],
  [[7], [7], []],
  [[6, 4], [4], [6]],
  [[4], [4, 5], [5]],
  [[2, 3, 4], [4, 5], [2, 3, 5]],
  [[2, 3, 4], [4], [2, 3]],
  [[1, 200], [200, 3], [1, 3]],
];

describe('matmul', () => {
  it('matches the float64 reference, forward and both gradients', () => {
    for (const [aShape, bShape, outShape] of matmulCases) {
      const label = `${JSON.stringify(aShape)} x ${JSON.stringify(bShape)}`;
      const a = randomTensor(aShape, { requiresGrad: true });
      const b = randomTensor(bShape, { requiresGrad: true });
      const out = F.matmul(a, b);
      expect(out.shape, label).toEqual(outShape);
      const k = aShape[aShape.length - 1]!;
      const m = size(aShape) / k;
      const n = bShape.length === 2 ? bShape[1]! : 1;
      const av = a.toFloat32Array();
      const bv = b.toFloat32Array();
      expectWithin(out.toFloat32Array(), reference(av, bv, m, n, k), k, `forward ${label}`);
      const g = randomTensor(outShape);
      F.sum(F.mul(out, g)).backward();
      const gv = g.toFloat32Array();
      // dA = G·Bᵀ (m×k), dB = Aᵀ·G (k×n)
      expectWithin(a.grad!.toFloat32Array(), reference(gv, bv, m, k, n, false, true), n, `dA ${label}`);
      expectWithin(b.grad!.toFloat32Array(), reference(av, gv, k, n, m, true, false), m, `dB ${label}`);
      expect(a.grad!.shape).toEqual(aShape);
      expect(b.grad!.shape).toEqual(bShape);
    }
  });

  it('gradcheck and gradgradcheck (2-D, vector and folded N-D forms)', () => {
    const shapes: [number[], number[]][] = [[[3, 4], [4, 5]], [[5], [5, 2]], [[3, 4], [4]], [[6], [6]], [[2, 3, 4], [4, 3]]];
    for (const [aShape, bShape] of shapes) {
      const a = randomTensor(aShape, { requiresGrad: true });
      const b = randomTensor(bShape, { requiresGrad: true });
      gradcheck(F.matmul, [a, b]);
      gradgradcheck(F.matmul, [a, b]);
      gradgradcheck((x, y) => F.tanh(F.matmul(x, y)), [a, b]);
    }
  });

  it('third order through a chain of products', () => {
    // f(A, B) = Σ tanh(A·B·A)·R exercises every transpose combination in the backward of the backward.
    const a = randomTensor([3, 3], { requiresGrad: true });
    const b = randomTensor([3, 3], { requiresGrad: true });
    gradgradcheck((x, y) => F.tanh(F.matmul(F.matmul(x, y), x)), [a, b]);
    const w = randomArray(9);
    gradgradcheck((x, y) => {
      const [gx] = grad(F.sum(F.mul(F.tanh(F.matmul(x, y)), tensor(w, [3, 3]))), [x], { createGraph: true });
      return F.matmul(gx!, y);
    }, [a, b]);
  });

  it('rejects bad input with clear errors', () => {
    const a = randomTensor([3, 4]);
    expect(() => F.matmul(a, randomTensor([5, 2]))).toThrow('matmul: shapes [3, 4] and [5, 2] cannot be multiplied (4 ≠ 5)');
    expect(() => F.matmul(a, randomTensor([2, 4, 5]))).toThrow(/matmul: batched products with a 3-D second argument are not supported/);
    expect(() => F.matmul(tensor([1], []), a)).toThrow(/matmul: both arguments must be at least 1-D/);
    expect(() => F.matmul(a, 3 as never)).toThrow(/matmul: argument 'b' must be a Tensor/);
    const gone = randomTensor([4, 2]);
    gone.dispose();
    expect(() => F.matmul(a, gone)).toThrow(/matmul \(argument 'b'\).*was disposed/);
  });
});

describe('linear', () => {
  const linearCases: [number[], number[], boolean][] = [
    [[5, 7], [3, 7], true],
    [[7], [4, 7], true],
    [[2, 3, 4, 6], [5, 6], true],
    [[33, 130], [70, 130], true],
    [[4, 9], [6, 9], false],
    [[1, 1], [1, 1], true],
  ];

  it('matches the float64 reference, forward and all gradients', () => {
    for (const [xShape, wShape, withBias] of linearCases) {
      const label = `${JSON.stringify(xShape)} · ${JSON.stringify(wShape)}ᵀ${withBias ? ' + b' : ''}`;
      const [out, inFeatures] = wShape as [number, number];
      const x = randomTensor(xShape, { requiresGrad: true });
      const w = randomTensor(wShape, { requiresGrad: true });
      const b = withBias ? randomTensor([out], { requiresGrad: true }) : null;
      const y = F.linear(x, w, b);
      expect(y.shape, label).toEqual([...xShape.slice(0, -1), out]);
      const rows = size(xShape) / inFeatures;
      const xv = x.toFloat32Array();
      const wv = w.toFloat32Array();
      const expected = reference(xv, wv, rows, out, inFeatures, false, true);
      if (b) {
        const bv = b.toFloat32Array();
        for (let i = 0; i < expected.length; i++) expected[i] += bv[i % out]!;
      }
      expectWithin(y.toFloat32Array(), expected, inFeatures + 1, `forward ${label}`);
      const g = randomTensor([...y.shape]);
      F.sum(F.mul(y, g)).backward();
      const gv = g.toFloat32Array();
      expectWithin(x.grad!.toFloat32Array(), reference(gv, wv, rows, inFeatures, out), out, `dx ${label}`);
      expectWithin(w.grad!.toFloat32Array(), reference(gv, xv, out, inFeatures, rows, true, false), rows, `dW ${label}`);
      if (b) {
        const db = new Float64Array(out);
        for (let i = 0; i < gv.length; i++) db[i % out] += gv[i]!;
        expectWithin(b.grad!.toFloat32Array(), db, rows, `db ${label}`);
      }
      expect(x.grad!.shape).toEqual(xShape);
    }
  });

  it('gradcheck and gradgradcheck through input, weight and bias', () => {
    for (const xShape of [[4, 5], [5], [2, 3, 5]]) {
      const x = randomTensor(xShape, { requiresGrad: true });
      const w = randomTensor([3, 5], { requiresGrad: true });
      const b = randomTensor([3], { requiresGrad: true });
      gradcheck(F.linear, [x, w, b]);
      gradgradcheck(F.linear, [x, w, b]);
      gradgradcheck((xi, wi, bi) => F.sigmoid(F.linear(xi, wi, bi)), [x, w, b]);
      gradgradcheck((xi, wi) => F.tanh(F.linear(xi, wi)), [x, w]);
    }
  });

  it('computes only the gradients that are needed, and nothing under noGrad', () => {
    const x = randomTensor([4, 5]);
    const w = randomTensor([3, 5], { requiresGrad: true });
    const b = randomTensor([3]);
    F.sum(F.linear(x, w, b)).backward();
    expect(x.grad).toBeNull();
    expect(b.grad).toBeNull();
    expect(w.grad!.shape).toEqual([3, 5]);
    expect(noGrad(() => F.linear(x, w, b)).requiresGrad).toBe(false);
  });

  it('Hessian-vector product through a two-layer MLP matches finite differences of the gradient', () => {
    const x = randomTensor([6, 5]);
    const r = randomTensor([6, 3]);
    const params = [randomTensor([4, 5], { requiresGrad: true }), randomTensor([4], { requiresGrad: true }), randomTensor([3, 4], { requiresGrad: true }), randomTensor([3], { requiresGrad: true })];
    const loss = (p: Tensor[]) => F.sum(F.mul(F.linear(F.tanh(F.linear(x, p[0]!, p[1]!)), p[2]!, p[3]!), r));
    const directions = params.map((p) => randomArray(p.size));
    const hv = tidy(() => {
      const g = grad(loss(params), params, { createGraph: true });
      const total = g.map((gi, i) => F.sum(F.mul(gi, tensor(directions[i]!, gi.shape)))).reduce((s, t) => F.add(s, t));
      return grad(total, params, { allowUnused: true }).map((h) => h.toFloat32Array());
    });
    // Central differences of the gradient along v, in float32 with ε = 1e-2 (error O(ε²)).
    const epsilon = 1e-2;
    const gradientAt = (scale: number) => tidy(() => {
      const shifted = params.map((p, i) => {
        const values = p.toFloat32Array().map((value, j) => value + scale * directions[i]![j]!);
        return tensor(values, p.shape, { requiresGrad: true });
      });
      return grad(loss(shifted), shifted).map((t) => t.toFloat32Array());
    });
    const plus = gradientAt(epsilon);
    const minus = gradientAt(-epsilon);
    hv.forEach((block, i) => {
      let peak = 1e-3;
      block.forEach((_, j) => { peak = Math.max(peak, Math.abs(plus[i]![j]! - minus[i]![j]!) / (2 * epsilon)); });
      block.forEach((value, j) => {
        const fd = (plus[i]![j]! - minus[i]![j]!) / (2 * epsilon);
        expect(Math.abs(value - fd), `H·v block ${i} element ${j}: ${value} vs ${fd}`).toBeLessThanOrEqual(2e-2 * peak);
      });
    });
  });

  it('rejects bad input with clear errors', () => {
    const x = randomTensor([4, 5]);
    const w = randomTensor([3, 5]);
    expect(() => F.linear(x, randomTensor([3, 6]))).toThrow('linear: input [4, 5] has 5 features in its last dim, but weight [3, 6] expects 6');
    expect(() => F.linear(x, randomTensor([15]))).toThrow("linear: argument 'weight' must be 2-D ([out, in]), got shape [15]");
    expect(() => F.linear(x, w, randomTensor([4]))).toThrow("linear: argument 'bias' must have shape [3] (weight [3, 5]), got [4]");
    expect(() => F.linear(tensor([2], []), w)).toThrow(/linear: argument 'input' must be at least 1-D/);
    expect(() => F.linear(x, w, {} as never)).toThrow(/linear: argument 'bias' must be a Tensor/);
    const gone = randomTensor([3, 5]);
    gone.dispose();
    expect(() => F.linear(x, gone)).toThrow(/linear \(argument 'weight'\).*was disposed/);
  });
});

describe('matmul/linear determinism and memory', () => {
  it('gives the same bits twice', () => {
    const x = randomTensor([37, 129], { requiresGrad: true });
    const w = randomTensor([65, 129], { requiresGrad: true });
    const b = randomTensor([65], { requiresGrad: true });
    const r = randomTensor([37, 65]);
    const c = randomTensor([129, 70]);
    const run = () => tidy(() => {
      const y = F.linear(x, w, b);
      const grads = grad(F.sum(F.mul(y, r)), [x, w, b]);
      return [y, ...grads, F.matmul(x, c)].map((t) => Array.from(t.toFloat32Array()));
    });
    expect(run()).toEqual(run());
  });

  it('backward inside tidy leaks nothing but the .grad tensors; a full second-order pass leaks nothing', () => {
    const x = randomTensor([2, 3, 5], { requiresGrad: true });
    const w = randomTensor([4, 5], { requiresGrad: true });
    const b = randomTensor([4], { requiresGrad: true });
    const before = memory().liveTensors;
    for (let pass = 0; pass < 2; pass++) {
      tidy(() => {
        const y = F.matmul(F.relu(F.linear(x, w, b)), randomTensor([4, 2]));
        F.sum(F.mul(y, randomTensor([...y.shape]))).backward();
      });
      expect(memory().liveTensors).toBe(before + 3);
    }
    tidy(() => {
      const loss = F.sum(F.tanh(F.linear(x, w, b)));
      const [gx, gw, gb] = grad(loss, [x, w, b], { createGraph: true });
      // loss·0 + ⟨g, v⟩ so that the second pass walks (and releases) the whole retained graph.
      const hvTerm = F.add(F.add(F.sum(F.mul(gx!, randomTensor([2, 3, 5]))), F.sum(F.mul(gw!, randomTensor([4, 5])))), F.sum(F.mul(gb!, randomTensor([4]))));
      grad(F.add(F.mul(loss, 0), hvTerm), [x, w, b]);
    });
    expect(memory().liveTensors).toBe(before + 3);
  });

  // Known engine limitation (not this op's): with createGraph, grad(loss, [w]) also builds the
  // (graph-carrying) gradients of the other inputs that require grad (x, b) and then disposes
  // them, but their nodes are never released, so what those nodes saved stays alive.
  it('grad(..., [w], { createGraph }) leaks nothing when other inputs also require grad', () => {
    const x = randomTensor([2, 3, 5], { requiresGrad: true });
    const w = randomTensor([4, 5], { requiresGrad: true });
    const before = memory().liveTensors;
    tidy(() => {
      const loss = F.sum(F.tanh(F.linear(x, w)));
      const [gw] = grad(loss, [w], { createGraph: true });
      grad(F.add(F.mul(loss, 0), F.sum(F.mul(gw!, randomTensor([4, 5])))), [w]);
    });
    expect(memory().liveTensors).toBe(before);
  });
});
