// optim.SGD: several steps against plain-JS reimplementations of PyTorch 1.13's update for every
// option combination — one in float64 (rtol 1e-5: float32 rounding over a few steps) and one
// that rounds every operation to float32 with Math.fround in PyTorch's order (must match bit for
// bit: float64 is wide enough that fround(a op b) is the correctly rounded float32 result) —
// state-dict round trips that continue identically, argument errors, grad handling, memory.
import { describe, expect, it } from 'vitest';
import { F, Tensor, memory, optim, tensor, tidy } from '../../src/index.js';
import { native } from '../../src/native/index.js';
import { expectClose, randomArray, randomTensor } from '../helpers/random.js';

interface Hyper {
  lr: number;
  momentum: number;
  dampening: number;
  weightDecay: number;
  nesterov: boolean;
  maximize: boolean;
}

/** PyTorch 1.13 _single_tensor_sgd for one parameter; `round` is the identity (float64) or Math.fround. */
class ReferenceSGD {
  buffer: Float64Array | null = null;
  constructor(readonly param: Float64Array, readonly hyper: Hyper, readonly round: (x: number) => number) {}

  step(grad: ArrayLike<number>): void {
    const { lr, momentum, dampening, weightDecay, nesterov, maximize } = this.hyper;
    const r = this.round;
    const f = (x: number) => r(x);
    const first = this.buffer === null;
    if (momentum !== 0 && first) this.buffer = new Float64Array(this.param.length);
    for (let i = 0; i < this.param.length; i += 1) {
      let d = maximize ? -grad[i]! : grad[i]!;
      if (weightDecay !== 0) d = r(d + r(f(weightDecay) * this.param[i]!));
      if (momentum !== 0) {
        const b = first ? d : r(r(this.buffer![i]! * f(momentum)) + r(f(1 - dampening) * d));
        this.buffer![i] = b;
        d = nesterov ? r(d + r(f(momentum) * b)) : b;
      }
      this.param[i] = r(this.param[i]! + r(f(-lr) * d));
    }
  }
}

function combos(): Hyper[] {
  const list: Hyper[] = [];
  for (const momentum of [0, 0.9])
    for (const dampening of [0, 0.25])
      for (const nesterov of [false, true])
        for (const weightDecay of [0, 5e-2])
          for (const maximize of [false, true]) {
            if (nesterov && (momentum === 0 || dampening !== 0)) continue;
            if (momentum === 0 && dampening !== 0) continue;
            list.push({ lr: 0.1, momentum, dampening, weightDecay, nesterov, maximize });
          }
  return list;
}

const bitsEqual = (a: Float32Array, b: Float32Array): boolean => Buffer.from(a.buffer).equals(Buffer.from(b.buffer));

function setGrad(param: Tensor, values: Float32Array): void {
  param.grad?.dispose();
  param.grad = tensor(values, param.shape);
}

