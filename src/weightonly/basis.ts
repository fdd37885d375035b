import { check } from '../errors.js';
import type { Matrix } from '../matrix.js';
import { rotationLength } from '../rotation/hadamard.js';
import { checkU32 } from '../rotation/random.js';
import { RandomizedHadamard } from '../rotation/randomizedHadamard.js';
import { haarOrthogonal } from './linalg.js';
import { absMax, normalizingExponent } from '../quantize/columnScaling.js';

/**
 * The basis a weight matrix is quantized in. The layer computes y = W·x; for an orthogonal Q,
 * y = (W·Qᵀ)·(Q·x), so the quantizer may work on W' = W·Qᵀ with the covariance Σ' = Q·Σ_X·Qᵀ of the
 * rotated activations, and the decoder returns Ŵ = Ŵ'·Q (or a kernel rotates x by Q and multiplies
 * by Ŵ' directly). In this library's layout (W stored as Wᵀ, one column per output feature) that is
 * "rotate every stored column by Q".
 *
 * - `none`: Q = I.
 * - `hadamard`: Q = the randomized Hadamard rotation `RandomizedHadamard(n, seed)`, used whenever
 *   it rotates n without padding (`rotationLength(n) = n`; a zero-padded Σ' would be singular): n =
 *   m·2^k, m ∈ {1, 12, 20}, and every n > 256 (two overlapping windows, `rotationPlan`; a container
 *   holding one of n ≤ 1024 is format version 3).
 * - `haar`: Q = `haarOrthogonal(n, seed)`, a dense uniformly random orthogonal matrix, the fallback
 *   for the other n, all ≤ 256 (within `MAX_HAAR_N` = 1024, the largest a container may hold: older
 *   versions chose it for every n ≤ 1024 that is not m·2^k; it costs O(n³) to build and O(n²) per
 *   column to apply).
 */
export type RotationKind = 'none' | 'hadamard' | 'haar';

/** Largest n for which a dense Haar rotation is built when n is not a Hadamard length. */
// 1024: building the dense rotation costs O(n³) whatever the size of the file that asks for it, so the
// cap bounds the work a small hostile file can demand (measured: 0.8 s at 512, 5.5 s at 1024, and
// O(n³): ≈ 45 s at 2048, the old cap).
export const MAX_HAAR_N = 1024;

/** Which rotation `rotate: true` picks for n input features. */
export function rotationKindFor(n: number, rotate: boolean): RotationKind {
  if (!rotate) return 'none';
  if (rotationLength(n) === n) return 'hadamard';
  // Only n ≤ 256 get here (every longer column has a rotation of its own length: two windows where n
  // is no Hadamard length), well within MAX_HAAR_N.
  return 'haar';
}

/** A change of basis Q for n input features; see {@link RotationKind}. */
export class WeightBasis {
  readonly n: number;
  readonly kind: RotationKind;
  readonly seed: number;
  private readonly hadamard: RandomizedHadamard | null;
  private readonly haar: Float64Array | null;

  constructor(n: number, kind: RotationKind, seed: number) {
    checkU32(seed, 'seed');
    this.n = n;
    this.kind = kind;
    this.seed = seed;
    check(kind !== 'hadamard' || rotationLength(n) === n, () => `hadamard rotation needs an unpadded rotation (rotationLength(n) = n: a Hadamard length, or n > 256), got n = ${n}`);
    this.hadamard = kind === 'hadamard' ? new RandomizedHadamard(n, seed) : null;
    this.haar = kind === 'haar' ? haarOrthogonal(n, seed) : null;
  }

  /**
   * W' = W·Qᵀ as a float64 array in the stored layout (entry (i, j) of the stored n × a matrix at
   * j·n + i, i.e. row-major in the math (a × n) orientation).
   */
  rotateWeights(w: Matrix): Float64Array {
    if (this.hadamard !== null) return Float64Array.from(this.hadamard.forwardColumns(w).data);
    const out = Float64Array.from(w.data);
    if (this.haar !== null) {
      const n = this.n;
      for (let j = 0; j < w.cols; j++) applyDense(this.haar, n, w.data.subarray(j * n, (j + 1) * n), out.subarray(j * n, (j + 1) * n), false);
    }
    return out;
  }

