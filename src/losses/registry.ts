// The methods `lmcl train --method` knows. Each is one entry (entry.ts): name, description,
// options with defaults and validation, the options that must match on resume, and create().
// The CLI's --method choices and option flags, resolveTrainConfig's defaults and checks, and the
// trainer's resume check all read this list. Adding a method = a file in src/losses/ exporting
// its entry + one line in `methods` below.
//
// How the contrastive methods plug in (mcl.ts, lmcl.ts; the memory-bank contrast of both in bank.ts):
//
// mcl (method.md §1.1): `create({ networks, options })` builds a criterion module with
//   `embed` = ModuleList of one Embed head per network (d_n → 128 → ReLU → 128, ℓ2), so any N
//   and heterogeneous widths (networks[n].featureDim) work; its weights are saved as
//   `criterion.embed.<n>.<layer>.weight`. CohortMethod's single 'main' set already covers the
//   networks + the criterion (the reference's trainable_list), and the standard step suffices:
//   loss() adds the VCL/ICL/Soft terms from the final-stage features to the CE (+ optional logit
//   KD). Options alpha, beta, lam, tau, featDim, logitDistill with resumeKeys for all of them.
//   Note: the reference's `--gamma` (Soft VCL weight) collides with the multistep `--gamma`;
//   the registry refuses an option key the trainer already has, so mcl must name it otherwise
//   (e.g. `--soft-vcl-weight`) or the schedule's flag must be renamed first.
//   --contrast bank keeps one bank per network as criterion buffers (`criterion.bank.<n>`:
//   checkpointed with the weights), draws each image's keys from (--seed, step) and the training
//   labels (MethodContext.trainLabels), and writes the banks in its own step after the backward.
//
// lmcl (§2–§3): the criterion holds `embed.<n>.<s>` (one Embed per network and stage),
//   `aggregator.<n>` and `loss_weight` (φ, one Linear per network and stage). parameterSets()
//   returns two sets: { name: 'main', networks + embed + aggregator } and
//   { name: 'loss_weight', φ, optimizer: { nesterov: true } } — the trainer builds and
//   checkpoints one SGD per set and gives every one the schedule's lr. It defines `step`:
//   `const result = context.standardStep(batch)` (φ's weights computed under noGrad inside
//   loss(), so φ gets no gradient and its SGD skips it), then, when
//   `context.batchIndex % metaFreq === 0`, the meta phase on the same batch: capture parameters
//   and buffers, unroll metaSteps virtual SGD steps + one CE step at `context.lr` from zero
//   momentum (optim/virtual_sgd.ts), hypergradient into φ.grad, `context.optimizers.get('loss_weight').step()`,
//   restore. Its extra parts (meta_hypergrad_norm, pair weights) go into result.parts as
//   tensors, read with the rest once per log interval. metaFreq/metaSteps are resumeKeys.
import type { MethodEntry } from './entry.js';
import type { MethodOption, MethodOptions, OptionValue } from './options.js';
import { optionKey } from './options.js';
import { baselineEntry } from './baseline.js';
import { dmlEntry } from './dml.js';
import { mclEntry } from './mcl.js';
import { lmclEntry } from './lmcl.js';

// `any`: each entry's create() takes its own option types; the trainer passes it the values
// readMethodOptions() read with that same entry's definitions.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type RegisteredMethod = MethodEntry<any>;

export const methods: readonly RegisteredMethod[] = [baselineEntry, dmlEntry, mclEntry, lmclEntry];

export function methodNames(): string[] {
  return methods.map((entry) => entry.name);
}

export function getMethod(name: string): RegisteredMethod {
  const entry = methods.find((candidate) => candidate.name === name);
  if (!entry) throw new Error(`unknown method '${name}'. Known: ${methodNames().join(', ')}`);
  return entry;
}

/** One option as every method that declares it shares it. */
export interface SharedOption {
  key: string;
  option: MethodOption;
  /** Names of the methods that read it. */
  methods: string[];
}

/**
 * Every method option once, by config key. A key declared by several methods must be the same
 * option (flag, default, description), and must not be one of `reservedKeys` (the trainer's own
 * options): both are programming errors, reported when the registry is first read.
 */
export function methodOptions(entries: readonly RegisteredMethod[] = methods, reservedKeys: ReadonlySet<string> = new Set()): Map<string, SharedOption> {
  const shared = new Map<string, SharedOption>();
  for (const entry of entries) {
    for (const [key, option] of Object.entries(entry.options as MethodOptions)) {
      if (optionKey(option.flag) !== key) throw new Error(`method ${entry.name}: option '${key}' has flag ${option.flag}, whose config key is '${optionKey(option.flag)}'`);
      if (reservedKeys.has(key)) throw new Error(`method ${entry.name}: option ${option.flag} collides with the trainer's own '${key}'`);
      const seen = shared.get(key);
      if (!seen) {
        shared.set(key, { key, option, methods: [entry.name] });
        continue;
      }
      if (seen.option.flag !== option.flag || seen.option.default !== option.default || seen.option.description !== option.description) {
        throw new Error(`methods ${seen.methods.join(', ')} and ${entry.name} declare '${key}' differently (flag, default or description)`);
      }
      seen.methods.push(entry.name);
    }
    for (const key of entry.resumeKeys) {
      if (!(key in entry.options)) throw new Error(`method ${entry.name}: resume key '${key}' is not one of its options`);
    }
  }
  return shared;
}

/** The typed option values of `entry` read from a resolved config (validated there). */
export function readMethodOptions(entry: RegisteredMethod, config: Readonly<Record<string, unknown>>): Record<string, OptionValue> {
  const values: Record<string, OptionValue> = {};
  for (const [key, option] of Object.entries(entry.options as MethodOptions)) values[key] = option.validate(config[key] ?? option.default);
  return values;
}
