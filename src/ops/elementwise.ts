// Elementwise ops with NumPy/PyTorch broadcasting, scalar forms, unary maps and expand.
// Native kernels: native/src/cpu/elementwise.cpp. Tests: test/ops/elementwise.test.ts.
//
// Every backward rule is written with these same differentiable ops, so gradients of gradients
// work (createGraph). Broadcast inputs receive their gradient summed back to their own shape.
import { native } from '../native/index.js';
import { recordOperation } from '../autograd/node.js';
import { Tensor, formatShape } from '../tensor/tensor.js';
import { checkFiniteNumber, checkSameDevice, checkTensor, describeValue } from './checks.js';
import { sumToShape } from './reduce.js';
import { reshape } from './layout.js';
import { zerosLike } from '../tensor/creation.js';

const enum BinaryCode { Add = 0, Sub = 1, Mul = 2, Div = 3, Maximum = 4, Minimum = 5 }
const enum UnaryCode { Neg = 0, Exp = 1, Log = 2, Sqrt = 3, Rsqrt = 4, Relu = 5, Sigmoid = 6, Reciprocal = 7, Square = 8, Abs = 9, Tanh = 10, Sign = 11, Step = 12 }

const maxRank = 8;

/** The broadcast result shape of a and b (throws naming the op when incompatible). */
export function broadcastShapes(a: readonly number[], b: readonly number[], op: string): number[] {
  const rank = Math.max(a.length, b.length);
  const result: number[] = [];
  for (let index = 0; index < rank; index += 1) {
    const extentA = a[a.length - rank + index] ?? 1;
    const extentB = b[b.length - rank + index] ?? 1;
    if (extentA !== extentB && extentA !== 1 && extentB !== 1) {
      throw new Error(`${op}: shapes ${formatShape(a)} and ${formatShape(b)} cannot be broadcast together`);
    }
    result.push(extentA === 1 ? extentB : extentA);
  }
  if (rank > maxRank) throw new Error(`${op}: tensors of rank ${rank} are not supported (at most ${maxRank})`);
  return result;
}

/** Element strides of `shape` read as `outShape` (0 along broadcast dimensions). */
function broadcastStrides(shape: readonly number[], outShape: readonly number[]): number[] {
  const strides = new Array<number>(outShape.length).fill(0);
  let stride = 1;
  for (let index = shape.length - 1; index >= 0; index -= 1) {
    const outIndex = outShape.length - shape.length + index;
    strides[outIndex] = shape[index] === 1 ? 0 : stride;
    stride *= shape[index]!;
  }
  return strides;
}

function runBinary(code: BinaryCode, a: Tensor, b: Tensor, op: string): Tensor {
  const outShape = broadcastShapes(a.shape, b.shape, op);
  const out = Tensor.empty(outShape, a.device);
  native().binary(code, a.storage.handle, b.storage.handle, out.storage.handle, outShape,
    broadcastStrides(a.shape, outShape), broadcastStrides(b.shape, outShape));
  return out;
}

function runUnary(code: UnaryCode, x: Tensor): Tensor {
  const out = Tensor.empty(x.shape, x.device);
  native().unary(code, x.storage.handle, out.storage.handle, x.size);
  return out;
}

function checkBinary(a: unknown, b: unknown, op: string): asserts a is Tensor {
  checkTensor(a, op, 'a');
  if (typeof b === 'number') {
    checkFiniteOrInfinite(b, op);
    return;
  }
  checkTensor(b, op, 'b');
  checkSameDevice(op, a, b);
}

function checkFiniteOrInfinite(value: number, op: string): void {
  if (Number.isNaN(value)) throw new TypeError(`${op}: scalar operand is NaN`);
}

/** x·scale + shift (the scalar forms of add/sub/mul). */
export function affine(x: Tensor, scale: number, shift: number): Tensor {
  checkTensor(x, 'affine', 'x');
  const out = Tensor.empty(x.shape, x.device);
  native().affine(x.storage.handle, out.storage.handle, x.size, scale, shift);
  return recordOperation('affine', out, [x], [], (grad) => [scale === 1 ? reshape(grad, grad.shape) : affine(grad, scale, 0)]);
}

/** a + b (tensor or number), broadcasting. */
export function add(a: Tensor, b: Tensor | number): Tensor {
  checkBinary(a, b, 'add');
  if (typeof b === 'number') return affine(a, 1, b);
  const out = runBinary(BinaryCode.Add, a, b, 'add');
  return recordOperation('add', out, [a, b], [], (grad, context) => [
    context.needsInputGrad[0] ? sumToShape(grad, a.shape) : null,
    context.needsInputGrad[1] ? sumToShape(grad, b.shape) : null,
  ]);
}

