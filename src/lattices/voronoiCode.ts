import { check, describeValue, LatticeMatmulError } from '../errors.js';
import type { Lattice } from './lattice.js';

/**
 * The Voronoi (coset) code of a lattice Λ nested in qΛ: the q^d cosets of Λ / qΛ, each represented by
 * its **coset leader**, the point of the coset inside the Voronoi region of qΛ.
 *
 * - `encode(λ)` = the coefficients `u = G⁻¹λ mod q`, as the index Σ uᵢ·qⁱ (< q^d ≤ 2^53).
 * - `decode(index)` = `λ' − q·Q_Λ(λ'/q)` with `λ' = G·u`: the leader, in integer point coordinates.
 * - A point λ is representable (not overloaded) exactly when `decode(encode(λ)) = λ`; the quantizer
 *   decides overload by this decode-and-compare and never by a separate geometric test.
 *
 * @example
 * const code = new VoronoiCode(D3, 6);
 * const leader = code.decode(code.encode([1, 1, 0])); // Int32Array [1, 1, 0]: it is its own leader
 */
export class VoronoiCode {
  /** Number of codes, q^d. */
  readonly size: number;
  /** Bits of a packed code: ceil(log2(q^d)). */
  readonly codeBits: number;
  /**
   * The largest |coordinate| `encode` takes: below it every sum Σⱼ numeratorᵢⱼ·Pⱼ of G⁻¹P is an exact
   * float64 integer (2^53 over the largest row sum of |numerators|: ≈ 2^51.4 for D3, 2^42.4 for E8).
   * Beyond it the sums may round: E8 points with coordinates near 2^51 got wrong codes, or were refused
   * as "not a lattice point". The quantizer's points stay below 2^25.
   */
  readonly maxCoordinate: number;
  private readonly digits: Int32Array;
  private readonly point: Int32Array;
  private readonly nearestScratch: Int32Array;
  private readonly leaderScratch: Int32Array;

  constructor(
    readonly lattice: Lattice,
    readonly q: number,
  ) {
    check(
      typeof lattice === 'object' && lattice !== null && Number.isInteger(lattice.dimension) && lattice.dimension >= 1,
      () => `VoronoiCode needs a lattice (D3, E8, zLattice(d)), got ${describeValue(lattice)}`,
    );
    check(Number.isInteger(q) && q >= 2, () => `nesting ratio q must be an integer ≥ 2, got ${describeValue(q)}`);
    const size = q ** lattice.dimension;
    // Indices are JavaScript numbers: exact below 2^53 (E8 up to q = 98). Packed layouts split wide
    // codes into parts (src/quantize/latticeSpec.ts), so a code may exceed 32 bits.
    check(size <= 2 ** 53, () => `q^d = ${q}^${lattice.dimension} exceeds 2^53: the code index would not be exact`);
    this.size = size;
    this.codeBits = Math.max(1, Math.ceil(Math.log2(size) - 1e-12));
    const d = lattice.dimension;
    const numerators = (lattice.basisInverse as Lattice['basisInverse'] | undefined)?.numerators;
    check(numerators instanceof Int32Array && numerators.length === d * d, () => `VoronoiCode needs a lattice (D3, E8, zLattice(d)) with its basisInverse, got ${describeValue(lattice)}`);
    let widestRow = 1;
    for (let i = 0; i < d; i++) {
      let row = 0;
      for (let j = 0; j < d; j++) row += Math.abs(numerators[i * d + j] as number);
      widestRow = Math.max(widestRow, row);
    }
    this.maxCoordinate = Math.floor(2 ** 53 / widestRow);
    this.digits = new Int32Array(d);
    this.point = new Int32Array(d);
    this.nearestScratch = new Int32Array(d);
    this.leaderScratch = new Int32Array(d);
  }

  /** Throws for an encode() argument that is not a lattice point (a function of its own: encode is a hot loop). */
  private refuseNonPoint(P: ArrayLike<number>): never {
    const { name, pointScale } = this.lattice;
    const units = pointScale === 1 ? '' : ` (point coordinates P = ${pointScale}·λ: pass ${pointScale} times what nearest() returns)`;
    throw new LatticeMatmulError(`VoronoiCode.encode: [${Array.from(P, String).join(', ')}] is not a lattice point of ${name}${units}`);
  }

  /** Throws for an encode() argument beyond `maxCoordinate` (or not a number), naming the coordinate. */
  private refuseOutOfRange(P: ArrayLike<number>, j: number): never {
    throw new LatticeMatmulError(
      `VoronoiCode.encode: coordinate ${j} of the point is ${describeValue(P[j])}, beyond ±${this.maxCoordinate} (2^${Math.log2(this.maxCoordinate).toFixed(1)}), where ${this.lattice.name}'s coset index is no longer exact in float64`,
    );
  }

  /** Index of the coset of the lattice point `P` (point coordinates). */
  encode(P: ArrayLike<number>): number {
    const { dimension: d, basisInverse } = this.lattice;
    const { numerators, determinant } = basisInverse;
    for (let j = 0; j < d; j++) if (!(Math.abs(P[j] as number) <= this.maxCoordinate)) this.refuseOutOfRange(P, j);
    let index = 0;
    let weight = 1;
    for (let i = 0; i < d; i++) {
      let sum = 0;
      for (let j = 0; j < d; j++) sum += (numerators[i * d + j] as number) * (P[j] as number);
      if (sum % determinant !== 0) this.refuseNonPoint(P);
      const u = sum / determinant;
      index += (((u % this.q) + this.q) % this.q) * weight;
      weight *= this.q;
    }
    return index;
  }

  /** The coset leader of code `index`, in point coordinates, written to `out` (a fresh array if omitted). */
  decode(index: number, out: Int32Array = new Int32Array(this.lattice.dimension)): Int32Array {
    // A fractional, negative or too large index would decode to some valid-looking point.
    check(Number.isInteger(index) && index >= 0 && index < this.size, () => `VoronoiCode.decode: index must be an integer in [0, q^d = ${this.size}), got ${describeValue(index)}`);
    const { dimension: d, basis, pointScale } = this.lattice;
    let rest = index;
    for (let i = 0; i < d; i++) {
      this.digits[i] = rest % this.q;
      rest = Math.floor(rest / this.q);
    }
    for (let i = 0; i < d; i++) {
      let sum = 0;
      for (let j = 0; j < d; j++) sum += (basis[i * d + j] as number) * (this.digits[j] as number);
      this.point[i] = sum;
    }
    // λ'/q in λ units is point/(pointScale·q); its nearest point comes back in point coordinates.
    this.lattice.nearestScaled(this.point, pointScale * this.q, this.nearestScratch);
    for (let i = 0; i < d; i++) out[i] = (this.point[i] as number) - this.q * (this.nearestScratch[i] as number);
    return out;
  }

  /** Decode-and-compare: is `P` its own coset leader? */
  isRepresentable(P: ArrayLike<number>): boolean {
    const leader = this.decode(this.encode(P), this.leaderScratch);
    for (let i = 0; i < leader.length; i++) if (leader[i] !== P[i]) return false;
    return true;
  }
}
