// ResNet students (src/models/resnet_cifar.ts, resnet_imagenet.ts, blocks.ts): parameter counts
// derived by hand from the layer shapes, PyTorch state-dict names, output shapes and stage order
// with and without the L-MCL auxiliary branches, 1×28×28 inputs, init rules, and a tiny
// overfit-one-batch run. Big models (resnet110/34/50) are only constructed, never run.
//
// Counting rules (no conv has a bias): conv k×k cin→cout = k²·cin·cout; BN(c) = 2c (weight, bias;
// running stats are buffers); Linear(d→C) = d·C + C.
// BasicBlock(cin→c) = 9·cin·c + 2c + 9·c·c + 2c, plus projection cin·c + 2c when the shape changes.
// Bottleneck(cin, p) = cin·p + 2p + 9·p² + 2p + p·4p + 8p, plus projection cin·4p + 8p.
import { afterEach, describe, expect, it } from 'vitest';
import { F, models, noGrad, optim, tensor, tidy, type Tensor } from '../../src/index.js';
import type { Student } from '../../src/models/types.js';
import { randomArray, randomTensor } from '../helpers/random.js';

const built: Student[] = [];
function make(name: string, options: models.ModelOptions): Student {
  const model = models.createModel(name, options);
  built.push(model);
  return model;
}
afterEach(() => {
  for (const model of built.splice(0)) model.dispose();
});

function parameterCount(model: Student): number {
  return model.parameters().reduce((total, value) => total + value.size, 0);
}

function shapesOf(model: Student): Map<string, number[]> {
  const result = new Map<string, number[]>();
  for (const [name, value] of [...model.namedParameters(), ...model.namedBuffers()]) result.set(name, [...value.shape]);
  return result;
}

// ---- CIFAR pieces (3 input channels) ----------------------------------------------------------
const STEM = 3 * 9 * 16 + 2 * 16; // conv1 3→16 + bn1                                        = 464
const B16 = 9 * 16 * 16 + 2 * 16 + 9 * 16 * 16 + 2 * 16; // BasicBlock 16→16                  = 4,672
const B16_32 = 9 * 16 * 32 + 2 * 32 + 9 * 32 * 32 + 2 * 32 + (16 * 32 + 2 * 32); // s2 + proj = 14,528
const B32 = 9 * 32 * 32 + 2 * 32 + 9 * 32 * 32 + 2 * 32; //                                    = 18,560
const B32_64 = 9 * 32 * 64 + 2 * 64 + 9 * 64 * 64 + 2 * 64 + (32 * 64 + 2 * 64); //          = 57,728
const B64 = 9 * 64 * 64 + 2 * 64 + 9 * 64 * 64 + 2 * 64; //                                    = 73,984
const basicLayer2 = (n: number) => B16_32 + (n - 1) * B32;
const basicLayer3 = (n: number) => B32_64 + (n - 1) * B64;
// Bottleneck (ResNet-110): stage planes 16/32/64, outputs 64/128/256.
const bottleneck = (cin: number, p: number, projection: boolean) =>
  cin * p + 2 * p + 9 * p * p + 2 * p + p * 4 * p + 8 * p + (projection ? cin * 4 * p + 8 * p : 0);
const K1_FIRST = bottleneck(16, 16, true); //   = 4,928
const K1 = bottleneck(64, 16, false); //        = 4,544
const K2_FIRST = bottleneck(64, 32, true); //   = 24,192
const K2 = bottleneck(128, 32, false); //       = 17,792
const K3_FIRST = bottleneck(128, 64, true); //  = 95,488
const K3 = bottleneck(256, 64, false); //       = 70,400

// ---- ImageNet pieces ----------------------------------------------------------------------------
const I_STEM = 49 * 3 * 64 + 2 * 64; // 7×7 conv 3→64 + bn1 = 9,536
const basic = (cin: number, c: number, projection: boolean) =>
  9 * cin * c + 2 * c + 9 * c * c + 2 * c + (projection ? cin * c + 2 * c : 0);

