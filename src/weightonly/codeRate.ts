import { check, describeValue } from '../errors.js';
import { empiricalEntropy } from '../theory/entropy.js';

/**
 * Empirical entropy, in bits per symbol, of one column's integer codes (the codes of one input
 * feature across all outputs, which share one step). Counted in an array over [min, max] when that
 * range is small, else in a Map.
 */
export function columnCodeEntropy(codes: ArrayLike<number>): number {
  check(codes.length > 0, 'columnCodeEntropy needs at least one code');
  let min = Infinity;
  let max = -Infinity;
  for (let j = 0; j < codes.length; j++) {
    const z = codes[j] as number;
    if (z < min) min = z;
    if (z > max) max = z;
  }
  if (min === max) return 0;
  const range = max - min + 1;
  if (range <= 4 * codes.length + 64) {
    const counts = new Float64Array(range);
    for (let j = 0; j < codes.length; j++) {
      const index = (codes[j] as number) - min;
      counts[index] = (counts[index] as number) + 1;
    }
    return empiricalEntropy(counts);
  }
  const counts = new Map<number, number>();
  for (let j = 0; j < codes.length; j++) {
    const z = codes[j] as number;
    counts.set(z, (counts.get(z) ?? 0) + 1);
  }
  return empiricalEntropy([...counts.values()]);
}

/**
 * The code rate of a weight matrix, in bits per entry: the mean over the n input features of the
 * empirical entropy of that feature's `outputs` codes. Each input feature i has its own step (the
 * waterfilling gives columns unequal rates), so each gets its own entropy coder; this is what an
 * ideal adaptive coder fitted to each column would spend, without the cost of describing its model.
 * `codes` is in the stored layout: the code of output j, input i at j·n + i.
 */
export function meanColumnEntropy(codes: Int32Array, n: number, outputs: number): number {
  check(codes.length === n * outputs, () => `expected n·outputs = ${n * outputs} codes, got ${describeValue(codes.length)}`);
  const column = new Int32Array(outputs);
  let sum = 0;
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < outputs; j++) column[j] = codes[j * n + i] as number;
    sum += columnCodeEntropy(column);
  }
  return sum / n;
}
