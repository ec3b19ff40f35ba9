// lmcl's meta step (method.md §3): the φ hypergradient of LmclMethod.hypergradient (functional
// unroll: metaSteps virtual SGD steps on the φ-weighted contrastive loss, one on Σ CE, from zero
// momentum, differentiated by autograd through virtualSgdStep, one checkpointed step's graph at a
// time: vector-Jacobian products of (θ_{k+1}, b_{k+1}) w.r.t. (θ_k, b_k, φ)) equals the
// snapshot/recompute reference of test/reference/hypergradient_reference.ts (the L2T-ww MetaSGD
// way, made exact: the trajectory θ_0 … θ_K run in place with the native SGD and snapshotted, then
// a hand-written reverse recursion over the steps that carries the parameter adjoint θ̄ AND the
// momentum adjoint b̄, with one Hessian/mixed-vector product per step by double backward at the
// restored snapshot). The reference shares no code path with the unroll's differentiation through
// the SGD updates (no virtualSgdStep, no withParameters, no graph across steps): see its header.
//
// Cohorts: two ResNet-8 with auxiliary branches (S = 3) on 1×8×8 inputs, as lmcl.test.ts's tiny
// cohort, and two tanh networks with a BatchNorm1d (test/helpers/smooth_student.ts; the method's
// Embed heads still hold a ReLU). metaSteps = 1 and 2 for each. The reference's trajectory
// gradients are evaluated on the unroll's arithmetic ('recorded', θ_k bit-identical to the
// unroll's) except for the smooth cohort with metaSteps = 1, where the fused first-order kernels
// are used ('firstOrder', the trajectory computed independently too): only there is no ReLU ever
// evaluated at a θ_k that differs by rounding (why that matters: the reference's header).
// lr 0.1, momentum 0.9, weight decay 0.05: 100× the CIFAR default, so that the weight-decay term of
// the adjoint (∝ λ) stands well above the tolerance; at 5e-4 it moves the hypergradient by only
// 3e-5 … 1e-4 relative, too close to rounding for a test to tell.
// Inputs and initial weights are drawn from fixed seeds (uniform in [−1, 1), never zeros).
//
// Tolerance (normwise): max over φ entries |unroll − reference| ≤ tol · max over φ entries
// |reference|, tol = 1e-5 with a 'recorded' trajectory and 5e-5 with a 'firstOrder' one. Both
// sides compute the same derivative in float32 with a different association (autograd through each
// step's SGD update vs a hand-written adjoint recursion, the Σ_p g·b̃ contraction, float64 adjoint sums
// on the reference side), through reductions over up to ~10^4 terms, τ = 0.1 contrastive softmaxes
// and BatchNorm Jacobians. Measured (checkpointed unroll, Xeon VM, 2026-12-03, 11 seeds per case): 'recorded' ≤ 9.2e-7
// (≈ 13 u of the scale, u = 2^−24); 'firstOrder' ≤ 4.4e-6, larger because its θ_k already differ
// by rounding and the hypergradient's sensitivity to θ amplifies that (a relative 1.2e-7
// perturbation of θ_0 alone moves it by ~1e-5 relative). Each tol is ≈ 10× the worst measured.
// The errors the test must catch are far larger: dropping the momentum adjoint moves the result by
// ≥ 0.79 (relative), dropping the weight-decay term by ≥ 2.4e-3 (both asserted, ResNet, metaSteps 2).
// Also checked: L_outer(θ_K) of both agrees (bit for bit with a 'recorded' trajectory), both skip
// the same parameters (the classifier heads in the contrastive steps, the Embed heads in the CE
// step), and every parameter and buffer of the networks and of the whole criterion (Embed heads,
// aggregators, φ) is bit-identical after each computation.
import { describe, expect, it } from 'vitest';
import * as F from '../../src/ops/functional.js';
import { Module } from '../../src/nn/module.js';
import type { Tensor } from '../../src/tensor/tensor.js';
import { tensor } from '../../src/tensor/creation.js';
import { tidy } from '../../src/tensor/scope.js';
import { Generator, manualSeed } from '../../src/tensor/random.js';
import { createModel } from '../../src/models/registry.js';
import { LmclMethod, type LmclOptions } from '../../src/losses/lmcl.js';
import type { StepBatch } from '../../src/losses/method.js';
import type { Student, StudentOutput } from '../../src/models/types.js';
import {
  snapshotRecomputeHypergradient, type ReferenceOptions, type SnapshotRecomputeResult, type VirtualTrajectoryHyperparameters,
} from '../reference/hypergradient_reference.ts';
import { SmoothStudent } from '../helpers/smooth_student.js';

