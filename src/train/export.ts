// `lmcl export` of one network (or, with --criterion, of the method's modules): the checkpoint's
// tensors are loaded (strict) into the network (or method) built from the run's config before anything is written, so a file that does not fit the
// architecture (a missing, extra or wrongly shaped tensor) is an error naming the tensor instead
// of a safetensors file that PyTorch's load_state_dict refuses later.
import fs from 'node:fs';
import path from 'node:path';
import { CIFAR10_CLASSES, FASHION_MNIST_CLASSES, MNIST_CLASSES, imageFolderClasses } from '../data/formats.js';
import { NORMALIZATION } from '../data/datasets.js';
import type { LoadedCheckpoint, TensorMap } from '../io/checkpoint.js';
import { cohortArchitectures, createModel } from '../models/registry.js';
import type { Student } from '../models/types.js';
import { getMethod, readMethodOptions } from '../losses/registry.js';
import type { Method } from '../losses/method.js';
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

/** What a checkpoint's state.json says about the run its tensors must fit. */
interface RecordedRun {
  config: TrainConfig;
  /** One architecture name per network. */
  architectures: string[];
  shape: ModelInputShape;
}

function recordedRun(loaded: LoadedCheckpoint, what: string): RecordedRun {
  const state = loaded.state as { config?: unknown } | null;
  if (!state || typeof state !== 'object' || state.config === undefined) {
    throw new Error(`export: ${loaded.path} has no training state (state.json without a config), so ${what} cannot be checked`);
  }
  const config = resolveStateConfig(state.config, loaded.path);
  return { config, architectures: cohortArchitectures(config.arch, config.numberNet), shape: modelInputShape(config, loaded.path) };
}

function buildNetwork(run: RecordedRun, architecture: string): Student {
  return createModel(architecture, { numClasses: run.shape.classes, inChannels: run.shape.channels, imageSize: run.shape.imageSize, auxiliary: run.config.auxiliary });
}

/**
 * Network `index` of a checkpoint, checked against the architecture of the run's config: built
 * from the config, loaded strictly, and returned as that network's own state dict.
 */
