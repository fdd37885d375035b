import { check, describeValue } from '../errors.js';

/**
 * Empirical (plug-in) entropy in bits per symbol of a histogram: `H = −Σ pᵢ·log2 pᵢ` with
 * `pᵢ = countᵢ / N`. It is the rate an ideal entropy coder fitted to this very data would reach, the
 * number the README's tables report next to the stored rate (e.g. the ladder count T, WaterSIC's integers).
 * Empty bins contribute nothing. Counts may be non-integer weights but must be finite and ≥ 0, and
 * at least one must be positive.
 *
 * Computed term by term, `Σ pᵢ·log2(1/pᵢ)` (every term ≥ 0, so nothing cancels); for `pᵢ > ½` the
 * logarithm is `log1p(−qᵢ)` with `qᵢ = (N − cᵢ)/N`, which stays accurate when one symbol dominates
 * (e.g. counts `[10¹⁵, 1]`).
 *
 * @example
 * empiricalEntropy([1, 1, 1, 1]); // 2
 * empiricalEntropy([5, 0, 0]);    // 0
 */
export function empiricalEntropy(counts: ArrayLike<number>): number {
  check(counts !== null && typeof counts === 'object' && typeof counts.length === 'number', 'counts must be an array of numbers');
  let largest = 0;
  for (let i = 0; i < counts.length; i++) {
    const c = counts[i] as number;
    check(
      typeof c === 'number' && Number.isFinite(c) && c >= 0,
      () => `counts[${i}] must be a finite non-negative number, got ${describeValue(c)}`,
    );
    largest = Math.max(largest, c);
  }
  check(largest > 0, 'empiricalEntropy needs at least one positive count');
  // Counts whose sum could overflow (the sum is at most length × largest: 2^24 counts of 2^1000 did,
  // and gave NaN) are scaled by a power of two (exact, so the entropy is the same) to at most 1 each.
  const scale = largest * counts.length > 2 ** 1000 ? 2 ** -Math.ceil(Math.log2(largest)) : 1;
  let total = 0;
  for (let i = 0; i < counts.length; i++) total += (counts[i] as number) * scale;
  let entropy = 0;
  for (let i = 0; i < counts.length; i++) {
    const c = (counts[i] as number) * scale;
    if (c === 0) continue;
    const p = c / total;
    // −log2 p; near p = 1 through log1p of the (exact, for integer counts) complement.
    const minusLog2 = p <= 0.5 ? -Math.log2(p) : -Math.log1p(-(total - c) / total) / Math.LN2;
    entropy += p * minusLog2;
  }
  return entropy;
}

/**
 * Counts how often each distinct value occurs in `symbols` (finite numbers, e.g. integer codes).
 * `0` and `−0` count as the same symbol.
 */
export function symbolCounts(symbols: ArrayLike<number>): Map<number, number> {
  check(
    symbols !== null && typeof symbols === 'object' && typeof symbols.length === 'number',
    'symbols must be an array of numbers',
  );
  const counts = new Map<number, number>();
  for (let i = 0; i < symbols.length; i++) {
    const s = symbols[i] as number;
    check(typeof s === 'number' && Number.isFinite(s), () => `symbols[${i}] must be a finite number, got ${describeValue(s)}`);
    counts.set(s, (counts.get(s) ?? 0) + 1);
  }
  return counts;
}

/**
 * Empirical entropy in bits per symbol of a sequence of symbols: the histogram of its distinct
 * values fed to {@link empiricalEntropy}.
 *
 * @example
 * entropyOfSymbols([0, 1, 0, 1]);       // 1
 * entropyOfSymbols(new Int32Array(10)); // 0
 */
export function entropyOfSymbols(symbols: ArrayLike<number>): number {
  const counts = symbolCounts(symbols);
  check(counts.size > 0, 'entropyOfSymbols needs at least one symbol');
  return empiricalEntropy([...counts.values()]);
}
