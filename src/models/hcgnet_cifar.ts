// HCGNet-A1 / A2 for CIFAR (Yang et al., "Gated Convolutional Networks with Hybrid Connectivity
// for Image Classification", AAAI 2020) with the optional L-MCL auxiliary branches. Reference:
// winycg/L-MCL models/hcgnet_cifar.py (backbone) and models/lmcl_hcgnet_cifar.py
// (Auxiliary_Classifier); method.md §5.1.
//
// Backbone: conv3×3(in → 2·g₁) stem; three hybrid blocks of 8 SMG modules with growth rates
// (12, 24, 36) for A1 / (24, 36, 64) for A2, with a gated transition (compression θ = 0.5,
// stride 2) after the first two; final BN + ReLU + global average pooling; Linear. Widths:
//   A1: 24 → 120 → 60 → 252 → 126 → 414 (d = 414);  A2: 48 → 240 → 120 → 408 → 204 → 716 (d = 716).
//
// BasicConv(in → out) = BN(in) → ReLU → conv (no bias): the pre-activation unit everything uses.
// SMG module (in channels, growth g; bn_size 4, groups 4, reduction 2, forget 2), returns
// concat([x, y], 1) with y of g channels:
//   t = BasicConv 3×3 (4g → g, groups 4)(BasicConv 1×1 (in → 4g)(x))                 [B, g, H, W]
//   forget gate:  a = softmax_hw(conv1×1_{g→1}(t));  s = Σ_hw t·a                     [B, g, 1, 1]
//                 gate = sigmoid(fc2(tanh(BN1d(fc1(s)))))   fc1: g → g/2, fc2: g/2 → g (1×1 convs)
//   multi-scale:  u₃ = BasicConv dw3×3(t), u₅ = BasicConv dw3×3 dilation 2 (t) (a 5×5 field)
//                 p_k = Σ_hw u_k · softmax_hw(conv1×1_{g→1}(u_k))                       [B, g, 1, 1]
//                 z = tanh(BN1d(fcall(concat[p₃, p₅])))  fcall: 2g → 2g/2;  w_k = fc{k}(z): → g
//                 [ŵ₃, ŵ₅] = softmax over the two scales of [w₃, w₅] (per channel)
//   y = t · gate + ŵ₃·p₃ + ŵ₅·p₅   (the second term is a per-channel constant over H×W)
// Transition(in → out = ⌊θ·in⌋): the same with BasicConv 1×1 (in → in − ⌊(in − out)/2⌋),
// BasicConv 3×3 stride 2 (→ out), reduction and forget factors 4 (channel counts floored as the
// reference does, e.g. 126/4 → 31); it returns y alone (no concatenation).
// "Σ_hw t·a" is the reference's global_pool(t·a)·H·W, computed as a sum.
//
// Dilation: our conv2d supports dilation 1 only. The dilation-2 depthwise 3×3 of conv_5x5 is
// computed exactly as a 5×5 convolution (padding 2) whose kernel is the 3×3 weight spread onto the
// even positions, built differentiably (weight [C, 1, 3, 3] · constant 9×25 scatter matrix). The
// parameter is the reference's [C, 1, 3, 3] weight with the same default init (fan-in 9), so
// parameter count, state dict and the function computed are the reference's. Cost: a 25-tap
// depthwise conv instead of 9 taps.
//
// Auxiliary branches (auxiliary: true), stage order [aux1, aux2, backbone], all of width d:
//   aux1 = Sequential(copy of HybridBlock2, copy of Transition2, copy of HybridBlock3, BN, ReLU)
//          fed from Transition1's output;
//   aux2 = Sequential(copy of HybridBlock3, BN, ReLU) fed from Transition2's output;
//   each followed by GAP and its own Linear (fc1, fc2).
//
// State-dict names. Without auxiliary branches: those of hcgnet_cifar.py (features.conv0.weight,
// features.HybridBlock1.SMG1.conv1_1x1.norm.weight, features.Transition1.fcall.bias, ...,
// features.norm5.*, classifier.*). With them: 'backbone.' + those same names, and
// 'auxiliary_classifier.' + lmcl_hcgnet_cifar.py's Auxiliary_Classifier names
// (block_extractor1.0.SMG1.*, block_extractor1.1.* (Transition), block_extractor1.2.SMG8.*,
// block_extractor1.3.* (BN), block_extractor2.{0,1}.*, fc1, fc2). Note: lmcl_hcgnet_cifar.py's own
// backbone registers the hybrid blocks, transitions and norm5 at its top level (only conv0 stays
// under 'features'); we keep hcgnet_cifar.py's layout for the backbone in both cases so that a
// backbone trained with branches loads into a plain model after dropping 'auxiliary_classifier.'
// and the 'backbone.' prefix. An lmcl_hcgnet_cifar.py state dict loads through the alias table
// (src/io/aliases.ts), which maps backbone.{HybridBlockk,Transitionk,norm5}.* → backbone.features.{same}.*.
//
// Init: PyTorch defaults everywhere (no re-initialisation in the reference). Pooling is global and
// adaptive as in the reference, so 28×28 inputs (Fashion-MNIST) need no change (28 → 14 → 7).
// BatchNorm1d in the gates needs a batch of at least 2 in training mode (as in PyTorch).
import { Module } from '../nn/module.js';
import { Conv2d } from '../nn/conv.js';
import { BatchNorm1d, BatchNorm2d } from '../nn/batchnorm.js';
import { Linear } from '../nn/linear.js';
import { ReLU } from '../nn/activation.js';
import { Sequential } from '../nn/container.js';
import * as F from '../ops/functional.js';
import { tensor } from '../tensor/creation.js';
import type { Tensor } from '../tensor/tensor.js';
import type { ModelOptions, Student, StudentOutput } from './types.js';
import { AuxiliaryStudent, globalAveragePool, resolveModelOptions, runBranches, type BackboneStages } from './blocks.js';

