// PyTorch interop of safetensors files: every dtype a torch state dict holds is read (into
// float32, checked against values computed by hand from the bit patterns), corrupt files are
// errors naming the tensor, num_batches_tracked is written as int64, and foreign state-dict
// names (the authors' reference models) load through the alias table.
//
// Files are built by a tiny writer in this test (not by lmcl's encoder and never by Python), so
// the reader is checked against the format itself.
import { describe, expect, it } from 'vitest';
import { decodeSafetensors, encodeSafetensors } from '../../src/io/safetensors.js';

type RawTensor = { dtype: string; shape: number[]; bytes: Uint8Array };

/** A minimal safetensors writer: u64 header length, JSON header, raw bytes (no padding). */
function writeRaw(tensors: Record<string, RawTensor>, metadata?: Record<string, string>): Buffer {
  const header: Record<string, unknown> = {};
  if (metadata) header.__metadata__ = metadata;
  let offset = 0;
  for (const [name, tensor] of Object.entries(tensors)) {
    header[name] = { dtype: tensor.dtype, shape: tensor.shape, data_offsets: [offset, offset + tensor.bytes.length] };
    offset += tensor.bytes.length;
  }
  const json = Buffer.from(JSON.stringify(header), 'utf8');
  const out = Buffer.alloc(8 + json.length + offset);
  out.writeBigUInt64LE(BigInt(json.length), 0);
  json.copy(out, 8);
  let cursor = 8 + json.length;
  for (const tensor of Object.values(tensors)) {
    out.set(tensor.bytes, cursor);
    cursor += tensor.bytes.length;
  }
  return out;
}

/** A seeded xorshift32 stream: fresh values per test run would make failures unreproducible. */
function randomBits(seed: number): () => number {
  let state = seed >>> 0 || 1;
  return () => {
    state ^= state << 13;
    state >>>= 0;
    state ^= state >>> 17;
    state ^= state << 5;
    state >>>= 0;
    return state;
  };
}

function littleEndian(count: number, bytesPerElement: number, put: (view: DataView, index: number) => void): Uint8Array {
  const bytes = new Uint8Array(count * bytesPerElement);
  const view = new DataView(bytes.buffer);
  for (let index = 0; index < count; index += 1) put(view, index);
  return bytes;
}

/** The value of an IEEE binary16 bit pattern, from the definition (sign · 2^(e−15) · 1.m, or subnormal). */
function halfValue(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exponent = (bits >> 10) & 0x1f;
  const mantissa = bits & 0x3ff;
  if (exponent === 0x1f) return mantissa === 0 ? sign * Infinity : Number.NaN;
  if (exponent === 0) return sign * (mantissa / 1024) * 2 ** -14;
  return sign * (1 + mantissa / 1024) * 2 ** (exponent - 15);
}

/** The value of a bfloat16 bit pattern, from the definition (8-bit exponent, 7-bit mantissa). */
function bfloat16Value(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exponent = (bits >> 7) & 0xff;
  const mantissa = bits & 0x7f;
  if (exponent === 0xff) return mantissa === 0 ? sign * Infinity : Number.NaN;
  if (exponent === 0) return sign * (mantissa / 128) * 2 ** -126;
  return sign * (1 + mantissa / 128) * 2 ** (exponent - 127);
}

function expectValues(actual: Float32Array, expected: ArrayLike<number>): void {
  expect(actual).toBeInstanceOf(Float32Array);
  expect(actual.length).toBe(expected.length);
  for (let index = 0; index < expected.length; index += 1) {
    const want = expected[index]!;
    if (Number.isNaN(want)) expect(actual[index], `index ${index}`).toBeNaN();
    else expect(Object.is(actual[index], want), `index ${index}: ${actual[index]} vs ${want}`).toBe(true); // -0 is not 0
  }
}

