// `mcl` (method.md §1.1): every loss part against a float64 reference written from the method.md
// formulas (N = 2 and 3, with and without logit KD, heterogeneous feature widths), the gradients
// against the same loss composed from one-pair fused calls, the criterion's modules and names,
// bad cohorts, and a short training run on the bundled sample: the loss falls, VCL and ICL start
// on their 2·ln(B−1) plateau, the Embed heads land in the checkpoint as criterion.embed.*, and a
// resumed run is bit-identical.
// Tolerances: parts rtol 1e-4 + atol 1e-4 (float32 GEMM and exp against float64, terms ~8);
// gradients rtol 1e-3 + atol 1e-4·max|g| (the same float32 terms summed in another order).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import * as F from '../../src/ops/functional.js';
import { Module } from '../../src/nn/module.js';
import { tensor } from '../../src/tensor/creation.js';
import { tidy } from '../../src/tensor/scope.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { grad } from '../../src/autograd/engine.js';
import { MclMethod, type MclOptions } from '../../src/losses/mcl.js';
import { distillKL } from '../../src/losses/terms.js';
import type { StepBatch, StepContext } from '../../src/losses/method.js';
import type { Student, StudentOutput } from '../../src/models/types.js';
import { train } from '../../src/train/trainer.js';
import { readSafetensors } from '../../src/io/safetensors.js';
import { expectClose, randomArray } from '../helpers/random.js';
import { referenceContrastiveKL, referenceSupConInfoNCE } from '../reference/contrastive_reference.ts';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'lmcl-mcl-'));
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

const B = 12;
const C = 5;
const defaults: MclOptions = { vclWeight: 0.1, iclWeight: 0.1, softVclWeight: 1, softIclWeight: 1, tau: 0.1, featDim: 16, kdT: 3, logitDistill: false, contrast: 'batch', negK: 8192, posK: 1, nceM: 0.5 };

/** A stand-in network: the method reads only featureDim (the outputs are given). */
function fakeNetworks(widths: number[]): Student[] {
  return widths.map((featureDim) => Object.assign(new Module(), { architecture: 'fake', stageCount: 1, featureDim }) as unknown as Student);
}

function twoPerClass(batch: number): Int32Array {
  return Int32Array.from({ length: batch }, (_, index) => Math.floor(index / 2) % C);
}

function makeOutputs(widths: number[]): StudentOutput[] {
  return widths.map((width) => ({
    features: [tensor(randomArray(B * width), [B, width], { requiresGrad: true })],
    logits: [tensor(randomArray(B * C, 3), [B, C], { requiresGrad: true })],
  }));
}

const context = {} as StepContext;

function ce64(logits: Float32Array, labels: Int32Array): number {
  let total = 0;
  for (let i = 0; i < B; i += 1) {
    const row = Array.from(logits.subarray(i * C, (i + 1) * C));
    const max = Math.max(...row);
    const lse = max + Math.log(row.reduce((s, v) => s + Math.exp(v - max), 0));
    total += lse - row[labels[i]!]!;
  }
  return total / B;
}

/** The parts by method.md §1.1, in float64, from the embeddings the criterion produced. */
function referenceParts(z: Float32Array[], outputs: StudentOutput[], labels: Int32Array, o: MclOptions): Record<string, number> {
  const N = z.length;
  const D = o.featDim;
  const info = (a: number, b: number): number => referenceSupConInfoNCE(z[a]!, z[b]!, labels, B, D, o.tau, null).loss;
  const kl = (sa: number, sc: number, ta: number, tc: number): number =>
    referenceContrastiveKL(z[sa]!, z[sc]!, z[ta]!, z[tc]!, B, D, o.tau, o.kdT, null).loss;
  let vcl = 0;
  let icl = 0;
  let softVcl = 0;
  let softIcl = 0;
  for (let n = 0; n < N; n += 1) vcl += info(n, n);
  for (let n = 0; n < N; n += 1) {
    for (let m = 0; m < N; m += 1) {
      if (m === n) continue;
      softVcl += kl(n, n, m, m);
      if (n < m) {
        icl += info(n, m) + info(m, n);
        softIcl += kl(n, m, m, n) + kl(m, n, n, m);
      }
    }
  }
  const ce = outputs.reduce((total, output) => total + ce64(output.logits[0]!.toFloat32Array(), labels), 0);
  let total = ce + o.vclWeight * vcl + o.iclWeight * icl + o.softVclWeight * softVcl + o.softIclWeight * softIcl;
  const parts: Record<string, number> = { ce, vcl, icl, soft_vcl: softVcl, soft_icl: softIcl };
  if (o.logitDistill) {
    // The ensemble teacher in float32 as the method forms it; the KL itself is checked in dml's tests.
    const finals = outputs.map((output) => output.logits[0]!);
    const kd = tidy(() => {
      const ensemble = F.mul(finals.slice(1).reduce((t, l) => F.add(t, l), finals[0]!), 1 / N);
      return finals.reduce((t, l) => t + distillKL(l, ensemble, o.kdT).item(), 0);
    });
    parts.kd = kd;
    total += kd;
  }
  parts.total = total;
  return parts;
}

