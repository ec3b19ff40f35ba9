// The `nn` namespace: modules, layers and initialisation (names follow torch.nn).
export { Module, ModuleState } from './module.js';
export type { StateEntry, StateDict, StateDictLike, LoadStateDictOptions, LoadStateDictResult, NamedOptions } from './module.js';
export { parameter } from './parameter.js';
export { Conv2d } from './conv.js';
export type { Conv2dLayerOptions, LayerOptions } from './conv.js';
export { BatchNorm2d, BatchNorm1d } from './batchnorm.js';
export type { BatchNormOptions, BatchNormEpilogue } from './batchnorm.js';
export { Linear, Identity, Flatten } from './linear.js';
export type { LinearOptions } from './linear.js';
export { ReLU, Sigmoid, Tanh } from './activation.js';
export { AvgPool2d, MaxPool2d, AdaptiveAvgPool2d } from './pooling.js';
export type { PoolOptions } from './pooling.js';
export { Sequential, ModuleList } from './container.js';
export * as init from './init.js';
