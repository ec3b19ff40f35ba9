// Typed surface of what the native addon exports. One section per binding file
// (native/binding/<stem>.cpp). Storage handles are opaque objects owned by src/tensor/storage.ts.
//
// Conventions for op entry points: inputs first, then the preallocated output storages, then
// shape/parameter arguments. Kernels overwrite their outputs (no accumulation) unless the
// entry's comment says otherwise. Every entry checks its arguments and throws an Error naming
// the op on bad input.

/** Opaque handle to a block of device memory (class NativeStorage in native/binding/args.h). */
export interface NativeStorage {
  readonly __nativeStorageBrand: unique symbol;
}

export type NativeDevice = 'cpu' | 'cuda';

export interface NativeMemoryStats {
  cpuLiveBytes: number;
  cpuLiveBlocks: number;
  cpuCachedBytes: number;
  cpuPeakLiveBytes: number;
  cudaLiveBytes: number;
  /** Freed device blocks the CUDA caching allocator keeps for reuse. */
  cudaCachedBytes: number;
  /** High-water mark of cudaLiveBytes since the last resetMemoryPeak. */
  cudaPeakLiveBytes: number;
  /** Native storage handle objects alive (a freed storage's handle is deleted at free()). */
  nativeHandles: number;
}

export interface NativeEngineInfo {
  simd: 'avx512' | 'avx2' | 'portable';
  threads: number;
  cudaCompiled: boolean;
  cudaDevices: number;
  cudaStatus: string;
  /** The CUDA GEMM's float32 precision: 'highest' (FP32) or 'high' (TF32 tensor cores). */
  matmulPrecision: Float32MatmulPrecision;
}

/** torch.set_float32_matmul_precision's names; 'medium' (BF16) is not implemented. */
export type Float32MatmulPrecision = 'highest' | 'high';

/** One measurement of the FP32 FMA peak (native/include/lmcl/peak.h). */
export interface NativeFmaPeak {
  /** threads · chains · lanes · 2 · iterations / seconds / 1e9. */
  gflops: number;
  seconds: number;
  iterations: number;
  threads: number;
  lanes: number;
  chains: number;
  simd: 'avx512' | 'avx2' | 'portable';
}

export interface NativeAddon {
  // ---- storage (native/binding/storage.cpp) ----
  alloc(device: NativeDevice, bytes: number): NativeStorage;
  /** An index storage: a read-only copy of `values` (int32) on `device`; ops take it for labels,
   *  gather indices and bank indices / rows. Float readers and writers refuse it. */
  allocIndices(device: NativeDevice, values: Int32Array): NativeStorage;
  /** A copy of an index storage's values, from its host side (no device read). */
  indexValues(storage: NativeStorage): Int32Array;
  /** An index storage's value count (no copy). */
  indexLength(storage: NativeStorage): number;
  free(storage: NativeStorage): void;
  upload(storage: NativeStorage, source: Float32Array | Int32Array, byteOffset: number): void;
  download(storage: NativeStorage, byteOffset: number, count: number): Float32Array;
  /** The values as of this call, without blocking the event loop: a device copy is queued now and
   *  waited for on a worker thread (the block may be overwritten or freed right after the call). */
  downloadAsync(storage: NativeStorage, byteOffset: number, count: number): Promise<Float32Array>;
  fill(storage: NativeStorage, value: number, count: number): void;
  copy(destination: NativeStorage, source: NativeStorage, bytes: number): void;
  memoryStats(): NativeMemoryStats;
  emptyCache(): void;
  /** Sets the CPU allocator's peak live bytes to the bytes live now. */
  resetMemoryPeak(): void;
  info(): NativeEngineInfo;
  setNumThreads(count: number): void;
  /** The CUDA GEMM's float32 precision, process-wide (native/include/lmcl/matmul_precision.h). */
  setMatmulPrecision(precision: string): void;

  // ---- peak (native/binding/peak.cpp) ----
  /** Runs `threads` (1..info().threads) concurrent FMA loops at the build's widest SIMD level, best of
   *  3 repeats of at least minSeconds each (0 < minSeconds <= 10). Formula in native/src/cpu/peak.cpp. */
  measureFmaPeak(threads: number, minSeconds: number): NativeFmaPeak;

  // ---- gemm (native/binding/gemm.cpp) ----
  /** C = alpha*op(A)*op(B) + beta*C, row-major dense (lda = tA ? m : k, ldb = tB ? k : n, ldc = n).
   *  beta = 0 ignores C's contents. */
  gemm(a: NativeStorage, b: NativeStorage, c: NativeStorage, transposeA: boolean, transposeB: boolean,
    m: number, n: number, k: number, alpha: number, beta: number): void;

