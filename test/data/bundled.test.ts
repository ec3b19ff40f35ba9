// The bundled Fashion-MNIST sample (data/fashion-mnist-sample/): loads with the IDX loader,
// 10,000 train / 2,000 test, balanced classes; dataset resolution for fashion-mnist.
import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { SYSTEM_FASHION_MNIST, bundledFashionMnistDir, channelStats, loadDataset } from '../../src/data/datasets.js';

describe('bundled Fashion-MNIST sample', () => {
  it('loads: 10,000 train (1,000 per class) and 2,000 test (200 per class), 1×28×28', () => {
    const splits = loadDataset('fashion-mnist', { data: 'bundled' });
    expect(splits.source).toBe('bundled');
    expect(splits.train.name).toContain('bundled sample');
    for (const [split, count] of [[splits.train, 10_000], [splits.test, 2_000]] as const) {
      expect([split.count, split.channels, split.height, split.width, split.classes]).toEqual([count, 1, 28, 28, 10]);
      const perClass = new Array(10).fill(0);
      for (const label of split.labels) perClass[label] += 1;
      expect(perClass).toEqual(new Array(10).fill(count / 10));
    }
    expect(splits.train.classNames?.[9]).toBe('Ankle boot');
    expect(splits.mean).toEqual([0.286]);
    expect(splits.std).toEqual([0.353]);
    // The sample's own statistics are close to the full set's constants.
    const stats = channelStats(splits.train);
    expect(Math.abs(stats.mean[0]! - 0.286)).toBeLessThan(0.01);
    expect(Math.abs(stats.std[0]! - 0.353)).toBeLessThan(0.01);
  });

  it('without --data: the system copy when installed, otherwise the bundled sample', () => {
    expect(existsSync(bundledFashionMnistDir())).toBe(true);
    const systemInstalled = existsSync(`${SYSTEM_FASHION_MNIST}/train-images-idx3-ubyte.gz`);
    const splits = loadDataset('fashion-mnist');
    if (systemInstalled) {
      expect(splits.source).toBe(SYSTEM_FASHION_MNIST);
      expect([splits.train.count, splits.test.count]).toEqual([60_000, 10_000]);
    } else {
      expect(splits.source).toBe('bundled');
      expect(splits.train.count).toBe(10_000);
    }
  });

  it('other datasets need --data; unknown names are rejected', () => {
    expect(() => loadDataset('cifar100')).toThrow(/cifar100: --data DIR is required/);
    expect(() => loadDataset('svhn' as never)).toThrow(/unknown dataset "svhn"/);
  });
});
