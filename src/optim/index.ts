// Optimizers (`optim` namespace of the public API).
export { SGD } from './sgd.js';
export type { SGDOptions, SGDParamGroup, SGDParamGroupInput, SGDParamGroupState, SGDStateDict } from './sgd.js';
export { virtualSgdStep } from './virtual_sgd.js';
export type { VirtualSGDOptions, VirtualSGDResult } from './virtual_sgd.js';
