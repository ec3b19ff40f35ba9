// Argument checks shared by the contrastive losses (infonce.ts, contrastive_kl.ts,
// cohort_contrastive.ts): options objects, temperatures, embedding pairs, labels, weights.
import { isGradEnabled } from '../autograd/mode.js';
import { Tensor, formatShape, type Device } from '../tensor/tensor.js';
import { checkRank, checkSameDevice, checkTensor, describeValue, holdIndices, type HeldIndices } from './checks.js';

/** A finite temperature > 0 (required). */
export function checkTemperature(value: unknown, op: string, name: string): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) {
    throw new Error(`${op}: ${name} must be a finite number > 0, got ${describeValue(value)}`);
  }
  return value;
}

/** Two-dimensional tensors of one shape on one device; returns [batch, width]. */
export function checkMatrices(op: string, named: Record<string, unknown>, layout: string): [number, number] {
  const entries = Object.entries(named);
  let shape: readonly number[] | null = null;
  let firstName = '';
  for (const [name, value] of entries) {
    checkTensor(value, op, name);
    checkRank(value, 2, op, name, layout);
    if (shape === null) {
      shape = value.shape;
      firstName = name;
    } else if (value.shape[0] !== shape[0] || value.shape[1] !== shape[1]) {
      throw new Error(`${op}: argument '${name}' has shape ${formatShape(value.shape)} but '${firstName}' has ${formatShape(shape)}`);
    }
  }
  checkSameDevice(op, ...(entries.map(([, value]) => value) as Tensor[]));
  return [shape![0]!, shape![1]!];
}

/**
 * Labels (compared only for equality): an IndexTensor on `device` or an Int32Array, of the batch
 * size; returns the hold (see holdIndices) — the backward sees this call's labels even if the
 * caller reuses its array or disposes its tensor.
 */
export function checkLabels(labels: unknown, batch: number, device: Device, op: string): HeldIndices {
  const held = holdIndices(labels, device, op, 'labels');
  if (held.length !== batch) {
    held.release();
    throw new Error(`${op}: labels has length ${held.length} but the batch size is ${batch}`);
  }
  return held;
}

/** Optional weights of a given shape on the device of the other operands. */
export function checkWeights(weights: unknown, shape: readonly number[], device: string, op: string): Tensor | null {
  if (weights === undefined || weights === null) return null;
  checkTensor(weights, op, 'weights');
  if (weights.shape.length !== shape.length || weights.shape.some((extent, index) => extent !== shape[index])) {
    throw new Error(`${op}: argument 'weights' must have shape ${formatShape(shape)}, got ${formatShape(weights.shape)}`);
  }
  if (weights.device !== device) {
    throw new Error(`${op}: expected all tensors on the same device, got '${device}' and '${weights.device}' (use .to(device))`);
  }
  return weights;
}

/**
 * Whether a one-pair loss keeps its [B, B] gradient-direction rows from the forward (then its
 * backward is two GEMMs instead of recomputing the similarities): only when a graph is recorded
 * and B² floats stay within 16 MiB (B ≤ 2048). Larger batches recompute, so their extra memory
 * stays O(B·D) (the B = 16,384 target).
 */
export function keepsDirection(batch: number, inputs: readonly Tensor[]): boolean {
  return batch * batch <= directionFloatsLimit && isGradEnabled() && inputs.some((input) => input.requiresGrad);
}

const directionFloatsLimit = 1 << 22;
