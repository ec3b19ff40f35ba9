// Stochastic gradient descent with momentum, Nesterov momentum and weight decay: the update and
// argument checks of PyTorch 1.13's torch.optim.SGD, as one fused native kernel per parameter
// (native/src/cpu/sgd.cpp). Tests: test/optim/sgd.test.ts.
//
// Per parameter p with gradient g (params whose .grad is null are skipped):
//   d = g (−g with maximize) + weightDecay·p
//   momentum ≠ 0:  b = d on the first step, then b = momentum·b + (1 − dampening)·d
//                  d = nesterov ? d + momentum·b : b
//   p = p − lr·d
// The momentum buffers are tensors owned by the optimizer (kept out of tidy scopes; freed by
// dispose()). Updates bump the storage version of the parameter and of its buffer, so autograd
// refuses a backward through a graph that saved the old values.
import { native } from '../native/index.js';
import { noGrad } from '../autograd/mode.js';
import { withProfilePhase } from '../profiler/profiler.js';
import { Tensor, formatShape } from '../tensor/tensor.js';
import { keep } from '../tensor/scope.js';
import { tensor } from '../tensor/creation.js';

/** Hyperparameters (defaults for every group, or overrides in one group). */
export interface SGDOptions {
  /** Learning rate (required: here or in every parameter group). */
  lr?: number;
  momentum?: number;
  dampening?: number;
  weightDecay?: number;
  nesterov?: boolean;
  /** Maximise the objective instead of minimising it (PyTorch's `maximize`). */
  maximize?: boolean;
}

/** A parameter group as given to the constructor: its params and optional overrides. */
export interface SGDParamGroupInput extends SGDOptions {
  params: readonly Tensor[];
}

/** A live parameter group. Hyperparameters are mutable (a scheduler sets `lr`); step() checks them. */
export interface SGDParamGroup {
  readonly params: readonly Tensor[];
  lr: number;
  momentum: number;
  dampening: number;
  weightDecay: number;
  nesterov: boolean;
  maximize: boolean;
}

/** Hyperparameters of a group in a state dict, with its parameters as global indices. */
export interface SGDParamGroupState {
  lr: number;
  momentum: number;
  dampening: number;
  weightDecay: number;
  nesterov: boolean;
  maximize: boolean;
  params: number[];
}

/**
 * Serialisable optimizer state, shaped like PyTorch's: `state` keyed by parameter index (the
 * position of the parameter across all groups, in order), `paramGroups` with the
 * hyperparameters. Buffers are copies.
 */
export interface SGDStateDict {
  state: Record<number, { momentumBuffer: Float32Array }>;
  paramGroups: SGDParamGroupState[];
}

const hyperparameterNames = ['lr', 'momentum', 'dampening', 'weightDecay', 'nesterov', 'maximize'] as const;

function describe(value: unknown): string {
  if (value instanceof Tensor) return `Tensor${formatShape(value.shape)}`;
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'object') return (value as object).constructor?.name ?? 'object';
  return `${typeof value} ${String(value)}`;
}

const optionNames = new Set<string>(hyperparameterNames);
const groupKeys = new Set<string>(['params', ...hyperparameterNames]);

/** Throws on keys that are not options (e.g. PyTorch's snake_case weight_decay), which would be ignored silently. */
function checkOptionKeys(options: object, allowed: Set<string>, where: string): void {
  for (const key of Object.keys(options)) {
    if (allowed.has(key)) continue;
    const camel = key.replace(/_([a-z])/g, (_, letter: string) => letter.toUpperCase());
    const hint = camel !== key && allowed.has(camel) ? ` (did you mean '${camel}'?)` : '';
    throw new Error(`${where}: unknown option '${key}'${hint}; expected ${[...allowed].join(', ')}`);
  }
}

