import { check } from '../errors.js';
import { checkMatrix, type Matrix } from '../matrix.js';
import { checkCovariance, checkQuadraticForm } from './covariance.js';

/**
 * tr(Δ·Σ_X·Δᵀ) for Δ = W − Ŵ: the expected squared error of the layer output y = W·x, summed over
 * the outputs, when E[x·xᵀ] = Σ_X. `w` and `wHat` use this library's layout (n = rows input
 * features, one column per output), so the sum is Σ_j δ_jᵀ·Σ_X·δ_j over their columns δ_j.
 * Float64 accumulation, O(outputs·n²/2). Never negative: a δ_jᵀ·Σ_X·δ_j below 0 beyond what rounding
 * Σ_X's entries could cause proves Σ_X no covariance and is refused (`SEMIDEFINITE_TOLERANCE`); one
 * within it (δ_j in a null direction of a singular Σ_X) counts as 0.
 *
 * @example
 * weightedDistortion(w, q.decode(), sigmaX); // divide by w.rows·w.cols for the per-entry value
 */
export function weightedDistortion(w: Matrix, wHat: Matrix, sigmaX: Matrix): number {
  checkMatrix(w, 'W');
  checkMatrix(wHat, 'Ŵ');
  check(
    w.rows === wHat.rows && w.cols === wHat.cols,
    () => `W is ${w.rows}×${w.cols} but Ŵ is ${wHat.rows}×${wHat.cols}`,
  );
  const n = w.rows;
  const sigma = checkCovariance(sigmaX, n);
  const delta = new Float64Array(n);
  let total = 0;
  for (let j = 0; j < w.cols; j++) {
    const base = j * n;
    for (let i = 0; i < n; i++) delta[i] = (w.data[base + i] as number) - (wHat.data[base + i] as number);
    // δᵀΣδ = Σ_i δ_i·(Σ_ii·δ_i + 2·Σ_{k<i} Σ_ik·δ_k): the lower triangle only.
    let form = 0;
    let root = 0;
    for (let i = 0; i < n; i++) {
      const di = delta[i] as number;
      if (di === 0) continue;
      const row = i * n;
      let s = 0;
      for (let k = 0; k < i; k++) s += (sigma[row + k] as number) * (delta[k] as number);
      form += di * ((sigma[row + i] as number) * di + 2 * s);
      root += Math.abs(di) * Math.sqrt(sigma[row + i] as number);
    }
    // A covariance gives every δ a form ≥ 0; one below what rounding Σ_X's entries could cause proves
    // Σ_X indefinite (the distortion, an expected squared error, came out negative), and is refused.
    checkQuadraticForm(form, root * root, { name: 'sigmaX', vector: `the error δ of output ${j}`, symbol: 'δ' });
    // Within rounding (δ in a null direction of a singular Σ_X) a form below 0 is 0.
    total += Math.max(0, form);
  }
  return total;
}
