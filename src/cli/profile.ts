// `lmcl profile`: times every kernel of a few training steps on synthetic batches of a dataset's
// shape (train/profile.ts) and prints the per-op table, or JSON with --json.
import { Command, Option } from 'commander';
import { integer } from './parse.js';
import { setNumThreads } from '../runtime.js';
import { methodNames } from '../losses/registry.js';
import { profileTraining, SYNTHETIC_SHAPES } from '../train/profile.js';
import { formatReport, reportJson } from '../profiler/report.js';

export function profileCommand(): Command {
  return new Command('profile')
    .description('time every kernel of N training steps of a cohort on synthetic data: calls, ms, share of the step, GFLOP/s and % of the measured FMA peak, GB/s')
    .option('--arch <names>', 'architecture (or a comma-separated cohort)', 'resnet32')
    .addOption(new Option('--method <name>', 'training method').choices(methodNames()).default('mcl'))
    .option('--number-net <n>', 'networks in the cohort', integer('--number-net', 1), 2)
    .option('--batch-size <n>', 'batch size', integer('--batch-size', 1), 128)
    .option('--steps <n>', 'profiled steps', integer('--steps', 1), 5)
    .option('--warmup <n>', 'unprofiled steps first', integer('--warmup'), 2)
    .addOption(new Option('--dataset <name>', 'image shape and classes of the synthetic batches').choices(Object.keys(SYNTHETIC_SHAPES)).default('cifar100'))
    .option('--threads <n>', 'native CPU threads (default: LMCL_NUM_THREADS or the core count)', integer('--threads', 1))
    .addOption(new Option('--device <device>', 'where the cohort, the method and the batch live (cuda: the step is synchronised at its end; per-op times are then host-side launch times)').choices(['cpu', 'cuda']).default('cpu'))
    .option('--json', 'print the report as JSON')
    .showHelpAfterError()
    .action((options: { arch: string; method: string; numberNet: number; batchSize: number; steps: number; warmup: number; dataset: string; threads?: number; json?: boolean; device: 'cpu' | 'cuda' }) => {
      if (options.threads) setNumThreads(options.threads);
      const report = profileTraining({
        arch: options.arch, method: options.method, numberNet: options.numberNet, batchSize: options.batchSize,
        steps: options.steps, warmup: options.warmup, dataset: options.dataset, device: options.device,
      });
      process.stdout.write(`${options.json ? reportJson(report) : formatReport(report)}\n`);
    });
}
