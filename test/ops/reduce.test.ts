// sum / mean over axes: forward vs float64 reference (rtol 1e-5 for long float32 sums),
// finite-difference gradients (first and second order), bad dims.
import { describe, expect, it } from 'vitest';
import { F } from '../../src/index.js';
import { referenceSum } from '../reference/broadcast_reference.js';
import { gradcheck, gradgradcheck } from '../helpers/gradcheck.js';
import { expectClose, randomTensor } from '../helpers/random.js';

const cases: [number[], number[]][] = [
  [[10], [0]],
  [[3, 4], [0]],
  [[3, 4], [1]],
  [[2, 3, 4], [0, 2]],
  [[2, 3, 4, 5], [1]],
  [[2, 3, 4, 5], [0, 2, 3]],
  [[2, 3, 4, 5], [1, 3]],
  [[5, 1, 7], [1]],
  [[100000], [0]],
  [[128, 64, 9], [0, 2]],
  // Innermost axis reduced with axes kept between (the runs path): batchnorm's NCHW channel sums.
  [[32, 16, 8, 8], [0, 2, 3]],
  [[3, 2, 4, 3, 37], [0, 2, 4]],
  // Innermost axis kept with reduced axes between (the general odometer).
  [[2, 3, 4, 5], [0, 2]],
];

describe('sum and mean', () => {
  it('sum matches the float64 reference over many axis sets', () => {
    for (const [shape, axes] of cases) {
      const x = randomTensor(shape);
      const out = F.sum(x, axes);
      expect(out.shape).toEqual(shape.filter((_, d) => !axes.includes(d)));
      expectClose(out.toFloat32Array(), referenceSum(x.toFloat32Array(), shape, axes), { rtol: 1e-5, atol: 1e-5 * Math.sqrt(x.size), label: JSON.stringify([shape, axes]) });
      const kept = F.sum(x, axes, true);
      expect(kept.shape).toEqual(shape.map((e, d) => (axes.includes(d) ? 1 : e)));
    }
  });

  it('mean divides by the reduced count; all axes by default', () => {
    const x = randomTensor([4, 6]);
    const values = x.toFloat32Array();
    const total = values.reduce((s, v) => s + v, 0);
    expect(F.mean(x).item()).toBeCloseTo(total / 24, 5);
    expect(F.sum(x, -1).shape).toEqual([4]);
  });

  it('gradients pass finite differences (first and second order)', () => {
    const x = randomTensor([3, 4, 5], { requiresGrad: true });
    gradcheck((t) => F.sum(t, [0, 2]), [x]);
    gradcheck((t) => F.mean(t, 1, true), [x]);
    gradgradcheck((t) => F.mul(F.sum(t, 1, true), t), [x]);
  });

  it('rejects bad dims', () => {
    const x = randomTensor([3, 4]);
    expect(() => F.sum(x, 2)).toThrow(/sum: dim 2 is out of range for a 2-D tensor/);
    expect(() => F.sum(x, [0, 0])).toThrow(/repeat an axis/);
    expect(() => F.mean(x, 1.5 as never)).toThrow(/integer/);
  });

  it('is deterministic: same inputs give identical bits', () => {
    const x = randomTensor([64, 300, 7]);
    const first = F.sum(x, [0, 2]).toFloat32Array();
    const second = F.sum(x, [0, 2]).toFloat32Array();
    expect(Buffer.from(first.buffer).equals(Buffer.from(second.buffer))).toBe(true);
  });
});
