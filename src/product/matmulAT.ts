import { check } from '../errors.js';
import { innerProductTable, MAX_TABLE_CODES } from '../lattices/innerProductTable.js';
import { VoronoiCode } from '../lattices/voronoiCode.js';
import type { Matrix } from '../matrix.js';
import { schemeLattice } from '../quantize/quantize.js';
import type { LatticeQuantizedMatrix, QuantizedMatrix } from '../quantize/quantizedMatrix.js';
import { decodeRotated } from './decodeRotated.js';

/**
 * Estimates AᵀB from two independently quantized matrices (a.cols × b.cols, column-major).
 *
 * Both must share rows, the rotation seed and the centring choice. When both use the same small
 * Voronoi code (D3, q = 6: 216 codes) every block pair is one read of the integer inner-product table,
 * summed exactly; otherwise columns are decoded in the rotated domain and multiplied in float64.
 * Estimate: ⟨a, b⟩ ≈ Σ_blocks ⟨â_block, b̂_block⟩ (+ n·μ_a·μ_b when centred), DESIGN §2 step 9.
 *
 * This is not exactly `dequantize(qa)ᵀ · dequantize(qb)`: the estimate stays in the rotated domain,
 * so when n is zero-padded to the rotation length it keeps the padded coordinates' (error × error)
 * term, and with centring it leaves out the cross terms μ_b·Σâ + μ_a·Σb̂ (which are pure error).
 *
 * @example
 * const c = matmulAT(quantize(a, { scheme: 'd3-q6' }), quantize(b, { scheme: 'd3-q6' }));
 */
export function matmulAT(qa: QuantizedMatrix, qb: QuantizedMatrix): Matrix {
  checkCompatible(qa, qb);
  const out = new Float32Array(qa.cols * qb.cols);
  if (qa.kind === 'lattice' && qb.kind === 'lattice' && sharesSmallCode(qa, qb)) {
    tableProduct(qa, qb, out);
  } else {
    decodedProduct(qa, qb, out);
  }
  if (qa.means && qb.means) {
    for (let jb = 0; jb < qb.cols; jb++) {
      for (let ia = 0; ia < qa.cols; ia++) {
        const k = jb * qa.cols + ia;
        out[k] = (out[k] as number) + qa.rows * (qa.means[ia] as number) * (qb.means[jb] as number);
      }
    }
  }
  return { rows: qa.cols, cols: qb.cols, data: out };
}

function checkCompatible(qa: QuantizedMatrix, qb: QuantizedMatrix): void {
  check(qa.rows === qb.rows, () => `A and B must have the same number of rows (got ${qa.rows} and ${qb.rows})`);
  check(qa.rotate === qb.rotate, 'A and B must both be rotated or both not');
  check(!qa.rotate || qa.seed === qb.seed, () => `A and B were rotated with different seeds (${qa.seed} and ${qb.seed}); quantize both with the same seed`);
  check(qa.length === qb.length, 'A and B have different rotated lengths');
  check(qa.keptLength === qb.keptLength, () => `A and B keep different numbers of rotated coordinates (${qa.keptLength} and ${qb.keptLength})`);
  check((qa.means === null) === (qb.means === null), 'A and B must both be centred or both not (the mean term needs both means)');
}

function sharesSmallCode(qa: LatticeQuantizedMatrix, qb: LatticeQuantizedMatrix): boolean {
  return qa.scheme.lattice === qb.scheme.lattice && qa.scheme.q === qb.scheme.q && qa.scheme.q ** schemeLattice(qa.scheme).dimension <= MAX_TABLE_CODES;
}

const tableCache = new Map<string, Int32Array>();

/** The inner-product table of a scheme's code, built once per (lattice, q). */
export function cachedInnerProductTable(q: LatticeQuantizedMatrix): Int32Array {
  const key = `${q.scheme.lattice}/${q.scheme.q}`;
  let table = tableCache.get(key);
  if (!table) {
    table = innerProductTable(new VoronoiCode(schemeLattice(q.scheme), q.scheme.q));
    tableCache.set(key, table);
  }
  return table;
}

function tableProduct(qa: LatticeQuantizedMatrix, qb: LatticeQuantizedMatrix, out: Float32Array): void {
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

/** ν_j · γ_j per column. */
function columnScales(q: LatticeQuantizedMatrix): Float64Array {
  return Float64Array.from(q.norms, (norm, j) => norm * (q.gains ? (q.gains[j] as number) : 1));
}

function decodedProduct(qa: QuantizedMatrix, qb: QuantizedMatrix, out: Float32Array): void {
  const da = decodeRotated(qa);
  const db = decodeRotated(qb);
  const length = qa.length;
  for (let jb = 0; jb < qb.cols; jb++) {
    const bOffset = jb * length;
    for (let ia = 0; ia < qa.cols; ia++) {
      const aOffset = ia * length;
      let sum = 0;
      for (let k = 0; k < length; k++) sum += (da[aOffset + k] as number) * (db[bOffset + k] as number);
      out[jb * qa.cols + ia] = sum;
    }
  }
}
