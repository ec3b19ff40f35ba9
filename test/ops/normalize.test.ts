// normalize (p = 2) and cosineSimilarity: forward vs float64 references over ranks 1..4 and
// every kind of dim, norms below eps (zero rows, tiny rows), broadcasting; backward vs the
// reference; finite-difference gradcheck and gradgradcheck; fused vs composite backward; values
// measured with PyTorch 1.13 (Debian build) for the clamped regime; bits independent of
// repetition and thread count; bad input.
// Tolerances: forward rtol 1e-5 / atol 1e-6 (float32 sums of squares over up to 1000 terms);
// gradients rtol 1e-5 / atol 1e-5·scale; fused vs composite rtol 1e-5 / atol 1e-6.
import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { F, engineInfo, grad, setNumThreads, tensor } from '../../src/index.js';
import { native, nativeInfo } from '../../src/native/index.js';
import { gradcheck, gradgradcheck } from '../helpers/gradcheck.js';
import { expectClose, randomArray, randomSignedTensor, randomTensor } from '../helpers/random.js';
import { referenceCosine, referenceCosineBackward, referenceNormalize, referenceNormalizeBackward } from '../reference/normalize_reference.js';
import { expectSameBitsAcrossRunsAndThreads } from '../helpers/determinism.js';

const cases: [number[], number][] = [
  [[5], 0],
  [[5], -1],
  [[4, 7], 1],
  [[4, 7], 0],
  [[1, 128], 1], // B = 1
  [[3, 1], 1], // a single element per slice
  [[128, 128], 1],
  [[2, 3, 4, 5], 1], // middle
  [[2, 3, 4, 5], -1],
  [[2, 3, 4, 5], 0],
  [[2, 70, 150], 1], // inner 150: three column blocks, the last partial
  [[16, 1000], 1],
  [[33, 17], 1],
];

function axis(dim: number, rank: number): number {
  return dim < 0 ? dim + rank : dim;
}

function maxAbs(values: ArrayLike<number>): number {
  let m = 0;
  for (let index = 0; index < values.length; index += 1) m = Math.max(m, Math.abs(values[index]!));
  return m;
}

describe('normalize', () => {
  it('matches the float64 reference for ranks 1..4 and every kind of dim', () => {
    for (const [shape, dim] of cases) {
      const x = randomTensor(shape, { scale: 3 });
      const out = F.normalize(x, { dim });
      expect(out.shape).toEqual(shape);
      const { y } = referenceNormalize(x.toFloat32Array(), shape, axis(dim, shape.length), 1e-12);
      expectClose(out.toFloat32Array(), y, { rtol: 1e-5, atol: 1e-6, label: `normalize ${JSON.stringify([shape, dim])}` });
    }
    // Default dim = 1, and a 0-d tensor (its sign).
    const x = randomTensor([3, 4]);
    expectClose(F.normalize(x).toFloat32Array(), referenceNormalize(x.toFloat32Array(), [3, 4], 1, 1e-12).y, { rtol: 1e-5, atol: 1e-6 });
    expect(F.normalize(tensor([-2.5], []), { dim: 0 }).item()).toBe(-1);
  });

  it('clamps small norms at eps: zero rows stay 0, tiny rows are x / eps', () => {
    const x = tensor([0, 0, 0, 3e-14, 4e-14, 0, 3, 4, 0], [3, 3]);
    const out = Array.from(F.normalize(x).toFloat32Array());
    expectClose(out, [0, 0, 0, 0.03, 0.04, 0, 0.6, 0.8, 0], { rtol: 1e-6, atol: 1e-9 });
    const y = F.normalize(tensor([1e-3, 2e-3], [1, 2]), { eps: 1 });
    expectClose(y.toFloat32Array(), [1e-3, 2e-3], { rtol: 1e-6 });
  });

  it('backward matches the float64 reference (also below eps), fused and composite agree', () => {
    const shapes: [number[], number, number, number][] = [
      [[4, 7], 1, 1e-12, 3],
      [[64, 128], 1, 1e-12, 1],
      [[2, 3, 4, 5], 1, 1e-12, 1],
      [[2, 70, 150], 1, 1e-12, 1],
      [[5, 6], 0, 1e-12, 1],
      [[6, 5], 1, 10, 1], // every norm below eps: dx = g / eps
      [[6, 5], 1, 1.3, 1], // a mix of rows above and below eps
    ];
    for (const [shape, dim, eps, scale] of shapes) {
      const x = randomTensor(shape, { requiresGrad: true, scale });
      const g = randomArray(x.size);
      const out = F.normalize(x, { dim, eps });
      const [fused] = grad(out, [x], { gradOutputs: [tensor(g, shape)], retainGraph: true });
      const expected = referenceNormalizeBackward(x.toFloat32Array(), g, shape, dim, eps);
      expectClose(fused!.toFloat32Array(), expected, { rtol: 1e-5, atol: 1e-5 * maxAbs(expected), label: `normalize backward ${JSON.stringify([shape, dim, eps])}` });
      const [composite] = grad(out, [x], { gradOutputs: [tensor(g, shape)], createGraph: true });
      expectClose(composite!.toFloat32Array(), fused!.toFloat32Array(), { rtol: 1e-5, atol: 1e-6 * maxAbs(expected), label: 'normalize composite' });
    }
  });

  it('zero rows get gradient g / eps (PyTorch), with no NaN even in second order', () => {
    const x = tensor([0, 0, 0, 1, 2, 3], [2, 3], { requiresGrad: true });
    const [dx] = grad(F.sum(F.mul(F.normalize(x), tensor([1, 2, 3, 1, 1, 1], [2, 3]))), [x], { createGraph: true });
    expectClose(dx!.toFloat32Array().subarray(0, 3), [1e12, 2e12, 3e12], { rtol: 1e-6 });
    const [second] = grad(F.sum(F.mul(dx!, dx!)), [x]);
    expect(F.countNonFinite(second!)).toBe(0);
  });

  it('gradients pass finite differences (first and second order)', () => {
    for (const [shape, dim] of [[[4, 6], 1], [[3, 4, 5], 1], [[5, 3], 0], [[6], 0]] as [number[], number][]) {
      const x = randomSignedTensor(shape, { requiresGrad: true });
      gradcheck((t) => F.normalize(t, { dim }), [x]);
      gradgradcheck((t) => F.normalize(t, { dim }), [x]);
    }
  });
});