describe('safetensors: every dtype of a torch state dict reads into float32', () => {
  const seed = 0x5eed1234;
  const count = 257;

  it('F16: every bit pattern class (normal, subnormal, ±0, ±Inf, NaN) and random patterns, exactly', () => {
    const next = randomBits(seed);
    const special = [0x0000, 0x8000, 0x0001, 0x03ff, 0x0400, 0x3c00, 0xc000, 0x3555, 0x7bff, 0xfbff, 0x7c00, 0xfc00, 0x7e00, 0x7c01];
    const patterns = [...special, ...Array.from({ length: count }, () => next() & 0xffff)];
    const bytes = littleEndian(patterns.length, 2, (view, i) => view.setUint16(2 * i, patterns[i]!, true));
    const { tensors, dtypes } = decodeSafetensors(writeRaw({ h: { dtype: 'F16', shape: [patterns.length], bytes } }));
    expect(dtypes.get('h')).toBe('F16');
    expectValues(tensors.get('h')!.data, patterns.map(halfValue));
    // Hand-checked anchors: 1, -2, 1/3 rounded to half, the largest half, the smallest subnormal.
    const data = tensors.get('h')!.data;
    expect([data[5], data[6], data[7], data[8], data[2]]).toEqual([1, -2, 0.333251953125, 65504, 2 ** -24]);
    expect(Object.is(data[1], -0)).toBe(true);
  });

  it('BF16: random patterns and specials, exactly', () => {
    const next = randomBits(seed + 1);
    const special = [0x0000, 0x8000, 0x0001, 0x3f80, 0xc000, 0x7f7f, 0x7f80, 0xff80, 0x7fc0];
    const patterns = [...special, ...Array.from({ length: count }, () => next() & 0xffff)];
    const bytes = littleEndian(patterns.length, 2, (view, i) => view.setUint16(2 * i, patterns[i]!, true));
    const { tensors } = decodeSafetensors(writeRaw({ b: { dtype: 'BF16', shape: [patterns.length], bytes } }));
    expectValues(tensors.get('b')!.data, patterns.map(bfloat16Value));
    expect(tensors.get('b')!.data[3]).toBe(1);
    expect(tensors.get('b')!.data[5]).toBe(3.3895313892515355e38); // the largest finite bfloat16
  });

  it('F64: random doubles round to the nearest float32', () => {
    const next = randomBits(seed + 2);
    const values = [0, -0, 1 / 3, 1e-50, -1e300, Math.PI, ...Array.from({ length: count }, () => (next() / 2 ** 32 - 0.5) * 2 ** ((next() % 40) - 20))];
    const bytes = littleEndian(values.length, 8, (view, i) => view.setFloat64(8 * i, values[i]!, true));
    const { tensors } = decodeSafetensors(writeRaw({ d: { dtype: 'F64', shape: [values.length], bytes } }));
    expectValues(tensors.get('d')!.data, values.map(Math.fround));
    expect(tensors.get('d')!.data[3]).toBe(0); // 1e-50 underflows float32
    expect(tensors.get('d')!.data[4]).toBe(-Infinity); // -1e300 overflows it
  });

  it('F32: bytes are copied bit for bit (NaN payload included)', () => {
    const next = randomBits(seed + 3);
    const bits = [0x7fc12345, 0x80000000, 0x00000001, ...Array.from({ length: count }, () => next())];
    const bytes = littleEndian(bits.length, 4, (view, i) => view.setUint32(4 * i, bits[i]!, true));
    const data = decodeSafetensors(writeRaw({ f: { dtype: 'F32', shape: [bits.length], bytes } })).tensors.get('f')!.data;
    expect(Array.from(new Uint32Array(data.buffer, data.byteOffset, data.length))).toEqual(bits);
  });

  it('I64: safe integers (num_batches_tracked-like and random), beyond ±(2^53 − 1) is an error naming the tensor', () => {
    const next = randomBits(seed + 4);
    const values = [0n, 1n, -1n, 78_200n, 2n ** 24n, 2n ** 24n + 1n, BigInt(Number.MAX_SAFE_INTEGER), -BigInt(Number.MAX_SAFE_INTEGER),
      ...Array.from({ length: count }, () => BigInt(next() % 100_000) - 50_000n)];
    const bytes = littleEndian(values.length, 8, (view, i) => view.setBigInt64(8 * i, values[i]!, true));
    const { tensors, dtypes } = decodeSafetensors(writeRaw({ 'bn1.num_batches_tracked': { dtype: 'I64', shape: [values.length], bytes } }));
    expect(dtypes.get('bn1.num_batches_tracked')).toBe('I64');
    expectValues(tensors.get('bn1.num_batches_tracked')!.data, values.map((value) => Math.fround(Number(value))));
    expect(tensors.get('bn1.num_batches_tracked')!.data[5]).toBe(2 ** 24); // 2^24 + 1 rounds (float32 has 24 bits)

    const huge = littleEndian(2, 8, (view, i) => view.setBigInt64(8 * i, i === 0 ? 3n : 2n ** 60n, true));
    expect(() => decodeSafetensors(writeRaw({ 'layer1.0.bn1.num_batches_tracked': { dtype: 'I64', shape: [2], bytes: huge } }), 'x.safetensors'))
      .toThrow(/safetensors 'x\.safetensors': tensor 'layer1\.0\.bn1\.num_batches_tracked' \(I64\) holds 1152921504606846976 at index 1, beyond the safe-integer range/);
  });

  it('I32, U8 and BOOL', () => {
    const next = randomBits(seed + 5);
    const ints = [0, -1, 2 ** 31 - 1, -(2 ** 31), 16_777_217, ...Array.from({ length: count }, () => next() | 0)];
    const bytes32 = littleEndian(ints.length, 4, (view, i) => view.setInt32(4 * i, ints[i]!, true));
    const u8 = Array.from({ length: count }, () => next() & 0xff);
    const bools = Array.from({ length: count }, () => next() & 1);
    const { tensors, dtypes } = decodeSafetensors(writeRaw({
      i: { dtype: 'I32', shape: [ints.length], bytes: bytes32 },
      u: { dtype: 'U8', shape: [count], bytes: Uint8Array.from(u8) },
      mask: { dtype: 'BOOL', shape: [count], bytes: Uint8Array.from(bools) },
    }));
    expectValues(tensors.get('i')!.data, ints.map(Math.fround));
    expect(tensors.get('i')!.data[4]).toBe(16_777_216);
    expectValues(tensors.get('u')!.data, u8);
    expectValues(tensors.get('mask')!.data, bools);
    expect([...dtypes.values()]).toEqual(['I32', 'U8', 'BOOL']);
    expect(() => decodeSafetensors(writeRaw({ mask: { dtype: 'BOOL', shape: [3], bytes: Uint8Array.from([0, 1, 7]) } })))
      .toThrow(/tensor 'mask' \(BOOL\) is BOOL but holds the byte 7 at index 2 \(expected 0 or 1\)/);
  });

  it('mixed dtypes in one file, at unaligned offsets, keep file order and shapes', () => {
    const { tensors } = decodeSafetensors(writeRaw({
      flag: { dtype: 'BOOL', shape: [1], bytes: Uint8Array.from([1]) },
      half: { dtype: 'F16', shape: [1, 1], bytes: Uint8Array.from([0x00, 0x3c]) },
      count: { dtype: 'I64', shape: [], bytes: littleEndian(1, 8, (view) => view.setBigInt64(0, 42n, true)) },
    }));
    expect([...tensors].map(([name, entry]) => [name, entry.shape, Array.from(entry.data)])).toEqual([
      ['flag', [1], [1]], ['half', [1, 1], [1]], ['count', [], [42]],
    ]);
  });
});

