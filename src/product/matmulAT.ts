import { checkOneOf, LatticeMatmulError } from '../errors.js';
import { innerProductTable, MAX_TABLE_CODES } from '../lattices/innerProductTable.js';
import { VoronoiCode } from '../lattices/voronoiCode.js';
import type { Matrix } from '../matrix.js';
import { schemeLattice } from '../quantize/quantize.js';
import { checkProductRange } from '../quantize/prepareColumn.js';
import type { DeterministicLatticeMatrix, QuantizedMatrix } from '../quantize/quantizedMatrix.js';
import { checkDecodedSize, columnNormBound, decodedColumnNorm, decodeRotated, rotatedColumnDecoder } from './decodeRotated.js';
import { checkQuantizedMatrix } from '../quantize/checkQuantized.js';
import { checkOptionsObject } from '../quantize/strictOptions.js';
import { shrinkConstant } from './expectedError.js';
import { checkCompatible, isSameQuantization } from './operands.js';

/**
 * Estimates AᵀB from two independently quantized matrices (a.cols × b.cols, column-major).
 *
 * Both must share rows, the rotation seed and the centring choice. Columns are decoded in the rotated
 * domain and multiplied in float64 (two deterministic matrices with the same small Voronoi code, D3
 * q = 6, use the integer inner-product table instead, summed exactly). Memory: the operand with fewer
 * columns is decoded whole (length × cols float64s), the other 64 columns at a time.
 * Estimate: ⟨a, b⟩ ≈ Σ_blocks ⟨â_block, b̂_block⟩ (+ n·μ_a·μ_b when centred) ([1]).
 *
 * For universal matrices the estimate is unbiased with E‖Ĉ − AᵀB‖²_F = `expectedProductError(qa, qb)`
 * for every A and B (up to f32 rounding: README, "The guarantee"). Passing the same quantized matrix twice (a Gram matrix ÂᵀÂ) is handled: the
 * diagonal is set to the stored ‖a_i‖² (exact), and the off-diagonal entries need nothing, since
 * distinct columns have independent dither. Two *different* universal matrices with the same nonce are
 * refused: their errors would not be independent.
 *
 * This is not exactly `dequantize(qa)ᵀ · dequantize(qb)`: the estimate stays in the rotated domain,
 * so when n is zero-padded to the rotation length it keeps the padded coordinates' (error × error)
 * term, and with centring it leaves out the cross terms μ_b·Σâ + μ_a·Σb̂ (which are pure error, up to
 * the rounding of the stored f32 means: Σ of a centred column is n·(μ − fround(μ)), not 0).
 *
 * `shrink: 'product'` (opt-in, universal schemes) trades the unbiasedness for a smaller error: the
 * estimate (its off-diagonal part for a Gram matrix, before the exact mean term) is multiplied by
 * ĉ = max(0, 1 − c/‖Ĉ‖²_F), a positive-part James–Stein factor estimated on the product itself, so it
 * needs nothing about A and B beyond what the codes store. c is E = `expectedProductError(qa, qb)` less
 * twice a bound on the error's largest variance along one direction (from the stored norms: c ≈ E·(1 − 2/b)
 * for b × b Gaussian columns; no shrink at all where c ≤ 0, as for most products of one row or column,
 * whose error lies along about one direction, and Gram matrices of up to 4 columns, where c = E made the
 * error up to 1.5·E). Since E‖Ĉ‖² = ‖AᵀB‖² + E, ĉ estimates
 * about ‖AᵀB‖²/(‖AᵀB‖² + E): on Gaussian data the normalized error drops from V = 2D + D² to about
 * V/(1 + V), which matters at low rates (e8-2bit: 0.248 → 0.20). There is no exact identity for the
 * shrunk error; for Gaussian errors this c keeps it below E (James–Stein), and it is measured below E
 * on adversarial families and small products (test/product/shrink.test.ts).
 *
 * @example
 * const c = matmulAT(quantize(a, { scheme: 'd3-q6' }), quantize(b, { scheme: 'd3-q6' }));
 * const shrunk = matmulAT(qa, qb, { shrink: 'product' }); // biased toward 0, smaller error at 2 bits
 */