describe('cosineSimilarity', () => {
  it('matches the float64 reference for ranks 1..4 and every kind of dim', () => {
    for (const [shape, dim] of cases) {
      const a = randomTensor(shape, { scale: 3 });
      const b = randomTensor(shape, { scale: 3 });
      const out = F.cosineSimilarity(a, b, { dim });
      const reduced = axis(dim, shape.length);
      expect(out.shape).toEqual(shape.filter((_, index) => index !== reduced));
      const expected = referenceCosine(a.toFloat32Array(), b.toFloat32Array(), shape, reduced, 1e-8);
      expectClose(out.toFloat32Array(), expected, { rtol: 1e-5, atol: 1e-6, label: `cosine ${JSON.stringify([shape, dim])}` });
    }
  });

  it('broadcasts like PyTorch and reduces the broadcast dim', () => {
    const pairs: [number[], number[], number, number[]][] = [
      [[3, 4], [1, 4], 1, [3]],
      [[3, 1, 4], [5, 4], -1, [3, 5]],
      [[6, 4], [4], -1, [6]],
    ];
    for (const [shapeA, shapeB, dim, outShape] of pairs) {
      const a = randomTensor(shapeA, { requiresGrad: true });
      const b = randomTensor(shapeB, { requiresGrad: true });
      const out = F.cosineSimilarity(a, b, { dim });
      expect(out.shape).toEqual(outShape);
      const common = [...outShape.slice(0, axis(dim, outShape.length + 1)), 4, ...outShape.slice(axis(dim, outShape.length + 1))];
      const expected = referenceCosine(F.expand(a, common).toFloat32Array(), F.expand(b, common).toFloat32Array(), common, axis(dim, common.length), 1e-8);
      expectClose(out.toFloat32Array(), expected, { rtol: 1e-5, atol: 1e-6 });
      gradcheck((p, q) => F.cosineSimilarity(p, q, { dim }), [a, b]);
    }
    const scalar = F.cosineSimilarity(tensor([1, 2, 3], [3]), tensor([2, 4, 6], [3]), { dim: 0 });
    expect(scalar.shape).toEqual([]);
    expectClose([scalar.item()], [1], { rtol: 1e-6 });
  });

  it('reproduces PyTorch 1.13 values where a norm is below eps (measured, float64 torch)', () => {
    const a = tensor([3e-9, 4e-9, 0, 0, 1e-5, 0], [3, 2], { requiresGrad: true });
    const b = tensor([1, 2, 0.5, -1, 1e-5, 0], [3, 2], { requiresGrad: true });
    const out = F.cosineSimilarity(a, b);
    expectClose(out.toFloat32Array(), [0.491934955, 0, 1], { rtol: 1e-6, atol: 1e-7 });
    const [ga, gb] = grad(F.sum(out), [a, b]);
    expectClose(ga!.toFloat32Array(), [29963310.8985, 69765320.8980, 44721359.5500, -89442719.1000, 0, 0], { rtol: 1e-6, atol: 1e-6 });
    expectClose(gb!.toFloat32Array(), [0.0357770876, -0.0178885438, 0, 0, 0, 0], { rtol: 1e-5, atol: 1e-7 });
  });

  it('backward matches the reference (torch 1.13 formula), fused and composite agree', () => {
    const shapes: [number[], number, number][] = [
      [[4, 7], 1, 1e-8],
      [[64, 128], 1, 1e-8],
      [[2, 3, 4, 5], 1, 1e-8],
      [[2, 70, 150], 1, 1e-8],
      [[5, 6], 0, 1e-8],
      [[6, 5], 1, 1.2], // some norms below eps
    ];
    for (const [shape, dim, eps] of shapes) {
      const a = randomTensor(shape, { requiresGrad: true });
      const b = randomTensor(shape, { requiresGrad: true });
      const out = F.cosineSimilarity(a, b, { dim, eps });
      const g = randomArray(out.size);
      const [ga, gb] = grad(out, [a, b], { gradOutputs: [tensor(g, out.shape)], retainGraph: true });
      const expected = referenceCosineBackward(a.toFloat32Array(), b.toFloat32Array(), g, shape, dim, eps);
      expectClose(ga!.toFloat32Array(), expected.ga, { rtol: 1e-5, atol: 1e-5 * maxAbs(expected.ga), label: `cosine ga ${JSON.stringify(shape)}` });
      expectClose(gb!.toFloat32Array(), expected.gb, { rtol: 1e-5, atol: 1e-5 * maxAbs(expected.gb), label: `cosine gb ${JSON.stringify(shape)}` });
      const [ca, cb] = grad(out, [a, b], { gradOutputs: [tensor(g, out.shape)], createGraph: true });
      expectClose(ca!.toFloat32Array(), ga!.toFloat32Array(), { rtol: 1e-5, atol: 1e-6 * maxAbs(expected.ga), label: 'cosine composite ga' });
      expectClose(cb!.toFloat32Array(), gb!.toFloat32Array(), { rtol: 1e-5, atol: 1e-6 * maxAbs(expected.gb), label: 'cosine composite gb' });
    }
  });

  it('gradients pass finite differences (first and second order), one or both inputs', () => {
    for (const [shape, dim] of [[[4, 6], 1], [[3, 4, 5], 1], [[5, 3], 0]] as [number[], number][]) {
      const a = randomSignedTensor(shape, { requiresGrad: true });
      const b = randomSignedTensor(shape, { requiresGrad: true });
      gradcheck((p, q) => F.cosineSimilarity(p, q, { dim }), [a, b]);
      gradgradcheck((p, q) => F.cosineSimilarity(p, q, { dim }), [a, b]);
      const fixed = randomSignedTensor(shape);
      gradgradcheck((p, q) => F.cosineSimilarity(p, q, { dim }), [a, fixed]);
    }
  });
});

