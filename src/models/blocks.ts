// Shared building blocks of the ResNet students (and of any student with the same layout):
// residual blocks, the stage builder, weight initialisation, the L-MCL auxiliary classifier and
// how a student assembles its stage outputs. See
// docs/method.md §2.1 and §5.
//
// Names follow the authors' PyTorch modules (winycg/L-MCL models/*resnet*.py), so state dicts
// line up with theirs:
//   block:      conv1, bn1, conv2, bn2 (, conv3, bn3), downsample.0 (1×1 conv), downsample.1 (BN)
//   stage:      a Sequential of blocks '0', '1', ...
//   auxiliary:  block_extractor{k} (a Sequential of stages), fc{k}, k = 1..S−1
// Without auxiliary branches a student is the plain backbone (conv1, layer1, ..., fc). With them
// it is the reference's L-MCL wrapper: the backbone under 'backbone.' and the branches under
// 'auxiliary_classifier.' (AuxiliaryStudent below), so state dicts map one-to-one onto the
// authors' models; dropping 'auxiliary_classifier.*' and the 'backbone.' prefix gives the
// deployable plain model (method.md §8.13). Every model family in src/models uses this layout.
// ReLU and pooling hold no parameters and are applied functionally (no module entries).
import { Module } from '../nn/module.js';
import { Conv2d } from '../nn/conv.js';
import { BatchNorm2d } from '../nn/batchnorm.js';
import { Linear } from '../nn/linear.js';
import { Sequential } from '../nn/container.js';
import * as init from '../nn/init.js';
import * as F from '../ops/functional.js';
import type { Tensor } from '../tensor/tensor.js';
import type { ModelOptions, Student, StudentOutput } from './types.js';

// ---- residual blocks ----------------------------------------------------------------------------

/** A residual block: maps [B, inPlanes, H, W] to [B, planes·expansion, H/stride, W/stride]. */
export interface ResidualBlock extends Module {
  forward(x: Tensor): Tensor;
}

/** How a block type is built (BasicBlock and Bottleneck satisfy it). */
export interface BlockType {
  /** Output channels = planes · expansion. */
  readonly expansion: number;
  new (inPlanes: number, planes: number, stride?: number, downsample?: Module | null): ResidualBlock;
}

/** 3×3 convolution, padding 1, no bias. */
export function conv3x3(inPlanes: number, outPlanes: number, stride = 1): Conv2d {
  return new Conv2d(inPlanes, outPlanes, 3, { stride, padding: 1, bias: false });
}

/** 1×1 convolution, no bias. */
export function conv1x1(inPlanes: number, outPlanes: number, stride = 1): Conv2d {
  return new Conv2d(inPlanes, outPlanes, 1, { stride, bias: false });
}

/**
 * The projection shortcut of the reference (option B): Sequential(1×1 conv with the block's
 * stride, BN), named downsample.0 / downsample.1.
 */
export function projectionShortcut(inPlanes: number, outPlanes: number, stride: number): Sequential {
  return new Sequential(conv1x1(inPlanes, outPlanes, stride), new BatchNorm2d(outPlanes));
}

/**
 * BasicBlock (expansion 1): conv3×3(stride)-BN-ReLU-conv3×3-BN, plus the shortcut (identity, or
 * `downsample`), then ReLU.
 */
export class BasicBlock extends Module implements ResidualBlock {
  static readonly expansion = 1;
  readonly conv1: Conv2d;
  readonly bn1: BatchNorm2d;
  readonly conv2: Conv2d;
  readonly bn2: BatchNorm2d;
  readonly downsample: Module | null;

  constructor(inPlanes: number, planes: number, stride = 1, downsample: Module | null = null) {
    super();
    this.conv1 = this.registerModule('conv1', conv3x3(inPlanes, planes, stride));
    this.bn1 = this.registerModule('bn1', new BatchNorm2d(planes));
    this.conv2 = this.registerModule('conv2', conv3x3(planes, planes));
    this.bn2 = this.registerModule('bn2', new BatchNorm2d(planes));
    this.downsample = this.registerModule('downsample', downsample);
  }

  override forward(x: Tensor): Tensor {
    const hidden = this.bn1.forward(this.conv1.forward(x), { relu: true });
    const identity = this.downsample ? (this.downsample.forward(x) as Tensor) : x;
    // relu(bn2(conv2(hidden)) + identity), the add and the ReLU fused into bn2's pass.
    return this.bn2.forward(this.conv2.forward(hidden), { residual: identity, relu: true });
  }
}

/**
 * Bottleneck (expansion 4, torchvision's "v1.5": the stride sits on the 3×3 conv):
 * conv1×1-BN-ReLU-conv3×3(stride)-BN-ReLU-conv1×1(→4·planes)-BN, plus the shortcut, then ReLU.
 */