/** The same total from one-pair fused calls (the composition a user would write). */
function onePairTotal(z: Tensor[], outputs: StudentOutput[], labels: Int32Array, o: MclOptions): Tensor {
  const N = z.length;
  const info = (a: Tensor, b: Tensor) => F.supConInfoNCE(a, b, labels, { temperature: o.tau });
  const kl = (sa: Tensor, sc: Tensor, ta: Tensor, tc: Tensor) => F.contrastiveKL(sa, sc, ta, tc, { temperature: o.tau, klTemperature: o.kdT });
  let total: Tensor = outputs.map((output) => F.crossEntropy(output.logits[0]!, labels)).reduce((t, c) => F.add(t, c));
  for (let n = 0; n < N; n += 1) total = F.add(total, F.mul(info(z[n]!, z[n]!), o.vclWeight));
  for (let n = 0; n < N; n += 1) {
    for (let m = 0; m < N; m += 1) {
      if (m === n) continue;
      total = F.add(total, F.mul(kl(z[n]!, z[n]!, z[m]!, z[m]!), o.softVclWeight));
      if (n < m) {
        total = F.add(total, F.mul(F.add(info(z[n]!, z[m]!), info(z[m]!, z[n]!)), o.iclWeight));
        total = F.add(total, F.mul(F.add(kl(z[n]!, z[m]!, z[m]!, z[n]!), kl(z[m]!, z[n]!, z[n]!, z[m]!)), o.softIclWeight));
      }
    }
  }
  return total;
}

