// Accuracy counting and evaluation of a cohort: top-1/top-5 per network, per head, and the
// ensemble. The ensemble is the MEAN OF THE SOFTMAX PROBABILITIES of the networks' final heads
// (backbone classifiers); auxiliary heads never enter it.
// The honest headline is each network's final head (its backbone classifier); `meanTop1` is the
// mean of those over networks. Best-epoch numbers picked with it on the test set are labelled so.
//
// Non-finite logits: a row with any NaN or ±Inf logit counts as WRONG, for every k, in every
// count (countTopK on the host, countTop1OnDevice in the training step, hence the ensemble too:
// its softmax of such a row is NaN). Without this rule no logit ranks above a NaN target (every
// comparison with NaN is false), so a NaN network scored 100% and became `best`. (PyTorch's topk
// ranks NaN above everything instead; we do not rank a broken row at all.) The test loss of such
// a row is NaN or ±Inf and is reported so, never dropped.
import * as F from '../ops/functional.js';
import { noGrad } from '../autograd/mode.js';
import { keep, tidy } from '../tensor/scope.js';
import { tensor } from '../tensor/creation.js';
import type { Device, Tensor } from '../tensor/tensor.js';
import { IndexTensor, type IndexInput } from '../tensor/index_tensor.js';
import type { Student } from '../models/types.js';
import type { Method } from '../losses/method.js';

/** Rows whose label is among the k largest logits (ties at a lower index count against); a row with a NaN/±Inf logit is wrong. */
export function countTopK(logits: Float32Array, labels: Int32Array, classes: number, k: number): number {
  let correct = 0;
  const rows = labels.length;
  rowLoop: for (let row = 0; row < rows; row += 1) {
    const base = row * classes;
    for (let c = 0; c < classes; c += 1) if (!Number.isFinite(logits[base + c]!)) continue rowLoop;
    const target = logits[base + labels[row]!]!;
    let above = 0;
    for (let c = 0; c < classes; c += 1) {
      const value = logits[base + c]!;
      // Rank of the target: entries strictly larger, plus equal entries at lower index.
      if (value > target || (value === target && c < labels[row]!)) above += 1;
      if (above >= k) break;
    }
    if (above < k) correct += 1;
  }
  return correct;
}

/**
 * Masks that let the device count top-1 of a batch exactly like countTopK (strict >, ties at a
 * lower class index count against): built once per batch on the host from the labels (an
 * IndexTensor's host copy, or host labels), shared by every network.
 */
export interface Top1Masks {
  /** [B, C]: 1 at the label. */
  target: Tensor;
  /** [B, C]: 1 for classes below the label (an equal logit there outranks the target). */
  below: Tensor;
  /** [B, C]: 1 for classes above the label (only a strictly larger logit outranks it). */
  above: Tensor;
  ones: Tensor;
  rowOnes: Tensor;
}

/** The masks for one batch's labels, made on `device` (the logits' device). */
export function top1Masks(labelInput: IndexInput, classes: number, device: Device = 'cpu'): Top1Masks {
  const labels = labelInput instanceof IndexTensor ? labelInput.hostView() : labelInput;
  const rows = labels.length;
  const target = new Float32Array(rows * classes);
  const below = new Float32Array(rows * classes);
  const above = new Float32Array(rows * classes);
  for (let row = 0; row < rows; row += 1) {
    const label = labels[row]!;
    if (!(label >= 0 && label < classes)) throw new Error(`top1Masks: label ${label} at row ${row} is outside 0..${classes - 1}`);
    const base = row * classes;
    target[base + label] = 1;
    for (let c = 0; c < label; c += 1) below[base + c] = 1;
    for (let c = label + 1; c < classes; c += 1) above[base + c] = 1;
  }
  return {
    target: tensor(target, [rows, classes], { device }), below: tensor(below, [rows, classes], { device }), above: tensor(above, [rows, classes], { device }),
    ones: tensor(new Float32Array(rows * classes).fill(1), [rows, classes], { device }), rowOnes: tensor(new Float32Array(rows).fill(1), [rows], { device }),
  };
}

/**
 * The number of rows of `logits` [B, C] whose label is the top-1 class, as a device scalar (kept
 * out of tidy scopes: the caller disposes it). Same rule as countTopK: with t the target logit,
 * the rank is #{c > label: x_c > t} + #{c < label: x_c ≥ t}, and the row counts when it is 0
 * and every logit of the row is finite. x_c > t is tested as x_c − t > 0, exact for finite floats
 * (subnormal differences included unless the kernels flush denormals to zero); counts are
 * integers, exact in float32. Finiteness: Σ_c (x_c − x_c) is 0 for a finite row and NaN as soon
 * as one x_c is NaN or ±Inf, and reluMask(1, that + 1) turns it into 1 / 0 (NaN > 0 is false).
 */
export function countTop1OnDevice(logits: Tensor, masks: Top1Masks): Tensor {
  return keep(tidy(() => noGrad(() => {
    const plain = logits.detach();
    const targetLogit = F.sum(F.mul(plain, masks.target), 1, true); // [B, 1]: x_label (others × 0)
    const difference = F.sub(plain, targetLogit); // x_c − t
    const greater = F.reluMask(masks.ones, difference); // 1 where x_c > t
    const notLess = F.sub(1, F.reluMask(masks.ones, F.neg(difference))); // 1 where x_c ≥ t
    const rank = F.sum(F.add(F.mul(greater, masks.above), F.mul(notLess, masks.below)), 1); // [B]
    const hit = F.sub(masks.rowOnes, F.reluMask(masks.rowOnes, rank)); // [B]: 1 where rank is 0
    const finiteRow = F.reluMask(masks.rowOnes, F.add(F.sum(F.sub(plain, plain), 1), masks.rowOnes)); // [B]: 1 where no logit is NaN/±Inf
    return F.sum(F.mul(hit, finiteRow));
  })));
}

