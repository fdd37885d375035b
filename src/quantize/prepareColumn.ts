import { check } from '../errors.js';
import type { RandomizedHadamard } from '../rotation/randomizedHadamard.js';
import { absMax, canonicalSum, normalizingExponent } from './columnScaling.js';

/** One column after steps 1–3 of columnScaling.ts, in the power-of-two-scaled domain. */
export interface PreparedColumn {
  /** r: the scaled, centred, rotated column (N entries; only the first n without rotation). */
  readonly rotated: Float32Array;
  /** e: the column was multiplied by 2^e; 0 for an all-zero column. */
  readonly exponent: number;
  /** μ' (in the scaled domain); 0 without centring. */
  readonly scaledMean: number;
}

/**
 * Scales a column by a power of two so that max |x_i| ∈ [1, 2), optionally subtracts its mean, and
 * rotates it. Reuses `scaled` (n entries) and writes the rotated column into `rotated` (N entries).
 */
export function prepareColumn(
  column: Float32Array,
  center: boolean,
  rotation: RandomizedHadamard | null,
  scaled: Float32Array,
  rotated: Float32Array,
): PreparedColumn {
  const n = column.length;
  const amax = absMax(column);
  const exponent = amax === 0 ? 0 : normalizingExponent(amax);
  const factor = 2 ** exponent;
  for (let i = 0; i < n; i++) scaled[i] = (column[i] as number) * factor;
  let scaledMean = 0;
  if (center) {
    scaledMean = Math.fround(canonicalSum(scaled, n, false) * Math.fround(1 / n));
    for (let i = 0; i < n; i++) scaled[i] = (scaled[i] as number) - scaledMean;
  }
  if (rotation) {
    rotation.forward(scaled, rotated);
  } else {
    rotated.set(scaled);
  }
  return { rotated, exponent, scaledMean };
}

/** `value · 2^−exponent` as f32, refusing overflow (a column whose norm exceeds the f32 range). */
export function unscale(value: number, exponent: number, what: string): number {
  const result = Math.fround(value * 2 ** -exponent);
  check(Number.isFinite(result), () => `${what} (${value * 2 ** -exponent}) exceeds the f32 range`);
  return result;
}
