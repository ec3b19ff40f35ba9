// contrastiveKL and distillKL: value and gradients (student side, weights) against the float64
// reference over batch sizes 1..64 a 1,500-row batch (direction rows kept) and a 2,100-row one (recomputed in
// three row blocks), weights on/off; the teacher
// side gets no gradient even when it requires grad (stop-gradient); student === teacher gives 0;
// finite-difference gradcheck and gradgradcheck; bad input.
// Tolerances: loss rtol 5e-5 + atol 1e-6 (distillKL: 1e-6·T²·(1 + max|logit|/T)) (float32 GEMM, exp
// and a difference of log-sum-exps);
// gradients atol 2e-4·max|g| + rtol 2e-4.
import { describe, expect, it } from 'vitest';
import { F, Tensor, grad, tensor } from '../../src/index.js';
import { gradcheck, gradgradcheck } from '../helpers/gradcheck.js';
import { expectClose, randomArray, randomTensor } from '../helpers/random.js';
import { referenceContrastiveKL, referenceDistillKL } from '../reference/contrastive_reference.ts';

function maxAbs(values: ArrayLike<number>): number {
  let m = 0;
  for (let k = 0; k < values.length; k += 1) m = Math.max(m, Math.abs(values[k]!));
  return m;
}

function expectGradient(actual: Float32Array, expected: Float64Array, label: string): void {
  expectClose(actual, expected, { rtol: 2e-4, atol: 2e-4 * Math.max(1e-4, maxAbs(expected)), label });
}

function randomWeights(batch: number, requiresGrad = true): Tensor {
  return tensor(Float32Array.from({ length: batch }, () => 0.27 + 0.46 * Math.random()), [batch], { requiresGrad });
}

describe('contrastiveKL', () => {
  const check = (batch: number, dim: number, temperature: number, klTemperature: number, withWeights: boolean): void => {
    const [sa, sc, ta, tc] = [0, 1, 2, 3].map(() => randomTensor([batch, dim], { requiresGrad: true, scale: 0.5 })) as [Tensor, Tensor, Tensor, Tensor];
    const weights = withWeights ? randomWeights(batch) : null;
    const loss = F.contrastiveKL(sa, sc, ta, tc, { temperature, klTemperature, weights });
    const expected = referenceContrastiveKL(sa.toFloat32Array(), sc.toFloat32Array(), ta.toFloat32Array(), tc.toFloat32Array(),
      batch, dim, temperature, klTemperature, weights?.toFloat32Array() ?? null);
    const label = `B ${batch} D ${dim} τ ${temperature} T ${klTemperature} weights ${withWeights}`;
    expectClose([loss.item()], [expected.loss], { rtol: 5e-5, atol: 1e-6, label: `${label} loss` });
    const wrt = weights ? [sa, sc, ta, tc, weights] : [sa, sc, ta, tc];
    const gradients = grad(loss, wrt, { allowUnused: true });
    expectGradient(gradients[0]!.toFloat32Array(), expected.gradStudentAnchor, `${label} student anchor`);
    expectGradient(gradients[1]!.toFloat32Array(), expected.gradStudentContrast, `${label} student contrast`);
    // Stop-gradient: the teacher is not differentiated (zeros with allowUnused).
    expect(maxAbs(gradients[2]!.toFloat32Array())).toBe(0);
    expect(maxAbs(gradients[3]!.toFloat32Array())).toBe(0);
    if (weights) expectGradient(gradients[4]!.toFloat32Array(), expected.gradWeights, `${label} weights`);
  };

  it('matches the float64 reference in value and gradients; the teacher gets none', () => {
    for (const [batch, dim, temperature, klTemperature, withWeights] of [
      [1, 3, 0.5, 1, false], [5, 4, 0.1, 3, true], [17, 16, 0.1, 3, false], [64, 128, 0.1, 3, true], [40, 8, 0.07, 2, true],
    ] as [number, number, number, number, boolean][]) check(batch, dim, temperature, klTemperature, withWeights);
  });

  it('matches the reference when the batch spans several row blocks', () => {
    check(1500, 8, 0.1, 3, true); // direction rows kept (B² ≤ 2^22)
    check(2100, 8, 0.1, 3, true); // recomputed in three row blocks
  });

  it('is zero when student and teacher are the same similarities (L_aa ‖ sg L_aa)', () => {
    const z = randomTensor([12, 8], { requiresGrad: true });
    const loss = F.contrastiveKL(z, z, z, z, { temperature: 0.1, klTemperature: 3 });
    expect(Math.abs(loss.item())).toBeLessThan(1e-5);
  });

  it('passes gradcheck and gradgradcheck (student anchor, student contrast, weights)', () => {
    const ta = randomTensor([6, 4]);
    const tc = randomTensor([6, 4]);
    const fn = (a: Tensor, c: Tensor, w: Tensor) => F.contrastiveKL(a, c, ta, tc, { temperature: 0.5, klTemperature: 2, weights: w });
    gradcheck(fn, [randomTensor([6, 4], { requiresGrad: true }), randomTensor([6, 4], { requiresGrad: true }), randomWeights(6)]);
    gradgradcheck(fn, [randomTensor([6, 4], { requiresGrad: true }), randomTensor([6, 4], { requiresGrad: true }), randomWeights(6)]);
  });

  it('rejects bad input with errors that name the argument', () => {
    const a = randomTensor([4, 3]);
    const ok = { temperature: 0.1, klTemperature: 3 };
    expect(() => F.contrastiveKL(a, a, a, randomTensor([4, 2]), ok)).toThrow(/teacherContrast.*shape \[4, 2\]/);
    expect(() => F.contrastiveKL(a, a, a, a, { temperature: 0.1, klTemperature: 0 })).toThrow(/klTemperature must be a finite number > 0/);
    expect(() => F.contrastiveKL(a, a, a, a, { temperature: -2, klTemperature: 3 })).toThrow(/temperature must be a finite number > 0/);
    expect(() => F.contrastiveKL(a, a, a, a, { ...ok, weights: randomTensor([4, 1]) })).toThrow(/weights.*\[4\]/);
  });
});

