// Argument checks shared by the ops: every failure is an Error that names the op and the problem.
import { Tensor, formatShape, type Device } from '../tensor/tensor.js';
import { IndexTensor } from '../tensor/index_tensor.js';
import type { NativeStorage } from '../native/index.js';

/** Throws unless value is a live Tensor. */
export function checkTensor(value: unknown, op: string, argument: string): asserts value is Tensor {
  if (!(value instanceof Tensor)) {
    throw new TypeError(`${op}: argument '${argument}' must be a Tensor, got ${describeValue(value)}`);
  }
  value.assertAlive(`${op} (argument '${argument}')`);
}

/** Throws unless all tensors are on the same device. */
export function checkSameDevice(op: string, ...tensors: (Tensor | null | undefined)[]): void {
  const present = tensors.filter((tensor): tensor is Tensor => tensor instanceof Tensor);
  const device = present[0]?.device;
  for (const tensor of present) {
    if (tensor.device !== device) {
      throw new Error(`${op}: expected all tensors on the same device, got '${device}' and '${tensor.device}' (use .to(device))`);
    }
  }
}

export function checkRank(tensor: Tensor, rank: number, op: string, argument: string, layout?: string): void {
  if (tensor.shape.length !== rank) {
    throw new Error(
      `${op}: argument '${argument}' must be ${rank}-D${layout ? ` (${layout})` : ''}, got shape ${formatShape(tensor.shape)}`,
    );
  }
}

/** Normalises a possibly negative dimension index; throws when out of range. */
export function normaliseDim(dim: number, rank: number, op: string): number {
  if (!Number.isInteger(dim)) throw new TypeError(`${op}: dim must be an integer, got ${String(dim)}`);
  // A 0-d tensor accepts dims 0 and -1, like PyTorch.
  const extent = Math.max(rank, 1);
  const normalised = dim < 0 ? dim + extent : dim;
  if (normalised < 0 || normalised >= extent) {
    throw new Error(`${op}: dim ${dim} is out of range for a ${rank}-D tensor`);
  }
  return normalised;
}

export function checkPositiveInteger(value: unknown, op: string, argument: string): asserts value is number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1) {
    throw new TypeError(`${op}: ${argument} must be a positive integer, got ${describeValue(value)}`);
  }
}

export function checkFiniteNumber(value: unknown, op: string, argument: string): asserts value is number {
  if (typeof value !== 'number' || !Number.isFinite(value)) {
    throw new TypeError(`${op}: ${argument} must be a finite number, got ${describeValue(value)}`);
  }
}

/** A pair [h, w] from a number or a 2-element array. */
export function pairOf(value: unknown, op: string, argument: string, minimum: number): [number, number] {
  const pair = typeof value === 'number' ? [value, value] : value;
  if (!Array.isArray(pair) || pair.length !== 2 || !pair.every((item) => Number.isInteger(item) && item >= minimum)) {
    throw new TypeError(`${op}: ${argument} must be an integer >= ${minimum} or a pair [h, w] of them, got ${describeValue(value)}`);
  }
  return [pair[0] as number, pair[1] as number];
}

export function describeValue(value: unknown): string {
  if (value instanceof Tensor) return `Tensor${formatShape(value.shape)}`;
  if (value === null) return 'null';
  if (Array.isArray(value)) return JSON.stringify(value);
  if (typeof value === 'object') return (value as object).constructor?.name ?? 'object';
  return `${typeof value} ${String(value)}`;
}

/** An options object with only the allowed keys (undefined gives {}); otherwise an Error naming the key. */
export function readOptions(options: unknown, allowed: readonly string[], op: string): Record<string, unknown> {
  if (options === undefined) return {};
  if (options === null || typeof options !== 'object' || Array.isArray(options)) {
    throw new TypeError(`${op}: options must be an object, got ${describeValue(options)}`);
  }
  for (const key of Object.keys(options)) {
    if (!allowed.includes(key)) throw new Error(`${op}: unknown option '${key}' (expected ${allowed.join(', ')})`);
  }
  return options as Record<string, unknown>;
}

export type { IndexInput } from '../tensor/index_tensor.js';

/** An index operand held for one op call and, when a graph node keeps it, for its backward. */
export interface HeldIndices {
  /** The op's own handle on the values (pass it on to the ops of a backward). */
  readonly tensor: IndexTensor;
  /** The index storage the native kernels take. */
  readonly handle: NativeStorage;
  /** The values on the host (shared, never written): range checks and composite paths. */
  readonly values: Int32Array;
  readonly length: number;
  /** Ends this hold (pass it as the graph node's onRelease, or call it after an untracked op). */
  readonly release: () => void;
}

/**
 * Holds `value` (an IndexTensor on `device`, or an Int32Array copied to `device`) for an op; an
 * IndexTensor on another device is an Error, as for float operands (ops never copy between
 * devices). The hold keeps the block alive even if the caller disposes its IndexTensor.
 */
export function holdIndices(value: unknown, device: Device, op: string, name: string): HeldIndices {
  let tensor: IndexTensor;
  if (value instanceof IndexTensor) {
    value.assertAlive(`${op} (argument '${name}')`);
    if (value.device !== device) {
      throw new Error(`${op}: argument '${name}' is on '${value.device}' but the tensors are on '${device}' (use ${name}.to('${device}'))`);
    }
    tensor = value.share();
  } else if (value instanceof Int32Array) {
    tensor = IndexTensor.from(value, device);
  } else {
    throw new TypeError(`${op}: argument '${name}' must be an IndexTensor or an Int32Array, got ${describeValue(value)}`);
  }
  return {
    tensor,
    handle: tensor.storage.handle,
    values: tensor.hostView(),
    length: tensor.length,
    release: () => tensor.dispose(),
  };
}

/** The first position of `values` outside [0, limit), or -1: through the IndexTensor's cached
 *  range when the operand is one (an O(1) check per call for a tensor made once per batch). */
export function firstOutOfRange(operand: unknown, values: Int32Array, limit: number): number {
  if (operand instanceof IndexTensor && operand.alive) return operand.firstOutOfRange(limit);
  const length = values.length;
  // As unsigned, a negative value is >= 2^31 > limit: one comparison per value.
  for (let position = 0; position < length; position += 1) if (values[position]! >>> 0 >= limit) return position;
  return -1;
}
