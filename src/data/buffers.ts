// Batch-sized buffers (the loader's staging array, the worker pool's output slots). They are
// sized for the largest batch a loader yields, min(batch size, images) — a batch size beyond the
// split is one batch of the whole split — and a size the process cannot allocate is an Error
// saying what was asked for, not V8's "Invalid typed array length" / "Array buffer allocation
// failed".

function formatBytes(bytes: number): string {
  const units = ['bytes', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return unit === 0 ? `${value} bytes` : `${value.toFixed(1)} ${units[unit]}`;
}

function allocate<T>(floats: number, what: string, make: () => T): T {
  try {
    return make();
  } catch (error) {
    if (!(error instanceof RangeError)) throw error;
    throw new Error(`${what}: ${floats.toLocaleString('en-US')} floats (${formatBytes(floats * 4)}) cannot be allocated (${error.message}); use a smaller batch size`,
      { cause: error });
  }
}

/** A Float32Array of `floats` values; `what` names the buffer in the error when it cannot be allocated. */
export function allocateFloats(floats: number, what: string): Float32Array {
  return allocate(floats, what, () => new Float32Array(floats));
}

/** A SharedArrayBuffer of `floats` float32 values (worker output slots). */
export function allocateSharedFloats(floats: number, what: string): SharedArrayBuffer {
  return allocate(floats, what, () => new SharedArrayBuffer(4 * floats));
}
