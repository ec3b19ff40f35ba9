// Shared data contracts (datasets in memory, batches, loader state).
import type { Tensor } from '../tensor/tensor.js';

/**
 * A labelled image dataset: held in memory as uint8 pixels, layout [N, C, H, W], or (image
 * folders) a list of files that the DataLoader decodes and resizes to [C, H, W] per batch.
 */
export interface ImageDataset {
  /** Human name, e.g. 'fashion-mnist (bundled sample)' or 'cifar100'. */
  name: string;
  /** [N, C, H, W] uint8; empty when `files` is set. */
  pixels: Uint8Array;
  /** Image folders: one path per image (decoded lazily); absent for in-memory datasets. */
  files?: readonly string[];
  labels: Int32Array;
  count: number;
  channels: number;
  height: number;
  width: number;
  classes: number;
  /** Optional class names. */
  classNames?: string[];
}

export interface DatasetSplits {
  train: ImageDataset;
  test: ImageDataset;
  /** Per-channel normalisation constants used for both splits. */
  mean: number[];
  std: number[];
  /** Where the data came from (path or 'bundled'), for the resolved config. */
  source: string;
}

/** One training/eval batch: normalised float input and its labels. */
export interface Batch {
  x: Tensor;
  y: Int32Array;
  /** Dataset indices of the batch items. */
  indices: Int32Array;
}

/** Serialisable loader position, for exact resume. */
export interface LoaderState {
  epoch: number;
  /** Index of the next batch within the epoch. */
  position: number;
  /** RNG state at the start of the epoch (Generator.getState()). */
  epochRngState: number[];
}
