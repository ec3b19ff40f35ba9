// `baseline`: N independent networks, Σ_n Σ_s CE(o_{n,s}, y) over every head (backbone and, with
// --auxiliary, the auxiliary heads). Losses are summed over networks, as in the reference code,
// so each network's gradient is the gradient of its own CE.
import type { StudentOutput } from '../models/types.js';
import { CohortMethod, type MethodLoss, type StepBatch } from './method.js';
import { LossParts } from './parts.js';
import { defineMethod } from './entry.js';
import { crossEntropyTerms } from './terms.js';

export class BaselineMethod extends CohortMethod {
  readonly name = 'baseline';

  loss(outputs: StudentOutput[], batch: StepBatch): MethodLoss {
    const parts = new LossParts();
    const loss = crossEntropyTerms(outputs, batch.y, parts);
    parts.add('total', loss);
    return { loss, parts };
  }
}

export const baselineEntry = defineMethod({
  name: 'baseline',
  description: 'Σ over networks and heads of the cross-entropy (independent networks)',
  options: {},
  resumeKeys: [],
  create: ({ networks }) => new BaselineMethod(networks),
});
