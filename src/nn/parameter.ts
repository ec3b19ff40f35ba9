// Parameters and in-place writes used by nn (modules, init, state dicts).
//
// A parameter is an ordinary leaf Tensor with requiresGrad = true that has been keep()-ed, so no
// tidy scope ever disposes it: its lifetime belongs to the module that registered it (freed by
// Module.dispose()). There is no Parameter subclass; `parameter(t)` marks a tensor as one.
//
// The in-place writers below overwrite a tensor's memory and bump its storage version, so a graph
// that saved the tensor for backward notices the change and throws instead of using stale values
// (the same protection PyTorch gives through its version counter). They record no graph.
import { native } from '../native/index.js';
import { Tensor, formatShape } from '../tensor/tensor.js';
import { keep } from '../tensor/scope.js';
import { uploadFloats } from '../tensor/storage.js';

/** Marks `t` as a trainable parameter: a leaf that requires grad and survives tidy scopes. */
export function parameter(t: Tensor): Tensor {
  if (!(t instanceof Tensor)) throw new TypeError('parameter: expected a Tensor');
  t.assertAlive('parameter');
  if (!t.isLeaf) {
    throw new Error(
      `parameter: tensor of shape ${formatShape(t.shape)} has autograd history; pass a leaf (e.g. x.detach()) instead`,
    );
  }
  t.requiresGrad = true;
  return keep(t);
}

/** Overwrites all of `t` with `data` (host values, row-major). */
export function writeInPlace(t: Tensor, data: Float32Array, op = 'writeInPlace'): void {
  t.assertAlive(op);
  if (!(data instanceof Float32Array)) throw new TypeError(`${op}: data must be a Float32Array`);
  if (data.length !== t.size) {
    throw new Error(`${op}: ${data.length} values do not fill a tensor of shape ${formatShape(t.shape)} (${t.size} elements)`);
  }
  if (t.size > 0) uploadFloats(t.storage, data);
  t.storage.version += 1;
}

/** Sets every element of `t` to `value`. */
export function fillInPlace(t: Tensor, value: number, op = 'fillInPlace'): void {
  t.assertAlive(op);
  if (typeof value !== 'number' || Number.isNaN(value)) throw new TypeError(`${op}: value must be a number, got ${String(value)}`);
  if (t.size > 0) native().fill(t.storage.handle, value, t.size);
  t.storage.version += 1;
}

/** Copies the values of `source` into `destination` (same number of elements; any devices). */
export function copyInPlace(destination: Tensor, source: Tensor, op = 'copyInPlace'): void {
  destination.assertAlive(op);
  source.assertAlive(op);
  if (destination.size !== source.size) {
    throw new Error(`${op}: cannot copy ${formatShape(source.shape)} into ${formatShape(destination.shape)}`);
  }
  if (destination.storage === source.storage || destination.size === 0) {
    destination.storage.version += 1;
    return;
  }
  // The native copy handles every pair of devices (as Tensor.to does).
  native().copy(destination.storage.handle, source.storage.handle, destination.size * 4);
  destination.storage.version += 1;
}
