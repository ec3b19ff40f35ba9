// Evaluation of a saved checkpoint (`lmcl eval`): rebuilds the cohort from the run's config,
// loads the weights and evaluates the test split per network, per head and the ensemble.
import fs from 'node:fs';
import path from 'node:path';
import { loadCheckpoint } from '../io/checkpoint.js';
import { createCohort } from '../models/registry.js';
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