// 9×25 matrix that spreads a row-major 3×3 kernel onto the even positions of a 5×5 kernel.
const DILATE_3X3_TO_5X5 = (() => {
  const values = new Float32Array(9 * 25);
  for (let r = 0; r < 3; r += 1) for (let c = 0; c < 3; c += 1) values[(r * 3 + c) * 25 + (2 * r) * 5 + 2 * c] = 1;
  return values;
})();

/**
 * A 3×3 convolution with dilation 2 and padding 2 (stride 1, no bias): torch's
 * Conv2d(in, out, 3, padding=2, dilation=2, groups, bias=False). Same 'weight' parameter
 * [out, in/groups, 3, 3] and default init; evaluated as the equivalent 5×5 convolution.
 */
export class Dilated3x3Conv2d extends Conv2d {
  constructor(inChannels: number, outChannels: number, groups: number) {
    super(inChannels, outChannels, 3, { stride: 1, padding: 2, groups, bias: false });
  }

  override forward(x: Tensor): Tensor {
    const weight = this.weight;
    const [out, perGroup] = weight.shape as [number, number, number, number];
    const scatter = tensor(DILATE_3X3_TO_5X5, [9, 25], { device: weight.device });
    const spread = F.reshape(F.matmul(F.reshape(weight, [out * perGroup, 9]), scatter), [out, perGroup, 5, 5]);
    return F.conv2d(x, spread, null, { stride: 1, padding: 2, groups: this.groups });
  }

  override extraRepr(): string {
    return `${super.extraRepr()}, dilation=(2, 2)`;
  }
}

interface BasicConvOptions {
  stride?: number;
  padding?: number;
  groups?: number;
  /** 1 (default) or 2. */
  dilation?: 1 | 2;
}

/** BN(in) → ReLU → conv(in → out), no bias (hcgnet_cifar.py's BasicConv). */
export class HcgBasicConv extends Module {
  readonly norm: BatchNorm2d;
  readonly conv: Conv2d;

  constructor(inChannels: number, outChannels: number, kernelSize: number, options: BasicConvOptions = {}) {
    super();
    const { stride = 1, padding = 0, groups = 1, dilation = 1 } = options;
    this.norm = this.registerModule('norm', new BatchNorm2d(inChannels));
    if (dilation === 2) {
      if (kernelSize !== 3 || stride !== 1 || padding !== 2) throw new Error('HcgBasicConv: dilation 2 is only built for 3×3, stride 1, padding 2');
      this.conv = this.registerModule('conv', new Dilated3x3Conv2d(inChannels, outChannels, groups));
    } else {
      this.conv = this.registerModule('conv', new Conv2d(inChannels, outChannels, kernelSize, { stride, padding, groups, bias: false }));
    }
  }

