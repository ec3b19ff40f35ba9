// softmax / logSoftmax: forward vs float64 references over ranks 1..4 and every kind of dim
// (first, middle, last, negative), B = 1, C = 1, long rows, column layouts wider than one kernel
// block, logits of magnitude ~80 and offsets of 1e3 (stability), non-finite rows; backward vs the
// reference; finite-difference gradcheck and gradgradcheck; fused vs composite backward; bits
// independent of repetition and thread count; bad input.
// Tolerances: softmax rtol 1e-5 / atol 1e-7 (float32 exp and sums over up to 5000 terms);
// log-softmax atol 1e-5·(1 + |x|) (one rounding of x − max at the logits' magnitude);
// backward atol 2e-6·max|g| + rtol 1e-5; fused vs composite rtol 1e-5 / atol 1e-6.
import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { F, Tensor, engineInfo, grad, setNumThreads, tensor } from '../../src/index.js';
import { nativeInfo } from '../../src/native/index.js';
import { gradcheck, gradgradcheck } from '../helpers/gradcheck.js';
import { expectClose, randomArray, randomTensor } from '../helpers/random.js';
import { referenceSoftmax, referenceSoftmaxBackward } from '../reference/softmax_reference.js';
import { expectSameBitsAcrossRunsAndThreads } from '../helpers/determinism.js';
import { forEachDevice } from '../helpers/devices.js';

const ops = [
  ['softmax', F.softmax, false],
  ['logSoftmax', F.logSoftmax, true],
] as const;

const cases: [number[], number][] = [
  [[7], 0],
  [[7], -1],
  [[1], 0],
  [[4, 1], 1], // C = 1
  [[1, 10], 1], // B = 1
  [[3, 5], 0],
  [[3, 5], -1],
  [[2, 3, 4], 0],
  [[2, 3, 4], 1], // middle
  [[2, 3, 4], -1],
  [[2, 3, 4, 5], 1],
  [[2, 3, 4, 5], 2],
  [[2, 3, 4, 5], 3],
  [[2, 70, 3, 5], 1],
  [[2, 9, 150], 1], // inner 150: three column blocks, the last partial
  [[64, 1000], 1], // long logits rows
  [[128, 128], -1], // a similarity matrix
  [[5000], 0],
  [[33, 17], 1], // rows of 16 lanes + tail
];

function normalisedDim(dim: number, rank: number): number {
  return dim < 0 ? dim + rank : dim;
}

function forwardTolerance(log: boolean, input: Float32Array): { rtol: number; atol: number } {
  const magnitude = input.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
  return log ? { rtol: 1e-5, atol: 1e-5 * (1 + magnitude) } : { rtol: 1e-5, atol: 1e-7 };
}

forEachDevice('softmax and logSoftmax forward', (device) => {
  for (const [name, op, log] of ops) {
    it(`${name} matches the float64 reference for ranks 1..4 and every kind of dim`, () => {
      for (const [shape, dim] of cases) {
        const x = randomTensor(shape, { scale: 3, device });
        const out = op(x, dim);
        expect(out.device).toBe(device);
        expect(out.shape).toEqual(shape);
        const values = x.toFloat32Array();
        const expected = referenceSoftmax(values, shape, normalisedDim(dim, shape.length), log);
        expectClose(out.toFloat32Array(), expected, { ...forwardTolerance(log, values), label: `${name} ${JSON.stringify([shape, dim])}` });
      }
    });

    it(`${name} is stable for logits of magnitude ~80 and large offsets`, () => {
      for (const [shape, dim, scale, offset] of [[[16, 100], 1, 80, 0], [[16, 100], 1, 5, 1000], [[4, 30, 6], 1, 80, -500]] as [number[], number, number, number][]) {
        const x = randomTensor(shape, { scale, offset, device });
        const values = x.toFloat32Array();
        const out = op(x, dim).toFloat32Array();
        expect(F.countNonFinite(tensor(out, shape))).toBe(0);
        expectClose(out, referenceSoftmax(values, shape, dim, log), { ...forwardTolerance(log, values), label: `${name} scale ${scale} offset ${offset}` });
      }
    });

    it(`${name} of a 0-d tensor`, () => {
      const out = op(tensor([2.5], [], { device }), 0);
      expect(out.shape).toEqual([]);
      expect(out.item()).toBe(log ? 0 : 1);
    });
  }

  it('non-finite logits propagate like PyTorch (NaN rows) and −inf entries get probability 0', () => {
    const inf = Number.POSITIVE_INFINITY;
    const x = tensor([Number.NaN, 1, 2, inf, 1, 2, -inf, -inf, -inf, -inf, 0, 1], [4, 3], { device });
    const probabilities = Array.from(F.softmax(x, 1).toFloat32Array());
    expect(probabilities.slice(0, 9).every(Number.isNaN)).toBe(true);
    expectClose(probabilities.slice(9), [0, 1 / (1 + Math.E), Math.E / (1 + Math.E)], { rtol: 1e-6 });
    const logs = Array.from(F.logSoftmax(x, 1).toFloat32Array());
    expect(logs.slice(0, 9).every(Number.isNaN)).toBe(true);
    expect(logs[9]).toBe(-inf);
    expectClose(logs.slice(10), [-Math.log(1 + Math.E), 1 - Math.log(1 + Math.E)], { rtol: 1e-6 });
    // Extreme but finite: everything underflows except the maximum.
    expect(Array.from(F.softmax(tensor([-1e30, 0, -200], [3], { device }), 0).toFloat32Array())).toEqual([0, 1, 0]);
  });
});

