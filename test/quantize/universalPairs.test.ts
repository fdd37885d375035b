import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { testMatrixPair } from '../../src/data/testMatrices.js';
import type { Matrix } from '../../src/matrix.js';
import { LatticeMatmulError } from '../../src/errors.js';
import { decodeRotated } from '../../src/product/decodeRotated.js';
import { matmulAT } from '../../src/product/matmulAT.js';
import { expectedProductError } from '../../src/product/expectedError.js';
import { rotatedSpikeOnConstant } from './rotatedSpikes.js';
import { universalPairProduct } from '../../src/product/universalPairProduct.js';
import { quantize, type QuantizeOptions } from '../../src/quantize/quantize.js';
import type { UniversalLatticeMatrix } from '../../src/quantize/quantizedMatrix.js';
import { blockDither, columnKeys, ditherWordKeys, universalDitherUnit } from '../../src/quantize/universalCode.js';
import { DITHER_GRID, universalCodec } from '../../src/quantize/latticeSpec.js';
import {
  droppedLowMean,
  frexp,
  largestPairShift,
  MAX_DITHER_RADIX_BITS,
  MAX_DITHERED_PAIR_SHIFT,
  MAX_PAIR_RADIX_BITS,
  pairLimit,
  pairProductReference,
  pairRadixBits,
  pairShift,
  pairSums,
  roundShift,
  splitPair,
  universalIntegerCoordinates,
  universalPairColumns,
} from '../../src/quantize/universalPairs.js';
import { SCHEMES } from '../../src/quantize/schemes.js';

/*
 * The pair form's arithmetic (src/quantize/universalPairs.ts), checked against independent
 * computations: the split and the shift on every integer the form can meet (property tests), the
 * integers c against `decodeRotated` (the library's decode), and the pair product plus the term it
 * drops against the exact product of the decoded columns.
 */

function universal(m: Matrix, options: QuantizeOptions): UniversalLatticeMatrix {
  const q = quantize(m, options);
  if (q.kind !== 'lattice' || q.mode !== 'universal') throw new Error('expected a universal matrix');
  return q;
}

