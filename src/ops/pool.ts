// 2-D pooling (torch.nn.functional semantics), layout NCHW (or CHW): avgPool2d
// (count_include_pad = true), maxPool2d (padding = −inf) and adaptiveAvgPool2d. ceil_mode and
// dilation are not supported. Native kernels: native/src/cpu/pool.cpp. Tests:
// test/ops/pool.test.ts against the float64 reference test/reference/pool_reference.ts.
//
// Every backward is linear in the incoming gradient and is itself a recorded op whose backward
// is the forward map again (avg: distribute ↔ average; max: scatter to the argmax ↔ gather at
// the argmax), so gradients of any order work. Max pooling keeps its argmax indices in an int32
// native block shared, reference-counted, by the forward node and every backward node built on
// it; each node's release (recordOperation's onRelease) drops one reference, and the block is
// freed with the last one.
import { native, type NativeStorage } from '../native/index.js';
import { recordOperation } from '../autograd/node.js';
import { isGradEnabled } from '../autograd/mode.js';
import { Tensor, formatShape, shapeSize, type Device } from '../tensor/tensor.js';
import { Storage } from '../tensor/storage.js';
import { checkTensor, pairOf } from './checks.js';

interface PoolGeometry {
  inShape: readonly number[];
  outShape: readonly number[];
  /** [planes, inH, inW, kernelH, kernelW, strideH, strideW, padH, padW] for the kernels. */
  params: number[];
}

function inputPlanes(x: Tensor, op: string): { leading: number[]; height: number; width: number } {
  checkTensor(x, op, 'x');
  if (x.shape.length !== 4 && x.shape.length !== 3) {
    throw new Error(`${op}: argument 'x' must be 4-D ([N, C, H, W]) or 3-D ([C, H, W]), got shape ${formatShape(x.shape)}`);
  }
  const height = x.shape[x.shape.length - 2]!;
  const width = x.shape[x.shape.length - 1]!;
  if (height < 1 || width < 1) throw new Error(`${op}: input ${formatShape(x.shape)} has an empty spatial extent`);
  return { leading: x.shape.slice(0, -2), height, width };
}

function poolGeometry(x: Tensor, kernel: unknown, stride: unknown, padding: unknown, op: string): PoolGeometry {
  const { leading, height, width } = inputPlanes(x, op);
  const [kh, kw] = pairOf(kernel, op, 'kernel', 1);
  const [sh, sw] = stride === undefined || stride === null ? [kh, kw] : pairOf(stride, op, 'stride', 1);
  const [ph, pw] = pairOf(padding, op, 'padding', 0);
  if (2 * ph > kh || 2 * pw > kw) {
    throw new Error(`${op}: padding must be at most half the kernel size, got padding [${ph}, ${pw}] for kernel [${kh}, ${kw}]`);
  }
  if (height + 2 * ph < kh || width + 2 * pw < kw) {
    throw new Error(
      `${op}: kernel [${kh}, ${kw}] is larger than the padded input (input [${height}, ${width}] with padding [${ph}, ${pw}])`,
    );
  }
  const outH = Math.floor((height + 2 * ph - kh) / sh) + 1;
  const outW = Math.floor((width + 2 * pw - kw) / sw) + 1;
  return {
    inShape: x.shape,
    outShape: [...leading, outH, outW],
    params: [shapeSize(leading), height, width, kh, kw, sh, sw, ph, pw],
  };
}

/** Allocates `shape` on `device`, runs the kernel into it, and frees it if the kernel throws. */
function runInto(shape: readonly number[], device: Device, kernel: (out: NativeStorage) => void): Tensor {
  const out = Tensor.empty(shape, device);
  try {
    kernel(out.storage.handle);
  } catch (error) {
    out.dispose();
    throw error;
  }
  return out;
}

// ---- average pooling -------------------------------------------------------------------------

/**
 * Average pooling over [kernel] windows (like F.avg_pool2d with count_include_pad = true):
 * padding counts as zeros and every window divides by kernelH·kernelW. stride defaults to kernel.
 */
export function avgPool2d(x: Tensor, kernel: number | [number, number], stride?: number | [number, number] | null,
  padding: number | [number, number] = 0): Tensor {
  return avgPoolApply(x, poolGeometry(x, kernel, stride, padding, 'avgPool2d'));
}

function avgPoolApply(x: Tensor, g: PoolGeometry): Tensor {
  const out = runInto(g.outShape, x.device, (handle) => native().avgPool2dForward(x.storage.handle, handle, g.params));
  return recordOperation('avgPool2d', out, [x], [], (grad) => [avgPoolDistribute(grad, g)]);
}

/** avgPool2d's backward: grad/area spread over each window (its own backward is avgPool2d). */
function avgPoolDistribute(grad: Tensor, g: PoolGeometry): Tensor {
  const out = runInto(g.inShape, grad.device, (handle) => native().avgPool2dBackward(grad.storage.handle, handle, g.params));
  return recordOperation('avgPool2dBackward', out, [grad], [], (gradGrad) => [avgPoolApply(gradGrad, g)]);
}

// ---- adaptive average pooling ----------------------------------------------------------------

interface AdaptiveGeometry {
  inShape: readonly number[];
  outShape: readonly number[];
  /** [planes, inH, inW, outH, outW] */
  params: number[];
}