describe('normalize and cosineSimilarity: determinism and errors', () => {
  it('give identical bits on repetition and for 1 or 2 threads', () => {
    const values = randomArray(512 * 128, 2);
    const other = randomArray(512 * 128, 2);
    const run = (): Float32Array[] =>
      ([[[512, 128], 1], [[8, 64, 128], 1]] as [number[], number][]).flatMap(([shape, dim]) => {
        const x = tensor(values, shape, { requiresGrad: true });
        const z = tensor(other, shape, { requiresGrad: true });
        const y = F.normalize(x, { dim });
        const c = F.cosineSimilarity(x, z, { dim });
        const forward = [y.toFloat32Array(), c.toFloat32Array()];
        const [dx] = grad(y, [x], { gradOutputs: [tensor(other, shape)] });
        const [ga, gb] = grad(c, [x, z], { gradOutputs: [tensor(values.subarray(0, c.size), c.shape)] });
        return [...forward, dx!.toFloat32Array(), ga!.toFloat32Array(), gb!.toFloat32Array()];
      });
    expectSameBitsAcrossRunsAndThreads(run);
  });

  it('give identical bits on the portable, AVX2 and AVX-512 kernel paths', () => {
    // A child process per LMCL_CPU_KERNELS level runs the raw kernels on the same seeded data.
    const script = `
      import { createRequire } from 'node:module';
      import { createHash } from 'node:crypto';
      const require = createRequire(process.cwd() + '/');
      const addon = process.env.ADDON_PATH.endsWith('.node') ? require(process.env.ADDON_PATH) : require('node-gyp-build')(process.env.ADDON_PATH);
      let seed = 11;
      const random = (n) => Float32Array.from({ length: n }, () => { seed = (seed * 1103515245 + 12345) % 2147483648; return seed / 2147483648 * 2 - 1; });
      const store = (values) => { const s = addon.alloc('cpu', Math.max(4, values.length * 4)); addon.upload(s, values, 0); return s; };
      const hash = createHash('sha256');
      const read = (s, n) => hash.update(Buffer.from(addon.download(s, 0, n).buffer));
      for (const [outer, dim, inner] of [[64, 128, 1], [33, 17, 1], [4, 100, 150], [3, 7, 5]]) {
        const n = outer * dim * inner, rows = outer * inner;
        const a = store(random(n)), b = store(random(n)), g = store(random(n)), gr = store(random(rows));
        const y = store(new Float32Array(n)), dx = store(new Float32Array(n)), dy = store(new Float32Array(n));
        const na = store(new Float32Array(rows)), nb = store(new Float32Array(rows)), out = store(new Float32Array(rows));
        addon.normalizeForward(a, y, na, outer, dim, inner, 1e-12); read(y, n); read(na, rows);
        addon.normalizeBackward(y, na, g, dx, outer, dim, inner, 1e-12); read(dx, n);
        addon.cosineSimilarityForward(a, b, out, na, nb, outer, dim, inner, 1e-8); read(out, rows);
        addon.cosineSimilarityBackward(a, b, out, na, nb, gr, dx, dy, outer, dim, inner, 1e-8); read(dx, n); read(dy, n);
      }
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

  it('reject bad input with clear errors', () => {
    const x = randomTensor([3, 4]);
    expect(() => F.normalize(x, { p: 1 })).toThrow('normalize: only p = 2 is supported, got p = number 1');
    expect(() => F.normalize(x, { eps: -1 })).toThrow(/normalize: eps must be a finite number >= 0/);
    expect(() => F.normalize(x, { dim: 2 })).toThrow(/normalize: dim 2 is out of range for a 2-D tensor/);
    expect(() => F.normalize(randomTensor([4]))).toThrow(/normalize: dim 1 is out of range for a 1-D tensor/);
    expect(() => F.normalize(x, { axis: 1 } as never)).toThrow(/normalize: unknown option 'axis'/);
    expect(() => F.normalize(null as never)).toThrow(/normalize: argument 'x' must be a Tensor/);
    expect(() => F.cosineSimilarity(x, randomTensor([3, 5]))).toThrow(/cosineSimilarity: shapes \[3, 4\] and \[3, 5\] cannot be broadcast/);
    expect(() => F.cosineSimilarity(x, x, { eps: Number.NaN })).toThrow(/cosineSimilarity: eps must be a finite number/);
    expect(() => F.cosineSimilarity(x, x, { dim: -3 })).toThrow(/cosineSimilarity: dim -3 is out of range/);
    expect(() => F.cosineSimilarity(x, 'b' as never)).toThrow(/cosineSimilarity: argument 'b' must be a Tensor/);
    // The native entry points check for themselves.
    const addon = native();
    const store = (count: number) => addon.alloc('cpu', count * 4);
    expect(() => addon.normalizeForward(store(6), store(6), store(1), 2, 3, 1, 1e-12)).toThrow(/normalize: argument 'norms' holds 1 floats but the op needs 2/);
    expect(() => addon.normalizeForward(store(6), store(6), store(2), 2, 3, 1, -1)).toThrow(/normalize: eps must be a finite number >= 0/);
    expect(() => addon.normalizeBackward(store(6), store(2), store(5), store(6), 2, 3, 1, 1e-12)).toThrow(/argument 'grad' holds 5 floats/);
    expect(() => addon.cosineSimilarityForward(store(6), store(6), store(2), store(2), store(2), 2, 3, 1, Number.NaN)).toThrow(/eps must be a finite number/);
    expect(() => addon.cosineSimilarityBackward(store(6), store(6), store(2), store(2), store(2), store(2), store(5), null, 2, 3, 1, 1e-8)).toThrow(/argument 'gradA' holds 5 floats/);
  });
});
