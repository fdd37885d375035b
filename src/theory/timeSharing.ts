import { check, describeValue } from '../errors.js';

/**
 * The fraction κ of rotated coordinates to keep (QuantizeOptions.keepFraction) so that a scheme of
 * `schemeRate` bits per kept entry spends `targetRate` bits per entry overall: κ = targetRate / schemeRate.
 * Below R* ≈ 0.906 bit no per-entry quantizer beats quantizing a κ = R/R* fraction at rate R* and
 * dropping the rest (seed 000's phase transition); with a practical scheme the same trade applies at
 * its own rate.
 *
 * @example
 * // d3-q6 stores ≈ 3.37 bits per entry (bitsStored at n = 4096), so keep κ = 0.5 / 3.37 of the coordinates:
 * quantize(a, { scheme: 'd3-q6', keepFraction: timeSharingFraction(0.5, 3.37) }) // ≈ 0.51 bit per entry (norms and means stay whole)
 */
export function timeSharingFraction(targetRate: number, schemeRate: number): number {
  check(Number.isFinite(targetRate) && targetRate > 0, () => `targetRate must be positive, got ${describeValue(targetRate)}`);
  check(Number.isFinite(schemeRate) && schemeRate > 0, () => `schemeRate must be positive, got ${describeValue(schemeRate)}`);
  return Math.min(1, targetRate / schemeRate);
}

/**
 * The expected product NMSE n‖Ĉ − AᵀB‖²/(‖A‖²‖B‖²) of codes time-shared at kept fraction f of their
 * N rotated coordinates (`rotatedLength`; n = `rows` of data, N ≥ n with padding), over the dither
 * and the rotation's signs for fixed A and B, given the NMSE of the same codes kept whole
 * (`fullNmse`) and ρ = n‖AᵀB‖²/(‖A‖²‖B‖²) (`concentration`: 1 on average for independent Gaussian
 * columns, ≈ n for A = B of one column). Dropped coordinates decode to 0 (no 1/f rescale), so
 * E Ĉ = f·AᵀB; the kept part adds f·NMSE_full (E‖P·Ra‖² = f‖a‖² exactly); the dropped inner product
 * has mean (1 − f)⟨a, b⟩ and, for columns whose energy the rotation spreads over N coordinates,
 * variance ≈ f(1 − f)(‖a‖²‖b‖² + ⟨a, b⟩²)/N. Together
 * f·NMSE_full + (1 − f)²ρ + f(1 − f)(1 + ρ/n)·n/N, which is the textbook 1 − f(1 − NMSE_full) only
 * where ρ = 1 and N = n (up to f(1 − f)/n).
 *
 * @example
 * timeSharedProductNmse({ keptFraction: 0.25, fullNmse: 0.06, concentration: 1, rows: 4096, rotatedLength: 4096 }); // 0.76505 ≈ 1 − 0.25·(1 − 0.06), as ρ = 1
 */
export function timeSharedProductNmse(options: {
  readonly keptFraction: number;
  readonly fullNmse: number;
  readonly concentration: number;
  readonly rows: number;
  readonly rotatedLength: number;
}): number {
  const { keptFraction: f, fullNmse, concentration: rho, rows: n, rotatedLength } = options;
  check(Number.isFinite(f) && f > 0 && f <= 1, () => `keptFraction must be in (0, 1], got ${describeValue(f)}`);
  check(Number.isFinite(fullNmse) && fullNmse >= 0, () => `fullNmse must be finite and ≥ 0, got ${describeValue(fullNmse)}`);
  check(Number.isFinite(rho) && rho >= 0, () => `concentration must be finite and ≥ 0, got ${describeValue(rho)}`);
  check(Number.isInteger(n) && n > 0 && Number.isInteger(rotatedLength) && rotatedLength >= n, () => `rows (${describeValue(n)}) must be a positive integer and rotatedLength (${describeValue(rotatedLength)}) an integer ≥ rows`);
  return f * fullNmse + (1 - f) ** 2 * rho + f * (1 - f) * (1 + rho / n) * (n / rotatedLength);
}
