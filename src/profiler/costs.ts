// What one native call costs, computed from its arguments alone (no kernel is asked): FLOPs for
// the compute-bound kernels (GEMM, the convolutions, memory-bank dot products), bytes for the
// memory-bound ones (elementwise, reductions, batchnorm, pooling, softmax, normalize, layout,
// SGD, storage copies). The argument positions follow src/native/addon.ts.
//
// Conventions, so the numbers can be checked by hand:
// - FLOPs: 2 per multiply-accumulate of the mathematical operation (the kernel's own extra work,
//   e.g. packing, is not counted). conv2d forward, backward-input and backward-weight all perform
//   the same N·C_out·H_out·W_out·(C_in/groups)·kh·kw multiply-accumulates; bias terms are ignored.
// - Bytes: compulsory traffic at 4 bytes per float/int32: every input element read once, every
//   output element written once (a read-modify-write counts twice). A kernel that makes two passes
//   over its input moves more than this, so the GB/s column is a lower bound of its real traffic.
// Kernels with no model here (the fused contrastive losses) are still timed and counted.

export type CostKind = 'compute' | 'memory' | 'other';

export interface CallCost {
  /** The row label: the addon function, with the elementwise op appended ('binary.add'). */
  label: string;
  kind: CostKind;
  flops: number;
  bytes: number;
}

const FLOAT_BYTES = 4;

const BINARY_OPS = ['add', 'sub', 'mul', 'div', 'maximum', 'minimum'];
// UnaryOp in native/include/lmcl/elementwise.h.
const UNARY_OPS = ['neg', 'exp', 'log', 'sqrt', 'rsqrt', 'relu', 'sigmoid', 'reciprocal', 'square', 'abs', 'tanh', 'sign', 'step'];

function product(values: readonly number[]): number {
  let result = 1;
  for (const value of values) result *= value;
  return result;
}

function numberAt(args: readonly unknown[], index: number): number {
  const value = args[index];
  return typeof value === 'number' ? value : 0;
}

function arrayAt(args: readonly unknown[], index: number): readonly number[] {
  const value = args[index];
  return Array.isArray(value) ? (value as number[]) : [];
}

/** How the cost models read an index storage's value count (set by the profiler, which owns the
 *  addon; this file stays free of it). */
let indexLengthReader: ((storage: unknown) => number) | null = null;
export function setIndexLengthReader(reader: (storage: unknown) => number): void {
  indexLengthReader = reader;
}

function lengthAt(args: readonly unknown[], index: number): number {
  const value = args[index];
  if (value instanceof Int32Array || value instanceof Float32Array) return value.length;
  return value !== null && typeof value === 'object' && indexLengthReader ? indexLengthReader(value) : 0;
}

function compute(label: string, flops: number): CallCost {
  return { label, kind: 'compute', flops, bytes: 0 };
}

function memory(label: string, floats: number): CallCost {
  return { label, kind: 'memory', flops: 0, bytes: floats * FLOAT_BYTES };
}

/** Multiply-accumulates of one convolution (same for forward, backward-input, backward-weight). */
export function conv2dMacs(params: readonly number[]): number {
  const [batch, inChannels, inHeight, inWidth, outChannels, kernelHeight, kernelWidth, strideHeight, strideWidth,
    paddingHeight, paddingWidth, groups] = params as [number, number, number, number, number, number, number, number,
    number, number, number, number];
  const outHeight = Math.floor((inHeight + 2 * paddingHeight - kernelHeight) / strideHeight) + 1;
  const outWidth = Math.floor((inWidth + 2 * paddingWidth - kernelWidth) / strideWidth) + 1;
  return batch * outChannels * outHeight * outWidth * (inChannels / groups) * kernelHeight * kernelWidth;
}

function conv2dOutputCount(params: readonly number[]): number {
  const [batch, , inHeight, inWidth, outChannels, kernelHeight, kernelWidth, strideHeight, strideWidth, paddingHeight,
    paddingWidth] = params as number[] as [number, number, number, number, number, number, number, number, number, number, number];
  const outHeight = Math.floor((inHeight + 2 * paddingHeight - kernelHeight) / strideHeight) + 1;
  const outWidth = Math.floor((inWidth + 2 * paddingWidth - kernelWidth) / strideWidth) + 1;
  return batch * outChannels * outHeight * outWidth;
}

/** Pooling params [planes, inH, inW, kH, kW, sH, sW, pH, pW] → (input, output) element counts. */
function poolCounts(params: readonly number[]): { input: number; output: number } {
  const [planes, inHeight, inWidth, kernelHeight, kernelWidth, strideHeight, strideWidth, paddingHeight, paddingWidth] =
    params as [number, number, number, number, number, number, number, number, number];
  const outHeight = Math.floor((inHeight + 2 * paddingHeight - kernelHeight) / strideHeight) + 1;
  const outWidth = Math.floor((inWidth + 2 * paddingWidth - kernelWidth) / strideWidth) + 1;
  return { input: planes * inHeight * inWidth, output: planes * outHeight * outWidth };
}

