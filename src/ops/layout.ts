// Layout ops: reshape (a view: shares storage), and copies for permute/transpose, concat, slice.
// Native kernels: native/src/cpu/layout.cpp. Tests: test/ops/layout.test.ts.
import { native } from '../native/index.js';
import { recordOperation } from '../autograd/node.js';
import { Tensor, checkShape, formatShape, shapeSize, type Device } from '../tensor/tensor.js';
import { IndexTensor } from '../tensor/index_tensor.js';
import { checkSameDevice, checkTensor, describeValue, firstOutOfRange, holdIndices, normaliseDim, type HeldIndices, type IndexInput } from './checks.js';

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

// ---- copies: permute/transpose, concat/stack, slice/chunk/split, indexSelect -----------------
// One native mechanism, stridedCopy (copy an n-d box between strided layouts), serves permute,
// concat, slice and slice-backward; indexSelect/indexAdd gather and scatter-add whole rows.
// Every backward rule is itself one of these ops, so gradients of gradients work.

const maxPermuteRank = 8;

/** Row-major element strides of a contiguous tensor of `shape`. */
function contiguousStrides(shape: readonly number[]): number[] {
  const strides = new Array<number>(shape.length);
  let stride = 1;
  for (let index = shape.length - 1; index >= 0; index -= 1) {
    strides[index] = stride;
    stride *= shape[index]!;
  }
  return strides;
}

/** [outer, extent, inner] around dimension `dim` of `shape`. */
function splitAround(shape: readonly number[], dim: number): [number, number, number] {
  return [shapeSize(shape.slice(0, dim)), shape[dim]!, shapeSize(shape.slice(dim + 1))];
}

function checkIntegerArgument(value: unknown, op: string, argument: string): asserts value is number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value)) {
    throw new TypeError(`${op}: ${argument} must be an integer, got ${describeValue(value)}`);
  }
}

function checkTensorList(tensors: unknown, op: string): asserts tensors is readonly Tensor[] {
  if (!Array.isArray(tensors) || tensors.length === 0) {
    throw new TypeError(`${op}: expected a non-empty array of tensors, got ${describeValue(tensors)}`);
  }
  tensors.forEach((item, index) => checkTensor(item, op, `tensors[${index}]`));
  checkSameDevice(op, ...(tensors as Tensor[]));
}

/**
 * Copies x into the layout with its dimensions reordered: out.shape[i] = x.shape[dims[i]] (like
 * torch.permute(...).contiguous()). dims may be negative; rank <= 8. Backward: permute by the
 * inverse permutation.
 */
export function permute(x: Tensor, dims: readonly number[]): Tensor {
  checkTensor(x, 'permute', 'x');
  const rank = x.shape.length;
  if (!Array.isArray(dims)) throw new TypeError(`permute: dims must be an array of integers, got ${describeValue(dims)}`);
  if (dims.length !== rank) {
    throw new Error(`permute: dims ${JSON.stringify(dims)} has ${dims.length} entries but x has shape ${formatShape(x.shape)} (${rank}-D)`);
  }
  if (rank > maxPermuteRank) throw new Error(`permute: tensors of rank ${rank} are not supported (at most ${maxPermuteRank})`);
  const order = dims.map((dim) => normaliseDim(dim, rank, 'permute'));
  if (new Set(order).size !== rank) {
    throw new Error(`permute: dims ${JSON.stringify(dims)} is not a permutation of the ${rank} dimensions of ${formatShape(x.shape)}`);
  }
  const inputStrides = contiguousStrides(x.shape);
  const outShape = order.map((dim) => x.shape[dim]!);
  const out = Tensor.empty(outShape, x.device);
  native().stridedCopy(x.storage.handle, 0, order.map((dim) => inputStrides[dim]!), out.storage.handle, 0,
    contiguousStrides(outShape), outShape);
  const inverse = new Array<number>(rank);
  order.forEach((dim, index) => {
    inverse[dim] = index;
  });
  return recordOperation('permute', out, [x], [], (grad) => [permute(grad, inverse)]);
}

/** Swaps two dimensions (a copy; via permute). */
export function transpose(x: Tensor, dim0: number, dim1: number): Tensor {
  checkTensor(x, 'transpose', 'x');
  const rank = x.shape.length;
  const first = normaliseDim(dim0, rank, 'transpose');
  const second = normaliseDim(dim1, rank, 'transpose');
  const order = x.shape.map((_, index) => index);
  if (rank > 0) {
    order[first] = second;
    order[second] = first;
  }
  return permute(x, order);
}

