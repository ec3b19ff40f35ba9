// Memory-bank contrast for MCL and L-MCL (`--contrast bank`; method.md §1.2 and §2.6, the
// ImageNet variants of both repos): instead of the other batch items, an embedding is contrasted
// with K rows of a memory bank, one bank per network, picked per training image.
//
// Banks: M_n ∈ R^{rows × featDim} (rows = training images), buffers of the criterion saved as
// `criterion.bank.<n>` (checkpointed with the weights), initialised i.i.d. Uniform(−s, s),
// s = 1/sqrt(featDim/3) as the reference (not normalised at init).
// Key indices per training image i of class c (BankIndexSampler):
//   idx_i = [i, p_1 … p_posK, q_1 … q_negK]    (K = 1 + posK + negK columns)
//   p: posK distinct other images of class c (the reference draws from the class including i; we
//      exclude i itself, which is already column 0); q: negK images of other classes, with
//      replacement. Drawn from a generator seeded by (--seed, global step) alone, so a resumed run
//      draws exactly the same keys and no sampler state needs saving.
// For an embedding pair (a of network n, b of network m) with per-anchor weights w (L-MCL) or 1
// (MCL), logits ℓ(x, M) = ⟨M[idx], x⟩/τ (F.memoryLogits: the bank rows are read in place, never
// with a gradient), idx' = idx without column 0:
//   VCL     = nce(ℓ'(a, M_n), posK) + nce(ℓ'(b, M_m), posK)
//   ICL     = nce(ℓ(b, M_n), 1 + posK) + nce(ℓ(a, M_m), 1 + posK)
//   SoftVCL = KL_w(ℓ'(a, M_n) ‖ sg ℓ'(b, M_m)) + KL_w(ℓ'(b, M_m) ‖ sg ℓ'(a, M_n))
//   SoftICL = KL_w(ℓ(b, M_n) ‖ sg ℓ(a, M_m)) + KL_w(ℓ(a, M_m) ‖ sg ℓ(b, M_n))
// nce(ℓ, P) = (1/B) Σ_u w_u · (−(1/P) Σ_{k<P} log softmax(ℓ_u)_k) (positives = the first P columns),
// KL_w at temperature T with T² scaling (F.distillKL; its teacher side is detached). So the
// contract matches F.cohortContrastive's [P, 4] output and the methods sum it the same way.
// Fix of a reference quirk (method.md §2.6, §8.12): L-MCL's ImageNet VCL reads network n's bank
// for b as well; here every embedding reads its own network's bank (as MCL-ImageNet does).
// Write: after the backward of the main step, M_n[i] ← normalize(m·M_n[i] + (1 − m)·z_n[i]) for the
// batch's images, z_n = the network's final-stage embedding, detached (F.memoryUpdate_). An image
// the batch holds twice (the m-per-class sampler draws with replacement from a class with too few
// images) is written once, from its last occurrence, as the reference's sequential index_copy_
// leaves it. L-MCL's meta phase only reads the banks (the reference writes and then rolls the writes back, except one).
import * as F from '../ops/functional.js';
import { Module } from '../nn/module.js';
import { rand } from '../tensor/creation.js';
import { Generator } from '../tensor/random.js';
import type { Tensor } from '../tensor/tensor.js';
import type { StepBatch, StepResult } from './method.js';
import { choiceOption, integerOption, numberOption } from './options.js';
import { IndexTensor } from '../tensor/index_tensor.js';

export const contrastSources = ['batch', 'bank'] as const;
export type ContrastSource = (typeof contrastSources)[number];

export const bankOptions = {
  contrast: choiceOption({ flag: '--contrast', description: 'contrastive keys: the other batch items (CIFAR) or one memory bank per network (ImageNet)', default: 'batch', choices: contrastSources }),
  negK: integerOption({ flag: '--neg-k', description: 'memory bank: negative keys per image (other classes, with replacement)', default: 8192, min: 1 }),
  posK: integerOption({ flag: '--pos-k', description: 'memory bank: positive keys per image besides its own row (same class, distinct)', default: 1, min: 1 }),
  nceM: numberOption({ flag: '--nce-m', description: 'memory bank: share of the old row kept when a bank row is rewritten', default: 0.5, atLeast: 0, atMost: 1 }),
};

export interface BankSettings {
  contrast: ContrastSource;
  negK: number;
  posK: number;
  nceM: number;
}

/** What a method's context gives the bank: the training labels by dataset index and the run's seed. */
export interface BankData {
  trainLabels?: Int32Array;
  seed?: number;
}

