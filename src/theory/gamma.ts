import { check, describeValue } from '../errors.js';

/**
 * The distortion–rate function of Gaussian matrix multiplication ([1]):
 * the least normalized product error `NMSE` that any pair of rate-`R` encoders of iid N(0,1)
 * matrices can reach,
 *
 *     Γ(R) = 2·2^{−2R} − 2^{−4R}                    for R ≥ R*
 *     Γ(R) = 1 − (1 − Γ(R*))·R/R*                     for R < R*
 *
 * Below `R*` the bound is the time-sharing line from `(0, 1)` (send nothing) to `(R*, Γ(R*))`:
 * quantize a fraction `R/R*` of the coordinates at rate `R*` and drop the rest. The line is tangent to
 * the curve at `R*`, which is why `R*` solves `R = ½·log2(1 + 4R·ln 2)`: writing `t = 2^{−2R}`,
 * `1 − Γ = (1 − t)²` and `Γ' = −4·ln2·t·(1 − t)`, and tangency `(1 − Γ)/R = −Γ'` reduces to
 * `2^{2R} = 1 + 4R·ln 2`.
 */

/** `f(R) = R − ½·log2(1 + 4R·ln 2)`: zero at `R = 0` (trivially) and at `R*`. */
function fixedPointResidual(rate: number): number {
  return rate - 0.5 * Math.log2(1 + 4 * rate * Math.LN2);
}

/**
 * Solves the fixed-point equation by bisection on [0.5, 1.5], where the residual changes sign
 * exactly once (negative at 0.5, positive at 1.5) and the trivial root 0 is excluded. Bisection to
 * an interval of one ulp is slower than Newton but cannot diverge, and it runs once at load.
 */
function solveRStar(): number {
  let low = 0.5;
  let high = 1.5;
  for (let i = 0; i < 200; i++) {
    const mid = 0.5 * (low + high);
    if (mid === low || mid === high) break;
    if (fixedPointResidual(mid) < 0) low = mid;
    else high = mid;
  }
  return 0.5 * (low + high);
}

/** The phase-transition rate `R* ≈ 0.906324` bits per entry: the root of `R = ½·log2(1 + 4R·ln 2)`. */
export const R_STAR: number = solveRStar();

/** `Γ(R*) = 2·2^{−2R*} − 2^{−4R*} ≈ 0.48830`, where the curve meets the time-sharing line. */
export const GAMMA_AT_R_STAR: number = 2 * 2 ** (-2 * R_STAR) - 2 ** (-4 * R_STAR);

/**
 * Slope magnitude of the time-sharing line, `(1 − Γ(R*))/R* ≈ 0.564588` ([1] writes the line
 * as `1 − 0.564588·R`); derived from `R*` so the two pieces of Γ meet exactly.
 */
export const TIME_SHARING_SLOPE: number = (1 - GAMMA_AT_R_STAR) / R_STAR;

function checkRate(rate: number, what: string): void {
  check(
    typeof rate === 'number' && !Number.isNaN(rate) && rate >= 0,
    () => `${what} must be a non-negative number of bits per entry, got ${describeValue(rate)}`,
  );
}

function checkNmse(nmse: number, what: string): void {
  check(
    typeof nmse === 'number' && nmse > 0 && nmse <= 1,
    () => `${what} must be a normalized error in (0, 1], got ${describeValue(nmse)}`,
  );
}

/**
 * The lower bound Γ(R) on the normalized product error at `rate` bits per entry (both matrices at
 * the same rate). `gamma(Infinity)` is 0.
 *
 * @example
 * gamma(3.015); // ≈ 0.0304, the seed's bound next to its D3 scheme's 0.0593
 * gamma(0);     // 1: with no bits the best estimate of AᵀB is 0
 */
export function gamma(rate: number): number {
  checkRate(rate, 'rate');
  if (rate < R_STAR) return 1 - TIME_SHARING_SLOPE * rate;
  const t = 2 ** (-2 * rate);
  return 2 * t - t * t;
}

/**
 * The rate at which Γ equals `nmse`, i.e. the fewest bits per entry any scheme needs to reach that
 * error on Gaussian matrices. Γ is strictly decreasing from Γ(0) = 1 to 0, so the inverse exists on
 * `(0, 1]`. Both pieces have closed forms: on the line `R = (1 − d)/slope`; on the curve
 * `1 − d = (1 − t)²` with `t = 2^{−2R} ∈ (0, 1)`, so `t = 1 − √(1 − d)`, computed as
 * `d/(1 + √(1 − d))` to avoid cancellation when `d` is small.
 *
 * @example
 * gammaInverse(0.0593); // ≈ 2.53 bits: the seed's D3 scheme at 3.015 bits loses ≈ 0.49 bit
 */
export function gammaInverse(nmse: number): number {
  checkNmse(nmse, 'nmse');
  if (nmse >= GAMMA_AT_R_STAR) return (1 - nmse) / TIME_SHARING_SLOPE;
  // −½·log2 t, t = nmse/(1 + √(1 − nmse)), taken as a difference of logarithms: t itself underflows to 0 for nmse near the smallest double.
  return -0.5 * (Math.log2(nmse) - Math.log2(1 + Math.sqrt(1 - nmse)));
}

/**
 * Rate loss `rate − Γ⁻¹(nmse)` of a scheme that stores `rate` bits per entry and reaches normalized
 * product error `nmse`: how many bits per entry it spends beyond the information-theoretic minimum.
 * A negative value means the measurement beat the Gaussian bound (possible for non-Gaussian inputs
 * or by chance at small sizes); it is returned as is.
 *
 * @example
 * rateLoss(3, 0.1668); // ≈ 1.24 bits for the seed's 3-bit ℓ∞ scalar baseline
 */
export function rateLoss(rate: number, nmse: number): number {
  checkRate(rate, 'rate');
  check(Number.isFinite(rate), () => `rate must be finite, got ${describeValue(rate)}`);
  return rate - gammaInverse(nmse);
}
