// Wide residual networks for CIFAR (WRN-16-2, WRN-40-2, WRN-28-4) with the optional L-MCL
// auxiliary branches. Reference: winycg/L-MCL models/wrn_cifar.py (backbone) and
// models/lmcl_wrn_cifar.py (Auxiliary_Classifier); method.md §5.1.
//
// Backbone: conv3×3(in→16); three NetworkBlocks of n = (depth−4)/6 pre-activation BasicBlocks
// (BN-ReLU-conv3×3-BN-ReLU-conv3×3, 1×1 projection shortcut when the widths differ; the block
// then feeds the *activated* input to both the conv and the shortcut), widths 16k/32k/64k,
// strides 1/2/2; final BN + ReLU; global average pooling; FC. Dropout is 0 (not built).
//
// Auxiliary branches (auxiliary: true), stage order [aux1, aux2, backbone]:
//   aux1 = NetworkBlock(16k→32k, s2) + NetworkBlock(32k→64k, s2) + BN + ReLU + GAP + FC, fed from
//          block1's output (pre-activation: the first block of the copy applies BN+ReLU itself);
//   aux2 = NetworkBlock(32k→64k, s2) + BN + ReLU + GAP + FC, fed from block2's output.
// Every stage feature has width d = 64k.
//
// State-dict names follow the reference module trees exactly. Without auxiliary branches: those of
// wrn_cifar.py (conv1.weight, block1.layer.0.bn1.weight, block1.layer.0.convShortcut.weight,
// bn1.running_mean, fc.weight ...). With them: those of one network of lmcl_wrn_cifar.py,
// 'backbone.' + the same names, and 'auxiliary_classifier.' + block_extractor1.0.layer.0.bn1.weight,
// bn1, bn2, fc1, fc2 (the Auxiliary_Classifier). Dropping the 'auxiliary_classifier.' keys and the
// 'backbone.' prefix gives a plain model's state dict (deployment, method.md §8.13).
//
// Pooling: the reference uses avg_pool2d(·, 8), which is the global average only for 32×32 inputs
// (final map 8×8). We pool adaptively to 1×1 (identical at 32×32), so 28×28 inputs (final map
// 7×7, Fashion-MNIST) work too; the auxiliary branches already pool adaptively in the reference.
//
// Init (reference): every conv N(0, sqrt(2 / (kh·kw·C_out))), BatchNorm weight 1 / bias 0,
// Linear bias 0 (Linear weight keeps PyTorch's default), for backbone and branches alike.
import { Module } from '../nn/module.js';
import { Conv2d } from '../nn/conv.js';
import { BatchNorm2d } from '../nn/batchnorm.js';
import { Linear } from '../nn/linear.js';
import { Sequential } from '../nn/container.js';
import * as init from '../nn/init.js';
import * as F from '../ops/functional.js';
import type { Tensor } from '../tensor/tensor.js';
import type { ModelOptions, Student, StudentOutput } from './types.js';
import { AuxiliaryStudent, globalAveragePool, resolveModelOptions, runBranches, type BackboneStages } from './blocks.js';

/** Pre-activation basic block of wrn_cifar.py (dropout 0). */
export class WrnBasicBlock extends Module {
  readonly equalInOut: boolean;
  readonly bn1: BatchNorm2d;
  readonly conv1: Conv2d;
  readonly bn2: BatchNorm2d;
  readonly conv2: Conv2d;
  readonly convShortcut: Conv2d | null;

  constructor(inPlanes: number, outPlanes: number, stride: number) {
    super();
    this.equalInOut = inPlanes === outPlanes;
    this.bn1 = this.registerModule('bn1', new BatchNorm2d(inPlanes));
    this.conv1 = this.registerModule('conv1', new Conv2d(inPlanes, outPlanes, 3, { stride, padding: 1, bias: false }));
    this.bn2 = this.registerModule('bn2', new BatchNorm2d(outPlanes));
    this.conv2 = this.registerModule('conv2', new Conv2d(outPlanes, outPlanes, 3, { stride: 1, padding: 1, bias: false }));
    this.convShortcut = this.equalInOut
      ? null
      : this.registerModule('convShortcut', new Conv2d(inPlanes, outPlanes, 1, { stride, padding: 0, bias: false }));
  }

