import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { LatticeMatmulError } from '../../src/errors.js';
import { matmulATExact, type Matrix } from '../../src/matrix.js';
import { decodeRotated } from '../../src/product/decodeRotated.js';
import { dequantize } from '../../src/product/dequantize.js';
import { matvecAT } from '../../src/product/matvec.js';
import { quantize, type QuantizeOptions } from '../../src/quantize/quantize.js';
import type { QuantizedMatrix } from '../../src/quantize/quantizedMatrix.js';
import { resolveScheme, type UniversalLatticeScheme } from '../../src/quantize/schemes.js';
import { rotationPlan } from '../../src/rotation/hadamard.js';
import { gaussianMatrix } from '../../src/rotation/random.js';
import { RandomizedHadamard } from '../../src/rotation/randomizedHadamard.js';
// Spikes plus noise: rotated or not, they reach far into the escape shells (non-root escapes).
import { spikyMatrix as spiky } from '../format/containerFuzzProperty.js';

/*
 * The CPU GEMV `matvecAT(q, x)` = ⟨ŵ_j, R·x⟩ + μ_j·Σx against the other way round,
 * `matmulATExact(dequantize(q), x)` = Σ_i (Rᵀŵ_j + μ_j)_i·x_i. In exact arithmetic the two are equal
 * (every stage is c·H·D on a window, and ⟨ŵ, c·H·D·x⟩ = ⟨c·D·Hᵀ·ŵ, x⟩ with the same c), so they
 * differ only by f32 roundings, which give the tolerance (u = 2^−24, γ_k = k·u/(1 − k·u)):
 *   - one rotation stage c·H_m·H_{2^k}·D in f32 (`RandomizedHadamard`'s order: m − 1 sequential
 *     additions per H_m output, then k butterfly levels, then ×c) errs, in ℓ2, by at most
 *     ρ = √m·γ_{m−1} + (k + 2)·u times the norm of its input: H_m's sums err by γ_{m−1}·Σ|inputs of
 *     the block| per output, i.e. ≤ m·γ_{m−1}·‖x‖₂ over the vector against ‖H_m‖ = √m; each butterfly
 *     level adds u times its output's norm, which the exact later levels grow by √2 each like the
 *     signal; ×c and c's own rounding add 2u. Stages are orthogonal, so their errors add up (ρ_R = Σ ρ).
 *   - By Cauchy–Schwarz the rotation of x (matvecAT) and the inverse rotation of ŵ after its rounding
 *     to f32 (dequantize) cost at most (2ρ_R + u)·‖ŵ‖₂·‖x‖₂ (nothing without rotation); the remaining
 *     roundings are elementwise: ŵ to f32 without rotation, u·Σ|ŵ_i·x̃_i|, the mean addition,
 *     u·Σ(|D_i| + |μ|)·|x_i| with D = dequantize(q), and the two results' rounding to f32, u·(|y| + |y_ref|). float64 sums add
 *     ≈ N·2^−53, nothing at this scale.
 *   - The test allows twice that (second-order terms), and checks that the bound is small against the
 *     product's own scale, so a wrong coordinate, sign, scale or mean would fail it.
 */

const U = 2 ** -24;

const universal = (lattice: 'D3' | 'E8', q: number, beta: number): UniversalLatticeScheme => ({ kind: 'lattice', mode: 'universal', lattice, q, beta });


/** `options` with the dither nonce kept only for universal schemes (the others refuse one). */
function withNonce(options: QuantizeOptions): QuantizeOptions {
  const scheme = resolveScheme(options.scheme);
  if (scheme.kind === 'lattice' && scheme.mode !== 'deterministic') return options;
  const { nonce: _nonce, ...rest } = options;
  return rest;
}

/** ρ_R = Σ over the rotation's stages of √m·γ_{m−1} + (log2 pow2 + 2)·u (0 without rotation). */
function rotationError(q: QuantizedMatrix): number {
  if (!q.rotate) return 0;
  let total = 0;
  for (const stage of rotationPlan(q.rows).stages) {
    const sums = stage.m - 1;
    total += Math.sqrt(stage.m) * ((sums * U) / (1 - sums * U)) + (Math.log2(stage.pow2) + 2) * U;
  }
  return total;
}