describe('distillKL', () => {
  it('matches the float64 reference in value and gradients; the teacher gets none', () => {
    for (const [batch, classes, temperature, withWeights] of [[1, 1, 3, false], [3, 10, 3, true], [128, 100, 3, true], [9, 1000, 1, false]] as [number, number, number, boolean][]) {
      const student = randomTensor([batch, classes], { requiresGrad: true, scale: 4 });
      const teacher = randomTensor([batch, classes], { requiresGrad: true, scale: 4 });
      const weights = withWeights ? randomWeights(batch) : null;
      const loss = F.distillKL(student, teacher, { temperature, weights });
      const expected = referenceDistillKL(student.toFloat32Array(), teacher.toFloat32Array(), batch, classes, temperature, weights?.toFloat32Array() ?? null);
      const label = `B ${batch} C ${classes} T ${temperature}`;
      // The loss is T²·(Σ q·s(t − x) + lse_x − lse_t): float32 rounding of the log-sum-exps is
      // relative to the logits, so the absolute floor scales with T²·max|logit/T| (C = 1: exactly 0
      // in theory, ~1e-6 in float32).
      const magnitude = Math.max(...student.toFloat32Array().map(Math.abs), ...teacher.toFloat32Array().map(Math.abs)) / temperature;
      expectClose([loss.item()], [expected.loss], { rtol: 5e-5, atol: 1e-6 * temperature * temperature * (1 + magnitude), label });
      const gradients = grad(loss, weights ? [student, teacher, weights] : [student, teacher], { allowUnused: true });
      expectGradient(gradients[0]!.toFloat32Array(), expected.gradStudent, `${label} student`);
      expect(maxAbs(gradients[1]!.toFloat32Array())).toBe(0);
      if (weights) expectGradient(gradients[2]!.toFloat32Array(), expected.gradWeights, `${label} weights`);
    }
  });

  it('equals torch-style batchmean KL·T² of the ensemble teacher (DML logit KD)', () => {
    // KL(softmax(t/T) ‖ softmax(s/T))·T² with batchmean = the unweighted distillKL.
    const s = Float32Array.from([1, 2, 3, 0, 0, 0]);
    const t = Float32Array.from([3, 2, 1, 1, 1, 1]);
    const loss = F.distillKL(tensor(s, [2, 3]), tensor(t, [2, 3]), { temperature: 2 }).item();
    const expected = referenceDistillKL(s, t, 2, 3, 2, null).loss;
    expectClose([loss], [expected], { rtol: 1e-5, atol: 1e-7 });
    expect(loss).toBeGreaterThan(0);
  });

  it('passes gradcheck and gradgradcheck (student, weights)', () => {
    const teacher = randomTensor([5, 7], { scale: 3 });
    const fn = (s: Tensor, w: Tensor) => F.distillKL(s, teacher, { temperature: 3, weights: w });
    gradcheck(fn, [randomTensor([5, 7], { requiresGrad: true, scale: 3 }), randomWeights(5)]);
    gradgradcheck(fn, [randomTensor([5, 7], { requiresGrad: true, scale: 3 }), randomWeights(5)]);
  });

  it('rejects bad input with errors that name the argument', () => {
    const s = randomTensor([4, 3]);
    expect(() => F.distillKL(s, randomTensor([4, 5]), { temperature: 3 })).toThrow(/teacherLogits.*shape \[4, 5\]/);
    expect(() => F.distillKL(s, s, { temperature: Number.NaN })).toThrow(/temperature must be a finite number > 0/);
    expect(() => F.distillKL(s, s, { temperature: 3, weights: tensor(randomArray(5), [5]) })).toThrow(/weights.*\[4\]/);
  });
});
