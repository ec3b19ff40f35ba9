// supConInfoNCE: value and gradients (anchor, contrast, weights) against the float64 reference
// over batch sizes 1..64 a 1,500-row batch (direction rows kept from the forward) and a 2,100-row batch (recomputed
// in three row blocks, the last partial),
// raw and unit-norm embeddings, labels with and without positives, weights on/off; anchor ===
// contrast (VCL: both paths summed); rows without positives contribute nothing and never NaN;
// finite-difference gradcheck and second-order gradgradcheck; determinism; bad input.
// Tolerances: loss rtol 2e-5 + atol 2e-5 (float32 GEMM and exp, |logits| ≤ ~40); gradients
// atol 2e-4·max|g| + rtol 2e-4 (each a sum of B products of float32 softmax entries).
import { describe, expect, it } from 'vitest';
import { F, Tensor, grad, tensor } from '../../src/index.js';
import { gradcheck, gradgradcheck } from '../helpers/gradcheck.js';
import { expectClose, randomArray, randomTensor } from '../helpers/random.js';
import { referenceSupConInfoNCE } from '../reference/contrastive_reference.ts';

function randomLabels(batch: number, classes: number): Int32Array {
  return Int32Array.from({ length: batch }, () => Math.floor(Math.random() * classes));
}

function unitRows(batch: number, dim: number, requiresGrad = true): Tensor {
  const values = randomArray(batch * dim);
  for (let u = 0; u < batch; u += 1) {
    let norm = 0;
    for (let k = 0; k < dim; k += 1) norm += values[u * dim + k]! ** 2;
    for (let k = 0; k < dim; k += 1) values[u * dim + k]! /= Math.sqrt(norm);
  }
  return tensor(values, [batch, dim], { requiresGrad });
}

function maxAbs(values: ArrayLike<number>): number {
  let m = 0;
  for (let k = 0; k < values.length; k += 1) m = Math.max(m, Math.abs(values[k]!));
  return m;
}

function expectGradient(actual: Float32Array, expected: Float64Array, label: string): void {
  expectClose(actual, expected, { rtol: 2e-4, atol: 2e-4 * Math.max(1e-3, maxAbs(expected)), label });
}

function checkAgainstReference(batch: number, dim: number, classes: number, temperature: number, withWeights: boolean, unit: boolean): void {
  const anchor = unit ? unitRows(batch, dim) : randomTensor([batch, dim], { requiresGrad: true });
  const contrast = unit ? unitRows(batch, dim) : randomTensor([batch, dim], { requiresGrad: true });
  const labels = randomLabels(batch, classes);
  const weights = withWeights ? tensor(Float32Array.from({ length: batch }, () => 0.27 + 0.46 * Math.random()), [batch], { requiresGrad: true }) : null;
  const loss = F.supConInfoNCE(anchor, contrast, labels, { temperature, weights });
  const expected = referenceSupConInfoNCE(anchor.toFloat32Array(), contrast.toFloat32Array(), labels, batch, dim, temperature,
    weights?.toFloat32Array() ?? null);
  const label = `B ${batch} D ${dim} classes ${classes} τ ${temperature} weights ${withWeights} unit ${unit}`;
  expectClose([loss.item()], [expected.loss], { rtol: 2e-5, atol: 2e-5, label: `${label} loss` });
  const gradients = grad(loss, weights ? [anchor, contrast, weights] : [anchor, contrast], { allowUnused: true });
  expectGradient(gradients[0]!.toFloat32Array(), expected.gradAnchor, `${label} anchor`);
  expectGradient(gradients[1]!.toFloat32Array(), expected.gradContrast, `${label} contrast`);
  if (weights) expectGradient(gradients[2]!.toFloat32Array(), expected.gradWeights, `${label} weights`);
}

