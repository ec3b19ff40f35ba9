// The per-op profiler (src/profiler/): off it records nothing and native() is the addon itself;
// on, a two-convolution step records conv2d forward / backward-input / backward-weight with the
// FLOP counts worked out by hand below, the right call counts and phases, backward nodes by name,
// the optimizer's kernels under 'update'; shares sum to at most 100%; the JSON has the documented
// shape; the cost models read the right argument positions; the session, `lmcl profile --json`
// and `lmcl train --profile` run end to end on tiny models; the FMA peak is finite and positive.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { F, optim, randn, tidy } from '../../src/index.js';
import { native, unwrappedNative } from '../../src/native/index.js';
import {
  pauseProfiling, profileRecords, profileStep, profilingStarted, resumeProfiling, startProfiling, stopProfiling,
  type KernelRecord, type ProfileRecords,
} from '../../src/profiler/profiler.js';
import { UNMODELLED_OPS, callCost, conv2dMacs, hasCostModel } from '../../src/profiler/costs.js';
import { buildReport, formatReport, reportJson } from '../../src/profiler/report.js';
import { measureFmaPeak } from '../../src/profiler/peak.js';
import { profileTraining } from '../../src/train/profile.js';
import { buildProgram } from '../../src/cli/main.js';
import { train } from '../../src/train/trainer.js';

// Hand counts. conv A: x [2, 3, 8, 8] * w [4, 3, 3, 3], padding 1 → [2, 4, 8, 8]:
//   MACs = N·C_out·H_out·W_out·C_in·kh·kw = 2·4·8·8·3·3·3 = 13 824 → 27 648 FLOPs.
// conv B: [2, 4, 8, 8] * w [5, 4, 3, 3], stride 2, padding 1 → [2, 5, 4, 4]:
//   MACs = 2·5·4·4·4·3·3 = 5 760 → 11 520 FLOPs.
const FLOPS_A = 27_648;
const FLOPS_B = 11_520;

/** x does not require grad, so only conv B needs an input gradient (conv A's is skipped). */
function twoConvStep(optimizer?: optim.SGD, weights = makeWeights()): void {
  tidy(() => {
    const x = randn([2, 3, 8, 8]);
    const hidden = F.conv2d(x, weights.a, null, { padding: 1 });
    const out = F.conv2d(hidden, weights.b, null, { stride: 2, padding: 1 });
    F.sum(out).backward();
  });
  optimizer?.step();
}

function makeWeights(): { a: ReturnType<typeof randn>; b: ReturnType<typeof randn> } {
  return { a: randn([4, 3, 3, 3], { requiresGrad: true }), b: randn([5, 4, 3, 3], { requiresGrad: true }) };
}

function row(records: ProfileRecords, phase: string, op: string): KernelRecord | undefined {
  return records.kernels.find((record) => record.phase === phase && record.op === op);
}

afterEach(() => {
  if (profilingStarted()) stopProfiling();
});

describe('profiler off', () => {
  it('records nothing and leaves native() the addon itself', () => {
    expect(profilingStarted()).toBe(false);
    expect(native()).toBe(unwrappedNative());
    const before = profileRecords();
    twoConvStep();
    const after = profileRecords();
    expect(after.kernels).toEqual(before.kernels);
    expect(after.backwardNodes).toEqual(before.backwardNodes);
    expect(after.steps).toBe(before.steps);
  });

  it('hands the addon back after a window is stopped', () => {
    startProfiling();
    expect(native()).not.toBe(unwrappedNative());
    stopProfiling();
    expect(native()).toBe(unwrappedNative());
    expect(profileRecords().kernels).toEqual([]); // a fresh window was never opened
  });
});