describe('safetensors: corrupt files are errors naming the problem and the tensor', () => {
  const f16 = (count: number): RawTensor => ({ dtype: 'F16', shape: [count], bytes: new Uint8Array(2 * count) });
  const withHeader = (header: unknown, dataBytes: number): Buffer => {
    const json = Buffer.from(JSON.stringify(header), 'utf8');
    const out = Buffer.alloc(8 + json.length + dataBytes);
    out.writeBigUInt64LE(BigInt(json.length), 0);
    json.copy(out, 8);
    return out;
  };
  const cases: [string, () => Buffer, RegExp][] = [
    ['an unknown dtype', () => writeRaw({ 'fc.weight': { dtype: 'Q4', shape: [2], bytes: new Uint8Array(2) } }), /tensor 'fc\.weight' has dtype "Q4", which lmcl does not read/],
    ['a truncated file', () => writeRaw({ 'conv1.weight': f16(8) }).subarray(0, -3), /tensor 'conv1\.weight' has data_offsets \[0, 16\] beyond the data section \(13 bytes\)/],
    ['overlapping data_offsets', () => withHeader({ a: { dtype: 'I64', shape: [1], data_offsets: [0, 8] }, b: { dtype: 'I64', shape: [1], data_offsets: [4, 12] } }, 12),
      /tensor 'b' \(data_offsets \[4, 12\]\) overlaps tensor 'a'/],
    ['out-of-range data_offsets', () => withHeader({ 'bn1.running_var': { dtype: 'F64', shape: [2], data_offsets: [0, 16] } }, 8), /tensor 'bn1\.running_var' has data_offsets \[0, 16\] beyond the data section \(8 bytes\)/],
    ['negative data_offsets', () => withHeader({ a: { dtype: 'U8', shape: [1], data_offsets: [-1, 0] } }, 1), /tensor 'a' has bad data_offsets \[-1,0\]/],
    ['a header length beyond the file', () => { const b = writeRaw({ a: f16(2) }); b.writeBigUInt64LE(BigInt(b.length), 0); return b; }, /header length \d+ goes beyond the end of the file/],
    ['a shape/byte-size mismatch for the dtype', () => withHeader({ 'fc.bias': { dtype: 'BF16', shape: [3], data_offsets: [0, 8] } }, 8),
      /tensor 'fc\.bias' has shape \[3\] \(6 bytes as BF16\) but data_offsets \[0, 8\] span 8 bytes/],
  ];
  for (const [what, make, pattern] of cases) {
    it(what, () => {
      expect(() => decodeSafetensors(make(), 'foreign.safetensors')).toThrow(/^safetensors 'foreign\.safetensors': /);
      expect(() => decodeSafetensors(make(), 'foreign.safetensors')).toThrow(pattern);
    });
  }
});

