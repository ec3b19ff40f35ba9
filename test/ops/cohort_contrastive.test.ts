// cohortContrastive: equals the sum of one-pair calls (4 supConInfoNCE + 4 contrastiveKL per pair)
// in value and in the gradients of Σ g ⊙ out to every embedding and the weights, for the L-MCL
// pair list (N = 2, S = 3 and N = 3, S = 4) and for random pair lists; the float64 reference for
// one cohort; embeddings in no pair get zero gradient; the mirror pair gives the same row;
// gradcheck and gradgradcheck (the composite path); determinism; bad input.
// Tolerances: values rtol 5e-5 + atol 5e-5 (shared vs separate float32 sums); gradients atol
// 5e-4·max|g| + rtol 5e-4 (the fused kernel adds up to 4·S·(N−1) terms' rows before one GEMM).
import { describe, expect, it } from 'vitest';
import { F, Tensor, grad, tensor } from '../../src/index.js';
import { native } from '../../src/native/index.js';
import { gradcheck, gradgradcheck } from '../helpers/gradcheck.js';
import { expectClose, randomArray } from '../helpers/random.js';
import { referenceCohort } from '../reference/contrastive_reference.ts';
import { indexStorage } from '../helpers/indices.js';

function unitRows(batch: number, dim: number): Tensor {
  const values = randomArray(batch * dim);
  for (let u = 0; u < batch; u += 1) {
    let norm = 0;
    for (let k = 0; k < dim; k += 1) norm += values[u * dim + k]! ** 2;
    for (let k = 0; k < dim; k += 1) values[u * dim + k]! /= Math.sqrt(norm);
  }
  return tensor(values, [batch, dim], { requiresGrad: true });
}

/** Two images per class, classes in random order (the MPerClassSampler(m = 2) batch). */
function twoPerClass(batch: number): Int32Array {
  const labels = Int32Array.from({ length: batch }, (_, index) => Math.floor(index / 2));
  for (let index = batch - 1; index > 0; index -= 1) {
    const other = Math.floor(Math.random() * (index + 1));
    [labels[index], labels[other]] = [labels[other]!, labels[index]!];
  }
  return labels;
}

/** L-MCL's loop order: for n, for m ≠ n, for s, for t → ((n, s), (m, t)). */
function lmclPairs(networks: number, stages: number): [number, number][] {
  const pairs: [number, number][] = [];
  for (let n = 0; n < networks; n += 1)
    for (let m = 0; m < networks; m += 1)
      if (m !== n) for (let s = 0; s < stages; s += 1) for (let t = 0; t < stages; t += 1) pairs.push([n * stages + s, m * stages + t]);
  return pairs;
}

function randomPairs(count: number, pairCount: number): [number, number][] {
  return Array.from({ length: pairCount }, () => {
    const a = Math.floor(Math.random() * count);
    let b = Math.floor(Math.random() * (count - 1));
    if (b >= a) b += 1;
    return [a, b] as [number, number];
  });
}

const options = { temperature: 0.1, klTemperature: 3 };

/** The same [P, 4] from one-pair calls. */
function onePairTerms(z: Tensor[], labels: Int32Array, pairs: [number, number][], weights: Tensor | null): Tensor {
  const rows = pairs.map(([a, b], p) => {
    const w = weights ? F.reshape(F.slice(weights, 0, p, p + 1), [labels.length]) : null;
    const info = (x: Tensor, y: Tensor) => F.supConInfoNCE(x, y, labels, { temperature: options.temperature, weights: w });
    const kl = (sa: Tensor, sc: Tensor, ta: Tensor, tc: Tensor) => F.contrastiveKL(sa, sc, ta, tc, { ...options, weights: w });
    const [za, zb] = [z[a]!, z[b]!];
    return F.stack([
      F.add(info(za, za), info(zb, zb)),
      F.add(info(za, zb), info(zb, za)),
      F.add(kl(za, za, zb, zb), kl(zb, zb, za, za)),
      F.add(kl(za, zb, zb, za), kl(zb, za, za, zb)),
    ]);
  });
  return F.stack(rows);
}

function maxAbs(values: ArrayLike<number>): number {
  let m = 0;
  for (let k = 0; k < values.length; k += 1) m = Math.max(m, Math.abs(values[k]!));
  return m;
}

function compareWithOnePairCalls(count: number, batch: number, dim: number, pairs: [number, number][], withWeights: boolean, label: string): void {
  const z = Array.from({ length: count }, () => unitRows(batch, dim));
  const labels = twoPerClass(batch);
  const weights = withWeights
    ? tensor(Float32Array.from({ length: pairs.length * batch }, () => 0.27 + 0.46 * Math.random()), [pairs.length, batch], { requiresGrad: true })
    : null;
  const fused = F.cohortContrastive(z, labels, { pairs, ...options, weights });
  const separate = onePairTerms(z, labels, pairs, weights);
  expect(fused.shape).toEqual([pairs.length, 4]);
  expectClose(fused.toFloat32Array(), separate.toFloat32Array(), { rtol: 5e-5, atol: 5e-5, label: `${label} values` });
  const g = tensor(randomArray(pairs.length * 4), [pairs.length, 4]);
  const wrt = weights ? [...z, weights] : z;
  const fusedGradients = grad(F.sum(F.mul(fused, g)), wrt, { allowUnused: true });
  const separateGradients = grad(F.sum(F.mul(separate, g)), wrt, { allowUnused: true });
  fusedGradients.forEach((gradient, index) => {
    const expected = separateGradients[index]!.toFloat32Array();
    expectClose(gradient.toFloat32Array(), expected, { rtol: 5e-4, atol: 5e-4 * Math.max(1e-3, maxAbs(expected)), label: `${label} gradient ${index}` });
  });
}