describe('profiler on, a two-convolution step', () => {
  it('records conv2d forward and backward with the hand-computed FLOPs, calls and phases', () => {
    expect(conv2dMacs([2, 3, 8, 8, 4, 3, 3, 1, 1, 1, 1, 1]) * 2).toBe(FLOPS_A);
    expect(conv2dMacs([2, 4, 8, 8, 5, 3, 3, 2, 2, 1, 1, 1]) * 2).toBe(FLOPS_B);
    const weights = makeWeights();
    const optimizer = new optim.SGD([weights.a, weights.b], { lr: 0.01, momentum: 0.9 });
    startProfiling();
    profileStep(() => twoConvStep(optimizer, weights));
    const records = stopProfiling();
    expect(records.steps).toBe(1);
    const forward = row(records, 'forward', 'conv2dForward')!;
    expect(forward.calls).toBe(2);
    expect(forward.flops).toBe(FLOPS_A + FLOPS_B);
    expect(forward.kind).toBe('compute');
    const weight = row(records, 'backward', 'conv2dBackwardWeight')!;
    expect(weight.calls).toBe(2);
    expect(weight.flops).toBe(FLOPS_A + FLOPS_B);
    const input = row(records, 'backward', 'conv2dBackwardInput')!;
    expect(input.calls).toBe(1); // x needs no gradient
    expect(input.flops).toBe(FLOPS_B);
    expect(row(records, 'forward', 'conv2dBackwardWeight')).toBeUndefined();
    expect(row(records, 'backward', 'conv2dForward')).toBeUndefined();
    const sgd = row(records, 'update', 'sgdStep')!;
    expect(sgd.calls).toBe(2);
    expect(sgd.bytes).toBe(4 * 5 * (4 * 3 * 3 * 3 + 5 * 4 * 3 * 3)); // param r+w, grad r, buffer r+w
    const node = records.backwardNodes.find((entry) => entry.name === 'conv2d.backward')!;
    expect(node.calls).toBe(2);
    // The node's inclusive time contains its kernels.
    expect(node.ms).toBeGreaterThanOrEqual(weight.ms + input.ms - 1e-6);
    for (const record of records.kernels) expect(record.ms).toBeGreaterThanOrEqual(0);
    optimizer.dispose();
    weights.a.dispose();
    weights.b.dispose();
  });

  it('counts calls over several steps and nothing while paused', () => {
    const weights = makeWeights();
    startProfiling();
    pauseProfiling();
    twoConvStep(undefined, weights); // paused: not recorded
    for (let step = 0; step < 3; step += 1) profileStep(() => twoConvStep(undefined, weights));
    resumeProfiling();
    pauseProfiling();
    const records = stopProfiling();
    expect(records.steps).toBe(3);
    expect(row(records, 'forward', 'conv2dForward')!.calls).toBe(6);
    expect(row(records, 'backward', 'conv2dBackwardInput')!.calls).toBe(3);
    expect(records.backwardNodes.find((entry) => entry.name === 'conv2d.backward')!.calls).toBe(6);
    weights.a.dispose();
    weights.b.dispose();
  });

  it('reports shares that sum to at most 100%, GFLOP/s from the FLOPs and % of the given peak', () => {
    const weights = makeWeights();
    startProfiling();
    for (let step = 0; step < 2; step += 1) profileStep(() => twoConvStep(undefined, weights));
    const report = buildReport(stopProfiling(), { description: 'two convs', peak: { gflops: 100, threads: 1, simd: 'avx2' } });
    const shares = report.kernels.reduce((sum, entry) => sum + entry.sharePercent, 0);
    expect(shares).toBeGreaterThan(0);
    expect(shares).toBeLessThanOrEqual(100 + 1e-9);
    expect(report.totals.kernelSharePercent).toBeCloseTo(shares, 9);
    expect(report.phases.reduce((sum, phase) => sum + phase.sharePercent, 0)).toBeLessThanOrEqual(100 + 1e-9);
    expect(report.backwardNodes.reduce((sum, entry) => sum + entry.sharePercent, 0)).toBeLessThanOrEqual(100 + 1e-9);
    const conv = report.kernels.find((entry) => entry.phase === 'forward' && entry.op === 'conv2dForward')!;
    expect(conv.flops).toBe(2 * (FLOPS_A + FLOPS_B));
    expect(conv.gflops).toBeCloseTo(conv.flops! / conv.totalMs / 1e6, 9);
    expect(conv.peakPercent).toBeCloseTo(conv.gflops!, 9); // peak 100 GFLOP/s
    expect(conv.bytes).toBeNull();
    const memoryRow = report.kernels.find((entry) => entry.kind === 'memory' && entry.totalMs > 0);
    if (memoryRow) expect(memoryRow.gbps).toBeCloseTo(memoryRow.bytes! / memoryRow.totalMs / 1e6, 9);
    expect(report.stepMs).toBeCloseTo(report.wallMs / 2, 9);
    const text = formatReport(report);
    expect(text).toContain('conv2dForward');
    expect(text).toContain('conv2d.backward');
    weights.a.dispose();
    weights.b.dispose();
  });

  it('writes JSON with the documented fields', () => {
    const weights = makeWeights();
    startProfiling();
    profileStep(() => twoConvStep(undefined, weights));
    const parsed = JSON.parse(reportJson(buildReport(stopProfiling(), { peak: null }))) as Record<string, unknown>;
    expect(Object.keys(parsed).sort()).toEqual(['backwardNodes', 'description', 'kernels', 'modules', 'peak', 'phases', 'stepMs', 'steps', 'totals', 'wallMs']);
    const kernels = parsed.kernels as Record<string, unknown>[];
    expect(Object.keys(kernels[0]!).sort()).toEqual(
      ['bytes', 'calls', 'flops', 'gbps', 'gflops', 'kind', 'msPerStep', 'op', 'peakPercent', 'phase', 'sharePercent', 'totalMs'].sort());
    const conv = kernels.find((entry) => entry.op === 'conv2dForward')!;
    expect(conv.flops).toBe(FLOPS_A + FLOPS_B);
    expect(conv.peakPercent).toBeNull(); // no peak given
    expect((parsed.phases as { phase: string }[]).map((phase) => phase.phase)).toEqual(['forward', 'backward', 'update']);
    weights.a.dispose();
    weights.b.dispose();
  });
});

