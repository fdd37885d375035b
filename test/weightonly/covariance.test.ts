import { describe, expect, it } from 'vitest';
import { LatticeMatmulError } from '../../src/errors.js';
import { checkCovariance, checkSemidefinite, covarianceFromActivations } from '../../src/weightonly/covariance.js';
import { symmetricEigenvalues } from '../../src/weightonly/linalg.js';
import { outlierCovariance, spreadSpectrumCovariance } from '../../src/weightonly/syntheticCovariance.js';

/*
 * The boundaries of the Σ_X checks (covariance.ts) and the promises of the synthetic covariances
 * (syntheticCovariance.ts), each from its documented rule rather than from the code's output.
 */

/** The 2 × 2 Σ = [[4, upper], [lower, 4]] as a Matrix (f32 entries; every value used is exact in f32). */
function twoByTwo(upper: number, lower: number): { rows: number; cols: number; data: Float32Array } {
  return { rows: 2, cols: 2, data: new Float32Array([4, upper, lower, 4]) };
}

describe('checkCovariance: symmetric up to 1e−5·√(Σ_ii·Σ_kk), then the two triangles averaged', () => {
  it('entries 1 and 1 + 2^−20 (off by 9.5e−7 ≤ 1e−5·4) are accepted as their mean 1 + 2^−21, in both triangles', () => {
    const sigma = checkCovariance(twoByTwo(1, 1 + 2 ** -20), 2);
    expect(Array.from(sigma)).toEqual([4, 1 + 2 ** -21, 1 + 2 ** -21, 4]);
    // The same whichever triangle holds the larger entry.
    expect(Array.from(checkCovariance(twoByTwo(1 + 2 ** -20, 1), 2))).toEqual([4, 1 + 2 ** -21, 1 + 2 ** -21, 4]);
  });

  it('entries 1 and 1 + 2^−13 (off by 1.2e−4 > 1e−5·4 = 4e−5) are refused as not symmetric', () => {
    expect(() => checkCovariance(twoByTwo(1, 1 + 2 ** -13), 2)).toThrow(LatticeMatmulError);
    expect(() => checkCovariance(twoByTwo(1, 1 + 2 ** -13), 2)).toThrow(/sigmaX is not symmetric: entry \(1, 0\)/);
  });
});

describe('checkSemidefinite: refuses xᵀΣx < −0.01·(Σ|x_i|·√Σ_ii)², not less', () => {
  // Σ = [[1, ρ], [ρ, 1]], ρ > 1: the most negative relative form is at x = (1, −1): (2 − 2ρ)/4 = −(ρ − 1)/2
  // (the Cholesky witness x = (−ρ, 1) gives (1 − ρ²)/(1 + ρ)² = −(ρ − 1)/(ρ + 1), slightly less).
  const correlated = (rho: number): Float64Array => new Float64Array([1, rho, rho, 1]);

  it('ρ = 1.1 (a form 4.8 … 5 % of the scale below 0) is refused', () => {
    expect(() => checkSemidefinite(correlated(1.1), 2)).toThrow(LatticeMatmulError);
    expect(() => checkSemidefinite(correlated(1.1), 2)).toThrow(/sigmaX is not positive semidefinite/);
  });

  it('ρ = 1.002 (at most 0.1 % of the scale below 0: within rounding) is accepted', () => {
    expect(() => checkSemidefinite(correlated(1.002), 2)).not.toThrow();
  });
});

describe('covarianceFromActivations: the largest variance must be at least 2^−102 (2^24 above the smallest normal f32)', () => {
  // One activation vector (N = 1), channel 1 always 0: Σ_00 = x_0², the rest 0.
  const single = (x0: number): { rows: number; cols: number; data: Float32Array } => ({ rows: 2, cols: 1, data: new Float32Array([x0, 0]) });

  it.each([
    ['2^−100', -50],
    ['2^−102 exactly', -51],
  ])('a largest variance of %s is kept as it is', (_name, exponent) => {
    expect(Array.from(covarianceFromActivations(single(2 ** exponent)).data)).toEqual([2 ** (2 * exponent), 0, 0, 0]);
  });

  it('a largest variance of 2^−104 is refused, naming the power of two (2^52) that brings it to 1', () => {
    expect(() => covarianceFromActivations(single(2 ** -52))).toThrow(LatticeMatmulError);
    expect(() => covarianceFromActivations(single(2 ** -52))).toThrow(/largest variance \(Σ_X diagonal entry\) is 4\.9303806576313\d*e-32, too small for f32 .*multiply the activations by 2\^52:/);
  });
});

describe('synthetic covariances', () => {
  it.each([
    [16, 3, 1],
    [33, 2, 7],
  ])('spreadSpectrumCovariance(%i, %i decades): eigenvalues 10^(−decades·k/(n − 1)), ascending, from 10^−decades to 1, and those of Σ', (n, decades, seed) => {
    const { sigma, eigenvalues } = spreadSpectrumCovariance(n, decades, seed);
    const expected = Array.from({ length: n }, (_, k) => 10 ** (-decades * (n - 1 - k) / (n - 1)));
    expect(eigenvalues.length).toBe(n);
    for (let k = 0; k < n; k++) expect(eigenvalues[k]).toBeCloseTo(expected[k] as number, 14);
    expect(eigenvalues[0]).toBeCloseTo(10 ** -decades, 14);
    expect(eigenvalues[n - 1]).toBe(1);
    // Σ has them (up to its f32 rounding: ‖E‖₂ ≤ n·2^−24 for entries of magnitude ≤ 1), and is exactly symmetric.
    const computed = symmetricEigenvalues(Float64Array.from(sigma.data), n);
    for (let k = 0; k < n; k++) expect(Math.abs((computed[k] as number) - (expected[k] as number))).toBeLessThan(n * 2 ** -24);
    for (let i = 0; i < n; i++) for (let j = 0; j < i; j++) expect(sigma.data[i * n + j]).toBe(sigma.data[j * n + i]);
  });

  it.each([1, 2, 3, 4, 5])('outlierCovariance(64, seed %i, 10 outliers): exactly 10 channels at ≥ outlierScale/2, a symmetric Σ = D·C·D with |Σ_ij| ≤ √(Σ_ii·Σ_jj)', (seed) => {
    const n = 64;
    const outlierScale = 40;
    const { sigma, eigenvalues } = outlierCovariance(n, seed, { outliers: 10, outlierScale });
    const s = sigma.data;
    // Outliers are drawn at outlierScale·[0.5, 1.5); the bulk exp(0.5·g) reaches 20 only for g ≥ 6 (p ≈ 1e−9).
    let large = 0;
    for (let i = 0; i < n; i++) if (Math.sqrt(s[i * n + i] as number) >= outlierScale / 2) large++;
    expect(large).toBe(10);
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < i; j++) {
        expect(s[i * n + j]).toBe(s[j * n + i]);
        expect(Math.abs(s[i * n + j] as number)).toBeLessThanOrEqual(Math.sqrt((s[i * n + i] as number) * (s[j * n + j] as number)) * (1 + 1e-6));
      }
    }
    // The eigenvalues it reports are Σ's: they sum to its trace.
    let trace = 0;
    for (let i = 0; i < n; i++) trace += s[i * n + i] as number;
    expect(eigenvalues.reduce((sum, v) => sum + v, 0)).toBeCloseTo(trace, 6 - Math.ceil(Math.log10(trace)));
  });
});
