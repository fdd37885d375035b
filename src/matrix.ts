import { check, checkOneOf, checkPositiveInteger, describeValue } from './errors.js';
import { float16BitsToFloat32Bits } from './scalar/floatFormats.js';
import { checkKnownKeys } from './quantize/strictOptions.js';

/**
 * A dense matrix of 32-bit floats, stored **column-major**: column `j` is the vector
 * `data.subarray(j * rows, (j + 1) * rows)` of length `rows`. Both operands of `AᵀB` are matrices of
 * `n = rows` entries per column, so a PyTorch weight of shape (out, in) in row-major order is exactly
 * its transpose in this layout.
 *
 * @example
 * const a: Matrix = { rows: 3, cols: 2, data: new Float32Array([1, 2, 3, 4, 5, 6]) }; // columns (1,2,3), (4,5,6)
 */
export interface Matrix {
  readonly rows: number;
  readonly cols: number;
  readonly data: Float32Array;
  /** f32 values: 'f32' if given (`checkMatrix`, so every function taking a Matrix, refuses another tag). */
  readonly format?: 'f32';
}

/** Builds a matrix, checking that `data` (zeros when omitted) has `rows * cols` entries. */
export function matrix(rows: number, cols: number, data?: Float32Array): Matrix {
  checkPositiveInteger(rows, 'matrix rows');
  checkPositiveInteger(cols, 'matrix cols');
  check(rows * cols <= 2 ** 31, () => `matrix ${rows}×${cols} has more than 2^31 entries`);
  const result = { rows, cols, data: data ?? new Float32Array(rows * cols) };
  checkMatrix(result, 'matrix');
  return result;
}

/** x as a Matrix: a Float32Array is one column (a vector), as the GEMVs take it. */
export function vectorOrMatrix(x: Float32Array | Matrix): Matrix {
  return x instanceof Float32Array ? { rows: x.length, cols: 1, data: x } : x;
}

/**
 * Checks shape, length and that every entry is finite: a NaN or an infinity cannot be quantized and
 * would otherwise spread silently through norms into every product.
 */
export function checkMatrix(m: Matrix, name: string): void {
  check(typeof m === 'object' && m !== null, `${name} must be a Matrix { rows, cols, data }`);
  checkPositiveInteger(m.rows, `${name}.rows`);
  checkPositiveInteger(m.cols, `${name}.cols`);
  check(m.data instanceof Float32Array, `${name}.data must be a Float32Array`);
  // f16 bits widened into a Float32Array would count 0x3c00 as 15360: a tag saying so is refused.
  const format = (m as { readonly format?: unknown }).format;
  check(
    format === undefined || format === 'f32',
    () => `${name}.format is ${describeValue(format)}, but ${name}.data is a Float32Array of f32 values: drop the format, or pass 16-bit data (a Uint16Array of its bits, or a Float16Array)`,
  );
  check(
    m.data.length === m.rows * m.cols,
    () => `${name}.data has ${m.data.length} entries, expected rows * cols = ${m.rows} * ${m.cols} = ${m.rows * m.cols}`,
  );
  const bad = firstNonFinite(m.data);
  if (bad >= 0) {
    const row = bad % m.rows;
    const col = Math.floor(bad / m.rows);
    check(false, `${name} has a non-finite entry ${m.data[bad]} at row ${row}, column ${col}`);
  }
}

/** Index of the first NaN or ±Infinity, or -1. */
export function firstNonFinite(data: Float32Array): number {
  for (let i = 0; i < data.length; i++) {
    if (!Number.isFinite(data[i])) return i;
  }
  return -1;
}

/**
 * The largest column norm of a finite matrix, summed in float64 (no overflow for f32 entries): what the
 * product range checks take for x.
 *
 * @example
 * largestColumnNorm({ rows: 2, cols: 2, data: Float32Array.of(3, 4, 1, 0) }); // 5
 */
