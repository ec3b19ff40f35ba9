// crossEntropy: forward vs float64 references for every reduction (B = 1, C = 1, C = 1000,
// logits of magnitude ~80), backward vs the reference, finite-difference gradcheck and
// gradgradcheck, Hessian-vector products vs the analytic Hessian, fused vs composite backward,
// non-finite logits, bits independent of repetition and thread count, label snapshot, bad input.
// Tolerances: per-row losses atol 2e-6·(1 + max|x|) (one rounding at the logits' magnitude),
// reductions rtol 1e-5; gradients rtol 1e-5 / atol 1e-7; HVP rtol 1e-4 / atol 1e-6.
import { describe, expect, it } from 'vitest';
import { F, engineInfo, grad, setNumThreads, tensor } from '../../src/index.js';
import { native } from '../../src/native/index.js';
import type { CrossEntropyReduction } from '../../src/ops/cross_entropy.js';
import { gradcheck, gradgradcheck } from '../helpers/gradcheck.js';
import { expectClose, randomArray, randomTensor } from '../helpers/random.js';
import { referenceCrossEntropy, referenceCrossEntropyBackward, referenceCrossEntropyHvp } from '../reference/softmax_reference.js';
import { expectSameBitsAcrossRunsAndThreads } from '../helpers/determinism.js';
import { indexStorage } from '../helpers/indices.js';

const reductions: CrossEntropyReduction[] = ['mean', 'sum', 'none'];

function randomLabels(batch: number, classes: number): Int32Array {
  return Int32Array.from({ length: batch }, () => Math.floor(Math.random() * classes));
}

const shapes: [number, number][] = [[1, 1], [1, 10], [6, 1], [16, 10], [128, 100], [7, 1000], [33, 17]];

describe('crossEntropy forward', () => {
  for (const reduction of reductions) {
    it(`'${reduction}' matches the float64 reference`, () => {
      for (const [batch, classes] of shapes) {
        for (const scale of [3, 80]) {
          const logits = randomTensor([batch, classes], { scale });
          const labels = randomLabels(batch, classes);
          const out = F.crossEntropy(logits, labels, { reduction });
          expect(out.shape).toEqual(reduction === 'none' ? [batch] : []);
          const expected = referenceCrossEntropy(logits.toFloat32Array(), batch, classes, labels, reduction);
          const atol = 2e-6 * (1 + scale) * (reduction === 'sum' ? batch : 1);
          expectClose(out.toFloat32Array(), expected, { rtol: 1e-5, atol, label: `${reduction} [${batch}, ${classes}] scale ${scale}` });
        }
      }
    });
  }

  it("defaults to 'mean' and takes logits with a huge common offset", () => {
    const logits = randomTensor([8, 12], { offset: 1e4 });
    const labels = randomLabels(8, 12);
    const expected = referenceCrossEntropy(logits.toFloat32Array(), 8, 12, labels, 'mean');
    expectClose([F.crossEntropy(logits, labels).item()], expected, { rtol: 1e-5, atol: 1e-3 });
  });

  it('non-finite logits give NaN/inf like PyTorch, without crashing', () => {
    const inf = Number.POSITIVE_INFINITY;
    const logits = tensor([inf, 1, Number.NaN, 1, -inf, -inf, 0, -inf], [4, 2]);
    const losses = Array.from(F.crossEntropy(logits, Int32Array.of(0, 1, 0, 1), { reduction: 'none' }).toFloat32Array());
    expect(losses.slice(0, 3).every(Number.isNaN)).toBe(true);
    expect(losses[3]).toBe(inf); // label on a −inf logit: −log 0
    expect(Number.isNaN(F.crossEntropy(logits, Int32Array.of(0, 1, 0, 1)).item())).toBe(true);
  });

  it('an empty batch gives NaN for the mean and 0 for the sum (like PyTorch)', () => {
    const logits = randomTensor([0, 5]);
    expect(Number.isNaN(F.crossEntropy(logits, new Int32Array(0)).item())).toBe(true);
    expect(F.crossEntropy(logits, new Int32Array(0), { reduction: 'sum' }).item()).toBe(0);
    expect(F.crossEntropy(logits, new Int32Array(0), { reduction: 'none' }).shape).toEqual([0]);
  });
});

