// Memory-bank contrast: memoryLogits, memoryInfoNCE and memoryUpdate_ against float64 references
// that gather the bank rows explicitly (test/reference/memory_bank_reference.ts): values, query
// and weight gradients, fused vs composite backward, finite-difference gradcheck and
// gradgradcheck, the bank never getting a gradient, the momentum update (normalisation, version
// bump, duplicate rows, z read detached), update-before-backward raising the engine's in-place
// modification error, bits independent of the thread count, and bad input; the whole file runs
// again at every SIMD level (portable, AVX2, AVX-512) in child processes.
// Inputs are fresh random values (never zeros); banks are random rows (unnormalised like MCL's
// Uniform init, or normalised like after updates), indices random with repeats.
// Tolerances (float32 against float64; rows of unit norm, so |logit| <= 1/τ): logits rtol 1e-5 /
// atol 1e-5/τ; losses rtol 1e-5 / atol 1e-5; the InfoNCE query gradient rtol 1e-4 / atol 1e-5 of
// one term's scale w·g/(B·τ) (a sum of K cancelling terms; the fused backward uses the polynomial
// exp), weight gradients and memoryLogits' query gradient rtol 1e-4 / atol 1e-6 (1e-5·K for the
// latter, a sum of K terms of size ~1/τ); fused vs composite within the same; updated bank rows
// rtol 1e-6 / atol 1e-6 (mixed and normalised in double, rounded once). Finite differences: the
// helpers' defaults (2e-2 first order, 3e-2 second order, relative to the terms).
import { describe, expect, it } from 'vitest';
import { F, Tensor, engineInfo, grad, setNumThreads, tensor } from '../../src/index.js';
import { withBackwardPath } from '../../src/autograd/fused.js';
import { gradcheck, gradgradcheck } from '../helpers/gradcheck.js';
import { runOnEverySimdLevel } from '../helpers/simd_levels.js';
import { expectClose, randomArray, randomPositiveTensor, randomTensor } from '../helpers/random.js';
import { expectSameBitsAcrossRunsAndThreads } from '../helpers/determinism.js';
import {
  referenceMemoryInfoNce,
  referenceMemoryLogits,
  referenceMemoryLogitsQueryGradient,
  referenceMemoryUpdate,
  type MemoryProblem,
} from '../reference/memory_bank_reference.js';

function randomIndices(count: number, bankRows: number): Int32Array {
  return Int32Array.from({ length: count }, () => Math.floor(Math.random() * bankRows));
}

/** Rows of unit norm (what the bank holds after updates). */
function normalisedRows(rows: number, dim: number): Float32Array {
  const values = randomArray(rows * dim);
  for (let r = 0; r < rows; r += 1) {
    let squares = 0;
    for (let d = 0; d < dim; d += 1) squares += values[r * dim + d]! ** 2;
    const norm = Math.sqrt(squares);
    for (let d = 0; d < dim; d += 1) values[r * dim + d]! /= norm;
  }
  return values;
}

interface Problem {
  query: Tensor;
  bank: Tensor;
  indices: Int32Array;
  reference: MemoryProblem;
}

function makeProblem(batch: number, columns: number, dim: number, bankRows: number, temperature: number, normalised = true): Problem {
  const query = tensor(normalisedRows(batch, dim), [batch, dim], { requiresGrad: true });
  const bank = tensor(normalised ? normalisedRows(bankRows, dim) : randomArray(bankRows * dim, 0.153), [bankRows, dim]);
  const indices = randomIndices(batch * columns, bankRows);
  const reference = { query: query.toFloat32Array(), bank: bank.toFloat32Array(), indices, batch, dim, temperature };
  return { query, bank, indices, reference };
}

const shapes: [number, number, number, number][] = [
  // [B, K, D, M]
  [1, 1, 1, 1],
  [3, 5, 7, 4],
  [4, 19, 16, 50],
  [8, 67, 33, 100],
  [16, 130, 128, 1000],
  [2, 1500, 128, 300],
];

