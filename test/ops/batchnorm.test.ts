// Batch normalisation: forward (training and eval) and running-stat updates vs the float64
// reference, fused backward vs the reference, first- and second-order finite differences,
// composite (createGraph) vs fused backward, determinism, memory and bad input.
// Tolerances: forward y and backward within 2e-5 of the reference, relative to the largest
// magnitude of the reference (float32 arithmetic with double statistics); running stats rtol
// 1e-5; composite vs fused 1e-5 relative (to the largest gradient); gradcheck see gradcheck.ts.
// Double backward (native kernel): within 5e-5 of the float64 closed form, relative to the largest
// magnitude of each reference output (its sums cancel: the projected terms are differences of
// O(1) quantities); the closed form itself within 1e-6 of float64 central differences.
import { afterEach, describe, expect, it } from 'vitest';
import { F, Tensor, grad, memory, nn, noGrad, setNumThreads, tensor, tidy, engineInfo } from '../../src/index.js';
import { native } from '../../src/native/index.js';
import {
  referenceBatchNorm, referenceBatchNormBackward, referenceBatchNormDoubleBackward, referenceBatchNormDoubleBackwardByDifferences,
  referenceRunningUpdate, type DoubleBackwardInputs,
} from '../reference/batchnorm_reference.js';
import { gradcheck, gradgradcheck } from '../helpers/gradcheck.js';
import { expectClose, randomArray, randomPositiveTensor, randomTensor } from '../helpers/random.js';

/** |actual − expected| <= tolerance·max|expected| elementwise (error relative to the data's scale). */
function expectScaledClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tolerance: number, label: string): void {
  let scale = 0;
  for (let i = 0; i < expected.length; i += 1) scale = Math.max(scale, Math.abs(expected[i]!));
  expectClose(actual, expected, { rtol: 0, atol: tolerance * Math.max(scale, 1e-30), label });
}

/**
 * Per-channel sums (the weight and bias gradients): |actual_c − expected_c| <= tolerance·Σ|terms_c|.
 * A float32 sum's rounding error scales with the magnitudes it adds, not with the result, which a
 * random draw can make nearly cancel (a bias gradient of 0.06 from 4,096 terms of size ~1).
 */
function expectSumClose(actual: ArrayLike<number>, expected: ArrayLike<number>, magnitudes: ArrayLike<number>, tolerance: number, label: string): void {
  for (let c = 0; c < expected.length; c += 1) {
    const allowed = tolerance * magnitudes[c]!;
    if (!(Math.abs(actual[c]! - expected[c]!) <= allowed)) {
      throw new Error(`${label}: channel ${c} is ${actual[c]}, expected ${expected[c]} (allowed error ${allowed.toExponential(2)} = ${tolerance} of the ${magnitudes[c]} its terms add up to in magnitude)`);
    }
  }
}

/** Σ over (n, spatial) of |term(n, c, i)| per channel of an NC… tensor's elements. */
function channelMagnitudes(shape: number[], term: (index: number) => number): Float64Array {
  const C = shape[1]!;
  const inner = shape.slice(2).reduce((a, b) => a * b, 1);
  const sums = new Float64Array(C);
  const total = shape.reduce((a, b) => a * b, 1);
  for (let index = 0; index < total; index += 1) sums[Math.floor(index / inner) % C] += Math.abs(term(index));
  return sums;
}

function channelsOf(shape: number[]): number {
  return shape[1]!;
}

const shapes: number[][] = [
  [1, 3, 5, 7], // batch 1, odd, non-square
  [4, 1, 6, 6], // C = 1 (the batch is split into blocks)
  [3, 5, 4, 9],
  [2, 20, 3, 3], // C >= 16 (one task per channel)
  [7, 4], // [N, C] like BatchNorm1d
  [5, 3, 11], // [N, C, L]
  [32, 2, 1, 1],
];

afterEach(() => {
  setNumThreads(engineInfo().threads);
});

