// Training checkpoints: crash-safe directories of safetensors + JSON, with rotation.
//
// Layout of one checkpoint (a directory inside the run directory, e.g. checkpoint-e0003-s1200):
//   net0.safetensors, net1.safetensors, ...  one per network: weights and buffers under PyTorch
//                                            state-dict names (loadable by Python's safetensors);
//                                            metadata: format=pt, network index, epoch/step and
//                                            whatever networkMetadata[i] adds (e.g. architecture)
//   <name>.safetensors (e.g. criterion)      named tensor files beside the networks (payload.tensorFiles):
//                                            a training method's own weights and buffers under
//                                            stable names, metadata format=pt
//   optimizer.safetensors                    float32 side tensors (only when there are any): the
//                                            explicit optimizerBuffers plus every Float32Array found
//                                            inside `state` (e.g. SGD momentum buffers), so they
//                                            round-trip bit-exactly instead of as JSON numbers
//   state.json                               everything else the trainer passes (scheduler, epoch,
//                                            step, RNG state, sampler position, best metric, config)
//                                            as tagged JSON: NaN/±Infinity/-0, other typed arrays,
//                                            Maps and bigints are encoded so they round-trip exactly
//   checkpoint.json                          manifest, written last: format, name, sequence number,
//                                            creation time, best flag, byte size and SHA-256 of
//                                            every file (both checked by loadCheckpoint; listing
//                                            checks sizes only, hashing every checkpoint is slow)
//
// Atomicity: everything is written into `.tmp-checkpoint-<name>@<host>-<pid>-<hex>` in the run
// directory, each file fsync'ed, the directory fsync'ed, then renamed to `<name>` and the run
// directory fsync'ed. Replacing an existing `<name>` (e.g. 'best') moves the old one aside to
// `.old-<name>@<host>-<pid>-<hex>` first and deletes it afterwards; pruning moves a checkpoint to
// `.trash-...` before deleting it. So a directory with a regular name and a manifest is always a
// complete checkpoint; dot-directories are ignored by readers, which never delete or rename
// anything, and only saveCheckpoint cleans them up, when their writer is provably gone (the rule
// is above cleanCheckpointScratch); an `.old-` directory whose checkpoint is missing (crash
// between the two renames) is renamed back instead.
//
// "Latest" is the highest sequence number (1 + the highest existing one at save time; no clock
// involved), ignoring checkpoints saved with { best: true } unless they are the only ones.
// Rotation keeps the `keepLast` newest non-best checkpoints (the one just saved is always kept);
// best checkpoints are never pruned.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createHash, randomBytes } from 'node:crypto';
import { fsyncDirectory, makeDirectories, writeFileAtomic } from './atomic.js';
import { readSafetensors, writeSafetensors, type SafetensorsEntry } from './safetensors.js';

/** A network's state dict: PyTorch name → { shape, data } (what nn.Module.stateDict() returns). */
export type TensorMap = Map<string, SafetensorsEntry>;

export interface CheckpointPayload {
  /** One state dict per network of the cohort (written as net{i}.safetensors). */
  networks: TensorMap[];
  /** Optional string metadata per network (e.g. { architecture: 'resnet32' }). */
  networkMetadata?: (Record<string, string> | undefined)[];
  /** Named float32 tensors for optimizer.safetensors (names must not start with 'state:'). */
  optimizerBuffers?: TensorMap;
  /** More state dicts, each written as `<file name>.safetensors` (lower-case names; not 'net<i>', 'optimizer', 'state'). */
  tensorFiles?: Record<string, TensorMap>;
  /** Everything else; Float32Arrays inside are moved to optimizer.safetensors automatically. */
  state: unknown;
}

export interface SaveCheckpointOptions {
  /** Keep this many newest non-best checkpoints (≥ 1, default: keep all). */
  keepLast?: number;
  /** Mark as a best checkpoint: never pruned, not returned as "latest" while others exist. */
  best?: boolean;
}

