// ImageNet ResNets in torchvision's layout (method.md §5.2; reference: winycg/L-MCL
// models/lmcl_resnet_imagenet.py, which is torchvision's resnet.py).
//
//   stem     conv7×7(inChannels→64, s2, p3) + BN + ReLU + max-pool 3×3 s2 p1
//   layer1..layer4   planes 64/128/256/512, strides 1/2/2/2
//   head     GAP → fc (512·expansion → classes)
//   resnet18: BasicBlock [2,2,2,2]; resnet34: BasicBlock [3,4,6,3]; resnet50: Bottleneck [3,4,6,3]
//   (stride on the 3×3 conv, "v1.5"). d = 512 (18/34), 2048 (50).
// Parameter names are torchvision's: conv1, bn1, layer1.0.conv1, ..., layer2.0.downsample.0/1, fc.
// Any imageSize ≥ 1 works (the stem and stages only halve the map; GAP makes the head size-free):
// 224 → 7×7 at layer4, 64 → 2×2, 32 → 1×1.
//
// auxiliary: true builds the reference's L-MCL student (AuxiliaryStudent in blocks.ts): this
// backbone under 'backbone.' and the Auxiliary_Classifier under 'auxiliary_classifier.', with one
// block per auxiliary stage:
//   block_extractor1 = Sequential(1 block @128 s2, 1 @256 s2, 1 @512 s2)   (from layer1's output)
//   block_extractor2 = Sequential(1 @256 s2, 1 @512 s2)                   (from layer2's output)
//   block_extractor3 = Sequential(1 @512 s2)                              (from layer3's output)
//   fc1, fc2, fc3: Linear(d → classes)
// forward returns [aux1, aux2, aux3, backbone] (stageCount 4), every feature of width d.
// Init: convs Kaiming-normal(fan_out, relu), BN (1, 0), Linear PyTorch default (backbone and
// auxiliary alike, as in the reference).
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

const STEM_WIDTH = 64;
const STAGE_PLANES = [64, 128, 256, 512] as const;

export interface ImageNetResNetConfig {
  block: BlockType;
  /** Blocks in layer1..layer4. */
  layers: readonly [number, number, number, number];
}

/** The reference's ImageNet Auxiliary_Classifier: single-block stages after layer1, 2 and 3. */
export function imageNetAuxiliaryClassifier(block: BlockType, numClasses: number): AuxiliaryClassifier {
  const extractors: Sequential[] = [];
  for (let source = 0; source < 3; source += 1) {
    // The branch from layer(source+1): one block for each later stage, each with stride 2.
    let inPlanes = STAGE_PLANES[source]! * block.expansion;
    const extractor = new Sequential();
    for (let target = source + 1; target < STAGE_PLANES.length; target += 1) {
      const built = makeStage(block, inPlanes, STAGE_PLANES[target]!, 1, 2);
      extractor.append(built.stage);
      inPlanes = built.outPlanes;
    }
    extractors.push(extractor);
  }
  const classifier = new AuxiliaryClassifier(extractors, STAGE_PLANES[3] * block.expansion, numClasses);
  initResNetWeights(classifier);
  return classifier;
}

/** A torchvision-layout ResNet student, plus the reference's Auxiliary_Classifier when asked. */
export class ImageNetResNet extends Module implements Student, StagedBackbone {
  readonly architecture: string;
  readonly stageCount: number;
  readonly featureDim: number;
  readonly conv1: Conv2d;
  readonly bn1: BatchNorm2d;
  readonly layer1: Sequential;
  readonly layer2: Sequential;
  readonly layer3: Sequential;
  readonly layer4: Sequential;
  readonly fc: Linear;

  constructor(architecture: string, config: ImageNetResNetConfig, options: ModelOptions) {
    super();
    const resolved = resolveModelOptions(options, 224, architecture);
    this.architecture = architecture;
    const { block, layers } = config;
    this.conv1 = this.registerModule('conv1', new Conv2d(resolved.inChannels, STEM_WIDTH, 7, { stride: 2, padding: 3, bias: false }));
    this.bn1 = this.registerModule('bn1', new BatchNorm2d(STEM_WIDTH));
    let inPlanes: number = STEM_WIDTH;
    const stages: Sequential[] = [];
    STAGE_PLANES.forEach((planes, index) => {
      const built = makeStage(block, inPlanes, planes, layers[index]!, index === 0 ? 1 : 2);
      stages.push(this.registerModule(`layer${index + 1}`, built.stage));
      inPlanes = built.outPlanes;
    });
    [this.layer1, this.layer2, this.layer3, this.layer4] = stages as [Sequential, Sequential, Sequential, Sequential];
    this.featureDim = inPlanes;
    this.fc = this.registerModule('fc', new Linear(this.featureDim, resolved.numClasses));
    initResNetWeights(this);
    this.stageCount = 1;
  }

  /** The maps the auxiliary branches read (f1, f2, f3), and the backbone's feature and logits. */
  forwardStages(x: Tensor): BackboneStages {
    const stem = F.maxPool2d(this.bn1.forward(this.conv1.forward(x), { relu: true }), 3, 2, 1);
    const f1 = this.layer1.forward(stem) as Tensor;
    const f2 = this.layer2.forward(f1) as Tensor;
    const f3 = this.layer3.forward(f2) as Tensor;
    const f4 = this.layer4.forward(f3) as Tensor;
    const feature = globalAveragePool(f4);
    const logits = this.fc.forward(feature);
    return { maps: [f1, f2, f3], feature, logits };
  }

  /** The backbone alone: one stage. */
  override forward(x: Tensor): StudentOutput {
    const { feature, logits } = this.forwardStages(x);
    return stageOutput(null, feature, logits);
  }
}

function factory(architecture: string, config: ImageNetResNetConfig): ModelFactory {
  return (options) => {
    const backbone = new ImageNetResNet(architecture, config, { ...options, auxiliary: false });
    if (!options.auxiliary) return backbone;
    const resolved = resolveModelOptions(options, 224, architecture);
    return new AuxiliaryStudent(architecture, backbone, imageNetAuxiliaryClassifier(config.block, resolved.numClasses));
  };
}

/** ResNet-18: BasicBlock [2,2,2,2] (11,689,512 parameters for 1000 classes). */
export const resnet18 = factory('resnet18', { block: BasicBlock, layers: [2, 2, 2, 2] });
/** ResNet-34: BasicBlock [3,4,6,3] (21,797,672 parameters for 1000 classes). */
export const resnet34 = factory('resnet34', { block: BasicBlock, layers: [3, 4, 6, 3] });
/** ResNet-50: Bottleneck [3,4,6,3] (25,557,032 parameters for 1000 classes). */
export const resnet50 = factory('resnet50', { block: Bottleneck, layers: [3, 4, 6, 3] });
