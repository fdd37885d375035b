import { describe, expect, it } from 'vitest';
import type { Matrix } from '../../src/matrix.js';
import { gaussianMatrix, Rng } from '../../src/rotation/random.js';
import { quantizeWeights } from '../../src/weightonly/index.js';
import { choleskyLower } from '../../src/weightonly/linalg.js';
import { quantizeAtStep } from '../../src/weightonly/recursion.js';

/** A random SPD covariance as an f32 Matrix (exactly symmetric) and its float64 copy. */
function randomCovariance(n: number, seed: number): { sigma: Matrix; sigma64: Float64Array } {
  const rng = new Rng(seed);
  const m = n + 2;
  const g = Array.from({ length: n * m }, () => rng.nextGaussian() * Math.exp(rng.nextGaussian()));
  const data = new Float32Array(n * n);
  for (let i = 0; i < n; i++) for (let j = 0; j <= i; j++) {
    let s = 0;
    for (let k = 0; k < m; k++) s += (g[i * m + k] as number) * (g[j * m + k] as number);
    const v = s / m + (i === j ? 0.05 : 0);
    data[i * n + j] = v;
    data[j * n + i] = v;
  }
  return { sigma: { rows: n, cols: n, data }, sigma64: Float64Array.from(data) };
}

/**
 * The LDLQ recursion written straight from its definition, O(n³) per output: the target of input i
 * is column i of W·L minus the already decided part Σ_{k>i} Ŵ_k·L_ki; WaterSIC rounds it with step c
 * and refits γ; GPTQ rounds (target / L_ii) with step Δ.
 */
function referenceLdlq(w: Matrix, l: Float64Array, step: number, waterfilling: boolean): { codes: Int32Array; scales: Float32Array; decoded: Float64Array } {
  const n = w.rows;
  const a = w.cols;
  const wAt = (j: number, i: number): number => w.data[j * n + i] as number;
  const decoded = new Float64Array(n * a);
  const codes = new Int32Array(n * a);
  const scales = new Float32Array(n);
  for (let i = n - 1; i >= 0; i--) {
    const lii = l[i * n + i] as number;
    const targets: number[] = [];
    for (let j = 0; j < a; j++) {
      let t = 0;
      for (let k = i; k < n; k++) t += wAt(j, k) * (l[k * n + i] as number);
      for (let k = i + 1; k < n; k++) t -= (decoded[j * n + k] as number) * (l[k * n + i] as number);
      targets.push(t);
    }
    let scale: number;
    const z = targets.map((t) => (waterfilling ? Math.round(t / step) : Math.round(t / lii / Math.fround(step))));
    if (waterfilling) {
      const zt = z.reduce((s, v, j) => s + v * (targets[j] as number), 0);
      const zz = z.reduce((s, v) => s + v * v, 0);
      scale = Math.fround(((zz > 0 ? zt / (step * zz) : 1) * step) / lii);
    } else {
      scale = Math.fround(step);
    }
    scales[i] = scale;
    z.forEach((v, j) => {
      codes[j * n + i] = v;
      decoded[j * n + i] = Math.fround(v * scale);
    });
  }
  return { codes, scales, decoded };
}

/** (W − Ŵ)·L as rows of the math (outputs × n) matrix. */
function transformedError(w: Matrix, decoded: ArrayLike<number>, l: Float64Array): Float64Array {
  const n = w.rows;
  const out = new Float64Array(n * w.cols);
  for (let j = 0; j < w.cols; j++) for (let i = 0; i < n; i++) {
    let s = 0;
    for (let k = i; k < n; k++) s += ((w.data[j * n + k] as number) - (decoded[j * n + k] as number)) * (l[k * n + i] as number);
    out[j * n + i] = s;
  }
  return out;
}

