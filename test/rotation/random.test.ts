import { describe, expect, it } from 'vitest';
import { LatticeMatmulError } from '../../src/errors.js';
import {
  counterHash,
  counterSign,
  counterUniform,
  gaussianMatrix,
  mix32,
  RandomStream,
  Rng,
} from '../../src/rotation/random.js';

// Independent references in BigInt arithmetic (no Math.imul, no >>> tricks), written from the
// documented formulas.
const MASK = 0xffffffffn;

function mix32Reference(v: number): number {
  let x = BigInt(v) & MASK;
  x ^= x >> 16n;
  x = (x * 0x7feb352dn) & MASK;
  x ^= x >> 15n;
  x = (x * 0x846ca68bn) & MASK;
  x ^= x >> 16n;
  return Number(x);
}

function counterHashReference(seed: number, stream: number, index: number, sub: number): number {
  let h = mix32Reference(Number((BigInt(seed) ^ 0x9e3779b9n) & MASK));
  h = mix32Reference(Number(BigInt(h) ^ BigInt(stream)));
  h = mix32Reference(Number(BigInt(h) ^ BigInt(index)));
  return mix32Reference(Number(BigInt(h) ^ BigInt(sub)));
}

/** Inverse of x ^= x >> s on 32 bits (repeat the xorshift until the shifted-in part vanishes). */
function unXorShiftRight(y: bigint, s: bigint): bigint {
  let x = y;
  for (let k = s; k < 32n; k += s) x = y ^ (x >> s);
  return x & MASK;
}

/** Modular inverse of an odd number mod 2^32 (Newton iteration). */
function inverseMod32(a: bigint): bigint {
  let inv = a;
  for (let i = 0; i < 5; i++) inv = (inv * (2n - a * inv)) & MASK;
  return inv;
}

function unmix32(v: number): number {
  let x = BigInt(v);
  x = unXorShiftRight(x, 16n);
  x = (x * inverseMod32(0x846ca68bn)) & MASK;
  x = unXorShiftRight(x, 15n);
  x = (x * inverseMod32(0x7feb352dn)) & MASK;
  x = unXorShiftRight(x, 16n);
  return Number(x);
}

/** xoshiro128** on an explicit BigInt state, from the published algorithm. */
class XoshiroReference {
  constructor(private s: [bigint, bigint, bigint, bigint]) {}
  static fromSeed(seed: number): XoshiroReference {
    let weyl = BigInt(seed);
    const next = (): bigint => {
      weyl = (weyl + 0x9e3779b9n) & MASK;
      let z = weyl;
      z = ((z ^ (z >> 16n)) * 0x85ebca6bn) & MASK;
      z = ((z ^ (z >> 13n)) * 0xc2b2ae35n) & MASK;
      return z ^ (z >> 16n);
    };
    return new XoshiroReference([next(), next(), next(), next()]);
  }
  next(): number {
    const rotl = (x: bigint, k: bigint): bigint => ((x << k) | (x >> (32n - k))) & MASK;
    const [s0, s1, s2, s3] = this.s;
    const result = (rotl((s1 * 5n) & MASK, 7n) * 9n) & MASK;
    const t = (s1 << 9n) & MASK;
    const n2 = s2 ^ s0;
    const n3 = s3 ^ s1;
    const n1 = s1 ^ n2;
    const n0 = s0 ^ n3;
    this.s = [n0, n1, n2 ^ t, rotl(n3, 11n)];
    return Number(result);
  }
}

function popcount32(x: number): number {
  let c = 0;
  for (let v = x >>> 0; v !== 0; v >>>= 1) c += v & 1;
  return c;
}

describe('mix32', () => {
  const rng = new Rng(11);
  const inputs = [0, 1, 2, 0x7fffffff, 0x80000000, 0xffffffff, ...Array.from({ length: 200 }, () => rng.nextU32())];

  it('matches a BigInt evaluation of the documented lowbias32 formula', () => {
    for (const x of inputs) expect(mix32(x)).toBe(mix32Reference(x));
  });

  it('is a bijection: the inverse (unshift, multiply by modular inverses) recovers the input', () => {
    for (const x of inputs) {
      const y = mix32(x);
      expect(Number.isInteger(y) && y >= 0 && y <= 0xffffffff).toBe(true);
      expect(unmix32(y)).toBe(x);
    }
  });
});

