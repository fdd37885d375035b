/**
 * Exact rounding of rationals `p / den` (integer numerator, positive integer denominator).
 *
 * Everything that decides a lattice code goes through these two functions, in integer arithmetic, so
 * that ties on Voronoi boundaries (common for even q) are broken the
 * same way for every point of a coset, on the CPU and in WGSL. JavaScript numbers hold these integers
 * exactly (|p|, den < 2^31 here); the WGSL twins use i32.
 */

/**
 * Nearest integer to `p / den`, ties upward: `floor((2p + den) / (2den))`.
 * Returns the integer; the error in units of `1/den` is `p - den * result`, in `[-den/2, den/2)`.
 */
export function roundRational(p: number, den: number): number {
  return Math.floor((2 * p + den) / (2 * den));
}

/**
 * Conway–Sloane nearest point of D_n to `p / den`, written into `out` (integer coordinates):
 * round every coordinate; if the coordinate sum is odd, re-round the coordinate with the largest
 * rounding error the other way. Ties between coordinates go to the first index; a coordinate with
 * error exactly zero is re-rounded upward. `out` may not alias `p`.
 */
export function nearestDnRational(p: ArrayLike<number>, den: number, out: Int32Array): void {
  let parity = 0;
  let worst = 0;
  let worstAbs = -1;
  let worstError = 0;
  for (let i = 0; i < out.length; i++) {
    const pi = p[i] as number;
    const f = roundRational(pi, den);
    out[i] = f;
    parity += f;
    const e = pi - den * f;
    const abs = e < 0 ? -e : e;
    if (abs > worstAbs) {
      worstAbs = abs;
      worst = i;
      worstError = e;
    }
  }
  if ((parity & 1) !== 0) out[worst] = (out[worst] as number) + (worstError < 0 ? -1 : 1);
}
