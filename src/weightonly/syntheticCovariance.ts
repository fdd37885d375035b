import { check, checkPositiveInteger, describeValue } from '../errors.js';
import type { Matrix } from '../matrix.js';
import { Rng } from '../rotation/random.js';
import { congruenceDiagonal, haarOrthogonal, symmetricEigenvalues } from './linalg.js';

/**
 * Synthetic activation covariances for tests and the weight-only benchmark, each with its
 * eigenvalues (needed by the exact reverse-waterfilling limit).
 */
export interface SyntheticCovariance {
  readonly name: string;
  /** n × n, this library's Matrix (symmetric, so the layout does not matter). */
  readonly sigma: Matrix;
  /** Eigenvalues of `sigma` (float64; computed from the f32 entries where not known in closed form). */
  readonly eigenvalues: Float64Array;
}

function toMatrix(values: Float64Array, n: number): Matrix {
  return { rows: n, cols: n, data: Float32Array.from(values) };
}

/** Σ = I_n: every method is the same scalar quantizer here (the control). */
export function isotropicCovariance(n: number): SyntheticCovariance {
  checkPositiveInteger(n, 'n');
  const data = new Float32Array(n * n);
  for (let i = 0; i < n; i++) data[i * n + i] = 1;
  return { name: 'isotropic', sigma: { rows: n, cols: n, data }, eigenvalues: new Float64Array(n).fill(1) };
}

/**
 * Σ = U·diag(λ)·Uᵀ with λ_k = 10^{−decades·k/(n−1)} (log-uniform from 1 down to 10^{−decades}) and
 * U a Haar-random orthogonal matrix from `seed`: a spread spectrum in a random basis.
 *
 * @example
 * const { sigma, eigenvalues } = spreadSpectrumCovariance(256, 3, 1); // condition number 1000
 */
export function spreadSpectrumCovariance(n: number, decades: number, seed: number): SyntheticCovariance {
  checkPositiveInteger(n, 'n');
  check(Number.isFinite(decades) && decades >= 0, () => `decades must be finite and ≥ 0, got ${describeValue(decades)}`);
  const eigenvalues = new Float64Array(n);
  for (let k = 0; k < n; k++) eigenvalues[k] = 10 ** (n === 1 ? 0 : (-decades * k) / (n - 1));
  const sigma = congruenceDiagonal(haarOrthogonal(n, seed), eigenvalues, n);
  return { name: `spread ${decades} decades`, sigma: toMatrix(sigma, n), eigenvalues: eigenvalues.reverse() };
}

/**
 * An LLM-like activation covariance in the coordinate basis, Σ = D·C·D:
 * - D = diag of per-channel scales: a lognormal bulk exp(0.5·g) and `outliers` channels (at random
 *   positions) `outlierScale` times larger (massive activations);
 * - C = (1 − ρ)·I + ρ·B·Bᵀ/r, then normalized to unit diagonal: channels correlated through r = 8
 *   shared factors with weight ρ = 0.3.
 * Eigenvalues by `symmetricEigenvalues` of the f32 entries.
 *
 * @example
 * const { sigma } = outlierCovariance(512, 1); // 4 outlier channels, 40× the typical scale
 */
export function outlierCovariance(
  n: number,
  seed: number,
  options: { outliers?: number; outlierScale?: number } = {},
): SyntheticCovariance {
  checkPositiveInteger(n, 'n');
  const outliers = options.outliers ?? Math.max(1, Math.round(n / 128));
  const outlierScale = options.outlierScale ?? 40;
  check(Number.isInteger(outliers) && outliers >= 0 && outliers <= n, () => `outliers must be an integer in [0, ${n}], got ${describeValue(outliers)}`);
  const rng = new Rng(seed);
  const scales = new Float64Array(n);
  for (let i = 0; i < n; i++) scales[i] = Math.exp(0.5 * rng.nextGaussian());
  for (let placed = 0; placed < outliers; ) {
    const i = rng.nextInt(n);
    if ((scales[i] as number) < outlierScale / 4) {
      scales[i] = outlierScale * (0.5 + rng.nextFloat());
      placed++;
    }
  }
  const factors = 8;
  const rho = 0.3;
  const b = new Float64Array(n * factors);
  for (let k = 0; k < b.length; k++) b[k] = rng.nextGaussian();
  const c = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j <= i; j++) {
      let s = 0;
      for (let f = 0; f < factors; f++) s += (b[i * factors + f] as number) * (b[j * factors + f] as number);
      const v = (rho * s) / factors + (i === j ? 1 - rho : 0);
      c[i * n + j] = v;
      c[j * n + i] = v;
    }
  }
  const sigma = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      const correlation = (c[i * n + j] as number) / Math.sqrt((c[i * n + i] as number) * (c[j * n + j] as number));
      sigma[i * n + j] = (scales[i] as number) * correlation * (scales[j] as number);
    }
  }
  const matrix = toMatrix(sigma, n);
  const eigenvalues = symmetricEigenvalues(Float64Array.from(matrix.data), n);
  return { name: `outliers (${outliers} channels ×${outlierScale})`, sigma: matrix, eigenvalues };
}
