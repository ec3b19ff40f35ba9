// Finite-difference gradient checks, first and second order, for ops built on the engine.
//
// Method: for a scalar objective f(x_1..x_k) = Σ out ⊙ R (R a fixed random tensor), compare the
// directional derivative along random directions v_i,
//     (f(x + εv) − f(x − εv)) / 2ε     with     Σ_i ⟨∂f/∂x_i, v_i⟩ from autograd.
// Evaluated in float32, so ε is large (1e-2 relative to the input scale by default) and the
// tolerance is relative to the magnitude of the terms (stated per call; default 2e-2).
// Second order: the same check applied to g(x) = Σ_i ⟨∂f/∂x_i (createGraph), W_i⟩.
import { expect } from 'vitest';
import { F, Tensor, grad, tensor, tidy } from '../../src/index.js';
import { randomArray } from './random.js';

export interface GradcheckOptions {
  epsilon?: number;
  tolerance?: number;
  directions?: number;
}

type Objective = (...inputs: Tensor[]) => Tensor;

function scalarObjective(fn: Objective, inputs: Tensor[], projection: Float32Array | null): { value: Tensor; projection: Float32Array } {
  const out = fn(...inputs);
  const weights = projection ?? randomArray(out.size);
  const weightTensor = tensor(weights, out.shape, { device: out.device });
  return { value: F.sum(F.mul(out, weightTensor)), projection: weights };
}

function perturbed(values: Float32Array[], directions: Float32Array[], scale: number, shapes: readonly (readonly number[])[], requiresGrad: boolean[]): Tensor[] {
  return values.map((base, index) => {
    const shifted = new Float32Array(base.length);
    for (let j = 0; j < base.length; j += 1) shifted[j] = base[j]! + scale * directions[index]![j]!;
    return tensor(shifted, shapes[index]!, { requiresGrad: requiresGrad[index] });
  });
}

/** Checks first-order gradients of fn at the given inputs (those with requiresGrad). */
export function gradcheck(fn: Objective, inputs: Tensor[], options: GradcheckOptions = {}): void {
  const epsilon = options.epsilon ?? 1e-2;
  const tolerance = options.tolerance ?? 2e-2;
  const values = inputs.map((input) => input.toFloat32Array());
  const shapes = inputs.map((input) => input.shape);
  const differentiable = inputs.map((input) => input.requiresGrad);
  tidy(() => {
    const { value, projection } = scalarObjective(fn, inputs, null);
    const wrt = inputs.filter((input) => input.requiresGrad);
    // A gradient that does not depend on the inputs (e.g. of a linear op) has no graph: zero.
    const analytic = value.requiresGrad
      ? grad(value, wrt, { allowUnused: true }).map((g) => g.toFloat32Array())
      : wrt.map((input) => new Float32Array(input.size));
    for (let trial = 0; trial < (options.directions ?? 3); trial += 1) {
      const directions = values.map((base, index) => (differentiable[index] ? randomArray(base.length) : new Float32Array(base.length)));
      let predicted = 0;
      let magnitude = 0;
      let analyticIndex = 0;
      values.forEach((_, index) => {
        if (!differentiable[index]) return;
        const g = analytic[analyticIndex++]!;
        const d = directions[index]!;
        for (let j = 0; j < g.length; j += 1) {
          predicted += g[j]! * d[j]!;
          magnitude += Math.abs(g[j]! * d[j]!);
        }
      });
      const evaluate = (scale: number): number =>
        tidy(() => scalarObjective(fn, perturbed(values, directions, scale, shapes, differentiable), projection).value.item());
      const numeric = (evaluate(epsilon) - evaluate(-epsilon)) / (2 * epsilon);
      const allowed = tolerance * Math.max(1, magnitude);
      if (!(Math.abs(numeric - predicted) <= allowed)) {
        expect.fail(`gradcheck: directional derivative ${predicted} (autograd) vs ${numeric} (finite difference), allowed error ${allowed}`);
      }
    }
  });
}

/** Checks second-order gradients: the gradient of ⟨∂f/∂x, W⟩ against finite differences. */
export function gradgradcheck(fn: Objective, inputs: Tensor[], options: GradcheckOptions = {}): void {
  const projection = new Map<number, Float32Array>();
  const firstOrderProjection = { current: null as Float32Array | null };
  const gradientObjective: Objective = (...xs: Tensor[]) => {
    const { value, projection: used } = scalarObjective(fn, xs, firstOrderProjection.current);
    firstOrderProjection.current = used;
    const wrt = xs.filter((x) => x.requiresGrad);
    const grads = grad(value, wrt, { createGraph: true });
    let total: Tensor | null = null;
    grads.forEach((g, index) => {
      if (!projection.has(index)) projection.set(index, randomArray(g.size));
      const term = F.sum(F.mul(g, tensor(projection.get(index)!, g.shape)));
      total = total ? F.add(total, term) : term;
    });
    return total!;
  };
  gradcheck(gradientObjective, inputs, { tolerance: 3e-2, ...options });
}
