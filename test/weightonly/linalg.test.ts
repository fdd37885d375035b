import { describe, expect, it } from 'vitest';
import { LatticeMatmulError } from '../../src/errors.js';
import { gaussianMatrix, Rng } from '../../src/rotation/random.js';
import { WeightBasis } from '../../src/weightonly/basis.js';
import {
  choleskyLower,
  choleskyPivots,
  congruenceDiagonal,
  haarOrthogonal,
  indefinitenessWitness,
  logDetFromCholesky,
  solveLower,
  solveLowerTransposed,
  symmetricEigenvalues,
} from '../../src/weightonly/linalg.js';

/** A random SPD matrix G·Gᵀ/m + shift·I (row-major float64). */
function randomSpd(n: number, seed: number, shift = 0.1): Float64Array {
  const rng = new Rng(seed);
  const m = n + 3;
  const g = Array.from({ length: n * m }, () => rng.nextGaussian());
  const a = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let k = 0; k < m; k++) s += (g[i * m + k] as number) * (g[j * m + k] as number);
      a[i * n + j] = s / m + (i === j ? shift : 0);
    }
  }
  return a;
}

function multiplyTransposed(l: Float64Array, n: number): Float64Array {
  const out = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) {
    let s = 0;
    for (let k = 0; k < n; k++) s += (l[i * n + k] as number) * (l[j * n + k] as number);
    out[i * n + j] = s;
  }
  return out;
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs((a[i] as number) - (b[i] as number)));
  return m;
}

describe('choleskyLower', () => {
  it('matches the closed form of a 2×2 matrix', () => {
    // [[a, b], [b, c]] = L·Lᵀ with L = [[√a, 0], [b/√a, √(c − b²/a)]].
    const l = choleskyLower(new Float64Array([4, 2, 2, 5]), 2);
    expect(Array.from(l)).toEqual([2, 0, 1, 2]);
  });

  it.each([1, 2, 5, 17, 40])('reproduces a random SPD matrix of size %i with a positive, lower-triangular factor', (n) => {
    const a = randomSpd(n, n);
    const l = choleskyLower(a, n);
    for (let i = 0; i < n; i++) {
      expect(l[i * n + i]).toBeGreaterThan(0);
      for (let j = i + 1; j < n; j++) expect(l[i * n + j]).toBe(0);
    }
    expect(maxAbsDiff(multiplyTransposed(l, n), a)).toBeLessThan(1e-12 * n);
  });

  it('gives ln|A| as the log of the product of eigenvalues, and the pivots as conditional variances', () => {
    const n = 12;
    const lambda = Array.from({ length: n }, (_, k) => 0.5 + k);
    const a = congruenceDiagonal(haarOrthogonal(n, 3), lambda, n);
    const l = choleskyLower(a, n);
    const expected = lambda.reduce((s, v) => s + Math.log(v), 0);
    expect(logDetFromCholesky(l, n)).toBeCloseTo(expected, 10);
    // The first pivot is A_00 (nothing to condition on); the last is 1/(A⁻¹)_{n−1,n−1}.
    const pivots = choleskyPivots(l, n);
    expect(pivots[0]).toBeCloseTo(a[0] as number, 12);
    const x = solveLowerTransposed(l, n, solveLower(l, n, Array.from({ length: n }, (_, i) => (i === n - 1 ? 1 : 0))));
    expect(pivots[n - 1]).toBeCloseTo(1 / (x[n - 1] as number), 10);
  });

  it.each([
    ['indefinite', new Float64Array([1, 2, 2, 1]), 2, /pivot 1/],
    ['negative first entry', new Float64Array([-1, 0, 0, 1]), 2, /pivot 0/],
    ['singular', new Float64Array([1, 1, 1, 1]), 2, /pivot 1/],
  ])('refuses a %s matrix with a LatticeMatmulError naming the pivot', (_name, a, n, message) => {
    expect(() => choleskyLower(a, n, 'test matrix')).toThrow(LatticeMatmulError);
    expect(() => choleskyLower(a, n, 'test matrix')).toThrow(message);
  });

  it('refuses a wrongly sized array', () => {
    expect(() => choleskyLower(new Float64Array(5), 2)).toThrow(LatticeMatmulError);
  });
});

describe('triangular solves', () => {
  it.each([1, 3, 20])('solve L·x = b and Lᵀ·x = b (n = %i)', (n) => {
    const l = choleskyLower(randomSpd(n, 100 + n), n);
    const rng = new Rng(n);
    const b = Array.from({ length: n }, () => rng.nextGaussian());
    const x = solveLower(l, n, b);
    const y = solveLowerTransposed(l, n, b);
    for (let i = 0; i < n; i++) {
      let lx = 0;
      let lty = 0;
      for (let k = 0; k < n; k++) {
        lx += (l[i * n + k] as number) * (x[k] as number);
        lty += (l[k * n + i] as number) * (y[k] as number);
      }
      expect(lx).toBeCloseTo(b[i] as number, 10);
      expect(lty).toBeCloseTo(b[i] as number, 10);
    }
  });
});

