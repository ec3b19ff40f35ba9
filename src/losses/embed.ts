// The projection ("Embed") head of MCL and L-MCL (method.md §0): z = ℓ2norm(W2·ReLU(W1·f + b1) + b2),
// W1: d → featDim, W2: featDim → featDim (the reference's `Embed`, `--feat-dim 128`). PyTorch's
// default Linear init, as the reference. State-dict names: `0.weight`, `0.bias`, `2.weight`,
// `2.bias` (a Sequential of Linear, ReLU, Linear), so a criterion holding a list of heads saves
// `embed.<n>.0.weight` etc.
// The reference divides by ‖x‖ with no epsilon; we use F.normalize's eps = 1e-12 (PyTorch's
// default), which differs only for a projection of norm < 1e-12, where the reference gives NaN.
import * as F from '../ops/functional.js';
import { Sequential } from '../nn/container.js';
import { ReLU } from '../nn/activation.js';
import { Linear } from '../nn/linear.js';
import type { Tensor } from '../tensor/tensor.js';

export class EmbedHead extends Sequential {
  readonly inputDim: number;
  readonly featureDim: number;

  constructor(inputDim: number, featureDim: number) {
    super(new Linear(inputDim, featureDim), new ReLU(), new Linear(featureDim, featureDim));
    this.inputDim = inputDim;
    this.featureDim = featureDim;
  }

  /** Unit-norm embeddings [B, featDim] of pooled features [B, d]. */
  override forward(features: Tensor): Tensor {
    return F.normalize(super.forward(features), { dim: 1 });
  }
}
