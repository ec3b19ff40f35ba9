// The safetensors file format (Hugging Face), float32 only.
//
// Layout: 8 bytes little-endian u64 N, then N bytes of UTF-8 JSON header, then the data section.
// Header: { "<name>": { "dtype": "F32", "shape": [..], "data_offsets": [begin, end] }, ...,
//           "__metadata__": { "<key>": "<string>" } }   (metadata optional, string → string)
// Offsets are byte offsets relative to the start of the data section, end exclusive; values are
// raw little-endian. We pad the header with spaces to a multiple of 8 bytes (as the reference
// writer does) so the data section is aligned, and write tensors contiguously in the Map's order
// (PyTorch state-dict order). Names are PyTorch state-dict names, so a file written here loads
// unchanged with Python's `safetensors.torch.load_file` (BatchNorm's num_batches_tracked is stored
// as F32; torch's load_state_dict casts it into its int64 buffer).
//
// Reading is strict, following the reference implementation's validation: header length within
// the file and ≤ 100 MB, header JSON must parse to an object, dtype must be F32 (lmcl stores
// float32 only; other dtypes are rejected with a message saying so), shapes are arrays of
// non-negative integers, data_offsets lie inside the data section, tensors tile the data section
// exactly (no overlap, no gap, no trailing bytes) and each byte range matches its shape. Every
// error names the source (file path) and the problem. Float32 data round-trips bit-exactly (NaN
// payloads, -0, denormals): bytes are copied, never converted through float64.
import fs from 'node:fs';
import { writeFileAtomic } from './atomic.js';

/** One tensor as stored: shape and row-major float32 values (the nn StateEntry shape). */
export interface SafetensorsEntry {
  shape: number[];
  data: Float32Array;
}

export type SafetensorsTensors = Map<string, SafetensorsEntry>;

export interface SafetensorsContents {
  tensors: SafetensorsTensors;
  metadata: Record<string, string>;
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

/**
 * Serialises float32 tensors (and optional string metadata) into safetensors bytes.
 * Throws on a bad name, a shape that is not a list of non-negative integers, a data length that
 * does not match the shape, or non-string metadata.
 */
export function encodeSafetensors(
  tensors: ReadonlyMap<string, SafetensorsEntry> | Map<string, SafetensorsEntry>,
  metadata?: Record<string, string>,
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
  let offset = 0;
  const entries: [SafetensorsEntry, number][] = [];
  for (const [name, entry] of tensors) {
    if (typeof name !== 'string' || name.length === 0) throw new TypeError(`${where}: tensor names must be non-empty strings, got ${JSON.stringify(name)}`);
    if (name === METADATA_KEY) throw new Error(`${where}: '${METADATA_KEY}' is reserved and cannot name a tensor`);
    if (entry === null || typeof entry !== 'object') throw new TypeError(`${where}: tensor '${name}' must be { shape, data }`);
    const { shape, data } = entry;
    if (!isValidShape(shape)) throw new TypeError(`${where}: tensor '${name}' has a bad shape ${JSON.stringify(shape)} (expected non-negative integers)`);
    if (!(data instanceof Float32Array)) throw new TypeError(`${where}: tensor '${name}' data must be a Float32Array (only F32 is supported)`);
    if (data.length !== shapeProduct(shape)) {
      throw new Error(`${where}: tensor '${name}' has ${data.length} values but shape ${formatShape(shape)} needs ${shapeProduct(shape)}`);
    }
    const end = offset + data.byteLength;
    headerParts.push(`${JSON.stringify(name)}:{"dtype":"F32","shape":${JSON.stringify(shape)},"data_offsets":[${offset},${end}]}`);
    entries.push([entry, offset]);
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
  for (const [entry, begin] of entries) putFloat32(output, dataStart + begin, entry.data);
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
  const ranges: { name: string; shape: number[]; begin: number; end: number }[] = [];
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
    if (dtype !== 'F32') {
      fail(`tensor '${name}' has dtype ${JSON.stringify(dtype)}; only F32 (float32) is supported by lmcl (convert with tensor.float() before saving)`);
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
    const expected = shapeProduct(shape as number[]) * 4;
    if (end - begin !== expected) {
      fail(`tensor '${name}' has shape ${formatShape(shape as number[])} (${expected} bytes as F32) but data_offsets [${begin}, ${end}] span ${end - begin} bytes`);
    }
    ranges.push({ name, shape: [...(shape as number[])], begin, end });
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
  for (const range of ranges) {
    tensors.set(range.name, { shape: range.shape, data: getFloat32(buffer, dataStart + range.begin, (range.end - range.begin) / 4) });
  }
  return { tensors, metadata };
}

/** Writes a safetensors file atomically (see atomic.ts). */
export function writeSafetensors(
  path: string,
  tensors: ReadonlyMap<string, SafetensorsEntry> | Map<string, SafetensorsEntry>,
  metadata?: Record<string, string>,
): void {
  writeFileAtomic(path, encodeSafetensors(tensors, metadata));
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
