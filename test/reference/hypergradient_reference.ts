// Test-only reference for LmclMethod.hypergradient (method.md §3): the same hypergradient
// ∂L_outer(θ_K)/∂φ, computed the way the reference implementation (L2T-ww's MetaSGD, driven by
// L-MCL's main_layer_mcl_cifar_meta.py) computes it — snapshot / recompute with a reverse
// recursion — but exactly, momentum adjoint included.
//
// Why it is independent of the functional unroll in lmcl.ts:
// - The forward trajectory is run on the REAL modules with the NATIVE optimizer (optim.SGD: a
//   fresh one, so zero momentum buffers; non-Nesterov, dampening 0): a gradient, then sgd.step(),
//   in place, no graph kept across steps. Neither optim.virtualSgdStep nor Module.withParameters
//   is used anywhere here. Before every step the state θ_k (parameters and buffers) is
//   snapshotted with captureState().
//   Each step's gradient is, by default ('recorded'), evaluated as the unroll evaluates it:
//   grad(..., { createGraph: true }) (the composite backward of every fused op), then detached, and
//   a parameter is skipped when that gradient has no graph (lmcl.ts's rule). This gives θ_k the
//   unroll's float32 bits, which a ReLU network needs: the first-order fused kernels differ from
//   the composite path by rounding only (~1e-6 relative), but a rounding-level change of θ_k can
//   flip the sign of one ReLU pre-activation at a later θ, and the hypergradient of a ReLU network
//   jumps there (two ResNet-8: in about one seed in five, ONE flipped pre-activation out of the
//   ~5·10^5 the reference evaluates moved it by 2e-4 … 2e-2 relative; no flip, no jump).
//   'firstOrder' instead uses loss.backward() (the fused kernels; a parameter is skipped when its
//   .grad stays null, torch's rule): fully independent arithmetic, for smooth networks.
// - The reverse pass never differentiates through an SGD update: each step's Jacobian is written
//   out by hand (the recursion below); autograd is only asked for vector-Jacobian products of ONE
//   step's gradient g_k(θ) at a restored snapshot θ_k (double backward through one forward), not
//   for the whole unrolled chain.
// - The adjoints are accumulated in float64 on the host.
// What it shares with lmcl.ts is the objective (the φ-weighted contrastive loss is built from the
// method's public pairWeights/contrastiveTerms, whose values are tested against float64 formulas
// in lmcl.test.ts; Σ CE of every stage head) and the autograd engine for single-step gradients.
//
// The trajectory (per θ parameter p, K = metaSteps + 1 steps; step k < metaSteps is a
// contrastive step on L_inner(θ; φ), the last one a step on L_outer(θ) = Σ_n Σ_s CE):
//     d_k     = g_k(θ_k) + λ·θ_k                       g_k = ∂L_k/∂θ  (λ = weight decay)
//     b_{k+1} = μ·b_k + d_k,   b_0 = 0                  (μ = momentum; torch's "b = d" first step
//                                                       is exactly μ·0 + d)
//     θ_{k+1} = θ_k − η·b_{k+1}                          (η = lr)
// A parameter the step's objective does not reach has no gradient; like torch (and lmcl.ts) the
// step skips it: θ_{k+1} = θ_k, b_{k+1} = b_k (no weight decay, no momentum decay either).
//
// Reverse recursion. Adjoints θ̄_k = dL/dθ_k, b̄_k = dL/db_k of L = L_outer(θ_K), seeded with
// θ̄_K = ∇L_outer(θ_K), b̄_K = 0. Step k maps (θ_k, b_k) → (θ_{k+1}, b_{k+1}); b_{k+1} is read by
// θ_{k+1} = θ_k − η·b_{k+1} and by the later steps, so its total adjoint is
//     b̃_k = b̄_{k+1} − η·θ̄_{k+1}.
// b_{k+1} = μ·b_k + g_k(θ_k; φ) + λ·θ_k, and θ_{k+1} depends on θ_k directly (identity) and
// through b_{k+1}; hence, with J_k = ∂g_k/∂θ (all parameters jointly) and the transposed products
// computed as vector-Jacobian products ∂/∂θ (g_k(θ)·b̃_k) by double backward at the snapshot θ_k:
//     θ̄_k = θ̄_{k+1} + J_kᵀ b̃_k + λ·b̃_k          (for skipped p: θ̄_k = θ̄_{k+1}; no g_k reads p)
//     b̄_k = μ·b̃_k                                (for skipped p: b̄_k = b̄_{k+1})
//     φ̄  += (∂g_k/∂φ)ᵀ b̃_k = ∂/∂φ (g_k(θ_k; φ)·b̃_k)   (contrastive steps only: φ enters only them)
// Without momentum b̄ ≡ 0 and this is the brief's v_k = v_{k+1} − η·∂/∂θ(g_k·v_{k+1}) − ηλ·v_{k+1},
// with φ-contribution −η·∂/∂φ(g_k·v_{k+1}). With momentum, dropping b̄ (the "momentum adjoint")
// is wrong from the second reverse step on: b_{k+1} also feeds every later step through μ.
//
// Relation to L2T-ww's MetaSGD.meta_backward (a0 = θ̄, a1 = b̄; p.grad after X.backward() with
// X = Σ g·(−η·a0 + a1) is J_kᵀ b̃_k):
//     a0 ← a0·(1 − η·λ) + λ·a1 + p.grad   (the code's legacy `add_(wd, a1)` is + wd·a1)
//     a1 ← μ·a1 − η·μ·a0_old
// which is exactly the recursion above for a parameter updated at every step. (method.md §3
// transcribes the first line as "+ a1", which would drop the factor λ; read correctly, the
// reference's recursion is exact, not the approximation lmcl.ts's header calls it.) It differs only
// in how skipped parameters are treated (torch < 2.0's zero_grad leaves zero gradients, so its
// SGD still decays them); this reference follows lmcl.ts and skips them.
//
// Detach caveat (lmcl.ts header): inside the contrastive loss the soft terms' teacher side is
// detached, so J_k is autograd's Jacobian of that gradient, without the path through the
// teacher's own dependence on θ. Recomputing g_k at the snapshot with createGraph records the
// same detach, so this reference differentiates the same (caveated) map as the unroll.
// BatchNorm: in training mode the forward uses batch statistics only, so θ_k alone determines
// every objective; the running statistics the forwards update are put back (with θ) from the
// first snapshot at the end, bit for bit.
import * as F from '../../src/ops/functional.js';
import { grad } from '../../src/autograd/engine.js';
import type { Module, ModuleState } from '../../src/nn/module.js';
import { SGD } from '../../src/optim/sgd.js';
import { tensor } from '../../src/tensor/creation.js';
import { keep, tidy } from '../../src/tensor/scope.js';
import type { Tensor } from '../../src/tensor/tensor.js';
import type { LmclMethod } from '../../src/losses/lmcl.js';
import type { StepBatch } from '../../src/losses/method.js';
import type { Student } from '../../src/models/types.js';