describe('hand-derived pieces', () => {
  it('match the arithmetic written next to them', () => {
    expect([STEM, B16, B16_32, B32, B32_64, B64]).toEqual([464, 4672, 14528, 18560, 57728, 73984]);
    expect([K1_FIRST, K1, K2_FIRST, K2, K3_FIRST, K3]).toEqual([4928, 4544, 24192, 17792, 95488, 70400]);
    expect([basic(64, 128, true), basic(128, 256, true), basic(256, 512, true)]).toEqual([230144, 919040, 3673088]);
  });
});

describe('CIFAR ResNets: parameter counts', () => {
  it('resnet8/14/20 (10 classes): n = 1/2/3 BasicBlocks per stage', () => {
    const head = 64 * 10 + 10;
    const expected = (n: number) => STEM + n * B16 + basicLayer2(n) + basicLayer3(n) + head;
    expect(expected(1)).toBe(78_042);
    expect(expected(2)).toBe(175_258);
    expect(expected(3)).toBe(272_474);
    expect(parameterCount(make('resnet8', { numClasses: 10 }))).toBe(78_042);
    expect(parameterCount(make('resnet14', { numClasses: 10 }))).toBe(175_258);
    expect(parameterCount(make('resnet20', { numClasses: 10 }))).toBe(272_474);
  });

  it('resnet32 (100 classes) = 472,756 ≈ 0.47 M; with auxiliary branches 1,281,852', () => {
    // 464 + 5·4,672 + (14,528 + 4·18,560) + (57,728 + 4·73,984) + (64·100 + 100)
    const backbone = STEM + 5 * B16 + basicLayer2(5) + basicLayer3(5) + 6_500;
    expect(backbone).toBe(472_756);
    // aux1 = copy(layer2) + copy(layer3) + fc1; aux2 = copy(layer3) + fc2
    const auxiliary = basicLayer2(5) + basicLayer3(5) + basicLayer3(5) + 2 * 6_500;
    expect(auxiliary).toBe(809_096);
    expect(parameterCount(make('resnet32', { numClasses: 100 }))).toBe(472_756);
    expect(parameterCount(make('resnet32', { numClasses: 100, auxiliary: true }))).toBe(472_756 + 809_096);
  });

  it('resnet56 (100 classes) = 861,620 ≈ 0.86 M', () => {
    const backbone = STEM + 9 * B16 + basicLayer2(9) + basicLayer3(9) + 6_500;
    expect(backbone).toBe(861_620);
    expect(parameterCount(make('resnet56', { numClasses: 100 }))).toBe(861_620);
  });

  it('resnet110 (Bottleneck ×12 per stage, 100 classes) = 1,170,868 ≈ 1.17 M; d = 256', () => {
    const layer1 = K1_FIRST + 11 * K1; //  54,912
    const layer2 = K2_FIRST + 11 * K2; // 219,904
    const layer3 = K3_FIRST + 11 * K3; // 869,888
    const backbone = STEM + layer1 + layer2 + layer3 + (256 * 100 + 100);
    expect(backbone).toBe(1_170_868);
    const auxiliary = layer2 + layer3 + layer3 + 2 * (256 * 100 + 100);
    expect(auxiliary).toBe(2_011_080);
    const plain = make('resnet110', { numClasses: 100 });
    expect(parameterCount(plain)).toBe(1_170_868);
    expect(plain.featureDim).toBe(256);
    const withAux = make('resnet110', { numClasses: 100, auxiliary: true });
    expect(parameterCount(withAux)).toBe(1_170_868 + 2_011_080);
    expect(withAux.featureDim).toBe(256);
    expect(withAux.stageCount).toBe(3);
  });
});

