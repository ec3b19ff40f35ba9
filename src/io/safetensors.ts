// The safetensors file format (Hugging Face): float32 tensors in memory, several dtypes on disk.
//
// Layout: 8 bytes little-endian u64 N, then N bytes of UTF-8 JSON header, then the data section.
// Header: { "<name>": { "dtype": "F32", "shape": [..], "data_offsets": [begin, end] }, ...,
//           "__metadata__": { "<key>": "<string>" } }   (metadata optional, string → string)
// Offsets are byte offsets relative to the start of the data section, end exclusive; values are
// raw little-endian. We pad the header with spaces to a multiple of 8 bytes (as the reference
// writer does) so the data section is aligned, and write tensors contiguously in the Map's order
// (PyTorch state-dict order). Names are PyTorch state-dict names, so a file written here loads
// unchanged with Python's `safetensors.torch.load_file` + `load_state_dict`.
//
// Writing: every tensor as F32, except BatchNorm's `num_batches_tracked`, which is written as I64
// because PyTorch's buffer is int64 (lmcl keeps the count in float32, exact up to 2^24 batches).
// A count that is not an integer (only a corrupted state has one, e.g. a NaN-poisoned network)
// stays F32, so the bytes survive bit-exactly; torch's load_state_dict casts it. An entry's stored
// dtype can be forced with `dtypes` (forcing I64 on non-integers is an error).
//
// Reading accepts F32, F64, F16, BF16, I64, I32, U8 and BOOL (what torch state dicts hold) and
// converts every tensor to float32, the only element type of lmcl's tensors: F32 bytes are copied
// (bit-exact: NaN payloads, -0, denormals), F16 and BF16 are widened exactly (every half and
// bfloat16 value, NaN payloads included, is a float32), F64 / I32 / I64 are rounded to the nearest
// float32 (I64 values must be safe integers, |v| ≤ 2^53 − 1, else an error names the tensor),
// U8 is exact and BOOL must hold bytes 0 or 1. The stored dtype of each tensor is reported in
// `dtypes`. Other dtypes (I8, U16, F8_*, ...) are rejected with a message listing these.
//
// Reading is strict, following the reference implementation's validation: header length within
// the file and ≤ 100 MB, header JSON must parse to an object, a dtype from the list above, shapes
// are arrays of non-negative integers, data_offsets lie inside the data section, tensors tile the
// data section exactly (no overlap, no gap, no trailing bytes) and each byte range matches its
// shape × element size. Every error names the source (file path), the tensor and the problem.
import fs from 'node:fs';
import { writeFileAtomic } from './atomic.js';

/** One tensor in memory: shape and row-major float32 values (the nn StateEntry shape). */
export interface SafetensorsEntry {
  shape: number[];
  data: Float32Array;
}

export type SafetensorsTensors = Map<string, SafetensorsEntry>;

/** The dtypes read (each converted to float32); F32 and I64 are also written. */
export const SAFETENSORS_DTYPES = ['F32', 'F64', 'F16', 'BF16', 'I64', 'I32', 'U8', 'BOOL'] as const;
export type SafetensorsDtype = (typeof SAFETENSORS_DTYPES)[number];
/** The dtypes encodeSafetensors can store. */
export type WritableDtype = 'F32' | 'I64';

const ELEMENT_BYTES: Record<SafetensorsDtype, number> = { F32: 4, F64: 8, F16: 2, BF16: 2, I64: 8, I32: 4, U8: 1, BOOL: 1 };

export interface SafetensorsContents {
  tensors: SafetensorsTensors;
  metadata: Record<string, string>;
  /** The dtype each tensor was stored as (before conversion to float32). */
  dtypes: Map<string, SafetensorsDtype>;
}

/** PyTorch keeps BatchNorm's batch counter as int64; written as I64 so torch gets its own dtype. */
const INT64_BUFFER = /(^|\.)num_batches_tracked$/;

/** The dtype a tensor is written as unless the caller says otherwise. */
export function defaultStoredDtype(name: string): WritableDtype {
  return INT64_BUFFER.test(name) ? 'I64' : 'F32';
}

