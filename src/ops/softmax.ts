// Softmax and log-softmax along any dim (torch.nn.functional.softmax / log_softmax; dim may be
// negative). Native kernels: native/src/cpu/softmax.cpp. Tests: test/ops/softmax.test.ts.
//
// Backward, from the saved output y:
//   softmax      dx = y ⊙ (g − Σ_dim g ⊙ y)
//   log-softmax  dx = g − exp(y) ⊙ Σ_dim g
// Without createGraph a fused native kernel computes it; with createGraph the same formula is
// built from differentiable ops on y, whose own graph leads back to x through this op, so
// gradients of gradients (and higher) work.
import { native } from '../native/index.js';
import { fusedOrComposite } from '../autograd/fused.js';
import { recordOperation } from '../autograd/node.js';
import { Tensor } from '../tensor/tensor.js';
import { checkTensor, normaliseDim } from './checks.js';
import { exp, mul, sub } from './elementwise.js';
import { reshape } from './layout.js';
import { sum } from './reduce.js';

/** The [outer, extent, inner] view of a contiguous shape around `axis`. */
export function axisView(shape: readonly number[], axis: number): { outer: number; extent: number; inner: number } {
  let outer = 1;
  let inner = 1;
  for (let index = 0; index < axis; index += 1) outer *= shape[index]!;
  for (let index = axis + 1; index < shape.length; index += 1) inner *= shape[index]!;
  return { outer, extent: shape[axis] ?? 1, inner };
}

/** softmax(x) along dim: exp(x − max) / Σ exp(x − max). */
export function softmax(x: Tensor, dim: number): Tensor {
  return softmaxAlong(x, dim, false);
}

/** log(softmax(x)) along dim, computed as (x − max) − log Σ exp(x − max). */
export function logSoftmax(x: Tensor, dim: number): Tensor {
  return softmaxAlong(x, dim, true);
}

function softmaxAlong(x: Tensor, dim: number, log: boolean): Tensor {
  const op = log ? 'logSoftmax' : 'softmax';
  checkTensor(x, op, 'x');
  const axis = normaliseDim(dim, x.dim, op);
  if (x.dim === 0) {
    // A 0-d tensor is a single row of one element (the result is 1, or 0 for log-softmax).
    const row = reshape(x, [1]);
    const result = softmaxAlong(row, 0, log);
    const out = reshape(result, []);
    row.dispose();
    result.dispose();
    return out;
  }
  const { outer, extent, inner } = axisView(x.shape, axis);
  const out = Tensor.empty(x.shape, x.device);
  native().softmaxForward(x.storage.handle, out.storage.handle, outer, extent, inner, log);
  return recordOperation(op, out, [x], [out], (grad, context) => {
    const y = context.saved[0]!;
    return [fusedOrComposite(log ? 'logSoftmax' : 'softmax', context, {
      fused: () => {
        const gradInput = Tensor.empty(y.shape, y.device);
        native().softmaxBackward(y.storage.handle, grad.storage.handle, gradInput.storage.handle, outer, extent, inner, log);
        return gradInput;
      },
      composite: () => (log ? logSoftmaxBackwardComposite(y, grad, axis) : softmaxBackwardComposite(y, grad, axis)),
    })];
  });
}

/** y ⊙ (g − Σ_axis g ⊙ y) in differentiable ops (y: the softmax output). */
export function softmaxBackwardComposite(y: Tensor, grad: Tensor, axis: number): Tensor {
  const product = mul(grad, y);
  const total = sum(product, axis, true);
  const centred = sub(grad, total);
  const result = mul(y, centred);
  product.dispose();
  total.dispose();
  centred.dispose();
  return result;
}

/** g − exp(y) ⊙ Σ_axis g in differentiable ops (y: the log-softmax output). */
export function logSoftmaxBackwardComposite(y: Tensor, grad: Tensor, axis: number): Tensor {
  const total = sum(grad, axis, true);
  const probabilities = exp(y);
  const scaled = mul(probabilities, total);
  const result = sub(grad, scaled);
  total.dispose();
  probabilities.dispose();
  scaled.dispose();
  return result;
}
