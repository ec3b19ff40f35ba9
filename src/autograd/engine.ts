// Reverse-mode differentiation over the recorded graph: Tensor.backward() and grad().
//
// Nodes run in reverse topological order (a node runs once every consumer of its output has
// passed its gradient down), so each node's backward runs once with the summed gradient. The
// order depends only on the graph, so results are deterministic. Without retainGraph/createGraph
// each node drops its saved tensors right after its backward ran, and intermediate gradients are
// disposed as soon as they are consumed.
import { enableGrad, noGrad } from './mode.js';
import type { GraphNode } from './node.js';
import { Tensor, formatShape, setBackwardHook } from '../tensor/tensor.js';
import { keep, tidy } from '../tensor/scope.js';
import { add } from '../ops/elementwise.js';
import { reshape } from '../ops/layout.js';
import { onesLike, zerosLike } from '../tensor/creation.js';
import { profilerFlags, timeBackwardNode, withProfilePhase } from '../profiler/profiler.js';

interface BackwardOptions {
  retainGraph: boolean;
  createGraph: boolean;
  /** backward(): accumulate into leaf.grad. grad(): return gradients for `inputs` instead. */
  accumulateIntoLeaves: boolean;
  inputs: readonly Tensor[];
}

/** Sum of two gradients (a differentiable op when the graph is being recorded). */
function accumulate(existing: Tensor | undefined, incoming: Tensor): Tensor {
  if (!existing) return incoming;
  const sum = add(existing, incoming);
  existing.dispose();
  incoming.dispose();
  return sum;
}

function matchShape(grad: Tensor, shape: readonly number[]): Tensor {
  if (grad.shape.length === shape.length && grad.shape.every((extent, index) => extent === shape[index])) return grad;
  const view = reshape(grad, shape);
  grad.dispose();
  return view;
}

