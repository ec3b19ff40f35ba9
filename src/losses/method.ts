// The contract between a training method and the trainer.
//
// A Method is built once per run from its registry entry (registry.ts). It owns:
//   - its loss: loss(outputs, batch, context) → the scalar to back-propagate + named parts;
//   - its modules, under one root `criterion` (like the reference's `criterion_mcl`): saved as
//     `criterion.<state-dict name>` in criterion.safetensors beside net<i>.safetensors, put in
//     train/eval mode with the networks;
//   - its parameter sets: named lists of parameters, one optimizer each (the trainer builds an
//     SGD per set from the run's SGD flags plus the set's overrides; all are checkpointed);
//   - optionally its own training step. Without one the trainer runs the standard step
//     (src/train/step.ts): forward → loss → backward → update. A method that needs more (L-MCL:
//     the main update, then every k batches a meta phase) writes `step` and may call
//     `context.standardStep(batch)` for the ordinary part.
// The step contract lives here, not in train/, because methods implement it and this layer must
// not import the trainer.
import type { Module } from '../nn/module.js';
import type { SGD, SGDOptions } from '../optim/sgd.js';
import type { Tensor } from '../tensor/tensor.js';
import type { IndexInput } from '../tensor/index_tensor.js';
import type { Student, StudentOutput } from '../models/types.js';
import type { LossParts } from './parts.js';

/** One training batch as the step sees it. */
export interface StepBatch {
  /** Normalised images [B, C, H, W]. */
  x: Tensor;
  /** Labels: the trainer makes one IndexTensor per batch on the run's device (so no op copies them
   *  there again); a host Int32Array also works (each op then copies it for its call). */
  y: IndexInput;
  /** Dataset indices of the batch items (memory banks address their rows with them). */
  indices: Int32Array;
}

/** What the trainer tells a step (and a loss) about where the run is. */
export interface StepContext {
  /** Zero-based epoch. */
  epoch: number;
  /** Global step: optimizer steps since the start of the run, before this one. */
  step: number;
  /** Zero-based index of this batch in its epoch (L-MCL: the meta phase runs when batchIndex % metaFreq === 0). */
  batchIndex: number;
  batchesPerEpoch: number;
  /** This epoch's learning rate (already set on every optimizer). */
  lr: number;
  classes: number;
  networks: readonly Student[];
  /** One optimizer per parameter set, by set name, in the method's order. */
  optimizers: ReadonlyMap<string, SGD>;
  /** The standard step on this batch with this method (forward → loss → backward → every optimizer's update). */
  standardStep(batch: StepBatch): StepResult;
}

/** What a step returns. Nothing in it has been read to the host. */
export interface StepResult {
  /** The main forward's outputs, one per network (the trainer counts training top-1 from the final heads). */
  outputs: StudentOutput[];
  /** Named loss parts; must include 'total' (the trainer checks it for NaN/Inf at read time). */
  parts: LossParts;
}

export type TrainingStep = (batch: StepBatch, context: StepContext) => StepResult;

/** A method's head of one kind: logits [B, C] per network. */
export interface EvaluationHead {
  /** Lower-case name (metrics key and summary.csv column suffix). */
  name: string;
  logits: Tensor[];
}

export interface MethodLoss {
  loss: Tensor;
  parts: LossParts;
}

/** A named set of parameters with its own optimizer. */
export interface ParameterSet {
  /** Stable name (lower case, e.g. 'main', 'loss_weight'): keys its optimizer state in checkpoints. */
  readonly name: string;
  readonly parameters: readonly Tensor[];
  /** Overrides of the run's SGD settings (--momentum, --no-nesterov, --weight-decay); lr follows the schedule. */
  readonly optimizer?: Partial<Pick<SGDOptions, 'momentum' | 'nesterov' | 'weightDecay' | 'dampening'>>;
}

export interface Method {
  readonly name: string;
  /** The method's own modules (null: none). Saved as `criterion.<name>`; moves with train()/eval(). */
  readonly criterion: Module | null;
  /** Every trainable parameter (the networks' included) in exactly one set; the first set is the main one. */
  parameterSets(): readonly ParameterSet[];
  loss(outputs: StudentOutput[], batch: StepBatch, context: StepContext): MethodLoss;
  /** The method's own training step (absent: the standard step). */
  readonly step?: TrainingStep;
  /**
   * Extra heads the method builds from the networks' outputs, evaluated beside them on the test
   * split (L-MCL: 'aggregator', one logits tensor per network). Called in eval mode, no grad.
   */
  evaluationHeads?(outputs: StudentOutput[]): EvaluationHead[];
  /** Training (true) or evaluation mode for the criterion's modules. */
  train(mode?: boolean): void;
  eval(): void;
  /** Releases the criterion's tensors. */
  dispose(): void;
}

/** What a registry entry's create() receives. */
export interface MethodContext<Options> {
  networks: readonly Student[];
  classes: number;
  options: Options;
  /** Labels of the training split by dataset index (memory banks: one row per image, keys by class). */
  trainLabels?: Int32Array;
  /** The run's --seed (memory banks draw their keys from it and the step). */
  seed?: number;
}

/**
 * The usual shape of a method: optional criterion modules, one 'main' parameter set over the
 * networks and the criterion (one SGD, as the reference's `trainable_list`), the standard step.
 */
export abstract class CohortMethod implements Method {
  abstract readonly name: string;
  readonly criterion: Module | null = null;
  protected readonly networks: readonly Student[];

  constructor(networks: readonly Student[]) {
    this.networks = networks;
  }

  parameterSets(): readonly ParameterSet[] {
    const parameters = [...this.networks.flatMap((net) => net.parameters()), ...(this.criterion?.parameters() ?? [])];
    return [{ name: 'main', parameters }];
  }

  abstract loss(outputs: StudentOutput[], batch: StepBatch, context: StepContext): MethodLoss;

  train(mode = true): void {
    this.criterion?.train(mode);
  }

  eval(): void {
    this.train(false);
  }

  dispose(): void {
    this.criterion?.dispose();
  }
}
