// Resume robustness on a tiny job (two resnet8, 160 images of the bundled sample, 2 epochs):
// checkpoints/best rebuilt after a crash between the regular and the best save; a damaged newest
// checkpoint is named when the resume falls back; lost optimizer state is refused, not restarted;
// a damaged state.json is refused naming the field; 1 thread gives the bits of 2.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { train, type TrainResult } from '../../src/train/trainer.js';
import { evaluateCheckpoint } from '../../src/train/evaluate.js';
import { listCheckpoints, loadCheckpoint, saveCheckpoint } from '../../src/io/checkpoint.js';
import { engineInfo } from '../../src/runtime.js';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'lmcl-resume-'));
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

const tiny = { arch: 'resnet8', numberNet: 2, method: 'dml', epochs: 2, batchSize: 32, limitTrain: 160, limitTest: 64, evalBatchSize: 64, workers: 0, threads: 2 };

function release(result: TrainResult): void {
  for (const net of result.networks) net.dispose();
  result.method.dispose();
}

function networkBits(checkpoint: string): Buffer[] {
  return loadCheckpoint(checkpoint).networks.flatMap((net) => [...net.values()].map((entry) => Buffer.from(entry.data.buffer, entry.data.byteOffset, entry.data.byteLength)));
}

/** A copy of a finished run (its checkpoints, config, metrics) to damage. */
function copyRun(source: string, name: string): string {
  const target = path.join(root, name);
  fs.cpSync(source, target, { recursive: true });
  return target;
}

let finished = '';
let bestEpoch = 0;

beforeAll(async () => {
  const result = await train({ config: { ...tiny, out: root, name: 'finished' }, console: null, handleSignals: false });
  expect(result.status).toBe('completed');
  finished = result.runDir;
  bestEpoch = result.bestEpoch;
  release(result);
}, 120_000);

