// conv2d op (src/ops/conv2d.ts): forward and every gradient against the float64 direct-loop
// reference (test/reference/conv2d_ops_reference.ts) over many geometries; finite-difference
// gradcheck / gradgradcheck (test/helpers/gradcheck.ts: relative tolerance 2e-2 first order,
// 3e-2 second order, float32 central differences); Hessian-vector products through ReLU conv
// networks against float64 central differences of the exact gradient; bad input; determinism;
// no leaked tensors.
// Reference tolerance per element: |got − ref| ≤ 1e-5·√terms·(1 + |ref|), terms = number of
// products summed into the element (float32 accumulation error grows like √terms).
// Hessian-vector tolerance: |got − fd| ≤ 1e-3·|fd| + 2e-4·max(1, max|fd|).
import { describe, expect, it } from 'vitest';
import { F, Tensor, grad, memory, noGrad, tensor, tidy } from '../../src/index.js';
import { conv2dBackwardInput, conv2dBackwardWeight, type Conv2dOptions } from '../../src/ops/conv2d.js';
import { gradcheck, gradgradcheck } from '../helpers/gradcheck.js';
import { expectClose, randomArray, randomTensor } from '../helpers/random.js';
import {
  type ConvSpec, type ReluConvLayer, axpy, convBackwardBias, convBackwardInput, convBackwardWeight, convForward,
  convOutputShape, reluConvNet,
} from '../reference/conv2d_ops_reference.js';

interface Case {
  input: number[];
  weight: number[];
  stride?: number | [number, number];
  padding?: number | [number, number];
  groups?: number;
  bias?: boolean;
}

const pair = (value: number | [number, number] | undefined, fallback: number): [number, number] =>
  value === undefined ? [fallback, fallback] : typeof value === 'number' ? [value, value] : value;

function specOf(c: Case): ConvSpec {
  return { inputShape: c.input, weightShape: c.weight, stride: pair(c.stride, 1), padding: pair(c.padding, 0), groups: c.groups ?? 1 };
}

function optionsOf(c: Case): Conv2dOptions {
  const options: Conv2dOptions = {};
  if (c.stride !== undefined) options.stride = c.stride;
  if (c.padding !== undefined) options.padding = c.padding;
  if (c.groups !== undefined) options.groups = c.groups;
  return options;
}

function expectWithin(actual: Float32Array, expected: Float64Array, terms: number, label: string): void {
  expect(actual.length, label).toBe(expected.length);
  const scale = 1e-5 * Math.sqrt(Math.max(1, terms));
  for (let i = 0; i < expected.length; i++) {
    const allowed = scale * (1 + Math.abs(expected[i]!));
    if (!(Math.abs(actual[i]! - expected[i]!) <= allowed)) {
      expect.fail(`${label}: element ${i} is ${actual[i]}, expected ${expected[i]} (allowed error ${allowed.toExponential(2)})`);
    }
  }
}

const label = (c: Case): string => JSON.stringify(c);

const cases: Case[] = [
  { input: [1, 3, 5, 5], weight: [4, 3, 3, 3], padding: 1 },                       // batch 1, same padding
  { input: [2, 3, 7, 5], weight: [5, 3, 3, 2] },                                    // odd, non-square input and kernel
  { input: [2, 4, 9, 8], weight: [6, 4, 3, 3], stride: 2, padding: 1 },             // stride 2
  { input: [1, 2, 6, 7], weight: [3, 2, 2, 3], stride: [2, 1], padding: [0, 2] },   // per-axis stride/padding
  { input: [2, 3, 5, 6], weight: [2, 3, 5, 3], padding: 2 },                        // padding 2, tall kernel
  { input: [2, 4, 6, 6], weight: [6, 2, 3, 3], padding: 1, groups: 2 },             // groups 2
  { input: [1, 6, 7, 7], weight: [4, 3, 3, 3], stride: 2, padding: 1, groups: 2 },  // groups 2, stride 2
  { input: [2, 4, 6, 5], weight: [4, 1, 3, 3], padding: 1, groups: 4 },             // depthwise
  { input: [1, 3, 8, 8], weight: [3, 1, 3, 3], stride: 2, padding: 1, groups: 3 },  // depthwise, stride 2
  { input: [1, 2, 5, 5], weight: [4, 1, 3, 3], padding: 1, groups: 2 },             // depth multiplier 2
  { input: [2, 8, 4, 4], weight: [5, 8, 1, 1] },                                    // 1x1
  { input: [1, 4, 5, 5], weight: [3, 4, 1, 1], stride: 2, bias: false },            // 1x1 stride 2 (downsample), no bias
  { input: [2, 3, 4, 4], weight: [2, 3, 4, 4] },                                    // kernel = input: 1x1 output
  { input: [1, 2, 3, 3], weight: [2, 2, 1, 1], padding: 2 },                        // padding > kernel − 1
  { input: [2, 16, 8, 8], weight: [16, 16, 3, 3], padding: 1, bias: false },        // ResNet-like block conv
  { input: [3, 5, 6, 9], weight: [7, 5, 2, 4], stride: [1, 3], padding: [1, 0] },
];

