// The finiteness check a training state must pass before it is saved (or resumed): a step with a
// finite loss (e.g. 5e22, or any loss with --lr 1e300) can still turn weights into NaN/Inf, and the
// loss check at read time cannot see that. Every tensor a checkpoint would hold is checked — each
// network's parameters and buffers (BatchNorm statistics), the method's modules (criterion) and
// every parameter set's momentum buffers — with one fused native reduction per tensor
// (F.countNonFinite), once per save, never per step.
import * as F from '../ops/functional.js';
import type { Module } from '../nn/module.js';
import type { SGD } from '../optim/sgd.js';
import type { Tensor } from '../tensor/tensor.js';
import { CRITERION } from './state.js';

export interface NonFiniteTensor {
  /** Checkpoint-style name: `net<n>.<state-dict name>`, `criterion.<name>`, `<set>.<index>.momentum_buffer`. */
  name: string;
  /** NaN/±Inf entries, of `size`. */
  count: number;
  size: number;
}

/** Every tensor of the training state with a NaN or ±Inf entry (empty: the state may be saved). */
export function findNonFiniteState(networks: readonly Module[], criterion: Module | null, optimizers: ReadonlyMap<string, SGD>): NonFiniteTensor[] {
  const found: NonFiniteTensor[] = [];
  const check = (name: string, tensor: Tensor): void => {
    const count = F.countNonFinite(tensor);
    if (count > 0) found.push({ name, count, size: tensor.size });
  };
  const checkModule = (prefix: string, module: Module): void => {
    for (const [name, tensor] of module.namedParameters()) check(`${prefix}.${name}`, tensor);
    for (const [name, tensor] of module.namedBuffers()) check(`${prefix}.${name}`, tensor);
  };
  networks.forEach((net, n) => checkModule(`net${n}`, net));
  if (criterion) checkModule(CRITERION, criterion);
  for (const [set, optimizer] of optimizers) {
    const params = optimizer.paramGroups.flatMap((group) => group.params);
    params.forEach((param, index) => {
      const buffer = optimizer.momentumBuffer(param);
      if (buffer) check(`${set}.${index}.momentum_buffer`, buffer);
    });
  }
  return found;
}

/** One line naming the non-finite tensors (the first few, then how many more). */
export function describeNonFinite(found: readonly NonFiniteTensor[], shown = 3): string {
  const listed = found.slice(0, shown).map((entry) => `${entry.name} (${entry.count} of ${entry.size} values)`).join(', ');
  return found.length > shown ? `${listed} and ${found.length - shown} more tensor(s)` : listed;
}
