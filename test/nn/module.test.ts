// nn.Module: registration, naming (PyTorch's state-dict keys), modes, state dicts, devices, lifetime.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { F, Tensor, memory, nn, noGrad, tensor, tidy, zeros } from '../../src/index.js';
import { expectClose, randomTensor } from '../helpers/random.js';

/** conv-bn-relu-conv-bn with a 1×1 conv+bn projection shortcut (CIFAR ResNet BasicBlock). */
class BasicBlock extends nn.Module {
  readonly conv1: nn.Conv2d;
  readonly bn1: nn.BatchNorm2d;
  readonly conv2: nn.Conv2d;
  readonly bn2: nn.BatchNorm2d;
  readonly shortcut: nn.Sequential;

  constructor(inPlanes: number, planes: number, stride: number) {
    super();
    this.conv1 = this.registerModule('conv1', new nn.Conv2d(inPlanes, planes, 3, { stride, padding: 1, bias: false }));
    this.bn1 = this.registerModule('bn1', new nn.BatchNorm2d(planes));
    this.conv2 = this.registerModule('conv2', new nn.Conv2d(planes, planes, 3, { padding: 1, bias: false }));
    this.bn2 = this.registerModule('bn2', new nn.BatchNorm2d(planes));
    this.shortcut = this.registerModule(
      'shortcut',
      stride !== 1 || inPlanes !== planes
        ? new nn.Sequential(new nn.Conv2d(inPlanes, planes, 1, { stride, bias: false }), new nn.BatchNorm2d(planes))
        : new nn.Sequential(),
    );
  }

  override forward(x: Tensor): Tensor {
    const out = F.relu(this.bn1.forward(this.conv1.forward(x)));
    return F.relu(F.add(this.bn2.forward(this.conv2.forward(out)), this.shortcut.forward(x)));
  }
}

class TinyResNet extends nn.Module {
  readonly conv1 = this.registerModule('conv1', new nn.Conv2d(3, 4, 3, { padding: 1, bias: false }));
  readonly bn1 = this.registerModule('bn1', new nn.BatchNorm2d(4));
  readonly layer1 = this.registerModule('layer1', new nn.Sequential(new BasicBlock(4, 8, 2)));
  readonly pool = this.registerModule('pool', new nn.AdaptiveAvgPool2d(1));
  readonly flatten = this.registerModule('flatten', new nn.Flatten());
  readonly fc = this.registerModule('fc', new nn.Linear(8, 5));

  override forward(x: Tensor): Tensor {
    const stem = F.relu(this.bn1.forward(this.conv1.forward(x)));
    return this.fc.forward(this.flatten.forward(this.pool.forward(this.layer1.forward(stem))));
  }
}

const bnKeys = (prefix: string): string[] =>
  ['weight', 'bias', 'running_mean', 'running_var', 'num_batches_tracked'].map((name) => `${prefix}.${name}`);

const expectedStateKeys = [
  'conv1.weight',
  ...bnKeys('bn1'),
  'layer1.0.conv1.weight',
  ...bnKeys('layer1.0.bn1'),
  'layer1.0.conv2.weight',
  ...bnKeys('layer1.0.bn2'),
  'layer1.0.shortcut.0.weight',
  ...bnKeys('layer1.0.shortcut.1'),
  'fc.weight',
  'fc.bias',
];

const buffersOnly = new Set(['running_mean', 'running_var', 'num_batches_tracked']);

function output(model: nn.Module, x: Tensor): Float32Array {
  return tidy(() => noGrad(() => model.forward(x).toFloat32Array()));
}

/** A few training-mode forwards so the running statistics differ from their initial values. */
function warmUp(model: nn.Module, steps = 2): void {
  model.train();
  for (let step = 0; step < steps; step += 1) {
    tidy(() => {
      noGrad(() => model.forward(randomTensor([4, 3, 8, 8], { scale: 2 })));
    });
  }
}

let baseline = memory();
beforeEach(() => {
  baseline = memory();
});
afterEach(() => {
  // Every test disposes what it created.
  const now = memory();
  expect(now.liveTensors, 'live tensors after the test').toBe(baseline.liveTensors);
  expect(now.liveBytes, 'live bytes after the test').toBe(baseline.liveBytes);
});

