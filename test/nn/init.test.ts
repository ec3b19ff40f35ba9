// nn.init: fans, gains, and the statistics of each initialiser on large tensors.
// Tolerances: with n samples the sample mean has standard error σ/√n and the sample standard
// deviation a relative standard error ≈ 1/√(2n); the bounds below are ≥ 5 standard errors.
import { describe, expect, it } from 'vitest';
import { Generator, manualSeed, nn, zeros, type Tensor } from '../../src/index.js';

const { init } = nn;

function stats(t: Tensor): { mean: number; std: number; min: number; max: number; n: number } {
  const data = t.toFloat32Array();
  let sum = 0;
  let min = Infinity;
  let max = -Infinity;
  for (const value of data) {
    sum += value;
    if (value < min) min = value;
    if (value > max) max = value;
  }
  const mean = sum / data.length;
  let squares = 0;
  for (const value of data) squares += (value - mean) ** 2;
  return { mean, std: Math.sqrt(squares / (data.length - 1)), min, max, n: data.length };
}

function expectNormalLike(t: Tensor, mean: number, std: number): void {
  const s = stats(t);
  expect(Math.abs(s.mean - mean)).toBeLessThan((6 * std) / Math.sqrt(s.n));
  expect(Math.abs(s.std / std - 1)).toBeLessThan(6 / Math.sqrt(2 * s.n) + 1e-4);
}

function expectUniformLike(t: Tensor, low: number, high: number): void {
  const s = stats(t);
  const width = high - low;
  // Bounds respected, up to the float32 rounding of the bound itself.
  const ulp = (x: number): number => Math.abs(x) * 2 ** -23;
  expect(s.min).toBeGreaterThanOrEqual(low - ulp(low));
  expect(s.max).toBeLessThanOrEqual(high + ulp(high));
  // The extremes of a large sample come within a small fraction of the bounds.
  expect(s.min - low).toBeLessThan(width * 1e-3);
  expect(high - s.max).toBeLessThan(width * 1e-3);
  const std = width / Math.sqrt(12);
  expect(Math.abs(s.mean - (low + high) / 2)).toBeLessThan((6 * std) / Math.sqrt(s.n));
  expect(Math.abs(s.std / std - 1)).toBeLessThan(6 / Math.sqrt(2 * s.n) + 1e-4);
}

describe('fans and gains', () => {
  it('follow torch.nn.init', () => {
    expect(init.calculateFanInAndFanOut([64, 16, 3, 3])).toEqual([144, 576]);
    expect(init.calculateFanInAndFanOut([10, 32])).toEqual([32, 10]);
    expect(() => init.calculateFanInAndFanOut([7])).toThrow(/fewer than 2 dimensions/);
    expect(init.calculateGain('relu')).toBeCloseTo(Math.SQRT2, 12);
    expect(init.calculateGain('tanh')).toBeCloseTo(5 / 3, 12);
    expect(init.calculateGain('linear')).toBe(1);
    expect(init.calculateGain('leaky_relu', Math.sqrt(5))).toBeCloseTo(Math.sqrt(1 / 3), 12);
    expect(init.calculateGain('leaky_relu')).toBeCloseTo(Math.sqrt(2 / (1 + 0.0001)), 12);
  });
});

