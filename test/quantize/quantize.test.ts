import { describe, expect, it } from 'vitest';
import { LatticeMatmulError } from '../../src/errors.js';
import { column, productNmse, type Matrix } from '../../src/matrix.js';
import { dequantize } from '../../src/product/dequantize.js';
import { matmulAT } from '../../src/product/matmulAT.js';
import type { GainMode } from '../../src/quantize/quantize.js';
import { quantize } from '../../src/quantize/quantize.js';
import type { LatticeQuantizedMatrix, QuantizedMatrix } from '../../src/quantize/quantizedMatrix.js';
import { SCHEMES, type SchemeName } from '../../src/quantize/schemes.js';
import { gaussianMatrix } from '../../src/rotation/random.js';

/** Narrows to a lattice-quantized matrix (fails the test otherwise). */
function lattice(q: QuantizedMatrix): LatticeQuantizedMatrix {
  if (q.kind !== 'lattice') throw new Error(`expected a lattice-quantized matrix, got ${q.kind}`);
  return q;
}

function scaled(m: Matrix, factor: number): Matrix {
  return { rows: m.rows, cols: m.cols, data: m.data.map((v) => v * factor) };
}

function norm2(v: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < v.length; i++) s += (v[i] as number) ** 2;
  return s;
}

function dot(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += (a[i] as number) * (b[i] as number);
  return s;
}

/** ‖x̂ − x‖² / ‖x‖² over the whole matrix, in float64. */
function relativeError(approx: Matrix, exact: Matrix): number {
  let e = 0;
  for (let i = 0; i < exact.data.length; i++) e += ((approx.data[i] as number) - (exact.data[i] as number)) ** 2;
  return e / norm2(exact.data);
}

/** Shannon entropy (bits) of the empirical distribution of `symbols`. */
function entropy(symbols: ArrayLike<number>): number {
  const counts = new Map<number, number>();
  for (let i = 0; i < symbols.length; i++) counts.set(symbols[i] as number, (counts.get(symbols[i] as number) ?? 0) + 1);
  let h = 0;
  for (const c of counts.values()) h -= (c / symbols.length) * Math.log2(c / symbols.length);
  return h;
}

// Rotated lengths by hand: the smallest m·2^k ≥ n with m ∈ {1, 12, 20}.
const PADDED_LENGTH: Record<number, number> = { 1: 1, 2: 2, 3: 4, 5: 8, 13: 16, 768: 768, 1000: 1024, 1024: 1024 };
const DIMENSION = { 'd3-q6': 3, 'e8-q16': 8 } as const;

