// Raw-addon tests of gemm (native/src/cpu/gemm.cpp) against the float64 reference in
// test/reference/gemm_reference.ts. Tolerance per element:
// |got - ref| <= 2e-5 * sqrt(k) * (1 + |ref|)   (inputs uniform in [-1, 1]).
// Each SIMD path is exercised by re-running this file in child processes with LMCL_CPU_KERNELS.
import { describe, expect, it } from 'vitest';
import { native } from '../../src/native/index.js';
import type { NativeStorage } from '../../src/native/index.js';
import { gemmReference } from '../reference/gemm_reference.js';
import { runOnEverySimdLevel } from '../helpers/simd_levels.js';

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

function check(m: number, n: number, k: number, ta: boolean, tb: boolean, alpha: number, beta: number, nanC = false): number {
  const a = random(m * k), b = random(k * n);
  const c = nanC ? new Float32Array(m * n).fill(Number.NaN) : random(m * n);
  const as = upload(a), bs = upload(b), cs = upload(c);
  addon.gemm(as, bs, cs, ta, tb, m, n, k, alpha, beta);
  const got = addon.download(cs, 0, m * n);
  const ref = gemmReference(a, b, c, ta, tb, m, n, k, alpha, beta);
  let worst = 0;
  const scale = 2e-5 * Math.sqrt(Math.max(1, k));
  for (let i = 0; i < ref.length; i++) {
    const bound = scale * (1 + Math.abs(ref[i]));
    const err = Math.abs(got[i] - ref[i]);
    if (!(err <= bound)) worst = Math.max(worst, Number.isFinite(err) ? err / bound : Infinity);
  }
  for (const s of [as, bs, cs]) addon.free(s);
  return worst;
}

const sizes: Array<[number, number, number]> = [
  [1, 1, 1], [1, 7, 33], [7, 1, 5], [7, 33, 97], [33, 97, 7], [97, 130, 33], [130, 97, 300], [16, 1024, 144],
  [64, 64, 576], [200, 33, 1], [3, 257, 520],
];

describe(`gemm vs float64 reference (simd ${addon.info().simd})`, () => {
  for (const [m, n, k] of sizes) {
    for (const ta of [false, true]) {
      for (const tb of [false, true]) {
        it(`m=${m} n=${n} k=${k} transposeA=${ta} transposeB=${tb}`, () => {
          expect(check(m, n, k, ta, tb, 1, 0)).toBe(0);
        });
      }
    }
  }
  it('alpha and beta variants', () => {
    for (const [alpha, beta] of [[1, 1], [0.5, -2], [-1.25, 0.75], [2, 0], [0, 0.5], [0, 0]]) {
      expect(check(37, 45, 29, false, true, alpha, beta)).toBe(0);
      expect(check(37, 45, 300, true, false, alpha, beta)).toBe(0);
    }
  });
  it('beta = 0 ignores NaN in C', () => {
    expect(check(19, 70, 23, false, false, 1, 0, true)).toBe(0);
    expect(check(64, 64, 600, true, true, 0.5, 0, true)).toBe(0);
    expect(check(9, 9, 4, false, false, 0, 0, true)).toBe(0);
  });
  it('k = 0 scales C by beta', () => {
    expect(check(5, 6, 0, false, false, 1, 0.5)).toBe(0);
  });
  it('large enough to be threaded, 1 and 2 threads', () => {
    for (const threads of [1, 2]) {
      addon.setNumThreads(threads);
      expect(check(150, 260, 270, false, false, 1, 0)).toBe(0);
      expect(check(300, 100, 200, true, true, 1, 1)).toBe(0);
    }
    addon.setNumThreads(2);
  });
  it('is deterministic (identical bits across runs)', () => {
    const m = 200, n = 190, k = 700;
    const as = upload(random(m * k)), bs = upload(random(k * n));
    const results: Float32Array[] = [];
    for (let r = 0; r < 2; r++) {
      const cs = addon.alloc('cpu', m * n * 4);
      addon.gemm(as, bs, cs, false, false, m, n, k, 1, 0);
      results.push(addon.download(cs, 0, m * n));
      addon.free(cs);
    }
    expect(Buffer.from(results[0].buffer).equals(Buffer.from(results[1].buffer))).toBe(true);
  });
});

describe('gemm argument checks', () => {
  const s = addon.alloc('cpu', 64);
  it('rejects negative sizes', () => {
    expect(() => addon.gemm(s, s, s, false, false, -1, 2, 2, 1, 0)).toThrow(/gemm: sizes must be >= 0/);
  });
  it('rejects storages that are too small, naming the operand', () => {
    const big = addon.alloc('cpu', 4 * 100);
    expect(() => addon.gemm(s, big, big, false, false, 10, 10, 10, 1, 0)).toThrow(/gemm: argument 'a' holds 16 floats but the op needs 100/);
    expect(() => addon.gemm(big, big, s, false, false, 10, 10, 10, 1, 0)).toThrow(/argument 'c'/);
  });
  it('rejects wrong argument types', () => {
    expect(() => (addon.gemm as unknown as (...a: unknown[]) => void)(s, s, s, 0, false, 1, 1, 1, 1, 0)).toThrow(/transposeA/);
    expect(() => (addon.gemm as unknown as (...a: unknown[]) => void)(s, s, s, false, false, 1, 1, 1.5, 1, 0)).toThrow(/'k' must be an integer/);
    expect(() => (addon.gemm as unknown as (...a: unknown[]) => void)(s, s)).toThrow(/expected 10 arguments/);
  });
});

runOnEverySimdLevel(import.meta.url, 'gemm');
