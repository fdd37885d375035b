import { check, checkPositiveInteger, describeValue, LatticeMatmulError } from '../errors.js';
import { checkMatrix, type Matrix } from '../matrix.js';
import { F32_MIN_NORMAL } from '../scalar/floatFormats.js';
import { indefinitenessWitness } from './linalg.js';

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
  let largestVariance = 0;
  for (let i = 0; i < n; i++) largestVariance = Math.max(largestVariance, (sums[i * n + i] as number) / samples);
  checkVariancesFitF32(largestVariance);
  const data = new Float32Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let k = 0; k <= i; k++) {
      const v = (sums[i * n + k] as number) / samples;
      checkSecondMomentFitsF32(v, i, k);
      data[i * n + k] = v;
      data[k * n + i] = v;
    }
  }
  // A variance that f32 rounds to 0 makes its channel dead (see checkVariancesFitF32); its covariances
  // go with it, as |Σ_ik| ≤ √(Σ_ii·Σ_kk) requires. They could still be subnormals (a channel of 1e-24
  // beside one of 1e-10), and `quantizeWeights` refuses such a Σ_X as no covariance.
  for (let i = 0; i < n; i++) {
    if (data[i * n + i] !== 0) continue;
    for (let k = 0; k < n; k++) {
      data[i * n + k] = 0;
      data[k * n + i] = 0;
    }
  }
  return { rows: n, cols: n, data };
}

/**
 * Σ_X is returned in f32, but the activations' squares can leave its range. Scaling the activations
 * by 2^k scales Σ_X by 2^2k, and the quantization of W minimizes tr(ΔΣ_XΔᵀ), whose minimizer no scale
 * of Σ_X moves, so that is the fix to name.
 * - An entry beyond the f32 range would become Infinity: refused.
 * - Small variances are kept as f32 rounds them (a subnormal, or 0: a dead input channel, which the
 *   damping of `quantizeWeights` handles) as long as the largest variance is at least 2^−102: such an
 *   entry is then below 2^−24 of the largest, under its f32 rounding, so its lost digits change nothing
 *   the quantizer sees. When even the largest variance is smaller, every entry is refused with the
 *   power of two that brings the largest near 1 (scaling by the smallest entry could push the largest
 *   out of range).
 * Off-diagonal entries may be tiny: |Σ_ik| ≤ √(Σ_ii·Σ_kk), so their absolute error stays below the
 * diagonal's f32 rounding.
 */
function checkVariancesFitF32(largestVariance: number): void {
  if (largestVariance === 0 || largestVariance >= SMALLEST_LARGEST_VARIANCE) return;
  const shift = -Math.round(Math.log2(largestVariance) / 2);
  throw new LatticeMatmulError(
    `covarianceFromActivations: these activations' largest variance (Σ_X diagonal entry) is ${largestVariance}, ` +
      `too small for f32 (below 2^-102, the others would lose their precision or become 0); multiply the activations by 2^${shift}: ` +
      `Σ_X then scales by 2^${2 * shift}, which the quantization of W does not depend on`,
  );
}

/** The smallest largest variance `covarianceFromActivations` accepts: 2^24 above the smallest normal f32. */
const SMALLEST_LARGEST_VARIANCE = F32_MIN_NORMAL * 2 ** 24;

function checkSecondMomentFitsF32(v: number, i: number, k: number): void {
  if (Number.isFinite(Math.fround(v))) return;
  // The power of two that brings this entry near 1 (half the exponent: Σ_X is quadratic in x).
  const shift = -Math.round(Math.log2(Math.abs(v)) / 2);
  throw new LatticeMatmulError(
    `covarianceFromActivations: these activations give Σ_X entry (${i}, ${k}) = ${v}, beyond the f32 range (3.4e38)` +
      `; multiply the activations by 2^${shift}: Σ_X then scales by 2^${2 * shift}, which the quantization of W does not depend on`,
  );
}

/** Relative tolerance of the symmetry test, scaled by √(Σ_ii·Σ_kk): a few f32 roundings. */
const SYMMETRY_TOLERANCE = 1e-5;