describe('quantize: shapes and padding', () => {
  for (const scheme of ['d3-q6', 'e8-q16'] as const) {
    it.each([1, 2, 3, 5, 13, 768, 1000, 1024])(`${scheme}, n = %i: every rotated coordinate kept, blocks, codes in range, norms = column norms`, (n) => {
      const cols = 3;
      const a = gaussianMatrix(n, cols, n);
      const q = lattice(quantize(a, { scheme, seed: 5 }));
      const d = DIMENSION[scheme];
      const length = PADDED_LENGTH[n] as number;
      expect([q.rows, q.cols, q.length, q.keptLength]).toEqual([n, cols, length, length]);
      expect(q.blocksPerColumn).toBe(Math.ceil(length / d));
      expect(q.codes.length).toBe(q.blocksPerColumn * cols);
      expect(q.scaleIndices.length).toBe(q.blocksPerColumn * cols);
      const size = SCHEMES[scheme].q ** d;
      for (const c of q.codes) expect(c).toBeLessThan(size);
      for (const t of q.scaleIndices) expect(t).toBeLessThan(q.multiples.length);
      expect(q.means).toBeNull();
      expect(q.gains?.length).toBe(cols);
      for (let j = 0; j < cols; j++) {
        expect((q.norms[j] as number) / Math.sqrt(norm2(column(a, j)))).toBeCloseTo(1, 5);
        expect(Number.isFinite(q.gains?.[j])).toBe(true);
      }
      const back = dequantize(q);
      expect([back.rows, back.cols, back.data.length]).toEqual([n, cols, n * cols]);
      expect(back.data.every(Number.isFinite)).toBe(true);
      // A quantizer of a few bits per entry: far from exact, far from useless.
      expect(relativeError(back, a)).toBeLessThan(n < 8 ? 0.5 : 0.1);
      const c = matmulAT(q, q);
      expect([c.rows, c.cols]).toEqual([cols, cols]);
      expect(c.data.every(Number.isFinite)).toBe(true);
    });
  }

  it.each(['int3-absmax', 'int4-g32', 'nvfp4'] as const)('%s on n = 1, 5, 13: shapes, finite values', (scheme) => {
    for (const n of [1, 5, 13]) {
      const a = gaussianMatrix(n, 2, n + 100);
      const q = quantize(a, { scheme });
      expect(q.kind).toBe('scalar');
      expect([q.rows, q.cols, q.length]).toEqual([n, 2, PADDED_LENGTH[n]]);
      const back = dequantize(q);
      expect([back.rows, back.cols]).toEqual([n, 2]);
      expect(back.data.every(Number.isFinite)).toBe(true);
      expect(matmulAT(q, q).data.every(Number.isFinite)).toBe(true);
    }
  });

  it('a single column, and a column-vector product (1 × 1 result)', () => {
    const a = gaussianMatrix(768, 1, 1);
    const b = gaussianMatrix(768, 1, 2);
    const c = matmulAT(quantize(a, { scheme: 'd3-q6' }), quantize(b, { scheme: 'd3-q6' }));
    expect([c.rows, c.cols]).toEqual([1, 1]);
    expect(productNmse(c, a, b)).toBeLessThan(0.5);
  });
});

describe('quantize: bits per entry', () => {
  it('d3-q6 at n = 6144: stored (8 + 2)/3 + 64/n, entropy log2(216)/3 + H(T)/3 + 64/n ≤ stored', () => {
    const n = 6144;
    const a = gaussianMatrix(n, 2, 3);
    const q = lattice(quantize(a, { scheme: 'd3-q6' }));
    // Per column: 2048 blocks of an 8-bit code and a 2-bit ladder index; fp32 norm and fp32 gain.
    expect(q.blocksPerColumn).toBe(2048);
    const side = 64 / n;
    expect(q.bitsStored).toBeCloseTo(10 / 3 + side, 12);
    const h = entropy(q.scaleIndices);
    expect(h).toBeGreaterThan(0);
    expect(q.bitsEntropy).toBeCloseTo(Math.log2(216) / 3 + h / 3 + side, 12);
    expect(q.bitsEntropy).toBeLessThanOrEqual(q.bitsStored);
    // The seed's operating point: about 3 bits per entry.
    expect(q.bitsEntropy).toBeGreaterThan(2.9);
    expect(q.bitsEntropy).toBeLessThan(3.15);
  });

  it('side information: a mean adds 32 bits per column, gain "none" removes 32', () => {
    const n = 768;
    const a = gaussianMatrix(n, 4, 4);
    expect(quantize(a, { scheme: 'd3-q6', center: true }).bitsStored).toBeCloseTo(10 / 3 + 96 / n, 12);
    expect(quantize(a, { scheme: 'd3-q6', gain: 'none' }).bitsStored).toBeCloseTo(10 / 3 + 32 / n, 12);
  });

  it('e8-q16 at n = 768: (32 + 2)/8 + 64/n', () => {
    const q = quantize(gaussianMatrix(768, 2, 5), { scheme: 'e8-q16' });
    expect(q.bitsStored).toBeCloseTo(34 / 8 + 64 / 768, 12);
    expect(q.bitsEntropy).toBeLessThanOrEqual(q.bitsStored);
    expect(q.bitsEntropy).toBeGreaterThan(4);
  });

  it('padding is paid for: d3-q6 at n = 5 stores 3 blocks (8 rotated entries) per column', () => {
    const q = quantize(gaussianMatrix(5, 2, 6), { scheme: 'd3-q6' });
    expect(q.bitsStored).toBeCloseTo((3 * 10 + 64) / 5, 12);
  });

  it('scalar schemes: int3-absmax 3 + 32/n (an fp32 scale per column), int4-g32 4 + 16/32', () => {
    const a = gaussianMatrix(768, 2, 7);
    expect(quantize(a, { scheme: 'int3-absmax' }).bitsStored).toBeCloseTo(3 + 32 / 768, 12);
    expect(quantize(a, { scheme: 'int4-g32' }).bitsStored).toBeCloseTo(4.5, 12);
    for (const scheme of ['int3-absmax', 'int4-g32', 'nvfp4'] as const) {
      const q = quantize(a, { scheme });
      expect(q.bitsEntropy).toBe(q.bitsStored);
    }
  });
});