/** Row-wise softmax of a [rows, classes] block, accumulated into `into`. */
export function addSoftmax(logits: Float32Array, classes: number, into: Float64Array): void {
  const rows = logits.length / classes;
  for (let row = 0; row < rows; row += 1) {
    const base = row * classes;
    let max = -Infinity;
    for (let c = 0; c < classes; c += 1) max = Math.max(max, logits[base + c]!);
    let total = 0;
    for (let c = 0; c < classes; c += 1) total += Math.exp(logits[base + c]! - max);
    for (let c = 0; c < classes; c += 1) into[base + c]! += Math.exp(logits[base + c]! - max) / total;
  }
}

export interface HeadAccuracy {
  top1: number;
  top5: number;
}

export interface EvalResult {
  /** Per network: the final head (backbone classifier). Percentages. */
  networks: HeadAccuracy[];
  /** Per network, per head (stage order; last = final head). */
  heads: HeadAccuracy[][];
  /** The method's own heads (L-MCL: 'aggregator'), by name, one per network; {} for none. */
  methodHeads: Record<string, HeadAccuracy[]>;
  /** Mean of softmax over the networks' final heads. */
  ensemble: HeadAccuracy;
  /** Mean over networks of the final-head top-1 (the honest selection metric). */
  meanTop1: number;
  /** Mean cross-entropy of each network's final head (NaN/±Inf when a logit was: reported, never dropped). */
  loss: number[];
  count: number;
}

/** A source of evaluation batches (x is owned by the consumer: evaluate() disposes it). */
export type EvalBatches = Iterable<{ x: Tensor; y: Int32Array }> | AsyncIterable<{ x: Tensor; y: Int32Array }>;

function logSumExpCE(logits: Float32Array, labels: Int32Array, classes: number): number {
  let total = 0;
  for (let row = 0; row < labels.length; row += 1) {
    const base = row * classes;
    let max = -Infinity;
    for (let c = 0; c < classes; c += 1) max = Math.max(max, logits[base + c]!);
    let sum = 0;
    for (let c = 0; c < classes; c += 1) sum += Math.exp(logits[base + c]! - max);
    total += max + Math.log(sum) - logits[base + labels[row]!]!;
  }
  return total;
}

/**
 * Evaluates every network (eval mode, no gradients) on all batches, and the method's own heads when
 * `method` is given (its modules in eval mode too). Restores training mode.
 */
export async function evaluate(networks: Student[], batches: EvalBatches, classes: number, method: Method | null = null): Promise<EvalResult> {
  const wasTraining = networks.map((net) => net.training);
  for (const net of networks) net.eval();
  const methodWasTraining = method?.criterion?.training ?? false;
  method?.eval();
  const heads = networks.map(() => [] as { top1: number; top5: number }[]);
  const methodHeads = new Map<string, { top1: number; top5: number }[]>();
  const ensemble = { top1: 0, top5: 0 };
  const loss = networks.map(() => 0);
  let count = 0;
  const k5 = Math.min(5, classes);
  try {
    for await (const batch of batches as AsyncIterable<{ x: Tensor; y: Int32Array }>) {
      const labels = batch.y;
      const probabilities = new Float64Array(labels.length * classes);
      try {
        tidy(() =>
          noGrad(() => {
            const outputs = networks.map((net) => net.forward(batch.x));
            for (const head of method?.evaluationHeads?.(outputs) ?? []) {
              const counts = methodHeads.get(head.name) ?? networks.map(() => ({ top1: 0, top5: 0 }));
              methodHeads.set(head.name, counts);
              head.logits.forEach((logitsTensor, n) => {
                const logits = logitsTensor.toFloat32Array();
                counts[n]!.top1 += countTopK(logits, labels, classes, 1);
                counts[n]!.top5 += countTopK(logits, labels, classes, k5);
              });
            }
            outputs.forEach((output, n) => {
              output.logits.forEach((logitsTensor, s) => {
                const logits = logitsTensor.toFloat32Array();
                const slot = (heads[n]![s] ??= { top1: 0, top5: 0 });
                slot.top1 += countTopK(logits, labels, classes, 1);
                slot.top5 += countTopK(logits, labels, classes, k5);
                if (s === output.logits.length - 1) {
                  addSoftmax(logits, classes, probabilities);
                  loss[n]! += logSumExpCE(logits, labels, classes);
                }
              });
            });
          }),
        );
      } finally {
        batch.x.dispose();
      }
      const asFloat = Float32Array.from(probabilities);
      ensemble.top1 += countTopK(asFloat, labels, classes, 1);
      ensemble.top5 += countTopK(asFloat, labels, classes, k5);
      count += labels.length;
    }
  } finally {
    networks.forEach((net, n) => net.train(wasTraining[n]!));
    method?.train(methodWasTraining);
  }
  const pct = (value: number): number => (count === 0 ? 0 : (100 * value) / count);
  const percent = (h: { top1: number; top5: number }): HeadAccuracy => ({ top1: pct(h.top1), top5: pct(h.top5) });
  const headAcc = heads.map((list) => list.map(percent));
  const finals = headAcc.map((list) => list[list.length - 1] ?? { top1: 0, top5: 0 });
  return {
    networks: finals,
    heads: headAcc,
    methodHeads: Object.fromEntries([...methodHeads].map(([name, list]) => [name, list.map(percent)])),
    ensemble: { top1: pct(ensemble.top1), top5: pct(ensemble.top5) },
    meanTop1: finals.reduce((a, h) => a + h.top1, 0) / Math.max(1, finals.length),
    loss: loss.map((value) => (count === 0 ? 0 : value / count)),
    count,
  };
}
