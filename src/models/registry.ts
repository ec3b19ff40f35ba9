// Students by name, and cohorts (homogeneous `--arch resnet32 --number-net 2` or heterogeneous
// `--arch resnet32,resnet110`). Each model file exports its factories; this file only lists them.
import type { ModelFactory, ModelOptions, Student } from './types.js';
import { didYouMean } from '../suggest.js';
import { resnet8, resnet14, resnet20, resnet32, resnet56, resnet110 } from './resnet_cifar.js';
import { resnet18, resnet34, resnet50 } from './resnet_imagenet.js';
import { wrn16x2, wrn40x2, wrn28x4 } from './wrn_cifar.js';
import { shufflenetv2x05, shufflenetv2x1 } from './shufflenetv2_cifar.js';
import { hcgnetA1, hcgnetA2 } from './hcgnet_cifar.js';

const factories = new Map<string, ModelFactory>();

/** Adds a factory under a name (model files call this through the table below). */
function register(name: string, factory: ModelFactory): void {
  if (factories.has(name)) throw new Error(`lmcl internal: model '${name}' registered twice`);
  factories.set(name, factory);
}

// ---- the table: one line per architecture (model files add theirs here) -----------------------

register('resnet8', resnet8);
register('resnet14', resnet14);
register('resnet20', resnet20);
register('resnet32', resnet32);
register('resnet56', resnet56);
register('resnet110', resnet110);
register('resnet18', resnet18);
register('resnet34', resnet34);
register('resnet50', resnet50);
register('wrn_16_2', wrn16x2);
register('wrn_40_2', wrn40x2);
register('wrn_28_4', wrn28x4);
register('shufflenetv2_0.5x', shufflenetv2x05);
register('shufflenetv2_1x', shufflenetv2x1);
register('hcgnet_a1', hcgnetA1);
register('hcgnet_a2', hcgnetA2);

/** Names of every registered architecture, sorted. */
export function listModels(): string[] {
  return [...factories.keys()].sort();
}

/** Builds one student by registry name. */
export function createModel(name: string, options: ModelOptions): Student {
  const factory = factories.get(name);
  if (!factory) {
    throw new Error(`unknown architecture '${name}'${didYouMean(name, listModels())}. Known: ${listModels().join(', ')}`);
  }
  return factory(options);
}

/**
 * The networks of a cohort: `architectures` is one name repeated `numberNet` times, or a
 * comma-separated list with one name per network (then numberNet must match or be omitted).
 */
export function createCohort(architectures: string, numberNet: number | undefined, options: ModelOptions): Student[] {
  return cohortArchitectures(architectures, numberNet).map((name) => createModel(name, options));
}

/** The architecture of each network of a cohort: `--arch a` × `--number-net`, or the list `a,b,…`. */
export function cohortArchitectures(architectures: string, numberNet: number | undefined): string[] {
  const names = architectures.split(',').map((name) => name.trim()).filter((name) => name.length > 0);
  if (names.length === 0) throw new Error('--arch: no architecture given');
  let list: string[];
  if (names.length === 1) list = new Array<string>(numberNet ?? 1).fill(names[0]!);
  else {
    if (numberNet !== undefined && numberNet !== names.length) {
      throw new Error(`--number-net ${numberNet} does not match the ${names.length} architectures in --arch ${architectures}`);
    }
    list = names;
  }
  if (list.length < 1) throw new Error('--number-net must be at least 1');
  return list;
}

export { register as registerModel };
