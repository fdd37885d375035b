import { check, checkPositiveInteger, describeValue, LatticeMatmulError } from '../errors.js';
import { checkMatrix, type Matrix } from '../matrix.js';
import { F32_MIN_NORMAL } from '../scalar/floatFormats.js';

/**
 * Σ_X = (1/N)·Σ_t x_t·x_tᵀ from calibration activations: `activations` holds one activation vector
 * x_t (length n = `activations.rows`, the layer's input features) per column, N = `activations.cols`
 * vectors. It is the **second moment**, not the mean-centred covariance, because the error of the
 * layer output is E‖(W − Ŵ)x‖² = tr((W − Ŵ)·E[xxᵀ]·(W − Ŵ)ᵀ) whatever the mean of x (GPTQ's
 * H = 2XXᵀ up to the factor 2N). Accumulated in float64; the result is exactly symmetric.
 *
 * @example
 * const sigmaX = covarianceFromActivations(x); // x: n × N, one activation per column
 */
export function covarianceFromActivations(activations: Matrix): Matrix {
  checkMatrix(activations, 'activations');
  const n = activations.rows;
  const samples = activations.cols;
  const sums = new Float64Array(n * n);
  const x = activations.data;
  for (let t = 0; t < samples; t++) {
    const base = t * n;
    for (let i = 0; i < n; i++) {
      const xi = x[base + i] as number;
      if (xi === 0) continue;
      const row = i * n;
      for (let k = 0; k <= i; k++) sums[row + k] = (sums[row + k] as number) + xi * (x[base + k] as number);
    }
  }
  const data = new Float32Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let k = 0; k <= i; k++) {
      const v = (sums[i * n + k] as number) / samples;
      checkSecondMomentFitsF32(v, i, k);
      data[i * n + k] = v;
      data[k * n + i] = v;
    }
  }
  return { rows: n, cols: n, data };
}

/**
 * Σ_X is returned in f32, but the activations' squares can leave its range: an entry beyond it would
 * become Infinity, and a diagonal entry below 2^−126 loses its precision (or becomes 0, which
 * `checkCovariance` would then blame on Σ_X instead of the activations). Scaling the activations by
 * 2^k scales Σ_X by 2^2k, and the quantization of W minimizes tr(ΔΣ_XΔᵀ), whose minimizer no scale
 * of Σ_X moves, so that is the fix to name. Off-diagonal entries may be tiny:
 * |Σ_ik| ≤ √(Σ_ii·Σ_kk), so their absolute error stays below the diagonal's f32 rounding.
 */
function checkSecondMomentFitsF32(v: number, i: number, k: number): void {
  const tooLarge = !Number.isFinite(Math.fround(v));
  const tooSmall = i === k && v > 0 && v < F32_MIN_NORMAL;
  if (!tooLarge && !tooSmall) return;
  // The power of two that brings this entry near 1 (half the exponent: Σ_X is quadratic in x).
  const shift = -Math.round(Math.log2(Math.abs(v)) / 2);
  throw new LatticeMatmulError(
    `covarianceFromActivations: these activations give Σ_X entry (${i}, ${k}) = ${v}, ` +
      (tooLarge ? 'beyond the f32 range (3.4e38)' : 'below the smallest normal f32 (2^-126 ≈ 1.2e-38; it would lose precision or become 0)') +
      `; multiply the activations by 2^${shift}: Σ_X then scales by 2^${2 * shift}, which the quantization of W does not depend on`,
  );
}

/** Relative tolerance of the symmetry test, scaled by √(Σ_ii·Σ_kk): a few f32 roundings. */
const SYMMETRY_TOLERANCE = 1e-5;

/**
 * Validates Σ_X for `n` input features and returns it as a float64 row-major n × n array: a Matrix
 * of the right size, finite, with a positive diagonal, and symmetric up to a few f32 roundings
 * (|Σ_ik − Σ_ki| ≤ 1e−5·√(Σ_ii·Σ_kk)); the two triangles are averaged. Positive definiteness is
 * checked later by the Cholesky factorization of the damped matrix.
 */
export function checkCovariance(sigmaX: Matrix, n: number, name = 'sigmaX'): Float64Array {
  checkPositiveInteger(n, 'number of input features n');
  checkMatrix(sigmaX, name);
  check(
    sigmaX.rows === n && sigmaX.cols === n,
    () => `${name} is ${sigmaX.rows}×${sigmaX.cols}, expected n×n = ${n}×${n} (n = W.rows, the input features)`,
  );
  const s = sigmaX.data;
  for (let i = 0; i < n; i++) {
    const d = s[i * n + i] as number;
    check(d > 0, () => `${name} must have a positive diagonal (it is a covariance), but entry (${i}, ${i}) is ${d}`);
  }
  const out = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let k = 0; k <= i; k++) {
      const a = s[k * n + i] as number; // column-major (i, k)
      const b = s[i * n + k] as number; // column-major (k, i)
      const scale = Math.sqrt((s[i * n + i] as number) * (s[k * n + k] as number));
      check(
        Math.abs(a - b) <= SYMMETRY_TOLERANCE * scale,
        () => `${name} is not symmetric: entry (${i}, ${k}) = ${a} but (${k}, ${i}) = ${b}`,
      );
      const v = (a + b) / 2;
      out[i * n + k] = v;
      out[k * n + i] = v;
    }
  }
  return out;
}

/**
 * H = Σ + δ·mean(diag Σ)·I (a new array): the damping of GPTQ, which makes a rank-deficient
 * calibration covariance invertible. δ = `relativeDamping` (1e−4 by default, as GPTQ's damping).
 */
export function dampCovariance(sigma: Float64Array, n: number, relativeDamping: number): Float64Array {
  check(
    Number.isFinite(relativeDamping) && relativeDamping >= 0,
    () => `damping must be a finite number ≥ 0, got ${describeValue(relativeDamping)}`,
  );
  let trace = 0;
  for (let i = 0; i < n; i++) trace += sigma[i * n + i] as number;
  const shift = (relativeDamping * trace) / n;
  const h = Float64Array.from(sigma);
  for (let i = 0; i < n; i++) h[i * n + i] = (h[i * n + i] as number) + shift;
  return h;
}