describe('quantize: determinism and seeds', () => {
  const a = gaussianMatrix(768, 4, 8);

  it.each(['d3-q6', 'e8-q16', 'int3-absmax', 'nvfp4'] as const)('%s: the same seed gives identical codes', (scheme) => {
    const q1 = quantize(a, { scheme, seed: 42 });
    const q2 = quantize(a, { scheme, seed: 42 });
    expect(q2.codes).toEqual(q1.codes);
    expect(q2).toEqual(q1);
  });

  it.each(['d3-q6', 'e8-q16'] as const)('%s: different seeds rotate differently, so most codes differ', (scheme) => {
    const q1 = lattice(quantize(a, { scheme, seed: 1 }));
    const q2 = lattice(quantize(a, { scheme, seed: 2 }));
    let same = 0;
    for (let i = 0; i < q1.codes.length; i++) if (q1.codes[i] === q2.codes[i]) same++;
    expect(same / q1.codes.length).toBeLessThan(0.5);
  });

  it('seed 0 and seed 2^32 − 1 are valid', () => {
    expect(quantize(a, { scheme: 'd3-q6', seed: 0 }).seed).toBe(0);
    expect(quantize(a, { scheme: 'd3-q6', seed: 0xffffffff }).seed).toBe(0xffffffff);
  });
});

describe('quantize: zero and constant columns', () => {
  it('an all-zero column has norm 0, decodes to zeros and gives zero products, with no NaN', () => {
    const a = gaussianMatrix(768, 3, 9);
    a.data.fill(0, 768, 2 * 768); // column 1
    for (const scheme of ['d3-q6', 'e8-q16'] as const) {
      for (const gain of ['unbiased', 'mmse', 'none'] as const) {
        const q = lattice(quantize(a, { scheme, gain }));
        expect(q.norms[1]).toBe(0);
        const back = dequantize(q);
        expect(back.data.every(Number.isFinite)).toBe(true);
        expect([...column(back, 1)].every((v) => v === 0)).toBe(true);
        const c = matmulAT(q, q);
        expect(c.data.every(Number.isFinite)).toBe(true);
        for (let i = 0; i < 3; i++) {
          expect(c.data[1 * 3 + i]).toBe(0);
          expect(c.data[i * 3 + 1]).toBe(0);
        }
      }
    }
  });

  it('an all-zero matrix quantizes and multiplies to zeros', () => {
    const zero: Matrix = { rows: 13, cols: 2, data: new Float32Array(26) };
    for (const scheme of ['d3-q6', 'e8-q16', 'int3-absmax', 'int4-g32', 'nvfp4'] as const) {
      const q = quantize(zero, { scheme });
      expect([...dequantize(q).data]).toEqual(new Array<number>(26).fill(0));
      expect([...matmulAT(q, q).data]).toEqual([0, 0, 0, 0]);
    }
  });

  it.each([3.7, -1e5, 1e-20, 2 ** 50])('a constant column %s with center: true decodes to the constant', (value) => {
    const n = 768;
    const a: Matrix = { rows: n, cols: 2, data: new Float32Array(2 * n) };
    a.data.fill(value, 0, n);
    a.data.set(gaussianMatrix(n, 1, 10).data, n);
    for (const scheme of ['d3-q6', 'e8-q16', 'int3-absmax'] as const) {
      const q = quantize(a, { scheme, center: true });
      const back = dequantize(q);
      const c0 = Math.fround(value);
      for (const v of column(back, 0)) expect(Math.abs(v - c0)).toBeLessThanOrEqual(1e-6 * Math.abs(c0));
      // ⟨a₀, a₀⟩ = n·c².
      const c = matmulAT(q, q);
      expect((c.data[0] as number) / (n * c0 * c0)).toBeCloseTo(1, 5);
      expect(c.data.every(Number.isFinite)).toBe(true);
    }
  });
});

