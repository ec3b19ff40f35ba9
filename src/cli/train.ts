// `lmcl train`: flags (mirroring the reference scripts' names where they exist), --config FILE
// (JSON/YAML, flag names in kebab- or camelCase; flags given on the command line override it).
import { Command, Option, InvalidArgumentError } from 'commander';
import { integer, integerList, number } from './parse.js';
import { readConfigFile } from '../io/config_file.js';
import { defaultTrainConfig, normaliseKey, sharedMethodOptions, unknownOptionMessage } from '../train/config.js';
import { didYouMean } from '../suggest.js';
import { methods, methodNames } from '../losses/registry.js';
import { train } from '../train/trainer.js';
import { isRunRecord, optionsFromRunRecord } from '../train/rundir.js';
import { listModels } from '../models/registry.js';
import { DATASET_NAMES } from '../data/datasets.js';

const d = defaultTrainConfig;

function methodName(value: string): string {
  if (methodNames().includes(value)) return value;
  throw new InvalidArgumentError(`Allowed choices are ${methodNames().join(', ')}.${didYouMean(value, methodNames())}`);
}

/** Option key (commander's camelCase attribute) → config key. */
const trainOptions: Option[] = [
  new Option('--arch <names>', `architecture, or a comma-separated list for a heterogeneous cohort (${'see `lmcl info`'})`).default(d.arch),
  new Option('--number-net <n>', 'networks in the cohort (with one --arch name)').default(d.numberNet).argParser(integer('--number-net', 1)),
  // choices() lists the methods in --help; the parser after it adds a suggestion to the error.
  new Option('--method <name>', 'training method (listed below)').choices(methodNames()).default(d.method).argParser(methodName),
  new Option('--epochs <n>', 'epochs').default(d.epochs).argParser(integer('--epochs', 1)),
  new Option('--batch-size <n>', 'training batch size').default(d.batchSize).argParser(integer('--batch-size', 1)),
  new Option('--eval-batch-size <n>', 'evaluation batch size').default(d.evalBatchSize).argParser(integer('--eval-batch-size', 1)),
  new Option('--lr <x>', 'initial learning rate (--init-lr in the reference)').default(d.lr).argParser(number('--lr')),
  new Option('--weight-decay <x>', 'SGD weight decay').default(d.weightDecay).argParser(number('--weight-decay')),
  new Option('--momentum <x>', 'SGD momentum').default(d.momentum).argParser(number('--momentum')),
  new Option('--no-nesterov', 'plain momentum instead of Nesterov'),
  new Option('--lr-type <type>', 'schedule, set at each epoch start: cosine lr·½(1+cos(π·e/E)), or multistep').choices(['cosine', 'multistep']).default(d.lrType),
  new Option('--milestones <epochs>', 'multistep epochs where lr ×= gamma, e.g. 150,225').argParser(integerList('--milestones')).default(d.milestones, 'none'),
  new Option('--gamma <x>', 'multistep factor').default(d.gamma).argParser(number('--gamma')),
  new Option('--warmup-epochs <n>', 'linear warm-up epochs before the schedule').default(d.warmupEpochs).argParser(integer('--warmup-epochs')),
  new Option('--seed <n>', 'seed of initialisation, sampling and augmentation (--manual_seed in the reference)').default(d.seed).argParser(integer('--seed')),
  new Option('--dataset <name>', 'dataset').choices([...DATASET_NAMES]).default(d.dataset),
  new Option('--data <dir>', "dataset folder; 'bundled' = the Fashion-MNIST sample in the repo. Default: the bundled sample when neither --dataset nor --data is given, else the dataset's system folder").default(null, 'see text'),
  new Option('--image-size <n>', 'input size (imagefolder: resize/crop side)').default(null, "the dataset's").argParser(integer('--image-size', 1)),
  new Option('--decoder <name>', 'imagefolder: who decodes the files (auto: sharp when installed and --workers ≥ 1, else js: pngjs / jpeg-js)').choices(['auto', 'js', 'sharp']).default(d.decoder),
  new Option('--sampler <kind>', 'training batch sampler').choices(['shuffle', 'm-per-class'])
    .default(d.sampler, `shuffle; m-per-class for ${methods.filter((entry) => entry.defaultSampler === 'm-per-class').map((entry) => entry.name).join(', ')}`),
  new Option('--flip', 'random horizontal flips (default: on, except for mnist digits)'),
  new Option('--no-flip', 'no horizontal flips'),
  new Option('--limit-train <n>', 'use only the first N training images (0 = all)').default(d.limitTrain).argParser(integer('--limit-train')),
  new Option('--train-per-class <n>', 'use only the first N training images of each class, a class-balanced subset (0 = all; before --limit-train)')
    .default(d.trainPerClass).argParser(integer('--train-per-class')),
  new Option('--limit-test <n>', 'use only the first N test images (0 = all)').default(d.limitTest).argParser(integer('--limit-test')),
  new Option('--auxiliary', 'build the auxiliary (L-MCL) heads; their CE is trained and each head is evaluated')
    .default(d.auxiliary, `off; on for ${methods.filter((entry) => entry.defaultAuxiliary).map((entry) => entry.name).join(', ')}`),
  new Option('--out <dir>', 'parent folder of run directories (--checkpoint-dir in the reference)').default(d.out),
  new Option('--name <name>', 'run directory name').default(null, '<method>_<arch>x<N>_<dataset>_seed<seed>'),
  new Option('--resume <auto|DIR>', "continue a run: 'auto' = this config's latest run with a checkpoint (fresh start if none), or a run/checkpoint directory").default(null, 'no'),
  new Option('--init-from <files>', 'start from saved weights instead of random init: a .safetensors state dict (lmcl export, torch + safetensors; the authors\' names load through the alias table) for every network, or a comma-separated list, one per network (ignored when resuming)').default(null, 'no'),
  new Option('--init-non-strict', '--init-from loads the tensors whose names and shapes fit and keeps the others initialised (e.g. another number of classes); the log lists what was not loaded'),
  new Option('--device <device>', 'compute device').choices(['cpu', 'cuda']).default(d.device),
  new Option('--threads <n>', 'native CPU threads (0 = LMCL_NUM_THREADS or the core count)').default(d.threads).argParser(integer('--threads')),
  new Option('--workers <n>', 'data worker threads (0 = prepare batches on the main thread)').default(d.workers).argParser(integer('--workers')),
  new Option('--keep-last <n>', 'checkpoints to keep (plus best; 0 = keep all)').default(d.keepLast).argParser(integer('--keep-last')),
  new Option('--save-every <n>', 'checkpoint at the end of every N-th epoch and of the last (best is written at every best epoch)').default(d.saveEvery).argParser(integer('--save-every', 1)),
  new Option('--eval-every <n>', 'evaluate on the test split after every N-th epoch and after the last (1 = every epoch)').default(d.evalEvery).argParser(integer('--eval-every')),
  new Option('--save-every-steps <n>', 'also checkpoint every N steps, mid-epoch included (0 = only at epoch ends)').default(d.saveEverySteps).argParser(integer('--save-every-steps')),
  new Option('--log-interval <s>', 'seconds between progress lines when not on a TTY').default(d.logInterval).argParser(number('--log-interval')),
  new Option('--quiet', 'no progress line or console log (files are still written)'),
  new Option('--profile <n>', 'time every kernel of N steps after 2 warm-up steps, log the table, write profile.json, then go on training unprofiled').argParser(integer('--profile', 1)),
  new Option('--config <file>', 'JSON/YAML file of options (kebab- or camelCase keys); command-line flags override it'),
];