/**
 * Concatenates tensors along dim (torch.cat): all must have the same rank (>= 1) and the same
 * extents except along dim. Backward: the matching slices of the gradient.
 */
export function concat(tensors: readonly Tensor[], dim = 0): Tensor {
  checkTensorList(tensors, 'concat');
  const first = tensors[0]!;
  const rank = first.shape.length;
  if (rank === 0) throw new Error('concat: zero-dimensional tensors cannot be concatenated (use stack)');
  const axis = normaliseDim(dim, rank, 'concat');
  let total = 0;
  tensors.forEach((item, index) => {
    const matches = item.shape.length === rank && item.shape.every((extent, d) => d === axis || extent === first.shape[d]);
    if (!matches) {
      throw new Error(
        `concat: tensors[${index}] has shape ${formatShape(item.shape)} but tensors[0] has ${formatShape(first.shape)}; ` +
          `they must match in every dimension except dim ${axis}`,
      );
    }
    total += item.shape[axis]!;
  });
  const outShape = [...first.shape];
  outShape[axis] = total;
  const out = Tensor.empty(outShape, first.device);
  const [outer, , inner] = splitAround(outShape, axis);
  const starts: number[] = [];
  let start = 0;
  for (const item of tensors) {
    const extent = item.shape[axis]!;
    starts.push(start);
    if (item.size > 0) {
      native().stridedCopy(item.storage.handle, 0, [extent * inner, inner, 1], out.storage.handle, start * inner,
        [total * inner, inner, 1], [outer, extent, inner]);
    }
    start += extent;
  }
  const inputs = [...tensors];
  return recordOperation('concat', out, inputs, [], (grad, context) =>
    inputs.map((item, index) =>
      context.needsInputGrad[index] ? slice(grad, axis, starts[index]!, starts[index]! + item.shape[axis]!) : null,
    ),
  );
}

/** Alias of concat (torch.cat). */
export const cat = concat;

/** Stacks same-shaped tensors along a new dimension dim (in -(rank+1)..rank); via reshape + concat. */
export function stack(tensors: readonly Tensor[], dim = 0): Tensor {
  checkTensorList(tensors, 'stack');
  const shape = tensors[0]!.shape;
  tensors.forEach((item, index) => {
    if (item.shape.length !== shape.length || item.shape.some((extent, d) => extent !== shape[d])) {
      throw new Error(
        `stack: every tensor must have the same shape, got ${formatShape(shape)} at entry 0 and ${formatShape(item.shape)} at entry ${index}`,
      );
    }
  });
  const axis = normaliseDim(dim, shape.length + 1, 'stack');
  const expanded = [...shape.slice(0, axis), 1, ...shape.slice(axis)];
  const views = tensors.map((item) => reshape(item, expanded));
  const out = concat(views, axis);
  for (const view of views) view.dispose();
  return out;
}

interface ResolvedSlice {
  start: number;
  end: number;
  step: number;
  length: number;
}

/** Python/PyTorch slice semantics: negative start/end count from the end; both are clamped. */
function resolveSlice(extent: number, start: unknown, end: unknown, step: unknown, op: string): ResolvedSlice {
  checkIntegerArgument(start, op, 'start');
  if (end !== undefined && end !== null) checkIntegerArgument(end, op, 'end');
  if (typeof step !== 'number' || !Number.isSafeInteger(step) || step < 1) {
    throw new Error(`${op}: step must be a positive integer, got ${describeValue(step)}`);
  }
  const clamp = (value: number): number => (value < 0 ? Math.max(0, value + extent) : Math.min(value, extent));
  const first = clamp(start);
  const last = end === undefined || end === null ? extent : clamp(end as number);
  const length = last > first ? Math.ceil((last - first) / step) : 0;
  return { start: first, end: Math.max(first, last), step, length };
}

/**
 * Elements start, start+step, ... (< end) along dim, like x[..., start:end:step] in PyTorch
 * (narrow/slicing semantics: negative indices count from the end and are clamped like Python;
 * end defaults to the extent; step >= 1). A copy. Backward: sliceBackward.
 */