const B = 8;
const C = 4;
const S = 3;
const TOLERANCE = { recorded: 1e-5, firstOrder: 5e-5 } as const;
const baseOptions: LmclOptions = { vclWeight: 0.1, iclWeight: 0.1, softVclWeight: 1, softIclWeight: 1, tau: 0.1, featDim: 8, kdT: 3, metaFreq: 50, metaSteps: 1,
  contrast: 'batch', negK: 8192, posK: 1, nceM: 0.5 };
const virtualSgd: VirtualTrajectoryHyperparameters = { lr: 0.1, momentum: 0.9, weightDecay: 0.05 };

/** Uniform values in [−1, 1) from a seeded generator. */
function seededValues(generator: Generator, length: number): Float32Array {
  return Float32Array.from({ length }, () => generator.uniform() * 2 - 1);
}

function twoPerClass(batch: number): Int32Array {
  return Int32Array.from({ length: batch }, (_, index) => Math.floor(index / 2) % C);
}


interface CohortCase {
  label: string;
  /** Parameter names (without the network prefix) a contrastive step does not reach: the classifier heads. */
  headPattern: RegExp;
  build(): { networks: Student[]; inputShape: number[] };
}

const resnetCohort: CohortCase = {
  label: 'two ResNet-8 with auxiliary branches',
  headPattern: /^(backbone\.fc|auxiliary_classifier\.fc[12])\./,
  build: () => ({
    networks: [0, 1].map(() => createModel('resnet8', { numClasses: C, inChannels: 1, imageSize: 8, auxiliary: true })),
    inputShape: [B, 1, 8, 8],
  }),
};
const smoothCohort: CohortCase = {
  label: 'two smooth tanh networks',
  headPattern: /^heads\./,
  build: () => ({ networks: [0, 1].map(() => new SmoothStudent(12, 6, { stages: S, classes: C }) as unknown as Student), inputShape: [B, 12] }),
};

/**
 * The cases. 'firstOrder' (the reference's trajectory on the fused first-order kernels) only where
 * no ReLU is evaluated at a θ_k that could differ from the unroll's by rounding: in the smooth
 * cohort with metaSteps = 1 the only ReLUs (in the Embed heads) are evaluated at θ_0 alone (the CE
 * step and L_outer do not reach the Embed heads), which both sides share bit for bit.
 */
const cases: { cohort: CohortCase; metaSteps: number; trajectoryGradients: NonNullable<ReferenceOptions['trajectoryGradients']>; seed: number; ablations?: boolean }[] = [
  { cohort: resnetCohort, metaSteps: 1, trajectoryGradients: 'recorded', seed: 7001 },
  { cohort: resnetCohort, metaSteps: 2, trajectoryGradients: 'recorded', seed: 7002, ablations: true },
  { cohort: smoothCohort, metaSteps: 1, trajectoryGradients: 'firstOrder', seed: 7101 },
  { cohort: smoothCohort, metaSteps: 2, trajectoryGradients: 'recorded', seed: 7102 },
];

function setUp(cohort: CohortCase, metaSteps: number, seed: number) {
  manualSeed(seed); // initial weights (networks, Embed heads, aggregators, φ)
  const { networks, inputShape } = cohort.build();
  const method = new LmclMethod(networks, { ...baseOptions, metaSteps });
  const generator = new Generator(seed + 1);
  const batch = {
    x: tensor(seededValues(generator, inputShape.reduce((a, b) => a * b, 1)), inputShape),
    y: twoPerClass(B),
    indices: new Int32Array(B),
  } as StepBatch;
  // One ordinary training forward, so the BN running statistics are not at their initial values.
  tidy(() => {
    networks.forEach((net) => net.forward(batch.x));
  });
  return { networks, method, batch };
}

