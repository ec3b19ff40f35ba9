// `lmcl`, layer-wise Mutual Contrastive Learning with adaptive layer matching (method.md §2–§3;
// the L-MCL repo's cifar_sup_layer_mcl_meta_loss.py, aggregator.py, meta_network.py and
// main_layer_mcl_cifar_meta.py). The cohort's networks have S stages each (--auxiliary).
//
// Main step (the standard forward → loss → backward → update, one SGD over the networks, the Embed
// heads and the aggregators):
//   z_{n,s} = Embed_{n,s}(f_{n,s});  for every ORDERED stage pair p = ((n,s),(m,t)), n ≠ m, in the
//   reference's loop order (n, m ≠ n, s, t), the per-sample weight w_p = sigmoid(cos(P_{n,s} f_{n,s},
//   P_{m,t} f_{m,t})) from the loss-weight network φ (computed under no-grad here: constants);
//   the four terms of every pair (VCL_p, ICL_p, SoftVCL_p, SoftICL_p, §2.2) from ONE
//   F.cohortContrastive call with weights [P, B], summed over the pairs;
//   ō_n = Σ_s π_{n,s} ⊙ o_{n,s}, π_n = softmax(W_b·ReLU(W_a·[f_{n,0} … f_{n,S−1}])) (aggregator);
//   loss = Σ_n Σ_s CE(o_{n,s}) + Σ_n CE(ō_n) + Σ_n Σ_m KL_T(o_{n,S−1} ‖ sg ō_m)
//          + α·VCL + γ·SoftVCL + β·ICL + λ·SoftICL.
// Meta phase (every --meta-freq batches, after the main update, on the same batch; §3): from the
// current θ (networks + Embed heads), with zero momentum and the current lr, --meta-steps virtual
// SGD steps on the φ-weighted contrastive loss (w WITH grad now), then one on Σ CE of every stage
// head; the hypergradient of that final Σ CE w.r.t. φ by exact reverse-mode differentiation
// through the unrolled steps (optim.virtualSgdStep, Module.withParameters, double backward),
// checkpointed: a forward sweep keeps only each step's (θ_k, b_k), then a reverse sweep rebuilds
// one step's graph at a time from its checkpoint and pulls the adjoints (θ̄, b̄) back through it
// (vector-Jacobian products; φ̄ summed over the steps). One step's graph alive instead of all of
// them, for one more forward + createGraph backward per contrastive step (peak RSS and time:
// bench/RESULTS.md "L-MCL meta phase");
// Nesterov SGD on φ (its own parameter set 'loss_weight'); then θ AND every BN buffer restored bit
// for bit (Module.captureState / restoreState). The reference instead re-evaluates snapshots with
// the L2T-ww reverse recursion (method.md §3, §8.4 call its momentum handling approximate; an exact
// form of that recursion is our test reference and agrees with this unroll to ~1e-6 relative) and
// leaks one BN running-stat update per phase; we do not. Parameters a virtual objective does not
// reach (the heads in the contrastive steps, the Embed heads in the CE step) are skipped, as
// torch ≥ 2.0's SGD skips a None grad (torch 1.x's zero_grad left zero tensors, so the reference
// may still apply weight decay and momentum to them: a possible fidelity difference, not verified).
// "Exact" with one caveat shared with PyTorch: inside a virtual step's gradient the soft terms'
// teacher side is detached, so the second-order path through the teacher's own dependence on θ
// is not differentiated (it only matters from the second contrastive step on). Tested against
// finite differences with one contrastive and one CE step (test/losses/lmcl.test.ts), and against an
// exact snapshot/recompute reverse recursion with momentum and weight decay, metaSteps 1 and 2
// (test/losses/lmcl_hypergradient.test.ts).
// --contrast bank (§2.6): the pair terms against one memory bank per network (bank.ts; each
// embedding reads its own network's bank — the reference's VCL reads network n's bank for b too),
// the banks written with the final-stage embeddings after the main update's backward, before the
// meta phase, which only reads them (its virtual steps use the same keys as the main step).
// Parts: 'ce', 'ce/net<n>', 'aggregator_ce', 'kd', 'vcl', 'icl', 'soft_vcl', 'soft_icl',
// 'weight/s<s>t<t>' (mean pair weight per stage pair), 'meta_hypergrad_norm' (on meta batches), 'total'.
import * as F from '../ops/functional.js';
import { grad } from '../autograd/engine.js';
import { noGrad } from '../autograd/mode.js';
import { Module } from '../nn/module.js';
import { ModuleList, Sequential } from '../nn/container.js';
import { Linear } from '../nn/linear.js';
import { ReLU } from '../nn/activation.js';
import { virtualSgdStep } from '../optim/virtual_sgd.js';
import { tensor } from '../tensor/creation.js';
import { keep, tidy } from '../tensor/scope.js';
import type { Tensor } from '../tensor/tensor.js';
import type { Student, StudentOutput } from '../models/types.js';
import type { EvaluationHead, MethodLoss, ParameterSet, StepBatch, StepContext, StepResult } from './method.js';
import { CohortMethod } from './method.js';
import { LossParts } from './parts.js';
import { defineMethod } from './entry.js';
import { integerOption } from './options.js';
import { kdTemperatureOption } from './dml.js';
import { contrastiveOptions } from './mcl.js';
import { EmbedHead } from './embed.js';
import { crossEntropyTerms, distillKL, finalLogits } from './terms.js';
import { BankContrast, MemoryBanks, bankOptions, bankRows, type BankData, type BankSettings } from './bank.js';

