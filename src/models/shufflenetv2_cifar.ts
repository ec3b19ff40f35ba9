// ShuffleNetV2 0.5× / 1× for CIFAR with the optional L-MCL auxiliary branches. Reference:
// winycg/L-MCL models/shufflenetv2_cifar.py (backbone) and models/lmcl_shufflenetv2_cifar.py
// (Auxiliary_Classifier); method.md §5.1.
//
// Backbone: conv3×3(in→24, s1) + BN + ReLU (no max-pool: CIFAR variant); three stages, each a
// DownBlock (stride 2) followed by {3, 7, 3} BasicBlocks; 1×1 conv → 1024 + BN + ReLU; global
// average pooling; Linear. Stage widths (48, 96, 192) for 0.5×, (116, 232, 464) for 1×.
//   BasicBlock(c): split the channels in halves [x1 | x2]; x2 → 1×1 + BN + ReLU → depthwise 3×3 +
//     BN → 1×1 + BN + ReLU; concat [x1, branch]; channel shuffle (2 groups).
//   DownBlock(in → out), mid = out/2: left = dw3×3(s2) + BN → 1×1(in→mid) + BN + ReLU;
//     right = 1×1(in→mid) + BN + ReLU → dw3×3(s2) + BN → 1×1 + BN + ReLU; concat; shuffle.
//   Channel shuffle: [N, C, H, W] → [N, 2, C/2, H, W] → permute(0, 2, 1, 3, 4) → [N, C, H, W].
// No convolution has a bias; init is PyTorch's default everywhere (method.md §5.1).
//
// Auxiliary branches (auxiliary: true), stage order [aux1, aux2, backbone], all of width 1024:
//   aux1 = Sequential(copy of layer2, copy of layer3, 1×1 conv → 1024, BN, ReLU) from layer1's output;
//   aux2 = Sequential(copy of layer3, 1×1 conv → 1024, BN, ReLU) from layer2's output;
//   each followed by GAP and its own Linear (fc1, fc2).
//
// State-dict names follow the reference module trees exactly. Without auxiliary branches: those of
// shufflenetv2_cifar.py (conv1.weight, bn1.*, layer1.0.conv1.weight (DownBlock), layer1.1.bn3.*
// (BasicBlock), conv2.weight, bn2.*, linear.weight, linear.bias). With them: those of one network
// of lmcl_shufflenetv2_cifar.py, 'backbone.' + the same names and 'auxiliary_classifier.' +
// block_extractor1.{0,1}.{i}.*, block_extractor1.2.weight (the 1×1 conv), block_extractor1.3.*
// (its BN), block_extractor2.{0.{i}.*, 1.weight, 2.*}, fc1.*, fc2.*.
//
// Pooling: the reference uses avg_pool2d(·, 4), the global average for 32×32 inputs (final map
// 4×4). We pool adaptively to 1×1 (identical at 32×32; the auxiliary branches already pool
// adaptively in the reference) so other sizes work: 28×28 inputs also end on a 4×4 map
// (28 → 14 → 7 → 4), and smaller test images on smaller maps.
import { Module } from '../nn/module.js';
import { Conv2d } from '../nn/conv.js';
import { BatchNorm2d } from '../nn/batchnorm.js';
import { Linear } from '../nn/linear.js';
import { ReLU } from '../nn/activation.js';
import { Sequential } from '../nn/container.js';
import * as F from '../ops/functional.js';
import type { Tensor } from '../tensor/tensor.js';
import type { ModelOptions, Student, StudentOutput } from './types.js';
import { AuxiliaryStudent, globalAveragePool, resolveModelOptions, runBranches, type BackboneStages } from './blocks.js';

/** Channel shuffle with `groups` groups: [N, g, C/g, H, W] → transpose(1, 2) → [N, C, H, W]. */
export function channelShuffle(x: Tensor, groups = 2): Tensor {
  const [n, c, h, w] = x.shape as [number, number, number, number];
  if (x.shape.length !== 4 || c % groups !== 0) {
    throw new Error(`channelShuffle: expected [N, C, H, W] with C divisible by ${groups}, got [${x.shape.join(', ')}]`);
  }
  const grouped = F.reshape(x, [n, groups, c / groups, h, w]);
  return F.reshape(F.permute(grouped, [0, 2, 1, 3, 4]), [n, c, h, w]);
}

function conv1x1(inChannels: number, outChannels: number): Conv2d {
  return new Conv2d(inChannels, outChannels, 1, { bias: false });
}

function depthwise3x3(channels: number, stride: number): Conv2d {
  return new Conv2d(channels, channels, 3, { stride, padding: 1, groups: channels, bias: false });
}

/** ShuffleNetV2 basic unit (split ratio 0.5): keeps the width and the resolution. */
export class ShuffleBasicBlock extends Module {
  readonly splitAt: number;
  readonly conv1: Conv2d;
  readonly bn1: BatchNorm2d;
  readonly conv2: Conv2d;
  readonly bn2: BatchNorm2d;
  readonly conv3: Conv2d;
  readonly bn3: BatchNorm2d;