/** Rows of each bank for --contrast bank (one per training image), null for in-batch contrast. */
export function bankRows(settings: BankSettings, data: BankData): number | null {
  if (settings.contrast !== 'bank') return null;
  if (!data.trainLabels || data.seed === undefined) throw new Error('--contrast bank: the method needs the training labels and the seed (trainLabels, seed in its context)');
  return data.trainLabels.length;
}

/** The keys every training image is contrasted with (file comment). */
export class BankIndexSampler {
  readonly columns: number;
  private readonly labels: Int32Array;
  private readonly members: Int32Array[];

  constructor(labels: Int32Array, private readonly posK: number, private readonly negK: number, private readonly seed: number) {
    this.labels = labels;
    this.columns = 1 + posK + negK;
    const counts = new Map<number, number[]>();
    labels.forEach((label, index) => {
      const list = counts.get(label);
      if (list) list.push(index);
      else counts.set(label, [index]);
    });
    if (counts.size < 2) throw new Error(`--contrast bank: the training images have ${counts.size} class(es); negative keys need at least 2`);
    const classes = Math.max(...counts.keys()) + 1;
    this.members = Array.from({ length: classes }, (_, c) => Int32Array.from(counts.get(c) ?? []));
    for (const [label, list] of counts) {
      if (list.length < posK + 1) {
        throw new Error(`--pos-k ${posK}: class ${label} has ${list.length} training image(s); each image needs ${posK} other image(s) of its class`);
      }
    }
  }

  /** idx [B·K] for the batch's dataset indices, row-major: [own, positives…, negatives…] per item. */
  sample(items: Int32Array, step: number): Int32Array {
    const generator = new Generator(mixSeed(this.seed, step));
    const K = this.columns;
    const out = new Int32Array(items.length * K);
    const rows = this.labels.length;
    items.forEach((item, u) => {
      if (item < 0 || item >= rows) throw new Error(`--contrast bank: batch item ${item} is not one of the ${rows} training images`);
      const label = this.labels[item]!;
      const members = this.members[label]!;
      const row = u * K;
      out[row] = item;
      // posK distinct same-class images other than the item (rejection: posK is small).
      let filled = 0;
      while (filled < this.posK) {
        const candidate = members[generator.integer(members.length)]!;
        if (candidate === item) continue;
        let repeated = false;
        for (let k = 1; k <= filled; k += 1) if (out[row + k] === candidate) repeated = true;
        if (repeated) continue;
        filled += 1;
        out[row + filled] = candidate;
      }
      // Other classes, with replacement (rejection: the expected draws per key are 1/(1 − share of the class)).
      for (let k = 0; k < this.negK; k += 1) {
        let candidate = generator.integer(rows);
        while (this.labels[candidate] === label) candidate = generator.integer(rows);
        out[row + 1 + this.posK + k] = candidate;
      }
    });
    return out;
  }
}

/** A 32-bit seed from (run seed, step): nearby steps give unrelated streams. */
function mixSeed(seed: number, step: number): number {
  let value = (Math.imul(seed ^ 0x5bd1e995, 0x9e3779b1) ^ Math.imul(step + 1, 0x85ebca6b)) >>> 0;
  value = Math.imul(value ^ (value >>> 15), 0x2c1b3c6d) >>> 0;
  value = Math.imul(value ^ (value >>> 12), 0x297a2d39) >>> 0;
  return (value ^ (value >>> 15)) >>> 0;
}

/** One bank per network: buffers `<n>` [rows, featDim] (saved as criterion.bank.<n>). */
export class MemoryBanks extends Module {
  readonly count: number;

  constructor(count: number, rows: number, featureDim: number) {
    super();
    this.count = count;
    const bound = 1 / Math.sqrt(featureDim / 3);
    for (let n = 0; n < count; n += 1) this.registerBuffer(String(n), rand([rows, featureDim], { low: -bound, high: bound }));
  }

  at(n: number): Tensor {
    const bank = this.namedBuffers().find(([name]) => name === String(n))?.[1];
    if (!bank) throw new Error(`memory bank ${n} does not exist (the cohort has ${this.count})`);
    return bank;
  }

  override forward(): never {
    throw new Error('MemoryBanks has no forward: the contrastive methods read the banks with F.memoryLogits');
  }
}

/**
 * The memory-bank side of a contrastive method: the key indices of each batch (drawn once per
 * batch, shared by the main step and L-MCL's meta phase), the [P, 4] terms, the write.
 */
