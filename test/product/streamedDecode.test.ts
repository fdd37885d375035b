import { describe, expect, it } from 'vitest';
import type { Matrix } from '../../src/matrix.js';
import { columnNormBound, decodeRotated, rotatedColumnDecoder } from '../../src/product/decodeRotated.js';
import { dequantize } from '../../src/product/dequantize.js';
import { DECODED_BLOCK_COLUMNS, matmulAT } from '../../src/product/matmulAT.js';
import { MAX_NORM_PRODUCT } from '../../src/quantize/prepareColumn.js';
import { quantize } from '../../src/quantize/quantize.js';
import type { QuantizedMatrix } from '../../src/quantize/quantizedMatrix.js';
import { SCHEMES } from '../../src/quantize/schemes.js';
import { RandomizedHadamard } from '../../src/rotation/randomizedHadamard.js';
import { gaussianMatrix } from '../../src/rotation/random.js';
import { countAllocations } from '../weightonly/fuzzProperty.js';

type SchemeName = keyof typeof SCHEMES;

/*
 * dequantize and matmulAT's decoded path decode one column (dequantize) or one block of
 * DECODED_BLOCK_COLUMNS columns (matmulAT's wider operand) at a time instead of the whole float64
 * decode. Pinned here: their results are bit for bit the formulas on the whole decode (`decodeRotated`),
 * on shapes with several blocks and a partial one (70, 130 and 200 columns against blocks of 64), the
 * product-range refusal is the whole decode's, and neither allocates a whole-matrix float64 copy any
 * more (typed-array bytes counted by wrapping the constructors, not RSS or time).
 */

const SCHEME_CASES: readonly SchemeName[] = ['e8-4bit', 'd3-q6', 'e8-2bit', 'e8-q16-deterministic', 'd3-q6-deterministic', 'int4-g32', 'int3-absmax', 'nvfp4'];

function isLattice(scheme: SchemeName): boolean {
  return SCHEMES[scheme].kind === 'lattice';
}

function isUniversal(scheme: SchemeName): boolean {
  const s = SCHEMES[scheme];
  return s.kind === 'lattice' && s.mode === 'universal';
}

function quantized(rows: number, cols: number, seed: number, scheme: SchemeName, options: { center?: boolean; keepFraction?: number; scale?: (j: number) => number } = {}): QuantizedMatrix {
  const m = gaussianMatrix(rows, cols, seed);
  if (options.scale) for (let j = 0; j < cols; j++) for (let i = 0; i < rows; i++) m.data[j * rows + i] = (m.data[j * rows + i] as number) * options.scale(j);
  const keepFraction = isLattice(scheme) ? (options.keepFraction ?? 1) : 1;
  return quantize(m, { scheme, seed: 11, center: options.center ?? false, keepFraction, ...(isUniversal(scheme) ? { nonce: seed } : {}) });
}

/** dequantize's formula on the whole decode: each column to f32, inverse rotation, + the mean. */
function dequantizeReference(q: QuantizedMatrix): Matrix {
  const decoded = decodeRotated(q);
  const rotation = q.rotate ? new RandomizedHadamard(q.rows, q.seed, q.length) : null;
  const data = new Float32Array(q.rows * q.cols);
  const restored = new Float32Array(q.rows);
  for (let j = 0; j < q.cols; j++) {
    const column = Float32Array.from(decoded.subarray(j * q.length, (j + 1) * q.length));
    if (rotation) rotation.inverse(column, restored);
    else restored.set(column.subarray(0, q.rows));
    for (let i = 0; i < q.rows; i++) data[j * q.rows + i] = (restored[i] as number) + (q.means ? (q.means[j] as number) : 0);
  }
  return { rows: q.rows, cols: q.cols, data };
}

/** The decoded path's entries on the whole decodes: Σ_k â_i[k]·b̂_j[k] in order, to f32, + n·μ_a·μ_b. */
function productReference(qa: QuantizedMatrix, qb: QuantizedMatrix): Float32Array {
  const da = decodeRotated(qa);
  const db = decodeRotated(qb);
  const out = new Float32Array(qa.cols * qb.cols);
  for (let j = 0; j < qb.cols; j++) {
    for (let i = 0; i < qa.cols; i++) {
      let sum = 0;
      for (let k = 0; k < qa.length; k++) sum += (da[i * qa.length + k] as number) * (db[j * qa.length + k] as number);
      out[j * qa.cols + i] = sum;
    }
  }
  if (qa.means && qb.means) {
    for (let j = 0; j < qb.cols; j++) {
      for (let i = 0; i < qa.cols; i++) out[j * qa.cols + i] = (out[j * qa.cols + i] as number) + qa.rows * (qa.means[i] as number) * (qb.means[j] as number);
    }
  }
  return out;
}

function expectBitEqual(got: Float32Array, expected: Float32Array): void {
  expect(got.length).toBe(expected.length);
  const a = new Uint32Array(got.buffer, got.byteOffset, got.length);
  const b = new Uint32Array(expected.buffer, expected.byteOffset, expected.length);
  let differing = 0;
  for (let k = 0; k < a.length; k++) if (a[k] !== b[k]) differing++;
  expect(differing).toBe(0);
}

