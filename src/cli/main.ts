// The `lmcl` command line (bin/lmcl.js imports this file from dist/).
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command } from 'commander';
import { methodNames } from '../losses/registry.js';
import '../index.js';
import '../models/index.js';
import { trainCommand } from './train.js';
import { evalCommand, exportCommand, infoCommand, plotCommand } from './commands.js';
import { profileCommand } from './profile.js';

/** The version in lmcl's package.json (found above this file: src/cli/ when run by tests, dist/src/cli/ when installed). */
export function packageVersion(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const file = path.join(dir, 'package.json');
    if (fs.existsSync(file)) {
      const manifest = JSON.parse(fs.readFileSync(file, 'utf8')) as { name?: string; version?: string };
      if (manifest.name === 'lmcl' && typeof manifest.version === 'string') return manifest.version;
    }
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error(`lmcl internal: no package.json of lmcl above ${fileURLToPath(import.meta.url)}`);
    dir = parent;
  }
}

export function buildProgram(): Command {
  const program = new Command('lmcl')
    .description(`train cohorts of image classifiers (${methodNames().join(', ')}) on the lmcl tensor engine`)
    .version(packageVersion(), '-V, --version', 'print the lmcl version')
    .showHelpAfterError("run 'lmcl --help' for the commands");
  program.addCommand(trainCommand());
  program.addCommand(evalCommand());
  program.addCommand(exportCommand());
  program.addCommand(plotCommand());
  program.addCommand(infoCommand());
  program.addCommand(profileCommand());
  // A mistyped flag gets the error (with commander's "Did you mean") and one line pointing to
  // --help, not the whole help text, which pushed the error itself off the screen.
  for (const command of program.commands) command.showHelpAfterError(`run 'lmcl ${command.name()} --help' for the options`);
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