export function largestColumnNorm(x: Matrix): number {
  let largest = 0;
  for (let j = 0; j < x.cols; j++) {
    let sum = 0;
    for (let i = j * x.rows; i < (j + 1) * x.rows; i++) sum += (x.data[i] as number) ** 2;
    largest = Math.max(largest, Math.sqrt(sum));
  }
  return largest;
}

/** Column `j` of `m` as a view (no copy). */
export function column(m: Matrix, j: number): Float32Array {
  check(Number.isInteger(j) && j >= 0 && j < m.cols, () => `column index must be an integer in [0, ${m.cols}), got ${describeValue(j)}`);
  return m.data.subarray(j * m.rows, (j + 1) * m.rows);
}

/**
 * Exact `AᵀB` in float64 accumulation, returned as a column-major `a.cols × b.cols` matrix. An entry
 * beyond the f32 range (|AᵀB|_ij > 3.4e38, possible for finite f32 inputs) is refused, naming it,
 * rather than returned as ±Infinity.
 */
export function matmulATExact(a: Matrix, b: Matrix): Matrix {
  const exact = exactProductF64(a, b);
  const out = new Float32Array(exact.length);
  for (let k = 0; k < exact.length; k++) {
    const value = exact[k] as number;
    out[k] = value;
    check(
      Number.isFinite(out[k]),
      () =>
        `matmulATExact: entry (${k % a.cols}, ${Math.floor(k / a.cols)}) of AᵀB is ${value.toExponential(3)}, beyond the f32 range; ` +
        'scale A or B down by a power of two (and the result up afterwards, in float64)',
    );
  }
  return { rows: a.cols, cols: b.cols, data: out };
}

/** AᵀB in float64 (column-major, a.cols × b.cols), after checking both operands. Never overflows: |entries| ≤ n·(f32 max)². */
function exactProductF64(a: Matrix, b: Matrix): Float64Array {
  checkMatrix(a, 'A');
  checkMatrix(b, 'B');
  check(a.rows === b.rows, () => `A and B must have the same number of rows (got ${describeValue(a.rows)} and ${describeValue(b.rows)})`);
  const n = a.rows;
  const out = new Float64Array(a.cols * b.cols);
  for (let j = 0; j < b.cols; j++) {
    const bj = column(b, j);
    for (let i = 0; i < a.cols; i++) {
      const ai = column(a, i);
      let sum = 0;
      for (let k = 0; k < n; k++) sum += (ai[k] as number) * (bj[k] as number);
      out[j * a.cols + i] = sum;
    }
  }
  return out;
}

/**
 * The normalized product error of the seed paper [1]: `n · ‖Ĉ − AᵀB‖²_F / (‖A‖²_F · ‖B‖²_F)`. For iid N(0,1)
 * square matrices it equals the seed paper's `‖ÂᵀB̂ − AᵀB‖²_F / n³`.
 *
 * AᵀB is taken in float64, not rounded to f32 as `matmulATExact` returns it: the measure is a float64
 * number, so it needs no f32 range, and it stays finite and right when an entry of AᵀB is beyond f32
 * (an estimate of such a product is computed scaled down, and may be compared scaled back up).
 */
export function productNmse(estimate: Matrix, a: Matrix, b: Matrix): number {
  checkMatrix(estimate, 'productNmse estimate');
  const exact = exactProductF64(a, b);
  check(
    estimate.rows === a.cols && estimate.cols === b.cols,
    () => `estimate is ${estimate.rows}×${estimate.cols}, expected ${a.cols}×${b.cols}`,
  );
  let err = 0;
  for (let i = 0; i < exact.length; i++) {
    const d = (estimate.data[i] as number) - (exact[i] as number);
    err += d * d;
  }
  const normA = sumOfSquares(a.data);
  const normB = sumOfSquares(b.data);
  check(normA > 0 && normB > 0, 'productNmse is undefined when A or B is all zeros');
  return (a.rows * err) / (normA * normB);
}