describe('batchNorm forward', () => {
  it('training mode matches the float64 reference and updates the running stats (unbiased variance)', () => {
    for (const shape of shapes) {
      const C = channelsOf(shape);
      const x = randomTensor(shape, { scale: 2, offset: 0.5 });
      const weight = randomTensor([C]);
      const bias = randomTensor([C]);
      const runningMean = randomTensor([C]);
      const runningVar = randomPositiveTensor([C]);
      const rm0 = runningMean.toFloat32Array();
      const rv0 = runningVar.toFloat32Array();
      const versions = [runningMean.version, runningVar.version];
      const momentum = 0.1 + 0.3 * Math.random();
      const y = F.batchNorm(x, runningMean, runningVar, weight, bias, { training: true, momentum, eps: 1e-5 });
      const ref = referenceBatchNorm(x.toFloat32Array(), shape, weight.toFloat32Array(), bias.toFloat32Array(), { training: true, eps: 1e-5 });
      expect(y.shape).toEqual(shape);
      expectScaledClose(y.toFloat32Array(), ref.y, 2e-5, `y ${JSON.stringify(shape)}`);
      expectClose(runningMean.toFloat32Array(), referenceRunningUpdate(rm0, ref.mean, momentum), { rtol: 1e-5, atol: 1e-6, label: 'runningMean' });
      expectClose(runningVar.toFloat32Array(), referenceRunningUpdate(rv0, ref.unbiasedVar, momentum), { rtol: 1e-5, atol: 1e-6, label: 'runningVar' });
      expect(runningMean.version).toBe(versions[0]! + 1);
      expect(runningVar.version).toBe(versions[1]! + 1);
    }
  });

  it('the running variance uses n/(n−1), the normalisation the biased variance', () => {
    // Two values per channel: biased var = d², unbiased = 2d².
    const x = tensor([1, 10, 3, 20], [2, 2]);
    const runningMean = tensor([0, 0], [2]);
    const runningVar = tensor([0, 0], [2]);
    const y = F.batchNorm(x, runningMean, runningVar, null, null, { training: true, momentum: 1, eps: 0 });
    expectClose(runningMean.toFloat32Array(), [2, 15], { rtol: 1e-6 });
    expectClose(runningVar.toFloat32Array(), [2, 50], { rtol: 1e-6 });
    expectClose(y.toFloat32Array(), [-1, -1, 1, 1], { rtol: 1e-6, atol: 1e-6 });
  });

  it('without weight, bias or running stats (training), and a large N·H·W with a large mean stays accurate', () => {
    const shape = [128, 4, 32, 32];
    const x = randomTensor(shape, { offset: 20 });
    const y = F.batchNorm(x, null, null, null, null, { training: true });
    const ref = referenceBatchNorm(x.toFloat32Array(), shape, null, null, { training: true, eps: 1e-5 });
    expectScaledClose(y.toFloat32Array(), ref.y, 2e-5, 'large');
  });

  it('large CIFAR shape [128, 16, 32, 32]: forward and running stats', () => {
    const shape = [128, 16, 32, 32];
    const x = randomTensor(shape, { scale: 3, offset: -1 });
    const weight = randomTensor([16]);
    const bias = randomTensor([16]);
    const runningMean = randomTensor([16]);
    const runningVar = randomPositiveTensor([16]);
    const rv0 = runningVar.toFloat32Array();
    const y = F.batchNorm(x, runningMean, runningVar, weight, bias, { training: true });
    const ref = referenceBatchNorm(x.toFloat32Array(), shape, weight.toFloat32Array(), bias.toFloat32Array(), { training: true, eps: 1e-5 });
    expectScaledClose(y.toFloat32Array(), ref.y, 2e-5, 'cifar');
    expectClose(runningVar.toFloat32Array(), referenceRunningUpdate(rv0, ref.unbiasedVar, 0.1), { rtol: 1e-5 });
  });

  it('eval mode uses the running stats and leaves them unchanged', () => {
    for (const shape of shapes) {
      const C = channelsOf(shape);
      const x = randomTensor(shape, { scale: 2 });
      const weight = randomTensor([C]);
      const bias = randomTensor([C]);
      const runningMean = randomTensor([C]);
      const runningVar = randomPositiveTensor([C]);
      const before = [runningMean.toFloat32Array(), runningVar.toFloat32Array()];
      const version = runningMean.version;
      const y = F.batchNorm(x, runningMean, runningVar, weight, bias, { eps: 1e-3 });
      const ref = referenceBatchNorm(x.toFloat32Array(), shape, weight.toFloat32Array(), bias.toFloat32Array(),
        { training: false, eps: 1e-3, runningMean: before[0], runningVar: before[1] });
      expectScaledClose(y.toFloat32Array(), ref.y, 2e-5, `eval ${JSON.stringify(shape)}`);
      expect(Array.from(runningMean.toFloat32Array())).toEqual(Array.from(before[0]!));
      expect(Array.from(runningVar.toFloat32Array())).toEqual(Array.from(before[1]!));
      expect(runningMean.version).toBe(version);
    }
  });
});

