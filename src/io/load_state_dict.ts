// Loading a bare state dict file (safetensors, any dtype it reads; PyTorch names, or the authors'
// names through the alias table in aliases.ts) into a built model: `lmcl train --init-from` and
// `lmcl eval --weights`.
//
// Strict (the default) means the file and the model hold the same tensors with the same shapes;
// otherwise one Error lists the missing keys (in the model, not in the file), the unexpected keys
// (in the file, not in the model) and the shape mismatches, the first few of each with counts, and
// nothing is written. Non-strict loads every tensor whose name and shape match, leaves the others
// as initialised, and returns the three lists (a file for another number of classes then
// initialises everything but the head). Like torch's load_state_dict(strict=False) for the keys;
// unlike it, a shape mismatch is skipped and reported rather than fatal, since fine-tuning to
// another class count is what a non-strict load is for here.
import type { Module } from '../nn/module.js';
import { formatShape } from '../tensor/tensor.js';
import { resolveNames } from './aliases.js';
import { readSafetensors, type SafetensorsContents, type SafetensorsDtype, type SafetensorsEntry } from './safetensors.js';

export interface LoadStateDictFileOptions {
  /** Require the same tensors with the same shapes (default true). */
  strict?: boolean;
  /** The model's registry name, which selects its alias rules (default: model.architecture). */
  architecture?: string;
}

export interface ShapeMismatch {
  /** The model's name. */
  name: string;
  /** The file's name (differs when an alias renamed it). */
  fileName: string;
  fileShape: number[];
  modelShape: number[];
}

export interface LoadStateDictFileReport {
  file: string;
  /** Tensors copied into the model. */
  loaded: number;
  /** Model tensors the file lacks (left as initialised). */
  missingKeys: string[];
  /** File tensors the model lacks (ignored). */
  unexpectedKeys: string[];
  /** Tensors of both with different shapes (non-strict: left as initialised). */
  shapeMismatches: ShapeMismatch[];
  /** [file name, model name] for every tensor the alias table renamed. */
  renamed: [string, string][];
  /** Stored dtype → count of tensors converted to float32 from it (F32 and num_batches_tracked's I64 are not counted). */
  converted: Partial<Record<SafetensorsDtype, number>>;
  metadata: Record<string, string>;
}

const LISTED = 5;

/** "a", "b", "c", ... and 7 more */
function firstFew(items: readonly string[]): string {
  const shown = items.slice(0, LISTED).join(', ');
  return items.length > LISTED ? `${shown}, ... and ${items.length - LISTED} more` : shown;
}

function describeMismatch(mismatch: ShapeMismatch): string {
  const renamed = mismatch.fileName !== mismatch.name ? ` (file: ${mismatch.fileName})` : '';
  return `${mismatch.name}${renamed}: file ${formatShape(mismatch.fileShape)}, model ${formatShape(mismatch.modelShape)}`;
}

/** The problems of a report as lines (empty when the file fits exactly). */
export function describeLoadProblems(report: LoadStateDictFileReport): string[] {
  const lines: string[] = [];
  if (report.missingKeys.length > 0) lines.push(`${report.missingKeys.length} missing (in the model, not in the file): ${firstFew(report.missingKeys)}`);
  if (report.unexpectedKeys.length > 0) lines.push(`${report.unexpectedKeys.length} unexpected (in the file, not in the model): ${firstFew(report.unexpectedKeys)}`);
  if (report.shapeMismatches.length > 0) {
    lines.push(`${report.shapeMismatches.length} shape mismatch${report.shapeMismatches.length > 1 ? 'es' : ''}: ${firstFew(report.shapeMismatches.map(describeMismatch))}`);
  }
  return lines;
}

/**
 * Loads already-read safetensors contents into `model` (see the file comment). `file` names the
 * source in messages.
 */
export function loadStateDictContents(model: Module, contents: SafetensorsContents, file: string, options: LoadStateDictFileOptions = {}): LoadStateDictFileReport {
  const strict = options.strict ?? true;
  const architecture = options.architecture ?? (model as Module & { architecture?: unknown }).architecture;
  const archName = typeof architecture === 'string' ? architecture : model.typeName;
  const own = model.stateDict();
  const names = resolveNames([...contents.tensors.keys()], archName, new Set(own.keys()), `'${file}'`);

  const incoming = new Map<string, SafetensorsEntry>();
  const renamed: [string, string][] = [];
  const unexpectedKeys: string[] = [];
  const shapeMismatches: ShapeMismatch[] = [];
  const converted: Partial<Record<SafetensorsDtype, number>> = {};
  for (const [fileName, entry] of contents.tensors) {
    const name = names.get(fileName)!;
    const target = own.get(name);
    if (!target) {
      unexpectedKeys.push(fileName);
      continue;
    }
    if (name !== fileName) renamed.push([fileName, name]);
    const sameShape = target.shape.length === entry.shape.length && target.shape.every((extent, axis) => extent === entry.shape[axis]);
    if (!sameShape) {
      shapeMismatches.push({ name, fileName, fileShape: entry.shape, modelShape: target.shape });
      continue;
    }
    const dtype = contents.dtypes.get(fileName) ?? 'F32';
    if (dtype !== 'F32' && !(dtype === 'I64' && name.endsWith('num_batches_tracked'))) converted[dtype] = (converted[dtype] ?? 0) + 1;
    incoming.set(name, entry);
  }
  const missingKeys = [...own.keys()].filter((name) => !incoming.has(name) && !shapeMismatches.some((mismatch) => mismatch.name === name));
  const report: LoadStateDictFileReport = {
    file, loaded: incoming.size, missingKeys, unexpectedKeys, shapeMismatches, renamed, converted, metadata: contents.metadata,
  };
  const problems = describeLoadProblems(report);
  if (strict && problems.length > 0) {
    throw new Error(`'${file}' does not fit ${archName} (strict loading):\n  ${problems.join('\n  ')}`);
  }
  // Names and shapes are checked above, so this copies (strict: false because of the skipped ones).
  model.loadStateDict(incoming, { strict: false });
  return report;
}

/** Reads a safetensors file and loads it into `model` (see the file comment); errors name the file. */
export function loadStateDictInto(model: Module, file: string, options: LoadStateDictFileOptions = {}): LoadStateDictFileReport {
  return loadStateDictContents(model, readSafetensors(file), file, options);
}