forEachDevice('softmax and logSoftmax backward', (device) => {
  for (const [name, op, log] of ops) {
    it(`${name} fused backward matches the float64 reference`, () => {
      for (const [shape, dim] of cases.filter(([shape]) => shape.length > 0 && shape.reduce((p, e) => p * e, 1) <= 70000)) {
        const x = randomTensor(shape, { requiresGrad: true, scale: 3, device });
        const g = randomArray(x.size);
        const [dx] = grad(op(x, dim), [x], { gradOutputs: [tensor(g, shape, { device })] });
        expect(dx!.device).toBe(device);
        const expected = referenceSoftmaxBackward(x.toFloat32Array(), g, shape, normalisedDim(dim, shape.length), log);
        expectClose(dx!.toFloat32Array(), expected, { rtol: 1e-5, atol: 2e-6, label: `${name} backward ${JSON.stringify([shape, dim])}` });
      }
    });

    it(`${name} fused and composite (createGraph) backward agree`, () => {
      for (const [shape, dim] of [[[8, 10], 1], [[128, 128], 1], [[2, 5, 70], 1], [[3, 4], 0]] as [number[], number][]) {
        const x = randomTensor(shape, { requiresGrad: true, scale: 4, device });
        const g = tensor(randomArray(x.size), shape, { device });
        const out = op(x, dim);
        const [fused] = grad(out, [x], { gradOutputs: [g], retainGraph: true });
        const [composite] = grad(out, [x], { gradOutputs: [g], createGraph: true });
        expect(composite!.requiresGrad).toBe(true);
        expectClose(fused!.toFloat32Array(), composite!.toFloat32Array(), { rtol: 1e-5, atol: 1e-6, label: `${name} fused vs composite ${JSON.stringify(shape)}` });
      }
    });
  }

  it('third-order gradients exist (the composite backward is itself differentiable)', () => {
    const x = randomTensor([3, 4], { requiresGrad: true, device });
    const w = tensor(randomArray(12), [3, 4], { device });
    const [g1] = grad(F.sum(F.mul(F.softmax(x, 1), w)), [x], { createGraph: true });
    const [g2] = grad(F.sum(F.mul(g1!, w)), [x], { createGraph: true });
    const [g3] = grad(F.sum(F.mul(g2!, w)), [x]);
    expect(F.countNonFinite(g3!)).toBe(0);
  });
});

// Finite differences perturb host copies of the inputs: CPU only (the CUDA backward is checked
// against the float64 reference above).
describe('softmax and logSoftmax gradients by finite differences', () => {
  for (const [name, op] of ops) {
    it(`${name} gradients pass finite differences (first and second order)`, () => {
      for (const [shape, dim] of [[[4, 6], 1], [[3, 4, 5], 1], [[5, 3], 0], [[6], -1]] as [number[], number][]) {
        const x = randomTensor(shape, { requiresGrad: true, scale: 2 });
        gradcheck((t) => op(t, dim), [x]);
        gradgradcheck((t) => op(t, dim), [x]);
      }
    });

  }
});

