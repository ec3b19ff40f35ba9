// safetensors encode/decode: layout, bit-exact float32 round trip, strict validation on read.
import { describe, expect, it } from 'vitest';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { decodeSafetensors, encodeSafetensors, readSafetensors, writeSafetensors } from '../../src/io/safetensors.js';

type Entry = { shape: number[]; data: Float32Array };

function bitsOf(data: Float32Array): Uint32Array {
  return new Uint32Array(data.buffer, data.byteOffset, data.length);
}

/** Float32 values that a float64 detour would lose: NaN payloads, -0, denormals, infinities. */
function awkwardValues(): Float32Array {
  const bits = new Uint32Array([
    0x7fc00000, 0x7fc12345, 0xffc00001, 0x7f800001, // quiet NaNs with payloads, a signalling NaN
    0x80000000, 0x00000000, 0x00000001, 0x807fffff, // -0, +0, smallest denormal, largest negative denormal
    0x7f800000, 0xff800000, 0x3f800000, 0x7f7fffff, // ±Infinity, 1, max float
  ]);
  return new Float32Array(bits.buffer);
}

function randomFloats(count: number, seed: number): Float32Array {
  let state = seed >>> 0;
  const out = new Float32Array(count);
  for (let index = 0; index < count; index += 1) {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    out[index] = (state / 2 ** 32) * 4 - 2;
  }
  return out;
}

/** A state dict shaped like a small conv net's (PyTorch names). */
function sampleStateDict(): Map<string, Entry> {
  return new Map<string, Entry>([
    ['0.weight', { shape: [4, 3, 3, 3], data: randomFloats(108, 1) }],
    ['1.weight', { shape: [4], data: randomFloats(4, 2) }],
    ['1.bias', { shape: [4], data: randomFloats(4, 3) }],
    ['1.running_mean', { shape: [4], data: randomFloats(4, 4) }],
    ['1.num_batches_tracked', { shape: [], data: new Float32Array([17]) }],
    ['empty', { shape: [0, 5], data: new Float32Array(0) }],
    ['odd', { shape: [3], data: awkwardValues().subarray(0, 3) }],
  ]);
}

function expectSameTensors(actual: Map<string, Entry>, expected: Map<string, Entry>): void {
  expect([...actual.keys()]).toEqual([...expected.keys()]);
  for (const [name, entry] of expected) {
    const got = actual.get(name)!;
    expect(got.shape).toEqual(entry.shape);
    expect(got.data).toBeInstanceOf(Float32Array);
    expect(Array.from(bitsOf(got.data))).toEqual(Array.from(bitsOf(entry.data)));
  }
}

/** Builds a file from a raw header object (for malformed inputs). */
function rawFile(header: unknown, dataBytes: number, headerText = JSON.stringify(header)): Buffer {
  const json = Buffer.from(headerText, 'utf8');
  const out = Buffer.alloc(8 + json.length + dataBytes);
  out.writeBigUInt64LE(BigInt(json.length), 0);
  json.copy(out, 8);
  return out;
}