function makeInputs(c: Case, requiresGrad = true): { x: Tensor; w: Tensor; b: Tensor | null } {
  return {
    x: randomTensor(c.input, { requiresGrad }),
    w: randomTensor(c.weight, { requiresGrad }),
    b: c.bias === false ? null : randomTensor([c.weight[0]!], { requiresGrad }),
  };
}

describe('conv2d forward and gradients vs the float64 reference', () => {
  it('matches for every geometry (forward, input, weight and bias gradients)', () => {
    for (const c of cases) {
      const spec = specOf(c);
      const { x, w, b } = makeInputs(c);
      const y = F.conv2d(x, w, b, optionsOf(c));
      expect(y.shape, label(c)).toEqual(convOutputShape(spec));
      const xv = x.toFloat32Array();
      const wv = w.toFloat32Array();
      const [cout, cinG, kh, kw] = c.weight as [number, number, number, number];
      const [batch, , oh, ow] = y.shape as [number, number, number, number];
      expectWithin(y.toFloat32Array(), convForward(spec, xv, wv, b ? b.toFloat32Array() : null), cinG * kh * kw + 1, `forward ${label(c)}`);

      const r = randomTensor([...y.shape]);
      F.sum(F.mul(y, r)).backward();
      const rv = r.toFloat32Array();
      const coutG = cout / (c.groups ?? 1);
      expectWithin(x.grad!.toFloat32Array(), convBackwardInput(spec, rv, wv), coutG * kh * kw, `input gradient ${label(c)}`);
      expectWithin(w.grad!.toFloat32Array(), convBackwardWeight(spec, xv, rv), batch * oh * ow, `weight gradient ${label(c)}`);
      if (b) expectWithin(b.grad!.toFloat32Array(), convBackwardBias(spec, rv), batch * oh * ow, `bias gradient ${label(c)}`);
      expect(x.grad!.shape).toEqual(c.input);
      expect(w.grad!.shape).toEqual(c.weight);
    }
  });

  it('conv2dBackwardInput / conv2dBackwardWeight (the recorded backward ops) match the reference', () => {
    for (const c of cases.slice(0, 10)) {
      const spec = specOf(c);
      const outShape = convOutputShape(spec);
      const g = randomTensor(outShape);
      const x = randomTensor(c.input);
      const w = randomTensor(c.weight);
      const [cout, , kh, kw] = c.weight as [number, number, number, number];
      const di = conv2dBackwardInput(g, w, c.input, optionsOf(c));
      expect(di.shape).toEqual(c.input);
      expectWithin(di.toFloat32Array(), convBackwardInput(spec, g.toFloat32Array(), w.toFloat32Array()), (cout / (c.groups ?? 1)) * kh * kw, `backwardInput ${label(c)}`);
      const dw = conv2dBackwardWeight(x, g, c.weight, optionsOf(c));
      expect(dw.shape).toEqual(c.weight);
      expectWithin(dw.toFloat32Array(), convBackwardWeight(spec, x.toFloat32Array(), g.toFloat32Array()), outShape[0]! * outShape[2]! * outShape[3]!, `backwardWeight ${label(c)}`);
    }
  });

  it('computes only the gradients that are needed', () => {
    const c = cases[2]!;
    const x = randomTensor(c.input);
    const w = randomTensor(c.weight, { requiresGrad: true });
    const b = randomTensor([c.weight[0]!]);
    const y = F.conv2d(x, w, b, optionsOf(c));
    const r = randomTensor([...y.shape]);
    F.sum(F.mul(y, r)).backward();
    expect(x.grad).toBeNull();
    expect(b.grad).toBeNull();
    expectWithin(w.grad!.toFloat32Array(), convBackwardWeight(specOf(c), x.toFloat32Array(), r.toFloat32Array()), 200, 'weight only');

    const bOnly = randomTensor([c.weight[0]!], { requiresGrad: true });
    const y2 = F.conv2d(x, randomTensor(c.weight), bOnly, optionsOf(c));
    F.sum(F.mul(y2, r)).backward();
    expectWithin(bOnly.grad!.toFloat32Array(), convBackwardBias(specOf(c), r.toFloat32Array()), 200, 'bias only');

    const untracked = noGrad(() => F.conv2d(randomTensor(c.input, { requiresGrad: true }), w, null, optionsOf(c)));
    expect(untracked.requiresGrad).toBe(false);
  });

  it('the createGraph bias gradient (F.sum) agrees with the native bias kernel', () => {
    const c = cases[6]!;
    const { x, w, b } = makeInputs(c);
    const y = F.conv2d(x, w, b, optionsOf(c));
    const r = randomTensor([...y.shape]);
    const loss = F.sum(F.mul(y, r));
    const [fused] = grad(loss, [b!], { retainGraph: true });
    const [composite] = grad(loss, [b!], { createGraph: true });
    expectClose(composite!.toFloat32Array(), fused!.toFloat32Array(), { rtol: 1e-5, atol: 1e-5, label: 'bias gradient paths' });
  });
});

