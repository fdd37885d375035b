import { describe, expect, it } from 'vitest';
import type { Matrix } from '../../src/matrix.js';
import { columnNormBound, decodeRotated } from '../../src/product/decodeRotated.js';
import { dequantize } from '../../src/product/dequantize.js';
import { matmulAT, tableNormBound } from '../../src/product/matmulAT.js';
import { matvecAT } from '../../src/product/matvec.js';
import { quantize, type QuantizeOptions } from '../../src/quantize/quantize.js';
import type { QuantizedMatrix } from '../../src/quantize/quantizedMatrix.js';
import { SCHEMES, type Scheme } from '../../src/quantize/schemes.js';
import { rotationLength } from '../../src/rotation/hadamard.js';
import { gaussianMatrix } from '../../src/rotation/random.js';

/**
 * Reference product from the decoded rotated columns, in float64, plus the mean term n·μ_a·μ_b; the
 * part without the mean term; and the scale ‖â_i‖·‖b̂_j‖ + n·|μ_a·μ_b| that bounds every partial sum.
 */
function decodedReference(qa: QuantizedMatrix, qb: QuantizedMatrix): { product: Float64Array; withoutMeans: Float64Array; scale: Float64Array } {
  const da = decodeRotated(qa);
  const db = decodeRotated(qb);
  const length = qa.length;
  expect(da.length).toBe(qa.cols * length);
  expect(db.length).toBe(qb.cols * length);
  const product = new Float64Array(qa.cols * qb.cols);
  const withoutMeans = new Float64Array(qa.cols * qb.cols);
  const scale = new Float64Array(qa.cols * qb.cols);
  for (let j = 0; j < qb.cols; j++) {
    for (let i = 0; i < qa.cols; i++) {
      let sum = 0;
      let na = 0;
      let nb = 0;
      for (let k = 0; k < length; k++) {
        const x = da[i * length + k] as number;
        const y = db[j * length + k] as number;
        sum += x * y;
        na += x * x;
        nb += y * y;
      }
      withoutMeans[j * qa.cols + i] = sum;
      if (qa.means && qb.means) sum += qa.rows * (qa.means[i] as number) * (qb.means[j] as number);
      product[j * qa.cols + i] = sum;
      scale[j * qa.cols + i] = Math.sqrt(na * nb) + (qa.means && qb.means ? qa.rows * Math.abs((qa.means[i] as number) * (qb.means[j] as number)) : 0);
    }
  }
  return { product, withoutMeans, scale };
}

/** Float64 product of two dequantized matrices and its per-entry scale. */
function dequantizedReference(a: Matrix, b: Matrix): { product: Float64Array; scale: Float64Array } {
  const n = a.rows;
  const product = new Float64Array(a.cols * b.cols);
  const scale = new Float64Array(a.cols * b.cols);
  for (let j = 0; j < b.cols; j++) {
    for (let i = 0; i < a.cols; i++) {
      let sum = 0;
      let na = 0;
      let nb = 0;
      for (let k = 0; k < n; k++) {
        const x = a.data[i * n + k] as number;
        const y = b.data[j * n + k] as number;
        sum += x * y;
        na += x * x;
        nb += y * y;
      }
      product[j * a.cols + i] = sum;
      scale[j * a.cols + i] = Math.sqrt(na * nb);
    }
  }
  return { product, scale };
}

const F32_HALF_ULP = 2 ** -24;

const d3 = (q: number): Scheme => ({ kind: 'lattice', mode: 'deterministic', lattice: 'D3', q, overload: { kind: 'ladder', beta: 2.4 / q, ratio: Math.SQRT2, steps: 4 } });

