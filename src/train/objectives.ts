// Training objectives as modules: the trainer runs the cohort forward, hands every network's
// StudentOutput to an Objective and back-propagates the scalar it returns. Adding a method (MCL,
// L-MCL) means adding an Objective here, not forking the loop.
//
//   baseline  Σ_n Σ_s CE(o_{n,s}, y)                  (every head: backbone and auxiliary)
//   dml       baseline + Σ_n (1/(N−1)) Σ_{m≠n} KL_T(o_n ‖ sg o_m)       (final heads only)
//             KL_T(o_n ‖ sg o_m) = T² · (1/B) Σ_i Σ_c q_ic (log q_ic − log p_ic),
//             p = softmax(o_n / T), q = softmax(stopgrad(o_m) / T)       (DML, "batchmean")
// Losses are summed over networks (as in the reference code), so each network's gradient is the
// gradient of its own CE + KD terms.
import * as F from '../ops/functional.js';
import { noGrad } from '../autograd/mode.js';
import type { Tensor } from '../tensor/tensor.js';
import type { Module } from '../nn/module.js';
import type { StudentOutput } from '../models/types.js';

/** What the trainer tells an objective about the current step. */
export interface ObjectiveContext {
  /** Zero-based epoch and global step (optimizer steps since the start of the run). */
  epoch: number;
  step: number;
  /** Number of classes. */
  classes: number;
}

export interface ObjectiveResult {
  /** The scalar to back-propagate. */
  loss: Tensor;
  /** Named scalar parts for logs and metrics (e.g. 'ce', 'kd', 'ce/net0'). */
  parts: Record<string, number>;
}

export interface Objective {
  readonly name: string;
  /**
   * Extra trainable modules the objective owns (projection heads, aggregators in MCL/L-MCL).
   * The trainer adds their parameters to the optimizer and saves them in checkpoints.
   */
  modules(): Module[];
  compute(outputs: StudentOutput[], labels: Int32Array, context: ObjectiveContext): ObjectiveResult;
}

export interface ObjectiveOptions {
  /** KL temperature (--kd-T), default 3. */
  kdT?: number;
}

/** Σ over every network and head of the mean cross-entropy. Parts: 'ce', 'ce/net<n>'. */
function crossEntropyTerms(outputs: StudentOutput[], labels: Int32Array, parts: Record<string, number>): Tensor {
  let total: Tensor | null = null;
  let sum = 0;
  outputs.forEach((output, n) => {
    if (output.logits.length === 0) throw new Error(`objective: network ${n} returned no logits`);
    let perNet = 0;
    for (const logits of output.logits) {
      const ce = F.crossEntropy(logits, labels);
      perNet += ce.item();
      total = total === null ? ce : F.add(total, ce);
    }
    parts[`ce/net${n}`] = perNet;
    sum += perNet;
  });
  parts.ce = sum;
  return total!;
}

/** KL_T(student ‖ stopgrad(teacher)) with T² scaling and batch-mean reduction (DML / KD). */
export function distillKL(student: Tensor, teacher: Tensor, temperature: number): Tensor {
  if (!(temperature > 0)) throw new Error(`distillKL: temperature must be > 0, got ${temperature}`);
  const batch = student.shape[0]!;
  const logP = F.logSoftmax(F.affine(student, 1 / temperature, 0), 1);
  const [q, logQ] = noGrad(() => {
    const scaled = F.affine(teacher.detach(), 1 / temperature, 0);
    return [F.softmax(scaled, 1), F.logSoftmax(scaled, 1)] as const;
  });
  // Σ q (log q − log p) = Σ q log q − Σ q log p; the first sum is a constant.
  const pointwise = F.mul(q, F.sub(logQ, logP));
  return F.mul(F.sum(pointwise), (temperature * temperature) / batch);
}

/** Plain cross-entropy for each network (and each auxiliary head): N independent networks. */
export class BaselineObjective implements Objective {
  readonly name = 'baseline';
  modules(): Module[] {
    return [];
  }
  compute(outputs: StudentOutput[], labels: Int32Array): ObjectiveResult {
    const parts: Record<string, number> = {};
    const loss = crossEntropyTerms(outputs, labels, parts);
    parts.total = loss.item();
    return { loss, parts };
  }
}

/** Deep Mutual Learning: CE + mean over peers of KL_T(o_n ‖ sg o_m) on the final heads. */
export class DmlObjective implements Objective {
  readonly name = 'dml';
  readonly temperature: number;
  constructor(options: ObjectiveOptions = {}) {
    this.temperature = options.kdT ?? 3;
    if (!(this.temperature > 0)) throw new Error(`dml: --kd-T must be > 0, got ${this.temperature}`);
  }
  modules(): Module[] {
    return [];
  }
  compute(outputs: StudentOutput[], labels: Int32Array): ObjectiveResult {
    const parts: Record<string, number> = {};
    let loss = crossEntropyTerms(outputs, labels, parts);
    const count = outputs.length;
    let kdSum = 0;
    if (count > 1) {
      outputs.forEach((output, n) => {
        const student = output.logits[output.logits.length - 1]!;
        let perNet: Tensor | null = null;
        outputs.forEach((peer, m) => {
          if (m === n) return;
          const kl = distillKL(student, peer.logits[peer.logits.length - 1]!, this.temperature);
          perNet = perNet === null ? kl : F.add(perNet, kl);
        });
        const averaged = F.mul(perNet!, 1 / (count - 1));
        const value = averaged.item();
        parts[`kd/net${n}`] = value;
        kdSum += value;
        loss = F.add(loss, averaged);
      });
    }
    parts.kd = kdSum;
    parts.total = loss.item();
    return { loss, parts };
  }
}

export const objectiveNames = ['baseline', 'dml'] as const;
export type ObjectiveName = (typeof objectiveNames)[number];

/** Builds an objective by method name (--method). */
export function createObjective(name: string, options: ObjectiveOptions = {}): Objective {
  switch (name) {
    case 'baseline':
      return new BaselineObjective();
    case 'dml':
      return new DmlObjective(options);
    default:
      throw new Error(`unknown method '${name}'. Known: ${objectiveNames.join(', ')}`);
  }
}