describe('conv2d finite-difference checks', () => {
  const small: Case[] = [
    { input: [2, 3, 5, 4], weight: [4, 3, 3, 2], padding: 1 },
    { input: [1, 4, 6, 5], weight: [2, 2, 3, 3], stride: 2, padding: 1, groups: 2 },
    { input: [2, 3, 5, 5], weight: [3, 1, 3, 3], stride: [2, 1], padding: [1, 2], groups: 3 },
    { input: [1, 2, 4, 4], weight: [3, 2, 1, 1], stride: 2 },
  ];

  it('gradcheck through input, weight and bias', () => {
    for (const c of small) {
      const { x, w, b } = makeInputs(c);
      gradcheck((xi, wi, bi) => F.conv2d(xi, wi, bi, optionsOf(c)), [x, w, b!]);
    }
  });

  it('gradgradcheck (second order) through input, weight and bias', () => {
    for (const c of small) {
      const { x, w, b } = makeInputs(c);
      // Bilinear: the second derivatives are the x–w cross terms.
      gradgradcheck((xi, wi, bi) => F.conv2d(xi, wi, bi, optionsOf(c)), [x, w, b!]);
      // With a curved function after it, d/d(gradOutput) of both backward ops and the bias path are exercised.
      gradgradcheck((xi, wi, bi) => F.tanh(F.conv2d(xi, wi, bi, optionsOf(c))), [x, w, b!]);
    }
  });

  it('the backward ops are themselves differentiable (first and second order)', () => {
    for (const c of small) {
      const outShape = convOutputShape(specOf(c));
      const g = randomTensor(outShape, { requiresGrad: true });
      const w = randomTensor(c.weight, { requiresGrad: true });
      const x = randomTensor(c.input, { requiresGrad: true });
      const backwardInput = (gi: Tensor, wi: Tensor) => conv2dBackwardInput(gi, wi, c.input, optionsOf(c));
      const backwardWeight = (xi: Tensor, gi: Tensor) => conv2dBackwardWeight(xi, gi, c.weight, optionsOf(c));
      gradcheck(backwardInput, [g, w]);
      gradgradcheck(backwardInput, [g, w]);
      gradgradcheck((gi, wi) => F.tanh(backwardInput(gi, wi)), [g, w]);
      gradcheck(backwardWeight, [x, g]);
      gradgradcheck(backwardWeight, [x, g]);
      gradgradcheck((xi, gi) => F.tanh(backwardWeight(xi, gi)), [x, g]);
    }
  });
});

