// Runs a suite once per device: forEachDevice('softmax forward', (device) => { it(...) }).
// 'cpu' always; 'cuda' when the loaded engine sees a CUDA device (engineInfo().cudaDevices > 0),
// otherwise a skipped block whose name says why, so a CPU-only run lists what it did not check.
// Inside the body, make the inputs on `device` (tensor(values, shape, { device }), randomTensor's
// device option); results are compared on the host (toFloat32Array() copies from any device).
import { describe } from 'vitest';
import { engineInfo, type Device } from '../../src/index.js';

export interface DeviceAvailability {
  device: Device;
  /** null when tests run on this device; otherwise why they are skipped. */
  skipReason: string | null;
}

export function deviceAvailability(): DeviceAvailability[] {
  const info = engineInfo();
  let cuda: string | null = null;
  if (!info.cudaCompiled) cuda = 'lmcl was built without CUDA (npm run build:cuda)';
  else if (!(info.cudaDevices > 0)) cuda = `no CUDA device visible: ${info.cudaStatus}`;
  return [
    { device: 'cpu', skipReason: null },
    { device: 'cuda', skipReason: cuda },
  ];
}

export function forEachDevice(name: string, body: (device: Device) => void): void {
  for (const { device, skipReason } of deviceAvailability()) {
    if (skipReason === null) describe(`${name} [${device}]`, () => body(device));
    else describe.skip(`${name} [${device}: skipped, ${skipReason}]`, () => body(device));
  }
}