describe('safetensors', () => {
  it('lays out the header and data as the format specifies', () => {
    const data = new Float32Array([1, -2.5]);
    const bytes = encodeSafetensors(new Map([['layer.weight', { shape: [2], data }]]), { format: 'pt' });
    const headerLength = Number(bytes.readBigUInt64LE(0));
    expect(headerLength % 8).toBe(0);
    const headerText = bytes.subarray(8, 8 + headerLength).toString('utf8');
    expect(headerText).toMatch(/^\{.*\} *$/s); // JSON padded with spaces
    const header = JSON.parse(headerText);
    expect(header).toEqual({
      __metadata__: { format: 'pt' },
      'layer.weight': { dtype: 'F32', shape: [2], data_offsets: [0, 8] },
    });
    expect(bytes.length).toBe(8 + headerLength + 8);
    expect(bytes.readFloatLE(8 + headerLength)).toBe(1);
    expect(bytes.readFloatLE(8 + headerLength + 4)).toBe(-2.5);
  });

  it('round-trips float32 bit-exactly, keeps order, shapes and metadata', () => {
    const tensors = sampleStateDict();
    tensors.set('awkward', { shape: [2, 6], data: awkwardValues() });
    const { tensors: decoded, metadata } = decodeSafetensors(encodeSafetensors(tensors, { architecture: 'resnet32', epoch: '3' }));
    expectSameTensors(decoded, tensors);
    expect(metadata).toEqual({ architecture: 'resnet32', epoch: '3' });
  });

  it('reads subarray views and unaligned buffers, returning independent copies', () => {
    const backing = new Float32Array(10).fill(7);
    const view = backing.subarray(3, 7);
    const encoded = encodeSafetensors(new Map([['v', { shape: [2, 2], data: view }]]));
    const unaligned = Buffer.alloc(encoded.length + 1);
    encoded.copy(unaligned, 1);
    const decoded = decodeSafetensors(unaligned.subarray(1)).tensors.get('v')!;
    expect(Array.from(decoded.data)).toEqual([7, 7, 7, 7]);
    unaligned.fill(0);
    expect(Array.from(decoded.data)).toEqual([7, 7, 7, 7]);
  });

  it('accepts a file written by another writer (metadata first, padded header, sorted keys)', () => {
    // The reference writer's layout: '__metadata__' first, keys sorted, header padded with spaces.
    const header = '{"__metadata__":{"format":"pt"},"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}';
    const padded = header + ' '.repeat((8 - (header.length % 8)) % 8);
    const file = rawFile(null, 8, padded);
    file.writeFloatLE(2, 8 + padded.length);
    file.writeFloatLE(1, 8 + padded.length + 4);
    const { tensors, metadata } = decodeSafetensors(file);
    expect([...tensors.keys()]).toEqual(['b', 'a']); // file order (by offset)
    expect(tensors.get('a')!.data[0]).toBe(1);
    expect(tensors.get('b')!.data[0]).toBe(2);
    expect(metadata).toEqual({ format: 'pt' });
  });

  it('writes atomically to disk and reads back', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lmcl-st-'));
    try {
      const file = path.join(dir, 'net0.safetensors');
      writeSafetensors(file, sampleStateDict(), { architecture: 'tiny' });
      expect(fs.readdirSync(dir)).toEqual(['net0.safetensors']);
      const { tensors, metadata } = readSafetensors(file);
      expectSameTensors(tensors, sampleStateDict());
      expect(metadata.architecture).toBe('tiny');
      expect(() => readSafetensors(path.join(dir, 'missing.safetensors'))).toThrow(/missing\.safetensors': file not found/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  const python = spawnSync('python3', ['-c', 'import numpy'], { encoding: 'utf8' });
  it.skipIf(python.status !== 0)('is readable by an independent reader (python3 + numpy)', () => {
    const tensors = sampleStateDict();
    const encoded = encodeSafetensors(tensors, { format: 'pt' });
    const script = [
      'import sys, json, struct, numpy as np',
      'b = sys.stdin.buffer.read()',
      'n = struct.unpack("<Q", b[:8])[0]',
      'h = json.loads(b[8:8+n]); meta = h.pop("__metadata__", {})',
      'out = {"meta": meta}',
      'for k, v in h.items():',
      '    s, e = v["data_offsets"]',
      '    a = np.frombuffer(b[8+n+s:8+n+e], dtype={"F32": "<f4", "I64": "<i8"}[v["dtype"]]).reshape(v["shape"])',
      '    out[k] = [v["dtype"], list(a.shape), a.astype("<f4").view("<u4").ravel().tolist()]',
      'print(json.dumps(out))',
    ].join('\n');
    const result = spawnSync('python3', ['-c', script], { input: encoded, encoding: 'utf8' });
    expect(result.stderr).toBe('');
    const parsed = JSON.parse(result.stdout) as Record<string, unknown>;
    expect(parsed.meta).toEqual({ format: 'pt' });
    for (const [name, entry] of tensors) {
      // num_batches_tracked is int64 on disk, as in PyTorch; everything else float32.
      expect(parsed[name]).toEqual([name.endsWith('num_batches_tracked') ? 'I64' : 'F32', entry.shape, Array.from(bitsOf(entry.data))]);
    }
  });

  describe('rejects bad input with an error naming the source and the problem', () => {
    const ok = { a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] } };
    const cases: [string, Buffer, RegExp][] = [
      ['a file shorter than 8 bytes', Buffer.alloc(5), /too short/],
      ['a header length beyond the file', (() => { const b = rawFile(ok, 8); b.writeBigUInt64LE(10_000n, 0); return b; })(), /header length 10000 goes beyond the end of the file/],
      ['a huge header length', (() => { const b = rawFile(ok, 8); b.writeBigUInt64LE(2n ** 63n, 0); return b; })(), /beyond the end of the file/],
      ['bad JSON', rawFile(null, 0, '{"a": [1, 2'), /not valid JSON/],
      ['a header that is not JSON at all', rawFile(null, 0, 'PK\u0003\u0004 zip'), /does not start with '\{'/],
      ['a non-object header', rawFile(null, 0, '{}').fill(0x5b, 8, 9), /does not start with/],
      ['dtype I16 (a safetensors dtype lmcl does not read)', rawFile({ a: { dtype: 'I16', shape: [4], data_offsets: [0, 8] } }, 8),
        /tensor 'a' has dtype "I16", which lmcl does not read \(supported: F32, F64, F16, BF16, I64, I32, U8, BOOL/],
      ['an unknown dtype', rawFile({ a: { dtype: 'F33', shape: [1], data_offsets: [0, 8] } }, 8), /dtype "F33", which lmcl does not read/],
      ['a missing dtype', rawFile({ a: { shape: [2], data_offsets: [0, 8] } }, 8), /dtype undefined/],
      ['a negative extent', rawFile({ a: { dtype: 'F32', shape: [-2], data_offsets: [0, 8] } }, 8), /bad shape \[-2\]/],
      ['a fractional extent', rawFile({ a: { dtype: 'F32', shape: [1.5], data_offsets: [0, 8] } }, 8), /bad shape/],
      ['bad data_offsets', rawFile({ a: { dtype: 'F32', shape: [2], data_offsets: [0] } }, 8), /bad data_offsets/],
      ['end before begin', rawFile({ a: { dtype: 'F32', shape: [0], data_offsets: [8, 4] } }, 8), /end before begin/],
      ['offsets beyond the data', rawFile({ a: { dtype: 'F32', shape: [4], data_offsets: [0, 16] } }, 8), /beyond the data section \(8 bytes\)/],
      ['a shape/size mismatch', rawFile({ a: { dtype: 'F32', shape: [3], data_offsets: [0, 8] } }, 8), /shape \[3\] \(12 bytes as F32\) but data_offsets \[0, 8\] span 8 bytes/],
      ['overlapping tensors', rawFile({ a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, b: { dtype: 'F32', shape: [2], data_offsets: [4, 12] } }, 12), /overlaps tensor 'a'/],
      ['a gap', rawFile({ a: { dtype: 'F32', shape: [1], data_offsets: [4, 8] } }, 8), /gap in the data section/],
      ['trailing bytes', rawFile(ok, 12), /data section is 12 bytes but the tensors cover 8/],
      ['non-string metadata', rawFile({ __metadata__: { epoch: 3 }, ...ok }, 8), /'__metadata__' entry 'epoch' must be a string/],
    ];
    for (const [what, bytes, pattern] of cases) {
      it(what, () => {
        expect(() => decodeSafetensors(bytes, 'runs/x/net0.safetensors')).toThrow(/^safetensors 'runs\/x\/net0\.safetensors': /);
        expect(() => decodeSafetensors(bytes, 'runs/x/net0.safetensors')).toThrow(pattern);
      });
    }

    it('a truncated file on disk names the path', () => {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lmcl-st-'));
      try {
        const file = path.join(dir, 'cut.safetensors');
        const bytes = encodeSafetensors(sampleStateDict());
        fs.writeFileSync(file, bytes.subarray(0, bytes.length - 10));
        expect(() => readSafetensors(file)).toThrow(new RegExp(`'${file.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}': .*(truncated|beyond)`));
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
    });
  });

  it('rejects bad tensors when encoding', () => {
    expect(() => encodeSafetensors(new Map([['a', { shape: [3], data: new Float32Array(2) }]]))).toThrow(/tensor 'a' has 2 values but shape \[3\] needs 3/);
    expect(() => encodeSafetensors(new Map([['a', { shape: [2], data: new Float64Array(2) as unknown as Float32Array }]]))).toThrow(/Float32Array/);
    expect(() => encodeSafetensors(new Map([['__metadata__', { shape: [0], data: new Float32Array(0) }]]))).toThrow(/reserved/);
    expect(() => encodeSafetensors(new Map(), { epoch: 3 as unknown as string })).toThrow(/metadata 'epoch' must be a string/);
  });
});