describe('naming', () => {
  it('uses PyTorch state-dict keys, in PyTorch order', () => {
    const model = new TinyResNet();
    expect([...model.stateDict().keys()]).toEqual(expectedStateKeys);
    const parameterNames = expectedStateKeys.filter((key) => !buffersOnly.has(key.split('.').pop()!));
    expect(model.namedParameters().map(([name]) => name)).toEqual(parameterNames);
    expect(model.parameters()).toHaveLength(parameterNames.length);
    expect(model.namedBuffers().map(([name]) => name)).toEqual(expectedStateKeys.filter((key) => buffersOnly.has(key.split('.').pop()!)));
    expect(model.buffers().every((b) => !b.requiresGrad)).toBe(true);
    expect(model.parameters().every((p) => p.requiresGrad && p.isLeaf)).toBe(true);
    expect(model.namedParameters({ prefix: 'student' })[0]![0]).toBe('student.conv1.weight');
    expect(model.layer1.namedParameters()[0]![0]).toBe('0.conv1.weight');
    model.dispose();
  });

  it('lists children and modules in registration order', () => {
    const model = new TinyResNet();
    expect(model.namedChildren().map(([name]) => name)).toEqual(['conv1', 'bn1', 'layer1', 'pool', 'flatten', 'fc']);
    expect(model.children()[2]).toBe(model.layer1);
    expect(model.namedModules().map(([name]) => name)).toEqual([
      '', 'conv1', 'bn1', 'layer1', 'layer1.0', 'layer1.0.conv1', 'layer1.0.bn1', 'layer1.0.conv2', 'layer1.0.bn2',
      'layer1.0.shortcut', 'layer1.0.shortcut.0', 'layer1.0.shortcut.1', 'pool', 'flatten', 'fc',
    ]);
    expect(model.modules()[0]).toBe(model);
    expect(model.getSubmodule('layer1.0.shortcut.1')).toBeInstanceOf(nn.BatchNorm2d);
    expect(model.getParameter('layer1.0.conv1.weight')).toBe((model.layer1.at(0) as BasicBlock).conv1.weight);
    expect(model.getBuffer('bn1.running_var')).toBe(model.bn1.runningVar);
    expect(() => model.getSubmodule('layer2')).toThrow(/no submodule 'layer2'/);
    expect(() => model.getParameter('fc.gamma')).toThrow(/no parameter 'fc.gamma'/);
    const visited: string[] = [];
    model.apply((m) => visited.push(m.typeName));
    expect(visited[visited.length - 1]).toBe('TinyResNet');
    expect(visited).toHaveLength(15);
    model.dispose();
  });

  it('prints a PyTorch-style tree', () => {
    const seq = new nn.Sequential(new nn.Conv2d(3, 8, 3, { padding: 1, bias: false }), new nn.BatchNorm2d(8), new nn.ReLU());
    expect(seq.toString()).toBe(
      'Sequential(\n' +
        '  (0): Conv2d(3, 8, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1), bias=False)\n' +
        '  (1): BatchNorm2d(8, eps=0.00001, momentum=0.1, affine=True, track_running_stats=True)\n' +
        '  (2): ReLU()\n' +
        ')',
    );
    seq.dispose();
  });

  it('registration: null entries, duplicates, bad names, shared tensors', () => {
    class Custom extends nn.Module {
      readonly scale = this.registerParameter('scale', tensor([2], [1]));
      readonly absent = this.registerParameter('absent', null);
      readonly shared = this.registerModule('shared', new nn.Linear(2, 2));
      readonly again = this.registerModule('again', this.shared);
      override forward(x: Tensor): Tensor {
        return F.mul(this.again.forward(this.shared.forward(x)), this.scale);
      }
    }
    const model = new Custom();
    // A module reachable twice is listed once (first name) by the traversals, twice by stateDict.
    expect(model.namedParameters().map(([name]) => name)).toEqual(['scale', 'shared.weight', 'shared.bias']);
    expect(model.children()).toHaveLength(1);
    expect([...model.stateDict().keys()]).toEqual(['scale', 'shared.weight', 'shared.bias', 'again.weight', 'again.bias']);
    expect(model.getParameter('absent')).toBeNull();
    expect(model.scale.name).toBe('scale');
    tidy(() => {
      expect(() => model.registerBuffer('scale', zeros([1]))).toThrow(/'scale' is already registered as a parameter/);
      expect(() => model.registerModule('a.b', new nn.ReLU())).toThrow(/must not contain '\.'/);
      expect(() => model.registerParameter('', zeros([1]))).toThrow(/non-empty string/);
    });
    expect(() => model.registerModule('self', model)).toThrow(/its own child/);
    const hidden = tensor([1], [1]);
    const transient = model.registerBuffer('transient', hidden, { persistent: false });
    expect(model.namedBuffers().map(([name]) => name)).toEqual(['transient']);
    expect(model.stateDict().has('transient')).toBe(false);
    model.dispose();
    expect(transient.isDisposed).toBe(true);
  });

  it('registered tensors survive tidy scopes', () => {
    const model = tidy(() => new nn.Linear(3, 2));
    expect(model.weight.isAlive).toBe(true);
    expect(model.bias!.isAlive).toBe(true);
    model.dispose();
    expect(model.weight.isAlive).toBe(false);
  });
});