describe('batchNorm backward', () => {
  const backwardShapes = [[3, 5, 4, 9], [1, 2, 3, 5], [4, 1, 6, 6], [6, 3], [16, 17, 2, 2], [64, 2, 8, 8]];
  for (const training of [true, false]) {
    it(`fused backward (${training ? 'training' : 'eval'}) matches the reference for x, weight and bias`, () => {
      for (const shape of backwardShapes) {
        const C = channelsOf(shape);
        const x = randomTensor(shape, { requiresGrad: true, scale: 2, offset: 0.3 });
        const weight = randomTensor([C], { requiresGrad: true });
        const bias = randomTensor([C], { requiresGrad: true });
        const runningMean = randomTensor([C]);
        const runningVar = randomPositiveTensor([C]);
        const rm = runningMean.toFloat32Array();
        const rv = runningVar.toFloat32Array();
        const y = F.batchNorm(x, runningMean, runningVar, weight, bias, { training });
        const dy = randomTensor(shape);
        const [dx, dw, db] = grad(y, [x, weight, bias], { gradOutputs: [dy] });
        const ref = referenceBatchNorm(x.toFloat32Array(), shape, weight.toFloat32Array(), null,
          { training, eps: 1e-5, runningMean: rm, runningVar: rv });
        const expected = referenceBatchNormBackward(dy.toFloat32Array(), x.toFloat32Array(), shape, weight.toFloat32Array(), ref.mean, ref.invstd, training);
        const label = `${training ? 'training' : 'eval'} ${JSON.stringify(shape)}`;
        expectScaledClose(dx!.toFloat32Array(), expected.dx, 2e-5, `dx ${label}`);
        // dweight_c = Σ dy·x̂ and dbias_c = Σ dy: checked against the magnitudes they add up.
        const [xs, dys] = [x.toFloat32Array(), dy.toFloat32Array()];
        const inner = shape.slice(2).reduce((a, b) => a * b, 1);
        const normalised = (index: number): number => {
          const c = Math.floor(index / inner) % C;
          return (xs[index]! - ref.mean[c]!) * ref.invstd[c]!;
        };
        expectSumClose(dw!.toFloat32Array(), expected.dweight, channelMagnitudes(shape, (i) => dys[i]! * normalised(i)), 1e-6, `dweight ${label}`);
        expectSumClose(db!.toFloat32Array(), expected.dbias, channelMagnitudes(shape, (i) => dys[i]!), 1e-6, `dbias ${label}`);
      }
    });
  }

  it('gradients reach only the inputs that need them (x only, weight only, no weight/bias)', () => {
    const shape = [4, 3, 2, 5];
    const x = randomTensor(shape, { requiresGrad: true });
    const xConst = randomTensor(shape);
    const weight = randomTensor([3], { requiresGrad: true });
    const dy = randomTensor(shape);
    const [gx] = grad(F.batchNorm(x, null, null, null, null, { training: true }), [x], { gradOutputs: [dy] });
    const ref = referenceBatchNorm(x.toFloat32Array(), shape, null, null, { training: true, eps: 1e-5 });
    const expected = referenceBatchNormBackward(dy.toFloat32Array(), x.toFloat32Array(), shape, null, ref.mean, ref.invstd, true);
    expectScaledClose(gx!.toFloat32Array(), expected.dx, 2e-5, 'x only');
    const [gw] = grad(F.batchNorm(xConst, null, null, weight, null, { training: true }), [weight], { gradOutputs: [dy] });
    const refConst = referenceBatchNorm(xConst.toFloat32Array(), shape, null, null, { training: true, eps: 1e-5 });
    const expectedW = referenceBatchNormBackward(dy.toFloat32Array(), xConst.toFloat32Array(), shape, weight.toFloat32Array(), refConst.mean, refConst.invstd, true);
    const [xs, dys] = [xConst.toFloat32Array(), dy.toFloat32Array()];
    const inner = shape.slice(2).reduce((a, b) => a * b, 1);
    const magnitudes = channelMagnitudes(shape, (i) => {
      const c = Math.floor(i / inner) % 3;
      return dys[i]! * (xs[i]! - refConst.mean[c]!) * refConst.invstd[c]!;
    });
    expectSumClose(gw!.toFloat32Array(), expectedW.dweight, magnitudes, 1e-6, 'weight only');
  });

  it('gradcheck: training and eval, through x, weight and bias', () => {
    for (const training of [true, false]) {
      for (const shape of [[3, 2, 2, 3], [5, 3]]) {
        const C = channelsOf(shape);
        const x = randomTensor(shape, { requiresGrad: true });
        const weight = randomTensor([C], { requiresGrad: true });
        const bias = randomTensor([C], { requiresGrad: true });
        const runningMean = randomTensor([C]);
        const runningVar = randomPositiveTensor([C]);
        gradcheck((a, w, b) => F.batchNorm(a, training ? null : runningMean, training ? null : runningVar, w, b, { training }), [x, weight, bias]);
      }
    }
  });

  it('gradgradcheck: training mode through x, weight and bias (and eval)', () => {
    for (const shape of [[3, 2, 2, 3], [4, 3], [2, 1, 3, 2]]) {
      const C = channelsOf(shape);
      const x = randomTensor(shape, { requiresGrad: true });
      const weight = randomTensor([C], { requiresGrad: true });
      const bias = randomTensor([C], { requiresGrad: true });
      gradgradcheck((a, w, b) => F.batchNorm(a, null, null, w, b, { training: true }), [x, weight, bias]);
      // A nonlinear consumer, so the second derivative sees dy that depends on x.
      gradgradcheck((a, w, b) => F.square(F.batchNorm(a, null, null, w, b, { training: true })), [x, weight, bias]);
    }
    const x = randomTensor([3, 2, 4], { requiresGrad: true });
    const weight = randomTensor([2], { requiresGrad: true });
    const runningMean = randomTensor([2]);
    const runningVar = randomPositiveTensor([2]);
    gradgradcheck((a, w) => F.square(F.batchNorm(a, runningMean, runningVar, w, null, { training: false })), [x, weight]);
    const xOnly = randomTensor([5, 2, 3], { requiresGrad: true });
    gradgradcheck((a) => F.batchNorm(a, null, null, null, null, { training: true }), [xOnly]);
  });

  it('training mode: the recorded backward is differentiable once more, a third order is refused with an error', () => {
    const x = randomTensor([4, 3, 2, 2], { requiresGrad: true });
    const weight = randomTensor([3], { requiresGrad: true });
    tidy(() => {
      const y = F.square(F.batchNorm(x, null, null, weight, null, { training: true }));
      const [gx] = grad(F.sum(y), [x], { createGraph: true });
      // Second order (what gradgradcheck checks numerically) works ...
      const [hx] = grad(F.sum(F.square(gx!)), [x], { createGraph: false });
      expect(hx!.toFloat32Array().every((value) => Number.isFinite(value))).toBe(true);
      // ... a third order through the native-forward double backward is a clear error.
      const again = F.square(F.batchNorm(x, null, null, weight, null, { training: true }));
      const [gx2] = grad(F.sum(again), [x], { createGraph: true });
      expect(() => grad(F.sum(F.square(gx2!)), [x], { createGraph: true })).toThrow(/batchNorm: gradients of third order .* are not supported/);
    });
  });
  it('the composite (createGraph) and fused backward agree to 1e-5 relative', () => {
    for (const training of [true, false]) {
      for (const shape of [[8, 4, 5, 5], [16, 3], [32, 16, 4, 4]]) {
        const C = channelsOf(shape);
        const x = randomTensor(shape, { requiresGrad: true, scale: 2, offset: 1 });
        const weight = randomTensor([C], { requiresGrad: true });
        const bias = randomTensor([C], { requiresGrad: true });
        const runningMean = randomTensor([C]);
        const runningVar = randomPositiveTensor([C]);
        const y = F.batchNorm(x, runningMean, runningVar, weight, bias, { training });
        const dy = randomTensor(shape);
        const fused = grad(y, [x, weight, bias], { gradOutputs: [dy], retainGraph: true });
        const composite = grad(y, [x, weight, bias], { gradOutputs: [dy], createGraph: true });
        expect(composite[0]!.requiresGrad).toBe(true);
        fused.forEach((g, index) => {
          expectScaledClose(composite[index]!.toFloat32Array(), g.toFloat32Array(), 1e-5, `composite vs fused ${index} ${training} ${JSON.stringify(shape)}`);
        });
      }
    }
  });
});

