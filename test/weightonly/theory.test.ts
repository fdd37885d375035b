import { describe, expect, it } from 'vitest';
import { LatticeMatmulError } from '../../src/errors.js';
import type { Matrix } from '../../src/matrix.js';
import { gaussianMatrix } from '../../src/rotation/random.js';
import { feedbackPenaltyBits } from '../../src/weightonly/feedbackPenalty.js';
import {
  amGmBits,
  covarianceFromActivations,
  gapBits,
  predictedGapBits,
  quantizeWeights,
  reverseWaterfillingDistortion,
  SCALAR_HIGH_RATE_GAP_BITS,
  weightedDistortion,
  weightOnlyLimit,
  weightOnlyLimitPerEntry,
} from '../../src/weightonly/index.js';
import { choleskyLower } from '../../src/weightonly/linalg.js';

function diagonal(values: number[]): Matrix {
  const n = values.length;
  const data = new Float32Array(n * n);
  values.forEach((v, i) => (data[i * n + i] = v));
  return { rows: n, cols: n, data };
}

describe('weight-only limit', () => {
  it('is σ_W²·|Σ_X|^{1/n}·2^{−2R} per entry', () => {
    expect(SCALAR_HIGH_RATE_GAP_BITS).toBeCloseTo(0.2546, 4);
    expect(weightOnlyLimitPerEntry(1, 0, 4, 4)).toBe(2 ** -8);
    // σ² = 2, Σ = diag(1, 4): |Σ|^{1/2} = 2, R = 3 → 2·2·2^−6.
    expect(weightOnlyLimitPerEntry(2, Math.log(4), 2, 3)).toBeCloseTo(4 / 64, 15);
  });

  it('weightOnlyLimit multiplies by a·n, with σ_W² the mean squared entry of W', () => {
    const w: Matrix = { rows: 2, cols: 3, data: new Float32Array([1, -1, 2, 0, 1, 1]) }; // Σ w² = 8 → σ² = 8/6
    const limit = weightOnlyLimit(w, diagonal([1, 4]), 3);
    expect(limit).toBeCloseTo(6 * (8 / 6) * 2 * 2 ** -6, 12);
  });

  it('reverse waterfilling equals the high-rate limit when every component is active', () => {
    const lambda = [1, 0.5, 0.25, 0.125];
    const gm = Math.exp(lambda.reduce((s, v) => s + Math.log(v), 0) / 4);
    expect(reverseWaterfillingDistortion(lambda, 1, 4)).toBeCloseTo(gm * 2 ** -8, 12);
  });

  it('reverse waterfilling exceeds the high-rate formula when a component is switched off', () => {
    // λ = (1, 1e−6), σ² = 1, R = 1 bit per entry: θ between the two variances, so the small
    // component costs no rate and contributes 1e−6; the big one gets 2 bits: θ = 2^−4.
    const d = reverseWaterfillingDistortion([1, 1e-6], 1, 1);
    expect(d).toBeCloseTo((2 ** -4 + 1e-6) / 2, 10);
    expect(d).toBeGreaterThan(weightOnlyLimitPerEntry(1, Math.log(1e-6), 2, 1));
  });

  it.each([
    // σ_W²·λ = 2e308 overflows a double (the bisection ran forever on infinite bounds); D = 2e308/4 does not.
    [[2], 1e308, 1, 5e307],
    // The switched-off component above, scaled by 2^1000 and by 2^-1000: D scales with σ_W².
    [[1, 1e-6], 2 ** 1000, 1, 2 ** 1000 * ((2 ** -4 + 1e-6) / 2)],
    [[1, 1e-6], 2 ** -1000, 1, 2 ** -1000 * ((2 ** -4 + 1e-6) / 2)],
    // Eigenvalues 300 decades apart at 100 bits: the water level θ = 2^-400 (all the rate to the first,
    // ½·log2(1/θ)/2 = 100) is above the second, so D = (θ + 1e-300)/2 (the search's steps double now).
    [[1, 1e-300], 1, 100, (2 ** -400 + 1e-300) / 2],
  ])('reverse waterfilling of λ = %j with σ_W² = %d at %d bit is finite where σ_W²·λ is not a double (%d)', (lambda, sigmaW2, rate, expected) => {
    const d = reverseWaterfillingDistortion(lambda, sigmaW2, rate);
    expect(Math.abs(d / expected - 1)).toBeLessThan(1e-9);
  });

  it.each([
    [[1e10, 1e10], 1e308, 0.01], // D ≈ 1e318
    [[1e-300], 1e-300, 1], // D = 2.5e-601: σ_W²·λ underflowed to 0, and the bisection ran forever
    [[1, 1e-300], 1, 2e17], // a rate so large that a fixed step no longer moved the search's lower end: it hung
    [[1, 1e-300], 1, 1e18],
  ])('reverse waterfilling refuses a distortion outside the range of a double (λ = %j, σ_W² = %d)', (lambda, sigmaW2, rate) => {
    expect(() => reverseWaterfillingDistortion(lambda, sigmaW2, rate)).toThrow(/the distortion .* is outside the range of a double/);
  });

  it('reverse waterfilling takes more eigenvalues than a spread argument list holds (200 000)', () => {
    // Equal components are all active: D = σ_W²·2^(−2R). The bisection's upper end was Math.max(...values),
    // a RangeError ("Maximum call stack size exceeded") past ≈ 125 000 values.
    expect(reverseWaterfillingDistortion(new Float64Array(200_000).fill(1), 3, 2)).toBeCloseTo(3 / 16, 12);
  });

  it('gap and AM/GM in bits', () => {
    expect(gapBits(4, 1)).toBe(1);
    expect(amGmBits([2, 2, 2])).toBe(0);
    expect(amGmBits([1, 4])).toBeCloseTo(0.5 * Math.log2(2.5 / 2), 14);
    expect(() => gapBits(1, 0)).toThrow(LatticeMatmulError);
  });

  it('predictions: WaterSIC 0.2546, GPTQ adds the pivot AM/GM, RTN the eigenvalue AM/GM', () => {
    const terms = { pivotAmGmBits: 0.3, dampingBits: 0.01, diagonalAmGmBits: 0.7, sideInfoRate: 0.02 };
    expect(predictedGapBits('watersic', terms)).toBeCloseTo(0.2546 + 0.01 + 0.02, 4);
    expect(predictedGapBits('gptq', terms)).toBeCloseTo(0.2546 + 0.3 + 0.01 + 0.02, 4);
    expect(predictedGapBits('rtn', terms)).toBeCloseTo(0.2546 + 0.7 + 0.02, 4);
  });
});

