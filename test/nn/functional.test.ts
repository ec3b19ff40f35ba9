// nn.Module.withParameters (functional calls with substituted tensors) and captureState /
// restoreState (in-place, bit-identical snapshots of parameters and buffers): the prerequisites
// of L-MCL's meta step. Every comparison here is bit for bit (same kernels on the same inputs),
// except where a tolerance is stated.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { F, Tensor, memory, nn, noGrad, optim, tidy } from '../../src/index.js';
import { native } from '../../src/native/index.js';
import { randomArray, randomTensor } from '../helpers/random.js';

/** conv-bn-relu, then pool-flatten-linear-bn1d-linear: parameters and buffers at several depths. */
class SmallNet extends nn.Module {
  readonly features = this.registerModule(
    'features',
    new nn.Sequential(new nn.Conv2d(3, 4, 3, { padding: 1, bias: false }), new nn.BatchNorm2d(4), new nn.ReLU()),
  );
  readonly pool = this.registerModule('pool', new nn.AdaptiveAvgPool2d(1));
  readonly flatten = this.registerModule('flatten', new nn.Flatten());
  readonly fc1 = this.registerModule('fc1', new nn.Linear(4, 6));
  readonly bn = this.registerModule('bn', new nn.BatchNorm1d(6));
  readonly fc2 = this.registerModule('fc2', new nn.Linear(6, 3));

  override forward(x: Tensor): Tensor {
    const pooled = this.flatten.forward(this.pool.forward(this.features.forward(x)));
    return this.fc2.forward(F.relu(this.bn.forward(this.fc1.forward(pooled))));
  }
}

const bitsEqual = (a: Float32Array, b: Float32Array): boolean => Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));

/** name → host copy of every parameter and buffer. */
function hostState(model: nn.Module): Map<string, Float32Array> {
  return new Map([...model.namedParameters(), ...model.namedBuffers()].map(([name, value]) => [name, value.toFloat32Array()]));
}

function expectSameBits(actual: Map<string, Float32Array>, expected: Map<string, Float32Array>): void {
  expect([...actual.keys()]).toEqual([...expected.keys()]);
  for (const [name, values] of expected) expect(bitsEqual(actual.get(name)!, values), name).toBe(true);
}

/** A few training forwards (under noGrad) so running statistics and counters are not initial. */
function warmUp(model: nn.Module, steps = 2): void {
  model.train();
  for (let step = 0; step < steps; step += 1) tidy(() => void noGrad(() => model.forward(randomTensor([5, 3, 6, 6], { scale: 2 }))));
}

let baseline = memory();
beforeEach(() => {
  baseline = memory();
});
afterEach(() => {
  const now = memory();
  expect(now.liveTensors, 'live tensors after the test').toBe(baseline.liveTensors);
  expect(now.liveBytes, 'live bytes after the test').toBe(baseline.liveBytes);
});

