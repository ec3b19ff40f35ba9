// The composite backward of a fused loss, derived instead of hand-written: the loss is recomputed
// from the saved inputs with differentiable ops (the op's `composite` forward, the same formula
// the fused kernel computes) and differentiated by the engine. Under createGraph the result
// carries its graph back to the inputs, so gradients of gradients work (the meta step), and the
// composite forward is also what the benchmarks time as "our composition".
import { grad } from '../autograd/engine.js';
import { enableGrad } from '../autograd/mode.js';
import type { BackwardContext } from '../autograd/node.js';
import type { Tensor } from '../tensor/tensor.js';
import { reshape } from './layout.js';

/**
 * Gradients of Σ gradOutput ⊙ forward(inputs) for the inputs the context needs (null for the
 * rest). Each differentiated input enters through a fresh reshape view, so the inner grad() stops
 * there instead of running the inputs' own backward.
 */
export function gradientOfComposite(
  context: BackwardContext,
  inputs: readonly Tensor[],
  gradOutput: Tensor,
  forward: (...inputs: Tensor[]) => Tensor,
): (Tensor | null)[] {
  const wanted = inputs.map((input, index) => (context.needsInputGrad[index] ?? false) && input.requiresGrad);
  if (!wanted.some(Boolean)) return inputs.map(() => null);
  return enableGrad(() => {
    const views = inputs.map((input, index) => (wanted[index] ? reshape(input, input.shape) : input));
    const output = forward(...views);
    const targets = views.filter((_, index) => wanted[index]);
    const gradients = grad(output, targets, {
      gradOutputs: [gradOutput],
      createGraph: context.createGraph,
      allowUnused: true,
    });
    output.dispose();
    let next = 0;
    const result = views.map((view, index) => (wanted[index] ? gradients[next++]! : null));
    views.forEach((view, index) => {
      if (wanted[index]) view.dispose();
    });
    return result;
  });
}