describe('quantize: scale invariance', () => {
  const a = gaussianMatrix(768, 4, 11);

  it.each([40, -40, 1, -1, 100])('x·2^%i has the same codes, scale indices and gains; norms and means scale by 2^k', (k) => {
    for (const scheme of ['d3-q6', 'e8-q16'] as const) {
      const base = lattice(quantize(a, { scheme, center: true }));
      const big = lattice(quantize(scaled(a, 2 ** k), { scheme, center: true }));
      expect(big.codes).toEqual(base.codes);
      expect(big.scaleIndices).toEqual(base.scaleIndices);
      expect(big.gains).toEqual(base.gains);
      expect([...big.norms]).toEqual([...base.norms].map((v) => v * 2 ** k));
      expect([...(big.means as Float32Array)]).toEqual([...(base.means as Float32Array)].map((v) => v * 2 ** k));
    }
  });

  it('products of x·2^40 and y·2^−40 equal the unit-scale product', () => {
    const b = gaussianMatrix(768, 3, 12);
    const base = matmulAT(quantize(a, { scheme: 'd3-q6' }), quantize(b, { scheme: 'd3-q6' }));
    const moved = matmulAT(quantize(scaled(a, 2 ** 40), { scheme: 'd3-q6' }), quantize(scaled(b, 2 ** -40), { scheme: 'd3-q6' }));
    for (let i = 0; i < base.data.length; i++) expect(moved.data[i] as number).toBeCloseTo(base.data[i] as number, 4);
  });

  it.each([1e30, 1e-30, 1e-40])('entries of size %s have the relative error of unit-scale data', (factor) => {
    // Not int4-g32: its fp16 group scales cannot follow data outside fp16's range.
    for (const scheme of ['d3-q6', 'e8-q16', 'int3-absmax', 'nvfp4'] as SchemeName[]) {
      const unit = relativeError(dequantize(quantize(a, { scheme })), a);
      const big = scaled(a, factor);
      const error = relativeError(dequantize(quantize(big, { scheme })), big);
      expect(error).toBeGreaterThan(0.9 * unit);
      expect(error).toBeLessThan(1.1 * unit);
    }
  });

  it('int4-g32 refuses data its fp16 group scales cannot hold, at both ends, instead of returning zeros', () => {
    expect(() => quantize(scaled(a, 1e-30), { scheme: 'int4-g32' })).toThrow(/fp16/);
    expect(() => quantize(scaled(a, 1e30), { scheme: 'int4-g32' })).toThrow(LatticeMatmulError);
    // Data at the bottom of fp16's normal range still quantizes with the usual relative error.
    const unit = relativeError(dequantize(quantize(a, { scheme: 'int4-g32' })), a);
    const small = scaled(a, 2 ** -9);
    expect(relativeError(dequantize(quantize(small, { scheme: 'int4-g32' })), small)).toBeLessThan(1.1 * unit);
  });
});

