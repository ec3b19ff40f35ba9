// Slow, obviously-correct float64 references for batch normalisation (torch.nn.functional
// .batch_norm semantics). Layout [N, C, S] with S the product of the spatial extents.

export interface BatchNormForwardReference {
  y: Float64Array;
  /** The statistics used: batch (training) or running (eval). */
  mean: Float64Array;
  invstd: Float64Array;
  /** Batch variances (training only): biased (used to normalise) and unbiased (running update). */
  biasedVar: Float64Array;
  unbiasedVar: Float64Array;
}

function layout(shape: readonly number[]): { batch: number; channels: number; spatial: number } {
  return { batch: shape[0]!, channels: shape[1]!, spatial: shape.slice(2).reduce((p, e) => p * e, 1) };
}

export function referenceBatchNorm(
  x: ArrayLike<number>,
  shape: readonly number[],
  weight: ArrayLike<number> | null,
  bias: ArrayLike<number> | null,
  options: { training: boolean; eps: number; runningMean?: ArrayLike<number>; runningVar?: ArrayLike<number> },
): BatchNormForwardReference {
  const { batch, channels, spatial } = layout(shape);
  const count = batch * spatial;
  const mean = new Float64Array(channels);
  const invstd = new Float64Array(channels);
  const biasedVar = new Float64Array(channels);
  const unbiasedVar = new Float64Array(channels);
  const at = (n: number, c: number, s: number) => (n * channels + c) * spatial + s;
  for (let c = 0; c < channels; c += 1) {
    if (options.training) {
      let sum = 0;
      for (let n = 0; n < batch; n += 1) for (let s = 0; s < spatial; s += 1) sum += x[at(n, c, s)]!;
      const mu = sum / count;
      let squares = 0;
      for (let n = 0; n < batch; n += 1) for (let s = 0; s < spatial; s += 1) squares += (x[at(n, c, s)]! - mu) ** 2;
      mean[c] = mu;
      biasedVar[c] = squares / count;
      unbiasedVar[c] = squares / (count - 1);
      invstd[c] = 1 / Math.sqrt(biasedVar[c]! + options.eps);
    } else {
      mean[c] = options.runningMean![c]!;
      invstd[c] = 1 / Math.sqrt(options.runningVar![c]! + options.eps);
    }
  }
  const y = new Float64Array(batch * channels * spatial);
  for (let n = 0; n < batch; n += 1) {
    for (let c = 0; c < channels; c += 1) {
      const gamma = weight ? weight[c]! : 1;
      const beta = bias ? bias[c]! : 0;
      for (let s = 0; s < spatial; s += 1) {
        const i = at(n, c, s);
        y[i] = (x[i]! - mean[c]!) * invstd[c]! * gamma + beta;
      }
    }
  }
  return { y, mean, invstd, biasedVar, unbiasedVar };
}

/** running ← (1 − momentum)·running + momentum·statistic. */
export function referenceRunningUpdate(running: ArrayLike<number>, statistic: ArrayLike<number>, momentum: number): Float64Array {
  return Float64Array.from(running, (value, c) => (1 - momentum) * value + momentum * statistic[c]!);
}

/**
 * Gradients of Σ y·dy with respect to x, weight and bias. training: the statistics depend on x;
 * eval: mean/invstd are constants. mean/invstd are the ones referenceBatchNorm returned.
 */
export function referenceBatchNormBackward(
  dy: ArrayLike<number>,
  x: ArrayLike<number>,
  shape: readonly number[],
  weight: ArrayLike<number> | null,
  mean: ArrayLike<number>,
  invstd: ArrayLike<number>,
  training: boolean,
): { dx: Float64Array; dweight: Float64Array; dbias: Float64Array } {
  const { batch, channels, spatial } = layout(shape);
  const count = batch * spatial;
  const at = (n: number, c: number, s: number) => (n * channels + c) * spatial + s;
  const dx = new Float64Array(batch * channels * spatial);
  const dweight = new Float64Array(channels);
  const dbias = new Float64Array(channels);
  for (let c = 0; c < channels; c += 1) {
    let sumDy = 0;
    let sumDyXHat = 0;
    for (let n = 0; n < batch; n += 1) {
      for (let s = 0; s < spatial; s += 1) {
        const i = at(n, c, s);
        sumDy += dy[i]!;
        sumDyXHat += dy[i]! * (x[i]! - mean[c]!) * invstd[c]!;
      }
    }
    dbias[c] = sumDy;
    dweight[c] = sumDyXHat;
    const gamma = weight ? weight[c]! : 1;
    for (let n = 0; n < batch; n += 1) {
      for (let s = 0; s < spatial; s += 1) {
        const i = at(n, c, s);
        const xHat = (x[i]! - mean[c]!) * invstd[c]!;
        dx[i] = training
          ? gamma * invstd[c]! * (dy[i]! - sumDy / count - xHat * sumDyXHat / count)
          : gamma * invstd[c]! * dy[i]!;
      }
    }
  }
  return { dx, dweight, dbias };
}
