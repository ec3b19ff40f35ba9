// Float64 reference GEMM (test-only): C = alpha * op(A) * op(B) + beta * C, row-major, dense
// leading dimensions (lda = transposeA ? m : k, ldb = transposeB ? k : n, ldc = n).
// beta == 0 ignores C (so NaN in C does not propagate), matching the native contract.
export function gemmReference(
  a: Float32Array, b: Float32Array, c: Float32Array,
  transposeA: boolean, transposeB: boolean, m: number, n: number, k: number, alpha: number, beta: number,
): Float64Array {
  const out = new Float64Array(m * n);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let sum = 0;
      for (let p = 0; p < k; p++) {
        const av = transposeA ? a[p * m + i] : a[i * k + p];
        const bv = transposeB ? b[j * k + p] : b[p * n + j];
        sum += av * bv;
      }
      out[i * n + j] = alpha * sum + (beta === 0 ? 0 : beta * c[i * n + j]);
    }
  }
  return out;
}