describe('quantize: options', () => {
  it('rotate: false quantizes the columns as they are (length n) and still estimates AᵀB', () => {
    const a = gaussianMatrix(768, 16, 13);
    const b = gaussianMatrix(768, 16, 14);
    const qa = lattice(quantize(a, { scheme: 'd3-q6', rotate: false }));
    const qb = lattice(quantize(b, { scheme: 'd3-q6', rotate: false }));
    expect([qa.rotate, qa.length, qa.blocksPerColumn]).toEqual([false, 768, 256]);
    const nmse = productNmse(matmulAT(qa, qb), a, b);
    expect(nmse).toBeGreaterThan(0.04);
    expect(nmse).toBeLessThan(0.08);
    const small = lattice(quantize(gaussianMatrix(5, 2, 15), { scheme: 'd3-q6', rotate: false }));
    expect([small.length, small.blocksPerColumn]).toEqual([5, 2]);
    expect(dequantize(small).data.every(Number.isFinite)).toBe(true);
  });

  it('gains: codes do not depend on the gain; the decoded column is γ times the gain-free one', () => {
    const a = gaussianMatrix(768, 4, 16);
    const none = lattice(quantize(a, { scheme: 'd3-q6', gain: 'none' }));
    expect(none.gains).toBeNull();
    const plain = dequantize(none);
    for (const gain of ['unbiased', 'mmse'] as GainMode[]) {
      const q = lattice(quantize(a, { scheme: 'd3-q6', gain }));
      expect(q.codes).toEqual(none.codes);
      expect(q.scaleIndices).toEqual(none.scaleIndices);
      const back = dequantize(q);
      for (let j = 0; j < a.cols; j++) {
        const gamma = q.gains?.[j] as number;
        const x = column(back, j);
        const y = column(plain, j);
        for (let i = 0; i < a.rows; i++) expect(Math.abs((x[i] as number) - gamma * (y[i] as number))).toBeLessThan(1e-5 * (1 + Math.abs(x[i] as number)));
      }
    }
  });

  it('gain "unbiased": ⟨γû, u⟩ = ‖u‖² per column; gain "mmse": ⟨γû, u⟩ = ‖γû‖² (error orthogonal to the estimate)', () => {
    const a = gaussianMatrix(768, 6, 17);
    for (const scheme of ['d3-q6', 'e8-q16'] as const) {
      const unbiased = dequantize(quantize(a, { scheme, gain: 'unbiased' }));
      const mmse = dequantize(quantize(a, { scheme, gain: 'mmse' }));
      for (let j = 0; j < a.cols; j++) {
        const u = column(a, j);
        expect(dot(column(unbiased, j), u) / norm2(u)).toBeCloseTo(1, 5);
        const m = column(mmse, j);
        expect(dot(m, u) / norm2(m)).toBeCloseTo(1, 5);
        // MMSE shrinks (γ < 1 on Gaussian data), unbiased stretches.
        expect(norm2(m)).toBeLessThan(norm2(u));
        expect(norm2(column(unbiased, j))).toBeGreaterThan(norm2(u));
      }
    }
  });

  it('center: true stores the column means and removes them before coding', () => {
    const n = 768;
    const a = gaussianMatrix(n, 3, 18);
    const offsets = [5, -20, 0.5];
    for (let j = 0; j < 3; j++) for (let i = 0; i < n; i++) a.data[j * n + i] = (a.data[j * n + i] as number) + (offsets[j] as number);
    const q = quantize(a, { scheme: 'd3-q6', center: true });
    for (let j = 0; j < 3; j++) {
      const mean = [...column(a, j)].reduce((s, v) => s + v, 0) / n;
      expect(Math.abs((q.means?.[j] as number) - mean)).toBeLessThan(1e-5 * Math.abs(mean) + 1e-6);
    }
  });
});
