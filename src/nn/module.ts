// nn.Module: the base class of layers and models (the PyTorch torch.nn.Module contract, in TS).
//
// Design:
// - Registration is explicit and ordered. A module owns three insertion-ordered registries:
//   parameters, buffers and child modules, filled by registerParameter / registerBuffer /
//   registerModule. Each returns what it registered, so a subclass writes
//       readonly conv1 = this.registerModule('conv1', new Conv2d(3, 16, 3, { padding: 1 }));
//   (or assigns in its constructor). Registering `null` reserves a name without an entry (like
//   PyTorch's register_parameter('bias', None)): it appears nowhere, not even in stateDict.
//   The registries are the source of truth for parameters(), stateDict(), to(), dispose()...
//   Layers expose their tensors through getters that read the registry (conv.weight, bn.runningMean).
// - Calling: TypeScript instances cannot be callable, so there is no `module(x)`; call
//   `module.forward(x)` directly. forward is the single entry point (no hooks).
// - Names follow PyTorch exactly, so state dicts line up with torch checkpoints:
//   'layer1.0.conv1.weight', 'bn1.running_mean', 'bn1.num_batches_tracked', Sequential children
//   '0', '1', ... Order: a module's own parameters, then its own buffers, then each child's.
// - stateDict() returns an ordered Map<string, StateEntry> of host snapshots ({ shape, data:
//   Float32Array }): independent of later training steps, nothing to dispose, ready to serialise.
//   loadStateDict() accepts such a Map, a plain object of the same entries, or Tensors as values,
//   checks everything first (so a failed load changes nothing), then copies into the existing
//   tensors in place (bumping their storage version; optimizers keep working on the same tensors).
// - Functional calls and snapshots (for L-MCL's meta step): withParameters(map, fn) runs fn with
//   registered tensors swapped for substitutes (non-leaf results of a virtual SGD step), undone
//   in finally; captureState() clones every parameter and buffer on its device into a
//   caller-owned ModuleState and restoreState() copies it back in place, bit for bit, keeping
//   the tensor objects optimizers hold and bumping versions so stale saved tensors are caught.
// - Lifetimes: registered tensors are keep()-ed (tidy scopes never dispose them) and owned by the
//   module: dispose() frees every parameter, gradient and buffer of the tree. Replacing a
//   registration with register*() again does not dispose the previous tensor (it may be shared).
import { Tensor, formatShape, shapeSize, type Device } from '../tensor/tensor.js';
import { keep } from '../tensor/scope.js';
import { noGrad } from '../autograd/mode.js';
import { copyInPlace, fillInPlace, parameter, writeInPlace } from './parameter.js';
import { describeValue } from '../ops/checks.js';

/** One state-dict value: a host copy of a tensor. */
export interface StateEntry {
  shape: number[];
  data: Float32Array;
}

/** What stateDict() returns: name → host snapshot, in PyTorch's order. */
export type StateDict = Map<string, StateEntry>;

/** What loadStateDict() accepts. */
export type StateDictLike = Map<string, StateEntry | Tensor> | Record<string, StateEntry | Tensor>;

export interface LoadStateDictOptions {
  /** Require the keys to match exactly (default true). Shape mismatches always throw. */
  strict?: boolean;
}

export interface LoadStateDictResult {
  missingKeys: string[];
  unexpectedKeys: string[];
}

export interface NamedOptions {
  /** Prepended (with a '.') to every name. */
  prefix?: string;
  /** Include descendants (default true); false lists only this module's own entries. */
  recurse?: boolean;
}

function checkName(name: unknown, kind: string, owner: string): asserts name is string {
  if (typeof name !== 'string' || name.length === 0) {
    throw new TypeError(`${owner}.register${kind}: name must be a non-empty string, got ${JSON.stringify(name)}`);
  }
  if (name.includes('.')) throw new Error(`${owner}.register${kind}: name '${name}' must not contain '.'`);
}

function join(prefix: string, name: string): string {
  return prefix ? `${prefix}.${name}` : name;
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((extent, index) => extent === b[index]);
}

export abstract class Module {
  /** Training mode (true) or evaluation mode (false); set with train() / eval(). */
  training = true;
  private readonly parameterSlots = new Map<string, Tensor | null>();
  private readonly bufferSlots = new Map<string, Tensor | null>();
  private readonly nonPersistentBuffers = new Set<string>();
  private readonly moduleSlots = new Map<string, Module | null>();

