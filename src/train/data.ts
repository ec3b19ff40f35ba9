// The trainer's view of the data: the dataset splits (optionally truncated with --limit-train /
// --limit-test), a seeded training DataLoader (shuffled or m-per-class, random crop + flip, worker
// threads) and sequential, un-augmented test batches.
import { loadDataset, type DatasetName } from '../data/datasets.js';
import { DataLoader } from '../data/loader.js';
import type { Batch, ImageDataset } from '../data/types.js';
import type { TrainConfig } from './config.js';
import type { Device } from '../tensor/tensor.js';

export interface TrainData {
  classes: number;
  channels: number;
  imageSize: number;
  trainCount: number;
  testCount: number;
  /** Labels of the (truncated) training split by dataset index. */
  trainLabels: Int32Array;
  /** Class names in label order, when the dataset has them (null: unknown). */
  classNames: string[] | null;
  mean: number[];
  std: number[];
  flip: boolean;
  padding: number;
  /** 'bundled' or the folder the data came from. */
  source: string;
  /** One line for the log. */
  description: string;
  train: DataLoader;
  testBatches(): Iterable<Batch>;
  /** Batches of one testBatches() pass. */
  testBatchCount: number;
  close(): void;
}

/** The images `keep` (dataset indices, in order) of a split, pixels or files alike. */
function selectImages(split: ImageDataset, keep: Int32Array, name: string): ImageDataset {
  const labels = Int32Array.from(keep, (index) => split.labels[index]!);
  if (split.files) {
    const files = split.files;
    return { ...split, count: keep.length, files: Array.from(keep, (index) => files[index]!), labels, name };
  }
  const plane = split.channels * split.height * split.width;
  const pixels = new Uint8Array(keep.length * plane);
  keep.forEach((index, row) => pixels.set(split.pixels.subarray(index * plane, (index + 1) * plane), row * plane));
  return { ...split, count: keep.length, pixels, labels, name };
}

/** The first `limit` images of a split (0: all of it). */
export function truncateDataset(split: ImageDataset, limit: number): ImageDataset {
  if (limit <= 0 || limit >= split.count) return split;
  return selectImages(split, Int32Array.from({ length: limit }, (_, index) => index), `${split.name} (first ${limit})`);
}

/**
 * The first `perClass` images of every class, kept in file order (0: all of it): a class-balanced
 * subset. A class with fewer images keeps all it has; the split's name says so.
 */
export function balancedSubset(split: ImageDataset, perClass: number): ImageDataset {
  if (perClass <= 0) return split;
  const taken = new Int32Array(split.classes);
  const keep: number[] = [];
  split.labels.forEach((label, index) => {
    if (taken[label]! < perClass) {
      taken[label]! += 1;
      keep.push(index);
    }
  });
  if (keep.length === split.count) return split;
  const short = [...taken].map((count, label) => [label, count] as const).filter(([, count]) => count < perClass);
  const note = short.length > 0 ? `; classes ${short.map(([label, count]) => `${label} (${count})`).join(', ')} have fewer` : '';
  return selectImages(split, Int32Array.from(keep), `${split.name} (first ${perClass} per class${note})`);
}

/** Crop padding by image size: 4 at 32×32 (the reference's CIFAR setting), 2 at 28×28, size/8 otherwise. */
export function defaultPadding(size: number): number {
  return size >= 32 ? 4 : Math.max(1, Math.round(size / 14));
}

/** `device`: where the batches' images are made (default 'cpu'; `lmcl train` passes --device). */
export function openData(config: TrainConfig, options: { trainLoader?: boolean; device?: Device } = {}): TrainData {
  const device = options.device ?? 'cpu';
  const splits = loadDataset(config.dataset as DatasetName, { data: config.data ?? undefined, imageSize: config.imageSize ?? undefined });
  const train = truncateDataset(balancedSubset(splits.train, config.trainPerClass), config.limitTrain);
  const test = truncateDataset(splits.test, config.limitTest);
  if (train.height !== train.width) throw new Error(`${train.name}: images are ${train.height}×${train.width}; square images are expected`);
  if (config.imageSize !== null && config.dataset !== 'imagefolder' && config.imageSize !== train.height) {
    throw new Error(`--image-size ${config.imageSize}: ${config.dataset} images are ${train.height}×${train.width} (only imagefolder is resized)`);
  }
  const flip = config.flip ?? config.dataset !== 'mnist';
  const padding = defaultPadding(train.height);
  // A loader's errors (a batch too big to allocate, too few images for an m-per-class batch) name
  // the flag that set its batch size.
  const withFlag = <T>(flag: string, value: number, make: () => T): T => {
    try {
      return make();
    } catch (error) {
      throw new Error(`${flag} ${value}: ${(error as Error).message}`, { cause: error });
    }
  };
  const loader = withFlag('--batch-size', config.batchSize, () => new DataLoader(train, {
    batchSize: config.batchSize, sampler: config.sampler, augment: true, flip, padding, mean: splits.mean, std: splits.std,
    // Evaluation builds this loader without using it: no threads, and no decoder that needs them.
    seed: config.seed, workers: options.trainLoader === false ? 0 : config.workers, decoder: options.trainLoader === false ? 'js' : config.decoder, device,
  }));
  const testLoader = withFlag('--eval-batch-size', config.evalBatchSize, () => {
    try {
      return new DataLoader(test, {
        batchSize: config.evalBatchSize, sampler: 'shuffle', augment: false, flip: false, padding: 0, mean: splits.mean, std: splits.std,
        // In-memory test images only need normalising (inline is cheapest); image folders are decoded per batch.
        seed: config.seed, workers: test.files ? config.workers : 0, decoder: config.decoder, device,
      });
    } catch (error) {
      loader.close(); // its worker threads would keep the process alive
      throw error;
    }
  });
  return {
    classes: train.classes,
    channels: train.channels,
    imageSize: train.height,
    trainCount: train.count,
    testCount: test.count,
    trainLabels: train.labels,
    classNames: train.classNames ?? null,
    mean: splits.mean,
    std: splits.std,
    flip,
    padding,
    source: splits.source,
    description: `${train.name}: ${train.count} train / ${test.count} test images, ${train.channels}×${train.height}×${train.width}, ` +
      `${train.classes} classes, ${config.sampler} sampler, ` +
      (train.files
        ? `RandomResizedCrop ${train.height}${flip ? ' + flip' : ''} (eval: resize ${Math.floor(train.height / 0.875)} + center crop), decoded per batch by ${loader.decoder}`
        : `crop pad ${padding}${flip ? ' + flip' : ''}`) +
      (config.batchSize > train.count ? `; --batch-size ${config.batchSize} is more than the ${train.count} training images: one batch of ${train.count}` : ''),
    train: loader,
    testBatches: () => testLoader.evalBatches(),
    testBatchCount: testLoader.evalBatchCount,
    close: () => {
      loader.close();
      testLoader.close();
    },
  };
}