  /** Σ' = Q·Σ·Qᵀ (row-major float64, exactly symmetric). */
  rotateCovariance(sigma: Float64Array): Float64Array {
    const n = this.n;
    if (this.kind === 'none') return Float64Array.from(sigma);
    let rotated: Float64Array;
    if (this.hadamard !== null) {
      // Q·Σ column by column, then Q·(Q·Σ)ᵀ = Q·Σ·Qᵀ (Σ symmetric). The rotation itself runs in f32, on
      // Σ·2^e with its largest entry in [1, 2), and 2^−e goes back in float64: exact both ways, so where
      // Σ and Σ·2^e both stay in f32's normal range this is the rotation of Σ itself, bit for bit (a Σ
      // spanning more than ≈ 2^126 loses its smallest entries' low bits either way, under the damping),
      // and a Σ of subnormals (which the f32 sums flushed to 0) or one whose sums pass f32's range
      // rotates as well as any.
      const exponent = normalizingExponent(absMax(sigma));
      const first = this.hadamard.forwardColumns({ rows: n, cols: n, data: Float32Array.from(sigma, (v) => v * 2 ** exponent) });
      const transposed = new Float32Array(n * n);
      for (let j = 0; j < n; j++) for (let i = 0; i < n; i++) transposed[i * n + j] = first.data[j * n + i] as number;
      rotated = Float64Array.from(this.hadamard.forwardColumns({ rows: n, cols: n, data: transposed }).data, (v) => v * 2 ** -exponent);
    } else {
      const q = this.haar as Float64Array;
      const qs = new Float64Array(n * n); // Q·Σ, row-major
      for (let i = 0; i < n; i++) {
        for (let k = 0; k < n; k++) {
          const qik = q[i * n + k] as number;
          if (qik === 0) continue;
          for (let j = 0; j < n; j++) qs[i * n + j] = (qs[i * n + j] as number) + qik * (sigma[k * n + j] as number);
        }
      }
      rotated = new Float64Array(n * n);
      for (let i = 0; i < n; i++) {
        for (let j = 0; j <= i; j++) {
          let s = 0;
          for (let k = 0; k < n; k++) s += (qs[i * n + k] as number) * (q[j * n + k] as number);
          // Both triangles: the averaging below assumes them (one left 0 halved every off-diagonal).
          rotated[i * n + j] = s;
          rotated[j * n + i] = s;
        }
      }
    }
    // Average the triangles: f32 rotation rounding leaves Σ' symmetric only to ~1e−7.
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < i; j++) {
        const v = ((rotated[i * n + j] as number) + (rotated[j * n + i] as number)) / 2;
        rotated[i * n + j] = v;
        rotated[j * n + i] = v;
      }
    }
    return rotated;
  }

  /**
   * Ŵ = Ŵ'·Q: undoes the rotation of every stored column (in f32 for `hadamard`, float64 rounded to
   * f32 for `haar`). Returns `wRotated` itself for `none`.
   */
  unrotateWeights(wRotated: Matrix): Matrix {
    if (this.hadamard !== null) return this.hadamard.inverseColumns(wRotated);
    if (this.haar === null) return wRotated;
    const n = this.n;
    const data = new Float32Array(wRotated.data.length);
    const column = new Float64Array(n);
    for (let j = 0; j < wRotated.cols; j++) {
      applyDense(this.haar, n, wRotated.data.subarray(j * n, (j + 1) * n), column, true);
      data.set(column, j * n);
    }
    return { rows: n, cols: wRotated.cols, data };
  }
}

/** out = Q·x (or Qᵀ·x when `transpose`) for a row-major n × n Q. */
function applyDense(q: Float64Array, n: number, x: ArrayLike<number>, out: Float64Array, transpose: boolean): void {
  if (!transpose) {
    for (let i = 0; i < n; i++) {
      let s = 0;
      for (let k = 0; k < n; k++) s += (q[i * n + k] as number) * (x[k] as number);
      out[i] = s;
    }
    return;
  }
  out.fill(0);
  for (let k = 0; k < n; k++) {
    const xk = x[k] as number;
    for (let i = 0; i < n; i++) out[i] = (out[i] as number) + (q[k * n + i] as number) * xk;
  }
}