describe('haarOrthogonal', () => {
  it.each([1, 2, 7, 33])('is orthogonal (n = %i)', (n) => {
    const q = haarOrthogonal(n, 5);
    const identity = new Float64Array(n * n);
    for (let i = 0; i < n; i++) identity[i * n + i] = 1;
    expect(maxAbsDiff(multiplyTransposed(q, n), identity)).toBeLessThan(1e-12);
  });

  it('is a pure function of the seed', () => {
    expect(Array.from(haarOrthogonal(8, 1))).toEqual(Array.from(haarOrthogonal(8, 1)));
    expect(maxAbsDiff(haarOrthogonal(8, 1), haarOrthogonal(8, 2))).toBeGreaterThan(0.1);
  });

  it.each([1, 2, 7, 33])('is the Q of G = Q·R with R upper triangular and its diagonal positive (n = %i): Qᵀ·G is such an R', (n) => {
    // G = gaussianMatrix(n, n, seed) (column-major); Q row-major. Without the sign fix of R's diagonal
    // Q would still be orthogonal but not Haar (its Q_00 = −|g_00|/‖g_0‖ always ≤ 0, for one).
    for (const seed of [5, 6]) {
      const q = haarOrthogonal(n, seed);
      const g = gaussianMatrix(n, n, seed).data;
      for (let i = 0; i < n; i++) {
        for (let j = 0; j < n; j++) {
          let r = 0;
          for (let k = 0; k < n; k++) r += (q[k * n + i] as number) * (g[j * n + k] as number);
          if (i > j) expect(Math.abs(r)).toBeLessThan(1e-10 * n);
          if (i === j) expect(r).toBeGreaterThan(0);
        }
      }
    }
  });

  it('has E[Q_00²] = 1/n (uniform on the sphere), within sampling error', () => {
    const n = 4;
    let sum = 0;
    const draws = 400;
    for (let s = 0; s < draws; s++) sum += (haarOrthogonal(n, 1000 + s)[0] as number) ** 2;
    // Var(Q_00²) = 2(n−1)/(n²(n+2)) = 1/16 for n = 4: standard error 0.0125 over 400 draws.
    expect(Math.abs(sum / draws - 1 / n)).toBeLessThan(0.05);
  });
});

describe('WeightBasis.rotateCovariance', () => {
  // Audit helper-140: the haar branch filled one triangle and then averaged it with the empty other,
  // halving every off-diagonal entry of Σ' (GPTQ and WaterSIC then quantized against the wrong H).
  it.each([3, 33, 100])('haar (n = %i) gives Q·Σ·Qᵀ, both triangles', (n) => {
    const rng = new Rng(n);
    const a = Float64Array.from({ length: n * n }, () => rng.nextGaussian());
    const sigma = new Float64Array(n * n); // A·Aᵀ + I: symmetric positive definite with off-diagonal weight
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < n; j++) {
        let v = i === j ? 1 : 0;
        for (let k = 0; k < n; k++) v += (a[i * n + k] as number) * (a[j * n + k] as number);
        sigma[i * n + j] = v;
      }
    }
    const basis = new WeightBasis(n, 'haar', 9);
    const q = haarOrthogonal(n, 9);
    const expected = new Float64Array(n * n);
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < n; j++) {
        let v = 0;
        for (let k = 0; k < n; k++) for (let l = 0; l < n; l++) v += (q[i * n + k] as number) * (sigma[k * n + l] as number) * (q[j * n + l] as number);
        expected[i * n + j] = v;
      }
    }
    const largest = Math.max(...Array.from(sigma, Math.abs));
    expect(maxAbsDiff(basis.rotateCovariance(sigma), expected)).toBeLessThan(1e-11 * largest * n);
  });
});

