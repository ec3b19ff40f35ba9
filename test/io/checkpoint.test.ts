// Checkpoints: layout, bit-exact round trip, latest/rotation/best, crash leftovers.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  checkpointName, cleanCheckpointScratch, latestCheckpoint, listCheckpoints, loadCheckpoint, saveCheckpoint, type CheckpointPayload,
} from '../../src/io/checkpoint.js';
import { readSafetensors } from '../../src/io/safetensors.js';

type Entry = { shape: number[]; data: Float32Array };
let runDir: string;

beforeEach(() => {
  runDir = fs.mkdtempSync(path.join(os.tmpdir(), 'lmcl-ckpt-'));
});
afterEach(() => {
  vi.restoreAllMocks();
  fs.rmSync(runDir, { recursive: true, force: true });
});

function bits(data: Float32Array): number[] {
  return Array.from(new Uint32Array(data.buffer, data.byteOffset, data.length));
}

function fromBits(values: number[]): Float32Array {
  return new Float32Array(new Uint32Array(values).buffer);
}

const awkward = [0x7fc12345, 0xffc00001, 0x7f800001, 0x80000000, 0x00000001, 0x807fffff, 0x7f800000, 0x3eaaaaab];

function net(seed: number): Map<string, Entry> {
  return new Map<string, Entry>([
    ['conv1.weight', { shape: [2, 1, 2, 2], data: fromBits(awkward.map((b) => (b + seed) >>> 0)) }],
    ['bn1.running_mean', { shape: [2], data: new Float32Array([seed, -0]) }],
    ['bn1.num_batches_tracked', { shape: [], data: new Float32Array([seed * 10]) }],
  ]);
}

function payload(epoch: number, step: number): CheckpointPayload {
  return {
    networks: [net(epoch), net(epoch + 100)],
    networkMetadata: [{ architecture: 'resnet8' }, { architecture: 'wrn_16_2' }],
    optimizerBuffers: new Map([['objective0.embed.weight', { shape: [2, 2], data: fromBits(awkward.slice(0, 4)) }]]),
    state: {
      epoch,
      step,
      optimizers: [{ state: { 0: { momentumBuffer: fromBits(awkward) } }, paramGroups: [{ lr: 0.1, params: [0] }] }],
      scheduler: { lastEpoch: epoch, factors: [0.1, 0.01] },
      rng: [1, 2, 3, 4294967295, Number.NaN],
      sampler: { position: 17, order: Int32Array.from([3, 1, 2, 0]) },
      best: { metric: -Infinity, negativeZero: -0, infinite: Infinity },
      history: [{ loss: 1.5 }, { loss: Number.NaN }],
      config: { model: ['resnet8', 'wrn_16_2'], lr: 0.1, note: 'x', nested: { deep: [1, [2, null]] } },
      seen: new Map([['a', 1]]),
      counter: 2n ** 70n,
    },
  };
}

