// CIFAR ResNets (method.md §5.1; reference: winycg/L-MCL models/lmcl_resnet_cifar.py).
//
//   stem     conv3×3(inChannels→16, s1, p1) + BN + ReLU          (no max-pool)
//   layer1   n blocks, planes 16, stride 1
//   layer2   n blocks, planes 32, stride 2
//   layer3   n blocks, planes 64, stride 2
//   head     GAP → fc (64·expansion → classes)
// Shortcuts: identity, or 1×1 conv (with the block's stride) + BN when the shape changes
// (`downsample.0/1`, the reference's option B).
//   resnet8/14/20/32/56: BasicBlock, n = 1/2/3/5/9, d = 64.
//   resnet110: Bottleneck (1×1 → 3×3(stride) → 1×1, expansion 4), n = 12, d = 256
//     (the reference's ResNet-110 is this bottleneck variant, depth 9n+2).
// Parameter names: conv1, bn1, layer{1,2,3}.{i}.{conv1,bn1,conv2,bn2[,conv3,bn3],downsample.{0,1}}, fc
// (lmcl_resnet_cifar.py's; the plain resnet_cifar.py calls the head `classifier`, which the alias
// table in src/io/aliases.ts maps to fc when loading).
//
// auxiliary: true builds the reference's L-MCL student (AuxiliaryStudent in blocks.ts): this
// backbone under 'backbone.' and the reference's Auxiliary_Classifier under 'auxiliary_classifier.':
//   block_extractor1 = Sequential(copy of layer2, copy of layer3)  (fed from layer1's output)
//   block_extractor2 = Sequential(copy of layer3)                  (fed from layer2's output)
//   fc1, fc2: Linear(d → classes)
// forward returns [aux1, aux2, backbone] (stageCount 3), every feature of width d.
// Init: backbone convs Kaiming-normal(fan_out, relu), BN (1, 0), fc PyTorch default; auxiliary
// convs N(0, 2/(k²·C_out)) (the same distribution), BN (1, 0), fc default weight and zero bias.
import { Module } from '../nn/module.js';
import { Conv2d } from '../nn/conv.js';
import { BatchNorm2d } from '../nn/batchnorm.js';
import { Linear } from '../nn/linear.js';
import { Sequential } from '../nn/container.js';
import * as F from '../ops/functional.js';
import type { Tensor } from '../tensor/tensor.js';
import type { ModelFactory, ModelOptions, Student, StudentOutput } from './types.js';
import {
  AuxiliaryClassifier, AuxiliaryStudent, BasicBlock, Bottleneck, globalAveragePool, initResNetWeights, makeStage, resolveModelOptions,
  stageOutput, type BlockType, type StagedBackbone, type BackboneStages,
} from './blocks.js';

/** Stem width and the planes of the three stages (the reference's num_filters). */
const STEM_WIDTH = 16;
const STAGE_PLANES = [16, 32, 64] as const;

export interface CifarResNetConfig {
  block: BlockType;
  /** Blocks per stage (n). */
  blocksPerStage: number;
}

/** The reference's CIFAR Auxiliary_Classifier: fresh copies of layer2+layer3 and of layer3. */
export function cifarAuxiliaryClassifier(config: CifarResNetConfig, numClasses: number): AuxiliaryClassifier {
  const { block, blocksPerStage } = config;
  const copy2 = makeStage(block, STAGE_PLANES[0] * block.expansion, STAGE_PLANES[1], blocksPerStage, 2);
  const copy3a = makeStage(block, copy2.outPlanes, STAGE_PLANES[2], blocksPerStage, 2);
  const copy3b = makeStage(block, STAGE_PLANES[1] * block.expansion, STAGE_PLANES[2], blocksPerStage, 2);
  const classifier = new AuxiliaryClassifier(
    [new Sequential(copy2.stage, copy3a.stage), new Sequential(copy3b.stage)],
    STAGE_PLANES[2] * block.expansion,
    numClasses,
  );
  initResNetWeights(classifier, { zeroLinearBias: true });
  return classifier;
}

