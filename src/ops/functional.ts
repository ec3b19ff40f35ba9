// The `F` namespace: the functional API (names and semantics follow torch.nn.functional).
// Each op lives in its own file under src/ops/; this file only gathers them.
export {
  add, sub, mul, div, neg, exp, log, sqrt, rsqrt, reciprocal, square, abs, tanh, sign, step,
  relu, sigmoid, pow, maximum, minimum, expand, affine, reluMask, countNonFinite, broadcastShapes,
} from './elementwise.js';
export { sum, mean, sumToShape } from './reduce.js';
export { reshape, flatten } from './layout.js';
export { conv2d } from './conv2d.js';
export type { Conv2dOptions } from './conv2d.js';
export { matmul, linear } from './gemm.js';
export { permute, transpose, concat, cat, stack, slice, sliceBackward, chunk, split, indexSelect, indexAdd } from './layout.js';
export { batchNorm } from './batchnorm.js';
export type { BatchNormOptions } from './batchnorm.js';
export { avgPool2d, maxPool2d, adaptiveAvgPool2d } from './pool.js';
export { softmax, logSoftmax } from './softmax.js';
export { crossEntropy } from './cross_entropy.js';
export type { CrossEntropyOptions, CrossEntropyReduction } from './cross_entropy.js';
export { normalize, cosineSimilarity } from './normalize.js';
export type { NormalizeOptions, CosineSimilarityOptions } from './normalize.js';
export { supConInfoNCE } from './infonce.js';
export type { SupConInfoNCEOptions } from './infonce.js';
export { contrastiveKL, distillKL } from './contrastive_kl.js';
export type { ContrastiveKLOptions, DistillKLOptions } from './contrastive_kl.js';
export { cohortContrastive, cohortTerms } from './cohort_contrastive.js';
export type { CohortContrastiveOptions } from './cohort_contrastive.js';
export { memoryLogits, memoryInfoNCE, memoryUpdate_ } from './memory_bank.js';
export type { MemoryLogitsOptions, MemoryInfoNceOptions, MemoryUpdateOptions } from './memory_bank.js';
