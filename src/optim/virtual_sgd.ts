// A differentiable ("virtual") SGD step: the update of optim.SGD (PyTorch 1.13's formula, see
// sgd.ts) written with recorded elementwise ops, returning NEW tensors instead of writing in
// place. It is what L-MCL's meta step unrolls: θ1 = step(θ0, ∂L_inner/∂θ0 (createGraph)), ...,
// then a loss at θk evaluated with Module.withParameters; grad(..., { createGraph: true })
// differentiates that loss through every step, back to whatever the gradients depended on (the
// loss-weight network φ). Tests: test/optim/virtual_sgd.test.ts.
//
// Per parameter p with gradient g (a null gradient leaves p and its momentum unchanged, as the
// native optimizer skips such parameters):
//   d = g (−g with maximize) + weightDecay·p
//   momentum ≠ 0:  b = d without a momentum state (PyTorch's first step; "zero momentum"),
//                  else b = momentum·b + (1 − dampening)·d
//                  d = nesterov ? d + momentum·b : b
//   p' = p + (−lr)·d
//
// Same bits as the native kernel: each line is one float32 operation per element in the kernel's
// order (hyperparameters rounded to float32 the same way: static_cast<float> of the double), and
// the elementwise kernels do one IEEE-rounded operation each, like the fused kernel compiled with
// -ffp-contract=off. The only possible difference is the sign of an exact zero (x·s + 0 turns
// −0 into +0 in the affine kernel), which changes no later value except another zero's sign.
// Measured: 0 ulp over every option combination (test/optim/virtual_sgd.test.ts). A future CUDA
// SGD or elementwise kernel keeps this only if built without contraction (nvcc --fmad=false, or
// __fmul_rn/__fadd_rn): nvcc's default would fuse p + (−lr)·d into an FMA (≤ 1 ulp per step).
import * as F from '../ops/functional.js';
import { Tensor, formatShape } from '../tensor/tensor.js';
import { tidy } from '../tensor/scope.js';
import { checkHyperparameters, type SGDOptions } from './sgd.js';

/** Hyperparameters of a virtual step (the names and defaults of optim.SGD; lr is required). */
export interface VirtualSGDOptions extends SGDOptions {
  lr: number;
}

export interface VirtualSGDResult {
  /** θ' per parameter: new tensors owned by the caller (a view of θ for a null gradient). */
  params: Tensor[];
  /**
   * The momentum buffers after the step (new tensors owned by the caller; a view of the given
   * buffer for a null gradient; null without momentum, or for a null gradient without state).
   * Pass them to the next virtual step to continue the trajectory.
   */
  momentumBuffers: (Tensor | null)[];
}

/**
 * One differentiable SGD step over parallel lists of parameters and gradients. `momentumBuffers`
 * (optional, one per parameter, null entries allowed) is the momentum state to continue from,
 * e.g. an optimizer's `momentumBuffer(p)` or a previous virtual step's result; absent or null
 * means zero momentum (the buffer starts as d, exactly like the native first step). Inputs are
 * not modified. The results record a graph when grad mode is on and an input requires grad.
 */
export function virtualSgdStep(
  params: readonly Tensor[],
  grads: readonly (Tensor | null)[],
  options: VirtualSGDOptions,
  momentumBuffers?: readonly (Tensor | null)[],
): VirtualSGDResult {
  const op = 'virtualSgdStep';
  if (!Array.isArray(params)) throw new TypeError(`${op}: params must be an array of Tensors`);
  if (!Array.isArray(grads) || grads.length !== params.length) {
    throw new Error(`${op}: grads must be an array with one entry (Tensor or null) per parameter (${params.length})`);
  }
  if (momentumBuffers !== undefined && (!Array.isArray(momentumBuffers) || momentumBuffers.length !== params.length)) {
    throw new Error(`${op}: momentumBuffers must have one entry (Tensor or null) per parameter (${params.length})`);
  }
  if (options === null || typeof options !== 'object') throw new TypeError(`${op}: options must be an object`);
  const hyper = {
    lr: options.lr,
    momentum: options.momentum ?? 0,
    dampening: options.dampening ?? 0,
    weightDecay: options.weightDecay ?? 0,
    nesterov: options.nesterov ?? false,
    maximize: options.maximize ?? false,
  };
  checkHyperparameters(hyper, op);
  params.forEach((param, index) => {
    const where = `${op}: parameter ${index}`;
    if (!(param instanceof Tensor)) throw new TypeError(`${where} is not a Tensor`);
    param.assertAlive(where);
    const checkLike = (other: Tensor | null | undefined, what: string): void => {
      if (other === null || other === undefined) return;
      if (!(other instanceof Tensor)) throw new TypeError(`${where}: its ${what} must be a Tensor or null`);
      other.assertAlive(`${where} (its ${what})`);
      if (other.shape.length !== param.shape.length || other.shape.some((extent, d) => extent !== param.shape[d])) {
        throw new Error(`${where}: its ${what} has shape ${formatShape(other.shape)} but the parameter has shape ${formatShape(param.shape)}`);
      }
      if (other.device !== param.device) throw new Error(`${where}: its ${what} is on '${other.device}' but the parameter is on '${param.device}'`);
    };
    checkLike(grads[index], 'gradient');
    checkLike(momentumBuffers?.[index], 'momentum buffer');
  });

  const { lr, momentum, dampening, weightDecay, nesterov, maximize } = hyper;
  return tidy(() => {
    const nextParams: Tensor[] = [];
    const nextBuffers: (Tensor | null)[] = [];
    params.forEach((param, index) => {
      const grad = grads[index] ?? null;
      const buffer = momentumBuffers?.[index] ?? null;
      if (grad === null) {
        // Reshape to the same shape: a new tensor object (the caller owns every result) that
        // shares the storage and stays in the graph.
        nextParams.push(F.reshape(param, param.shape));
        nextBuffers.push(buffer ? F.reshape(buffer, buffer.shape) : null);
        return;
      }
      let direction = maximize ? F.neg(grad) : grad;
      if (weightDecay !== 0) direction = F.add(direction, F.mul(param, weightDecay));
      let nextBuffer: Tensor | null = null;
      if (momentum !== 0) {
        let updated: Tensor;
        if (buffer === null) {
          // A view when d is the gradient itself, so the caller never receives its own input.
          updated = direction === grad ? F.reshape(grad, grad.shape) : direction;
        } else {
          // (1 − dampening)·d: the kernel multiplies by 1.0f when dampening is 0, which is exact.
          const scaledDirection = dampening === 0 ? direction : F.mul(direction, 1 - dampening);
          updated = F.add(F.mul(buffer, momentum), scaledDirection);
        }
        direction = nesterov ? F.add(direction, F.mul(updated, momentum)) : updated;
        nextBuffer = updated;
      }
      nextParams.push(F.add(param, F.mul(direction, -lr)));
      nextBuffers.push(nextBuffer);
    });
    return { params: nextParams, momentumBuffers: nextBuffers };
  });
}