describe('cost models', () => {
  it('cover every addon function, or it is listed as deliberately unmodelled', () => {
    const functions = Object.entries(unwrappedNative()).filter(([, value]) => typeof value === 'function').map(([name]) => name);
    expect(functions.filter((name) => !hasCostModel(name) && !UNMODELLED_OPS.has(name))).toEqual([]);
    expect([...UNMODELLED_OPS].filter((name) => hasCostModel(name))).toEqual([]);
  });

  it('read the argument positions of src/native/addon.ts', () => {
    const s = null;
    expect(callCost('gemm', [s, s, s, false, true, 7, 5, 3, 1, 0])).toMatchObject({ label: 'gemm', kind: 'compute', flops: 2 * 7 * 5 * 3 });
    expect(callCost('binary', [0, s, s, s, [4, 6], [6, 1], [0, 1], 0])).toMatchObject({ label: 'binary.add', bytes: 4 * (24 + 6 + 24) });
    expect(callCost('unary', [5, s, s, 10])).toMatchObject({ label: 'unary.relu', bytes: 80 });
    expect(callCost('batchNormForwardTraining', [s, s, s, s, s, s, s, s, [2, 3, 4], 0.1, 1e-5])).toMatchObject({ kind: 'memory', bytes: 4 * 2 * 24 });
    // The fused epilogue: the residual is read, the backward reads the ReLU output and writes the residual's gradient.
    const h = {}; // a given storage (null = not given)
    expect(callCost('batchNormForwardTraining', [s, s, s, s, s, s, s, s, [2, 3, 4], 0.1, 1e-5, h, true])).toMatchObject({ kind: 'memory', bytes: 4 * 3 * 24 });
    expect(callCost('batchNormBackward', [s, s, s, s, s, h, s, s, [2, 3, 4], true])).toMatchObject({ kind: 'memory', bytes: 4 * 3 * 24 });
    expect(callCost('batchNormBackward', [s, s, s, s, s, h, s, s, [2, 3, 4], true, h, h])).toMatchObject({ kind: 'memory', bytes: 4 * 5 * 24 });
    expect(callCost('softmaxForward', [s, s, 2, 10, 1, false])).toMatchObject({ bytes: 4 * 2 * 20 });
    expect(callCost('maxPool2dForward', [s, s, {}, [6, 8, 8, 2, 2, 2, 2, 0, 0]])).toMatchObject({ bytes: 4 * (6 * 64 + 6 * 16 * 2) });
    expect(callCost('maxPool2dForward', [s, s, null, [6, 8, 8, 2, 2, 2, 2, 0, 0]])).toMatchObject({ bytes: 4 * (6 * 64 + 6 * 16) }); // no indices
    expect(callCost('supConInfoNCEForward', [])).toMatchObject({ kind: 'other', flops: 0, bytes: 0 });
  });
});

