import { check, describeValue } from '../errors.js';

/**
 * High-rate view of a per-entry quantizer ([2]). At high rate the optimal product
 * error is `Γ(R) ≈ 2·2^{−2R}`; a scheme whose per-entry normalized error is `δ` gives product error
 * `≈ 2δ` for Gaussian inputs, so it behaves like an optimal scheme at the *effective* rate
 * `R_eff = −½·log2 δ`. The difference between the stored rate and `R_eff` is its rate loss.
 */

function checkDelta(delta: number, what: string): void {
  check(
    typeof delta === 'number' && Number.isFinite(delta) && delta > 0,
    () => `${what} must be a positive finite per-entry normalized error, got ${describeValue(delta)}`,
  );
}

/**
 * The effective rate `−½·log2 δ` of a quantizer with per-entry normalized error `δ` (mean squared
 * error divided by the mean squared entry). `δ = 1` (output zero) gives 0 bits; `δ > 1` gives a
 * negative rate, returned as is.
 *
 * @example
 * effectiveRate(0.009); // ≈ 3.40 bits: INT4 with group-32 fp16 scales stores 4.5
 */
export function effectiveRate(delta: number): number {
  checkDelta(delta, 'delta');
  return -0.5 * Math.log2(delta);
}

/**
 * Rate loss `rate − R_eff(δ)` of a per-entry quantizer storing `rate` bits per entry (side
 * information included) with per-entry normalized error `delta`.
 *
 * @example
 * scalarRateLoss(4.5, 0.009); // ≈ 1.1 bits
 */
export function scalarRateLoss(rate: number, delta: number): number {
  check(
    typeof rate === 'number' && Number.isFinite(rate) && rate >= 0,
    () => `rate must be a finite non-negative number of bits per entry, got ${describeValue(rate)}`,
  );
  return rate - effectiveRate(delta);
}

/**
 * Product error predicted from the two per-entry errors when the quantization errors are
 * uncorrelated with the data and with each other: `â = a + e_a`, `b̂ = b + e_b` give
 * `⟨â, b̂⟩ − ⟨a, b⟩ = ⟨e_a, b⟩ + ⟨a, e_b⟩ + ⟨e_a, e_b⟩`, whose normalized second moment is
 * `δ_A + δ_B + δ_A·δ_B`. With `δ_A = δ_B = δ` that is the seed's `2δ + δ²`.
 *
 * @example
 * predictedProductNmse(0.08, 0.08); // 0.1664
 */
export function predictedProductNmse(deltaA: number, deltaB: number): number {
  check(
    typeof deltaA === 'number' && Number.isFinite(deltaA) && deltaA >= 0,
    () => `deltaA must be a finite non-negative per-entry error, got ${describeValue(deltaA)}`,
  );
  check(
    typeof deltaB === 'number' && Number.isFinite(deltaB) && deltaB >= 0,
    () => `deltaB must be a finite non-negative per-entry error, got ${describeValue(deltaB)}`,
  );
  return deltaA + deltaB + deltaA * deltaB;
}