describe('crossEntropy backward', () => {
  for (const reduction of reductions) {
    it(`'${reduction}': fused backward matches the reference, fused and composite agree`, () => {
      for (const [batch, classes] of [[1, 1], [1, 7], [16, 10], [128, 100], [5, 1000]] as [number, number][]) {
        const logits = randomTensor([batch, classes], { requiresGrad: true, scale: 4 });
        const labels = randomLabels(batch, classes);
        const g = randomArray(reduction === 'none' ? batch : 1);
        const out = F.crossEntropy(logits, labels, { reduction });
        const gradOutput = tensor(g, out.shape);
        const [fused] = grad(out, [logits], { gradOutputs: [gradOutput], retainGraph: true });
        const expected = referenceCrossEntropyBackward(logits.toFloat32Array(), batch, classes, labels, reduction, g);
        expectClose(fused!.toFloat32Array(), expected, { rtol: 1e-5, atol: 1e-7, label: `${reduction} [${batch}, ${classes}]` });
        const [composite] = grad(out, [logits], { gradOutputs: [gradOutput], createGraph: true });
        expectClose(composite!.toFloat32Array(), fused!.toFloat32Array(), { rtol: 1e-5, atol: 1e-7, label: `${reduction} composite` });
      }
    });

    it(`'${reduction}': gradients pass finite differences (first and second order)`, () => {
      const logits = randomTensor([5, 7], { requiresGrad: true, scale: 2 });
      const labels = randomLabels(5, 7);
      gradcheck((x) => F.crossEntropy(x, labels, { reduction }), [logits]);
      gradgradcheck((x) => F.crossEntropy(x, labels, { reduction }), [logits]);
    });
  }

  it('Hessian-vector products match (1/B)(diag p − p pᵀ) v', () => {
    for (const [batch, classes] of [[4, 5], [64, 100]] as [number, number][]) {
      const logits = randomTensor([batch, classes], { requiresGrad: true, scale: 3 });
      const labels = randomLabels(batch, classes);
      const v = randomArray(batch * classes);
      const [g] = grad(F.crossEntropy(logits, labels), [logits], { createGraph: true });
      const [hvp] = grad(F.sum(F.mul(g!, tensor(v, [batch, classes]))), [logits]);
      const expected = referenceCrossEntropyHvp(logits.toFloat32Array(), batch, classes, v);
      expectClose(hvp!.toFloat32Array(), expected, { rtol: 1e-4, atol: 1e-6 / batch, label: `hvp [${batch}, ${classes}]` });
    }
  });

  it('the gradient with createGraph is differentiable in the upstream gradient too', () => {
    const logits = randomTensor([3, 4], { requiresGrad: true });
    const labels = randomLabels(3, 4);
    const weights = randomTensor([3], { requiresGrad: true });
    // d/dw of ⟨∂(Σ w ⊙ loss)/∂x, V⟩ exercises the composite backward's dependence on g.
    gradgradcheck((x, w) => F.mul(F.crossEntropy(x, labels, { reduction: 'none' }), w), [logits, weights]);
  });

  it('uses the labels of the forward call even if the caller reuses its array', () => {
    const logits = randomTensor([4, 6], { requiresGrad: true });
    const labels = Int32Array.of(0, 1, 2, 3);
    const out = F.crossEntropy(logits, labels);
    labels.set([5, 5, 5, 5]);
    const [dx] = grad(out, [logits]);
    const expected = referenceCrossEntropyBackward(logits.toFloat32Array(), 4, 6, [0, 1, 2, 3], 'mean', [1]);
    expectClose(dx!.toFloat32Array(), expected, { rtol: 1e-5, atol: 1e-7 });
  });
});