describe('softmax determinism and errors', () => {
  it('gives identical bits on repetition and for 1 or 2 threads (forward and backward)', () => {
    const run = (): Float32Array[] => {
      const results: Float32Array[] = [];
      for (const [shape, dim] of [[[256, 1000], 1], [[8, 300, 40], 1]] as [number[], number][]) {
        const size = shape.reduce((p, e) => p * e, 1);
        const leaf = tensor(fixed.subarray(0, size), shape, { requiresGrad: true });
        for (const op of [F.softmax, F.logSoftmax]) {
          const out = op(leaf, dim);
          results.push(out.toFloat32Array());
          const [dx] = grad(out, [leaf], { gradOutputs: [tensor(fixed.subarray(fixed.length - size), shape)] });
          results.push(dx!.toFloat32Array());
        }
      }
      return results;
    };
    const fixed = randomArray(256000, 4);
    expectSameBitsAcrossRunsAndThreads(run);
  });

  it('gives identical bits on the portable, AVX2 and AVX-512 kernel paths', () => {
    // A child process per LMCL_CPU_KERNELS level runs the raw kernels on the same seeded data
    // and prints a hash of every output.
    const script = `
      import { createRequire } from 'node:module';
      import { createHash } from 'node:crypto';
      const require = createRequire(process.cwd() + '/');
      const addon = process.env.ADDON_PATH.endsWith('.node') ? require(process.env.ADDON_PATH) : require('node-gyp-build')(process.env.ADDON_PATH);
      let seed = 7;
      const random = (n, scale) => Float32Array.from({ length: n }, () => { seed = (seed * 1103515245 + 12345) % 2147483648; return (seed / 2147483648 * 2 - 1) * scale; });
      const store = (values) => { const s = addon.alloc('cpu', Math.max(4, values.length * 4)); addon.upload(s, values, 0); return s; };
      const hash = createHash('sha256');
      const read = (s, n) => hash.update(Buffer.from(addon.download(s, 0, n).buffer));
      for (const [outer, dim, inner] of [[64, 1000, 1], [33, 17, 1], [4, 100, 150], [3, 7, 5]]) {
        const n = outer * dim * inner;
        const x = store(random(n, 30)), g = store(random(n, 1)), y = store(new Float32Array(n)), dx = store(new Float32Array(n));
        for (const log of [false, true]) {
          addon.softmaxForward(x, y, outer, dim, inner, log); read(y, n);
          addon.softmaxBackward(y, g, dx, outer, dim, inner, log); read(dx, n);
        }
      }
      const logits = store(random(130 * 257, 20)), labels = addon.allocIndices('cpu', Int32Array.from({ length: 130 }, (_, i) => (i * 31) % 257));
      const out = store(new Float32Array(130)), stats = store(new Float32Array(260)), dl = store(new Float32Array(130 * 257));
      for (const reduction of [0, 1, 2]) { addon.crossEntropyForward(logits, labels, out, stats, 130, 257, reduction); read(out, reduction === 0 ? 130 : 1); read(stats, 260); }
      addon.crossEntropyBackward(logits, labels, stats, store(random(130, 1)), dl, 130, 257, 1, true); read(dl, 130 * 257);
      console.log('RESULT ' + addon.info().simd + ' ' + hash.digest('hex'));
    `;
    const info = nativeInfo();
    const results = new Map<string, string>();
    for (const level of ['portable', 'avx2', 'avx512']) {
      const child = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
        env: { ...process.env, LMCL_CPU_KERNELS: level, ADDON_PATH: info.path },
        encoding: 'utf8',
      });
      const match = /RESULT (\S+) (\S+)/.exec(child.stdout);
      expect(match, child.stdout + child.stderr).not.toBeNull();
      results.set(match![1]!, match![2]!);
    }
    expect(new Set(results.values()).size, JSON.stringify([...results])).toBe(1);
  });

  it('rejects bad input with clear errors', () => {
    const x = randomTensor([3, 4]);
    expect(() => F.softmax(x, 2)).toThrow(/softmax: dim 2 is out of range for a 2-D tensor/);
    expect(() => F.logSoftmax(x, -3)).toThrow(/logSoftmax: dim -3 is out of range/);
    expect(() => F.softmax(x, 0.5)).toThrow(/softmax: dim must be an integer/);
    expect(() => (F.softmax as (x: Tensor) => Tensor)(x)).toThrow(/softmax: dim must be an integer, got undefined/);
    expect(() => F.softmax([1, 2] as never, 0)).toThrow(/softmax: argument 'x' must be a Tensor/);
    const disposed = randomTensor([2, 2]);
    disposed.dispose();
    expect(() => F.logSoftmax(disposed, 1)).toThrow(/was disposed/);
  });
});