describe('resume', () => {
  const epochCheckpoint = (run: string, epoch: number): string => path.join(run, 'checkpoints', `checkpoint-e000${epoch}-s${epoch * 5}`);

  it('gives the same bits on 1 thread as on 2 (every kernel splits its sums by shape, never by thread count)', async () => {
    const single = await train({ config: { ...tiny, threads: 1, out: root, name: 'one-thread' }, console: null, handleSignals: false });
    expect(single.status).toBe('completed');
    release(single);
    expect(networkBits(epochCheckpoint(single.runDir, 2))).toEqual(networkBits(epochCheckpoint(finished, 2)));
  }, 120_000);

  it('rewrites a missing checkpoints/best (the process died between the regular and the best save)', async () => {
    const run = copyRun(finished, 'best-missing');
    fs.rmSync(path.join(run, 'checkpoints', 'best'), { recursive: true });
    const lines: string[] = [];
    const resumed = await train({ config: { resume: run }, console: (line) => lines.push(line), handleSignals: false });
    release(resumed);
    const best = path.join(run, 'checkpoints', 'best');
    expect(lines.join('\n')).toContain(`${best} was missing (best epoch ${bestEpoch}); rewrote it from ${epochCheckpoint(run, bestEpoch)}`);
    expect(listCheckpoints(path.join(run, 'checkpoints')).find((info) => info.name === 'best')!.manifest.best).toBe(true);
    expect((loadCheckpoint(best).state as { epoch: number }).epoch).toBe(bestEpoch);
    expect(networkBits(best)).toEqual(networkBits(epochCheckpoint(run, bestEpoch)));
  });

  it('rewrites a stale checkpoints/best (another epoch than the state records); leaves a right one alone', async () => {
    const run = copyRun(finished, 'best-stale');
    const other = bestEpoch === 1 ? 2 : 1;
    const wrong = loadCheckpoint(epochCheckpoint(run, other));
    saveCheckpoint(path.join(run, 'checkpoints'), 'best', { networks: wrong.networks, optimizerBuffers: wrong.optimizerBuffers, state: wrong.state }, { best: true });
    const lines: string[] = [];
    const resumed = await train({ config: { resume: run }, console: (line) => lines.push(line), handleSignals: false });
    release(resumed);
    const best = path.join(run, 'checkpoints', 'best');
    expect(lines.join('\n')).toContain(`${best} held epoch ${other}, not the best epoch ${bestEpoch}; rewrote it from ${epochCheckpoint(run, bestEpoch)}`);
    expect(networkBits(best)).toEqual(networkBits(epochCheckpoint(run, bestEpoch)));
    // A right best is left alone.
    const again: string[] = [];
    release(await train({ config: { resume: run }, console: (line) => again.push(line), handleSignals: false }));
    expect(again.join('\n')).not.toMatch(/checkpoints\/best/);
  });

  it('says which damaged checkpoint it skipped when it falls back to an older one', async () => {
    const run = copyRun(finished, 'newest-damaged');
    const newest = epochCheckpoint(run, 2);
    fs.appendFileSync(path.join(newest, 'net1.safetensors'), 'x');
    const lines: string[] = [];
    const resumed = await train({ config: { resume: run }, console: (line) => lines.push(line), handleSignals: false });
    expect(resumed.step).toBe(10);
    release(resumed);
    const log = lines.join('\n');
    expect(log).toMatch(new RegExp(`skipped damaged checkpoint ${newest.replace(/[.\\]/g, '\\$&')}: net1\\.safetensors is \\d+ bytes, the manifest says \\d+`));
    expect(log).toContain(`from ${epochCheckpoint(run, 1)} at epoch 2`);
    // With nothing complete left, the error says what is wrong with each.
    const broken = copyRun(finished, 'all-damaged');
    for (const name of ['best', 'checkpoint-e0001-s5', 'checkpoint-e0002-s10']) fs.rmSync(path.join(broken, 'checkpoints', name, 'checkpoint.json'));
    await expect(train({ config: { resume: broken }, console: null, handleSignals: false }))
      .rejects.toThrow(/^--resume .*all-damaged: no complete checkpoint found there \(damaged: .*best: it has no checkpoint\.json; .*checkpoint-e0001-s5: it has no checkpoint\.json; /);
  });

  it('--resume auto says which run folder it skipped because every checkpoint there is damaged', async () => {
    const out = path.join(root, 'auto-out');
    const broken = copyRun(finished, path.join('auto-out', 'autorun'));
    for (const name of ['best', 'checkpoint-e0001-s5', 'checkpoint-e0002-s10']) fs.rmSync(path.join(broken, 'checkpoints', name, 'checkpoint.json'));
    const lines: string[] = [];
    const fresh = await train({ config: { ...tiny, epochs: 1, out, name: 'autorun', resume: 'auto' }, console: (line) => lines.push(line), handleSignals: false });
    release(fresh);
    expect(fresh.runDir).toBe(path.join(out, 'autorun_2'));
    expect(lines.join('\n')).toMatch(new RegExp(`--resume auto: skipped ${broken.replace(/[.\\]/g, '\\$&')}, no complete checkpoint \\(damaged: .*checkpoint-e0001-s5: it has no checkpoint\\.json`));
  });

  it('refuses a checkpoint whose optimizer file or one momentum buffer is missing, naming it', async () => {
    // optimizer.safetensors deleted, and dropped from the manifest so the checkpoint looks complete.
    const run = copyRun(finished, 'optimizer-missing');
    const newest = epochCheckpoint(run, 2);
    const buffers = loadCheckpoint(newest).optimizerBuffers.size;
    fs.rmSync(path.join(newest, 'optimizer.safetensors'));
    const manifest = JSON.parse(fs.readFileSync(path.join(newest, 'checkpoint.json'), 'utf8'));
    delete manifest.files['optimizer.safetensors'];
    delete manifest.sha256['optimizer.safetensors'];
    fs.writeFileSync(path.join(newest, 'checkpoint.json'), JSON.stringify(manifest));
    await expect(train({ config: { resume: newest }, console: null, handleSignals: false })).rejects.toThrow(new RegExp(
      `checkpoint-e0002-s10: incomplete optimizer state: optimizer\\.safetensors \\(not in this checkpoint\\) lacks ${buffers} of the ${buffers} momentum buffers of parameter set 'main' \\(main\\.0\\.momentum_buffer, main\\.1\\.momentum_buffer, main\\.2\\.momentum_buffer, \\.\\.\\.\\)`));

    // One buffer dropped from optimizer.safetensors.
    const source = loadCheckpoint(epochCheckpoint(finished, 2));
    const oneLess = new Map(source.optimizerBuffers);
    oneLess.delete('main.7.momentum_buffer');
    const dir = path.join(root, 'one-buffer-missing', 'checkpoints');
    saveCheckpoint(dir, 'checkpoint-e0002-s10', { networks: source.networks, optimizerBuffers: oneLess, state: source.state });
    await expect(train({ config: { resume: path.join(dir, 'checkpoint-e0002-s10') }, console: null, handleSignals: false }))
      .rejects.toThrow(/incomplete optimizer state: optimizer\.safetensors lacks 1 of the \d+ momentum buffers of parameter set 'main' \(main\.7\.momentum_buffer\)/);

    // A checkpoint from before buffers were recorded, without any: refused too.
    const state = structuredClone(source.state) as { optimizers: Record<string, { momentumBuffers?: number[] }> };
    delete state.optimizers.main!.momentumBuffers;
    const old = path.join(root, 'old-format-no-buffers', 'checkpoints');
    saveCheckpoint(old, 'checkpoint-e0002-s10', { networks: source.networks, state });
    await expect(train({ config: { resume: path.join(old, 'checkpoint-e0002-s10') }, console: null, handleSignals: false }))
      .rejects.toThrow(/incomplete optimizer state: optimizer\.safetensors \(not in this checkpoint\) has no momentum buffer for parameter set 'main' after 10 steps with momentum 0\.9/);
  });

  it('records which momentum buffers exist in state.json', () => {
    const loaded = loadCheckpoint(epochCheckpoint(finished, 2));
    const recorded = (loaded.state as { optimizers: Record<string, { momentumBuffers: number[] }> }).optimizers.main!.momentumBuffers;
    expect(recorded).toEqual([...loaded.optimizerBuffers.keys()].map((key) => Number(key.split('.')[1])).sort((a, b) => a - b));
  });

  it('refuses a damaged state.json field by field, naming the field', async () => {
    const source = loadCheckpoint(epochCheckpoint(finished, 1));
    const damage: [string, (state: Record<string, any>) => void, RegExp][] = [
      ['no-config', (state) => delete state.config, /field 'config' must be an object \(the run configuration\), got undefined/],
      ['meters-null', (state) => (state.meters = null), /field 'meters' must be an object \{ lossSums, correct, seen, batches, trainSeconds \}, got null/],
      ['step-text', (state) => (state.step = 'x'), /field 'step' must be an integer ≥ 0, got "x"/],
      ['position-negative', (state) => (state.position = -1), /field 'position' must be an integer ≥ 0, got number -1/],
      ['rng-short', (state) => (state.rng = [1, 2]), /field 'rng' must be the 5-number generator state .*, got an array of 2/],
      ['correct-text', (state) => (state.meters.correct = ['1', 0]), /field 'meters\.correct' must be an array of counts/],
      ['optimizers-missing', (state) => delete state.optimizers, /field 'optimizers' must be an object of optimizer states by parameter set name, got undefined/],
      ['history-short', (state) => (state.history = []), /field 'history' has 0 epoch records, but 'epoch' says 1 epochs are done/],
      ['bad-config', (state) => (state.config.lr = 'fast'), /field 'config': --lr /],
    ];
    for (const [name, change, message] of damage) {
      const state = structuredClone(source.state) as Record<string, any>;
      change(state);
      const dir = path.join(root, `state-${name}`, 'checkpoints');
      saveCheckpoint(dir, 'checkpoint-e0001-s5', { networks: source.networks, optimizerBuffers: source.optimizerBuffers, state });
      const checkpoint = path.join(dir, 'checkpoint-e0001-s5');
      await expect(train({ config: { resume: checkpoint }, console: null, handleSignals: false }), name)
        .rejects.toThrow(new RegExp(`^${checkpoint.replace(/[.\\]/g, '\\$&')}: state\\.json: ${message.source}`));
    }
    // lmcl eval reads only the configuration, with the same messages.
    await expect(evaluateCheckpoint(path.join(root, 'state-bad-config', 'checkpoints', 'checkpoint-e0001-s5'))).rejects.toThrow(/state\.json: field 'config': --lr /);
    await expect(evaluateCheckpoint(path.join(root, 'state-no-config', 'checkpoints', 'checkpoint-e0001-s5'))).rejects.toThrow(/has no training state \(state\.json without a config\)/);
    expect((await evaluateCheckpoint(path.join(root, 'state-meters-null', 'checkpoints', 'checkpoint-e0001-s5'))).result.count).toBe(64);
  });

  it('lmcl eval --device: cpu gives the default result; cuda without a device is an Error that says so', async () => {
    const checkpoint = path.join(finished, 'checkpoints', 'checkpoint-e0002-s10');
    const byDefault = await evaluateCheckpoint(checkpoint);
    expect((await evaluateCheckpoint(checkpoint, { device: 'cpu' })).result).toEqual(byDefault.result);
    if (!(engineInfo().cudaCompiled && engineInfo().cudaDevices > 0)) {
      await expect(evaluateCheckpoint(checkpoint, { device: 'cuda' })).rejects.toThrow(/^eval --device cuda: no CUDA device/);
    }
  });
});