describe('ImageNet ResNets: parameter counts (torchvision)', () => {
  it('resnet18 (1000 classes) = 11,689,512', () => {
    const layer1 = 2 * basic(64, 64, false); //                        147,968
    const layer2 = basic(64, 128, true) + basic(128, 128, false); //   525,568
    const layer3 = basic(128, 256, true) + basic(256, 256, false); // 2,099,712
    const layer4 = basic(256, 512, true) + basic(512, 512, false); // 8,393,728
    const total = I_STEM + layer1 + layer2 + layer3 + layer4 + (512 * 1000 + 1000);
    expect(total).toBe(11_689_512);
    const model = make('resnet18', { numClasses: 1000 });
    expect(parameterCount(model)).toBe(11_689_512);
    expect(model.featureDim).toBe(512);
  });

  it('resnet34 (1000 classes) = 21,797,672', () => {
    const total = I_STEM + 3 * basic(64, 64, false) + (basic(64, 128, true) + 3 * basic(128, 128, false)) +
      (basic(128, 256, true) + 5 * basic(256, 256, false)) + (basic(256, 512, true) + 2 * basic(512, 512, false)) + 513_000;
    expect(total).toBe(21_797_672);
    expect(parameterCount(make('resnet34', { numClasses: 1000 }))).toBe(21_797_672);
  });

  it('resnet50 (Bottleneck [3,4,6,3], 1000 classes) = 25,557,032; d = 2048', () => {
    const layer1 = bottleneck(64, 64, true) + 2 * bottleneck(256, 64, false); //        215,808
    const layer2 = bottleneck(256, 128, true) + 3 * bottleneck(512, 128, false); //   1,219,584
    const layer3 = bottleneck(512, 256, true) + 5 * bottleneck(1024, 256, false); //  7,098,368
    const layer4 = bottleneck(1024, 512, true) + 2 * bottleneck(2048, 512, false); // 14,964,736
    const total = I_STEM + layer1 + layer2 + layer3 + layer4 + (2048 * 1000 + 1000);
    expect(total).toBe(25_557_032);
    const model = make('resnet50', { numClasses: 1000 });
    expect(parameterCount(model)).toBe(25_557_032);
    expect(model.featureDim).toBe(2048);
  });

  it('resnet18 with auxiliary branches (10 classes): one block per auxiliary stage', () => {
    const head = 512 * 10 + 10;
    const backbone = 11_689_512 - 513_000 + head;
    const aux1 = basic(64, 128, true) + basic(128, 256, true) + basic(256, 512, true); // 4,822,272
    const aux2 = basic(128, 256, true) + basic(256, 512, true); //                       4,592,128
    const aux3 = basic(256, 512, true); //                                               3,673,088
    expect(aux1 + aux2 + aux3).toBe(13_087_488);
    expect(parameterCount(make('resnet18', { numClasses: 10, auxiliary: true }))).toBe(backbone + 13_087_488 + 3 * head);
  });
});