describe('memoryLogits', () => {
  it('matches the float64 gathered reference', () => {
    for (const [batch, columns, dim, bankRows] of shapes) {
      for (const temperature of [0.07, 1]) {
        const { query, bank, indices, reference } = makeProblem(batch, columns, dim, bankRows, temperature, temperature === 1);
        const logits = F.memoryLogits(query, bank, indices, { temperature });
        expect(logits.shape).toEqual([batch, columns]);
        expectClose(logits.toFloat32Array(), referenceMemoryLogits(reference), {
          rtol: 1e-5, atol: 1e-5 / temperature, label: `logits [${batch}, ${columns}, ${dim}, ${bankRows}] τ ${temperature}`,
        });
      }
    }
  });

  it('query gradient matches the reference; the bank gets none', () => {
    for (const [batch, columns, dim, bankRows] of shapes) {
      const { query, bank, indices, reference } = makeProblem(batch, columns, dim, bankRows, 0.1);
      const logits = F.memoryLogits(query, bank, indices, { temperature: 0.1 });
      const g = randomArray(batch * columns);
      const [gradQuery] = grad(logits, [query], { gradOutputs: [tensor(g, [batch, columns])] });
      expectClose(gradQuery!.toFloat32Array(), referenceMemoryLogitsQueryGradient(reference, g), {
        rtol: 1e-4, atol: 1e-6 * columns * 10, label: `dquery [${batch}, ${columns}, ${dim}, ${bankRows}]`,
      });
      expect(bank.grad).toBeNull();
    }
  });

  it('passes finite differences, first and second order (also in the upstream gradient, through the transpose)', () => {
    const { query, bank, indices } = makeProblem(3, 6, 5, 8, 0.5);
    gradcheck((q) => F.memoryLogits(q, bank, indices, { temperature: 0.5 }), [query]);
    // Linear in the query: the gradient of ⟨∂f/∂q, W⟩ is zero; gradgradcheck on a nonlinear use.
    gradgradcheck((q) => F.square(F.memoryLogits(q, bank, indices, { temperature: 0.5 })), [query]);
    const g = randomTensor([3, 6], { requiresGrad: true });
    // d/dg of the transpose is memoryLogits again: differentiate the gradient w.r.t. the upstream gradient.
    gradgradcheck((q, upstream) => F.mul(F.memoryLogits(q, bank, indices, { temperature: 0.5 }), upstream), [query, g]);
  });

  it('uses the indices of the forward call even if the caller reuses its array', () => {
    const { query, bank, indices, reference } = makeProblem(4, 9, 8, 30, 0.2);
    const logits = F.memoryLogits(query, bank, indices, { temperature: 0.2 });
    const g = randomArray(36);
    const expected = referenceMemoryLogitsQueryGradient(reference, g);
    indices.fill(0);
    const [gradQuery] = grad(logits, [query], { gradOutputs: [tensor(g, [4, 9])] });
    expectClose(gradQuery!.toFloat32Array(), expected, { rtol: 1e-4, atol: 1e-5 });
  });

  it('a [Q, B, D] query (queries sharing the keys): each slice has the bits of its own call, forward and gradient', () => {
    for (const [queries, batch, columns, dim, bankRows] of [[2, 3, 5, 7, 4], [3, 8, 67, 33, 100], [6, 16, 130, 128, 1000]] as const) {
      const bank = tensor(normalisedRows(bankRows, dim), [bankRows, dim]);
      const indices = randomIndices(batch * columns, bankRows);
      const slices = Array.from({ length: queries }, () => tensor(normalisedRows(batch, dim), [batch, dim], { requiresGrad: true }));
      const stacked = tensor(Float32Array.from(slices.flatMap((slice) => [...slice.toFloat32Array()])), [queries, batch, dim], { requiresGrad: true });
      const logits = F.memoryLogits(stacked, bank, indices, { temperature: 0.1 });
      expect(logits.shape).toEqual([queries, batch, columns]);
      const g = randomArray(queries * batch * columns);
      const [gradStacked] = grad(logits, [stacked], { gradOutputs: [tensor(g, [queries, batch, columns])] });
      expect(gradStacked!.shape).toEqual([queries, batch, dim]);
      slices.forEach((slice, q) => {
        const own = F.memoryLogits(slice, bank, indices, { temperature: 0.1 });
        expect([...logits.toFloat32Array().subarray(q * batch * columns, (q + 1) * batch * columns)], `logits q ${q}`).toEqual([...own.toFloat32Array()]);
        const [gradOwn] = grad(own, [slice], { gradOutputs: [tensor(g.subarray(q * batch * columns, (q + 1) * batch * columns), [batch, columns])] });
        expect([...gradStacked!.toFloat32Array().subarray(q * batch * dim, (q + 1) * batch * dim)], `dquery q ${q}`).toEqual([...gradOwn!.toFloat32Array()]);
        const reference = { query: slice.toFloat32Array(), bank: bank.toFloat32Array(), indices, batch, dim, temperature: 0.1 };
        expectClose(own.toFloat32Array(), referenceMemoryLogits(reference), { rtol: 1e-5, atol: 1e-4, label: `reference q ${q}` });
      });
    }
  });

  it('a [Q, B, D] query passes finite differences, first and second order', () => {
    const bank = tensor(normalisedRows(8, 5), [8, 5]);
    const indices = randomIndices(3 * 6, 8);
    const query = randomTensor([2, 3, 5], { requiresGrad: true });
    gradcheck((q) => F.memoryLogits(q, bank, indices, { temperature: 0.5 }), [query]);
    gradgradcheck((q) => F.square(F.memoryLogits(q, bank, indices, { temperature: 0.5 })), [query]);
  });
});