describe('supConInfoNCE', () => {
  it('matches the float64 reference in value and in every gradient', () => {
    const cases: [number, number, number, number, boolean, boolean][] = [
      [1, 4, 1, 0.5, false, false],
      [2, 3, 1, 0.5, true, false],
      [7, 5, 3, 0.1, true, true],
      [16, 16, 4, 0.1, false, true],
      [33, 8, 6, 0.2, true, false],
      [64, 128, 32, 0.1, true, true], // m-per-class-like: about two per class
      [64, 32, 64, 0.07, false, true], // many rows without positives
    ];
    for (const [batch, dim, classes, temperature, withWeights, unit] of cases) {
      checkAgainstReference(batch, dim, classes, temperature, withWeights, unit);
    }
  });

  it('matches the reference when the batch spans several row blocks', () => {
    checkAgainstReference(1500, 8, 300, 0.1, true, true); // direction rows kept (B² ≤ 2^22)
    checkAgainstReference(2100, 8, 400, 0.1, true, true); // recomputed in three row blocks
  });

  it('sums both gradient paths when anchor and contrast are the same tensor (VCL)', () => {
    const z = unitRows(24, 16);
    const labels = randomLabels(24, 8);
    const loss = F.supConInfoNCE(z, z, labels, { temperature: 0.1 });
    const values = z.toFloat32Array();
    const expected = referenceSupConInfoNCE(values, values, labels, 24, 16, 0.1, null);
    expectClose([loss.item()], [expected.loss], { rtol: 2e-5, atol: 2e-5 });
    const [gradZ] = grad(loss, [z]);
    const sum = expected.gradAnchor.map((value, index) => value + expected.gradContrast[index]!);
    expectGradient(gradZ!.toFloat32Array(), sum, 'anchor === contrast');
  });

  it('gives 0 and zero gradients, never NaN, when no row has a positive', () => {
    const anchor = randomTensor([6, 4], { requiresGrad: true });
    const contrast = randomTensor([6, 4], { requiresGrad: true });
    const weights = tensor(randomArray(6), [6], { requiresGrad: true });
    const loss = F.supConInfoNCE(anchor, contrast, Int32Array.from([0, 1, 2, 3, 4, 5]), { temperature: 0.1, weights });
    expect(loss.item()).toBe(0);
    for (const g of grad(loss, [anchor, contrast, weights])) expect(maxAbs(g.toFloat32Array())).toBe(0);
  });

  it('divides by the number of rows with positives, not by B, and weights do not change the divisor', () => {
    // Rows 0, 1 share a label; rows 2..5 have none: the loss is (w0·term0 + w1·term1) / 2.
    const anchor = randomTensor([6, 4], { requiresGrad: true });
    const contrast = randomTensor([6, 4]);
    const labels = Int32Array.from([7, 7, 1, 2, 3, 4]);
    const weights = tensor(Float32Array.from([0.3, 0.6, 0.5, 0.5, 0.5, 0.5]), [6]);
    const loss = F.supConInfoNCE(anchor, contrast, labels, { temperature: 0.5, weights });
    const expected = referenceSupConInfoNCE(anchor.toFloat32Array(), contrast.toFloat32Array(), labels, 6, 4, 0.5, weights.toFloat32Array());
    expectClose([loss.item()], [expected.loss], { rtol: 1e-5, atol: 1e-6 });
    expect(Number.isFinite(loss.item())).toBe(true);
  });

  it('passes finite-difference gradcheck and gradgradcheck (anchor, contrast, weights)', () => {
    const labels = Int32Array.from([0, 1, 0, 1, 2, 2, 3]);
    const make = () => [
      randomTensor([7, 5], { requiresGrad: true }),
      randomTensor([7, 5], { requiresGrad: true }),
      tensor(Float32Array.from({ length: 7 }, () => 0.3 + 0.4 * Math.random()), [7], { requiresGrad: true }),
    ];
    const fn = (a: Tensor, c: Tensor, w: Tensor) => F.supConInfoNCE(a, c, labels, { temperature: 0.5, weights: w });
    gradcheck(fn, make());
    gradgradcheck(fn, make());
    const z = randomTensor([7, 5], { requiresGrad: true });
    gradgradcheck((x: Tensor) => F.supConInfoNCE(x, x, labels, { temperature: 0.5 }), [z]);
  });

  it('is deterministic: the same inputs give the same bits', () => {
    const anchor = unitRows(200, 64, false);
    const contrast = unitRows(200, 64, false);
    const labels = randomLabels(200, 50);
    const first = F.supConInfoNCE(anchor, contrast, labels, { temperature: 0.1 }).item();
    const second = F.supConInfoNCE(anchor, contrast, labels, { temperature: 0.1 }).item();
    expect(second).toBe(first);
  });

  it('rejects bad input with errors that name the argument', () => {
    const a = randomTensor([4, 3]);
    const labels = Int32Array.from([0, 0, 1, 1]);
    expect(() => F.supConInfoNCE(a, randomTensor([5, 3]), labels, { temperature: 0.1 })).toThrow(/contrast.*shape \[5, 3\]/);
    expect(() => F.supConInfoNCE(a, randomTensor([4]), labels, { temperature: 0.1 })).toThrow(/contrast.*2-D/);
    expect(() => F.supConInfoNCE(a, a, Int32Array.from([0, 1]), { temperature: 0.1 })).toThrow(/labels has length 2/);
    expect(() => F.supConInfoNCE(a, a, [0, 0, 1, 1] as unknown as Int32Array, { temperature: 0.1 })).toThrow(/Int32Array/);
    for (const temperature of [0, -1, Number.NaN, Infinity, undefined]) {
      expect(() => F.supConInfoNCE(a, a, labels, { temperature } as never)).toThrow(/temperature must be a finite number > 0/);
    }
    expect(() => F.supConInfoNCE(a, a, labels, { temperature: 0.1, weights: randomTensor([3]) })).toThrow(/weights.*\[4\]/);
    expect(() => F.supConInfoNCE(a, a, labels, { temperature: 0.1, typo: 1 } as never)).toThrow(/unknown option 'typo'/);
    expect(() => F.supConInfoNCE(null as never, a, labels, { temperature: 0.1 })).toThrow(/anchor/);
  });
});