describe('state-dict names', () => {
  it('CIFAR: the reference module tree (conv1, bn1, layerK.i.*, downsample.0/1, fc)', () => {
    const shapes = shapesOf(make('resnet32', { numClasses: 100 }));
    expect(shapes.get('conv1.weight')).toEqual([16, 3, 3, 3]);
    expect(shapes.get('bn1.running_mean')).toEqual([16]);
    expect(shapes.get('bn1.num_batches_tracked')).toEqual([]);
    expect(shapes.get('layer1.0.conv1.weight')).toEqual([16, 16, 3, 3]);
    expect(shapes.get('layer1.4.bn2.bias')).toEqual([16]);
    expect(shapes.has('layer1.0.downsample.0.weight')).toBe(false); // identity shortcut
    expect(shapes.get('layer2.0.conv1.weight')).toEqual([32, 16, 3, 3]);
    expect(shapes.get('layer2.0.downsample.0.weight')).toEqual([32, 16, 1, 1]);
    expect(shapes.get('layer2.0.downsample.1.running_var')).toEqual([32]);
    expect(shapes.has('layer2.1.downsample.0.weight')).toBe(false);
    expect(shapes.get('layer3.4.conv2.weight')).toEqual([64, 64, 3, 3]);
    expect(shapes.get('fc.weight')).toEqual([100, 64]);
    expect(shapes.get('fc.bias')).toEqual([100]);
    expect([...shapes.keys()].some((key) => key.startsWith('auxiliary_classifier'))).toBe(false);

    const bottleneck110 = shapesOf(make('resnet110', { numClasses: 100 }));
    expect(bottleneck110.get('layer1.0.conv1.weight')).toEqual([16, 16, 1, 1]);
    expect(bottleneck110.get('layer1.0.conv3.weight')).toEqual([64, 16, 1, 1]);
    expect(bottleneck110.get('layer1.0.downsample.0.weight')).toEqual([64, 16, 1, 1]);
    expect(bottleneck110.get('layer2.0.conv2.weight')).toEqual([32, 32, 3, 3]);
    expect(bottleneck110.get('layer3.11.bn3.weight')).toEqual([256]);
    expect(bottleneck110.get('fc.weight')).toEqual([100, 256]);
  });

  it("CIFAR auxiliary: the reference's layout, backbone.* (plain keys) and auxiliary_classifier.*", () => {
    const plain = make('resnet8', { numClasses: 10 });
    const withAux = make('resnet8', { numClasses: 10, auxiliary: true });
    const keys = [...withAux.stateDict().keys()];
    expect(keys.every((key) => key.startsWith('backbone.') || key.startsWith('auxiliary_classifier.'))).toBe(true);
    expect(keys.filter((key) => key.startsWith('backbone.')).map((key) => key.slice('backbone.'.length))).toEqual([...plain.stateDict().keys()]);
    const shapes = shapesOf(withAux);
    expect(shapes.get('auxiliary_classifier.block_extractor1.0.0.conv1.weight')).toEqual([32, 16, 3, 3]);
    expect(shapes.get('auxiliary_classifier.block_extractor1.0.0.downsample.0.weight')).toEqual([32, 16, 1, 1]);
    expect(shapes.get('auxiliary_classifier.block_extractor1.1.0.downsample.0.weight')).toEqual([64, 32, 1, 1]);
    expect(shapes.get('auxiliary_classifier.block_extractor2.0.0.conv1.weight')).toEqual([64, 32, 3, 3]);
    expect(shapes.get('auxiliary_classifier.fc1.weight')).toEqual([10, 64]);
    expect(shapes.get('auxiliary_classifier.fc2.bias')).toEqual([10]);
    expect(shapes.has('auxiliary_classifier.fc3.weight')).toBe(false);
    // The backbone of an auxiliary model loads into the plain model (deployment, method.md §8.13).
    const backboneOnly = new Map([...withAux.stateDict()].filter(([key]) => key.startsWith('backbone.')).map(([key, value]) => [key.slice('backbone.'.length), value]));
    plain.loadStateDict(backboneOnly);
  });

  it('ImageNet: torchvision names, auxiliary block_extractor1..3 and fc1..3', () => {
    const shapes = shapesOf(make('resnet18', { numClasses: 10, auxiliary: true }));
    expect(shapes.get('backbone.conv1.weight')).toEqual([64, 3, 7, 7]);
    expect(shapes.get('backbone.layer1.1.conv2.weight')).toEqual([64, 64, 3, 3]);
    expect(shapes.has('backbone.layer1.0.downsample.0.weight')).toBe(false);
    expect(shapes.get('backbone.layer2.0.downsample.0.weight')).toEqual([128, 64, 1, 1]);
    expect(shapes.get('backbone.layer4.0.downsample.1.weight')).toEqual([512]);
    expect(shapes.get('backbone.fc.weight')).toEqual([10, 512]);
    expect(shapes.get('auxiliary_classifier.block_extractor1.0.0.conv1.weight')).toEqual([128, 64, 3, 3]);
    expect(shapes.get('auxiliary_classifier.block_extractor1.2.0.conv1.weight')).toEqual([512, 256, 3, 3]);
    expect(shapes.has('auxiliary_classifier.block_extractor1.3.0.conv1.weight')).toBe(false);
    expect(shapes.get('auxiliary_classifier.block_extractor2.0.0.downsample.0.weight')).toEqual([256, 128, 1, 1]);
    expect(shapes.get('auxiliary_classifier.block_extractor3.0.0.downsample.0.weight')).toEqual([512, 256, 1, 1]);
    expect(shapes.has('auxiliary_classifier.block_extractor3.0.1.conv1.weight')).toBe(false); // a single block
    expect(shapes.get('auxiliary_classifier.fc3.weight')).toEqual([10, 512]);
  });
});

