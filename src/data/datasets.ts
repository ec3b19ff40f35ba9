// loadDataset(name, { data, imageSize }) → DatasetSplits (train/test + per-channel mean/std).
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { FASHION_MNIST_CLASSES, MNIST_CLASSES, imageFolderClasses, readCifar10, readCifar100, readIdxDir, readImageFolder } from './formats.js';
import type { DatasetSplits, ImageDataset } from './types.js';

export type DatasetName = 'fashion-mnist' | 'mnist' | 'cifar10' | 'cifar100' | 'imagefolder';
export const DATASET_NAMES: readonly DatasetName[] = ['fashion-mnist', 'mnist', 'cifar10', 'cifar100', 'imagefolder'];

export interface LoadDatasetOptions {
  /** Directory holding the files. For fashion-mnist: optional ('bundled' forces the bundled sample). */
  data?: string;
  /** imagefolder only: output side length (default 32): RandomResizedCrop's size, and CenterCrop's at eval. */
  imageSize?: number;
}

/** Per-channel normalisation constants (of the full training sets). */
export const NORMALIZATION: Record<Exclude<DatasetName, 'imagefolder'>, { mean: number[]; std: number[] }> = {
  cifar100: { mean: [0.5071, 0.4867, 0.4408], std: [0.2675, 0.2565, 0.2761] },
  // Per-pixel statistics of the CIFAR-10 training set (the widely copied 0.2023/0.1994/0.2010
  // are a miscomputed std; these are the actual ones).
  cifar10: { mean: [0.4914, 0.4822, 0.4465], std: [0.247, 0.2435, 0.2616] },
  mnist: { mean: [0.1307], std: [0.3081] },
  'fashion-mnist': { mean: [0.286], std: [0.353] },
};

/**
 * Image folders are normalised with the ImageNet statistics, torchvision's and timm's default:
 * their files are decoded per batch, so there is no pass over the data to measure them.
 */
export const IMAGENET_NORMALIZATION = { mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] };

/**
 * Training augmentation per dataset: RandomCrop padding and whether to flip horizontally
 * (CIFAR: padding 4 + flip, the reference; 28×28 sets: padding 2; digits are not flipped;
 * image folders: padding size/8 + flip).
 */
export function defaultAugmentation(name: DatasetName, imageSize = 32): { padding: number; flip: boolean } {
  switch (name) {
    case 'cifar10':
    case 'cifar100':
      return { padding: 4, flip: true };
    case 'fashion-mnist':
      return { padding: 2, flip: true };
    case 'mnist':
      return { padding: 2, flip: false };
    default:
      return { padding: Math.max(1, Math.round(imageSize / 8)), flip: true };
  }
}

/** Debian's dataset-fashion-mnist installs the full set here (the four .gz IDX files). */
export const SYSTEM_FASHION_MNIST = '/usr/share/datasets/fashion-mnist';

/** The bundled class-balanced sample (10,000 train / 2,000 test), found from src/ or dist/src/. */
export function bundledFashionMnistDir(): string {
  const here = fileURLToPath(new URL('.', import.meta.url));
  for (const up of ['../..', '../../..']) {
    const candidate = resolve(here, up, 'data', 'fashion-mnist-sample');
    if (existsSync(join(candidate, 'train-images-idx3-ubyte.gz'))) return candidate;
  }
  throw new Error(`fashion-mnist: the bundled sample (data/fashion-mnist-sample/) was not found near ${here}`);
}

/** Per-channel mean and std of a uint8 dataset, scaled to [0, 1] (float64 accumulation). */
export function channelStats(dataset: ImageDataset): { mean: number[]; std: number[] } {
  if (dataset.files) throw new Error(`channelStats: ${dataset.name} is an image folder (decoded per batch), not pixels in memory`);
  const { channels, height, width, count, pixels } = dataset;
  const plane = height * width;
  const mean: number[] = [];
  const std: number[] = [];
  for (let c = 0; c < channels; c += 1) {
    let sum = 0;
    let squares = 0;
    for (let n = 0; n < count; n += 1) {
      const start = (n * channels + c) * plane;
      for (let i = start; i < start + plane; i += 1) {
        const v = pixels[i]!;
        sum += v;
        squares += v * v;
      }
    }
    const total = count * plane;
    const m = sum / total;
    const variance = Math.max(squares / total - m * m, 0);
    mean.push(m / 255);
    std.push(Math.sqrt(variance) / 255 || 1);
  }
  return { mean, std };
}