/** Distinct elements a broadcast operand reads: the extents of the dimensions it does not broadcast. */
function operandCount(shape: readonly number[], strides: readonly number[]): number {
  let count = 1;
  shape.forEach((extent, index) => {
    if (strides[index] !== 0) count *= extent;
  });
  return count;
}

type CostModel = (args: readonly unknown[]) => CallCost;

const models: Record<string, CostModel> = {
  // ---- compute-bound ----
  gemm: (a) => compute('gemm', 2 * numberAt(a, 5) * numberAt(a, 6) * numberAt(a, 7)),
  conv2dForward: (a) => compute('conv2dForward', 2 * conv2dMacs(arrayAt(a, 4))),
  conv2dBackwardInput: (a) => compute('conv2dBackwardInput', 2 * conv2dMacs(arrayAt(a, 3))),
  conv2dBackwardWeight: (a) => compute('conv2dBackwardWeight', 2 * conv2dMacs(arrayAt(a, 3))),
  // memory bank: batch · columns dot products (or axpys) of length dim.
  memoryLogitsForward: (a) => compute('memoryLogitsForward', 2 * numberAt(a, 4) * numberAt(a, 5) * numberAt(a, 6) * numberAt(a, 9)),
  memoryLogitsTranspose: (a) => compute('memoryLogitsTranspose', 2 * numberAt(a, 4) * numberAt(a, 5) * numberAt(a, 6) * numberAt(a, 9)),
  memoryInfoNceForward: (a) => compute('memoryInfoNceForward', 2 * numberAt(a, 7) * numberAt(a, 8) * numberAt(a, 9)),
  memoryInfoNceBackward: (a) => compute('memoryInfoNceBackward', 2 * numberAt(a, 8) * numberAt(a, 9) * numberAt(a, 10)),

  // ---- memory-bound ----
  conv2dBackwardBias: (a) => memory('conv2dBackwardBias', conv2dOutputCount(arrayAt(a, 2)) + numberAt(arrayAt(a, 2), 4)),
  binary: (a) => {
    const shape = arrayAt(a, 4);
    const label = `binary.${BINARY_OPS[numberAt(a, 0)] ?? numberAt(a, 0)}`;
    return memory(label, operandCount(shape, arrayAt(a, 5)) + operandCount(shape, arrayAt(a, 6)) + product(shape));
  },
  unary: (a) => memory(`unary.${UNARY_OPS[numberAt(a, 0)] ?? numberAt(a, 0)}`, 2 * numberAt(a, 3)),
  affine: (a) => memory('affine', 2 * numberAt(a, 2)),
  power: (a) => memory('power', 2 * numberAt(a, 2)),
  reluMask: (a) => memory('reluMask', 3 * numberAt(a, 3)),
  countNonFinite: (a) => memory('countNonFinite', numberAt(a, 1)),
  sumAxes: (a) => {
    const shape = arrayAt(a, 2);
    const axes = new Set(arrayAt(a, 3));
    return memory('sumAxes', product(shape) + product(shape.filter((_, index) => !axes.has(index))));
  },
  stridedCopy: (a) => memory('stridedCopy', 2 * product(arrayAt(a, 6))),
  indexSelect: (a) => memory('indexSelect', 2 * numberAt(a, 2) * lengthAt(a, 5) * numberAt(a, 4)),
  indexAdd: (a) => memory('indexAdd', numberAt(a, 2) * (lengthAt(a, 5) + numberAt(a, 3)) * numberAt(a, 4)),
  // param read+write, grad read, momentum buffer read+write when there is one.
  sgdStep: (a) => memory('sgdStep', numberAt(a, 3) * (a[2] ? 5 : 3)),
  // x read, y written, plus the fused epilogue's residual read (argument 11, resp. 10 in eval).
  batchNormForwardTraining: (a) => memory('batchNormForwardTraining', (a[11] ? 3 : 2) * product(arrayAt(a, 8))),
  batchNormForwardEval: (a) => memory('batchNormForwardEval', (a[10] ? 3 : 2) * product(arrayAt(a, 8))),
  // gradOut and x read, gradInput written (when asked for); with the epilogue the ReLU output
  // read (argument 10) and the residual's gradient written (11).
  batchNormBackward: (a) => memory('batchNormBackward', (2 + (a[5] ? 1 : 0) + (a[10] ? 1 : 0) + (a[11] ? 1 : 0)) * product(arrayAt(a, 8))),
  // gradOut, x and the upstream for dx (argument 5) read, gradGradOut (7) and gradX (8) written
  // (the second pass re-reads a channel from cache, as batchNormBackward's does).
  batchNormDoubleBackward: (a) => memory('batchNormDoubleBackward', (2 + (a[5] ? 1 : 0) + (a[7] ? 1 : 0) + (a[8] ? 1 : 0)) * product(arrayAt(a, 10))),
  avgPool2dForward: (a) => {
    const { input, output } = poolCounts(arrayAt(a, 2));
    return memory('avgPool2dForward', input + output);
  },
  avgPool2dBackward: (a) => {
    const { input, output } = poolCounts(arrayAt(a, 2));
    return memory('avgPool2dBackward', input + output);
  },
  maxPool2dForward: (a) => {
    const { input, output } = poolCounts(arrayAt(a, 3));
    return memory('maxPool2dForward', input + output * (a[2] ? 2 : 1));
  },
  maxPool2dBackward: (a) => {
    const { input, output } = poolCounts(arrayAt(a, 3));
    return memory('maxPool2dBackward', input + 2 * output);
  },
  maxPool2dGather: (a) => {
    const { output } = poolCounts(arrayAt(a, 3));
    return memory('maxPool2dGather', 3 * output);
  },
  adaptiveAvgPool2dForward: (a) => {
    const [planes, inHeight, inWidth, outHeight, outWidth] = arrayAt(a, 2) as [number, number, number, number, number];
    return memory('adaptiveAvgPool2dForward', planes * (inHeight * inWidth + outHeight * outWidth));
  },
  adaptiveAvgPool2dBackward: (a) => {
    const [planes, inHeight, inWidth, outHeight, outWidth] = arrayAt(a, 2) as [number, number, number, number, number];
    return memory('adaptiveAvgPool2dBackward', planes * (inHeight * inWidth + outHeight * outWidth));
  },
  softmaxForward: (a) => memory('softmaxForward', 2 * numberAt(a, 2) * numberAt(a, 3) * numberAt(a, 4)),
  softmaxBackward: (a) => memory('softmaxBackward', 3 * numberAt(a, 3) * numberAt(a, 4) * numberAt(a, 5)),
  crossEntropyForward: (a) => memory('crossEntropyForward', numberAt(a, 4) * (numberAt(a, 5) + 4)),
  crossEntropyBackward: (a) => memory('crossEntropyBackward', numberAt(a, 5) * (2 * numberAt(a, 6) + 4)),
  normalizeForward: (a) => memory('normalizeForward', 2 * numberAt(a, 3) * numberAt(a, 4) * numberAt(a, 5)),
  normalizeBackward: (a) => memory('normalizeBackward', 3 * numberAt(a, 4) * numberAt(a, 5) * numberAt(a, 6)),
  cosineSimilarityForward: (a) => memory('cosineSimilarityForward', 2 * numberAt(a, 5) * numberAt(a, 6) * numberAt(a, 7)),
  cosineSimilarityBackward: (a) => memory('cosineSimilarityBackward', 4 * numberAt(a, 8) * numberAt(a, 9) * numberAt(a, 10)),
  // storage: bytes given directly.
  upload: (a) => {
    const source = a[1];
    return { label: 'upload', kind: 'memory', flops: 0, bytes: source instanceof Float32Array || source instanceof Int32Array ? source.byteLength : 0 };
  },
  download: (a) => memory('download', numberAt(a, 2)),
  // Timed while queued only: the wait happens off the main thread.
  downloadAsync: (a) => memory('downloadAsync', numberAt(a, 2)),
  fill: (a) => memory('fill', numberAt(a, 2)),
  copy: (a) => ({ label: 'copy', kind: 'memory', flops: 0, bytes: 2 * numberAt(a, 2) }),
  allocIndices: (a) => ({ label: 'allocIndices', kind: 'memory', flops: 0, bytes: 4 * lengthAt(a, 1) }),
};