export interface LmclOptions extends BankSettings {
  vclWeight: number;
  iclWeight: number;
  softVclWeight: number;
  softIclWeight: number;
  tau: number;
  featDim: number;
  kdT: number;
  metaFreq: number;
  metaSteps: number;
}

/** Stage aggregator of one network (§2.4): per-sample softmax mixing weights π over its S heads. */
export class StageAggregator extends Sequential {
  readonly stages: number;

  constructor(featureDim: number, stages: number) {
    super(new Linear(stages * featureDim, featureDim), new ReLU(), new Linear(featureDim, stages));
    this.stages = stages;
  }

  /** ō = Σ_s π_s ⊙ o_s from the stage features and logits of one network. */
  aggregate(features: readonly Tensor[], logits: readonly Tensor[]): Tensor {
    const mixing = F.softmax(super.forward(F.concat([...features], 1)), 1);
    let total: Tensor | null = null;
    logits.forEach((stageLogits, s) => {
      const term = F.mul(stageLogits, F.slice(mixing, 1, s, s + 1));
      total = total === null ? term : F.add(total, term);
    });
    return total!;
  }
}

/** The method's modules: embed.<n>.<s>, aggregator.<n>, loss_weight.<n>.<s> (φ: Linear d → 128). */
export class LmclCriterion extends Module {
  readonly embed: ModuleList<ModuleList<EmbedHead>>;
  readonly aggregator: ModuleList<StageAggregator>;
  readonly lossWeight: ModuleList<ModuleList<Linear>>;
  /** --contrast bank: one bank per network (criterion.bank.<n>), else null. */
  readonly bank: MemoryBanks | null;

  constructor(networks: readonly Student[], stages: number, featureDim: number, bankRows: number | null = null) {
    super();
    this.embed = this.registerModule('embed', new ModuleList(networks.map((net) =>
      new ModuleList(Array.from({ length: stages }, () => new EmbedHead(net.featureDim, featureDim))))));
    this.aggregator = this.registerModule('aggregator', new ModuleList(networks.map((net) => new StageAggregator(net.featureDim, stages))));
    this.lossWeight = this.registerModule('loss_weight', new ModuleList(networks.map((net) =>
      new ModuleList(Array.from({ length: stages }, () => new Linear(net.featureDim, featureDim))))));
    this.bank = bankRows === null ? null : this.registerModule('bank', new MemoryBanks(networks.length, bankRows, featureDim));
  }

  override forward(): never {
    throw new Error('LmclCriterion has no forward of its own: LmclMethod uses its embed, aggregator and loss_weight parts');
  }
}