  override forward(x: Tensor): Tensor {
    return this.conv.forward(this.norm.forward(x, { relu: true }));
  }
}

/**
 * What SMG modules and transitions share: two BasicConvs, then the forget gate and the gated
 * two-scale (3×3 / dilated 3×3) fusion. `transform` returns t·gate + fused, of `channels` channels.
 */
abstract class GatedUnit extends Module {
  readonly channels: number;
  readonly reducedAttention: number;
  readonly reducedForget: number;
  readonly conv1_1x1: HcgBasicConv;
  readonly conv2_3x3: HcgBasicConv;
  readonly conv_3x3: HcgBasicConv;
  readonly conv_5x5: HcgBasicConv;
  readonly globalContext3x3: Conv2d;
  readonly globalContext5x5: Conv2d;
  readonly fcall: Conv2d;
  readonly bnAttention: BatchNorm1d;
  readonly fc3x3: Conv2d;
  readonly fc5x5: Conv2d;
  readonly globalForgetContext: Conv2d;
  readonly bnForget: BatchNorm1d;
  readonly fc1: Conv2d;
  readonly fc2: Conv2d;

  constructor(conv1: HcgBasicConv, conv2: HcgBasicConv, channels: number, reductionFactor: number, forgetFactor: number) {
    super();
    const c = channels;
    this.channels = c;
    this.reducedAttention = Math.floor((2 * c) / reductionFactor);
    this.reducedForget = Math.floor(c / forgetFactor);
    const ra = this.reducedAttention;
    const rf = this.reducedForget;
    // Registration order = the reference's attribute order (state-dict order).
    this.conv1_1x1 = this.registerModule('conv1_1x1', conv1);
    this.conv2_3x3 = this.registerModule('conv2_3x3', conv2);
    this.conv_3x3 = this.registerModule('conv_3x3', new HcgBasicConv(c, c, 3, { padding: 1, groups: c }));
    this.conv_5x5 = this.registerModule('conv_5x5', new HcgBasicConv(c, c, 3, { padding: 2, groups: c, dilation: 2 }));
    this.globalContext3x3 = this.registerModule('global_context3x3', new Conv2d(c, 1, 1));
    this.globalContext5x5 = this.registerModule('global_context5x5', new Conv2d(c, 1, 1));
    this.fcall = this.registerModule('fcall', new Conv2d(2 * c, ra, 1));
    this.bnAttention = this.registerModule('bn_attention', new BatchNorm1d(ra));
    this.fc3x3 = this.registerModule('fc3x3', new Conv2d(ra, c, 1));
    this.fc5x5 = this.registerModule('fc5x5', new Conv2d(ra, c, 1));
    this.globalForgetContext = this.registerModule('global_forget_context', new Conv2d(c, 1, 1));
    this.bnForget = this.registerModule('bn_forget', new BatchNorm1d(rf));
    this.fc1 = this.registerModule('fc1', new Conv2d(c, rf, 1));
    this.fc2 = this.registerModule('fc2', new Conv2d(rf, c, 1));
  }

  protected transform(input: Tensor): Tensor {
    const x = this.conv2_3x3.forward(this.conv1_1x1.forward(input));
    const [b, c, h, w] = x.shape as [number, number, number, number];
    // Σ over H×W of t weighted by a softmax (over H×W) of a 1-channel 1×1 conv of t: [B, C, 1, 1].
    const contextPool = (t: Tensor, context: Conv2d): Tensor => {
      const weights = F.reshape(F.softmax(F.reshape(context.forward(t), [b, h * w]), 1), [b, 1, h, w]);
      return F.sum(F.mul(t, weights), [2, 3], true);
    };

    // Forget gate.
    const pooled = contextPool(x, this.globalForgetContext);
    const squeezed = F.tanh(this.bnForget.forward(F.reshape(this.fc1.forward(pooled), [b, this.reducedForget])));
    const gate = F.sigmoid(this.fc2.forward(F.reshape(squeezed, [b, this.reducedForget, 1, 1])));

    // Two receptive fields, pooled, weighted per channel by a softmax over the two scales.
    const p3 = contextPool(this.conv_3x3.forward(x), this.globalContext3x3);
    const p5 = contextPool(this.conv_5x5.forward(x), this.globalContext5x5);
    const attention = F.tanh(this.bnAttention.forward(F.reshape(this.fcall.forward(F.concat([p3, p5], 1)), [b, this.reducedAttention])));
    const attention4d = F.reshape(attention, [b, this.reducedAttention, 1, 1]);
    const w3 = F.reshape(this.fc3x3.forward(attention4d), [b, 1, c]);
    const w5 = F.reshape(this.fc5x5.forward(attention4d), [b, 1, c]);
    const scales = F.softmax(F.concat([w3, w5], 1), 1);
    const fused = F.add(
      F.mul(F.reshape(F.slice(scales, 1, 0, 1), [b, c, 1, 1]), p3),
      F.mul(F.reshape(F.slice(scales, 1, 1, 2), [b, c, 1, 1]), p5),
    );
    return F.add(F.mul(x, gate), fused);
  }
}