export interface CheckpointManifest {
  format: 'lmcl-checkpoint';
  version: 1;
  name: string;
  sequence: number;
  createdAt: string;
  best: boolean;
  networks: number;
  /** File name → size in bytes (checked on load). */
  files: Record<string, number>;
  /**
   * File name → SHA-256 of its bytes, lower-case hex (checked on load, so a flipped bit is
   * rejected naming the file). Absent in checkpoints written before it was recorded.
   */
  sha256?: Record<string, string>;
}

export interface CheckpointInfo {
  name: string;
  path: string;
  manifest: CheckpointManifest;
}

export interface LoadedCheckpoint extends CheckpointInfo {
  networks: TensorMap[];
  networkMetadata: Record<string, string>[];
  optimizerBuffers: TensorMap;
  /** The payload's tensorFiles (empty when it had none). */
  tensorFiles: Record<string, TensorMap>;
  state: unknown;
}

const MANIFEST = 'checkpoint.json';
const STATE = 'state.json';
const OPTIMIZER = 'optimizer.safetensors';
const FORMAT = 'lmcl-checkpoint';
const TEMP_PREFIX = '.tmp-checkpoint-';
const OLD_PREFIX = '.old-';
const TRASH_PREFIX = '.trash-';
const STATE_TENSOR_PREFIX = 'state:';
const TAG = '$lmcl';

const networkFile = (index: number): string => `net${index}.safetensors`;
const tensorFile = (name: string): string => `${name}.safetensors`;

function checkTensorFileName(name: string, where: string): void {
  if (!/^[a-z][a-z0-9_]*$/.test(name) || /^net\d+$/.test(name) || name === 'optimizer' || name === 'state' || name === 'checkpoint') {
    throw new Error(`${where}: tensor file name ${JSON.stringify(name)} must be lower case [a-z0-9_] and not net<i>, optimizer, state or checkpoint`);
  }
}

/** The conventional checkpoint name: checkpoint-e0003-s1200. */
export function checkpointName(epoch: number, step: number): string {
  return `checkpoint-e${String(epoch).padStart(4, '0')}-s${step}`;
}

function checkCheckpointName(name: unknown, where: string): asserts name is string {
  if (typeof name !== 'string' || name.length === 0 || name.startsWith('.') || /[/\\\0]/.test(name) || name === MANIFEST) {
    throw new Error(`${where}: bad checkpoint name ${JSON.stringify(name)} (a non-empty file name, not starting with '.')`);
  }
}

// ---- tagged JSON for state.json -------------------------------------------------------------

type TypedArrayName =
  | 'Float64Array' | 'Int8Array' | 'Uint8Array' | 'Uint8ClampedArray' | 'Int16Array' | 'Uint16Array'
  | 'Int32Array' | 'Uint32Array' | 'BigInt64Array' | 'BigUint64Array';
const typedArrayConstructors: Record<TypedArrayName, new (buffer: ArrayBuffer) => ArrayBufferView> = {
  Float64Array, Int8Array, Uint8Array, Uint8ClampedArray, Int16Array, Uint16Array, Int32Array, Uint32Array, BigInt64Array, BigUint64Array,
};
const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

function encodeNumber(value: number): unknown {
  if (Number.isNaN(value)) return { [TAG]: 'number', value: 'NaN' };
  if (value === Infinity) return { [TAG]: 'number', value: 'Infinity' };
  if (value === -Infinity) return { [TAG]: 'number', value: '-Infinity' };
  if (Object.is(value, -0)) return { [TAG]: 'number', value: '-0' };
  return value;
}

/**
 * Converts `value` into plain JSON. Float32Arrays are handed to `extract(path)` (which stores them
 * in the side file) and replaced by a reference.
 */