export interface VirtualTrajectoryHyperparameters {
  lr: number;
  momentum: number;
  weightDecay: number;
}

export interface ReferenceOptions {
  /** How each trajectory step's gradient is evaluated (see the header). Default 'recorded'. */
  trajectoryGradients?: 'recorded' | 'firstOrder';
  /** Deliberate mistakes, only to show that a test built on this reference can fail. */
  ablation?: ReferenceAblation;
}

export interface ReferenceAblation {
  /** Drop the momentum adjoint b̄ (treat every step as if its buffer were not read later). */
  dropMomentumAdjoint?: boolean;
  /** Drop the λ·b̃ term of θ̄ (forget that weight decay makes d_k depend on θ_k). */
  dropWeightDecayAdjoint?: boolean;
}

export interface SnapshotRecomputeResult {
  /** L_outer(θ_K) at the end of the snapshot trajectory. */
  outer: number;
  /** ∂L_outer(θ_K)/∂φ, one float64 array per φ parameter (criterion.lossWeight.parameters() order). */
  gradients: Float64Array[];
  /** Per step, the indices (into the θ list) of the parameters the step skipped (no gradient). */
  skipped: number[][];
}

function toFloat64(values: Tensor): Float64Array {
  return Float64Array.from(values.toFloat32Array());
}

/**
 * The exact hypergradient by snapshot/recompute (see the header) for `method` over its cohort
 * `networks` (the same list, in the same order, it was built with). Leaves every parameter and
 * buffer of the networks and Embed heads, and every φ gradient, as it found them (φ gradients must
 * be null on entry).
 */