interface Comparison {
  /** max |matvecAT − reference| / tolerance over all entries (must be ≤ 1). */
  readonly worst: number;
  /** max tolerance / (Σ_i |D_i x_i| + |μ|·Σ|x_i|): how tight the check is against the product's scale. */
  readonly looseness: number;
}

function compare(q: QuantizedMatrix, x: Matrix): Comparison {
  const y = matvecAT(q, x);
  expect([y.rows, y.cols]).toEqual([q.cols, x.cols]);
  expect(y.data).toBeInstanceOf(Float32Array);
  const d = dequantize(q);
  const reference = matmulATExact(d, x);
  const rotated = decodeRotated(q);
  const rotation = q.rotate ? new RandomizedHadamard(q.rows, q.seed, q.length) : null;
  const rho = rotationError(q);
  let worst = 0;
  let looseness = 0;
  for (let r = 0; r < x.cols; r++) {
    const xr = x.data.subarray(r * x.rows, (r + 1) * x.rows);
    const xRotated = rotation ? rotation.forward(xr) : xr;
    let xNorm2 = 0;
    for (const v of xr) xNorm2 += v * v;
    xNorm2 = Math.sqrt(xNorm2);
    for (let j = 0; j < q.cols; j++) {
      const mean = q.means ? Math.abs(q.means[j] as number) : 0;
      let wNorm2 = 0;
      let rotatedTerms = 0;
      for (let i = 0; i < q.length; i++) {
        const w = rotated[j * q.length + i] as number;
        wNorm2 += w * w;
        rotatedTerms += Math.abs(w * (xRotated[i] as number));
      }
      wNorm2 = Math.sqrt(wNorm2);
      let originalTerms = 0;
      for (let i = 0; i < q.rows; i++) originalTerms += (Math.abs(d.data[j * q.rows + i] as number) + mean) * Math.abs(xr[i] as number);
      const index = r * q.cols + j;
      const got = y.data[index] as number;
      const expected = reference.data[index] as number;
      const rotationTerm = q.rotate ? (2 * rho + U) * wNorm2 * xNorm2 : 0;
      const bound = rotationTerm + U * (rotatedTerms + originalTerms + Math.abs(got) + Math.abs(expected));
      const tolerance = 2 * bound + 1e-300;
      worst = Math.max(worst, Math.abs(got - expected) / tolerance);
      if (originalTerms > 0) looseness = Math.max(looseness, tolerance / originalTerms);
    }
  }
  return { worst, looseness };
}

/** Quantizes `w` and checks matvecAT against the dequantized product for `x`. */
function check(w: Matrix, x: Matrix, options: QuantizeOptions): void {
  const { worst, looseness } = compare(quantize(w, withNonce(options)), x);
  expect(worst).toBeLessThanOrEqual(1);
  // The bound is ≈ 100·2^−24 relative to the product: far below any real mistake.
  expect(looseness).toBeLessThan(1e-4);
}