describe('batchNorm double backward (native kernel)', () => {
  type Variant = { weight: boolean; upstreamInput: boolean; upstreamWeight: boolean };
  const variants: Variant[] = [
    { weight: true, upstreamInput: true, upstreamWeight: false },
    { weight: true, upstreamInput: false, upstreamWeight: true },
    { weight: true, upstreamInput: true, upstreamWeight: true },
    { weight: false, upstreamInput: true, upstreamWeight: true },
  ];
  const inputsFor = (shape: number[], variant: Variant): DoubleBackwardInputs => {
    const size = shape.reduce((p, e) => p * e, 1);
    const C = channelsOf(shape);
    return {
      g: randomArray(size),
      x: Float32Array.from(randomArray(size), (v) => 2 * v + 0.7),
      shape,
      weight: variant.weight ? randomArray(C) : null,
      upstreamInput: variant.upstreamInput ? randomArray(size) : null,
      upstreamWeight: variant.upstreamWeight ? randomArray(C) : null,
      eps: 1e-5,
    };
  };
  /** The kernel's outputs for inputs (statistics from the native training forward, as F.batchNorm saves them). */
  const nativeDoubleBackward = (inputs: DoubleBackwardInputs) => tidy(() => {
    const { shape } = inputs;
    const C = channelsOf(shape);
    const dims = [shape[0]!, C, shape.slice(2).reduce((p, e) => p * e, 1)];
    const h = (t: Tensor | null) => (t ? t.storage.handle : null);
    const x = tensor(Float32Array.from(inputs.x), shape);
    const g = tensor(Float32Array.from(inputs.g), shape);
    const weight = inputs.weight ? tensor(Float32Array.from(inputs.weight), [C]) : null;
    const u = inputs.upstreamInput ? tensor(Float32Array.from(inputs.upstreamInput), shape) : null;
    const gammaBar = inputs.upstreamWeight ? tensor(Float32Array.from(inputs.upstreamWeight), [C]) : null;
    const y = Tensor.empty(shape);
    const mean = Tensor.empty([C]);
    const invstd = Tensor.empty([C]);
    native().batchNormForwardTraining(h(x)!, null, null, null, null, h(y)!, h(mean)!, h(invstd)!, dims, 0.1, inputs.eps);
    const gradGrad = Tensor.empty(shape);
    const gradX = Tensor.empty(shape);
    const gradWeight = Tensor.empty([C]);
    native().batchNormDoubleBackward(h(g)!, h(x)!, h(weight), h(mean)!, h(invstd)!, h(u), h(gammaBar), h(gradGrad), h(gradX), h(gradWeight), dims);
    return { gradGradOut: gradGrad.toFloat32Array(), gradX: gradX.toFloat32Array(), gradWeight: gradWeight.toFloat32Array() };
  });

  it('the float64 closed form agrees with float64 central differences', () => {
    for (const shape of [[3, 2, 2, 3], [5, 3], [2, 1, 3, 2]]) {
      for (const variant of variants) {
        const inputs = inputsFor(shape, variant);
        const closed = referenceBatchNormDoubleBackward(inputs);
        const differences = referenceBatchNormDoubleBackwardByDifferences(inputs);
        const label = `${JSON.stringify(shape)} ${JSON.stringify(variant)}`;
        expectScaledClose(closed.gradGradOut, differences.gradGradOut, 1e-6, `into g ${label}`);
        expectScaledClose(closed.gradX, differences.gradX, 1e-6, `into x ${label}`);
        if (variant.upstreamInput) expectScaledClose(closed.gradWeight, differences.gradWeight, 1e-6, `into weight ${label}`);
      }
    }
  });

  it('matches the float64 closed form (one task per channel, split batches, [N, C]), the same bits on 1 and 2 threads', () => {
    // [64, 2, 16, 16] splits each channel's batch into blocks; [16, 17, 2, 2] has one task per channel.
    for (const shape of [[3, 5, 4, 9], [4, 1, 6, 6], [16, 17, 2, 2], [64, 2, 16, 16], [7, 4], [32, 2, 1, 1]]) {
      for (const variant of variants) {
        const inputs = inputsFor(shape, variant);
        const expected = referenceBatchNormDoubleBackward(inputs);
        setNumThreads(1);
        const one = nativeDoubleBackward(inputs);
        setNumThreads(2);
        const two = nativeDoubleBackward(inputs);
        const label = `${JSON.stringify(shape)} ${JSON.stringify(variant)}`;
        expectScaledClose(two.gradGradOut, expected.gradGradOut, 5e-5, `into g ${label}`);
        expectScaledClose(two.gradX, expected.gradX, 5e-5, `into x ${label}`);
        expectScaledClose(two.gradWeight, expected.gradWeight, 5e-5, `into weight ${label}`);
        expect(Array.from(one.gradX)).toEqual(Array.from(two.gradX));
        expect(Array.from(one.gradGradOut)).toEqual(Array.from(two.gradGradOut));
      }
    }
  });

  it('rejects bad arguments with clear errors', () => {
    const addon = native();
    const h = (t: Tensor) => t.storage.handle;
    const x = randomTensor([2, 3, 4]);
    const c3 = randomTensor([3]);
    const small = randomTensor([5]);
    const out = Tensor.empty([2, 3, 4]);
    expect(() => addon.batchNormDoubleBackward(h(x), h(x), null, h(c3), h(c3), h(small), null, h(out), null, null, [2, 3, 4])).toThrow(/batchNormDoubleBackward: argument 'upstreamInput' holds 5 floats but the op needs 24/);
    expect(() => addon.batchNormDoubleBackward(h(x), h(x), null, h(c3), h(c3), null, h(randomTensor([2])), h(out), null, null, [2, 3, 4])).toThrow(/argument 'upstreamWeight' holds 2 floats but the op needs 3/);
    expect(() => addon.batchNormDoubleBackward(h(x), h(x), null, h(c3), h(c3), h(x), null, h(out), null, null, [1, 3, 1])).toThrow(/more than 1 value per channel/);
    expect(() => addon.batchNormDoubleBackward(h(x), h(x), null, h(c3), h(c3), h(x), null, h(out), null, null, [2, 3])).toThrow(/must be \[N, C, S\]/);
  });
});

