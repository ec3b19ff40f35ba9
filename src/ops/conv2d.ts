// 2-D convolution (NCHW, torch.nn.functional.conv2d semantics, dilation 1) with autograd of any
// order. Native kernels: native/src/cpu/conv2d.cpp (binding native/binding/conv2d.cpp).
// Tests: test/ops/conv2d.test.ts against test/reference/conv2d_ops_reference.ts.
//
// Three recorded ops form a closed family. Write T(x, w, g) = ⟨g, conv2d(x, w)⟩ (trilinear), so
//   conv2d(x, w)                = ∂T/∂g   (shape of the output)
//   conv2dBackwardInput(g, w)   = ∂T/∂x   (the transposed convolution; shape of x)
//   conv2dBackwardWeight(x, g)  = ∂T/∂w   (shape of w)
// Each is linear in each argument, and the derivative of ⟨h, op(·)⟩ is again one of the three:
//   conv2d(x, w):               dx = backwardInput(h, w)     dw = backwardWeight(x, h)
//   backwardInput(g, w) (h ~ x): dg = conv2d(h, w)           dw = backwardWeight(h, g)
//   backwardWeight(x, g) (h ~ w): dx = backwardInput(g, h)   dg = conv2d(x, h)
// so gradients of gradients (Hessian-vector products) stay inside the family. The bias gradient
// is Σ_{n,h,w} h: the native kernel without a graph, F.sum (differentiable) under createGraph.
import { native } from '../native/index.js';
import { fusedOrComposite } from '../autograd/fused.js';
import { recordOperation, type BackwardContext } from '../autograd/node.js';
import { Tensor, formatShape } from '../tensor/tensor.js';
import { checkSameDevice, checkTensor, describeValue, pairOf, checkRank } from './checks.js';
import { sum } from './reduce.js';

export interface Conv2dOptions {
  /** Stride [h, w] (or one number for both). Default 1. */
  stride?: number | readonly [number, number];
  /** Zero padding [h, w] on both sides (or one number for both). Default 0. */
  padding?: number | readonly [number, number];
  /** Number of channel groups (in and out channels must be divisible by it). Default 1. */
  groups?: number;
  /** Only 1 is supported; present so that torch-style calls fail clearly. */
  dilation?: number | readonly [number, number];
}

/** Everything the kernels need about one convolution (shared by the three ops of the family). */
interface Conv2dGeometry {
  /** [batch, inChannels, inHeight, inWidth, outChannels, kernelHeight, kernelWidth,
   *   strideHeight, strideWidth, paddingHeight, paddingWidth, groups] (the binding's params). */
  readonly params: number[];
  readonly inputShape: readonly number[];
  readonly weightShape: readonly number[];
  readonly outputShape: readonly number[];
}

const knownOptions = new Set(['stride', 'padding', 'groups', 'dilation']);

function readOptions(options: unknown, op: string): { stride: [number, number]; padding: [number, number]; groups: number } {
  if (options === undefined || options === null) return { stride: [1, 1], padding: [0, 0], groups: 1 };
  if (typeof options !== 'object' || Array.isArray(options)) {
    throw new TypeError(`${op}: options must be an object { stride, padding, groups }, got ${describeValue(options)}`);
  }
  const record = options as Record<string, unknown>;
  for (const key of Object.keys(record)) {
    if (!knownOptions.has(key)) throw new TypeError(`${op}: unknown option '${key}' (expected stride, padding, groups)`);
  }
  if (record.dilation !== undefined) {
    const dilation = pairOf(record.dilation, op, 'dilation', 1);
    if (dilation[0] !== 1 || dilation[1] !== 1) {
      throw new Error(`${op}: dilation ${describeValue(record.dilation)} is not supported (only dilation 1)`);
    }
  }
  const stride = record.stride === undefined ? ([1, 1] as [number, number]) : pairOf(record.stride, op, 'stride', 1);
  const padding = record.padding === undefined ? ([0, 0] as [number, number]) : pairOf(record.padding, op, 'padding', 0);
  const groups = record.groups ?? 1;
  if (typeof groups !== 'number' || !Number.isInteger(groups) || groups < 1) {
    throw new TypeError(`${op}: groups must be a positive integer, got ${describeValue(groups)}`);
  }
  return { stride, padding, groups };
}

