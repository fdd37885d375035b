import { describe, expect, it } from 'vitest';
import { LatticeMatmulError } from '../../src/errors.js';
import {
  absMax,
  canonicalSum,
  fixedPointNumerator,
  normalizingExponent,
  REDUCTION_LANES,
  toFixedPoint,
} from '../../src/quantize/columnScaling.js';
import { prepareColumn, unscale } from '../../src/quantize/prepareColumn.js';
import { FIXED_POINT_LIMIT, FRACTION_BITS } from '../../src/quantize/scaleGrid.js';
import { RandomizedHadamard } from '../../src/rotation/randomizedHadamard.js';
import { Rng } from '../../src/rotation/random.js';

/**
 * The canonical sum exactly as columnScaling.ts documents it, written independently: 256 lanes,
 * lane l adds the entries i ≡ l (mod 256) in increasing i, then lanes combine pairwise with strides
 * 128, 64, …, 1; every addition (and every square) rounded to f32.
 */
function documentedCanonicalSum(values: Float32Array, length: number, squares: boolean): number {
  const lanes = new Array<number>(256).fill(0);
  for (let i = 0; i < length; i++) {
    const v = values[i] as number;
    const term = squares ? Math.fround(v * v) : v;
    lanes[i % 256] = Math.fround((lanes[i % 256] as number) + term);
  }
  for (let stride = 128; stride >= 1; stride /= 2) {
    for (let l = 0; l < stride; l++) lanes[l] = Math.fround((lanes[l] as number) + (lanes[l + stride] as number));
  }
  return lanes[0] as number;
}

function randomValues(length: number, seed: number, scale = 1): Float32Array {
  const rng = new Rng(seed);
  return Float32Array.from({ length }, () => rng.nextGaussian() * scale);
}

describe('canonicalSum', () => {
  it('uses 256 lanes', () => expect(REDUCTION_LANES).toBe(256));

  it.each([1, 2, 255, 256, 257, 768, 1000, 4096, 6144])('n = %i: bit-identical to the documented order; within 1e-6 of the float64 sum', (n) => {
    const values = randomValues(n, n);
    for (const squares of [false, true]) {
      const result = canonicalSum(values, n, squares);
      expect(Object.is(result, documentedCanonicalSum(values, n, squares))).toBe(true);
      let exact = 0;
      let magnitude = 0;
      for (const v of values) {
        const term = squares ? v * v : v;
        exact += term;
        magnitude += Math.abs(term);
      }
      expect(Math.abs(result - exact)).toBeLessThanOrEqual(1e-6 * magnitude);
    }
  });

  it('sums only the first `length` entries', () => {
    const values = Float32Array.from([1, 2, 3, 100, 1000]);
    expect(canonicalSum(values, 3, false)).toBe(6);
    expect(canonicalSum(values, 3, true)).toBe(14);
    expect(canonicalSum(values, 0, false)).toBe(0);
  });

  it('is not the naive left-to-right f32 sum when the order matters', () => {
    // 2^24 + 1 + 1 … : left to right every +1 is lost; in lanes the ones collect first.
    const values = new Float32Array(512).fill(1);
    values[0] = 2 ** 24;
    let naive = 0;
    for (const v of values) naive = Math.fround(naive + v);
    expect(naive).toBe(2 ** 24);
    expect(canonicalSum(values, values.length, false)).toBe(documentedCanonicalSum(values, values.length, false));
    expect(canonicalSum(values, values.length, false)).toBeGreaterThan(2 ** 24);
  });
});

describe('absMax and normalizingExponent', () => {
  it('absMax is the largest magnitude', () => {
    expect(absMax(Float32Array.from([0.5, -3, 2]))).toBe(3);
    expect(absMax(new Float32Array(4))).toBe(0);
  });

  it('every power of two 2^k, k = −149 … 127, gets e = −k', () => {
    for (let k = -149; k <= 127; k++) expect(normalizingExponent(2 ** k)).toBe(-k);
  });

  it('puts amax·2^e in [1, 2) for normals, subnormals and the f32 maximum', () => {
    const rng = new Rng(9);
    const values = [
      Math.fround(3.4e38),
      3.4028234663852886e38, // largest f32
      1.401298464324817e-45, // smallest subnormal 2^-149
      3 * 2 ** -149,
      Math.fround(1e-40),
      1.1754942106924411e-38, // largest subnormal
      1.1754943508222875e-38, // smallest normal
      Math.fround(1e30),
      Math.fround(1e-30),
      1,
      1.9999999,
      Math.fround(0.1),
    ];
    for (let i = 0; i < 500; i++) values.push(Math.fround(Math.abs(rng.nextGaussian()) * 2 ** (rng.nextInt(250) - 125) + 1e-45));
    for (const amax of values) {
      const e = normalizingExponent(amax);
      expect(Number.isInteger(e)).toBe(true);
      const scaled = amax * 2 ** e; // exact: a power-of-two scaling in float64
      expect(scaled >= 1 && scaled < 2, `amax ${amax}: amax·2^${e} = ${scaled}`).toBe(true);
    }
  });
});

