// PyTorch interop of safetensors files: every dtype a torch state dict holds is read (into
// float32, checked against values computed by hand from the bit patterns), corrupt files are
// errors naming the tensor, num_batches_tracked is written as int64, and foreign state-dict
// names (the authors' reference models) load through the alias table.
//
// Files are built by a tiny writer in this test (not by lmcl's encoder and never by Python), so
// the reader is checked against the format itself.
import { afterAll, describe, expect, it } from 'vitest';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import '../../src/index.js';
import { decodeSafetensors, encodeSafetensors } from '../../src/io/safetensors.js';
import { loadStateDictInto } from '../../src/io/load_state_dict.js';
import { NAME_ALIASES } from '../../src/io/aliases.js';
import { createModel } from '../../src/models/registry.js';
import { manualSeed } from '../../src/tensor/random.js';
import type { StateDict } from '../../src/nn/module.js';

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

  it('a count that is not an integer (a corrupted state) stays F32, bit-exact; forcing I64 on it is an error', () => {
    for (const odd of [2.5, Number.NaN]) {
      const tensors = new Map([['bn.num_batches_tracked', { shape: [], data: new Float32Array([odd]) }]]);
      const decoded = decodeSafetensors(encodeSafetensors(tensors));
      expect(decoded.dtypes.get('bn.num_batches_tracked')).toBe('F32');
      expect(Object.is(decoded.tensors.get('bn.num_batches_tracked')!.data[0], Math.fround(odd))).toBe(true);
    }
    const tensors = new Map([['bn.num_batches_tracked', { shape: [], data: new Float32Array([2.5]) }]]);
    expect(() => encodeSafetensors(tensors, undefined, { dtypes: { 'bn.num_batches_tracked': 'I64' } }))
      .toThrow(/tensor 'bn\.num_batches_tracked' is written as I64 but holds 2\.5 at index 0/);
    const integral = new Map([['bn.num_batches_tracked', { shape: [], data: new Float32Array([4]) }]]);
    expect(decodeSafetensors(encodeSafetensors(integral, undefined, { dtypes: { 'bn.num_batches_tracked': 'F32' } })).dtypes.get('bn.num_batches_tracked')).toBe('F32');
  });

  it('reading accepts the count as F32 too (files written before, or by other tools)', () => {
    const bytes = writeRaw({ 'bn.num_batches_tracked': { dtype: 'F32', shape: [], bytes: littleEndian(1, 4, (view) => view.setFloat32(0, 9, true)) } });
    expect(decodeSafetensors(bytes).tensors.get('bn.num_batches_tracked')!.data[0]).toBe(9);
  });
});

// ---- loading state dicts into models -------------------------------------------------------

const work = fs.mkdtempSync(path.join(os.tmpdir(), 'lmcl-interop-'));
afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

/** A state dict as torch would save it: float32 tensors, int64 batch counters; names renamed by `rename`. */
function torchStyleFile(file: string, state: StateDict, rename: (name: string) => string | null = (name) => name): string {
  const raw: Record<string, RawTensor> = {};
  for (const [name, entry] of state) {
    const foreign = rename(name);
    if (foreign === null) continue;
    raw[foreign] = name.endsWith('num_batches_tracked')
      ? { dtype: 'I64', shape: entry.shape, bytes: littleEndian(entry.data.length, 8, (view, i) => view.setBigInt64(8 * i, BigInt(entry.data[i]!), true)) }
      : { dtype: 'F32', shape: entry.shape, bytes: littleEndian(entry.data.length, 4, (view, i) => view.setFloat32(4 * i, entry.data[i]!, true)) };
  }
  const target = path.join(work, file);
  fs.writeFileSync(target, writeRaw(raw, { format: 'pt' }));
  return target;
}

function expectSameState(actual: StateDict, expected: StateDict): void {
  expect([...actual.keys()]).toEqual([...expected.keys()]);
  for (const [name, entry] of expected) {
    expect(actual.get(name)!.shape, name).toEqual(entry.shape);
    // Byte comparison: toEqual over millions of floats is slow, and this is bit-exact anyway.
    const got = actual.get(name)!.data;
    expect(Buffer.from(got.buffer, got.byteOffset, got.byteLength).equals(Buffer.from(entry.data.buffer, entry.data.byteOffset, entry.data.byteLength)), name).toBe(true);
  }
}

const fashion = { numClasses: 10, inChannels: 1, imageSize: 28 };

