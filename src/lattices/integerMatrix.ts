/**
 * Exact inverse of a small integer matrix as `numerators / determinant`, both integer. Used once per
 * lattice so that turning a point into generator coefficients needs no floating-point division.
 *
 * The inverse is found in float64 (Gauss–Jordan with partial pivoting), scaled by the determinant and
 * rounded; the result is then *verified* in integer arithmetic (`M · numerators = det · I`), so a
 * rounding slip cannot go unnoticed.
 */
export interface IntegerInverse {
  /** Row-major `d × d`: `inverse[i][j] = numerators[i*d + j] / determinant`. */
  readonly numerators: Int32Array;
  /** Positive: the sign is folded into the numerators. */
  readonly determinant: number;
}

/** `matrix` is row-major `d × d` with small integer entries and a non-zero determinant. */
export function invertIntegerMatrix(matrix: ArrayLike<number>, d: number): IntegerInverse {
  const a = Float64Array.from({ length: d * d }, (_, k) => matrix[k] as number);
  const inv = new Float64Array(d * d);
  for (let i = 0; i < d; i++) inv[i * d + i] = 1;
  let det = 1;
  for (let k = 0; k < d; k++) {
    let pivotRow = k;
    for (let i = k + 1; i < d; i++) if (Math.abs(a[i * d + k] as number) > Math.abs(a[pivotRow * d + k] as number)) pivotRow = i;
    const pivot = a[pivotRow * d + k] as number;
    if (pivot === 0) throw new Error('invertIntegerMatrix: singular matrix');
    if (pivotRow !== k) {
      swapRows(a, d, k, pivotRow);
      swapRows(inv, d, k, pivotRow);
      det = -det;
    }
    det *= pivot;
    for (let j = 0; j < d; j++) {
      a[k * d + j] = (a[k * d + j] as number) / pivot;
      inv[k * d + j] = (inv[k * d + j] as number) / pivot;
    }
    for (let i = 0; i < d; i++) {
      if (i === k) continue;
      const factor = a[i * d + k] as number;
      if (factor === 0) continue;
      for (let j = 0; j < d; j++) {
        a[i * d + j] = (a[i * d + j] as number) - factor * (a[k * d + j] as number);
        inv[i * d + j] = (inv[i * d + j] as number) - factor * (inv[k * d + j] as number);
      }
    }
  }
  const determinant = Math.abs(Math.round(det));
  // A singular matrix can survive elimination with a rounding-sized pivot; its determinant rounds to 0.
  if (determinant === 0) throw new Error('invertIntegerMatrix: singular matrix');
  // inv = M⁻¹ already carries the sign of det, so M⁻¹ = (inv · |det|) / |det|.
  const numerators = Int32Array.from(inv, (v) => Math.round(v * determinant));
  for (let i = 0; i < d; i++) {
    for (let j = 0; j < d; j++) {
      let sum = 0;
      for (let k = 0; k < d; k++) sum += (matrix[i * d + k] as number) * (numerators[k * d + j] as number);
      if (sum !== (i === j ? determinant : 0)) throw new Error('invertIntegerMatrix: inverse is not exact');
    }
  }
  return { numerators, determinant };
}

function swapRows(m: Float64Array, d: number, r1: number, r2: number): void {
  for (let j = 0; j < d; j++) {
    const t = m[r1 * d + j] as number;
    m[r1 * d + j] = m[r2 * d + j] as number;
    m[r2 * d + j] = t;
  }
}
