// The trainer's data subsets: --train-per-class (the first N images of each class, file order,
// before --limit-train) and --limit-train.
import { describe, expect, it } from 'vitest';
import { balancedSubset, truncateDataset } from '../../src/train/data.js';
import type { ImageDataset } from '../../src/data/types.js';

function dataset(labels: number[]): ImageDataset {
  // One 1×1×2 image per label whose pixels name its index, so a wrong copy is visible.
  const pixels = Uint8Array.from(labels.flatMap((_, index) => [index, 200 - index]));
  return { name: 'toy', pixels, labels: Int32Array.from(labels), count: labels.length, channels: 1, height: 1, width: 2, classes: 3 };
}

describe('balancedSubset', () => {
  it('keeps the first N of every class in file order, with their pixels', () => {
    const split = dataset([2, 0, 0, 1, 2, 0, 1, 1, 2, 0]);
    const subset = balancedSubset(split, 2);
    expect([...subset.labels]).toEqual([2, 0, 0, 1, 2, 1]);
    expect(subset.count).toBe(6);
    expect([...subset.pixels]).toEqual([0, 200, 1, 199, 2, 198, 3, 197, 4, 196, 6, 194]);
    expect(subset.name).toBe('toy (first 2 per class)');
    expect(truncateDataset(subset, 4).count).toBe(4);
  });

  it('says which classes have fewer than N; 0 and N ≥ every class keep the split as it is', () => {
    const split = dataset([0, 0, 0, 1, 2, 2]);
    expect(balancedSubset(split, 2).name).toBe('toy (first 2 per class; classes 1 (1) have fewer)');
    expect(balancedSubset(split, 0)).toBe(split);
    expect(balancedSubset(split, 3).count).toBe(6);
  });
});