export function matmulAT(qa: QuantizedMatrix, qb: QuantizedMatrix, options: MatmulOptions = {}): Matrix {
  checkQuantizedMatrix(qa, 'A');
  checkQuantizedMatrix(qb, 'B');
  const shrink = resolveShrink(options);
  checkCompatible(qa, qb);
  // The shrink's constant first: an operand it refuses is refused before the product is formed.
  const shrinkBy = shrink ? shrinkConstantOf(qa, qb) : null;
  const gram = isSameQuantization(qa, qb);
  const out = new Float32Array(qa.cols * qb.cols);
  if (qa.kind === 'lattice' && qa.mode === 'deterministic' && qb.kind === 'lattice' && qb.mode === 'deterministic' && sharesSmallCode(qa, qb)) {
    // The decoded norms: ν·|γ| is no bound (a column decodes a few per cent beyond it).
    const normA = tableNormBound(qa);
    checkProductRange(normA, qb === qa ? normA : tableNormBound(qb));
    tableProduct(qa, qb, out);
  } else {
    decodedProduct(qa, qb, out);
  }
  if (shrinkBy !== null) shrinkProduct(qa, qb, shrinkBy, gram !== null, out);
  if (qa.means && qb.means) {
    for (let jb = 0; jb < qb.cols; jb++) {
      for (let ia = 0; ia < qa.cols; ia++) {
        const k = jb * qa.cols + ia;
        out[k] = (out[k] as number) + qa.rows * (qa.means[ia] as number) * (qb.means[jb] as number);
      }
    }
  }
  if (gram !== null) {
    // ÂᵀÂ: both factors of a diagonal entry share one error, which the stored norm replaces exactly.
    for (let i = 0; i < gram.cols; i++) {
      const mean = gram.means ? (gram.means[i] as number) : 0;
      out[i * gram.cols + i] = (gram.norms[i] as number) ** 2 + gram.rows * mean * mean;
    }
  }
  return { rows: qa.cols, cols: qb.cols, data: out };
}

/** Options of {@link matmulAT}. */
export interface MatmulOptions {
  /** 'none' (default): the unbiased estimate. 'product': positive-part James–Stein shrinkage of the estimate (universal schemes). */
  readonly shrink?: 'none' | 'product';
}

function resolveShrink(options: MatmulOptions): boolean {
  checkOptionsObject(options, ['shrink'], 'matmulAT options');
  // undefined is the default; null is refused, as every other option refuses it.
  const shrink = options.shrink === undefined ? 'none' : options.shrink;
  checkOneOf(shrink, ['none', 'product'], 'shrink');
  return shrink === 'product';
}

/** `shrinkConstant`, its refusals (non-universal operands, time-sharing) named as the shrink's. */
function shrinkConstantOf(qa: QuantizedMatrix, qb: QuantizedMatrix): number {
  try {
    return shrinkConstant(qa, qb);
  } catch (error) {
    if (!(error instanceof LatticeMatmulError)) throw error;
    throw new LatticeMatmulError(`matmulAT shrink: 'product' scales by the expected error, which needs universal operands: ${error.message}`, { cause: error });
  }
}

/** Multiplies the estimate (without the diagonal of a Gram matrix) by max(0, 1 − c/‖Ĉ‖²), c = `shrinkConstant`. */
function shrinkProduct(qa: QuantizedMatrix, qb: QuantizedMatrix, constant: number, gram: boolean, out: Float32Array): void {
  let energy = 0;
  for (let jb = 0; jb < qb.cols; jb++) {
    for (let ia = 0; ia < qa.cols; ia++) if (!gram || ia !== jb) energy += (out[jb * qa.cols + ia] as number) ** 2;
  }
  // No shrink where c ≤ 0: the error has too few directions for any factor from the product to help.
  const factor = energy > 0 && constant > 0 ? Math.max(0, 1 - constant / energy) : 1;
  for (let jb = 0; jb < qb.cols; jb++) {
    for (let ia = 0; ia < qa.cols; ia++) {
      const k = jb * qa.cols + ia;
      if (!gram || ia !== jb) out[k] = (out[k] as number) * factor;
    }
  }
}