/** SMG module: in → in + growth channels (dense concatenation of its input). */
export class SMGModule extends GatedUnit {
  constructor(inChannels: number, growthRate: number, bnSize = 4, groups = 4) {
    super(
      new HcgBasicConv(inChannels, bnSize * growthRate, 1),
      new HcgBasicConv(bnSize * growthRate, growthRate, 3, { padding: 1, groups }),
      growthRate, 2, 2,
    );
  }

  override forward(x: Tensor): Tensor {
    return F.concat([x, this.transform(x)], 1);
  }
}

/** Gated transition: in → out channels, stride 2. */
export class HcgTransition extends GatedUnit {
  constructor(inChannels: number, outChannels: number) {
    const reduce = Math.floor((inChannels - outChannels) / 2);
    super(
      new HcgBasicConv(inChannels, inChannels - reduce, 1),
      new HcgBasicConv(inChannels - reduce, outChannels, 3, { stride: 2, padding: 1 }),
      outChannels, 4, 4,
    );
  }

  override forward(x: Tensor): Tensor {
    return this.transform(x);
  }
}

/** Hybrid block: SMG1..SMGn, each adding `growthRate` channels. */
function hybridBlock(layers: number, inChannels: number, growthRate: number, bnSize = 4): Sequential {
  const modules = new Map<string, Module>();
  for (let index = 0; index < layers; index += 1) {
    modules.set(`SMG${index + 1}`, new SMGModule(inChannels + growthRate * index, growthRate, bnSize));
  }
  return new Sequential(modules);
}

export interface HCGNetConfig {
  growthRates: readonly [number, number, number];
  blockConfig: readonly [number, number, number];
}

const CONFIGS = {
  A1: { growthRates: [12, 24, 36], blockConfig: [8, 8, 8] },
  A2: { growthRates: [24, 36, 64], blockConfig: [8, 8, 8] },
} as const satisfies Record<string, HCGNetConfig>;

const BN_SIZE = 4;
const THETA = 0.5;

/** Channel widths along the network: after each hybrid block and transition. */
function widthsOf(config: HCGNetConfig) {
  const { growthRates: g, blockConfig: n } = config;
  const stem = 2 * g[0];
  const block1 = stem + g[0] * n[0];
  const transition1 = Math.floor(block1 * THETA);
  const block2 = transition1 + g[1] * n[1];
  const transition2 = Math.floor(block2 * THETA);
  const block3 = transition2 + g[2] * n[2];
  return { stem, block1, transition1, block2, transition2, block3 };
}

/** HCGNet for CIFAR-sized inputs (hcgnet_cifar.py): a one-stage Student. */
export class HCGNet extends Module implements Student {
  readonly architecture: string;
  readonly stageCount = 1;
  readonly featureDim: number;
  readonly features: Sequential;
  readonly classifier: Linear;
  private readonly conv0: Conv2d;
  private readonly stages: { hybrid1: Sequential; transition1: HcgTransition; hybrid2: Sequential; transition2: HcgTransition; hybrid3: Sequential; norm5: BatchNorm2d };