describe('feedbackPenaltyBits', () => {
  it('is 0 for Σ = I and for RTN', () => {
    const l = choleskyLower(new Float64Array([1, 0, 0, 1]), 2);
    expect(feedbackPenaltyBits('watersic', l, 2, 0.5, 1)).toBe(0);
    expect(feedbackPenaltyBits('rtn', choleskyLower(new Float64Array([1, 0.9, 0.9, 1]), 2), 2, 0.5, 1)).toBe(0);
  });

  it('matches the 2×2 closed form', () => {
    // Σ = [[1, ρ], [ρ, 1]]: L⁻¹ = [[1, 0], [−ρ/√(1−ρ²), 1/√(1−ρ²)]], L_11² = 1 − ρ².
    const rho = 0.8;
    const step = 0.3;
    const l = choleskyLower(new Float64Array([1, rho, rho, 1]), 2);
    const s = step ** 2 / 12;
    expect(feedbackPenaltyBits('watersic', l, 2, step, 1)).toBeCloseTo(0.25 * Math.log2(1 + (s * rho ** 2) / (1 - rho ** 2)), 12);
    expect(feedbackPenaltyBits('gptq', l, 2, step, 1)).toBeCloseTo(0.25 * Math.log2(1 + s * rho ** 2), 12);
  });

  it('is finite for a WaterSIC step whose square overflows a double (a fixed step may be any finite number)', () => {
    // step² = Infinity made Infinity·0 = NaN for a feature without feedback (audit helper-174).
    const rho = 0.8;
    const l = choleskyLower(new Float64Array([1, rho, rho, 1]), 2);
    expect(feedbackPenaltyBits('watersic', choleskyLower(new Float64Array([1, 0, 0, 1]), 2), 2, 1e200, 1)).toBe(0);
    // The same closed form as above, ¼·log2(1 + (step²/12)·ρ²/(1 − ρ²)), in logarithms (the 1 is far below an ulp).
    const expected = 0.25 * (2 * Math.log2(1e200) - Math.log2(12) + Math.log2(rho ** 2 / (1 - rho ** 2)));
    expect(feedbackPenaltyBits('watersic', l, 2, 1e200, 1)).toBeCloseTo(expected, 9);
    // Through quantizeWeights: every code is 0 at this step, and the analysis has no NaN.
    const w = gaussianMatrix(4, 16, 1);
    const q = quantizeWeights(w, diagonal([1, 1, 1, 1]), { method: 'watersic', step: 1e200 });
    expect(q.analysis?.feedbackPenaltyBits).toBe(0);
    expect(Object.values(q.analysis ?? {}).filter((v) => typeof v === 'number' && Number.isNaN(v))).toEqual([]);
  });
});

describe('covariance and distortion', () => {
  it('covarianceFromActivations is (1/N)·X·Xᵀ, exactly symmetric', () => {
    const x = gaussianMatrix(5, 40, 1);
    const sigma = covarianceFromActivations(x);
    for (let i = 0; i < 5; i++) for (let k = 0; k < 5; k++) {
      let s = 0;
      for (let t = 0; t < 40; t++) s += (x.data[t * 5 + i] as number) * (x.data[t * 5 + k] as number);
      expect(sigma.data[k * 5 + i]).toBeCloseTo(s / 40, 5);
      expect(sigma.data[k * 5 + i]).toBe(sigma.data[i * 5 + k]);
    }
  });

  it('weightedDistortion is the mean output error over the calibration activations', () => {
    const n = 6;
    const x = gaussianMatrix(n, 50, 2);
    const w = gaussianMatrix(n, 3, 3);
    const wHat = gaussianMatrix(n, 3, 4);
    let direct = 0;
    for (let t = 0; t < 50; t++) for (let j = 0; j < 3; j++) {
      let y = 0;
      for (let i = 0; i < n; i++) y += ((w.data[j * n + i] as number) - (wHat.data[j * n + i] as number)) * (x.data[t * n + i] as number);
      direct += y * y;
    }
    expect(weightedDistortion(w, wHat, covarianceFromActivations(x))).toBeCloseTo(direct / 50, 3);
  });
});