/** Checks input/weight shapes against the options and computes the output shape. */
function geometryOf(
  inputShape: readonly number[],
  weightShape: readonly number[],
  options: unknown,
  op: string,
): Conv2dGeometry {
  const { stride, padding, groups } = readOptions(options, op);
  const [batch, inChannels, inHeight, inWidth] = inputShape as [number, number, number, number];
  const [outChannels, inPerGroup, kernelHeight, kernelWidth] = weightShape as [number, number, number, number];
  const shapes = `input ${formatShape(inputShape)}, weight ${formatShape(weightShape)}`;
  if (batch < 1 || inChannels < 1 || inHeight < 1 || inWidth < 1) {
    throw new Error(`${op}: input ${formatShape(inputShape)} has an empty dimension (every extent must be >= 1)`);
  }
  if (outChannels < 1 || inPerGroup < 1 || kernelHeight < 1 || kernelWidth < 1) {
    throw new Error(`${op}: weight ${formatShape(weightShape)} has an empty dimension (every extent must be >= 1)`);
  }
  if (inPerGroup * groups !== inChannels) {
    throw new Error(
      `${op}: ${shapes}, groups ${groups}: input channels (${inChannels}) must equal weight.shape[1] × groups (${inPerGroup} × ${groups})`,
    );
  }
  if (outChannels % groups !== 0) {
    throw new Error(`${op}: ${shapes}: output channels (${outChannels}) must be divisible by groups (${groups})`);
  }
  const outHeight = Math.floor((inHeight + 2 * padding[0] - kernelHeight) / stride[0]) + 1;
  const outWidth = Math.floor((inWidth + 2 * padding[1] - kernelWidth) / stride[1]) + 1;
  if (inHeight + 2 * padding[0] < kernelHeight || inWidth + 2 * padding[1] < kernelWidth || outHeight < 1 || outWidth < 1) {
    throw new Error(
      `${op}: ${shapes}, padding [${padding.join(', ')}]: the kernel is larger than the padded input (output size would be < 1)`,
    );
  }
  return {
    params: [batch, inChannels, inHeight, inWidth, outChannels, kernelHeight, kernelWidth, stride[0], stride[1], padding[0], padding[1], groups],
    inputShape: [...inputShape],
    weightShape: [...weightShape],
    outputShape: [batch, outChannels, outHeight, outWidth],
  };
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((extent, index) => extent === b[index]);
}

/** The saved tensor that was stored when `present` held, at its position among the saved ones. */
function savedAt(context: BackwardContext, flags: readonly boolean[], index: number): Tensor {
  let position = 0;
  for (let i = 0; i < index; i += 1) if (flags[i]) position += 1;
  return context.saved[position]!;
}

// ---- the three recorded ops (geometry already checked) ------------------------------------------

function conv2dRecorded(x: Tensor, weight: Tensor, bias: Tensor | null, geometry: Conv2dGeometry): Tensor {
  const out = Tensor.empty(geometry.outputShape, x.device);
  native().conv2dForward(x.storage.handle, weight.storage.handle, bias ? bias.storage.handle : null, out.storage.handle, geometry.params);
  const inputs = bias ? [x, weight, bias] : [x, weight];
  // x is needed for the weight gradient, weight for the input gradient.
  const flags = [weight.requiresGrad, x.requiresGrad];
  const saved = [x, weight].filter((_, index) => flags[index]);
  return recordOperation('conv2d', out, inputs, saved, (grad, context) => {
    const [needX, needW, needB] = context.needsInputGrad;
    const gradX = needX ? conv2dBackwardInputRecorded(grad, savedAt(context, flags, 1), geometry) : null;
    const gradW = needW ? conv2dBackwardWeightRecorded(savedAt(context, flags, 0), grad, geometry) : null;
    const result: (Tensor | null)[] = [gradX, gradW];
    if (bias) result.push(needB ? biasGradient(grad, geometry, context) : null);
    return result;
  });
}

function biasGradient(grad: Tensor, geometry: Conv2dGeometry, context: BackwardContext): Tensor {
  return fusedOrComposite('conv2dBias', context, {
    fused: () => {
      const out = Tensor.empty([geometry.params[4]!], grad.device);
      native().conv2dBackwardBias(grad.storage.handle, out.storage.handle, geometry.params);
      return out;
    },
    composite: () => sum(grad, [0, 2, 3]),
  });
}

function conv2dBackwardInputRecorded(gradOutput: Tensor, weight: Tensor, geometry: Conv2dGeometry): Tensor {
  const out = Tensor.empty(geometry.inputShape, gradOutput.device);
  native().conv2dBackwardInput(gradOutput.storage.handle, weight.storage.handle, out.storage.handle, geometry.params);
  // weight is needed for d/d(gradOutput), gradOutput for d/d(weight).
  const flags = [weight.requiresGrad, gradOutput.requiresGrad];
  const saved = [gradOutput, weight].filter((_, index) => flags[index]);
  return recordOperation('conv2dBackwardInput', out, [gradOutput, weight], saved, (grad, context) => {
    const [needG, needW] = context.needsInputGrad;
    return [
      needG ? conv2dRecorded(grad, savedAt(context, flags, 1), null, geometry) : null,
      needW ? conv2dBackwardWeightRecorded(grad, savedAt(context, flags, 0), geometry) : null,
    ];
  });
}

function conv2dBackwardWeightRecorded(x: Tensor, gradOutput: Tensor, geometry: Conv2dGeometry): Tensor {
  const out = Tensor.empty(geometry.weightShape, x.device);
  native().conv2dBackwardWeight(x.storage.handle, gradOutput.storage.handle, out.storage.handle, geometry.params);
  // gradOutput is needed for d/dx, x for d/d(gradOutput).
  const flags = [gradOutput.requiresGrad, x.requiresGrad];
  const saved = [x, gradOutput].filter((_, index) => flags[index]);
  return recordOperation('conv2dBackwardWeight', out, [x, gradOutput], saved, (grad, context) => {
    const [needX, needG] = context.needsInputGrad;
    return [
      needX ? conv2dBackwardInputRecorded(savedAt(context, flags, 1), grad, geometry) : null,
      needG ? conv2dRecorded(savedAt(context, flags, 0), grad, null, geometry) : null,
    ];
  });
}

