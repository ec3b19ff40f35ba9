// Sampler invariants: shuffle is a permutation (each index at most once per epoch); m-per-class
// batches hold floor(B/m) distinct classes with m (or m+1) distinct images each; seeded.
import { describe, expect, it } from 'vitest';
import { batchesPerEpoch, mPerClassPlan, resolveM, shufflePlan } from '../../src/data/sampler.js';
import { Generator } from '../../src/tensor/random.js';

function labelsOf(count: number, classes: number): Int32Array {
  // Unbalanced on purpose (the first half of the classes has ~2× the images), every class ≥ 14 images.
  const labels = new Int32Array(count);
  for (let i = 0; i < count; i += 1) labels[i] = i < 0.7 * count ? (i * 7) % classes : (i * 3) % Math.ceil(classes / 2);
  return labels;
}

describe('shuffle sampler', () => {
  it('each index at most once per epoch; partial last batch kept or dropped', () => {
    for (const dropLast of [false, true]) {
      const plan = shufflePlan(103, 10, dropLast, new Generator(5));
      expect(plan.starts.length).toBe(batchesPerEpoch('shuffle', 103, 10, dropLast));
      expect(plan.starts.length).toBe(dropLast ? 10 : 11);
      const seen = new Set<number>();
      plan.starts.forEach((start, b) => {
        for (let i = start; i < start + plan.sizes[b]!; i += 1) {
          expect(seen.has(plan.order[i]!)).toBe(false);
          seen.add(plan.order[i]!);
        }
      });
      expect(seen.size).toBe(dropLast ? 100 : 103);
      for (const index of seen) expect(index >= 0 && index < 103).toBe(true);
    }
  });

  it('same seed, same order; another seed, another order', () => {
    const a = shufflePlan(500, 32, false, new Generator(1)).order;
    expect(Array.from(shufflePlan(500, 32, false, new Generator(1)).order)).toEqual(Array.from(a));
    expect(Array.from(shufflePlan(500, 32, false, new Generator(2)).order)).not.toEqual(Array.from(a));
  });
});

describe('m-per-class sampler', () => {
  it('resolveM: 2 for 100 classes at B=128 (64×2), batch/classes rounded down for 10 classes', () => {
    expect(resolveM(128, 100)).toBe(2);
    expect(resolveM(128, 10)).toBe(12);
    expect(resolveM(100, 10)).toBe(10);
    expect(resolveM(128, 10, 16)).toBe(16);
    expect(() => resolveM(128, 10, 2)).toThrow(/needs 64 distinct classes per batch but the data has 10; use m >= 12/);
  });

  it('composition: floor(B/m) distinct classes, m or m+1 distinct images each, floor(N/B) batches', () => {
    const cases = [
      { count: 2000, classes: 100, batch: 128, m: 2 },
      { count: 1000, classes: 10, batch: 128, m: 12 },
      { count: 700, classes: 10, batch: 40, m: 4 },
    ];
    for (const { count, classes, batch, m } of cases) {
      const labels = labelsOf(count, classes);
      const plan = mPerClassPlan(labels, classes, batch, m, new Generator(3));
      expect(plan.starts.length).toBe(Math.floor(count / batch));
      expect(plan.order.length).toBe(plan.starts.length * batch);
      for (let b = 0; b < plan.starts.length; b += 1) {
        expect(plan.sizes[b]).toBe(batch);
        const items = Array.from(plan.order.subarray(plan.starts[b]!, plan.starts[b]! + batch));
        expect(new Set(items).size).toBe(batch); // distinct images
        const perClass = new Map<number, number>();
        for (const index of items) perClass.set(labels[index]!, (perClass.get(labels[index]!) ?? 0) + 1);
        expect(perClass.size).toBe(Math.floor(batch / m));
        const sizes = [...perClass.values()].sort((x, y) => x - y);
        expect(sizes[0]).toBeGreaterThanOrEqual(m);
        expect(sizes[sizes.length - 1]).toBeLessThanOrEqual(m + 1);
        expect(sizes.filter((s) => s === m + 1).length).toBe(batch % m);
      }
    }
  });

  it('classes vary across batches and the plan is seeded', () => {
    const labels = labelsOf(3000, 100);
    const plan = mPerClassPlan(labels, 100, 128, 2, new Generator(9));
    const firstClasses = (b: number): string => Array.from(plan.order.subarray(plan.starts[b]!, plan.starts[b]! + 128), (i) => labels[i]).join(',');
    expect(firstClasses(0)).not.toBe(firstClasses(1));
    expect(Array.from(mPerClassPlan(labels, 100, 128, 2, new Generator(9)).order)).toEqual(Array.from(plan.order));
  });

  it('a class smaller than m is sampled with replacement (reference behaviour), other classes distinct', () => {
    const labels = Int32Array.from([0, 1, 1, 1, 1, 1, 1, 1, 1, 1]);
    const plan = mPerClassPlan(labels, 2, 6, 3, new Generator(0));
    expect(plan.starts.length).toBe(1);
    const items = Array.from(plan.order);
    expect(items.filter((i) => i === 0).length).toBe(3);
    expect(new Set(items.filter((i) => i !== 0)).size).toBe(3);
  });
});
