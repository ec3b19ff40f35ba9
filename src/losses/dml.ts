// `dml`, Deep Mutual Learning: baseline + for each network n the mean over its peers m of
// KL_T(o_n ‖ sg o_m) on the final heads (T = --kd-T, default 3; see terms.ts for KL_T).
// Parts: 'ce', 'ce/net<n>', 'kd', 'kd/net<n>', 'total'.
import * as F from '../ops/functional.js';
import type { Tensor } from '../tensor/tensor.js';
import { zeros } from '../tensor/creation.js';
import type { Student, StudentOutput } from '../models/types.js';
import { CohortMethod, type MethodLoss, type StepBatch } from './method.js';
import { LossParts } from './parts.js';
import { defineMethod } from './entry.js';
import { numberOption } from './options.js';
import { crossEntropyTerms, distillKL, finalLogits } from './terms.js';

export const kdTemperatureOption = numberOption({ flag: '--kd-T', description: 'KL temperature T of the logit distillation (--kd_T in the reference)', default: 3, greaterThan: 0 });

export class DmlMethod extends CohortMethod {
  readonly name = 'dml';
  readonly temperature: number;

  constructor(networks: readonly Student[], options: { kdT: number }) {
    super(networks);
    this.temperature = kdTemperatureOption.validate(options.kdT);
  }

  loss(outputs: StudentOutput[], batch: StepBatch): MethodLoss {
    const parts = new LossParts();
    let loss = crossEntropyTerms(outputs, batch.y, parts);
    const count = outputs.length;
    const perNetwork: Tensor[] = [];
    if (count > 1) {
      outputs.forEach((output, n) => {
        const student = finalLogits(output);
        let perNet: Tensor | null = null;
        outputs.forEach((peer, m) => {
          if (m === n) return;
          const kl = distillKL(student, finalLogits(peer), this.temperature);
          perNet = perNet === null ? kl : F.add(perNet, kl);
        });
        const averaged = F.mul(perNet!, 1 / (count - 1));
        parts.add(`kd/net${n}`, averaged);
        perNetwork.push(averaged);
        loss = F.add(loss, averaged);
      });
    }
    // 'kd' after the per-network parts (column order), and 0 for a single network, as before.
    if (perNetwork.length === 0) parts.add('kd', zeros([], { device: loss.device }));
    for (const kd of perNetwork) parts.add('kd', kd);
    parts.add('total', loss);
    return { loss, parts };
  }
}

export const dmlEntry = defineMethod({
  name: 'dml',
  description: 'baseline + each network distils from the mean of its peers (KL_T on the final heads)',
  options: { kdT: kdTemperatureOption },
  resumeKeys: ['kdT'],
  create: ({ networks, options }) => new DmlMethod(networks, options),
});