describe('optim.SGD update', () => {
  it('matches float64 and float32-exact references for every option combination over several steps', () => {
    const shapes = [[7], [3, 5], [70001]];  // the large one is split across threads
    for (const hyper of combos()) {
      const params = shapes.map((shape) => randomTensor(shape, { requiresGrad: true }));
      const exact = params.map((p) => new ReferenceSGD(Float64Array.from(p.toFloat32Array()), hyper, Math.fround));
      const wide = params.map((p) => new ReferenceSGD(Float64Array.from(p.toFloat32Array()), hyper, (x) => x));
      const optimizer = new optim.SGD(params, hyper);
      for (let step = 0; step < 4; step += 1) {
        params.forEach((param, index) => {
          // Parameter 1 has no gradient on step 1: skipped, its buffer starts on step 0 anyway.
          if (index === 1 && step === 1) {
            param.grad?.dispose();
            param.grad = null;
            return;
          }
          const g = randomArray(param.size);
          setGrad(param, g);
          exact[index]!.step(g);
          wide[index]!.step(g);
        });
        optimizer.step();
        params.forEach((param, index) => {
          const label = `${JSON.stringify(hyper)} step ${step} param ${index}`;
          const values = param.toFloat32Array();
          if (!bitsEqual(values, Float32Array.from(exact[index]!.param))) {
            expectClose(values, exact[index]!.param, { rtol: 0, atol: 0, label: `${label} (float32-exact reference)` });
          }
          expectClose(values, wide[index]!.param, { rtol: 1e-5, atol: 1e-6, label: `${label} (float64 reference)` });
          const buffer = optimizer.momentumBuffer(param);
          if (hyper.momentum === 0) expect(buffer).toBeNull();
          else expect(bitsEqual(buffer!.toFloat32Array(), Float32Array.from(exact[index]!.buffer!))).toBe(true);
        });
      }
      optimizer.dispose();
    }
  });

  it('a group can override the defaults; lr is mutable between steps', () => {
    const a = randomTensor([4], { requiresGrad: true });
    const b = randomTensor([4], { requiresGrad: true });
    const optimizer = new optim.SGD([{ params: [a] }, { params: [b], lr: 0.5, momentum: 0.9 }], { lr: 0.1 });
    expect(optimizer.paramGroups.map((g) => [g.lr, g.momentum])).toEqual([[0.1, 0], [0.5, 0.9]]);
    const refA = new ReferenceSGD(Float64Array.from(a.toFloat32Array()), { lr: 0.1, momentum: 0, dampening: 0, weightDecay: 0, nesterov: false, maximize: false }, Math.fround);
    const refB = new ReferenceSGD(Float64Array.from(b.toFloat32Array()), { lr: 0.5, momentum: 0.9, dampening: 0, weightDecay: 0, nesterov: false, maximize: false }, Math.fround);
    for (let step = 0; step < 3; step += 1) {
      if (step === 2) {
        optimizer.paramGroups[0]!.lr = 0.01;
        (refA.hyper as Hyper).lr = 0.01;
      }
      const ga = randomArray(4);
      const gb = randomArray(4);
      setGrad(a, ga);
      setGrad(b, gb);
      refA.step(ga);
      refB.step(gb);
      optimizer.step();
    }
    expect(bitsEqual(a.toFloat32Array(), Float32Array.from(refA.param))).toBe(true);
    expect(bitsEqual(b.toFloat32Array(), Float32Array.from(refB.param))).toBe(true);
  });

  it('trains through autograd, bumps versions, skips params without grads, zeroGrad drops grads', () => {
    const w = randomTensor([5], { requiresGrad: true });
    const unused = randomTensor([2], { requiresGrad: true });
    const target = randomTensor([5]);
    const before = unused.toFloat32Array();
    const optimizer = new optim.SGD([w, unused], { lr: 0.2, momentum: 0.5 });
    const version = w.version;
    let loss = Infinity;
    for (let step = 0; step < 40; step += 1) {
      optimizer.zeroGrad();
      loss = tidy(() => {
        const value = F.sum(F.square(F.sub(w, target)));
        value.backward();
        return value.item();
      });
      optimizer.step();
    }
    expect(loss).toBeLessThan(1e-6);
    expect(w.version).toBe(version + 40);
    expect(optimizer.momentumBuffer(w)!.version).toBe(40);
    expect(Array.from(unused.toFloat32Array())).toEqual(Array.from(before));
    expect(optimizer.momentumBuffer(unused)).toBeNull();
    const grad = w.grad!;
    optimizer.zeroGrad();
    expect(w.grad).toBeNull();
    expect(grad.isAlive).toBe(false);
    // A graph that saved w before the step refuses to backpropagate afterwards.
    const y = F.sum(F.square(w));
    w.grad = tensor(randomArray(5), [5]);
    optimizer.step();
    expect(() => y.backward()).toThrow(/modified in place/);
  });

  it('momentum buffers survive tidy scopes and dispose() frees them', () => {
    const p = randomTensor([1000], { requiresGrad: true });
    p.grad = tensor(randomArray(1000), [1000]);
    const optimizer = new optim.SGD([p], { lr: 0.1, momentum: 0.9 });
    const before = memory().liveTensors;
    tidy(() => {
      optimizer.step();
    });
    const buffer = optimizer.momentumBuffer(p)!;
    expect(buffer.isAlive).toBe(true);
    expect(memory().liveTensors).toBe(before + 1);
    optimizer.step();
    expect(memory().liveTensors).toBe(before + 1);
    optimizer.dispose();
    expect(buffer.isAlive).toBe(false);
    expect(memory().liveTensors).toBe(before);
    expect(() => optimizer.step()).toThrow(/SGD.step: the optimizer was disposed/);
    optimizer.dispose();
  });
});