/**
 * Validates Σ_X for `n` input features and returns it as a float64 row-major n × n array: a Matrix
 * of the right size, finite, with a diagonal ≥ 0 that is not all 0, the row of a zero variance (a
 * dead input channel: the damping makes it invertible) zero, and symmetric up to a few f32 roundings
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
  let largestVariance = 0;
  for (let i = 0; i < n; i++) {
    const d = s[i * n + i] as number;
    check(d >= 0, () => `${name} must have a diagonal ≥ 0 (it is a covariance), but entry (${i}, ${i}) is ${d}`);
    largestVariance = Math.max(largestVariance, d);
  }
  check(largestVariance > 0, () => `${name} is zero on its whole diagonal: the calibration activations were all 0`);
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
      // A zero variance (a dead input channel) forces a zero row: |Σ_ik| ≤ √(Σ_ii·Σ_kk) = 0.
      check(
        scale > 0 || v === 0,
        () => `${name} entry (${i}, ${k}) = ${v}, but the variance of input feature ${(s[i * n + i] as number) === 0 ? i : k} is 0, so its row must be 0 (it is not a covariance)`,
      );
      out[i * n + k] = v;
      out[k * n + i] = v;
    }
  }
  return out;
}

/**
 * How far below 0 a quadratic form xᵀ·Σ_X·x may fall before Σ_X counts as no covariance, relative to
 * (Σ_i |x_i|·√Σ_ii)²: the bound of |xᵀ·E·x| for entries off by a relative 1e−2 (of √(Σ_ii·Σ_kk)). A
 * covariance of activations is positive semidefinite, and rounding its entries (to f32: 6e−8; to
 * bf16: 3.9e−3; accumulating them in f32 over 10⁶ samples: typically ≈ 6e−5) cannot take a form
 * that far below 0, so a form beyond it comes from how Σ_X was formed, and no damping makes it a
 * covariance. Only relative rounding is covered: a Σ_X stored in f16 whose small variances fall
 * among f16's subnormals (below 6.1e−5, in steps of 6e−8) can lose more than 1 % of them, and is
 * refused (activations of a channel at 2e−4 the others' scale, correlated with them: a form 1.7 %
 * of that scale below 0), as one whose variance f16 rounds to 0 while its row is not 0 already was
 * (`checkCovariance`).
 */
export const SEMIDEFINITE_TOLERANCE = 1e-2;

/**
 * Refuses a Σ_X (float64, as `checkCovariance` returns it) that is provably not positive
 * semidefinite: a vector x with xᵀ·Σ_X·x < −SEMIDEFINITE_TOLERANCE·(Σ_i |x_i|·√Σ_ii)²
 * (`indefinitenessWitness`). Such a Σ_X was accepted whenever the damping outweighed its negative
 * eigenvalue (a damping raised as the refusal of a non-positive-definite H advises), and its
 * distortions could be negative. O(n³/3); call it where Σ_X is already known to be singular or worse
 * (its Cholesky factorization failed), since a positive definite Σ_X passes.
 */
export function checkSemidefinite(sigma: Float64Array, n: number, name = 'sigmaX'): void {
  const witness = indefinitenessWitness(sigma, n, SEMIDEFINITE_TOLERANCE);
  if (witness === null) return;
  const { vector, value, scale, pivot } = witness;
  // The largest entries of x name the input features involved.
  const features = [...vector.keys()].filter((i) => vector[i] !== 0).sort((i, k) => Math.abs(vector[k] as number) - Math.abs(vector[i] as number));
  const shown = features.slice(0, 4).map((i) => `${(vector[i] as number).toPrecision(3)} at input feature ${i}`).join(', ');
  checkQuadraticForm(value, scale, {
    name,
    vector: `the vector x found at Cholesky pivot ${pivot} (${shown}${features.length > 4 ? `, … ${features.length} features` : ''})`,
    symbol: 'x',
  });
}

/**
 * Refuses Σ_X when xᵀ·Σ_X·x = `form` lies further below 0 than rounding Σ_X's entries can take it:
 * form < −SEMIDEFINITE_TOLERANCE·scale, with scale = (Σ_i |x_i|·√Σ_ii)² (the witness's own `scale`,
 * so a witness of `indefinitenessWitness` at this tolerance is refused). The one rule (and message)
 * of `checkSemidefinite` and `weightedDistortion`; `subject` names Σ_X, describes x and gives its symbol.
 */
export function checkQuadraticForm(
  form: number,
  scale: number,
  subject: { readonly name: string; readonly vector: string; readonly symbol: string },
): void {
  const { name, vector, symbol: x } = subject;
  check(
    form >= -SEMIDEFINITE_TOLERANCE * scale,
    () => `${name} is not positive semidefinite, so it is no covariance (second moment) of activations: ${vector} gives ${x}ᵀ·${name}·${x} = ${form.toPrecision(4)}, ` +
      `${(-form / scale).toPrecision(3)} of (Σ|${x}_i|·√Σ_ii)² below 0, where rounding its entries could reach ${SEMIDEFINITE_TOLERANCE}; ` +
      'check how it was formed (damping does not make it a covariance; covarianceFromActivations gives one)',
  );
}

/**
 * H = Σ + δ·mean(diag Σ)·I (a new array): the damping of GPTQ, which makes a rank-deficient
 * calibration covariance invertible. δ = `relativeDamping` (`quantizeWeights`' default 1e−4; GPTQ's reference code uses 1e−2).
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
  let finite = true;
  for (let i = 0; i < n; i++) {
    h[i * n + i] = (h[i * n + i] as number) + shift;
    finite &&= Number.isFinite(h[i * n + i]);
  }
  // A damping that passes the check above can still overflow H's diagonal (δ = 1e308; only the
  // diagonal changes): refused naming it, not left to fail later in a step search or a log-determinant
  // that says nothing of the damping.
  check(
    finite,
    () => `damping ${describeValue(relativeDamping)} overflows H = Σ_X + damping·mean(diag Σ_X)·I (mean variance ${(trace / n).toExponential(3)}): use a damping of at most about 1 (the default is 1e−4, GPTQ's 1e−2)`,
  );
  return h;
}
