// The `F` namespace: the functional API (names and semantics follow torch.nn.functional).
// Each op lives in its own file under src/ops/; this file only gathers them.
export {
  add, sub, mul, div, neg, exp, log, sqrt, rsqrt, reciprocal, square, abs, tanh, sign, step,
  relu, sigmoid, pow, maximum, minimum, expand, affine, reluMask, countNonFinite, broadcastShapes,
} from './elementwise.js';
export { sum, mean, sumToShape } from './reduce.js';
export { reshape, flatten } from './layout.js';