  override forward(x: Tensor): Tensor {
    const activated = this.bn1.forward(x, { relu: true });
    const out = this.conv2.forward(this.bn2.forward(this.conv1.forward(activated), { relu: true }));
    // Identity shortcut: the raw input; projection shortcut: the activated input (as the reference).
    const shortcut = this.convShortcut ? this.convShortcut.forward(activated) : x;
    return F.add(shortcut, out);
  }
}

/** NetworkBlock: `layer` = Sequential of n blocks (the first one changes width and stride). */
export class NetworkBlock extends Module {
  readonly layer: Sequential;

  constructor(layers: number, inPlanes: number, outPlanes: number, stride: number) {
    super();
    const blocks: Module[] = [];
    for (let index = 0; index < layers; index += 1) {
      blocks.push(new WrnBasicBlock(index === 0 ? inPlanes : outPlanes, outPlanes, index === 0 ? stride : 1));
    }
    this.layer = this.registerModule('layer', new Sequential(...blocks));
  }

  override forward(x: Tensor): Tensor {
    return this.layer.forward(x) as Tensor;
  }
}

/** The two L-MCL auxiliary branches (lmcl_wrn_cifar.py, Auxiliary_Classifier). */
export class WrnAuxiliaryClassifier extends Module {
  readonly blockExtractor1: Sequential;
  readonly blockExtractor2: Sequential;
  readonly bn1: BatchNorm2d;
  readonly bn2: BatchNorm2d;
  readonly fc1: Linear;
  readonly fc2: Linear;

  constructor(n: number, widths: readonly [number, number, number, number], numClasses: number) {
    super();
    this.blockExtractor1 = this.registerModule('block_extractor1',
      new Sequential(new NetworkBlock(n, widths[1], widths[2], 2), new NetworkBlock(n, widths[2], widths[3], 2)));
    this.blockExtractor2 = this.registerModule('block_extractor2', new Sequential(new NetworkBlock(n, widths[2], widths[3], 2)));
    this.bn1 = this.registerModule('bn1', new BatchNorm2d(widths[3]));
    this.bn2 = this.registerModule('bn2', new BatchNorm2d(widths[3]));
    this.fc1 = this.registerModule('fc1', new Linear(widths[3], numClasses));
    this.fc2 = this.registerModule('fc2', new Linear(widths[3], numClasses));
  }

  /** Inputs: [block1 output, block2 output]; returns their features and logits, in that order. */
  readonly branchCount = 2;

  override forward(inputs: readonly Tensor[]): StudentOutput {
    return runBranches('WrnAuxiliaryClassifier', inputs, [
      [(map: Tensor) => globalAveragePool(this.bn1.forward(this.blockExtractor1.forward(map) as Tensor, { relu: true })), this.fc1],
      [(map: Tensor) => globalAveragePool(this.bn2.forward(this.blockExtractor2.forward(map) as Tensor, { relu: true })), this.fc2],
    ]);
  }
}

/** Applies the reference's initialisation to every module of `root`. */
function initialiseLikeReference(root: Module): void {
  for (const module of root.modules()) {
    if (module instanceof Conv2d) {
      const fan = module.kernelSize[0] * module.kernelSize[1] * module.outChannels;
      init.normal(module.weight, 0, Math.sqrt(2 / fan));
    } else if (module instanceof BatchNorm2d) {
      if (module.weight) init.ones(module.weight);
      if (module.bias) init.zeros(module.bias);
    } else if (module instanceof Linear) {
      if (module.bias) init.zeros(module.bias);
    }
  }
}

export interface WideResNetConfig {
  depth: number;
  widenFactor: number;
}