describe('memoryInfoNCE', () => {
  for (const positives of [1, 2, 5]) {
    for (const weighted of [false, true]) {
      it(`P = ${positives}${weighted ? ', weights requiring grad' : ''}: loss and gradients match the reference, fused = composite`, () => {
        for (const [batch, columns, dim, bankRows] of shapes.filter(([, k]) => k >= positives)) {
          const temperature = 0.07;
          const { query, bank, indices, reference } = makeProblem(batch, columns, dim, bankRows, temperature);
          const weights = weighted ? randomPositiveTensor([batch], { requiresGrad: true, minimum: 0.27 }) : null;
          const weightValues = weights ? weights.toFloat32Array() : null;
          const upstream = 0.5 + Math.random();
          const expected = referenceMemoryInfoNce(reference, positives, weightValues, upstream);
          const label = `[${batch}, ${columns}, ${dim}, ${bankRows}] P ${positives}`;
          const run = (path: 'fused' | 'composite'): Float32Array[] => withBackwardPath(path, () => {
            const loss = F.memoryInfoNCE(query, bank, indices, { positives, temperature, weights });
            expect(loss.shape).toEqual([]);
            expectClose([loss.item()], [expected.loss], { rtol: 1e-5, atol: 1e-5, label: `${label} loss` });
            const inputs = weights ? [query, weights] : [query];
            return grad(loss, inputs, { gradOutputs: [tensor([upstream], [])] }).map((g) => g.toFloat32Array());
          });
          // The query gradient is a sum of K terms of size up to w·g/(B·τ) that cancel: atol relative to one term.
          const termScale = (Math.max(1, ...(weightValues ?? [])) * upstream) / (batch * temperature);
          for (const path of ['fused', 'composite'] as const) {
            const [gradQuery, gradWeights] = run(path);
            expectClose(gradQuery!, expected.gradQuery, { rtol: 1e-4, atol: 1e-5 * termScale, label: `${label} ${path} dquery` });
            if (weights) expectClose(gradWeights!, expected.gradWeights, { rtol: 1e-4, atol: 1e-6, label: `${label} ${path} dweights` });
          }
          expect(bank.grad).toBeNull();
        }
      });
    }
  }

  it('weights requiring grad with a query that does not: only the weight gradient, on both paths', () => {
    const { query, bank, indices, reference } = makeProblem(5, 12, 8, 30, 0.1);
    const constantQuery = query.detach();
    const weights = randomPositiveTensor([5], { requiresGrad: true });
    const expected = referenceMemoryInfoNce(reference, 3, weights.toFloat32Array());
    for (const path of ['fused', 'composite'] as const) {
      const [gradWeights] = withBackwardPath(path, () =>
        grad(F.memoryInfoNCE(constantQuery, bank, indices, { positives: 3, temperature: 0.1, weights }), [weights]));
      expectClose(gradWeights!.toFloat32Array(), expected.gradWeights, { rtol: 1e-4, atol: 1e-6, label: `${path} dweights` });
    }
  });

  it('agrees with the composition memoryLogits → logSoftmax → slice → mean', () => {
    const { query, bank, indices } = makeProblem(6, 40, 16, 25, 0.1);
    const weights = randomPositiveTensor([6]);
    const fused = F.memoryInfoNCE(query, bank, indices, { positives: 2, temperature: 0.1, weights });
    const logProbabilities = F.logSoftmax(F.memoryLogits(query, bank, indices, { temperature: 0.1 }), 1);
    const rowTerms = F.neg(F.mean(F.slice(logProbabilities, 1, 0, 2), 1));
    const composed = F.mean(F.mul(rowTerms, weights));
    expectClose([fused.item()], [composed.item()], { rtol: 1e-5, atol: 1e-6 });
    const [fusedGrad] = grad(fused, [query]);
    const [composedGrad] = grad(composed, [query]);
    expectClose(fusedGrad!.toFloat32Array(), composedGrad!.toFloat32Array(), { rtol: 1e-4, atol: 1e-6 });
  });

  it('passes finite differences, first and second order, in query and weights', () => {
    const { query, bank, indices } = makeProblem(4, 7, 5, 10, 0.5);
    const weights = randomPositiveTensor([4], { requiresGrad: true });
    const objective = (q: Tensor, w: Tensor): Tensor => F.memoryInfoNCE(q, bank, indices, { positives: 2, temperature: 0.5, weights: w });
    gradcheck(objective, [query, weights]);
    gradgradcheck(objective, [query, weights]);
    gradgradcheck((q) => F.memoryInfoNCE(q, bank, indices, { positives: 1, temperature: 0.5 }), [query]);
  });

  it('a bank that requires grad is rejected (it is a buffer and never gets a gradient)', () => {
    const { query, indices } = makeProblem(2, 3, 4, 5, 0.1);
    const bank = randomTensor([5, 4], { requiresGrad: true });
    expect(() => F.memoryInfoNCE(query, bank, indices, { positives: 1, temperature: 0.1 })).toThrow(/'bank' must not require grad/);
    expect(() => F.memoryLogits(query, bank, indices, { temperature: 0.1 })).toThrow(/'bank' must not require grad/);
    expect(() => F.memoryUpdate_(bank, Int32Array.of(0), randomTensor([1, 4]), { momentum: 0.5 })).toThrow(/'bank' must not require grad/);
    // detach() is the way: the loss then differentiates in the query only.
    const loss = F.memoryInfoNCE(query, bank.detach(), indices, { positives: 1, temperature: 0.1 });
    loss.backward();
    expect(bank.grad).toBeNull();
    expect(query.grad).not.toBeNull();
  });
});

