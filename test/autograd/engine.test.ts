// The autograd engine and tensor lifetime: accumulation, shared subgraphs, grad() on
// intermediates, higher-order gradients, retainGraph, noGrad, in-place detection, tidy/dispose,
// creation and device errors.
import { describe, expect, it } from 'vitest';
import { F, Tensor, grad, memory, noGrad, ones, randn, tensor, tidy, zeros, engineInfo } from '../../src/index.js';
import { expectClose, randomTensor } from '../helpers/random.js';

describe('autograd engine', () => {
  it('accumulates into .grad across backward calls and through shared subgraphs', () => {
    const x = randomTensor([5], { requiresGrad: true });
    const values = x.toFloat32Array();
    // y = Σ (x·x + 3x): x is used three times in the graph.
    const y = F.sum(F.add(F.mul(x, x), F.mul(x, 3)));
    y.backward();
    expectClose(x.grad!.toFloat32Array(), Array.from(values, (v) => 2 * v + 3), { rtol: 1e-6 });
    const y2 = F.sum(F.mul(x, 2));
    y2.backward();
    expectClose(x.grad!.toFloat32Array(), Array.from(values, (v) => 2 * v + 5), { rtol: 1e-6 });
  });

  it('grad() returns gradients for intermediate tensors and does not touch .grad', () => {
    const x = randomTensor([4], { requiresGrad: true });
    const hidden = F.mul(x, 2);
    const y = F.sum(F.square(hidden));
    const [gHidden, gX] = grad(y, [hidden, x]);
    const h = hidden.toFloat32Array();
    expectClose(gHidden!.toFloat32Array(), Array.from(h, (v) => 2 * v), { rtol: 1e-6 });
    expectClose(gX!.toFloat32Array(), Array.from(h, (v) => 4 * v), { rtol: 1e-6 });
    expect(x.grad).toBeNull();
  });

  it('computes third derivatives by nesting grad with createGraph', () => {
    const x = randomTensor([3], { requiresGrad: true });
    const v = x.toFloat32Array();
    const y = F.sum(F.pow(x, 4));
    const [g1] = grad(y, [x], { createGraph: true });
    const [g2] = grad(F.sum(g1!), [x], { createGraph: true });
    const [g3] = grad(F.sum(g2!), [x]);
    expectClose(g1!.toFloat32Array(), Array.from(v, (a) => 4 * a ** 3), { rtol: 1e-5 });
    expectClose(g2!.toFloat32Array(), Array.from(v, (a) => 12 * a ** 2), { rtol: 1e-5 });
    expectClose(g3!.toFloat32Array(), Array.from(v, (a) => 24 * a), { rtol: 1e-5 });
  });

  it('Hessian-vector product through a small network equals the finite difference of gradients', () => {
    const w = randomTensor([4, 3], { requiresGrad: true });
    const x = randomTensor([5, 3]);
    const direction = randomTensor([4, 3]);
    const loss = (weights: Tensor) => F.sum(F.sigmoid(F.sum(F.mul(F.reshape(x, [5, 1, 3]), F.reshape(weights, [1, 4, 3])), 2)));
    const [g] = grad(loss(w), [w], { createGraph: true });
    const [hv] = grad(F.sum(F.mul(g!, direction)), [w]);
    const epsilon = 1e-2;
    const shifted = (sign: number) => {
      const moved = tensor(w.toFloat32Array().map((value, index) => value + sign * epsilon * direction.toFloat32Array()[index]!), [4, 3], { requiresGrad: true });
      return grad(loss(moved), [moved])[0]!.toFloat32Array();
    };
    const plus = shifted(1);
    const minus = shifted(-1);
    const numeric = plus.map((value, index) => (value - minus[index]!) / (2 * epsilon));
    expectClose(hv!.toFloat32Array(), numeric, { rtol: 2e-2, atol: 2e-3 });
  });

  it('refuses a second backward through freed saved tensors, unless retainGraph', () => {
    const x = randomTensor([3], { requiresGrad: true });
    const y = F.sum(F.mul(x, x));
    y.backward(undefined, { retainGraph: true });
    y.backward();
    expect(() => y.backward()).toThrow(/a second time/);
    expect(() => F.sum(F.mul(x, x)).backward({} as never)).toThrow(/not a Tensor/);
  });

  it('needs an explicit gradient for non-scalar outputs, and checks its shape', () => {
    const x = randomTensor([2, 3], { requiresGrad: true });
    const y = F.mul(x, 2);
    expect(() => y.backward()).toThrow(/implicit only for one-element outputs/);
    expect(() => y.backward(ones([4]))).toThrow(/gradOutputs\[0\] has shape \[4\]/);
    y.backward(ones([2, 3]));
    expectClose(x.grad!.toFloat32Array(), new Array(6).fill(2));
  });

  it('grad() rejects inputs that do not require grad or are unreachable (zeros with allowUnused)', () => {
    const x = randomTensor([3], { requiresGrad: true });
    const unused = randomTensor([2], { requiresGrad: true });
    const constant = randomTensor([3]);
    const y = F.sum(F.mul(x, constant));
    expect(() => grad(y, [constant])).toThrow(/does not require grad/);
    expect(() => grad(y, [unused], { retainGraph: true })).toThrow(/not reachable/);
    const [zero] = grad(y, [unused], { allowUnused: true });
    expect(Array.from(zero!.toFloat32Array())).toEqual([0, 0]);
  });

  it('noGrad records nothing; detach cuts history', () => {
    const x = randomTensor([3], { requiresGrad: true });
    const inside = noGrad(() => F.mul(x, 2));
    expect(inside.requiresGrad).toBe(false);
    expect(inside.gradFn).toBeNull();
    const detached = F.mul(x, 2).detach();
    expect(detached.requiresGrad).toBe(false);
    expect(() => grad(F.sum(detached), [x])).toThrow(/does not require grad/);
  });

  it('detects a saved tensor modified in place before backward', () => {
    const x = randomTensor([3], { requiresGrad: true });
    const y = F.sum(F.mul(x, x));
    x.storage.version += 1; // what an optimizer step does to a parameter
    expect(() => y.backward()).toThrow(/modified in place/);
  });

  it('a backward that fails on a modified saved tensor leaks no gradient in flight (backward and grad)', () => {
    const w = randomTensor([3, 3], { requiresGrad: true });
    const x = randomTensor([2, 3], { requiresGrad: true });
    const start = memory().liveTensors;
    // matmul saves w for x's gradient; the failing node runs after relu and sum passed gradients down.
    const loss = tidy(() => F.sum(F.relu(F.matmul(x, w))));
    w.storage.version += 1;
    expect(() => loss.backward()).toThrow(/modified in place/);
    loss.dispose();
    const hidden = tidy(() => F.relu(F.matmul(x, w)));
    const total = tidy(() => F.sum(F.mul(hidden, hidden)));
    w.storage.version += 1;
    // grad() captures the intermediate `hidden` before reaching the failing node.
    expect(() => grad(total, [hidden, x])).toThrow(/modified in place/);
    total.dispose();
    hidden.dispose();
    expect(memory().liveTensors).toBe(start);
    w.dispose();
    x.dispose();
  });

  it('is deterministic: the same graph gives the same bits', () => {
    const run = () => {
      const x = tensor(Float32Array.from({ length: 1000 }, (_, i) => Math.sin(i)), [10, 100], { requiresGrad: true });
      F.sum(F.mul(F.sigmoid(x), F.sum(x, 0, true))).backward();
      return x.grad!.toFloat32Array();
    };
    expect(Buffer.from(run().buffer).equals(Buffer.from(run().buffer))).toBe(true);
  });
});

