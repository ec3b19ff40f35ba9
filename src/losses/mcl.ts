// `mcl`, final-layer Mutual Contrastive Learning (method.md §1.1; the MCL repo's
// cifar_sup_mcl_loss.py + main_cifar.py), for any cohort of N ≥ 2 networks, heterogeneous widths
// included. Per network n its final pooled feature f_n goes through its own Embed head (embed.ts)
// to z_n; with L_nm = z_n·z_mᵀ/τ:
//   VCL     = Σ_n ℓ(L_nn)                          ICL     = Σ_{n<m} ℓ(L_nm) + ℓ(L_mn)
//   SoftVCL = Σ_{n≠m} KL(L_nn ‖ sg L_mm)           SoftICL = Σ_{n<m} KL(L_nm ‖ sg L_mn) + KL(L_mn ‖ sg L_nm)
//   loss    = Σ_n CE(o_n, y) + α·VCL + γ·SoftVCL + β·ICL + λ·SoftICL (+ logit KD)
// with ℓ the supervised InfoNCE and KL the contrastive KL at τ·T of method.md §0.1. All four terms
// of every unordered pair n < m come from ONE F.cohortContrastive call over the N embeddings
// (column sums over the pairs: ICL, SoftVCL and SoftICL exactly; the VCL column counts each ℓ(L_nn)
// once per partner, so it is divided by N − 1).
// Logit KD (--logit-distill): Σ_n KL_T(o_n ‖ sg ē), ē the mean of the final logits. The reference
// applies it to the last network only when N > 2 (method.md §1.1: a loop quirk); we apply it to
// every network, the evident intent (identical for N = 2).
// Flags: the reference's α, γ, β, λ are --vcl-weight, --soft-vcl-weight, --icl-weight and
// --soft-icl-weight here (its --gamma is the multistep schedule's factor in this CLI). Use
// --sampler m-per-class for the reference's batches (two images per class); with a shuffled
// sampler anchors without a positive drop out of ℓ (never NaN).
// --contrast bank (method.md §1.2): the same four terms against one memory bank per network
// (bank.ts: keys per image, the banks as criterion.bank.<n>, written after each step's backward).
// Parts: 'ce', 'ce/net<n>', 'vcl', 'icl', 'soft_vcl', 'soft_icl', 'kd' (with --logit-distill), 'total'.
import * as F from '../ops/functional.js';
import { Module } from '../nn/module.js';
import { ModuleList } from '../nn/container.js';
import { tensor } from '../tensor/creation.js';
import type { Tensor } from '../tensor/tensor.js';
import type { Student, StudentOutput } from '../models/types.js';
import { CohortMethod, type MethodLoss, type StepBatch, type StepContext, type TrainingStep } from './method.js';
import { LossParts } from './parts.js';
import { defineMethod } from './entry.js';
import { booleanOption, integerOption, numberOption } from './options.js';
import { kdTemperatureOption } from './dml.js';
import { EmbedHead } from './embed.js';
import { crossEntropyTerms, distillKL, finalLogits } from './terms.js';
import { BankContrast, MemoryBanks, bankOptions, bankRows, type BankData, type BankSettings } from './bank.js';

export const contrastiveOptions = {
  vclWeight: numberOption({ flag: '--vcl-weight', description: 'weight α of the vanilla (intra-network) contrastive loss', default: 0.1, atLeast: 0 }),
  iclWeight: numberOption({ flag: '--icl-weight', description: 'weight β of the interactive (cross-network) contrastive loss', default: 0.1, atLeast: 0 }),
  softVclWeight: numberOption({ flag: '--soft-vcl-weight', description: 'weight γ of the soft vanilla contrastive KL (the reference\'s --gamma)', default: 1, atLeast: 0 }),
  softIclWeight: numberOption({ flag: '--soft-icl-weight', description: 'weight λ of the soft interactive contrastive KL', default: 1, atLeast: 0 }),
  tau: numberOption({ flag: '--tau', description: 'temperature τ of the contrastive similarities', default: 0.1, greaterThan: 0 }),
  featDim: integerOption({ flag: '--feat-dim', description: 'width of the Embed heads\' output', default: 128, min: 1 }),
};

export const logitDistillOption = booleanOption({ flag: '--logit-distill', description: 'add KL_T(o_n ‖ sg mean_m o_m) for every network', default: false });

export interface MclOptions extends BankSettings {
  vclWeight: number;
  iclWeight: number;
  softVclWeight: number;
  softIclWeight: number;
  tau: number;
  featDim: number;
  kdT: number;
  logitDistill: boolean;
}

/** The method's own modules: one Embed head per network (criterion.embed.<n>.*), with --contrast bank the banks (criterion.bank.<n>). */
export class MclCriterion extends Module {
  readonly embed: ModuleList<EmbedHead>;
  readonly bank: MemoryBanks | null;

