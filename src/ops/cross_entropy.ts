// Cross-entropy of class logits against integer labels (torch.nn.functional.cross_entropy with
// class-index targets; no class weights, ignore_index or label smoothing). Labels are an
// IndexTensor (or an Int32Array, copied to the logits' device per call).
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
import { checkRank, checkTensor, describeValue, firstOutOfRange, holdIndices, type IndexInput } from './checks.js';
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

/**
 * Cross-entropy of logits [B, C] against labels: an IndexTensor of length B on the logits'
 * device (made once per batch), or an Int32Array (copied to that device for this call); values
 * in [0, C).
 */
export function crossEntropy(logits: Tensor, labels: IndexInput, options?: CrossEntropyOptions): Tensor {
  checkTensor(logits, 'crossEntropy', 'logits');
  checkRank(logits, 2, 'crossEntropy', 'logits', '[batch, classes]');
  const reduction = parseOptions(options);
  const [batch, classes] = logits.shape as [number, number];
  const held = holdIndices(labels, logits.device, 'crossEntropy', 'labels');
  try {
    if (held.length !== batch) {
      throw new Error(`crossEntropy: labels has length ${held.length} but logits ${formatShape(logits.shape)} has batch size ${batch}`);
    }
    const position = firstOutOfRange(labels, held.values, classes);
    if (position >= 0) {
      throw new Error(`crossEntropy: label ${held.values[position]} at index ${position} is out of range for ${classes} classes`);
    }
  } catch (error) {
    held.release();
    throw error;
  }
  const out = Tensor.empty(reduction === 'none' ? [batch] : [], logits.device);
  const stats = Tensor.empty([batch, 2], logits.device);
  native().crossEntropyForward(logits.storage.handle, held.handle, out.storage.handle, stats.storage.handle, batch, classes,
    reductionCodes[reduction]);
  const scale = reduction === 'mean' ? (batch > 0 ? 1 / batch : 0) : 1;
  const result = recordOperation('crossEntropy', out, [logits], [logits, stats], (grad, context) => {
    const [savedLogits, savedStats] = context.saved as [Tensor, Tensor];
    return [fusedOrComposite('crossEntropy', context, {
      fused: () => {
        const gradInput = Tensor.empty(savedLogits.shape, savedLogits.device);
        native().crossEntropyBackward(savedLogits.storage.handle, held.handle, savedStats.storage.handle, grad.storage.handle,
          gradInput.storage.handle, batch, classes, scale, reduction === 'none');
        return gradInput;
      },
      composite: () => crossEntropyBackwardComposite(savedLogits, held.values, grad, reduction === 'none', scale),
    })];
  }, held.release);
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