export class LmclMethod extends CohortMethod {
  readonly name = 'lmcl';
  override readonly criterion: LmclCriterion;
  readonly options: LmclOptions;
  readonly stages: number;
  /** The memory-bank contrast (--contrast bank), else null. */
  readonly bank: BankContrast | null;
  /** Ordered stage pairs as (flat embedding index a = n·S + s, b = m·S + t), in the reference's order. */
  private readonly pairs: [number, number][] = [];
  private readonly pairStages: [number, number][] = [];

  constructor(networks: readonly Student[], options: LmclOptions, data: BankData = {}) {
    super(networks);
    if (networks.length < 2) throw new Error(`--method lmcl needs a cohort of at least 2 networks, got ${networks.length}`);
    const stages = networks[0]!.stageCount;
    if (networks.some((net) => net.stageCount !== stages)) {
      throw new Error(`--method lmcl needs the same number of stages in every network, got ${networks.map((net) => net.stageCount).join(', ')}`);
    }
    if (stages < 2) throw new Error('--method lmcl contrasts the auxiliary stages: pass --auxiliary (the networks have 1 stage)');
    this.options = options;
    this.stages = stages;
    this.criterion = new LmclCriterion(networks, stages, options.featDim, bankRows(options, data));
    this.bank = BankContrast.over(this.criterion.bank, options, data);
    for (let n = 0; n < networks.length; n += 1)
      for (let m = 0; m < networks.length; m += 1)
        if (m !== n) for (let s = 0; s < stages; s += 1) for (let t = 0; t < stages; t += 1) {
          this.pairs.push([n * stages + s, m * stages + t]);
          this.pairStages.push([s, t]);
        }
  }

  override parameterSets(): readonly ParameterSet[] {
    const main = [...this.networks.flatMap((net) => net.parameters()), ...this.criterion.embed.parameters(), ...this.criterion.aggregator.parameters()];
    return [
      { name: 'main', parameters: main },
      { name: 'loss_weight', parameters: this.criterion.lossWeight.parameters(), optimizer: { nesterov: true } },
    ];
  }

  /** w [P, B]: sigmoid of the row-wise cosine of the φ-projected stage features of every pair. */
  pairWeights(outputs: StudentOutput[]): Tensor {
    const projected = outputs.flatMap((output, n) => output.features.map((feature, s) =>
      this.criterion.lossWeight.at(n).at(s).forward(feature)));
    return F.stack(this.pairs.map(([a, b]) => F.sigmoid(F.cosineSimilarity(projected[a]!, projected[b]!, { dim: 1 }))), 0);
  }

  /**
   * The four contrastive totals [4] = (VCL, ICL, SoftVCL, SoftICL), summed over the pairs, and the
   * embeddings z_{n,s} (flat, n·S + s). `step` seeds the bank keys of a batch's first call.
   */
  contrastiveTerms(outputs: StudentOutput[], batch: StepBatch, weights: Tensor, step = 0): { terms: Tensor; embeddings: Tensor[] } {
    const embeddings = outputs.flatMap((output, n) => output.features.map((feature, s) => this.criterion.embed.at(n).at(s).forward(feature)));
    const o = this.options;
    const options = { pairs: this.pairs, temperature: o.tau, klTemperature: o.kdT, weights };
    const perPair = this.bank
      ? this.bank.terms(embeddings, embeddings.map((_, e) => Math.floor(e / this.stages)), this.bank.keyIndices(batch, step), options)
      : F.cohortContrastive(embeddings, batch.y, options);
    return { terms: F.sum(perPair, 0), embeddings };
  }

  private weightedContrastive(terms: Tensor): Tensor {
    const o = this.options;
    return F.sum(F.mul(terms, tensor(Float32Array.from([o.vclWeight, o.iclWeight, o.softVclWeight, o.softIclWeight]), [4], { device: terms.device })));
  }