/** What the backbone hands to the auxiliary branches, besides its own feature and logits. */
/** WRN-depth-k for CIFAR-sized inputs (wrn_cifar.py's WideResNet): a one-stage Student. */
export class WideResNet extends Module implements Student {
  readonly architecture: string;
  readonly stageCount = 1;
  readonly featureDim: number;
  /** Blocks per group, n = (depth − 4) / 6. */
  readonly blocksPerGroup: number;
  readonly widths: readonly [number, number, number, number];
  readonly conv1: Conv2d;
  readonly block1: NetworkBlock;
  readonly block2: NetworkBlock;
  readonly block3: NetworkBlock;
  readonly bn1: BatchNorm2d;
  readonly fc: Linear;

  constructor(architecture: string, config: WideResNetConfig, numClasses: number, inChannels = 3) {
    super();
    const { depth, widenFactor } = config;
    if (!Number.isSafeInteger(depth) || depth < 10 || (depth - 4) % 6 !== 0) {
      throw new Error(`${architecture}: depth must be 6n+4 with n >= 1, got ${depth}`);
    }
    if (!Number.isSafeInteger(widenFactor) || widenFactor < 1) throw new Error(`${architecture}: widenFactor must be a positive integer, got ${widenFactor}`);
    const n = (depth - 4) / 6;
    const widths = [16, 16 * widenFactor, 32 * widenFactor, 64 * widenFactor] as const;
    this.architecture = architecture;
    this.blocksPerGroup = n;
    this.widths = widths;
    this.featureDim = widths[3];
    this.conv1 = this.registerModule('conv1', new Conv2d(inChannels, widths[0], 3, { stride: 1, padding: 1, bias: false }));
    this.block1 = this.registerModule('block1', new NetworkBlock(n, widths[0], widths[1], 1));
    this.block2 = this.registerModule('block2', new NetworkBlock(n, widths[1], widths[2], 2));
    this.block3 = this.registerModule('block3', new NetworkBlock(n, widths[2], widths[3], 2));
    this.bn1 = this.registerModule('bn1', new BatchNorm2d(widths[3]));
    this.fc = this.registerModule('fc', new Linear(widths[3], numClasses));
    initialiseLikeReference(this);
  }

  /** The forward pass, also returning the maps the auxiliary branches are fed from. */
  /** Maps for the auxiliary branches: block1 and block2 outputs (pre-activation maps). */
  forwardStages(x: Tensor): BackboneStages {
    const out1 = this.block1.forward(this.conv1.forward(x));
    const out2 = this.block2.forward(out1);
    const out3 = this.block3.forward(out2);
    const feature = globalAveragePool(this.bn1.forward(out3, { relu: true }));
    return { maps: [out1, out2], feature, logits: this.fc.forward(feature) };
  }

  override forward(x: Tensor): StudentOutput {
    const { feature, logits } = this.forwardStages(x);
    return { features: [feature], logits: [logits] };
  }
}

function build(architecture: string, config: WideResNetConfig, options: ModelOptions): Student {
  const resolved = resolveModelOptions(options, 32, architecture, 4);
  const backbone = new WideResNet(architecture, config, resolved.numClasses, resolved.inChannels);
  if (!resolved.auxiliary) return backbone;
  const branches = new WrnAuxiliaryClassifier(backbone.blocksPerGroup, backbone.widths, resolved.numClasses);
  initialiseLikeReference(branches);
  // lmcl_wrn_cifar.py's WideResNet_Auxiliary: children 'backbone' and 'auxiliary_classifier'.
  return new AuxiliaryStudent(architecture, backbone, branches);
}

export function wrn16x2(options: ModelOptions): Student {
  return build('wrn_16_2', { depth: 16, widenFactor: 2 }, options);
}

export function wrn40x2(options: ModelOptions): Student {
  return build('wrn_40_2', { depth: 40, widenFactor: 2 }, options);
}

export function wrn28x4(options: ModelOptions): Student {
  return build('wrn_28_4', { depth: 28, widenFactor: 4 }, options);
}
