// setFloat32MatmulPrecision (torch.set_float32_matmul_precision): 'high' lets the CUDA GEMM use
// TF32 tensor cores; the CPU always computes in FP32 and ignores it. On CUDA the TF32 result must
// differ from the FP32 one (the tensor cores really ran: random inputs have bits TF32 drops) and
// stay within TF32's error: |error| <= 2^-10 · Σ|a||b| per element (two operands each rounded to
// 10 mantissa bits, relative 2^-11 apiece) plus FP32 accumulation. The exact-input parity cases
// are in native/test/cases/gemm.cpp ("tf32 ...").
import { afterEach, describe, expect, it } from 'vitest';
import { F, getFloat32MatmulPrecision, setFloat32MatmulPrecision, tensor, engineInfo } from '../../src/index.js';
import { forEachDevice } from '../helpers/devices.js';
import { randomArray } from '../helpers/random.js';

afterEach(() => setFloat32MatmulPrecision('highest'));

describe('setFloat32MatmulPrecision', () => {
  it('defaults to highest, round-trips, is reported by engineInfo, and refuses what it does not implement', () => {
    expect(getFloat32MatmulPrecision()).toBe('highest');
    setFloat32MatmulPrecision('high');
    expect(getFloat32MatmulPrecision()).toBe('high');
    expect(engineInfo().matmulPrecision).toBe('high');
    setFloat32MatmulPrecision('highest');
    expect(engineInfo().matmulPrecision).toBe('highest');
    expect(() => setFloat32MatmulPrecision('medium' as never)).toThrow(/'medium' \(BF16 tensor cores\) is not implemented/);
    expect(() => setFloat32MatmulPrecision('fast' as never)).toThrow(/unknown matmul precision 'fast'/);
    expect(() => setFloat32MatmulPrecision(3 as never)).toThrow(/precision must be a string/);
    expect(getFloat32MatmulPrecision()).toBe('highest');
  });
});

forEachDevice('matmul under each float32 precision', (device) => {
  it(device === 'cpu' ? "'high' gives the FP32 bits on the CPU (ignored)" : "'high' uses TF32 tensor cores: not the FP32 bits, within TF32's error", () => {
    const m = 96, k = 160, n = 80;
    const aValues = randomArray(m * k), bValues = randomArray(k * n);
    const a = tensor(aValues, [m, k], { device }), b = tensor(bValues, [k, n], { device });
    const product = F.matmul(a, b);
    const fp32 = product.toFloat32Array();
    product.dispose();
    setFloat32MatmulPrecision('high');
    const highProduct = F.matmul(a, b);
    const high = highProduct.toFloat32Array();
    highProduct.dispose();
    a.dispose();
    b.dispose();
    if (device === 'cpu') {
      expect(Buffer.from(high.buffer).equals(Buffer.from(fp32.buffer))).toBe(true);
      return;
    }
    expect(Buffer.from(high.buffer).equals(Buffer.from(fp32.buffer))).toBe(false);
    let worst = 0;
    for (let i = 0; i < m; i += 1) {
      for (let j = 0; j < n; j += 1) {
        let magnitude = 0;
        for (let q = 0; q < k; q += 1) magnitude += Math.abs(aValues[i * k + q]! * bValues[q * n + j]!);
        const bound = 2 ** -10 * magnitude + 1e-6 * magnitude;
        worst = Math.max(worst, Math.abs(high[i * n + j]! - fp32[i * n + j]!) / bound);
      }
    }
    expect(worst).toBeLessThanOrEqual(1);
  });
});