/**
 * Adaptive average pooling to outputSize = [outH, outW] (or one number for both), like
 * F.adaptive_avg_pool2d: bin i covers rows [floor(i·H/outH), ceil((i+1)·H/outH)). [1, 1] is
 * global average pooling.
 */
export function adaptiveAvgPool2d(x: Tensor, outputSize: number | [number, number]): Tensor {
  const op = 'adaptiveAvgPool2d';
  const { leading, height, width } = inputPlanes(x, op);
  const [outH, outW] = pairOf(outputSize, op, 'outputSize', 1);
  const g: AdaptiveGeometry = {
    inShape: x.shape,
    outShape: [...leading, outH, outW],
    params: [shapeSize(leading), height, width, outH, outW],
  };
  return adaptiveApply(x, g);
}

function adaptiveApply(x: Tensor, g: AdaptiveGeometry): Tensor {
  const out = runInto(g.outShape, x.device, (handle) => native().adaptiveAvgPool2dForward(x.storage.handle, handle, g.params));
  return recordOperation('adaptiveAvgPool2d', out, [x], [], (grad) => [adaptiveDistribute(grad, g)]);
}

function adaptiveDistribute(grad: Tensor, g: AdaptiveGeometry): Tensor {
  const out = runInto(g.inShape, grad.device, (handle) => native().adaptiveAvgPool2dBackward(grad.storage.handle, handle, g.params));
  return recordOperation('adaptiveAvgPool2dBackward', out, [grad], [], (gradGrad) => [adaptiveApply(gradGrad, g)]);
}

// ---- max pooling -----------------------------------------------------------------------------

let liveIndexBuffers = 0;
let liveIndexBytes = 0;

/** Argmax index blocks currently allocated by maxPool2d (for leak tests). */
export function maxPoolIndexCounters(): { liveBuffers: number; liveBytes: number } {
  return { liveBuffers: liveIndexBuffers, liveBytes: liveIndexBytes };
}

/**
 * The argmax indices of one maxPool2d call: an int32 block in a reference-counted Storage (the
 * same mechanism as tensor data), shared by the forward, scatter and gather nodes.
 */
class IndexBuffer {
  readonly storage: Storage;

  private constructor(storage: Storage) {
    this.storage = storage;
    liveIndexBuffers += 1;
    liveIndexBytes += storage.byteLength;
  }

  static allocate(device: Device, count: number): IndexBuffer {
    return new IndexBuffer(Storage.allocate(device, count * 4));
  }

  get handle(): NativeStorage {
    return this.storage.handle;
  }

  retain(): void {
    this.storage.retain();
  }

  release(): void {
    if (!this.storage.alive) return;
    this.storage.release();
    if (!this.storage.alive) {
      liveIndexBuffers -= 1;
      liveIndexBytes -= this.storage.byteLength;
    }
  }

  assertLive(op: string): void {
    if (!this.storage.alive) {
      throw new Error(
        `${op}: the argmax indices of this maxPool2d were already freed (backward through the graph a second time?). ` +
          'Pass { retainGraph: true } (or createGraph) to the first backward/grad call.',
      );
    }
  }
}

/**
 * Max pooling over [kernel] windows (like F.max_pool2d): padding is −inf, NaN propagates, the
 * first maximum in row-major window order wins ties. stride defaults to kernel.
 */
export function maxPool2d(x: Tensor, kernel: number | [number, number], stride?: number | [number, number] | null,
  padding: number | [number, number] = 0): Tensor {
  const g = poolGeometry(x, kernel, stride, padding, 'maxPool2d');
  if (!isGradEnabled() || !x.requiresGrad) {
    return runInto(g.outShape, x.device, (handle) => native().maxPool2dForward(x.storage.handle, handle, null, g.params));
  }
  const indices = IndexBuffer.allocate(x.device, shapeSize(g.outShape));
  let out: Tensor;
  try {
    out = runInto(g.outShape, x.device, (handle) => native().maxPool2dForward(x.storage.handle, handle, indices.handle, g.params));
  } catch (error) {
    indices.release();
    throw error;
  }
  // The forward node owns the creator's reference to the indices.
  return recordOperation('maxPool2d', out, [x], [], (grad) => [maxPoolScatter(grad, indices, g)], () => indices.release());
}

/** maxPool2d's backward: zeros with grad added at the argmax of each window. */
function maxPoolScatter(grad: Tensor, indices: IndexBuffer, g: PoolGeometry): Tensor {
  indices.assertLive('maxPool2d backward');
  const out = runInto(g.inShape, grad.device, (handle) => native().maxPool2dBackward(grad.storage.handle, indices.handle, handle, g.params));
  indices.retain();
  return recordOperation('maxPool2dBackward', out, [grad], [], (gradGrad) => [maxPoolGather(gradGrad, indices, g)],
    () => indices.release());
}

/** The adjoint of the scatter: reads an input-shaped tensor at the argmax of each window. */
function maxPoolGather(source: Tensor, indices: IndexBuffer, g: PoolGeometry): Tensor {
  indices.assertLive('maxPool2d double backward');
  const out = runInto(g.outShape, source.device, (handle) => native().maxPool2dGather(source.storage.handle, indices.handle, handle, g.params));
  indices.retain();
  return recordOperation('maxPool2dGather', out, [source], [], (gradGrad) => [maxPoolScatter(gradGrad, indices, g)],
    () => indices.release());
}