export class Bottleneck extends Module implements ResidualBlock {
  static readonly expansion = 4;
  readonly conv1: Conv2d;
  readonly bn1: BatchNorm2d;
  readonly conv2: Conv2d;
  readonly bn2: BatchNorm2d;
  readonly conv3: Conv2d;
  readonly bn3: BatchNorm2d;
  readonly downsample: Module | null;

  constructor(inPlanes: number, planes: number, stride = 1, downsample: Module | null = null) {
    super();
    this.conv1 = this.registerModule('conv1', conv1x1(inPlanes, planes));
    this.bn1 = this.registerModule('bn1', new BatchNorm2d(planes));
    this.conv2 = this.registerModule('conv2', conv3x3(planes, planes, stride));
    this.bn2 = this.registerModule('bn2', new BatchNorm2d(planes));
    this.conv3 = this.registerModule('conv3', conv1x1(planes, planes * Bottleneck.expansion));
    this.bn3 = this.registerModule('bn3', new BatchNorm2d(planes * Bottleneck.expansion));
    this.downsample = this.registerModule('downsample', downsample);
  }

  override forward(x: Tensor): Tensor {
    let out = this.bn1.forward(this.conv1.forward(x), { relu: true });
    out = this.bn2.forward(this.conv2.forward(out), { relu: true });
    const identity = this.downsample ? (this.downsample.forward(x) as Tensor) : x;
    return this.bn3.forward(this.conv3.forward(out), { residual: identity, relu: true });
  }
}

/**
 * One stage (the reference's `_make_layer`): `blocks` blocks of `planes`; the first has the
 * stride and, when the stride is not 1 or the channels change, a projection shortcut.
 * Returns the stage and its output channels (planes · expansion).
 */
export function makeStage(block: BlockType, inPlanes: number, planes: number, blocks: number, stride = 1): { stage: Sequential; outPlanes: number } {
  if (!Number.isInteger(blocks) || blocks < 1) throw new Error(`makeStage: blocks must be a positive integer, got ${String(blocks)}`);
  const outPlanes = planes * block.expansion;
  const downsample = stride !== 1 || inPlanes !== outPlanes ? projectionShortcut(inPlanes, outPlanes, stride) : null;
  const stage = new Sequential(new block(inPlanes, planes, stride, downsample));
  for (let index = 1; index < blocks; index += 1) stage.append(new block(outPlanes, planes));
  return { stage, outPlanes };
}

// ---- initialisation -----------------------------------------------------------------------------

export interface ResNetInitOptions {
  /** Set every Linear bias to 0 (the CIFAR auxiliary classifier's rule). Default false. */
  zeroLinearBias?: boolean;
}

/**
 * The ResNet rule (method.md §5.1): every Conv2d weight Kaiming-normal (fan_out, relu), i.e.
 * N(0, 2 / (k²·C_out)); every BatchNorm2d weight 1 and bias 0. Linear layers keep PyTorch's
 * default init (bias zeroed with zeroLinearBias).
 */
export function initResNetWeights(root: Module, options: ResNetInitOptions = {}): void {
  for (const module of root.modules()) {
    if (module instanceof Conv2d) {
      init.kaimingNormal(module.weight, { mode: 'fanOut', nonlinearity: 'relu' });
      if (module.bias) init.zeros(module.bias);
    } else if (module instanceof BatchNorm2d) {
      if (module.weight) init.ones(module.weight);
      if (module.bias) init.zeros(module.bias);
    } else if (module instanceof Linear && options.zeroLinearBias && module.bias) {
      init.zeros(module.bias);
    }
  }
}

// ---- options ------------------------------------------------------------------------------------

/** ModelOptions with defaults applied and checked. */
export interface ResolvedModelOptions {
  numClasses: number;
  inChannels: number;
  imageSize: number;
  auxiliary: boolean;
}

export function resolveModelOptions(
  options: ModelOptions,
  defaultImageSize: number,
  architecture: string,
  minimumImageSize = 1,
): ResolvedModelOptions {
  if (options === null || typeof options !== 'object') throw new TypeError(`${architecture}: options must be an object`);
  const numClasses = options.numClasses;
  const inChannels = options.inChannels ?? 3;
  const imageSize = options.imageSize ?? defaultImageSize;
  const auxiliary = options.auxiliary ?? false;
  const positive = (value: unknown, name: string): void => {
    if (typeof value !== 'number' || !Number.isInteger(value) || value < 1) {
      throw new TypeError(`${architecture}: ${name} must be a positive integer, got ${String(value)}`);
    }
  };
  positive(numClasses, 'numClasses');
  positive(inChannels, 'inChannels');
  positive(imageSize, 'imageSize');
  if (imageSize < minimumImageSize) throw new Error(`${architecture}: imageSize must be at least ${minimumImageSize}, got ${imageSize}`);
  if (typeof auxiliary !== 'boolean') throw new TypeError(`${architecture}: auxiliary must be a boolean, got ${String(auxiliary)}`);
  return { numClasses, inChannels, imageSize, auxiliary };
}

