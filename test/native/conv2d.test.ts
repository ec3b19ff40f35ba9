// Raw-addon tests of the conv2d kernels (native/src/cpu/conv2d.cpp) against the float64
// direct-loop reference in test/reference/conv2d_reference.ts. Tolerance per element:
// |got - ref| <= 3e-5 * sqrt(terms) * (1 + |ref|), terms = number of products summed into it.
// Every SIMD path (avx512, avx2, portable) is exercised by re-running a subset of shapes in child
// node processes with LMCL_CPU_KERNELS set (the level is read once per process).
import { describe, expect, it } from 'vitest';
import { native } from '../../src/native/index.js';
import type { NativeStorage } from '../../src/native/index.js';
import { runOnEverySimdLevel } from '../helpers/simd_levels.js';
import { expectSameBitsAcrossRunsAndThreads } from '../helpers/determinism.js';
import {
  type Conv2dParams, conv2dBackwardBiasReference, conv2dBackwardInputReference, conv2dBackwardWeightReference,
  conv2dForwardReference, outSize, toParamArray,
} from '../reference/conv2d_reference.js';

const addon = native();

function random(count: number): Float32Array {
  const out = new Float32Array(count);
  for (let i = 0; i < count; i++) out[i] = Math.random() * 2 - 1;
  return out;
}

function upload(data: Float32Array): NativeStorage {
  const storage = addon.alloc('cpu', Math.max(4, data.length * 4));
  addon.upload(storage, data, 0);
  return storage;
}

function garbage(count: number): NativeStorage {
  const storage = addon.alloc('cpu', Math.max(4, count * 4));
  addon.fill(storage, Number.NaN, count);
  return storage;
}

function maxViolation(got: Float32Array, ref: Float64Array, terms: number): number {
  let worst = 0;
  const scale = 3e-5 * Math.sqrt(Math.max(1, terms));
  for (let i = 0; i < ref.length; i++) {
    const err = Math.abs(got[i] - ref[i]);
    const bound = scale * (1 + Math.abs(ref[i]));
    if (!(err <= bound)) worst = Math.max(worst, Number.isFinite(err) ? err / bound : Infinity);
  }
  return worst;
}

function shapeOf(batch: number, inChannels: number, inHeight: number, inWidth: number, outChannels: number,
  kernelHeight: number, kernelWidth: number, stride: [number, number], padding: [number, number], groups = 1): Conv2dParams {
  return { batch, inChannels, inHeight, inWidth, outChannels, kernelHeight, kernelWidth,
    strideHeight: stride[0], strideWidth: stride[1], paddingHeight: padding[0], paddingWidth: padding[1], groups };
}

