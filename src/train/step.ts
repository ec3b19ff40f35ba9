// The training step the loop calls once per batch: `runStep(method, batch, context)`. A method
// that defines its own `step` gets it called (L-MCL: the main update, then every k batches a meta
// phase); any other method gets the standard step: forward every network → method.loss →
// backward → every optimizer's update. The contract (StepContext, StepResult) is in
// losses/method.ts, where methods implement it. Nothing here reads a tensor to the host: the
// parts come back as device scalars and the trainer reads them once per log interval.
import type { Method, StepBatch, StepContext, StepResult } from '../losses/method.js';

export type { StepBatch, StepContext, StepResult, TrainingStep } from '../losses/method.js';

/** forward → loss → backward → update of every parameter set's optimizer. */
export function standardStep(method: Method, batch: StepBatch, context: StepContext): StepResult {
  const outputs = context.networks.map((net) => net.forward(batch.x));
  const { loss, parts } = method.loss(outputs, batch, context);
  if (!parts.has('total')) parts.add('total', loss);
  for (const optimizer of context.optimizers.values()) optimizer.zeroGrad();
  loss.backward();
  // A set whose parameters got no gradient (L-MCL's φ in the main update) is left as it is: SGD skips them.
  for (const optimizer of context.optimizers.values()) optimizer.step();
  return { outputs, parts };
}

/** The step context for one batch; `standardStep` in it runs the standard step with this method. */
export function stepContext(method: Method, fields: Omit<StepContext, 'standardStep'>): StepContext {
  const context: StepContext = { ...fields, standardStep: (batch) => standardStep(method, batch, context) };
  return context;
}

/** One training step: the method's own, or the standard one. */
export function runStep(method: Method, batch: StepBatch, context: StepContext): StepResult {
  const result = method.step ? method.step(batch, context) : standardStep(method, batch, context);
  if (!result.parts.has('total')) {
    result.parts.dispose();
    throw new Error(`method ${method.name}: its step returned no 'total' loss part (the trainer checks it for NaN/Inf)`);
  }
  return result;
}
