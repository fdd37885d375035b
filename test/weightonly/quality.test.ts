import { describe, expect, it } from 'vitest';
import type { Matrix } from '../../src/matrix.js';
import { gaussianMatrix } from '../../src/rotation/random.js';
import { DEFAULT_DAMPING, gapBits, quantizeWeights, weightOnlyLimit, SCALAR_HIGH_RATE_GAP_BITS } from '../../src/weightonly/index.js';
import { isotropicCovariance, outlierCovariance, spreadSpectrumCovariance } from '../../src/weightonly/syntheticCovariance.js';
import { meanAndStd } from '../meanRatio.js';

/*
 * Gaps in bits to the weight-only limit, tested as statistics: every test averages over DRAWS = 8
 * independent draws — draw t takes W (64 × 1024 Gaussian) from seed 1001 + t, the spread spectrum's
 * random basis from 2001 + t, the outlier covariance from 4001 + t and the rotation from 3001 + t
 * (n = 100: W from 5001 + t, Σ from 6001 + t) — and asserts |mean − expected| ≤ 5·max(s, σ)/√8 + slack,
 * s the draws' sample standard deviation and σ the per-draw standard deviation measured over 40 draws
 * (seeds 1001–1040 etc.; a floor, so that 8 draws which happen to agree cannot tighten the bound).
 * Five standard errors of a mean of 8 near-Gaussian draws: a false failure about once in 1.7 million per bound.
 * Measured per draw over those 40 draws (mean ± std, bits; side = 32/1024 bit, WaterSIC's f32 steps):
 *   WaterSIC − (0.2546 + side), spread                −0.0104 ± 0.0029
 *   RTN − WaterSIC, spread (theory ½·log2(AM/GM) − side = 1.0933)   1.0867 ± 0.0075
 *   WaterSIC rotated − unrotated, spread (Hadamard)   −0.0000 ± 0.0042
 *   GPTQ − WaterSIC / RTN − GPTQ, spread               0.2917 ± 0.0237 / 0.7949 ± 0.0233
 *   GPTQ − WaterSIC − (pivot AM/GM − side), spread      0.0008 ± 0.0044
 *   GPTQ = RTN − 0.2546, Σ = I                         −0.0161 ± 0.0023
 *   WaterSIC − (0.2546 + side), Σ = I                  −0.0203 ± 0.0024
 *   GPTQ unrotated − rotated / rotated − WaterSIC, 2 outlier channels   2.074 ± 0.155 / 0.651 ± 0.191
 *   n = 100 (dense haar rotation): WaterSIC / GPTQ rotated − unrotated   −0.0001 ± 0.0028 / −0.0064 ± 0.0145
 * Expected values come from the high-rate theory, not from runs; the slacks are what that theory
 * leaves out. At 4 bits the empirical entropy of one input feature's 1024 codes (≈ 30 symbols) is
 * ≈ 29/(2·1024·ln 2) ≈ 0.02 bit below its entropy, so the searched step is finer and every gap to the
 * limit ≈ 0.02 bit smaller (measured −0.010 … −0.020), and an entropy-coded scalar quantizer's gap
 * approaches 0.2546 bit from below as the rate grows: both lower a gap, so the slack is 0.025 bit
 * below the high-rate value and none above it. A difference of two methods cancels most of it
 * (RTN − WaterSIC: −0.0066 ± 0.0012 from its formula, a standard error over the 40): 0.015 either way;
 * GPTQ − WaterSIC: 0.0008 ± 0.0007, 0.005. GPTQ is not rotation-invariant and gains a little from the
 * haar rotation (−0.0064 ± 0.0023): 0.01. WaterSIC's rotated and unrotated gaps have no slack.
 */
const n = 64;
const outputs = 1024;
const DRAWS = 8;
const sideWaterSic = (32 * n) / (n * outputs); // n f32 steps
// The high-rate gap's omissions only lower a measured gap (see above): 0.025 bit below it, none above.
const HIGH_RATE_SLACK = [0.025, 0] as const;

type Method = 'watersic' | 'gptq' | 'rtn';

/** Gap to the limit in bits, and ½·log2(AM/GM) of the Cholesky pivots L_ii² (GPTQ's predicted loss beyond WaterSIC). */
interface Measured {
  readonly gap: number;
  readonly pivotAmGmBits: number;
}

function measure(w: Matrix, method: Method, sigma: Matrix, rotate: boolean, seed: number): Measured {
  const q = quantizeWeights(w, sigma, { method, rate: 4, rotate, seed });
  return { gap: gapBits(q.distortion(w, sigma), weightOnlyLimit(w, sigma, q.rate)), pivotAmGmBits: q.analysis?.pivotAmGmBits ?? NaN };
}