function sharesSmallCode(qa: DeterministicLatticeMatrix, qb: DeterministicLatticeMatrix): boolean {
  return qa.scheme.lattice === qb.scheme.lattice && qa.scheme.q === qb.scheme.q && qa.scheme.q ** schemeLattice(qa.scheme).dimension <= MAX_TABLE_CODES;
}

const tableCache = new Map<string, Int32Array>();

/** The inner-product table of a scheme's code, built once per (lattice, q). */
export function cachedInnerProductTable(q: DeterministicLatticeMatrix): Int32Array {
  const key = `${q.scheme.lattice}/${q.scheme.q}`;
  let table = tableCache.get(key);
  if (!table) {
    table = innerProductTable(new VoronoiCode(schemeLattice(q.scheme), q.scheme.q));
    tableCache.set(key, table);
  }
  return table;
}

function tableProduct(qa: DeterministicLatticeMatrix, qb: DeterministicLatticeMatrix, out: Float32Array): void {
  const table = cachedInnerProductTable(qa);
  const size = Math.round(Math.sqrt(table.length));
  const s = schemeLattice(qa.scheme).pointScale;
  const blocks = qa.blocksPerColumn;
  const columnScaleA = columnScales(qa);
  const columnScaleB = columnScales(qb);
  const common = (qa.unit * qb.unit) / (s * s * qa.length);
  for (let jb = 0; jb < qb.cols; jb++) {
    const bOffset = jb * blocks;
    for (let ia = 0; ia < qa.cols; ia++) {
      const aOffset = ia * blocks;
      let sum = 0; // exact: integers far below 2^53
      for (let t = 0; t < blocks; t++) {
        const ca = qa.codes[aOffset + t] as number;
        const cb = qb.codes[bOffset + t] as number;
        const ka = qa.multiples[qa.scaleIndices[aOffset + t] as number] as number;
        const kb = qb.multiples[qb.scaleIndices[bOffset + t] as number] as number;
        sum += ka * kb * (table[ca * size + cb] as number);
      }
      out[jb * qa.cols + ia] = common * (columnScaleA[ia] as number) * (columnScaleB[jb] as number) * sum;
    }
  }
}

/**
 * `columnNormBound(q, decodeRotated(q))` from the inner-product table's diagonal instead of a decode
 * (which allocates length × cols float64s): ‖â_j‖² = unit²/(s²·N)·(ν_j·γ_j)²·Σ_t k_t²·T[c_t, c_t],
 * exact in float64 like `tableProduct`'s sums, plus |μ_j|·√rows when centred. The table holds whole
 * blocks; a D3 leader is 0 past keptLength (`checkQuantizedMatrix`), so nothing past the column counts.
 */
export function tableNormBound(q: DeterministicLatticeMatrix): number {
  const table = cachedInnerProductTable(q);
  const size = Math.round(Math.sqrt(table.length));
  const s = schemeLattice(q.scheme).pointScale;
  const unitSquared = (q.unit * q.unit) / (s * s * q.length);
  const scales = columnScales(q);
  const blocks = q.blocksPerColumn;
  let largest = 0;
  for (let j = 0; j < q.cols; j++) {
    let sum = 0;
    for (let t = j * blocks; t < (j + 1) * blocks; t++) {
      const c = q.codes[t] as number;
      const k = q.multiples[q.scaleIndices[t] as number] as number;
      sum += k * k * (table[c * size + c] as number);
    }
    const mean = q.means ? Math.abs(q.means[j] as number) * Math.sqrt(q.rows) : 0;
    largest = Math.max(largest, Math.abs(scales[j] as number) * Math.sqrt(unitSquared * sum) + mean);
  }
  return largest;
}