/** Every parameter and buffer of the networks and the whole criterion, as bytes; and whether any gradient is set. */
function stateBytes(networks: readonly Student[], method: LmclMethod): { bytes: string[]; gradients: number } {
  const modules: Module[] = [...networks, method.criterion];
  const bytes = modules.flatMap((module) => [...module.stateDict().entries()].map(([name, entry]) => `${name}:${Buffer.from(entry.data.buffer, entry.data.byteOffset, entry.data.byteLength).toString('base64')}`));
  const gradients = modules.flatMap((module) => module.parameters()).filter((p) => p.grad !== null && p.grad !== undefined).length;
  return { bytes, gradients };
}

/**
 * max |actual − expected| over every φ entry, relative to the hypergradient's scale max |expected|
 * over every φ entry (normwise: a per-tensor scale would divide the same absolute rounding by the
 * scale of the smallest tensor).
 */
function deviation(actual: readonly Float32Array[], expected: readonly Float64Array[]): { relative: number; where: string } {
  let difference = 0;
  let scale = 0;
  let where = '';
  actual.forEach((values, index) => {
    values.forEach((value, e) => {
      const reference = expected[index]![e]!;
      scale = Math.max(scale, Math.abs(reference));
      if (!(Math.abs(value - reference) <= difference)) {
        difference = Math.abs(value - reference);
        where = `φ tensor ${index}[${e}]: ${value} vs ${reference}`;
      }
    });
  });
  return { relative: difference / scale, where: `max |Δ| ${difference.toExponential(3)} at ${where}; max |g| ${scale.toExponential(3)}` };
}

describe('lmcl hypergradient: functional unroll vs snapshot/recompute', () => {
  for (const { cohort, metaSteps, trajectoryGradients, seed, ablations } of cases) {
    const tolerance = TOLERANCE[trajectoryGradients];
    it(`${cohort.label}, metaSteps = ${metaSteps} (${trajectoryGradients} trajectory): the same φ gradient within ${tolerance} of its scale; θ and buffers untouched`, () => {
      const { networks, method, batch } = setUp(cohort, metaSteps, seed);
      const before = stateBytes(networks, method);
      expect(before.gradients).toBe(0);

      const unroll = method.hypergradient(batch, virtualSgd);
      const unrollGradients = unroll.gradients.map((g) => g.toFloat32Array());
      const unrollOuter = unroll.outer.item();
      unroll.outer.dispose();
      for (const g of unroll.gradients) g.dispose();
      expect(stateBytes(networks, method)).toEqual(before);

      const reference: SnapshotRecomputeResult = snapshotRecomputeHypergradient(method, networks, batch, virtualSgd, { trajectoryGradients });
      expect(stateBytes(networks, method)).toEqual(before);

      // The same trajectory: the same L_outer(θ_K) (bit for bit when the step gradients share the
      // arithmetic), and the same parameters skipped at every step.
      if (trajectoryGradients === 'recorded') expect(reference.outer).toBe(unrollOuter);
      else expect(Math.abs(reference.outer - unrollOuter)).toBeLessThanOrEqual(1e-6 * Math.abs(unrollOuter));
      const names = [
        ...networks.flatMap((net, n) => net.namedParameters().map(([name]) => `${n}/${name}`)),
        ...method.criterion.embed.namedParameters().map(([name]) => `embed/${name}`),
      ];
      const heads = names.filter((name) => !name.startsWith('embed/') && cohort.headPattern.test(name.slice(name.indexOf('/') + 1)));
      const embeds = names.filter((name) => name.startsWith('embed/'));
      expect(heads.length).toBeGreaterThan(0);
      reference.skipped.forEach((indices, k) => expect(indices.map((index) => names[index]), `step ${k}`).toEqual(k < metaSteps ? heads : embeds));

      const { relative, where } = deviation(unrollGradients, reference.gradients);
      expect(relative, `seed ${seed}: ${where}`).toBeLessThanOrEqual(tolerance);

      if (ablations) {
        // The test can fail: the reference with a deliberate mistake is far outside the tolerance.
        for (const ablation of [{ dropMomentumAdjoint: true }, { dropWeightDecayAdjoint: true }]) {
          const wrong = snapshotRecomputeHypergradient(method, networks, batch, virtualSgd, { trajectoryGradients, ablation });
          const off = deviation(unrollGradients, wrong.gradients);
          expect(off.relative, `${JSON.stringify(ablation)}: ${off.where}`).toBeGreaterThan(10 * tolerance);
        }
        expect(stateBytes(networks, method)).toEqual(before);
      }
      for (const net of networks) net.dispose();
      method.dispose();
    }, 30_000);
  }
});
