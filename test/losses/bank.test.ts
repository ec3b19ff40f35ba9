// Memory-bank contrast (`--contrast bank`, method.md §1.2 / §2.6; src/losses/bank.ts): the key
// sampler's contract (own row first, distinct same-class positives other than the item, negatives
// of other classes, the same keys for the same (seed, step)), the [P, 4] terms against a float64
// reference written from the formulas (weighted and unweighted, MCL and L-MCL pair lists), their
// gradients against finite differences, and `mcl` / `lmcl` with a bank trained from the CLI
// config: banks in the checkpoint, written rows unit-norm, resume bit-exact.
// Tolerances: terms rtol 1e-4 + atol 1e-4 (float32 dot products and exp against float64, terms
// ~ln K); gradcheck in float32 with the helper's default relative tolerance (2e-2).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import * as F from '../../src/ops/functional.js';
import { tensor } from '../../src/tensor/creation.js';
import { manualSeed } from '../../src/tensor/random.js';
import type { Tensor } from '../../src/tensor/tensor.js';
import { BankContrast, BankIndexSampler, MemoryBanks } from '../../src/losses/bank.js';
import type { StepBatch } from '../../src/losses/method.js';
import { train } from '../../src/train/trainer.js';
import { readSafetensors } from '../../src/io/safetensors.js';
import { expectClose, randomArray } from '../helpers/random.js';
import { gradcheck } from '../helpers/gradcheck.js';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'lmcl-bank-'));
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

const ROWS = 40;
const CLASSES = 4;
const labels = Int32Array.from({ length: ROWS }, (_, index) => (index * 7) % CLASSES);

describe('BankIndexSampler', () => {
  it('puts the own row first, then distinct same-class positives, then other-class negatives; the same keys for the same (seed, step)', () => {
    const sampler = new BankIndexSampler(labels, 3, 50, 7);
    const items = Int32Array.from([0, 5, 17, 39, 22]);
    const keys = sampler.sample(items, 12);
    const K = 1 + 3 + 50;
    expect(keys.length).toBe(items.length * K);
    items.forEach((item, u) => {
      const row = keys.subarray(u * K, (u + 1) * K);
      expect(row[0]).toBe(item);
      const positives = [...row.subarray(1, 4)];
      expect(new Set(positives).size).toBe(3);
      for (const p of positives) {
        expect(p).not.toBe(item);
        expect(labels[p]).toBe(labels[item]);
      }
      for (const q of row.subarray(4)) expect(labels[q]).not.toBe(labels[item]);
    });
    expect([...sampler.sample(items, 12)]).toEqual([...keys]);
    expect([...new BankIndexSampler(labels, 3, 50, 7).sample(items, 12)]).toEqual([...keys]);
    expect([...sampler.sample(items, 13)]).not.toEqual([...keys]);
    expect([...new BankIndexSampler(labels, 3, 50, 8).sample(items, 12)]).not.toEqual([...keys]);
  });

  it('refuses a class too small for --pos-k, a single class, and items outside the split', () => {
    expect(() => new BankIndexSampler(labels, 10, 5, 0)).toThrow(/--pos-k 10: class \d has 10 training image/);
    expect(() => new BankIndexSampler(new Int32Array(6), 1, 5, 0)).toThrow(/at least 2/);
    expect(() => new BankIndexSampler(labels, 1, 5, 0).sample(Int32Array.from([ROWS]), 0)).toThrow(/not one of the 40 training images/);
  });
});

// ---- the terms against float64 ------------------------------------------------------------------

function logSoftmax64(row: number[]): number[] {
  const max = Math.max(...row);
  const lse = max + Math.log(row.reduce((sum, value) => sum + Math.exp(value - max), 0));
  return row.map((value) => value - lse);
}