describe('forward: features and logits per stage', () => {
  it('CIFAR resnet8 without auxiliary: one stage, [B, 64] and [B, classes]', () => {
    const model = make('resnet8', { numClasses: 10 });
    expect([model.architecture, model.stageCount, model.featureDim]).toEqual(['resnet8', 1, 64]);
    tidy(() => {
      const out = model.forward(randomTensor([2, 3, 32, 32]));
      expect(out.features.map((t) => t.shape)).toEqual([[2, 64]]);
      expect(out.logits.map((t) => t.shape)).toEqual([[2, 10]]);
    });
  });

  it('CIFAR auxiliary on Fashion-MNIST-sized input (1×28×28): [aux1, aux2, backbone]', () => {
    const model = make('resnet8', { numClasses: 10, inChannels: 1, imageSize: 28, auxiliary: true });
    expect([model.stageCount, model.featureDim]).toEqual([3, 64]);
    expect(model.getParameter('backbone.conv1.weight')!.shape).toEqual([16, 1, 3, 3]);
    const m = model as Student & { backbone: { fc: { forward(x: Tensor): Tensor } } };
    tidy(() => {
      noGrad(() => {
        model.eval();
        const x = randomTensor([3, 1, 28, 28]);
        const out = model.forward(x);
        expect(out.features.map((t) => t.shape)).toEqual([[3, 64], [3, 64], [3, 64]]);
        expect(out.logits.map((t) => t.shape)).toEqual([[3, 10], [3, 10], [3, 10]]);
        // The last stage is the backbone: its logits are fc(feature).
        expect(Array.from(m.backbone.fc.forward(out.features[2]!).toFloat32Array())).toEqual(Array.from(out.logits[2]!.toFloat32Array()));
        // The auxiliary stages differ from the backbone (fresh, non-shared copies).
        expect(Array.from(out.features[0]!.toFloat32Array())).not.toEqual(Array.from(out.features[2]!.toFloat32Array()));
      });
    });
  });

  it('ImageNet resnet18 with auxiliary at 32×32 and at 64×64: four stages of width 512', () => {
    const model = make('resnet18', { numClasses: 7, imageSize: 64, auxiliary: true });
    expect([model.stageCount, model.featureDim]).toEqual([4, 512]);
    tidy(() => {
      noGrad(() => {
        for (const size of [32, 64]) {
          const out = model.forward(randomTensor([2, 3, size, size]));
          expect(out.features.map((t) => t.shape)).toEqual([[2, 512], [2, 512], [2, 512], [2, 512]]);
          expect(out.logits.map((t) => t.shape)).toEqual([[2, 7], [2, 7], [2, 7], [2, 7]]);
          for (const t of [...out.features, ...out.logits]) expect(F.countNonFinite(t)).toBe(0);
        }
      });
    });
  });

  it('every parameter of an auxiliary student receives a gradient', () => {
    const model = make('resnet8', { numClasses: 4, inChannels: 1, imageSize: 12, auxiliary: true });
    tidy(() => {
      const out = model.forward(randomTensor([4, 1, 12, 12]));
      const labels = Int32Array.from([0, 1, 2, 3]);
      const loss = out.logits.map((l) => F.crossEntropy(l, labels)).reduce((a, b) => F.add(a, b));
      loss.backward();
    });
    const missing = model.namedParameters().filter(([, value]) => !value.grad).map(([name]) => name);
    expect(missing).toEqual([]);
  });
});

