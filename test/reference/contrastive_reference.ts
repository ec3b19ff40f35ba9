// Float64 references for the contrastive losses (test-only, plain loops, every formula written
// out as in method.md §0.1 / §2.2): supervised InfoNCE, contrastive KL, logit KD and the cohort
// terms, values and analytic gradients. Inputs are the float32 values the tensors hold.

export interface Matrix {
  values: ArrayLike<number>;
  rows: number;
  columns: number;
}

function dot(a: ArrayLike<number>, aRow: number, b: ArrayLike<number>, bRow: number, dim: number): number {
  let total = 0;
  for (let k = 0; k < dim; k += 1) total += a[aRow * dim + k]! * b[bRow * dim + k]!;
  return total;
}

/** L[u][v] = ⟨a_u, b_v⟩ · scale. */
function similarity(a: ArrayLike<number>, b: ArrayLike<number>, batch: number, dim: number, scale: number): number[][] {
  return Array.from({ length: batch }, (_, u) => Array.from({ length: batch }, (_, v) => dot(a, u, b, v, dim) * scale));
}

function logSumExp(values: readonly number[]): number {
  const m = Math.max(...values);
  let total = 0;
  for (const v of values) total += Math.exp(v - m);
  return m + Math.log(total);
}

/** ∂(Σ_uv G_uv·⟨a_u, b_v⟩·scale) to a and b. */
function backThroughSimilarity(gradL: number[][], a: ArrayLike<number>, b: ArrayLike<number>, batch: number, dim: number, scale: number): { gradA: Float64Array; gradB: Float64Array } {
  const gradA = new Float64Array(batch * dim);
  const gradB = new Float64Array(batch * dim);
  for (let u = 0; u < batch; u += 1) {
    for (let v = 0; v < batch; v += 1) {
      const g = gradL[u]![v]! * scale;
      if (g === 0) continue;
      for (let k = 0; k < dim; k += 1) {
        gradA[u * dim + k] += g * b[v * dim + k]!;
        gradB[v * dim + k] += g * a[u * dim + k]!;
      }
    }
  }
  return { gradA, gradB };
}

export interface InfoNCEReference {
  loss: number;
  gradAnchor: Float64Array;
  gradContrast: Float64Array;
  gradWeights: Float64Array;
}

/** ℓ(L, w) from logits L and its gradient ∂ℓ/∂L, ∂ℓ/∂w. */
export function referenceInfoNCEFromLogits(L: number[][], labels: ArrayLike<number>, weights: ArrayLike<number> | null): { loss: number; gradL: number[][]; gradWeights: Float64Array } {
  const batch = L.length;
  let rows = 0;
  for (let u = 0; u < batch; u += 1) {
    for (let v = 0; v < batch; v += 1) if (v !== u && labels[v] === labels[u]) { rows += 1; break; }
  }
  const gradL = L.map((row) => row.map(() => 0));
  const gradWeights = new Float64Array(batch);
  let total = 0;
  for (let u = 0; u < batch; u += 1) {
    const positives: number[] = [];
    const denominator: number[] = [];
    for (let v = 0; v < batch; v += 1) {
      if (v === u) continue;
      denominator.push(L[u]![v]!);
      if (labels[v] === labels[u]) positives.push(v);
    }
    if (positives.length === 0) continue;
    const lse = logSumExp(denominator);
    let positiveMean = 0;
    for (const v of positives) positiveMean += L[u]![v]! / positives.length;
    const term = lse - positiveMean;
    const w = weights ? weights[u]! : 1;
    total += w * term;
    gradWeights[u] = term / rows;
    for (let v = 0; v < batch; v += 1) {
      if (v === u) continue;
      const softmax = Math.exp(L[u]![v]! - lse);
      const positive = labels[v] === labels[u] ? 1 / positives.length : 0;
      gradL[u]![v] = (w / rows) * (softmax - positive);
    }
  }
  return { loss: rows > 0 ? total / rows : 0, gradL, gradWeights };
}

export function referenceSupConInfoNCE(anchor: ArrayLike<number>, contrast: ArrayLike<number>, labels: ArrayLike<number>,
  batch: number, dim: number, temperature: number, weights: ArrayLike<number> | null): InfoNCEReference {
  const L = similarity(anchor, contrast, batch, dim, 1 / temperature);
  const { loss, gradL, gradWeights } = referenceInfoNCEFromLogits(L, labels, weights);
  const { gradA, gradB } = backThroughSimilarity(gradL, anchor, contrast, batch, dim, 1 / temperature);
  return { loss, gradAnchor: gradA, gradContrast: gradB, gradWeights };
}