describe('LDLQ recursion (WaterSIC and GPTQ) against a dense reference', () => {
  it.each([
    [1, 4, 0.3],
    [5, 7, 0.2],
    [12, 9, 0.05],
    [24, 16, 0.5],
    // Codes near 2^20: z·scale needs more bits than f32 holds, so the error fed back must be that of the
    // f32 decode, fround(z·scale), as the definition's; the exact product's differs by up to scale/16.
    [8, 64, 4e-6],
  ])('n = %i inputs, %i outputs, step %f: same codes and scales as the definition', (n, outputs, step) => {
    const { sigma, sigma64 } = randomCovariance(n, n);
    const w = gaussianMatrix(n, outputs, 100 + n);
    const l = choleskyLower(sigma64, n);
    for (const method of ['watersic', 'gptq'] as const) {
      const q = quantizeWeights(w, sigma, { method, step, damping: 0 });
      const reference = referenceLdlq(w, l, step, method === 'watersic');
      expect(Array.from(q.codes)).toEqual(Array.from(reference.codes));
      for (let i = 0; i < n; i++) expect(q.columnScales[i]).toBeCloseTo(reference.scales[i] as number, 6);
    }
  });

  it('GPTQ: every entry of (W − Ŵ)·L is a rounding error, |E_ji| ≤ L_ii·Δ/2', () => {
    const n = 16;
    const { sigma, sigma64 } = randomCovariance(n, 7);
    const w = gaussianMatrix(n, 32, 8);
    const step = 0.25;
    const l = choleskyLower(sigma64, n);
    const q = quantizeWeights(w, sigma, { method: 'gptq', step, damping: 0 });
    const e = transformedError(w, q.decode().data, l);
    for (let j = 0; j < 32; j++) for (let i = 0; i < n; i++) {
      expect(Math.abs(e[j * n + i] as number)).toBeLessThanOrEqual(((l[i * n + i] as number) * step) / 2 + 1e-5);
    }
  });

  it('WaterSIC: column i of (W − Ŵ)·L is the least-squares residual of the refit, orthogonal to the codes', () => {
    const n = 10;
    const { sigma, sigma64 } = randomCovariance(n, 9);
    const outputs = 64;
    const w = gaussianMatrix(n, outputs, 10);
    const step = 0.4;
    const l = choleskyLower(sigma64, n);
    const q = quantizeWeights(w, sigma, { method: 'watersic', step, damping: 0 });
    const e = transformedError(w, q.decode().data, l);
    for (let i = 0; i < n; i++) {
      let ez = 0;
      let zz = 0;
      let worst = 0;
      for (let j = 0; j < outputs; j++) {
        const z = q.codes[j * n + i] as number;
        ez += (e[j * n + i] as number) * z;
        zz += z * z;
        worst = Math.max(worst, Math.abs(e[j * n + i] as number));
      }
      // Residual ⊥ z (up to the f32 rounding of the step), and the error stays O(c).
      expect(Math.abs(ez)).toBeLessThan(1e-5 * step * Math.max(1, zz));
      expect(worst).toBeLessThan(step);
    }
  });

  it('waterfilling: the step of input i is (close to) c / L_ii', () => {
    const n = 8;
    const { sigma, sigma64 } = randomCovariance(n, 11);
    const w = gaussianMatrix(n, 2000, 12);
    const c = 0.05;
    const l = choleskyLower(sigma64, n);
    const q = quantizeWeights(w, sigma, { method: 'watersic', step: c, damping: 0 });
    // At this fine step γ ≈ 1, so s_i·L_ii ≈ c for every input whatever its variance.
    for (let i = 0; i < n; i++) expect(((q.columnScales[i] as number) * (l[i * n + i] as number)) / c).toBeCloseTo(1, 2);
  });
});

describe('quantizeAtStep: the code rate it reports', () => {
  /** Entropy in bits of a list of codes, counted in a Map (independent of columnCodeEntropy's array path). */
  function entropyOf(codes: number[]): number {
    const counts = new Map<number, number>();
    for (const z of codes) counts.set(z, (counts.get(z) ?? 0) + 1);
    let h = 0;
    for (const count of counts.values()) h -= (count / codes.length) * Math.log2(count / codes.length);
    return h;
  }

  it.each(['rtn', 'gptq', 'watersic'] as const)('%s: each input feature\'s entropy over its outputs, and their mean', (method) => {
    const n = 6;
    const outputs = 50;
    const { sigma64 } = randomCovariance(n, 21);
    const w = gaussianMatrix(n, outputs, 22);
    // Input feature 2 spread 30× wider and feature 4 all zeros (all its codes 0 for RTN and GPTQ; WaterSIC's
    // feedback still gives it codes): unequal entropies.
    const weights = Float64Array.from(w.data, (v, k) => (k % n === 2 ? 30 * v : k % n === 4 ? 0 : v));
    const q = quantizeAtStep({ method, n, outputs, weights, cholesky: method === 'rtn' ? null : choleskyLower(sigma64, n) }, 0.4);
    if ('overflow' in q) throw new Error('unexpected code overflow');
    const expected = Array.from({ length: n }, (_, i) => entropyOf(Array.from({ length: outputs }, (_, j) => q.codes[j * n + i] as number)));
    if (method !== 'watersic') expect(expected[4]).toBe(0);
    expect(Math.max(...expected)).toBeGreaterThan(2);
    for (let i = 0; i < n; i++) expect(q.featureEntropies[i]).toBeCloseTo(expected[i] as number, 12);
    expect(q.codeRate).toBeCloseTo(expected.reduce((s, h) => s + h, 0) / n, 12);
  });
});