describe('cohortContrastive', () => {
  it('equals the one-pair calls for the L-MCL pair list, N = 2, S = 3 (18 pairs) and N = 3, S = 4 (96 pairs)', () => {
    compareWithOnePairCalls(6, 32, 16, lmclPairs(2, 3), true, 'N 2 S 3');
    compareWithOnePairCalls(12, 16, 8, lmclPairs(3, 4), true, 'N 3 S 4');
  });

  it('equals the one-pair calls for random pair lists over N·S embeddings, N = 2, 3 and S = 3, 4', () => {
    for (const [networks, stages] of [[2, 3], [2, 4], [3, 3], [3, 4]] as [number, number][]) {
      const count = networks * stages;
      compareWithOnePairCalls(count, 12, 8, randomPairs(count, 5 + Math.floor(Math.random() * 8)), Math.random() < 0.5, `random N ${networks} S ${stages}`);
    }
  });

  it('equals the one-pair calls for random pair lists (with and without weights)', () => {
    compareWithOnePairCalls(6, 20, 8, randomPairs(6, 7), false, 'random 6×7');
    compareWithOnePairCalls(8, 12, 16, randomPairs(8, 11), true, 'random 8×11');
    compareWithOnePairCalls(3, 10, 4, [[0, 2], [2, 0], [0, 2]], true, 'repeated pairs');
  });

  it('matches the float64 reference', () => {
    const [count, batch, dim] = [6, 16, 8];
    const z = Array.from({ length: count }, () => unitRows(batch, dim));
    const labels = twoPerClass(batch);
    const pairs = lmclPairs(2, 3);
    const weightValues = Array.from({ length: pairs.length }, () => Float32Array.from({ length: batch }, () => 0.27 + 0.46 * Math.random()));
    const weights = tensor(Float32Array.from(weightValues.flatMap((row) => [...row])), [pairs.length, batch], { requiresGrad: true });
    const out = F.cohortContrastive(z, labels, { pairs, ...options, weights });
    const g = randomArray(pairs.length * 4);
    const expected = referenceCohort(z.map((t) => t.toFloat32Array()), labels, pairs, batch, dim, 0.1, 3, weightValues, g);
    expectClose(out.toFloat32Array(), expected.out, { rtol: 5e-5, atol: 5e-5, label: 'values' });
    const gradients = grad(F.sum(F.mul(out, tensor(g, [pairs.length, 4]))), [...z, weights]);
    z.forEach((_, index) => {
      expectClose(gradients[index]!.toFloat32Array(), expected.gradEmbeddings[index]!, { rtol: 5e-4, atol: 5e-4 * maxAbs(expected.gradEmbeddings[index]!), label: `z${index}` });
    });
    const flatWeights = Float64Array.from(expected.gradWeights.flatMap((row) => [...row]));
    expectClose(gradients[count]!.toFloat32Array(), flatWeights, { rtol: 5e-4, atol: 5e-4 * maxAbs(flatWeights), label: 'weights' });
  });

  it('gives the mirror pair the same terms and leaves embeddings outside every pair at zero gradient', () => {
    const z = Array.from({ length: 4 }, () => unitRows(10, 6));
    const labels = twoPerClass(10);
    const out = F.cohortContrastive(z, labels, { pairs: [[0, 3], [3, 0]], ...options });
    const values = out.toFloat32Array();
    expectClose(values.slice(4), values.slice(0, 4), { rtol: 1e-6, atol: 1e-6 });
    const gradients = grad(F.sum(out), z);
    expect(maxAbs(gradients[1]!.toFloat32Array())).toBe(0);
    expect(maxAbs(gradients[2]!.toFloat32Array())).toBe(0);
    expect(maxAbs(gradients[0]!.toFloat32Array())).toBeGreaterThan(0);
  });

  it('handles rows without positives like the one-pair ops (no NaN)', () => {
    const z = Array.from({ length: 2 }, () => unitRows(6, 4));
    const labels = Int32Array.from([0, 0, 1, 2, 3, 4]);
    const out = F.cohortContrastive(z, labels, { pairs: [[0, 1]], ...options });
    const separate = onePairTerms(z, labels, [[0, 1]], null);
    expectClose(out.toFloat32Array(), separate.toFloat32Array(), { rtol: 5e-5, atol: 5e-5 });
    expect(out.toFloat32Array().every(Number.isFinite)).toBe(true);
  });

  it('passes gradcheck and gradgradcheck on the InfoNCE columns (embeddings and weights)', () => {
    // Finite differences perturb an embedding on both sides of a KL term, where autograd (like
    // PyTorch's .detach()) treats the teacher as a constant, so they check the VCL/ICL columns;
    // the soft columns are checked against the one-pair ops (first and second order) instead.
    const labels = Int32Array.from([0, 0, 1, 1, 2, 2]);
    const pairs: [number, number][] = [[0, 1], [2, 0]];
    const fn = (a: Tensor, b: Tensor, c: Tensor, w: Tensor) =>
      F.slice(F.cohortContrastive([a, b, c], labels, { pairs, temperature: 0.5, klTemperature: 2, weights: w }), 1, 0, 2);
    const make = () => [unitRows(6, 4), unitRows(6, 4), unitRows(6, 4),
      tensor(Float32Array.from({ length: 12 }, () => 0.3 + 0.4 * Math.random()), [2, 6], { requiresGrad: true })];
    gradcheck(fn, make());
    gradgradcheck(fn, make());
  });

  it('has the second-order gradients of the one-pair calls, soft terms included (createGraph path)', () => {
    const z = Array.from({ length: 4 }, () => unitRows(8, 5));
    const labels = twoPerClass(8);
    const pairs: [number, number][] = [[0, 2], [1, 3], [3, 0]];
    const weights = tensor(Float32Array.from({ length: 24 }, () => 0.3 + 0.4 * Math.random()), [3, 8], { requiresGrad: true });
    const g = tensor(randomArray(12), [3, 4]);
    const projections = z.map(() => tensor(randomArray(40), [8, 5]));
    const secondOrder = (out: Tensor) => {
      const first = grad(F.sum(F.mul(out, g)), z, { createGraph: true });
      const inner = first.reduce((total: Tensor | null, gradient, index) => {
        const term = F.sum(F.mul(gradient, projections[index]!));
        return total ? F.add(total, term) : term;
      }, null)!;
      return grad(inner, [...z, weights], { allowUnused: true }).map((gradient) => gradient.toFloat32Array());
    };
    const fused = secondOrder(F.cohortContrastive(z, labels, { pairs, ...options, weights }));
    const separate = secondOrder(onePairTerms(z, labels, pairs, weights));
    fused.forEach((values, index) => {
      expectClose(values, separate[index]!, { rtol: 1e-3, atol: 1e-3 * Math.max(1e-3, maxAbs(separate[index]!)), label: `second order ${index}` });
    });
  });

  it('is deterministic', () => {
    const z = Array.from({ length: 6 }, () => unitRows(64, 32));
    const labels = twoPerClass(64);
    const run = () => {
      const out = F.cohortContrastive(z, labels, { pairs: lmclPairs(2, 3), ...options });
      return [out.toFloat32Array(), ...grad(F.sum(out), z).map((g) => g.toFloat32Array())];
    };
    const first = run();
    const second = run();
    first.forEach((values, index) => expect(Buffer.from(second[index]!.buffer).equals(Buffer.from(values.buffer))).toBe(true));
  });

  it('rejects bad input with errors that name the argument', () => {
    const z = [unitRows(4, 3), unitRows(4, 3)];
    const labels = Int32Array.from([0, 0, 1, 1]);
    expect(() => F.cohortContrastive(z, labels, { pairs: [[0, 2]], ...options })).toThrow(/pairs\[0\] = \[0, 2\] indexes outside the 2 embeddings/);
    expect(() => F.cohortContrastive(z, labels, { pairs: [[1, 1]], ...options })).toThrow(/pairs\[0\] = \[1, 1\] must join two different embeddings/);
    expect(() => F.cohortContrastive(z, labels, { pairs: [[0, 1.5]] as never, ...options })).toThrow(/pairs\[0\] must be a pair/);
    expect(() => F.cohortContrastive([z[0]!, unitRows(5, 3)], labels, { pairs: [[0, 1]], ...options })).toThrow(/embeddings\[1\] has shape \[5, 3\]/);
    expect(() => F.cohortContrastive([], labels, { pairs: [], ...options })).toThrow(/non-empty array/);
    expect(() => F.cohortContrastive(z, Int32Array.from([0]), { pairs: [[0, 1]], ...options })).toThrow(/labels has length 1/);
    expect(() => F.cohortContrastive(z, labels, { pairs: [[0, 1]], temperature: 0, klTemperature: 3 })).toThrow(/temperature must be/);
    expect(() => F.cohortContrastive(z, labels, { pairs: [[0, 1]], ...options, weights: tensor(randomArray(4), [4]) })).toThrow(/weights.*\[1, 4\]/);
    // The native entry point checks the pair indices itself (never reads outside the embeddings).
    const storage = (floats: number) => native().alloc('cpu', floats * 4);
    expect(() => native().cohortContrastiveForward([storage(12), storage(12)], indexStorage(labels), Int32Array.from([0, 9]), null, storage(4), storage(64),
      storage(64), storage(native().cohortStatsFloats(2, 4, 1)), 2, 4, 3, 0.1, 3)).toThrow(/indexes outside the 2 embeddings/);
  });
});