  constructor(networks: readonly Student[], featureDim: number, bankRows: number | null = null) {
    super();
    this.embed = this.registerModule('embed', new ModuleList(networks.map((net) => new EmbedHead(net.featureDim, featureDim))));
    this.bank = bankRows === null ? null : this.registerModule('bank', new MemoryBanks(networks.length, bankRows, featureDim));
  }

  /** z_n for every network's final pooled feature. */
  override forward(outputs: StudentOutput[]): Tensor[] {
    return outputs.map((output, n) => {
      const feature = output.features[output.features.length - 1];
      if (!feature) throw new Error(`mcl: network ${n} returned no features`);
      return this.embed.at(n).forward(feature);
    });
  }
}

export class MclMethod extends CohortMethod {
  readonly name = 'mcl';
  override readonly criterion: MclCriterion;
  readonly options: MclOptions;
  /** The memory-bank contrast (--contrast bank), else null. */
  readonly bank: BankContrast | null;
  /** With a bank: the standard step, then the bank write. */
  readonly step?: TrainingStep;
  private readonly pairs: [number, number][] = [];

  constructor(networks: readonly Student[], options: MclOptions, data: BankData = {}) {
    super(networks);
    if (networks.length < 2) throw new Error(`--method mcl needs a cohort of at least 2 networks, got ${networks.length} (use --number-net or --arch a,b)`);
    this.options = options;
    this.criterion = new MclCriterion(networks, options.featDim, bankRows(options, data));
    const bank = BankContrast.over(this.criterion.bank, options, data);
    this.bank = bank;
    if (bank) this.step = (batch, context) => bank.stepThenWrite(batch, context.standardStep);
    for (let n = 0; n < networks.length; n += 1) for (let m = n + 1; m < networks.length; m += 1) this.pairs.push([n, m]);
  }

  loss(outputs: StudentOutput[], batch: StepBatch, context?: Pick<StepContext, 'step'>): MethodLoss {
    const parts = new LossParts();
    const o = this.options;
    let loss = crossEntropyTerms(outputs, batch.y, parts);
    const embeddings = this.criterion.forward(outputs);
    let terms: Tensor;
    if (this.bank) {
      const indices = this.bank.keyIndices(batch, context?.step ?? 0);
      terms = this.bank.terms(embeddings, embeddings.map((_, n) => n), indices, { pairs: this.pairs, temperature: o.tau, klTemperature: o.kdT });
      this.bank.holdForWrite(batch, embeddings);
    } else {
      terms = F.cohortContrastive(embeddings, batch.y, { pairs: this.pairs, temperature: o.tau, klTemperature: o.kdT });
    }
    // Column sums over the pairs; VCL counted once per network (see the file comment).
    const perTerm = F.mul(F.sum(terms, 0), tensor(Float32Array.from([1 / (outputs.length - 1), 1, 1, 1]), [4], { device: terms.device }));
    const [vcl, icl, softVcl, softIcl] = [0, 1, 2, 3].map((column) => F.reshape(F.slice(perTerm, 0, column, column + 1), []));
    parts.add('vcl', vcl!).add('icl', icl!).add('soft_vcl', softVcl!).add('soft_icl', softIcl!);
    const weights = tensor(Float32Array.from([o.vclWeight, o.iclWeight, o.softVclWeight, o.softIclWeight]), [4], { device: perTerm.device });
    loss = F.add(loss, F.sum(F.mul(perTerm, weights)));
    if (o.logitDistill) {
      const finals = outputs.map(finalLogits);
      const ensemble = F.mul(finals.slice(1).reduce((total, logits) => F.add(total, logits), finals[0]!), 1 / finals.length);
      for (const logits of finals) {
        const kd = distillKL(logits, ensemble, o.kdT);
        parts.add('kd', kd);
        loss = F.add(loss, kd);
      }
    }
    parts.add('total', loss);
    return { loss, parts };
  }
}

export const mclEntry = defineMethod({
  name: 'mcl',
  description: 'Mutual Contrastive Learning (final layer): CE + VCL, ICL and their soft KL terms over Embed heads (+ optional logit KD)',
  options: { ...contrastiveOptions, kdT: kdTemperatureOption, logitDistill: logitDistillOption, ...bankOptions },
  resumeKeys: ['vclWeight', 'iclWeight', 'softVclWeight', 'softIclWeight', 'tau', 'featDim', 'kdT', 'logitDistill', 'contrast', 'negK', 'posK', 'nceM'],
  defaultSampler: 'm-per-class',
  create: ({ networks, options, trainLabels, seed }) => new MclMethod(networks, options, { trainLabels, seed }),
});