/**
 * Addon functions deliberately without a cost model: bookkeeping (no data moved) and the fused
 * contrastive kernels (their work depends on which blocks of the similarity matrices they use).
 * test/profiler checks that every addon function is modelled or listed here, so a new kernel
 * gets a model or an explicit decision.
 */
export const UNMODELLED_OPS: ReadonlySet<string> = new Set([
  'alloc', 'free', 'indexValues', 'indexLength', 'memoryStats', 'emptyCache', 'resetMemoryPeak', 'info', 'setNumThreads', 'setMatmulPrecision', 'measureFmaPeak', 'cohortStatsFloats',
  'supConInfoNCEForward', 'supConInfoNCEBackward', 'contrastiveKLForward', 'contrastiveKLBackward', 'distillKLForward',
  'distillKLBackward', 'cohortContrastiveForward', 'cohortContrastiveBackward', 'memoryUpdate',
]);

/** Whether callCost has a model for the addon function `name`. */
export function hasCostModel(name: string): boolean {
  return Object.prototype.hasOwnProperty.call(models, name);
}

/** The cost of one call of the addon function `name` with these arguments. */
export function callCost(name: string, args: readonly unknown[]): CallCost {
  const model = models[name];
  return model ? model(args) : { label: name, kind: 'other', flops: 0, bytes: 0 };
}