export function snapshotRecomputeHypergradient(
  method: LmclMethod,
  networks: readonly Student[],
  batch: StepBatch,
  hyper: VirtualTrajectoryHyperparameters,
  options: ReferenceOptions = {},
): SnapshotRecomputeResult {
  const ablation = options.ablation ?? {};
  const trajectoryGradients = options.trajectoryGradients ?? 'recorded';
  const thetaModules: Module[] = [...networks, method.criterion.embed];
  const theta = thetaModules.flatMap((module) => module.parameters());
  const phi = method.criterion.lossWeight.parameters();
  if ([...theta, ...phi].some((parameter) => parameter.grad !== null && parameter.grad !== undefined)) {
    throw new Error('snapshotRecomputeHypergradient: expects no gradients on θ and φ on entry');
  }
  const o = method.options;
  const termWeights = [o.vclWeight, o.iclWeight, o.softVclWeight, o.softIclWeight]; // (VCL, ICL, SoftVCL, SoftICL)
  const innerObjective = (): Tensor => {
    const outputs = networks.map((net) => net.forward(batch.x));
    const terms = method.contrastiveTerms(outputs, batch, method.pairWeights(outputs)).terms;
    return F.sum(F.mul(terms, tensor(Float32Array.from(termWeights), [4])));
  };
  const outerObjective = (): Tensor => networks
    .flatMap((net) => net.forward(batch.x).logits)
    .map((logits) => F.crossEntropy(logits, batch.y))
    .reduce((a, b) => F.add(a, b));
  const objectives: { objective: () => Tensor; dependsOnPhi: boolean }[] = [
    ...Array.from({ length: o.metaSteps }, () => ({ objective: innerObjective, dependsOnPhi: true })),
    { objective: outerObjective, dependsOnPhi: false },
  ];
  // Hyperparameters as the kernels use them (float32).
  const lr = Math.fround(hyper.lr);
  const momentum = Math.fround(hyper.momentum);
  const weightDecay = Math.fround(hyper.weightDecay);

  const snapshots: ModuleState[][] = [];
  const optimizer = new SGD(theta, { lr: hyper.lr, momentum: hyper.momentum, weightDecay: hyper.weightDecay, dampening: 0, nesterov: false });
  const clearPhiGradients = (): void => {
    for (const parameter of phi) {
      parameter.grad?.dispose();
      parameter.grad = null;
    }
  };
  try {
    // ---- forward: the virtual trajectory θ_0 … θ_K, in place, without a graph across steps ----
    const skipped: number[][] = [];
    for (const { objective } of objectives) {
      snapshots.push(thetaModules.map((module) => module.captureState()));
      if (trajectoryGradients === 'recorded') {
        tidy(() => {
          grad(objective(), theta, { createGraph: true, allowUnused: true }).forEach((g, index) => {
            theta[index]!.grad = g.gradFn === null ? null : keep(g.detach());
          });
        });
      } else {
        tidy(() => objective().backward());
        clearPhiGradients();
      }
      skipped.push(theta.flatMap((parameter, index) => (parameter.grad === null || parameter.grad === undefined ? [index] : [])));
      optimizer.step();
      optimizer.zeroGrad();
    }
    // ---- seed: θ̄_K = ∇L_outer(θ_K), b̄_K = 0 ----
    const { outer, seed } = tidy(() => {
      const loss = outerObjective();
      return { outer: loss.item(), seed: grad(loss, theta, { allowUnused: true }).map(toFloat64) };
    });
    const thetaAdjoint = seed;
    const bufferAdjoint = theta.map((parameter) => new Float64Array(parameter.size));
    const phiAdjoint = phi.map((parameter) => new Float64Array(parameter.size));

    // ---- reverse: k = K−1 … 0 at the restored snapshot θ_k ----
    for (let k = objectives.length - 1; k >= 0; k -= 1) {
      thetaModules.forEach((module, index) => module.restoreState(snapshots[k]![index]!));
      const skippedHere = new Set(skipped[k]);
      const active = theta.map((_, index) => index).filter((index) => !skippedHere.has(index));
      // b̃_k = b̄_{k+1} − η·θ̄_{k+1} (float64), per updated parameter.
      const totalBufferAdjoint = active.map((index) => {
        const result = new Float64Array(theta[index]!.size);
        const thetaBar = thetaAdjoint[index]!;
        const bufferBar = bufferAdjoint[index]!;
        for (let e = 0; e < result.length; e += 1) result[e] = bufferBar[e]! - lr * thetaBar[e]!;
        return result;
      });
      const { dependsOnPhi, objective } = objectives[k]!;
      const products = tidy(() => {
        const activeParameters = active.map((index) => theta[index]!);
        const stepGradients = grad(objective(), activeParameters, { createGraph: true });
        // X = Σ_p g_k,p(θ) · b̃_k,p with b̃ a constant: ∂X/∂θ = J_kᵀ b̃, ∂X/∂φ = (∂g_k/∂φ)ᵀ b̃.
        const contraction = stepGradients
          .map((g, position) => F.sum(F.mul(g, tensor(Float32Array.from(totalBufferAdjoint[position]!), g.shape))))
          .reduce((a, b) => F.add(a, b));
        return grad(contraction, dependsOnPhi ? [...activeParameters, ...phi] : activeParameters, { allowUnused: true }).map(toFloat64);
      });
      active.forEach((index, position) => {
        const thetaBar = thetaAdjoint[index]!;
        const bufferBar = bufferAdjoint[index]!;
        const bTilde = totalBufferAdjoint[position]!;
        const vjp = products[position]!;
        for (let e = 0; e < thetaBar.length; e += 1) {
          thetaBar[e] = thetaBar[e]! + vjp[e]! + (ablation.dropWeightDecayAdjoint ? 0 : weightDecay * bTilde[e]!);
          bufferBar[e] = ablation.dropMomentumAdjoint ? 0 : momentum * bTilde[e]!;
        }
      });
      if (dependsOnPhi) {
        phiAdjoint.forEach((accumulated, index) => {
          const contribution = products[active.length + index]!;
          for (let e = 0; e < accumulated.length; e += 1) accumulated[e] = accumulated[e]! + contribution[e]!;
        });
      }
    }
    return { outer, gradients: phiAdjoint, skipped };
  } finally {
    optimizer.zeroGrad();
    clearPhiGradients();
    optimizer.dispose();
    if (snapshots.length > 0) thetaModules.forEach((module, index) => module.restoreState(snapshots[0]![index]!));
    for (const states of snapshots) for (const state of states) state.dispose();
  }
}