  /** The computation. Subclasses narrow the signature, e.g. `override forward(x: Tensor): Tensor`. */
  abstract forward(...inputs: any[]): any;

  /** The class name used in messages and in toString(). */
  get typeName(): string {
    return this.constructor.name;
  }

  // ---- registration -------------------------------------------------------------------------

  private checkFree(name: string, kind: 'Parameter' | 'Buffer' | 'Module'): void {
    const taken =
      (kind !== 'Parameter' && this.parameterSlots.has(name) && 'a parameter') ||
      (kind !== 'Buffer' && this.bufferSlots.has(name) && 'a buffer') ||
      (kind !== 'Module' && this.moduleSlots.has(name) && 'a module');
    if (taken) throw new Error(`${this.typeName}.register${kind}: '${name}' is already registered as ${taken}`);
  }

  /**
   * Registers a trainable tensor under `name` (marks it requiresGrad and keeps it out of tidy
   * scopes). Pass null to declare an absent parameter (e.g. a bias that is switched off).
   * To freeze a parameter, clear requiresGrad afterwards (or use setRequiresGrad(false)).
   */
  registerParameter<T extends Tensor | null>(name: string, value: T): T {
    checkName(name, 'Parameter', this.typeName);
    this.checkFree(name, 'Parameter');
    if (value !== null) {
      if (!(value instanceof Tensor)) throw new TypeError(`${this.typeName}.registerParameter('${name}'): expected a Tensor or null`);
      parameter(value);
      if (value.name === undefined) value.name = name;
    }
    this.parameterSlots.set(name, value);
    return value;
  }

  /**
   * Registers a state tensor that is not trained (e.g. running statistics). Persistent buffers
   * (the default) appear in stateDict(); pass { persistent: false } for scratch state.
   */
  registerBuffer<T extends Tensor | null>(name: string, value: T, options: { persistent?: boolean } = {}): T {
    checkName(name, 'Buffer', this.typeName);
    this.checkFree(name, 'Buffer');
    if (value !== null) {
      if (!(value instanceof Tensor)) throw new TypeError(`${this.typeName}.registerBuffer('${name}'): expected a Tensor or null`);
      value.assertAlive(`${this.typeName}.registerBuffer('${name}')`);
      keep(value);
      if (value.name === undefined) value.name = name;
    }
    this.bufferSlots.set(name, value);
    if (options.persistent === false) this.nonPersistentBuffers.add(name);
    else this.nonPersistentBuffers.delete(name);
    return value;
  }

  /** Registers a child module under `name` (its entries are named '<name>.<entry>'). */
  registerModule<M extends Module | null>(name: string, module: M): M {
    checkName(name, 'Module', this.typeName);
    this.checkFree(name, 'Module');
    if (module !== null && !(module instanceof Module)) {
      throw new TypeError(`${this.typeName}.registerModule('${name}'): expected a Module or null`);
    }
    if ((module as Module | null) === this) throw new Error(`${this.typeName}.registerModule('${name}'): a module cannot be its own child`);
    this.moduleSlots.set(name, module);
    return module;
  }

  // ---- lookup -------------------------------------------------------------------------------

  /** The descendant at a dotted path ('' is this module), like torch's get_submodule. */
  getSubmodule(path: string): Module {
    if (path === '') return this;
    let current: Module = this;
    for (const part of path.split('.')) {
      const next = current.moduleSlots.get(part);
      if (!next) throw new Error(`${this.typeName}.getSubmodule: no submodule '${path}' (${current.typeName} has no child '${part}')`);
      current = next;
    }
    return current;
  }

  private resolveEntry(path: string, slots: 'parameterSlots' | 'bufferSlots', what: string): Tensor | null {
    const dot = path.lastIndexOf('.');
    const owner = this.getSubmodule(dot < 0 ? '' : path.slice(0, dot));
    const local = dot < 0 ? path : path.slice(dot + 1);
    if (!owner[slots].has(local)) throw new Error(`${this.typeName}: no ${what} '${path}'`);
    return owner[slots].get(local)!;
  }

  /** The parameter at a dotted path ('layer1.0.conv1.weight'); null if registered as absent. */
  getParameter(path: string): Tensor | null {
    return this.resolveEntry(path, 'parameterSlots', 'parameter');
  }