function isSafetensorsDtype(value: unknown): value is SafetensorsDtype {
  return typeof value === 'string' && (SAFETENSORS_DTYPES as readonly string[]).includes(value);
}

const METADATA_KEY = '__metadata__';
const MAX_HEADER_BYTES = 100_000_000;
const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

function shapeProduct(shape: readonly number[]): number {
  let size = 1;
  for (const extent of shape) size *= extent;
  return size;
}

function formatShape(shape: readonly unknown[]): string {
  return `[${shape.map(String).join(', ')}]`;
}

function isValidShape(shape: unknown): shape is number[] {
  return Array.isArray(shape) && shape.every((extent) => Number.isSafeInteger(extent) && extent >= 0);
}

/** Copies float32 values into little-endian bytes at `target` (bit-exact). */
function putFloat32(target: Buffer, offset: number, values: Float32Array): void {
  if (LITTLE_ENDIAN) {
    target.set(new Uint8Array(values.buffer, values.byteOffset, values.byteLength), offset);
    return;
  }
  const bits = new Uint32Array(values.buffer, values.byteOffset, values.length);
  for (let index = 0; index < bits.length; index += 1) target.writeUInt32LE(bits[index]!, offset + 4 * index);
}

/** Reads `count` little-endian float32 values starting at `offset` into a fresh array (bit-exact). */
function getFloat32(source: Uint8Array, offset: number, count: number): Float32Array {
  const result = new Float32Array(count);
  if (LITTLE_ENDIAN) {
    new Uint8Array(result.buffer).set(source.subarray(offset, offset + 4 * count));
    return result;
  }
  const view = new DataView(source.buffer, source.byteOffset, source.byteLength);
  const bits = new Uint32Array(result.buffer);
  for (let index = 0; index < count; index += 1) bits[index] = view.getUint32(offset + 4 * index, true);
  return result;
}

/** Writes float32 values as little-endian int64; each must be an integer within ±(2^53 − 1). */
function putInt64(target: Buffer, offset: number, values: Float32Array, name: string, where: string): void {
  for (let index = 0; index < values.length; index += 1) {
    const value = values[index]!;
    if (!Number.isSafeInteger(value)) {
      throw new Error(`${where}: tensor '${name}' is written as I64 but holds ${value} at index ${index} (not an integer within ±(2^53 − 1))`);
    }
    target.writeBigInt64LE(BigInt(value), offset + 8 * index);
  }
}

/** float32 bits of an IEEE half (binary16): exact, NaN payloads kept (shifted into the float32 mantissa). */
function halfToFloat32Bits(half: number): number {
  const sign = (half & 0x8000) << 16;
  const exponent = (half >> 10) & 0x1f;
  const mantissa = half & 0x3ff;
  if (exponent === 0x1f) return (sign | 0x7f800000 | (mantissa << 13)) >>> 0; // ±Inf, NaN
  if (exponent !== 0) return (sign | ((exponent + 112) << 23) | (mantissa << 13)) >>> 0; // rebias 15 → 127
  if (mantissa === 0) return sign >>> 0; // ±0
  // Subnormal half m·2^-24: shift the leading 1 up to bit 10, lowering the exponent accordingly.
  let shifted = mantissa;
  let shifts = 0;
  while ((shifted & 0x400) === 0) {
    shifted <<= 1;
    shifts += 1;
  }
  return (sign | ((113 - shifts) << 23) | ((shifted & 0x3ff) << 13)) >>> 0;
}

/**
 * Reads `count` elements of `dtype` at `offset` (little-endian, any alignment) as float32 values.
 * `fail` reports a value that has no float32 reading (an I64 beyond the safe range, a BOOL byte
 * other than 0/1) naming the index.
 */
