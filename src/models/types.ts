// The contract every student model implements (shared by the model zoo, the trainer and the
// L-MCL objectives). See docs/method.md §2.1 and §5.
import type { Tensor } from '../tensor/tensor.js';
import type { Module } from '../nn/module.js';

export interface StudentOutput {
  /** Per stage, the pooled (global-average) feature [B, d]; the last entry is the backbone's. */
  features: Tensor[];
  /** Per stage, the logits [B, classes]; the last entry is the backbone's classifier. */
  logits: Tensor[];
}

export interface ModelOptions {
  /** Number of classes of the classifier heads. */
  numClasses: number;
  /** Input channels (3 for CIFAR/ImageNet, 1 for Fashion-MNIST). */
  inChannels?: number;
  /** Input height = width (32 for CIFAR; 28 for Fashion-MNIST). Models must accept it. */
  imageSize?: number;
  /** Build the L-MCL auxiliary branches (one per intermediate stage). Default false: one stage. */
  auxiliary?: boolean;
}

/** A student network: an nn.Module whose forward returns features and logits per stage. */
export interface Student extends Module {
  /** Registry name, e.g. 'resnet32'. */
  readonly architecture: string;
  /** Number of stages forward() returns (1 without auxiliary branches). */
  readonly stageCount: number;
  /** Width d of every stage feature (all stages share it, method.md §0). */
  readonly featureDim: number;
  forward(x: Tensor): StudentOutput;
}

export type ModelFactory = (options: ModelOptions) => Student;