  // ---- conv2d (native/binding/conv2d.cpp) ----
  // params = [batch, inChannels, inHeight, inWidth, outChannels, kernelHeight, kernelWidth,
  //           strideHeight, strideWidth, paddingHeight, paddingWidth, groups]; NCHW, weight
  // [outChannels, inChannels/groups, kh, kw]. All four overwrite their output.
  conv2dForward(input: NativeStorage, weight: NativeStorage, bias: NativeStorage | null, output: NativeStorage,
    params: number[]): void;
  conv2dBackwardInput(gradOutput: NativeStorage, weight: NativeStorage, gradInput: NativeStorage, params: number[]): void;
  conv2dBackwardWeight(input: NativeStorage, gradOutput: NativeStorage, gradWeight: NativeStorage, params: number[]): void;
  conv2dBackwardBias(gradOutput: NativeStorage, gradBias: NativeStorage, params: number[]): void;
}

// The op sections below are merged into NativeAddon by interface declaration merging.
export interface NativeAddon {
  // ---- elementwise (native/binding/elementwise.cpp) ----
  /** op: 0 add, 1 sub, 2 mul, 3 div, 4 maximum, 5 minimum. Strides in elements, 0 = broadcast. */
  binary(op: number, a: NativeStorage, b: NativeStorage, out: NativeStorage, outShape: number[], aStrides: number[], bStrides: number[]): void;
  /** op: see UnaryOp in native/include/lmcl/elementwise.h. */
  unary(op: number, x: NativeStorage, out: NativeStorage, count: number): void;
  affine(x: NativeStorage, out: NativeStorage, count: number, scale: number, shift: number): void;
  power(x: NativeStorage, out: NativeStorage, count: number, exponent: number): void;
  reluMask(grad: NativeStorage, mask: NativeStorage, out: NativeStorage, count: number): void;
  countNonFinite(x: NativeStorage, count: number): number;

  // ---- reduce (native/binding/reduce.cpp) ----
  sumAxes(x: NativeStorage, out: NativeStorage, shape: number[], axes: number[]): void;
}

export interface NativeAddon {
  // ---- layout (native/binding/layout.cpp) ----
  /** For every index i of the box `shape` (rank <= 8; strides in elements, >= 0):
   *  dst[dstOffset + Σ i_d·dstStrides[d]] = src[srcOffset + Σ i_d·srcStrides[d]].
   *  Serves permute, concat, slice and slice-backward. src and dst must be different storages. */
  stridedCopy(src: NativeStorage, srcOffset: number, srcStrides: number[], dst: NativeStorage, dstOffset: number,
    dstStrides: number[], shape: number[]): void;
  // Index operands (labels, indices, rows) are index storages (allocIndices); their length is
  // the value count they were made with.
  /** x [outer, n, inner] → out [outer, indices.length, inner]: out[o, j] = x[o, indices[j]]. */
  indexSelect(x: NativeStorage, out: NativeStorage, outer: number, n: number, inner: number, indices: NativeStorage): void;
  /** grad [outer, indices.length, inner] → out [outer, n, inner] (overwritten):
   *  out[o, r] = Σ_{j: indices[j] = r} grad[o, j], summed in increasing j (deterministic). */
  indexAdd(grad: NativeStorage, out: NativeStorage, outer: number, n: number, inner: number, indices: NativeStorage): void;

  // ---- sgd (native/binding/sgd.cpp) ----
  /** In place, PyTorch 1.13 SGD: d = ±g + wd·p; b = firstStep ? d : momentum·b + (1−dampening)·d;
   *  d = nesterov ? d + momentum·b : b (momentum ≠ 0 only; buffer may be null otherwise); p −= lr·d. */
  sgdStep(param: NativeStorage, grad: NativeStorage, buffer: NativeStorage | null, count: number, lr: number,
    momentum: number, dampening: number, weightDecay: number, nesterov: boolean, maximize: boolean, firstStep: boolean): void;
}

