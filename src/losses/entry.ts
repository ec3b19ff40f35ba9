// The shape of one registry entry: plain data (name, description, options, which options must
// match on resume) plus a factory. defineMethod() only helps TypeScript infer the option types,
// so `create` receives `{ kdT: number }` for `options: { kdT: numberOption(...) }`.
import type { Method, MethodContext } from './method.js';
import type { MethodOptions, OptionValues } from './options.js';

export interface MethodEntry<O extends MethodOptions = MethodOptions> {
  /** The --method name. */
  readonly name: string;
  /** One line for --help. */
  readonly description: string;
  /** Options by config key (the camelCase of the flag). */
  readonly options: O;
  /** Option keys that define the trajectory: a resumed run must have the checkpoint's values. */
  readonly resumeKeys: readonly (keyof O & string)[];
  /** The --sampler when none is given (contrastive methods: 'm-per-class', the reference's two images per class); default 'shuffle'. */
  readonly defaultSampler?: 'shuffle' | 'm-per-class';
  /** --auxiliary when not given (L-MCL contrasts the auxiliary stages); default false. */
  readonly defaultAuxiliary?: boolean;
  create(context: MethodContext<OptionValues<O>>): Method;
}

export function defineMethod<O extends MethodOptions>(entry: MethodEntry<O>): MethodEntry<O> {
  return entry;
}
