import type { Lattice } from '../lattices/lattice.js';
import { VoronoiCode } from '../lattices/voronoiCode.js';
import { FRACTION_BITS, type ScaleGrid } from './scaleGrid.js';

/** Steps of the clipping fallback: a block that fits no scale is shrunk by j/16, j = 15 … 0. */
export const CLIP_STEPS = 16;

/** The encoding of one block. */
export interface BlockCode {
  code: number;
  scaleIndex: number;
  /** True when no scale fitted and the block was shrunk toward the origin. */
  clipped: boolean;
}

/**
 * Encodes fixed-point blocks (`X / (k_j · 2^F)` in λ units, see scaleGrid.ts) with a Voronoi code,
 * choosing the scale index by the overload rule. Integer arithmetic only: the GPU encoder follows
 * these steps literally.
 */
export class LatticeBlockEncoder {
  readonly code: VoronoiCode;
  private readonly point: Int32Array;
  private readonly best: Int32Array;
  private readonly shrunk: Int32Array;
  private readonly leader: Int32Array;

  constructor(
    readonly lattice: Lattice,
    q: number,
    readonly grid: ScaleGrid,
  ) {
    this.code = new VoronoiCode(lattice, q);
    const d = lattice.dimension;
    this.point = new Int32Array(d);
    this.best = new Int32Array(d);
    this.shrunk = new Int32Array(d);
    this.leader = new Int32Array(d);
  }

  /**
   * Encodes the block `x` (d fixed-point integers) into `result` and writes the decoded lattice point
   * (point coordinates, at scale `multiples[scaleIndex]`) into `decoded`.
   */
  encodeBlock(x: ArrayLike<number>, result: BlockCode, decoded: Int32Array): void {
    const { multiples, leastError } = this.grid;
    const d = this.lattice.dimension;
    const s = this.lattice.pointScale;
    let bestIndex = -1;
    let bestError = Infinity;
    let bestCode = 0;
    for (let j = 0; j < multiples.length; j++) {
      const den = (multiples[j] as number) << FRACTION_BITS;
      const code = this.fits(x, den);
      if (code < 0) continue;
      if (!leastError) {
        bestIndex = j;
        bestCode = code;
        this.best.set(this.point);
        break;
      }
      // Error in units of 1/(s·2^F·unit): s·X − den·P, comparable across scales.
      let error = 0;
      for (let i = 0; i < d; i++) {
        const e = s * (x[i] as number) - den * (this.point[i] as number);
        error += e * e;
      }
      if (error < bestError) {
        bestError = error;
        bestIndex = j;
        bestCode = code;
        this.best.set(this.point);
      }
    }
    result.clipped = bestIndex < 0;
    if (bestIndex < 0) {
      // Every scale overloads: shrink toward the origin at the largest scale until the point fits
      // (j = 0 gives the origin, which always fits), like clipping in a scalar quantizer.
      bestIndex = multiples.length - 1;
      const den = (multiples[bestIndex] as number) << FRACTION_BITS;
      for (let j = CLIP_STEPS - 1; j >= 0; j--) {
        for (let i = 0; i < d; i++) this.shrunk[i] = Math.trunc(((x[i] as number) * j) / CLIP_STEPS);
        const code = this.fits(this.shrunk, den);
        if (code >= 0) {
          bestCode = code;
          this.best.set(this.point);
          break;
        }
      }
    }
    result.code = bestCode;
    result.scaleIndex = bestIndex;
    decoded.set(this.best);
  }

  /** Nearest point of x/den into `this.point`; its code if it is its own coset leader, else −1. */
  private fits(x: ArrayLike<number>, den: number): number {
    this.lattice.nearestScaled(x, den, this.point);
    const code = this.code.encode(this.point);
    this.code.decode(code, this.leader);
    for (let i = 0; i < this.point.length; i++) if (this.leader[i] !== this.point[i]) return -1;
    return code;
  }
}