function run(outputs: readonly Tensor[], gradOutputs: readonly Tensor[], options: BackwardOptions): Map<Tensor, Tensor> {
  const captured = new Map<Tensor, Tensor>();
  const wanted = new Set(options.inputs);
  const capturedByNode = new Map<GraphNode, Tensor[]>();
  for (const input of options.inputs) {
    if (input.gradFn) {
      const list = capturedByNode.get(input.gradFn) ?? [];
      list.push(input);
      capturedByNode.set(input.gradFn, list);
    }
  }

  // grad() only follows edges that lead to a requested input (like PyTorch); backward() follows
  // every edge that needs a gradient. `active(node)` is the per-input mask for this pass.
  const leadsToWanted = new Map<GraphNode, boolean>();
  if (!options.accumulateIntoLeaves) {
    const visit: [GraphNode, boolean][] = outputs.flatMap((output) => (output.gradFn ? [[output.gradFn, false] as [GraphNode, boolean]] : []));
    while (visit.length > 0) {
      const [node, expanded] = visit.pop()!;
      if (leadsToWanted.has(node) && !expanded) continue;
      if (!expanded) {
        leadsToWanted.set(node, false); // provisional, also breaks revisits
        visit.push([node, true]);
        node.inputs.forEach((input, index) => {
          if (node.needsInputGrad[index] && input.gradFn && !leadsToWanted.has(input.gradFn)) visit.push([input.gradFn, false]);
        });
        continue;
      }
      const leads = capturedByNode.has(node) || node.inputs.some((input, index) =>
        node.needsInputGrad[index] && (wanted.has(input) || (input.gradFn !== null && leadsToWanted.get(input.gradFn) === true)));
      leadsToWanted.set(node, leads);
    }
  }
  const masks = new Map<GraphNode, boolean[]>();
  const active = (node: GraphNode): boolean[] => {
    let mask = masks.get(node);
    if (!mask) {
      mask = node.inputs.map((input, index) => {
        if (!node.needsInputGrad[index]) return false;
        if (options.accumulateIntoLeaves) return true;
        return wanted.has(input) || (input.gradFn !== null && leadsToWanted.get(input.gradFn) === true);
      });
      masks.set(node, mask);
    }
    return mask;
  };

  // Count, for every node reachable along active edges, how many edges point to it.
  const dependencies = new Map<GraphNode, number>();
  const stack: GraphNode[] = [];
  for (const output of outputs) {
    if (output.gradFn && !dependencies.has(output.gradFn)) {
      dependencies.set(output.gradFn, 0);
      stack.push(output.gradFn);
    }
  }
  while (stack.length > 0) {
    const node = stack.pop()!;
    const mask = active(node);
    node.inputs.forEach((input, index) => {
      const producer = input.gradFn;
      if (!producer || !mask[index]) return;
      if (!dependencies.has(producer)) {
        dependencies.set(producer, 0);
        stack.push(producer);
      }
      dependencies.set(producer, dependencies.get(producer)! + 1);
    });
  }

  const pending = new Map<GraphNode, Tensor>();
  const deliverToLeaf = (leaf: Tensor, grad: Tensor): void => {
    grad = matchShape(grad, leaf.shape);
    if (wanted.has(leaf)) {
      captured.set(leaf, accumulate(captured.get(leaf), grad));
      return;
    }
    if (options.accumulateIntoLeaves && leaf.requiresGrad) {
      leaf.grad = keep(accumulate(leaf.grad ?? undefined, grad));
      return;
    }
    grad.dispose();
  };

  outputs.forEach((output, index) => {
    const grad = gradOutputs[index]!;
    if (output.gradFn) pending.set(output.gradFn, accumulate(pending.get(output.gradFn), grad));
    else deliverToLeaf(output, grad);
  });

  const ready: GraphNode[] = [];
  for (const output of outputs) {
    const node = output.gradFn;
    if (node && dependencies.get(node) === 0 && !ready.includes(node)) ready.push(node);
  }

  try {
    while (ready.length > 0) {
      const node = ready.pop()!;
      const gradOutput = pending.get(node);
      pending.delete(node);
      let inputGrads: (Tensor | null)[] = node.inputs.map(() => null);
      if (gradOutput) {
        const shaped = matchShape(gradOutput, node.outputShape);
        for (const input of capturedByNode.get(node) ?? []) {
          captured.set(input, accumulate(captured.get(input), reshape(shaped, input.shape)));
        }
        // A scope per node: temporaries of the backward rule are freed even when the caller runs
        // backward outside tidy (tensors a recorded graph still needs stay alive via its references).
        // The profiler times the node by name; when it is off this is one property read per node.
        const apply = (): (Tensor | null)[] => tidy(() => node.apply(shaped, options.createGraph, active(node)));
        try {
          inputGrads = profilerFlags.recording ? timeBackwardNode(node.name, apply) : apply();
        } finally {
          shaped.dispose();
        }
      }
      if (!options.retainGraph) node.release();
      const mask = active(node);
      node.inputs.forEach((input, index) => {
        const grad = inputGrads[index] ?? null;
        if (!mask[index]) {
          grad?.dispose();
          return;
        }
        const producer = input.gradFn;
        if (producer) {
          if (grad) pending.set(producer, accumulate(pending.get(producer), matchShape(grad, input.shape)));
          const remaining = dependencies.get(producer)! - 1;
          dependencies.set(producer, remaining);
          if (remaining === 0) ready.push(producer);
        } else if (grad) {
          deliverToLeaf(input, grad);
        }
      });
    }
  } catch (error) {
    // A failed backward (e.g. a saved tensor modified in place) must not leak the gradients in
    // flight: the ones still waiting for their node and those already captured for grad().
    for (const waiting of pending.values()) waiting.dispose();
    for (const done of captured.values()) done.dispose();
    throw error;
  }
  return captured;
}

