// Activation layers.
import { Module } from './module.js';
import * as F from '../ops/functional.js';
import type { Tensor } from '../tensor/tensor.js';

/** max(x, 0), like torch.nn.ReLU (never in place). */
export class ReLU extends Module {
  override forward(x: Tensor): Tensor {
    return F.relu(x);
  }
}

/** 1 / (1 + e^-x), like torch.nn.Sigmoid. */
export class Sigmoid extends Module {
  override forward(x: Tensor): Tensor {
    return F.sigmoid(x);
  }
}

/** tanh(x), like torch.nn.Tanh. */
export class Tanh extends Module {
  override forward(x: Tensor): Tensor {
    return F.tanh(x);
  }
}