// ---- Hessian-vector products (the L-MCL meta step) -----------------------------------------

function engineHvp(loss: () => Tensor, params: Tensor[], directions: Float32Array[]): { g: Float32Array[]; hv: Float32Array[] } {
  return tidy(() => {
    const gradients = grad(loss(), params, { createGraph: true });
    let total: Tensor | null = null;
    gradients.forEach((gi, index) => {
      const term = F.sum(F.mul(gi, tensor(directions[index]!, gi.shape)));
      total = total ? F.add(total, term) : term;
    });
    const hv = grad(total!, params, { allowUnused: true });
    return { g: gradients.map((t) => t.toFloat32Array()), hv: hv.map((t) => t.toFloat32Array()) };
  });
}

function expectHvp(actual: Float32Array, expected: Float64Array, name: string): void {
  let peak = 1;
  for (const value of expected) peak = Math.max(peak, Math.abs(value));
  expectClose(actual, expected, { rtol: 1e-3, atol: 2e-4 * peak, label: name });
}

const sameMasks = (a: Uint8Array[], b: Uint8Array[]): boolean => a.every((mask, i) => mask.every((bit, j) => bit === b[i]![j]));

describe('Hessian-vector products through ReLU conv networks', () => {
  it('two layers: H·v for all weights and biases matches float64 finite differences of the gradient', () => {
    const spec1: ConvSpec = { inputShape: [2, 3, 6, 5], weightShape: [4, 3, 3, 3], stride: [1, 1], padding: [1, 1], groups: 1 };
    const spec2: ConvSpec = { inputShape: [2, 4, 6, 5], weightShape: [4, 2, 3, 2], stride: [2, 2], padding: [1, 1], groups: 2 };
    const x = randomTensor([2, 3, 6, 5]);
    const params = [
      randomTensor([4, 3, 3, 3], { requiresGrad: true }), randomTensor([4], { requiresGrad: true, scale: 0.3 }),
      randomTensor([4, 2, 3, 2], { requiresGrad: true }), randomTensor([4], { requiresGrad: true, scale: 0.3 }),
    ];
    const outShape = convOutputShape(spec2);
    const r = randomTensor(outShape);
    const values = params.map((p) => p.toFloat32Array());
    const xv = x.toFloat32Array();
    const rv = r.toFloat32Array();
    const layersAt = (v: ArrayLike<number>[]): ReluConvLayer[] => [
      { spec: spec1, weight: v[0]!, bias: v[1]! },
      { spec: spec2, weight: v[2]!, bias: v[3]! },
    ];
    const flatGrad = (result: ReturnType<typeof reluConvNet>): Float64Array[] => result.gradLayers.flat();

    const at = reluConvNet(xv, layersAt(values), rv);
    let checked = false;
    for (let attempt = 0; attempt < 5 && !checked; attempt++) {
      const directions = values.map((v) => randomArray(v.length));
      const epsilon = 1e-6;
      const plus = reluConvNet(xv, layersAt(values.map((v, i) => axpy(v, epsilon, directions[i]!))), rv);
      const minus = reluConvNet(xv, layersAt(values.map((v, i) => axpy(v, -epsilon, directions[i]!))), rv);
      // Central differences are exact for this piecewise-quadratic loss while no ReLU switches.
      if (!sameMasks(plus.masks, at.masks) || !sameMasks(minus.masks, at.masks)) continue;
      const fd = flatGrad(plus).map((gp, i) => axpy(gp, -1, flatGrad(minus)[i]!).map((d) => d / (2 * epsilon)));
      const { g, hv } = engineHvp(
        () => F.sum(F.mul(F.relu(F.conv2d(F.relu(F.conv2d(x, params[0]!, params[1]!, { padding: 1 })), params[2]!, params[3]!, { stride: 2, padding: 1, groups: 2 })), r)),
        params, directions,
      );
      flatGrad(at).forEach((expected, i) => expectWithin(g[i]!, expected, 400, `gradient ${i}`));
      fd.forEach((expected, i) => expectHvp(hv[i]!, expected, `H·v block ${i}`));
      // The Hessian couples the layers: the weight blocks are not zero.
      expect(Math.max(...Array.from(fd[0]!, Math.abs))).toBeGreaterThan(1e-3);
      checked = true;
    }
    expect(checked, 'no direction kept every ReLU on the same side').toBe(true);
  });

  it('one layer: H·v with respect to input, weight and bias (x–w cross terms)', () => {
    const spec: ConvSpec = { inputShape: [2, 3, 7, 6], weightShape: [5, 3, 3, 3], stride: [2, 2], padding: [1, 1], groups: 1 };
    const params = [randomTensor([2, 3, 7, 6], { requiresGrad: true }), randomTensor([5, 3, 3, 3], { requiresGrad: true }), randomTensor([5], { requiresGrad: true, scale: 0.3 })];
    const r = randomTensor(convOutputShape(spec));
    const rv = r.toFloat32Array();
    const values = params.map((p) => p.toFloat32Array());
    const evaluate = (v: ArrayLike<number>[]) => reluConvNet(v[0]!, [{ spec, weight: v[1]!, bias: v[2]! }], rv);
    const blocks = (result: ReturnType<typeof reluConvNet>): Float64Array[] => [result.gradInput, ...result.gradLayers[0]!];
    const at = evaluate(values);
    let checked = false;
    for (let attempt = 0; attempt < 5 && !checked; attempt++) {
      const directions = values.map((v) => randomArray(v.length));
      const epsilon = 1e-6;
      const plus = evaluate(values.map((v, i) => axpy(v, epsilon, directions[i]!)));
      const minus = evaluate(values.map((v, i) => axpy(v, -epsilon, directions[i]!)));
      if (!sameMasks(plus.masks, at.masks) || !sameMasks(minus.masks, at.masks)) continue;
      const fd = blocks(plus).map((gp, i) => axpy(gp, -1, blocks(minus)[i]!).map((d) => d / (2 * epsilon)));
      const { g, hv } = engineHvp(() => F.sum(F.mul(F.relu(F.conv2d(params[0]!, params[1]!, params[2]!, { stride: 2, padding: 1 })), r)), params, directions);
      blocks(at).forEach((expected, i) => expectWithin(g[i]!, expected, 400, `gradient ${i}`));
      fd.forEach((expected, i) => expectHvp(hv[i]!, expected, `H·v block ${i}`));
      checked = true;
    }
    expect(checked, 'no direction kept every ReLU on the same side').toBe(true);
  });

  it('one layer, weight only: the Hessian is zero a.e. (like PyTorch, H·v is zeros, not an error), as finite differences confirm', () => {
    const x = randomTensor([1, 2, 5, 5]);
    const w = randomTensor([3, 2, 3, 3], { requiresGrad: true });
    const y = F.conv2d(x, w, null, { padding: 1 });
    const r = randomTensor([...y.shape]);
    const [g] = grad(F.sum(F.mul(F.relu(y), r)), [w], { createGraph: true });
    // reluMask(R, out) depends on w only through the mask (zero derivative), so H·v = 0.
    const [hv] = grad(F.sum(F.mul(g!, randomTensor([3, 2, 3, 3]))), [w]);
    for (const value of hv!.toFloat32Array()) expect(value).toBe(0);
    const spec: ConvSpec = { inputShape: [1, 2, 5, 5], weightShape: [3, 2, 3, 3], stride: [1, 1], padding: [1, 1], groups: 1 };
    const wv = w.toFloat32Array();
    const v = randomArray(wv.length);
    const zeroBias = new Float64Array(3);
    const plus = reluConvNet(x.toFloat32Array(), [{ spec, weight: axpy(wv, 1e-6, v), bias: zeroBias }], r.toFloat32Array());
    const minus = reluConvNet(x.toFloat32Array(), [{ spec, weight: axpy(wv, -1e-6, v), bias: zeroBias }], r.toFloat32Array());
    if (sameMasks(plus.masks, minus.masks)) {
      const fd = axpy(plus.gradLayers[0]![0], -1, minus.gradLayers[0]![0]);
      for (const value of fd) expect(Math.abs(value)).toBeLessThan(1e-9);
    }
  });
});