describe('counterHash', () => {
  it('matches the documented chain, computed in BigInt', () => {
    const rng = new Rng(5);
    for (let t = 0; t < 300; t++) {
      const args = [rng.nextU32(), rng.nextInt(5), rng.nextU32(), t % 3 === 0 ? 0 : rng.nextU32()] as const;
      expect(counterHash(...args)).toBe(counterHashReference(...args));
    }
    expect(counterHash(0, 0, 0)).toBe(counterHashReference(0, 0, 0, 0));
    expect(counterHash(0, 0, 0)).not.toBe(0); // the salt keeps the all-zero input off mix32's fixed point
  });

  it('sub defaults to 0', () => {
    expect(counterHash(9, 2, 77)).toBe(counterHash(9, 2, 77, 0));
  });

  it('avalanche: flipping one bit of any input flips about half of the output bits', () => {
    const rng = new Rng(2024);
    const trials = 400;
    // flips[(input * 32 + inBit) * 32 + outBit] counts how often output bit outBit changed.
    const flips = new Uint32Array(4 * 32 * 32);
    let totalFlipped = 0;
    for (let t = 0; t < trials; t++) {
      const base = [rng.nextU32(), rng.nextU32(), rng.nextU32(), rng.nextU32()];
      const h0 = counterHash(base[0] as number, base[1] as number, base[2] as number, base[3] as number);
      for (let input = 0; input < 4; input++) {
        for (let bit = 0; bit < 32; bit++) {
          const changed = base.slice();
          changed[input] = ((changed[input] as number) ^ (1 << bit)) >>> 0;
          const h1 = counterHash(changed[0] as number, changed[1] as number, changed[2] as number, changed[3] as number);
          const diff = (h0 ^ h1) >>> 0;
          totalFlipped += popcount32(diff);
          for (let out = 0; out < 32; out++) {
            if ((diff >>> out) & 1) {
              const k = (input * 32 + bit) * 32 + out;
              flips[k] = (flips[k] as number) + 1;
            }
          }
        }
      }
    }
    const meanFlipped = totalFlipped / (trials * 128);
    expect(meanFlipped).toBeGreaterThan(15.7);
    expect(meanFlipped).toBeLessThan(16.3);
    // Every (input bit, output bit) pair flips with probability near 1/2 (6 standard errors).
    let worst = 0;
    for (const count of flips) worst = Math.max(worst, Math.abs(count / trials - 0.5));
    expect(worst).toBeLessThan(0.15);
  });

  it('refuses inputs that are not u32', () => {
    for (const bad of [-1, 1.5, 2 ** 32, Number.NaN, Number.POSITIVE_INFINITY]) {
      expect(() => counterHash(bad, 1, 1)).toThrow(LatticeMatmulError);
      expect(() => counterHash(1, bad, 1)).toThrow(LatticeMatmulError);
      expect(() => counterHash(1, 1, bad)).toThrow(LatticeMatmulError);
      expect(() => counterHash(1, 1, 1, bad)).toThrow(/sub/);
    }
  });
});