describe('modes', () => {
  it('train/eval propagates and switches BatchNorm between batch and running statistics', () => {
    const model = new nn.Sequential(new nn.Conv2d(3, 6, 3, { padding: 1 }), new nn.BatchNorm2d(6));
    const bn = model.at(1) as nn.BatchNorm2d;
    expect(model.training).toBe(true);
    model.eval();
    expect(model.modules().every((m) => !m.training)).toBe(true);
    model.train();
    expect(model.modules().every((m) => m.training)).toBe(true);

    const x = randomTensor([4, 3, 5, 5], { scale: 3, offset: 1 });
    const features = tidy(() => noGrad(() => (model.at(0) as nn.Conv2d).forward(x).toFloat32Array()));
    // Per-channel batch statistics of the conv output (float64).
    const [n, c, s] = [4, 6, 25];
    const mean = new Float64Array(c);
    const variance = new Float64Array(c);
    for (let ch = 0; ch < c; ch += 1) {
      let total = 0;
      for (let b = 0; b < n; b += 1) for (let i = 0; i < s; i += 1) total += features[(b * c + ch) * s + i]!;
      mean[ch] = total / (n * s);
      let squares = 0;
      for (let b = 0; b < n; b += 1) for (let i = 0; i < s; i += 1) squares += (features[(b * c + ch) * s + i]! - mean[ch]!) ** 2;
      variance[ch] = squares / (n * s);
    }

    // Training mode: normalised by the batch statistics; running stats move by momentum 0.1.
    const trainOut = output(model, x);
    const expectedTrain = features.map((v, i) => {
      const ch = Math.floor(i / s) % c;
      return (v - mean[ch]!) / Math.sqrt(variance[ch]! + 1e-5);
    });
    expectClose(trainOut, expectedTrain, { rtol: 1e-3, atol: 1e-4, label: 'train-mode BatchNorm' });
    const unbiased = Array.from(variance, (v) => (v * n * s) / (n * s - 1));
    expectClose(bn.runningMean!.toFloat32Array(), Array.from(mean, (m) => 0.1 * m), { rtol: 1e-4, atol: 1e-6 });
    expectClose(bn.runningVar!.toFloat32Array(), unbiased.map((v) => 0.9 + 0.1 * v), { rtol: 1e-4, atol: 1e-6 });
    expect(bn.numBatchesTracked!.item()).toBe(1);

    // Eval mode: normalised by the running statistics, which stay unchanged.
    model.eval();
    const runningMean = bn.runningMean!.toFloat32Array();
    const runningVar = bn.runningVar!.toFloat32Array();
    const evalOut = output(model, x);
    const expectedEval = features.map((v, i) => {
      const ch = Math.floor(i / s) % c;
      return (v - runningMean[ch]!) / Math.sqrt(runningVar[ch]! + 1e-5);
    });
    expectClose(evalOut, expectedEval, { rtol: 1e-4, atol: 1e-5, label: 'eval-mode BatchNorm' });
    expect(bn.runningMean!.toFloat32Array()).toEqual(runningMean);
    expect(bn.numBatchesTracked!.item()).toBe(1);
    expect(evalOut).not.toEqual(trainOut);

    model.train();
    output(model, x);
    output(model, x);
    expect(bn.numBatchesTracked!.item()).toBe(3);
    x.dispose();
    model.dispose();
  });

  it('BatchNorm options: momentum null averages cumulatively; no running stats uses the batch in eval', () => {
    const cumulative = new nn.BatchNorm2d(3, { momentum: null });
    const batches = [0, 1, 2].map(() => randomTensor([2, 3, 4, 4], { scale: 2, offset: 0.5 }));
    const means = batches.map((b) => tidy(() => F.mean(b, [0, 2, 3]).toFloat32Array()));
    for (const b of batches) output(cumulative, b);
    const average = [0, 1, 2].map((ch) => (means[0]![ch]! + means[1]![ch]! + means[2]![ch]!) / 3);
    expectClose(cumulative.runningMean!.toFloat32Array(), average, { rtol: 1e-4, atol: 1e-6 });

    const plain = new nn.BatchNorm2d(3, { affine: false, trackRunningStats: false });
    expect(plain.parameters()).toHaveLength(0);
    expect(plain.buffers()).toHaveLength(0);
    expect(plain.stateDict().size).toBe(0);
    const trainOut = output(plain, batches[0]!);
    plain.eval();
    expect(output(plain, batches[0]!)).toEqual(trainOut);

    tidy(() => {
      expect(() => cumulative.forward(zeros([2, 3]))).toThrow(/expected 4-D input/);
      expect(() => cumulative.forward(zeros([2, 4, 2, 2]))).toThrow(/4 channels, expected 3/);
    });
    for (const b of batches) b.dispose();
    cumulative.dispose();
    plain.dispose();
  });

  it('BatchNorm1d normalises [N, C] and [N, C, L] per feature', () => {
    const bn = new nn.BatchNorm1d(3);
    for (const shape of [[6, 3], [4, 3, 5]]) {
      const x = randomTensor(shape, { scale: 2, offset: 1 });
      const y = output(bn, x);
      const values = x.toFloat32Array();
      const spatial = shape[2] ?? 1;
      for (let feature = 0; feature < 3; feature += 1) {
        const picked: number[] = [];
        for (let n = 0; n < shape[0]!; n += 1) for (let s = 0; s < spatial; s += 1) picked.push((n * 3 + feature) * spatial + s);
        const mean = picked.reduce((total, i) => total + values[i]!, 0) / picked.length;
        const variance = picked.reduce((total, i) => total + (values[i]! - mean) ** 2, 0) / picked.length;
        expectClose(picked.map((i) => y[i]!), picked.map((i) => (values[i]! - mean) / Math.sqrt(variance + 1e-5)), { rtol: 1e-3, atol: 1e-4 });
      }
      x.dispose();
    }
    expect(bn.numBatchesTracked!.item()).toBe(2);
    tidy(() => expect(() => bn.forward(zeros([2, 3, 2, 2]))).toThrow(/BatchNorm1d: expected 2-D \[N, C\] or 3-D/));
    bn.dispose();
  });

  it('zeroGrad disposes gradients or zeroes them in place', () => {
    const model = new nn.Linear(4, 3);
    const x = randomTensor([5, 4]);
    const run = (): void => tidy(() => F.sum(model.forward(x)).backward());
    run();
    expect(model.weight.grad).not.toBeNull();
    model.zeroGrad(false);
    expect(model.weight.grad!.toFloat32Array()).toEqual(new Float32Array(12));
    run();
    expect(model.bias!.grad!.toFloat32Array()).toEqual(new Float32Array(3).fill(5));
    model.zeroGrad();
    expect(model.weight.grad).toBeNull();
    expect(model.bias!.grad).toBeNull();
    model.setRequiresGrad(false);
    expect(model.parameters().some((p) => p.requiresGrad)).toBe(false);
    x.dispose();
    model.dispose();
  });
});

