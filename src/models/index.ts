// The `models` namespace: the student registry and the Student contract (method.md §2.1, §5).
// Model files may add their own exports below.
export { createModel, createCohort, listModels } from './registry.js';
export type { Student, StudentOutput, ModelOptions, ModelFactory } from './types.js';
