// A method's options: plain data (flag, description, default) plus two functions (parse the
// command-line text, validate a value from a flag or a config file). The CLI builds its flags from
// them, resolveTrainConfig fills and checks them, the resume check reads which must match.
// Option values live flat in the training config under their key (e.g. `kdT` for `--kd-T`), as
// every other option does, so config files and config.json look the same for every option.

export type OptionValue = number | boolean | string;

export interface MethodOption<T extends OptionValue = OptionValue> {
  /** The command-line flag, e.g. '--kd-T'; the config key is its camelCase ('kdT'). */
  readonly flag: string;
  readonly description: string;
  readonly default: T;
  /** Placeholder in --help ('<x>'); absent for boolean switches, which take no value. */
  readonly valueName?: string;
  /** Parses the text after the flag; throws an Error naming the flag. */
  parse(text: string): T;
  /** Checks a value from a config file or a parsed flag and returns it; throws naming the flag. */
  validate(value: unknown): T;
}

export type MethodOptions = Readonly<Record<string, MethodOption>>;

/** The typed values of a set of option definitions: `{ kdT: number }` for `{ kdT: MethodOption<number> }`. */
export type OptionValues<O extends MethodOptions> = { readonly [K in keyof O]: O[K] extends MethodOption<infer T> ? T : never };

/** The config key of a flag, as commander names its attribute: '--kd-T' → 'kdT', '--meta-freq' → 'metaFreq'. */
export function optionKey(flag: string): string {
  return flag.replace(/^--/, '').split('-').reduce((key, word) => key + word[0]!.toUpperCase() + word.slice(1));
}

/** A finite number option; `greaterThan` / `atLeast` bound it from below, `atMost` from above. */
export function numberOption(spec: { flag: string; description: string; default: number; greaterThan?: number; atLeast?: number; atMost?: number }): MethodOption<number> {
  const lower = spec.greaterThan !== undefined ? `> ${spec.greaterThan}` : spec.atLeast !== undefined ? `≥ ${spec.atLeast}` : null;
  const bound = [lower, spec.atMost !== undefined ? `≤ ${spec.atMost}` : null].filter((text) => text !== null).join(' and ') || null;
  const validate = (value: unknown): number => {
    const ok = typeof value === 'number' && Number.isFinite(value) &&
      (spec.greaterThan === undefined || value > spec.greaterThan) && (spec.atLeast === undefined || value >= spec.atLeast) &&
      (spec.atMost === undefined || value <= spec.atMost);
    if (!ok) throw new Error(`${spec.flag} must be a finite number${bound ? ` ${bound}` : ''}, got ${String(value)}`);
    return value as number;
  };
  return {
    flag: spec.flag, description: spec.description, default: validate(spec.default), valueName: '<x>', validate,
    parse: (text) => validate(text.trim() === '' ? Number.NaN : Number(text)),
  };
}

/** An integer option ≥ min. */
export function integerOption(spec: { flag: string; description: string; default: number; min: number }): MethodOption<number> {
  const validate = (value: unknown): number => {
    if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < spec.min) {
      throw new Error(`${spec.flag} must be an integer ≥ ${spec.min}, got ${String(value)}`);
    }
    return value;
  };
  return {
    flag: spec.flag, description: spec.description, default: validate(spec.default), valueName: '<n>', validate,
    parse: (text) => validate(text.trim() === '' ? Number.NaN : Number(text)),
  };
}

/** An on/off switch (the flag takes no value; config files give true/false). */
export function booleanOption(spec: { flag: string; description: string; default: boolean }): MethodOption<boolean> {
  const validate = (value: unknown): boolean => {
    if (typeof value !== 'boolean') throw new Error(`${spec.flag} must be true or false, got ${String(value)}`);
    return value;
  };
  return { flag: spec.flag, description: spec.description, default: spec.default, validate, parse: () => true };
}

/** One of a fixed list of words. */
export function choiceOption<T extends string>(spec: { flag: string; description: string; default: T; choices: readonly T[] }): MethodOption<T> {
  const validate = (value: unknown): T => {
    if (typeof value !== 'string' || !(spec.choices as readonly string[]).includes(value)) {
      throw new Error(`${spec.flag} must be one of ${spec.choices.join(', ')}, got ${value === '' ? "''" : String(value)}`);
    }
    return value as T;
  };
  return { flag: spec.flag, description: `${spec.description} (${spec.choices.join(' | ')})`, default: validate(spec.default), valueName: '<name>', validate, parse: validate };
}
