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
  const exponent = normalizingExponent(amax);
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

/**
 * The documented input range of every quantizer: a column's (centred) norm is 0 or within
 * [MIN_COLUMN_NORM, MAX_COLUMN_NORM] = [2^−100, 2^100]. Inside it, norms, scales and the rotated
 * blocks are normal f32 numbers and nothing overflows to ±Infinity; a decoded entry far below its
 * column's norm may be subnormal where the norm is near 2^−100 (measured: 1 to 66 of 262,144 entries,
 * down to 9·10⁻⁴¹, at norm 2^−99.9, n = 4096: an absolute error below 2^−149), and a product is
 * refused only when its entries could leave the f32 range (`checkProductRange`).
 */
export const MIN_COLUMN_NORM = 2 ** -100;
/** The upper end of the documented column-norm range, 2^100 (see {@link MIN_COLUMN_NORM}). */
export const MAX_COLUMN_NORM = 2 ** 100;

/**
 * Whether a column norm is in the documented range: 0 or within [2^−100, 2^100] (false for NaN).
 * The one definition of the range, shared by `quantize` (CPU and GPU), `checkQuantizedMatrix` and
 * the container reader: a norm in (0, 2^−100) is never written, and on the GPU its f32 scale factors
 * go subnormal (results a few per cent off, or 0).
 */
export function isSupportedColumnNorm(norm: number): boolean {
  return norm === 0 || (norm >= MIN_COLUMN_NORM && norm <= MAX_COLUMN_NORM);
}

/** Refuses a column norm outside the documented range, naming the column. */
export function checkColumnNorm(norm: number, column: number, mean: number | null = null): void {
  check(
    isSupportedColumnNorm(norm),
    () =>
      `column ${column} has norm ${norm.toExponential(3)}${centredNote(mean)}, outside the supported range [2^−100, 2^100] ≈ [7.9e-31, 1.3e30]; ` +
      COLUMN_NORM_ADVICE,
  );
}

/**
 * For a centred column, which mean its norm is left around. A constant column's f32 mean can miss the
 * constant by an ulp, leaving a norm of ≈ 10⁻⁷ of the column's: below 2^−100 for a constant below
 * ≈ 2^−77, where the refusal would otherwise read as nonsense (a norm for a constant column).
 */
function centredNote(mean: number | null): string {
  return mean === null ? '' : ` once its mean ${mean.toExponential(3)} is subtracted (a constant column keeps the rounding error of its f32 mean)`;
}

/** The end of `checkColumnNorm`'s message: the remedy for a caller who holds the matrix (the CLI restates it). */
export const COLUMN_NORM_ADVICE = 'multiply the matrix by a power of two first (the codes do not depend on the scale)';

/**
 * Refuses a column mean (`center: true`) beyond ±MAX_COLUMN_NORM, the range the container holds: a
 * constant column of 2e30 has a centred norm of 0, in range, but a mean no file could store.
 */
export function checkColumnMean(mean: number, column: number): void {
  check(
    Math.abs(mean) <= MAX_COLUMN_NORM,
    () => `column ${column} has mean ${mean.toExponential(3)}, beyond ±2^100 ≈ ±1.3e30; multiply the matrix by a power of two first (the codes do not depend on the scale)`,
  );
}

/**
 * The largest product of two decoded column norms whose entries ÂᵀB̂ stay finite in f32: |Ĉ_ij| ≤
 * ‖â_i‖‖b̂_j‖, and f32 reaches 2^128. The CPU checks the decoded norms; the GPU, which does not decode
 * on the host, bounds on them (ν_j times the code's decode ratio: 1.05 (e8-5bit) to 1.45 (e8-2bit) for the universal presets,
 * ≈ 38 for D3 at β = 64), so it may refuse a product near this limit that the CPU accepts, never the
 * reverse.
 */
export const MAX_NORM_PRODUCT = 2 ** 126;

/**
 * Refuses a product whose entries could exceed the f32 range: the largest column norms of A and B
 * multiply past MAX_NORM_PRODUCT (the true AᵀB can be that large, and so can its estimate's error).
 */
export function checkProductRange(maxNormA: number, maxNormB: number): void {
  check(
    maxNormA * maxNormB <= MAX_NORM_PRODUCT,
    () =>
      `the product's entries can reach ‖a_i‖·‖b_j‖ = ${(maxNormA * maxNormB).toExponential(3)}, beyond the f32 range; ` +
      'scale A or B down by a power of two (and the result up afterwards, in float64)',
  );
}