describe('state dicts', () => {
  it('round-trip gives identical outputs (train and eval mode)', () => {
    const source = new TinyResNet();
    warmUp(source);
    const state = source.stateDict();
    expect(state.get('bn1.num_batches_tracked')).toEqual({ shape: [], data: new Float32Array([2]) });
    const target = new TinyResNet();
    const x = randomTensor([3, 3, 8, 8]);
    source.eval();
    target.eval();
    expect(output(target, x)).not.toEqual(output(source, x));
    const result = target.loadStateDict(state);
    expect(result).toEqual({ missingKeys: [], unexpectedKeys: [] });
    expect(output(target, x)).toEqual(output(source, x));
    for (const [name, entry] of target.stateDict()) expect(entry).toEqual(state.get(name));
    // Training mode after loading: same outputs and the same running-stat updates and counts.
    source.train();
    target.train();
    expect(output(target, x)).toEqual(output(source, x));
    expect(target.bn1.numBatchesTracked!.item()).toBe(3);
    expect([...target.stateDict()]).toEqual([...source.stateDict()]);
    x.dispose();
    source.dispose();
    target.dispose();
  });

  it('is a snapshot; loading copies in place and bumps versions; accepts objects and tensors', () => {
    const model = new nn.Linear(3, 2);
    const weight = model.weight;
    const state = model.stateDict();
    const before = state.get('weight')!.data.slice();
    noGrad(() => nn.init.constant(model.weight, 7));
    expect(state.get('weight')!.data).toEqual(before);
    const version = weight.version;
    model.loadStateDict(Object.fromEntries(state));
    expect(model.weight).toBe(weight);
    expect(weight.version).toBeGreaterThan(version);
    expect(weight.toFloat32Array()).toEqual(before);
    const replacement = { weight: randomTensor([2, 3]), bias: randomTensor([2]) };
    model.loadStateDict(replacement);
    expect(model.weight.toFloat32Array()).toEqual(replacement.weight.toFloat32Array());
    expect(model.bias!.toFloat32Array()).toEqual(replacement.bias.toFloat32Array());
    replacement.weight.dispose();
    replacement.bias.dispose();
    model.dispose();
  });

  it('strict loading reports missing and unexpected keys and shape mismatches, and changes nothing', () => {
    const model = new TinyResNet();
    const good = model.stateDict();
    const snapshot = [...good];

    const missing = new Map(good);
    missing.delete('fc.bias');
    missing.delete('bn1.running_var');
    expect(() => model.loadStateDict(missing)).toThrow(/Missing key\(s\) in state dict: "bn1.running_var", "fc.bias"\./);

    const unexpected = new Map(good);
    unexpected.set('fc2.weight', { shape: [1], data: new Float32Array(1) });
    expect(() => model.loadStateDict(unexpected)).toThrow(/Unexpected key\(s\) in state dict: "fc2.weight"\./);

    const wrongShape = new Map(good);
    wrongShape.set('fc.weight', { shape: [8, 5], data: new Float32Array(40).fill(3) });
    wrongShape.set('conv1.weight', { shape: [4, 3, 3, 3], data: new Float32Array(108).fill(3) });
    let message = '';
    try {
      model.loadStateDict(new Map([...wrongShape].filter(([key]) => key !== 'fc.bias')));
    } catch (error) {
      message = (error as Error).message;
    }
    expect(message).toMatch(/Error\(s\) in loading state dict for TinyResNet/);
    expect(message).toMatch(/Missing key\(s\) in state dict: "fc.bias"/);
    expect(message).toMatch(
      /size mismatch for fc\.weight: copying a param with shape \[8, 5\] from checkpoint, the shape in current model is \[5, 8\]/,
    );
    // Shape mismatches throw even when not strict.
    expect(() => model.loadStateDict(wrongShape, { strict: false })).toThrow(/size mismatch for fc\.weight/);
    // Nothing was written by the failed loads (conv1.weight was valid in them).
    expect([...model.stateDict()]).toEqual(snapshot);

    // Malformed entries.
    expect(() => model.loadStateDict({ 'fc.bias': { shape: [5], data: new Float32Array(4) } }, { strict: false })).toThrow(
      /entry 'fc.bias' has 4 values for shape \[5\]/,
    );
    expect(() => model.loadStateDict({ 'fc.bias': { shape: [5], data: [1, 2, 3, 4, 5] } as never }, { strict: false })).toThrow(
      /no Float32Array 'data'/,
    );
    expect(() => model.loadStateDict(null as never)).toThrow(/expected a Map or a plain object/);

    // Non-strict: loads the overlap and reports the rest.
    const fcBias = new Float32Array([1, 2, 3, 4, 5]);
    const partial = model.loadStateDict({ 'fc.bias': { shape: [5], data: fcBias }, extra: { shape: [], data: new Float32Array(1) } }, { strict: false });
    expect(partial.unexpectedKeys).toEqual(['extra']);
    expect(partial.missingKeys).toEqual(expectedStateKeys.filter((key) => key !== 'fc.bias'));
    expect(model.fc.bias!.toFloat32Array()).toEqual(fcBias);
    model.dispose();
  });
});

