// `lmcl train --init-from FILE[,FILE...]`: start a cohort from saved weights (an `lmcl export`,
// a torch state dict saved with safetensors, the authors' names through src/io/aliases.ts)
// instead of the architectures' random init. One file initialises every network; a list gives
// one file per network, in cohort order. Loading is strict unless --init-non-strict.
import fs from 'node:fs';
import { describeLoadProblems, loadStateDictInto, type LoadStateDictFileReport } from '../io/load_state_dict.js';
import type { Student } from '../models/types.js';

function summary(report: LoadStateDictFileReport): string {
  const parts = [`${report.loaded} tensors`];
  if (report.renamed.length > 0) {
    const [foreign, ours] = report.renamed[0]!;
    parts.push(`${report.renamed.length} renamed by the alias table (e.g. ${foreign} → ${ours})`);
  }
  const converted = Object.entries(report.converted).map(([dtype, count]) => `${count} from ${dtype}`);
  if (converted.length > 0) parts.push(`converted to float32: ${converted.join(', ')}`);
  return parts.join('; ');
}

/** The file count fits the cohort and every file exists (checked before anything is built or written). */
export function checkInitFiles(files: readonly string[], networkCount: number): void {
  if (files.length !== 1 && files.length !== networkCount) {
    throw new Error(`--init-from: ${files.length} files for a cohort of ${networkCount} networks (give one file for every network, or exactly one per network)`);
  }
  for (const file of files) {
    if (!fs.existsSync(file)) throw new Error(`--init-from: ${file} does not exist`);
    if (!fs.statSync(file).isFile()) throw new Error(`--init-from: ${file} is not a file (expected a .safetensors state dict)`);
  }
}

/**
 * Loads the --init-from files into the networks; returns the log lines (what was loaded, and in a
 * non-strict load what was not). Errors name the network and the file.
 */
export function initialiseNetworks(networks: readonly Student[], files: readonly string[], strict: boolean): string[] {
  checkInitFiles(files, networks.length);
  const lines: string[] = [];
  networks.forEach((network, index) => {
    const file = files.length === 1 ? files[0]! : files[index]!;
    let report: LoadStateDictFileReport;
    try {
      report = loadStateDictInto(network, file, { strict });
    } catch (error) {
      const hint = strict && /does not fit/.test((error as Error).message) ? '\n(--init-non-strict loads the tensors that fit and keeps the others initialised)' : '';
      throw new Error(`--init-from: net${index} (${network.architecture}): ${(error as Error).message}${hint}`, { cause: error });
    }
    lines.push(`net${index} (${network.architecture}) initialised from ${file}: ${summary(report)}`);
    const recorded = report.metadata.architecture;
    if (recorded !== undefined && recorded !== network.architecture) lines.push(`  note: ${file} says architecture ${recorded}`);
    for (const problem of describeLoadProblems(report)) lines.push(`  not loaded (non-strict): ${problem}`);
  });
  return lines;
}