describe('pair form arithmetic', () => {
  it('splits every shifted c at every radix 2^r into h in [−128, 127] and l in [−R/2, R/2) with R·h + l = round(c / 2^s), |error| ≤ 2^(s−1)', () => {
    fc.assert(
      fc.property(fc.integer({ min: -(2 ** 30), max: 2 ** 30 }), fc.integer({ min: 0, max: 2 ** 30 }), fc.integer({ min: 0, max: MAX_PAIR_RADIX_BITS }), (c, extra, r) => {
        const largest = Math.min(2 ** 30, Math.abs(c) + extra);
        const s = pairShift(largest, r);
        const rounded = roundShift(c, s);
        const { h, l } = splitPair(rounded, r);
        const radix = 2 ** r;
        expect(h).toBeGreaterThanOrEqual(-128);
        expect(h).toBeLessThanOrEqual(127);
        expect(l).toBeGreaterThanOrEqual(-Math.floor(radix / 2));
        expect(l).toBeLessThan(radix - Math.floor(radix / 2));
        expect(l).toBeLessThanOrEqual(127); // int8 at r = 8 too
        expect(radix * h + l).toBe(rounded);
        expect(Math.abs(rounded * 2 ** s - c)).toBeLessThanOrEqual(s === 0 ? 0 : 2 ** (s - 1));
      }),
      { numRuns: 3000 },
    );
  });

  it('rounds to nearest with ties to even: symmetric, and with mean error 0 over a period of residues (half up had +1/2)', () => {
    fc.assert(
      fc.property(fc.integer({ min: -(2 ** 30), max: 2 ** 30 }), fc.integer({ min: 1, max: 20 }), (c, s) => {
        const rounded = roundShift(c, s);
        const exact = c / 2 ** s;
        expect(Math.abs(rounded - exact)).toBeLessThanOrEqual(0.5);
        if (Math.abs(rounded - exact) === 0.5) expect(Math.abs(rounded % 2)).toBe(0); // a tie goes to the even neighbour
        expect(roundShift(-c, s) + 0).toBe(-rounded + 0); // +0: −0 and 0 are the same integer
      }),
      { numRuns: 3000 },
    );
    // c's low bits are the dither's (uniform): over every residue mod 2^(s+1) the errors cancel exactly.
    for (let s = 1; s <= 7; s++) {
      for (const base of [0, 12345 * 2 ** 8, -(2 ** 20)]) {
        let sum = 0;
        for (let residue = 0; residue < 2 ** (s + 1); residue++) sum += roundShift(base + residue, s) * 2 ** s - (base + residue);
        expect(sum, `s = ${s}, base ${base}`).toBe(0);
      }
    }
  });

  it('takes the smallest shift: none up to pairLimit(r), and each shift only where the one below overflows', () => {
    for (let r = 0; r <= MAX_PAIR_RADIX_BITS; r++) {
      expect(pairShift(0, r)).toBe(0);
      expect(pairShift(pairLimit(r), r)).toBe(0);
      expect(pairShift(pairLimit(r) + 1, r)).toBe(1);
    }
    expect(pairLimit(7)).toBe(16319);
    fc.assert(
      fc.property(fc.integer({ min: 0, max: MAX_PAIR_RADIX_BITS }), fc.integer({ min: 128, max: 2 ** 30 }), (r, largest) => {
        fc.pre(largest > pairLimit(r));
        const s = pairShift(largest, r);
        expect(roundShift(largest, s)).toBeLessThanOrEqual(pairLimit(r));
        expect(roundShift(largest, s - 1)).toBeGreaterThan(pairLimit(r));
      }),
    );
  });

  it('takes the smallest radix that holds every leader and root-escape coordinate (|c| ≤ 512q + 256), at most 2^7', () => {
    for (let q = 1; q <= 64; q++) {
      const r = pairRadixBits(q, 1);
      expect(pairRadixBits(1, q)).toBe(r);
      if (r < MAX_DITHER_RADIX_BITS) expect(pairLimit(r)).toBeGreaterThanOrEqual(512 * q + 256);
      if (r > 0) expect(pairLimit(r - 1)).toBeLessThan(512 * q + 256);
      // R divides DITHER_GRID/pointScale of both lattices (E8: 128, D3: 256), so l = −Z mod R.
      expect(r).toBeLessThanOrEqual(MAX_DITHER_RADIX_BITS);
      expect(128 % 2 ** r).toBe(0);
    }
    expect(MAX_DITHER_RADIX_BITS).toBeLessThanOrEqual(MAX_PAIR_RADIX_BITS);
    // The radices the module comment gives for the presets.
    const radix = (name: 'e8-2bit' | 'd3-q6' | 'e8-3bit' | 'e8-4bit' | 'e8-q16' | 'e8-5bit') => 2 ** pairRadixBits(SCHEMES[name].q, SCHEMES[name].q);
    expect([radix('e8-2bit'), radix('d3-q6'), radix('e8-3bit'), radix('e8-4bit'), radix('e8-q16'), radix('e8-5bit')]).toEqual([16, 32, 32, 64, 128, 128]);
  });

  it('largestPairShift bounds the shift of any column (an unrotated spike reaches it), and MAX_DITHERED_PAIR_SHIFT keeps the rounding the dither’s', () => {
    // A spike is the largest coordinate a column of norm √N can have: it reaches the bound's shift.
    for (const [lattice, q, beta] of [['E8', 16, 0.25], ['E8', 24, 0.142], ['D3', 6, 0.45], ['E8', 64, 0.004], ['D3', 40, 0.01]] as const) {
      for (const n of [8, 1000, 4096]) {
        const spike: Matrix = { rows: n, cols: 1, data: new Float32Array(n) };
        spike.data[n - 1] = -3;
        for (let t = 0; t < 4; t++) {
          const m = universal(spike, { scheme: { kind: 'lattice', mode: 'universal', lattice, q, beta }, rotate: false, nonce: t + 1 });
          const r = pairRadixBits(q, q);
          const shift = universalPairColumns(m, r).shifts[0] as number;
          expect(shift).toBeLessThanOrEqual(largestPairShift(m, r));
          expect(shift).toBeGreaterThanOrEqual(largestPairShift(m, r) - 1);
        }
      }
    }
    // Up to 6 bits the shift keeps bits of −Z only (E8: c = 128λ − Z), its tie bit included.
    expect(2 ** (MAX_DITHERED_PAIR_SHIFT + 1)).toBeLessThanOrEqual(128);
  });

  it('largestPairShift holds at a shift boundary: the decoded spike lies up to the covering radius beyond √N/β', () => {
    // β puts the unrotated spike's fixed point X ≈ DITHER_GRID·√N/β a quarter step below the smallest
    // |c| that takes shift s + 1: the dither moves |c| by up to DITHER_GRID (the covering radius, 1 in
    // units of β, for D3 and E8), past it for some nonces. A bound on √N/β alone (without that radius)
    // gave s and failed here on 5–11 of 32 nonces per case; the spike test above has no column this near.
    for (const [lattice, q] of [['D3', 6], ['E8', 16], ['E8', 3]] as const) {
      const r = pairRadixBits(q, q);
      for (const s of [0, 1]) {
        let threshold = 1;
        while (pairShift(threshold, r) <= s) threshold++;
        const n = 1000;
        const beta = (DITHER_GRID * Math.sqrt(n)) / (threshold - DITHER_GRID / 4);
        const spike: Matrix = { rows: n, cols: 1, data: new Float32Array(n) };
        spike.data[n - 1] = 1;
        let crossed = 0;
        for (let t = 0; t < 32; t++) {
          const m = universal(spike, { scheme: { kind: 'lattice', mode: 'universal', lattice, q, beta }, rotate: false, nonce: t + 1 });
          const shift = universalPairColumns(m, r).shifts[0] as number;
          expect(shift, `${lattice} q = ${q}, s = ${s}, nonce ${t + 1}`).toBeLessThanOrEqual(largestPairShift(m, r));
          if (shift > s) crossed++;
        }
        expect(crossed, `${lattice} q = ${q}, s = ${s}: nonces whose |c| crossed the boundary`).toBeGreaterThan(0);
      }
    }
  });

  it('frexp gives a mantissa in [0.5, 1) and an exponent that rebuild the number exactly (as WGSL frexp)', () => {
    expect(frexp(0)).toEqual({ fract: 0, exp: 0 });
    expect(frexp(1)).toEqual({ fract: 0.5, exp: 1 });
    expect(frexp(0.75)).toEqual({ fract: 0.75, exp: 0 });
    fc.assert(
      fc.property(fc.double({ min: 2 ** -140, max: 2 ** 120, noNaN: true }), (x) => {
        const { fract, exp } = frexp(x);
        expect(fract).toBeGreaterThanOrEqual(0.5);
        expect(fract).toBeLessThan(1);
        expect(fract * 2 ** exp).toBe(x);
      }),
    );
  });
});