/** Rows ⟨bank[idx[u, k]], z[u]⟩/τ in float64, without column 0 when `dropOwn`. */
function logits64(z: Float32Array, bank: Float32Array, idx: Int32Array, batch: number, dim: number, tau: number, dropOwn: boolean): number[][] {
  const K = idx.length / batch;
  return Array.from({ length: batch }, (_, u) => {
    const row: number[] = [];
    for (let k = dropOwn ? 1 : 0; k < K; k += 1) {
      let dot = 0;
      for (let d = 0; d < dim; d += 1) dot += bank[idx[u * K + k]! * dim + d]! * z[u * dim + d]!;
      row.push(dot / tau);
    }
    return row;
  });
}

function nce64(rows: number[][], positives: number, w: number[]): number {
  return rows.reduce((total, row, u) => total + w[u]! * -logSoftmax64(row).slice(0, positives).reduce((a, b) => a + b, 0) / positives, 0) / rows.length;
}

function kl64(student: number[][], teacher: number[][], T: number, w: number[]): number {
  return (T * T / student.length) * student.reduce((total, row, u) => {
    const logP = logSoftmax64(row.map((v) => v / T));
    const logQ = logSoftmax64(teacher[u]!.map((v) => v / T));
    return total + w[u]! * logQ.reduce((sum, lq, k) => sum + Math.exp(lq) * (lq - logP[k]!), 0);
  }, 0);
}

