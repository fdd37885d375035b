/**
 * The f32 steps that turn one input column into the fixed-point integers the lattice encoder rounds.
 *
 * Every operation here is mirrored by the GPU quantizer (shaders/column_prep.wgsl, shaders/hadamard.wgsl,
 * shaders/lattice_encode.wgsl; shaders/universal_encode.wgsl up to step 4, then the universal code's own
 * rounding, universalCode.ts) in the same order, so
 * that both produce the same integers (docs/ARCHITECTURE.md, exactness rules):
 *   1. `amax = max |x_i|` and an exponent e with amax·2^e ∈ [1, 2): scaling by 2^e is exact and keeps
 *      later sums far from f32 overflow or underflow, whatever the input's magnitude.
 *   2. optional centring: μ' = fround(sum · fround(1/n)), v_i = fround(x_i·2^e − μ').
 *   3. rotation (rotation/randomizedHadamard.ts, its own documented order).
 *   4. ν' = fround(√(Σ r_i²)) with the canonical reduction below, then g = fround(G / ν').
 *   5. X_i = clamp(roundHalfEven(fround(r_i · g))).
 * Sums use the canonical order: 256 lanes, lane l adds the entries i ≡ l (mod 256) in increasing i,
 * then lanes combine pairwise (stride 128, 64, …, 1); every addition rounded to f32.
 */
import { roundHalfEven } from '../lattices/lattice.js';
import { FIXED_POINT_LIMIT, FRACTION_BITS } from './scaleGrid.js';

export const REDUCTION_LANES = 256;

const lanes = new Float32Array(REDUCTION_LANES);

/** Canonical f32 sum of `values[0..length)`, or of their squares (each square rounded first). */
export function canonicalSum(values: Float32Array, length: number, squares: boolean): number {
  lanes.fill(0);
  for (let i = 0; i < length; i++) {
    const v = values[i] as number;
    const term = squares ? Math.fround(v * v) : v;
    const lane = i % REDUCTION_LANES;
    lanes[lane] = (lanes[lane] as number) + term; // Float32Array stores round to f32
  }
  for (let stride = REDUCTION_LANES / 2; stride >= 1; stride /= 2) {
    for (let l = 0; l < stride; l++) lanes[l] = (lanes[l] as number) + (lanes[l + stride] as number);
  }
  return lanes[0] as number;
}

/** max |x_i| (exact). */
export function absMax(values: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < values.length; i++) {
    const a = Math.abs(values[i] as number);
    if (a > m) m = a;
  }
  return m;
}

/** The exponent e with amax·2^e ∈ [1, 2), for amax > 0 (f32 normal or subnormal); 0 for amax = 0 (a zero column). */
export function normalizingExponent(amax: number): number {
  if (amax === 0) return 0;
  let e = -Math.floor(Math.log2(amax));
  // log2 can be off by one ulp near powers of two; settle it exactly.
  while (amax * 2 ** e >= 2) e--;
  while (amax * 2 ** e < 1) e++;
  return e;
}

/** `G = fround(√N · 2^F / unit)`: the numerator of the per-column gain g = G / ν'. */
export function fixedPointNumerator(length: number, unit: number): number {
  return Math.fround((Math.sqrt(length) * 2 ** FRACTION_BITS) / unit);
}

/** Step 5: `X_i = clamp(roundHalfEven(fround(r_i · g)))` for i < count. */
export function toFixedPoint(rotated: Float32Array, gain: number, count: number, out: Int32Array): void {
  for (let i = 0; i < count; i++) {
    const y = roundHalfEven(Math.fround((rotated[i] as number) * gain));
    out[i] = y > FIXED_POINT_LIMIT ? FIXED_POINT_LIMIT : y < -FIXED_POINT_LIMIT ? -FIXED_POINT_LIMIT : y;
  }
}