describe('batchNorm determinism and memory', () => {
  it('gives the same bits twice and on 1 or 2 threads (forward, running stats, backward)', () => {
    for (const shape of [[128, 16, 32, 32], [128, 3, 8, 8]]) {
      const C = channelsOf(shape);
      const data = randomArray(shape.reduce((p, e) => p * e, 1), 2);
      const dyData = randomArray(data.length);
      const weight = randomTensor([C]);
      const bias = randomTensor([C]);
      const run = (threads: number) => {
        setNumThreads(threads);
        const x = tensor(data, shape, { requiresGrad: true });
        const runningMean = tensor(new Float32Array(C), [C]);
        const runningVar = tensor(new Float32Array(C).fill(1), [C]);
        const y = F.batchNorm(x, runningMean, runningVar, weight, bias, { training: true });
        const [dx] = grad(y, [x], { gradOutputs: [tensor(dyData, shape)] });
        return [y.toFloat32Array(), runningMean.toFloat32Array(), runningVar.toFloat32Array(), dx!.toFloat32Array()];
      };
      const first = run(2);
      const second = run(2);
      const single = run(1);
      first.forEach((values, index) => {
        expect(Buffer.from(second[index]!.buffer).equals(Buffer.from(values.buffer))).toBe(true);
        expect(Buffer.from(single[index]!.buffer).equals(Buffer.from(values.buffer))).toBe(true);
      });
    }
  });

  it('releases everything it allocated (backward, double backward, no backward, noGrad)', () => {
    const shape = [8, 4, 6, 6];
    const weight = randomTensor([4], { requiresGrad: true });
    const bias = randomTensor([4], { requiresGrad: true });
    const runningMean = randomTensor([4]);
    const runningVar = randomPositiveTensor([4]);
    const x = randomTensor(shape, { requiresGrad: true });
    const before = memory();
    for (let i = 0; i < 3; i += 1) {
      // Without a scope: F.sum's backward creates no intermediates, so everything batchNorm
      // allocated (output, saved statistics, gradients) must be gone after disposal.
      const y = F.batchNorm(x, runningMean, runningVar, weight, bias, { training: true });
      const loss = F.sum(y);
      loss.backward();
      loss.dispose();
      y.dispose();
      // Inside tidy, with a nonlinear loss; and a second-order (createGraph) pass.
      tidy(() => {
        const out = F.batchNorm(x, runningMean, runningVar, weight, bias, { training: true });
        F.sum(F.square(out)).backward();
      });
      tidy(() => {
        const out = F.batchNorm(x, runningMean, runningVar, weight, bias, { training: true });
        const [gx] = grad(F.sum(F.square(out)), [x], { createGraph: true });
        F.sum(F.square(gx!)).backward();
      });
      // A recorded forward that is never differentiated: disposing the output frees the graph.
      F.batchNorm(x, runningMean, runningVar, weight, bias, { training: true }).dispose();
      noGrad(() => F.batchNorm(x, runningMean, runningVar, weight, bias, { training: false })).dispose();
      noGrad(() => F.batchNorm(x, null, null, weight, bias, { training: true })).dispose();
      x.grad?.dispose();
      x.grad = null;
      weight.grad?.dispose();
      weight.grad = null;
      bias.grad?.dispose();
      bias.grad = null;
    }
    const after = memory();
    expect(after.liveTensors).toBe(before.liveTensors);
    expect(after.liveBytes).toBe(before.liveBytes);
    expect(after.nativeLiveBytes).toBe(before.nativeLiveBytes);
  });
});