  /** The buffer at a dotted path ('bn1.running_mean'); null if registered as absent. */
  getBuffer(path: string): Tensor | null {
    return this.resolveEntry(path, 'bufferSlots', 'buffer');
  }

  // ---- traversal ----------------------------------------------------------------------------

  /** Direct children with their names, in registration order. */
  namedChildren(): [string, Module][] {
    const result: [string, Module][] = [];
    const seen = new Set<Module>();
    for (const [name, module] of this.moduleSlots) {
      if (module && !seen.has(module)) {
        seen.add(module);
        result.push([name, module]);
      }
    }
    return result;
  }

  children(): Module[] {
    return this.namedChildren().map(([, module]) => module);
  }

  /** This module and every descendant, pre-order, each once ('' names this module). */
  namedModules(prefix = ''): [string, Module][] {
    const result: [string, Module][] = [];
    const seen = new Set<Module>();
    const visit = (module: Module, name: string): void => {
      if (seen.has(module)) return;
      seen.add(module);
      result.push([name, module]);
      for (const [childName, child] of module.moduleSlots) if (child) visit(child, join(name, childName));
    };
    visit(this, prefix);
    return result;
  }

  modules(): Module[] {
    return this.namedModules().map(([, module]) => module);
  }

  private namedEntries(slots: 'parameterSlots' | 'bufferSlots', options: NamedOptions): [string, Tensor][] {
    const recurse = options.recurse ?? true;
    const owners: [string, Module][] = recurse ? this.namedModules(options.prefix ?? '') : [[options.prefix ?? '', this]];
    const result: [string, Tensor][] = [];
    const seen = new Set<Tensor>();
    for (const [ownerName, owner] of owners) {
      for (const [name, value] of owner[slots]) {
        if (value && !seen.has(value)) {
          seen.add(value);
          result.push([join(ownerName, name), value]);
        }
      }
    }
    return result;
  }

  /** Parameters with dotted names ('layer1.0.conv1.weight'); a shared tensor is listed once. */
  namedParameters(options: NamedOptions = {}): [string, Tensor][] {
    return this.namedEntries('parameterSlots', options);
  }

  parameters(options: { recurse?: boolean } = {}): Tensor[] {
    return this.namedParameters(options).map(([, value]) => value);
  }

  /** Buffers (persistent or not) with dotted names ('bn1.running_mean'). */
  namedBuffers(options: NamedOptions = {}): [string, Tensor][] {
    return this.namedEntries('bufferSlots', options);
  }

  buffers(options: { recurse?: boolean } = {}): Tensor[] {
    return this.namedBuffers(options).map(([, value]) => value);
  }

  /** Calls fn on every descendant (children first) and then on this module, like torch's apply. */
  apply(fn: (module: Module) => void): this {
    for (const child of this.children()) child.apply(fn);
    fn(this);
    return this;
  }

  // ---- modes and gradients ------------------------------------------------------------------

  /** Sets training mode on this module and all descendants (BatchNorm uses batch statistics). */
  train(mode = true): this {
    if (typeof mode !== 'boolean') throw new TypeError(`${this.typeName}.train: mode must be a boolean`);
    for (const module of this.modules()) module.training = mode;
    return this;
  }

  /** Evaluation mode (BatchNorm uses running statistics): train(false). */
  eval(): this {
    return this.train(false);
  }

  /**
   * Clears the gradients of all parameters. setToNone (default, as in PyTorch 2) disposes them and
   * sets grad to null; false overwrites them with zeros in place.
   */
  zeroGrad(setToNone = true): void {
    for (const value of this.parameters()) {
      if (!value.grad) continue;
      if (setToNone) {
        value.grad.dispose();
        value.grad = null;
      } else {
        fillInPlace(value.grad, 0, `${this.typeName}.zeroGrad`);
      }
    }
  }

  /** Sets requiresGrad on every parameter (false freezes the module). */
  setRequiresGrad(requiresGrad = true): this {
    for (const value of this.parameters()) value.requiresGrad = requiresGrad;
    return this;
  }

  // ---- state dicts --------------------------------------------------------------------------