/** The methods' own options, one flag each (from the registry; a flag shared by methods appears once). */
function methodFlagOptions(): Option[] {
  return [...sharedMethodOptions.values()].map(({ option, methods: users }) => {
    const description = `${option.description} [${users.join(', ')}]`;
    if (option.valueName === undefined) return new Option(option.flag, description);
    return new Option(`${option.flag} ${option.valueName}`, description).default(option.default).argParser((text: string) => {
      try {
        return option.parse(text);
      } catch (error) {
        throw new InvalidArgumentError((error as Error).message);
      }
    });
  });
}

/**
 * Merges config file < explicit flags into the partial config for resolveTrainConfig, plus
 * `quiet` (a flag of the command, not of the training config, so a config file may set it too).
 * File keys are normalised first: one option spelt twice in the file ('limit-train' and
 * 'limit_train') is an error, and a flag overrides the file whatever the file's spelling.
 */
export function collectTrainConfig(command: Command): { config: Record<string, unknown>; quiet: boolean; notes: string[] } {
  const values = command.opts<Record<string, unknown>>();
  const partial: Record<string, unknown> = {};
  let quiet = values.quiet === true;
  let notes: string[] = [];
  if (typeof values.config === 'string') {
    const file = values.config;
    const spelling = new Map<string, string>();
    let fileValues = readConfigFile(file);
    // A run's own config.json (reproduce this run): its options, without the trainer's records.
    if (isRunRecord(fileValues)) {
      const flagged = new Set(Object.keys(values).filter((key) => command.getOptionValueSource(key) === 'cli'));
      ({ options: fileValues, notes } = optionsFromRunRecord(fileValues, file, flagged));
    }
    for (const [rawKey, value] of Object.entries(fileValues)) {
      const key = normaliseKey(rawKey);
      const earlier = spelling.get(key);
      if (earlier !== undefined) throw new Error(`config file '${file}': '${earlier}' and '${rawKey}' both set ${key}: give it once`);
      spelling.set(key, rawKey);
      if (key === 'quiet') {
        if (typeof value !== 'boolean') throw new Error(`config file '${file}': quiet must be true or false, got ${JSON.stringify(value)}`);
        if (command.getOptionValueSource('quiet') !== 'cli') quiet = value;
        continue;
      }
      if (key === 'config') throw new Error(`config file '${file}': 'config' cannot name another config file`);
      if (!(key in defaultTrainConfig)) throw new Error(`config file '${file}': ${unknownOptionMessage(rawKey, ['quiet'])}`);
      partial[key] = value;
    }
  }
  for (const [key, value] of Object.entries(values)) {
    if (key === 'config' || key === 'quiet' || key === 'profile') continue; // command flags, not training config
    const source = command.getOptionValueSource(key);
    if (source === 'cli' || source === 'env') partial[key] = value;
  }
  return { config: partial, quiet, notes };
}

