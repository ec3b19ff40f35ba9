// All four L-MCL contrastive terms of every listed embedding pair in ONE native call
// (method.md §2.2). Native kernels: native/src/cpu/cohort_contrastive.cpp.
// Tests: test/ops/cohort_contrastive.test.ts.
//
// embeddings z_0..z_{E−1} ([B, D] each; L-MCL: the N·S Embed outputs), pairs (a, b) with a ≠ b,
// weights [P, B] (w_p per anchor; optional, may require grad). Returns [P, 4]:
//   VCL_p = ℓ(L_aa, w_p) + ℓ(L_bb, w_p)                ICL_p = ℓ(L_ab, w_p) + ℓ(L_ba, w_p)
//   SoftVCL_p = KL_w(L_aa ‖ sg L_bb) + KL_w(L_bb ‖ sg L_aa)
//   SoftICL_p = KL_w(L_ab ‖ sg L_ba) + KL_w(L_ba ‖ sg L_ab)
// each term reduced exactly as F.supConInfoNCE / F.contrastiveKL. The kernel shares the
// similarity blocks and per-row statistics between pairs, so its cost follows the distinct
// embeddings, not P × 4. Multi-output convention (CONTRIBUTING.md): one stacked tensor, one node.
// First order: the fused native backward; under createGraph: the derivative of
// cohortContrastiveComposite (the one-pair composites over shared logits).
import { native } from '../native/index.js';
import { fusedOrComposite } from '../autograd/fused.js';
import { noGrad } from '../autograd/mode.js';
import { recordOperation } from '../autograd/node.js';
import { Tensor, formatShape } from '../tensor/tensor.js';
import { checkSameDevice, checkTensor, checkRank, describeValue, readOptions, type IndexInput } from './checks.js';
import { gradientOfComposite } from './composite.js';
import { checkLabels, checkTemperature, checkWeights } from './contrastive_checks.js';
import { klFromLogits } from './contrastive_kl.js';
import { add, affine } from './elementwise.js';
import { infoNCEFromLogits } from './infonce.js';
import { linear } from './gemm.js';
import { reshape, slice, stack, transpose } from './layout.js';

export interface CohortContrastiveOptions {
  /** Ordered pairs (a, b) of indices into the embeddings list, a ≠ b. */
  pairs: readonly (readonly [number, number])[];
  /** τ > 0 of the similarity logits. */
  temperature: number;
  /** T > 0 of the soft terms. */
  klTemperature: number;
  /** Per-pair, per-anchor weights [P, B] (default 1); may require grad. */
  weights?: Tensor | null;
}

/** Column order of cohortContrastive's output. */
export const cohortTerms = ['vcl', 'icl', 'softVcl', 'softIcl'] as const;

function checkPairs(pairs: unknown, count: number, op: string): Int32Array {
  if (!Array.isArray(pairs)) throw new TypeError(`${op}: pairs must be an array of [a, b] index pairs, got ${describeValue(pairs)}`);
  const flat = new Int32Array(pairs.length * 2);
  pairs.forEach((pair: unknown, index) => {
    if (!Array.isArray(pair) || pair.length !== 2 || !pair.every((entry) => Number.isInteger(entry))) {
      throw new TypeError(`${op}: pairs[${index}] must be a pair [a, b] of integers, got ${describeValue(pair)}`);
    }
    const [a, b] = pair as [number, number];
    if (a < 0 || a >= count || b < 0 || b >= count) {
      throw new Error(`${op}: pairs[${index}] = [${a}, ${b}] indexes outside the ${count} embeddings`);
    }
    if (a === b) throw new Error(`${op}: pairs[${index}] = [${a}, ${b}] must join two different embeddings`);
    flat[2 * index] = a;
    flat[2 * index + 1] = b;
  });
  return flat;
}

