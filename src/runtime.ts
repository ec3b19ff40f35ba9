// Engine-wide runtime controls and counters.
import { native, nativeInfo } from './native/index.js';
import type { Float32MatmulPrecision } from './native/addon.js';
import { storageCounters } from './tensor/storage.js';
import { tensorCounters } from './tensor/tensor.js';

export interface MemoryReport {
  /** Tensors whose memory is still held (by their owner or by autograd). */
  liveTensors: number;
  /** Bytes of storage still referenced from JavaScript. */
  liveBytes: number;
  liveStorages: number;
  /** What the native allocator hands out (includes kernel workspaces in use) and keeps cached. */
  nativeLiveBytes: number;
  nativeCachedBytes: number;
  nativePeakLiveBytes: number;
  /** The CUDA caching allocator: bytes in live blocks, kept for reuse, and the live high-water mark (torch.cuda.memory_allocated / memory_reserved − allocated / max_memory_allocated). */
  cudaLiveBytes: number;
  cudaCachedBytes: number;
  cudaPeakLiveBytes: number;
  /** Native storage handles alive: equals liveStorages in a loop that disposes what it makes (no finalizer backlog). */
  nativeHandles: number;
}

export function memory(): MemoryReport {
  const stats = native().memoryStats();
  return {
    ...tensorCounters(),
    ...storageCounters(),
    nativeLiveBytes: stats.cpuLiveBytes,
    nativeCachedBytes: stats.cpuCachedBytes,
    nativePeakLiveBytes: stats.cpuPeakLiveBytes,
    cudaLiveBytes: stats.cudaLiveBytes,
    cudaCachedBytes: stats.cudaCachedBytes,
    cudaPeakLiveBytes: stats.cudaPeakLiveBytes,
    nativeHandles: stats.nativeHandles,
  };
}

/** Starts a new high-water mark: nativePeakLiveBytes and cudaPeakLiveBytes become the bytes live now (like torch's reset_peak_memory_stats). */
export function resetMemoryPeak(): void {
  native().resetMemoryPeak();
}

/**
 * Gives the blocks both caching allocators keep for reuse back (the CPU's to the system, the CUDA
 * device's to the driver; like torch.cuda.empty_cache). Live tensors are untouched. On CUDA it
 * waits for the device (cudaFree does): for an explicit call between phases, not per step.
 */
export function emptyCache(): void {
  native().emptyCache();
}

/** Sets the size of the native CPU thread pool (default: the number of cores, or LMCL_NUM_THREADS). */
export function setNumThreads(count: number): void {
  native().setNumThreads(count);
}

/**
 * The float32 precision of matrix products on CUDA, as torch.set_float32_matmul_precision:
 * 'highest' (the default: FP32 on the CUDA cores) or 'high' (TF32 tensor cores on compute
 * capability >= 8.0: inputs rounded to 10 mantissa bits, products summed in FP32 — faster, about
 * 1e-3 relative error). Applies to the GEMM (linear layers, matmul); convolutions and the fused
 * contrastive kernels stay FP32, and the CPU always computes in FP32. LMCL_MATMUL_PRECISION sets
 * it at start-up. 'medium' (BF16) is not implemented and is an Error.
 */
export function setFloat32MatmulPrecision(precision: Float32MatmulPrecision): void {
  native().setMatmulPrecision(precision);
}

/** The precision in effect (see setFloat32MatmulPrecision). */
export function getFloat32MatmulPrecision(): Float32MatmulPrecision {
  return native().info().matmulPrecision;
}

/** Which native binary is loaded and why, SIMD level, threads, CUDA availability. */
export function engineInfo(): ReturnType<typeof nativeInfo> {
  return nativeInfo();
}