/**
 * ρ = n‖AᵀB‖²_F/(‖A‖²_F·‖B‖²_F) (float64, from `matmulATExact`): how far the products of A's and B's
 * columns stand out from those of independent columns, for which it is 1 on average (E⟨a, b⟩² =
 * ‖a‖²‖b‖²/n); for A = B of one column it is n. Time-sharing's error grows with it
 * (`timeSharedProductNmse`).
 */
export function productConcentration(a: Matrix, b: Matrix): number {
  const normA = sumOfSquares(a.data);
  const normB = sumOfSquares(b.data);
  check(normA > 0 && normB > 0, 'productConcentration is undefined when A or B is all zeros');
  let products = 0;
  for (const v of matmulATExact(a, b).data) products += v * v;
  return (a.rows * products) / (normA * normB);
}

function sumOfSquares(data: Float32Array): number {
  let s = 0;
  for (let i = 0; i < data.length; i++) s += (data[i] as number) ** 2;
  return s;
}

/**
 * A column-major matrix of 16-bit floats, as models ship their weights: `data` holds IEEE binary16
 * (`format: 'f16'`, the default) or bfloat16 (`'bf16'`) bit patterns in a Uint16Array, or the values
 * of a `Float16Array` where the platform has one.
 *
 * @example
 * const w: HalfMatrix = { rows: 4096, cols: 4096, data: f16Bits, format: 'f16' };
 * const q = quantize(w, { scheme: 'e8-q16' }); // converted to f32 exactly, then quantized
 */
export interface HalfMatrix {
  readonly rows: number;
  readonly cols: number;
  readonly data: Uint16Array | (ArrayLike<number> & { readonly BYTES_PER_ELEMENT: 2 });
  readonly format?: 'f16' | 'bf16';
}

/**
 * The keys of a {@link HalfMatrix}: any other is refused (`fromat: 'bf16'` decoded bf16 bits as f16). An
 * f32 `Matrix` may carry keys of the caller's own (`checkMatrix` refuses only a 16-bit `format` tag).
 */
const HALF_MATRIX_KEYS = ['rows', 'cols', 'data', 'format'] as const satisfies readonly (keyof HalfMatrix)[];

/** What the quantizers accept: f32 matrices, or f16/bf16 matrices (converted exactly). */
export type MatrixInput = Matrix | HalfMatrix;

/** True for a Float16Array (its values are numbers, not bit patterns). */
function isFloat16Array(data: unknown): boolean {
  return typeof data === 'object' && data !== null && (data as { constructor?: { name?: string } }).constructor?.name === 'Float16Array';
}

/**
 * An f32 `Matrix` from a `MatrixInput`: an f32 matrix as it is (checked), an f16 or bf16 one converted
 * exactly (every f16 and bf16 value is an f32 value). NaN and ±Infinity are refused as for f32 input.
 *
 * @example
 * const a = toFloat32Matrix({ rows: 2, cols: 1, data: Uint16Array.of(0x3c00, 0xc000) }); // [1, −2]
 */
export function toFloat32Matrix(input: MatrixInput, name = 'matrix'): Matrix {
  check(typeof input === 'object' && input !== null, `${name} must be a Matrix { rows, cols, data }`);
  if (input.data instanceof Float32Array) {
    checkMatrix(input as Matrix, name);
    return input as Matrix;
  }
  const half = checkedHalfMatrix(input as HalfMatrix, name);
  const data = new Float32Array(half.rows * half.cols);
  half.widen(0, data);
  const result = { rows: half.rows, cols: half.cols, data };
  checkMatrix(result, name);
  return result;
}

/** The columns of a matrix input one at a time, as f32 ({@link columnReader}). */
export interface ColumnReader {
  readonly rows: number;
  readonly cols: number;
  /**
   * Column j as f32: a view of an f32 matrix's data, or a 16-bit matrix's column widened into one
   * array that the next call overwrites.
   */
  column(j: number): Float32Array;
}

