/** Optimal string alignment distance: insertions, deletions, substitutions and adjacent swaps. */
export function editDistance(a: string, b: string): number {
  const rows = a.length + 1;
  const cols = b.length + 1;
  const table: number[] = new Array<number>(rows * cols);
  for (let i = 0; i < rows; i++) table[i * cols] = i;
  for (let j = 0; j < cols; j++) table[j] = j;
  for (let i = 1; i < rows; i++) {
    for (let j = 1; j < cols; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let best = Math.min(table[(i - 1) * cols + j]! + 1, table[i * cols + j - 1]! + 1, table[(i - 1) * cols + j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        best = Math.min(best, table[(i - 2) * cols + j - 2]! + 1);
      }
      table[i * cols + j] = best;
    }
  }
  return table[rows * cols - 1]!;
}

/**
 * The candidate closest to `word`, if it is close enough to be a likely typo. A word that
 * nearly matches the start of a longer candidate counts too ('retry' → 'retries').
 */
export function closestMatch(word: string, candidates: Iterable<string>): string | undefined {
  const lowered = word.toLowerCase();
  const allowed = Math.max(1, Math.floor(word.length / 3));
  let best: string | undefined;
  let bestScore = Infinity;
  for (const candidate of candidates) {
    const target = candidate.toLowerCase();
    let score = editDistance(lowered, target);
    if (score > allowed && lowered.length >= 4 && target.length > lowered.length) {
      const prefixDistance = editDistance(lowered, target.slice(0, lowered.length));
      if (prefixDistance <= allowed) score = prefixDistance + 0.5;
    }
    if (score <= allowed + 0.5 && score < bestScore) {
      best = candidate;
      bestScore = score;
    }
  }
  return best;
}

/** "; did you mean 'x'?" or nothing. */
export function didYouMean(suggestion: string | undefined): string {
  return suggestion === undefined ? '' : `; did you mean '${suggestion}'?`;
}
