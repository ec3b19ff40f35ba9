// End-to-end training with nn modules: memory stays flat across steps, runs are bit-reproducible,
// and the loss decreases on a fixed batch.
//
// Net: conv3×3(3→8)+BN+ReLU+conv3×3(8→8)+BN+ReLU+global-avg-pool+linear(8→10), batch of 8 random
// 3×16×16 images, random labels, cross-entropy, SGD (momentum 0.9, weight decay 5e-4; lr 0.05, and
// 0.2 for the loss check, where 15/15 fresh draws ended below 0.4× the first loss).
import { describe, expect, it } from 'vitest';
import { F, Tensor, manualSeed, memory, nn, optim, tensor, tidy } from '../../src/index.js';
import { randomArray } from '../helpers/random.js';

function makeNet(): nn.Sequential {
  return new nn.Sequential(
    new nn.Conv2d(3, 8, 3, { padding: 1, bias: false }),
    new nn.BatchNorm2d(8),
    new nn.ReLU(),
    new nn.Conv2d(8, 8, 3, { padding: 1, bias: false }),
    new nn.BatchNorm2d(8),
    new nn.ReLU(),
    new nn.AdaptiveAvgPool2d(1),
    new nn.Flatten(),
    new nn.Linear(8, 10),
  );
}

interface Batch {
  images: Float32Array;
  labels: Int32Array;
}

function randomBatch(): Batch {
  const labels = new Int32Array(8);
  for (let index = 0; index < labels.length; index += 1) labels[index] = Math.floor(Math.random() * 10);
  return { images: randomArray(8 * 3 * 16 * 16), labels };
}

function makeOptimizer(net: nn.Module, lr = 0.05): optim.SGD {
  return new optim.SGD(net.parameters(), { lr, momentum: 0.9, weightDecay: 5e-4 });
}

/** One training step inside tidy; returns the loss value. */
function step(net: nn.Module, optimizer: optim.SGD, batch: Batch): number {
  return tidy(() => {
    net.zeroGrad();
    const x = tensor(batch.images, [8, 3, 16, 16]);
    const loss = F.crossEntropy(net.forward(x) as Tensor, batch.labels);
    loss.backward();
    optimizer.step();
    return loss.item();
  });
}

describe('training with nn modules', () => {
  it('keeps live tensors and bytes exactly flat across 200 steps', () => {
    const start = memory();
    const net = makeNet();
    const optimizer = makeOptimizer(net);
    const batch = randomBatch();
    const live: { tensors: number; bytes: number }[] = [];
    for (let iteration = 0; iteration < 200; iteration += 1) {
      const loss = step(net, optimizer, iteration % 2 === 0 ? batch : randomBatch());
      expect(Number.isFinite(loss)).toBe(true);
      const now = memory();
      live.push({ tensors: now.liveTensors, bytes: now.liveBytes });
    }
    // After step 1 (gradients and momentum buffers exist from then on) nothing grows.
    for (let iteration = 1; iteration < live.length; iteration += 1) {
      expect(live[iteration], `after step ${iteration + 1}`).toEqual(live[1]);
    }
    expect(live[1]!.tensors).toBeGreaterThan(start.liveTensors);
    net.dispose();
    optimizer.dispose();
  });

  it('two runs with the same seed and data give bit-identical parameters', () => {
    const batches = Array.from({ length: 5 }, randomBatch);
    const seed = Math.floor(Math.random() * 1e9);
    const run = (): Map<string, Float32Array> => {
      manualSeed(seed);
      const net = makeNet();
      const optimizer = makeOptimizer(net);
      for (const batch of batches) step(net, optimizer, batch);
      const state = new Map([...net.stateDict()].map(([name, entry]) => [name, entry.data]));
      net.dispose();
      optimizer.dispose();
      return state;
    };
    const first = run();
    const second = run();
    expect([...second.keys()]).toEqual([...first.keys()]);
    for (const [name, data] of first) {
      expect(Buffer.from(second.get(name)!.buffer).equals(Buffer.from(data.buffer)), name).toBe(true);
    }
    // And training changed the parameters (the comparison is not vacuous).
    manualSeed(seed);
    const fresh = makeNet();
    expect(fresh.stateDict().get('0.weight')!.data).not.toEqual(first.get('0.weight'));
    fresh.dispose();
  });

  it('the loss goes down on a fixed batch over 30 steps', () => {
    const net = makeNet();
    const optimizer = makeOptimizer(net, 0.2);
    const batch = randomBatch();
    const losses = Array.from({ length: 30 }, () => step(net, optimizer, batch));
    expect(losses.every(Number.isFinite)).toBe(true);
    const first = losses[0]!;
    const lastFive = losses.slice(-5).reduce((a, b) => a + b, 0) / 5;
    expect(lastFive, `losses ${losses.map((l) => l.toFixed(3)).join(' ')}`).toBeLessThan(0.6 * first);
    net.dispose();
    optimizer.dispose();
  });
});
