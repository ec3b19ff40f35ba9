// Where a cohort runs: the one place `lmcl train` and `lmcl profile` put the networks and the
// method's modules on a device. Order matters: Module.to() replaces every parameter tensor (the
// old ones are disposed), so it runs after the method is built on the CPU networks and BEFORE
// anything holds parameter tensors (method.parameterSets(), the optimizers): those are made from
// the moved modules. Batches come from the DataLoader already on the device (its `device` option);
// the trainer makes each batch's labels one IndexTensor there. `lmcl eval --device` moves the
// loaded networks itself (src/train/evaluate.ts).
import { engineInfo } from '../runtime.js';
import type { Device } from '../tensor/tensor.js';
import type { Method } from '../losses/method.js';
import type { Student } from '../models/types.js';

/** Throws unless the device can run kernels now (CUDA compiled in and a device present). */
export function requireDevice(device: Device, what: string): void {
  if (device === 'cpu') return;
  const info = engineInfo();
  if (!(info.cudaCompiled && info.cudaDevices > 0)) {
    throw new Error(`${what} --device cuda: no CUDA device (${info.cudaCompiled ? info.cudaStatus : 'lmcl was built without CUDA: npm run build:cuda, or install @lmcl/linux-x64-cuda'}); use --device cpu`);
  }
}

/** Moves every network and the method's criterion (Embed heads, banks, φ, ...) to `device`. */
export function placeCohort(networks: readonly Student[], method: Method, device: Device): void {
  if (device === 'cpu') return;
  for (const net of networks) net.to(device);
  method.criterion?.to(device);
}