function encodeState(value: unknown, extract: (path: string, data: Float32Array) => string): unknown {
  const active = new Set<object>();
  const visit = (item: unknown, at: string): unknown => {
    const where = at === '' ? 'state' : `state.${at}`;
    const child = (key: string): string => (at === '' ? key : `${at}.${key}`);
    if (item === null || typeof item === 'boolean' || typeof item === 'string') return item;
    if (typeof item === 'number') return encodeNumber(item);
    if (typeof item === 'bigint') return { [TAG]: 'bigint', value: item.toString() };
    if (typeof item === 'undefined' || typeof item === 'function' || typeof item === 'symbol') return undefined;
    const object = item as object;
    if (active.has(object)) throw new Error(`saveCheckpoint: ${where} contains a cycle`);
    active.add(object);
    try {
      if (object instanceof Float32Array) return { [TAG]: 'f32', key: extract(at, object) };
      if (ArrayBuffer.isView(object)) {
        const type = object.constructor.name as TypedArrayName;
        if (!(type in typedArrayConstructors) || !LITTLE_ENDIAN) {
          throw new Error(`saveCheckpoint: ${where} is a ${object.constructor.name}, which state.json cannot store`);
        }
        const bytes = Buffer.from(object.buffer, object.byteOffset, object.byteLength);
        return { [TAG]: 'typed', type, base64: bytes.toString('base64') };
      }
      if (Array.isArray(object)) return object.map((entry, index) => visit(entry, child(String(index))) ?? null);
      if (object instanceof Map) {
        return { [TAG]: 'map', entries: [...object].map(([key, entry], index) => [visit(key, child(`<key${index}>`)), visit(entry, child(String(key))) ?? null]) };
      }
      if (object instanceof Set) return { [TAG]: 'set', values: [...object].map((entry, index) => visit(entry, child(String(index))) ?? null) };
      if (typeof (object as { toJSON?: unknown }).toJSON === 'function') return visit((object as { toJSON(): unknown }).toJSON(), at);
      if (TAG in object) throw new Error(`saveCheckpoint: ${where} has a key '${TAG}', which state.json reserves`);
      const result: Record<string, unknown> = {};
      for (const [key, entry] of Object.entries(object)) {
        const encoded = visit(entry, child(key));
        if (encoded !== undefined) result[key] = encoded;
      }
      return result;
    } finally {
      active.delete(object);
    }
  };
  return visit(value, '');
}

function decodeState(value: unknown, lookup: (key: string) => Float32Array, source: string): unknown {
  const fail = (problem: string): never => {
    throw new Error(`loadCheckpoint '${source}': ${problem}`);
  };
  const visit = (item: unknown): unknown => {
    if (item === null || typeof item !== 'object') return item;
    if (Array.isArray(item)) return item.map(visit);
    const record = item as Record<string, unknown>;
    if (TAG in record) {
      switch (record[TAG]) {
        case 'f32':
          return lookup(String(record.key));
        case 'number': {
          const text = record.value;
          if (text === 'NaN') return Number.NaN;
          if (text === 'Infinity') return Infinity;
          if (text === '-Infinity') return -Infinity;
          if (text === '-0') return -0;
          return fail(`bad tagged number ${JSON.stringify(text)}`);
        }
        case 'bigint':
          return BigInt(String(record.value));
        case 'typed': {
          const constructor = typedArrayConstructors[record.type as TypedArrayName];
          if (!constructor || typeof record.base64 !== 'string') return fail(`bad typed array entry ${JSON.stringify(record.type)}`);
          const bytes = Buffer.from(record.base64, 'base64');
          const copy = new ArrayBuffer(bytes.length);
          new Uint8Array(copy).set(bytes);
          return new constructor(copy);
        }
        case 'map':
          if (!Array.isArray(record.entries)) return fail('bad map entry');
          return new Map((record.entries as unknown[][]).map(([key, entry]) => [visit(key), visit(entry)]));
        case 'set':
          if (!Array.isArray(record.values)) return fail('bad set entry');
          return new Set((record.values as unknown[]).map(visit));
        default:
          return fail(`unknown tag ${JSON.stringify(record[TAG])}`);
      }
    }
    const result: Record<string, unknown> = {};
    for (const [key, entry] of Object.entries(record)) result[key] = visit(entry);
    return result;
  };
  return visit(value);
}