  /** Name → tensor for everything stateDict() covers, in order (no deduplication, like torch). */
  private stateTensors(): Map<string, Tensor> {
    const result = new Map<string, Tensor>();
    const visit = (module: Module, prefix: string): void => {
      for (const [name, value] of module.parameterSlots) if (value) result.set(join(prefix, name), value);
      for (const [name, value] of module.bufferSlots) {
        if (value && !module.nonPersistentBuffers.has(name)) result.set(join(prefix, name), value);
      }
      for (const [name, child] of module.moduleSlots) if (child) visit(child, join(prefix, name));
    };
    visit(this, '');
    return result;
  }

  /**
   * Host snapshots of all parameters and persistent buffers, keyed by PyTorch's names, in
   * PyTorch's order. The arrays are copies: later training does not change them.
   */
  stateDict(): StateDict {
    const result: StateDict = new Map();
    for (const [name, value] of this.stateTensors()) {
      value.assertAlive(`${this.typeName}.stateDict ('${name}')`);
      result.set(name, { shape: [...value.shape], data: value.toFloat32Array() });
    }
    return result;
  }

  /**
   * Copies a state dict into this module's tensors in place. With strict (default) the keys must
   * match exactly; shapes must always match. Everything is checked before anything is written,
   * and every problem is listed in one Error. Returns the keys that were missing / unexpected.
   */
  loadStateDict(state: StateDictLike, options: LoadStateDictOptions = {}): LoadStateDictResult {
    const op = `${this.typeName}.loadStateDict`;
    const strict = options.strict ?? true;
    if (typeof strict !== 'boolean') throw new TypeError(`${op}: strict must be a boolean`);
    let entries: [string, unknown][];
    if (state instanceof Map) entries = [...state.entries()];
    else if (state !== null && typeof state === 'object' && !Array.isArray(state)) entries = Object.entries(state);
    else throw new TypeError(`${op}: expected a Map or a plain object of name → { shape, data } (or Tensor)`);

    const incoming = new Map<string, StateEntry | Tensor>();
    for (const [name, value] of entries) {
      if (value instanceof Tensor) {
        value.assertAlive(`${op} ('${name}')`);
        incoming.set(name, value);
        continue;
      }
      const entry = value as Partial<StateEntry> | null;
      if (
        entry === null || typeof entry !== 'object' || !Array.isArray(entry.shape) ||
        !entry.shape.every((extent) => Number.isSafeInteger(extent) && extent >= 0)
      ) {
        throw new TypeError(`${op}: entry '${name}' must be a Tensor or { shape: number[], data: Float32Array }`);
      }
      if (!(entry.data instanceof Float32Array)) throw new TypeError(`${op}: entry '${name}' has no Float32Array 'data'`);
      if (entry.data.length !== shapeSize(entry.shape)) {
        throw new Error(`${op}: entry '${name}' has ${entry.data.length} values for shape ${formatShape(entry.shape)}`);
      }
      incoming.set(name, entry as StateEntry);
    }

    const own = this.stateTensors();
    const missingKeys = [...own.keys()].filter((name) => !incoming.has(name));
    const unexpectedKeys = [...incoming.keys()].filter((name) => !own.has(name));
    const problems: string[] = [];
    if (strict && missingKeys.length > 0) problems.push(`Missing key(s) in state dict: ${missingKeys.map((k) => `"${k}"`).join(', ')}.`);
    if (strict && unexpectedKeys.length > 0) {
      problems.push(`Unexpected key(s) in state dict: ${unexpectedKeys.map((k) => `"${k}"`).join(', ')}.`);
    }
    for (const [name, target] of own) {
      const source = incoming.get(name);
      if (!source) continue;
      target.assertAlive(`${op} ('${name}')`);
      if (!sameShape(source.shape, target.shape)) {
        problems.push(
          `size mismatch for ${name}: copying a param with shape ${formatShape(source.shape)} from checkpoint, ` +
            `the shape in current model is ${formatShape(target.shape)}.`,
        );
      }
    }
    if (problems.length > 0) {
      throw new Error(`${op}: Error(s) in loading state dict for ${this.typeName}:\n\t${problems.join('\n\t')}`);
    }

    noGrad(() => {
      for (const [name, target] of own) {
        const source = incoming.get(name);
        if (!source) continue;
        if (source instanceof Tensor) copyInPlace(target, source, op);
        else writeInPlace(target, source.data, op);
      }
    });
    return { missingKeys, unexpectedKeys };
  }