/** The [P, 4] = (VCL, ICL, SoftVCL, SoftICL) terms of every listed pair. */
export function cohortContrastive(embeddings: readonly Tensor[], labels: IndexInput, options: CohortContrastiveOptions): Tensor {
  const op = 'cohortContrastive';
  if (!Array.isArray(embeddings) || embeddings.length === 0) {
    throw new TypeError(`${op}: embeddings must be a non-empty array of [batch, dim] tensors, got ${describeValue(embeddings)}`);
  }
  embeddings.forEach((embedding, index) => {
    checkTensor(embedding, op, `embeddings[${index}]`);
    checkRank(embedding, 2, op, `embeddings[${index}]`, '[batch, dim]');
    const first = embeddings[0]!;
    if (embedding.shape[0] !== first.shape[0] || embedding.shape[1] !== first.shape[1]) {
      throw new Error(`${op}: embeddings[${index}] has shape ${formatShape(embedding.shape)} but embeddings[0] has ${formatShape(first.shape)}`);
    }
  });
  checkSameDevice(op, ...embeddings);
  const [batch, dim] = embeddings[0]!.shape as [number, number];
  const count = embeddings.length;
  const device = embeddings[0]!.device;
  const values = readOptions(options, ['pairs', 'temperature', 'klTemperature', 'weights'], op);
  const pairs = checkPairs(values.pairs, count, op);
  const pairCount = pairs.length / 2;
  const temperature = checkTemperature(values.temperature, op, 'temperature');
  const klTemperature = checkTemperature(values.klTemperature, op, 'klTemperature');
  const weights = checkWeights(values.weights, [pairCount, batch], device, op);
  const savedLabels = checkLabels(labels, batch, device, op);

  const out = Tensor.empty([pairCount, 4], device);
  // The row softmaxes of the used similarity blocks, kept for the backward (2·(E·B)² floats).
  const softmax = Tensor.empty([count * batch, count * batch], device);
  const probabilities = Tensor.empty([count * batch, count * batch], device);
  const stats = Tensor.empty([native().cohortStatsFloats(count, batch, pairCount)], device);
  try {
    native().cohortContrastiveForward(embeddings.map((embedding) => embedding.storage.handle), savedLabels.handle, pairs, weights?.storage.handle ?? null,
      out.storage.handle, softmax.storage.handle, probabilities.storage.handle, stats.storage.handle, count, batch, dim,
      temperature, klTemperature);
  } catch (error) {
    for (const owned of [out, softmax, probabilities, stats]) owned.dispose();
    savedLabels.release();
    throw error;
  }
  const inputs = weights ? [...embeddings, weights] : [...embeddings];
  const result = recordOperation(op, out, inputs, [...inputs, softmax, probabilities, stats], (grad, context) => {
    const saved = context.saved as Tensor[];
    const savedEmbeddings = saved.slice(0, count);
    const savedWeights = weights ? saved[count]! : null;
    const [savedSoftmax, savedProbabilities, savedStats] = saved.slice(inputs.length) as [Tensor, Tensor, Tensor];
    const needWeights = weights ? context.needsInputGrad[count]! : false;
    return fusedOrComposite('cohortContrastive', context, {
      fused: () => {
        const gradEmbeddings = savedEmbeddings.map((_, index) => (context.needsInputGrad[index] ? Tensor.empty([batch, dim], device) : null));
        const gradWeights = needWeights ? Tensor.empty([pairCount, batch], device) : null;
        native().cohortContrastiveBackward(savedEmbeddings.map((embedding) => embedding.storage.handle), savedLabels.handle, pairs,
          savedWeights?.storage.handle ?? null, savedSoftmax.storage.handle, savedProbabilities.storage.handle,
          savedStats.storage.handle, grad.storage.handle, gradEmbeddings.map((gradient) => gradient?.storage.handle ?? null),
          gradWeights?.storage.handle ?? null, count, batch, dim, temperature, klTemperature);
        return weights ? [...gradEmbeddings, gradWeights] : gradEmbeddings;
      },
      composite: () => gradientOfComposite(context, saved.slice(0, inputs.length), grad, (...views) =>
        cohortContrastiveComposite(views.slice(0, count), savedLabels.values, pairs,
          { temperature, klTemperature, weights: weights ? views[count]! : null })),
    });
  }, savedLabels.release);
  for (const owned of [softmax, probabilities, stats]) owned.dispose();
  return result;
}

/**
 * The same [P, 4] from differentiable ops, over the embeddings and flat pairs: each needed logits
 * block L_ij once (L_ji as its transpose), then the one-pair formulas per term.
 */
export function cohortContrastiveComposite(embeddings: readonly Tensor[], labels: Int32Array, pairs: Int32Array,
  options: { temperature: number; klTemperature: number; weights: Tensor | null }): Tensor {
  const count = embeddings.length;
  const batch = embeddings[0]!.shape[0]!;
  const embeddingOf = (index: number): Tensor => embeddings[index]!;
  const logits = new Map<number, Tensor>();
  const logitsOf = (i: number, j: number): Tensor => {
    let found = logits.get(i * count + j);
    if (!found) {
      const mirror = logits.get(j * count + i);
      found = mirror ? transpose(mirror, 0, 1) : affine(linear(embeddingOf(i), embeddingOf(j)), 1 / options.temperature, 0);
      logits.set(i * count + j, found);
    }
    return found;
  };
  const rows: Tensor[] = [];
  for (let p = 0; p < pairs.length / 2; p += 1) {
    const a = pairs[2 * p]!;
    const b = pairs[2 * p + 1]!;
    const w = options.weights ? reshape(slice(options.weights, 0, p, p + 1), [batch]) : null;
    const [aa, bb, ab, ba] = [logitsOf(a, a), logitsOf(b, b), logitsOf(a, b), logitsOf(b, a)];
    const detached = (x: Tensor): Tensor => noGrad(() => x.detach());
    const kl = (student: Tensor, teacher: Tensor): Tensor => klFromLogits(student, detached(teacher), options.klTemperature, w);
    const terms = [
      add(infoNCEFromLogits(aa, labels, w), infoNCEFromLogits(bb, labels, w)),
      add(infoNCEFromLogits(ab, labels, w), infoNCEFromLogits(ba, labels, w)),
      add(kl(aa, bb), kl(bb, aa)),
      add(kl(ab, ba), kl(ba, ab)),
    ];
    rows.push(stack(terms, 0));
  }
  return rows.length > 0 ? stack(rows, 0) : Tensor.empty([0, 4], embeddings[0]!.device);
}
