// Reading run configuration files: .json, .yaml or .yml.
//
// readConfigFile(path) returns the top-level mapping as a plain object. Errors are Errors naming
// the file and the problem: missing/unreadable file, unknown extension, parse errors with line and
// column (JSON positions are converted to line:column; YAML errors carry their own), duplicate
// YAML keys, several YAML documents in one file, or a top level that is not a mapping (e.g. an
// empty file, a list or a scalar). YAML is parsed with the YAML 1.2 core schema (the `yaml`
// package): `1e-3` is a number, `2024-01-01` stays a string, `yes` stays a string.
import fs from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';

function lineColumn(text: string, position: number): { line: number; column: number } {
  let line = 1;
  let lineStart = 0;
  for (let index = 0; index < position && index < text.length; index += 1) {
    if (text[index] === '\n') {
      line += 1;
      lineStart = index + 1;
    }
  }
  return { line, column: position - lineStart + 1 };
}

function describeValue(value: unknown): string {
  if (value === null || value === undefined) return 'empty';
  if (Array.isArray(value)) return 'a list';
  return `a ${typeof value}`;
}

function parseJson(text: string, file: string): unknown {
  try {
    return JSON.parse(text);
  } catch (error) {
    const message = (error as Error).message;
    // V8 reports "... at position N" (newer versions also "(line L column C)").
    const position = /position (\d+)/.exec(message);
    const where = position && !/line \d+ column \d+/.test(message)
      ? (({ line, column }) => ` (line ${line}, column ${column})`)(lineColumn(text, Number(position[1])))
      : '';
    throw new Error(`config file '${file}': invalid JSON: ${message}${where}`, { cause: error });
  }
}

function parseYaml(text: string, file: string): unknown {
  const document = YAML.parseDocument(text, { prettyErrors: true, uniqueKeys: true });
  if (document.errors.length > 0) {
    const first = document.errors[0]!;
    const position = first.linePos?.[0];
    const location = position ? `line ${position.line}, column ${position.col}: ` : '';
    // prettyErrors appends a code excerpt after the first line; keep the message to one line.
    const message = first.message.split('\n')[0]!.replace(/ at line \d+, column \d+:?$/, '');
    const more = document.errors.length > 1 ? ` (and ${document.errors.length - 1} more error${document.errors.length > 2 ? 's' : ''})` : '';
    throw new Error(`config file '${file}': invalid YAML at ${location}${message}${more}`);
  }
  return document.toJS({ maxAliasCount: 1000 });
}

/**
 * Reads a .json/.yaml/.yml configuration file and returns its top-level mapping.
 * Throws an Error naming the file on any problem (see the file comment).
 */
export function readConfigFile(file: string): Record<string, unknown> {
  const extension = path.extname(file).toLowerCase();
  if (!['.json', '.yaml', '.yml'].includes(extension)) {
    throw new Error(`config file '${file}': unsupported extension '${extension || '(none)'}' (expected .json, .yaml or .yml)`);
  }
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new Error(`config file '${file}' not found`, { cause: error });
    if (code === 'EISDIR') throw new Error(`config file '${file}' is a directory`, { cause: error });
    throw new Error(`config file '${file}': cannot read: ${(error as Error).message}`, { cause: error });
  }
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1); // byte-order mark
  const value = extension === '.json' ? parseJson(text, file) : parseYaml(text, file);
  if (value === null || typeof value !== 'object' || Array.isArray(value) || value instanceof Map) {
    throw new Error(`config file '${file}': the top level must be a mapping of option names to values, got ${describeValue(value)}`);
  }
  return value as Record<string, unknown>;
}
