// Index storages for tests that call the native entry points directly (the ops make them from an
// IndexTensor or an Int32Array; the addon itself takes only index storages for labels and indices).
import { native, type NativeStorage } from '../../src/native/index.js';

export function indexStorage(values: Int32Array, device: 'cpu' | 'cuda' = 'cpu'): NativeStorage {
  return native().allocIndices(device, values);
}