describe('crossEntropy determinism and errors', () => {
  it('gives identical bits on repetition and for 1 or 2 threads', () => {
    const values = randomArray(512 * 1000, 5);
    const labels = randomLabels(512, 1000);
    const run = (): Float32Array[] =>
      reductions.flatMap((reduction) => {
        const logits = tensor(values, [512, 1000], { requiresGrad: true });
        const out = F.crossEntropy(logits, labels, { reduction });
        const forward = out.toFloat32Array();
        const [dx] = grad(out, [logits], { gradOutputs: [tensor(values.subarray(0, out.size), out.shape)] });
        return [forward, dx!.toFloat32Array()];
      });
    expectSameBitsAcrossRunsAndThreads(run);
  });

  it('rejects bad labels, shapes and options with clear errors', () => {
    const logits = randomTensor([4, 100]);
    expect(() => F.crossEntropy(logits, Int32Array.of(1, 2, 3, 105))).toThrow(
      'crossEntropy: label 105 at index 3 is out of range for 100 classes',
    );
    expect(() => F.crossEntropy(logits, Int32Array.of(-1, 2, 3, 4))).toThrow(/label -1 at index 0 is out of range for 100 classes/);
    expect(() => F.crossEntropy(logits, Int32Array.of(1, 2, 3))).toThrow(/crossEntropy: labels has length 3 but logits \[4, 100\] has batch size 4/);
    expect(() => F.crossEntropy(logits, Float32Array.of(1, 2, 3, 4) as never)).toThrow(/crossEntropy: argument 'labels' must be an IndexTensor or an Int32Array, got Float32Array/);
    expect(() => F.crossEntropy(logits, [1, 2, 3, 4] as never)).toThrow(/labels' must be an IndexTensor or an Int32Array/);
    expect(() => F.crossEntropy(randomTensor([4]), Int32Array.of(0, 0, 0, 0))).toThrow(/crossEntropy: argument 'logits' must be 2-D \(\[batch, classes\]\), got shape \[4\]/);
    expect(() => F.crossEntropy(randomTensor([2, 3, 4]), Int32Array.of(0, 0))).toThrow(/must be 2-D/);
    expect(() => F.crossEntropy(logits, Int32Array.of(0, 0, 0, 0), { reduction: 'avg' as never })).toThrow(/reduction must be 'mean', 'sum' or 'none'/);
    expect(() => F.crossEntropy(logits, Int32Array.of(0, 0, 0, 0), { labelSmoothing: 0.1 } as never)).toThrow(/option 'labelSmoothing' is not supported/);
    expect(() => F.crossEntropy('x' as never, Int32Array.of(0))).toThrow(/argument 'logits' must be a Tensor/);
  });

  it('the native entry points check labels and sizes themselves (never crash)', () => {
    const addon = native();
    const store = (count: number) => addon.alloc('cpu', count * 4);
    const logits = store(10);
    expect(() => addon.crossEntropyForward(logits, indexStorage(Int32Array.of(0, 7)), store(2), store(4), 2, 5, 0)).toThrow(
      'crossEntropy: label 7 at index 1 is out of range for 5 classes',
    );
    expect(() => addon.crossEntropyForward(logits, indexStorage(Int32Array.of(0)), store(2), store(4), 2, 5, 0)).toThrow(/labels has length 1 but the batch size is 2/);
    expect(() => addon.crossEntropyForward(logits, indexStorage(Int32Array.of(0, 1)), store(1), store(4), 2, 5, 0)).toThrow(/argument 'out' holds 1 floats but the op needs 2/);
    expect(() => addon.crossEntropyForward(store(9), indexStorage(Int32Array.of(0, 1)), store(2), store(4), 2, 5, 2)).toThrow(/argument 'logits' holds 9 floats but the op needs 10/);
    expect(() => addon.crossEntropyForward(logits, indexStorage(Int32Array.of(0, 1)), store(2), store(4), 2, 5, 3)).toThrow(/reduction code/);
    expect(() => addon.crossEntropyBackward(logits, indexStorage(Int32Array.of(0, -3)), store(4), store(1), store(10), 2, 5, 1, false)).toThrow(/label -3 at index 1/);
    expect(() => addon.crossEntropyBackward(logits, indexStorage(Int32Array.of(0, 1)), store(4), store(1), store(10), 2, 5, 1, true)).toThrow(/argument 'grad' holds 1 floats but the op needs 2/);
    expect(() => addon.softmaxForward(store(5), store(6), 2, 3, 1, false)).toThrow(/argument 'x' holds 5 floats but the op needs 6/);
    expect(() => addon.softmaxForward(store(6), store(6), 2, -3, -1, false)).toThrow(/softmax: negative extent/);
    expect(() => addon.softmaxBackward(store(6), store(6), store(6), 2 ** 40, 2 ** 40, 1, true)).toThrow(/tensor too large/);
  });
});