describe('devices and lifetime', () => {
  it('to(cpu) is a no-op that keeps the same tensors', () => {
    const model = new TinyResNet();
    const before = model.parameters();
    expect(model.to('cpu')).toBe(model);
    expect(model.parameters()).toEqual(before);
    expect(() => model.to('tpu' as never)).toThrow(/unknown device 'tpu'/);
    model.dispose();
  });

  it('dispose frees every parameter, gradient and buffer', () => {
    const start = memory();
    const model = new TinyResNet();
    tidy(() => F.sum(model.forward(randomTensor([2, 3, 8, 8]))).backward());
    expect(model.parameters().every((p) => p.grad !== null)).toBe(true);
    expect(memory().liveTensors).toBeGreaterThan(start.liveTensors);
    const tensors = [...model.parameters(), ...model.buffers()];
    model.dispose();
    expect(tensors.every((t) => t.isDisposed && !t.isAlive)).toBe(true);
    expect(memory().liveTensors).toBe(start.liveTensors);
    expect(memory().liveBytes).toBe(start.liveBytes);
    tidy(() => expect(() => model.forward(zeros([1, 3, 8, 8]))).toThrow(/disposed/));
  });
});

describe('containers and simple layers', () => {
  it('Sequential chains, indexes and names its children', () => {
    const seq = new nn.Sequential(new nn.Linear(4, 6), new nn.ReLU(), new nn.Linear(6, 2));
    expect(seq.length).toBe(3);
    expect(seq.at(-1)).toBe(seq.at(2));
    expect(() => seq.at(3)).toThrow(/out of range/);
    expect([...seq]).toHaveLength(3);
    const x = randomTensor([5, 4]);
    const manual = tidy(() =>
      noGrad(() => (seq.at(2) as nn.Linear).forward(F.relu((seq.at(0) as nn.Linear).forward(x))).toFloat32Array()),
    );
    expect(output(seq, x)).toEqual(manual);
    seq.append(new nn.Identity());
    expect(seq.namedChildren().map(([name]) => name)).toEqual(['0', '1', '2', '3']);
    const named = new nn.Sequential(new Map<string, nn.Module>([['fc', new nn.Linear(4, 2)], ['act', new nn.ReLU()]]));
    expect([...named.stateDict().keys()]).toEqual(['fc.weight', 'fc.bias']);
    const list = new nn.ModuleList([new nn.Linear(2, 2), new nn.Linear(2, 3)]);
    expect(list.namedParameters().map(([name]) => name)).toEqual(['0.weight', '0.bias', '1.weight', '1.bias']);
    expect(() => list.forward()).toThrow(/no forward/);
    expect(() => new nn.Sequential({} as nn.Module)).toThrow(/argument 0 is not a Module/);
    x.dispose();
    seq.dispose();
    named.dispose();
    list.dispose();
  });

  it('Flatten, Identity, pooling layers, and layer argument checks', () => {
    const x = randomTensor([2, 3, 4, 6]);
    tidy(() => {
      expect(new nn.Flatten().forward(x).shape).toEqual([2, 72]);
      expect(new nn.Flatten(0, 1).forward(x).shape).toEqual([6, 4, 6]);
      expect(new nn.Flatten(2).forward(x).shape).toEqual([2, 3, 24]);
      expect(new nn.Identity().forward(x)).toBe(x);
      expect(new nn.AvgPool2d(2).forward(x).shape).toEqual([2, 3, 2, 3]);
      expect(new nn.MaxPool2d(3, 2, 1).forward(x).shape).toEqual([2, 3, 2, 3]);
      expect(new nn.MaxPool2d(3, { stride: 1, padding: 1 }).forward(x).shape).toEqual([2, 3, 4, 6]);
      const pooled = new nn.AdaptiveAvgPool2d(1).forward(x);
      expect(pooled.shape).toEqual([2, 3, 1, 1]);
      expectClose(pooled.toFloat32Array(), F.mean(x, [2, 3]).toFloat32Array(), { rtol: 1e-5, atol: 1e-6 });
    });
    expect(() => new nn.Conv2d(6, 4, 3, { groups: 4 })).toThrow(/inChannels \(6\) must be divisible by groups \(4\)/);
    expect(() => new nn.Conv2d(3, 4, 0)).toThrow(/kernelSize/);
    expect(() => new nn.Linear(0, 4)).toThrow(/inFeatures must be a positive integer/);
    expect(() => new nn.BatchNorm2d(4, { momentum: 2 })).toThrow(/momentum must be a number in \[0, 1\] or null/);
    x.dispose();
  });
});
