// A stand-in student for L-MCL tests: `stages` tanh stages (a BatchNorm1d after the first), one
// linear head per stage. Smooth in every parameter, so finite differences of a meta step converge
// (a ReLU network's post-trajectory loss jumps where a unit flips).
import * as F from '../../src/ops/functional.js';
import { Module } from '../../src/nn/module.js';
import { ModuleList } from '../../src/nn/container.js';
import { Linear } from '../../src/nn/linear.js';
import { BatchNorm1d } from '../../src/nn/batchnorm.js';
import type { Tensor } from '../../src/tensor/tensor.js';
import type { StudentOutput } from '../../src/models/types.js';

export class SmoothStudent extends Module {
  readonly architecture = 'smooth';
  readonly stageCount: number;
  readonly featureDim: number;
  readonly layers: ModuleList<Linear>;
  readonly heads: ModuleList<Linear>;
  readonly norm: BatchNorm1d;

  constructor(inputs: number, width: number, options: { stages: number; classes: number }) {
    super();
    this.stageCount = options.stages;
    this.featureDim = width;
    this.layers = this.registerModule('layers', new ModuleList(Array.from({ length: options.stages }, (_, s) => new Linear(s === 0 ? inputs : width, width))));
    this.norm = this.registerModule('norm', new BatchNorm1d(width));
    this.heads = this.registerModule('heads', new ModuleList(Array.from({ length: options.stages }, () => new Linear(width, options.classes))));
  }

  override forward(x: Tensor): StudentOutput {
    const features: Tensor[] = [];
    let h = x;
    for (let s = 0; s < this.stageCount; s += 1) {
      h = F.tanh(this.layers.at(s).forward(h));
      if (s === 0) h = this.norm.forward(h);
      features.push(h);
    }
    return { features, logits: features.map((f, s) => this.heads.at(s).forward(f)) };
  }
}