/** Throws unless the group's hyperparameters are valid (PyTorch's checks, plus finiteness). (Shared with virtual_sgd.ts.) */
export function checkHyperparameters(group: Omit<SGDParamGroup, 'params'>, where: string): void {
  const { lr, momentum, dampening, weightDecay, nesterov, maximize } = group;
  if (typeof lr !== 'number' || !Number.isFinite(lr)) throw new Error(`${where}: lr must be a finite number, got ${describe(lr)}`);
  if (lr < 0) throw new Error(`${where}: invalid learning rate: ${lr} (must be >= 0)`);
  if (typeof momentum !== 'number' || !Number.isFinite(momentum) || momentum < 0) {
    throw new Error(`${where}: invalid momentum value: ${describe(momentum)} (must be a finite number >= 0)`);
  }
  if (typeof dampening !== 'number' || !Number.isFinite(dampening)) {
    throw new Error(`${where}: invalid dampening value: ${describe(dampening)} (must be a finite number)`);
  }
  if (typeof weightDecay !== 'number' || !Number.isFinite(weightDecay) || weightDecay < 0) {
    throw new Error(`${where}: invalid weightDecay value: ${describe(weightDecay)} (must be a finite number >= 0)`);
  }
  if (typeof nesterov !== 'boolean') throw new TypeError(`${where}: nesterov must be a boolean, got ${describe(nesterov)}`);
  if (typeof maximize !== 'boolean') throw new TypeError(`${where}: maximize must be a boolean, got ${describe(maximize)}`);
  if (nesterov && (momentum <= 0 || dampening !== 0)) {
    throw new Error(`${where}: Nesterov momentum requires a momentum and zero dampening (got momentum ${momentum}, dampening ${dampening})`);
  }
}

export class SGD {
  /** The parameter groups, in order; their hyperparameters may be changed between steps. */
  readonly paramGroups: SGDParamGroup[] = [];
  /** The constructor's defaults (applied to groups added later by addParamGroup). */
  readonly defaults: Readonly<SGDOptions>;
  private readonly buffers = new Map<Tensor, Tensor>();
  private device: Tensor['device'] | null = null;
  private disposed = false;

  constructor(params: readonly Tensor[] | readonly SGDParamGroupInput[], options: SGDOptions = {}) {
    if (options === null || typeof options !== 'object') throw new TypeError(`SGD: options must be an object, got ${describe(options)}`);
    checkOptionKeys(options, optionNames, 'SGD');
    this.defaults = {
      lr: options.lr,
      momentum: options.momentum ?? 0,
      dampening: options.dampening ?? 0,
      weightDecay: options.weightDecay ?? 0,
      nesterov: options.nesterov ?? false,
      maximize: options.maximize ?? false,
    };
    // The defaults are checked like PyTorch does in SGD.__init__ (lr only when given).
    checkHyperparameters({ ...(this.defaults as Required<SGDOptions>), lr: this.defaults.lr ?? 0 }, 'SGD');
    if (params instanceof Tensor || !Array.isArray(params)) {
      throw new TypeError(`SGD: params must be an array of Tensors or of parameter groups ({ params: Tensor[], ... }), got ${describe(params)}`);
    }
    if (params.length === 0) throw new Error('SGD: optimizer got an empty parameter list');
    const groups: readonly SGDParamGroupInput[] = params.every((item) => item instanceof Tensor)
      ? [{ params: [...(params as readonly Tensor[])] }]
      : (params as readonly SGDParamGroupInput[]);
    groups.forEach((group, index) => {
      if (group instanceof Tensor || group === null || typeof group !== 'object' || Array.isArray(group)) {
        throw new TypeError(`SGD: params must be all Tensors or all parameter groups; entry ${index} is ${describe(group)}`);
      }
      this.addParamGroup(group);
    });
  }

  /** Adds a parameter group (hyperparameters not given fall back to the constructor's defaults). */
  addParamGroup(group: SGDParamGroupInput): void {
    this.assertUsable('addParamGroup');
    const where = `SGD: parameter group ${this.paramGroups.length}`;
    if (!Array.isArray(group.params)) throw new TypeError(`${where}: params must be an array of Tensors, got ${describe(group.params)}`);
    checkOptionKeys(group, groupKeys, where);
    if (group.params.length === 0) throw new Error(`${where}: got an empty parameter list`);
    const seen = new Set<Tensor>(this.paramGroups.flatMap((existing) => existing.params));
    const own = new Set<Tensor>();
    group.params.forEach((param, index) => {
      if (!(param instanceof Tensor)) throw new TypeError(`${where}: params[${index}] must be a Tensor, got ${describe(param)}`);
      param.assertAlive(`${where} (params[${index}])`);
      if (!param.isLeaf) throw new Error(`${where}: params[${index}] (shape ${formatShape(param.shape)}) is not a leaf tensor; can't optimize a non-leaf Tensor`);
      if (own.has(param)) throw new Error(`${where}: params[${index}] appears twice in the group`);
      if (seen.has(param)) throw new Error(`${where}: some parameters appear in more than one parameter group (params[${index}])`);
      own.add(param);
      if (this.device === null) this.device = param.device;
      else if (param.device !== this.device) {
        throw new Error(`${where}: all parameters must be on the same device, got '${this.device}' and '${param.device}' (params[${index}])`);
      }
    });
    const lr = group.lr ?? this.defaults.lr;
    if (lr === undefined) throw new Error(`${where} didn't specify a value of required optimization parameter lr`);
    const resolved: SGDParamGroup = {
      params: [...group.params],
      lr,
      momentum: group.momentum ?? this.defaults.momentum!,
      dampening: group.dampening ?? this.defaults.dampening!,
      weightDecay: group.weightDecay ?? this.defaults.weightDecay!,
      nesterov: group.nesterov ?? this.defaults.nesterov!,
      maximize: group.maximize ?? this.defaults.maximize!,
    };
    checkHyperparameters(resolved, where);
    this.paramGroups.push(resolved);
  }