describe('conv2d bad input', () => {
  const x = randomTensor([2, 4, 6, 6]);
  const w = randomTensor([6, 4, 3, 3]);

  it('names conv2d and the shapes', () => {
    expect(() => F.conv2d(randomTensor([4, 6, 6]), w)).toThrow(/conv2d: argument 'input' must be 4-D \(\[N, C, H, W\]\), got shape \[4, 6, 6\]/);
    expect(() => F.conv2d(x, randomTensor([3, 3]))).toThrow("conv2d: argument 'weight' must be 4-D ([out, in/groups, kh, kw]), got shape [3, 3]");
    expect(() => F.conv2d(x, randomTensor([6, 3, 3, 3]))).toThrow(/conv2d: input \[2, 4, 6, 6\], weight \[6, 3, 3, 3\], groups 1: input channels \(4\) must equal weight.shape\[1\] × groups/);
    expect(() => F.conv2d(x, randomTensor([5, 2, 3, 3]), null, { groups: 2 })).toThrow(/conv2d: .*output channels \(5\) must be divisible by groups \(2\)/);
    expect(() => F.conv2d(x, randomTensor([6, 4, 3, 3]), null, { groups: 2 })).toThrow(/input channels \(4\) must equal weight.shape\[1\] × groups \(4 × 2\)/);
    expect(() => F.conv2d(x, w, randomTensor([5]))).toThrow(/conv2d: argument 'bias' must have shape \[6\].*got \[5\]/);
    expect(() => F.conv2d(x, w, randomTensor([6, 1]))).toThrow(/conv2d: argument 'bias' must have shape \[6\]/);
    expect(() => F.conv2d(x, randomTensor([6, 4, 7, 3]))).toThrow(/conv2d: input \[2, 4, 6, 6\], weight \[6, 4, 7, 3\], padding \[0, 0\]: the kernel is larger than the padded input/);
    expect(() => F.conv2d(randomTensor([0, 4, 6, 6]), w)).toThrow(/conv2d: input \[0, 4, 6, 6\] has an empty dimension/);
  });

  it('rejects bad options', () => {
    expect(() => F.conv2d(x, w, null, { dilation: 2 })).toThrow(/conv2d: dilation .*2.* is not supported \(only dilation 1\)/);
    expect(() => F.conv2d(x, w, null, { dilation: [1, 2] })).toThrow(/conv2d: dilation \[1,2\] is not supported/);
    expect(F.conv2d(x, w, null, { dilation: 1 }).shape).toEqual([2, 6, 4, 4]);
    expect(() => F.conv2d(x, w, null, { stride: 0 })).toThrow(/conv2d: stride must be an integer >= 1/);
    expect(() => F.conv2d(x, w, null, { stride: [1, 1, 1] as never })).toThrow(/conv2d: stride must be/);
    expect(() => F.conv2d(x, w, null, { padding: -1 })).toThrow(/conv2d: padding must be an integer >= 0/);
    expect(() => F.conv2d(x, w, null, { padding: 0.5 })).toThrow(/conv2d: padding/);
    expect(() => F.conv2d(x, w, null, { groups: 0 })).toThrow(/conv2d: groups must be a positive integer/);
    expect(() => F.conv2d(x, w, null, { pad: 1 } as never)).toThrow(/conv2d: unknown option 'pad'/);
    expect(() => F.conv2d(x, w, null, 3 as never)).toThrow(/conv2d: options must be an object/);
  });

  it('rejects non-tensors and disposed tensors', () => {
    expect(() => F.conv2d(x, [1, 2] as never)).toThrow(/conv2d: argument 'weight' must be a Tensor/);
    expect(() => F.conv2d(null as never, w)).toThrow(/conv2d: argument 'input' must be a Tensor/);
    expect(() => F.conv2d(x, w, 'b' as never)).toThrow(/conv2d: argument 'bias' must be a Tensor/);
    const gone = randomTensor([6, 4, 3, 3]);
    gone.dispose();
    expect(() => F.conv2d(x, gone)).toThrow(/conv2d \(argument 'weight'\).*was disposed/);
  });

  it('backward ops check gradOutput against the geometry', () => {
    expect(() => conv2dBackwardInput(randomTensor([2, 6, 3, 3]), w, [2, 4, 6, 6])).toThrow(/conv2dBackwardInput: gradOutput has shape \[2, 6, 3, 3\], but .* gives \[2, 6, 4, 4\]/);
    expect(() => conv2dBackwardWeight(x, randomTensor([2, 6, 4, 4]), [6, 4, 3])).toThrow(/conv2dBackwardWeight: weightShape must be 4 positive integers/);
  });
});

