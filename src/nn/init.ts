// Weight initialisation (torch.nn.init), in place.
//
// Every function overwrites its tensor in place (under noGrad, bumping the storage version) and
// returns it. Random draws come from `options.generator` or the global generator seeded by
// manualSeed(), so the same seed gives the same weights. (The streams differ from PyTorch's, so the
// values are not PyTorch's values; the distributions are.)
//
// Fans follow torch.nn.init._calculate_fan_in_and_fan_out: for a weight of shape
// [out, in, *kernel], receptive = prod(kernel), fan_in = in · receptive, fan_out = out · receptive.
// A grouped conv weight is stored [out, in/groups, kh, kw], so fan_in = in/groups · kh · kw.
//   kaiming (He):  std = gain / sqrt(fan);   uniform bound = gain · sqrt(3 / fan)
//   xavier:        std = gain · sqrt(2 / (fan_in + fan_out)); uniform bound = std · sqrt(3)
//   gain: linear/conv*/sigmoid 1, tanh 5/3, relu sqrt(2), leaky_relu(a) sqrt(2 / (1 + a²)), selu 3/4
// Layer defaults (Conv2d, Linear reset_parameters): weight kaiming_uniform(a = sqrt(5)), i.e.
// U(-1/sqrt(fan_in), 1/sqrt(fan_in)); bias U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
import { Tensor, formatShape, shapeSize } from '../tensor/tensor.js';
import { defaultGenerator, Generator } from '../tensor/random.js';
import { noGrad } from '../autograd/mode.js';
import { fillInPlace, writeInPlace } from './parameter.js';

export type Nonlinearity =
  | 'linear' | 'identity' | 'conv1d' | 'conv2d' | 'conv3d' | 'sigmoid' | 'tanh' | 'relu' | 'leaky_relu' | 'leakyRelu' | 'selu';

/** 'fanIn' / 'fanOut' (PyTorch's 'fan_in' / 'fan_out' are accepted too). */
export type FanMode = 'fanIn' | 'fanOut' | 'fan_in' | 'fan_out';

export interface RandomInitOptions {
  /** Source of randomness (default: the global generator, see manualSeed). */
  generator?: Generator;
}

export interface KaimingOptions extends RandomInitOptions {
  /** Negative slope of the leaky ReLU after this layer (used when nonlinearity is leaky_relu). Default 0. */
  a?: number;
  /** Preserve the variance of the forward pass ('fanIn', default) or of the backward pass ('fanOut'). */
  mode?: FanMode;
  /** Default 'leaky_relu' (as in PyTorch; with a = 0 that is the ReLU gain sqrt(2)). */
  nonlinearity?: Nonlinearity;
}

function checkTarget(t: unknown, op: string): asserts t is Tensor {
  if (!(t instanceof Tensor)) throw new TypeError(`init.${op}: expected a Tensor`);
  t.assertAlive(`init.${op}`);
}

function generatorOf(options: RandomInitOptions | undefined, op: string): Generator {
  const generator = options?.generator ?? defaultGenerator;
  if (!(generator instanceof Generator)) throw new TypeError(`init.${op}: generator must be a Generator`);
  return generator;
}

function checkNumber(value: unknown, op: string, name: string): asserts value is number {
  if (typeof value !== 'number' || !Number.isFinite(value)) {
    throw new TypeError(`init.${op}: ${name} must be a finite number, got ${String(value)}`);
  }
}

function fillWith(t: Tensor, draw: () => number): Tensor {
  const data = new Float32Array(t.size);
  for (let index = 0; index < data.length; index += 1) data[index] = draw();
  noGrad(() => writeInPlace(t, data, 'init'));
  return t;
}

/** The recommended gain for a nonlinearity (torch.nn.init.calculate_gain). */
export function calculateGain(nonlinearity: Nonlinearity, param?: number): number {
  switch (nonlinearity) {
    case 'linear':
    case 'identity':
    case 'conv1d':
    case 'conv2d':
    case 'conv3d':
    case 'sigmoid':
      return 1;
    case 'tanh':
      return 5 / 3;
    case 'relu':
      return Math.SQRT2;
    case 'leaky_relu':
    case 'leakyRelu': {
      const slope = param ?? 0.01;
      checkNumber(slope, 'calculateGain', 'negative slope');
      return Math.sqrt(2 / (1 + slope * slope));
    }
    case 'selu':
      return 3 / 4;
    default:
      throw new Error(`init.calculateGain: unsupported nonlinearity '${String(nonlinearity)}'`);
  }
}

/** [fan_in, fan_out] of a weight shape ([out, in, ...kernel]); needs at least 2 dimensions. */
export function calculateFanInAndFanOut(shapeOrTensor: Tensor | readonly number[]): [number, number] {
  const shape = shapeOrTensor instanceof Tensor ? shapeOrTensor.shape : shapeOrTensor;
  if (!Array.isArray(shape) || shape.length < 2) {
    throw new Error(
      `init: fan in and fan out can not be computed for a tensor with fewer than 2 dimensions (shape ${formatShape(shape as number[])})`,
    );
  }
  const receptive = shapeSize(shape.slice(2));
  return [shape[1]! * receptive, shape[0]! * receptive];
}