export function verifiedNetworkTensors(loaded: LoadedCheckpoint, index: number): TensorMap {
  const run = recordedRun(loaded, 'its architecture');
  const { config, shape } = run;
  if (loaded.networks.length !== run.architectures.length) {
    throw new Error(`export: ${loaded.path} holds ${loaded.networks.length} networks, the run's config says ${run.architectures.length} (--arch ${config.arch}, --number-net ${config.numberNet})`);
  }
  const tensors = loaded.networks[index];
  if (!tensors) throw new Error(`export: checkpoint ${loaded.path} has ${loaded.networks.length} networks; --net ${index} is out of range`);
  const architecture = run.architectures[index]!;
  const network = buildNetwork(run, architecture);
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

/**
 * The method's own tensors of a checkpoint (`criterion.*`), checked like a network's: the run's
 * method is built from its config (its options included) around networks of the run's
 * architecture and its modules load them strictly. A memory bank's row count is the one thing
 * the config does not fix (it is the training split's size): it is taken from the file.
 */
export function verifiedCriterionTensors(loaded: LoadedCheckpoint): TensorMap {
  const run = recordedRun(loaded, "its method's modules");
  const { config, shape } = run;
  const criterion = loaded.tensorFiles.criterion;
  if (!criterion || criterion.size === 0) throw new Error(`export: checkpoint ${loaded.path} holds no method weights (method ${config.method} has no modules of its own)`);
  const networks = run.architectures.map((architecture) => buildNetwork(run, architecture));
  const entry = getMethod(config.method);
  const bankRows = criterion.get('criterion.bank.0')?.shape[0] ?? 0;
  let method: Method | null = null;
  try {
    method = entry.create({ networks, classes: shape.classes, options: readMethodOptions(entry, config), seed: config.seed,
      trainLabels: Int32Array.from({ length: bankRows }, (_, row) => row % shape.classes) });
    if (!method.criterion) throw new Error(`export: ${loaded.path} holds method weights, but method ${config.method} has no modules of its own`);
    const own = new Map([...criterion].map(([name, entryValue]) => [name.replace(/^criterion\./, ''), entryValue]));
    try {
      method.criterion.loadStateDict(own);
    } catch (error) {
      throw new Error(`export: ${path.join(loaded.path, 'criterion.safetensors')} does not fit method ${config.method} built from the run's config ` +
        `(--arch ${config.arch}, ${shape.classes} classes): ${(error as Error).message}`, { cause: error });
    }
    return criterion;
  } finally {
    method?.dispose();
    for (const net of networks) net.dispose();
  }
}

/** Class names of the built-in datasets whose names are fixed (CIFAR-100's come from its files). */
const FIXED_CLASS_NAMES: Record<string, readonly string[]> = {
  'fashion-mnist': FASHION_MNIST_CLASSES,
  mnist: MNIST_CLASSES,
  cifar10: CIFAR10_CLASSES,
};

function isNumberList(value: unknown, length: number): value is number[] {
  return Array.isArray(value) && value.length === length && value.every((item) => typeof item === 'number' && Number.isFinite(item));
}

/**
 * The `__metadata__` of an exported network (beside format, epoch, step and source): what running
 * it needs, like timm's pretrained config: architecture, num_classes, class_names (a JSON list, when
 * known), input_size (JSON [C, H, W]), in_channels, image_size, mean and std (JSON lists: the
 * per-channel normalisation applied to pixels scaled to [0, 1]), dataset and auxiliary. The input
 * shape is the one the network was built for; names and normalisation come from the run's
 * config.json (written by the trainer) or else the built-in dataset's constants, and are left out
 * when neither knows them.
 */
export function exportedNetworkMetadata(loaded: LoadedCheckpoint, index: number): Record<string, string> {
  const run = recordedRun(loaded, 'its architecture');
  const { config, shape } = run;
  const runConfig = path.join(path.dirname(path.dirname(loaded.path)), 'config.json');
  let recorded: Record<string, unknown> = {};
  try {
    const dataset = (JSON.parse(fs.readFileSync(runConfig, 'utf8')) as { dataset?: unknown }).dataset;
    if (dataset !== null && typeof dataset === 'object') recorded = dataset as Record<string, unknown>;
  } catch {
    // A checkpoint copied out of its run directory: fall back to the dataset's constants.
  }
  const fixedNorm = NORMALIZATION[config.dataset as keyof typeof NORMALIZATION] as { mean: number[]; std: number[] } | undefined;
  const mean = isNumberList(recorded.mean, shape.channels) ? recorded.mean : fixedNorm?.mean;
  const std = isNumberList(recorded.std, shape.channels) ? recorded.std : fixedNorm?.std;
  const recordedNames = recorded.classNames;
  const classNames = Array.isArray(recordedNames) && recordedNames.length === shape.classes && recordedNames.every((name) => typeof name === 'string')
    ? recordedNames as string[]
    : FIXED_CLASS_NAMES[config.dataset]?.length === shape.classes ? FIXED_CLASS_NAMES[config.dataset] : undefined;
  const metadata: Record<string, string> = {
    architecture: run.architectures[index] ?? 'unknown',
    num_classes: String(shape.classes),
    input_size: JSON.stringify([shape.channels, shape.imageSize, shape.imageSize]),
    in_channels: String(shape.channels),
    image_size: String(shape.imageSize),
    dataset: config.dataset,
    auxiliary: String(config.auxiliary),
  };
  if (classNames) metadata.class_names = JSON.stringify(classNames);
  if (mean && std) {
    metadata.mean = JSON.stringify(mean);
    metadata.std = JSON.stringify(std);
  }
  return metadata;
}