function decodeElements(source: Uint8Array, offset: number, count: number, dtype: SafetensorsDtype, fail: (problem: string) => never): Float32Array {
  if (dtype === 'F32') return getFloat32(source, offset, count);
  const result = new Float32Array(count);
  const view = new DataView(source.buffer, source.byteOffset + offset, count * ELEMENT_BYTES[dtype]);
  switch (dtype) {
    case 'F64':
      for (let index = 0; index < count; index += 1) result[index] = view.getFloat64(8 * index, true);
      break;
    case 'F16': {
      const bits = new Uint32Array(result.buffer);
      for (let index = 0; index < count; index += 1) bits[index] = halfToFloat32Bits(view.getUint16(2 * index, true));
      break;
    }
    case 'BF16': {
      // bfloat16 is the upper half of a float32.
      const bits = new Uint32Array(result.buffer);
      for (let index = 0; index < count; index += 1) bits[index] = (view.getUint16(2 * index, true) << 16) >>> 0;
      break;
    }
    case 'I64': {
      const limit = BigInt(Number.MAX_SAFE_INTEGER);
      for (let index = 0; index < count; index += 1) {
        const value = view.getBigInt64(8 * index, true);
        if (value > limit || value < -limit) fail(`holds ${value} at index ${index}, beyond the safe-integer range ±(2^53 − 1)`);
        result[index] = Number(value);
      }
      break;
    }
    case 'I32':
      for (let index = 0; index < count; index += 1) result[index] = view.getInt32(4 * index, true);
      break;
    case 'U8':
      for (let index = 0; index < count; index += 1) result[index] = view.getUint8(index);
      break;
    case 'BOOL':
      for (let index = 0; index < count; index += 1) {
        const byte = view.getUint8(index);
        if (byte > 1) fail(`is BOOL but holds the byte ${byte} at index ${index} (expected 0 or 1)`);
        result[index] = byte;
      }
      break;
  }
  return result;
}

export interface EncodeOptions {
  /** Stored dtype by tensor name, overriding defaultStoredDtype (F32; I64 for num_batches_tracked). */
  dtypes?: Readonly<Record<string, WritableDtype>>;
}

/**
 * Serialises float32 tensors (and optional string metadata) into safetensors bytes.
 * Throws on a bad name, a shape that is not a list of non-negative integers, a data length that
 * does not match the shape, non-string metadata, or a non-integer value in a tensor stored as I64.
 */
export function encodeSafetensors(
  tensors: ReadonlyMap<string, SafetensorsEntry> | Map<string, SafetensorsEntry>,
  metadata?: Record<string, string>,
  options: EncodeOptions = {},
): Uint8Array {
  const where = 'encodeSafetensors';
  if (!(tensors instanceof Map)) throw new TypeError(`${where}: tensors must be a Map<string, { shape, data }>`);
  const headerParts: string[] = [];
  if (metadata !== undefined) {
    if (metadata === null || typeof metadata !== 'object' || Array.isArray(metadata)) {
      throw new TypeError(`${where}: metadata must be an object of string values`);
    }
    for (const [key, value] of Object.entries(metadata)) {
      if (typeof value !== 'string') {
        throw new TypeError(`${where}: metadata '${key}' must be a string (safetensors metadata is string → string), got ${typeof value}`);
      }
    }
    if (Object.keys(metadata).length > 0) headerParts.push(`${JSON.stringify(METADATA_KEY)}:${JSON.stringify(metadata)}`);
  }
  for (const [name, dtype] of Object.entries(options.dtypes ?? {})) {
    if (dtype !== 'F32' && dtype !== 'I64') throw new TypeError(`${where}: tensor '${name}': only F32 and I64 can be written, got ${JSON.stringify(dtype)}`);
  }
  let offset = 0;
  const entries: [string, SafetensorsEntry, WritableDtype, number][] = [];
  for (const [name, entry] of tensors) {
    if (typeof name !== 'string' || name.length === 0) throw new TypeError(`${where}: tensor names must be non-empty strings, got ${JSON.stringify(name)}`);
    if (name === METADATA_KEY) throw new Error(`${where}: '${METADATA_KEY}' is reserved and cannot name a tensor`);
    if (entry === null || typeof entry !== 'object') throw new TypeError(`${where}: tensor '${name}' must be { shape, data }`);
    const { shape, data } = entry;
    if (!isValidShape(shape)) throw new TypeError(`${where}: tensor '${name}' has a bad shape ${JSON.stringify(shape)} (expected non-negative integers)`);
    if (!(data instanceof Float32Array)) throw new TypeError(`${where}: tensor '${name}' data must be a Float32Array (tensors are float32 in memory; the stored dtype is F32, or I64 for counts)`);
    if (data.length !== shapeProduct(shape)) {
      throw new Error(`${where}: tensor '${name}' has ${data.length} values but shape ${formatShape(shape)} needs ${shapeProduct(shape)}`);
    }
    const forced = options.dtypes?.[name];
    const dtype = forced ?? (defaultStoredDtype(name) === 'I64' && data.every(Number.isSafeInteger) ? 'I64' : 'F32');
    const end = offset + data.length * ELEMENT_BYTES[dtype];
    headerParts.push(`${JSON.stringify(name)}:{"dtype":"${dtype}","shape":${JSON.stringify(shape)},"data_offsets":[${offset},${end}]}`);
    entries.push([name, entry, dtype, offset]);
    offset = end;
  }
  let header = `{${headerParts.join(',')}}`;
  const headerBytes = Buffer.byteLength(header, 'utf8');
  const padded = Math.ceil(headerBytes / 8) * 8;
  header += ' '.repeat(padded - headerBytes);
  const output = Buffer.alloc(8 + padded + offset);
  output.writeBigUInt64LE(BigInt(padded), 0);
  output.write(header, 8, 'utf8');
  const dataStart = 8 + padded;
  for (const [name, entry, dtype, begin] of entries) {
    if (dtype === 'I64') putInt64(output, dataStart + begin, entry.data, name, where);
    else putFloat32(output, dataStart + begin, entry.data);
  }
  return output;
}

