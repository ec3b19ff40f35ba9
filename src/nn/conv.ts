// nn.Conv2d: a 2-D convolution layer over F.conv2d (NCHW; weight [out, in/groups, kh, kw]).
import { Module } from './module.js';
import { defaultLayerInit, type RandomInitOptions } from './init.js';
import * as F from '../ops/functional.js';
import { Tensor } from '../tensor/tensor.js';
import { zeros } from '../tensor/creation.js';
import type { Device } from '../tensor/tensor.js';
import type { Generator } from '../tensor/random.js';
import { checkPositiveInteger, pairOf } from '../ops/checks.js';

export interface LayerOptions {
  /** Where the parameters live (default 'cpu'). */
  device?: Device;
  /** Source of the initial values (default: the global generator, see manualSeed). */
  generator?: Generator;
}

export interface Conv2dLayerOptions extends LayerOptions {
  /** Default 1. */
  stride?: number | [number, number];
  /** Zero padding on both sides, default 0. */
  padding?: number | [number, number];
  /** Channel groups (inChannels and outChannels must be divisible by it). Default 1. */
  groups?: number;
  /** Learn an additive bias per output channel (default true). */
  bias?: boolean;
}

export function formatPair(pair: readonly [number, number]): string {
  return `(${pair[0]}, ${pair[1]})`;
}

/**
 * Conv2d(inChannels, outChannels, kernelSize, { stride, padding, groups, bias }): like
 * torch.nn.Conv2d (dilation 1, zero padding). Parameters 'weight' [out, in/groups, kh, kw] and
 * 'bias' [out] (absent with bias: false), initialised as PyTorch does (see init.defaultLayerInit).
 */
export class Conv2d extends Module {
  readonly inChannels: number;
  readonly outChannels: number;
  readonly kernelSize: [number, number];
  readonly stride: [number, number];
  readonly padding: [number, number];
  readonly groups: number;

  constructor(inChannels: number, outChannels: number, kernelSize: number | [number, number], options: Conv2dLayerOptions = {}) {
    super();
    checkPositiveInteger(inChannels, 'Conv2d', 'inChannels');
    checkPositiveInteger(outChannels, 'Conv2d', 'outChannels');
    const groups = options.groups ?? 1;
    checkPositiveInteger(groups, 'Conv2d', 'groups');
    if (inChannels % groups !== 0) throw new Error(`Conv2d: inChannels (${inChannels}) must be divisible by groups (${groups})`);
    if (outChannels % groups !== 0) throw new Error(`Conv2d: outChannels (${outChannels}) must be divisible by groups (${groups})`);
    this.inChannels = inChannels;
    this.outChannels = outChannels;
    this.kernelSize = pairOf(kernelSize, 'Conv2d', 'kernelSize', 1);
    this.stride = pairOf(options.stride ?? 1, 'Conv2d', 'stride', 1);
    this.padding = pairOf(options.padding ?? 0, 'Conv2d', 'padding', 0);
    this.groups = groups;
    const device = options.device;
    this.registerParameter('weight', zeros([outChannels, inChannels / groups, ...this.kernelSize], { device }));
    this.registerParameter('bias', options.bias ?? true ? zeros([outChannels], { device }) : null);
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
    return F.conv2d(x, this.weight, this.bias, { stride: this.stride, padding: this.padding, groups: this.groups });
  }

  override extraRepr(): string {
    let text = `${this.inChannels}, ${this.outChannels}, kernel_size=${formatPair(this.kernelSize)}, stride=${formatPair(this.stride)}`;
    if (this.padding[0] !== 0 || this.padding[1] !== 0) text += `, padding=${formatPair(this.padding)}`;
    if (this.groups !== 1) text += `, groups=${this.groups}`;
    if (!this.bias) text += ', bias=False';
    return text;
  }
}