// ---- public entry points ---------------------------------------------------------------------

/**
 * 2-D convolution, like torch.nn.functional.conv2d: x [N, C_in, H, W], weight
 * [C_out, C_in/groups, kh, kw], optional bias [C_out] → [N, C_out, H_out, W_out] with
 * H_out = ⌊(H + 2·padding_h − kh) / stride_h⌋ + 1 (same for W). Dilation 1 only.
 */
export function conv2d(x: Tensor, weight: Tensor, bias?: Tensor | null, options?: Conv2dOptions): Tensor {
  const op = 'conv2d';
  checkTensor(x, op, 'input');
  checkTensor(weight, op, 'weight');
  if (bias !== undefined && bias !== null) checkTensor(bias, op, 'bias');
  checkRank(x, 4, op, 'input', '[N, C, H, W]');
  checkRank(weight, 4, op, 'weight', '[out, in/groups, kh, kw]');
  const geometry = geometryOf(x.shape, weight.shape, options, op);
  if (bias) {
    if (bias.shape.length !== 1 || bias.shape[0] !== weight.shape[0]) {
      throw new Error(`${op}: argument 'bias' must have shape [${weight.shape[0]}] (one per output channel of weight ${formatShape(weight.shape)}), got ${formatShape(bias.shape)}`);
    }
  }
  checkSameDevice(op, x, weight, bias);
  return conv2dRecorded(x, weight, bias ?? null, geometry);
}

/**
 * The gradient of conv2d with respect to its input for a given output gradient: the transposed
 * convolution of gradOutput [N, C_out, H_out, W_out] with weight, producing `inputShape`
 * ([N, C_in, H, W]; it fixes the output size that strides leave ambiguous). Differentiable
 * (to any order) in gradOutput and weight.
 */
export function conv2dBackwardInput(
  gradOutput: Tensor,
  weight: Tensor,
  inputShape: readonly number[],
  options?: Conv2dOptions,
): Tensor {
  const op = 'conv2dBackwardInput';
  checkTensor(gradOutput, op, 'gradOutput');
  checkTensor(weight, op, 'weight');
  checkRank(gradOutput, 4, op, 'gradOutput', '[N, C_out, H_out, W_out]');
  checkRank(weight, 4, op, 'weight', '[out, in/groups, kh, kw]');
  checkShapeArgument(inputShape, op, 'inputShape');
  const geometry = geometryOf(inputShape, weight.shape, options, op);
  if (!sameShape(gradOutput.shape, geometry.outputShape)) {
    throw new Error(`${op}: gradOutput has shape ${formatShape(gradOutput.shape)}, but a convolution of input ${formatShape(inputShape)} with weight ${formatShape(weight.shape)} gives ${formatShape(geometry.outputShape)}`);
  }
  checkSameDevice(op, gradOutput, weight);
  return conv2dBackwardInputRecorded(gradOutput, weight, geometry);
}

/**
 * The gradient of conv2d with respect to its weight: Σ over the batch and positions of
 * gradOutput × input patches, shaped `weightShape` ([C_out, C_in/groups, kh, kw]).
 * Differentiable (to any order) in x and gradOutput.
 */
export function conv2dBackwardWeight(
  x: Tensor,
  gradOutput: Tensor,
  weightShape: readonly number[],
  options?: Conv2dOptions,
): Tensor {
  const op = 'conv2dBackwardWeight';
  checkTensor(x, op, 'input');
  checkTensor(gradOutput, op, 'gradOutput');
  checkRank(x, 4, op, 'input', '[N, C, H, W]');
  checkRank(gradOutput, 4, op, 'gradOutput', '[N, C_out, H_out, W_out]');
  checkShapeArgument(weightShape, op, 'weightShape');
  const geometry = geometryOf(x.shape, weightShape, options, op);
  if (!sameShape(gradOutput.shape, geometry.outputShape)) {
    throw new Error(`${op}: gradOutput has shape ${formatShape(gradOutput.shape)}, but a convolution of input ${formatShape(x.shape)} with weight ${formatShape(weightShape)} gives ${formatShape(geometry.outputShape)}`);
  }
  checkSameDevice(op, x, gradOutput);
  return conv2dBackwardWeightRecorded(x, gradOutput, geometry);
}

function checkShapeArgument(shape: unknown, op: string, argument: string): asserts shape is readonly number[] {
  if (!Array.isArray(shape) || shape.length !== 4 || !shape.every((extent) => Number.isInteger(extent) && extent >= 1)) {
    throw new TypeError(`${op}: ${argument} must be 4 positive integers, got ${describeValue(shape)}`);
  }
}
