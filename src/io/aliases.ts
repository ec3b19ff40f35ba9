// The one table of foreign state-dict names: names the authors' PyTorch models (winycg/MCL,
// winycg/L-MCL) give to tensors that lmcl names differently, and the lmcl name each maps to.
// Everything else already matches one to one (lmcl's module trees copy the reference ones).
// loadStateDictInto (load_state_dict.ts) is the only user: a foreign name is renamed only when
// the model has no tensor of that name and the renamed one is a tensor of the model, so a file
// in lmcl's own names is never touched and a rule can never invent a name.
//
// To support another foreign layout, add a row here (and a test in
// test/io/safetensors_interop.test.ts); there is no other place names are translated.

/** One renaming rule. */
export interface NameAlias {
  /** The lmcl architectures (registry names) whose models it applies to. */
  architectures: readonly string[];
  /** The foreign name, anchored (^…$); groups are used by `ours`. */
  foreign: RegExp;
  /** The lmcl name, a String.replace pattern ($1, ...). */
  ours: string;
  /** Which reference model writes the foreign name (for the README and messages). */
  origin: string;
}

const CIFAR_RESNETS = ['resnet8', 'resnet14', 'resnet20', 'resnet32', 'resnet56', 'resnet110'] as const;
const HCGNETS = ['hcgnet_a1', 'hcgnet_a2'] as const;

export const NAME_ALIASES: readonly NameAlias[] = [
  {
    // The plain CIFAR ResNets of the baselines and of MCL call the head `classifier`; L-MCL's
    // ResNet (lmcl_resnet_cifar.py, which lmcl follows) calls it `fc`.
    architectures: CIFAR_RESNETS,
    foreign: /^classifier\.(weight|bias)$/,
    ours: 'fc.$1',
    origin: 'winycg/L-MCL models/resnet_cifar.py, winycg/MCL models/resnet.py (head self.classifier)',
  },
  {
    // lmcl_hcgnet_cifar.py's backbone registers the hybrid blocks, transitions and norm5 at its
    // top level (only conv0 sits under `features`); lmcl keeps hcgnet_cifar.py's layout, where
    // they all sit under `features`, for the backbone with and without auxiliary branches.
    architectures: HCGNETS,
    foreign: /^backbone\.(HybridBlock\d+|Transition\d+|norm5)\.(.+)$/,
    ours: 'backbone.features.$1.$2',
    origin: 'winycg/L-MCL models/lmcl_hcgnet_cifar.py (HCGNet_Auxiliary: backbone.HybridBlock1.*, backbone.Transition1.*, backbone.norm5.*)',
  },
];

/** The rules for one architecture. */
export function aliasesFor(architecture: string): NameAlias[] {
  return NAME_ALIASES.filter((alias) => alias.architectures.includes(architecture));
}

/**
 * The lmcl name of each file name: itself when the model has it, else the first rule of the
 * architecture whose rename the model has, else itself (then it is an unexpected key). Two file
 * names landing on one lmcl name (`classifier.weight` beside `fc.weight`) is an Error: which of
 * them to load would be a guess.
 */
export function resolveNames(fileNames: readonly string[], architecture: string, ownNames: ReadonlySet<string>, source: string): Map<string, string> {
  const rules = aliasesFor(architecture);
  const resolved = new Map<string, string>();
  const claimedBy = new Map<string, string>();
  for (const name of fileNames) {
    let target = name;
    if (!ownNames.has(name)) {
      for (const rule of rules) {
        if (!rule.foreign.test(name)) continue;
        const renamed = name.replace(rule.foreign, rule.ours);
        if (ownNames.has(renamed)) {
          target = renamed;
          break;
        }
      }
    }
    const earlier = claimedBy.get(target);
    if (earlier !== undefined) {
      throw new Error(`${source}: tensors '${earlier}' and '${name}' both map to ${architecture}'s '${target}' (see the alias table in src/io/aliases.ts); remove one`);
    }
    claimedBy.set(target, name);
    resolved.set(name, target);
  }
  return resolved;
}