export function slice(x: Tensor, dim: number, start: number, end?: number | null, step = 1): Tensor {
  checkTensor(x, 'slice', 'x');
  if (x.shape.length === 0) throw new Error('slice: cannot slice a zero-dimensional tensor');
  const axis = normaliseDim(dim, x.shape.length, 'slice');
  const range = resolveSlice(x.shape[axis]!, start, end, step, 'slice');
  const [outer, extent, inner] = splitAround(x.shape, axis);
  const outShape = [...x.shape];
  outShape[axis] = range.length;
  const out = Tensor.empty(outShape, x.device);
  if (out.size > 0) {
    native().stridedCopy(x.storage.handle, range.start * inner, [extent * inner, range.step * inner, 1], out.storage.handle, 0,
      [range.length * inner, inner, 1], [outer, range.length, inner]);
  }
  const inputShape = x.shape;
  return recordOperation('slice', out, [x], [], (grad) => [sliceBackward(grad, inputShape, axis, range.start, range.end, range.step)]);
}

/**
 * The gradient of slice: a zero tensor of `inputShape` with `grad` written at the positions
 * slice(·, dim, start, end, step) reads. Linear in grad; its backward is that slice again.
 */
export function sliceBackward(grad: Tensor, inputShape: readonly number[], dim: number, start: number, end?: number | null, step = 1): Tensor {
  checkTensor(grad, 'sliceBackward', 'grad');
  checkShape(inputShape, 'sliceBackward');
  if (inputShape.length === 0) throw new Error('sliceBackward: inputShape must have at least one dimension');
  const axis = normaliseDim(dim, inputShape.length, 'sliceBackward');
  const range = resolveSlice(inputShape[axis]!, start, end, step, 'sliceBackward');
  const sliceShape = [...inputShape];
  sliceShape[axis] = range.length;
  if (grad.shape.length !== sliceShape.length || grad.shape.some((extent, d) => extent !== sliceShape[d])) {
    throw new Error(`sliceBackward: grad has shape ${formatShape(grad.shape)} but the slice of ${formatShape(inputShape)} has ${formatShape(sliceShape)}`);
  }
  const [outer, extent, inner] = splitAround(inputShape, axis);
  const out = Tensor.empty(inputShape, grad.device);
  native().fill(out.storage.handle, 0, out.size);
  if (grad.size > 0) {
    native().stridedCopy(grad.storage.handle, 0, [range.length * inner, inner, 1], out.storage.handle, range.start * inner,
      [extent * inner, range.step * inner, 1], [outer, range.length, inner]);
  }
  return recordOperation('sliceBackward', out, [grad], [], (gradOut) => [slice(gradOut, axis, range.start, range.end, range.step)]);
}

/**
 * Splits x into `chunks` pieces along dim (torch.chunk): each of ceil(extent / chunks), the last
 * smaller; fewer pieces when the extent is too small (exactly `chunks` empty ones for extent 0).
 */
export function chunk(x: Tensor, chunks: number, dim = 0): Tensor[] {
  checkTensor(x, 'chunk', 'x');
  if (x.shape.length === 0) throw new Error('chunk: expects at least a 1-dimensional tensor');
  if (typeof chunks !== 'number' || !Number.isSafeInteger(chunks) || chunks < 1) {
    throw new Error(`chunk: chunks must be a positive integer, got ${describeValue(chunks)}`);
  }
  const axis = normaliseDim(dim, x.shape.length, 'chunk');
  const extent = x.shape[axis]!;
  if (extent === 0) return split(x, new Array<number>(chunks).fill(0), axis);
  return split(x, Math.ceil(extent / chunks), axis);
}

/**
 * Splits x along dim (torch.split): into pieces of `size` (the last may be smaller), or into
 * pieces of the given sizes, which must add up to the extent. Each piece is a slice (a copy).
 */
export function split(x: Tensor, size: number | readonly number[], dim = 0): Tensor[] {
  checkTensor(x, 'split', 'x');
  if (x.shape.length === 0) throw new Error('split: expects at least a 1-dimensional tensor');
  const axis = normaliseDim(dim, x.shape.length, 'split');
  const extent = x.shape[axis]!;
  let sizes: number[];
  if (typeof size === 'number') {
    if (!Number.isSafeInteger(size) || size < 0) throw new Error(`split: size must be a non-negative integer, got ${describeValue(size)}`);
    if (size === 0 && extent !== 0) throw new Error(`split: size can only be 0 if the dimension is empty, but dim ${axis} has extent ${extent}`);
    const count = size === 0 ? 1 : Math.max(1, Math.ceil(extent / size));
    sizes = Array.from({ length: count }, (_, index) => (index < count - 1 ? size : extent - size * (count - 1)));
  } else if (Array.isArray(size)) {
    if (!size.every((item) => Number.isSafeInteger(item) && item >= 0)) {
      throw new Error(`split: sizes must be non-negative integers, got ${JSON.stringify(size)}`);
    }
    const sum = size.reduce((total, item) => total + item, 0);
    if (sum !== extent) throw new Error(`split: sizes ${JSON.stringify(size)} add up to ${sum} but dim ${axis} of ${formatShape(x.shape)} has extent ${extent}`);
    sizes = [...size];
  } else {
    throw new TypeError(`split: size must be an integer or an array of integers, got ${describeValue(size)}`);
  }
  const pieces: Tensor[] = [];
  let start = 0;
  for (const piece of sizes) {
    pieces.push(slice(x, axis, start, start + piece));
    start += piece;
  }
  return pieces;
}

