import { check, checkPositiveInteger, describeValue } from '../errors.js';
import type { Matrix } from '../matrix.js';

/*
 * Two kinds of randomness live here:
 *
 * - A **counter-based hash** (`mix32`, `counterHash`, `counterUniform`, `counterSign`): a pure function
 *   of `(seed, stream, index, sub)` built only from 32-bit integer xor, shift and wrapping multiply, so
 *   a WGSL kernel computes the same bits with `u32` arithmetic and any invocation can draw its own
 *   value without shared state. Everything the GPU must reproduce (rotation signs, dither) uses it.
 * - A **sequential PRNG** (`Rng`, xoshiro128**) for test data and benchmarks, where only the CPU draws.
 */

/**
 * A 32-bit integer finalizer with good avalanche: the "lowbias32" xorshift-multiply mix
 * (constants 0x7feb352d, 0x846ca68b, shifts 16, 15, 16). It is a bijection on u32 (each xorshift and each
 * multiplication by an odd constant is invertible), and flipping one input bit flips about half of
 * the output bits.
 *
 * The WGSL twin, bit for bit (u32 `*` wraps modulo 2^32 exactly like `Math.imul` followed by `>>> 0`):
 * ```wgsl
 * fn mix32(v: u32) -> u32 {
 *   var x = v;
 *   x ^= x >> 16u; x *= 0x7feb352du;
 *   x ^= x >> 15u; x *= 0x846ca68bu;
 *   x ^= x >> 16u;
 *   return x;
 * }
 * ```
 *
 * @example
 * mix32(0); // 0 (the one fixed point that matters: counterHash never feeds it a bare 0 seed)
 * mix32(1) !== mix32(2); // true — a bijection
 */
export function mix32(x: number): number {
  x >>>= 0;
  x ^= x >>> 16;
  x = Math.imul(x, 0x7feb352d);
  x ^= x >>> 15;
  x = Math.imul(x, 0x846ca68b);
  x ^= x >>> 16;
  return x >>> 0;
}

/** Xored into the seed before the first mix so that seed 0 does not start the chain at mix32's fixed point 0. */
const SEED_SALT = 0x9e3779b9;

/** A u32 is an integer in [0, 2^32); `(v >>> 0) === v` is exactly that test (false for NaN, fractions, negatives). */
function isU32(v: number): boolean {
  return typeof v === 'number' && (v >>> 0) === v;
}

/** Refuses a value that is not a u32, naming it (`what`): seeds, counters. */
export function checkU32(v: number, what: string): void {
  check(isU32(v), () => `${what} must be an integer in [0, 2^32 - 1], got ${describeValue(v)}`);
}

/**
 * A u32 that is a pure function of four u32 inputs, by chaining `mix32` (a sponge-like construction):
 * ```
 * h = mix32(seed ^ 0x9e3779b9)
 * h = mix32(h ^ stream)
 * h = mix32(h ^ index)
 * h = mix32(h ^ sub)
 * return h
 * ```
 * Each step is a bijection of the newly absorbed input for fixed earlier inputs, so distinct indices
 * of one (seed, stream) never collide before the last mix, and each input passes through at least one
 * full mix, which gives every input bit avalanche on every output bit.
 *
 * WGSL twin: the same four lines with `mix32` as documented there and `^` on `u32`.
 *
 * @param seed shared seed (u32), e.g. the seed of the A and B encoders
 * @param stream purpose of the draw, one of `RandomStream` (keeps rotation signs independent of dither)
 * @param index position of the draw inside the stream (u32)
 * @param sub an extra counter (u32), e.g. a block or column number; 0 when unused
 * @example
 * const h = counterHash(42, RandomStream.dither, 7); // same u32 on every call, CPU or GPU
 */
export function counterHash(seed: number, stream: number, index: number, sub = 0): number {
  if (!(isU32(seed) && isU32(stream) && isU32(index) && isU32(sub))) {
    checkU32(seed, 'seed');
    checkU32(stream, 'stream');
    checkU32(index, 'index');
    checkU32(sub, 'sub');
  }
  let h = mix32(seed ^ SEED_SALT);
  h = mix32(h ^ stream);
  h = mix32(h ^ index);
  return mix32(h ^ sub);
}

/** 2^-24: a 24-bit integer times this is an exact f32 (and f64) in [0, 1). */
const TWO_POW_MINUS_24 = 1 / 16777216;

/**
 * A uniform number in [0, 1) from the top 24 bits of `counterHash`: `(h >>> 8) · 2^-24`. Every value is
 * exactly representable in f32, so the GPU's `ldexp(f32(h >> 8u), -24)` gives the same number.
 *
 * @example
 * const u = counterUniform(1, RandomStream.dither, 0); // 0 <= u < 1, multiple of 2^-24
 */
export function counterUniform(seed: number, stream: number, index: number, sub = 0): number {
  return (counterHash(seed, stream, index, sub) >>> 8) * TWO_POW_MINUS_24;
}

/**
 * A random sign from the top bit of `counterHash(seed, stream, index)`: −1 when bit 31 is set, else +1.
 * WGSL twin: `select(1.0, -1.0, (counterHash(seed, stream, index, 0u) >> 31u) == 1u)`.
 */
export function counterSign(seed: number, stream: number, index: number): 1 | -1 {
  return counterHash(seed, stream, index, 0) >>> 31 === 1 ? -1 : 1;
}

/**
 * The `stream` argument of the counter hash for each purpose, so that (for one seed) rotation signs,
 * dither, time-sharing choices, synthetic data, the universal quantizer's randomized rounding and the
 * second key of E8's dither (its second hash word) are independent draws.
 */
export const RandomStream = { rotationSigns: 1, dither: 2, timeSharing: 3, data: 4, rounding: 5, secondDither: 6 } as const;