describe('pair form of universal matrices', () => {
  const cases: readonly [string, QuantizeOptions][] = [
    ['e8-4bit', { scheme: 'e8-4bit', seed: 3 }],
    ['d3-q6', { scheme: 'd3-q6', seed: 4 }],
    ['e8-5bit (37-bit codes), centred', { scheme: 'e8-5bit', seed: 5, center: true }],
    ['e8-q16, keepFraction 0.6', { scheme: 'e8-q16', seed: 6, keepFraction: 0.6 }],
  ];

  for (const [name, options] of cases) {
    it(`${name}: c·unit·ν is decodeRotated's value, and the pair product + the dropped Σ l_a·l_b is the decoded product (the term's mean added in its place)`, () => {
      const { a, b } = testMatrixPair('heavy-tailed', 75, 5, 4, 11);
      const qa = universal(a, { ...options, nonce: 1 });
      const qb = universal(b, { ...options, nonce: 2 });
      const decodedA = decodeRotated(qa);
      const decodedB = decodeRotated(qb);
      const c = universalIntegerCoordinates(qa);
      const unit = universalDitherUnit(qa);
      for (let j = 0; j < qa.cols; j++) {
        for (let k = 0; k < qa.length; k++) {
          const expected = decodedA[j * qa.length + k] as number;
          expect(Math.abs((qa.norms[j] as number) * unit * (c[j * qa.length + k] as number) - expected)).toBeLessThanOrEqual(1e-12 * (qa.norms[j] as number));
        }
      }
      const r = pairRadixBits(qa.scheme.q, qb.scheme.q);
      const pa = universalPairColumns(qa, r);
      const pb = universalPairColumns(qb, r);
      expect(Math.max(...pa.shifts, ...pb.shifts)).toBe(0); // ordinary data: nothing shifted, so the split is exact
      // l is −Z mod R, the dither's alone (R divides DITHER_GRID/pointScale): l + Z ≡ 0 (mod R), Z from blockDither.
      const codec = universalCodec(qa.scheme.lattice, qa.scheme.q, qa.scheme.beta);
      const d = codec.spec.dimension;
      const z = new Int32Array(d);
      for (let j = 0; j < qa.cols; j++) {
        const keys = ditherWordKeys(columnKeys(qa.nonce, j), qa.ditherKeys);
        for (let k = 0; k < qa.keptLength; k++) {
          if (k % d === 0) blockDither(codec, keys, k / d, z);
          const word = pa.words[(j * pa.unitsPerColumn + Math.floor(k / 8)) * 4 + 2 + ((k % 8) >> 2)] as number;
          const l = ((word >>> (8 * (k & 3))) << 24) >> 24;
          expect((((l + (z[k % d] as number)) % 2 ** r) + 2 ** r) % 2 ** r).toBe(0);
        }
      }
      const product = pairProductReference(qa, pa, qb, pb, false);
      for (let j = 0; j < qb.cols; j++) {
        for (let i = 0; i < qa.cols; i++) {
          let exact = 0;
          for (let k = 0; k < qa.length; k++) exact += (decodedA[i * qa.length + k] as number) * (decodedB[j * qb.length + k] as number);
          if (qa.means !== null && qb.means !== null) exact += qa.rows * (qa.means[i] as number) * (qb.means[j] as number);
          // The product drops Σ l_a·l_b and adds its mean, N/4, in its place (l's mean is −1/2).
          const { ll } = pairSums(pa, i, pb, j);
          const dropped = pa.unit * pb.unit * (qa.norms[i] as number) * (qb.norms[j] as number) * (ll - Math.min(qa.keptLength, qb.keptLength) / 4);
          const scale = (qa.norms[i] as number) * (qb.norms[j] as number);
          expect(Math.abs((product[j * qa.cols + i] as number) + dropped - exact)).toBeLessThanOrEqual(1e-12 * scale);
          // The dropped term is small: within (R/2)²·β²/65536 of ‖â_i‖·‖b̂_j‖ (|l| ≤ R/2, ‖c‖ ≈ DITHER_GRID·√N/β).
          expect(Math.abs(dropped)).toBeLessThan(((2 ** (2 * r - 2) * qa.scheme.beta ** 2) / 65536) * scale);
        }
      }
    });
  }

  it('shifts a column whose largest c is beyond PAIR_LIMIT (an unrotated spike), within 2^(s−1) per coordinate', () => {
    const n = 4096;
    const spike: Matrix = { rows: n, cols: 2, data: new Float32Array(2 * n) };
    spike.data[17] = 5; // column 0: one spike, unrotated: |λ| ≈ √N/β at that coordinate
    for (let k = 0; k < n; k++) spike.data[n + k] = Math.sin(k); // column 1: spread
    const q = universal(spike, { scheme: 'e8-4bit', seed: 1, nonce: 9, rotate: false });
    const r = pairRadixBits(q.scheme.q, q.scheme.q);
    const pairs = universalPairColumns(q, r);
    const c = universalIntegerCoordinates(q);
    expect(pairs.shifts[0]).toBeGreaterThan(0);
    expect(pairs.shifts[1]).toBe(0);
    const s = pairs.shifts[0] as number;
    // Column 0 rebuilt from its pairs: every coordinate within 2^(s−1) of c.
    const { exp } = frexp(q.norms[0] as number);
    expect(pairs.exponents[0]).toBe(exp);
    expect(pairs.factors[0]).toBe(frexp(q.norms[0] as number).fract * 2 ** s);
    for (let k = 0; k < q.length; k++) {
      const unit = Math.floor(k / 8) * 4;
      const lane = k % 8;
      const byte = (word: number) => ((word >>> (8 * (lane & 3))) << 24) >> 24;
      const h = byte(pairs.words[unit + (lane >> 2)] as number);
      const l = byte(pairs.words[unit + 2 + (lane >> 2)] as number);
      expect(Math.abs((2 ** r * h + l) * 2 ** s - (c[k] as number))).toBeLessThanOrEqual(2 ** (s - 1));
    }
  });
});

