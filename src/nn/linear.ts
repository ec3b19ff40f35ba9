// nn.Linear, and the shape-only layers nn.Identity and nn.Flatten (torch keeps Identity in
// linear.py too).
import { Module } from './module.js';
import { defaultLayerInit, type RandomInitOptions } from './init.js';
import type { LayerOptions } from './conv.js';
import * as F from '../ops/functional.js';
import { Tensor, formatShape, shapeSize } from '../tensor/tensor.js';
import { zeros } from '../tensor/creation.js';
import { checkPositiveInteger, normaliseDim } from '../ops/checks.js';

export interface LinearOptions extends LayerOptions {
  /** Learn an additive bias (default true). */
  bias?: boolean;
}

/**
 * Linear(inFeatures, outFeatures, { bias }): y = x·weightᵀ + bias, like torch.nn.Linear.
 * Parameters 'weight' [out, in] and 'bias' [out], initialised as PyTorch does.
 */
export class Linear extends Module {
  readonly inFeatures: number;
  readonly outFeatures: number;

  constructor(inFeatures: number, outFeatures: number, options: LinearOptions = {}) {
    super();
    checkPositiveInteger(inFeatures, 'Linear', 'inFeatures');
    checkPositiveInteger(outFeatures, 'Linear', 'outFeatures');
    this.inFeatures = inFeatures;
    this.outFeatures = outFeatures;
    const device = options.device;
    this.registerParameter('weight', zeros([outFeatures, inFeatures], { device }));
    this.registerParameter('bias', options.bias ?? true ? zeros([outFeatures], { device }) : null);
    this.resetParameters(options);
  }

  get weight(): Tensor {
    return this.getParameter('weight')!;
  }

  get bias(): Tensor | null {
    return this.getParameter('bias');
  }

  /** Re-draws the parameters with PyTorch's default initialisation. */
  resetParameters(options?: RandomInitOptions): void {
    defaultLayerInit(this.weight, this.bias, options);
  }

  override forward(x: Tensor): Tensor {
    return F.linear(x, this.weight, this.bias);
  }

  override extraRepr(): string {
    return `in_features=${this.inFeatures}, out_features=${this.outFeatures}, bias=${this.bias ? 'True' : 'False'}`;
  }
}

/** Returns its input unchanged (the same tensor object). */
export class Identity extends Module {
  override forward<T>(x: T): T {
    return x;
  }
}

/**
 * Flatten(startDim = 1, endDim = -1): merges dims startDim..endDim into one, like
 * torch.nn.Flatten ([N, C, H, W] → [N, C·H·W] by default). A view (no copy).
 */
export class Flatten extends Module {
  readonly startDim: number;
  readonly endDim: number;

  constructor(startDim = 1, endDim = -1) {
    super();
    if (!Number.isInteger(startDim) || !Number.isInteger(endDim)) throw new TypeError('Flatten: startDim and endDim must be integers');
    this.startDim = startDim;
    this.endDim = endDim;
  }

  override forward(x: Tensor): Tensor {
    const rank = x.shape.length;
    if (rank === 0) return F.reshape(x, [1]);
    const start = normaliseDim(this.startDim, rank, 'Flatten');
    const end = normaliseDim(this.endDim, rank, 'Flatten');
    if (start > end) throw new Error(`Flatten: startDim ${this.startDim} comes after endDim ${this.endDim} for shape ${formatShape(x.shape)}`);
    const shape = [...x.shape.slice(0, start), shapeSize(x.shape.slice(start, end + 1)), ...x.shape.slice(end + 1)];
    return F.reshape(x, shape);
  }

  override extraRepr(): string {
    return `start_dim=${this.startDim}, end_dim=${this.endDim}`;
  }
}