export function trainCommand(): Command {
  const command = new Command('train')
    .description(`train a cohort (${methodNames().join(', ')}) and write a run directory: config.json, metrics.jsonl, summary.csv, train.log, checkpoints/`);
  for (const option of [...trainOptions, ...methodFlagOptions()]) command.addOption(option);
  command.addHelpText('after', `
Methods:
${methods.map((entry) => `  ${entry.name.padEnd(10)} ${entry.description}`).join('\n')}
Architectures: ${listModels().join(', ') || '(none registered)'}
With no arguments: an L-MCL cohort of two resnet14 with auxiliary heads on the bundled Fashion-MNIST sample, 12 epochs (README: main job, ~10 min on 2 cores).
Exit codes: 0 done, 130 interrupted (Ctrl-C; a checkpoint was saved), 3 non-finite loss, 1 error.`);
  command.action(async () => {
    const { config, quiet, notes } = collectTrainConfig(command);
    if (!quiet) for (const note of notes) process.stderr.write(`lmcl train: ${note}\n`);
    const profileSteps = command.opts<{ profile?: number }>().profile;
    const result = await train({ config, console: quiet ? null : undefined, profileSteps });
    if (result.status === 'nonfinite') process.stderr.write(`lmcl train: ${result.message}\n`);
    for (const net of result.networks) net.dispose();
    result.method.dispose();
    process.exitCode = result.exitCode;
  });
  return command;
}