describe('symmetricEigenvalues', () => {
  it('matches the closed form of a 2×2 matrix', () => {
    const e = symmetricEigenvalues(new Float64Array([2, 1, 1, 2]), 2);
    expect(e[0]).toBeCloseTo(1, 14);
    expect(e[1]).toBeCloseTo(3, 14);
  });

  it('returns the diagonal of a diagonal matrix, sorted', () => {
    expect(Array.from(symmetricEigenvalues(new Float64Array([3, 0, 0, 0, -1, 0, 0, 0, 2]), 3))).toEqual([-1, 2, 3]);
  });

  it.each([
    [1, 'distinct'],
    [3, 'distinct'],
    [10, 'distinct'],
    [60, 'distinct'],
    [30, 'repeated'],
    [40, 'three decades'],
  ])('recovers the spectrum of U·diag(λ)·Uᵀ (n = %i, %s eigenvalues)', (n, kind) => {
    const lambda = Array.from({ length: n }, (_, k) =>
      kind === 'repeated' ? (k % 3) + 1 : kind === 'three decades' ? 10 ** (-3 * k / Math.max(1, n - 1)) : k - n / 3,
    );
    const a = congruenceDiagonal(haarOrthogonal(n, 11), lambda, n);
    const e = symmetricEigenvalues(a, n);
    const sorted = [...lambda].sort((x, y) => x - y);
    expect(maxAbsDiff(e, sorted)).toBeLessThan(1e-10 * Math.max(1, ...lambda.map(Math.abs)));
  });
});

describe('indefinitenessWitness', () => {
  it('finds x = (−2, 1) for [[1, 2], [2, 1]]: xᵀAx = −3, scale (2 + 1)² = 9', () => {
    const witness = indefinitenessWitness(new Float64Array([1, 2, 2, 1]), 2, 1e-2);
    expect(witness).not.toBeNull();
    expect(Array.from(witness?.vector ?? [])).toEqual([-2, 1]);
    expect([witness?.value, witness?.scale, witness?.pivot]).toEqual([-3, 9, 1]);
  });

  it('finds none for positive definite and singular semidefinite matrices (a zero variance, a dependence, rank one)', () => {
    expect(indefinitenessWitness(randomSpd(12, 3), 12, 0)).toBeNull();
    const ones = new Float64Array(16).fill(1);
    expect(indefinitenessWitness(ones, 4, 0)).toBeNull();
    const dead = randomSpd(5, 4);
    for (let k = 0; k < 5; k++) dead[2 * 5 + k] = dead[k * 5 + 2] = 0;
    expect(indefinitenessWitness(dead, 5, 0)).toBeNull();
    // Eigenvalues (3, 1, 0, 0, 0, 0) in a random basis: pivots that rounding leaves slightly negative are
    // within the tolerance (a relative 1e-12 here), not a proof.
    const n = 6;
    const lowRank = congruenceDiagonal(haarOrthogonal(n, 2), [3, 1, 0, 0, 0, 0], n);
    expect(indefinitenessWitness(lowRank, n, 1e-12)).toBeNull();
  });

  it('judges a pivot by xᵀAx against (Σ|x_i|·√A_ii)², not by the pivot against A_pp', () => {
    // [[1, c], [c, 1]]: pivot 1 − c² and x = (−c, 1), xᵀAx = 1 − c², scale (c + 1)². At c = 1.015 the
    // pivot (−0.0302) is beyond −1e-2·A_pp but xᵀAx is 0.0074 of the scale below 0: within the
    // tolerance (entries within a relative 1e-2 of [[1.01, 1.005], [1.005, 1.01]], a covariance), so
    // no witness; at c = 1.03 it is 0.0148 of the scale: a witness.
    const form = (c: number): Float64Array => new Float64Array([1, c, c, 1]);
    expect(indefinitenessWitness(form(1.015), 2, 1e-2)).toBeNull();
    const witness = indefinitenessWitness(form(1.03), 2, 1e-2);
    expect(witness?.pivot).toBe(1);
    expect(witness?.value).toBeCloseTo(1 - 1.03 ** 2, 14);
    expect(witness?.scale).toBeCloseTo(2.03 ** 2, 14);
    // With no tolerance, c = 1.015 is a witness too.
    expect(indefinitenessWitness(form(1.015), 2, 0)?.value).toBeCloseTo(1 - 1.015 ** 2, 14);
  });

  it('finds a negative direction past dropped semidefinite pivots, and its xᵀAx is what it says', () => {
    // Features 0 and 1 are dependent (pivot 1 is 0: dropped), feature 2 is dead, and (3, 4) is [[1, 2], [2, 1]].
    const n = 5;
    const a = new Float64Array(n * n);
    const set = (i: number, k: number, v: number): void => {
      a[i * n + k] = v;
      a[k * n + i] = v;
    };
    set(0, 0, 4);
    set(0, 1, 2);
    set(1, 1, 1);
    set(3, 3, 1);
    set(3, 4, 2);
    set(4, 4, 1);
    const witness = indefinitenessWitness(a, n, 1e-2);
    expect(witness?.pivot).toBe(4);
    const x = witness?.vector ?? new Float64Array(n);
    let direct = 0;
    for (let i = 0; i < n; i++) for (let k = 0; k < n; k++) direct += (x[i] as number) * (a[i * n + k] as number) * (x[k] as number);
    expect(direct).toBe(witness?.value);
    expect(direct).toBe(-3);
  });
});
