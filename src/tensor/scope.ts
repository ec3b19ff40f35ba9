// Scopes for deterministic release of intermediate tensors (like tf.tidy).
//
// Every tensor created while a scope is open is recorded in it. When the scope closes, each
// recorded tensor that is not returned (or kept) is disposed. Autograd holds its own references
// to the tensors it saved for backward, so disposing an intermediate never breaks a graph: its
// memory is freed when the last holder lets go.
import type { Tensor } from './tensor.js';

const scopes: Set<Tensor>[] = [];

/** Records a newly created tensor in the innermost open scope (called by the Tensor constructor). */
export function trackTensor(tensor: Tensor): void {
  const scope = scopes[scopes.length - 1];
  if (scope) scope.add(tensor);
}

/** Removes a tensor from every open scope so it survives them (e.g. gradients, parameters). */
export function keep<T extends Tensor>(tensor: T): T {
  for (const scope of scopes) scope.delete(tensor);
  return tensor;
}

function collectTensors(value: unknown, found: Set<Tensor>, isTensor: (v: unknown) => v is Tensor, depth = 0): void {
  if (depth > 8 || value === null || typeof value !== 'object') return;
  if (isTensor(value)) {
    found.add(value);
    return;
  }
  if (Array.isArray(value)) {
    for (const item of value) collectTensors(item, found, isTensor, depth + 1);
    return;
  }
  if (value instanceof Map) {
    for (const item of value.values()) collectTensors(item, found, isTensor, depth + 1);
    return;
  }
  if (Object.getPrototypeOf(value) === Object.prototype) {
    for (const item of Object.values(value as Record<string, unknown>)) collectTensors(item, found, isTensor, depth + 1);
  }
}

let tensorCheck: ((value: unknown) => value is Tensor) | null = null;
/** Set once by tensor.ts to avoid an import cycle. */
export function setTensorCheck(check: (value: unknown) => value is Tensor): void {
  tensorCheck = check;
}

/**
 * Runs fn in a new scope. Tensors created inside and not reachable from the return value
 * (tensors, arrays, plain objects and Maps of them) are disposed when fn returns or throws.
 * Returned tensors move to the enclosing scope.
 */
export function tidy<T>(fn: () => T): T {
  if (typeof fn !== 'function') throw new TypeError('tidy: expected a function');
  const scope = new Set<Tensor>();
  scopes.push(scope);
  let result: T;
  try {
    result = fn();
  } catch (error) {
    scopes.pop();
    for (const tensor of scope) tensor.dispose();
    throw error;
  }
  scopes.pop();
  if (result instanceof Promise) {
    throw new Error('tidy: fn must be synchronous (it returned a Promise)');
  }
  const returned = new Set<Tensor>();
  if (tensorCheck) collectTensors(result, returned, tensorCheck);
  const parent = scopes[scopes.length - 1];
  for (const tensor of scope) {
    if (returned.has(tensor)) {
      if (parent) parent.add(tensor);
    } else {
      tensor.dispose();
    }
  }
  return result;
}