describe('initialisers', () => {
  it('kaimingNormal (fanOut, relu) has std sqrt(2 / fan_out)', () => {
    const w = zeros([128, 64, 3, 3]);
    init.kaimingNormal(w, { mode: 'fanOut', nonlinearity: 'relu' });
    expectNormalLike(w, 0, Math.sqrt(2 / (128 * 9)));
    // PyTorch spelling of the mode, and fan_in.
    init.kaimingNormal(w, { mode: 'fan_in', nonlinearity: 'relu' });
    expectNormalLike(w, 0, Math.sqrt(2 / (64 * 9)));
    w.dispose();
  });

  it('kaimingUniform has bound gain·sqrt(3 / fan)', () => {
    const w = zeros([256, 96]);
    init.kaimingUniform(w, { nonlinearity: 'relu' });
    const bound = Math.SQRT2 * Math.sqrt(3 / 96);
    expectUniformLike(w, -bound, bound);
    w.dispose();
  });

  it('normal, uniform, constant, zeros, ones', () => {
    const t = zeros([200_000]);
    const mean = Math.random() * 4 - 2;
    const std = 0.1 + Math.random();
    init.normal(t, mean, std);
    expectNormalLike(t, mean, std);
    const low = Math.random() * 2 - 3;
    const high = low + 0.5 + Math.random();
    init.uniform(t, low, high);
    expectUniformLike(t, low, high);
    const value = Math.fround(Math.random() * 10 - 5);
    init.constant(t, value);
    expect(stats(t)).toMatchObject({ min: value, max: value });
    init.ones(t);
    expect(stats(t)).toMatchObject({ min: 1, max: 1 });
    init.zeros(t);
    expect(stats(t)).toMatchObject({ min: 0, max: 0 });
    t.dispose();
  });

  it('xavier uses (fan_in + fan_out)', () => {
    const w = zeros([300, 200]);
    init.xavierNormal(w);
    expectNormalLike(w, 0, Math.sqrt(2 / 500));
    init.xavierUniform(w, { gain: 2 });
    const bound = 2 * Math.sqrt(6 / 500);
    expectUniformLike(w, -bound, bound);
    w.dispose();
  });

  it('writes in place under noGrad and bumps the storage version', () => {
    const w = zeros([4, 3], { requiresGrad: true });
    const before = w.version;
    init.kaimingNormal(w);
    expect(w.version).toBeGreaterThan(before);
    expect(w.requiresGrad).toBe(true);
    expect(w.isLeaf).toBe(true);
    expect(w.gradFn).toBeNull();
    w.dispose();
  });

  it('is seeded by manualSeed and by an explicit Generator', () => {
    const seed = Math.floor(Math.random() * 1e9);
    const draw = (fn: (t: Tensor) => void): Float32Array => {
      const t = zeros([64, 8, 3, 3]);
      fn(t);
      const data = t.toFloat32Array();
      t.dispose();
      return data;
    };
    manualSeed(seed);
    const first = draw((t) => init.kaimingNormal(t));
    manualSeed(seed);
    const second = draw((t) => init.kaimingNormal(t));
    expect(second).toEqual(first);
    const third = draw((t) => init.kaimingNormal(t, { generator: new Generator(seed) }));
    const fourth = draw((t) => init.kaimingNormal(t, { generator: new Generator(seed) }));
    expect(fourth).toEqual(third);
    manualSeed(seed + 1);
    expect(draw((t) => init.kaimingNormal(t))).not.toEqual(first);
  });

  it('rejects bad arguments with clear errors', () => {
    const v = zeros([5]);
    expect(() => init.kaimingNormal(v)).toThrow(/fewer than 2 dimensions/);
    expect(() => init.kaimingNormal(zeros([3, 3]), { mode: 'fan' as never })).toThrow(/mode must be 'fanIn' or 'fanOut'/);
    expect(() => init.uniform(v, 1, 0)).toThrow(/low \(1\) must not exceed high \(0\)/);
    expect(() => init.normal(v, 0, -1)).toThrow(/std must be non-negative/);
    expect(() => init.constant(v, Number.NaN)).toThrow(/finite number/);
    expect(() => init.zeros({} as Tensor)).toThrow(/expected a Tensor/);
    v.dispose();
    expect(() => init.ones(v)).toThrow(/disposed/);
  });
});

describe('layer defaults', () => {
  it('Conv2d: weight and bias U(±1/sqrt(fan_in)), fan_in = in/groups·kh·kw', () => {
    const conv = new nn.Conv2d(64, 128, 3, { padding: 1 });
    const bound = 1 / Math.sqrt(64 * 9);
    expectUniformLike(conv.weight, -bound, bound);
    const bias = stats(conv.bias!);
    expect(bias.min).toBeGreaterThanOrEqual(-bound * (1 + 2 ** -23));
    expect(bias.max).toBeLessThanOrEqual(bound * (1 + 2 ** -23));
    expect(bias.std).toBeGreaterThan(bound / 4);
    conv.dispose();

    const grouped = new nn.Conv2d(64, 256, 3, { groups: 4, bias: false });
    expect(grouped.weight.shape).toEqual([256, 16, 3, 3]);
    const groupedBound = 1 / Math.sqrt(16 * 9);
    expectUniformLike(grouped.weight, -groupedBound, groupedBound);
    expect(grouped.bias).toBeNull();
    grouped.dispose();
  });

  it('Linear: weight and bias U(±1/sqrt(in_features))', () => {
    const fc = new nn.Linear(300, 400);
    const bound = 1 / Math.sqrt(300);
    expectUniformLike(fc.weight, -bound, bound);
    const bias = stats(fc.bias!);
    expect(bias.min).toBeGreaterThanOrEqual(-bound * (1 + 2 ** -23));
    expect(bias.max).toBeLessThanOrEqual(bound * (1 + 2 ** -23));
    fc.dispose();
  });

  it('BatchNorm2d: weight 1, bias 0, running stats (0, 1), count 0', () => {
    const bn = new nn.BatchNorm2d(5);
    expect(bn.weight!.toFloat32Array()).toEqual(new Float32Array(5).fill(1));
    expect(bn.bias!.toFloat32Array()).toEqual(new Float32Array(5));
    expect(bn.runningMean!.toFloat32Array()).toEqual(new Float32Array(5));
    expect(bn.runningVar!.toFloat32Array()).toEqual(new Float32Array(5).fill(1));
    expect(bn.numBatchesTracked!.shape).toEqual([]);
    expect(bn.numBatchesTracked!.item()).toBe(0);
    bn.dispose();
  });

  it('layers draw from the given generator', () => {
    const seed = Math.floor(Math.random() * 1e9);
    const a = new nn.Conv2d(3, 4, 3, { generator: new Generator(seed) });
    const b = new nn.Conv2d(3, 4, 3, { generator: new Generator(seed) });
    expect(b.weight.toFloat32Array()).toEqual(a.weight.toFloat32Array());
    expect(b.bias!.toFloat32Array()).toEqual(a.bias!.toFloat32Array());
    a.dispose();
    b.dispose();
  });
});