// The integer inner-product table serves deterministic D3 products (the universal code decodes).
describe('the inner-product-table path equals the decoded path', () => {
  // A fourth entry quantizes B differently: the table serves any two D3 schemes of one q, each scaled by its own grid.
  const cases: [string, number, QuantizeOptions, QuantizeOptions?][] = [
    ['d3-q6-deterministic, n = 768', 768, { scheme: 'd3-q6-deterministic', seed: 3 }],
    [`d3-q6-deterministic, n = 1000 (padded to ${rotationLength(1000)}: a partial last block)`, 1000, { scheme: 'd3-q6-deterministic', seed: 3 }],
    ['d3-q6-deterministic, n = 13', 13, { scheme: 'd3-q6-deterministic', seed: 3 }],
    ['d3-q6-deterministic, centred', 768, { scheme: 'd3-q6-deterministic', seed: 4, center: true }],
    ['d3-q6-deterministic, gain mmse', 768, { scheme: 'd3-q6-deterministic', seed: 4, gain: 'mmse' }],
    ['d3-q6-deterministic, no rotation', 500, { scheme: 'd3-q6-deterministic', rotate: false }],
    ['d3-q6-deterministic, keepFraction 0.4', 768, { scheme: 'd3-q6-deterministic', keepFraction: 0.4 }],
    ['D3 q = 4', 768, { scheme: d3(4) }],
    ['D3 q = 10', 768, { scheme: d3(10) }],
    ['D3 q = 6, A with β = 0.4 and B with β = 1.2 (different scale units)', 768, { scheme: d3(6) }, { scheme: { kind: 'lattice', mode: 'deterministic', lattice: 'D3', q: 6, overload: { kind: 'ladder', beta: 1.2, ratio: Math.SQRT2, steps: 4 } } }],
  ];
  it.each(cases)('%s: within f32 rounding + 1e-9 relative', (_name, n, options, optionsB) => {
    const a = gaussianMatrix(n, 12, n + 1);
    const b = gaussianMatrix(n, 9, n + 2);
    if (options.center) for (let i = 0; i < a.data.length; i++) a.data[i] = (a.data[i] as number) + 3;
    const qa = quantize(a, options);
    const qb = quantize(b, optionsB ?? options);
    const table = matmulAT(qa, qb);
    const { product, withoutMeans, scale } = decodedReference(qa, qb);
    for (let k = 0; k < product.length; k++) {
      const ref = product[k] as number;
      const got = table.data[k] as number;
      // The result is f32: one rounding of the lattice part, one more after adding the mean term.
      const rounding = F32_HALF_ULP * (Math.abs(ref) + (qa.means ? Math.abs(withoutMeans[k] as number) : 0));
      const tolerance = rounding + 1e-9 * (scale[k] as number);
      if (!(Math.abs(got - ref) <= tolerance)) expect.fail(`entry ${k}: table ${got}, decoded ${ref} (tolerance ${tolerance})`);
    }
    // The product range is checked on norms from the table's diagonal: those of the decoded columns.
    for (const q of [qa, qb]) {
      if (q.kind !== 'lattice' || q.mode !== 'deterministic') throw new Error('deterministic matrix expected');
      const decoded = columnNormBound(q, decodeRotated(q));
      expect(Math.abs(tableNormBound(q) - decoded)).toBeLessThanOrEqual(1e-6 * decoded);
    }
  });
});