/** T²·Σ_u w_u KL(softmax(T_u/T) ‖ softmax(S_u/T))/B and its gradients to S and w. */
export function referenceKLFromLogits(S: number[][], teacher: number[][], temperature: number, weights: ArrayLike<number> | null): { loss: number; gradS: number[][]; gradWeights: Float64Array } {
  const batch = S.length;
  const gradS = S.map((row) => row.map(() => 0));
  const gradWeights = new Float64Array(batch);
  let total = 0;
  for (let u = 0; u < batch; u += 1) {
    const s = S[u]!.map((value) => value / temperature);
    const t = teacher[u]!.map((value) => value / temperature);
    const lseS = logSumExp(s);
    const lseT = logSumExp(t);
    let kl = 0;
    for (let v = 0; v < s.length; v += 1) {
      const q = Math.exp(t[v]! - lseT);
      kl += q * ((t[v]! - lseT) - (s[v]! - lseS));
    }
    const w = weights ? weights[u]! : 1;
    total += w * kl;
    gradWeights[u] = (temperature * temperature * kl) / batch;
    for (let v = 0; v < s.length; v += 1) {
      gradS[u]![v] = (w * temperature / batch) * (Math.exp(s[v]! - lseS) - Math.exp(t[v]! - lseT));
    }
  }
  return { loss: (temperature * temperature * total) / batch, gradS, gradWeights };
}

export function referenceContrastiveKL(studentAnchor: ArrayLike<number>, studentContrast: ArrayLike<number>,
  teacherAnchor: ArrayLike<number>, teacherContrast: ArrayLike<number>, batch: number, dim: number, temperature: number,
  klTemperature: number, weights: ArrayLike<number> | null): { loss: number; gradStudentAnchor: Float64Array; gradStudentContrast: Float64Array; gradWeights: Float64Array } {
  const S = similarity(studentAnchor, studentContrast, batch, dim, 1 / temperature);
  const T = similarity(teacherAnchor, teacherContrast, batch, dim, 1 / temperature);
  const { loss, gradS, gradWeights } = referenceKLFromLogits(S, T, klTemperature, weights);
  const { gradA, gradB } = backThroughSimilarity(gradS, studentAnchor, studentContrast, batch, dim, 1 / temperature);
  return { loss, gradStudentAnchor: gradA, gradStudentContrast: gradB, gradWeights };
}

export function referenceDistillKL(student: ArrayLike<number>, teacher: ArrayLike<number>, batch: number, classes: number,
  temperature: number, weights: ArrayLike<number> | null): { loss: number; gradStudent: Float64Array; gradWeights: Float64Array } {
  const rowsOf = (values: ArrayLike<number>): number[][] =>
    Array.from({ length: batch }, (_, u) => Array.from({ length: classes }, (_, c) => values[u * classes + c]!));
  const { loss, gradS, gradWeights } = referenceKLFromLogits(rowsOf(student), rowsOf(teacher), temperature, weights);
  return { loss, gradStudent: Float64Array.from(gradS.flat()), gradWeights };
}

/**
 * The cohort terms [P, 4] and the gradients of Σ grad[p, t]·out[p, t] to every embedding and the
 * weights, term by term from the one-pair formulas (teacher sides detached).
 */
export function referenceCohort(embeddings: ArrayLike<number>[], labels: ArrayLike<number>, pairs: [number, number][],
  batch: number, dim: number, temperature: number, klTemperature: number, weights: ArrayLike<number>[] | null,
  grad: ArrayLike<number>): { out: Float64Array; gradEmbeddings: Float64Array[]; gradWeights: Float64Array[] } {
  const out = new Float64Array(pairs.length * 4);
  const gradEmbeddings = embeddings.map(() => new Float64Array(batch * dim));
  const gradWeights = pairs.map(() => new Float64Array(batch));
  const scale = 1 / temperature;
  const addInto = (target: Float64Array, source: Float64Array, factor: number): void => {
    for (let k = 0; k < target.length; k += 1) target[k] += factor * source[k]!;
  };
  pairs.forEach(([a, b], p) => {
    const w = weights ? weights[p]! : null;
    const logits = (i: number, j: number): number[][] => similarity(embeddings[i]!, embeddings[j]!, batch, dim, scale);
    const info = (i: number, j: number, column: number): void => {
      const { loss, gradL, gradWeights: gw } = referenceInfoNCEFromLogits(logits(i, j), labels, w);
      out[4 * p + column] += loss;
      const g = grad[4 * p + column]!;
      const { gradA, gradB } = backThroughSimilarity(gradL, embeddings[i]!, embeddings[j]!, batch, dim, scale);
      addInto(gradEmbeddings[i]!, gradA, g);
      addInto(gradEmbeddings[j]!, gradB, g);
      addInto(gradWeights[p]!, gw, g);
    };
    const kl = (i: number, j: number, ti: number, tj: number, column: number): void => {
      const { loss, gradS, gradWeights: gw } = referenceKLFromLogits(logits(i, j), logits(ti, tj), klTemperature, w);
      out[4 * p + column] += loss;
      const g = grad[4 * p + column]!;
      const { gradA, gradB } = backThroughSimilarity(gradS, embeddings[i]!, embeddings[j]!, batch, dim, scale);
      addInto(gradEmbeddings[i]!, gradA, g);
      addInto(gradEmbeddings[j]!, gradB, g);
      addInto(gradWeights[p]!, gw, g);
    };
    info(a, a, 0);
    info(b, b, 0);
    info(a, b, 1);
    info(b, a, 1);
    kl(a, a, b, b, 2);
    kl(b, b, a, a, 2);
    kl(a, b, b, a, 3);
    kl(b, a, a, b, 3);
  });
  return { out, gradEmbeddings, gradWeights };
}
