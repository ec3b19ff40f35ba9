// Optimizers (`optim` namespace of the public API).
export { SGD } from './sgd.js';
export type { SGDOptions, SGDParamGroup, SGDParamGroupInput, SGDParamGroupState, SGDStateDict } from './sgd.js';