describe('universalPairProduct', () => {
  it('E8 with q ≥ 32: the Σ l_a·l_b dropped for two unshifted columns has mean N/4 (at radix 2^8 its mean followed the data: 3.1× the guarantee at n = 16384)', () => {
    // One Gaussian column quantized twice (the same data on both sides, so a data-dependent mean of l
    // adds up over all N coordinates). At R = 2^8 an E8 column's l = c mod 256 holds λ's lowest bit
    // (c = 128λ − Z): over these 60 draws the mean of Σ l_a·l_b − N/4 was 9.3 standard errors from 0
    // (q = 32, β = 2, n = 2048), and the pair product's error 3.1× the guarantee at n = 16384. At
    // R ≤ 2^7, l = −Z mod R, the dither's alone. |t| ≤ 4 with 59 degrees of freedom: a false failure about once in 5,500.
    const n = 2048;
    const draws = 60;
    const { a } = testMatrixPair('gaussian', n, 1, 1, 8);
    const samples: number[] = [];
    for (let t = 0; t < draws; t++) {
      const options = { scheme: { kind: 'lattice', mode: 'universal', lattice: 'E8', q: 32, beta: 2 }, seed: 2 } as const;
      const qa = universal(a, { ...options, nonce: 2 * t + 1 });
      const qb = universal(a, { ...options, nonce: 2 * t + 2 });
      const r = pairRadixBits(qa.scheme.q, qb.scheme.q);
      const [pa, pb] = [universalPairColumns(qa, r), universalPairColumns(qb, r)];
      expect([pa.shifts[0], pb.shifts[0]]).toEqual([0, 0]); // the term is dropped for this pair
      samples.push(pairSums(pa, 0, pb, 0).ll - droppedLowMean(n, r));
    }
    const mean = samples.reduce((sum, v) => sum + v, 0) / draws;
    const std = Math.sqrt(samples.reduce((sum, v) => sum + (v - mean) ** 2, 0) / (draws - 1));
    expect(Math.abs(mean) / (std / Math.sqrt(draws))).toBeLessThanOrEqual(4);
  });

  it('two shifted columns (a rotated spike on a constant, both operands): the pair product stays with the decoded one, since their pair keeps Σ l_a·l_b (dropped, its bias was ≈ 6× the guarantee here, 1988× at n = 4096)', () => {
    const n = 1024;
    const seed = 3;
    const a: Matrix = { rows: n, cols: 1, data: rotatedSpikeOnConstant(n, seed, 5) };
    const b: Matrix = { rows: n, cols: 1, data: rotatedSpikeOnConstant(n, seed, 77) };
    const draws = 60;
    let ratio = 0;
    for (let t = 0; t < draws; t++) {
      const qa = universal(a, { scheme: 'e8-5bit', seed, nonce: 2 * t + 11 });
      const qb = universal(b, { scheme: 'e8-5bit', seed, nonce: 2 * t + 12 });
      if (t === 0) {
        const r = pairRadixBits(qa.scheme.q, qb.scheme.q);
        expect([universalPairColumns(qa, r).shifts[0], universalPairColumns(qb, r).shifts[0]].every((shift) => (shift as number) > 0)).toBe(true);
      }
      ratio += ((universalPairProduct(qa, qb).data[0] as number) - (matmulAT(qa, qb).data[0] as number)) ** 2 / expectedProductError(qa, qb) / draws;
    }
    // What is left of pair − decoded is the rounding of the shifted c (zero mean, ties to even): a
    // small share of the guarantee's error (the decoded product's own error is the guarantee; its
    // spread over 60 draws of this spiky pair is too wide to test the pair product against 1 directly).
    expect(ratio).toBeLessThan(0.01);
  });

  it('a shifted column adds no bias: a rotated spike against a rotated constant column, mean over nonces within its noise (half-up rounding gave 2.3 % of the guarantee)', () => {
    // A's columns rotate to a spike plus a small flat part (shifted: its largest c is beyond pairLimit),
    // B's to a constant: a product in which a per-coordinate rounding bias adds up over all N coordinates.
    const n = 1024;
    const cols = 4;
    const seed = 3;
    const a = new Float32Array(n * cols);
    const b = new Float32Array(n * cols);
    for (let j = 0; j < cols; j++) {
      a.set(rotatedSpikeOnConstant(n, seed, (j * 97) % n), j * n);
      b.set(rotatedSpikeOnConstant(n, seed, null, 1), j * n);
    }
    const draws = 120;
    const mean = new Float64Array(cols * cols);
    let perDraw = 0;
    let guarantee = 0;
    for (let t = 0; t < draws; t++) {
      const qa = universal({ rows: n, cols, data: a }, { scheme: 'e8-4bit', seed, nonce: 2 * t + 1 });
      const qb = universal({ rows: n, cols, data: b }, { scheme: 'e8-4bit', seed, nonce: 2 * t + 2 });
      if (t === 0) expect(universalPairColumns(qa, pairRadixBits(12, 12)).shifts.every((shift) => shift > 0)).toBe(true);
      guarantee = expectedProductError(qa, qb);
      const pair = universalPairProduct(qa, qb).data;
      const decoded = matmulAT(qa, qb).data;
      for (let i = 0; i < mean.length; i++) {
        const d = (pair[i] as number) - (decoded[i] as number);
        mean[i] = (mean[i] as number) + d / draws;
        perDraw += (d * d) / draws;
      }
    }
    // ‖mean‖² is the draws' noise alone, E‖d‖²/draws (measured 1.3·10⁻⁶ of the guarantee; the pairs
    // keep Σ l_a·l_b, A's column being shifted). Dropping that term here added its mean (l's mean is
    // −1/2 in B's unshifted column, data-dependent in A's): 1.8·10⁻⁵; half-up rounding of the shifted
    // column added 2.6·10⁻². The bound, 6·10⁻⁶, is above the noise's 16-degree χ² at 10⁻⁴ (≈ 3.4×).
    const meanSquare = mean.reduce((sum, v) => sum + v * v, 0);
    expect(meanSquare / guarantee).toBeLessThan(6e-6);
    // And the pair product's own noise stays a small share of the guarantee's error.
    expect(perDraw / guarantee).toBeLessThan(2e-3);
  });

  it('two unshifted columns: the Σ l_a·l_b it drops has mean N/4, which it adds, so pair − decoded has mean 0 over nonces', () => {
    // e8-2bit (R = 16): the dropped term's mean, N/4, is 3√N/R² ≈ 0.37 of its standard deviation
    // √N·R²/12 per entry at N = 1024, so 40 draws × 16 entries tell a bias of N/4 (≈ 9 standard errors)
    // from none.
    const n = 1024;
    const cols = 4;
    const draws = 40;
    const { a, b } = testMatrixPair('gaussian', n, cols, cols, 5);
    const samples: number[] = [];
    for (let t = 0; t < draws; t++) {
      const qa = universal(a, { scheme: 'e8-2bit', seed: 2, nonce: 2 * t + 1 });
      const qb = universal(b, { scheme: 'e8-2bit', seed: 2, nonce: 2 * t + 2 });
      const r = pairRadixBits(qa.scheme.q, qb.scheme.q);
      expect(r).toBe(4);
      const [pa, pb] = [universalPairColumns(qa, r), universalPairColumns(qb, r)];
      expect(Math.max(...pa.shifts, ...pb.shifts)).toBe(0);
      const pair = universalPairProduct(qa, qb).data;
      const decoded = matmulAT(qa, qb).data;
      for (let j = 0; j < cols; j++) {
        for (let i = 0; i < cols; i++) {
          // In c² units: decoded − pair = Σ l_a·l_b − what the product put in its place.
          const cUnit = pa.unit * pb.unit * (qa.norms[i] as number) * (qb.norms[j] as number);
          samples.push(((decoded[j * cols + i] as number) - (pair[j * cols + i] as number)) / cUnit);
        }
      }
    }
    const mean = samples.reduce((sum, v) => sum + v, 0) / samples.length;
    const standardError = Math.sqrt(samples.reduce((sum, v) => sum + (v - mean) ** 2, 0) / (samples.length - 1) / samples.length);
    // The spread is the dropped term's own: √N·R²/12 ≈ 683 per entry (within 20 %).
    expect(standardError * Math.sqrt(samples.length)).toBeGreaterThan(0.8 * (Math.sqrt(n) * 256) / 12);
    expect(standardError * Math.sqrt(samples.length)).toBeLessThan(1.2 * (Math.sqrt(n) * 256) / 12);
    expect(Math.abs(mean)).toBeLessThan(4 * standardError);
    // A product that dropped the term whole would be N/4 = 256 off on average: far outside that.
    expect(n / 4).toBeGreaterThan(6 * standardError);
  });

  it('is matmulAT minus the dropped term, a Gram matrix keeps its exact diagonal, and it refuses what matmulAT refuses and non-universal operands', () => {
    const { a, b } = testMatrixPair('gaussian', 40, 4, 3, 2);
    const qa = universal(a, { scheme: 'e8-4bit', seed: 1, nonce: 1 });
    const qb = universal(b, { scheme: 'e8-4bit', seed: 1, nonce: 2 });
    const c = universalPairProduct(qa, qb);
    const r = pairRadixBits(12, 12);
    const [pa, pb] = [universalPairColumns(qa, r), universalPairColumns(qb, r)];
    expect([c.rows, c.cols]).toEqual([4, 3]);
    // Against matmulAT (the decoded product, another code path), less the dropped Σ l_a·l_b term (less its mean), within
    // the f32 rounding of the result (was compared with pairProductReference, which it is made of).
    const reference = matmulAT(qa, qb);
    for (let j = 0; j < 3; j++) {
      for (let i = 0; i < 4; i++) {
        const scale = (qa.norms[i] as number) * (qb.norms[j] as number);
        const dropped = pa.unit * pb.unit * scale * (pairSums(pa, i, pb, j).ll - qa.keptLength / 4);
        expect(Math.abs((c.data[j * 4 + i] as number) + dropped - (reference.data[j * 4 + i] as number)), `entry ${i}, ${j}`).toBeLessThanOrEqual(1e-6 * scale);
      }
    }
    // And the dropped term matters at this tolerance: without it some entry is off by more.
    let largestDropped = 0;
    for (let j = 0; j < 3; j++) for (let i = 0; i < 4; i++) largestDropped = Math.max(largestDropped, Math.abs(pa.unit * pb.unit * (pairSums(pa, i, pb, j).ll - qa.keptLength / 4)));
    expect(largestDropped).toBeGreaterThan(1e-6);
    const gram = universalPairProduct(qa, qa);
    for (let i = 0; i < 4; i++) expect(gram.data[i * 4 + i]).toBe(Math.fround((qa.norms[i] as number) ** 2));
    expect(() => universalPairProduct(qa, universal(b, { scheme: 'e8-4bit', seed: 2, nonce: 3 }))).toThrow(/rotated with different seeds/);
    expect(() => universalPairProduct(qa, quantize(b, { scheme: 'e8-q16-deterministic', seed: 1 }))).toThrow(/multiplies two universal lattice matrices/);
    expect(() => universalPairProduct(qa, { ...qb, nonce: 1n })).toThrow(LatticeMatmulError);
  });
});
