// Pooling layers over F.avgPool2d, F.maxPool2d and F.adaptiveAvgPool2d (NCHW).
import { Module } from './module.js';
import { formatPair } from './conv.js';
import * as F from '../ops/functional.js';
import type { Tensor } from '../tensor/tensor.js';
import { pairOf } from '../ops/checks.js';

type Pair = number | [number, number];

export interface PoolOptions {
  /** Default: the kernel size. */
  stride?: Pair;
  /** Implicit padding on both sides, default 0. */
  padding?: Pair;
}

function resolve(kernelSize: Pair, strideOrOptions: Pair | PoolOptions | undefined, padding: Pair | undefined, op: string) {
  const options: PoolOptions =
    strideOrOptions === undefined || typeof strideOrOptions === 'number' || Array.isArray(strideOrOptions)
      ? { stride: strideOrOptions as Pair | undefined, padding }
      : strideOrOptions;
  const kernel = pairOf(kernelSize, op, 'kernelSize', 1);
  const stride = options.stride === undefined ? kernel : pairOf(options.stride, op, 'stride', 1);
  const pad = pairOf(options.padding ?? 0, op, 'padding', 0);
  return { kernel, stride, padding: pad };
}

abstract class Pool2d extends Module {
  readonly kernelSize: [number, number];
  readonly stride: [number, number];
  readonly padding: [number, number];

  constructor(kernelSize: Pair, strideOrOptions: Pair | PoolOptions | undefined, padding: Pair | undefined, op: string) {
    super();
    const resolved = resolve(kernelSize, strideOrOptions, padding, op);
    this.kernelSize = resolved.kernel;
    this.stride = resolved.stride;
    this.padding = resolved.padding;
  }

  override extraRepr(): string {
    return `kernel_size=${formatPair(this.kernelSize)}, stride=${formatPair(this.stride)}, padding=${formatPair(this.padding)}`;
  }
}

/**
 * AvgPool2d(kernelSize, stride = kernelSize, padding = 0) — or AvgPool2d(kernelSize, { stride, padding }).
 * Like torch.nn.AvgPool2d with the defaults of its other options.
 */
export class AvgPool2d extends Pool2d {
  constructor(kernelSize: Pair, strideOrOptions?: Pair | PoolOptions, padding?: Pair) {
    super(kernelSize, strideOrOptions, padding, 'AvgPool2d');
  }

  override forward(x: Tensor): Tensor {
    return F.avgPool2d(x, this.kernelSize, this.stride, this.padding);
  }
}

/** MaxPool2d(kernelSize, stride = kernelSize, padding = 0) — or MaxPool2d(kernelSize, { stride, padding }). */
export class MaxPool2d extends Pool2d {
  constructor(kernelSize: Pair, strideOrOptions?: Pair | PoolOptions, padding?: Pair) {
    super(kernelSize, strideOrOptions, padding, 'MaxPool2d');
  }

  override forward(x: Tensor): Tensor {
    return F.maxPool2d(x, this.kernelSize, this.stride, this.padding);
  }
}

/** AdaptiveAvgPool2d(outputSize): averages to a fixed [h, w] (1 = global average pooling). */
export class AdaptiveAvgPool2d extends Module {
  readonly outputSize: [number, number];

  constructor(outputSize: Pair) {
    super();
    this.outputSize = pairOf(outputSize, 'AdaptiveAvgPool2d', 'outputSize', 1);
  }

  override forward(x: Tensor): Tensor {
    return F.adaptiveAvgPool2d(x, this.outputSize);
  }

  override extraRepr(): string {
    return `output_size=${formatPair(this.outputSize)}`;
  }
}