type Covariance = 'spread' | 'flat' | 'outliers';

/** Draw t's matrices, built once and shared by the tests, with its quantizations memoized. */
interface Draw {
  readonly w: Matrix;
  readonly measured: (method: Method, covariance: Covariance, rotate?: boolean) => Measured;
  readonly gap: (method: Method, covariance: Covariance, rotate?: boolean) => number;
}
const draws: Draw[] = Array.from({ length: DRAWS }, (_, t) => {
  const w = gaussianMatrix(n, outputs, 1001 + t);
  const covariances = {
    spread: () => spreadSpectrumCovariance(n, 3, 2001 + t).sigma,
    flat: () => isotropicCovariance(n).sigma,
    outliers: () => outlierCovariance(n, 4001 + t, { outliers: 2 }).sigma,
  };
  const sigmas = new Map<Covariance, Matrix>();
  const results = new Map<string, Measured>();
  const measured = (method: Method, covariance: Covariance, rotate = false): Measured => {
    const key = `${method} ${covariance} ${rotate}`;
    let sigma = sigmas.get(covariance);
    if (sigma === undefined) sigmas.set(covariance, (sigma = covariances[covariance]()));
    let result = results.get(key);
    if (result === undefined) results.set(key, (result = measure(w, method, sigma, rotate, 3001 + t)));
    return result;
  };
  return { w, measured, gap: (method, covariance, rotate) => measured(method, covariance, rotate).gap };
});

/** The per-draw values of `f` over every draw. */
function overDraws(f: (draw: Draw) => number): number[] {
  return draws.map(f);
}

/** Five standard errors of a mean of `values`, from max(sample std, the measured per-draw std `sigma`). */
function fiveStandardErrorsOf(values: readonly number[], sigma: number): number {
  return (5 * Math.max(meanAndStd(values).std, sigma)) / Math.sqrt(values.length);
}

/**
 * expected − below ≤ mean ± 5 standard errors ≤ expected + above: `below` and `above` are what the
 * expected value leaves out, on the side it can fall. Names `what` and the figures.
 */
function expectMeanNear(values: readonly number[], expected: number, sigma: number, [below, above]: readonly [number, number], what: string): void {
  const { mean, std } = meanAndStd(values);
  const tolerance = fiveStandardErrorsOf(values, sigma);
  const figures = `${what}: mean ${mean.toFixed(4)} ± ${std.toFixed(4)} over ${values.length} draws, expected ${expected.toFixed(4)} (−${below}, +${above}) ± ${tolerance.toFixed(4)}`;
  expect(mean, figures).toBeGreaterThanOrEqual(expected - below - tolerance);
  expect(mean, figures).toBeLessThanOrEqual(expected + above + tolerance);
}

/** mean − 5 standard errors > `bound`, naming `what` and the figures. */
function expectMeanAbove(values: readonly number[], bound: number, sigma: number, what: string): void {
  const { mean, std } = meanAndStd(values);
  expect(mean - fiveStandardErrorsOf(values, sigma), `${what}: mean ${mean.toFixed(4)} ± ${std.toFixed(4)} over ${values.length} draws`).toBeGreaterThan(bound);
}