describe('tensor lifetime and memory', () => {
  it('tidy disposes intermediates, keeps returned tensors and gradients, and memory stays flat', () => {
    const w = randomTensor([64, 32], { requiresGrad: true });
    const start = memory();
    for (let step = 0; step < 50; step += 1) {
      tidy(() => {
        const loss = F.mean(F.square(F.sigmoid(F.mul(w, 1.5))));
        loss.backward();
      });
      if (step === 0) {
        // The first step creates w.grad; from then on nothing may grow.
        expect(memory().liveTensors).toBe(start.liveTensors + 1);
      }
    }
    expect(memory().liveTensors).toBe(start.liveTensors + 1);
    expect(memory().liveBytes).toBe(start.liveBytes + w.size * 4);
    const kept = tidy(() => F.mul(w, 2));
    expect(kept.isAlive).toBe(true);
    kept.dispose();
  });

  it('graphs keep saved tensors alive after their owner disposed them, and free them after backward', () => {
    const before = memory().liveTensors;
    const x = randomTensor([8], { requiresGrad: true });
    const hidden = F.exp(x); // exp saves its output
    const y = F.sum(hidden);
    hidden.dispose();
    expect(hidden.isAlive).toBe(true); // still saved by the graph
    y.backward();
    expect(hidden.isAlive).toBe(false);
    y.dispose();
    x.dispose();
    expect(memory().liveTensors).toBe(before);
  });

  it('a graph that is never differentiated is freed when its tensors are disposed', () => {
    const x = randomTensor([16], { requiresGrad: true });
    const before = memory();
    tidy(() => {
      const y = F.sum(F.exp(F.mul(F.sigmoid(x), F.square(x)))); // every node saves tensors
      expect(y.requiresGrad).toBe(true);
    });
    expect(memory().liveTensors).toBe(before.liveTensors);
    expect(memory().liveBytes).toBe(before.liveBytes);
  });

  it('grad(createGraph) followed by a partial second pass frees everything at the end of the scope', () => {
    const w = randomTensor([5, 4], { requiresGrad: true });
    const x = randomTensor([3, 5], { requiresGrad: true });
    const before = memory();
    tidy(() => {
      const loss = F.sum(F.tanh(F.matmul(x, w)));
      const [g] = grad(loss, [w], { createGraph: true }); // x's branch is not computed
      grad(F.sum(F.mul(g!, randomTensor([5, 4]))), [w]);
    });
    expect(memory().liveTensors).toBe(before.liveTensors);
  });

  it('after backward, outputs that their op saved (exp, sigmoid) and leaf inputs stay usable', () => {
    const x = randomTensor([6], { requiresGrad: true });
    const y = F.exp(x);
    const z = F.sigmoid(y);
    F.sum(z).backward();
    expect(y.toFloat32Array().length).toBe(6);
    expect(z.toFloat32Array().length).toBe(6);
    expect(x.toFloat32Array().length).toBe(6);
    const before = memory().liveTensors;
    y.dispose();
    z.dispose();
    expect(memory().liveTensors).toBe(before - 2);
  });

  it('backward outside tidy frees the temporaries of the backward rules', () => {
    const a = randomTensor([4, 3], { requiresGrad: true });
    const b = randomTensor([3], { requiresGrad: true });
    const loss = F.sum(F.div(F.mul(a, b), F.add(F.square(b), 1)));
    loss.backward();
    const before = memory().liveTensors;
    const loss2 = F.sum(F.div(F.mul(a, b), F.add(F.square(b), 1)));
    loss2.backward(); // grads already exist: accumulation replaces them
    // Only loss2's own forward intermediates (4 tensors + loss2) remain, owned by this test.
    expect(memory().liveTensors).toBe(before + 5);
  });

  it('using a disposed tensor throws a clear error', () => {
    const x = randomTensor([2]);
    x.dispose();
    x.dispose(); // idempotent
    expect(() => x.toFloat32Array()).toThrow(/was disposed/);
    expect(() => F.relu(x)).toThrow(/relu.*was disposed/);
  });
});

