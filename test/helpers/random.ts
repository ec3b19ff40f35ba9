// Fresh random inputs for tests (never zeros): values in about [-1, 1] from Math.random, so every
// run draws new data. Failures print the shapes involved; rerun to reproduce statistically.
import { Tensor, tensor, type Device } from '../../src/index.js';

export function randomArray(length: number, scale = 1): Float32Array {
  const values = new Float32Array(length);
  for (let index = 0; index < length; index += 1) values[index] = (Math.random() * 2 - 1) * scale;
  return values;
}

export function randomTensor(shape: number[], options: { requiresGrad?: boolean; scale?: number; offset?: number; device?: Device } = {}): Tensor {
  const size = shape.reduce((product, extent) => product * extent, 1);
  const values = randomArray(size, options.scale ?? 1);
  if (options.offset) for (let index = 0; index < size; index += 1) values[index] += options.offset;
  return tensor(values, shape, { requiresGrad: options.requiresGrad ?? false, device: options.device ?? 'cpu' });
}

/**
 * Random values of either sign with magnitudes in [0.5, 1.5): every slice of n of them has an L2
 * norm >= 0.5·√n. For finite-difference checks of ops whose derivatives blow up near a zero norm
 * (normalize, cosine similarity: the k-th derivative grows like 1/‖x‖^(k+1)), where float32 central
 * differences with ε = 1e-2 are not accurate (a CI run drew a short slice near 0: autograd −0.74
 * vs finite difference −1.60, both correct for their own definitions).
 */
export function randomSignedTensor(shape: number[], options: { requiresGrad?: boolean; device?: Device } = {}): Tensor {
  const size = shape.reduce((product, extent) => product * extent, 1);
  const values = Float32Array.from(randomArray(size), (value) => (value < 0 ? -1 : 1) * (0.5 + Math.abs(value)));
  return tensor(values, shape, { requiresGrad: options.requiresGrad ?? false, device: options.device ?? 'cpu' });
}

/** Random values bounded away from zero (for division, log, sqrt). */
export function randomPositiveTensor(shape: number[], options: { requiresGrad?: boolean; minimum?: number; device?: Device } = {}): Tensor {
  const size = shape.reduce((product, extent) => product * extent, 1);
  const minimum = options.minimum ?? 0.5;
  const values = new Float32Array(size);
  for (let index = 0; index < size; index += 1) values[index] = minimum + Math.random();
  return tensor(values, shape, { requiresGrad: options.requiresGrad ?? false, device: options.device ?? 'cpu' });
}

/** Max over elements of |actual − expected| / (atol + rtol·|expected|) must be ≤ 1. */
export function expectClose(actual: ArrayLike<number>, expected: ArrayLike<number>, options: { rtol?: number; atol?: number; label?: string } = {}): void {
  const rtol = options.rtol ?? 1e-5;
  const atol = options.atol ?? 1e-6;
  if (actual.length !== expected.length) {
    throw new Error(`${options.label ?? 'expectClose'}: length ${actual.length} vs expected ${expected.length}`);
  }
  for (let index = 0; index < actual.length; index += 1) {
    const a = actual[index]!;
    const e = expected[index]!;
    const allowed = atol + rtol * Math.abs(e);
    if (!(Math.abs(a - e) <= allowed) && !(Number.isNaN(a) && Number.isNaN(e))) {
      throw new Error(`${options.label ?? 'expectClose'}: element ${index} is ${a}, expected ${e} (allowed error ${allowed.toExponential(2)})`);
    }
  }
}

/** Random values with |x| in [0.1, 1] (for finite differences of kinked functions at 0). */
export function randomAwayFromZeroTensor(shape: number[], options: { requiresGrad?: boolean } = {}): Tensor {
  const size = shape.reduce((product, extent) => product * extent, 1);
  const values = new Float32Array(size);
  for (let index = 0; index < size; index += 1) values[index] = (Math.random() < 0.5 ? -1 : 1) * (0.1 + 0.9 * Math.random());
  return tensor(values, shape, { requiresGrad: options.requiresGrad ?? false });
}