describe('optim.SGD state dict', () => {
  it('round-trips: a fresh optimizer loaded from the state continues bit for bit', () => {
    for (const hyper of [
      { lr: 0.05, momentum: 0.9, dampening: 0, weightDecay: 1e-3, nesterov: true, maximize: false },
      { lr: 0.1, momentum: 0.8, dampening: 0.3, weightDecay: 0, nesterov: false, maximize: false },
      { lr: 0.1, momentum: 0, dampening: 0, weightDecay: 1e-2, nesterov: false, maximize: true },
    ]) {
      const shapes = [[3, 4], [6], [2, 2, 2]];
      const params = shapes.map((shape) => randomTensor(shape, { requiresGrad: true }));
      const optimizer = new optim.SGD([{ params: params.slice(0, 2) }, { params: params.slice(2), lr: 0.2 }], hyper);
      for (let step = 0; step < 3; step += 1) {
        params.forEach((param, index) => {
          if (index === 1 && step < 2) return;          // parameter 1 starts late: one step of state
          setGrad(param, randomArray(param.size));
        });
        optimizer.step();
      }
      const saved = optimizer.stateDict();
      expect(saved.paramGroups.map((group) => group.params)).toEqual([[0, 1], [2]]);
      expect(saved.paramGroups[1]!.lr).toBe(0.2);
      expect(Object.keys(saved.state).sort()).toEqual(hyper.momentum === 0 ? [] : ['0', '1', '2']);
      // Rebuild from the saved state: copies of the parameters, default hyperparameters that the
      // loaded ones must overwrite.
      const copies = params.map((param) => tensor(param.toFloat32Array(), param.shape, { requiresGrad: true }));
      const resumed = new optim.SGD([{ params: copies.slice(0, 2) }, { params: copies.slice(2) }], { lr: 1 });
      resumed.loadStateDict(saved);
      expect(resumed.paramGroups.map((group) => group.lr)).toEqual([hyper.lr, 0.2]);
      // Changing the saved arrays afterwards must not reach the optimizer.
      for (const entry of Object.values(saved.state)) entry.momentumBuffer.fill(123);
      for (let step = 0; step < 3; step += 1) {
        params.forEach((param, index) => {
          const g = randomArray(param.size);
          setGrad(param, g);
          setGrad(copies[index]!, g);
        });
        optimizer.step();
        resumed.step();
      }
      params.forEach((param, index) => {
        expect(bitsEqual(param.toFloat32Array(), copies[index]!.toFloat32Array()), `param ${index} ${JSON.stringify(hyper)}`).toBe(true);
      });
      optimizer.dispose();
      resumed.dispose();
    }
  });

  it('loading replaces buffers (params without saved state have none) and rejects mismatches before changing anything', () => {
    const a = randomTensor([3], { requiresGrad: true });
    const b = randomTensor([2], { requiresGrad: true });
    const optimizer = new optim.SGD([a, b], { lr: 0.1, momentum: 0.9 });
    a.grad = tensor(randomArray(3), [3]);
    b.grad = tensor(randomArray(2), [2]);
    optimizer.step();
    const good = optimizer.stateDict();
    const partial = { state: { 1: good.state[1]! }, paramGroups: good.paramGroups };
    const before = memory().liveTensors;
    optimizer.loadStateDict(partial);
    expect(optimizer.momentumBuffer(a)).toBeNull();
    expect(Array.from(optimizer.momentumBuffer(b)!.toFloat32Array())).toEqual(Array.from(good.state[1]!.momentumBuffer));
    expect(memory().liveTensors).toBe(before - 1);
    const bad = (change: (dict: optim.SGDStateDict) => unknown) => {
      const dict = structuredClone(good);
      change(dict);
      return () => optimizer.loadStateDict(dict);
    };
    expect(bad((d) => d.paramGroups.push({ ...d.paramGroups[0]!, params: [] }))).toThrow(/SGD.loadStateDict: loaded state dict has 2 parameter groups, the optimizer has 1/);
    expect(bad((d) => d.paramGroups[0]!.params.pop())).toThrow(/loaded parameter group 0 has 1 parameters but the optimizer's group has 2/);
    expect(bad((d) => { d.state[0] = { momentumBuffer: new Float32Array(5) }; })).toThrow(/state\[0\].momentumBuffer has 5 values but the parameter has shape \[3\]/);
    expect(bad((d) => { d.state[7] = { momentumBuffer: new Float32Array(3) }; })).toThrow(/state has an entry for parameter 7/);
    expect(bad((d) => { d.paramGroups[0]!.lr = -1; })).toThrow(/invalid learning rate: -1/);
    expect(bad((d) => { (d.state[0] as { momentumBuffer: unknown }).momentumBuffer = [1, 2, 3]; })).toThrow(/must be a Float32Array/);
    expect(() => optimizer.loadStateDict(null as never)).toThrow(/SGD.loadStateDict: expected an object/);
    // Nothing changed by the failed loads.
    expect(optimizer.momentumBuffer(a)).toBeNull();
    expect(optimizer.paramGroups[0]!.lr).toBe(0.1);
  });
});

describe('optim.SGD argument checks', () => {
  it('rejects bad hyperparameters like PyTorch', () => {
    const p = randomTensor([3], { requiresGrad: true });
    expect(() => new optim.SGD([p], { lr: -0.1 })).toThrow(/SGD: invalid learning rate: -0.1/);
    expect(() => new optim.SGD([p], { lr: Number.NaN })).toThrow(/SGD: lr must be a finite number, got number NaN/);
    expect(() => new optim.SGD([p], { lr: Number.POSITIVE_INFINITY })).toThrow(/SGD: lr must be a finite number/);
    expect(() => new optim.SGD([p], {})).toThrow(/SGD: parameter group 0 didn't specify a value of required optimization parameter lr/);
    expect(() => new optim.SGD([p], { lr: 0.1, momentum: -0.5 })).toThrow(/SGD: invalid momentum value/);
    expect(() => new optim.SGD([p], { lr: 0.1, weightDecay: -1 })).toThrow(/SGD: invalid weightDecay value/);
    expect(() => new optim.SGD([p], { lr: 0.1, nesterov: true })).toThrow(/Nesterov momentum requires a momentum and zero dampening/);
    expect(() => new optim.SGD([p], { lr: 0.1, momentum: 0.9, dampening: 0.1, nesterov: true })).toThrow(/Nesterov momentum requires a momentum and zero dampening/);
    expect(() => new optim.SGD([{ params: [p], momentum: 0.9, dampening: 0.5, nesterov: true }], { lr: 0.1 })).toThrow(/parameter group 0: Nesterov/);
    expect(() => new optim.SGD([{ params: [p], lr: -1 }], { lr: 0.1 })).toThrow(/SGD: parameter group 0: invalid learning rate: -1/);
    expect(new optim.SGD([{ params: [p], lr: 0.3 }]).paramGroups[0]!.lr).toBe(0.3);
    expect(() => new optim.SGD([p], { lr: 0.1, weight_decay: 5e-4 } as never)).toThrow(/SGD: unknown option 'weight_decay' \(did you mean 'weightDecay'\?\)/);
    expect(() => new optim.SGD([{ params: [p], betas: [0.9, 0.99] } as never], { lr: 0.1 })).toThrow(/SGD: parameter group 0: unknown option 'betas'/);
  });

  it('rejects bad parameter lists', () => {
    const p = randomTensor([3], { requiresGrad: true });
    const q = randomTensor([2], { requiresGrad: true });
    expect(() => new optim.SGD(p as never, { lr: 0.1 })).toThrow(/SGD: params must be an array of Tensors or of parameter groups/);
    expect(() => new optim.SGD([], { lr: 0.1 })).toThrow(/SGD: optimizer got an empty parameter list/);
    expect(() => new optim.SGD([p, { params: [q] }] as never, { lr: 0.1 })).toThrow(/params must be all Tensors or all parameter groups; entry 0/);
    expect(() => new optim.SGD([p, 3] as never, { lr: 0.1 })).toThrow(/entry 0/);
    expect(() => new optim.SGD([{ params: [p] }, { params: [q, p] }], { lr: 0.1 })).toThrow(/some parameters appear in more than one parameter group/);
    expect(() => new optim.SGD([p, p], { lr: 0.1 })).toThrow(/params\[1\] appears twice in the group/);
    expect(() => new optim.SGD([F.mul(p, 2)], { lr: 0.1 })).toThrow(/is not a leaf tensor; can't optimize a non-leaf Tensor/);
    const gone = randomTensor([2]);
    gone.dispose();
    expect(() => new optim.SGD([gone], { lr: 0.1 })).toThrow(/was disposed/);
    const elsewhere = randomTensor([2], { requiresGrad: true });
    Object.defineProperty(elsewhere, 'device', { value: 'cuda' });
    expect(() => new optim.SGD([p, elsewhere], { lr: 0.1 })).toThrow(/all parameters must be on the same device, got 'cpu' and 'cuda'/);
  });

  it('step rejects mismatched gradients and a non-finite lr set by a scheduler', () => {
    const p = randomTensor([3, 2], { requiresGrad: true });
    const optimizer = new optim.SGD([p], { lr: 0.1, momentum: 0.9 });
    const original = p.toFloat32Array();
    p.grad = tensor(randomArray(6), [6]);
    expect(() => optimizer.step()).toThrow(/SGD.step: parameter 0: its gradient has shape \[6\] but the parameter has shape \[3, 2\]/);
    p.grad = tensor(randomArray(6), [3, 2]);
    Object.defineProperty(p.grad, 'device', { value: 'cuda' });
    expect(() => optimizer.step()).toThrow(/its gradient is on 'cuda' but the parameter is on 'cpu'/);
    p.grad = tensor(randomArray(6), [3, 2]);
    optimizer.paramGroups[0]!.lr = Number.NaN;
    expect(() => optimizer.step()).toThrow(/SGD.step: parameter group 0: lr must be a finite number, got number NaN/);
    optimizer.paramGroups[0]!.lr = -1;
    expect(() => optimizer.step()).toThrow(/invalid learning rate: -1/);
    expect(Array.from(p.toFloat32Array())).toEqual(Array.from(original));
    expect(optimizer.momentumBuffer(p)).toBeNull();
    // A bad gradient on a later parameter leaves the earlier ones untouched too.
    const first = randomTensor([2], { requiresGrad: true });
    const both = new optim.SGD([first, p], { lr: 0.1 });
    const firstBefore = first.toFloat32Array();
    first.grad = tensor(randomArray(2), [2]);
    p.grad = tensor(randomArray(6), [2, 3]);
    expect(() => both.step()).toThrow(/SGD.step: parameter 1: its gradient has shape \[2, 3\]/);
    expect(Array.from(first.toFloat32Array())).toEqual(Array.from(firstBefore));
    const disposedGrad = tensor(randomArray(6), [3, 2]);
    disposedGrad.dispose();
    p.grad = disposedGrad;
    optimizer.paramGroups[0]!.lr = 0.1;
    expect(() => optimizer.step()).toThrow(/SGD.step: parameter 0 \(its gradient\).*was disposed/);
  });

  it('the native entry point checks its own arguments', () => {
    const addon = native();
    const [p, g, b] = [randomTensor([4]), randomTensor([4]), randomTensor([4])];
    const step = (count: number, buffer: Tensor | null, lr: number, momentum: number, dampening: number, nesterov: boolean, grad = g) =>
      () => addon.sgdStep(p.storage.handle, grad.storage.handle, buffer ? buffer.storage.handle : null, count, lr, momentum, dampening, 0, nesterov, false, false);
    expect(step(5, b, 0.1, 0.9, 0, false)).toThrow(/sgdStep: argument 'param' holds 4 floats but the op needs 5/);
    expect(step(4, null, 0.1, 0.9, 0, false)).toThrow(/sgdStep: momentum != 0 needs a momentum buffer/);
    expect(step(4, p, 0.1, 0.9, 0, false)).toThrow(/sgdStep: the momentum buffer must be its own storage/);
    expect(step(4, b, 0.1, 0, 0, false, p)).toThrow(/sgdStep: param and grad must be different storages/);
    expect(step(4, b, Number.NaN, 0.9, 0, false)).toThrow(/sgdStep: lr must be a finite number >= 0/);
    expect(step(4, b, 0.1, 0.9, 0.5, true)).toThrow(/sgdStep: Nesterov momentum requires a momentum and zero dampening/);
    expect(() => addon.sgdStep(p.storage.handle, g.storage.handle, null, 4, 0.1, 0, 0, 0, 'yes' as never, false, false)).toThrow(/sgdStep: argument 'nesterov' must be a boolean/);
  });
});
