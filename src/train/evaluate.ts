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

export interface EvaluateCheckpointOptions {
  data?: string;
  limitTest?: number;
  evalBatchSize?: number;
}

export async function evaluateCheckpoint(target: string, options: EvaluateCheckpointOptions = {}): Promise<{ result: EvalResult; checkpoint: string; config: TrainConfig }> {
  const resolved = fs.existsSync(path.join(target, 'checkpoints')) ? path.join(target, 'checkpoints') : target;
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
  const data = openData(config, { trainLoader: false });
  const networks = createCohort(config.arch, config.numberNet, { numClasses: data.classes, inChannels: data.channels, imageSize: data.imageSize, auxiliary: config.auxiliary });
  try {
    if (loaded.networks.length !== networks.length) throw new Error(`eval: ${loaded.path} holds ${loaded.networks.length} networks, the config says ${networks.length}`);
    networks.forEach((net, n) => net.loadStateDict(loaded.networks[n]!));
    const result = await evaluate(networks, data.testBatches(), data.classes);
    return { result, checkpoint: loaded.path, config };
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
  const data = openData(config, { trainLoader: false });
  let network: ReturnType<typeof createModel> | null = null;
  try {
    network = createModel(architecture, { numClasses: data.classes, inChannels: data.channels, imageSize: data.imageSize, auxiliary });
    const load = loadStateDictContents(network, contents, file, { strict: true });
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
