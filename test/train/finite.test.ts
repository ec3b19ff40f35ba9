// The finiteness check every training state passes before it is saved or resumed
// (src/train/finite.ts): networks' parameters and buffers, the method's modules and every
// parameter set's momentum buffers.
import { describe, expect, it } from 'vitest';
import * as F from '../../src/ops/functional.js';
import { Linear } from '../../src/nn/linear.js';
import { BatchNorm2d } from '../../src/nn/batchnorm.js';
import { SGD } from '../../src/optim/sgd.js';
import { randn } from '../../src/tensor/creation.js';
import { tidy } from '../../src/tensor/scope.js';
import { describeNonFinite, findNonFiniteState } from '../../src/train/finite.js';

function withMomentum(params: ReturnType<Linear['parameters']>, optimizer: SGD, forward: () => ReturnType<typeof F.sum>): void {
  tidy(() => {
    optimizer.zeroGrad();
    forward().backward();
    optimizer.step();
  });
  expect(params.every((param) => optimizer.momentumBuffer(param) !== null)).toBe(true);
}

describe('findNonFiniteState', () => {
  it('finds NaN/Inf in a network parameter, a network buffer, a criterion parameter and a second set\'s momentum buffer, by checkpoint name', () => {
    const net = new Linear(4, 3);
    const norm = new BatchNorm2d(2);
    const criterion = new Linear(3, 2);
    const main = new SGD(net.parameters(), { lr: 0.1, momentum: 0.9 });
    const probe = new SGD(criterion.parameters(), { lr: 0.1, momentum: 0.9 });
    const x = randn([5, 4]);
    withMomentum(net.parameters(), main, () => F.sum(net.forward(x)));
    withMomentum(criterion.parameters(), probe, () => F.sum(criterion.forward(randn([5, 3]))));
    const optimizers = new Map([['main', main], ['probe', probe]]);
    expect(findNonFiniteState([net, norm], criterion, optimizers)).toEqual([]);

    net.loadStateDict({ weight: { shape: [3, 4], data: Float32Array.from({ length: 12 }, (_, k) => (k === 5 ? Number.NaN : 1)) }, bias: { shape: [3], data: new Float32Array(3) } });
    norm.loadStateDict({ ...Object.fromEntries(norm.stateDict()), running_var: { shape: [2], data: Float32Array.of(1, Number.POSITIVE_INFINITY) } });
    criterion.loadStateDict({ weight: { shape: [2, 3], data: new Float32Array(6).fill(Number.NEGATIVE_INFINITY) }, bias: { shape: [2], data: new Float32Array(2) } });
    const probeState = probe.stateDict();
    probeState.state[1] = { momentumBuffer: Float32Array.of(0, Number.NaN) };
    probe.loadStateDict(probeState);

    const found = findNonFiniteState([net, norm], criterion, optimizers);
    expect(found).toEqual([
      { name: 'net0.weight', count: 1, size: 12 },
      { name: 'net1.running_var', count: 1, size: 2 },
      { name: 'criterion.weight', count: 6, size: 6 },
      { name: 'probe.1.momentum_buffer', count: 1, size: 2 },
    ]);
    expect(describeNonFinite(found, 2)).toBe('net0.weight (1 of 12 values), net1.running_var (1 of 2 values) and 2 more tensor(s)');
    for (const module of [net, norm, criterion]) module.dispose();
    main.dispose();
    probe.dispose();
  });
});
