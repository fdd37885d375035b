import { describe, expect, it } from 'vitest';
import { LatticeMatmulError } from '../../src/errors.js';
import { gaussianMatrix } from '../../src/rotation/random.js';
import { quantizeWeights } from '../../src/weightonly/index.js';
import { searchStepForRate } from '../../src/weightonly/rateSearch.js';
import { spreadSpectrumCovariance } from '../../src/weightonly/syntheticCovariance.js';

/** Brute-force rate: per input feature, −Σ p log2 p of its codes over the outputs; mean over inputs. */
function bruteForceCodeRate(codes: Int32Array, n: number, outputs: number): number {
  let total = 0;
  for (let i = 0; i < n; i++) {
    const counts = new Map<number, number>();
    for (let j = 0; j < outputs; j++) counts.set(codes[j * n + i] as number, (counts.get(codes[j * n + i] as number) ?? 0) + 1);
    for (const c of counts.values()) total -= (c / outputs) * Math.log2(c / outputs);
  }
  return total / n;
}

describe('searchStepForRate', () => {
  it.each([0.5, 3, 7.25])('finds the step of a smooth rate curve (target %f)', (target) => {
    // rate(s) = 2 − 1.3·log2(s): the exact answer is s = 2^((2 − target)/1.3).
    const result = searchStepForRate((s) => ({ rate: 2 - 1.3 * Math.log2(s) }), { target, tolerance: 1e-6, initialStep: 1 });
    expect(result.step).toBeCloseTo(2 ** ((2 - target) / 1.3), 4);
    expect(result.evaluations).toBeLessThan(10);
  });

  it('converges on a curve far from the slope −1 and a bad initial guess', () => {
    const result = searchStepForRate((s) => ({ rate: 10 / (1 + s) }), { target: 2, tolerance: 1e-4, initialStep: 1e-3 });
    expect(10 / (1 + result.step)).toBeCloseTo(2, 3);
  });

  it('a plateau below the target (weights with few distinct values) ends in a few evaluations, naming the cause', () => {
    // The rate stops at 2.77 bits for every step below 1 (the codes are the weights' few values, up to
    // scale) until the codes overflow below 2^-20. A secant step of |f| at a time spent all 40
    // evaluations on the plateau; now it jumps 8 bits there and stops within 1/64 bit of the overflow.
    let calls = 0;
    const plateau = (s: number): { rate: number } | null => {
      calls++;
      return s < 2 ** -20 ? null : { rate: Math.min(2.77, 1 - Math.log2(s)) };
    };
    expect(() => searchStepForRate(plateau, { target: 3, tolerance: 0.01, initialStep: 4 })).toThrow(
      /could not reach rate 3 ± 0\.01 bits: the closest was 2\.77 .*already too small for the weights \(a code beyond ±2\^24: the weights take too few distinct values/,
    );
    expect(calls).toBeLessThanOrEqual(20); // 16 measured; 40 (the cap) before
  });

  it('a plateau followed by a rise (few values plus tiny noise) is crossed, not mistaken for the end', () => {
    // Rate 2 for steps in [2^-12, 1], then one bit per halving; overflow below 2^-30. Target 4: s = 2^-14.
    const rate = (s: number): { rate: number } | null => (s < 2 ** -30 ? null : { rate: s >= 2 ** -12 ? 2 : 2 + (-12 - Math.log2(s)) });
    const result = searchStepForRate(rate, { target: 4, tolerance: 0.01, initialStep: 0.5 });
    expect(Math.log2(result.step)).toBeCloseTo(-14, 2);
    expect(result.evaluations).toBeLessThanOrEqual(20);
  });

  it('settles for a closest point exactly at the tolerance (the band is closed), and only beyond it throws', () => {
    // One step of the staircase at s = 1: rate 4.5 below it, 3.5 from it on. For target 4 the best any
    // step does is a miss of 0.5 (exact in binary), which the half-tolerance aim never accepts.
    const step = (s: number): { rate: number } => ({ rate: s < 1 ? 4.5 : 3.5 });
    const result = searchStepForRate(step, { target: 4, tolerance: 0.5, initialStep: 1 });
    expect(Math.abs(result.result.rate - 4)).toBe(0.5);
    expect(() => searchStepForRate(step, { target: 4, tolerance: 0.5 - 2 ** -20, initialStep: 1 })).toThrow(/could not reach rate 4/);
  });

  it('throws a LatticeMatmulError when a staircase skips the tolerance band', () => {
    const staircase = (s: number): { rate: number } => ({ rate: Math.floor(4 - Math.log2(s)) });
    expect(() => searchStepForRate(staircase, { target: 2.5, tolerance: 0.01, initialStep: 1 })).toThrow(LatticeMatmulError);
    expect(() => searchStepForRate(staircase, { target: 2.5, tolerance: 0.01, initialStep: 1 })).toThrow(/could not reach rate 2.5/);
    // No step overflowed (evaluate never returned null): the cause named is the coarse entropy, not the code range.
    expect(() => searchStepForRate(staircase, { target: 2.5, tolerance: 0.01, initialStep: 1 })).toThrow(/moves in coarse jumps/);
    expect(() => searchStepForRate(staircase, { target: 2.5, tolerance: 0.01, initialStep: 1 })).not.toThrow(/too small for the weights/);
  });

  it.each([0.08, -0.08])('aims at half the tolerance: a first step %f off the target (inside ±0.1, outside ±0.05) is improved on', (offset) => {
    // rate(s) = 4 + offset − log2(s): the first guess s = 1 misses by |offset|; the secant of slope −1 then lands on the target.
    const rate = (s: number): { rate: number } => ({ rate: 4 + offset - Math.log2(s) });
    const found = searchStepForRate(rate, { target: 4, tolerance: 0.1, initialStep: 1 });
    expect(found.evaluations).toBeGreaterThan(1);
    expect(Math.abs(found.result.rate - 4)).toBeLessThanOrEqual(0.05);
  });
});

describe('quantizeWeights hits the requested rate', () => {
  const n = 32;
  const outputs = 1024;
  const w = gaussianMatrix(n, outputs, 1);
  const { sigma } = spreadSpectrumCovariance(n, 3, 2);
  const cases = (['watersic', 'gptq', 'rtn'] as const).flatMap((method) => [2, 3, 4, 5].map((rate) => [method, rate] as const));
  it.each(cases)('%s at %i bits: |rate − target| ≤ 0.01, rate = entropy of the codes + side information', (method, target) => {
    const q = quantizeWeights(w, sigma, { method, rate: target, rotate: target % 2 === 0 });
    expect(Math.abs(q.rate - target)).toBeLessThanOrEqual(0.01);
    // Independent recount: entropy by brute force, side information by the documented rule
    // (n f32 steps for WaterSIC, one shared f32 step for GPTQ and RTN).
    const side = method === 'watersic' ? 32 * n : 32;
    expect(q.rate).toBeCloseTo(bruteForceCodeRate(q.codes, n, outputs) + side / (n * outputs), 10);
  });

  it.each(['watersic', 'gptq'] as const)('%s: counts the rescalers (n column scales and 32 bits per output) in the side information and still hits the rate', (method) => {
    // With rescale: true every method stores one fitted f32 scale per input feature (GPTQ's shared step no
    // longer is one) plus one per output.
    const q = quantizeWeights(w, sigma, { method, rate: 3, rescale: true });
    expect(q.sideInfoBits).toBe(32 * n + 32 * outputs);
    expect(Math.abs(q.rate - 3)).toBeLessThanOrEqual(0.01);
  });

  it('refuses a rate the side information alone exceeds', () => {
    const small = gaussianMatrix(8, 4, 3);
    const { sigma: s8 } = spreadSpectrumCovariance(8, 1, 4);
    // WaterSIC: 32·8 bits over 32 entries = 8 bits per entry of side information.
    expect(() => quantizeWeights(small, s8, { method: 'watersic', rate: 5 })).toThrow(/not above the side information/);
  });
});