/** The type of a value of `RandomStream`. */
export type RandomStreamId = (typeof RandomStream)[keyof typeof RandomStream];

/** 2^-53, to build a 53-bit uniform double from two u32 draws. */
const TWO_POW_MINUS_53 = 1 / 9007199254740992;
const TWO_POW_32 = 4294967296;

/**
 * A sequential pseudo-random generator: xoshiro128** (Blackman & Vigna; period 2^128 − 1) with its
 * 128-bit state filled by four outputs of splitmix32 (a Weyl sequence `s += 0x9e3779b9` finished with
 * the murmur3 fmix32 mix) from a u32 seed. The four splitmix outputs are fmix32 of four distinct
 * inputs, and fmix32 is a bijection, so at most one state word is zero: the state is never all zero.
 *
 * For test data and benchmarks only (the CPU draws alone); randomness the GPU must reproduce comes from
 * `counterHash`.
 *
 * @example
 * const rng = new Rng(7);
 * const g = rng.nextGaussian(); // N(0, 1)
 * const k = rng.nextInt(10);    // 0..9
 */
export class Rng {
  /** xoshiro128** state words, stored as int32 (the same 32 bits as the u32 words). */
  private s0: number;
  private s1: number;
  private s2: number;
  private s3: number;
  /** The second Box–Muller value, kept for the next `nextGaussian` call; NaN when there is none. */
  private cachedGaussian = Number.NaN;

  constructor(seed: number) {
    check(
      typeof seed === 'number' && isU32(seed),
      () => `Rng seed must be an integer in [0, 2^32 - 1], got ${describeValue(seed)}`,
    );
    let weyl = seed;
    const splitmix32 = (): number => {
      weyl = (weyl + 0x9e3779b9) >>> 0;
      let z = weyl;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.s0 = splitmix32() | 0;
    this.s1 = splitmix32() | 0;
    this.s2 = splitmix32() | 0;
    this.s3 = splitmix32() | 0;
  }

  /** The next u32 in [0, 2^32). */
  nextU32(): number {
    // State words are kept as int32 (`| 0`) so that V8 stores them unboxed; only the result is made
    // unsigned. Bit for bit this is xoshiro128** on u32 words.
    const s0 = this.s0;
    const s1 = this.s1;
    const m = Math.imul(s1, 5);
    const result = Math.imul((m << 7) | (m >>> 25), 9) >>> 0;
    const t = s1 << 9;
    const s2 = this.s2 ^ s0;
    const s3 = this.s3 ^ s1;
    this.s1 = s1 ^ s2;
    this.s0 = s0 ^ s3;
    this.s2 = s2 ^ t;
    this.s3 = (s3 << 11) | (s3 >>> 21);
    return result;
  }

  /** A uniform number in [0, 1) with 24 random bits (exact in f32). */
  nextFloat(): number {
    return (this.nextU32() >>> 8) * TWO_POW_MINUS_24;
  }

  /** A uniform double in [0, 1) with 53 random bits (used by Box–Muller, so its tails reach past 8σ). */
  private nextDouble(): number {
    const high = this.nextU32() >>> 6; // 26 bits
    const low = this.nextU32() >>> 5; // 27 bits
    return (high * 134217728 + low) * TWO_POW_MINUS_53; // high·2^27 + low < 2^53: exact
  }

  /**
   * A standard normal N(0, 1) draw in float64 by the Box–Muller transform: from uniforms u1 ∈ (0, 1]
   * and u2 ∈ [0, 1), r = √(−2 ln u1) gives r·cos(2πu2) now and r·sin(2πu2) on the next call.
   */
  nextGaussian(): number {
    const cached = this.cachedGaussian;
    if (!Number.isNaN(cached)) {
      this.cachedGaussian = Number.NaN;
      return cached;
    }
    const u1 = 1 - this.nextDouble(); // (0, 1]: log never sees 0
    const u2 = this.nextDouble();
    const r = Math.sqrt(-2 * Math.log(u1));
    const angle = 2 * Math.PI * u2;
    this.cachedGaussian = r * Math.sin(angle);
    return r * Math.cos(angle);
  }

  /**
   * A uniform integer in [0, maxExclusive), without modulo bias (draws in the incomplete top range
   * of u32 are rejected). `maxExclusive` must be an integer in [1, 2^32].
   */
  nextInt(maxExclusive: number): number {
    check(
      Number.isInteger(maxExclusive) && maxExclusive >= 1 && maxExclusive <= TWO_POW_32,
      () => `nextInt: maxExclusive must be an integer in [1, 2^32], got ${describeValue(maxExclusive)}`,
    );
    const limit = TWO_POW_32 - (TWO_POW_32 % maxExclusive);
    let x = this.nextU32();
    while (x >= limit) x = this.nextU32();
    return x % maxExclusive;
  }
}

/**
 * A `rows × cols` matrix of iid N(0, 1) entries (rounded to f32), filled in storage (column-major)
 * order from `new Rng(seed).nextGaussian()`.
 *
 * @example
 * const a = gaussianMatrix(768, 64, 1); // 64 columns of 768 Gaussians
 */
export function gaussianMatrix(rows: number, cols: number, seed: number): Matrix {
  checkPositiveInteger(rows, 'gaussianMatrix rows');
  checkPositiveInteger(cols, 'gaussianMatrix cols');
  check(
    rows * cols <= 0x7fffffff,
    () => `gaussianMatrix: rows * cols = ${rows * cols} entries is more than a Float32Array can hold here`,
  );
  const rng = new Rng(seed);
  const data = new Float32Array(rows * cols);
  for (let i = 0; i < data.length; i++) data[i] = rng.nextGaussian();
  return { rows, cols, data };
}
