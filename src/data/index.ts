// Data: dataset formats, samplers, augmentation and the DataLoader.
export type { ImageDataset, DatasetSplits, Batch, LoaderState } from './types.js';
export { loadDataset, checkSplitsAgree, defaultAugmentation, channelStats, bundledFashionMnistDir, NORMALIZATION, IMAGENET_NORMALIZATION, DATASET_NAMES, SYSTEM_FASHION_MNIST } from './datasets.js';
export type { DatasetName, LoadDatasetOptions } from './datasets.js';
export { readCifar10, readCifar100, readIdxPair, readIdxDir, readImageFolder, encodeIdx, decodeImage, MAX_IMAGE_PIXELS } from './formats.js';
export { randomResizedCropWindow, centerCropWindow, resampleWindow, decodeImageBytes } from './image_pipeline.js';
export type { DecodedImage, ImageWindow, ImageDecoderName } from './image_pipeline.js';
export { resolveM, shufflePlan, mPerClassPlan, batchesPerEpoch, indicesByClass } from './sampler.js';
export type { SamplerKind, EpochPlan } from './sampler.js';
export { prepareBatch, drawAugmentParams, drawImageParams, normalizationTable, mixSeed, epochGenerator } from './augment.js';
export type { AugmentParams, ImageParams } from './augment.js';
export { DataLoader } from './loader.js';
export type { DataLoaderOptions } from './loader.js';