describe('counterUniform and counterSign', () => {
  it('counterUniform is the top 24 bits of counterHash scaled by 2^-24, exact in f32, uniform', () => {
    const count = 100_000;
    const bins = new Uint32Array(16);
    let sum = 0;
    for (let i = 0; i < count; i++) {
      const u = counterUniform(3, RandomStream.dither, i, 1);
      expect(u >= 0 && u < 1).toBe(true);
      if (i < 1000) {
        expect(Math.fround(u)).toBe(u);
        expect(u * 2 ** 24).toBe(Math.floor(counterHash(3, RandomStream.dither, i, 1) / 256));
      }
      sum += u;
      const b = Math.floor(u * 16);
      bins[b] = (bins[b] as number) + 1;
    }
    expect(Math.abs(sum / count - 0.5)).toBeLessThan(0.005); // σ = 0.0009
    let chi2 = 0;
    for (const observed of bins) chi2 += (observed - count / 16) ** 2 / (count / 16);
    expect(chi2).toBeLessThan(45); // 15 degrees of freedom: P(χ² > 45) ≈ 1e-4
  });

  it('counterSign is ±1 from the top bit, balanced, and independent across streams', () => {
    let minus = 0;
    let agreeWithDither = 0;
    const count = 20_000;
    for (let i = 0; i < count; i++) {
      const s = counterSign(8, RandomStream.rotationSigns, i);
      expect(s).toBe(counterHash(8, RandomStream.rotationSigns, i) >= 2 ** 31 ? -1 : 1);
      if (s === -1) minus++;
      if (s === counterSign(8, RandomStream.dither, i)) agreeWithDither++;
    }
    expect(Math.abs(minus / count - 0.5)).toBeLessThan(0.02); // σ = 0.0035
    expect(Math.abs(agreeWithDither / count - 0.5)).toBeLessThan(0.02);
  });

  it('RandomStream values are distinct u32', () => {
    const values = Object.values(RandomStream);
    expect(new Set(values).size).toBe(values.length);
    for (const v of values) expect(v >>> 0).toBe(v);
  });
});

describe('Rng', () => {
  it('the xoshiro128** reference reproduces the published first outputs for state (1, 2, 3, 4)', () => {
    const ref = new XoshiroReference([1n, 2n, 3n, 4n]);
    // 11520 = rotl(2·5, 7)·9; the next state has s1 = 0, so the second output is 0.
    expect(ref.next()).toBe(11520);
    expect(ref.next()).toBe(0);
  });

  it.each([0, 1, 42, 0xffffffff])('nextU32 equals splitmix32-seeded xoshiro128** (seed %d)', (seed) => {
    const rng = new Rng(seed);
    const ref = XoshiroReference.fromSeed(seed);
    for (let i = 0; i < 500; i++) expect(rng.nextU32()).toBe(ref.next());
  });

  it('same seed gives the same sequence, different seeds different ones', () => {
    const a = new Rng(123);
    const b = new Rng(123);
    const c = new Rng(124);
    const seqA = Array.from({ length: 50 }, () => a.nextGaussian());
    const seqB = Array.from({ length: 50 }, () => b.nextGaussian());
    const seqC = Array.from({ length: 50 }, () => c.nextGaussian());
    expect(seqB).toEqual(seqA);
    expect(seqC.filter((v, i) => v === seqA[i]).length).toBe(0);
  });

  it('nextFloat is in [0, 1), a multiple of 2^-24, mean 1/2 and variance 1/12', () => {
    const rng = new Rng(77);
    const count = 100_000;
    let sum = 0;
    let sumSq = 0;
    for (let i = 0; i < count; i++) {
      const u = rng.nextFloat();
      expect(u >= 0 && u < 1 && Number.isInteger(u * 2 ** 24)).toBe(true);
      sum += u;
      sumSq += u * u;
    }
    const mean = sum / count;
    expect(Math.abs(mean - 0.5)).toBeLessThan(0.005);
    expect(Math.abs(sumSq / count - mean * mean - 1 / 12)).toBeLessThan(0.002);
  });

  it('nextGaussian has the moments and the central mass of N(0, 1)', () => {
    const rng = new Rng(31337);
    const count = 100_000;
    let sum = 0;
    let sumSq = 0;
    let sum4 = 0;
    let withinOne = 0;
    let beyondThree = 0;
    for (let i = 0; i < count; i++) {
      const z = rng.nextGaussian();
      expect(Number.isFinite(z)).toBe(true);
      sum += z;
      sumSq += z * z;
      sum4 += z ** 4;
      if (Math.abs(z) < 1) withinOne++;
      if (Math.abs(z) > 3) beyondThree++;
    }
    // Standard errors: mean 0.0032, variance 0.0045, fourth moment 0.031, P(|z|<1) 0.0015.
    expect(Math.abs(sum / count)).toBeLessThan(0.015);
    expect(Math.abs(sumSq / count - 1)).toBeLessThan(0.025);
    expect(Math.abs(sum4 / count - 3)).toBeLessThan(0.16); // a uniform or a ±1 source fails here
    expect(Math.abs(withinOne / count - 0.682689)).toBeLessThan(0.008);
    // P(|z| > 3) = 0.0027: 270 expected, σ ≈ 16.
    expect(beyondThree).toBeGreaterThan(190);
    expect(beyondThree).toBeLessThan(350);
  });

  it('consecutive Gaussian pairs are uncorrelated (the cached second value is used once)', () => {
    const rng = new Rng(4);
    const count = 50_000;
    let cross = 0;
    let previous = rng.nextGaussian();
    let repeats = 0;
    for (let i = 0; i < count; i++) {
      const z = rng.nextGaussian();
      cross += z * previous;
      if (z === previous) repeats++;
      previous = z;
    }
    expect(Math.abs(cross / count)).toBeLessThan(0.025); // σ = 0.0045
    expect(repeats).toBe(0);
  });

  it('nextInt is uniform on [0, max) and accepts max = 1 and 2^32', () => {
    const rng = new Rng(9);
    const max = 7;
    const count = 70_000;
    const bins = new Uint32Array(max);
    for (let i = 0; i < count; i++) {
      const k = rng.nextInt(max);
      expect(Number.isInteger(k) && k >= 0 && k < max).toBe(true);
      bins[k] = (bins[k] as number) + 1;
    }
    let chi2 = 0;
    for (const observed of bins) chi2 += (observed - count / max) ** 2 / (count / max);
    expect(chi2).toBeLessThan(27); // 6 degrees of freedom: P(χ² > 27) ≈ 1.4e-4
    expect(rng.nextInt(1)).toBe(0);
    const big = rng.nextInt(2 ** 32);
    expect(Number.isInteger(big) && big >= 0 && big < 2 ** 32).toBe(true);
  });

  it('refuses bad seeds and bad bounds', () => {
    for (const bad of [-1, 0.5, 2 ** 32, Number.NaN, Number.POSITIVE_INFINITY]) {
      expect(() => new Rng(bad)).toThrow(LatticeMatmulError);
    }
    expect(() => new Rng('1' as unknown as number)).toThrow(LatticeMatmulError);
    const rng = new Rng(1);
    for (const bad of [0, -3, 2.5, 2 ** 32 + 1, Number.NaN]) expect(() => rng.nextInt(bad)).toThrow(LatticeMatmulError);
  });
});

