// The training loop on a tiny job (two resnet8 on 160 images of the bundled Fashion-MNIST sample):
// resume == uninterrupted (bit-exact weights, optimizer buffers and metrics), NaN stop keeps the
// last good checkpoint, run-directory files.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import * as F from '../../src/ops/functional.js';
import { tensor } from '../../src/tensor/creation.js';
import { train, type TrainResult } from '../../src/train/trainer.js';
import { DmlMethod } from '../../src/losses/dml.js';
import { loadCheckpoint, saveCheckpoint } from '../../src/io/checkpoint.js';
import { LossParts } from '../../src/losses/parts.js';
import type { Student } from '../../src/models/types.js';
import type { StepBatch, StepContext, StepResult } from '../../src/losses/method.js';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'lmcl-train-'));
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

// 160 images / batch 32 = 5 steps per epoch; tiny test set.
const tiny = { arch: 'resnet8', numberNet: 2, method: 'dml', epochs: 2, batchSize: 32, limitTrain: 160, limitTest: 64, evalBatchSize: 64, workers: 0, threads: 2 };

function weights(networks: Student[]): Float32Array[] {
  return networks.flatMap((net) => [...net.stateDict().values()].map((entry) => entry.data));
}

function release(result: TrainResult): void {
  for (const net of result.networks) net.dispose();
  result.method.dispose();
}

function stripTimes(file: string): unknown[] {
  return fs.readFileSync(file, 'utf8').trim().split('\n').map((line) => {
    const record = JSON.parse(line) as Record<string, unknown>;
    for (const key of ['imagesPerSecond', 'trainSeconds', 'evalSeconds', 'elapsedSeconds', 'dataSeconds', 'rssMegabytes']) delete record[key];
    return record;
  });
}

function expectSameBits(a: Float32Array[], b: Float32Array[]): void {
  expect(a.length).toBe(b.length);
  a.forEach((values, k) => {
    const other = b[k]!;
    expect(values.length).toBe(other.length);
    expect(Buffer.from(values.buffer, values.byteOffset, values.byteLength).equals(Buffer.from(other.buffer, other.byteOffset, other.byteLength))).toBe(true);
  });
}