  loss(outputs: StudentOutput[], batch: StepBatch, context?: Pick<StepContext, 'step'>): MethodLoss {
    this.checkStages(outputs);
    const parts = new LossParts();
    let loss = crossEntropyTerms(outputs, batch.y, parts);
    const aggregated = outputs.map((output, n) => this.criterion.aggregator.at(n).aggregate(output.features, output.logits));
    for (const logits of aggregated) {
      const ce = F.crossEntropy(logits, batch.y);
      parts.add('aggregator_ce', ce);
      loss = F.add(loss, ce);
    }
    for (const output of outputs) {
      for (const teacher of aggregated) {
        const kd = distillKL(finalLogits(output), teacher, this.options.kdT);
        parts.add('kd', kd);
        loss = F.add(loss, kd);
      }
    }
    const weights = noGrad(() => this.pairWeights(outputs));
    const { terms, embeddings } = this.contrastiveTerms(outputs, batch, weights, context?.step ?? 0);
    this.bank?.holdForWrite(batch, this.networks.map((_, n) => embeddings[n * this.stages + this.stages - 1]!));
    ['vcl', 'icl', 'soft_vcl', 'soft_icl'].forEach((key, column) => parts.add(key, F.reshape(F.slice(terms, 0, column, column + 1), [])));
    loss = F.add(loss, this.weightedContrastive(terms));
    this.addPairWeightParts(weights, parts);
    parts.add('total', loss);
    return { loss, parts };
  }

  /** The aggregated logits ō_n of every network, evaluated as the 'aggregator' head. */
  evaluationHeads(outputs: StudentOutput[]): EvaluationHead[] {
    this.checkStages(outputs);
    return [{ name: 'aggregator', logits: outputs.map((output, n) => this.criterion.aggregator.at(n).aggregate(output.features, output.logits)) }];
  }

  readonly step = (batch: StepBatch, context: StepContext): StepResult => {
    const result = this.bank ? this.bank.stepThenWrite(batch, context.standardStep) : context.standardStep(batch);
    if (context.batchIndex % this.options.metaFreq === 0) result.parts.add('meta_hypergrad_norm', this.metaPhase(batch, context));
    return result;
  };

  /**
   * The meta phase: updates φ with the exact hypergradient and leaves the networks and Embed heads
   * (parameters and buffers) bit-identical. Returns ‖∂L_outer/∂φ‖ as a device scalar.
   */
  metaPhase(batch: StepBatch, context: StepContext): Tensor {
    const main = context.optimizers.get('main');
    const phiOptimizer = context.optimizers.get('loss_weight');
    if (!main || !phiOptimizer) throw new Error("lmcl: the trainer must give the 'main' and 'loss_weight' optimizers");
    const group = main.paramGroups[0]!;
    const phi = this.criterion.lossWeight.parameters();
    const { gradients, outer } = this.hypergradient(batch, { lr: context.lr, momentum: group.momentum, weightDecay: group.weightDecay }, context.step);
    outer.dispose();
    phiOptimizer.zeroGrad();
    phi.forEach((parameter, index) => {
      parameter.grad = gradients[index]!;
    });
    const norm = tidy(() => keep(F.sqrt(gradients.map((g) => F.sum(F.square(g))).reduce((a, b) => F.add(a, b)))));
    phiOptimizer.step();
    phiOptimizer.zeroGrad();
    return norm;
  }

