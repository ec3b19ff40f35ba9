// `lmcl export` of one network: the checkpoint's tensors are loaded (strict) into the network
// built from the run's config before anything is written, so a file that does not fit the
// architecture (a missing, extra or wrongly shaped tensor) is an error naming the tensor instead
// of a safetensors file that PyTorch's load_state_dict refuses later.
import fs from 'node:fs';
import path from 'node:path';
import { imageFolderClasses } from '../data/formats.js';
import type { LoadedCheckpoint, TensorMap } from '../io/checkpoint.js';
import { createModel } from '../models/registry.js';
import type { TrainConfig } from './config.js';
import { resolveStateConfig } from './state.js';

/** What the networks' shapes depend on: the classifier width and the input. */
export interface ModelInputShape {
  classes: number;
  channels: number;
  imageSize: number;
  /** Where the numbers came from, for error messages. */
  from: string;
}

/** Fixed shapes of the built-in datasets (their readers always give these). */
const FIXED_SHAPES: Record<string, Omit<ModelInputShape, 'from'>> = {
  'fashion-mnist': { classes: 10, channels: 1, imageSize: 28 },
  mnist: { classes: 10, channels: 1, imageSize: 28 },
  cifar10: { classes: 10, channels: 3, imageSize: 32 },
  cifar100: { classes: 100, channels: 3, imageSize: 32 },
};

function isPositiveInteger(value: unknown): value is number {
  return typeof value === 'number' && Number.isInteger(value) && value >= 1;
}

/**
 * The input shape a run's networks were built for, without reading its images: fixed for the
 * built-in datasets; for an image folder, the `dataset` record of the run directory's config.json
 * (written by the trainer) or else the class folders of <data>/train.
 */
export function modelInputShape(config: TrainConfig, checkpointPath: string): ModelInputShape {
  const fixed = FIXED_SHAPES[config.dataset];
  if (fixed) return { ...fixed, from: `dataset ${config.dataset}` };
  if (config.dataset !== 'imagefolder') throw new Error(`export: ${checkpointPath}: unknown dataset ${JSON.stringify(config.dataset)} in the run's config`);
  // A checkpoint lives in <run>/checkpoints/<name>.
  const runConfig = path.join(path.dirname(path.dirname(checkpointPath)), 'config.json');
  if (fs.existsSync(runConfig)) {
    let dataset: Record<string, unknown> | undefined;
    try {
      dataset = (JSON.parse(fs.readFileSync(runConfig, 'utf8')) as { dataset?: Record<string, unknown> }).dataset;
    } catch (error) {
      throw new Error(`export: cannot read ${runConfig}: ${(error as Error).message}`, { cause: error });
    }
    if (dataset && isPositiveInteger(dataset.classes) && isPositiveInteger(dataset.channels) && isPositiveInteger(dataset.imageSize)) {
      return { classes: dataset.classes, channels: dataset.channels, imageSize: dataset.imageSize, from: `${runConfig} (field 'dataset')` };
    }
    throw new Error(`export: ${runConfig}: field 'dataset' lacks positive integers 'classes', 'channels' and 'imageSize'`);
  }
  if (config.data === null) throw new Error(`export: ${checkpointPath}: the run used an image folder, but neither ${runConfig} nor the run's data folder is known`);
  const trainDir = path.join(config.data, 'train');
  return { classes: imageFolderClasses(trainDir).length, channels: 3, imageSize: config.imageSize ?? 32, from: `the class folders of ${trainDir}` };
}

/**
 * Network `index` of a checkpoint, checked against the architecture of the run's config: built
 * from the config, loaded strictly, and returned as that network's own state dict.
 */
export function verifiedNetworkTensors(loaded: LoadedCheckpoint, index: number): TensorMap {
  const state = loaded.state as { config?: unknown } | null;
  if (!state || typeof state !== 'object' || state.config === undefined) {
    throw new Error(`export: ${loaded.path} has no training state (state.json without a config), so its architecture cannot be checked`);
  }
  const config = resolveStateConfig(state.config, loaded.path);
  const names = config.arch.split(',').map((name) => name.trim()).filter((name) => name.length > 0);
  const cohortSize = names.length === 1 ? config.numberNet : names.length;
  if (loaded.networks.length !== cohortSize) {
    throw new Error(`export: ${loaded.path} holds ${loaded.networks.length} networks, the run's config says ${cohortSize} (--arch ${config.arch}, --number-net ${config.numberNet})`);
  }
  const tensors = loaded.networks[index];
  if (!tensors) throw new Error(`export: checkpoint ${loaded.path} has ${loaded.networks.length} networks; --net ${index} is out of range`);
  const architecture = names.length === 1 ? names[0]! : names[index]!;
  const shape = modelInputShape(config, loaded.path);
  const network = createModel(architecture, { numClasses: shape.classes, inChannels: shape.channels, imageSize: shape.imageSize, auxiliary: config.auxiliary });
  try {
    try {
      network.loadStateDict(tensors);
    } catch (error) {
      throw new Error(
        `export: ${path.join(loaded.path, `net${index}.safetensors`)} does not fit ${architecture}${config.auxiliary ? ' (with auxiliary heads)' : ''} ` +
          `built from the run's config (${shape.classes} classes, ${shape.channels}×${shape.imageSize}×${shape.imageSize} input, from ${shape.from}): ` +
          (error as Error).message,
        { cause: error },
      );
    }
    return network.stateDict();
  } finally {
    network.dispose();
  }
}
