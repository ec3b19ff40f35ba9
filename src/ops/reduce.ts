// Reductions: sum and mean over axes (PyTorch semantics; dims may be negative), and sumToShape,
// the reduction that undoes broadcasting in backward rules.
// Native kernel: native/src/cpu/reduce.cpp. Tests: test/ops/reduce.test.ts.
import { native } from '../native/index.js';
import { recordOperation } from '../autograd/node.js';
import { Tensor, formatShape, shapeSize } from '../tensor/tensor.js';
import { checkTensor, normaliseDim } from './checks.js';
import { affine, expand } from './elementwise.js';
import { reshape } from './layout.js';

function resolveDims(x: Tensor, dims: number | readonly number[] | undefined, op: string): number[] {
  if (dims === undefined) return x.shape.map((_, index) => index);
  const list = typeof dims === 'number' ? [dims] : dims;
  if (!Array.isArray(list)) throw new TypeError(`${op}: dims must be a number or an array of numbers`);
  const resolved = list.map((dim) => normaliseDim(dim, x.shape.length, op));
  if (new Set(resolved).size !== resolved.length) throw new Error(`${op}: dims ${JSON.stringify(list)} repeat an axis`);
  return resolved.sort((p, q) => p - q);
}

function reducedShape(shape: readonly number[], dims: readonly number[], keepDim: boolean): number[] {
  const result: number[] = [];
  shape.forEach((extent, index) => {
    if (!dims.includes(index)) result.push(extent);
    else if (keepDim) result.push(1);
  });
  return result;
}

/** Sum over `dims` (all when omitted). */
export function sum(x: Tensor, dims?: number | readonly number[], keepDim = false): Tensor {
  checkTensor(x, 'sum', 'x');
  const axes = resolveDims(x, dims, 'sum');
  const out = Tensor.empty(reducedShape(x.shape, axes, keepDim), x.device);
  native().sumAxes(x.storage.handle, out.storage.handle, [...x.shape], axes);
  const keptShape = reducedShape(x.shape, axes, true);
  return recordOperation('sum', out, [x], [], (grad) => {
    const shaped = reshape(grad, keptShape);
    const expanded = expand(shaped, x.shape);
    shaped.dispose();
    return [expanded];
  });
}

/** Mean over `dims` (all when omitted). */
export function mean(x: Tensor, dims?: number | readonly number[], keepDim = false): Tensor {
  checkTensor(x, 'mean', 'x');
  const axes = resolveDims(x, dims, 'mean');
  const count = axes.reduce((product, axis) => product * x.shape[axis]!, 1);
  if (count === 0) throw new Error(`mean: reducing ${formatShape(x.shape)} over empty axes`);
  const total = sum(x, axes, keepDim);
  const result = affine(total, 1 / count, 0);
  total.dispose();
  return result;
}

/** Sums grad (of a broadcast result) back to `shape`, the shape of the broadcast input. */
export function sumToShape(grad: Tensor, shape: readonly number[]): Tensor {
  if (grad.shape.length === shape.length && grad.shape.every((extent, index) => extent === shape[index])) {
    return reshape(grad, shape);
  }
  const leading = grad.shape.length - shape.length;
  const axes: number[] = [];
  grad.shape.forEach((extent, index) => {
    if (index < leading || (shape[index - leading] === 1 && extent !== 1)) axes.push(index);
  });
  const summed = sum(grad, axes, true);
  if (shapeSize(summed.shape) !== shapeSize(shape)) {
    throw new Error(`lmcl internal: sumToShape cannot reduce ${formatShape(grad.shape)} to ${formatShape(shape)}`);
  }
  const result = reshape(summed, shape);
  summed.dispose();
  return result;
}