describe('gaussianMatrix', () => {
  it.each([
    [1, 1],
    [3, 5],
    [64, 17],
  ])('%d × %d: column-major fill from Rng(seed).nextGaussian() rounded to f32', (rows, cols) => {
    const m = gaussianMatrix(rows, cols, 99);
    expect(m.rows).toBe(rows);
    expect(m.cols).toBe(cols);
    expect(m.data).toBeInstanceOf(Float32Array);
    expect(m.data.length).toBe(rows * cols);
    const rng = new Rng(99);
    for (let i = 0; i < rows * cols; i++) expect(m.data[i]).toBe(Math.fround(rng.nextGaussian()));
  });

  it('has unit variance entries and depends on the seed', () => {
    const a = gaussianMatrix(200, 100, 1);
    const b = gaussianMatrix(200, 100, 2);
    let sumSq = 0;
    let same = 0;
    for (let i = 0; i < a.data.length; i++) {
      sumSq += (a.data[i] as number) ** 2;
      if (a.data[i] === b.data[i]) same++;
    }
    expect(Math.abs(sumSq / a.data.length - 1)).toBeLessThan(0.03);
    expect(same).toBe(0);
  });

  it('refuses bad shapes and seeds', () => {
    expect(() => gaussianMatrix(0, 3, 1)).toThrow(LatticeMatmulError);
    expect(() => gaussianMatrix(3, 1.5, 1)).toThrow(LatticeMatmulError);
    expect(() => gaussianMatrix(3, 3, -1)).toThrow(LatticeMatmulError);
  });
});