describe('batchNorm bad input', () => {
  it('rejects wrong ranks, channel mismatches, missing running stats and bad options with clear errors', () => {
    const x = randomTensor([4, 3, 2, 2]);
    const c3 = randomTensor([3]);
    const c4 = randomTensor([4]);
    expect(() => F.batchNorm(randomTensor([5]), null, null, null, null, { training: true })).toThrow(/batchNorm: argument 'x' must be at least 2-D/);
    expect(() => F.batchNorm(x, null, null, c4, null, { training: true })).toThrow(/batchNorm: argument 'weight' must have shape \[3\].*got \[4\]/);
    expect(() => F.batchNorm(x, null, null, c3, c4, { training: true })).toThrow(/batchNorm: argument 'bias' must have shape \[3\]/);
    expect(() => F.batchNorm(x, c4, c3, null, null, { training: true })).toThrow(/batchNorm: argument 'runningMean' must have shape \[3\]/);
    expect(() => F.batchNorm(x, randomTensor([3, 1]), c3, null, null)).toThrow(/batchNorm: argument 'runningMean' must have shape \[3\]/);
    expect(() => F.batchNorm(x, null, null, null, null, { training: false })).toThrow(/batchNorm: eval mode .* needs runningMean and runningVar/);
    expect(() => F.batchNorm(x, null, null)).toThrow(/batchNorm: eval mode/);
    expect(() => F.batchNorm(x, c3, null, null, null, { training: true })).toThrow(/batchNorm: runningMean and runningVar must be given together/);
    expect(() => F.batchNorm(randomTensor([1, 3]), null, null, null, null, { training: true })).toThrow(/batchNorm: expected more than 1 value per channel when training/);
    expect(() => F.batchNorm(randomTensor([1, 3, 1, 1]), null, null, null, null, { training: true })).toThrow(/more than 1 value per channel/);
    expect(() => F.batchNorm(x, null, null, null, null, { training: 'yes' as never })).toThrow(/batchNorm: options.training must be a boolean/);
    expect(() => F.batchNorm(x, null, null, null, null, { training: true, momentum: Number.NaN })).toThrow(/batchNorm: options.momentum must be a finite number/);
    expect(() => F.batchNorm(x, null, null, null, null, { training: true, eps: -1 })).toThrow(/batchNorm: options.eps must be a finite number >= 0/);
    expect(() => F.batchNorm('x' as never, null, null)).toThrow(/batchNorm: argument 'x' must be a Tensor/);
    expect(() => F.batchNorm(x, null, null, [1, 2, 3] as never, null, { training: true })).toThrow(/batchNorm: argument 'weight' must be a Tensor/);
    const trainable = randomTensor([3], { requiresGrad: true });
    expect(() => F.batchNorm(x, trainable, c3, null, null, { training: true })).toThrow(/batchNorm: argument 'runningMean' must not require grad/);
    const disposed = randomTensor([3]);
    disposed.dispose();
    expect(() => F.batchNorm(x, null, null, disposed, null, { training: true })).toThrow(/batchNorm.*was disposed/);
    const onCuda = randomTensor([3]);
    Object.defineProperty(onCuda, 'device', { value: 'cuda' });
    expect(() => F.batchNorm(x, null, null, onCuda, null, { training: true })).toThrow(/batchNorm: expected all tensors on the same device/);
  });

  it('the native layer re-validates its arguments and never crashes', () => {
    const addon = native();
    const x = randomTensor([2, 3, 4]);
    const small = randomTensor([2]);
    const c3 = randomTensor([3]);
    const out = Tensor.empty([2, 3, 4]);
    const s1 = Tensor.empty([3]);
    const s2 = Tensor.empty([3]);
    const h = (t: Tensor) => t.storage.handle;
    expect(() => addon.batchNormForwardTraining(h(x), null, null, null, null, h(out), h(s1), h(s2), [2, 3, 5], 0.1, 1e-5)).toThrow(/batchNormForwardTraining: argument 'x' holds 24 floats but the op needs 30/);
    expect(() => addon.batchNormForwardTraining(h(x), h(small), null, null, null, h(out), h(s1), h(s2), [2, 3, 4], 0.1, 1e-5)).toThrow(/argument 'weight'/);
    expect(() => addon.batchNormForwardTraining(h(x), null, null, null, null, h(out), h(s1), h(s2), [2, 3], 0.1, 1e-5)).toThrow(/must be \[N, C, S\]/);
    expect(() => addon.batchNormForwardTraining(h(x), null, null, null, null, h(out), h(s1), h(s2), [2, -3, 4], 0.1, 1e-5)).toThrow(/batchNormForwardTraining: invalid shape/);
    expect(() => addon.batchNormForwardTraining(h(x), null, null, h(c3), null, h(out), h(s1), h(s2), [2, 3, 4], 0.1, 1e-5)).toThrow(/given together/);
    expect(() => addon.batchNormForwardTraining(h(x), null, null, null, null, h(out), h(s1), h(s2), [1, 3, 1], 0.1, 1e-5)).toThrow(/more than 1 value/);
    expect(() => addon.batchNormForwardTraining(h(x), null, null, null, null, h(out), h(s1), h(s2), [2, 3, 4], Number.NaN, 1e-5)).toThrow(/momentum/);
    expect(() => addon.batchNormForwardTraining(h(x), null, null, null, null, h(out), h(s1), h(s2), [2, 3, 4], 0.1, -1)).toThrow(/eps/);
    expect(() => addon.batchNormForwardTraining(h(x), null, null, null, null, h(out), h(s1), h(s2), [1e15, 1e15, 4], 0.1, 1e-5)).toThrow(/too large/);
    expect(() => addon.batchNormForwardEval(h(x), null, null, null as never, h(c3), h(out), h(s1), h(s2), [2, 3, 4], 1e-5)).toThrow(/argument 'runningMean' must be a tensor storage/);
    expect(() => addon.batchNormBackward(h(x), h(x), null, h(s1), h(s2), h(small), null, null, [2, 3, 4], true)).toThrow(/argument 'gradInput'/);
    expect(() => addon.batchNormBackward(h(x), h(x), null, h(s1), h(s2), null, null, null, [2, 3, 4], 1 as never)).toThrow(/argument 'training' must be a boolean/);
    expect(() => addon.batchNormBackward({} as never, h(x), null, h(s1), h(s2), null, null, null, [2, 3, 4], true)).toThrow(/argument 'gradOut' must be a tensor storage/);
    const freed = randomTensor([2, 3, 4]);
    const handle = freed.storage.handle;
    freed.dispose();
    expect(() => addon.batchNormForwardEval(handle, null, null, h(c3), h(c3), h(out), h(s1), h(s2), [2, 3, 4], 1e-5)).toThrow(/disposed/);
  });
});