describe('rotatedColumnDecoder', () => {
  it.each(SCHEME_CASES)('%s: its successive columns, into one dirty buffer, are decodeRotated\'s (zeros past keptLength)', (scheme) => {
    for (const keepFraction of isLattice(scheme) ? [1, 0.3] : [1]) {
      const q = quantized(300, 9, 4, scheme, { center: true, keepFraction });
      const whole = decodeRotated(q);
      const decodeNext = rotatedColumnDecoder(q);
      const column = new Float64Array(q.length);
      for (let j = 0; j < q.cols; j++) {
        column.fill(Number.NaN);
        decodeNext(column);
        expect(column).toEqual(whole.subarray(j * q.length, (j + 1) * q.length));
      }
    }
  });
});

describe('dequantize decodes column by column', () => {
  it.each(SCHEME_CASES)('%s, 300 × 70 (rotated to 300, or 320 time-shared; centred or not): bit for bit the whole decode\'s formula', (scheme) => {
    for (const center of [false, true]) {
      for (const keepFraction of isLattice(scheme) ? [1, 0.3] : [1]) {
        const q = quantized(300, 70, 5, scheme, { center, keepFraction });
        expectBitEqual(dequantize(q).data, dequantizeReference(q).data);
      }
    }
  });

  it('allocates the f32 result and a few columns, not the cols × length float64 decode', () => {
    const q = quantized(256, 256, 6, 'e8-4bit');
    const { result, bytes } = countAllocations(() => dequantize(q));
    expect(result.ok).toBe(true);
    const output = 4 * q.rows * q.cols;
    const wholeDecode = 8 * q.cols * q.length; // what decodeRotated allocated on top of the output
    expect(bytes).toBeGreaterThanOrEqual(output);
    expect(bytes - output).toBeLessThan(wholeDecode / 8);
  });
});

describe('matmulAT\'s decoded path streams the wider operand in blocks of columns', () => {
  expect(DECODED_BLOCK_COLUMNS).toBe(64);
  // [rows, A's cols, B's cols]: B streamed in 64 + 64 + 2, then A in 64 + 64 + 2 (the same pair swapped),
  // A in 64 · 3 + 8 against a B of 3, and one column each.
  const shapes: readonly [number, number, number][] = [
    [300, 70, 130],
    [300, 130, 70],
    [150, 200, 3],
    [40, 1, 1],
  ];
  it.each(SCHEME_CASES.filter((s) => s !== 'd3-q6-deterministic'))('%s: bit for bit the whole decodes\' sums (centred, time-shared, Gram)', (scheme) => {
    for (const [rows, colsA, colsB] of shapes) {
      for (const center of [false, true]) {
        for (const keepFraction of isLattice(scheme) ? [1, 0.3] : [1]) {
          const qa = quantized(rows, colsA, 20 + colsA, scheme, { center, keepFraction });
          const qb = quantized(rows, colsB, 21 + colsB, scheme, { center, keepFraction });
          expectBitEqual(matmulAT(qa, qb).data, productReference(qa, qb));
        }
      }
    }
    // A Gram matrix (qb === qa) decodes once: the same formula (a universal one's diagonal is the stored norms).
    const q = quantized(300, 70, 7, scheme);
    const gram = matmulAT(q, q).data;
    const reference = productReference(q, q);
    if (q.kind === 'lattice' && q.mode === 'universal') for (let i = 0; i < q.cols; i++) reference[i * q.cols + i] = (q.norms[i] as number) ** 2;
    expectBitEqual(gram, reference);
  });

  it('refuses exactly when the whole decodes\' norms leave the range, whichever column of the streamed operand is large', () => {
    // Column `big` of A (200 columns, streamed in blocks of 64 against a B of 3) scaled by 2^s, B by 2^60:
    // refused iff columnNormBound(A)·columnNormBound(B) > 2^126, in both orders.
    let refusals = 0;
    let accepted = 0;
    for (const big of [0, 63, 64, 199]) {
      for (const s of [60, 64, 65, 66, 70]) {
        const qa = quantized(64, 200, 30, 'e8-4bit', { scale: (j) => (j === big ? 2 ** s : 1) });
        const qb = quantized(64, 3, 31, 'e8-4bit', { scale: () => 2 ** 60 });
        const refused = columnNormBound(qa, decodeRotated(qa)) * columnNormBound(qb, decodeRotated(qb)) > MAX_NORM_PRODUCT;
        for (const [x, y] of [[qa, qb], [qb, qa]] as const) {
          if (refused) expect(() => matmulAT(x, y)).toThrow(/^the product's entries can reach ‖a_i‖·‖b_j‖ = .*, beyond the f32 range/);
          else expect(matmulAT(x, y).data.every(Number.isFinite)).toBe(true);
        }
        if (refused) refusals++;
        else accepted++;
      }
    }
    expect([refusals > 0, accepted > 0]).toEqual([true, true]);
  });

  it('holds the narrower operand\'s decode and one block of the wider, not the wider\'s whole decode', () => {
    const qa = quantized(256, 512, 8, 'e8-4bit');
    const qb = quantized(256, 8, 9, 'e8-4bit');
    const wideDecode = 8 * qa.cols * qa.length;
    for (const [x, y] of [[qa, qb], [qb, qa]] as const) {
      const { result, bytes } = countAllocations(() => matmulAT(x, y));
      expect(result.ok).toBe(true);
      // Narrow decode (16 KiB) + one block (64 × 256 float64s, 128 KiB) + the result and small buffers.
      expect(bytes).toBeLessThan(wideDecode / 4);
    }
  });
});
