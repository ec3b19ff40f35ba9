// nn.BatchNorm2d (and BatchNorm1d) over F.batchNorm, with PyTorch's buffers and update rules.
//
// Parameters 'weight' (γ, ones) and 'bias' (β, zeros) when affine; buffers 'running_mean' (zeros),
// 'running_var' (ones) and 'num_batches_tracked' (a 0-d float tensor; exact up to 2^24 batches)
// when trackRunningStats. In training mode the batch statistics normalise and the running
// statistics are updated in place by F.batchNorm (unbiased variance), and num_batches_tracked is
// incremented. With momentum null the update is a cumulative average (factor 1/num_batches_tracked).
// In eval mode the running statistics normalise; without running statistics the batch statistics
// are used in both modes (PyTorch's rule).
// Module.captureState()/restoreState() save and restore the host mirror of the batch counter with
// the buffers, so the first training forward after a restore needs no device read.
import { Module } from './module.js';
import type { LayerOptions } from './conv.js';
import { fillInPlace } from './parameter.js';
import * as F from '../ops/functional.js';
import { Tensor, formatShape } from '../tensor/tensor.js';
import { full, ones, zeros } from '../tensor/creation.js';
import { checkPositiveInteger } from '../ops/checks.js';
import type { Storage } from '../tensor/storage.js';

export interface BatchNormOptions extends Omit<LayerOptions, 'generator'> {
  /** Added to the variance before the square root (default 1e-5). */
  eps?: number;
  /** Running-statistics update factor (default 0.1); null = cumulative moving average. */
  momentum?: number | null;
  /** Learn a per-channel scale and shift (default true). */
  affine?: boolean;
  /** Keep running statistics for eval mode (default true). */
  trackRunningStats?: boolean;
}

/** What BatchNorm.forward may fuse after the normalisation: out = relu?(bn(x) + residual?). */
export interface BatchNormEpilogue {
  /** Added to the normalised output (same shape as x), e.g. a residual block's shortcut. */
  residual?: Tensor | null;
  /** Apply a ReLU last. */
  relu?: boolean;
}

abstract class BatchNormBase extends Module {
  readonly numFeatures: number;
  readonly eps: number;
  momentum: number | null;
  readonly affine: boolean;
  readonly trackRunningStats: boolean;
  // A host mirror of num_batches_tracked (so counting needs no device read), valid while the
  // buffer's storage and version are the ones recorded here (loadStateDict, to() invalidate it).
  private countMirror = 0;
  private countStorage: Storage | null = null;
  private countVersion = -1;

  constructor(numFeatures: number, options: BatchNormOptions, op: string) {
    super();
    checkPositiveInteger(numFeatures, op, 'numFeatures');
    const eps = options.eps ?? 1e-5;
    if (typeof eps !== 'number' || !(eps >= 0)) throw new TypeError(`${op}: eps must be a non-negative number, got ${String(eps)}`);
    const momentum = options.momentum === undefined ? 0.1 : options.momentum;
    if (momentum !== null && (typeof momentum !== 'number' || !(momentum >= 0 && momentum <= 1))) {
      throw new TypeError(`${op}: momentum must be a number in [0, 1] or null, got ${String(momentum)}`);
    }
    this.numFeatures = numFeatures;
    this.eps = eps;
    this.momentum = momentum;
    this.affine = options.affine ?? true;
    this.trackRunningStats = options.trackRunningStats ?? true;
    const device = options.device;
    this.registerParameter('weight', this.affine ? ones([numFeatures], { device }) : null);
    this.registerParameter('bias', this.affine ? zeros([numFeatures], { device }) : null);
    this.registerBuffer('running_mean', this.trackRunningStats ? zeros([numFeatures], { device }) : null);
    this.registerBuffer('running_var', this.trackRunningStats ? ones([numFeatures], { device }) : null);
    this.registerBuffer('num_batches_tracked', this.trackRunningStats ? full([], 0, { device }) : null);
  }

  get weight(): Tensor | null {
    return this.getParameter('weight');
  }

  get bias(): Tensor | null {
    return this.getParameter('bias');
  }

  get runningMean(): Tensor | null {
    return this.getBuffer('running_mean');
  }

  get runningVar(): Tensor | null {
    return this.getBuffer('running_var');
  }

  get numBatchesTracked(): Tensor | null {
    return this.getBuffer('num_batches_tracked');
  }

  /** Resets running_mean to 0, running_var to 1 and num_batches_tracked to 0. */
  resetRunningStats(): void {
    const mean = this.runningMean;
    const variance = this.runningVar;
    const count = this.numBatchesTracked;
    if (mean) fillInPlace(mean, 0);
    if (variance) fillInPlace(variance, 1);
    if (count) fillInPlace(count, 0);
  }

