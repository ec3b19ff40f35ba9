// Float64 references for L2 normalisation and cosine similarity (test-only, plain loops).
// normalize follows torch.nn.functional.normalize (p = 2) with its exact derivative;
// cosine similarity follows PyTorch 1.13: norms clamped separately, the clamp not differentiated.
import { forEachSlice } from './softmax_reference.js';

/** y = x / max(‖x‖, eps) along dim; also the unclamped norms (one per slice). */
export function referenceNormalize(x: ArrayLike<number>, shape: readonly number[], dim: number, eps: number): { y: Float64Array; norms: Float64Array } {
  const y = new Float64Array(x.length);
  const norms: number[] = [];
  forEachSlice(shape, dim, (indices, slice) => {
    const norm = Math.sqrt(indices.reduce((s, index) => s + x[index]! * x[index]!, 0));
    norms[slice] = norm;
    const d = Math.max(norm, eps);
    for (const index of indices) y[index] = x[index]! / d;
  });
  return { y, norms: Float64Array.from(norms) };
}

/** d/dx of Σ g ⊙ normalize(x): (g − [n ≥ eps] y Σ g⊙y) / max(n, eps). */
export function referenceNormalizeBackward(x: ArrayLike<number>, g: ArrayLike<number>, shape: readonly number[], dim: number, eps: number): Float64Array {
  const { y, norms } = referenceNormalize(x, shape, dim, eps);
  const out = new Float64Array(x.length);
  forEachSlice(shape, dim, (indices, slice) => {
    const norm = norms[slice]!;
    const dot = norm >= eps ? indices.reduce((s, index) => s + g[index]! * y[index]!, 0) : 0;
    const d = Math.max(norm, eps);
    for (const index of indices) out[index] = (g[index]! - y[index]! * dot) / d;
  });
  return out;
}

/** Σ (a / max(‖a‖, eps)) ⊙ (b / max(‖b‖, eps)) along dim (a, b of the same shape). */
export function referenceCosine(a: ArrayLike<number>, b: ArrayLike<number>, shape: readonly number[], dim: number, eps: number): Float64Array {
  const out: number[] = [];
  forEachSlice(shape, dim, (indices, slice) => {
    const na = Math.max(Math.sqrt(indices.reduce((s, k) => s + a[k]! * a[k]!, 0)), eps);
    const nb = Math.max(Math.sqrt(indices.reduce((s, k) => s + b[k]! * b[k]!, 0)), eps);
    out[slice] = indices.reduce((s, k) => s + (a[k]! / na) * (b[k]! / nb), 0);
  });
  return Float64Array.from(out);
}

/** Torch 1.13's gradient of Σ g ⊙ cosine(a, b): ga = g/n_a (b/n_b − out a/n_a), gb symmetric. */
export function referenceCosineBackward(a: ArrayLike<number>, b: ArrayLike<number>, g: ArrayLike<number>, shape: readonly number[], dim: number, eps: number): { ga: Float64Array; gb: Float64Array } {
  const ga = new Float64Array(a.length);
  const gb = new Float64Array(b.length);
  const out = referenceCosine(a, b, shape, dim, eps);
  forEachSlice(shape, dim, (indices, slice) => {
    const na = Math.max(Math.sqrt(indices.reduce((s, k) => s + a[k]! * a[k]!, 0)), eps);
    const nb = Math.max(Math.sqrt(indices.reduce((s, k) => s + b[k]! * b[k]!, 0)), eps);
    const o = out[slice]!;
    const gs = g[slice]!;
    for (const k of indices) {
      ga[k] = (gs / na) * (b[k]! / nb - o * (a[k]! / na));
      gb[k] = (gs / nb) * (a[k]! / na - o * (b[k]! / nb));
    }
  });
  return { ga, gb };
}
