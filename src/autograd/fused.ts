// One shape for ops with a fused native backward (candle's CustomOp idea): the fused kernel is the
// first-order path, a composite of differentiable ops is the path when the backward itself is
// being recorded (grad(..., { createGraph: true }): the meta step's Hessian-vector products).
//
// Every op that has both goes through fusedOrComposite(op, context, { fused, composite }), so the
// choice is made in one place, and tests can force either path (withBackwardPath) to check that
// the two agree: test/autograd/fused.test.ts finds every `fusedOrComposite('<op>'` call in src/
// and fails if an op declaring both paths has no agreement case.
import type { BackwardContext } from './node.js';

export type BackwardPath = 'auto' | 'fused' | 'composite';

let forcedPath: BackwardPath = 'auto';

export interface BackwardPaths<T> {
  /** The native fused backward: fast, not differentiable itself. */
  fused: () => T;
  /** The same gradients from differentiable ops (a graph is recorded when createGraph is on). */
  composite: () => T;
}

/**
 * Runs the fused path when no graph is being recorded, the composite path otherwise. `op` names
 * the op, as a string literal at the call (the agreement test finds the calls by it). Under
 * createGraph the composite path is always taken, whatever withBackwardPath says: the fused path
 * records nothing and would silently cut the graph.
 */
export function fusedOrComposite<T>(op: string, context: BackwardContext, paths: BackwardPaths<T>): T {
  void op;
  if (context.createGraph) return paths.composite();
  return forcedPath === 'composite' ? paths.composite() : paths.fused();
}

/** Test hook: runs fn with first-order backwards forced onto one path ('auto' restores the default). */
export function withBackwardPath<T>(path: BackwardPath, fn: () => T): T {
  const previous = forcedPath;
  forcedPath = path;
  try {
    return fn();
  } finally {
    forcedPath = previous;
  }
}