describe('fixed-point conversion', () => {
  it('toFixedPoint rounds fround(r·g) half to even and clamps at ±2^24', () => {
    const rotated = Float32Array.from([0.5, 1.5, 2.5, -0.5, -2.5, 3.25, 1e9, -1e9, 0]);
    const out = new Int32Array(rotated.length);
    toFixedPoint(rotated, 1, rotated.length, out);
    expect([...out]).toEqual([0, 2, 2, 0, -2, 3, FIXED_POINT_LIMIT, -FIXED_POINT_LIMIT, 0]);
    expect(FIXED_POINT_LIMIT).toBe(2 ** 24);
  });

  it('toFixedPoint converts only the first `count` entries', () => {
    const out = new Int32Array(4).fill(7);
    toFixedPoint(Float32Array.from([1, 2, 3, 4]), 2, 2, out);
    expect([...out]).toEqual([2, 4, 7, 7]);
  });

  it('fixedPointNumerator = fround(√N·2^F / unit)', () => {
    expect(FRACTION_BITS).toBe(6);
    expect(fixedPointNumerator(4, 0.5)).toBe(256);
    expect(fixedPointNumerator(768, Math.fround(0.025))).toBe(Math.fround((Math.sqrt(768) * 64) / Math.fround(0.025)));
  });
});

describe('prepareColumn', () => {
  it('without rotation or centring: the column times 2^e, with max |x|·2^e in [1, 2)', () => {
    const column = Float32Array.from([0.75, -3, 1]);
    const scaled = new Float32Array(3);
    const rotated = new Float32Array(3);
    const prepared = prepareColumn(column, false, null, scaled, rotated);
    expect(prepared.exponent).toBe(-1);
    expect(prepared.scaledMean).toBe(0);
    expect([...prepared.rotated]).toEqual([0.375, -1.5, 0.5]);
  });

  it('centring subtracts the f32 mean of the scaled column', () => {
    const column = Float32Array.from([1, 2, 3, 6]);
    const prepared = prepareColumn(column, true, null, new Float32Array(4), new Float32Array(4));
    expect(prepared.exponent).toBe(-2); // 6/4 = 1.5
    expect(prepared.scaledMean).toBe(0.75); // mean 3, scaled by ¼
    expect([...prepared.rotated]).toEqual([-0.5, -0.25, 0, 0.75]);
  });

  it('the mean is fround(S · fround(1/n)) with S the canonical f32 sum (the GPU encoder’s steps), not S / n', () => {
    // n = 3, max in [1, 2): exponent 0. Lanes 0, 1, 2 hold one entry each; the pairwise combine adds
    // lane 2 into lane 0 (stride 2), then lane 1 (stride 1): S = (x0 + x2) + x1, each sum in f32.
    const column = Float32Array.from([1.6305913925170898, 0.48444461822509766, 0.24408435821533203]);
    const [x0, x1, x2] = column as unknown as [number, number, number];
    const sum = Math.fround(Math.fround(x0 + x2) + x1);
    const expected = Math.fround(sum * Math.fround(1 / 3));
    expect(expected).not.toBe(Math.fround(sum / 3)); // the two orders part on this column
    const prepared = prepareColumn(column, true, null, new Float32Array(3), new Float32Array(3));
    expect(prepared.exponent === 0).toBe(true); // ±0: no scaling
    expect(prepared.scaledMean).toBe(expected);
    expect([...prepared.rotated]).toEqual([x0, x1, x2].map((v) => Math.fround(v - expected)));
  });

  it('an all-zero column keeps exponent 0 and stays zero', () => {
    const prepared = prepareColumn(new Float32Array(5), true, new RandomizedHadamard(5, 1), new Float32Array(5), new Float32Array(8));
    expect(prepared.exponent).toBe(0);
    expect([...prepared.rotated]).toEqual(new Array<number>(8).fill(0));
  });

  it('with rotation: the rotated column has the scaled column’s norm', () => {
    const column = randomValues(100, 4, 1e6);
    const rotation = new RandomizedHadamard(100, 3);
    const prepared = prepareColumn(column, false, rotation, new Float32Array(100), new Float32Array(rotation.length));
    let before = 0;
    for (const v of column) before += (v * 2 ** prepared.exponent) ** 2;
    let after = 0;
    for (const v of prepared.rotated) after += v * v;
    expect(after / before).toBeCloseTo(1, 5);
  });

  it('unscale multiplies by 2^−e and refuses results beyond the f32 range', () => {
    expect(unscale(1.5, 3, 'norm')).toBe(0.1875);
    expect(() => unscale(1.5, -128, 'norm of column 0')).toThrow(LatticeMatmulError);
    expect(() => unscale(1.5, -128, 'norm of column 0')).toThrow(/norm of column 0 .* exceeds the f32 range/);
  });
});