/**
 * Parses safetensors bytes. `source` names the origin in error messages (a file path).
 * Returns fresh arrays (independent of `buffer`) in file order (by data offset).
 */
export function decodeSafetensors(buffer: Uint8Array, source = '<buffer>'): SafetensorsContents {
  const fail = (problem: string): never => {
    throw new Error(`safetensors '${source}': ${problem}`);
  };
  if (!(buffer instanceof Uint8Array)) throw new TypeError(`safetensors '${source}': expected a Buffer or Uint8Array`);
  if (buffer.length < 8) fail(`file is ${buffer.length} bytes, too short for the 8-byte header length`);
  const view = new DataView(buffer.buffer, buffer.byteOffset, buffer.byteLength);
  const declared = view.getBigUint64(0, true);
  if (declared > BigInt(buffer.length - 8)) {
    fail(`header length ${declared} goes beyond the end of the file (${buffer.length} bytes); the file is truncated or not safetensors`);
  }
  if (declared > BigInt(MAX_HEADER_BYTES)) fail(`header length ${declared} exceeds the ${MAX_HEADER_BYTES}-byte limit`);
  const headerLength = Number(declared);
  if (headerLength < 2) fail(`header length ${headerLength} is too small for a JSON object`);
  let headerText: string;
  try {
    headerText = new TextDecoder('utf-8', { fatal: true }).decode(buffer.subarray(8, 8 + headerLength));
  } catch {
    return fail('header is not valid UTF-8');
  }
  if (!headerText.startsWith('{')) fail(`header does not start with '{' (not a safetensors file?)`);
  let header: unknown;
  try {
    header = JSON.parse(headerText);
  } catch (error) {
    return fail(`header is not valid JSON: ${(error as Error).message}`);
  }
  if (header === null || typeof header !== 'object' || Array.isArray(header)) fail('header JSON is not an object');
  const dataStart = 8 + headerLength;
  const dataLength = buffer.length - dataStart;

  let metadata: Record<string, string> = {};
  const ranges: { name: string; dtype: SafetensorsDtype; shape: number[]; begin: number; end: number }[] = [];
  for (const [name, value] of Object.entries(header as Record<string, unknown>)) {
    if (name === METADATA_KEY) {
      if (value === null) continue;
      if (typeof value !== 'object' || Array.isArray(value)) fail(`'${METADATA_KEY}' must be an object of strings`);
      for (const [key, item] of Object.entries(value as Record<string, unknown>)) {
        if (typeof item !== 'string') fail(`'${METADATA_KEY}' entry '${key}' must be a string, got ${JSON.stringify(item)}`);
      }
      metadata = { ...(value as Record<string, string>) };
      continue;
    }
    if (value === null || typeof value !== 'object' || Array.isArray(value)) fail(`tensor '${name}': entry must be an object { dtype, shape, data_offsets }`);
    const { dtype, shape, data_offsets: offsets } = value as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (!isSafetensorsDtype(dtype)) {
      fail(`tensor '${name}' has dtype ${JSON.stringify(dtype)}, which lmcl does not read (supported: ${SAFETENSORS_DTYPES.join(', ')}; convert with tensor.float() before saving)`);
    }
    if (!isValidShape(shape)) fail(`tensor '${name}' has a bad shape ${JSON.stringify(shape)} (expected an array of non-negative integers)`);
    if (
      !Array.isArray(offsets) || offsets.length !== 2 ||
      !offsets.every((item) => Number.isSafeInteger(item) && item >= 0)
    ) {
      fail(`tensor '${name}' has bad data_offsets ${JSON.stringify(offsets)} (expected [begin, end] non-negative integers)`);
    }
    const [begin, end] = offsets as [number, number];
    if (end < begin) fail(`tensor '${name}' has data_offsets [${begin}, ${end}] with end before begin`);
    if (end > dataLength) fail(`tensor '${name}' has data_offsets [${begin}, ${end}] beyond the data section (${dataLength} bytes)`);
    const stored = dtype as SafetensorsDtype;
    const expected = shapeProduct(shape as number[]) * ELEMENT_BYTES[stored];
    if (end - begin !== expected) {
      fail(`tensor '${name}' has shape ${formatShape(shape as number[])} (${expected} bytes as ${stored}) but data_offsets [${begin}, ${end}] span ${end - begin} bytes`);
    }
    ranges.push({ name, dtype: stored, shape: [...(shape as number[])], begin, end });
  }
  ranges.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let cursor = 0;
  let previous: string | undefined;
  for (const range of ranges) {
    if (range.begin < cursor) fail(`tensor '${range.name}' (data_offsets [${range.begin}, ${range.end}]) overlaps tensor '${previous}'`);
    if (range.begin > cursor) fail(`gap in the data section before tensor '${range.name}' (bytes ${cursor}..${range.begin} belong to no tensor)`);
    cursor = range.end;
    previous = range.name;
  }
  if (cursor !== dataLength) fail(`data section is ${dataLength} bytes but the tensors cover ${cursor} (trailing bytes or truncated file)`);

  const tensors: SafetensorsTensors = new Map();
  const dtypes = new Map<string, SafetensorsDtype>();
  for (const range of ranges) {
    const count = (range.end - range.begin) / ELEMENT_BYTES[range.dtype];
    const data = decodeElements(buffer, dataStart + range.begin, count, range.dtype, (problem) => fail(`tensor '${range.name}' (${range.dtype}) ${problem}`));
    tensors.set(range.name, { shape: range.shape, data });
    dtypes.set(range.name, range.dtype);
  }
  return { tensors, metadata, dtypes };
}

/** Writes a safetensors file atomically (see atomic.ts). */
export function writeSafetensors(
  path: string,
  tensors: ReadonlyMap<string, SafetensorsEntry> | Map<string, SafetensorsEntry>,
  metadata?: Record<string, string>,
  options: EncodeOptions = {},
): void {
  writeFileAtomic(path, encodeSafetensors(tensors, metadata, options));
}

/** Reads and validates a safetensors file; errors name the path. */
export function readSafetensors(path: string): SafetensorsContents {
  let bytes: Buffer;
  try {
    bytes = fs.readFileSync(path);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new Error(`safetensors '${path}': file not found`, { cause: error });
    throw new Error(`safetensors '${path}': cannot read: ${(error as Error).message}`, { cause: error });
  }
  return decodeSafetensors(bytes, path);
}
