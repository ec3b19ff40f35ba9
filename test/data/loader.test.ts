// DataLoader: determinism (same seed → same batches; workers 0 vs 2 give the same bits),
// bit-exact mid-epoch resume, the eval iterator, and close().
import { afterAll, describe, expect, it } from 'vitest';
import { DataLoader, type DataLoaderOptions } from '../../src/data/loader.js';
import type { Batch, ImageDataset } from '../../src/data/types.js';
import { allocateFloats, allocateSharedFloats } from '../../src/data/buffers.js';

function syntheticDataset(count: number, channels: number, size: number, classes: number): ImageDataset {
  const pixels = new Uint8Array(count * channels * size * size);
  for (let i = 0; i < pixels.length; i += 1) pixels[i] = Math.floor(Math.random() * 256);
  const labels = Int32Array.from({ length: count }, (_, i) => (i * 7) % classes);
  return { name: 'synthetic', pixels, labels, count, channels, height: size, width: size, classes };
}

interface Snapshot {
  x: Float32Array;
  shape: number[];
  y: number[];
  indices: number[];
}

function snap(batch: Batch): Snapshot {
  const result = { x: batch.x.toFloat32Array(), shape: [...batch.x.shape], y: Array.from(batch.y), indices: Array.from(batch.indices) };
  batch.x.dispose();
  return result;
}

function expectSameBits(a: Snapshot[], b: Snapshot[]): void {
  expect(b.length).toBe(a.length);
  a.forEach((batch, k) => {
    expect(b[k]!.indices).toEqual(batch.indices);
    expect(b[k]!.y).toEqual(batch.y);
    expect(b[k]!.shape).toEqual(batch.shape);
    expect(Buffer.from(b[k]!.x.buffer, b[k]!.x.byteOffset, b[k]!.x.byteLength).equals(Buffer.from(batch.x.buffer, batch.x.byteOffset, batch.x.byteLength))).toBe(true);
  });
}

const data = syntheticDataset(230, 3, 8, 10);
const loaders: DataLoader[] = [];
function make(overrides: Partial<DataLoaderOptions> = {}): DataLoader {
  const loader = new DataLoader(data, {
    batchSize: 20, sampler: 'm-per-class', m: 2, augment: true, flip: true, padding: 2,
    mean: [0.5, 0.4, 0.3], std: [0.25, 0.2, 0.3], seed: 11, workers: 0, ...overrides,
  });
  loaders.push(loader);
  return loader;
}
afterAll(() => loaders.forEach((loader) => loader.close()));