  constructor(inChannels: number, splitRatio = 0.5) {
    super();
    this.splitAt = Math.floor(inChannels * splitRatio);
    const half = this.splitAt;
    this.conv1 = this.registerModule('conv1', conv1x1(half, half));
    this.bn1 = this.registerModule('bn1', new BatchNorm2d(half));
    this.conv2 = this.registerModule('conv2', depthwise3x3(half, 1));
    this.bn2 = this.registerModule('bn2', new BatchNorm2d(half));
    this.conv3 = this.registerModule('conv3', conv1x1(half, half));
    this.bn3 = this.registerModule('bn3', new BatchNorm2d(half));
  }

  override forward(x: Tensor): Tensor {
    const kept = F.slice(x, 1, 0, this.splitAt);
    const branchInput = F.slice(x, 1, this.splitAt);
    let out = this.bn1.forward(this.conv1.forward(branchInput), { relu: true });
    out = this.bn2.forward(this.conv2.forward(out));
    out = this.bn3.forward(this.conv3.forward(out), { relu: true });
    return channelShuffle(F.concat([kept, out], 1));
  }
}

/** ShuffleNetV2 down-sampling unit: halves the resolution, in → out channels. */
export class ShuffleDownBlock extends Module {
  readonly conv1: Conv2d;
  readonly bn1: BatchNorm2d;
  readonly conv2: Conv2d;
  readonly bn2: BatchNorm2d;
  readonly conv3: Conv2d;
  readonly bn3: BatchNorm2d;
  readonly conv4: Conv2d;
  readonly bn4: BatchNorm2d;
  readonly conv5: Conv2d;
  readonly bn5: BatchNorm2d;

  constructor(inChannels: number, outChannels: number) {
    super();
    const mid = Math.floor(outChannels / 2);
    // left branch
    this.conv1 = this.registerModule('conv1', depthwise3x3(inChannels, 2));
    this.bn1 = this.registerModule('bn1', new BatchNorm2d(inChannels));
    this.conv2 = this.registerModule('conv2', conv1x1(inChannels, mid));
    this.bn2 = this.registerModule('bn2', new BatchNorm2d(mid));
    // right branch
    this.conv3 = this.registerModule('conv3', conv1x1(inChannels, mid));
    this.bn3 = this.registerModule('bn3', new BatchNorm2d(mid));
    this.conv4 = this.registerModule('conv4', depthwise3x3(mid, 2));
    this.bn4 = this.registerModule('bn4', new BatchNorm2d(mid));
    this.conv5 = this.registerModule('conv5', conv1x1(mid, mid));
    this.bn5 = this.registerModule('bn5', new BatchNorm2d(mid));
  }

  override forward(x: Tensor): Tensor {
    let left = this.bn1.forward(this.conv1.forward(x));
    left = this.bn2.forward(this.conv2.forward(left), { relu: true });
    let right = this.bn3.forward(this.conv3.forward(x), { relu: true });
    right = this.bn4.forward(this.conv4.forward(right));
    right = this.bn5.forward(this.conv5.forward(right), { relu: true });
    return channelShuffle(F.concat([left, right], 1));
  }
}

/** One stage: DownBlock(in → out) followed by `blocks` BasicBlocks of width out. */
function makeStage(inChannels: number, outChannels: number, blocks: number): Sequential {
  const stage = new Sequential(new ShuffleDownBlock(inChannels, outChannels));
  for (let index = 0; index < blocks; index += 1) stage.append(new ShuffleBasicBlock(outChannels));
  return stage;
}

export interface ShuffleNetV2Config {
  /** Stage widths and the final 1×1 width: (48, 96, 192, 1024) for 0.5×, (116, 232, 464, 1024) for 1×. */
  outChannels: readonly [number, number, number, number];
  /** BasicBlocks per stage after its DownBlock: (3, 7, 3). */
  numBlocks: readonly [number, number, number];
}

const STEM_WIDTH = 24;

const CONFIGS: Record<'0.5x' | '1x', ShuffleNetV2Config> = {
  '0.5x': { outChannels: [48, 96, 192, 1024], numBlocks: [3, 7, 3] },
  '1x': { outChannels: [116, 232, 464, 1024], numBlocks: [3, 7, 3] },
};

/** ShuffleNetV2 for CIFAR-sized inputs (shufflenetv2_cifar.py): a one-stage Student. */
export class ShuffleNetV2 extends Module implements Student {
  readonly architecture: string;
  readonly stageCount = 1;
  readonly featureDim: number;
  readonly config: ShuffleNetV2Config;
  readonly conv1: Conv2d;
  readonly bn1: BatchNorm2d;
  readonly layer1: Sequential;
  readonly layer2: Sequential;
  readonly layer3: Sequential;
  readonly conv2: Conv2d;
  readonly bn2: BatchNorm2d;
  readonly linear: Linear;