describe('conv2d determinism and memory', () => {
  it('gives the same bits twice (forward and gradients)', () => {
    const c: Case = { input: [2, 8, 9, 9], weight: [12, 4, 3, 3], stride: 2, padding: 1, groups: 2 };
    const { x, w, b } = makeInputs(c);
    const r = randomTensor(convOutputShape(specOf(c)));
    const run = () => tidy(() => {
      const [gx, gw, gb] = grad(F.sum(F.mul(F.conv2d(x, w, b, optionsOf(c)), r)), [x, w, b!]);
      return [F.conv2d(x, w, b, optionsOf(c)), gx!, gw!, gb!].map((t) => Array.from(t.toFloat32Array()));
    });
    expect(run()).toEqual(run());
  });

  it('backward inside tidy leaks nothing but the .grad tensors', () => {
    const c: Case = { input: [2, 4, 7, 7], weight: [6, 2, 3, 3], stride: 2, padding: 1, groups: 2 };
    const { x, w, b } = makeInputs(c);
    const before = memory().liveTensors;
    for (let pass = 0; pass < 2; pass++) {
      tidy(() => {
        const y = F.relu(F.conv2d(x, w, b, optionsOf(c)));
        F.sum(F.mul(y, randomTensor([...y.shape]))).backward();
      });
      expect(memory().liveTensors).toBe(before + 3);
    }
  });

  function hessianVectorRound(total: (loss: Tensor, hvTerm: Tensor) => Tensor): number {
    const x = randomTensor([2, 3, 6, 6]);
    const w1 = randomTensor([4, 3, 3, 3], { requiresGrad: true });
    const w2 = randomTensor([2, 4, 3, 3], { requiresGrad: true });
    const before = memory().liveTensors;
    tidy(() => {
      const y = F.conv2d(F.relu(F.conv2d(x, w1, null, { padding: 1 })), w2, null, { stride: 2 });
      const loss = F.sum(F.mul(F.relu(y), randomTensor([...y.shape])));
      const g = grad(loss, [w1, w2], { createGraph: true });
      const hvTerm = F.add(F.sum(F.mul(g[0]!, randomTensor([4, 3, 3, 3]))), F.sum(F.mul(g[1]!, randomTensor([2, 4, 3, 3]))));
      grad(total(loss, hvTerm), [w1, w2]);
    });
    return memory().liveTensors - before;
  }

  it('a Hessian-vector product inside tidy leaves no tensors behind when the second pass traverses the whole graph', () => {
    // loss·0 + ⟨g, v⟩: the second backward also walks (and so releases) the forward graph.
    expect(hessianVectorRound((loss, hvTerm) => F.add(F.mul(loss, 0), hvTerm))).toBe(0);
  });

  // Known core limitation (not conv2d's): grad(..., { createGraph: true }) retains the forward
  // graph, and forward nodes that the second backward does not reach (here conv2, relu, mul
  // after the first layer's activation) are never released, so their saved tensors stay alive
  // after tidy. This test flips to failing once the engine releases such nodes.
  it('a plain Hessian-vector product inside tidy leaves no tensors behind', () => {
    expect(hessianVectorRound((_, hvTerm) => hvTerm)).toBe(0);
  });
});