/** a − b; a may be a number (then the result is a − b elementwise). */
export function sub(a: Tensor | number, b: Tensor | number): Tensor {
  if (typeof a === 'number') {
    checkTensor(b, 'sub', 'b');
    return affine(b, -1, a);
  }
  checkBinary(a, b, 'sub');
  if (typeof b === 'number') return affine(a, 1, -b);
  const out = runBinary(BinaryCode.Sub, a, b, 'sub');
  return recordOperation('sub', out, [a, b], [], (grad, context) => [
    context.needsInputGrad[0] ? sumToShape(grad, a.shape) : null,
    context.needsInputGrad[1] ? sumToShape(neg(grad), b.shape) : null,
  ]);
}

/** a × b (tensor or number), broadcasting. */
export function mul(a: Tensor, b: Tensor | number): Tensor {
  checkBinary(a, b, 'mul');
  if (typeof b === 'number') return affine(a, b, 0);
  const out = runBinary(BinaryCode.Mul, a, b, 'mul');
  return recordOperation('mul', out, [a, b], [a, b], (grad, context) => {
    const [savedA, savedB] = context.saved as [Tensor, Tensor];
    return [
      context.needsInputGrad[0] ? sumToShape(mul(grad, savedB), a.shape) : null,
      context.needsInputGrad[1] ? sumToShape(mul(grad, savedA), b.shape) : null,
    ];
  });
}

/** a ÷ b; either side may be a number. */
export function div(a: Tensor | number, b: Tensor | number): Tensor {
  if (typeof a === 'number') {
    checkTensor(b, 'div', 'b');
    return mul(reciprocal(b as Tensor), a);
  }
  checkBinary(a, b, 'div');
  if (typeof b === 'number') {
    if (b === 0) throw new Error('div: division by the scalar 0');
    return affine(a, 1 / b, 0);
  }
  const out = runBinary(BinaryCode.Div, a, b, 'div');
  return recordOperation('div', out, [a, b], [a, b], (grad, context) => {
    const [savedA, savedB] = context.saved as [Tensor, Tensor];
    const gradA = div(grad, savedB);
    const gradB = context.needsInputGrad[1] ? sumToShape(neg(mul(gradA, div(savedA, savedB))), b.shape) : null;
    return [context.needsInputGrad[0] ? sumToShape(gradA, a.shape) : null, gradB];
  });
}

/** Elementwise maximum (the gradient goes to the larger input; to b on ties). */
export function maximum(a: Tensor, b: Tensor): Tensor {
  return minMax(a, b, BinaryCode.Maximum, 'maximum');
}

/** Elementwise minimum (the gradient goes to the smaller input; to b on ties). */
export function minimum(a: Tensor, b: Tensor): Tensor {
  return minMax(a, b, BinaryCode.Minimum, 'minimum');
}

function minMax(a: Tensor, b: Tensor, code: BinaryCode, op: string): Tensor {
  checkBinary(a, b, op);
  checkTensor(b, op, 'b');
  const out = runBinary(code, a, b, op);
  return recordOperation(op, out, [a, b], [a, b], (grad, context) => {
    const [savedA, savedB] = context.saved as [Tensor, Tensor];
    const difference = code === BinaryCode.Maximum ? sub(savedA, savedB) : sub(savedB, savedA);
    const takeA = step(difference);
    return [
      context.needsInputGrad[0] ? sumToShape(mul(grad, takeA), a.shape) : null,
      context.needsInputGrad[1] ? sumToShape(mul(grad, sub(1, takeA)), b.shape) : null,
    ];
  });
}

export function neg(x: Tensor): Tensor {
  checkTensor(x, 'neg', 'x');
  return recordOperation('neg', runUnary(UnaryCode.Neg, x), [x], [], (grad) => [neg(grad)]);
}

export function exp(x: Tensor): Tensor {
  checkTensor(x, 'exp', 'x');
  const out = runUnary(UnaryCode.Exp, x);
  return recordOperation('exp', out, [x], [out], (grad, context) => [mul(grad, context.saved[0]!)]);
}

export function log(x: Tensor): Tensor {
  checkTensor(x, 'log', 'x');
  return recordOperation('log', runUnary(UnaryCode.Log, x), [x], [x], (grad, context) => [div(grad, context.saved[0]!)]);
}

export function sqrt(x: Tensor): Tensor {
  checkTensor(x, 'sqrt', 'x');
  const out = runUnary(UnaryCode.Sqrt, x);
  return recordOperation('sqrt', out, [x], [out], (grad, context) => [mul(div(grad, context.saved[0]!), 0.5)]);
}

/** 1/sqrt(x). */
export function rsqrt(x: Tensor): Tensor {
  checkTensor(x, 'rsqrt', 'x');
  const out = runUnary(UnaryCode.Rsqrt, x);
  // d/dx x^(-1/2) = -1/2 · x^(-3/2) = -1/2 · out³
  return recordOperation('rsqrt', out, [x], [out], (grad, context) => {
    const y = context.saved[0]!;
    return [mul(mul(grad, mul(square(y), y)), -0.5)];
  });
}

export function reciprocal(x: Tensor): Tensor {
  checkTensor(x, 'reciprocal', 'x');
  const out = runUnary(UnaryCode.Reciprocal, x);
  return recordOperation('reciprocal', out, [x], [out], (grad, context) => [neg(mul(grad, square(context.saved[0]!)))]);
}