export class BankContrast {
  private readonly sampler: BankIndexSampler;
  private readonly sampled = new WeakMap<StepBatch, Int32Array>();
  /** The final embeddings of the batch being trained, written after its backward. */
  private held: { batch: StepBatch; embeddings: readonly Tensor[] } | null = null;

  constructor(readonly banks: MemoryBanks, labels: Int32Array, readonly settings: BankSettings, seed: number) {
    if (labels.length !== banks.at(0).shape[0]) throw new Error(`--contrast bank: ${labels.length} labels for banks of ${banks.at(0).shape[0]} rows`);
    this.sampler = new BankIndexSampler(labels, settings.posK, settings.negK, seed);
  }

  /** The bank contrast over a criterion's banks (built when bankRows() gave rows), else null. */
  static over(banks: MemoryBanks | null, settings: BankSettings, data: BankData): BankContrast | null {
    return banks ? new BankContrast(banks, data.trainLabels!, settings, data.seed!) : null;
  }

  /** The batch's key indices [B·K]; the first call for a batch draws them for `step`. */
  keyIndices(batch: StepBatch, step: number): Int32Array {
    let indices = this.sampled.get(batch);
    if (!indices) {
      indices = this.sampler.sample(batch.indices, step);
      this.sampled.set(batch, indices);
    }
    return indices;
  }

  /**
   * [P, 4] = (VCL_p, ICL_p, SoftVCL_p, SoftICL_p) for every pair (a, b) of embeddings, `owners[e]`
   * the network (and bank) of embedding e; weights [P, B] or null (w ≡ 1).
   */
  terms(embeddings: readonly Tensor[], owners: readonly number[], indices: Int32Array,
    options: { pairs: readonly (readonly [number, number])[]; temperature: number; klTemperature: number; weights?: Tensor | null }): Tensor {
    const K = this.sampler.columns;
    const positives = this.settings.posK;
    // Every (embedding, bank) logits block the pairs need, made up front one call per bank: the
    // embeddings that read a bank go in as one [Q, B, D] query, so the kernel gathers each key row
    // once for all of them (the keys are the batch's, the same for every embedding); each slice
    // has the bits of its own memoryLogits call.
    const readers = new Map<number, number[]>();
    const need = (embedding: number, bank: number): void => {
      const list = readers.get(bank) ?? [];
      if (!list.includes(embedding)) list.push(embedding);
      readers.set(bank, list);
    };
    for (const [a, b] of options.pairs) {
      need(a, owners[a]!);
      need(b, owners[b]!);
      need(b, owners[a]!);
      need(a, owners[b]!);
    }
    // Per logits block, its per-row InfoNCE terms are computed once and weighted per pair (an
    // embedding's block appears in up to 2S pairs; the log-softmax over K columns is the cost).
    const logits = new Map<string, LogitsBlock>();
    const batch = embeddings[0]!.shape[0]!;
    // The keys go to the embeddings' device once for every bank's call (the graph nodes keep
    // their own reference to the block for the backward).
    const keys = IndexTensor.from(indices, embeddings[0]!.device);
    try {
      for (const [bank, list] of readers) {
        const memory = this.banks.at(bank);
        if (list.length === 1) {
          logits.set(`${list[0]}:${bank}`, { all: F.memoryLogits(embeddings[list[0]!]!, memory, keys, { temperature: options.temperature }) });
          continue;
        }
        const all = F.memoryLogits(F.stack(list.map((embedding) => embeddings[embedding]!), 0), memory, keys, { temperature: options.temperature });
        list.forEach((embedding, q) => logits.set(`${embedding}:${bank}`, { all: F.reshape(F.slice(all, 0, q, q + 1), [batch, K]) }));
      }
    } finally {
      keys.dispose();
    }
    const logitsOf = (embedding: number, bank: number): LogitsBlock => logits.get(`${embedding}:${bank}`)!;
    // VCL keys drop the item's own row (column 0).
    const ownBank = (embedding: number): Tensor => {
      const entry = logitsOf(embedding, owners[embedding]!);
      entry.withoutOwn ??= F.slice(entry.all, 1, 1, K);
      return entry.withoutOwn;
    };
    const otherBank = (embedding: number, bank: number): Tensor => logitsOf(embedding, bank).all;
    const vclRows = (embedding: number): Tensor => {
      const entry = logitsOf(embedding, owners[embedding]!);
      entry.vclRows ??= nceRows(ownBank(embedding), positives);
      return entry.vclRows;
    };
    const iclRows = (embedding: number, bank: number): Tensor => {
      const entry = logitsOf(embedding, bank);
      entry.iclRows ??= nceRows(entry.all, 1 + positives);
      return entry.iclRows;
    };
    const rows = options.pairs.map(([a, b], p) => {
      const n = owners[a]!;
      const m = owners[b]!;
      const w = options.weights ? F.reshape(F.slice(options.weights, 0, p, p + 1), [options.weights.shape[1]!]) : null;
      const kl = (student: Tensor, teacher: Tensor): Tensor => F.distillKL(student, teacher, { temperature: options.klTemperature, weights: w });
      const vcl = F.add(weightedMean(vclRows(a), w), weightedMean(vclRows(b), w));
      const icl = F.add(weightedMean(iclRows(b, n), w), weightedMean(iclRows(a, m), w));
      const softVcl = F.add(kl(ownBank(a), ownBank(b)), kl(ownBank(b), ownBank(a)));
      const softIcl = F.add(kl(otherBank(b, n), otherBank(a, m)), kl(otherBank(a, m), otherBank(b, n)));
      return F.stack([vcl, icl, softVcl, softIcl], 0);
    });
    return F.stack(rows, 0);
  }

