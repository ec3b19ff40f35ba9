// Host reads that do not block the event loop: toFloat32ArrayAsync / itemAsync give the values as
// of the call (on a device the copy is queued then, in order with the work before it), so the
// tensor may change in place or be disposed before the promise settles; a device check that
// failed before the read rejects it (native/src/cuda/deferred_error.cu). Runs on every device.
import { expect, it } from 'vitest';
import { F, tensor } from '../../src/index.js';
import { fillInPlace } from '../../src/nn/parameter.js';
import { forEachDevice } from '../helpers/devices.js';
import { randomArray } from '../helpers/random.js';

forEachDevice('toFloat32ArrayAsync and itemAsync', (device) => {
  it('give the values of toFloat32Array / item', async () => {
    const values = randomArray(1000);
    const t = tensor(values, [10, 100], { device });
    expect(await t.toFloat32ArrayAsync()).toEqual(t.toFloat32Array());
    expect(await t.toFloat32ArrayAsync()).toEqual(values);
    const scalar = tensor(Float32Array.of(values[3]!), [], { device });
    expect(await scalar.itemAsync()).toBe(scalar.item());
    const empty = tensor(new Float32Array(0), [0, 4], { device });
    expect(await empty.toFloat32ArrayAsync()).toEqual(new Float32Array(0));
    for (const x of [t, scalar, empty]) x.dispose();
  });

  it('read the values as of the call: the tensor may be overwritten or disposed before the promise settles', async () => {
    const values = randomArray(4096);
    const t = tensor(values, [4096], { device });
    const first = t.toFloat32ArrayAsync();
    fillInPlace(t, 7);
    const second = t.toFloat32ArrayAsync();
    const doubled = F.mul(t, tensor(Float32Array.of(2), [], { device }));
    const third = doubled.toFloat32ArrayAsync();
    t.dispose();
    doubled.dispose();
    expect(await first).toEqual(values);
    expect(await second).toEqual(new Float32Array(4096).fill(7));
    expect(await third).toEqual(new Float32Array(4096).fill(14));
  });

  it('refuse a disposed tensor and a tensor of more than one element (itemAsync) with clear errors', async () => {
    const t = tensor(randomArray(6), [2, 3], { device });
    await expect(t.itemAsync()).rejects.toThrow(/itemAsync: tensor has 6 elements \(shape \[2, 3\]\), expected 1/);
    t.dispose();
    expect(() => t.toFloat32ArrayAsync()).toThrow(/toFloat32ArrayAsync: tensor of shape \[2, 3\] was disposed/);
  });

  it('a failed check of device data is reported by the next read, and the bank is unchanged', async () => {
    const rows = 6, dim = 4;
    const bankValues = randomArray(rows * dim);
    const bank = tensor(bankValues, [rows, dim], { device });
    const z = tensor(Float32Array.from([...randomArray(dim), 0, 0, 0, 0]), [2, dim], { device });
    const update = () => F.memoryUpdate_(bank, Int32Array.of(1, 4), z, { momentum: 0 });
    const message = /the updated bank row 4 \(position 1\) has norm 0/;
    if (device === 'cpu') {
      expect(update).toThrow(message); // the CPU sees the norms at the call
    } else {
      update(); // CUDA: the norms are device values; the check is deferred to the next read
      await expect(bank.toFloat32ArrayAsync()).rejects.toThrow(message);
    }
    expect(await bank.toFloat32ArrayAsync()).toEqual(bankValues); // reported once; nothing written
    bank.dispose();
    z.dispose();
  });
});