describe('end to end', () => {
  it('profileTraining times a tiny MCL cohort step by op, node and module', () => {
    const report = profileTraining({ arch: 'resnet8', method: 'mcl', numberNet: 2, batchSize: 8, steps: 2, warmup: 1, peak: false });
    expect(report.steps).toBe(2);
    expect(report.kernels.some((entry) => entry.phase === 'forward' && entry.op === 'conv2dForward')).toBe(true);
    expect(report.kernels.some((entry) => entry.phase === 'backward' && entry.op === 'conv2dBackwardWeight')).toBe(true);
    expect(report.kernels.some((entry) => entry.phase === 'update' && entry.op === 'sgdStep')).toBe(true);
    expect(report.backwardNodes.some((entry) => entry.name === 'conv2d.backward')).toBe(true);
    expect(report.modules.some((entry) => entry.name === 'Conv2d')).toBe(true);
    expect(report.totals.kernelSharePercent).toBeLessThanOrEqual(100 + 1e-9);
    expect(profilingStarted()).toBe(false);
    expect(native()).toBe(unwrappedNative());
  }, 120_000);

  it('lmcl profile --json prints a parseable report', async () => {
    const chunks: string[] = [];
    const spy = vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
      chunks.push(String(chunk));
      return true;
    });
    try {
      await buildProgram().parseAsync(['node', 'lmcl', 'profile', '--arch', 'resnet8', '--method', 'dml', '--batch-size', '4', '--steps', '1', '--warmup', '0', '--json']);
    } finally {
      spy.mockRestore();
    }
    const report = JSON.parse(chunks.join('')) as { steps: number; peak: { gflops: number }; kernels: unknown[] };
    expect(report.steps).toBe(1);
    expect(report.peak.gflops).toBeGreaterThan(0);
    expect(report.kernels.length).toBeGreaterThan(0);
  }, 120_000);

  it('lmcl train --profile logs the table, writes profile.json and keeps training', async () => {
    const out = fs.mkdtempSync(path.join(os.tmpdir(), 'lmcl-profile-'));
    const lines: string[] = [];
    const result = await train({
      config: { arch: 'resnet8', numberNet: 2, method: 'dml', epochs: 1, batchSize: 8, limitTrain: 48, limitTest: 16, evalBatchSize: 16, workers: 0, out },
      console: (line) => lines.push(line), handleSignals: false, profileSteps: 2,
    });
    for (const net of result.networks) net.dispose();
    result.method.dispose();
    expect(result.status).toBe('completed');
    expect(result.step).toBe(6); // all 48/8 steps ran: profiling does not stop the run
    const report = JSON.parse(fs.readFileSync(path.join(result.runDir, 'profile.json'), 'utf8')) as { steps: number };
    expect(report.steps).toBe(2);
    expect(lines.join('\n')).toContain('conv2dForward');
    expect(profilingStarted()).toBe(false);
    fs.rmSync(out, { recursive: true, force: true });
  }, 120_000);
});

describe('measureFmaPeak', () => {
  it('returns a finite positive GFLOP/s for one thread and refuses bad arguments', () => {
    const peak = measureFmaPeak({ threads: 1, minSeconds: 0.01 });
    expect(Number.isFinite(peak.gflops)).toBe(true);
    expect(peak.gflops).toBeGreaterThan(0);
    expect(peak.threads).toBe(1);
    expect(peak.lanes).toBe(peak.simd === 'avx512' ? 16 : peak.simd === 'avx2' ? 8 : 1);
    expect(peak.gflops).toBeCloseTo((peak.threads * peak.chains * peak.lanes * 2 * peak.iterations) / peak.seconds / 1e9, 6);
    expect(() => measureFmaPeak({ threads: 0 })).toThrow(/threads/);
    expect(() => measureFmaPeak({ threads: 1, minSeconds: 0 })).toThrow(/minSeconds/);
    expect(() => unwrappedNative().measureFmaPeak(4096, 0.01)).toThrow(/measureFmaPeak: threads/);
  });
});
