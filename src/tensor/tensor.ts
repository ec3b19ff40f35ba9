// Tensor: a float32, contiguous, row-major view of a device storage, plus autograd metadata.
//
// Ownership: a tensor holds one reference to its storage for as long as it is alive. It is alive
// while its creator has not disposed it OR autograd still holds it (saved for backward). So
// `dispose()` drops the creator's claim; the memory goes back to the allocator once autograd is
// done with it too. Using a tensor whose memory is gone throws a clear Error.
import { native } from '../native/index.js';
import { Storage, type Device } from './storage.js';
import { setTensorCheck, trackTensor } from './scope.js';
import type { GraphNode } from '../autograd/node.js';

export type { Device } from './storage.js';

let liveTensorCount = 0;

export function shapeSize(shape: readonly number[]): number {
  let size = 1;
  for (const extent of shape) size *= extent;
  return size;
}

export function formatShape(shape: readonly number[]): string {
  return `[${shape.join(', ')}]`;
}

/** Throws unless shape is an array of non-negative safe integers. */
export function checkShape(shape: unknown, op: string): asserts shape is number[] {
  if (!Array.isArray(shape) || !shape.every((extent) => Number.isSafeInteger(extent) && extent >= 0)) {
    throw new TypeError(`${op}: shape must be an array of non-negative integers, got ${JSON.stringify(shape)}`);
  }
}

type BackwardHook = (tensor: Tensor, gradient: Tensor | undefined, retainGraph: boolean, createGraph: boolean) => void;
let backwardHook: BackwardHook | null = null;
/** Set by autograd/engine.ts (avoids an import cycle). */
export function setBackwardHook(hook: BackwardHook): void {
  backwardHook = hook;
}

export class Tensor {
  readonly shape: readonly number[];
  /** Number of elements. */
  readonly size: number;
  readonly device: Device;
  readonly storage: Storage;
  /** The gradient accumulated by backward() (leaves that require grad). */
  grad: Tensor | null = null;
  /** The graph node that produced this tensor (null for leaves and untracked results). */
  gradFn: GraphNode | null = null;
  /** Optional label used in error messages and state dicts. */
  name: string | undefined;
  private requiresGradFlag = false;
  private references = 1;
  private disposedByOwner = false;
  /** References held by this tensor's own graph node (ops such as exp save their output). */
  private selfRetains = 0;
  /** Whether this tensor still counts as a holder of gradFn (see GraphNode.dropHolder). */
  private holdsGraph = false;

  /** Wraps a storage (takes over one reference to it). Prefer the creation helpers. */
  constructor(storage: Storage, shape: readonly number[]) {
    const size = shapeSize(shape);
    if (size * 4 > storage.byteLength) {
      throw new Error(`lmcl internal: shape ${formatShape(shape)} needs ${size * 4} bytes, storage has ${storage.byteLength}`);
    }
    this.storage = storage;
    this.shape = Object.freeze([...shape]);
    this.size = size;
    this.device = storage.device;
    liveTensorCount += 1;
    trackTensor(this);
  }

  /** An uninitialised tensor (internal: ops write their outputs into it). */
  static empty(shape: readonly number[], device: Device = 'cpu'): Tensor {
    return new Tensor(Storage.allocate(device, shapeSize(shape) * 4), shape);
  }

  get dim(): number {
    return this.shape.length;
  }

  get requiresGrad(): boolean {
    return this.requiresGradFlag;
  }

  set requiresGrad(value: boolean) {
    if (this.gradFn && !value) {
      throw new Error('requiresGrad can only be cleared on leaf tensors; use detach() to get a tensor without history');
    }
    if (this.gradFn && value) return;
    this.requiresGradFlag = value;
  }

  /** Internal: marks an op result as part of the graph. */
  attachGraph(node: GraphNode, selfRetains = 0): void {
    if (this.gradFn) throw new Error('lmcl internal: tensor already has a graph node');
    this.gradFn = node;
    this.requiresGradFlag = true;
    this.selfRetains = selfRetains;
    this.holdsGraph = true;
    node.addHolder();
  }

  get isLeaf(): boolean {
    return this.gradFn === null;
  }

  /** True when the memory is still held (by the owner or by autograd). */
  get isAlive(): boolean {
    return this.references > 0;
  }

  get isDisposed(): boolean {
    return this.disposedByOwner;
  }

  /** Storage version (in-place writes bump it). */
  get version(): number {
    return this.storage.version;
  }

  /** Throws unless the data is still available. */
  assertAlive(op: string): void {
    if (this.references <= 0) {
      throw new Error(`${op}: tensor${this.name ? ` '${this.name}'` : ''} of shape ${formatShape(this.shape)} was disposed`);
    }
  }

