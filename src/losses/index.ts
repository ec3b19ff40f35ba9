// Training methods: the registry, the method contract, the shared loss terms.
export { methods, methodNames, getMethod, methodOptions, readMethodOptions, type RegisteredMethod, type SharedOption } from './registry.js';
export { defineMethod, type MethodEntry } from './entry.js';
export { CohortMethod, type Method, type MethodContext, type MethodLoss, type ParameterSet, type StepBatch, type StepContext, type StepResult, type TrainingStep } from './method.js';
export { LossParts } from './parts.js';
export { booleanOption, integerOption, numberOption, optionKey, type MethodOption, type MethodOptions, type OptionValue, type OptionValues } from './options.js';
export { crossEntropyTerms, distillKL, finalLogits } from './terms.js';
export { BaselineMethod, baselineEntry } from './baseline.js';
export { DmlMethod, dmlEntry, kdTemperatureOption } from './dml.js';