  /** Resets the running statistics and sets weight to 1 and bias to 0. */
  resetParameters(): void {
    this.resetRunningStats();
    const weight = this.weight;
    const bias = this.bias;
    if (weight) fillInPlace(weight, 1);
    if (bias) fillInPlace(bias, 0);
  }

  /** Increments num_batches_tracked in place; returns the new count. */
  private countBatch(counter: Tensor): number {
    if (this.countStorage !== counter.storage || this.countVersion !== counter.version) {
      this.countMirror = counter.item();
    }
    this.countMirror += 1;
    fillInPlace(counter, this.countMirror);
    this.countStorage = counter.storage;
    this.countVersion = counter.version;
    return this.countMirror;
  }

  /**
   * The batch-counter mirror, when it is valid for the buffer as it is now: restoring that buffer
   * restores exactly this count, so the mirror can be trusted again without a device read.
   */
  protected override captureHostState(): unknown {
    const counter = this.numBatchesTracked;
    if (!counter || this.countStorage !== counter.storage || this.countVersion !== counter.version) return undefined;
    return { count: this.countMirror };
  }

  protected override restoreHostState(state: unknown): void {
    const counter = this.numBatchesTracked;
    if (!counter || state === null || typeof state !== 'object') return;
    // restoreState() has just written the captured bits (and bumped the version): the count is the captured one.
    this.countMirror = (state as { count: number }).count;
    this.countStorage = counter.storage;
    this.countVersion = counter.version;
  }

  protected abstract checkInput(x: Tensor): void;

  /**
   * bn(x); with an epilogue, relu(bn(x) + residual) in one fused pass (the same bits as
   * F.relu(F.add(bn.forward(x), residual)), less memory traffic and fewer saved tensors).
   */
  override forward(x: Tensor, epilogue: BatchNormEpilogue = {}): Tensor {
    if (!(x instanceof Tensor)) throw new TypeError(`${this.typeName}: input must be a Tensor`);
    if (epilogue === null || typeof epilogue !== 'object') {
      throw new TypeError(`${this.typeName}: the epilogue must be an object { residual?, relu? }, got ${String(epilogue)}`);
    }
    this.checkInput(x);
    if (x.shape[1] !== this.numFeatures) {
      throw new Error(`${this.typeName}: input ${formatShape(x.shape)} has ${x.shape[1]} channels, expected ${this.numFeatures}`);
    }
    let factor = this.momentum ?? 0;
    const counter = this.numBatchesTracked;
    if (this.training && this.trackRunningStats && counter) {
      const count = this.countBatch(counter);
      if (this.momentum === null) factor = 1 / count;
    }
    const useRunning = !this.training || this.trackRunningStats;
    const runningMean = useRunning ? this.runningMean : null;
    const runningVar = useRunning ? this.runningVar : null;
    const training = this.training || runningMean === null || runningVar === null;
    return F.batchNorm(x, runningMean, runningVar, this.weight, this.bias, {
      training, momentum: factor, eps: this.eps, residual: epilogue.residual ?? null, relu: epilogue.relu ?? false,
    });
  }

  override extraRepr(): string {
    return `${this.numFeatures}, eps=${this.eps}, momentum=${this.momentum === null ? 'None' : this.momentum}, ` +
      `affine=${this.affine ? 'True' : 'False'}, track_running_stats=${this.trackRunningStats ? 'True' : 'False'}`;
  }
}

/** BatchNorm2d(channels, { eps, momentum, affine, trackRunningStats }) over [N, C, H, W]. */
export class BatchNorm2d extends BatchNormBase {
  constructor(numFeatures: number, options: BatchNormOptions = {}) {
    super(numFeatures, options, 'BatchNorm2d');
  }

  protected override checkInput(x: Tensor): void {
    if (x.shape.length !== 4) throw new Error(`BatchNorm2d: expected 4-D input [N, C, H, W], got shape ${formatShape(x.shape)}`);
  }
}

/** BatchNorm1d(features, { eps, momentum, affine, trackRunningStats }) over [N, C] or [N, C, L]. */
export class BatchNorm1d extends BatchNormBase {
  constructor(numFeatures: number, options: BatchNormOptions = {}) {
    super(numFeatures, options, 'BatchNorm1d');
  }

  protected override checkInput(x: Tensor): void {
    if (x.shape.length !== 2 && x.shape.length !== 3) {
      throw new Error(`BatchNorm1d: expected 2-D [N, C] or 3-D [N, C, L] input, got shape ${formatShape(x.shape)}`);
    }
  }
}
