// Supervised InfoNCE (method.md §0.1): the VCL / ICL loss of MCL and L-MCL, fused.
// Native kernels: native/src/cpu/infonce.cpp. Tests: test/ops/infonce.test.ts.
//
//   L = anchor·contrastᵀ / τ,  P_u = {v ≠ u : y_v = y_u},  D_u = {k ≠ u}
//   row_u = log Σ_{k∈D_u} exp L_uk − mean_{v∈P_u} L_uv
//   loss  = Σ_{u: P_u≠∅} w_u·row_u / #{u : P_u ≠ ∅}    (0 if no anchor has a positive; never NaN)
// Gradients reach anchor, contrast and weights; anchor === contrast (VCL) sums both paths (the
// engine adds the two input gradients). First order: the fused native backward. Under createGraph:
// the derivative of supConInfoNCEComposite (the same formula in differentiable ops), through
// fusedOrComposite.
import { native } from '../native/index.js';
import { fusedOrComposite } from '../autograd/fused.js';
import { noGrad } from '../autograd/mode.js';
import { recordOperation } from '../autograd/node.js';
import { Tensor } from '../tensor/tensor.js';
import { tensor } from '../tensor/creation.js';
import { readOptions, type IndexInput } from './checks.js';
import { gradientOfComposite } from './composite.js';
import { checkLabels, checkMatrices, checkTemperature, checkWeights, keepsDirection } from './contrastive_checks.js';
import { add, affine, mul } from './elementwise.js';
import { linear } from './gemm.js';
import { reshape } from './layout.js';
import { sum } from './reduce.js';
import { logSoftmax } from './softmax.js';

export interface SupConInfoNCEOptions {
  /** τ > 0: the similarities are divided by it. */
  temperature: number;
  /** Per-anchor weights w, shape [B] (default all 1); may require grad. */
  weights?: Tensor | null;
}

/** ℓ(anchor·contrastᵀ/τ, w) of method.md §0.1 (a scalar). */
export function supConInfoNCE(anchor: Tensor, contrast: Tensor, labels: IndexInput, options: SupConInfoNCEOptions): Tensor {
  const op = 'supConInfoNCE';
  const [batch, dim] = checkMatrices(op, { anchor, contrast }, '[batch, dim]');
  const values = readOptions(options, ['temperature', 'weights'], op);
  const temperature = checkTemperature(values.temperature, op, 'temperature');
  const weights = checkWeights(values.weights, [batch], anchor.device, op);
  const savedLabels = checkLabels(labels, batch, anchor.device, op);
  const inputs = weights ? [anchor, contrast, weights] : [anchor, contrast];
  const out = Tensor.empty([], anchor.device);
  const rowStats = Tensor.empty([batch, 2], anchor.device);
  const direction = keepsDirection(batch, inputs) ? Tensor.empty([batch, batch], anchor.device) : null;
  try {
    native().supConInfoNCEForward(anchor.storage.handle, contrast.storage.handle, savedLabels.handle, weights?.storage.handle ?? null,
      out.storage.handle, rowStats.storage.handle, direction?.storage.handle ?? null, batch, dim, temperature);
  } catch (error) {
    for (const owned of [out, rowStats, direction]) owned?.dispose();
    savedLabels.release();
    throw error;
  }
  const extras = direction ? [rowStats, direction] : [rowStats];
  const result = recordOperation(op, out, inputs, [...inputs, ...extras], (grad, context) => {
    const saved = context.saved as Tensor[];
    const [savedAnchor, savedContrast] = saved as [Tensor, Tensor];
    const savedWeights = weights ? saved[2]! : null;
    const [savedStats, savedDirection] = saved.slice(inputs.length) as [Tensor, Tensor | undefined];
    const [needAnchor, needContrast, needWeights] = context.needsInputGrad;
    return fusedOrComposite('supConInfoNCE', context, {
      fused: () => {
        const gradAnchor = needAnchor ? Tensor.empty([batch, dim], anchor.device) : null;
        const gradContrast = needContrast ? Tensor.empty([batch, dim], anchor.device) : null;
        const gradWeights = weights && needWeights ? Tensor.empty([batch], anchor.device) : null;
        native().supConInfoNCEBackward(savedAnchor!.storage.handle, savedContrast!.storage.handle, savedLabels.handle,
          savedWeights?.storage.handle ?? null, savedStats.storage.handle, savedDirection?.storage.handle ?? null, grad.storage.handle,
          gradAnchor?.storage.handle ?? null, gradContrast?.storage.handle ?? null, gradWeights?.storage.handle ?? null,
          batch, dim, temperature);
        return weights ? [gradAnchor, gradContrast, gradWeights] : [gradAnchor, gradContrast];
      },
      composite: () => gradientOfComposite(context, context.saved.slice(0, inputs.length), grad, (a, c, w) =>
        supConInfoNCEComposite(a!, c!, savedLabels.values, { temperature, weights: w ?? null })),
    });
  }, savedLabels.release);
  rowStats.dispose();
  direction?.dispose();
  return result;
}

/** The same loss composed from differentiable ops (materialises L and the masks: B² floats each). */
export function supConInfoNCEComposite(anchor: Tensor, contrast: Tensor, labels: Int32Array, options: SupConInfoNCEOptions): Tensor {
  const logits = affine(linear(anchor, contrast), 1 / options.temperature, 0);
  return infoNCEFromLogits(logits, labels, options.weights ?? null);
}

/**
 * ℓ(L, w) from a logits matrix L [B, B] in differentiable ops: the diagonal is pushed to −1e30
 * (it drops out of the log-sum-exp exactly and is never a positive), rows without positives get 0.
 */
export function infoNCEFromLogits(logits: Tensor, labels: Int32Array, weights: Tensor | null): Tensor {
  const batch = logits.shape[0]!;
  const { diagonal, positives, rows } = noGrad(() => infoNCEMasks(labels, logits.device));
  const masked = add(logits, diagonal);
  const logProbabilities = logSoftmax(masked, 1);
  // −Σ_v P_uv/|P_u| · log softmax: = lse_u − mean_{v∈P_u} L_uv on rows with positives, 0 elsewhere.
  const rowTerms = affine(sum(mul(logProbabilities, positives), 1), -1, 0);
  const weighted = weights ? mul(rowTerms, reshape(weights, [batch])) : rowTerms;
  return affine(sum(weighted), rows > 0 ? 1 / rows : 0, 0);
}

function infoNCEMasks(labels: Int32Array, device: Tensor['device']): { diagonal: Tensor; positives: Tensor; rows: number } {
  const batch = labels.length;
  const diagonal = new Float32Array(batch * batch);
  const positives = new Float32Array(batch * batch);
  let rows = 0;
  for (let u = 0; u < batch; u += 1) {
    diagonal[u * batch + u] = -1e30;
    let count = 0;
    for (let v = 0; v < batch; v += 1) if (v !== u && labels[v] === labels[u]) count += 1;
    if (count === 0) continue;
    rows += 1;
    for (let v = 0; v < batch; v += 1) if (v !== u && labels[v] === labels[u]) positives[u * batch + v] = 1 / count;
  }
  return {
    diagonal: tensor(diagonal, [batch, batch], { device }),
    positives: tensor(positives, [batch, batch], { device }),
    rows,
  };
}
