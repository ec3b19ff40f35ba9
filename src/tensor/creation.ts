// Creation helpers: tensor(), zeros(), ones(), full(), randn(), rand() and *Like variants.
import { native } from '../native/index.js';
import { Tensor, checkShape, formatShape, shapeSize, type Device } from './tensor.js';
import { defaultGenerator, type Generator } from './random.js';
import { uploadFloats } from './storage.js';

export interface CreationOptions {
  requiresGrad?: boolean;
  device?: Device;
}

function checkDevice(device: unknown, op: string): Device {
  if (device === undefined) return 'cpu';
  if (device !== 'cpu' && device !== 'cuda') throw new TypeError(`${op}: device must be 'cpu' or 'cuda', got ${JSON.stringify(device)}`);
  return device;
}

function finish(result: Tensor, options: CreationOptions | undefined): Tensor {
  if (options?.requiresGrad) result.requiresGrad = true;
  return result;
}

/** A tensor holding a copy of `values`, laid out row-major in `shape`. */
export function tensor(values: Float32Array | readonly number[], shape: readonly number[], options?: CreationOptions): Tensor {
  checkShape(shape, 'tensor');
  const device = checkDevice(options?.device, 'tensor');
  let data: Float32Array;
  if (values instanceof Float32Array) data = values;
  else if (Array.isArray(values)) {
    values.forEach((value, index) => {
      if (typeof value !== 'number') throw new TypeError(`tensor: values[${index}] is not a number`);
    });
    data = Float32Array.from(values);
  } else throw new TypeError('tensor: values must be a Float32Array or an array of numbers');
  if (data.length !== shapeSize(shape)) {
    throw new Error(`tensor: ${data.length} values do not fill shape ${formatShape(shape)} (${shapeSize(shape)} elements)`);
  }
  const result = Tensor.empty(shape, device);
  uploadFloats(result.storage, data);
  return finish(result, options);
}

export function full(shape: readonly number[], value: number, options?: CreationOptions): Tensor {
  checkShape(shape, 'full');
  if (typeof value !== 'number') throw new TypeError('full: value must be a number');
  const result = Tensor.empty(shape, checkDevice(options?.device, 'full'));
  native().fill(result.storage.handle, value, result.size);
  return finish(result, options);
}

export function zeros(shape: readonly number[], options?: CreationOptions): Tensor {
  return full(shape, 0, options);
}

export function ones(shape: readonly number[], options?: CreationOptions): Tensor {
  return full(shape, 1, options);
}

export function zerosLike(like: Tensor, options?: CreationOptions): Tensor {
  return full(like.shape, 0, { device: like.device, ...options });
}

export function onesLike(like: Tensor, options?: CreationOptions): Tensor {
  return full(like.shape, 1, { device: like.device, ...options });
}

export interface RandomOptions extends CreationOptions {
  generator?: Generator;
}

function fromGenerator(shape: readonly number[], options: RandomOptions | undefined, op: string, draw: (g: Generator) => number): Tensor {
  checkShape(shape, op);
  const generator = options?.generator ?? defaultGenerator;
  const data = new Float32Array(shapeSize(shape));
  for (let index = 0; index < data.length; index += 1) data[index] = draw(generator);
  return tensor(data, shape, options);
}

/** Standard normal samples (seeded by manualSeed or options.generator). */
export function randn(shape: readonly number[], options?: RandomOptions): Tensor {
  return fromGenerator(shape, options, 'randn', (g) => g.normal());
}

/** Uniform samples in [low, high). */
export function rand(shape: readonly number[], options?: RandomOptions & { low?: number; high?: number }): Tensor {
  const low = options?.low ?? 0;
  const high = options?.high ?? 1;
  return fromGenerator(shape, options, 'rand', (g) => low + (high - low) * g.uniform());
}