describe('BankContrast.terms', () => {
  const batch = 6;
  const dim = 8;
  const tau = 0.2;
  const T = 3;
  const posK = 2;
  const negK = 9;

  function setup(networks: number, stages: number) {
    manualSeed(3);
    const banks = new MemoryBanks(networks, ROWS, dim);
    const contrast = new BankContrast(banks, labels, { contrast: 'bank', posK, negK, nceM: 0.5 }, 11);
    const items = Int32Array.from([1, 9, 14, 20, 27, 33]);
    const stepBatch: StepBatch = { x: tensor(new Float32Array(1), [1]), y: Int32Array.from(items, (i) => labels[i]!), indices: items };
    const indices = contrast.keyIndices(stepBatch, 5);
    const embeddings = Array.from({ length: networks * stages }, () => F.normalize(tensor(randomArray(batch * dim), [batch, dim]), { dim: 1 }));
    const owners = embeddings.map((_, e) => Math.floor(e / stages));
    return { banks, contrast, indices, embeddings, owners, stepBatch };
  }

  function reference(embeddings: Tensor[], owners: number[], banks: MemoryBanks, indices: Int32Array, pairs: [number, number][], weights: number[][] | null): number[][] {
    const z = embeddings.map((e) => e.toFloat32Array());
    const bank = [0, 1, 2].slice(0, banks.count).map((n) => banks.at(n).toFloat32Array());
    return pairs.map(([a, b], p) => {
      const w = weights ? weights[p]! : new Array<number>(batch).fill(1);
      const [n, m] = [owners[a]!, owners[b]!];
      const own = (e: number): number[][] => logits64(z[e]!, bank[owners[e]!]!, indices, batch, dim, tau, true);
      const other = (e: number, k: number): number[][] => logits64(z[e]!, bank[k]!, indices, batch, dim, tau, false);
      return [
        nce64(own(a), posK, w) + nce64(own(b), posK, w),
        nce64(other(b, n), 1 + posK, w) + nce64(other(a, m), 1 + posK, w),
        kl64(own(a), own(b), T, w) + kl64(own(b), own(a), T, w),
        kl64(other(b, n), other(a, m), T, w) + kl64(other(a, m), other(b, n), T, w),
      ];
    });
  }

  it('equals the float64 formulas for the MCL pairs of N = 3 (w ≡ 1) and the L-MCL pairs of N = 2, S = 2 (weighted)', () => {
    {
      const { banks, contrast, indices, embeddings, owners } = setup(3, 1);
      const pairs: [number, number][] = [[0, 1], [0, 2], [1, 2]];
      const terms = contrast.terms(embeddings, owners, indices, { pairs, temperature: tau, klTemperature: T });
      expect(terms.shape).toEqual([3, 4]);
      expectClose(terms.toFloat32Array(), reference(embeddings, owners, banks, indices, pairs, null).flat(), { rtol: 1e-4, atol: 1e-4, label: 'mcl N=3' });
      banks.dispose();
    }
    {
      const { banks, contrast, indices, embeddings, owners } = setup(2, 2);
      const pairs: [number, number][] = [];
      for (const [n, m] of [[0, 1], [1, 0]]) for (let s = 0; s < 2; s += 1) for (let t = 0; t < 2; t += 1) pairs.push([n! * 2 + s, m! * 2 + t]);
      const weightValues = pairs.map(() => Array.from({ length: batch }, () => 0.3 + 0.4 * Math.random()));
      const weights = tensor(Float32Array.from(weightValues.flat()), [pairs.length, batch]);
      const terms = contrast.terms(embeddings, owners, indices, { pairs, temperature: tau, klTemperature: T, weights });
      expectClose(terms.toFloat32Array(), reference(embeddings, owners, banks, indices, pairs, weightValues).flat(), { rtol: 1e-4, atol: 1e-4, label: 'lmcl N=2 S=2' });
      banks.dispose();
    }
  });

  it('has the gradients of its formulas in the embeddings and the weights (finite differences), none in the banks', () => {
    const { banks, contrast, indices, embeddings, owners } = setup(2, 1);
    const leaves = embeddings.map((e) => tensor(e.toFloat32Array(), e.shape, { requiresGrad: true }));
    const weights = tensor(Float32Array.from({ length: 2 * batch }, () => 0.3 + 0.4 * Math.random()), [2, batch], { requiresGrad: true });
    const terms = (a: Tensor, b: Tensor, w: Tensor): Tensor => contrast.terms([a, b], owners, indices, { pairs: [[0, 1], [1, 0]], temperature: tau, klTemperature: T, weights: w });
    // The InfoNCE columns have no stop-gradient: finite differences see their whole gradient.
    gradcheck((a, b, w) => F.slice(terms(a!, b!, w!), 1, 0, 2), [...leaves, weights], { epsilon: 1e-2 });
    // The KL columns detach their teacher, which a finite difference in z would move: check them in w
    // (the student side is F.distillKL's, checked in its own tests).
    const constants = embeddings.map((e) => tensor(e.toFloat32Array(), e.shape));
    gradcheck((w) => F.slice(terms(constants[0]!, constants[1]!, w!), 1, 2, 4), [weights], { epsilon: 1e-2 });
    expect(banks.at(0).requiresGrad).toBe(false);
    banks.dispose();
  });

  it('writes normalize(m·row + (1 − m)·z) at the batch rows and leaves every other row as it was', () => {
    const { banks, contrast, embeddings, stepBatch } = setup(2, 1);
    const before = [banks.at(0).toFloat32Array(), banks.at(1).toFloat32Array()];
    contrast.write(embeddings, stepBatch);
    [0, 1].forEach((n) => {
      const after = banks.at(n).toFloat32Array();
      const z = embeddings[n]!.toFloat32Array();
      for (let r = 0; r < ROWS; r += 1) {
        const position = stepBatch.indices.indexOf(r);
        const row = after.subarray(r * dim, (r + 1) * dim);
        if (position < 0) {
          expect([...row]).toEqual([...before[n]!.subarray(r * dim, (r + 1) * dim)]);
          continue;
        }
        const mixed = Array.from({ length: dim }, (_, d) => 0.5 * before[n]![r * dim + d]! + 0.5 * z[position * dim + d]!);
        const norm = Math.hypot(...mixed);
        expectClose(row, mixed.map((v) => v / norm), { rtol: 1e-5, atol: 1e-6, label: `bank ${n} row ${r}` });
      }
    });
    banks.dispose();
  });

  it('writes an image the batch holds twice once, from its last occurrence (the m-per-class sampler draws with replacement)', () => {
    const { banks, contrast, embeddings } = setup(1, 1);
    const items = Int32Array.from([1, 9, 1, 20, 9, 33]);  // rows 1 and 9 twice: the last are at positions 2 and 4
    const duplicated: StepBatch = { x: tensor(new Float32Array(1), [1]), y: Int32Array.from(items, (i) => labels[i]!), indices: items };
    const before = banks.at(0).toFloat32Array();
    contrast.write(embeddings, duplicated);
    const after = banks.at(0).toFloat32Array();
    const z = embeddings[0]!.toFloat32Array();
    for (const [row, position] of [[1, 2], [9, 4], [20, 3], [33, 5]] as const) {
      const mixed = Array.from({ length: dim }, (_, d) => 0.5 * before[row * dim + d]! + 0.5 * z[position * dim + d]!);
      const norm = Math.hypot(...mixed);
      expectClose(after.subarray(row * dim, (row + 1) * dim), mixed.map((v) => v / norm), { rtol: 1e-5, atol: 1e-6, label: `row ${row}` });
    }
    expect([...after.subarray(14 * dim, 15 * dim)]).toEqual([...before.subarray(14 * dim, 15 * dim)]);
    banks.dispose();
  });
});

