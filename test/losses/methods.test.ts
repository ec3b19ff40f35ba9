// Method losses: baseline = Σ CE over networks and heads; dml = CE + mean over peers of
// KL_T(o_n ‖ sg o_m)·T² (batchmean), checked against a float64 hand computation, and the
// stop-gradient on the teacher side checked through the gradients.
import { describe, expect, it } from 'vitest';
import { tensor, tidy, grad } from '../../src/index.js';
import { BaselineMethod, DmlMethod } from '../../src/losses/index.js';
import { distillKL } from '../../src/losses/terms.js';
import { getMethod, methodNames } from '../../src/losses/registry.js';
import type { StepBatch } from '../../src/losses/method.js';
import type { Student, StudentOutput } from '../../src/models/types.js';
import { randomArray } from '../helpers/random.js';

function softmax64(row: ArrayLike<number>, T: number): number[] {
  const scaled = Array.from(row, (v) => v / T);
  const max = Math.max(...scaled);
  const exps = scaled.map((v) => Math.exp(v - max));
  const total = exps.reduce((a, b) => a + b, 0);
  return exps.map((v) => v / total);
}

function ce64(logits: Float32Array, labels: Int32Array, classes: number): number {
  let total = 0;
  for (let i = 0; i < labels.length; i += 1) total -= Math.log(softmax64(logits.subarray(i * classes, (i + 1) * classes), 1)[labels[i]!]!);
  return total / labels.length;
}

/** KL(softmax(t/T) ‖ softmax(s/T)) · T², averaged over rows — the DML/KD term for student s. */
function kl64(student: Float32Array, teacher: Float32Array, rows: number, classes: number, T: number): number {
  let total = 0;
  for (let i = 0; i < rows; i += 1) {
    const p = softmax64(student.subarray(i * classes, (i + 1) * classes), T);
    const q = softmax64(teacher.subarray(i * classes, (i + 1) * classes), T);
    for (let c = 0; c < classes; c += 1) total += q[c]! * (Math.log(q[c]!) - Math.log(p[c]!));
  }
  return (total / rows) * T * T;
}

const B = 6;
const C = 5;
const labels = Int32Array.from({ length: B }, (_, i) => (i * 3) % C);

function outputs(data: Float32Array[], requiresGrad = false): StudentOutput[] {
  return data.map((values) => ({ features: [], logits: [tensor(values, [B, C], { requiresGrad })] }));
}

// The losses read only the labels of the batch.
const batch = { y: labels } as StepBatch;
const noNetworks: Student[] = [];

