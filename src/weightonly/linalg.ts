import { check, checkPositiveInteger, LatticeMatmulError, describeValue } from '../errors.js';
import { gaussianMatrix } from '../rotation/random.js';

/*
 * Small dense float64 helpers for the weight-only quantizers. A square matrix is a Float64Array of
 * n·n entries in row-major order (entry (i, k) at i·n + k); for the symmetric matrices used here
 * row-major and column-major coincide. Everything is O(n³) at most and meant for n up to a few
 * thousand.
 */

/** Checks that `a` holds an n × n matrix. */
function checkSquare(a: Float64Array, n: number, what: string): void {
  checkPositiveInteger(n, `${what}: n`);
  check(a instanceof Float64Array, `${what}: the matrix must be a Float64Array`);
  check(a.length === n * n, () => `${what}: expected n·n = ${n * n} entries, got ${describeValue(a.length)}`);
}

/**
 * Cholesky factor of a symmetric positive definite matrix: the lower-triangular L (row-major, zeros
 * above the diagonal) with A = L·Lᵀ and L_ii > 0. Only the lower triangle of `a` is read.
 * Throws a `LatticeMatmulError` naming the first pivot that is not positive (A is then not positive
 * definite, or too ill-conditioned for float64).
 *
 * @example
 * const l = choleskyLower(new Float64Array([4, 2, 2, 5]), 2); // [2, 0, 1, 2]
 */
export function choleskyLower(a: Float64Array, n: number, what = 'matrix'): Float64Array {
  checkSquare(a, n, 'choleskyLower');
  const l = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    const rowI = i * n;
    for (let j = 0; j <= i; j++) {
      const rowJ = j * n;
      // Row-oriented: both dot-product operands are contiguous rows of L.
      let s = a[rowI + j] as number;
      for (let k = 0; k < j; k++) s -= (l[rowI + k] as number) * (l[rowJ + k] as number);
      if (j === i) {
        if (!(s > 0)) {
          throw new LatticeMatmulError(
            `${what} is not positive definite: Cholesky pivot ${i} is ${s} (must be > 0)`,
          );
        }
        l[rowI + i] = Math.sqrt(s);
      } else {
        l[rowI + j] = s / (l[rowJ + j] as number);
      }
    }
  }
  return l;
}

/** A vector x that proves a symmetric matrix A indefinite: xᵀ·A·x < 0 by more than rounding can explain. */
export interface IndefinitenessWitness {
  /** x, n entries (0 outside the features the factorization had reached). */
  readonly vector: Float64Array;
  /** xᵀ·A·x, formed directly from A's entries in float64. */
  readonly value: number;
  /**
   * (Σ_i |x_i|·√A_ii)²: the most |xᵀ·E·x| can be for a perturbation E of A's entries with
   * |E_ik| ≤ √(A_ii·A_kk), so xᵀ·A·x < −τ·scale rules out every positive semidefinite matrix whose
   * entries differ from A's by a relative τ (of √(A_ii·A_kk)).
   */
  readonly scale: number;
  /** The pivot (feature) at which the factorization found it. */
  readonly pivot: number;
}

/**
 * Looks for a proof that the symmetric matrix `a` (lower triangle read) is not positive
 * semidefinite, beyond a relative perturbation `tolerance` of its entries: a Cholesky factorization
 * that drops the features whose pivot is ≤ 0 (semidefinite directions: a zero variance, a linear
 * dependence) and checks each such pivot's vector x = (−A_SS⁻¹·a_Sp, 1) over the kept features S
 * and p, whose xᵀ·A·x is that pivot. Returns the first x with xᵀ·A·x < −tolerance·scale (see
 * {@link IndefinitenessWitness}), or null. Null does not prove A semidefinite (a negative direction
 * the dropped pivots hide is not searched); a witness proves A indefinite. O(n³/3), like Cholesky.
 *
 * @example
 * indefinitenessWitness(new Float64Array([1, 2, 2, 1]), 2, 1e-3); // x = (−2, 1): xᵀAx = −3
 */
