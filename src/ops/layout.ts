// Layout ops: reshape (a view: shares storage), and copies for permute/transpose, concat, slice.
// Native kernels: native/src/cpu/layout.cpp. Tests: test/ops/layout.test.ts.
import { recordOperation } from '../autograd/node.js';
import { Tensor, formatShape, shapeSize } from '../tensor/tensor.js';
import { checkTensor } from './checks.js';

/** A view of x with another shape of the same size; one extent may be -1 (inferred). */
export function reshape(x: Tensor, shape: readonly number[]): Tensor {
  checkTensor(x, 'reshape', 'x');
  if (!Array.isArray(shape) || !shape.every((extent) => Number.isInteger(extent) && extent >= -1)) {
    throw new TypeError(`reshape: shape must be an array of integers (one may be -1), got ${JSON.stringify(shape)}`);
  }
  const inferred = shape.filter((extent) => extent === -1).length;
  if (inferred > 1) throw new Error(`reshape: only one extent may be -1, got ${formatShape(shape)}`);
  let target = [...shape];
  if (inferred === 1) {
    const known = shapeSize(shape.filter((extent) => extent !== -1));
    if (known === 0 || x.size % known !== 0) throw new Error(`reshape: cannot reshape ${formatShape(x.shape)} to ${formatShape(shape)}`);
    target = shape.map((extent) => (extent === -1 ? x.size / known : extent));
  }
  if (shapeSize(target) !== x.size) {
    throw new Error(`reshape: cannot reshape ${formatShape(x.shape)} (${x.size} elements) to ${formatShape(shape)}`);
  }
  const out = x.viewAs(target);
  return recordOperation('reshape', out, [x], [], (grad) => [reshape(grad, x.shape)]);
}

/** Flattens dims startDim..end into one (like torch.flatten(x, startDim)). */
export function flatten(x: Tensor, startDim = 1): Tensor {
  checkTensor(x, 'flatten', 'x');
  if (!Number.isInteger(startDim) || startDim < 0 || startDim >= Math.max(1, x.shape.length)) {
    throw new Error(`flatten: startDim ${startDim} out of range for shape ${formatShape(x.shape)}`);
  }
  return reshape(x, [...x.shape.slice(0, startDim), shapeSize(x.shape.slice(startDim))]);
}
