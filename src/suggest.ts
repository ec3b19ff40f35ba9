// "Did you mean ...?" for mistyped names (an --arch or --method value, a config-file key).
// Distance: optimal string alignment (Levenshtein plus adjacent transpositions, so 'dlm' is one
// edit from 'dml'), compared case-insensitively ('ResNet8' finds 'resnet8').

/** Edit distance between a and b (insertions, deletions, substitutions, adjacent swaps). */
export function editDistance(a: string, b: string): number {
  const rows = a.length + 1;
  const columns = b.length + 1;
  const d: number[][] = Array.from({ length: rows }, (_, i) => Array.from({ length: columns }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  for (let i = 1; i < rows; i += 1) {
    for (let j = 1; j < columns; j += 1) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let best = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) best = Math.min(best, d[i - 2]![j - 2]! + 1);
      d[i]![j] = best;
    }
  }
  return d[a.length]![b.length]!;
}

/**
 * The candidates nearest to `input` (case-insensitive), when near enough to be a typo: at most
 * 40% of the input's length in edits (at least one). Ties are all returned, in candidate order.
 */
export function closestNames(input: string, candidates: readonly string[]): string[] {
  const wanted = input.toLowerCase();
  const limit = Math.max(1, Math.floor(wanted.length * 0.4));
  let best = Infinity;
  let found: string[] = [];
  for (const candidate of candidates) {
    const distance = editDistance(wanted, candidate.toLowerCase());
    if (distance > limit || distance > best) continue;
    if (distance < best) {
      best = distance;
      found = [];
    }
    if (!found.includes(candidate)) found.push(candidate);
  }
  return found;
}

/** " (did you mean 'x'?)", " (did you mean 'x' or 'y'?)", or '' when nothing is close. */
export function didYouMean(input: string, candidates: readonly string[]): string {
  const found = closestNames(input, candidates);
  if (found.length === 0) return '';
  const quoted = found.map((name) => `'${name}'`);
  const list = quoted.length === 1 ? quoted[0]! : `${quoted.slice(0, -1).join(', ')} or ${quoted.at(-1)!}`;
  return ` (did you mean ${list}?)`;
}
