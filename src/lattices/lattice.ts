import type { IntegerInverse } from './integerMatrix.js';

/**
 * A lattice Λ ⊂ R^d described for exact integer work.
 *
 * Points are held in **point coordinates** `P = pointScale · λ`, which are integers for every lattice
 * here (E8 has half-integer points, so its pointScale is 2; Z^d and D3 use 1). All code-deciding
 * arithmetic happens on these integers.
 */
export interface Lattice {
  /** 'Z1', 'Z8', 'D3', 'E8'. */
  readonly name: string;
  readonly dimension: number;
  readonly pointScale: 1 | 2;
  /** Generator in point coordinates, row-major d×d, basis vectors in the **columns**: `P = basis · u`. */
  readonly basis: Int32Array;
  /** `basis⁻¹ = numerators / determinant`, exact. */
  readonly basisInverse: IntegerInverse;
  /** Volume of a Voronoi cell in λ units (det of the generator). */
  readonly covolume: number;
  /**
   * Nearest lattice point to the rational vector `p / den` (λ units), in point coordinates, written to
   * `out`. Integer arithmetic only; ties are broken by fixed rules (see rationalRounding.ts), so equal
   * inputs give equal outputs everywhere.
   */
  nearestScaled(p: ArrayLike<number>, den: number, out: Int32Array): Int32Array;
  /**
   * The universal (dithered) quantizer's nearest point: `nearestScaled`, except where its tie rule
   * would make the quantizer depend on the input beyond a lattice shift. The subtractive dither's
   * guarantee (an error uniform over the Voronoi cell, independent of the input, mean zero) needs
   * Q(y + λ) = Q(y) + λ for every lattice point λ (then the error's distribution is the same for every
   * input) and a mean of 0. D_n's rules (ties upward) have the first; their mean (a constant of the
   * grid, ≈ 1.5e-5 lattice units per coordinate at the universal quantizer's) the encoder removes by
   * mirroring each block with a fair bit (−Q(−y); UniversalBlockEncoder, blockMirror). E8's "the D8
   * candidate wins ties" does not even have the first (a shift by ½·1 swaps the candidates), so E8
   * breaks those ties by the error vector. Z^d (no universal scheme) keeps its rule. The decoder never
   * calls it: only which point the encoder picks changes, not the format.
   */
  nearestDithered(p: ArrayLike<number>, den: number, out: Int32Array): Int32Array;
  /**
   * Nearest lattice point to a real vector (λ units, float64 arithmetic); for users and tests. The
   * quantizer never uses it: it works on fixed-point integers through `nearestScaled`. Coordinates
   * must be finite and within ±2^50, where float64 still holds a point's neighbours exactly; others
   * are refused.
   */
  nearest(x: ArrayLike<number>): Float64Array;
  /** Is the integer vector `P` (point coordinates) a lattice point? */
  contains(P: ArrayLike<number>): boolean;
  /**
   * Index of the coset of the lattice point `P` (point coordinates) in Λ / qΛ: the Voronoi code with
   * nesting ratio q (see `VoronoiCode`, which this builds once per q).
   *
   * @example
   * D3.encode([1, 1, 0], 6) // a code in [0, 216)
   */
  encode(P: ArrayLike<number>, q: number): number;
  /**
   * The coset leader of `code` for nesting ratio q, in point coordinates: the point of the coset in
   * the Voronoi region of qΛ.
   *
   * @example
   * D3.decode(D3.encode([1, 1, 0], 6), 6) // Int32Array [1, 1, 0]
   */
  decode(code: number, q: number): Int32Array;
}

/** A lattice's geometry; `withVoronoiCodes` adds `encode` and `decode`. */
export type LatticeGeometry = Omit<Lattice, 'encode' | 'decode'>;

/** Round half to even, the rounding of WGSL's `round()`. */
export function roundHalfEven(x: number): number {
  const f = Math.floor(x);
  const diff = x - f;
  if (diff < 0.5) return f;
  if (diff > 0.5) return f + 1;
  return f % 2 === 0 ? f : f + 1;
}

/** Float version of the D_n rule of `nearestDnRational`: same tie rules, real input. */
export function nearestDnReal(x: ArrayLike<number>, out: Float64Array): Float64Array {
  let parity = 0;
  let worst = 0;
  let worstAbs = -1;
  let worstError = 0;
  for (let i = 0; i < out.length; i++) {
    const xi = x[i] as number;
    const f = roundHalfEven(xi);
    out[i] = f;
    parity += f;
    const e = xi - f;
    const abs = Math.abs(e);
    if (abs > worstAbs) {
      worstAbs = abs;
      worst = i;
      worstError = e;
    }
  }
  if (Math.abs(parity) % 2 === 1) out[worst] = (out[worst] as number) + (worstError < 0 ? -1 : 1);
  return out;
}
