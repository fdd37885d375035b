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
