// Typed surface of what the native addon exports. One section per binding file
// (native/binding/<stem>.cpp). Storage handles are opaque objects owned by src/tensor/storage.ts.
//
// Conventions for op entry points: inputs first, then the preallocated output storages, then
// shape/parameter arguments. Kernels overwrite their outputs (no accumulation) unless the
// entry's comment says otherwise. Every entry checks its arguments and throws an Error naming
// the op on bad input.

/** Opaque handle to a block of device memory (class NativeStorage in native/binding/args.h). */
export interface NativeStorage {
  readonly __nativeStorageBrand: unique symbol;
}

export type NativeDevice = 'cpu' | 'cuda';

export interface NativeMemoryStats {
  cpuLiveBytes: number;
  cpuLiveBlocks: number;
  cpuCachedBytes: number;
  cpuPeakLiveBytes: number;
  cudaLiveBytes: number;
}

export interface NativeEngineInfo {
  simd: 'avx512' | 'avx2' | 'portable';
  threads: number;
  cudaCompiled: boolean;
  cudaDevices: number;
  cudaStatus: string;
}

export interface NativeAddon {
  // ---- storage (native/binding/storage.cpp) ----
  alloc(device: NativeDevice, bytes: number): NativeStorage;
  free(storage: NativeStorage): void;
  upload(storage: NativeStorage, source: Float32Array | Int32Array, byteOffset: number): void;
  download(storage: NativeStorage, byteOffset: number, count: number): Float32Array;
  fill(storage: NativeStorage, value: number, count: number): void;
  copy(destination: NativeStorage, source: NativeStorage, bytes: number): void;
  memoryStats(): NativeMemoryStats;
  emptyCache(): void;
  info(): NativeEngineInfo;
  setNumThreads(count: number): void;
}

// The op sections below are merged into NativeAddon by interface declaration merging.
export interface NativeAddon {
  // ---- elementwise (native/binding/elementwise.cpp) ----
  /** op: 0 add, 1 sub, 2 mul, 3 div, 4 maximum, 5 minimum. Strides in elements, 0 = broadcast. */
  binary(op: number, a: NativeStorage, b: NativeStorage, out: NativeStorage, outShape: number[], aStrides: number[], bStrides: number[]): void;
  /** op: see UnaryOp in native/include/lmcl/elementwise.h. */
  unary(op: number, x: NativeStorage, out: NativeStorage, count: number): void;
  affine(x: NativeStorage, out: NativeStorage, count: number, scale: number, shift: number): void;
  power(x: NativeStorage, out: NativeStorage, count: number, exponent: number): void;
  reluMask(grad: NativeStorage, mask: NativeStorage, out: NativeStorage, count: number): void;
  countNonFinite(x: NativeStorage, count: number): number;

  // ---- reduce (native/binding/reduce.cpp) ----
  sumAxes(x: NativeStorage, out: NativeStorage, shape: number[], axes: number[]): void;
}