  // ---- functional parameters and state capture ----------------------------------------------

  /**
   * Runs fn with some registered tensors replaced by the given ones, then puts the registered
   * tensors back, also when fn throws (torch.func.functional_call / nn.utils.stateless). Keys are
   * state-dict names ('layer1.0.conv1.weight', 'bn1.running_mean'); parameters and buffers (also
   * non-persistent ones) can be substituted. A substitute may be any tensor of the same shape and
   * device, typically a non-leaf one (θ − lr·g from a virtual step), so gradients of what fn
   * computes flow to the substitutes and through them to whatever they were computed from, not
   * to the module's own parameters.
   *
   * - A tensor registered under several names (tied weights) is replaced under all of them (like
   *   torch's tie_weights=True); giving two different substitutes for tied names is an Error.
   * - Fields of a module that point at a replaced tensor are swapped too (as to() does).
   * - fn must be synchronous: the swap is undone when it returns, before a Promise could settle.
   * - BatchNorm in training mode updates whatever running-statistics buffers are registered while
   *   fn runs: the module's own buffers unless they were substituted. The meta step therefore
   *   brackets its virtual forwards with captureState() / restoreState() (or substitutes clones).
   * - Everything is checked before anything is swapped; all unknown names are listed in one Error.
   */
  withParameters<T>(substitutes: ReadonlyMap<string, Tensor> | Readonly<Record<string, Tensor>>, fn: () => T): T {
    const op = `${this.typeName}.withParameters`;
    if (typeof fn !== 'function') throw new TypeError(`${op}: fn must be a function`);
    let entries: [string, unknown][];
    if (substitutes instanceof Map) entries = [...substitutes.entries()];
    else if (substitutes !== null && typeof substitutes === 'object' && !Array.isArray(substitutes)) entries = Object.entries(substitutes);
    else throw new TypeError(`${op}: expected a Map or a plain object of state-dict name → Tensor`);

    const registered = this.registeredTensors();
    const unknown = entries.map(([name]) => name).filter((name) => !registered.has(name));
    if (unknown.length > 0) {
      throw new Error(`${op}: no parameter or buffer named ${unknown.map((name) => `'${name}'`).join(', ')} in ${this.typeName}`);
    }
    // Keyed by the registered tensor (not the name), so tied names are swapped together.
    const replacementOf = new Map<Tensor, Tensor>();
    const nameOf = new Map<Tensor, string>();
    for (const [name, value] of entries) {
      const original = registered.get(name)!;
      if (!(value instanceof Tensor)) throw new TypeError(`${op}: substitute for '${name}' must be a Tensor, got ${describeValue(value)}`);
      value.assertAlive(`${op} ('${name}')`);
      if (!sameShape(value.shape, original.shape)) {
        throw new Error(`${op}: substitute for '${name}' has shape ${formatShape(value.shape)}, the registered tensor has ${formatShape(original.shape)}`);
      }
      if (value.device !== original.device) {
        throw new Error(`${op}: substitute for '${name}' is on '${value.device}', the registered tensor on '${original.device}'`);
      }
      const earlier = replacementOf.get(original);
      if (earlier !== undefined && earlier !== value) {
        throw new Error(`${op}: '${nameOf.get(original)}' and '${name}' are the same (tied) tensor but got different substitutes`);
      }
      replacementOf.set(original, value);
      nameOf.set(original, name);
    }
    if (replacementOf.size === 0) return this.requireSynchronous(fn(), op);

    // Every place that points at a replaced tensor: registry slots and plain fields.
    const undo: (() => void)[] = [];
    try {
      for (const module of this.modules()) {
        for (const slots of [module.parameterSlots, module.bufferSlots]) {
          for (const [name, value] of slots) {
            const replacement = value ? replacementOf.get(value) : undefined;
            if (!value || !replacement) continue;
            slots.set(name, replacement);
            undo.push(() => slots.set(name, value));
          }
        }
        const fields = module as unknown as Record<string, unknown>;
        for (const key of Object.keys(fields)) {
          const value = fields[key];
          const replacement = value instanceof Tensor ? replacementOf.get(value) : undefined;
          if (!replacement) continue;
          fields[key] = replacement;
          undo.push(() => {
            fields[key] = value;
          });
        }
      }
      return this.requireSynchronous(fn(), op);
    } finally {
      // In reverse, so a slot listed twice ends at its first (original) value.
      for (let index = undo.length - 1; index >= 0; index -= 1) undo[index]!();
    }
  }

