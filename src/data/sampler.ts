// Batch samplers: the order of dataset indices for one epoch, drawn from a seeded Generator.
//
// - shuffle: a Fisher–Yates permutation of 0..N-1 per epoch, cut into batches; the last partial
//   batch is kept unless dropLast. Every index appears at most once per epoch.
// - m-per-class (the reference's MPerClassSampler, MCL/dataset/class_sampler.py): every batch
//   draws k = floor(B/m) distinct classes (a fresh class shuffle per batch) and m distinct images
//   of each (images are drawn independently per batch, so an image can recur in an epoch, as in
//   the reference). When m does not divide B, the B mod m remaining slots go one each to the first
//   classes of the batch, so every class has m or m+1 images and the batch is exactly B. A class
//   with fewer images than it must give is sampled with replacement (the reference's
//   safe_random_choice). Batches per epoch = floor(N / B).
import { Generator } from '../tensor/random.js';

export type SamplerKind = 'shuffle' | 'm-per-class';

/** One epoch's plan: `order` holds the indices of all batches back to back. */
export interface EpochPlan {
  order: Int32Array;
  /** Start offset of batch b in `order` is starts[b], its size is sizes[b]. */
  starts: Int32Array;
  sizes: Int32Array;
}

/**
 * Smallest m such that floor(batch / m) classes fit in `classes` classes; the default m is
 * max(2, that): 2 for CIFAR-100 at batch 128 (64 classes × 2), 12 for 10 classes at batch 128
 * (10 classes × 12 or 13 = batch/classes rounded down, remainder spread).
 */
export function resolveM(batchSize: number, classes: number, m?: number): number {
  const minimal = Math.floor(batchSize / (classes + 1)) + 1;
  if (m === undefined) return Math.min(batchSize, Math.max(2, minimal));
  if (!Number.isInteger(m) || m < 1) throw new Error(`m-per-class sampler: m must be a positive integer, got ${m}`);
  if (m > batchSize) throw new Error(`m-per-class sampler: m = ${m} is larger than the batch size ${batchSize}`);
  if (Math.floor(batchSize / m) > classes) {
    throw new Error(
      `m-per-class sampler: batch ${batchSize} with m = ${m} needs ${Math.floor(batchSize / m)} distinct classes per batch but the data has ${classes}; ` +
        `use m >= ${minimal}`,
    );
  }
  return m;
}

export function batchesPerEpoch(kind: SamplerKind, count: number, batchSize: number, dropLast: boolean): number {
  if (kind === 'm-per-class' || dropLast) return Math.floor(count / batchSize);
  return Math.ceil(count / batchSize);
}

export function shufflePlan(count: number, batchSize: number, dropLast: boolean, rng: Generator): EpochPlan {
  const order = new Int32Array(count);
  for (let i = 0; i < count; i += 1) order[i] = i;
  for (let i = count - 1; i > 0; i -= 1) {
    const j = rng.integer(i + 1);
    const t = order[i]!;
    order[i] = order[j]!;
    order[j] = t;
  }
  const batches = batchesPerEpoch('shuffle', count, batchSize, dropLast);
  const starts = new Int32Array(batches);
  const sizes = new Int32Array(batches);
  for (let b = 0; b < batches; b += 1) {
    starts[b] = b * batchSize;
    sizes[b] = Math.min(batchSize, count - b * batchSize);
  }
  return { order: order.subarray(0, batches === 0 ? 0 : starts[batches - 1]! + sizes[batches - 1]!), starts, sizes };
}

/** Dataset indices grouped by label (labels in 0..classes-1). */
export function indicesByClass(labels: Int32Array, classes: number): Int32Array[] {
  const counts = new Int32Array(classes);
  for (const label of labels) counts[label]! += 1;
  const groups = Array.from(counts, (n) => new Int32Array(n));
  const fill = new Int32Array(classes);
  labels.forEach((label, index) => {
    groups[label]![fill[label]!++] = index;
  });
  return groups;
}

export function mPerClassPlan(labels: Int32Array, classes: number, batchSize: number, m: number, rng: Generator): EpochPlan {
  const groups = indicesByClass(labels, classes);
  const present = groups.map((group, label) => (group.length > 0 ? label : -1)).filter((label) => label >= 0);
  const perBatch = Math.floor(batchSize / m);
  if (perBatch > present.length) {
    throw new Error(`m-per-class sampler: batch ${batchSize} with m = ${m} needs ${perBatch} classes per batch but only ${present.length} classes have images`);
  }
  const extra = batchSize - perBatch * m;
  const batches = Math.floor(labels.length / batchSize);
  const order = new Int32Array(batches * batchSize);
  const starts = new Int32Array(batches);
  const sizes = new Int32Array(batches).fill(batchSize);
  // Per-class scratch copies for partial Fisher–Yates draws (their state carries across batches,
  // which is deterministic because a plan is always generated from the start of the epoch).
  const pools = groups.map((group) => group.slice());
  const classOrder = Int32Array.from(present);
  let offset = 0;
  for (let b = 0; b < batches; b += 1) {
    starts[b] = offset;
    for (let i = classOrder.length - 1; i > 0; i -= 1) {
      const j = rng.integer(i + 1);
      const t = classOrder[i]!;
      classOrder[i] = classOrder[j]!;
      classOrder[j] = t;
    }
    for (let k = 0; k < perBatch; k += 1) {
      const pool = pools[classOrder[k]!]!;
      const take = m + (k < extra ? 1 : 0);
      if (pool.length >= take) {
        for (let i = 0; i < take; i += 1) {
          const j = i + rng.integer(pool.length - i);
          const chosen = pool[j]!;
          pool[j] = pool[i]!;
          pool[i] = chosen;
          order[offset++] = chosen;
        }
      } else {
        for (let i = 0; i < take; i += 1) order[offset++] = pool[rng.integer(pool.length)]!;
      }
    }
  }
  return { order, starts, sizes };
}
