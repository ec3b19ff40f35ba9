// Containers: nn.Sequential (chains its children) and nn.ModuleList (holds them, no forward).
// Children are registered under '0', '1', ... as in PyTorch, so state-dict keys line up.
import { Module } from './module.js';

function checkModules(modules: readonly unknown[], op: string): asserts modules is Module[] {
  modules.forEach((module, index) => {
    if (!(module instanceof Module)) throw new TypeError(`${op}: argument ${index} is not a Module`);
  });
}

/** Index into a list like Python (negative counts from the end); throws when out of range. */
function resolveIndex(index: number, length: number, op: string): number {
  if (!Number.isInteger(index)) throw new TypeError(`${op}: index must be an integer, got ${String(index)}`);
  const resolved = index < 0 ? index + length : index;
  if (resolved < 0 || resolved >= length) throw new RangeError(`${op}: index ${index} is out of range (length ${length})`);
  return resolved;
}

/**
 * Sequential(m0, m1, ...): forward(x) = m_last(...m1(m0(x))). Children are named '0', '1', ...
 * Pass one Map of name → Module instead to choose the names (like an OrderedDict in PyTorch).
 */
export class Sequential extends Module implements Iterable<Module> {
  private readonly items: Module[] = [];

  constructor(...modules: Module[] | [Map<string, Module>]) {
    super();
    if (modules.length === 1 && modules[0] instanceof Map) {
      for (const [name, module] of modules[0]) {
        checkModules([module], 'Sequential');
        this.registerModule(name, module);
        this.items.push(module);
      }
      return;
    }
    checkModules(modules, 'Sequential');
    for (const module of modules) this.append(module);
  }

  /** Adds a module at the end (named by its position). */
  append(module: Module): this {
    checkModules([module], 'Sequential.append');
    this.registerModule(String(this.items.length), module);
    this.items.push(module);
    return this;
  }

  get length(): number {
    return this.items.length;
  }

  /** The child at a position (negative counts from the end). */
  at(index: number): Module {
    return this.items[resolveIndex(index, this.items.length, 'Sequential.at')]!;
  }

  [Symbol.iterator](): Iterator<Module> {
    return this.items[Symbol.iterator]();
  }

  override forward(input: any): any {
    let value = input;
    for (const module of this.items) value = module.forward(value);
    return value;
  }
}

/** ModuleList([m0, m1, ...]): registers modules under '0', '1', ...; has no forward of its own. */
export class ModuleList<M extends Module = Module> extends Module implements Iterable<M> {
  private readonly items: M[] = [];

  constructor(modules: Iterable<M> = []) {
    super();
    for (const module of modules) this.append(module);
  }

  append(module: M): this {
    checkModules([module], 'ModuleList.append');
    this.registerModule(String(this.items.length), module);
    this.items.push(module);
    return this;
  }

  get length(): number {
    return this.items.length;
  }

  at(index: number): M {
    return this.items[resolveIndex(index, this.items.length, 'ModuleList.at')]!;
  }

  [Symbol.iterator](): Iterator<M> {
    return this.items[Symbol.iterator]();
  }

  override forward(): never {
    throw new Error('ModuleList has no forward(); iterate over it and call forward on its modules');
  }
}