describe('trainer', () => {
  let reference: Float32Array[] = [];
  let referenceDir = '';

  it('runs a tiny DML job and writes the run directory', async () => {
    const result = await train({ config: { ...tiny, out: root, name: 'full' }, console: null, handleSignals: false });
    expect(result.status).toBe('completed');
    expect(result.exitCode).toBe(0);
    expect(result.epochsCompleted).toBe(2);
    expect(result.step).toBe(10);
    referenceDir = result.runDir;
    reference = weights(result.networks);
    release(result);
    for (const file of ['config.json', 'metrics.jsonl', 'summary.csv', 'train.log']) expect(fs.existsSync(path.join(referenceDir, file))).toBe(true);
    const config = JSON.parse(fs.readFileSync(path.join(referenceDir, 'config.json'), 'utf8'));
    expect(config.seed).toBe(0);
    expect(config.engine.simd).toBeTypeOf('string');
    expect(config.dataset.source).toBe('bundled');
    expect(config.keepLast).toBe(2);
    const lines = fs.readFileSync(path.join(referenceDir, 'metrics.jsonl'), 'utf8').trim().split('\n');
    expect(lines).toHaveLength(2);
    const last = JSON.parse(lines[1]!);
    expect(last.test.networks).toHaveLength(2);
    expect(last.test.ensemble.top1).toBeGreaterThanOrEqual(0);
    expect(last.trainTop1).toHaveLength(2);
    expect(last.train.kd).toBeGreaterThan(0);
    const csv = fs.readFileSync(path.join(referenceDir, 'summary.csv'), 'utf8').trim().split('\n');
    expect(csv[0]).toContain('test_top1_ensemble');
    expect(csv).toHaveLength(3);
    const checkpoints = fs.readdirSync(path.join(referenceDir, 'checkpoints')).filter((name) => !name.startsWith('.')).sort();
    expect(checkpoints).toEqual(['best', 'checkpoint-e0001-s5', 'checkpoint-e0002-s10']);
  });

  it('--save-every-steps checkpoints mid-epoch; a resume from one of them ends with the same bits', async () => {
    const first = await train({ config: { ...tiny, out: root, name: 'every-3', saveEverySteps: 3, keepLast: 10 }, console: null, handleSignals: false });
    expect(first.status).toBe('completed');
    expectSameBits(weights(first.networks), reference);
    release(first);
    const saved = fs.readdirSync(path.join(first.runDir, 'checkpoints')).filter((name) => name.startsWith('checkpoint-')).sort();
    // Steps 3, 6, 9 mid-epoch; 5 and 10 at the epoch ends (no second save of an epoch's last step).
    expect(saved).toEqual(['checkpoint-e0000-s3', 'checkpoint-e0001-s5', 'checkpoint-e0001-s6', 'checkpoint-e0001-s9', 'checkpoint-e0002-s10']);
    const resumed = await train({ config: { resume: path.join(first.runDir, 'checkpoints', 'checkpoint-e0001-s6'), out: root }, console: null, handleSignals: false });
    expect(resumed.status).toBe('completed');
    expect(resumed.step).toBe(10);
    expectSameBits(weights(resumed.networks), reference);
    release(resumed);
  });

  it('--eval-every skips the test split on other epochs (null record, empty csv cells), always evaluates the last, and trains the same bits', async () => {
    const first = await train({ config: { ...tiny, out: root, name: 'eval-every', evalEvery: 3 }, console: null, handleSignals: false, stopAfterSteps: 5 });
    expect(first.status).toBe('interrupted');
    release(first);
    // The resume reads a state.json whose history holds an epoch without evaluation.
    const resumed = await train({ config: { resume: first.runDir, out: root }, console: null, handleSignals: false });
    expect(resumed.status).toBe('completed');
    expectSameBits(weights(resumed.networks), reference);
    expect(resumed.bestEpoch).toBe(2);
    release(resumed);
    const records = fs.readFileSync(path.join(first.runDir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((line) => JSON.parse(line));
    expect(records.map((record) => record.test === null)).toEqual([true, false]);
    const csv = fs.readFileSync(path.join(first.runDir, 'summary.csv'), 'utf8').trim().split('\n').map((line) => line.split(','));
    const column = csv[0]!.indexOf('test_top1_net0');
    expect(csv[1]![column]).toBe('');
    expect(Number(csv[2]![column])).toBeGreaterThan(0);
  });

  it('resume == uninterrupted, bit for bit (stop after epoch 1, and mid-epoch)', async () => {
    for (const [name, stopAfterSteps] of [['epoch-boundary', 5], ['mid-epoch', 7]] as const) {
      const first = await train({ config: { ...tiny, out: root, name, workers: 1 }, console: null, handleSignals: false, stopAfterSteps });
      expect(first.status).toBe('interrupted');
      expect(first.exitCode).toBe(130);
      release(first);
      const resumed = await train({ config: { resume: first.runDir, out: root }, console: null, handleSignals: false });
      expect(resumed.status).toBe('completed');
      expect(resumed.step).toBe(10);
      expectSameBits(weights(resumed.networks), reference);
      release(resumed);
      expect(stripTimes(path.join(resumed.runDir, 'metrics.jsonl'))).toEqual(stripTimes(path.join(referenceDir, 'metrics.jsonl')));
      // Optimizer momentum buffers are identical too.
      const a = loadCheckpoint(path.join(referenceDir, 'checkpoints', 'checkpoint-e0002-s10'));
      const b = loadCheckpoint(path.join(resumed.runDir, 'checkpoints', 'checkpoint-e0002-s10'));
      expectSameBits([...a.optimizerBuffers.values()].map((e) => e.data), [...b.optimizerBuffers.values()].map((e) => e.data));
    }
  });

  it('resume auto finds the run of the same config; differing trajectory flags are refused', async () => {
    const first = await train({ config: { ...tiny, out: path.join(root, 'auto'), epochs: 1 }, console: null, handleSignals: false, stopAfterSteps: 2 });
    release(first);
    const resumed = await train({ config: { ...tiny, out: path.join(root, 'auto'), epochs: 1, resume: 'auto' }, console: null, handleSignals: false });
    expect(resumed.runDir).toBe(first.runDir);
    expect(resumed.step).toBe(5);
    release(resumed);
    await expect(train({ config: { resume: first.runDir, lr: 0.5 }, console: null, handleSignals: false })).rejects.toThrow(/lr .* differ from the checkpoint/);
    // dml's registry entry makes its temperature a trajectory option.
    await expect(train({ config: { resume: first.runDir, kdT: 4 }, console: null, handleSignals: false })).rejects.toThrow(/kdT \(checkpoint 3, now 4\) differ/);
  });

  it('a method option only another method reads may change on resume (baseline ignores --kd-T)', async () => {
    const first = await train({ config: { ...tiny, method: 'baseline', numberNet: 1, epochs: 1, out: root, name: 'baseline-kd' }, console: null, handleSignals: false, stopAfterSteps: 2 });
    release(first);
    const resumed = await train({ config: { resume: first.runDir, kdT: 5 }, console: null, handleSignals: false });
    expect(resumed.status).toBe('completed');
    expect(resumed.config.kdT).toBe(5);
    release(resumed);
  });

  it('a non-finite loss stops the run with a clear message and keeps the last good checkpoint', async () => {
    // dml whose loss turns NaN from step 7 on; the trainer notices it at its next read (the end of
    // epoch 2 here: quiet, 10 s log interval) and names the step it happened in.
    class PoisonedDml extends DmlMethod {
      override loss(...args: Parameters<DmlMethod['loss']>): ReturnType<DmlMethod['loss']> {
        const result = super.loss(...args);
        if (args[2].step < 6) return result;
        result.parts.dispose();
        const loss = F.add(result.loss, tensor(Float32Array.of(Number.NaN), []));
        return { loss, parts: new LossParts().add('total', loss) };
      }
    }
    const lines: string[] = [];
    const result = await train({ config: { ...tiny, out: root, name: 'nan' }, console: (line) => lines.push(line), progress: { quiet: true }, handleSignals: false,
      method: ({ networks }) => new PoisonedDml(networks, { kdT: 3 }) });
    expect(result.status).toBe('nonfinite');
    expect(result.exitCode).toBe(3);
    expect(result.step).toBe(6);
    release(result);
    expect(lines.join('\n')).toMatch(/non-finite loss — loss is NaN at epoch 2, batch 2 \(step 7\)/);
    expect(lines.join('\n')).toMatch(/last good checkpoint \(all values finite\) is kept: .*checkpoint-e0001-s5/);
    expect(fs.existsSync(path.join(result.runDir, 'checkpoints', 'checkpoint-e0001-s5', 'checkpoint.json'))).toBe(true);
  });

  it('weights that turn NaN after a finite loss are never saved (issue reproduction: --lr 1e300, one batch per epoch)', async () => {
    const lines: string[] = [];
    const result = await train({ config: { ...tiny, limitTrain: 64, batchSize: 64, epochs: 3, lr: 1e300, out: root, name: 'lr1e300' },
      console: (line) => lines.push(line), progress: { quiet: true }, handleSignals: false });
    expect(result.status).toBe('nonfinite');
    expect(result.exitCode).toBe(3);
    release(result);
    // Step 1's loss is finite; its update is not. The epoch-1 save must see that and refuse.
    expect(result.message).toMatch(/^non-finite weights: NaN\/Inf in the training state after step 1 .*net0\.conv1\.weight/);
    expect(result.message).toMatch(/no finite checkpoint was written before this/);
    const checkpoints = path.join(result.runDir, 'checkpoints');
    const written = fs.existsSync(checkpoints) ? fs.readdirSync(checkpoints).filter((name) => !name.startsWith('.')) : [];
    expect(written).toEqual([]);
    expect(lines.join('\n')).not.toMatch(/last good checkpoint/);
    // The NaN networks' epoch-1 evaluation is recorded honestly: 0%, a NaN test loss, not best.
    const [record] = fs.readFileSync(path.join(result.runDir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((line) => JSON.parse(line));
    expect(record.test.networks).toEqual([{ top1: 0, top5: 0 }, { top1: 0, top5: 0 }]);
    expect(record.test.ensemble).toEqual({ top1: 0, top5: 0 });
    expect(record.test.loss).toEqual(['NaN', 'NaN']);
    expect(result.bestMeanTop1).toBe(0);
  });

  it('a state poisoned by the last step of an epoch is not saved; exit 3 names the last finite checkpoint', async () => {
    // dml whose last step of epoch 2 runs with lr 1e300: its loss is finite (computed before the
    // update), every weight after it is not.
    class LastStepBlowsUp extends DmlMethod {
      override readonly step = (batch: StepBatch, context: StepContext): StepResult => {
        if (context.step === 9) for (const group of context.optimizers.get('main')!.paramGroups) group.lr = 1e300;
        return context.standardStep(batch);
      };
    }
    const lines: string[] = [];
    const result = await train({ config: { ...tiny, out: root, name: 'poisoned-save' }, console: (line) => lines.push(line), progress: { quiet: true },
      handleSignals: false, method: ({ networks }) => new LastStepBlowsUp(networks, { kdT: 3 }) });
    expect(result.status).toBe('nonfinite');
    expect(result.exitCode).toBe(3);
    expect(result.step).toBe(10);
    release(result);
    const good = path.join(result.runDir, 'checkpoints', 'checkpoint-e0001-s5');
    expect(result.message).toMatch(/^non-finite weights: NaN\/Inf in the training state after step 10 \(epoch 2, epoch checkpoint not written\)/);
    expect(result.message).toContain(`the last good checkpoint (all values finite) is kept: ${good}`);
    expect(lines.join('\n')).toContain(`is kept: ${good}`);
    expect(fs.existsSync(path.join(result.runDir, 'checkpoints', 'checkpoint-e0002-s10'))).toBe(false);
    // best was not overwritten with the poisoned epoch, and what is on disk is finite.
    for (const name of ['checkpoint-e0001-s5', 'best']) {
      const loaded = loadCheckpoint(path.join(result.runDir, 'checkpoints', name));
      expect((loaded.state as { epoch: number }).epoch).toBe(1);
      for (const entry of [...loaded.networks.flatMap((net) => [...net.values()]), ...loaded.optimizerBuffers.values()]) {
        expect(entry.data.every(Number.isFinite)).toBe(true);
      }
    }
  });

  it('refuses to resume from a checkpoint that holds NaN (written before saves were checked)', async () => {
    const source = loadCheckpoint(path.join(referenceDir, 'checkpoints', 'checkpoint-e0001-s5'));
    const [name, entry] = [...source.networks[1]!][0]!;
    const poisoned = source.networks.map((net) => new Map(net));
    poisoned[1]!.set(name, { shape: entry.shape, data: entry.data.map((value, k) => (k === 0 ? Number.NaN : value)) });
    const oldRun = path.join(root, 'poisoned-resume');
    fs.mkdirSync(oldRun);
    fs.copyFileSync(path.join(referenceDir, 'config.json'), path.join(oldRun, 'config.json'));
    saveCheckpoint(path.join(oldRun, 'checkpoints'), 'checkpoint-e0001-s5', { networks: poisoned, optimizerBuffers: source.optimizerBuffers, state: source.state });
    await expect(train({ config: { resume: oldRun, out: root }, console: null, handleSignals: false }))
      .rejects.toThrow(new RegExp(`--resume: .*checkpoint-e0001-s5 holds non-finite values \\(net1\\.${name.replace(/\./g, '\\.')} \\(1 of ${entry.data.length} values\\)\\); resume from an earlier checkpoint`));
  });

  it('--auxiliary: every head is trained (CE) and evaluated; baseline with one network', async () => {
    const result = await train({ config: { ...tiny, method: 'baseline', numberNet: 1, epochs: 1, auxiliary: true, out: root, name: 'aux' }, console: null, handleSignals: false });
    expect(result.status).toBe('completed');
    const heads = result.final!.heads[0]!;
    expect(heads.length).toBe(result.networks[0]!.stageCount);
    expect(heads.length).toBeGreaterThan(1);
    expect(result.final!.networks[0]).toEqual(heads[heads.length - 1]);
    release(result);
    const csv = fs.readFileSync(path.join(result.runDir, 'summary.csv'), 'utf8');
    expect(csv.split('\n')[0]).toContain('test_top1_net0_aux0');
  });
});