  /** After the main step's backward: every network's final embedding into its bank at the batch's rows. */
  write(finalEmbeddings: readonly Tensor[], batch: StepBatch): void {
    const last = lastOccurrences(batch.indices);
    const device = this.banks.at(0).device;
    // The bank rows (and, with repeated items, the batch positions) once for every network's bank.
    const bankRows = IndexTensor.from(last === null ? batch.indices : Int32Array.from(last, (position) => batch.indices[position]!), device);
    const positions = last === null ? null : IndexTensor.from(last, device);
    try {
      finalEmbeddings.forEach((z, n) => {
        if (positions === null) {
          F.memoryUpdate_(this.banks.at(n), bankRows, z.detach(), { momentum: this.settings.nceM });
          return;
        }
        const rows = F.indexSelect(z.detach(), 0, positions);
        F.memoryUpdate_(this.banks.at(n), bankRows, rows, { momentum: this.settings.nceM });
        rows.dispose();
      });
    } finally {
      bankRows.dispose();
      positions?.dispose();
    }
  }

  /** The loss keeps the batch's final embeddings (one per network) for writeHeld. */
  holdForWrite(batch: StepBatch, finalEmbeddings: readonly Tensor[]): void {
    this.held = { batch, embeddings: finalEmbeddings };
  }

  /**
   * A method's step with a bank: the standard step (its loss calls holdForWrite), then the write,
   * after the backward (F.memoryUpdate_ before it would invalidate the saved bank rows).
   */
  stepThenWrite(batch: StepBatch, standardStep: (batch: StepBatch) => StepResult): StepResult {
    this.held = null;
    const result = standardStep(batch);
    const held = this.held as { batch: StepBatch; embeddings: readonly Tensor[] } | null;
    this.held = null;
    if (!held || held.batch !== batch) throw new Error('--contrast bank: the step computed no bank loss for its batch (nothing to write)');
    this.write(held.embeddings, batch);
    return result;
  }
}

/** One (embedding, bank) logits block [B, K] and what is derived from it once: the VCL columns, the per-row InfoNCE terms. */
interface LogitsBlock {
  all: Tensor;
  withoutOwn?: Tensor;
  vclRows?: Tensor;
  iclRows?: Tensor;
}

/** Batch positions of each dataset index's last occurrence, in batch order; null when all are distinct. */
function lastOccurrences(indices: Int32Array): Int32Array | null {
  const lastPosition = new Map<number, number>();
  indices.forEach((index, position) => lastPosition.set(index, position));
  if (lastPosition.size === indices.length) return null;
  return Int32Array.from([...lastPosition.values()].sort((a, b) => a - b));
}

/** The per-row InfoNCE terms −mean_{k<P} log softmax(logits_u)_k, [B]: the same for every pair that reads these logits. */
function nceRows(logits: Tensor, positives: number): Tensor {
  return F.neg(F.mean(F.slice(F.logSoftmax(logits, 1), 1, 0, positives), 1));
}

/** (1/B) Σ_u w_u · rows_u (w ≡ 1 when null). */
function weightedMean(rows: Tensor, weights: Tensor | null): Tensor {
  return F.mean(weights ? F.mul(rows, weights) : rows);
}