describe('checkpoints', () => {
  it('writes the documented layout, loadable by a safetensors reader', () => {
    const info = saveCheckpoint(runDir, checkpointName(3, 1200), payload(3, 1200), { keepLast: 3 });
    expect(info.name).toBe('checkpoint-e0003-s1200');
    expect(fs.readdirSync(runDir)).toEqual(['checkpoint-e0003-s1200']);
    expect(fs.readdirSync(info.path).sort()).toEqual(['checkpoint.json', 'net0.safetensors', 'net1.safetensors', 'optimizer.safetensors', 'state.json']);
    const net1 = readSafetensors(path.join(info.path, 'net1.safetensors'));
    expect([...net1.tensors.keys()]).toEqual(['conv1.weight', 'bn1.running_mean', 'bn1.num_batches_tracked']);
    expect(net1.metadata).toMatchObject({ format: 'pt', architecture: 'wrn_16_2', epoch: '3', step: '1200' });
    const optimizer = readSafetensors(path.join(info.path, 'optimizer.safetensors'));
    expect([...optimizer.tensors.keys()].sort()).toEqual(['objective0.embed.weight', 'state:optimizers.0.state.0.momentumBuffer']);
    const state = JSON.parse(fs.readFileSync(path.join(info.path, 'state.json'), 'utf8'));
    expect(state.state.epoch).toBe(3);
    expect(state.state.config.model).toEqual(['resnet8', 'wrn_16_2']);
  });

  it('round-trips networks, buffers and state exactly (NaN payloads, -0, denormals, typed arrays)', () => {
    const saved = payload(5, 50);
    saveCheckpoint(runDir, 'ck', saved);
    const loaded = loadCheckpoint(path.join(runDir, 'ck'));
    expect(loaded.name).toBe('ck');
    expect(loaded.networks).toHaveLength(2);
    loaded.networks.forEach((network, index) => {
      const expected = saved.networks[index]!;
      expect([...network.keys()]).toEqual([...expected.keys()]);
      for (const [name, entry] of expected) {
        expect(network.get(name)!.shape).toEqual(entry.shape);
        expect(bits(network.get(name)!.data)).toEqual(bits(entry.data));
      }
    });
    expect(loaded.networkMetadata[0]!.architecture).toBe('resnet8');
    expect([...loaded.optimizerBuffers.keys()]).toEqual(['objective0.embed.weight']);
    expect(bits(loaded.optimizerBuffers.get('objective0.embed.weight')!.data)).toEqual(awkward.slice(0, 4));

    const state = loaded.state as any;
    const original = saved.state as any;
    const momentum = state.optimizers[0].state['0'].momentumBuffer;
    expect(momentum).toBeInstanceOf(Float32Array);
    expect(bits(momentum)).toEqual(awkward);
    expect(state.optimizers[0].paramGroups).toEqual(original.optimizers[0].paramGroups);
    expect(state.rng).toHaveLength(5);
    expect(state.rng.slice(0, 4)).toEqual([1, 2, 3, 4294967295]);
    expect(Number.isNaN(state.rng[4])).toBe(true);
    expect(state.sampler.order).toBeInstanceOf(Int32Array);
    expect(Array.from(state.sampler.order)).toEqual([3, 1, 2, 0]);
    expect(state.best.metric).toBe(-Infinity);
    expect(Object.is(state.best.negativeZero, -0)).toBe(true);
    expect(state.best.infinite).toBe(Infinity);
    expect(Number.isNaN(state.history[1].loss)).toBe(true);
    expect(state.config).toEqual(original.config);
    expect(state.seen).toEqual(new Map([['a', 1]]));
    expect(state.counter).toBe(2n ** 70n);
  });

  it('finds the latest complete checkpoint of a run directory and rotates old ones', () => {
    expect(latestCheckpoint(runDir)).toBeNull();
    expect(() => loadCheckpoint(runDir)).toThrow(/no complete checkpoint in/);
    for (let epoch = 1; epoch <= 5; epoch += 1) {
      saveCheckpoint(runDir, checkpointName(epoch, epoch * 10), payload(epoch, epoch * 10), { keepLast: 2 });
      if (epoch === 2) saveCheckpoint(runDir, 'best', payload(epoch, epoch * 10), { best: true });
    }
    expect(fs.readdirSync(runDir).sort()).toEqual(['best', 'checkpoint-e0004-s40', 'checkpoint-e0005-s50']);
    expect(latestCheckpoint(runDir)!.name).toBe('checkpoint-e0005-s50');
    expect((loadCheckpoint(runDir).state as any).epoch).toBe(5);
    expect((loadCheckpoint(path.join(runDir, 'best')).state as any).epoch).toBe(2);
    // Replacing 'best' keeps a single, updated directory.
    saveCheckpoint(runDir, 'best', payload(5, 50), { best: true });
    expect((loadCheckpoint(path.join(runDir, 'best')).state as any).epoch).toBe(5);
    expect(latestCheckpoint(runDir)!.name).toBe('checkpoint-e0005-s50'); // best is not "latest"
    // Latest is by save order (sequence), not by name.
    saveCheckpoint(runDir, 'checkpoint-e0001-s1', payload(9, 1), { keepLast: 2 });
    expect(latestCheckpoint(runDir)!.name).toBe('checkpoint-e0001-s1');
    expect(listCheckpoints(runDir).map((info) => info.name)).toEqual(['checkpoint-e0005-s50', 'best', 'checkpoint-e0001-s1']); // save order
  });

  it('keepLast = 1 keeps only the newest; a best-only run resumes from best', () => {
    saveCheckpoint(runDir, 'best', payload(1, 1), { best: true });
    expect(latestCheckpoint(runDir)!.name).toBe('best');
    saveCheckpoint(runDir, 'a', payload(1, 1), { keepLast: 1 });
    saveCheckpoint(runDir, 'b', payload(2, 2), { keepLast: 1 });
    expect(fs.readdirSync(runDir).sort()).toEqual(['b', 'best']);
    expect(() => saveCheckpoint(runDir, 'c', payload(3, 3), { keepLast: 0 })).toThrow(/keepLast must be an integer ≥ 1/);
    expect(() => saveCheckpoint(runDir, '../escape', payload(3, 3))).toThrow(/bad checkpoint name/);
    expect(() => saveCheckpoint(runDir, '.hidden', payload(3, 3))).toThrow(/bad checkpoint name/);
    fs.mkdirSync(path.join(runDir, 'notes'));
    expect(() => saveCheckpoint(runDir, 'notes', payload(3, 3))).toThrow(/'.*notes' exists and is not an lmcl checkpoint; not replacing it/);
  });

  it('readers never delete or rename anything, not even leftovers of a writer that looks gone', () => {
    saveCheckpoint(runDir, 'a', payload(1, 1));
    // What a trainer on another host looks like from here mid-save (its pid means nothing on this
    // host), a dead writer of this host, one in the old name format, and a moved-aside 'best'.
    const here = os.hostname().replace(/[^A-Za-z0-9._-]/g, '_').slice(0, 64);
    const leftovers = [
      '.tmp-checkpoint-b@other-host-999999999-abcdef', `.tmp-checkpoint-c@${here}-999999999-abcdef`,
      '.trash-a-999999999-0123', '.old-best-999999999-00ff',
    ];
    for (const name of leftovers) fs.mkdirSync(path.join(runDir, name));
    fs.writeFileSync(path.join(runDir, leftovers[0]!, 'net0.safetensors'), 'partial');
    const before = fs.readdirSync(runDir).sort();
    expect(latestCheckpoint(runDir)!.name).toBe('a');
    expect(listCheckpoints(runDir).map((info) => info.name)).toEqual(['a']);
    expect((loadCheckpoint(runDir).state as any).epoch).toBe(1);
    expect((loadCheckpoint(path.join(runDir, 'a')).state as any).epoch).toBe(1);
    expect(fs.readdirSync(runDir).sort()).toEqual(before);
    expect(fs.readFileSync(path.join(runDir, leftovers[0]!, 'net0.safetensors'), 'utf8')).toBe('partial');
  });

  it('a writer removes only provably abandoned leftovers; a failed save changes nothing', () => {
    saveCheckpoint(runDir, 'a', payload(1, 1));
    const here = os.hostname().replace(/[^A-Za-z0-9._-]/g, '_').slice(0, 64);
    const dead = `.tmp-checkpoint-b@${here}-999999999-abcdef`; // this host, the process is gone
    const ownStale = `.trash-old@${here}-${process.pid}-0123`; // this process, no save of ours in progress
    const foreign = '.tmp-checkpoint-b@other-host-999999999-abcdef'; // another host: may be running
    const legacy = '.tmp-checkpoint-b-999999999-abcdef'; // old format: host unknown
    const alive = `.tmp-checkpoint-d@${here}-${process.ppid}-abcdef`; // this host, a live process
    for (const name of [dead, ownStale, foreign, legacy, alive]) fs.mkdirSync(path.join(runDir, name));
    saveCheckpoint(runDir, 'b', payload(2, 2));
    expect(fs.readdirSync(runDir).sort()).toEqual([foreign, legacy, alive, 'a', 'b'].sort());

    // A cleanup in this process while a save is in progress (say, a second writer) leaves that save alone.
    const realRename = fs.renameSync;
    let report: ReturnType<typeof cleanCheckpointScratch> | undefined;
    vi.spyOn(fs, 'renameSync').mockImplementation((from, to) => {
      if (path.basename(String(from)).startsWith('.tmp-checkpoint-c@')) report = cleanCheckpointScratch(runDir);
      return realRename(from, to);
    });
    saveCheckpoint(runDir, 'c', payload(3, 3));
    vi.restoreAllMocks();
    expect(report!.removed).toEqual([]);
    expect(report!.kept.some((dir) => path.basename(dir).startsWith('.tmp-checkpoint-c@'))).toBe(true);
    expect((loadCheckpoint(path.join(runDir, 'c')).state as any).epoch).toBe(3);

    // A failure midway (the manifest write) leaves the previous state as it was.
    vi.spyOn(fs, 'renameSync').mockImplementation((from, to) => {
      if (String(to).endsWith('checkpoint.json')) throw new Error('injected failure');
      return realRename(from, to);
    });
    const listing = fs.readdirSync(runDir).sort();
    expect(() => saveCheckpoint(runDir, 'e', payload(4, 4), { keepLast: 1 })).toThrow(/saveCheckpoint: could not save checkpoint '.*e': .*injected failure/);
    vi.restoreAllMocks();
    expect(fs.readdirSync(runDir).sort()).toEqual(listing);
    expect((loadCheckpoint(runDir).state as any).epoch).toBe(3);
  });

  it('a writer restores a checkpoint moved aside by a save that crashed between its two renames', () => {
    saveCheckpoint(runDir, 'best', payload(4, 4), { best: true });
    const here = os.hostname().replace(/[^A-Za-z0-9._-]/g, '_').slice(0, 64);
    fs.renameSync(path.join(runDir, 'best'), path.join(runDir, `.old-best@${here}-999999999-00ff`));
    expect(latestCheckpoint(runDir)).toBeNull(); // readers only look
    expect(cleanCheckpointScratch(runDir).restored).toEqual([path.join(runDir, 'best')]);
    expect(latestCheckpoint(runDir)!.name).toBe('best');
    expect((loadCheckpoint(path.join(runDir, 'best')).state as any).epoch).toBe(4);
  });

  it('rejects incomplete or corrupt checkpoints with clear errors', () => {
    const info = saveCheckpoint(runDir, 'a', payload(1, 1));
    expect(() => loadCheckpoint(path.join(runDir, 'nope'))).toThrow(/'.*nope' does not exist/);
    fs.appendFileSync(path.join(info.path, 'net1.safetensors'), 'x');
    expect(() => loadCheckpoint(info.path)).toThrow(/net1\.safetensors' is \d+ bytes, the manifest says \d+ \(corrupt checkpoint\)/);
    expect(latestCheckpoint(runDir)).toBeNull(); // a checkpoint whose files do not match is not complete
    fs.rmSync(path.join(info.path, 'checkpoint.json'));
    expect(() => loadCheckpoint(info.path)).toThrow(/looks like a checkpoint but has no checkpoint\.json: it is incomplete/);
  });

  it('records a sha256 per file and rejects a flipped bit naming the file; checkpoints without sha256 still load', () => {
    const info = saveCheckpoint(runDir, 'a', payload(1, 1));
    const manifest = JSON.parse(fs.readFileSync(path.join(info.path, 'checkpoint.json'), 'utf8'));
    expect(Object.keys(manifest.sha256).sort()).toEqual(Object.keys(manifest.files).sort());
    for (const digest of Object.values(manifest.sha256)) expect(digest).toMatch(/^[0-9a-f]{64}$/);
    for (const file of ['net1.safetensors', 'optimizer.safetensors', 'state.json']) {
      const target = path.join(info.path, file);
      const original = fs.readFileSync(target);
      const flipped = Buffer.from(original);
      flipped[flipped.length - 2]! ^= 0x10; // same size: only the content check can see it
      fs.writeFileSync(target, flipped);
      expect(() => loadCheckpoint(info.path)).toThrow(new RegExp(`'.*${file.replace('.', '\\.')}' does not match the sha256 in the manifest \\(corrupt checkpoint: expected [0-9a-f]{64}, got [0-9a-f]{64}\\)`));
      fs.writeFileSync(target, original);
    }
    expect((loadCheckpoint(info.path).state as any).epoch).toBe(1);
    // A checkpoint written before sha256 was recorded.
    delete manifest.sha256;
    fs.writeFileSync(path.join(info.path, 'checkpoint.json'), JSON.stringify(manifest));
    expect((loadCheckpoint(info.path).state as any).epoch).toBe(1);
  });

  it('rejects state it cannot store', () => {
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    expect(() => saveCheckpoint(runDir, 'a', { networks: [], state: cyclic })).toThrow(/state\.self contains a cycle/);
    expect(() => saveCheckpoint(runDir, 'a', { networks: [], state: { x: { $lmcl: 1 } } })).toThrow(/reserves/);
    expect(fs.readdirSync(runDir)).toEqual([]);
  });
});