export interface NativeAddon {
  // ---- batchnorm (native/binding/batchnorm.cpp) ----
  // shape = [N, C, S] (S = product of the spatial extents, 1 for [N, C]); x, y, gradOut and
  // gradInput hold N·C·S floats, every per-channel storage C floats. All overwrite their outputs.
  // Optional epilogue (residual, relu): y = relu?(bn(x) + residual?) in the same pass; its backward
  // masks gradOut by output > 0 (output = that y) and writes the masked gradient to gradResidual.
  /** Batch statistics: writes y, saveMean (μ) and saveInvstd (1/sqrt(σ²+eps), biased σ²) and, when
   *  given, updates runningMean/runningVar in place (momentum; unbiased σ² for runningVar). */
  batchNormForwardTraining(x: NativeStorage, weight: NativeStorage | null, bias: NativeStorage | null,
    runningMean: NativeStorage | null, runningVar: NativeStorage | null, y: NativeStorage, saveMean: NativeStorage,
    saveInvstd: NativeStorage, shape: number[], momentum: number, eps: number, residual?: NativeStorage | null,
    relu?: boolean): void;
  /** Running statistics: writes y, and saveMean = runningMean, saveInvstd = 1/sqrt(runningVar + eps). */
  batchNormForwardEval(x: NativeStorage, weight: NativeStorage | null, bias: NativeStorage | null,
    runningMean: NativeStorage, runningVar: NativeStorage, y: NativeStorage, saveMean: NativeStorage,
    saveInvstd: NativeStorage, shape: number[], eps: number, residual?: NativeStorage | null, relu?: boolean): void;
  /** Fused backward; null outputs are skipped. training = false treats the statistics as constants. */
  batchNormBackward(gradOut: NativeStorage, x: NativeStorage, weight: NativeStorage | null, saveMean: NativeStorage,
    saveInvstd: NativeStorage, gradInput: NativeStorage | null, gradWeight: NativeStorage | null,
    gradBias: NativeStorage | null, shape: number[], training: boolean, output?: NativeStorage | null,
    gradResidual?: NativeStorage | null): void;
  /** Training-mode double backward (lmcl/batchnorm.h): the gradients of dx (upstream upstreamInput)
   *  and dγ (upstreamWeight) with respect to gradOut, x and weight; null inputs count as 0, null
   *  outputs are skipped. */
  batchNormDoubleBackward(gradOut: NativeStorage, x: NativeStorage, weight: NativeStorage | null, saveMean: NativeStorage,
    saveInvstd: NativeStorage, upstreamInput: NativeStorage | null, upstreamWeight: NativeStorage | null,
    gradGradOut: NativeStorage | null, gradX: NativeStorage | null, gradWeight: NativeStorage | null, shape: number[]): void;

  // ---- pool (native/binding/pool.cpp) ----
  // params = [planes, inH, inW, kernelH, kernelW, strideH, strideW, padH, padW] (planes = N·C);
  // adaptive params = [planes, inH, inW, outH, outW]. indices: int32 argmax (h·inW + w) stored in
  // a native block of 4 bytes per output element. Backward kernels overwrite gradIn.
  avgPool2dForward(x: NativeStorage, out: NativeStorage, params: number[]): void;
  avgPool2dBackward(gradOut: NativeStorage, gradIn: NativeStorage, params: number[]): void;
  maxPool2dForward(x: NativeStorage, out: NativeStorage, indices: NativeStorage | null, params: number[]): void;
  /** Scatter: gradIn = 0, gradIn[argmax] += gradOut. */
  maxPool2dBackward(gradOut: NativeStorage, indices: NativeStorage, gradIn: NativeStorage, params: number[]): void;
  /** Gather: out[o] = source[argmax[o]] (source input-shaped, out output-shaped). */
  maxPool2dGather(source: NativeStorage, indices: NativeStorage, out: NativeStorage, params: number[]): void;
  adaptiveAvgPool2dForward(x: NativeStorage, out: NativeStorage, params: number[]): void;
  adaptiveAvgPool2dBackward(gradOut: NativeStorage, gradIn: NativeStorage, params: number[]): void;
}

export interface NativeAddon {
  // ---- softmax (native/binding/softmax.cpp) ----
  // x viewed as [outer, dim, inner] (contiguous); the softmax runs along dim. All overwrite outputs.
  /** out = softmax(x) (log: log-softmax), max-subtracted. */
  softmaxForward(x: NativeStorage, out: NativeStorage, outer: number, dim: number, inner: number, log: boolean): void;
  /** From the forward output: softmax gradInput = out ⊙ (grad − Σ grad ⊙ out); log: grad − exp(out) · Σ grad. */
  softmaxBackward(out: NativeStorage, grad: NativeStorage, gradInput: NativeStorage, outer: number, dim: number,
    inner: number, log: boolean): void;
  /** logits [batch, classes], labels[batch] in [0, classes). reduction: 0 none (out: batch floats), 1 sum,
   *  2 mean (out: 1 float). stats [batch, 2] = (row max, log Σ exp(x − max)), kept for the backward. */
  crossEntropyForward(logits: NativeStorage, labels: NativeStorage, out: NativeStorage, stats: NativeStorage,
    batch: number, classes: number, reduction: number): void;
  /** gradInput = (softmax(logits) − onehot(labels)) · scale · grad[gradPerRow ? i : 0]. */
  crossEntropyBackward(logits: NativeStorage, labels: NativeStorage, stats: NativeStorage, grad: NativeStorage,
    gradInput: NativeStorage, batch: number, classes: number, scale: number, gradPerRow: boolean): void;

