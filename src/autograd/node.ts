// A node of the autograd graph: one recorded op, its inputs and what it saved for backward.
//
// The contract (readable in one sitting, micrograd-style): an op computes its output, then calls
// recordOperation(...) with its inputs, the tensors its backward needs and a backward function.
// The backward function maps the gradient of the output to one gradient per input (or null) and
// is written with ordinary differentiable ops, so running it with grad mode on records a graph
// of its own: that is how higher-order gradients work.
import { isGradEnabled } from './mode.js';
import { formatShape, type Tensor } from '../tensor/tensor.js';

export interface BackwardContext {
  /** Tensors saved for backward, in the order given to recordOperation. */
  saved: readonly Tensor[];
  /** needsInputGrad[i]: whether input i needs a gradient (skip the work otherwise). */
  needsInputGrad: readonly boolean[];
  /** True when the backward runs with createGraph (its ops are being recorded). */
  createGraph: boolean;
}

export type BackwardFunction = (gradOutput: Tensor, context: BackwardContext) => (Tensor | null)[];

let nextNodeId = 0;

export class GraphNode {
  readonly id = nextNodeId++;
  readonly name: string;
  readonly inputs: readonly Tensor[];
  readonly needsInputGrad: readonly boolean[];
  readonly outputShape: readonly number[];
  private savedTensors: Tensor[] | null;
  private readonly savedVersions: number[];
  private readonly backwardFunction: BackwardFunction;
  private readonly onRelease: (() => void) | undefined;
  /**
   * Live tensors whose gradFn is this node plus live consumer nodes with an edge to it. When it
   * drops to zero nobody can run this node's backward any more: its saved tensors are released
   * and its own edges dropped (like PyTorch freeing a graph when the last reference goes).
   */
  private holders = 0;
  private edgesDropped = false;

  constructor(
    name: string,
    inputs: readonly Tensor[],
    saved: readonly Tensor[],
    outputShape: readonly number[],
    backward: BackwardFunction,
    onRelease?: () => void,
  ) {
    this.name = name;
    this.inputs = [...inputs]; // callers may reuse their array
    this.needsInputGrad = inputs.map((input) => input.requiresGrad);
    this.outputShape = outputShape;
    for (const tensor of saved) tensor.retain();
    this.savedTensors = [...saved];
    this.savedVersions = saved.map((tensor) => tensor.version);
    this.backwardFunction = backward;
    this.onRelease = onRelease;
    inputs.forEach((input, index) => {
      if (this.needsInputGrad[index] && input.gradFn) input.gradFn.addHolder();
    });
  }

  /** Internal: a tensor or consumer node now refers to this node. */
  addHolder(): void {
    this.holders += 1;
  }

  /** Internal: a tensor or consumer node let go; frees the unreachable part of the graph. */
  dropHolder(): void {
    const pending: GraphNode[] = [this];
    while (pending.length > 0) {
      const node = pending.pop()!;
      node.holders -= 1;
      if (node.holders > 0 || node.edgesDropped) continue;
      node.edgesDropped = true;
      node.release();
      node.inputs.forEach((input, index) => {
        if (node.needsInputGrad[index] && input.gradFn) pending.push(input.gradFn);
      });
    }
  }

  get released(): boolean {
    return this.savedTensors === null;
  }

  /**
   * Runs the backward function for this node. `wanted` narrows needsInputGrad to the inputs the
   * current backward pass needs (grad() skips paths that lead to none of its inputs).
   */
  apply(gradOutput: Tensor, createGraph: boolean, wanted: readonly boolean[] = this.needsInputGrad): (Tensor | null)[] {
    if (this.savedTensors === null && this.savedVersions.length > 0) {
      throw new Error(
        `backward through ${this.name} a second time: its saved tensors were already freed. ` +
          'Pass { retainGraph: true } (or createGraph) to the first backward/grad call.',
      );
    }
    const saved = this.savedTensors ?? [];
    saved.forEach((tensor, index) => {
      if (tensor.version !== this.savedVersions[index]) {
        throw new Error(
          `${this.name} backward: a tensor of shape ${formatShape(tensor.shape)} saved for backward was modified ` +
            'in place after it was saved (e.g. by an optimizer step); compute gradients before updating it',
        );
      }
    });
    const grads = this.backwardFunction(gradOutput, {
      saved,
      needsInputGrad: wanted,
      createGraph,
    });
    if (grads.length !== this.inputs.length) {
      throw new Error(`lmcl internal: ${this.name} backward returned ${grads.length} gradients for ${this.inputs.length} inputs`);
    }
    grads.forEach((grad, index) => {
      const input = this.inputs[index]!;
      if (grad && grad.size !== input.size) {
        throw new Error(
          `lmcl internal: ${this.name} backward gave gradient ${formatShape(grad.shape)} for input ${formatShape(input.shape)}`,
        );
      }
    });
    return grads;
  }

  /** Drops the saved tensors (after backward ran without retainGraph). */
  release(): void {
    const saved = this.savedTensors;
    if (saved === null) return;
    // Cleared first: releasing the node's own saved output re-enters here through dropHolder().
    this.savedTensors = null;
    for (const tensor of saved) tensor.release();
    this.onRelease?.();
  }
}

/**
 * Links output to its inputs in the graph when grad mode is on and some input requires grad.
 * Returns output. `onRelease` frees op-private buffers (e.g. max-pool indices) when the node is
 * released, or immediately when no graph is recorded.
 */
export function recordOperation(
  name: string,
  output: Tensor,
  inputs: readonly Tensor[],
  saved: readonly Tensor[],
  backward: BackwardFunction,
  onRelease?: () => void,
): Tensor {
  if (!isGradEnabled() || !inputs.some((input) => input.requiresGrad)) {
    onRelease?.();
    return output;
  }
  const selfRetains = saved.filter((tensor) => tensor === output).length;
  output.attachGraph(new GraphNode(name, inputs, saved, output.shape, backward, onRelease), selfRetains);
  return output;
}