export const shapes: Array<[string, Conv2dParams]> = [
  ['3x3 pad 1, batch 2', shapeOf(2, 3, 8, 8, 16, 3, 3, [1, 1], [1, 1])],
  ['batch 1, odd sizes', shapeOf(1, 5, 7, 9, 7, 3, 3, [1, 1], [1, 1])],
  ['non-square kernel and input', shapeOf(2, 4, 6, 11, 5, 2, 3, [1, 1], [0, 1])],
  ['stride 2 pad 1', shapeOf(2, 8, 9, 10, 12, 3, 3, [2, 2], [1, 1])],
  ['stride 2x1 pad 2', shapeOf(1, 3, 7, 6, 4, 3, 3, [2, 1], [2, 2])],
  ['pad 0, 5x5', shapeOf(2, 3, 9, 8, 6, 5, 5, [1, 1], [0, 0])],
  ['pad 2 > kernel-1', shapeOf(1, 2, 4, 5, 3, 2, 2, [1, 1], [2, 2])],
  ['groups 2', shapeOf(2, 6, 7, 7, 8, 3, 3, [1, 1], [1, 1], 2)],
  ['groups 2 stride 2', shapeOf(2, 4, 8, 8, 6, 3, 3, [2, 2], [1, 1], 2)],
  ['depthwise 3x3', shapeOf(2, 6, 9, 8, 6, 3, 3, [1, 1], [1, 1], 6)],
  ['depthwise 3x3 stride 2', shapeOf(2, 5, 9, 10, 5, 3, 3, [2, 2], [1, 1], 5)],
  ['depthwise multiplier 2', shapeOf(1, 3, 6, 6, 6, 3, 3, [1, 1], [1, 1], 3)],
  ['1x1', shapeOf(3, 20, 5, 7, 9, 1, 1, [1, 1], [0, 0])],
  ['1x1 stride 2', shapeOf(2, 16, 8, 8, 32, 1, 1, [2, 2], [0, 0])],
  ['wide channels 16->16 32x32', shapeOf(2, 16, 32, 32, 16, 3, 3, [1, 1], [1, 1])],
  ['64->64 8x8', shapeOf(2, 64, 8, 8, 64, 3, 3, [1, 1], [1, 1])],
  ['kernel = whole input', shapeOf(2, 3, 4, 4, 5, 4, 4, [1, 1], [0, 0])],
  // Compact (column-shift) layout, forward path (out channels per group >= 8) and the row-gather
  // weight-gradient kernel (avx512, out channels per group >= 24 and (in channels per group)*kh*kw
  // >= 64): odd sizes, row/column tails,
  // grid positions split into units, images grouped across thread chunks, groups, strides, padding.
  ['compact: 12->50 9x9 batch 5 (row and column tails)', shapeOf(5, 12, 9, 9, 50, 3, 3, [1, 1], [1, 1])],
  ['compact: batch 1, 17x17 (grid split into units)', shapeOf(1, 8, 17, 17, 32, 3, 3, [1, 1], [1, 1])],
  ['compact: stride 2 pad 2', shapeOf(3, 8, 11, 13, 24, 3, 3, [2, 2], [2, 2])],
  ['compact: stride 2x1 pad 0, 2x3 kernel', shapeOf(2, 12, 10, 9, 48, 2, 3, [2, 1], [0, 0])],
  ['compact: groups 2', shapeOf(3, 16, 7, 9, 64, 3, 3, [1, 1], [1, 1], 2)],
  ['compact: groups 2 stride 2', shapeOf(2, 8, 9, 9, 16, 3, 3, [2, 2], [1, 1], 2)],
  ['compact: stride 3, 2x2 kernel', shapeOf(2, 3, 11, 10, 8, 2, 2, [3, 3], [1, 1])],
  ['compact: pad 0, 5x5', shapeOf(2, 3, 9, 8, 24, 5, 5, [1, 1], [0, 0])],
  ['compact: 8x8 batch 5 (image units across thread chunks)', shapeOf(5, 16, 8, 8, 32, 3, 3, [1, 1], [1, 1])],
  ['stride 2 pad 0, batch 1, odd sizes', shapeOf(1, 5, 8, 7, 6, 3, 3, [2, 2], [0, 0])],
  ['stride 2, 4x4 kernel (two taps in every phase)', shapeOf(2, 3, 9, 9, 5, 4, 4, [2, 2], [1, 1])],
  ['1x1 stride 1 into 32 channels (input read in place)', shapeOf(3, 72, 5, 7, 32, 1, 1, [1, 1], [0, 0])],
];

export interface CheckResult { forward: number; input: number; weight: number; bias: number }