describe('memoryUpdate_', () => {
  for (const momentum of [0, 0.5, 0.9, 1]) {
    it(`momentum ${momentum}: matches the reference, rows normalised, others untouched, version bumped`, () => {
      const bankRows = 50;
      const dim = 24;
      const bank = tensor(randomArray(bankRows * dim, 0.153), [bankRows, dim]);
      const before = bank.toFloat32Array();
      const rows = Int32Array.of(3, 17, 0, 49, 8);
      const z = tensor(normalisedRows(5, dim), [5, dim], { requiresGrad: true });
      const version = bank.version;
      F.memoryUpdate_(bank, rows, z, { momentum });
      expect(bank.version).toBe(version + 1);
      const after = bank.toFloat32Array();
      expectClose(after, referenceMemoryUpdate(before, dim, rows, z.toFloat32Array(), momentum), { rtol: 1e-6, atol: 1e-6 });
      for (const row of rows) {
        let squares = 0;
        for (let d = 0; d < dim; d += 1) squares += after[row * dim + d]! ** 2;
        expect(Math.abs(Math.sqrt(squares) - 1)).toBeLessThan(1e-6);
      }
      // z requiring grad is read detached: no graph, no gradient.
      expect(z.grad).toBeNull();
    });
  }

  it('rejects repeated or out-of-range rows, a length mismatch and a zero row, leaving the bank unchanged', () => {
    const bank = tensor(normalisedRows(10, 4), [10, 4]);
    const before = bank.toFloat32Array();
    const z = randomTensor([3, 4]);
    const version = bank.version;
    expect(() => F.memoryUpdate_(bank, Int32Array.of(1, 5, 1), z, { momentum: 0.5 })).toThrow(/holds 1 more than once/);
    expect(() => F.memoryUpdate_(bank, Int32Array.of(1, 5, 10), z, { momentum: 0.5 })).toThrow(/'rows' holds 10 at position 2, out of range/);
    expect(() => F.memoryUpdate_(bank, Int32Array.of(1, 5, -1), z, { momentum: 0.5 })).toThrow(/'rows' holds -1/);
    expect(() => F.memoryUpdate_(bank, Int32Array.of(1, 5), z, { momentum: 0.5 })).toThrow(/'rows' has length 2 but z \[3, 4\] has 3 rows/);
    expect(() => F.memoryUpdate_(bank, [1, 2, 3] as unknown as Int32Array, z, { momentum: 0.5 })).toThrow(/'rows' must be an IndexTensor or an Int32Array/);
    for (const momentum of [-0.1, 1.5, Number.NaN]) {
      expect(() => F.memoryUpdate_(bank, Int32Array.of(1, 2, 3), z, { momentum })).toThrow(/momentum must be a number in \[0, 1\]/);
    }
    expect(() => F.memoryUpdate_(bank, Int32Array.of(1, 2, 3), randomTensor([3, 5]), { momentum: 0.5 })).toThrow(/has rows of 5/);
    expect(() => F.memoryUpdate_(bank, Int32Array.of(1, 2, 3), z, {} as never)).toThrow(/momentum/);
    // momentum 0 and a zero row of z: 0/0 — an error naming the row, nothing written.
    const zeroRow = tensor([...randomArray(4), 0, 0, 0, 0, ...randomArray(4)], [3, 4]);
    expect(() => F.memoryUpdate_(bank, Int32Array.of(2, 7, 4), zeroRow, { momentum: 0 })).toThrow(/updated bank row 7 \(position 1\) has norm 0/);
    expect(bank.toFloat32Array()).toEqual(before);
    expect(bank.version).toBe(version);
  });

  it('updating the bank before backward raises the in-place modification error; after backward is fine', () => {
    const { query, bank, indices } = makeProblem(4, 10, 8, 20, 0.1);
    const z = randomTensor([2, 8]);
    const rows = Int32Array.of(indices[0]!, (indices[0]! + 1) % 20);
    const loss = F.memoryInfoNCE(query, bank, indices, { positives: 2, temperature: 0.1 });
    const logits = F.memoryLogits(query, bank, indices, { temperature: 0.1 });
    F.memoryUpdate_(bank, rows, z, { momentum: 0.5 });
    expect(() => grad(loss, [query])).toThrow(/memoryInfoNCE backward: a tensor of shape \[20, 8\] saved for backward was modified in place/);
    expect(() => grad(F.sum(logits), [query])).toThrow(/memoryLogits backward: .* modified in place/);
    // The right order: backward first (gradients of the reference's gathered copy), then update.
    const fresh = makeProblem(4, 10, 8, 20, 0.1);
    const freshLoss = F.memoryInfoNCE(fresh.query, fresh.bank, fresh.indices, { positives: 2, temperature: 0.1 });
    const [gradQuery] = grad(freshLoss, [fresh.query]);
    F.memoryUpdate_(fresh.bank, rows, z, { momentum: 0.5 });
    expectClose(gradQuery!.toFloat32Array(), referenceMemoryInfoNce(fresh.reference, 2, null).gradQuery, { rtol: 1e-4, atol: 1e-6 });
  });
});