  // ---- normalize (native/binding/normalize.cpp) ----
  // Tensors viewed as [outer, dim, inner]; norms and cosine outputs hold outer·inner floats.
  /** out = x / max(‖x‖₂, eps) along dim; norms = the unclamped ‖x‖₂. */
  normalizeForward(x: NativeStorage, out: NativeStorage, norms: NativeStorage, outer: number, dim: number,
    inner: number, eps: number): void;
  /** gradInput = (grad − [norm ≥ eps] · out · Σ grad ⊙ out) / max(norm, eps). */
  normalizeBackward(out: NativeStorage, norms: NativeStorage, grad: NativeStorage, gradInput: NativeStorage,
    outer: number, dim: number, inner: number, eps: number): void;
  /** out = Σ (a / max(‖a‖, eps)) ⊙ (b / max(‖b‖, eps)) (torch 1.13); normsA/normsB = unclamped norms. */
  cosineSimilarityForward(a: NativeStorage, b: NativeStorage, out: NativeStorage, normsA: NativeStorage,
    normsB: NativeStorage, outer: number, dim: number, inner: number, eps: number): void;
  /** gradA = grad/n_a · (b/n_b − out · a/n_a), gradB symmetric (n = max(norm, eps)); a null output is skipped. */
  cosineSimilarityBackward(a: NativeStorage, b: NativeStorage, out: NativeStorage, normsA: NativeStorage,
    normsB: NativeStorage, grad: NativeStorage, gradA: NativeStorage | null, gradB: NativeStorage | null,
    outer: number, dim: number, inner: number, eps: number): void;
}

