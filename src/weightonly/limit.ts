import { check } from '../errors.js';
import { checkMatrix, type Matrix } from '../matrix.js';
import { checkCovariance } from './covariance.js';
import { choleskyLower, logDetFromCholesky } from './linalg.js';
import { weightOnlyLimitPerEntry } from './theory.js';

/** σ_W² = ‖W‖²_F / (rows·cols): the mean squared entry of W, the variance of its iid Gaussian model. */
export function meanSquaredEntry(w: Matrix): number {
  checkMatrix(w, 'W');
  let s = 0;
  for (let k = 0; k < w.data.length; k++) s += (w.data[k] as number) ** 2;
  return s / w.data.length;
}

/**
 * ln|Σ_X| by Cholesky in float64. Throws a `LatticeMatmulError` when Σ_X is not positive definite
 * (its determinant is then ≤ 0 and the weight-only limit is 0).
 */
export function logDetCovariance(sigmaX: Matrix): number {
  checkMatrix(sigmaX, 'sigmaX');
  const n = sigmaX.rows;
  const sigma = checkCovariance(sigmaX, n);
  return logDetFromCholesky(choleskyLower(sigma, n, 'sigmaX'), n);
}

/**
 * The weight-only limit for quantizing `w` at `rate` bits per entry when the activations have
 * second moment Σ_X: the total tr(ΔΣ_XΔᵀ) = a·n·σ_W²·|Σ_X|^{1/n}·2^{−2R} that no quantizer of an iid
 * Gaussian W with the same mean squared entry σ_W² can beat (high-rate distortion–rate function;
 * see `theory.ts` for the derivation and when it is exact). `w` uses this library's layout
 * (n = w.rows inputs, one column per output). A singular Σ_X (fewer calibration samples than inputs, a
 * dead channel) is refused as not positive definite: the limit would be 0 and every gap infinite; measure
 * the gap against the damped covariance the quantizer used, or with more samples.
 *
 * @example
 * const gap = gapBits(q.distortion(w, sigmaX), weightOnlyLimit(w, sigmaX, q.rate)); // ≈ 0.26–0.28 for WaterSIC at n = 1024 (README's table; more at smaller n)
 */
export function weightOnlyLimit(w: Matrix, sigmaX: Matrix, rate: number): number {
  checkMatrix(w, 'W');
  checkMatrix(sigmaX, 'sigmaX');
  check(sigmaX.rows === w.rows, () => `sigmaX is ${sigmaX.rows}×${sigmaX.cols}, expected ${w.rows}×${w.rows} (W.rows input features)`);
  const sigmaW2 = meanSquaredEntry(w);
  check(sigmaW2 > 0, 'W is all zeros: the weight-only limit is 0');
  return w.rows * w.cols * weightOnlyLimitPerEntry(sigmaW2, logDetCovariance(sigmaX), w.rows, rate);
}