describe('objectives', () => {
  it('distillKL matches the hand computation for several temperatures', () => {
    const s = randomArray(B * C, 3);
    const t = randomArray(B * C, 3);
    for (const T of [1, 3, 4.5]) {
      const value = tidy(() => distillKL(tensor(s, [B, C]), tensor(t, [B, C]), T).item());
      expect(value).toBeCloseTo(kl64(s, t, B, C, T), 4);
    }
  });

  it('baseline sums the CE of every network and every head', () => {
    const a = randomArray(B * C, 2);
    const b = randomArray(B * C, 2);
    const aux = randomArray(B * C, 2);
    tidy(() => {
      const outs = outputs([a, b]);
      outs[0]!.logits.unshift(tensor(aux, [B, C]));
      const result = new BaselineMethod(noNetworks).loss(outs, batch);
      const parts = result.parts.values();
      const expected = ce64(a, labels, C) + ce64(b, labels, C) + ce64(aux, labels, C);
      expect(result.loss.item()).toBeCloseTo(expected, 4);
      expect(parts['ce/net0']).toBeCloseTo(ce64(a, labels, C) + ce64(aux, labels, C), 4);
      expect(parts['ce/net0/aux0']).toBeCloseTo(ce64(aux, labels, C), 4);
      expect(parts['ce/net0/final']).toBeCloseTo(ce64(a, labels, C), 4);
      expect(parts.ce).toBeCloseTo(expected, 4);
      expect(parts.total).toBeCloseTo(expected, 4);
      // Key order = summary.csv column order; per-head keys only for a network with several heads.
      expect(Object.keys(parts)).toEqual(['ce/net0', 'ce/net0/aux0', 'ce/net0/final', 'ce/net1', 'ce', 'total']);
      result.parts.dispose();
    });
  });

  it('dml = Σ CE + Σ_n mean_{m≠n} KL_T(o_n ‖ sg o_m) with T=3 (three networks)', () => {
    const data = [randomArray(B * C, 3), randomArray(B * C, 3), randomArray(B * C, 3)];
    tidy(() => {
      const result = new DmlMethod(noNetworks, { kdT: 3 }).loss(outputs(data), batch);
      const loss = result.loss;
      const parts = result.parts.values();
      result.parts.dispose();
      expect(Object.keys(parts)).toEqual(['ce/net0', 'ce/net1', 'ce/net2', 'ce', 'kd/net0', 'kd/net1', 'kd/net2', 'kd', 'total']);
      let expected = 0;
      let kd = 0;
      data.forEach((student, n) => {
        expected += ce64(student, labels, C);
        let perNet = 0;
        data.forEach((teacher, m) => {
          if (m !== n) perNet += kl64(student, teacher, B, C, 3);
        });
        kd += perNet / 2;
      });
      expected += kd;
      expect(loss.item()).toBeCloseTo(expected, 4);
      expect(parts.kd).toBeCloseTo(kd, 4);
    });
  });

  it('dml gradients: the KL term reaches only the student (the peer is detached)', () => {
    const a = randomArray(B * C, 3);
    const b = randomArray(B * C, 3);
    tidy(() => {
      const outs = outputs([a, b], true);
      const [la, lb] = [outs[0]!.logits[0]!, outs[1]!.logits[0]!];
      const { loss, parts } = new DmlMethod(noNetworks, { kdT: 3 }).loss(outs, batch);
      parts.dispose();
      const [ga] = grad(loss, [la]);
      // d/d o_a of [CE(o_a) + KL_T(o_a ‖ sg o_b)] = (softmax(o_a) − onehot)/B + T·(softmax(o_a/T) − softmax(o_b/T))/B
      const expected = new Float64Array(B * C);
      for (let i = 0; i < B; i += 1) {
        const p1 = softmax64(a.subarray(i * C, (i + 1) * C), 1);
        const pT = softmax64(a.subarray(i * C, (i + 1) * C), 3);
        const qT = softmax64(b.subarray(i * C, (i + 1) * C), 3);
        for (let c = 0; c < C; c += 1) expected[i * C + c] = (p1[c]! - (c === labels[i] ? 1 : 0)) / B + (3 * (pT[c]! - qT[c]!)) / B;
      }
      const got = ga!.toFloat32Array();
      for (let k = 0; k < got.length; k += 1) expect(got[k]).toBeCloseTo(expected[k]!, 5);
      void lb;
    });
  });

  it('the registry knows baseline, dml, mcl and lmcl and rejects others', () => {
    expect(methodNames()).toEqual(['baseline', 'dml', 'mcl', 'lmcl']);
    expect(getMethod('baseline').create({ networks: noNetworks, classes: C, options: {} }).name).toBe('baseline');
    expect(getMethod('dml').create({ networks: noNetworks, classes: C, options: { kdT: 2 } }).name).toBe('dml');
    expect(() => getMethod('crd')).toThrow(/unknown method 'crd'/);
    expect(() => new DmlMethod(noNetworks, { kdT: 0 })).toThrow(/kd-T/);
  });

  it('a single-network dml reports kd = 0, as before', () => {
    tidy(() => {
      const { parts } = new DmlMethod(noNetworks, { kdT: 3 }).loss(outputs([randomArray(B * C, 2)]), batch);
      expect(parts.values().kd).toBe(0);
      parts.dispose();
    });
  });
});
