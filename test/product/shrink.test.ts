import { describe, expect, it } from 'vitest';
import { testMatrixPair, type DataKind } from '../../src/data/testMatrices.js';
import { LatticeMatmulError } from '../../src/errors.js';
import { matmulATExact, productNmse, type Matrix } from '../../src/matrix.js';
import { expectedProductError, shrinkConstant } from '../../src/product/expectedError.js';
import { universalCodec } from '../../src/quantize/latticeSpec.js';
import { matmulAT } from '../../src/product/matmulAT.js';
import { quantize } from '../../src/quantize/quantize.js';
import type { SchemeName } from '../../src/quantize/schemes.js';
import { gaussianMatrix } from '../../src/rotation/random.js';

/*
 * `matmulAT(qa, qb, { shrink: 'product' })`: the positive-part James–Stein factor ĉ = max(0, 1 − c/‖Ĉ‖²)
 * estimated on the product (c = `shrinkConstant`: E less twice the error's largest directional variance). Checked as statistics over seeds: smaller error than the unbiased estimate
 * on Gaussian data (≈ V/(1 + V) instead of V), never much worse than the guarantee E on adversarial
 * families, and the exact parts (Gram diagonal, mean term) left alone.
 */

function squaredError(estimate: Matrix, a: Matrix, b: Matrix): number {
  const exact = matmulATExact(a, b);
  let sum = 0;
  for (let i = 0; i < exact.data.length; i++) sum += ((estimate.data[i] as number) - (exact.data[i] as number)) ** 2;
  return sum;
}

function meanAndStandardError(values: readonly number[]): { mean: number; se: number } {
  const mean = values.reduce((s, v) => s + v, 0) / values.length;
  const variance = values.reduce((s, v) => s + (v - mean) ** 2, 0) / (values.length - 1);
  return { mean, se: Math.sqrt(variance / values.length) };
}

