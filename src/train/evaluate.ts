// Evaluation of a saved checkpoint (`lmcl eval`): rebuilds the cohort from the run's config,
// loads the weights and evaluates the test split per network, per head and the ensemble.
// `lmcl eval --weights FILE` evaluates a bare state dict (an export, a torch file) with no run
// directory: the network is built from --arch (or the file's metadata) and the data flags, through
// the trainer's own config, data and evaluation code.
import fs from 'node:fs';
import path from 'node:path';
import { loadCheckpoint } from '../io/checkpoint.js';
import { loadStateDictContents, type LoadStateDictFileReport } from '../io/load_state_dict.js';
import { readSafetensors } from '../io/safetensors.js';
import { createCohort, createModel } from '../models/registry.js';
import { resolveTrainConfig, type TrainConfig } from './config.js';
import { openData } from './data.js';
import { evaluate, type EvalResult } from './metrics.js';
import { resolveStateConfig, type TrainState } from './state.js';
import { requireDevice } from './device.js';
import type { Device } from '../tensor/tensor.js';

export interface EvaluateCheckpointOptions {
  data?: string;
  limitTest?: number;
  evalBatchSize?: number;
  /** Where the networks and the test batches live (default 'cpu', whatever device trained them). */
  device?: Device;
}

export interface EvaluatedCheckpoints {
  result: EvalResult;
  /** The first checkpoint (the one whose config gave the data). */
  checkpoint: string;
  config: TrainConfig;
  /** Every checkpoint, in order; result's network n is sources[n]. */
  checkpoints: string[];
  sources: { checkpoint: string; net: number }[];
}

/** The data settings two runs must share for their networks to be evaluated (and ensembled) together. */
const SHARED_DATA_KEYS = ['dataset', 'data', 'limitTest', 'imageSize', 'trainPerClass'] as const;

/**
 * Evaluates the networks of one checkpoint, or of several (e.g. independently trained runs: their
 * networks together, and the ensemble over all of them, the fair baseline for a cohort's ensemble).
 * Several checkpoints must have been trained on the same data (dataset, folder, test limit, image
 * size); the first one's config gives the test split.
 */
export async function evaluateCheckpoint(target: string | readonly string[], options: EvaluateCheckpointOptions = {}): Promise<EvaluatedCheckpoints> {
  const targets = typeof target === 'string' ? [target] : [...target];
  if (targets.length === 0) throw new Error('eval: no checkpoint given');
  const runs = targets.map((one) => {
    const resolved = fs.existsSync(path.join(one, 'checkpoints')) ? path.join(one, 'checkpoints') : one;
    const loaded = loadCheckpoint(resolved);
    const state = loaded.state as Partial<TrainState> | null;
    if (!state || typeof state !== 'object' || state.config === undefined) throw new Error(`eval: ${loaded.path} has no training state (state.json without a config)`);
    // Evaluation needs only the configuration (the rest of the state is the trainer's), checked first so its errors name the file and option.
    const recorded = resolveStateConfig(state.config, loaded.path);
    const config = resolveTrainConfig({
      ...recorded,
      resume: null,
      ...(options.data !== undefined ? { data: options.data } : {}),
      ...(options.limitTest !== undefined ? { limitTest: options.limitTest } : {}),
      ...(options.evalBatchSize !== undefined ? { evalBatchSize: options.evalBatchSize } : {}),
    });
    if (loaded.networks.length !== config.numberNet) throw new Error(`eval: ${loaded.path} holds ${loaded.networks.length} networks, the config says ${config.numberNet}`);
    return { loaded, config };
  });
  const first = runs[0]!;
  for (const run of runs.slice(1)) {
    for (const key of SHARED_DATA_KEYS) {
      if (JSON.stringify(run.config[key]) !== JSON.stringify(first.config[key])) {
        throw new Error(`eval: ${run.loaded.path} was trained with ${key} ${JSON.stringify(run.config[key])}, ${first.loaded.path} with ` +
          `${JSON.stringify(first.config[key])}: networks evaluated together must share their data`);
      }
    }
  }
  const device = options.device ?? 'cpu';
  requireDevice(device, 'eval');
  const data = openData(first.config, { trainLoader: false, device });
  const networks: ReturnType<typeof createCohort> = [];
  const sources: { checkpoint: string; net: number }[] = [];
  try {
    for (const { loaded, config } of runs) {
      const cohort = createCohort(config.arch, config.numberNet, { numClasses: data.classes, inChannels: data.channels, imageSize: data.imageSize, auxiliary: config.auxiliary });
      networks.push(...cohort);
      cohort.forEach((net, n) => {
        net.loadStateDict(loaded.networks[n]!);
        net.to(device);
        sources.push({ checkpoint: loaded.path, net: n });
      });
    }
    const result = await evaluate(networks, data.testBatches(), data.classes);
    return { result, checkpoint: first.loaded.path, config: first.config, checkpoints: runs.map((run) => run.loaded.path), sources };
  } finally {
    data.close();
    for (const net of networks) net.dispose();
  }
}