/** ν_j · γ_j per column. */
function columnScales(q: DeterministicLatticeMatrix): Float64Array {
  return Float64Array.from(q.norms, (norm, j) => norm * (q.gains ? (q.gains[j] as number) : 1));
}

/** Columns of the streamed operand that `decodedProduct` decodes at a time. */
export const DECODED_BLOCK_COLUMNS = 64;

/**
 * Σ_k â_ia[k]·b̂_jb[k] in float64, k = 0 … length − 1 in order, for every (ia, jb), from the rotated
 * decodes (`decodeRotated`). Memory: the operand with fewer columns is decoded whole (float64); the
 * other is decoded `DECODED_BLOCK_COLUMNS` columns at a time into one reused buffer (a Gram matrix,
 * qb === qa, decodes once, whole). Each entry's sum is formed as before, so the result is bit for bit
 * that of the whole decodes. The range check needs every column's decoded norm, which the streamed
 * operand yields only as it goes: the products are formed in `out` (not yet the caller's) and
 * `checkProductRange(columnNormBound(qa, â), columnNormBound(qb, b̂))` refuses before it is returned —
 * what the whole decodes refused, without decoding an operand twice.
 */
function decodedProduct(qa: QuantizedMatrix, qb: QuantizedMatrix, out: Float32Array): void {
  // decodeRotated's refusal of a decode beyond 2^31 − 1 values, A first, as when both were decoded whole.
  checkDecodedSize(qa);
  checkDecodedSize(qb);
  const length = qa.length;
  if (qb === qa) {
    const da = decodeRotated(qa);
    const norm = columnNormBound(qa, da);
    checkProductRange(norm, norm);
    multiplyColumns(da, 0, qa.cols, da, 0, qa.cols, length, qa.cols, out);
    return;
  }
  const holdB = qb.cols <= qa.cols;
  const held = holdB ? qb : qa;
  const streamed = holdB ? qa : qb;
  const whole = decodeRotated(held);
  const heldNorm = columnNormBound(held, whole);
  const blockColumns = Math.min(DECODED_BLOCK_COLUMNS, streamed.cols);
  const block = new Float64Array(blockColumns * length);
  const decodeNext = rotatedColumnDecoder(streamed);
  let streamedNorm = 0;
  for (let first = 0; first < streamed.cols; first += blockColumns) {
    const count = Math.min(blockColumns, streamed.cols - first);
    for (let c = 0; c < count; c++) {
      decodeNext(block.subarray(c * length, (c + 1) * length));
      streamedNorm = Math.max(streamedNorm, decodedColumnNorm(streamed, first + c, block, c * length));
    }
    if (holdB) multiplyColumns(block, first, count, whole, 0, qb.cols, length, qa.cols, out);
    else multiplyColumns(whole, 0, qa.cols, block, first, count, length, qa.cols, out);
  }
  checkProductRange(holdB ? streamedNorm : heldNorm, holdB ? heldNorm : streamedNorm);
}

/**
 * out[jb·outRows + ia] = Σ_k a[(ia − aFirst)·length + k]·b[(jb − bFirst)·length + k] (float64, k in
 * order) for A's columns aFirst … aFirst + aCount − 1 (held in `a` from its start) and B's bFirst … .
 */
function multiplyColumns(
  a: Float64Array,
  aFirst: number,
  aCount: number,
  b: Float64Array,
  bFirst: number,
  bCount: number,
  length: number,
  outRows: number,
  out: Float32Array,
): void {
  for (let jb = 0; jb < bCount; jb++) {
    const bOffset = jb * length;
    for (let ia = 0; ia < aCount; ia++) {
      const aOffset = ia * length;
      let sum = 0;
      for (let k = 0; k < length; k++) sum += (a[aOffset + k] as number) * (b[bOffset + k] as number);
      out[(bFirst + jb) * outRows + aFirst + ia] = sum;
    }
  }
}