  private requireSynchronous<T>(result: T, op: string): T {
    if (result instanceof Promise) throw new Error(`${op}: fn must be synchronous (it returned a Promise)`);
    return result;
  }

  /**
   * State-dict name → registered tensor, for every parameter and buffer (non-persistent too).
   * Walked like stateTensors(): a module registered twice contributes both names.
   */
  private registeredTensors(): Map<string, Tensor> {
    const result = new Map<string, Tensor>();
    const visit = (module: Module, prefix: string): void => {
      for (const slots of [module.parameterSlots, module.bufferSlots]) {
        for (const [name, value] of slots) if (value) result.set(join(prefix, name), value);
      }
      for (const [name, child] of module.moduleSlots) if (child) visit(child, join(prefix, name));
    };
    visit(this, '');
    return result;
  }

  /**
   * Clones every parameter and buffer (BatchNorm running statistics and num_batches_tracked
   * included, non-persistent buffers too) on its own device: a byte copy, so restoreState() gives
   * the values back bit for bit. The snapshot is owned by the caller: dispose() it (it is kept
   * out of tidy scopes). Host-side mirrors of buffers (BatchNorm's batch counter) are captured
   * with it, so the forwards after a restore need no device read.
   */
  captureState(): ModuleState {
    const op = `${this.typeName}.captureState`;
    const entries: CapturedEntry[] = [];
    const seen = new Set<Tensor>();
    try {
      for (const [name, original] of this.registeredTensors()) {
        if (seen.has(original)) continue; // a tied tensor is captured (and restored) once
        seen.add(original);
        original.assertAlive(`${op} ('${name}')`);
        const snapshot = keep(original.to(original.device));
        snapshot.name = name;
        entries.push({ name, original, snapshot });
      }
    } catch (error) {
      for (const entry of entries) entry.snapshot.dispose();
      throw error;
    }
    const hostStates = new Map<Module, unknown>();
    for (const module of this.modules()) {
      const hostState = module.captureHostState();
      if (hostState !== undefined) hostStates.set(module, hostState);
    }
    return new ModuleState(this, entries, hostStates);
  }

  /**
   * Writes a snapshot from captureState() back into the same tensors, in place: parameter
   * identity is kept (optimizers keep working on the same objects) and every storage version is
   * bumped, so a graph that saved a parameter before the restore refuses its backward (the
   * in-place modification error) instead of using the restored values. (Graphs never save
   * buffers: batch norm copies the running statistics it uses, so its backward stays valid.) Requires the module
   * to still have exactly the captured tensors registered (not after to(), not inside
   * withParameters); everything is checked before anything is written. The snapshot stays valid
   * (restore as often as needed) until it is disposed.
   */
  restoreState(state: ModuleState): void {
    const op = `${this.typeName}.restoreState`;
    if (!(state instanceof ModuleState)) throw new TypeError(`${op}: expected a ModuleState from captureState()`);
    if (state.isDisposed) throw new Error(`${op}: the state was disposed`);
    if (state.owner !== this) throw new Error(`${op}: the state was captured from another module (${state.owner.typeName})`);
    const registered = this.registeredTensors();
    const capturedNames = new Set(state.entries.map((entry) => entry.name));
    const problems: string[] = [];
    for (const entry of state.entries) {
      const current = registered.get(entry.name);
      if (current !== entry.original) {
        problems.push(current === undefined ? `'${entry.name}' is no longer registered` : `'${entry.name}' is registered as another tensor than the captured one`);
      } else {
        entry.original.assertAlive(`${op} ('${entry.name}')`);
      }
    }
    const captured = new Set(state.entries.map((entry) => entry.original));
    for (const [name, value] of registered) {
      if (!capturedNames.has(name) && !captured.has(value)) problems.push(`'${name}' was registered after the capture`);
    }
    if (problems.length > 0) throw new Error(`${op}: the module does not match the captured state: ${problems.join('; ')}`);
    noGrad(() => {
      for (const entry of state.entries) copyInPlace(entry.original, entry.snapshot, op);
    });
    for (const module of this.modules()) {
      const hostState = state.hostStates.get(module);
      if (hostState !== undefined) module.restoreHostState(hostState);
    }
  }