/** The indices of indexSelect / indexAdd held on `device` (an array of integers is copied too). */
function holdIndexOperand(indices: unknown, device: Device, op: string): HeldIndices {
  if (Array.isArray(indices)) {
    if (!indices.every((item) => Number.isInteger(item) && item >= -(2 ** 31) && item < 2 ** 31)) {
      throw new TypeError(`${op}: indices must be an IndexTensor, an Int32Array or an array of integers, got ${describeValue(indices)}`);
    }
    return holdIndices(Int32Array.from(indices as number[]), device, op, 'indices');
  }
  if (!(indices instanceof Int32Array) && !(indices instanceof IndexTensor)) {
    throw new TypeError(`${op}: indices must be an IndexTensor, an Int32Array or an array of integers, got ${describeValue(indices)}`);
  }
  return holdIndices(indices, device, op, 'indices');
}

/** Releases `held` and throws when an index is outside [0, extent). */
function checkIndexRange(operand: unknown, held: HeldIndices, extent: number, axis: number, op: string): void {
  const position = firstOutOfRange(operand, held.values, extent);
  if (position < 0) return;
  held.release();
  throw new Error(`${op}: index ${held.values[position]} at position ${position} is out of range for dim ${axis} of extent ${extent}`);
}

/**
 * Gathers the entries at `indices` along dim (torch.index_select): out.shape[dim] =
 * indices.length; repeats allowed, negative indices are not. Backward: indexAdd.
 */
export function indexSelect(x: Tensor, dim: number, indices: IndexInput | readonly number[]): Tensor {
  checkTensor(x, 'indexSelect', 'x');
  if (x.shape.length === 0) throw new Error('indexSelect: x must have at least one dimension');
  const axis = normaliseDim(dim, x.shape.length, 'indexSelect');
  const held = holdIndexOperand(indices, x.device, 'indexSelect');
  const [outer, extent, inner] = splitAround(x.shape, axis);
  checkIndexRange(indices, held, extent, axis, 'indexSelect');
  const outShape = [...x.shape];
  outShape[axis] = held.length;
  const out = Tensor.empty(outShape, x.device);
  native().indexSelect(x.storage.handle, out.storage.handle, outer, extent, inner, held.handle);
  return recordOperation('indexSelect', out, [x], [], (grad) => [indexAdd(grad, axis, held.tensor, extent)], held.release);
}

/**
 * The gradient of indexSelect: a tensor with `size` entries along dim, zero except that slice
 * j of `source` is added at position indices[j] (torch.zeros(...).index_add_(dim, indices,
 * source)). Repeated indices sum in increasing j, so the result is deterministic. Linear in
 * source; its backward is indexSelect.
 */
export function indexAdd(source: Tensor, dim: number, indices: IndexInput | readonly number[], size: number): Tensor {
  checkTensor(source, 'indexAdd', 'source');
  if (source.shape.length === 0) throw new Error('indexAdd: source must have at least one dimension');
  const axis = normaliseDim(dim, source.shape.length, 'indexAdd');
  if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) {
    throw new Error(`indexAdd: size must be a non-negative integer, got ${describeValue(size)}`);
  }
  const held = holdIndexOperand(indices, source.device, 'indexAdd');
  if (source.shape[axis] !== held.length) {
    held.release();
    throw new Error(`indexAdd: source has extent ${source.shape[axis]} along dim ${axis} but ${held.length} indices were given`);
  }
  checkIndexRange(indices, held, size, axis, 'indexAdd');
  const outShape = [...source.shape];
  outShape[axis] = size;
  const [outer, , inner] = splitAround(source.shape, axis);
  const out = Tensor.empty(outShape, source.device);
  native().indexAdd(source.storage.handle, out.storage.handle, outer, size, inner, held.handle);
  return recordOperation('indexAdd', out, [source], [], (grad) => [indexSelect(grad, axis, held.tensor)], held.release);
}