describe('weight-only quantizers against the limit (means over 8 draws of W, Σ and the rotation)', () => {
  // RTN's predicted loss beyond WaterSIC: ½·log2(AM/GM) of the eigenvalues (the same for every draw:
  // only the spread spectrum's basis is random).
  const lambda = Array.from(spreadSpectrumCovariance(n, 3, 1).eigenvalues);
  const am = lambda.reduce((s, v) => s + v, 0) / n;
  const gm = Math.exp(lambda.reduce((s, v) => s + Math.log(v), 0) / n);
  const rtnExtra = 0.5 * Math.log2(am / gm);

  it('WaterSIC beats RTN on a spread spectrum at 4 bits by ½·log2(AM/GM of λ) less its side information', () => {
    expect(rtnExtra).toBeGreaterThan(0.8);
    expectMeanNear(overDraws((d) => d.gap('rtn', 'spread') - d.gap('watersic', 'spread')), rtnExtra - sideWaterSic, 0.0075, [0.015, 0.015], 'RTN − WaterSIC');
  });

  it('WaterSIC at 4 bits is 0.2546 bit (+ side information) from the limit, with and without rotation', () => {
    const expected = SCALAR_HIGH_RATE_GAP_BITS + sideWaterSic;
    expectMeanNear(overDraws((d) => d.gap('watersic', 'spread')), expected, 0.0029, HIGH_RATE_SLACK, 'WaterSIC');
    expectMeanNear(overDraws((d) => d.gap('watersic', 'spread', true) - d.gap('watersic', 'spread')), 0, 0.0042, [0, 0], 'WaterSIC rotated − unrotated');
  });

  it('the same with the dense haar rotation (n = 100, not a Hadamard length): rotated as far from the limit as unrotated, GPTQ too', () => {
    // Its Σ' had every off-diagonal halved (audit helper-140): WaterSIC measured 2.26 times the unrotated distortion here.
    const m = 100;
    const differences = { watersic: [] as number[], gptq: [] as number[] };
    for (let t = 0; t < DRAWS; t++) {
      const wm = gaussianMatrix(m, outputs, 5001 + t);
      const sigma = spreadSpectrumCovariance(m, 3, 6001 + t).sigma;
      for (const method of ['watersic', 'gptq'] as const) {
        const gapWith = (rotate: boolean): number => {
          const q = quantizeWeights(wm, sigma, { method, rate: 4, rotate, seed: 3001 + t });
          expect(q.rotation).toBe(rotate ? 'haar' : 'none');
          return gapBits(q.distortion(wm, sigma), weightOnlyLimit(wm, sigma, q.rate));
        };
        differences[method].push(gapWith(true) - gapWith(false));
      }
    }
    expectMeanNear(differences.watersic, 0, 0.0028, [0, 0], 'WaterSIC, haar rotated − unrotated');
    expectMeanNear(differences.gptq, 0, 0.0145, [0.01, 0.01], 'GPTQ, haar rotated − unrotated');
  });

  it('GPTQ sits between WaterSIC and RTN on a spread spectrum, ½·log2(AM/GM of the pivots L_ii²) less side information above WaterSIC', () => {
    expectMeanAbove(overDraws((d) => d.gap('gptq', 'spread') - d.gap('watersic', 'spread')), 0.05, 0.0237, 'GPTQ − WaterSIC');
    expectMeanAbove(overDraws((d) => d.gap('rtn', 'spread') - d.gap('gptq', 'spread')), 0.1, 0.0233, 'RTN − GPTQ');
    // One step for every input feature costs GPTQ the pivots' AM/GM, where WaterSIC's steps c/L_ii
    // reach their GM. Measured over the 40 draws: GPTQ − WaterSIC − (AM/GM − side) = 0.0008 ± 0.0044.
    const beyondPrediction = overDraws((d) => d.gap('gptq', 'spread') - d.gap('watersic', 'spread') - (d.measured('gptq', 'spread').pivotAmGmBits - sideWaterSic));
    expectMeanNear(beyondPrediction, 0, 0.0044, [0.005, 0.005], 'GPTQ − WaterSIC − (pivot AM/GM − side)');
  });

  it('on Σ = I all three methods are the same scalar quantizer: about 0.2546 bit', () => {
    // GPTQ's feedback is 0 where L = I: its codes are RTN's, exactly.
    for (const d of draws) expect(d.gap('gptq', 'flat')).toBe(d.gap('rtn', 'flat'));
    expectMeanNear(overDraws((d) => d.gap('rtn', 'flat')), SCALAR_HIGH_RATE_GAP_BITS, 0.0023, HIGH_RATE_SLACK, 'RTN (= GPTQ), Σ = I');
    expectMeanNear(overDraws((d) => d.gap('watersic', 'flat')), SCALAR_HIGH_RATE_GAP_BITS + sideWaterSic, 0.0024, HIGH_RATE_SLACK, 'WaterSIC, Σ = I');
  });

  it('outlier channels: rotation rescues GPTQ, WaterSIC does not need it', () => {
    expectMeanAbove(overDraws((d) => d.gap('gptq', 'outliers') - d.gap('gptq', 'outliers', true)), 0.5, 0.155, 'GPTQ unrotated − rotated');
    expectMeanAbove(overDraws((d) => d.gap('gptq', 'outliers', true) - d.gap('watersic', 'outliers')), 0, 0.191, 'GPTQ rotated − WaterSIC');
  });

  it('the diagonal rescalers lower the distortion at a fixed step, by what they measure (4 seeds each)', () => {
    // Measured over 6 seeds (64 × 256, spread spectrum of 3 decades): rescaled/plain distortion
    // 0.924 ± 0.003 (GPTQ, step 1), 0.872 ± 0.006 (RTN, step 1), 0.981 ± 0.001 (WaterSIC, step 0.2);
    // each bound is ≥ 8 standard deviations of a 4-seed mean above it, and well below 1 (no fit).
    for (const [method, step, bound] of [
      ['gptq', 1, 0.95],
      ['rtn', 1, 0.92],
      ['watersic', 0.2, 0.99],
    ] as const) {
      let ratio = 0;
      for (let seed = 1; seed <= 4; seed++) {
        const wSeed = gaussianMatrix(n, 256, seed);
        const sigma = spreadSpectrumCovariance(n, 3, seed).sigma;
        const plain = quantizeWeights(wSeed, sigma, { method, step });
        const rescaled = quantizeWeights(wSeed, sigma, { method, step, rescale: true });
        ratio += rescaled.distortion(wSeed, sigma) / plain.distortion(wSeed, sigma) / 4;
      }
      expect(ratio, method).toBeLessThan(bound);
    }
  });

  it('the diagonal rescalers never increase the damped distortion', () => {
    const w = draws[0]?.w as Matrix;
    const q = quantizeWeights(w, spreadSpectrumCovariance(n, 3, 1).sigma, { method: 'gptq', rate: 3, rescale: true });
    const objective = q.analysis?.rescaleObjective;
    expect(objective).toBeDefined();
    expect(objective?.after).toBeLessThanOrEqual(objective?.before as number);
  });

  it.each(['gptq', 'watersic'] as const)('%s: the rescale objectives are tr(ΔHΔᵀ) of the decodes without and with the fit, H = Σ_X + δ·mean(diag Σ_X)·I', (method) => {
    // Recomputed with the full n × n form (both triangles, not the code's lower-triangle sum).
    const inputs = 16;
    const outputs = 24;
    const w = gaussianMatrix(inputs, outputs, 60);
    const sigma = spreadSpectrumCovariance(inputs, 2, 4).sigma;
    let trace = 0;
    for (let i = 0; i < inputs; i++) trace += sigma.data[i * inputs + i] as number;
    const shift = (DEFAULT_DAMPING * trace) / inputs;
    const objective = (decoded: Matrix): number => {
      let total = 0;
      for (let j = 0; j < outputs; j++) {
        const delta = (i: number): number => (w.data[j * inputs + i] as number) - (decoded.data[j * inputs + i] as number);
        for (let i = 0; i < inputs; i++) {
          for (let k = 0; k < inputs; k++) total += delta(i) * ((sigma.data[i * inputs + k] as number) + (i === k ? shift : 0)) * delta(k);
        }
      }
      return total;
    };
    const plain = quantizeWeights(w, sigma, { method, step: 0.3 });
    const rescaled = quantizeWeights(w, sigma, { method, step: 0.3, rescale: true });
    const reported = rescaled.analysis?.rescaleObjective;
    expect(reported).toBeDefined();
    expect(reported?.before).toBeCloseTo(objective(plain.decode()), 9);
    expect(reported?.after).toBeCloseTo(objective(rescaled.decode()), 9);
    expect(reported?.after).toBeLessThan(reported?.before as number);
  });

  it.each([5, 13, 15])('weights within 1e-9 of the grid: a refit that f32 rounding makes worse than the step itself is dropped (seed %i)', (seed) => {
    // W = fround(z·Δ) + 1e-9·noise: GPTQ at step Δ gives the codes z, and the scales (Δ, t = 1) are all
    // but optimal, so the alternating fit can only land on f32 scales a rounding away from them, which
    // for these seeds (found by search) give a larger damped objective. Such a fit must be dropped: the
    // objective never increases, and a dropped fit leaves the step and unit row scales.
    const inputs = 12;
    const outputs = 16;
    const step = 0.1;
    const z = gaussianMatrix(inputs, outputs, 40 + seed);
    const noise = gaussianMatrix(inputs, outputs, 400 + seed);
    const w: Matrix = { rows: inputs, cols: outputs, data: z.data.map((v, k) => Math.fround(Math.round(4 * v) * Math.fround(step)) + 1e-9 * (noise.data[k] as number)) };
    const sigma = spreadSpectrumCovariance(inputs, 3, seed).sigma;
    const q = quantizeWeights(w, sigma, { method: 'gptq', step, rescale: true });
    const objective = q.analysis?.rescaleObjective;
    expect(objective).toBeDefined();
    expect(objective?.after).toBeLessThanOrEqual(objective?.before as number);
    if (objective?.after === objective?.before) {
      expect(Array.from(q.columnScales)).toEqual(new Array<number>(inputs).fill(Math.fround(step)));
      expect(Array.from(q.rowScales ?? [])).toEqual(new Array<number>(outputs).fill(1));
    }
  });
});