  /** One update of every parameter that has a gradient (runs under noGrad). */
  step(): void {
    this.assertUsable('step');
    this.paramGroups.forEach((group, index) => checkHyperparameters(group, `SGD.step: parameter group ${index}`));
    // Check every parameter first, so a bad gradient leaves all parameters untouched.
    const updates: [Tensor, Tensor, SGDParamGroup][] = [];
    let position = 0;
    for (const group of this.paramGroups) {
      for (const param of group.params) {
        const grad = this.checkedGrad(param, position);
        if (grad) updates.push([param, grad, group]);
        position += 1;
      }
    }
    // The profiler files these kernels under 'update', apart from the forward and backward passes.
    withProfilePhase('update', () => noGrad(() => {
      for (const [param, grad, group] of updates) this.update(param, grad, group);
    }));
  }

  private checkedGrad(param: Tensor, position: number): Tensor | null {
    const grad = param.grad;
    if (grad === null || grad === undefined) return null;
    const where = `SGD.step: parameter ${position}`;
    param.assertAlive(where);
    if (!(grad instanceof Tensor)) throw new TypeError(`${where}: .grad must be a Tensor or null, got ${describe(grad)}`);
    grad.assertAlive(`${where} (its gradient)`);
    if (grad.shape.length !== param.shape.length || grad.shape.some((extent, d) => extent !== param.shape[d])) {
      throw new Error(`${where}: its gradient has shape ${formatShape(grad.shape)} but the parameter has shape ${formatShape(param.shape)}`);
    }
    if (grad.device !== param.device) {
      throw new Error(`${where}: its gradient is on '${grad.device}' but the parameter is on '${param.device}'`);
    }
    return grad;
  }

  private update(param: Tensor, grad: Tensor, group: SGDParamGroup): void {
    let buffer: Tensor | null = null;
    let firstStep = false;
    if (group.momentum !== 0) {
      buffer = this.buffers.get(param) ?? null;
      if (buffer === null) {
        buffer = keep(Tensor.empty(param.shape, param.device));
        firstStep = true;
      }
    }
    try {
      native().sgdStep(param.storage.handle, grad.storage.handle, buffer ? buffer.storage.handle : null, param.size, group.lr,
        group.momentum, group.dampening, group.weightDecay, group.nesterov, group.maximize, firstStep);
    } catch (error) {
      if (firstStep) buffer?.dispose();
      throw error;
    }
    if (buffer) {
      if (firstStep) this.buffers.set(param, buffer);
      buffer.storage.version += 1;
    }
    param.storage.version += 1;
  }

  /** Drops every parameter's gradient (disposes it and sets .grad = null, like set_to_none=True). */
  zeroGrad(): void {
    for (const group of this.paramGroups) {
      for (const param of group.params) {
        if (param.grad) {
          param.grad.dispose();
          param.grad = null;
        }
      }
    }
  }

  /** The momentum buffer of a parameter (null before its first momentum step). Owned by the optimizer. */
  momentumBuffer(param: Tensor): Tensor | null {
    return this.buffers.get(param) ?? null;
  }