/** A CIFAR ResNet student: the reference's ResNet, plus its Auxiliary_Classifier when asked. */
export class CifarResNet extends Module implements Student, StagedBackbone {
  readonly architecture: string;
  readonly stageCount: number;
  readonly featureDim: number;
  readonly conv1: Conv2d;
  readonly bn1: BatchNorm2d;
  readonly layer1: Sequential;
  readonly layer2: Sequential;
  readonly layer3: Sequential;
  readonly fc: Linear;

  constructor(architecture: string, config: CifarResNetConfig, options: ModelOptions) {
    super();
    const resolved = resolveModelOptions(options, 32, architecture);
    this.architecture = architecture;
    const { block, blocksPerStage } = config;
    this.conv1 = this.registerModule('conv1', new Conv2d(resolved.inChannels, STEM_WIDTH, 3, { padding: 1, bias: false }));
    this.bn1 = this.registerModule('bn1', new BatchNorm2d(STEM_WIDTH));
    const first = makeStage(block, STEM_WIDTH, STAGE_PLANES[0], blocksPerStage, 1);
    this.layer1 = this.registerModule('layer1', first.stage);
    const second = makeStage(block, first.outPlanes, STAGE_PLANES[1], blocksPerStage, 2);
    this.layer2 = this.registerModule('layer2', second.stage);
    const third = makeStage(block, second.outPlanes, STAGE_PLANES[2], blocksPerStage, 2);
    this.layer3 = this.registerModule('layer3', third.stage);
    this.featureDim = third.outPlanes;
    this.fc = this.registerModule('fc', new Linear(this.featureDim, resolved.numClasses));
    initResNetWeights(this);
    this.stageCount = 1;
  }

  /** The maps the auxiliary branches read (f1, f2), and the backbone's feature and logits. */
  forwardStages(x: Tensor): BackboneStages {
    const stem = this.bn1.forward(this.conv1.forward(x), { relu: true });
    const f1 = this.layer1.forward(stem) as Tensor;
    const f2 = this.layer2.forward(f1) as Tensor;
    const f3 = this.layer3.forward(f2) as Tensor;
    const feature = globalAveragePool(f3);
    const logits = this.fc.forward(feature);
    return { maps: [f1, f2], feature, logits };
  }

  /** The backbone alone: one stage. */
  override forward(x: Tensor): StudentOutput {
    const { feature, logits } = this.forwardStages(x);
    return stageOutput(null, feature, logits);
  }
}

function factory(architecture: string, config: CifarResNetConfig): ModelFactory {
  return (options) => {
    const backbone = new CifarResNet(architecture, config, { ...options, auxiliary: false });
    if (!options.auxiliary) return backbone;
    const resolved = resolveModelOptions(options, 32, architecture);
    return new AuxiliaryStudent(architecture, backbone, cifarAuxiliaryClassifier(config, resolved.numClasses));
  };
}

/** Quick-run variants: 1, 2, 3 BasicBlocks per stage. */
export const resnet8 = factory('resnet8', { block: BasicBlock, blocksPerStage: 1 });
export const resnet14 = factory('resnet14', { block: BasicBlock, blocksPerStage: 2 });
export const resnet20 = factory('resnet20', { block: BasicBlock, blocksPerStage: 3 });
/** ResNet-32: 5 BasicBlocks per stage (472,756 parameters for 100 classes). */
export const resnet32 = factory('resnet32', { block: BasicBlock, blocksPerStage: 5 });
/** ResNet-56: 9 BasicBlocks per stage (861,620 parameters for 100 classes). */
export const resnet56 = factory('resnet56', { block: BasicBlock, blocksPerStage: 9 });
/** ResNet-110 as in the reference: 12 Bottlenecks per stage, d = 256 (1,170,868 parameters for 100 classes). */
export const resnet110 = factory('resnet110', { block: Bottleneck, blocksPerStage: 12 });