export function square(x: Tensor): Tensor {
  checkTensor(x, 'square', 'x');
  return recordOperation('square', runUnary(UnaryCode.Square, x), [x], [x], (grad, context) => [mul(mul(grad, context.saved[0]!), 2)]);
}

export function abs(x: Tensor): Tensor {
  checkTensor(x, 'abs', 'x');
  return recordOperation('abs', runUnary(UnaryCode.Abs, x), [x], [x], (grad, context) => [mul(grad, sign(context.saved[0]!))]);
}

export function tanh(x: Tensor): Tensor {
  checkTensor(x, 'tanh', 'x');
  const out = runUnary(UnaryCode.Tanh, x);
  return recordOperation('tanh', out, [x], [out], (grad, context) => [mul(grad, sub(1, square(context.saved[0]!)))]);
}

/** −1, 0 or 1 (no gradient). */
export function sign(x: Tensor): Tensor {
  checkTensor(x, 'sign', 'x');
  return runUnary(UnaryCode.Sign, x);
}

/** 1 where x > 0, else 0 (no gradient). */
export function step(x: Tensor): Tensor {
  checkTensor(x, 'step', 'x');
  return runUnary(UnaryCode.Step, x);
}

export function relu(x: Tensor): Tensor {
  checkTensor(x, 'relu', 'x');
  const out = runUnary(UnaryCode.Relu, x);
  return recordOperation('relu', out, [x], [out], (grad, context) => [reluMask(grad, context.saved[0]!)]);
}

/**
 * grad where mask > 0, else 0: ReLU's backward. Linear in grad, so its own backward is the same
 * mask applied to the incoming gradient (the mask's gradient is zero: ReLU'' = 0 a.e.).
 */
export function reluMask(grad: Tensor, mask: Tensor): Tensor {
  checkTensor(grad, 'reluMask', 'grad');
  checkTensor(mask, 'reluMask', 'mask');
  checkSameDevice('reluMask', grad, mask);
  if (grad.size !== mask.size) throw new Error(`reluMask: grad ${formatShape(grad.shape)} and mask ${formatShape(mask.shape)} differ`);
  const out = Tensor.empty(grad.shape, grad.device);
  native().reluMask(grad.storage.handle, mask.storage.handle, out.storage.handle, grad.size);
  // The mask is recorded as an input with a zero gradient (like PyTorch's threshold_backward), so
  // a Hessian-vector product through a ReLU-only path gives zeros rather than "no graph".
  return recordOperation('reluMask', out, [grad, mask], [mask], (gradOut, context) => [
    context.needsInputGrad[0] ? reluMask(gradOut, context.saved[0]!) : null,
    context.needsInputGrad[1] ? zerosLike(context.saved[0]!) : null,
  ]);
}

export function sigmoid(x: Tensor): Tensor {
  checkTensor(x, 'sigmoid', 'x');
  const out = runUnary(UnaryCode.Sigmoid, x);
  return recordOperation('sigmoid', out, [x], [out], (grad, context) => {
    const y = context.saved[0]!;
    return [mul(grad, mul(y, sub(1, y)))];
  });
}

/** x^exponent for a scalar exponent. */
export function pow(x: Tensor, exponent: number): Tensor {
  checkTensor(x, 'pow', 'x');
  checkFiniteNumber(exponent, 'pow', 'exponent');
  const out = Tensor.empty(x.shape, x.device);
  native().power(x.storage.handle, out.storage.handle, x.size, exponent);
  return recordOperation('pow', out, [x], [x], (grad, context) => {
    if (exponent === 0) return [mul(grad, 0)];
    const base = context.saved[0]!;
    return [mul(mul(grad, exponent === 2 ? base : pow(base, exponent - 1)), exponent)];
  });
}

/** Broadcasts x to `shape` (a copy, like torch's expand(...).contiguous()). */
export function expand(x: Tensor, shape: readonly number[]): Tensor {
  checkTensor(x, 'expand', 'x');
  if (!Array.isArray(shape)) throw new TypeError(`expand: shape must be an array, got ${describeValue(shape)}`);
  const outShape = broadcastShapes(x.shape, shape, 'expand');
  if (outShape.some((extent, index) => extent !== shape[index]) || outShape.length !== shape.length) {
    throw new Error(`expand: cannot expand ${formatShape(x.shape)} to ${formatShape(shape)}`);
  }
  const out = Tensor.empty(outShape, x.device);
  const strides = broadcastStrides(x.shape, outShape);
  // "maximum(x, x)" is the identity; with shared strides it copies x broadcast to outShape.
  native().binary(BinaryCode.Maximum, x.storage.handle, x.storage.handle, out.storage.handle, outShape, strides, strides);
  return recordOperation('expand', out, [x], [], (grad) => [sumToShape(grad, x.shape)]);
}

/** Number of NaN or infinite entries (used to stop training on a non-finite loss). */
export function countNonFinite(x: Tensor): number {
  checkTensor(x, 'countNonFinite', 'x');
  return native().countNonFinite(x.storage.handle, x.size);
}