describe('creation and devices', () => {
  it('validates values and shapes', () => {
    expect(() => tensor([1, 2, 3], [2, 2])).toThrow(/3 values do not fill shape \[2, 2\]/);
    expect(() => tensor([1, 2], [-2] as never)).toThrow(/non-negative integers/);
    expect(() => tensor('abc' as never, [3])).toThrow(/Float32Array or an array of numbers/);
    expect(() => zeros([2], { device: 'gpu' as never })).toThrow(/device must be 'cpu' or 'cuda'/);
    expect(randn([2, 3]).shape).toEqual([2, 3]);
    expect(() => randomTensor([2, 2]).item()).toThrow(/item: tensor has 4 elements/);
  });

  it("'cuda' tensors fail with a clear error on a build or machine without CUDA", () => {
    const info = engineInfo();
    if (info.cudaCompiled && info.cudaDevices > 0) return; // covered by the CUDA suites
    expect(() => zeros([2], { device: 'cuda' })).toThrow(/CUDA/);
  });

  it('mixing devices is an error that names both', () => {
    const info = engineInfo();
    if (!(info.cudaCompiled && info.cudaDevices > 0)) return;
    const a = zeros([2]);
    const b = zeros([2], { device: 'cuda' });
    expect(() => F.add(a, b)).toThrow(/same device/);
  });
});
