// IndexTensor: a read-only, one-dimensional int32 tensor on a device — class labels, gather
// indices, memory-bank indices and rows. Made once (per batch, in the trainer) and passed to
// every op that needs it, so a 'cuda' op reads the values from device memory instead of copying
// a host array to the device on each call (torch's LongTensor labels play this part).
//
// The values are fixed at creation (the native block refuses writes), which is what lets one
// tensor stand for the same values on both sides: the device block the kernels read, and host
// copies (this object's and, for 'cuda', the native storage's) that range checks, launch plans
// and the composite (differentiable) paths read without a device round trip.
//
// Ownership: like a Tensor, the creator's claim ends with dispose(); an op whose graph node still
// needs the values holds its own reference to the storage until the node is released.
import type { Device } from './storage.js';
import { Storage } from './storage.js';

/** An index operand as the public ops take it: an IndexTensor (made once, e.g. per batch), or
 *  host values that the op copies into a temporary IndexTensor on its device. */
export type IndexInput = IndexTensor | Int32Array;

const int32Minimum = -(2 ** 31);
const int32Limit = 2 ** 31;

export class IndexTensor {
  readonly device: Device;
  readonly length: number;
  readonly storage: Storage;
  private readonly hostValues: Int32Array;
  private disposed = false;
  private range: { min: number; max: number } | null = null;

  private constructor(values: Int32Array, device: Device, storage: Storage) {
    this.device = device;
    this.length = values.length;
    this.hostValues = values;
    this.storage = storage;
  }

  /** A copy of `values` (an Int32Array, or an array of integers in int32 range) on `device`. */
  static from(values: Int32Array | readonly number[], device: Device = 'cpu'): IndexTensor {
    if (device !== 'cpu' && device !== 'cuda') throw new TypeError(`IndexTensor.from: unknown device '${String(device)}'`);
    if (values instanceof Int32Array) return IndexTensor.wrap(values.slice(), device);
    if (!Array.isArray(values)) {
      throw new TypeError(`IndexTensor.from: values must be an Int32Array or an array of integers, got ${describe(values)}`);
    }
    const copy = new Int32Array(values.length);
    values.forEach((value, position) => {
      if (!Number.isInteger(value) || value < int32Minimum || value >= int32Limit) {
        throw new TypeError(`IndexTensor.from: value ${String(value)} at position ${position} is not an int32 integer`);
      }
      copy[position] = value;
    });
    return IndexTensor.wrap(copy, device);
  }

  private static wrap(values: Int32Array, device: Device): IndexTensor {
    return new IndexTensor(values, device, Storage.indices(device, values));
  }

  /**
   * Internal (ops): a second handle on the same block and values, with its own claim, so an op
   * can keep the values for its backward whatever the caller does with the original.
   */
  share(): IndexTensor {
    this.assertAlive('share');
    this.storage.retain();
    const shared = new IndexTensor(this.hostValues, this.device, this.storage);
    shared.range = this.range;
    return shared;
  }

  get alive(): boolean {
    return !this.disposed;
  }

  /** Throws unless the tensor has not been disposed. */
  assertAlive(op: string): void {
    if (this.disposed) throw new Error(`${op}: index tensor of length ${this.length} was disposed`);
  }

  /** A copy of the values (read from the host copy: no device synchronisation). */
  toInt32Array(): Int32Array {
    this.assertAlive('toInt32Array');
    return this.hostValues.slice();
  }

  /** The value at `position`. */
  at(position: number): number {
    this.assertAlive('at');
    if (!Number.isInteger(position) || position < 0 || position >= this.length) {
      throw new RangeError(`IndexTensor.at: position ${String(position)} is out of range for length ${this.length}`);
    }
    return this.hostValues[position]!;
  }

  /** The smallest value (NaN-free; +Infinity when empty). Computed once. */
  min(): number {
    return this.valueRange().min;
  }

  /** The largest value (-Infinity when empty). Computed once. */
  max(): number {
    return this.valueRange().max;
  }

  /** The first position whose value is outside [0, limit), or -1 when there is none. */
  firstOutOfRange(limit: number): number {
    const { min, max } = this.valueRange();
    if (this.length === 0 || (min >= 0 && max < limit)) return -1;
    const values = this.hostValues;
    for (let position = 0; position < values.length; position += 1) {
      const value = values[position]!;
      if (value < 0 || value >= limit) return position;
    }
    return -1;
  }

  /** A copy on `device` (the same object's values; a new block). */
  to(device: Device): IndexTensor {
    this.assertAlive('to');
    return IndexTensor.from(this.hostValues, device);
  }

  /** Ends the creator's claim; the block is freed once no op's graph node still holds it. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.storage.release();
  }

  /** Internal (ops): the host copy itself, not a copy of it. Callers must not write to it. */
  hostView(): Int32Array {
    return this.hostValues;
  }

  toString(): string {
    return `IndexTensor(length=${this.length}, device=${this.device})`;
  }

  private valueRange(): { min: number; max: number } {
    this.assertAlive('IndexTensor');
    if (this.range === null) {
      let min = Infinity;
      let max = -Infinity;
      for (const value of this.hostValues) {
        if (value < min) min = value;
        if (value > max) max = value;
      }
      this.range = { min, max };
    }
    return this.range;
  }
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (typeof value === 'object') return (value as object).constructor?.name ?? 'object';
  return `${typeof value} ${String(value)}`;
}