describe('withParameters', () => {
  it('forwards with the substitutes: same bits as loading their values, gradients reach the substitutes only', () => {
    const model = new SmallNet();
    warmUp(model);
    model.eval();
    const x = randomTensor([5, 3, 6, 6]);
    const names = model.namedParameters().map(([name]) => name);
    // Substitutes are non-leaf: 2·source, with `source` the leaves we differentiate with respect to.
    const sources = new Map(names.map((name) => [name, randomTensor([...model.getParameter(name)!.shape], { requiresGrad: true })]));
    const weights = randomTensor([5, 3]);
    const { substituted, gradients } = tidy(() => {
      const substitutes = new Map([...sources].map(([name, source]) => [name, F.mul(source, 2)]));
      const out = model.withParameters(substitutes, () => model.forward(x));
      F.sum(F.mul(out, weights)).backward();
      return { substituted: out.toFloat32Array(), gradients: new Map([...sources].map(([name, source]) => [name, source.grad!.toFloat32Array()])) };
    });
    for (const [, value] of model.namedParameters()) expect(value.grad).toBeNull();

    // The reference: the same values loaded into the module's own parameters.
    const state = model.captureState();
    const { loaded, ownGradients } = tidy(() => {
      model.loadStateDict(new Map([...sources].map(([name, source]) => [name, noGrad(() => F.mul(source, 2))])), { strict: false });
      const out = model.forward(x);
      F.sum(F.mul(out, weights)).backward();
      return { loaded: out.toFloat32Array(), ownGradients: new Map(model.namedParameters().map(([name, value]) => [name, value.grad!.toFloat32Array()])) };
    });
    expect(bitsEqual(substituted, loaded)).toBe(true);
    for (const name of names) {
      // d/dsource = 2·d/dθ, exact in float32.
      const doubled = ownGradients.get(name)!.map((value) => value * 2);
      expect(bitsEqual(gradients.get(name)!, doubled), name).toBe(true);
    }
    model.restoreState(state);
    state.dispose();
    model.zeroGrad();
    for (const source of sources.values()) source.dispose();
    x.dispose();
    weights.dispose();
    model.dispose();
  });

  it('puts the registered tensors back on return and when fn throws, fields included', () => {
    class Scaled extends nn.Module {
      // A module that also keeps its parameter in a plain field (withParameters swaps it, as to() does).
      readonly scale = this.registerParameter('scale', randomTensor([2], { requiresGrad: true }));
      override forward(x: Tensor): Tensor {
        return F.mul(x, this.scale);
      }
    }
    const model = new nn.Sequential(new Scaled(), new nn.Linear(2, 2));
    const scaled = model.getSubmodule('0') as Scaled;
    const originals = new Map(model.namedParameters());
    const substitute = randomTensor([2]);
    const x = randomTensor([3, 2]);
    const seen = model.withParameters({ '0.scale': substitute }, () => {
      expect(model.getParameter('0.scale')).toBe(substitute);
      expect(scaled.scale).toBe(substitute);
      expect(model.getParameter('1.weight')).toBe(originals.get('1.weight'));
      return tidy(() => noGrad(() => scaled.forward(x).toFloat32Array()));
    });
    const expected = tidy(() => F.mul(x, substitute).toFloat32Array());
    expect(bitsEqual(seen, expected)).toBe(true);
    for (const [name, value] of originals) expect(model.getParameter(name), name).toBe(value);
    expect(scaled.scale).toBe(originals.get('0.scale'));

    const failure = new Error('forward failed');
    const view = substitute.detach();
    expect(() =>
      model.withParameters(new Map([['1.weight', view]]), () => {
        throw failure;
      }),
    ).toThrow(/withParameters: substitute for '1.weight' has shape \[2\], the registered tensor has \[2, 2\]/);
    const weight = randomTensor([2, 2]);
    expect(() =>
      model.withParameters({ '1.weight': weight, '0.scale': substitute }, () => {
        expect(model.getParameter('1.weight')).toBe(weight);
        throw failure;
      }),
    ).toThrow(failure);
    for (const [name, value] of originals) expect(model.getParameter(name), name).toBe(value);
    expect(scaled.scale).toBe(originals.get('0.scale'));
    view.dispose();

    // Nested calls undo in order; a Promise-returning fn is refused (the swap could not cover it).
    model.withParameters({ '0.scale': substitute }, () => {
      const inner = randomTensor([2]);
      model.withParameters({ '0.scale': inner }, () => expect(scaled.scale).toBe(inner));
      expect(scaled.scale).toBe(substitute);
      inner.dispose();
    });
    expect(scaled.scale).toBe(originals.get('0.scale'));
    expect(() => model.withParameters({ '0.scale': substitute }, () => Promise.resolve(1))).toThrow(/must be synchronous/);
    expect(scaled.scale).toBe(originals.get('0.scale'));
    weight.dispose();
    substitute.dispose();
    x.dispose();
    model.dispose();
  });

  it('rejects unknown names (all listed), wrong shapes and non-tensors before swapping anything', () => {
    const model = new SmallNet();
    const weight = model.fc1.weight;
    const good = randomTensor([6, 4]);
    const wrong = randomTensor([4, 6]);
    const run = (substitutes: Record<string, unknown>) => () =>
      model.withParameters(substitutes as Record<string, Tensor>, () => expect.fail('fn must not run'));
    expect(run({ 'fc1.weight': good, 'fc1.wieght': good, 'layer9.bias': good })).toThrow(
      /SmallNet.withParameters: no parameter or buffer named 'fc1.wieght', 'layer9.bias' in SmallNet/,
    );
    expect(run({ 'fc1.weight': wrong })).toThrow(/substitute for 'fc1.weight' has shape \[4, 6\], the registered tensor has \[6, 4\]/);
    expect(run({ 'fc1.weight': good, 'fc1.bias': [1, 2, 3, 4, 5, 6] })).toThrow(/substitute for 'fc1.bias' must be a Tensor/);
    const disposed = randomTensor([6, 4]);
    disposed.dispose();
    expect(run({ 'fc1.weight': disposed })).toThrow(/was disposed/);
    expect(model.fc1.weight).toBe(weight);
    good.dispose();
    wrong.dispose();
    model.dispose();
  });

  it('swaps tied tensors under every name; different substitutes for tied names are an error', () => {
    const shared = new nn.Linear(3, 3);
    const model = new nn.Sequential(shared, new nn.ReLU(), shared);
    expect(model.stateDict().has('2.weight')).toBe(true);
    const substitute = randomTensor([3, 3]);
    model.withParameters({ '0.weight': substitute }, () => {
      expect(model.getParameter('0.weight')).toBe(substitute);
      expect(model.getParameter('2.weight')).toBe(substitute);
    });
    expect(model.getParameter('2.weight')).toBe(shared.weight);
    const other = randomTensor([3, 3]);
    expect(() => model.withParameters({ '0.weight': substitute, '2.weight': other }, () => 0)).toThrow(
      /'0.weight' and '2.weight' are the same \(tied\) tensor but got different substitutes/,
    );
    other.dispose();
    substitute.dispose();
    model.dispose();
  });

  it('BatchNorm in train mode: statistics update the registered buffers (the module\'s unless substituted)', () => {
    const model = new SmallNet();
    warmUp(model);
    const before = hostState(model);
    const x = randomTensor([5, 3, 6, 6]);
    const gamma = randomTensor([4], { requiresGrad: true });
    tidy(() => {
      const out = model.withParameters({ 'features.1.weight': F.mul(gamma, 1.5) }, () => model.forward(x));
      F.sum(out).backward();
    });
    expect(gamma.grad).not.toBeNull();
    const after = hostState(model);
    // Parameters unchanged; the module's own running statistics and counters moved.
    for (const [name] of model.namedParameters()) expect(bitsEqual(after.get(name)!, before.get(name)!), name).toBe(true);
    expect(bitsEqual(after.get('features.1.running_mean')!, before.get('features.1.running_mean')!)).toBe(false);
    expect(after.get('features.1.num_batches_tracked')![0]).toBe(before.get('features.1.num_batches_tracked')![0]! + 1);
    expect(after.get('bn.num_batches_tracked')![0]).toBe(3);

    // Substituting the buffers with clones sends the update there and leaves the module's alone.
    const clones = new Map(model.namedBuffers().map(([name, value]) => [name, value.to('cpu')]));
    tidy(() => void model.withParameters(clones, () => noGrad(() => model.forward(x))));
    expectSameBits(hostState(model), after);
    expect(clones.get('bn.num_batches_tracked')!.item()).toBe(4);
    expect(bitsEqual(clones.get('bn.running_var')!.toFloat32Array(), after.get('bn.running_var')!)).toBe(false);
    // The module's counter continues from its own value (the host mirror follows the storage).
    tidy(() => void noGrad(() => model.forward(x)));
    expect(model.bn.numBatchesTracked!.item()).toBe(4);
    for (const clone of clones.values()) clone.dispose();
    gamma.dispose();
    x.dispose();
    model.dispose();
  });
});