  /** A copy of the state: hyperparameters per group and the momentum buffers, by parameter index. */
  stateDict(): SGDStateDict {
    this.assertUsable('stateDict');
    const state: Record<number, { momentumBuffer: Float32Array }> = {};
    const paramGroups: SGDParamGroupState[] = [];
    let position = 0;
    for (const group of this.paramGroups) {
      const indices: number[] = [];
      for (const param of group.params) {
        const buffer = this.buffers.get(param);
        if (buffer) state[position] = { momentumBuffer: buffer.toFloat32Array() };
        indices.push(position);
        position += 1;
      }
      paramGroups.push({
        lr: group.lr,
        momentum: group.momentum,
        dampening: group.dampening,
        weightDecay: group.weightDecay,
        nesterov: group.nesterov,
        maximize: group.maximize,
        params: indices,
      });
    }
    return { state, paramGroups };
  }

  /**
   * Restores a state from stateDict(): groups must match this optimizer's in number and size
   * (parameters are matched by position, like PyTorch). Replaces every hyperparameter and every
   * momentum buffer (a parameter without saved state has none afterwards). Validates everything
   * before changing anything.
   */
  loadStateDict(stateDict: SGDStateDict): void {
    this.assertUsable('loadStateDict');
    const where = 'SGD.loadStateDict';
    if (stateDict === null || typeof stateDict !== 'object' || !Array.isArray(stateDict.paramGroups)) {
      throw new TypeError(`${where}: expected an object { state, paramGroups } from stateDict(), got ${describe(stateDict)}`);
    }
    const saved = stateDict.paramGroups;
    if (saved.length !== this.paramGroups.length) {
      throw new Error(`${where}: loaded state dict has ${saved.length} parameter groups, the optimizer has ${this.paramGroups.length}`);
    }
    const byIndex = new Map<number, Tensor>();
    saved.forEach((group, index) => {
      const current = this.paramGroups[index]!;
      if (group === null || typeof group !== 'object' || !Array.isArray(group.params)) {
        throw new TypeError(`${where}: paramGroups[${index}] must be an object with a params array`);
      }
      if (group.params.length !== current.params.length) {
        throw new Error(
          `${where}: loaded parameter group ${index} has ${group.params.length} parameters but the optimizer's group has ${current.params.length}`,
        );
      }
      for (const name of hyperparameterNames) {
        if (!(name in group)) throw new Error(`${where}: paramGroups[${index}] is missing '${name}'`);
      }
      checkHyperparameters(group, `${where}: paramGroups[${index}]`);
      group.params.forEach((id, k) => {
        if (!Number.isSafeInteger(id) || byIndex.has(id)) throw new Error(`${where}: paramGroups[${index}].params has a bad or repeated index ${String(id)}`);
        byIndex.set(id, current.params[k]!);
      });
    });
    const state = stateDict.state ?? {};
    if (typeof state !== 'object') throw new TypeError(`${where}: state must be an object keyed by parameter index`);
    const loaded: [Tensor, Float32Array][] = [];
    for (const [key, entry] of Object.entries(state)) {
      const param = byIndex.get(Number(key));
      if (!param) throw new Error(`${where}: state has an entry for parameter ${key}, which no parameter group lists`);
      const data = (entry as { momentumBuffer?: unknown } | null)?.momentumBuffer;
      if (data === undefined || data === null) continue;
      if (!(data instanceof Float32Array)) throw new TypeError(`${where}: state[${key}].momentumBuffer must be a Float32Array, got ${describe(data)}`);
      if (data.length !== param.size) {
        throw new Error(`${where}: state[${key}].momentumBuffer has ${data.length} values but the parameter has shape ${formatShape(param.shape)} (${param.size})`);
      }
      loaded.push([param, data]);
    }
    // Everything checked: apply.
    saved.forEach((group, index) => {
      const current = this.paramGroups[index]!;
      current.lr = group.lr;
      current.momentum = group.momentum;
      current.dampening = group.dampening;
      current.weightDecay = group.weightDecay;
      current.nesterov = group.nesterov;
      current.maximize = group.maximize;
    });
    for (const buffer of this.buffers.values()) buffer.dispose();
    this.buffers.clear();
    for (const [param, data] of loaded) {
      this.buffers.set(param, keep(tensor(data, param.shape, { device: param.device })));
    }
  }

  /** Frees the momentum buffers; the optimizer cannot be used afterwards. Idempotent. */
  dispose(): void {
    for (const buffer of this.buffers.values()) buffer.dispose();
    this.buffers.clear();
    this.disposed = true;
  }

  private assertUsable(op: string): void {
    if (this.disposed) throw new Error(`SGD.${op}: the optimizer was disposed`);
  }
}
