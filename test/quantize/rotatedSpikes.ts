import { RandomizedHadamard } from '../../src/rotation/randomizedHadamard.js';

/**
 * A column of n entries that the rotation of `seed` turns into a spike of 1.02 at `at` on a constant
 * 0.02 (a universal code stores such a column shifted in its pair form: its largest c is far above
 * the int8 pair's range), or into the constant `flat` alone with `at` null: the adversaries of the
 * pair product's rounding and dropped term (test/quantize/universalPairs.test.ts,
 * test/gpu/pairMatmul.test.ts).
 */
export function rotatedSpikeOnConstant(n: number, seed: number, at: number | null, flat = 0.02): Float32Array {
  const rotated = new Float32Array(n).fill(flat);
  if (at !== null) rotated[at] = 1 + flat;
  return new RandomizedHadamard(n, seed).inverse(rotated);
}