export function indefinitenessWitness(a: Float64Array, n: number, tolerance: number): IndefinitenessWitness | null {
  checkSquare(a, n, 'indefinitenessWitness');
  check(Number.isFinite(tolerance) && tolerance >= 0, () => `indefinitenessWitness: tolerance must be finite and ≥ 0, got ${describeValue(tolerance)}`);
  // Row q of `l` is the factor's row for kept feature kept[q] (its first q + 1 entries).
  const l = new Float64Array(n * n);
  const kept: number[] = [];
  const y = new Float64Array(n);
  for (let p = 0; p < n; p++) {
    const rowP = p * n;
    const size = kept.length;
    // y = L_S⁻¹·a_Sp (forward substitution) and the pivot s = a_pp − ‖y‖².
    let s = a[rowP + p] as number;
    for (let q = 0; q < size; q++) {
      const rowQ = q * n;
      let t = a[rowP + (kept[q] as number)] as number;
      for (let r = 0; r < q; r++) t -= (l[rowQ + r] as number) * (y[r] as number);
      const yq = t / (l[rowQ + q] as number);
      y[q] = yq;
      s -= yq * yq;
    }
    if (s > 0) {
      const rowNew = size * n;
      for (let q = 0; q < size; q++) l[rowNew + q] = y[q] as number;
      l[rowNew + size] = Math.sqrt(s);
      kept.push(p);
      continue;
    }
    // The scale is at least x_p²·a_pp = a_pp: a pivot above −tolerance·a_pp cannot prove anything (up to
    // the rounding of s), so the semidefinite directions of a singular A cost no more than Cholesky.
    if (s >= -tolerance * (a[rowP + p] as number)) continue;
    // z = L_Sᵀ⁻¹·y (back substitution): x = (−z on S, 1 at p) has xᵀAx = s in exact arithmetic.
    const z = Float64Array.from(y.subarray(0, size));
    for (let q = size - 1; q >= 0; q--) {
      const zq = (z[q] as number) / (l[q * n + q] as number);
      z[q] = zq;
      for (let r = 0; r < q; r++) z[r] = (z[r] as number) - (l[q * n + r] as number) * zq;
    }
    const vector = new Float64Array(n);
    for (let q = 0; q < size; q++) vector[kept[q] as number] = -(z[q] as number);
    vector[p] = 1;
    const support = [...kept, p];
    let value = 0;
    let root = 0;
    for (const i of support) {
      const xi = vector[i] as number;
      root += Math.abs(xi) * Math.sqrt(Math.max(0, a[i * n + i] as number));
      let t = 0;
      for (const k of support) t += (i >= k ? (a[i * n + k] as number) : (a[k * n + i] as number)) * (vector[k] as number);
      value += xi * t;
    }
    const scale = root * root;
    if (value < -tolerance * scale) return { vector, value, scale, pivot: p };
  }
  return null;
}

/** ln|A| = 2·Σ ln L_ii from a Cholesky factor. */
export function logDetFromCholesky(l: Float64Array, n: number): number {
  checkSquare(l, n, 'logDetFromCholesky');
  let s = 0;
  for (let i = 0; i < n; i++) s += Math.log(l[i * n + i] as number);
  return 2 * s;
}

/** The squared diagonal L_ii² of a Cholesky factor (the conditional variances of the coordinates). */
export function choleskyPivots(l: Float64Array, n: number): Float64Array {
  checkSquare(l, n, 'choleskyPivots');
  const pivots = new Float64Array(n);
  for (let i = 0; i < n; i++) pivots[i] = (l[i * n + i] as number) ** 2;
  return pivots;
}

/**
 * A Haar-distributed (uniformly random) n × n orthogonal matrix, row-major: the Q factor of the QR
 * decomposition of `gaussianMatrix(n, n, seed)`, with the signs of Q's columns fixed so that R has a
 * positive diagonal (without that fix Q is not Haar). Householder QR in float64, O(n³).
 *
 * @example
 * const q = haarOrthogonal(64, 7); // q·qᵀ = I up to rounding
 */
export function haarOrthogonal(n: number, seed: number): Float64Array {
  checkPositiveInteger(n, 'haarOrthogonal n');
  const g = gaussianMatrix(n, n, seed);
  // Work on columns: `cols[j·n + i]` = G(i, j) (the Matrix's own column-major layout), so every
  // Householder reflection reads and writes contiguous memory.
  const cols = Float64Array.from(g.data);
  const vs: Float64Array[] = [];
  const betas = new Float64Array(n);
  const rSigns = new Float64Array(n);
  for (let k = 0; k < n; k++) {
    const ck = k * n;
    let norm2 = 0;
    for (let i = k; i < n; i++) norm2 += (cols[ck + i] as number) ** 2;
    const norm = Math.sqrt(norm2);
    const x0 = cols[ck + k] as number;
    // Reflect x to alpha·e1 with alpha = −sign(x0)·‖x‖ (no cancellation in v0 = x0 − alpha).
    const alpha = x0 >= 0 ? -norm : norm;
    const v = new Float64Array(n - k);
    for (let i = k; i < n; i++) v[i - k] = cols[ck + i] as number;
    v[0] = x0 - alpha;
    let vNorm2 = 0;
    for (let i = 0; i < v.length; i++) vNorm2 += (v[i] as number) ** 2;
    const beta = vNorm2 > 0 ? 2 / vNorm2 : 0;
    vs.push(v);
    betas[k] = beta;
    rSigns[k] = beta === 0 ? (x0 >= 0 ? 1 : -1) : alpha >= 0 ? 1 : -1;
    for (let j = k + 1; j < n; j++) {
      const cj = j * n;
      let dot = 0;
      for (let i = k; i < n; i++) dot += (v[i - k] as number) * (cols[cj + i] as number);
      const f = beta * dot;
      for (let i = k; i < n; i++) cols[cj + i] = (cols[cj + i] as number) - f * (v[i - k] as number);
    }
  }
  // Q = H_0·H_1·…·H_{n−1}: apply the reflections to the identity's columns, last one first.
  const q = new Float64Array(n * n); // column-major while building
  for (let j = 0; j < n; j++) q[j * n + j] = 1;
  for (let k = n - 1; k >= 0; k--) {
    const v = vs[k] as Float64Array;
    const beta = betas[k] as number;
    if (beta === 0) continue;
    for (let j = k; j < n; j++) {
      const cj = j * n;
      let dot = 0;
      for (let i = k; i < n; i++) dot += (v[i - k] as number) * (q[cj + i] as number);
      const f = beta * dot;
      if (f === 0) continue;
      for (let i = k; i < n; i++) q[cj + i] = (q[cj + i] as number) - f * (v[i - k] as number);
    }
  }
  // Column j of Q times sign(R_jj); transpose to row-major on the way out.
  const out = new Float64Array(n * n);
  for (let j = 0; j < n; j++) {
    const s = rSigns[j] as number;
    for (let i = 0; i < n; i++) out[i * n + j] = s * (q[j * n + i] as number);
  }
  return out;
}