describe('a deterministic matrix carries its scheme\'s scale grid', () => {
  // unit and multiples scale every decoded entry; the table path multiplies by them without decoding,
  // so a hand-edited { ...q, unit: 1e38 } used to come back as ±Infinity. Every reader refuses it, as
  // the container reader does.
  const qa = quantize(gaussianMatrix(96, 3, 1), { scheme: 'd3-q6-deterministic' });
  const qb = quantize(gaussianMatrix(96, 3, 2), { scheme: 'd3-q6-deterministic' });
  if (qa.kind !== 'lattice' || qa.mode !== 'deterministic') throw new Error('expected a deterministic matrix');
  const tampered: [string, QuantizedMatrix, RegExp][] = [
    ['unit 1e38', { ...qa, unit: 1e38 }, /A\.unit is 1e\+38, but the scheme's scale grid has unit 0\.025/],
    ['unit twice the grid\'s', { ...qa, unit: qa.unit * 2 }, /A\.unit is .* but the scheme's scale grid has unit/],
    ['multiples scaled', { ...qa, multiples: qa.multiples.map((k) => k * 1000) }, /A\.multiples must be the scheme's scale multiples \[16, /],
    ['multiples not an Int32Array', { ...qa, multiples: Array.from(qa.multiples) } as unknown as QuantizedMatrix, /A\.multiples must be an Int32Array, got an array/],
  ];
  it.each(tampered)('%s: refused by matmulAT (table path), dequantize and matvecAT', (_name, q, message) => {
    expect(() => matmulAT(q, qb)).toThrow(message);
    expect(() => dequantize(q)).toThrow(/unit|multiples/);
    expect(() => matvecAT(q, gaussianMatrix(96, 1, 3))).toThrow(/unit|multiples/);
  });
  it('the untouched matrix still multiplies (table path)', () => {
    expect(matmulAT(qa, qb).data.every(Number.isFinite)).toBe(true);
  });
});

describe('decoded-path products equal the float64 product of the decoded columns', () => {
  it.each([
    ['e8-q16', 768],
    ['e8-q16', 100],
    ['d3-q6', 768],
    ['d3-q6', 1],
    ['e8-5bit', 300],
    ['e8-2bit', 100],
    ['e8-q16-deterministic', 768],
    ['e8-q16-deterministic', 100],
  ] as const)('%s, n = %i', (scheme, n) => {
    const a = gaussianMatrix(n, 10, 21);
    const b = gaussianMatrix(n, 7, 22);
    const universal = SCHEMES[scheme].mode === 'universal';
    const qa = quantize(a, universal ? { scheme, nonce: 1 } : { scheme });
    const qb = quantize(b, universal ? { scheme, nonce: 2 } : { scheme });
    const c = matmulAT(qa, qb);
    const { product, scale } = decodedReference(qa, qb);
    for (let k = 0; k < product.length; k++) {
      expect(Math.abs((c.data[k] as number) - (product[k] as number))).toBeLessThanOrEqual(F32_HALF_ULP * Math.abs(product[k] as number) + 1e-9 * (scale[k] as number));
    }
  });
});

describe('a universal Gram matrix ÂᵀÂ (one quantization passed twice)', () => {
  // Distinct columns have independent dither, so off the diagonal the decoded product is unbiased; on
  // the diagonal both factors share one error, and the stored norm (exact) replaces it.
  it.each([
    ['d3-q6', 768, false],
    ['e8-q16', 100, false],
    ['e8-q16', 768, true],
  ] as const)('%s, n = %i, centred %s: off-diagonal = the decoded product, diagonal = ‖a_i‖² (+ n·μ_i²)', (scheme, n, center) => {
    const a = gaussianMatrix(n, 6, 41);
    if (center) for (let i = 0; i < a.data.length; i++) a.data[i] = (a.data[i] as number) + 0.5;
    const q = quantize(a, { scheme, center, nonce: 5 });
    const c = matmulAT(q, q);
    // Quantized again with the same nonce: the same quantization, so also a Gram matrix.
    expect(matmulAT(q, quantize(a, { scheme, center, nonce: 5 }))).toEqual(c);
    const { product, withoutMeans, scale } = decodedReference(q, q);
    for (let j = 0; j < a.cols; j++) {
      for (let i = 0; i < a.cols; i++) {
        const k = j * a.cols + i;
        const got = c.data[k] as number;
        if (i === j) {
          let exact = 0;
          for (let r = 0; r < n; r++) exact += (a.data[i * n + r] as number) ** 2;
          // Float32 norm and mean: a few f32 roundings of the column's energy.
          expect(Math.abs(got - exact)).toBeLessThanOrEqual(8 * F32_HALF_ULP * exact);
        } else {
          const ref = product[k] as number;
          const tolerance = F32_HALF_ULP * (Math.abs(ref) + (center ? Math.abs(withoutMeans[k] as number) : 0)) + 1e-9 * (scale[k] as number);
          expect(Math.abs(got - ref)).toBeLessThanOrEqual(tolerance);
        }
      }
    }
  });
});

describe('matmulAT and the product of the dequantized matrices', () => {
  // Without padding (n = N) and without centring the rotation is square and orthogonal, so the
  // rotated-domain product is the product of the dequantized matrices up to f32 rounding.
  it.each(['int3-absmax', 'int4-g32', 'int4-g128', 'nvfp4', 'd3-q6', 'e8-q16', 'd3-q6-deterministic', 'e8-q16-deterministic'] as const)('%s: equal within 1e-4 of ‖â_i‖‖b̂_j‖ (two unpadded n)', (scheme) => {
    // Sizes the rotation does not pad (rotationLength(n) = n), whatever rotation lengths are supported.
    const unpadded = [768, 320, 1000, 4096].filter((n) => rotationLength(n) === n);
    expect(unpadded.length).toBeGreaterThanOrEqual(2);
    for (const n of unpadded.slice(0, 2)) {
      const a = gaussianMatrix(n, 8, 31);
      const b = gaussianMatrix(n, 6, 32);
      const qa = quantize(a, { scheme });
      const qb = quantize(b, { scheme });
      expect(qa.length).toBe(n);
      const c = matmulAT(qa, qb);
      const { product, scale } = dequantizedReference(dequantize(qa), dequantize(qb));
      for (let k = 0; k < product.length; k++) {
        expect(Math.abs((c.data[k] as number) - (product[k] as number))).toBeLessThanOrEqual(1e-4 * (scale[k] as number));
      }
    }
  });

  // Centred: dequantize adds μ to every decoded entry, so ⟨â + μ_a·1, b̂ + μ_b·1⟩ has the cross terms
  // μ_b·Σâ + μ_a·Σb̂ that matmulAT leaves out (the true centred columns sum to zero).
  it.each(['d3-q6', 'e8-q16', 'd3-q6-deterministic', 'int4-g32'] as const)('%s, centred: they differ by exactly the cross terms μ_b·Σâ_i + μ_a·Σb̂_j', (scheme) => {
    const n = 768;
    const a = gaussianMatrix(n, 5, 33);
    const b = gaussianMatrix(n, 4, 34);
    for (let i = 0; i < b.data.length; i++) b.data[i] = (b.data[i] as number) - 2;
    const qa = quantize(a, { scheme, center: true });
    const qb = quantize(b, { scheme, center: true });
    const c = matmulAT(qa, qb);
    const da = dequantize(qa);
    const db = dequantize(qb);
    const { product, scale } = dequantizedReference(da, db);
    const columnSum = (m: Matrix, j: number, mean: number): number => {
      let s = 0;
      for (let i = 0; i < n; i++) s += (m.data[j * n + i] as number) - mean;
      return s;
    };
    for (let j = 0; j < b.cols; j++) {
      for (let i = 0; i < a.cols; i++) {
        const muA = qa.means?.[i] as number;
        const muB = qb.means?.[j] as number;
        const cross = muB * columnSum(da, i, muA) + muA * columnSum(db, j, muB);
        const k = j * a.cols + i;
        expect(Math.abs((c.data[k] as number) - ((product[k] as number) - cross))).toBeLessThanOrEqual(1e-4 * (scale[k] as number));
      }
    }
  });
});

describe('matmulAT: the mean term of centred operands is n·μ_a·μ_b with n the rows, not the padded rotated length', () => {
  // Constant columns centre to 0, so every code decodes to 0 and the product is the mean term alone:
  // AᵀB = n·c_a·c_b exactly (here in f32 too). 50 rows rotate padded to 64 entries, so a mean term of
  // length·μ_a·μ_b would be 64/50 of it.
  const rows = 50;
  const columnsA = [1.5, -0.75, 3];
  const columnsB = [-2.25, 0.5];
  const constantColumns = (values: number[]): Matrix => ({
    rows,
    cols: values.length,
    data: Float32Array.from({ length: rows * values.length }, (_, k) => values[Math.floor(k / rows)] as number),
  });
  it.each(['e8-q16', 'd3-q6', 'd3-q6-deterministic', 'e8-q16-deterministic', 'int3-absmax', 'nvfp4'] as const)('%s', (scheme) => {
    const qa = quantize(constantColumns(columnsA), { scheme, center: true, seed: 5 });
    const qb = quantize(constantColumns(columnsB), { scheme, center: true, seed: 5 });
    expect(qa.length).toBe(64);
    const c = matmulAT(qa, qb);
    columnsB.forEach((cb, j) => columnsA.forEach((ca, i) => expect(c.data[j * columnsA.length + i]).toBe(rows * ca * cb)));
  });
});
