// Reference-counted device memory behind one or more tensors (views share a storage).
//
// Memory is released deterministically: when the last tensor referencing a storage lets go of
// it, the block goes straight back to the native caching allocator — never left to the GC.
import { native, type NativeStorage } from '../native/index.js';

export type Device = 'cpu' | 'cuda';

let liveStorageBytes = 0;
let liveStorageCount = 0;

export class Storage {
  readonly handle: NativeStorage;
  readonly device: Device;
  readonly byteLength: number;
  /** Bumped by every in-place write, so autograd can detect a saved tensor that was modified. */
  version = 0;
  private references = 1;

  private constructor(handle: NativeStorage, device: Device, byteLength: number) {
    this.handle = handle;
    this.device = device;
    this.byteLength = byteLength;
    liveStorageBytes += byteLength;
    liveStorageCount += 1;
  }

  /** A fresh, uninitialised block. */
  static allocate(device: Device, byteLength: number): Storage {
    return new Storage(native().alloc(device, byteLength), device, byteLength);
  }

  /**
   * An index block (IndexTensor's): a copy of `values` as int32 on `device`, read-only from here
   * on; on 'cuda' the native side keeps a host copy too, so kernels check and plan on the host
   * without reading device memory back.
   */
  static indices(device: Device, values: Int32Array): Storage {
    const plain = values.buffer instanceof ArrayBuffer ? values : new Int32Array(values);
    return new Storage(native().allocIndices(device, plain), device, values.byteLength);
  }

  get alive(): boolean {
    return this.references > 0;
  }

  retain(): void {
    if (this.references <= 0) throw new Error('lmcl internal: retain() on a released storage');
    this.references += 1;
  }

  release(): void {
    if (this.references <= 0) return;
    this.references -= 1;
    if (this.references === 0) {
      native().free(this.handle);
      liveStorageBytes -= this.byteLength;
      liveStorageCount -= 1;
    }
  }
}

/** Bytes and blocks held by live storages (what JavaScript still references). */
export function storageCounters(): { liveBytes: number; liveStorages: number } {
  return { liveBytes: liveStorageBytes, liveStorages: liveStorageCount };
}

/**
 * Copies host floats into the start of `storage`. The addon reads a typed array's bytes through
 * its ArrayBuffer, which Node-API refuses for a SharedArrayBuffer (a bare "Invalid argument"), so
 * data backed by anything but a plain ArrayBuffer (a SharedArrayBuffer, or another realm's
 * buffer) is first copied into a plain one: one extra pass, and no racing writer during upload.
 */
export function uploadFloats(storage: Storage, data: Float32Array): void {
  native().upload(storage.handle, data.buffer instanceof ArrayBuffer ? data : new Float32Array(data), 0);
}