function normaliseOutputs(
  outputs: Tensor | readonly Tensor[],
  gradOutputs: readonly Tensor[] | undefined,
  op: string,
): { outputs: Tensor[]; gradOutputs: Tensor[]; owned: Tensor[] } {
  const list = Array.isArray(outputs) ? [...(outputs as Tensor[])] : [outputs as Tensor];
  if (list.length === 0) throw new Error(`${op}: no outputs given`);
  const owned: Tensor[] = [];
  const grads = list.map((output, index) => {
    if (!(output instanceof Tensor)) throw new TypeError(`${op}: outputs[${index}] is not a Tensor`);
    output.assertAlive(op);
    if (!output.requiresGrad) {
      throw new Error(`${op}: outputs[${index}] does not require grad and has no graph (was it computed under noGrad?)`);
    }
    const given = gradOutputs?.[index];
    if (given !== undefined) {
      if (!(given instanceof Tensor)) throw new TypeError(`${op}: gradOutputs[${index}] is not a Tensor`);
      if (given.size !== output.size) {
        throw new Error(
          `${op}: gradOutputs[${index}] has shape ${formatShape(given.shape)} but the output has ${formatShape(output.shape)}`,
        );
      }
      if (given.device !== output.device) throw new Error(`${op}: gradOutputs[${index}] is on ${given.device}, output on ${output.device}`);
      // The engine consumes (disposes) the gradients it is given, so hand it a view.
      return reshape(given, output.shape);
    }
    if (output.size !== 1) {
      throw new Error(`${op}: gradient can be implicit only for one-element outputs; output ${index} has shape ${formatShape(output.shape)}`);
    }
    const one = onesLike(output);
    owned.push(one);
    return one;
  });
  if (gradOutputs && gradOutputs.length > list.length) throw new Error(`${op}: more gradOutputs than outputs`);
  return { outputs: list, gradOutputs: grads, owned };
}

/**
 * Gradients of outputs with respect to inputs (like torch.autograd.grad). With createGraph the
 * results carry their own graph and can be differentiated again.
 */
export function grad(
  outputs: Tensor | Tensor[],
  inputs: Tensor[],
  options: { gradOutputs?: Tensor[]; createGraph?: boolean; retainGraph?: boolean; allowUnused?: boolean } = {},
): Tensor[] {
  if (!Array.isArray(inputs)) throw new TypeError('grad: inputs must be an array of tensors');
  inputs.forEach((input, index) => {
    if (!(input instanceof Tensor)) throw new TypeError(`grad: inputs[${index}] is not a Tensor`);
    if (!input.requiresGrad) throw new Error(`grad: inputs[${index}] (shape ${formatShape(input.shape)}) does not require grad`);
  });
  const createGraph = options.createGraph ?? false;
  const retainGraph = options.retainGraph ?? createGraph;
  const prepared = normaliseOutputs(outputs, options.gradOutputs, 'grad');
  const body = () => withProfilePhase('backward', () =>
    run(prepared.outputs, prepared.gradOutputs, { retainGraph, createGraph, accumulateIntoLeaves: false, inputs }));
  const captured = createGraph ? enableGrad(body) : noGrad(body);
  return inputs.map((input, index) => {
    const result = captured.get(input);
    if (result) return result;
    if (options.allowUnused) return zerosLike(input);
    throw new Error(
      `grad: inputs[${index}] (shape ${formatShape(input.shape)}) is not reachable from the outputs; pass { allowUnused: true } to get zeros`,
    );
  });
}

setBackwardHook((tensor, gradient, retainGraph, createGraph) => {
  const prepared = normaliseOutputs(tensor, gradient ? [gradient] : undefined, 'backward');
  const body = () => withProfilePhase('backward', () =>
    run(prepared.outputs, prepared.gradOutputs, {
      retainGraph: retainGraph || createGraph,
      createGraph,
      accumulateIntoLeaves: true,
      inputs: [],
    }));
  if (createGraph) enableGrad(body);
  else noGrad(body);
});