describe('mcl', () => {
  for (const [widths, logitDistill] of [[[8, 8], false], [[8, 8], true], [[8, 10, 6], false], [[6, 9, 7], true]] as [number[], boolean][]) {
    it(`every part matches the method.md formulas in float64 (N = ${widths.length}, widths ${widths.join('/')}, logit KD ${logitDistill})`, () => {
      const options = { ...defaults, logitDistill };
      const method = new MclMethod(fakeNetworks(widths), options);
      const outputs = makeOutputs(widths);
      const labels = twoPerClass(B);
      const { parts } = method.loss(outputs, { y: labels } as StepBatch, context);
      const values = parts.values();
      const z = method.criterion.forward(outputs).map((t) => t.toFloat32Array());
      const expected = referenceParts(z, outputs, labels, options);
      for (const [key, value] of Object.entries(expected)) {
        expectClose([values[key]!], [value], { rtol: 1e-4, atol: 1e-4, label: key });
      }
      expect(Object.keys(values).filter((key) => !key.startsWith('ce/'))).toEqual(['ce', 'vcl', 'icl', 'soft_vcl', 'soft_icl', ...(logitDistill ? ['kd'] : []), 'total']);
      parts.dispose();
      method.dispose();
    });
  }

  it('has the gradients of the one-pair composition (features, logits and Embed weights)', () => {
    for (const widths of [[8, 8], [8, 10, 6]]) {
      const method = new MclMethod(fakeNetworks(widths), defaults);
      const outputs = makeOutputs(widths);
      const labels = twoPerClass(B);
      const leaves = [...outputs.flatMap((o) => [o.features[0]!, o.logits[0]!]), ...method.criterion.parameters()];
      const fused = grad(method.loss(outputs, { y: labels } as StepBatch, context).loss, leaves);
      const separate = grad(onePairTotal(method.criterion.forward(outputs), outputs, labels, defaults), leaves);
      fused.forEach((g, index) => {
        const expected = separate[index]!.toFloat32Array();
        const scale = expected.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
        expectClose(g.toFloat32Array(), expected, { rtol: 1e-3, atol: 1e-4 * Math.max(scale, 1e-3), label: `N ${widths.length} leaf ${index}` });
      });
      method.dispose();
    }
  });

  it('owns one Embed head per network under stable names, trained by the main optimizer', () => {
    const networks = fakeNetworks([8, 12]);
    const method = new MclMethod(networks, { ...defaults, featDim: 32 });
    const names = [...method.criterion.stateDict().keys()];
    expect(names).toEqual(['embed.0.0.weight', 'embed.0.0.bias', 'embed.0.2.weight', 'embed.0.2.bias',
      'embed.1.0.weight', 'embed.1.0.bias', 'embed.1.2.weight', 'embed.1.2.bias']);
    expect(method.criterion.stateDict().get('embed.1.0.weight')!.shape).toEqual([32, 12]);
    const [main] = method.parameterSets();
    expect(main!.name).toBe('main');
    for (const parameter of method.criterion.parameters()) expect(main!.parameters).toContain(parameter);
    method.dispose();
  });

  it('refuses a cohort of one network', () => {
    expect(() => new MclMethod(fakeNetworks([8]), defaults)).toThrow(/at least 2 networks/);
  });

  it('trains from the CLI config: the loss falls, VCL and ICL start near 2·ln(B−1), Embed heads are checkpointed, resume is bit-exact', async () => {
    const config = { arch: 'resnet8', numberNet: 2, method: 'mcl', sampler: 'm-per-class', epochs: 2, batchSize: 32, limitTrain: 320,
      limitTest: 64, evalBatchSize: 64, workers: 0, threads: 2, out: root };
    const full = await train({ config: { ...config, name: 'full' }, console: null, handleSignals: false });
    expect(full.status).toBe('completed');
    const epochs = fs.readFileSync(path.join(full.runDir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((line) => JSON.parse(line));
    expect(epochs[1].train.total).toBeLessThan(epochs[0].train.total);
    // Near initialisation every similarity is about the same: each ℓ ≈ ln(B − 1), two per term for N = 2.
    expect(Math.abs(epochs[0].train.vcl - 2 * Math.log(31))).toBeLessThan(0.15 * 2 * Math.log(31));
    expect(Math.abs(epochs[0].train.icl - 2 * Math.log(31))).toBeLessThan(0.15 * 2 * Math.log(31));
    const last = fs.readdirSync(path.join(full.runDir, 'checkpoints')).filter((name) => name.startsWith('checkpoint-')).sort().at(-1)!;
    const criterion = readSafetensors(path.join(full.runDir, 'checkpoints', last, 'criterion.safetensors'));
    expect([...criterion.tensors.keys()]).toContain('criterion.embed.1.2.weight');

    const first = await train({ config: { ...config, name: 'cut' }, console: null, handleSignals: false, stopAfterSteps: 13 });
    expect(first.status).toBe('interrupted');
    const resumed = await train({ config: { resume: first.runDir, out: root }, console: null, handleSignals: false });
    expect(resumed.status).toBe('completed');
    const weights = (result: typeof full): Float32Array[] =>
      [...result.networks.flatMap((net) => [...net.stateDict().values()]), ...result.method.criterion!.stateDict().values()].map((entry) => entry.data);
    const [a, b] = [weights(full), weights(resumed)];
    expect(a.length).toBe(b.length);
    a.forEach((values, index) => expect(Buffer.from(values.buffer).equals(Buffer.from(b[index]!.buffer))).toBe(true));
    for (const result of [full, first, resumed]) {
      for (const net of result.networks) net.dispose();
      result.method.dispose();
    }
  }, 60_000);
});