describe('matvecAT (CPU GEMV) = matmulATExact(dequantize(q), x)', () => {
  const schemes: [string, QuantizeOptions['scheme']][] = [
    ['d3-q6 (universal D3)', 'd3-q6'],
    ['e8-q16 (universal E8)', 'e8-q16'],
    ['universal E8 q = 24 (37-bit codes)', universal('E8', 24, 0.15)],
    ['e8-q16-deterministic', 'e8-q16-deterministic'],
    ['d3-q6-deterministic', 'd3-q6-deterministic'],
    ['int4-g32 (scalar)', 'int4-g32'],
    ['nvfp4 (scalar)', 'nvfp4'],
  ];
  for (const [name, scheme] of schemes) {
    it(`${name}: n = 100 (padded), 7 columns, k = 3`, () => {
      check(gaussianMatrix(100, 7, 1), gaussianMatrix(100, 3, 2), { scheme, seed: 5, nonce: 21 });
    });
    it(`${name}: centred, n = 300 (padded to 320), k = 1`, () => {
      const w = gaussianMatrix(300, 5, 3);
      for (let i = 0; i < w.data.length; i++) w.data[i] = (w.data[i] as number) + 2 + (i % 7) * 0.1;
      check(w, gaussianMatrix(300, 1, 4), { scheme, seed: 6, nonce: 22, center: true });
    });
  }

  it('n = 1100: a rotation of two overlapping windows', () => {
    for (const scheme of ['d3-q6', 'e8-q16', 'int4-g32'] as const) check(gaussianMatrix(1100, 3, 30), gaussianMatrix(1100, 2, 31), { scheme, seed: 9, nonce: 32, center: scheme === 'e8-q16' });
  });

  it('n = 1 (one rotated coordinate, one partial block)', () => {
    for (const scheme of ['d3-q6', 'e8-q16', 'int4-g32', 'e8-q16-deterministic'] as const) check(gaussianMatrix(1, 4, 5), gaussianMatrix(1, 2, 6), { scheme, seed: 1, nonce: 23 });
  });

  it('unrotated spiky matrices with non-root escapes (E8 q = 4, D3 q = 5)', () => {
    const qE8 = quantize(spiky(64, 9, 7), { scheme: universal('E8', 4, 0.3), seed: 3, nonce: 11, rotate: false });
    expect(qE8.kind === 'lattice' && qE8.mode === 'universal' && qE8.longEscapes.length > 0).toBe(true);
    for (const q of [qE8, quantize(spiky(60, 9, 8), { scheme: universal('D3', 5, 0.2), seed: 3, nonce: 12, rotate: false })]) {
      const { worst } = compare(q, gaussianMatrix(q.rows, 3, 9));
      expect(worst).toBeLessThanOrEqual(1);
    }
  });

  it('time-sharing (keepFraction 0.4): the dropped coordinates count as zero', () => {
    check(gaussianMatrix(200, 4, 10), gaussianMatrix(200, 2, 11), { scheme: 'e8-q16', seed: 2, nonce: 24, keepFraction: 0.4 });
  });

  it('a zero column gives its mean term only', () => {
    const w = gaussianMatrix(50, 3, 12);
    for (let i = 50; i < 100; i++) w.data[i] = 1.5; // column 1 is constant: centred, it is all zero
    const x = gaussianMatrix(50, 1, 13);
    const q = quantize(w, { scheme: 'd3-q6', seed: 4, nonce: 25, center: true });
    const y = matvecAT(q, x);
    let xSum = 0;
    for (const v of x.data) xSum += v;
    expect(y.data[1]).toBeCloseTo(1.5 * xSum, 5);
    expect(compare(q, x).worst).toBeLessThanOrEqual(1);
  });

  it('random shapes, schemes and options (fast-check, fixed seed)', () => {
    const schemeArbitrary = fc.constantFrom<QuantizeOptions['scheme']>('d3-q6', 'e8-q16', 'e8-q16-deterministic', 'int4-g32', universal('D3', 9, 0.3));
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 260 }),
        fc.integer({ min: 1, max: 5 }),
        fc.integer({ min: 1, max: 4 }),
        schemeArbitrary,
        fc.boolean(),
        fc.boolean(),
        fc.integer({ min: 0, max: 1000 }),
        (rows, cols, k, scheme, center, rotate, seed) => {
          const q = quantize(gaussianMatrix(rows, cols, seed), withNonce({ scheme, seed: seed + 1, nonce: seed + 2, center, rotate }));
          const { worst } = compare(q, gaussianMatrix(rows, k, seed + 3));
          expect(worst).toBeLessThanOrEqual(1);
        },
      ),
      { seed: 20240611, numRuns: 40 },
    );
  });

  it('finite x whose f32 rotation would overflow (64 entries of 1e38) gives the product, not NaN', () => {
    // ‖W‖·‖x‖ ≈ 1e10 is far inside the product range, but the Hadamard sums of x reach 64·1e38.
    const n = 64;
    const w = gaussianMatrix(n, 2, 1);
    const q = quantize({ rows: n, cols: 2, data: w.data.map((v) => v * 1e-29) }, { scheme: 'e8-q16', nonce: 5 });
    const x = { rows: n, cols: 1, data: new Float32Array(n).fill(1e38) };
    const y = matvecAT(q, x).data;
    const reference = matmulATExact(dequantize(q), x).data;
    for (let j = 0; j < 2; j++) expect(Math.abs((y[j] as number) - (reference[j] as number))).toBeLessThan(1e-5 * Math.abs(reference[j] as number));
    // Power-of-two scaling is exact: x·2^−100 gives the same product times 2^−100, bit for bit.
    const down = matvecAT(q, { ...x, data: x.data.map((v) => v * 2 ** -100) }).data;
    expect(Array.from(down, (v) => v * 2 ** 100)).toEqual(Array.from(y));
  });

  it('takes a Float32Array as one column, as GpuEngine.matvec does', () => {
    const q = quantize(gaussianMatrix(13, 3, 21), { scheme: 'd3-q6', seed: 2, nonce: 7 });
    const x = gaussianMatrix(13, 1, 22);
    const y = matvecAT(q, x.data);
    expect([y.rows, y.cols]).toEqual([3, 1]);
    expect(Array.from(y.data)).toEqual(Array.from(matvecAT(q, x).data));
    expect(() => matvecAT(q, new Float32Array(12))).toThrow(/x has 12 rows, but the quantized matrix has 13/);
    expect(() => matvecAT(q, new Float32Array(13).fill(Number.POSITIVE_INFINITY))).toThrow(/non-finite entry Infinity at row 0/);
  });

  it('refuses x with the wrong number of rows, non-finite x, and a non-matrix', () => {
    const q = quantize(gaussianMatrix(16, 2, 14), { scheme: 'd3-q6', seed: 1, nonce: 26 });
    expect(() => matvecAT(q, gaussianMatrix(15, 1, 15))).toThrow(LatticeMatmulError);
    expect(() => matvecAT(q, gaussianMatrix(15, 1, 15))).toThrow(/x has 15 rows, but the quantized matrix has 16/);
    const bad = gaussianMatrix(16, 1, 16);
    bad.data[3] = Number.NaN;
    expect(() => matvecAT(q, bad)).toThrow(/non-finite entry NaN at row 3/);
    expect(() => matvecAT(null as unknown as QuantizedMatrix, bad)).toThrow(/q must be a quantized matrix/);
    // Another typed array or an array for x is named as such (was "x.rows must be a positive integer, got undefined").
    for (const x of [new Float64Array(16), Array.from({ length: 16 }, () => 1), null]) {
      expect(() => matvecAT(q, x as unknown as Float32Array)).toThrow(/matvecAT: x must be a Float32Array or a Matrix \{ rows, cols, data \}, got /);
    }
    expect(() => matvecAT(q, new Float64Array(16) as unknown as Float32Array)).toThrow(/got a Float64Array/);
  });

  it.each(['d3-q6', 'd3-q6-deterministic', 'int3-absmax'] as const)('%s: a product whose entries could leave the f32 range is refused, not returned as ±Infinity', (scheme) => {
    // W's columns have norms ≈ 2^90·√256 = 2^94 and x's ≈ 2^40·16 = 2^44: ‖w_j‖·‖x‖ ≈ 2^138, past f32's
    // 2^128, and W = x·2^50 (parallel) makes the entries reach it. x·2^-80 gives 2^58: answered, finite.
    const x = gaussianMatrix(256, 1, 17);
    const scaled = (m: Matrix, factor: number): Matrix => ({ ...m, data: m.data.map((v) => v * factor) });
    const q = quantize(scaled({ rows: 256, cols: 2, data: Float32Array.from([...x.data, ...x.data.map((v) => -v)]) }, 2 ** 90), { scheme });
    expect(() => matvecAT(q, scaled(x, 2 ** 40))).toThrow(/beyond the f32 range; scale A or B down by a power of two/);
    expect(matvecAT(q, scaled(x, 2 ** -80)).data.every(Number.isFinite)).toBe(true);
  });
});