  /**
   * L_outer(θ_T) after the virtual trajectory from the current θ (metaSteps steps on the weighted
   * contrastive loss, one on Σ CE, zero momentum, plain SGD with the given hyper-parameters) and
   * its exact gradient w.r.t. φ (one tensor per φ parameter, caller-owned). θ and every buffer are
   * restored bit-identically before it returns, also when it throws.
   */
  hypergradient(batch: StepBatch, sgd: { lr: number; momentum: number; weightDecay: number }, step = 0): { outer: Tensor; gradients: Tensor[] } {
    const thetaModules: Module[] = [...this.networks, this.criterion.embed];
    const snapshots = thetaModules.map((module) => module.captureState());
    const virtual = { ...sgd, dampening: 0, nesterov: false };
    const phi = this.criterion.lossWeight.parameters();
    try {
      return tidy(() => {
        const named = thetaModules.map((module) => module.namedParameters());
        const theta0 = named.flatMap((entries) => entries.map(([, parameter]) => parameter));
        const withTheta = <T>(values: readonly Tensor[], fn: () => T): T => {
          const maps: Map<string, Tensor>[] = [];
          let offset = 0;
          for (const entries of named) {
            maps.push(new Map(entries.map(([name], index) => [name, values[offset + index]!] as [string, Tensor])));
            offset += entries.length;
          }
          const run = (index: number): T => (index === thetaModules.length ? fn() : thetaModules[index]!.withParameters(maps[index]!, () => run(index + 1)));
          return run(0);
        };
        const innerObjective = (values: readonly Tensor[]): Tensor => withTheta(values, () => {
          const outputs = this.networks.map((net) => net.forward(batch.x));
          return this.weightedContrastive(this.contrastiveTerms(outputs, batch, this.pairWeights(outputs), step).terms);
        });
        const outerObjective = (values: readonly Tensor[]): Tensor => withTheta(values, () => this.networks
          .flatMap((net) => net.forward(batch.x).logits).map((logits) => F.crossEntropy(logits, batch.y)).reduce((a, b) => F.add(a, b)));
        // One virtual step from (θ, b) on an objective, recorded with createGraph so it can be
        // differentiated again. A parameter the objective does not reach has no graph in its (zero)
        // gradient: skip it.
        const virtualStep = (values: readonly Tensor[], buffers: readonly (Tensor | null)[] | undefined, objective: (values: readonly Tensor[]) => Tensor) => {
          const gradients = grad(objective(values), [...values], { createGraph: true, allowUnused: true }).map((g) => (g.gradFn === null ? null : g));
          return virtualSgdStep(values, gradients, virtual, buffers);
        };
        // A fresh leaf holding a checkpoint's values, so one step's graph starts there; and the
        // graph-free values a step's results are kept as.
        const leaf = (value: Tensor): Tensor => {
          const fresh = value.detach();
          fresh.requiresGrad = true;
          return fresh;
        };
        const leaves = (values: readonly Tensor[]): Tensor[] => values.map(leaf);
        const leafBuffers = (buffers: readonly (Tensor | null)[] | undefined): (Tensor | null)[] | undefined => buffers?.map((b) => b && leaf(b));
        const detached = (tensors: readonly Tensor[]): Tensor[] => tensors.map((t) => t.detach());
        const detachedBuffers = (buffers: readonly (Tensor | null)[]): (Tensor | null)[] => buffers.map((b) => b && b.detach());

        // Forward sweep: the contrastive steps, one graph alive at a time; only the checkpoints
        // (θ_k, b_k: parameter-sized) are kept. Same arithmetic as the reverse sweep's recompute, so
        // the trajectory is bit-identical to one unrolled graph's.
        const checkpoints: { theta: Tensor[]; buffers: (Tensor | null)[] | undefined }[] = [{ theta: detached(theta0), buffers: undefined }];
        for (let k = 0; k < this.options.metaSteps; k += 1) {
          const from = checkpoints[k]!;
          checkpoints.push(tidy(() => {
            const stepped = virtualStep(leaves(from.theta), leafBuffers(from.buffers), innerObjective);
            return { theta: detached(stepped.params), buffers: detachedBuffers(stepped.momentumBuffers) };
          }));
        }
        // Pulls adjoints of a step's outputs back to its input leaves (θ, the non-null b) and φ.
        const pullBack = (
          outputs: Tensor[], gradOutputs: Tensor[] | undefined, thetaLeaves: Tensor[], bufferLeaves: (Tensor | null)[] | undefined,
        ): { theta: Tensor[]; buffers: (Tensor | null)[] | undefined; phi: Tensor[] } => {
          const bufferInputs = (bufferLeaves ?? []).filter((b): b is Tensor => b !== null);
          const adjoints = grad(outputs, [...thetaLeaves, ...bufferInputs, ...phi], { gradOutputs, allowUnused: true });
          const bufferResults = adjoints.slice(thetaLeaves.length, thetaLeaves.length + bufferInputs.length);
          let next = 0;
          return {
            theta: adjoints.slice(0, thetaLeaves.length),
            buffers: bufferLeaves?.map((b) => (b === null ? null : bufferResults[next++]!)),
            phi: adjoints.slice(thetaLeaves.length + bufferInputs.length),
          };
        };
        // The CE step and L_outer after it, differentiated back to the last checkpoint.
        const last = checkpoints[this.options.metaSteps]!;
        const final = tidy(() => {
          const thetaLeaves = leaves(last.theta);
          const bufferLeaves = leafBuffers(last.buffers);
          const stepped = virtualStep(thetaLeaves, bufferLeaves, outerObjective);
          const outer = outerObjective(stepped.params);
          return { outer: outer.detach(), ...pullBack([outer], undefined, thetaLeaves, bufferLeaves) };
        });
        let phiAdjoint = final.phi;
        let thetaAdjoint = final.theta;
        let bufferAdjoint = final.buffers;
        // Reverse sweep: recompute each contrastive step's graph from its checkpoint and pull the
        // adjoints (θ̄, b̄) of its outputs back to its inputs and to φ (vector-Jacobian products).
        for (let k = this.options.metaSteps - 1; k >= 0; k -= 1) {
          const from = checkpoints[k]!;
          const adjointTheta = thetaAdjoint;
          const adjointBuffers = bufferAdjoint;
          const result = tidy(() => {
            const thetaLeaves = leaves(from.theta);
            const bufferLeaves = leafBuffers(from.buffers);
            const stepped = virtualStep(thetaLeaves, bufferLeaves, innerObjective);
            const outputs: Tensor[] = [...stepped.params];
            const gradOutputs: Tensor[] = [...adjointTheta];
            stepped.momentumBuffers.forEach((buffer, index) => {
              const adjoint = adjointBuffers?.[index] ?? null;
              if (buffer !== null && adjoint !== null) {
                outputs.push(buffer);
                gradOutputs.push(adjoint);
              }
            });
            return pullBack(outputs, gradOutputs, thetaLeaves, bufferLeaves);
          });
          thetaAdjoint = result.theta;
          bufferAdjoint = result.buffers;
          phiAdjoint = phiAdjoint.map((sum, index) => F.add(sum, result.phi[index]!));
        }
        const gradients = phiAdjoint.map((g) => keep(g));
        return { outer: keep(final.outer), gradients };
      });
    } finally {
      thetaModules.forEach((module, index) => module.restoreState(snapshots[index]!));
      for (const snapshot of snapshots) snapshot.dispose();
    }
  }