describe('batchNorm epilogue (residual add and ReLU fused into the pass)', () => {
  const epilogues: { residual: boolean; relu: boolean }[] = [
    { residual: false, relu: true },
    { residual: true, relu: false },
    { residual: true, relu: true },
  ];
  const unfused = (x: Tensor, rm: Tensor | null, rv: Tensor | null, w: Tensor | null, b: Tensor | null, r: Tensor | null, relu: boolean, training: boolean): Tensor => {
    let out = F.batchNorm(x, rm, rv, w, b, { training });
    if (r) out = F.add(out, r);
    return relu ? F.relu(out) : out;
  };

  it('forward, running stats and every gradient have the bits of batchNorm → add → relu (training and eval)', () => {
    for (const training of [true, false]) {
      for (const shape of [[4, 1, 6, 6], [3, 5, 4, 9], [2, 20, 3, 3], [7, 4], [16, 16, 8, 8]]) {
        for (const { residual, relu } of epilogues) {
          const C = channelsOf(shape);
          const x = randomTensor(shape, { requiresGrad: true, scale: 2, offset: 0.3 });
          const weight = randomTensor([C], { requiresGrad: true });
          const bias = randomTensor([C], { requiresGrad: true });
          const r = residual ? randomTensor(shape, { requiresGrad: true }) : null;
          const statsA = [randomTensor([C]), randomPositiveTensor([C])] as const;
          const statsB = [tensor(statsA[0].toFloat32Array(), [C]), tensor(statsA[1].toFloat32Array(), [C])] as const;
          const label = `${training ? 'training' : 'eval'} ${JSON.stringify(shape)} residual ${residual} relu ${relu}`;
          const fused = F.batchNorm(x, statsA[0], statsA[1], weight, bias, { training, residual: r, relu });
          const plain = unfused(x, statsB[0], statsB[1], weight, bias, r, relu, training);
          expect(fused.toFloat32Array(), label).toEqual(plain.toFloat32Array());
          expect(statsA[0].toFloat32Array(), label).toEqual(statsB[0].toFloat32Array());
          expect(statsA[1].toFloat32Array(), label).toEqual(statsB[1].toFloat32Array());
          const dy = randomTensor(shape);
          const inputs = r ? [x, weight, bias, r] : [x, weight, bias];
          const fusedGrads = grad(fused, inputs, { gradOutputs: [dy] });
          const plainGrads = grad(plain, inputs, { gradOutputs: [dy] });
          fusedGrads.forEach((g, index) => expect(g!.toFloat32Array(), `${label} grad ${index}`).toEqual(plainGrads[index]!.toFloat32Array()));
        }
      }
    }
  });

  it('a NaN passes through the fused ReLU as through the relu op; without weight and bias', () => {
    const shape = [3, 2, 4, 4];
    const values = randomArray(3 * 2 * 16, 1);
    values[5] = Number.NaN;
    const x = tensor(values, shape);
    const r = randomTensor(shape);
    const fused = F.batchNorm(x, null, null, null, null, { training: true, residual: r, relu: true });
    const plain = F.relu(F.add(F.batchNorm(x, null, null, null, null, { training: true }), r));
    expect(fused.toFloat32Array()).toEqual(plain.toFloat32Array());
    expect(Number.isNaN(fused.toFloat32Array()[5]!)).toBe(true);
  });

  /** A residual that keeps bn(x) + residual at least 0.1 away from the ReLU's kink (finite differences stay on one side). */
  function residualAwayFromKink(x: Tensor, weight: Tensor | null, bias: Tensor | null, shape: number[]): Tensor {
    const r = randomArray(shape.reduce((a, b) => a * b, 1), 1);
    const z = noGrad(() => F.batchNorm(x, null, null, weight, bias, { training: true })).toFloat32Array();
    for (let i = 0; i < r.length; i += 1) {
      const sum = z[i]! + r[i]!;
      if (Math.abs(sum) < 0.1) r[i] += sum >= 0 ? 0.2 : -0.2;
    }
    return tensor(r, shape, { requiresGrad: true });
  }

  // Without a residual: a bias per channel in the middle of the widest gap between the values
  // −w·x̂ of its elements, so that every pre-activation w·x̂ + b is at least half that gap from the
  // ReLU's kink (finite differences must not step across it) and both sides of it are used.
  function biasAwayFromKink(x: Tensor, weight: Tensor, shape: number[]): Tensor {
    const C = channelsOf(shape);
    const inner = shape.slice(2).reduce((a, b) => a * b, 1);
    const xs = x.toFloat32Array();
    const w = weight.toFloat32Array();
    const bias = new Float32Array(C);
    for (let c = 0; c < C; c += 1) {
      const values: number[] = [];
      for (let i = 0; i < xs.length; i += 1) if (Math.floor(i / inner) % C === c) values.push(xs[i]!);
      const mean = values.reduce((a, b) => a + b, 0) / values.length;
      const invstd = 1 / Math.sqrt(values.reduce((a, v) => a + (v - mean) ** 2, 0) / values.length + 1e-5);
      const kinks = values.map((v) => -w[c]! * (v - mean) * invstd).sort((a, b) => a - b);
      let best = 0;
      for (let k = 1; k < kinks.length; k += 1) if (kinks[k]! - kinks[k - 1]! > kinks[best + 1]! - kinks[best]!) best = k - 1;
      expect(kinks[best + 1]! - kinks[best]!, `channel ${c}: a gap of at least 0.1 between pre-activation kinks`).toBeGreaterThan(0.1);
      bias[c] = (kinks[best]! + kinks[best + 1]!) / 2;
    }
    return tensor(bias, [C], { requiresGrad: true });
  }

  it('gradcheck and gradgradcheck through x, weight, bias and the residual', () => {
    for (const shape of [[3, 2, 2, 3], [5, 3]]) {
      const C = channelsOf(shape);
      const x = randomTensor(shape, { requiresGrad: true });
      const weight = randomTensor([C], { requiresGrad: true });
      const bias = randomTensor([C], { requiresGrad: true });
      const r = residualAwayFromKink(x, weight, bias, shape);
      gradcheck((a, w, b, s) => F.batchNorm(a, null, null, w, b, { training: true, residual: s, relu: true }), [x, weight, bias, r], { epsilon: 1e-3 });
      // |w| >= 1: the x̂ of a channel span at least 2 (unit variance), so its widest gap is >= 2/(n − 1).
      const reluWeight = tensor(Float32Array.from(weight.toFloat32Array(), (v) => (v < 0 ? -1 : 1) * (1 + Math.abs(v))), [C], { requiresGrad: true });
      gradcheck((a, w, b) => F.batchNorm(a, null, null, w, b, { training: true, relu: true }), [x, reluWeight, biasAwayFromKink(x, reluWeight, shape)], { epsilon: 1e-3 });
      gradgradcheck((a, w, b, s) => F.square(F.batchNorm(a, null, null, w, b, { training: true, residual: s, relu: true })), [x, weight, bias, r], { epsilon: 1e-3 });
    }
  });

  it('the composite (createGraph) and fused backward agree with the epilogue', () => {
    for (const training of [true, false]) {
      for (const { residual, relu } of epilogues) {
        const shape = [8, 4, 5, 5];
        const x = randomTensor(shape, { requiresGrad: true, scale: 2, offset: 1 });
        const weight = randomTensor([4], { requiresGrad: true });
        const bias = randomTensor([4], { requiresGrad: true });
        const r = residual ? randomTensor(shape, { requiresGrad: true }) : null;
        const y = F.batchNorm(x, randomTensor([4]), randomPositiveTensor([4]), weight, bias, { training, residual: r, relu });
        const dy = randomTensor(shape);
        const inputs = r ? [x, weight, bias, r] : [x, weight, bias];
        const fused = grad(y, inputs, { gradOutputs: [dy], retainGraph: true });
        const composite = grad(y, inputs, { gradOutputs: [dy], createGraph: true });
        fused.forEach((g, index) => {
          expectScaledClose(composite[index]!.toFloat32Array(), g!.toFloat32Array(), 1e-5, `composite vs fused ${index} ${training} residual ${residual} relu ${relu}`);
        });
      }
    }
  });

  it('the BatchNorm2d module fuses through forward(x, { residual, relu }) and releases what it allocated', () => {
    const bnA = new nn.BatchNorm2d(4);
    const bnB = new nn.BatchNorm2d(4);
    const x = randomTensor([6, 4, 5, 5], { requiresGrad: true });
    const r = randomTensor([6, 4, 5, 5], { requiresGrad: true });
    const fused = bnA.forward(x, { residual: r, relu: true });
    const plain = F.relu(F.add(bnB.forward(x), r));
    expect(fused.toFloat32Array()).toEqual(plain.toFloat32Array());
    expect(bnA.runningVar!.toFloat32Array()).toEqual(bnB.runningVar!.toFloat32Array());
    fused.dispose();
    plain.dispose();
    const before = memory();
    for (let i = 0; i < 2; i += 1) {
      tidy(() => F.sum(F.square(bnA.forward(x, { residual: r, relu: true }))).backward());
      tidy(() => {
        const [gx] = grad(F.sum(F.square(bnA.forward(x, { relu: true }))), [x], { createGraph: true });
        F.sum(F.square(gx!)).backward();
      });
      bnA.forward(x, { residual: r, relu: true }).dispose();
      for (const t of [x, r, bnA.weight!, bnA.bias!]) {
        t.grad?.dispose();
        t.grad = null;
      }
    }
    const after = memory();
    expect(after.liveTensors).toBe(before.liveTensors);
    expect(after.nativeLiveBytes).toBe(before.nativeLiveBytes);
    expect(() => bnA.forward(x, null as never)).toThrow(/epilogue must be an object/);
  });

  it('rejects a residual of another shape, a non-boolean relu, and bad native arguments', () => {
    const x = randomTensor([4, 3, 2, 2]);
    expect(() => F.batchNorm(x, null, null, null, null, { training: true, residual: randomTensor([4, 3, 2, 1]) })).toThrow(/options.residual must have the shape of x \[4, 3, 2, 2\], got \[4, 3, 2, 1\]/);
    expect(() => F.batchNorm(x, null, null, null, null, { training: true, residual: 3 as never })).toThrow(/residual/);
    expect(() => F.batchNorm(x, null, null, null, null, { training: true, relu: 'yes' as never })).toThrow(/options.relu must be a boolean/);
    const y = Tensor.empty([4, 3, 2, 2]);
    const c = Tensor.empty([3]);
    const small = Tensor.empty([4]);
    expect(() => native().batchNormForwardTraining(x.storage.handle, null, null, null, null, y.storage.handle, c.storage.handle,
      c.storage.handle, [4, 3, 4], 0.1, 1e-5, small.storage.handle, true)).toThrow(/residual/);
    expect(() => native().batchNormBackward(x.storage.handle, x.storage.handle, null, c.storage.handle, c.storage.handle,
      y.storage.handle, null, null, [4, 3, 4], true, small.storage.handle, null)).toThrow(/output/);
    expect(() => native().batchNormBackward(x.storage.handle, x.storage.handle, null, c.storage.handle, c.storage.handle,
      y.storage.handle, null, null, [4, 3, 4], true, null, small.storage.handle)).toThrow(/gradResidual/);
  });
});