  constructor(architecture: string, config: ShuffleNetV2Config, numClasses: number, inChannels = 3) {
    super();
    const { outChannels, numBlocks } = config;
    this.architecture = architecture;
    this.config = config;
    this.featureDim = outChannels[3];
    this.conv1 = this.registerModule('conv1', new Conv2d(inChannels, STEM_WIDTH, 3, { stride: 1, padding: 1, bias: false }));
    this.bn1 = this.registerModule('bn1', new BatchNorm2d(STEM_WIDTH));
    this.layer1 = this.registerModule('layer1', makeStage(STEM_WIDTH, outChannels[0], numBlocks[0]));
    this.layer2 = this.registerModule('layer2', makeStage(outChannels[0], outChannels[1], numBlocks[1]));
    this.layer3 = this.registerModule('layer3', makeStage(outChannels[1], outChannels[2], numBlocks[2]));
    this.conv2 = this.registerModule('conv2', conv1x1(outChannels[2], outChannels[3]));
    this.bn2 = this.registerModule('bn2', new BatchNorm2d(outChannels[3]));
    this.linear = this.registerModule('linear', new Linear(outChannels[3], numClasses));
  }

  /** The forward pass, also returning the maps the auxiliary branches are fed from. */
  /** Maps for the auxiliary branches: layer1 and layer2 outputs. */
  forwardStages(x: Tensor): BackboneStages {
    const stem = this.bn1.forward(this.conv1.forward(x), { relu: true });
    const out1 = this.layer1.forward(stem) as Tensor;
    const out2 = this.layer2.forward(out1) as Tensor;
    const out3 = this.layer3.forward(out2) as Tensor;
    const feature = globalAveragePool(this.bn2.forward(this.conv2.forward(out3), { relu: true }));
    return { maps: [out1, out2], feature, logits: this.linear.forward(feature) };
  }

  override forward(x: Tensor): StudentOutput {
    const { feature, logits } = this.forwardStages(x);
    return { features: [feature], logits: [logits] };
  }
}

/** The two L-MCL auxiliary branches (lmcl_shufflenetv2_cifar.py, Auxiliary_Classifier). */
export class ShuffleNetV2AuxiliaryClassifier extends Module {
  readonly blockExtractor1: Sequential;
  readonly blockExtractor2: Sequential;
  readonly fc1: Linear;
  readonly fc2: Linear;

  constructor(config: ShuffleNetV2Config, numClasses: number) {
    super();
    const { outChannels, numBlocks } = config;
    const head = (): Module[] => [conv1x1(outChannels[2], outChannels[3]), new BatchNorm2d(outChannels[3]), new ReLU()];
    this.blockExtractor1 = this.registerModule('block_extractor1', new Sequential(
      makeStage(outChannels[0], outChannels[1], numBlocks[1]),
      makeStage(outChannels[1], outChannels[2], numBlocks[2]),
      ...head(),
    ));
    this.blockExtractor2 = this.registerModule('block_extractor2', new Sequential(
      makeStage(outChannels[1], outChannels[2], numBlocks[2]),
      ...head(),
    ));
    this.fc1 = this.registerModule('fc1', new Linear(outChannels[3], numClasses));
    this.fc2 = this.registerModule('fc2', new Linear(outChannels[3], numClasses));
  }

  /** Inputs: [layer1 output, layer2 output]; returns their features and logits, in that order. */
  readonly branchCount = 2;

  override forward(inputs: readonly Tensor[]): StudentOutput {
    return runBranches('ShuffleNetV2AuxiliaryClassifier', inputs, [
      [(map: Tensor) => globalAveragePool(this.blockExtractor1.forward(map) as Tensor), this.fc1],
      [(map: Tensor) => globalAveragePool(this.blockExtractor2.forward(map) as Tensor), this.fc2],
    ]);
  }
}

function build(architecture: string, config: ShuffleNetV2Config, options: ModelOptions): Student {
  const resolved = resolveModelOptions(options, 32, architecture, 4);
  const backbone = new ShuffleNetV2(architecture, config, resolved.numClasses, resolved.inChannels);
  if (!resolved.auxiliary) return backbone;
  // The reference's ShuffleNetV2_Auxiliary: children 'backbone' and 'auxiliary_classifier'.
  return new AuxiliaryStudent(architecture, backbone, new ShuffleNetV2AuxiliaryClassifier(config, resolved.numClasses));
}

export function shufflenetv2x05(options: ModelOptions): Student {
  return build('shufflenetv2_0.5x', CONFIGS['0.5x'], options);
}

export function shufflenetv2x1(options: ModelOptions): Student {
  return build('shufflenetv2_1x', CONFIGS['1x'], options);
}