// ---- directory scanning and cleanup ---------------------------------------------------------
//
// Who may clean the scratch directories (.tmp-, .old-, .trash-) of a save:
//  * Readers never delete or rename anything (listCheckpoints, latestCheckpoint, loadCheckpoint:
//    `lmcl eval`, `lmcl export`, finding the checkpoint to resume from). They only skip
//    dot-directories. A reader on another host cannot tell whether the writer is alive (its pid
//    means nothing there, so it always looks gone); a reader that cleaned up would pull a running
//    trainer's files from under it and the trainer would die with ENOENT.
//  * Only a writer cleans: saveCheckpoint, before it starts its own save. Scratch names record
//    who made them, `<prefix><name>@<host>-<pid>-<hex>`, and the writer removes a leftover only
//    when it can prove nobody is using it: it was made on this host by a process that no longer
//    exists, or by this process and is not one of this process's saves in progress. Leftovers
//    from another host, or in the old `<name>-<pid>-<hex>` format (host unknown), are left alone
//    (reported by cleanCheckpointScratch) and are harmless: every reader ignores them.
// A host is os.hostname(); two machines sharing a file system must not share a host name.

/** Scratch directories of saves running in this process (absolute paths): never cleaned. */
const savesInProgress = new Set<string>();

/** This host's name as it appears in scratch names (no '@' or path characters). */
function hostTag(): string {
  return os.hostname().replace(/[^A-Za-z0-9._-]/g, '_').slice(0, 64) || 'unknown-host';
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** `<prefix><name>@<host>-<pid>-<hex>` → { name, host, pid }; the old format gives host null. */
function parseScratchName(entry: string, prefix: string): { name: string; host: string | null; pid: number } | null {
  const rest = entry.slice(prefix.length);
  const tagged = /^(.*)@([A-Za-z0-9._-]+)-(\d+)-[0-9a-f]+$/.exec(rest);
  if (tagged) return { name: tagged[1]!, host: tagged[2]!, pid: Number(tagged[3]) };
  const legacy = /^(.*)-(\d+)-[0-9a-f]+$/.exec(rest);
  return legacy ? { name: legacy[1]!, host: null, pid: Number(legacy[2]) } : null;
}

function scratchName(prefix: string, name: string): string {
  return `${prefix}${name}@${hostTag()}-${process.pid}-${randomBytes(6).toString('hex')}`;
}

function removeDirectory(target: string): void {
  fs.rmSync(target, { recursive: true, force: true, maxRetries: 3 });
}

/** True when the scratch directory `full` (parsed from its name) is provably abandoned. */
function abandoned(full: string, parsed: { host: string | null; pid: number } | null): boolean {
  if (parsed === null || parsed.host !== hostTag()) return false; // another host (or unknown): it may be running
  if (parsed.pid === process.pid) return !savesInProgress.has(path.resolve(full));
  return !processAlive(parsed.pid);
}

export interface ScratchCleanup {
  /** Scratch directories deleted (abandoned temporary, trash and superseded old directories). */
  removed: string[];
  /** `.old-<name>` directories renamed back to `<name>` (a crash between a replacement's two renames). */
  restored: string[];
  /** Scratch directories left alone because their writer may still be running (another host, unknown host, live pid). */
  kept: string[];
}

/**
 * For writers only (saveCheckpoint calls it; see the rules above): removes the leftovers of
 * interrupted saves/prunes in `runDir` that are provably abandoned. Temporary and trash
 * directories are deleted; an `.old-<name>` directory whose `<name>` is missing is renamed back.
 */
export function cleanCheckpointScratch(runDir: string): ScratchCleanup {
  const report: ScratchCleanup = { removed: [], restored: [], kept: [] };
  let entries: fs.Dirent[];
  try {
    entries = fs.readdirSync(runDir, { withFileTypes: true });
  } catch {
    return report;
  }
  for (const entry of entries) {
    if (!entry.isDirectory()) continue;
    const full = path.join(runDir, entry.name);
    const prefix = [TEMP_PREFIX, TRASH_PREFIX, OLD_PREFIX].find((candidate) => entry.name.startsWith(candidate));
    if (prefix === undefined) continue;
    const parsed = parseScratchName(entry.name, prefix);
    if (!abandoned(full, parsed)) {
      report.kept.push(full);
      continue;
    }
    try {
      const target = path.join(runDir, parsed!.name);
      if (prefix === OLD_PREFIX && !fs.existsSync(target) && readManifest(full) !== null) {
        fs.renameSync(full, target);
        report.restored.push(target);
      } else {
        removeDirectory(full);
        report.removed.push(full);
      }
    } catch {
      // another process may be cleaning the same directory; leave it
    }
  }
  if (report.removed.length + report.restored.length > 0) fsyncDirectory(runDir);
  return report;
}

function readManifest(dir: string): CheckpointManifest | null {
  let manifest: unknown;
  try {
    manifest = JSON.parse(fs.readFileSync(path.join(dir, MANIFEST), 'utf8'));
  } catch {
    return null;
  }
  const candidate = manifest as Partial<CheckpointManifest> | null;
  if (
    candidate === null || typeof candidate !== 'object' || candidate.format !== FORMAT ||
    !Number.isSafeInteger(candidate.sequence) || !Number.isSafeInteger(candidate.networks) ||
    candidate.files === null || typeof candidate.files !== 'object' ||
    (candidate.sha256 !== undefined && (candidate.sha256 === null || typeof candidate.sha256 !== 'object' ||
      !Object.values(candidate.sha256).every((digest) => typeof digest === 'string' && /^[0-9a-f]{64}$/.test(digest))))
  ) {
    return null;
  }
  return candidate as CheckpointManifest;
}

/** Why the files of `dir` do not match its manifest (a missing file, a wrong size), or null when they do. */
function filesProblem(dir: string, manifest: CheckpointManifest): string | null {
  for (const [file, size] of Object.entries(manifest.files)) {
    let actual: number;
    try {
      actual = fs.statSync(path.join(dir, file)).size;
    } catch {
      return `${file} is missing`;
    }
    if (actual !== size) return `${file} is ${actual} bytes, the manifest says ${size}`;
  }
  return null;
}

/** A directory beside the checkpoints that is not a complete one, and why. */
export interface DamagedCheckpoint {
  name: string;
  path: string;
  problem: string;
}

/** Every non-dot directory of `runDir`, sorted into complete checkpoints (oldest first) and the others. */
export function inspectCheckpoints(runDir: string): { complete: CheckpointInfo[]; damaged: DamagedCheckpoint[] } {
  let entries: fs.Dirent[];
  try {
    entries = fs.readdirSync(runDir, { withFileTypes: true });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { complete: [], damaged: [] };
    throw error;
  }
  const complete: CheckpointInfo[] = [];
  const damaged: DamagedCheckpoint[] = [];
  for (const entry of entries) {
    if (!entry.isDirectory() || entry.name.startsWith('.')) continue;
    const dir = path.join(runDir, entry.name);
    const manifest = readManifest(dir);
    const problem = manifest ? filesProblem(dir, manifest)
      : fs.existsSync(path.join(dir, MANIFEST)) ? `${MANIFEST} is not a valid lmcl checkpoint manifest` : `it has no ${MANIFEST}`;
    if (manifest && problem === null) complete.push({ name: entry.name, path: dir, manifest });
    else damaged.push({ name: entry.name, path: dir, problem: problem! });
  }
  complete.sort((a, b) => a.manifest.sequence - b.manifest.sequence || a.name.localeCompare(b.name));
  damaged.sort((a, b) => a.name.localeCompare(b.name));
  return { complete, damaged };
}

/** Complete checkpoints in `runDir`, oldest first (by sequence number). */
export function listCheckpoints(runDir: string): CheckpointInfo[] {
  return inspectCheckpoints(runDir).complete;
}

/**
 * The latest complete checkpoint of a run (highest sequence, preferring non-best ones), or null.
 * Read-only: leftovers of interrupted saves are skipped, never cleaned (only writers clean).
 */
export function latestCheckpoint(runDir: string): CheckpointInfo | null {
  const all = listCheckpoints(runDir);
  const regular = all.filter((info) => !info.manifest.best);
  const pool = regular.length > 0 ? regular : all;
  return pool.length > 0 ? pool[pool.length - 1]! : null;
}

// ---- save -----------------------------------------------------------------------------------

const HASH_CHUNK_BYTES = 8 * 1024 * 1024;

/** SHA-256 of a file's bytes (lower-case hex), read in chunks so big files need no big buffer. */
function sha256OfFile(file: string): string {
  const hash = createHash('sha256');
  const chunk = Buffer.allocUnsafe(HASH_CHUNK_BYTES);
  const fd = fs.openSync(file, 'r');
  try {
    for (let read = fs.readSync(fd, chunk, 0, chunk.length, null); read > 0; read = fs.readSync(fd, chunk, 0, chunk.length, null)) {
      hash.update(chunk.subarray(0, read));
    }
  } finally {
    fs.closeSync(fd);
  }
  return hash.digest('hex');
}

function numericField(state: unknown, key: string): string | undefined {
  if (state === null || typeof state !== 'object') return undefined;
  const value = (state as Record<string, unknown>)[key];
  return typeof value === 'number' && Number.isFinite(value) ? String(value) : undefined;
}

/**
 * Saves a checkpoint as `runDir/name` atomically (see the file comment), then prunes older ones
 * beyond keepLast. Returns the new checkpoint's info. Saving under an existing name replaces it.
 */
export function saveCheckpoint(
  runDir: string,
  name: string,
  payload: CheckpointPayload,
  options: SaveCheckpointOptions = {},
): CheckpointInfo {
  const where = 'saveCheckpoint';
  checkCheckpointName(name, where);
  const keepLast = options.keepLast ?? Infinity;
  if (!(keepLast === Infinity || (Number.isSafeInteger(keepLast) && keepLast >= 1))) {
    throw new Error(`${where}: keepLast must be an integer ≥ 1 (or Infinity), got ${String(keepLast)}`);
  }
  if (payload === null || typeof payload !== 'object' || !Array.isArray(payload.networks)) {
    throw new TypeError(`${where}: payload must be { networks: StateDict[], optimizerBuffers?, state }`);
  }
  payload.networks.forEach((network, index) => {
    if (!(network instanceof Map)) throw new TypeError(`${where}: networks[${index}] must be a Map (a state dict from stateDict())`);
  });
  for (const [name, tensors] of Object.entries(payload.tensorFiles ?? {})) {
    checkTensorFileName(name, where);
    if (!(tensors instanceof Map)) throw new TypeError(`${where}: tensorFiles.${name} must be a Map (a state dict)`);
  }

  // Collect the side tensors before touching the disk, so a bad state fails early.
  const sideTensors: TensorMap = new Map();
  for (const [key, entry] of payload.optimizerBuffers ?? new Map<string, SafetensorsEntry>()) {
    if (key.startsWith(STATE_TENSOR_PREFIX)) throw new Error(`${where}: optimizerBuffers name '${key}' must not start with '${STATE_TENSOR_PREFIX}'`);
    sideTensors.set(key, entry);
  }
  const encodedState = encodeState(payload.state, (at, data) => {
    const key = `${STATE_TENSOR_PREFIX}${at}`;
    if (sideTensors.has(key)) throw new Error(`${where}: two Float32Arrays map to the side tensor '${key}'`);
    sideTensors.set(key, { shape: [data.length], data });
    return key;
  });
  const stateText = `${JSON.stringify({ state: encodedState }, null, 1)}\n`;

  makeDirectories(runDir, where);
  cleanCheckpointScratch(runDir);
  const final = path.join(runDir, name);
  if (fs.existsSync(final) && readManifest(final) === null) {
    throw new Error(`${where}: '${final}' exists and is not an lmcl checkpoint; not replacing it`);
  }
  const existing = listCheckpoints(runDir);
  const sequence = existing.reduce((max, info) => Math.max(max, info.manifest.sequence), 0) + 1;

  const temp = path.join(runDir, scratchName(TEMP_PREFIX, name));
  // Scratch directories are registered before they exist, so no cleanup in this process takes them mid-save.
  const ours: string[] = [];
  const claim = (scratch: string): void => {
    ours.push(path.resolve(scratch));
    savesInProgress.add(path.resolve(scratch));
  };
  claim(temp);
  let info: CheckpointInfo;
  try {
    fs.mkdirSync(temp);
    const files: Record<string, number> = {};
    const sha256: Record<string, string> = {};
    const write = (file: string, writer: (target: string) => void): void => {
      const target = path.join(temp, file);
      writer(target);
      files[file] = fs.statSync(target).size;
      sha256[file] = sha256OfFile(target);
    };
    const epoch = numericField(payload.state, 'epoch');
    const step = numericField(payload.state, 'step');
    payload.networks.forEach((network, index) => {
      const metadata: Record<string, string> = { format: 'pt', lmcl_network: String(index), ...(payload.networkMetadata?.[index] ?? {}) };
      if (epoch !== undefined) metadata.epoch ??= epoch;
      if (step !== undefined) metadata.step ??= step;
      write(networkFile(index), (target) => writeSafetensors(target, network, metadata));
    });
    for (const [fileName, tensors] of Object.entries(payload.tensorFiles ?? {})) {
      const metadata: Record<string, string> = { format: 'pt', lmcl_file: fileName };
      if (epoch !== undefined) metadata.epoch = epoch;
      if (step !== undefined) metadata.step = step;
      write(tensorFile(fileName), (target) => writeSafetensors(target, tensors, metadata));
    }
    if (sideTensors.size > 0) write(OPTIMIZER, (target) => writeSafetensors(target, sideTensors, { format: 'lmcl-optimizer' }));
    write(STATE, (target) => writeFileAtomic(target, stateText));
    const manifest: CheckpointManifest = {
      format: FORMAT,
      version: 1,
      name,
      sequence,
      createdAt: new Date().toISOString(),
      best: options.best === true,
      networks: payload.networks.length,
      files,
      sha256,
    };
    writeFileAtomic(path.join(temp, MANIFEST), `${JSON.stringify(manifest, null, 2)}\n`);
    fsyncDirectory(temp);

    if (fs.existsSync(final)) {
      const old = path.join(runDir, scratchName(OLD_PREFIX, name));
      claim(old);
      fs.renameSync(final, old);
      fs.renameSync(temp, final);
      fsyncDirectory(runDir);
      removeDirectory(old);
    } else {
      fs.renameSync(temp, final);
      fsyncDirectory(runDir);
    }
    info = { name, path: final, manifest };
  } catch (error) {
    removeDirectory(temp);
    const reason = error instanceof Error ? error.message : String(error);
    throw new Error(`${where}: could not save checkpoint '${final}': ${reason}`, { cause: error });
  } finally {
    for (const scratch of ours) savesInProgress.delete(scratch);
  }
  pruneCheckpoints(runDir, keepLast, name);
  return info;
}

/** Deletes the oldest non-best checkpoints beyond `keepLast` (never `keep`, never best ones). */
function pruneCheckpoints(runDir: string, keepLast: number, keep: string): void {
  if (keepLast === Infinity) return;
  const regular = listCheckpoints(runDir).filter((info) => !info.manifest.best && info.name !== keep);
  const excess = regular.length - (keepLast - 1);
  if (excess <= 0) return;
  for (const info of regular.slice(0, excess)) {
    const trash = path.resolve(runDir, scratchName(TRASH_PREFIX, info.name));
    savesInProgress.add(trash);
    try {
      fs.renameSync(info.path, trash);
      fsyncDirectory(runDir);
      removeDirectory(trash);
    } finally {
      savesInProgress.delete(trash);
    }
  }
}

// ---- load -----------------------------------------------------------------------------------

/**
 * Loads a checkpoint. `pathOrRunDir` is a checkpoint directory (loaded as is) or a run directory
 * (its latest complete checkpoint). Errors name the path and the problem.
 */
export function loadCheckpoint(pathOrRunDir: string): LoadedCheckpoint {
  const where = 'loadCheckpoint';
  if (!fs.existsSync(pathOrRunDir)) throw new Error(`${where}: '${pathOrRunDir}' does not exist`);
  if (!fs.statSync(pathOrRunDir).isDirectory()) throw new Error(`${where}: '${pathOrRunDir}' is not a directory (expected a run or checkpoint directory)`);
  let dir = pathOrRunDir;
  if (!fs.existsSync(path.join(dir, MANIFEST))) {
    if (fs.existsSync(path.join(dir, STATE)) || fs.existsSync(path.join(dir, networkFile(0)))) {
      throw new Error(`${where}: '${dir}' looks like a checkpoint but has no ${MANIFEST}: it is incomplete`);
    }
    const latest = latestCheckpoint(dir);
    if (!latest) throw new Error(`${where}: no complete checkpoint in '${dir}'`);
    dir = latest.path;
  }
  const manifest = readManifest(dir);
  if (!manifest) throw new Error(`${where}: '${path.join(dir, MANIFEST)}' is not a valid lmcl checkpoint manifest`);
  for (const [file, size] of Object.entries(manifest.files)) {
    const target = path.join(dir, file);
    let actual: number;
    try {
      actual = fs.statSync(target).size;
    } catch {
      throw new Error(`${where}: checkpoint '${dir}' is missing ${file}`);
    }
    if (actual !== size) throw new Error(`${where}: '${target}' is ${actual} bytes, the manifest says ${size} (corrupt checkpoint)`);
  }
  // Sizes first (cheap, and the clearer message for truncation), then the content of each file.
  for (const [file, expected] of Object.entries(manifest.sha256 ?? {})) {
    const target = path.join(dir, file);
    if (!(file in manifest.files)) throw new Error(`${where}: '${path.join(dir, MANIFEST)}' has a sha256 for ${file}, which it does not list`);
    const actual = sha256OfFile(target);
    if (actual !== expected) {
      throw new Error(`${where}: '${target}' does not match the sha256 in the manifest (corrupt checkpoint: expected ${expected}, got ${actual})`);
    }
  }

  const networks: TensorMap[] = [];
  const networkMetadata: Record<string, string>[] = [];
  for (let index = 0; index < manifest.networks; index += 1) {
    const { tensors, metadata } = readSafetensors(path.join(dir, networkFile(index)));
    networks.push(tensors);
    networkMetadata.push(metadata);
  }
  const tensorFiles: Record<string, TensorMap> = {};
  for (const file of Object.keys(manifest.files)) {
    const match = /^([a-z][a-z0-9_]*)\.safetensors$/.exec(file);
    if (!match || /^net\d+$/.test(match[1]!) || file === OPTIMIZER) continue;
    tensorFiles[match[1]!] = readSafetensors(path.join(dir, file)).tensors;
  }
  const side: TensorMap = OPTIMIZER in manifest.files ? readSafetensors(path.join(dir, OPTIMIZER)).tensors : new Map();
  const statePath = path.join(dir, STATE);
  let parsed: { state?: unknown };
  try {
    parsed = JSON.parse(fs.readFileSync(statePath, 'utf8')) as { state?: unknown };
  } catch (error) {
    throw new Error(`${where}: cannot read '${statePath}': ${(error as Error).message}`, { cause: error });
  }
  const state = decodeState(
    parsed?.state,
    (key) => {
      const entry = side.get(key);
      if (!entry) throw new Error(`${where}: '${statePath}' refers to tensor '${key}', which ${OPTIMIZER} lacks`);
      return entry.data;
    },
    statePath,
  );
  const optimizerBuffers: TensorMap = new Map();
  for (const [key, entry] of side) if (!key.startsWith(STATE_TENSOR_PREFIX)) optimizerBuffers.set(key, entry);
  return { name: path.basename(dir), path: dir, manifest, networks, networkMetadata, optimizerBuffers, tensorFiles, state };
}