// ---- the L-MCL auxiliary classifier ---------------------------------------------------------------

/** Global average pool to [B, C]. */
export function globalAveragePool(x: Tensor): Tensor {
  return F.flatten(F.adaptiveAvgPool2d(x, 1), 1);
}

/**
 * The reference's Auxiliary_Classifier: branch k (k = 1..S−1) is `block_extractor{k}` (fresh
 * copies of the backbone stages after stage k, or whatever the model specifies), then GAP, then
 * its own `fc{k}`. forward takes the backbone's intermediate maps in stage order.
 */
export class AuxiliaryClassifier extends Module {
  readonly extractors: Module[] = [];
  readonly classifiers: Linear[] = [];

  constructor(extractors: readonly Module[], featureDim: number, numClasses: number) {
    super();
    extractors.forEach((extractor, index) => {
      this.extractors.push(this.registerModule(`block_extractor${index + 1}`, extractor));
    });
    extractors.forEach((_, index) => {
      this.classifiers.push(this.registerModule(`fc${index + 1}`, new Linear(featureDim, numClasses)));
    });
  }

  get branchCount(): number {
    return this.extractors.length;
  }

  override forward(maps: readonly Tensor[]): StudentOutput {
    return runBranches('AuxiliaryClassifier', maps, this.extractors.map((extractor, index) =>
      [(map: Tensor) => globalAveragePool(extractor.forward(map) as Tensor), this.classifiers[index]!] as const));
  }
}

/** The auxiliary branches of a student: one feature and logits per intermediate map. */
export interface AuxiliaryBranches extends Module {
  readonly branchCount: number;
  forward(maps: readonly Tensor[]): StudentOutput;
}

/**
 * Runs branch k on map k: feature = pooledFeature_k(map) ([B, d]), logits = fc_k(feature). The
 * one loop behind every model family's Auxiliary_Classifier.
 */
export function runBranches(
  owner: string,
  maps: readonly Tensor[],
  branches: readonly (readonly [(map: Tensor) => Tensor, Linear])[],
): StudentOutput {
  if (maps.length !== branches.length) throw new Error(`${owner}: expected ${branches.length} feature maps, got ${maps.length}`);
  const features: Tensor[] = [];
  const logits: Tensor[] = [];
  maps.forEach((map, index) => {
    const [pooledFeature, fc] = branches[index]!;
    const feature = pooledFeature(map);
    features.push(feature);
    logits.push(fc.forward(feature));
  });
  return { features, logits };
}

// ---- students ---------------------------------------------------------------------------------

/**
 * The stage lists a Student returns: the auxiliary stages (shallowest first, when there are
 * any) followed by the backbone's own feature and logits.
 */
export function stageOutput(auxiliary: StudentOutput | null, feature: Tensor, logits: Tensor): StudentOutput {
  if (!auxiliary) return { features: [feature], logits: [logits] };
  return { features: [...auxiliary.features, feature], logits: [...auxiliary.logits, logits] };
}

/** What a backbone's forwardStages returns. */
export interface BackboneStages {
  /** The maps fed to the auxiliary branches, shallowest first. */
  maps: Tensor[];
  /** The backbone's own pooled feature and logits. */
  feature: Tensor;
  logits: Tensor;
}

/** A backbone that hands its intermediate stage maps to auxiliary branches. */
export interface StagedBackbone extends Module {
  readonly featureDim: number;
  forwardStages(x: Tensor): BackboneStages;
}

/**
 * The reference's L-MCL student (e.g. ResNet_Auxiliary): children 'backbone' and
 * 'auxiliary_classifier'; forward returns [aux1, ..., aux(S−1), backbone].
 */
export class AuxiliaryStudent extends Module implements Student {
  readonly architecture: string;
  readonly stageCount: number;
  readonly featureDim: number;
  readonly backbone: StagedBackbone;
  readonly auxiliaryClassifier: AuxiliaryBranches;

  constructor(architecture: string, backbone: StagedBackbone, auxiliaryClassifier: AuxiliaryBranches) {
    super();
    this.architecture = architecture;
    this.backbone = this.registerModule('backbone', backbone);
    this.auxiliaryClassifier = this.registerModule('auxiliary_classifier', auxiliaryClassifier);
    this.featureDim = backbone.featureDim;
    this.stageCount = auxiliaryClassifier.branchCount + 1;
  }

  override forward(x: Tensor): StudentOutput {
    const { maps, feature, logits } = this.backbone.forwardStages(x);
    return stageOutput(this.auxiliaryClassifier.forward(maps), feature, logits);
  }
}