  constructor(architecture: string, config: HCGNetConfig, numClasses: number, inChannels = 3) {
    super();
    const { growthRates: g, blockConfig: n } = config;
    const widths = widthsOf(config);
    this.architecture = architecture;
    this.featureDim = widths.block3;
    this.conv0 = new Conv2d(inChannels, widths.stem, 3, { stride: 1, padding: 1, bias: false });
    this.stages = {
      hybrid1: hybridBlock(n[0], widths.stem, g[0], BN_SIZE),
      transition1: new HcgTransition(widths.block1, widths.transition1),
      hybrid2: hybridBlock(n[1], widths.transition1, g[1], BN_SIZE),
      transition2: new HcgTransition(widths.block2, widths.transition2),
      hybrid3: hybridBlock(n[2], widths.transition2, g[2], BN_SIZE),
      norm5: new BatchNorm2d(widths.block3),
    };
    this.features = this.registerModule('features', new Sequential(new Map<string, Module>([
      ['conv0', this.conv0],
      ['HybridBlock1', this.stages.hybrid1],
      ['Transition1', this.stages.transition1],
      ['HybridBlock2', this.stages.hybrid2],
      ['Transition2', this.stages.transition2],
      ['HybridBlock3', this.stages.hybrid3],
      ['norm5', this.stages.norm5],
    ])));
    this.classifier = this.registerModule('classifier', new Linear(widths.block3, numClasses));
  }

  /** The forward pass, also returning the maps the auxiliary branches are fed from. */
  /** Maps for the auxiliary branches: Transition1 and Transition2 outputs. */
  forwardStages(x: Tensor): BackboneStages {
    const s = this.stages;
    const map1 = s.transition1.forward(s.hybrid1.forward(this.conv0.forward(x)) as Tensor);
    const map2 = s.transition2.forward(s.hybrid2.forward(map1) as Tensor);
    const feature = globalAveragePool(s.norm5.forward(s.hybrid3.forward(map2) as Tensor, { relu: true }));
    return { maps: [map1, map2], feature, logits: this.classifier.forward(feature) };
  }

  override forward(x: Tensor): StudentOutput {
    const { feature, logits } = this.forwardStages(x);
    return { features: [feature], logits: [logits] };
  }
}

/** The two L-MCL auxiliary branches (lmcl_hcgnet_cifar.py, Auxiliary_Classifier). */
export class HCGNetAuxiliaryClassifier extends Module {
  readonly blockExtractor1: Sequential;
  readonly blockExtractor2: Sequential;
  readonly fc1: Linear;
  readonly fc2: Linear;

  constructor(config: HCGNetConfig, numClasses: number) {
    super();
    const { growthRates: g, blockConfig: n } = config;
    const widths = widthsOf(config);
    this.blockExtractor1 = this.registerModule('block_extractor1', new Sequential(
      hybridBlock(n[1], widths.transition1, g[1], BN_SIZE),
      new HcgTransition(widths.block2, widths.transition2),
      hybridBlock(n[2], widths.transition2, g[2], BN_SIZE),
      new BatchNorm2d(widths.block3),
      new ReLU(),
    ));
    this.blockExtractor2 = this.registerModule('block_extractor2', new Sequential(
      hybridBlock(n[2], widths.transition2, g[2], BN_SIZE),
      new BatchNorm2d(widths.block3),
      new ReLU(),
    ));
    this.fc1 = this.registerModule('fc1', new Linear(widths.block3, numClasses));
    this.fc2 = this.registerModule('fc2', new Linear(widths.block3, numClasses));
  }

  /** Inputs: [Transition1 output, Transition2 output]; returns their features and logits. */
  readonly branchCount = 2;

  override forward(inputs: readonly Tensor[]): StudentOutput {
    return runBranches('HCGNetAuxiliaryClassifier', inputs, [
      [(map: Tensor) => globalAveragePool(this.blockExtractor1.forward(map) as Tensor), this.fc1],
      [(map: Tensor) => globalAveragePool(this.blockExtractor2.forward(map) as Tensor), this.fc2],
    ]);
  }
}

function build(architecture: string, config: HCGNetConfig, options: ModelOptions): Student {
  const resolved = resolveModelOptions(options, 32, architecture, 4);
  const backbone = new HCGNet(architecture, config, resolved.numClasses, resolved.inChannels);
  if (!resolved.auxiliary) return backbone;
  // The reference's HCGNet_Auxiliary: children 'backbone' and 'auxiliary_classifier'.
  return new AuxiliaryStudent(architecture, backbone, new HCGNetAuxiliaryClassifier(config, resolved.numClasses));
}

export function hcgnetA1(options: ModelOptions): Student {
  return build('hcgnet_a1', CONFIGS.A1, options);
}

export function hcgnetA2(options: ModelOptions): Student {
  return build('hcgnet_a2', CONFIGS.A2, options);
}
