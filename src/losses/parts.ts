// The named parts of one step's loss ('ce', 'ce/net0', 'kd', 'total', ...), kept as device
// scalars so the step never waits on a host read. The trainer reads the parts of many steps with
// one download per log interval. A key may receive several scalars: its value is their sum,
// taken on the host in float64 in the order they were added — the same arithmetic as summing
// `item()`s in the step, so logged numbers do not depend on when they were read.
import { keep } from '../tensor/scope.js';
import type { Tensor } from '../tensor/tensor.js';

export class LossParts {
  private readonly terms = new Map<string, Tensor[]>();

  /** Records `value` (a one-element tensor) under `key`. Keeps a detached view: no graph is held. */
  add(key: string, value: Tensor): this {
    if (value.size !== 1) throw new Error(`LossParts.add('${key}'): expected a one-element tensor, got shape [${value.shape.join(', ')}]`);
    // keep(): the view outlives the step's tidy scope; this object owns it until dispose().
    const view = keep(value.detach());
    const list = this.terms.get(key);
    if (list) list.push(view);
    else this.terms.set(key, [view]);
    return this;
  }

  has(key: string): boolean {
    return this.terms.has(key);
  }

  keys(): string[] {
    return [...this.terms.keys()];
  }

  /** Every recorded scalar in a fixed order (key by key, in insertion order): what a batched read downloads. */
  tensors(): Tensor[] {
    return [...this.terms.values()].flat();
  }

  /** Values from `downloaded` (one number per tensors() entry, in that order), summed per key in float64. */
  valuesFrom(downloaded: ArrayLike<number>, offset = 0): Record<string, number> {
    const values: Record<string, number> = {};
    let at = offset;
    for (const [key, list] of this.terms) {
      let total = 0;
      for (let k = 0; k < list.length; k += 1) total += downloaded[at + k]!;
      values[key] = total;
      at += list.length;
    }
    return values;
  }

  /** Reads every part now (one download per scalar): for tests and tools; the trainer batches reads. */
  values(): Record<string, number> {
    return this.valuesFrom(this.tensors().map((t) => t.item()));
  }

  dispose(): void {
    for (const list of this.terms.values()) for (const t of list) t.dispose();
    this.terms.clear();
  }
}