  private addPairWeightParts(weights: Tensor, parts: LossParts): void {
    const S = this.stages;
    const batch = weights.shape[1]!;
    for (let s = 0; s < S; s += 1) {
      for (let t = 0; t < S; t += 1) {
        const selector = new Float32Array(this.pairs.length * batch);
        let count = 0;
        this.pairStages.forEach(([ps, pt], p) => {
          if (ps !== s || pt !== t) return;
          selector.fill(1, p * batch, (p + 1) * batch);
          count += batch;
        });
        parts.add(`weight/s${s}t${t}`, F.mul(F.sum(F.mul(weights, tensor(selector, weights.shape, { device: weights.device }))), 1 / count));
      }
    }
  }

  private checkStages(outputs: StudentOutput[]): void {
    outputs.forEach((output, n) => {
      if (output.features.length !== this.stages || output.logits.length !== this.stages) {
        throw new Error(`lmcl: network ${n} returned ${output.features.length} stage features and ${output.logits.length} logits, expected ${this.stages}`);
      }
    });
  }
}

export const metaOptions = {
  metaFreq: integerOption({ flag: '--meta-freq', description: 'run the meta phase (φ update) every N batches of an epoch', default: 50, min: 1 }),
  metaSteps: integerOption({ flag: '--meta-steps', description: 'virtual SGD steps on the weighted contrastive loss per meta phase', default: 2, min: 1 }),
};

export const lmclEntry = defineMethod({
  name: 'lmcl',
  description: 'layer-wise MCL: every cross-network stage pair with meta-learned weights, stage aggregators and logit KD (needs --auxiliary)',
  options: { ...contrastiveOptions, kdT: kdTemperatureOption, ...metaOptions, ...bankOptions },
  resumeKeys: ['vclWeight', 'iclWeight', 'softVclWeight', 'softIclWeight', 'tau', 'featDim', 'kdT', 'metaFreq', 'metaSteps', 'contrast', 'negK', 'posK', 'nceM'],
  defaultSampler: 'm-per-class',
  defaultAuxiliary: true,
  create: ({ networks, options, trainLabels, seed }) => new LmclMethod(networks, options, { trainLabels, seed }),
});
