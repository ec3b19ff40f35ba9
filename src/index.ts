// Public API of lmcl. See README.md for the contract.
import './autograd/engine.js'; // installs Tensor.backward

export { Tensor, formatShape, shapeSize, tensorCounters } from './tensor/tensor.js';
export { IndexTensor } from './tensor/index_tensor.js';
export type { Device } from './tensor/tensor.js';
export { tensor, zeros, ones, full, zerosLike, onesLike, randn, rand } from './tensor/creation.js';
export type { CreationOptions, RandomOptions } from './tensor/creation.js';
export { Generator, manualSeed, defaultGenerator } from './tensor/random.js';
export { tidy, keep } from './tensor/scope.js';
export { grad } from './autograd/engine.js';
export { noGrad, enableGrad, isGradEnabled } from './autograd/mode.js';
export { memory, resetMemoryPeak, emptyCache, setNumThreads, engineInfo, setFloat32MatmulPrecision, getFloat32MatmulPrecision } from './runtime.js';
export type { Float32MatmulPrecision } from './native/addon.js';
export { measureFmaPeak } from './profiler/peak.js';
export * as profiler from './profiler/index.js';
export * as F from './ops/functional.js';
export * as nn from './nn/index.js';
export * as optim from './optim/index.js';
export * as models from './models/index.js';
export * as io from './io/index.js';
export * as data from './data/index.js';