describe('memory bank determinism and errors', () => {
  it('gives identical bits on repetition and for 1 or 2 threads', () => {
    const { query, bank, indices } = makeProblem(16, 600, 64, 500, 0.07);
    const weights = randomPositiveTensor([16], { requiresGrad: true });
    const upstream = tensor(randomArray(16 * 600), [16, 600]);
    const run = (): Float32Array[] => {
      const loss = F.memoryInfoNCE(query, bank, indices, { positives: 2, temperature: 0.07, weights });
      const logits = F.memoryLogits(query, bank, indices, { temperature: 0.07 });
      const [dq, dw] = grad(loss, [query, weights]);
      const [dl] = grad(logits, [query], { gradOutputs: [upstream] });
      return [loss.toFloat32Array(), logits.toFloat32Array(), dq!.toFloat32Array(), dw!.toFloat32Array(), dl!.toFloat32Array()];
    };
    expectSameBitsAcrossRunsAndThreads(run);
  });

  it('rejects bad shapes, indices, temperatures, positives and weights with errors naming the argument', () => {
    const query = randomTensor([4, 8]);
    const bank = randomTensor([20, 8]);
    const indices = randomIndices(12, 20);
    const options = { temperature: 0.1 };
    const nce = { positives: 1, temperature: 0.1 };
    expect(() => F.memoryLogits(randomTensor([4, 8, 1, 1]), bank, indices, options)).toThrow(/'query' must be 2-D \(\[batch, dim\] or \[queries, batch, dim\]\), got shape \[4, 8, 1, 1\]/);
    expect(() => F.memoryInfoNCE(randomTensor([2, 4, 8]), bank, indices, nce)).toThrow(/memoryInfoNCE: argument 'query' must be 2-D \(\[batch, dim\]\)/);
    expect(() => F.memoryLogits(randomTensor([0, 4, 8]), bank, indices, options)).toThrow(/'query' \[queries, batch, dim\] must hold at least one query, got shape \[0, 4, 8\]/);
    expect(() => F.memoryLogits(randomTensor([2, 4, 7]), bank, indices, options)).toThrow(/'bank' \[20, 8\] has rows of 8 but query \[2, 4, 7\] has dim 7/);
    expect(() => F.memoryLogits(query, randomTensor([20]), indices, options)).toThrow(/'bank' must be 2-D/);
    expect(() => F.memoryLogits(query, randomTensor([20, 7]), indices, options)).toThrow(/'bank' \[20, 7\] has rows of 7 but query \[4, 8\] has dim 8/);
    expect(() => F.memoryLogits(query, bank, [1, 2, 3, 4] as unknown as Int32Array, options)).toThrow(/'indices' must be an IndexTensor or an Int32Array/);
    expect(() => F.memoryLogits(query, bank, randomIndices(10, 20), options)).toThrow(/'indices' has length 10, which is not a positive multiple of the batch size 4/);
    expect(() => F.memoryLogits(query, bank, new Int32Array(0), options)).toThrow(/'indices' has length 0/);
    const bad = indices.slice();
    bad[7] = 20;
    expect(() => F.memoryLogits(query, bank, bad, options)).toThrow(/'indices' holds 20 at position 7, out of range for a bank of 20 rows/);
    bad[7] = -3;
    expect(() => F.memoryInfoNCE(query, bank, bad, nce)).toThrow(/'indices' holds -3 at position 7/);
    for (const temperature of [0, -1, Number.NaN, Number.POSITIVE_INFINITY, 1e-300]) {
      expect(() => F.memoryLogits(query, bank, indices, { temperature })).toThrow(/temperature/);
      expect(() => F.memoryInfoNCE(query, bank, indices, { positives: 1, temperature })).toThrow(/temperature/);
    }
    expect(() => F.memoryLogits(query, bank, indices, undefined as never)).toThrow(/temperature must be a finite number > 0, got undefined/);
    expect(() => F.memoryLogits(query, bank, indices, 3 as never)).toThrow(/options must be an object/);
    expect(() => F.memoryLogits(query, bank, indices, { temperature: 0.1, tau: 1 } as never)).toThrow(/unknown option 'tau'/);
    for (const positives of [0, 4, 1.5, Number.NaN]) {
      expect(() => F.memoryInfoNCE(query, bank, indices, { positives, temperature: 0.1 })).toThrow(/positives must be an integer in \[1, K = 3\]/);
    }
    expect(() => F.memoryInfoNCE(query, bank, indices, { ...nce, weights: randomTensor([5]) })).toThrow(/'weights' must have shape \[4\]/);
    expect(() => F.memoryInfoNCE(query, bank, indices, { ...nce, weights: randomTensor([4, 1]) })).toThrow(/'weights' must have shape \[4\]/);
    expect(() => F.memoryLogits(randomTensor([0, 8]), bank, new Int32Array(0), options)).toThrow(/'query' must have at least one row/);
  });

});

runOnEverySimdLevel(import.meta.url, 'memory bank');