/**
 * U·diag(λ)·Uᵀ for a row-major n × n matrix U: a symmetric matrix with eigenvalues λ when U is
 * orthogonal. The result is exactly symmetric (the lower triangle is mirrored).
 */
export function congruenceDiagonal(u: Float64Array, eigenvalues: ArrayLike<number>, n: number): Float64Array {
  checkSquare(u, n, 'congruenceDiagonal');
  check(eigenvalues.length === n, () => `congruenceDiagonal: expected ${n} eigenvalues, got ${describeValue(eigenvalues.length)}`);
  const scaled = new Float64Array(n * n); // U·diag(λ)
  for (let i = 0; i < n; i++) {
    for (let k = 0; k < n; k++) scaled[i * n + k] = (u[i * n + k] as number) * (eigenvalues[k] as number);
  }
  const out = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    const si = i * n;
    for (let j = 0; j <= i; j++) {
      const uj = j * n;
      let s = 0;
      for (let k = 0; k < n; k++) s += (scaled[si + k] as number) * (u[uj + k] as number);
      out[si + j] = s;
      out[uj + i] = s;
    }
  }
  return out;
}

/**
 * All eigenvalues of a symmetric matrix, ascending: Householder reduction to tridiagonal form
 * followed by the implicit QL iteration with Wilkinson-style shifts (eigenvalues only, O(n³)).
 * Only the lower triangle of `a` is read.
 *
 * @example
 * symmetricEigenvalues(new Float64Array([2, 1, 1, 2]), 2); // [1, 3]
 */
export function symmetricEigenvalues(a: Float64Array, n: number): Float64Array {
  checkSquare(a, n, 'symmetricEigenvalues');
  const { diagonal, offDiagonal } = tridiagonalize(a, n);
  tridiagonalQl(diagonal, offDiagonal);
  return diagonal.sort();
}

/**
 * Householder tridiagonalization A = Q·T·Qᵀ (Q not formed). Returns T's diagonal d (n entries) and
 * sub-diagonal e (n entries, e[i] = T(i+1, i), e[n−1] = 0).
 */
