// Cross-entropy of class logits against integer labels (torch.nn.functional.cross_entropy with
// class-index targets; no class weights, ignore_index or label smoothing).
// Native kernels: native/src/cpu/softmax.cpp. Tests: test/ops/cross_entropy.test.ts.
//
//   loss_i = logsumexp(x_i) − x_{i, label_i};  'mean' → Σ loss_i / B, 'sum' → Σ loss_i, 'none' → [B]
//   d loss / d x_i = (softmax(x_i) − onehot(label_i)) · c_i,  c_i = g / B ('mean'), g ('sum'), g_i ('none')
// Without createGraph the gradient comes from a fused native kernel (reusing the per-row max and
// log-sum of the forward). With createGraph it is built from F.softmax and differentiable ops, so
// it is itself differentiable in the logits (Hessian-vector products for the meta step) and in g.
import { native } from '../native/index.js';
import { fusedOrComposite } from '../autograd/fused.js';
import { recordOperation } from '../autograd/node.js';
import { Tensor, formatShape, shapeSize } from '../tensor/tensor.js';
import { tensor } from '../tensor/creation.js';
import { checkRank, checkTensor, describeValue } from './checks.js';
import { affine, mul, sub } from './elementwise.js';
import { reshape } from './layout.js';
import { softmax } from './softmax.js';

export type CrossEntropyReduction = 'mean' | 'sum' | 'none';

export interface CrossEntropyOptions {
  /** 'mean' (default): average over the batch; 'sum'; 'none': one loss per row, shape [B]. */
  reduction?: CrossEntropyReduction;
}

const reductionCodes: Record<CrossEntropyReduction, number> = { none: 0, sum: 1, mean: 2 };

function parseOptions(options: unknown): CrossEntropyReduction {
  if (options === undefined) return 'mean';
  if (options === null || typeof options !== 'object' || Array.isArray(options)) {
    throw new TypeError(`crossEntropy: options must be an object, got ${describeValue(options)}`);
  }
  for (const key of Object.keys(options)) {
    if (key !== 'reduction') throw new Error(`crossEntropy: option '${key}' is not supported (only 'reduction')`);
  }
  const reduction = (options as CrossEntropyOptions).reduction ?? 'mean';
  if (!Object.prototype.hasOwnProperty.call(reductionCodes, reduction)) {
    throw new Error(`crossEntropy: reduction must be 'mean', 'sum' or 'none', got ${describeValue(reduction)}`);
  }
  return reduction;
}

/** Cross-entropy of logits [B, C] against labels (Int32Array of length B, values in [0, C)). */
export function crossEntropy(logits: Tensor, labels: Int32Array, options?: CrossEntropyOptions): Tensor {
  checkTensor(logits, 'crossEntropy', 'logits');
  checkRank(logits, 2, 'crossEntropy', 'logits', '[batch, classes]');
  if (!(labels instanceof Int32Array)) {
    throw new TypeError(`crossEntropy: labels must be an Int32Array, got ${describeValue(labels)}`);
  }
  const reduction = parseOptions(options);
  const [batch, classes] = logits.shape as [number, number];
  if (labels.length !== batch) {
    throw new Error(`crossEntropy: labels has length ${labels.length} but logits ${formatShape(logits.shape)} has batch size ${batch}`);
  }
  // A private copy: the backward must see the labels of this call even if the caller reuses its array.
  const saved = labels.slice();
  for (let index = 0; index < batch; index += 1) {
    const label = saved[index]!;
    if (label < 0 || label >= classes) {
      throw new Error(`crossEntropy: label ${label} at index ${index} is out of range for ${classes} classes`);
    }
  }
  const out = Tensor.empty(reduction === 'none' ? [batch] : [], logits.device);
  const stats = Tensor.empty([batch, 2], logits.device);
  native().crossEntropyForward(logits.storage.handle, saved, out.storage.handle, stats.storage.handle, batch, classes,
    reductionCodes[reduction]);
  const scale = reduction === 'mean' ? (batch > 0 ? 1 / batch : 0) : 1;
  const result = recordOperation('crossEntropy', out, [logits], [logits, stats], (grad, context) => {
    const [savedLogits, savedStats] = context.saved as [Tensor, Tensor];
    return [fusedOrComposite('crossEntropy', context, {
      fused: () => {
        const gradInput = Tensor.empty(savedLogits.shape, savedLogits.device);
        native().crossEntropyBackward(savedLogits.storage.handle, saved, savedStats.storage.handle, grad.storage.handle,
          gradInput.storage.handle, batch, classes, scale, reduction === 'none');
        return gradInput;
      },
      composite: () => crossEntropyBackwardComposite(savedLogits, saved, grad, reduction === 'none', scale),
    })];
  });
  stats.dispose();
  return result;
}

/** (softmax(logits) − onehot(labels)) · scale · g in differentiable ops (g: [] or per row [B]). */
function crossEntropyBackwardComposite(logits: Tensor, labels: Int32Array, grad: Tensor, perRow: boolean, scale: number): Tensor {
  const [batch, classes] = logits.shape as [number, number];
  const onehotValues = new Float32Array(shapeSize(logits.shape));
  labels.forEach((label, row) => {
    onehotValues[row * classes + label] = 1;
  });
  const onehot = tensor(onehotValues, [batch, classes], { device: logits.device });
  const probabilities = softmax(logits, 1);
  const difference = sub(probabilities, onehot);
  const weight = perRow ? reshape(grad, [batch, 1]) : affine(grad, scale, 0);
  const result = mul(difference, weight);
  for (const intermediate of [onehot, probabilities, difference, weight]) intermediate.dispose();
  return result;
}