/**
 * The columns of a `MatrixInput` one at a time, checked as `toFloat32Matrix` checks the whole (the
 * same refusals and messages), without an f32 copy of a 16-bit matrix: quantizing an f16 or bf16
 * matrix then holds its 16-bit data and one f32 column (a 1 GB bf16 matrix took 2 GB more as a whole).
 *
 * @example
 * const reader = columnReader({ rows: 2, cols: 2, data: Uint16Array.of(0x3c00, 0xc000, 0, 0x3c00) });
 * reader.column(1); // Float32Array [0, 1]
 */
export function columnReader(input: MatrixInput, name = 'matrix'): ColumnReader {
  check(typeof input === 'object' && input !== null, `${name} must be a Matrix { rows, cols, data }`);
  if (input.data instanceof Float32Array) {
    const matrix = input as Matrix;
    checkMatrix(matrix, name);
    return { rows: matrix.rows, cols: matrix.cols, column: (j) => column(matrix, j) };
  }
  const half = checkedHalfMatrix(input as HalfMatrix, name);
  const { rows, cols } = half;
  const buffer = new Float32Array(rows);
  const widened = (j: number): Float32Array => {
    half.widen(j * rows, buffer);
    return buffer;
  };
  // Every entry finite before any work, as checkMatrix refuses a whole f32 matrix.
  for (let j = 0; j < cols; j++) {
    const bad = firstNonFinite(widened(j));
    if (bad >= 0) check(false, `${name} has a non-finite entry ${buffer[bad]} at row ${bad}, column ${j}`);
  }
  return {
    rows,
    cols,
    column: (j) => {
      check(Number.isInteger(j) && j >= 0 && j < cols, () => `column index must be an integer in [0, ${cols}), got ${describeValue(j)}`);
      return widened(j);
    },
  };
}

/** A checked 16-bit matrix: its shape, and its entries from element `first` widened (exactly) into `out`. */
interface CheckedHalfMatrix {
  readonly rows: number;
  readonly cols: number;
  widen(first: number, out: Float32Array): void;
}

function checkedHalfMatrix(half: HalfMatrix, name: string): CheckedHalfMatrix {
  checkKnownKeys(half, HALF_MATRIX_KEYS, name);
  checkPositiveInteger(half.rows, `${name}.rows`);
  checkPositiveInteger(half.cols, `${name}.cols`);
  const format = half.format === undefined ? 'f16' : half.format;
  checkOneOf(format, ['f16', 'bf16'], `${name}.format`);
  const floats = isFloat16Array(half.data);
  check(
    half.data instanceof Uint16Array || floats,
    () => `${name}.data must be a Float32Array, a Uint16Array of f16/bf16 bits or a Float16Array`,
  );
  check(!floats || format === 'f16', `${name}: a Float16Array holds f16 values; format 'bf16' needs a Uint16Array of bfloat16 bits`);
  check(half.data.length === half.rows * half.cols, () => `${name}.data has ${half.data.length} entries, expected rows * cols = ${half.rows * half.cols}`);
  const source = half.data;
  const widen = (first: number, out: Float32Array): void => {
    const count = out.length;
    if (floats) {
      for (let i = 0; i < count; i++) out[i] = source[first + i] as number;
      return;
    }
    // In place, one entry at a time: Uint32Array.from with a callback held every value as a boxed
    // number (≥ 2^30) on the way, 16× the input's bytes at once (1.9 GB for a 112 MB bf16 matrix).
    const bits = source as Uint16Array;
    const view = new Uint32Array(out.buffer, out.byteOffset, count);
    if (format === 'bf16') for (let i = 0; i < count; i++) view[i] = (bits[first + i] as number) << 16;
    else for (let i = 0; i < count; i++) view[i] = float16BitsToFloat32Bits(bits[first + i] as number);
  };
  return { rows: half.rows, cols: half.cols, widen };
}