function tridiagonalize(a: Float64Array, n: number): { diagonal: Float64Array; offDiagonal: Float64Array } {
  const m = new Float64Array(n * n);
  // Full symmetric working copy from the lower triangle.
  for (let i = 0; i < n; i++) {
    for (let j = 0; j <= i; j++) {
      const v = a[i * n + j] as number;
      m[i * n + j] = v;
      m[j * n + i] = v;
    }
  }
  const d = new Float64Array(n);
  const e = new Float64Array(n);
  const v = new Float64Array(n);
  const p = new Float64Array(n);
  for (let k = 0; k < n - 2; k++) {
    // x = column k below the diagonal, rows k+1 … n−1.
    let norm2 = 0;
    for (let i = k + 1; i < n; i++) norm2 += (m[i * n + k] as number) ** 2;
    const x0 = m[(k + 1) * n + k] as number;
    const norm = Math.sqrt(norm2);
    const alpha = x0 >= 0 ? -norm : norm;
    d[k] = m[k * n + k] as number;
    e[k] = alpha;
    let vNorm2 = 0;
    for (let i = k + 1; i < n; i++) {
      const vi = i === k + 1 ? x0 - alpha : (m[i * n + k] as number);
      v[i] = vi;
      vNorm2 += vi * vi;
    }
    if (vNorm2 === 0) {
      e[k] = x0;
      continue;
    }
    const beta = 2 / vNorm2;
    // p = β·M·v on the trailing block; w = p − (β·pᵀv/2)·v; M ← M − v·wᵀ − w·vᵀ.
    let pv = 0;
    for (let i = k + 1; i < n; i++) {
      const row = i * n;
      let s = 0;
      for (let j = k + 1; j < n; j++) s += (m[row + j] as number) * (v[j] as number);
      const pi = beta * s;
      p[i] = pi;
      pv += pi * (v[i] as number);
    }
    const kappa = (beta * pv) / 2;
    for (let i = k + 1; i < n; i++) p[i] = (p[i] as number) - kappa * (v[i] as number);
    for (let i = k + 1; i < n; i++) {
      const row = i * n;
      const vi = v[i] as number;
      const wi = p[i] as number;
      for (let j = k + 1; j < n; j++) {
        m[row + j] = (m[row + j] as number) - vi * (p[j] as number) - wi * (v[j] as number);
      }
    }
  }
  if (n >= 2) {
    d[n - 2] = m[(n - 2) * n + (n - 2)] as number;
    e[n - 2] = m[(n - 1) * n + (n - 2)] as number;
  }
  d[n - 1] = m[(n - 1) * n + (n - 1)] as number;
  e[n - 1] = 0;
  return { diagonal: d, offDiagonal: e };
}

/**
 * Eigenvalues of the symmetric tridiagonal matrix (d, e) in place into d, by the implicit QL method:
 * for each leading index l, chase a bulge with Givens rotations from the first negligible
 * sub-diagonal entry m up to l, with the shift from the eigenvalue of the leading 2 × 2 block closer
 * to d[l].
 */
function tridiagonalQl(d: Float64Array, e: Float64Array): void {
  const n = d.length;
  for (let l = 0; l < n; l++) {
    let iterations = 0;
    for (;;) {
      let m = l;
      for (; m < n - 1; m++) {
        const scale = Math.abs(d[m] as number) + Math.abs(d[m + 1] as number);
        if (Math.abs(e[m] as number) <= Number.EPSILON * scale) break;
      }
      if (m === l) break;
      check(++iterations <= 60, 'symmetricEigenvalues: the QL iteration did not converge');
      const el = e[l] as number;
      let g = ((d[l + 1] as number) - (d[l] as number)) / (2 * el);
      let r = Math.hypot(g, 1);
      g = (d[m] as number) - (d[l] as number) + el / (g + (g >= 0 ? r : -r));
      let s = 1;
      let c = 1;
      let p = 0;
      let deflated = false;
      for (let i = m - 1; i >= l; i--) {
        const f = s * (e[i] as number);
        const b = c * (e[i] as number);
        r = Math.hypot(f, g);
        e[i + 1] = r;
        if (r === 0) {
          // Underflow: the matrix split; restart the search for m.
          d[i + 1] = (d[i + 1] as number) - p;
          e[m] = 0;
          deflated = true;
          break;
        }
        s = f / r;
        c = g / r;
        g = (d[i + 1] as number) - p;
        r = ((d[i] as number) - g) * s + 2 * c * b;
        p = s * r;
        d[i + 1] = g + p;
        g = c * r - b;
      }
      if (deflated) continue;
      d[l] = (d[l] as number) - p;
      e[l] = g;
      e[m] = 0;
    }
  }
}

/**
 * Solves L·x = b for a lower-triangular row-major L (forward substitution), returning x.
 */
export function solveLower(l: Float64Array, n: number, b: ArrayLike<number>): Float64Array {
  checkSquare(l, n, 'solveLower');
  check(b.length === n, () => `solveLower: b has ${b.length} entries, expected ${n}`);
  const x = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    let s = b[i] as number;
    for (let k = 0; k < i; k++) s -= (l[i * n + k] as number) * (x[k] as number);
    x[i] = s / (l[i * n + i] as number);
  }
  return x;
}

/**
 * Solves Lᵀ·x = b for a lower-triangular row-major L (back substitution), returning x.
 */
export function solveLowerTransposed(l: Float64Array, n: number, b: ArrayLike<number>): Float64Array {
  checkSquare(l, n, 'solveLowerTransposed');
  check(b.length === n, () => `solveLowerTransposed: b has ${b.length} entries, expected ${n}`);
  const x = Float64Array.from(b);
  for (let i = n - 1; i >= 0; i--) {
    const xi = (x[i] as number) / (l[i * n + i] as number);
    x[i] = xi;
    // Column i of Lᵀ's upper part is row i of L: subtract its contribution from the rows above.
    for (let k = 0; k < i; k++) x[k] = (x[k] as number) - (l[i * n + k] as number) * xi;
  }
  return x;
}