describe('initialisation (method.md §5.1)', () => {
  it('convs Kaiming-normal fan_out; BN (1, 0); CIFAR auxiliary fc bias 0, backbone fc default', () => {
    const model = make('resnet32', { numClasses: 100, auxiliary: true });
    const stats = (name: string) => {
      const data = model.getParameter(name)!.toFloat32Array();
      let sum = 0;
      let squares = 0;
      for (const v of data) {
        sum += v;
        squares += v * v;
      }
      const mean = sum / data.length;
      return { mean, std: Math.sqrt(squares / data.length - mean * mean) };
    };
    // std = sqrt(2 / fan_out), fan_out = C_out · 3 · 3; 64·64·9 = 36,864 draws → ±1.5 % (≈4σ).
    for (const name of ['backbone.layer3.1.conv1.weight', 'auxiliary_classifier.block_extractor2.0.1.conv2.weight']) {
      const { mean, std } = stats(name);
      expect(Math.abs(std / Math.sqrt(2 / (64 * 9)) - 1), name).toBeLessThan(0.03);
      expect(Math.abs(mean), name).toBeLessThan(0.01);
    }
    // 1×1 projection: fan_out = 64.
    expect(Math.abs(stats('backbone.layer3.0.downsample.0.weight').std / Math.sqrt(2 / 64) - 1)).toBeLessThan(0.1);
    for (const name of ['backbone.bn1', 'backbone.layer2.0.downsample.1', 'auxiliary_classifier.block_extractor1.1.0.bn2']) {
      expect(model.getParameter(`${name}.weight`)!.toFloat32Array().every((v) => v === 1), name).toBe(true);
      expect(model.getParameter(`${name}.bias`)!.toFloat32Array().every((v) => v === 0), name).toBe(true);
    }
    expect(model.getParameter('auxiliary_classifier.fc1.bias')!.toFloat32Array().every((v) => v === 0)).toBe(true);
    expect(model.getParameter('backbone.fc.bias')!.toFloat32Array().some((v) => v !== 0)).toBe(true);
  });
});

describe('registry', () => {
  it('lists the ResNets, builds by name and builds cohorts', () => {
    const names = models.listModels();
    for (const name of ['resnet8', 'resnet14', 'resnet20', 'resnet32', 'resnet56', 'resnet110', 'resnet18', 'resnet34', 'resnet50']) {
      expect(names).toContain(name);
    }
    const cohort = models.createCohort('resnet8,resnet14', undefined, { numClasses: 5, auxiliary: true });
    built.push(...cohort);
    expect(cohort.map((m) => [m.architecture, m.stageCount, m.featureDim])).toEqual([['resnet8', 3, 64], ['resnet14', 3, 64]]);
    expect(() => models.createModel('resnet8', { numClasses: 0 })).toThrow(/numClasses/);
    expect(() => models.createModel('resnet18', { numClasses: 10, inChannels: 1.5 })).toThrow(/inChannels/);
  });
});

describe('training', () => {
  it('resnet8 overfits one tiny batch (8 images 1×28×28): the loss falls', () => {
    const model = make('resnet8', { numClasses: 10, inChannels: 1, imageSize: 28 });
    const optimizer = new optim.SGD(model.parameters(), { lr: 0.05, momentum: 0.9 });
    const images = tensor(randomArray(8 * 28 * 28), [8, 1, 28, 28]);
    const labels = Int32Array.from({ length: 8 }, (_, i) => i % 10);
    const losses: number[] = [];
    for (let step = 0; step < 12; step += 1) {
      losses.push(tidy(() => {
        optimizer.zeroGrad();
        const loss = F.crossEntropy(model.forward(images).logits[0]!, labels);
        loss.backward();
        optimizer.step();
        return loss.item();
      }));
    }
    images.dispose();
    optimizer.dispose();
    expect(losses.every(Number.isFinite)).toBe(true);
    expect(losses.at(-1)!, `losses ${losses.map((l) => l.toFixed(3)).join(' ')}`).toBeLessThan(0.5 * losses[0]!);
  });
});
