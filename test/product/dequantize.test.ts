import { describe, expect, it } from 'vitest';
import { column, productNmse, type Matrix } from '../../src/matrix.js';
import { dequantize } from '../../src/product/dequantize.js';
import { matmulAT } from '../../src/product/matmulAT.js';
import { quantize } from '../../src/quantize/quantize.js';
import { SCHEMES } from '../../src/quantize/schemes.js';
import { rotationLength } from '../../src/rotation/hadamard.js';
import { gaussianMatrix } from '../../src/rotation/random.js';
import { expectMeanNearOne, meanAndStd } from '../meanRatio.js';

/** ‖x̂ − x‖² / ‖x‖² over the matrix, or over the matrix minus its column means when `centred`. */
function relativeError(approx: Matrix, exact: Matrix, centred = false): number {
  let error = 0;
  let energy = 0;
  for (let j = 0; j < exact.cols; j++) {
    const x = column(exact, j);
    const mean = centred ? x.reduce((s, v) => s + v, 0) / x.length : 0;
    const y = column(approx, j);
    for (let i = 0; i < x.length; i++) {
      error += ((y[i] as number) - (x[i] as number)) ** 2;
      energy += ((x[i] as number) - mean) ** 2;
    }
  }
  return error / energy;
}

describe('dequantize', () => {
  it.each(['d3-q6', 'e8-q16', 'e8-2bit', 'd3-q6-deterministic', 'e8-q16-deterministic', 'int3-absmax', 'int4-g32', 'nvfp4'] as const)('%s: shape, and per-entry error D with product NMSE averaging to D_a + D_b + D_a·D_b', (scheme) => {
    // For errors e_a ⟂ a (unbiased gain, or subtractive dither) independent of b:
    // E(⟨â, b̂⟩ − ⟨a, b⟩)² ∝ D_a + D_b + D_a·D_b, so a per-entry error D gives a product NMSE of about 2D.
    // Tested as a statistic: m draws — nonce pairs on fixed data for universal schemes, data seeds for
    // the others (whose only randomness is the data) — each giving r = NMSE / (D_a + D_b + D_a·D_b) with
    // that draw's D_a, D_b; |mean r − 1| ≤ 5·max(s, 0.02)/√m + 0.02 (s the sample std of r; 0.02 covers
    // the second-order terms the identity drops for the scalar and deterministic schemes).
    const m = 8;
    const universal = SCHEMES[scheme].kind === 'lattice' && SCHEMES[scheme].mode === 'universal';
    const ratios: number[] = [];
    for (let t = 0; t < m; t++) {
      const a = gaussianMatrix(768, 32, universal ? 1 : 100 + 2 * t);
      const b = gaussianMatrix(768, 32, universal ? 2 : 101 + 2 * t);
      const qa = quantize(a, universal ? { scheme, seed: 5, nonce: 2 * t + 1 } : { scheme, seed: 5 });
      const qb = quantize(b, universal ? { scheme, seed: 5, nonce: 2 * t + 2 } : { scheme, seed: 5 });
      const da = dequantize(qa);
      const db = dequantize(qb);
      expect([da.rows, da.cols, da.data.length]).toEqual([768, 32, 768 * 32]);
      expect(da.data).toBeInstanceOf(Float32Array);
      const errorA = relativeError(da, a);
      const errorB = relativeError(db, b);
      const predicted = errorA + errorB + errorA * errorB;
      ratios.push(productNmse(matmulAT(qa, qb), a, b) / predicted);
    }
    expectMeanNearOne(ratios, 0.02, `${scheme}: NMSE / (D_a + D_b + D_a·D_b)`);
  });

  it('d3-q6-deterministic per-entry error is about 0.03 (half the product NMSE of 0.06): mean over 4 data seeds in [0.0298, 0.0315]', () => {
    // One 768 × 16 matrix's error varies by 0.00028 between data seeds (0.03065 ± 0.00028 over 40,
    // measured): one draw against [0.025, 0.035] let a 14 % larger error pass. 4 seeds: standard error
    // 0.00014, both bounds 6σ from the mean (a false failure about once in 5·10⁸), and a 3 % larger
    // error fails.
    let error = 0;
    for (let seed = 3; seed < 7; seed++) {
      const a = gaussianMatrix(768, 16, seed);
      error += relativeError(dequantize(quantize(a, { scheme: 'd3-q6-deterministic' })), a) / 4;
    }
    expect(error).toBeGreaterThan(0.0298);
    expect(error).toBeLessThan(0.0315);
  });

  // Universal: the error is uniform on β·(Voronoi cell), D = β²σ² per rotated coordinate, whatever the
  // data; n of the N rotated coordinates come back, so E = D·n/N relative to ‖a‖². Tested as a
  // statistic over the dither: 8 nonces on fixed 768 × 16 (or 1000 × 16) data, r = error / (D·n/N) per
  // nonce, |mean r − 1| ≤ 5·max(s, 0.007)/√8 ≈ 0.012 (s the sample std of r). Over 40 nonces per case
  // r's std measured 0.0044–0.0068 (hence the floor 0.007) and its mean 0.9977–1.0011 (the farthest 2.6
  // of its standard errors from 1, of six cases). An encoder step 1 % off the decoder's (e8-q16: D 2.3 %
  // high) fails, where one nonce against ±5 % let it pass.
  it.each([
    ['d3-q6', 0.45 ** 2 / 8],
    ['e8-q16', (0.25 ** 2 * 929) / 12960],
    ['e8-2bit', (1.277 ** 2 * 929) / 12960],
  ] as const)('%s per-entry error averages to D = β²σ²(Λ) = %f (times n/N) over nonces', (scheme, distortion) => {
    for (const n of [768, 1000]) {
      const a = gaussianMatrix(n, 16, 3);
      const predicted = (distortion * n) / rotationLength(n);
      const ratios = Array.from({ length: 8 }, (_, t) => relativeError(dequantize(quantize(a, { scheme, nonce: 9 + t })), a) / predicted);
      const { mean, std } = meanAndStd(ratios);
      expect(Math.abs(mean - 1), `${scheme}, n = ${n}: mean ${mean.toFixed(4)} ± ${std.toFixed(4)} over 8 nonces`).toBeLessThanOrEqual((5 * Math.max(std, 0.007)) / Math.sqrt(8));
    }
  });

  it.each(['d3-q6', 'd3-q6-deterministic'] as const)('%s restores column means: centring codes only the deviations', (scheme) => {
    const n = 768;
    const a = gaussianMatrix(n, 4, 4);
    const offsets = [10, -3, 0, 0.25];
    for (let j = 0; j < 4; j++) for (let i = 0; i < n; i++) a.data[j * n + i] = (a.data[j * n + i] as number) + (offsets[j] as number);
    const centred = dequantize(quantize(a, { scheme, center: true }));
    for (let j = 0; j < 4; j++) {
      const mean = (m: Matrix): number => column(m, j).reduce((s, v) => s + v, 0) / n;
      // The decoded deviations have a mean of order √(D/n) ≈ 0.006 standard deviations.
      expect(Math.abs(mean(centred) - mean(a))).toBeLessThan(0.03);
    }
    // The error is that of the deviations, as if there were no offset…
    expect(relativeError(centred, a, true)).toBeLessThan(0.035);
    // …whereas without centring the offset is coded too and its error dominates.
    const plain = dequantize(quantize(a, { scheme }));
    expect(relativeError(plain, a, true)).toBeGreaterThan(5 * relativeError(centred, a, true));
  });

  it('without rotation and with padding (n = 13) the shape is the input shape', () => {
    for (const [scheme, rotate] of [['e8-q16', true], ['e8-q16', false], ['e8-q16-deterministic', true], ['e8-q16-deterministic', false]] as const) {
      const a = gaussianMatrix(13, 3, 6);
      const back = dequantize(quantize(a, { scheme, rotate }));
      expect([back.rows, back.cols, back.data.length]).toEqual([13, 3, 39]);
      expect(relativeError(back, a)).toBeLessThan(0.1);
    }
  });
});
