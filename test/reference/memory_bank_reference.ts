// Float64 references for the memory-bank contrast ops (test-only, plain loops), written the way
// the PyTorch reference does it (MCL/losses/imagenet_sup_mcl_loss.py): an explicit gather of the
// bank rows into a [B, K, D] copy, then a batched product with the queries. Inputs are the float32
// values the tensors hold; every result is in double precision.

export interface MemoryProblem {
  query: ArrayLike<number>; // [B, D]
  bank: ArrayLike<number>; // [M, D]
  indices: ArrayLike<number>; // [B·K]
  batch: number;
  dim: number;
  temperature: number;
}

/** The gathered copy bank[indices] as [B·K, D] (torch.index_select(bank, 0, idx.view(-1))). */
export function referenceGather(bank: ArrayLike<number>, indices: ArrayLike<number>, dim: number): Float64Array {
  const gathered = new Float64Array(indices.length * dim);
  for (let e = 0; e < indices.length; e += 1) {
    for (let d = 0; d < dim; d += 1) gathered[e * dim + d] = bank[indices[e]! * dim + d]!;
  }
  return gathered;
}

/** logits[u, k] = Σ_d gathered[u, k, d] · query[u, d] / τ (torch.bmm(weight, query.unsqueeze(2)) / τ). */
export function referenceMemoryLogits(problem: MemoryProblem): Float64Array {
  const { query, bank, indices, batch, dim, temperature } = problem;
  const columns = indices.length / batch;
  const gathered = referenceGather(bank, indices, dim);
  const logits = new Float64Array(batch * columns);
  for (let u = 0; u < batch; u += 1) {
    for (let k = 0; k < columns; k += 1) {
      let dot = 0;
      for (let d = 0; d < dim; d += 1) dot += gathered[(u * columns + k) * dim + d]! * query[u * dim + d]!;
      logits[u * columns + k] = dot / temperature;
    }
  }
  return logits;
}

/** d⟨logits, g⟩ / d query[u] = Σ_k g[u, k] · gathered[u, k] / τ. */
export function referenceMemoryLogitsQueryGradient(problem: MemoryProblem, grad: ArrayLike<number>): Float64Array {
  const { bank, indices, batch, dim, temperature } = problem;
  const columns = indices.length / batch;
  const gathered = referenceGather(bank, indices, dim);
  const out = new Float64Array(batch * dim);
  for (let u = 0; u < batch; u += 1) {
    for (let k = 0; k < columns; k += 1) {
      const g = grad[u * columns + k]!;
      for (let d = 0; d < dim; d += 1) out[u * dim + d]! += (g * gathered[(u * columns + k) * dim + d]!) / temperature;
    }
  }
  return out;
}

export interface InfoNceReference {
  loss: number;
  /** Per-row term_u = −mean_{k<P} log softmax(logits[u])_k. */
  rowTerms: Float64Array;
  gradQuery: Float64Array;
  gradWeights: Float64Array;
}

/**
 * loss = (1/B) Σ_u w_u · term_u and its gradients for the upstream gradient g:
 * d query[u] = Σ_k (w_u g / B)(p[u, k] − [k < P]/P) · gathered[u, k] / τ,  d w_u = term_u g / B.
 */
export function referenceMemoryInfoNce(problem: MemoryProblem, positives: number, weights: ArrayLike<number> | null, grad = 1): InfoNceReference {
  const { batch } = problem;
  const columns = problem.indices.length / batch;
  const logits = referenceMemoryLogits(problem);
  const rowTerms = new Float64Array(batch);
  const coefficients = new Float64Array(batch * columns);
  let loss = 0;
  for (let u = 0; u < batch; u += 1) {
    const row = logits.subarray(u * columns, (u + 1) * columns);
    let maximum = -Infinity;
    for (const value of row) maximum = Math.max(maximum, value);
    let total = 0;
    for (const value of row) total += Math.exp(value - maximum);
    const lse = maximum + Math.log(total);
    let positiveLogProbability = 0;
    for (let k = 0; k < positives; k += 1) positiveLogProbability += row[k]! - lse;
    rowTerms[u] = -positiveLogProbability / positives;
    const weight = weights ? weights[u]! : 1;
    loss += (weight * rowTerms[u]!) / batch;
    for (let k = 0; k < columns; k += 1) {
      const target = k < positives ? 1 / positives : 0;
      coefficients[u * columns + k] = ((weight * grad) / batch) * (Math.exp(row[k]! - lse) - target);
    }
  }
  const gradQuery = referenceMemoryLogitsQueryGradient(problem, coefficients);
  const gradWeights = rowTerms.map((term) => (term * grad) / batch);
  return { loss, rowTerms, gradQuery, gradWeights };
}

/** bank[r_i] ← v / ‖v‖₂, v = m · bank[r_i] + (1 − m) · z[i] (no epsilon); returns the new bank. */
export function referenceMemoryUpdate(bank: ArrayLike<number>, dim: number, rows: ArrayLike<number>, z: ArrayLike<number>, momentum: number): Float64Array {
  const out = Float64Array.from(bank);
  for (let i = 0; i < rows.length; i += 1) {
    const row = rows[i]!;
    const mixed = new Float64Array(dim);
    let squares = 0;
    for (let d = 0; d < dim; d += 1) {
      mixed[d] = momentum * bank[row * dim + d]! + (1 - momentum) * z[i * dim + d]!;
      squares += mixed[d]! * mixed[d]!;
    }
    const norm = Math.sqrt(squares);
    for (let d = 0; d < dim; d += 1) out[row * dim + d] = mixed[d]! / norm;
  }
  return out;
}