export interface EvaluateWeightsOptions {
  /** Architecture (default: the file's metadata 'architecture'). */
  arch?: string;
  /** Build the auxiliary heads (default: the file's metadata, else whether it holds auxiliary_classifier.* tensors). */
  auxiliary?: boolean;
  dataset?: string;
  data?: string;
  imageSize?: number;
  limitTest?: number;
  evalBatchSize?: number;
  /** Where the network and the test batches live (default 'cpu'). */
  device?: Device;
}

export interface EvaluateWeightsResult {
  result: EvalResult;
  weights: string;
  architecture: string;
  auxiliary: boolean;
  /** What the strict load did (renames by the alias table, dtype conversions). */
  load: LoadStateDictFileReport;
  config: TrainConfig;
  /** Where the test images came from ('bundled' or a folder). */
  source: string;
  /** Differences between the file's recorded input and this data (e.g. another normalisation). */
  notes: string[];
}

/** A JSON list of numbers from metadata, or null. */
function numberList(text: string | undefined): number[] | null {
  if (text === undefined) return null;
  try {
    const parsed: unknown = JSON.parse(text);
    return Array.isArray(parsed) && parsed.every((item) => typeof item === 'number') ? parsed as number[] : null;
  } catch {
    return null;
  }
}

export async function evaluateWeights(file: string, options: EvaluateWeightsOptions = {}): Promise<EvaluateWeightsResult> {
  const contents = readSafetensors(file);
  const metadata = contents.metadata;
  const architecture = options.arch ?? metadata.architecture;
  if (architecture === undefined) throw new Error(`eval --weights ${file}: the file's metadata names no architecture; give --arch`);
  const auxiliary = options.auxiliary ??
    (metadata.auxiliary !== undefined ? metadata.auxiliary === 'true' : [...contents.tensors.keys()].some((name) => name.startsWith('auxiliary_classifier.')));
  // The trainer's config resolution and data: the same defaults (the bundled sample with neither
  // --dataset nor --data), checks and test preprocessing as `lmcl train`.
  const config = resolveTrainConfig({
    arch: architecture, numberNet: 1, method: 'baseline', auxiliary, workers: 0,
    ...(options.dataset !== undefined ? { dataset: options.dataset } : {}),
    ...(options.data !== undefined ? { data: options.data } : {}),
    ...(options.imageSize !== undefined ? { imageSize: options.imageSize } : {}),
    ...(options.limitTest !== undefined ? { limitTest: options.limitTest } : {}),
    ...(options.evalBatchSize !== undefined ? { evalBatchSize: options.evalBatchSize } : {}),
  });
  const device = options.device ?? 'cpu';
  requireDevice(device, 'eval');
  const data = openData(config, { trainLoader: false, device });
  let network: ReturnType<typeof createModel> | null = null;
  try {
    network = createModel(architecture, { numClasses: data.classes, inChannels: data.channels, imageSize: data.imageSize, auxiliary });
    const load = loadStateDictContents(network, contents, file, { strict: true });
    network.to(device);
    const notes: string[] = [];
    if (metadata.architecture !== undefined && metadata.architecture !== architecture) notes.push(`the file's metadata says architecture ${metadata.architecture}`);
    for (const [key, actual] of [['mean', data.mean], ['std', data.std]] as const) {
      const recorded = numberList(metadata[key]);
      if (recorded && (recorded.length !== actual.length || recorded.some((value, c) => Math.abs(value - actual[c]!) > 1e-6))) {
        notes.push(`the file was exported with normalisation ${key} ${JSON.stringify(recorded)}; this data uses ${JSON.stringify(actual)}`);
      }
    }
    const result = await evaluate([network], data.testBatches(), data.classes);
    return { result, weights: file, architecture, auxiliary, load, config, source: data.source, notes };
  } finally {
    network?.dispose();
    data.close();
  }
}