export function checkShape(p: Conv2dParams, withBias: boolean): CheckResult {
  const [oh, ow] = outSize(p);
  const cinG = p.inChannels / p.groups, coutG = p.outChannels / p.groups;
  const xCount = p.batch * p.inChannels * p.inHeight * p.inWidth;
  const wCount = p.outChannels * cinG * p.kernelHeight * p.kernelWidth;
  const yCount = p.batch * p.outChannels * oh * ow;
  const x = random(xCount), w = random(wCount), b = random(p.outChannels), dy = random(yCount);
  const xs = upload(x), ws = upload(w), bs = upload(b), dys = upload(dy);
  const ys = garbage(yCount), dxs = garbage(xCount), dws = garbage(wCount), dbs = garbage(p.outChannels);
  const params = toParamArray(p);
  addon.conv2dForward(xs, ws, withBias ? bs : null, ys, params);
  addon.conv2dBackwardInput(dys, ws, dxs, params);
  addon.conv2dBackwardWeight(xs, dys, dws, params);
  addon.conv2dBackwardBias(dys, dbs, params);
  const result = {
    forward: maxViolation(addon.download(ys, 0, yCount), conv2dForwardReference(p, x, w, withBias ? b : null),
      cinG * p.kernelHeight * p.kernelWidth),
    input: maxViolation(addon.download(dxs, 0, xCount), conv2dBackwardInputReference(p, dy, w),
      coutG * p.kernelHeight * p.kernelWidth),
    weight: maxViolation(addon.download(dws, 0, wCount), conv2dBackwardWeightReference(p, x, dy), p.batch * oh * ow),
    bias: maxViolation(addon.download(dbs, 0, p.outChannels), conv2dBackwardBiasReference(p, dy), p.batch * oh * ow),
  };
  for (const s of [xs, ws, bs, dys, ys, dxs, dws, dbs]) addon.free(s);
  return result;
}

const zero: CheckResult = { forward: 0, input: 0, weight: 0, bias: 0 };

describe(`conv2d kernels vs float64 reference (simd ${addon.info().simd})`, () => {
  for (const [name, p] of shapes) {
    it(`${name}: ${JSON.stringify(toParamArray(p))}`, () => {
      expect(checkShape(p, true)).toEqual(zero);
    });
  }
  it('forward without bias', () => {
    expect(checkShape(shapes[1][1], false).forward).toBe(0);
  });
  it('single thread gives the same results within tolerance', () => {
    addon.setNumThreads(1);
    try {
      expect(checkShape(shapes[3][1], true)).toEqual(zero);
    } finally {
      addon.setNumThreads(2);
    }
  });
});

/** Forward, backward input and backward weight of one shape, repeated and on 1 / 2 threads: the same bits. */
function expectDeterministicPasses(p: Conv2dParams, inChannels: number, inSize: number, outChannels: number): void {
  const [oh, ow] = outSize(p);
  const xCount = p.batch * inChannels * inSize * inSize, wCount = outChannels * inChannels * 9, yCount = p.batch * outChannels * oh * ow;
  const xs = upload(random(xCount)), ws = upload(random(wCount)), dys = upload(random(yCount));
  const run = (): Float32Array[] => {
    const ys = garbage(yCount), dxs = garbage(xCount), dws = garbage(wCount);
    const params = toParamArray(p);
    addon.conv2dForward(xs, ws, null, ys, params);
    addon.conv2dBackwardInput(dys, ws, dxs, params);
    addon.conv2dBackwardWeight(xs, dys, dws, params);
    const out = [addon.download(ys, 0, yCount), addon.download(dxs, 0, xCount), addon.download(dws, 0, wCount)];
    for (const s of [ys, dxs, dws]) addon.free(s);
    return out;
  };
  expectSameBitsAcrossRunsAndThreads(run);
  for (const s of [xs, ws, dys]) addon.free(s);
}

describe('conv2d determinism', () => {
  it('two runs and 1 or 2 threads give identical bits for every pass (the weight gradient splits the batch by shape only)', () => {
    expectDeterministicPasses(shapeOf(6, 8, 12, 12, 16, 3, 3, [1, 1], [1, 1]), 8, 12, 16);
  });
});