function fanFor(t: Tensor, mode: FanMode, op: string): number {
  const [fanIn, fanOut] = calculateFanInAndFanOut(t);
  let fan: number;
  if (mode === 'fanIn' || mode === 'fan_in') fan = fanIn;
  else if (mode === 'fanOut' || mode === 'fan_out') fan = fanOut;
  else throw new Error(`init.${op}: mode must be 'fanIn' or 'fanOut', got ${JSON.stringify(mode)}`);
  if (fan === 0) throw new Error(`init.${op}: cannot initialise a tensor with zero fan (shape ${formatShape(t.shape)})`);
  return fan;
}

/** U(low, high) in place. */
export function uniform(t: Tensor, low = 0, high = 1, options?: RandomInitOptions): Tensor {
  checkTarget(t, 'uniform');
  checkNumber(low, 'uniform', 'low');
  checkNumber(high, 'uniform', 'high');
  if (!(low <= high)) throw new Error(`init.uniform: low (${low}) must not exceed high (${high})`);
  const generator = generatorOf(options, 'uniform');
  return fillWith(t, () => low + (high - low) * generator.uniform());
}

/** N(mean, std²) in place. */
export function normal(t: Tensor, mean = 0, std = 1, options?: RandomInitOptions): Tensor {
  checkTarget(t, 'normal');
  checkNumber(mean, 'normal', 'mean');
  checkNumber(std, 'normal', 'std');
  if (std < 0) throw new Error(`init.normal: std must be non-negative, got ${std}`);
  const generator = generatorOf(options, 'normal');
  return fillWith(t, () => mean + std * generator.normal());
}

/** Sets every element to `value`. */
export function constant(t: Tensor, value: number): Tensor {
  checkTarget(t, 'constant');
  checkNumber(value, 'constant', 'value');
  noGrad(() => fillInPlace(t, value, 'init.constant'));
  return t;
}

export function zeros(t: Tensor): Tensor {
  return constant(t, 0);
}

export function ones(t: Tensor): Tensor {
  return constant(t, 1);
}

function kaimingStd(t: Tensor, options: KaimingOptions, op: string): number {
  const a = options.a ?? 0;
  checkNumber(a, op, 'a');
  const fan = fanFor(t, options.mode ?? 'fanIn', op);
  const gain = calculateGain(options.nonlinearity ?? 'leaky_relu', a);
  return gain / Math.sqrt(fan);
}

/** He initialisation, normal: N(0, std²) with std = gain / sqrt(fan). */
export function kaimingNormal(t: Tensor, options: KaimingOptions = {}): Tensor {
  checkTarget(t, 'kaimingNormal');
  return normal(t, 0, kaimingStd(t, options, 'kaimingNormal'), options);
}

/** He initialisation, uniform: U(-bound, bound) with bound = gain · sqrt(3 / fan). */
export function kaimingUniform(t: Tensor, options: KaimingOptions = {}): Tensor {
  checkTarget(t, 'kaimingUniform');
  const bound = Math.sqrt(3) * kaimingStd(t, options, 'kaimingUniform');
  return uniform(t, -bound, bound, options);
}

/** Glorot initialisation, uniform: bound = gain · sqrt(6 / (fan_in + fan_out)). */
export function xavierUniform(t: Tensor, options: RandomInitOptions & { gain?: number } = {}): Tensor {
  checkTarget(t, 'xavierUniform');
  const [fanIn, fanOut] = calculateFanInAndFanOut(t);
  const bound = (options.gain ?? 1) * Math.sqrt(6 / (fanIn + fanOut));
  return uniform(t, -bound, bound, options);
}

/** Glorot initialisation, normal: std = gain · sqrt(2 / (fan_in + fan_out)). */
export function xavierNormal(t: Tensor, options: RandomInitOptions & { gain?: number } = {}): Tensor {
  checkTarget(t, 'xavierNormal');
  const [fanIn, fanOut] = calculateFanInAndFanOut(t);
  return normal(t, 0, (options.gain ?? 1) * Math.sqrt(2 / (fanIn + fanOut)), options);
}

/**
 * PyTorch's default for Conv*d / Linear: weight kaiming_uniform(a = sqrt(5)) (= U(±1/sqrt(fan_in))),
 * then bias U(±1/sqrt(fan_in)) with fan_in taken from the weight.
 */
export function defaultLayerInit(weight: Tensor, bias: Tensor | null, options?: RandomInitOptions): void {
  kaimingUniform(weight, { a: Math.sqrt(5), generator: options?.generator });
  if (bias) {
    const [fanIn] = calculateFanInAndFanOut(weight);
    const bound = fanIn > 0 ? 1 / Math.sqrt(fanIn) : 0;
    uniform(bias, -bound, bound, options);
  }
}
