// Parsers for numeric flag values. Number('') and Number('  ') are 0, so an empty value (an unset
// `$LR` in a script: `--lr ''`) would silently become 0; every parser refuses blank text first.
import { InvalidArgumentError } from 'commander';

function nonBlank(name: string, value: string, expected: string): string {
  if (value.trim() === '') throw new InvalidArgumentError(`${name} expects ${expected}, got an empty value`);
  return value;
}

export function integer(name: string, min = 0) {
  return (value: string): number => {
    const parsed = Number(nonBlank(name, value, `an integer ≥ ${min}`));
    if (!Number.isSafeInteger(parsed) || parsed < min) throw new InvalidArgumentError(`${name} expects an integer ≥ ${min}, got '${value}'`);
    return parsed;
  };
}

export function number(name: string) {
  return (value: string): number => {
    const parsed = Number(nonBlank(name, value, 'a number'));
    if (!Number.isFinite(parsed)) throw new InvalidArgumentError(`${name} expects a number, got '${value}'`);
    return parsed;
  };
}

/** Comma- or space-separated epochs; repeated flags add up. An empty entry ('150,,225') is refused. */
export function integerList(name: string) {
  return (value: string, previous: number[] | undefined): number[] => {
    const entries = nonBlank(name, value, 'epochs, e.g. 150,225').trim().split(/\s*,\s*|\s+/);
    const parsed = entries.map((entry) => (entry === '' ? Number.NaN : Number(entry)));
    if (parsed.some((v) => !Number.isSafeInteger(v) || v < 0)) throw new InvalidArgumentError(`${name} expects epochs, e.g. 150,225, got '${value}'`);
    return [...(previous ?? []), ...parsed];
  };
}