  /** Internal (autograd): keeps the data alive while a graph node needs it. */
  retain(): void {
    this.assertAlive('retain');
    this.references += 1;
  }

  /** Internal (autograd): lets go of a reference taken with retain(). */
  release(): void {
    if (this.references <= 0) return;
    this.references -= 1;
    if (this.references === 0) {
      liveTensorCount -= 1;
      this.storage.release();
    }
    // Once only its own node keeps it, this tensor no longer keeps the graph behind it alive
    // (otherwise an op that saves its output would form a cycle that is never freed).
    if (this.holdsGraph && this.references <= this.selfRetains) {
      this.holdsGraph = false;
      this.gradFn!.dropHolder();
    }
  }

  /** Releases this tensor's memory (deterministically). Idempotent. Gradients are disposed too. */
  dispose(): void {
    if (this.disposedByOwner) return;
    this.disposedByOwner = true;
    if (this.grad) {
      this.grad.dispose();
      this.grad = null;
    }
    this.release();
  }

  /** A copy of the data in host memory. */
  toFloat32Array(): Float32Array {
    this.assertAlive('toFloat32Array');
    return native().download(this.storage.handle, 0, this.size);
  }

  /**
   * toFloat32Array() without blocking the event loop while a device finishes the queued work: the
   * values as of this call (the copy is queued now, in order with the work before it), so the
   * tensor may be changed in place or disposed right after. On the CPU the copy is made now. A
   * device check that failed before the copy rejects the promise (as it throws from the sync read).
   */
  toFloat32ArrayAsync(): Promise<Float32Array> {
    this.assertAlive('toFloat32ArrayAsync');
    return native().downloadAsync(this.storage.handle, 0, this.size);
  }

  /** The value of a one-element tensor. */
  item(): number {
    if (this.size !== 1) throw new Error(`item: tensor has ${this.size} elements (shape ${formatShape(this.shape)}), expected 1`);
    return this.toFloat32Array()[0]!;
  }

  /** item() without blocking the event loop (see toFloat32ArrayAsync). */
  async itemAsync(): Promise<number> {
    if (this.size !== 1) throw new Error(`itemAsync: tensor has ${this.size} elements (shape ${formatShape(this.shape)}), expected 1`);
    return (await this.toFloat32ArrayAsync())[0]!;
  }

  /** Nested arrays of numbers, for printing and tests. */
  toArray(): unknown {
    const data = this.toFloat32Array();
    const build = (dimension: number, offset: number): unknown => {
      if (dimension === this.shape.length) return data[offset];
      const stride = shapeSize(this.shape.slice(dimension + 1));
      return Array.from({ length: this.shape[dimension]! }, (_, index) => build(dimension + 1, offset + index * stride));
    };
    return build(0, 0);
  }

  /**
   * Accumulates d(this)/d(leaf) into leaf.grad for every leaf that requires grad. `gradient`
   * defaults to 1 for one-element tensors.
   */
  backward(gradient?: Tensor, options: { retainGraph?: boolean; createGraph?: boolean } = {}): void {
    if (!backwardHook) throw new Error('lmcl internal: autograd engine not loaded');
    backwardHook(this, gradient, options.retainGraph ?? false, options.createGraph ?? false);
  }

  /** A tensor sharing this data with no autograd history. */
  detach(): Tensor {
    this.assertAlive('detach');
    this.storage.retain();
    return new Tensor(this.storage, this.shape);
  }

  /** Internal: a new tensor over the same storage with another shape of the same size. */
  viewAs(shape: readonly number[]): Tensor {
    this.assertAlive('view');
    if (shapeSize(shape) !== this.size) {
      throw new Error(`view: cannot view ${formatShape(this.shape)} as ${formatShape(shape)}`);
    }
    this.storage.retain();
    return new Tensor(this.storage, shape);
  }

  /** A copy on the given device (no autograd history). */
  to(device: Device): Tensor {
    this.assertAlive('to');
    if (device !== 'cpu' && device !== 'cuda') throw new TypeError(`to: unknown device '${String(device)}'`);
    const result = Tensor.empty(this.shape, device);
    native().copy(result.storage.handle, this.storage.handle, this.size * 4);
    return result;
  }

  toString(): string {
    return `Tensor(shape=${formatShape(this.shape)}, device=${this.device}${this.requiresGrad ? ', requiresGrad' : ''})`;
  }
}

setTensorCheck((value: unknown): value is Tensor => value instanceof Tensor);

export function tensorCounters(): { liveTensors: number } {
  return { liveTensors: liveTensorCount };
}