describe('captureState / restoreState', () => {
  it('after SGD steps and BN forwards, restores parameters and buffers bit for bit, in the same tensors', () => {
    const model = new SmallNet();
    warmUp(model, 3);
    const optimizer = new optim.SGD(model.parameters(), { lr: 0.1, momentum: 0.9, nesterov: true, weightDecay: 5e-4 });
    const trainStep = (): void =>
      tidy(() => {
        optimizer.zeroGrad();
        const out = model.forward(randomTensor([5, 3, 6, 6], { scale: 2 }));
        F.crossEntropy(out, Int32Array.from([0, 1, 2, 1, 0])).backward();
        optimizer.step();
      });
    trainStep();
    const tensorsBefore = [...model.namedParameters(), ...model.namedBuffers()];
    const expected = hostState(model);
    const live = memory().liveTensors;
    const state = model.captureState();
    expect(memory().liveTensors).toBe(live + expected.size);
    expect([...state.tensors.keys()].sort()).toEqual([...expected.keys()].sort());

    for (let step = 0; step < 3; step += 1) trainStep();
    tidy(() => void noGrad(() => model.eval().forward(randomTensor([2, 3, 6, 6]))));
    model.train();
    const moved = hostState(model);
    expect(bitsEqual(moved.get('fc1.weight')!, expected.get('fc1.weight')!)).toBe(false);
    expect(bitsEqual(moved.get('bn.running_mean')!, expected.get('bn.running_mean')!)).toBe(false);

    const versions = tensorsBefore.map(([, value]) => value.version);
    model.restoreState(state);
    expectSameBits(hostState(model), expected);
    // The same objects, everywhere: module registry and optimizer; every version was bumped.
    expect([...model.namedParameters(), ...model.namedBuffers()]).toEqual(tensorsBefore);
    expect(optimizer.paramGroups[0]!.params).toEqual(model.parameters());
    optimizer.paramGroups[0]!.params.forEach((param, index) => expect(param).toBe(model.parameters()[index]));
    tensorsBefore.forEach(([name, value], index) => expect(value.version, name).toBeGreaterThan(versions[index]!));

    // Restoring again from the same snapshot after more steps gives the same bits again.
    trainStep();
    model.restoreState(state);
    expectSameBits(hostState(model), expected);
    // And the optimizer keeps updating the restored parameters.
    trainStep();
    expect(bitsEqual(model.fc1.weight.toFloat32Array(), expected.get('fc1.weight')!)).toBe(false);

    state.dispose();
    state.dispose(); // idempotent
    expect(memory().liveTensors).toBe(live);
    expect(() => model.restoreState(state)).toThrow(/the state was disposed/);
    optimizer.dispose();
    model.dispose();
  });

  it('a backward through a graph that saved a parameter before the restore raises the in-place error (buffers are never saved)', () => {
    const model = new SmallNet();
    warmUp(model);
    const state = model.captureState();
    const x = randomTensor([5, 3, 6, 6]);
    // Train mode: conv2d and linear save their weights for backward.
    const loss = tidy(() => F.sum(model.forward(x)));
    model.restoreState(state);
    expect(() => loss.backward()).toThrow(/saved for backward was modified in place/);
    loss.dispose();
    // Buffers are never saved by a graph: batch norm in eval mode copies the running statistics
    // into its own saved tensors (saveMean, saveInvstd). So restoring buffers cannot invalidate a
    // graph, and need not: its backward is still the derivative of the forward it recorded.
    const norm = new nn.BatchNorm1d(6, { affine: false });
    tidy(() => void noGrad(() => norm.forward(randomTensor([8, 6], { scale: 3 }))));
    norm.eval();
    const normState = norm.captureState();
    const input = randomTensor([4, 6], { requiresGrad: true });
    const expectedGrad = tidy(() => {
      F.sum(norm.forward(input)).backward();
      const values = input.grad!.toFloat32Array();
      input.grad!.dispose();
      input.grad = null;
      return values;
    });
    const normLoss = tidy(() => F.sum(norm.forward(input)));
    norm.train();
    tidy(() => void noGrad(() => norm.forward(randomTensor([8, 6], { scale: 3 }))));
    norm.restoreState(normState);
    normLoss.backward();
    expect(bitsEqual(input.grad!.toFloat32Array(), expectedGrad)).toBe(true);
    normLoss.dispose();
    input.dispose();
    normState.dispose();
    norm.dispose();
    // A graph recorded after the restore is fine.
    tidy(() => F.sum(model.forward(x)).backward());
    expect(model.fc2.weight.grad).not.toBeNull();
    model.zeroGrad();
    state.dispose();
    x.dispose();
    model.dispose();
  });

  it('keeps the BN counter mirror: the first training forward after a restore reads nothing from the device', () => {
    const model = new SmallNet();
    warmUp(model, 2);
    const state = model.captureState();
    warmUp(model, 3);
    expect(model.bn.numBatchesTracked!.item()).toBe(5);
    model.restoreState(state);
    const x = randomTensor([5, 3, 6, 6]);
    const addon = native();
    const downloads = vi.spyOn(addon, 'download');
    tidy(() => void noGrad(() => model.forward(x)));
    const count = downloads.mock.calls.length;
    downloads.mockRestore();
    expect(count).toBe(0);
    expect(model.bn.numBatchesTracked!.item()).toBe(3);
    expect(model.features.getBuffer('1.num_batches_tracked')!.item()).toBe(3);
    state.dispose();
    x.dispose();
    model.dispose();
  });

  it('refuses a state from another module, after a registration, or while a captured tensor is substituted', () => {
    const model = new SmallNet();
    const other = new SmallNet();
    const state = model.captureState();
    expect(() => other.restoreState(state)).toThrow(/captured from another module \(SmallNet\)/);
    expect(() => model.restoreState({} as nn.ModuleState)).toThrow(/expected a ModuleState/);
    const extra = model.fc2.registerBuffer('extra', randomTensor([2]));
    expect(() => model.restoreState(state)).toThrow(/'fc2.extra' was registered after the capture/);
    // Substituting inside withParameters makes the registered tensor another one: refused, nothing written.
    const before = hostState(model);
    const substitute = randomTensor([3, 6]);
    model.withParameters({ 'fc2.weight': substitute }, () => {
      expect(() => model.restoreState(state)).toThrow(/'fc2.weight' is registered as another tensor than the captured one/);
    });
    expectSameBits(hostState(model), before);
    substitute.dispose();
    extra.dispose();
    state.dispose();
    other.dispose();
    model.dispose();
  });

  it('snapshots are owned copies: later writes to the module do not change them', () => {
    const model = new nn.Linear(4, 3);
    const values = randomArray(12);
    const state = model.captureState();
    const captured = state.tensors.get('weight')!.toFloat32Array();
    noGrad(() => model.loadStateDict({ weight: { shape: [3, 4], data: values } }, { strict: false }));
    expect(bitsEqual(state.tensors.get('weight')!.toFloat32Array(), captured)).toBe(true);
    // Snapshots survive tidy scopes (they belong to the state, not to the scope).
    const inner = tidy(() => model.captureState());
    expect(inner.tensors.get('bias')!.isAlive).toBe(true);
    inner.dispose();
    model.restoreState(state);
    expect(bitsEqual(model.weight.toFloat32Array(), captured)).toBe(true);
    state.dispose();
    model.dispose();
  });
});