  /**
   * Host-side state derived from buffers (e.g. BatchNorm's mirror of num_batches_tracked) that
   * captureState() saves beside the tensors; undefined (the default) for none.
   */
  protected captureHostState(): unknown {
    return undefined;
  }

  /** Called by restoreState() after the buffers were written back, with what captureHostState() gave. */
  protected restoreHostState(_state: unknown): void {}

  // ---- devices and lifetime -----------------------------------------------------------------

  /**
   * Moves every parameter (with its gradient) and buffer to `device`. Moved entries are new
   * tensors (the old ones are disposed), so build the optimizer after calling to(). Own fields of
   * a module that point at a moved tensor are updated too. A no-op for entries already there.
   */
  to(device: Device): this {
    if (device !== 'cpu' && device !== 'cuda') throw new TypeError(`${this.typeName}.to: unknown device '${String(device)}'`);
    const moved = new Map<Tensor, Tensor>();
    const move = (value: Tensor): Tensor => {
      const done = moved.get(value);
      if (done) return done;
      if (value.device === device) return value;
      const copy = keep(value.to(device));
      copy.name = value.name;
      if (value.requiresGrad) copy.requiresGrad = true;
      if (value.grad) copy.grad = keep(value.grad.to(device));
      moved.set(value, copy);
      return copy;
    };
    const modules = this.modules();
    for (const module of modules) {
      for (const slots of [module.parameterSlots, module.bufferSlots]) {
        for (const [name, value] of slots) if (value) slots.set(name, move(value));
      }
    }
    if (moved.size > 0) {
      for (const module of modules) {
        const fields = module as unknown as Record<string, unknown>;
        for (const key of Object.keys(fields)) {
          const value = fields[key];
          if (value instanceof Tensor && moved.has(value)) fields[key] = moved.get(value);
        }
      }
      for (const old of moved.keys()) old.dispose();
    }
    return this;
  }

  /** Frees every parameter (and its gradient) and buffer in the tree. The module is unusable after. */
  dispose(): void {
    for (const module of this.modules()) {
      for (const value of module.parameterSlots.values()) value?.dispose();
      for (const value of module.bufferSlots.values()) value?.dispose();
    }
  }

  // ---- printing -----------------------------------------------------------------------------

  /** Extra text inside the parentheses of toString() (layers describe their configuration). */
  extraRepr(): string {
    return '';
  }

  /** A PyTorch-style tree: 'Sequential(\n  (0): Conv2d(3, 8, kernel_size=(3, 3), ...)\n)'. */
  toString(): string {
    const lines: string[] = [];
    const extra = this.extraRepr();
    if (extra) lines.push(...extra.split('\n'));
    for (const [name, child] of this.moduleSlots) {
      if (!child) continue;
      const text = child.toString().split('\n').join('\n  ');
      lines.push(`(${name}): ${text}`);
    }
    if (lines.length === 0) return `${this.typeName}()`;
    if (this.moduleSlots.size === 0 && lines.length === 1) return `${this.typeName}(${lines[0]})`;
    return `${this.typeName}(\n  ${lines.join('\n  ')}\n)`;
  }
}

interface CapturedEntry {
  name: string;
  /** The registered tensor (the object optimizers hold), written back in place on restore. */
  original: Tensor;
  /** A byte copy on the same device, owned by the ModuleState. */
  snapshot: Tensor;
}

/**
 * A snapshot of a module's parameters and buffers from Module.captureState(). Owns device copies:
 * call dispose() when done (idempotent). `tensors` gives read access by state-dict name.
 */
export class ModuleState {
  private disposed = false;

  /** Internal: made by Module.captureState(). */
  constructor(
    readonly owner: Module,
    readonly entries: readonly CapturedEntry[],
    readonly hostStates: ReadonlyMap<Module, unknown>,
  ) {}

  /** State-dict name → snapshot tensor (owned by this state; do not dispose or modify). */
  get tensors(): Map<string, Tensor> {
    return new Map(this.entries.map((entry) => [entry.name, entry.snapshot]));
  }

  get isDisposed(): boolean {
    return this.disposed;
  }

  /** Frees the snapshot tensors. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    for (const entry of this.entries) entry.snapshot.dispose();
  }
}