function requireData(name: string, data: string | undefined): string {
  if (!data) throw new Error(`${name}: --data DIR is required (the directory holding the ${name} files)`);
  if (!existsSync(data)) throw new Error(`${name}: data directory not found: ${data}`);
  return data;
}

/**
 * Refuses a test split whose images or classes differ from the train split's: the model is built
 * from the train split, so a differing test split would fail deep inside a forward pass (or, for
 * the class count, be scored against the wrong head) instead of at load time.
 */
export function checkSplitsAgree(dataset: string, splits: DatasetSplits): DatasetSplits {
  const { train, test } = splits;
  const differences: string[] = [];
  if (test.height !== train.height || test.width !== train.width) {
    differences.push(`image size ${test.height}×${test.width} (train: ${train.height}×${train.width})`);
  }
  if (test.channels !== train.channels) differences.push(`${test.channels} channels (train: ${train.channels})`);
  if (test.classes !== train.classes) differences.push(`${test.classes} classes (train: ${train.classes})`);
  if (differences.length > 0) {
    throw new Error(
      `${dataset}: the test split "${test.name}" does not match the train split "${train.name}" (data: ${splits.source}): ` +
        `test has ${differences.join(', ')}`,
    );
  }
  return splits;
}

export function loadDataset(name: DatasetName, options: LoadDatasetOptions = {}): DatasetSplits {
  return checkSplitsAgree(name, loadSplits(name, options));
}

function loadSplits(name: DatasetName, options: LoadDatasetOptions): DatasetSplits {
  switch (name) {
    case 'fashion-mnist': {
      let dir: string;
      let source: string;
      let label: string;
      if (options.data && options.data !== 'bundled') {
        dir = requireData(name, options.data);
        source = dir;
        label = 'fashion-mnist';
      } else if (!options.data && existsSync(join(SYSTEM_FASHION_MNIST, 'train-images-idx3-ubyte.gz'))) {
        dir = SYSTEM_FASHION_MNIST;
        source = dir;
        label = 'fashion-mnist';
      } else {
        dir = bundledFashionMnistDir();
        source = 'bundled';
        label = 'fashion-mnist (bundled sample)';
      }
      const train = readIdxDir(dir, 'train', { name: 'fashion-mnist', classNames: FASHION_MNIST_CLASSES });
      const test = readIdxDir(dir, 'test', { name: 'fashion-mnist', classNames: FASHION_MNIST_CLASSES });
      train.name = `${label} train`;
      test.name = `${label} test`;
      return { train, test, ...NORMALIZATION['fashion-mnist'], source };
    }
    case 'mnist': {
      const dir = requireData(name, options.data);
      const train = readIdxDir(dir, 'train', { name: 'mnist', classNames: MNIST_CLASSES });
      const test = readIdxDir(dir, 'test', { name: 'mnist', classNames: MNIST_CLASSES });
      return { train, test, ...NORMALIZATION.mnist, source: dir };
    }
    case 'cifar10': {
      const dir = requireData(name, options.data);
      return { train: readCifar10(dir, 'train'), test: readCifar10(dir, 'test'), ...NORMALIZATION.cifar10, source: dir };
    }
    case 'cifar100': {
      const dir = requireData(name, options.data);
      return { train: readCifar100(dir, 'train'), test: readCifar100(dir, 'test'), ...NORMALIZATION.cifar100, source: dir };
    }
    case 'imagefolder': {
      const root = requireData(name, options.data);
      const size = options.imageSize ?? 32;
      const trainDir = join(root, 'train');
      const testDir = ['val', 'test'].map((split) => join(root, split)).find((dir) => existsSync(dir));
      if (!testDir) throw new Error(`imagefolder: neither ${join(root, 'val')} nor ${join(root, 'test')} exists`);
      const classNames = imageFolderClasses(trainDir);
      const train = readImageFolder(trainDir, size, classNames);
      const test = readImageFolder(testDir, size, classNames);
      train.name = `imagefolder train (${root})`;
      test.name = `imagefolder test (${testDir})`;
      return { train, test, ...IMAGENET_NORMALIZATION, source: root };
    }
    default:
      throw new Error(`loadDataset: unknown dataset ${JSON.stringify(name)}; expected one of ${DATASET_NAMES.join(', ')}`);
  }
}