describe('safetensors: writing num_batches_tracked as int64, like PyTorch', () => {
  it('stores it as I64 (8 bytes, little-endian) and reads it back', () => {
    const tensors = new Map([
      ['bn1.weight', { shape: [2], data: new Float32Array([1, 0.5]) }],
      ['bn1.num_batches_tracked', { shape: [], data: new Float32Array([78_200]) }],
      ['num_batches_tracked', { shape: [], data: new Float32Array([3]) }],
    ]);
    const bytes = encodeSafetensors(tensors);
    const headerLength = Number(bytes.readBigUInt64LE(0));
    const header = JSON.parse(bytes.subarray(8, 8 + headerLength).toString('utf8')) as Record<string, { dtype: string; data_offsets: [number, number] }>;
    expect(header['bn1.weight']!.dtype).toBe('F32');
    expect(header['bn1.num_batches_tracked']).toEqual({ dtype: 'I64', shape: [], data_offsets: [8, 16] });
    expect(header.num_batches_tracked!.dtype).toBe('I64');
    expect(bytes.readBigInt64LE(8 + headerLength + 8)).toBe(78_200n);
    const decoded = decodeSafetensors(bytes);
    expect(decoded.tensors.get('bn1.num_batches_tracked')).toEqual({ shape: [], data: new Float32Array([78_200]) });
    expect(decoded.dtypes.get('bn1.num_batches_tracked')).toBe('I64');
  });

  it('refuses a non-integer count instead of truncating it; dtypes can force F32', () => {
    const tensors = new Map([['bn.num_batches_tracked', { shape: [], data: new Float32Array([2.5]) }]]);
    expect(() => encodeSafetensors(tensors)).toThrow(/tensor 'bn\.num_batches_tracked' is written as I64 but holds 2\.5 at index 0/);
    const forced = decodeSafetensors(encodeSafetensors(tensors, undefined, { dtypes: { 'bn.num_batches_tracked': 'F32' } }));
    expect(forced.dtypes.get('bn.num_batches_tracked')).toBe('F32');
    expect(forced.tensors.get('bn.num_batches_tracked')!.data[0]).toBe(2.5);
  });

  it('reading accepts the count as F32 too (files written before, or by other tools)', () => {
    const bytes = writeRaw({ 'bn.num_batches_tracked': { dtype: 'F32', shape: [], bytes: littleEndian(1, 4, (view) => view.setFloat32(0, 9, true)) } });
    expect(decodeSafetensors(bytes).tensors.get('bn.num_batches_tracked')!.data[0]).toBe(9);
  });
});