describe("matmulAT shrink: 'product'", () => {
  it('refuses unknown options, bad values and non-universal operands', () => {
    const a = gaussianMatrix(64, 4, 1);
    const q = quantize(a, { scheme: 'e8-q16', seed: 1, nonce: 1 });
    const d = quantize(a, { scheme: 'd3-q6-deterministic', seed: 1 });
    expect(() => matmulAT(q, q, { shrnk: 'product' } as never)).toThrow(/unknown option 'shrnk'.*shrink/);
    expect(() => matmulAT(q, q, { shrink: 'yes' } as never)).toThrow(/shrink must be 'none' or 'product', got "yes"/);
    expect(() => matmulAT(q, q, { shrink: null } as never)).toThrow(/shrink must be 'none' or 'product', got null/); // was taken as 'none'
    expect(() => matmulAT(d, d, { shrink: 'product' })).toThrow(LatticeMatmulError);
    expect(() => matmulAT(d, d, { shrink: 'product' })).toThrow(/^matmulAT shrink: 'product' scales by the expected error, which needs universal operands: A must be quantized with a universal lattice scheme/);
    expect(() => matmulAT(q, q, null as never)).toThrow(LatticeMatmulError);
  });

  // The constant for b × b columns of equal norms s: E = (2D + D²)·b²·s²/N, and James–Stein's bound on the
  // error's largest variance λ̄ = (2D·b + D²)·s²/N (both linear terms and the product of errors), so
  // c/E = 1 − 2(2D·b + D²)/((2D + D²)·b²) ≈ 1 − 2/b: README's 0.98·E at 128 + 128 columns.
  it.each([8, 32, 128])('the constant for b × b columns of equal norms (b = %i) is E·(1 − 2(2Db + D²)/((2D + D²)b²)) ≈ E·(1 − 2/b)', (cols) => {
    const n = 1024;
    const unitColumns = (m: Matrix): Matrix => {
      const data = new Float32Array(m.data);
      for (let j = 0; j < m.cols; j++) {
        const column = data.subarray(j * n, (j + 1) * n);
        const norm = Math.hypot(...column);
        column.forEach((v, i) => (column[i] = v / norm));
      }
      return { ...m, data };
    };
    const qa = quantize(unitColumns(gaussianMatrix(n, cols, 3)), { scheme: 'e8-2bit', seed: 2, nonce: 1 });
    const qb = quantize(unitColumns(gaussianMatrix(n, cols, 4)), { scheme: 'e8-2bit', seed: 2, nonce: 2 });
    if (qa.kind !== 'lattice' || qa.mode !== 'universal') throw new Error('universal matrix expected');
    const d = universalCodec(qa.scheme.lattice, qa.scheme.q, qa.scheme.beta).distortion;
    const predicted = 1 - (2 * (2 * d * cols + d * d)) / ((2 * d + d * d) * cols * cols);
    // The stored norms are the f32 roundings of 1: equal to within 1e-7.
    expect(shrinkConstant(qa, qb) / expectedProductError(qa, qb)).toBeCloseTo(predicted, 5);
    expect(Math.abs(predicted - (1 - 2 / cols))).toBeLessThan(0.2 / cols);
  });

  // Gaussian n = 512, 48 × 48, 10 seeds. V = expected NMSE of the unbiased estimate; the shrunk one
  // should reach ≈ V/(1 + V) (the ideal factor ‖C‖²/(‖C‖² + E) with ‖C‖² ≈ ‖A‖²‖B‖²/n).
  it.each(['e8-2bit', 'e8-2.5bit', 'd3-q6'] as SchemeName[])('%s on Gaussian data: error ≈ V/(1 + V), below the unbiased V', (scheme) => {
    const n = 512;
    const plain: number[] = [];
    const shrunk: number[] = [];
    for (let seed = 0; seed < 10; seed++) {
      const a = gaussianMatrix(n, 48, 100 + seed);
      const b = gaussianMatrix(n, 48, 200 + seed);
      const qa = quantize(a, { scheme, seed: 3, nonce: 2 * seed + 1 });
      const qb = quantize(b, { scheme, seed: 3, nonce: 2 * seed + 2 });
      plain.push(productNmse(matmulAT(qa, qb), a, b));
      shrunk.push(productNmse(matmulAT(qa, qb, { shrink: 'product' }), a, b));
    }
    const p = meanAndStandardError(plain);
    const s = meanAndStandardError(shrunk);
    const ideal = p.mean / (1 + p.mean);
    // The shrunk error's mean within 5 standard errors (+3 % for the factor's own noise) of V/(1+V).
    expect(Math.abs(s.mean - ideal)).toBeLessThan(5 * s.se + 0.03 * ideal);
    // And below the unbiased estimate's, by more than the noise of the difference.
    const differences = plain.map((v, i) => v - (shrunk[i] as number));
    const d = meanAndStandardError(differences);
    expect(d.mean).toBeGreaterThan(4 * d.se);
  });

  // On adversarial families the shrunk error stays within the guarantee E (averaged over seeds, with
  // a tolerance of 4 standard errors + 10 %): shrinking only ever removes error except through the
  // noise of ĉ itself.
  it.each(['parallel', 'low-rank', 'spikes', 'outlier-rows', 'gaussian'] as DataKind[])('e8-2bit on %s data: mean shrunk error ≤ the guarantee', (kind) => {
    const ratios: number[] = [];
    for (let seed = 0; seed < 8; seed++) {
      const { a, b } = testMatrixPair(kind, 256, 16, 16, 40 + seed);
      const qa = quantize(a, { scheme: 'e8-2bit', seed: 5, nonce: 1000 + seed });
      const qb = quantize(b, { scheme: 'e8-2bit', seed: 5, nonce: 2000 + seed });
      ratios.push(squaredError(matmulAT(qa, qb, { shrink: 'product' }), a, b) / expectedProductError(qa, qb));
    }
    const r = meanAndStandardError(ratios);
    expect(r.mean).toBeLessThan(1.1 + 4 * r.se);
  });

  // Few entries, or errors along few directions: c = E alone (the constant before shrinkConstant) made
  // the mean error 1.49·E for a 1 × 1 product with C = 2.5·√E (1.55 ± 0.10 measured), and a 2-column
  // Gram matrix is one value twice. 200 nonce pairs (60 for 16 × 16); the mean within 4 standard errors
  // of ≤ E, and of no worse than the unbiased estimate's on the same codes.
  it.each([
    ['1 × 1', 1, 1, false],
    ['1 × 3', 1, 3, false],
    ['Gram of 2 columns', 2, 2, true],
    ['3 × 3, parallel columns', 3, 3, false],
    ['16 × 16, parallel columns', 16, 16, false],
  ] as const)('e8-3bit, %s with entries ≈ 2.5·√E: mean shrunk error ≤ E', (_, colsA, colsB, gram) => {
    const n = 1024;
    const [u, v] = [gaussianMatrix(n, 1, 7).data, gaussianMatrix(n, 1, 8).data];
    const unit = (x: Float32Array) => {
      const norm = Math.hypot(...x);
      return x.map((value) => value / norm);
    };
    const direction = unit(u);
    // v made orthogonal to direction, then unit.
    const dot = v.reduce((sum, value, i) => sum + value * (direction[i] as number), 0);
    const across = unit(v.map((value, i) => value - dot * (direction[i] as number)));
    const probe = quantize({ rows: n, cols: 1, data: direction }, { scheme: 'e8-3bit', seed: 1, nonce: 1 });
    const t = 2.5 * Math.sqrt(expectedProductError(probe, quantize({ rows: n, cols: 1, data: across }, { scheme: 'e8-3bit', seed: 1, nonce: 2 })));
    // Columns of A: `direction`; of B: t·direction + √(1 − t²)·across, so every entry of AᵀB is t.
    const column = direction.map((value, i) => t * value + Math.sqrt(1 - t * t) * (across[i] as number));
    const repeat = (x: Float32Array, cols: number) => ({ rows: n, cols, data: Float32Array.from({ length: n * cols }, (_, k) => x[k % n] as number) });
    const a = gram ? { rows: n, cols: 2, data: Float32Array.from([...direction, ...column]) } : repeat(direction, colsA);
    const b = gram ? a : repeat(column, colsB);
    const ratios: number[] = [];
    const gains: number[] = [];
    for (let seed = 0; seed < (colsA * colsB > 16 ? 60 : 200); seed++) {
      const qa = quantize(a, { scheme: 'e8-3bit', seed: 1, nonce: 2 * seed + 1 });
      const qb = gram ? qa : quantize(b, { scheme: 'e8-3bit', seed: 1, nonce: 2 * seed + 2 });
      const expected = expectedProductError(qa, qb);
      const shrunk = squaredError(matmulAT(qa, qb, { shrink: 'product' }), a, b) / expected;
      ratios.push(shrunk);
      gains.push(squaredError(matmulAT(qa, qb), a, b) / expected - shrunk);
    }
    const r = meanAndStandardError(ratios);
    expect(r.mean, `mean ${r.mean} ± ${r.se}`).toBeLessThan(1 + 4 * r.se);
    // Paired with the unbiased estimate on the same codes (far less noisy): shrinking does not add error
    // (c = E did: 0.38 ± 0.08·E more for 1 × 1 here). Where c ≤ 0 the two are the same, to the bit.
    const g = meanAndStandardError(gains);
    expect(g.mean, `gain ${g.mean} ± ${g.se}`).toBeGreaterThanOrEqual(-4 * g.se);
  });

  it.each([
    ['1 × 1', 1, 1, false],
    ['1 × 3', 1, 3, false],
    ['Gram of 3 columns', 3, 3, true],
  ] as const)('%s: where the constant c ≤ 0 nothing is scaled (a factor 1 − c/‖Ĉ‖² > 1 would inflate the estimate)', (_, colsA, colsB, gram) => {
    const n = 256;
    const a = gaussianMatrix(n, colsA, 31);
    const b = gaussianMatrix(n, colsB, 32);
    for (let seed = 0; seed < 5; seed++) {
      const qa = quantize(a, { scheme: 'e8-2bit', seed: 3, nonce: 2 * seed + 1 });
      const qb = gram ? qa : quantize(b, { scheme: 'e8-2bit', seed: 3, nonce: 2 * seed + 2 });
      // The precondition, from the stored norms alone: one row or column (or a small Gram matrix) has its
      // error along too few directions for the shrink to help.
      expect(shrinkConstant(qa, qb)).toBeLessThanOrEqual(0);
      expect(matmulAT(qa, qb, { shrink: 'product' }).data).toEqual(matmulAT(qa, qb).data);
    }
  });

  it('a Gram matrix keeps its exact diagonal; the mean term is not shrunk', () => {
    const a = gaussianMatrix(256, 12, 9);
    for (let i = 0; i < a.data.length; i++) a.data[i] = (a.data[i] as number) + 40; // a large common mean
    const q = quantize(a, { scheme: 'e8-2bit', seed: 2, nonce: 77, center: true });
    const plain = matmulAT(q, q);
    const shrunk = matmulAT(q, q, { shrink: 'product' });
    for (let i = 0; i < 12; i++) expect(shrunk.data[i * 12 + i]).toBe(plain.data[i * 12 + i]);
    // Off-diagonal entries are dominated by the exact mean term n·μ_i·μ_j ≈ 256·1600: shrinking it
    // would move them by ~1e5; only the small centred part may change.
    const exact = matmulATExact(a, a);
    for (let k = 0; k < 144; k++) {
      expect(Math.abs((shrunk.data[k] as number) - (exact.data[k] as number))).toBeLessThan(0.02 * Math.abs(exact.data[k] as number));
    }
  });

  it('a Gram matrix: the factor is 1 − c/‖Ĉ_off‖², from the off-diagonal entries only (the exact diagonal is no estimate)', () => {
    const cols = 48;
    const q = quantize(gaussianMatrix(256, cols, 10), { scheme: 'e8-2bit', seed: 2, nonce: 78 });
    const plain = matmulAT(q, q);
    const shrunk = matmulAT(q, q, { shrink: 'product' });
    let offEnergy = 0;
    for (let j = 0; j < cols; j++) for (let i = 0; i < cols; i++) if (i !== j) offEnergy += (plain.data[j * cols + i] as number) ** 2;
    const c = shrinkConstant(q, q);
    expect(c).toBeGreaterThan(0);
    const factor = Math.max(0, 1 - c / offEnergy);
    // ‖A‖²'s diagonal (≈ 256 per entry, vs ≈ 16 off it) would weigh in ~4× the off-diagonal energy: a factor nearer 1.
    expect(factor).toBeLessThan(0.95);
    for (let j = 0; j < cols; j++) {
      for (let i = 0; i < cols; i++) {
        const k = j * cols + i;
        const expected = i === j ? (plain.data[k] as number) : factor * (plain.data[k] as number);
        expect(Math.abs((shrunk.data[k] as number) - expected)).toBeLessThanOrEqual(2 ** -23 * Math.abs(expected));
      }
    }
  });

  // An LM head's vocabulary (128 256 columns) is past what Math.max(...values) takes: the largest
  // column error used to be found by spreading the norms, a RangeError ("Maximum call stack size exceeded").
  it('takes a matrix of 130 001 columns (more than a spread argument list holds)', () => {
    const qa = quantize(gaussianMatrix(8, 1, 6), { scheme: 'e8-2bit', seed: 1, nonce: 1 });
    const qb = quantize(gaussianMatrix(8, 130_001, 5), { scheme: 'e8-2bit', seed: 1, nonce: 2 });
    const plain = matmulAT(qa, qb);
    const shrunk = matmulAT(qa, qb, { shrink: 'product' });
    // One factor for the whole product, in (0, 1]: ĉ = max(0, 1 − c/‖Ĉ‖²)·Ĉ.
    const factor = (shrunk.data[0] as number) / (plain.data[0] as number);
    expect(factor).toBeGreaterThan(0);
    expect(factor).toBeLessThanOrEqual(1);
    for (const k of [1, 4097, 130_000]) expect((shrunk.data[k] as number) / (plain.data[k] as number)).toBeCloseTo(factor, 5);
  });
});
