// Float64 references for softmax, log-softmax and cross-entropy (test-only, plain loops).
// Inputs are the float32 values the tensors hold; every result is computed in double precision.

/** [outer, extent, inner] of a row-major shape around `dim` (dim already non-negative). */
export function viewAround(shape: readonly number[], dim: number): { outer: number; extent: number; inner: number } {
  let outer = 1;
  let inner = 1;
  for (let d = 0; d < dim; d += 1) outer *= shape[d]!;
  for (let d = dim + 1; d < shape.length; d += 1) inner *= shape[d]!;
  return { outer, extent: shape.length === 0 ? 1 : shape[dim]!, inner };
}

/** Calls fn(indices) for every slice along dim: indices[k] is the flat index of element k of the slice. */
export function forEachSlice(shape: readonly number[], dim: number, fn: (indices: number[], slice: number) => void): void {
  const { outer, extent, inner } = viewAround(shape, dim);
  for (let o = 0; o < outer; o += 1) {
    for (let i = 0; i < inner; i += 1) {
      const indices: number[] = [];
      for (let k = 0; k < extent; k += 1) indices.push((o * extent + k) * inner + i);
      fn(indices, o * inner + i);
    }
  }
}

function logSumExp(values: readonly number[]): number {
  const m = Math.max(...values);
  if (!Number.isFinite(m)) return Number.NaN;
  let total = 0;
  for (const v of values) total += Math.exp(v - m);
  return m + Math.log(total);
}

/** softmax (or log-softmax) of x along dim. */
export function referenceSoftmax(x: ArrayLike<number>, shape: readonly number[], dim: number, log = false): Float64Array {
  const out = new Float64Array(x.length);
  forEachSlice(shape, dim, (indices) => {
    const values = indices.map((index) => x[index]!);
    const lse = logSumExp(values);
    indices.forEach((index, k) => {
      out[index] = log ? values[k]! - lse : Math.exp(values[k]! - lse);
    });
  });
  return out;
}

/** dL/dx for L = Σ g ⊙ softmax(x) (log: Σ g ⊙ logSoftmax(x)), along dim. */
export function referenceSoftmaxBackward(x: ArrayLike<number>, g: ArrayLike<number>, shape: readonly number[], dim: number, log = false): Float64Array {
  const p = referenceSoftmax(x, shape, dim, false);
  const out = new Float64Array(x.length);
  forEachSlice(shape, dim, (indices) => {
    if (log) {
      const total = indices.reduce((s, index) => s + g[index]!, 0);
      for (const index of indices) out[index] = g[index]! - p[index]! * total;
    } else {
      const dot = indices.reduce((s, index) => s + g[index]! * p[index]!, 0);
      for (const index of indices) out[index] = p[index]! * (g[index]! - dot);
    }
  });
  return out;
}

/** Per-row losses logsumexp(x_i) − x_{i, label_i} of logits [batch, classes]. */
export function referenceCrossEntropyRows(logits: ArrayLike<number>, batch: number, classes: number, labels: ArrayLike<number>): Float64Array {
  const losses = new Float64Array(batch);
  for (let row = 0; row < batch; row += 1) {
    const values = Array.from({ length: classes }, (_, j) => logits[row * classes + j]!);
    losses[row] = logSumExp(values) - values[labels[row]!]!;
  }
  return losses;
}

export type Reduction = 'mean' | 'sum' | 'none';

export function referenceCrossEntropy(logits: ArrayLike<number>, batch: number, classes: number, labels: ArrayLike<number>, reduction: Reduction): Float64Array {
  const losses = referenceCrossEntropyRows(logits, batch, classes, labels);
  if (reduction === 'none') return losses;
  const total = losses.reduce((s, v) => s + v, 0);
  return Float64Array.of(reduction === 'mean' ? total / batch : total);
}

/** d/dlogits of Σ g ⊙ crossEntropy(logits) (g: one value for mean/sum, batch values for none). */
export function referenceCrossEntropyBackward(logits: ArrayLike<number>, batch: number, classes: number, labels: ArrayLike<number>,
  reduction: Reduction, g: ArrayLike<number>): Float64Array {
  const p = referenceSoftmax(logits, [batch, classes], 1);
  const out = new Float64Array(batch * classes);
  for (let row = 0; row < batch; row += 1) {
    const c = reduction === 'none' ? g[row]! : reduction === 'mean' ? g[0]! / batch : g[0]!;
    for (let j = 0; j < classes; j += 1) {
      out[row * classes + j] = (p[row * classes + j]! - (j === labels[row] ? 1 : 0)) * c;
    }
  }
  return out;
}

/** Hessian-vector product of the mean cross-entropy: (1/B) (diag(p_i) − p_i p_iᵀ) v_i per row. */
export function referenceCrossEntropyHvp(logits: ArrayLike<number>, batch: number, classes: number, v: ArrayLike<number>): Float64Array {
  const p = referenceSoftmax(logits, [batch, classes], 1);
  const out = new Float64Array(batch * classes);
  for (let row = 0; row < batch; row += 1) {
    let dot = 0;
    for (let j = 0; j < classes; j += 1) dot += p[row * classes + j]! * v[row * classes + j]!;
    for (let j = 0; j < classes; j += 1) {
      const k = row * classes + j;
      out[k] = (p[k]! * v[k]! - p[k]! * dot) / batch;
    }
  }
  return out;
}