describe('conv2d determinism, compact layout and row-gather weight gradient', () => {
  it('two runs and 1 or 2 threads give identical bits for every pass (the weight gradient splits the batch by shape only)', () => {
    expectDeterministicPasses(shapeOf(7, 12, 9, 9, 48, 3, 3, [1, 1], [1, 1]), 12, 9, 48);
  });
  // The compact layout has no discarded columns: an Inf in the input only reaches the weight
  // gradients whose terms really multiply it (here kw = 0 never touches input column 7 of 8).
  it.runIf(addon.info().simd === 'avx512')('Inf in the input does not leak through discarded columns', () => {
    const p = shapeOf(2, 8, 8, 8, 32, 3, 3, [1, 1], [1, 1]);
    const x = random(2 * 8 * 64);
    x[3 * 8 + 7] = Number.POSITIVE_INFINITY; // image 0, channel 0, row 3, last column
    const dy = random(2 * 32 * 64);
    const xs = upload(x), dys = upload(dy), dws = garbage(32 * 8 * 9);
    addon.conv2dBackwardWeight(xs, dys, dws, toParamArray(p));
    const got = addon.download(dws, 0, 32 * 8 * 9);
    const ref = conv2dBackwardWeightReference(p, x, dy);
    for (let i = 0; i < got.length; i++) {
      const ci = Math.floor(i / 9) % 8, kw = i % 3;
      if (ci === 0 && kw > 0) continue; // these terms multiply the Inf
      expect(Number.isFinite(got[i])).toBe(true);
      expect(Math.abs(got[i] - ref[i])).toBeLessThanOrEqual(3e-5 * Math.sqrt(128) * (1 + Math.abs(ref[i])));
    }
    for (const s of [xs, dys, dws]) addon.free(s);
  });
});

describe('conv2d argument checks', () => {
  const p = shapeOf(2, 4, 6, 6, 8, 3, 3, [1, 1], [1, 1]);
  const params = toParamArray(p);
  const xs = addon.alloc('cpu', 2 * 4 * 36 * 4), ws = addon.alloc('cpu', 8 * 4 * 9 * 4);
  const ys = addon.alloc('cpu', 2 * 8 * 36 * 4), bs = addon.alloc('cpu', 8 * 4);
  it('rejects a params array of the wrong length', () => {
    expect(() => addon.conv2dForward(xs, ws, null, ys, params.slice(0, 11))).toThrow(/conv2dForward: params must hold 12/);
  });
  it('rejects groups that do not divide the channels', () => {
    const bad = [...params];
    bad[11] = 3;
    expect(() => addon.conv2dForward(xs, ws, null, ys, bad)).toThrow(/groups must divide/);
    expect(() => addon.conv2dBackwardWeight(xs, ys, ws, bad)).toThrow(/conv2dBackwardWeight/);
  });
  it('rejects storages that are too small', () => {
    const small = addon.alloc('cpu', 16);
    expect(() => addon.conv2dForward(small, ws, null, ys, params)).toThrow(/argument 'input' holds 4 floats but the op needs 288/);
    expect(() => addon.conv2dBackwardInput(ys, ws, small, params)).toThrow(/gradInput/);
    expect(() => addon.conv2dForward(xs, ws, small, ys, params)).toThrow(/bias/);
    expect(() => addon.conv2dBackwardBias(ys, small, params)).toThrow(/gradBias/);
  });
  it('rejects an output size below 1 and non-positive sizes', () => {
    const bad = [...params];
    bad[5] = 9; // kernel 9 > 6 + 2*1
    expect(() => addon.conv2dForward(xs, ws, null, ys, bad)).toThrow(/output size would be < 1/);
    const zeroBatch = [...params];
    zeroBatch[0] = 0;
    expect(() => addon.conv2dForward(xs, ws, null, ys, zeroBatch)).toThrow(/sizes must be >= 1/);
    const badStride = [...params];
    badStride[7] = 0;
    expect(() => addon.conv2dForward(xs, ws, null, ys, badStride)).toThrow(/stride/);
    const badPad = [...params];
    badPad[9] = -1;
    expect(() => addon.conv2dForward(xs, ws, null, ys, badPad)).toThrow(/padding/);
  });
  it('rejects wrong argument types and counts', () => {
    expect(() => (addon.conv2dForward as unknown as (...a: unknown[]) => void)(xs, ws, null, ys)).toThrow(/expected 5 arguments/);
    expect(() => addon.conv2dForward(xs, ws, null, ys, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 1.5] as number[])).toThrow(/params/);
  });
});

runOnEverySimdLevel(import.meta.url, 'conv2d');