/** A trained-looking source: seeded init, and batch counters that are not 0. */
function sourceState(architecture: string, options: { auxiliary?: boolean; numClasses?: number } = {}): StateDict {
  manualSeed(11);
  const model = createModel(architecture, { ...fashion, ...options });
  try {
    const state = model.stateDict();
    for (const [name, entry] of state) if (name.endsWith('num_batches_tracked')) entry.data[0] = 391;
    return state;
  } finally {
    model.dispose();
  }
}

describe('loadStateDictInto: the authors\' names through the alias table', () => {
  it('the table is documented: every rule names its architectures, origin, and is anchored', () => {
    expect(NAME_ALIASES.length).toBeGreaterThanOrEqual(2);
    for (const alias of NAME_ALIASES) {
      expect(alias.architectures.length).toBeGreaterThan(0);
      expect(alias.origin).toMatch(/winycg\//);
      expect(alias.foreign.source.startsWith('^') && alias.foreign.source.endsWith('$')).toBe(true);
    }
  });

  it("a plain CIFAR ResNet saved with the reference's head name classifier.* loads into fc.*", () => {
    const state = sourceState('resnet8');
    const file = torchStyleFile('resnet8-classifier.safetensors', state, (name) => name.replace(/^fc\./, 'classifier.'));
    expect(decodeSafetensors(fs.readFileSync(file)).tensors.has('classifier.weight')).toBe(true);
    manualSeed(99); // a different init, so every value must come from the file
    const model = createModel('resnet8', fashion);
    try {
      const report = loadStateDictInto(model, file);
      expect(report.renamed).toEqual([['classifier.weight', 'fc.weight'], ['classifier.bias', 'fc.bias']]);
      expect(report).toMatchObject({ missingKeys: [], unexpectedKeys: [], shapeMismatches: [], converted: {}, loaded: state.size });
      expectSameState(model.stateDict(), state);
    } finally {
      model.dispose();
    }
  });

  it("L-MCL's HCGNet with its blocks directly under backbone. loads into backbone.features.*", () => {
    const state = sourceState('hcgnet_a1', { auxiliary: true });
    const foreignName = (name: string): string => name.replace(/^backbone\.features\.(HybridBlock\d|Transition\d|norm5)\./, 'backbone.$1.');
    const file = torchStyleFile('hcgnet-lmcl.safetensors', state, foreignName);
    const names = [...decodeSafetensors(fs.readFileSync(file)).tensors.keys()];
    expect(names).toContain('backbone.features.conv0.weight'); // conv0 stays under features in the reference too
    expect(names).toContain('backbone.HybridBlock1.SMG1.conv1_1x1.norm.weight');
    expect(names).toContain('backbone.norm5.running_mean');
    manualSeed(98);
    const model = createModel('hcgnet_a1', { ...fashion, auxiliary: true });
    try {
      const report = loadStateDictInto(model, file);
      expect(report.renamed.length).toBe([...state.keys()].filter((name) => foreignName(name) !== name).length);
      expect(report.renamed).toContainEqual(['backbone.Transition2.fcall.bias', 'backbone.features.Transition2.fcall.bias']);
      expect(report.missingKeys).toEqual([]);
      expect(report.unexpectedKeys).toEqual([]);
      expectSameState(model.stateDict(), state);
    } finally {
      model.dispose();
    }
  });

  it('lmcl names are never renamed (HCGNet\'s own head is classifier.*), and two names for one tensor are an error', () => {
    const hcg = sourceState('hcgnet_a1');
    const plain = createModel('hcgnet_a1', fashion);
    try {
      const report = loadStateDictInto(plain, torchStyleFile('hcgnet-plain.safetensors', hcg));
      expect(report.renamed).toEqual([]);
      expectSameState(plain.stateDict(), hcg);
    } finally {
      plain.dispose();
    }
    const state = sourceState('resnet8');
    state.set('classifier.weight', state.get('fc.weight')!);
    const model = createModel('resnet8', fashion);
    try {
      expect(() => loadStateDictInto(model, torchStyleFile('both-heads.safetensors', state)))
        .toThrow(/tensors 'fc\.weight' and 'classifier\.weight' both map to resnet8's 'fc\.weight'/);
    } finally {
      model.dispose();
    }
  });
});

describe('loadStateDictInto: strict by default, non-strict reports', () => {
  it('strict: missing, unexpected and mis-shaped tensors are one Error listing the first few with counts; nothing is written', () => {
    const state = sourceState('resnet8', { numClasses: 5 }); // a 5-class head
    const file = torchStyleFile('misfit.safetensors', state, (name) => (name.startsWith('layer1.') ? null : name.replace(/^bn1\./, 'stem_bn.')));
    const model = createModel('resnet8', fashion);
    const before = model.stateDict();
    const dropped = [...state.keys()].filter((name) => name.startsWith('layer1.'));
    try {
      let message = '';
      try {
        loadStateDictInto(model, file);
      } catch (error) {
        message = (error as Error).message;
      }
      expect(message).toMatch(/misfit\.safetensors' does not fit resnet8 \(strict loading\)/);
      // In the model's order: the renamed stem BN first, then layer1.
      expect(message).toContain(`${dropped.length + 5} missing (in the model, not in the file): bn1.weight, bn1.bias, bn1.running_mean, bn1.running_var, bn1.num_batches_tracked, ... and ${dropped.length} more`);
      expect(message).toContain('5 unexpected (in the file, not in the model): stem_bn.weight, stem_bn.bias, stem_bn.running_mean, stem_bn.running_var, stem_bn.num_batches_tracked');
      expect(message).toContain('2 shape mismatches: fc.weight: file [5, 64], model [10, 64], fc.bias: file [5], model [10]');
      expectSameState(model.stateDict(), before);
    } finally {
      model.dispose();
    }
  });

  it('non-strict: loads what fits (a 100-class file into a 10-class model: all but the head) and returns the lists', () => {
    const state = sourceState('resnet8', { numClasses: 100 });
    state.set('extra.weight', { shape: [1], data: new Float32Array([1]) });
    const file = torchStyleFile('other-classes.safetensors', state, (name) => name.replace(/^fc\./, 'classifier.'));
    const model = createModel('resnet8', fashion);
    const initialHead = model.stateDict().get('fc.weight')!;
    try {
      const report = loadStateDictInto(model, file, { strict: false });
      expect(report.missingKeys).toEqual([]);
      expect(report.unexpectedKeys).toEqual(['extra.weight']);
      expect(report.shapeMismatches.map((m) => [m.name, m.fileName, m.fileShape, m.modelShape])).toEqual([
        ['fc.weight', 'classifier.weight', [100, 64], [10, 64]], ['fc.bias', 'classifier.bias', [100], [10]],
      ]);
      expect(report.loaded).toBe(state.size - 3);
      const after = model.stateDict();
      expect(after.get('fc.weight')).toEqual(initialHead);
      expect(after.get('layer3.0.conv2.weight')!.data).toEqual(state.get('layer3.0.conv2.weight')!.data);
      expect(after.get('bn1.num_batches_tracked')!.data[0]).toBe(391);
    } finally {
      model.dispose();
    }
  });

  it('tensors stored as F16/F64 are converted and counted; a missing file names the path', () => {
    const state = sourceState('resnet8');
    const raw: Record<string, RawTensor> = {};
    for (const [name, entry] of state) {
      raw[name] = name.endsWith('num_batches_tracked')
        ? { dtype: 'I64', shape: entry.shape, bytes: littleEndian(1, 8, (view) => view.setBigInt64(0, 391n, true)) }
        : { dtype: 'F64', shape: entry.shape, bytes: littleEndian(entry.data.length, 8, (view, i) => view.setFloat64(8 * i, entry.data[i]!, true)) };
    }
    raw['fc.bias'] = { dtype: 'F16', shape: [10], bytes: littleEndian(10, 2, (view, i) => view.setUint16(2 * i, 0x3c00 + i, true)) };
    const file = path.join(work, 'f64.safetensors');
    fs.writeFileSync(file, writeRaw(raw));
    const model = createModel('resnet8', fashion);
    try {
      const report = loadStateDictInto(model, file);
      expect(report.converted).toEqual({ F64: state.size - 10, F16: 1 });
      expect(model.stateDict().get('conv1.weight')!.data).toEqual(state.get('conv1.weight')!.data);
      expect(Array.from(model.stateDict().get('fc.bias')!.data)).toEqual(Array.from({ length: 10 }, (_, i) => 1 + i / 1024));
      expect(() => loadStateDictInto(model, path.join(work, 'nope.safetensors'))).toThrow(/nope\.safetensors': file not found/);
    } finally {
      model.dispose();
    }
  });
});