describe('DataLoader', () => {
  it('same seed → same batches; another seed or epoch → different ones', () => {
    const a = [...make().epoch(0)].map(snap);
    const b = [...make().epoch(0)].map(snap);
    expectSameBits(a, b);
    expect(a.length).toBe(Math.floor(230 / 20));
    const c = [...make({ seed: 12 }).epoch(0)].map(snap);
    expect(c[0]!.indices).not.toEqual(a[0]!.indices);
    const d = [...make().epoch(1)].map(snap);
    expect(d[0]!.indices).not.toEqual(a[0]!.indices);
    // m-per-class with m = 2: 10 classes × 2 per batch.
    for (const batch of a) {
      const counts = new Map<number, number>();
      for (const label of batch.y) counts.set(label, (counts.get(label) ?? 0) + 1);
      expect([...counts.values()]).toEqual(new Array(10).fill(2));
    }
  });

  it('workers 0, 1 and 2 give identical bits (train epochs, both samplers, and eval)', () => {
    for (const sampler of ['m-per-class', 'shuffle'] as const) {
      const inline = make({ sampler, workers: 0 });
      const one = make({ sampler, workers: 1 });
      const two = make({ sampler, workers: 2 });
      for (const epoch of [0, 1]) {
        const reference = [...inline.epoch(epoch)].map(snap);
        expectSameBits(reference, [...one.epoch(epoch)].map(snap));
        expectSameBits(reference, [...two.epoch(epoch)].map(snap));
      }
      expectSameBits([...inline.evalBatches()].map(snap), [...two.evalBatches()].map(snap));
      one.close();
      two.close();
    }
  });

  it('shuffle: every index once per epoch, last partial batch kept unless dropLast', () => {
    const loader = make({ sampler: 'shuffle', workers: 2 });
    expect(loader.batchesPerEpoch).toBe(12);
    const batches = [...loader.epoch(0)].map(snap);
    expect(batches.length).toBe(12);
    expect(batches[11]!.shape).toEqual([10, 3, 8, 8]);
    const all = batches.flatMap((b) => b.indices).sort((p, q) => p - q);
    expect(all).toEqual(Array.from({ length: 230 }, (_, i) => i));
    expect(make({ sampler: 'shuffle', dropLast: true }).batchesPerEpoch).toBe(11);
  });

  it('mid-epoch resume: the remaining batches equal an uninterrupted run, bit for bit', () => {
    for (const [sampler, workers] of [['m-per-class', 2], ['shuffle', 0]] as const) {
      const full = make({ sampler, workers: 0 });
      const epoch0 = [...full.epoch(0)].map(snap);
      const epoch1 = [...full.epoch(1)].map(snap);
      expect(full.state().epoch).toBe(2);
      expect(full.state().position).toBe(0);

      const interrupted = make({ sampler, workers });
      for (const _ of interrupted.epoch(0)) void 0; // the whole of epoch 0
      const stopAt = 4;
      let seen = 0;
      for (const batch of interrupted.epoch(1)) {
        snap(batch);
        seen += 1;
        if (seen === stopAt) break;
      }
      const saved = JSON.parse(JSON.stringify(interrupted.state())); // as written to a checkpoint
      expect(saved.epoch).toBe(1);
      expect(saved.position).toBe(stopAt);
      interrupted.close();

      const resumed = make({ sampler, workers });
      resumed.loadState(saved);
      expect(resumed.state().position).toBe(stopAt);
      const rest = [...resumed.epoch(1)].map(snap);
      expectSameBits(epoch1.slice(stopAt), rest);
      expect(resumed.state()).toEqual(full.state());
      // The epoch after the resumed one is the same as well.
      expectSameBits([...full.epoch(2)].map(snap), [...resumed.epoch(2)].map(snap));
      // epoch(e, start) without loadState does the same.
      expectSameBits(epoch0.slice(3), [...make({ sampler }).epoch(0, 3)].map(snap));
    }
  });

  it('eval iterator: sequential, normalised only, last partial batch kept', () => {
    const loader = make({ workers: 2 });
    expect(loader.evalBatchCount).toBe(12);
    const batches = [...loader.evalBatches()].map(snap);
    expect(batches.length).toBe(12);
    expect(batches[11]!.shape).toEqual([10, 3, 8, 8]);
    expect(batches.flatMap((b) => b.indices)).toEqual(Array.from({ length: 230 }, (_, i) => i));
    const mean = [0.5, 0.4, 0.3];
    const std = [0.25, 0.2, 0.3];
    const first = batches[0]!;
    for (let i = 0; i < first.x.length; i += 37) {
      const c = Math.floor(i / 64) % 3;
      expect(first.x[i]).toBeCloseTo((data.pixels[i]! / 255 - mean[c]!) / std[c]!, 5);
    }
    expect(batches[3]!.y).toEqual(Array.from(data.labels.subarray(60, 80)));
  });

  it('an abandoned iteration does not disturb the next one; close() ends use', () => {
    const reference = [...make({ workers: 0 }).epoch(0)].map(snap);
    const loader = make({ workers: 2 });
    const iterator = loader.epoch(0);
    snap(iterator.next().value as Batch); // leave it with batches in flight
    expectSameBits(reference, [...loader.epoch(0)].map(snap));
    expect(() => iterator.next()).toThrow(/superseded/);
    loader.close();
    expect(() => [...loader.epoch(0)]).toThrow(/after close/);
  });

  it('a batch size beyond the split (1e9) is one batch of the whole split; buffers are sized by min(batch, images)', () => {
    for (const workers of [0, 1]) {
      const reference = [...make({ sampler: 'shuffle', workers, batchSize: 230 }).epoch(0)].map(snap);
      const huge = make({ sampler: 'shuffle', workers, batchSize: 1e9 });
      expect(huge.batchesPerEpoch).toBe(1);
      const batches = [...huge.epoch(0)].map(snap);
      expect(batches.map((batch) => batch.shape)).toEqual([[230, 3, 8, 8]]);
      expectSameBits(reference, batches);
      expect([...huge.evalBatches()].map(snap).map((batch) => batch.shape)).toEqual([[230, 3, 8, 8]]);
      huge.close();
    }
  });

  it('a batch buffer that cannot be allocated is an error saying what was asked for', () => {
    // 2^40 floats is beyond any typed array: V8 says only "Invalid typed array length".
    expect(() => allocateFloats(2 ** 40, 'DataLoader: synthetic: a batch of 4096 images of 3×4096×4096'))
      .toThrow(/^DataLoader: synthetic: a batch of 4096 images of 3×4096×4096: 1,099,511,627,776 floats \(4\.0 TiB\) cannot be allocated \(.+\); use a smaller batch size$/);
    expect(() => allocateSharedFloats(2 ** 50, 'one batch')).toThrow(/^one batch: .* floats \(4\.0 PiB\) cannot be allocated .*use a smaller batch size$/);
  });

  it('bad options are errors', () => {
    expect(() => make({ batchSize: 0 })).toThrow(/batchSize/);
    expect(() => make({ m: 1, batchSize: 20 })).toThrow(/needs 20 distinct classes per batch but the data has 10/);
    expect(() => make({ mean: [0.5] })).toThrow(/3 channels/);
    expect(() => make().loadState({ epoch: 0, position: 99, epochRngState: [1, 2, 3, 4, Number.NaN] })).toThrow(/beyond/);
  });
});
