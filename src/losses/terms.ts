// Loss terms shared by methods. Written in differentiable ops so a method's loss can also be
// differentiated twice (the L-MCL meta step).
//
//   Σ CE      Σ_n Σ_s CE(o_{n,s}, y)                   (every head: backbone and auxiliary)
//   KL_T      KL_T(o_n ‖ sg o_m) = T² · (1/B) Σ_i Σ_c q_ic (log q_ic − log p_ic),
//             p = softmax(o_n / T), q = softmax(stopgrad(o_m) / T)        (DML / KD, "batchmean")
import * as F from '../ops/functional.js';
import type { Tensor } from '../tensor/tensor.js';
import type { IndexInput } from '../tensor/index_tensor.js';
import type { StudentOutput } from '../models/types.js';
import type { LossParts } from './parts.js';

/**
 * Σ over every network and head of the mean cross-entropy. Parts: 'ce', 'ce/net<n>' (the network's
 * heads summed) and, for networks with auxiliary heads, 'ce/net<n>/aux<s>' and 'ce/net<n>/final'.
 */
export function crossEntropyTerms(outputs: StudentOutput[], labels: IndexInput, parts: LossParts): Tensor {
  let total: Tensor | null = null;
  const all: Tensor[] = [];
  outputs.forEach((output, n) => {
    if (output.logits.length === 0) throw new Error(`loss: network ${n} returned no logits`);
    output.logits.forEach((logits, s) => {
      const ce = F.crossEntropy(logits, labels);
      parts.add(`ce/net${n}`, ce);
      // Per head when there are several: aux<s> for the auxiliary branches, final for the backbone.
      if (output.logits.length > 1) parts.add(`ce/net${n}/${s === output.logits.length - 1 ? 'final' : `aux${s}`}`, ce);
      all.push(ce);
      total = total === null ? ce : F.add(total, ce);
    });
  });
  if (total === null) throw new Error('loss: the cohort has no networks');
  // 'ce' after the per-network parts: the key order is the column order of summary.csv.
  for (const ce of all) parts.add('ce', ce);
  return total;
}

/**
 * KL_T(student ‖ stopgrad(teacher)) with T² scaling and batch-mean reduction (DML / KD): the fused
 * F.distillKL (its createGraph path is the same formula in differentiable ops).
 */
export function distillKL(student: Tensor, teacher: Tensor, temperature: number): Tensor {
  if (!(temperature > 0)) throw new Error(`distillKL: temperature must be > 0, got ${temperature}`);
  return F.distillKL(student, teacher, { temperature });
}

/** The final head (backbone classifier) of a network's output. */
export function finalLogits(output: StudentOutput): Tensor {
  const logits = output.logits[output.logits.length - 1];
  if (!logits) throw new Error('loss: a network returned no logits');
  return logits;
}
