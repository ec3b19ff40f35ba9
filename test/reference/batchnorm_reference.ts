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

export interface DoubleBackwardReference {
  /** Into the incoming gradient g (dy). */
  gradGradOut: Float64Array;
  gradX: Float64Array;
  /** Into the weight γ. */
  gradWeight: Float64Array;
}

export interface DoubleBackwardInputs {
  g: ArrayLike<number>;
  x: ArrayLike<number>;
  shape: readonly number[];
  weight: ArrayLike<number> | null;
  /** The upstream gradient of dx (null: 0). */
  upstreamInput: ArrayLike<number> | null;
  /** The upstream gradient of dγ, per channel (null: 0). */
  upstreamWeight: ArrayLike<number> | null;
  eps: number;
}

/**
 * Training-mode double backward from the closed form (the formulas of native/include/lmcl/batchnorm.h,
 * in float64, per element): gradients of L = Σ u·dx + Σ_c γ̄_c·dγ_c with respect to g, x and γ, where
 * dx = γ·s·(g − ⟨g⟩ − x̂·⟨g·x̂⟩), dγ = Σ g·x̂ and the statistics come from x. Checked against
 * referenceBatchNormDoubleBackwardByDifferences on small shapes.
 */
export function referenceBatchNormDoubleBackward(inputs: DoubleBackwardInputs): DoubleBackwardReference {
  const { g, x, shape, weight, upstreamInput: u, upstreamWeight, eps } = inputs;
  const { batch, channels, spatial } = layout(shape);
  const M = batch * spatial;
  const at = (n: number, c: number, s: number) => (n * channels + c) * spatial + s;
  const size = batch * channels * spatial;
  const gradGradOut = new Float64Array(size);
  const gradX = new Float64Array(size);
  const gradWeight = new Float64Array(channels);
  for (let c = 0; c < channels; c += 1) {
    const indices: number[] = [];
    for (let n = 0; n < batch; n += 1) for (let s = 0; s < spatial; s += 1) indices.push(at(n, c, s));
    const mean = indices.reduce((sum, i) => sum + x[i]!, 0) / M;
    const variance = indices.reduce((sum, i) => sum + (x[i]! - mean) ** 2, 0) / M;
    const invstd = 1 / Math.sqrt(variance + eps);
    const xHat = (i: number) => (x[i]! - mean) * invstd;
    const uAt = (i: number) => (u ? u[i]! : 0);
    const gamma = weight ? weight[c]! : 1;
    const gammaBar = upstreamWeight ? upstreamWeight[c]! : 0;
    const meanOf = (f: (i: number) => number) => indices.reduce((sum, i) => sum + f(i), 0) / M;
    const project = (h: (i: number) => number) => {
      const meanH = meanOf(h);
      const meanHXHat = meanOf((i) => h(i) * xHat(i));
      return (i: number) => invstd * (h(i) - meanH - xHat(i) * meanHXHat);
    };
    const meanGXHat = meanOf((i) => g[i]! * xHat(i));
    const meanUXHat = meanOf((i) => uAt(i) * xHat(i));
    const bracket = M * (meanOf((i) => uAt(i) * g[i]!) - meanOf((i) => g[i]!) * meanOf(uAt) - meanGXHat * meanUXHat);
    gradWeight[c] = invstd * bracket;
    const projectedU = project(uAt);
    const projectedH = project((i) => gammaBar * g[i]! - gamma * invstd * (meanUXHat * g[i]! + meanGXHat * uAt(i)));
    for (const i of indices) {
      gradGradOut[i] = gamma * projectedU(i) + gammaBar * xHat(i);
      gradX[i] = projectedH(i) - (gamma * bracket * invstd * invstd / M) * xHat(i);
    }
  }
  return { gradGradOut, gradX, gradWeight };
}

/**
 * The same gradients by central finite differences of L in float64 (no derivation involved):
 * O(size·M) evaluations, for small shapes only.
 */
export function referenceBatchNormDoubleBackwardByDifferences(inputs: DoubleBackwardInputs): DoubleBackwardReference {
  const { shape, upstreamInput: u, upstreamWeight, eps } = inputs;
  const { batch, channels, spatial } = layout(shape);
  const M = batch * spatial;
  const at = (n: number, c: number, s: number) => (n * channels + c) * spatial + s;
  const g = Float64Array.from(inputs.g);
  const x = Float64Array.from(inputs.x);
  const weight = Float64Array.from(inputs.weight ?? new Array<number>(channels).fill(1));
  // L restricted to channel c (the other channels do not depend on its inputs).
  const objective = (c: number): number => {
    let mean = 0;
    for (let n = 0; n < batch; n += 1) for (let s = 0; s < spatial; s += 1) mean += x[at(n, c, s)]!;
    mean /= M;
    let variance = 0;
    for (let n = 0; n < batch; n += 1) for (let s = 0; s < spatial; s += 1) variance += (x[at(n, c, s)]! - mean) ** 2;
    const invstd = 1 / Math.sqrt(variance / M + eps);
    let sumG = 0;
    let sumGXHat = 0;
    for (let n = 0; n < batch; n += 1) {
      for (let s = 0; s < spatial; s += 1) {
        const i = at(n, c, s);
        sumG += g[i]!;
        sumGXHat += g[i]! * (x[i]! - mean) * invstd;
      }
    }
    let total = (upstreamWeight ? upstreamWeight[c]! : 0) * sumGXHat;
    if (u) {
      for (let n = 0; n < batch; n += 1) {
        for (let s = 0; s < spatial; s += 1) {
          const i = at(n, c, s);
          const xHat = (x[i]! - mean) * invstd;
          total += u[i]! * weight[c]! * invstd * (g[i]! - sumG / M - xHat * sumGXHat / M);
        }
      }
    }
    return total;
  };
  const derivative = (values: Float64Array, index: number, c: number): number => {
    const original = values[index]!;
    const h = 1e-4 * (1 + Math.abs(original));
    values[index] = original + h;
    const plus = objective(c);
    values[index] = original - h;
    const minus = objective(c);
    values[index] = original;
    return (plus - minus) / (2 * h);
  };
  const size = batch * channels * spatial;
  const gradGradOut = new Float64Array(size);
  const gradX = new Float64Array(size);
  const gradWeight = new Float64Array(channels);
  for (let c = 0; c < channels; c += 1) {
    for (let n = 0; n < batch; n += 1) {
      for (let s = 0; s < spatial; s += 1) {
        const i = at(n, c, s);
        gradGradOut[i] = derivative(g, i, c);
        gradX[i] = derivative(x, i, c);
      }
    }
    gradWeight[c] = derivative(weight, c, c);
  }
  return { gradGradOut, gradX, gradWeight };
}