// ---- end to end ---------------------------------------------------------------------------------

describe('--contrast bank from the CLI config', () => {
  const weights = (result: { networks: { stateDict(): Map<string, { data: Float32Array }> }[]; method: { criterion: { stateDict(): Map<string, { data: Float32Array }> } | null } }): Buffer[] =>
    [...result.networks.flatMap((net) => [...net.stateDict().values()]), ...result.method.criterion!.stateDict().values()].map((e) => Buffer.from(e.data.buffer));

  for (const method of ['mcl', 'lmcl'] as const) {
    it(`${method}: trains, checkpoints the banks (written rows unit-norm), and resumes bit-exactly`, async () => {
      const config = { arch: 'resnet8', numberNet: 2, method, contrast: 'bank', sampler: 'shuffle', negK: 64, epochs: 2, batchSize: 16, limitTrain: 64, limitTest: 32,
        evalBatchSize: 32, workers: 0, threads: 2, metaFreq: 3, out: root, name: `${method}-full` };
      const full = await train({ config, console: null, handleSignals: false });
      expect(full.status).toBe('completed');
      const epochs = fs.readFileSync(path.join(full.runDir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((line) => JSON.parse(line));
      for (const key of ['vcl', 'icl', 'soft_vcl', 'soft_icl']) expect(Number.isFinite(epochs[1].train[key]), key).toBe(true);
      const last = fs.readdirSync(path.join(full.runDir, 'checkpoints')).filter((name) => name.startsWith('checkpoint-')).sort().at(-1)!;
      const criterion = readSafetensors(path.join(full.runDir, 'checkpoints', last, 'criterion.safetensors'));
      const bank = criterion.tensors.get('criterion.bank.1');
      expect(bank?.shape).toEqual([64, 128]);
      // A shuffled epoch visits every image, so every row was written: every row has norm 1.
      for (let r = 0; r < 64; r += 1) expect(Math.hypot(...bank!.data.subarray(r * 128, (r + 1) * 128))).toBeCloseTo(1, 5);

      const cut = await train({ config: { ...config, name: `${method}-cut` }, console: null, handleSignals: false, stopAfterSteps: 5 });
      expect(cut.status).toBe('interrupted');
      const resumed = await train({ config: { resume: cut.runDir, out: root }, console: null, handleSignals: false });
      expect(resumed.status).toBe('completed');
      const [a, b] = [weights(full), weights(resumed)];
      expect(a.length).toBe(b.length);
      a.forEach((values, index) => expect(values.equals(b[index]!), `tensor ${index}`).toBe(true));
      for (const result of [full, cut, resumed]) {
        for (const net of result.networks) net.dispose();
        result.method.dispose();
      }
    }, 120_000);
  }
});
