// The `lmcl` command line (bin/lmcl.js imports this file from dist/).
import { Command } from 'commander';
import '../index.js';
import '../models/index.js';
import { trainCommand } from './train.js';
import { evalCommand, exportCommand, infoCommand, plotCommand } from './commands.js';
import { profileCommand } from './profile.js';

export function buildProgram(): Command {
  const program = new Command('lmcl')
    .description('train cohorts of image classifiers (baseline, DML; MCL/L-MCL to come) on the lmcl tensor engine')
    .showHelpAfterError();
  program.addCommand(trainCommand());
  program.addCommand(evalCommand());
  program.addCommand(exportCommand());
  program.addCommand(plotCommand());
  program.addCommand(infoCommand());
  program.addCommand(profileCommand());
  return program;
}

export async function main(argv: readonly string[] = process.argv): Promise<void> {
  try {
    await buildProgram().parseAsync([...argv]);
  } catch (error) {
    process.stderr.write(`lmcl: ${error instanceof Error ? error.message : String(error)}\n`);
    if (process.env.LMCL_DEBUG && error instanceof Error && error.stack) process.stderr.write(`${error.stack}\n`);
    process.exitCode = 1;
  }
}