export interface NativeAddon {
  // ---- contrastive losses (native/binding/infonce.cpp, contrastive_kl.cpp, cohort_contrastive.cpp) ----
  // Embeddings [batch, dim], logits [batch, classes]; weights [batch] or null (all 1); loss: 1 float.
  /** Supervised InfoNCE of anchor·contrastᵀ/τ (method.md §0.1); rowStats [batch, 2] = (lse, row term). */
  /** direction (optional, [batch, batch]) receives the rows softmax_{≠u} − P_u/|P_u| for a backward without recomputation. */
  supConInfoNCEForward(anchor: NativeStorage, contrast: NativeStorage, labels: NativeStorage, weights: NativeStorage | null,
    loss: NativeStorage, rowStats: NativeStorage, direction: NativeStorage | null, batch: number, dim: number,
    temperature: number): void;
  /** Gradients of grad[0]·loss (from the forward's direction when given); a null output is skipped. */
  supConInfoNCEBackward(anchor: NativeStorage, contrast: NativeStorage, labels: NativeStorage, weights: NativeStorage | null,
    rowStats: NativeStorage, direction: NativeStorage | null, grad: NativeStorage, gradAnchor: NativeStorage | null, gradContrast: NativeStorage | null,
    gradWeights: NativeStorage | null, batch: number, dim: number, temperature: number): void;
  /** T²·Σ w·KL(softmax(teacher sims/(τT)) ‖ softmax(student sims/(τT)))/batch; rowStats [batch, 3] = (lse_s, lse_t, KL). */
  contrastiveKLForward(studentAnchor: NativeStorage, studentContrast: NativeStorage, teacherAnchor: NativeStorage,
    teacherContrast: NativeStorage, weights: NativeStorage | null, loss: NativeStorage, rowStats: NativeStorage,
    direction: NativeStorage | null, batch: number, dim: number, temperature: number, klTemperature: number): void;
  /** direction: the forward's p − q rows when it wrote them (null: recompute). */
  contrastiveKLBackward(studentAnchor: NativeStorage, studentContrast: NativeStorage, teacherAnchor: NativeStorage,
    teacherContrast: NativeStorage, weights: NativeStorage | null, rowStats: NativeStorage, direction: NativeStorage | null,
    grad: NativeStorage,
    gradStudentAnchor: NativeStorage | null, gradStudentContrast: NativeStorage | null, gradWeights: NativeStorage | null,
    batch: number, dim: number, temperature: number, klTemperature: number): void;
  /** Logit KD: T²·Σ w·KL(softmax(teacher/T) ‖ softmax(student/T))/batch; rowStats [batch, 3]. */
  distillKLForward(student: NativeStorage, teacher: NativeStorage, weights: NativeStorage | null, loss: NativeStorage,
    rowStats: NativeStorage, batch: number, classes: number, temperature: number): void;
  distillKLBackward(student: NativeStorage, teacher: NativeStorage, weights: NativeStorage | null, rowStats: NativeStorage,
    grad: NativeStorage, gradStudent: NativeStorage | null, gradWeights: NativeStorage | null, batch: number,
    classes: number, temperature: number): void;
  /** All four terms of every pair: embeddings `count` storages of [batch, dim], pairs int32 [P, 2], weights [P, batch] or null,
   *  out [P, 4]; softmax and probabilities [count·batch, count·batch] (the row softmaxes of the used blocks) and
   *  stats (cohortStatsFloats floats) are kept for the backward. */
  cohortContrastiveForward(embeddings: NativeStorage[], labels: NativeStorage, pairs: Int32Array, weights: NativeStorage | null,
    out: NativeStorage, softmax: NativeStorage, probabilities: NativeStorage, stats: NativeStorage, count: number,
    batch: number, dim: number, temperature: number, klTemperature: number): void;
  /** Gradients of Σ grad ⊙ out (grad [P, 4]); a null output is skipped. */
  cohortContrastiveBackward(embeddings: NativeStorage[], labels: NativeStorage, pairs: Int32Array, weights: NativeStorage | null,
    softmax: NativeStorage, probabilities: NativeStorage, stats: NativeStorage, grad: NativeStorage,
    gradEmbeddings: (NativeStorage | null)[],
    gradWeights: NativeStorage | null, count: number, batch: number, dim: number, temperature: number,
    klTemperature: number): void;
  /** Floats of the cohort forward's stats buffer. */
  cohortStatsFloats(count: number, batch: number, pairCount: number): number;
  // ---- memory bank (native/binding/memory_bank.cpp) ----
  // query [batch, dim], bank [bankRows, dim], indices int32 [batch · columns] (row u's columns at
  // u·columns..), logits / grad [batch, columns]; scale = 1/temperature > 0. Indices outside
  // [0, bankRows) are an Error (checked before any work). All overwrite their outputs.
  /** logits[q, u, k] = scale · ⟨bank[indices[u·columns + k]], query[q, u]⟩ (query [queries, batch, dim], logits [queries, batch, columns]). */
  memoryLogitsForward(query: NativeStorage, bank: NativeStorage, indices: NativeStorage, logits: NativeStorage,
    batch: number, columns: number, dim: number, bankRows: number, scale: number, queries: number): void;
  /** out[q, u] = scale · Σ_k grad[q, u, k] · bank[indices[u·columns + k]]  ([queries, batch, dim]). */
  memoryLogitsTranspose(grad: NativeStorage, bank: NativeStorage, indices: NativeStorage, out: NativeStorage,
    batch: number, columns: number, dim: number, bankRows: number, scale: number, queries: number): void;
  /** Fused InfoNCE: writes logits, stats [batch, 2] = (lse_u, term_u = lse_u − mean_{k<positives} logits[u, k])
   *  and loss (1 float) = Σ_u w_u · term_u / batch (weights null: w ≡ 1). */
  memoryInfoNceForward(query: NativeStorage, bank: NativeStorage, indices: NativeStorage, weights: NativeStorage | null,
    loss: NativeStorage, logits: NativeStorage, stats: NativeStorage, batch: number, columns: number, dim: number,
    bankRows: number, scale: number, positives: number): void;
  /** From the forward's logits and stats, for the scalar upstream grad: gradQuery[u] = scale · Σ_k c[u, k] ·
   *  bank[idx[u, k]] with c = (w_u / batch)(softmax − [k < positives] / positives) · grad, gradWeights[u] =
   *  term_u / batch · grad. A null output is skipped. */
  memoryInfoNceBackward(bank: NativeStorage, indices: NativeStorage, logits: NativeStorage, stats: NativeStorage,
    weights: NativeStorage | null, grad: NativeStorage, gradQuery: NativeStorage | null, gradWeights: NativeStorage | null,
    batch: number, columns: number, dim: number, bankRows: number, scale: number, positives: number): void;
  /** In place: bank[rows[i]] ← normalize(momentum · bank[rows[i]] + (1 − momentum) · z[i]) (no epsilon; z
   *  [rows.length, dim]). Rows out of range or repeated, or a mixed row of norm 0 / non-finite: an Error, bank unchanged. */
  memoryUpdate(bank: NativeStorage, rows: NativeStorage, z: NativeStorage, bankRows: number, dim: number, momentum: number): void;
}
