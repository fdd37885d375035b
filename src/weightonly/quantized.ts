import { check, LatticeMatmulError } from '../errors.js';
import type { Matrix } from '../matrix.js';
import { WeightBasis, type RotationKind } from './basis.js';
import { meanColumnEntropy } from './codeRate.js';
import { weightedDistortion } from './distortion.js';
import { checkMethod, WEIGHT_ONLY_METHODS, type WeightOnlyMethod } from './method.js';

/**
 * What the quantizer measured and predicted (present on the result of `quantizeWeights`, absent on a
 * deserialized matrix). Rates are in bits per entry of W.
 */
export interface WeightOnlyAnalysis {
  /** The step the search settled on: c for WaterSIC, Δ for GPTQ and RTN. */
  readonly step: number;
  /** Quantizations tried by the rate search (1 when a step was given). */
  readonly evaluations: number;
  /** The mean squared entry of W, σ_W². */
  readonly sigmaW2: number;
  /** ln|Σ_X| of the covariance as given (−∞ when Σ_X is singular). */
  readonly logDetSigmaX: number;
  /** ½·log2(AM/GM) of the Cholesky pivots L_ii² of the damped H in the quantization basis. */
  readonly pivotAmGmBits: number;
  /** ½·log2(|H|/|Σ_X|)/n: the damping's share of the gap. */
  readonly dampingBits: number;
  /** ½·log2(AM(diag Σ_X)/|Σ_X|^{1/n}). */
  readonly diagonalAmGmBits: number;
  /** High-rate prediction of the gap to the weight-only limit at this rate (`predictedGapBits`). */
  readonly predictedGapBits: number;
  /** First-order extra rate of the LDLQ error feedback at this step (`feedbackPenaltyBits`; 0 for RTN). */
  readonly feedbackPenaltyBits: number;
  /**
   * With `rescale`: tr(ΔHΔᵀ) in the quantization basis (H the damped covariance) before and after
   * the diagonal rescaler fit.
   */
  readonly rescaleObjective?: { readonly before: number; readonly after: number };
}

/** The fields of a {@link WeightOnlyQuantized}. */
export interface WeightOnlyQuantizedFields {
  readonly method: WeightOnlyMethod;
  readonly n: number;
  readonly outputs: number;
  readonly codes: Int32Array;
  readonly columnScales: Float32Array;
  readonly rowScales: Float32Array | null;
  readonly rotation: RotationKind;
  readonly seed: number;
  readonly analysis?: WeightOnlyAnalysis;
}

const MAGIC = 0x51574d4c; // "LMWQ" read as a little-endian u32
const FORMAT_VERSION = 1;
const HEADER_BYTES = 36;
const ROTATIONS: readonly RotationKind[] = ['none', 'hadamard', 'haar'];
const FLAG_ROW_SCALES = 1;

/**
 * A weight matrix quantized by `quantizeWeights`: integer codes plus the f32 scales that decode them.
 *
 * Decoding (in the quantization basis, math orientation Ŵ' of shape outputs × n):
 *   Ŵ'[j, i] = fround(fround(z[j, i] · columnScales[i]) · rowScales[j])   (rowScales = 1 when null,
 * and then the second rounding is exact), and Ŵ = Ŵ'·Q undoes the rotation (see `RotationKind`). A
 * GEMV kernel computes y = Ŵ·x as y_j = rowScales[j] · Σ_i z[j, i]·(columnScales[i]·(Q·x)_i), i.e.
 * it rotates the activation once and needs no decoded weights.
 *
 * Layout: `codes[j·n + i]` is the code of output j, input feature i — this library's Matrix layout
 * for W stored as Wᵀ (rows = n inputs, one column per output), i.e. row-major in the math (out × in)
 * orientation. `serialize` documents the byte format.
 */
export class WeightOnlyQuantized {
  readonly method: WeightOnlyMethod;
  /** Input features: rows of the stored W. */
  readonly n: number;
  /** Output features: columns of the stored W. */
  readonly outputs: number;
  readonly codes: Int32Array;
  readonly columnScales: Float32Array;
  readonly rowScales: Float32Array | null;
  readonly rotation: RotationKind;
  readonly seed: number;
  readonly analysis: WeightOnlyAnalysis | undefined;
  private cachedCodeRate: number | undefined;
  private basis: WeightBasis | undefined;

  constructor(fields: WeightOnlyQuantizedFields) {
    checkMethod(fields.method);
    const { n, outputs } = fields;
    check(Number.isInteger(n) && n > 0 && Number.isInteger(outputs) && outputs > 0, () => `n and outputs must be positive integers, got ${n} and ${outputs}`);
    check(fields.codes instanceof Int32Array && fields.codes.length === n * outputs, () => `codes must be an Int32Array of n·outputs = ${n * outputs} entries`);
    check(fields.columnScales instanceof Float32Array && fields.columnScales.length === n, () => `columnScales must be a Float32Array of n = ${n} entries`);
    check(
      fields.rowScales === null || (fields.rowScales instanceof Float32Array && fields.rowScales.length === outputs),
      () => `rowScales must be null or a Float32Array of outputs = ${outputs} entries`,
    );
    for (const [name, scales] of [['columnScales', fields.columnScales], ['rowScales', fields.rowScales ?? new Float32Array(0)]] as const) {
      for (let i = 0; i < scales.length; i++) {
        check(Number.isFinite(scales[i]), () => `${name}[${i}] is not finite: ${scales[i]}`);
      }
    }
    check(ROTATIONS.includes(fields.rotation), () => `rotation must be one of ${ROTATIONS.join(', ')}, got ${String(fields.rotation)}`);
    check((fields.seed >>> 0) === fields.seed, () => `seed must be an integer in [0, 2^32 - 1], got ${fields.seed}`);
    this.method = fields.method;
    this.n = n;
    this.outputs = outputs;
    this.codes = fields.codes;
    this.columnScales = fields.columnScales;
    this.rowScales = fields.rowScales;
    this.rotation = fields.rotation;
    this.seed = fields.seed;
    this.analysis = fields.analysis;
  }

  /** Empirical entropy of the codes, bits per entry (mean over input features of each one's entropy). */
  get codeRate(): number {
    this.cachedCodeRate ??= meanColumnEntropy(this.codes, this.n, this.outputs);
    return this.cachedCodeRate;
  }

  /**
   * Side information in bits: 32 per f32 parameter that carries information — n column steps for
   * WaterSIC or after rescaling (GPTQ and RTN share one step, stored n times but worth 32 bits),
   * plus 32 per output for the row rescalers.
   */
  get sideInfoBits(): number {
    return sideInfoBits(this.method, this.n, this.outputs, this.rowScales !== null);
  }

  /** Side information in bits per entry of W. */
  get sideInfoRate(): number {
    return this.sideInfoBits / (this.n * this.outputs);
  }

  /** The rate: code entropy plus side information, bits per entry of W. */
  get rate(): number {
    return this.codeRate + this.sideInfoRate;
  }

  /** Bits per entry of the serialized form (fixed-width codes, no entropy coding). */
  get storedBitsPerEntry(): number {
    return (8 * serializedBytes(this.n, this.outputs, codeWidthBits(this.codes), this.rowScales !== null)) / (this.n * this.outputs);
  }

  /** Ŵ' in the quantization basis (a new n × outputs Matrix, this library's layout). */
  decodeRotated(): Matrix {
    const { n, outputs, codes, columnScales, rowScales } = this;
    const data = new Float32Array(n * outputs);
    for (let j = 0; j < outputs; j++) {
      const t = rowScales === null ? 1 : (rowScales[j] as number);
      const base = j * n;
      for (let i = 0; i < n; i++) {
        data[base + i] = Math.fround(Math.fround((codes[base + i] as number) * (columnScales[i] as number)) * t);
      }
    }
    return { rows: n, cols: outputs, data };
  }

  /**
   * Ŵ in the original basis: a new n × outputs Matrix (this library's layout, like the W given to
   * `quantizeWeights`).
   *
   * @example
   * const wHat = quantizeWeights(w, sigmaX, { method: 'watersic', rate: 4 }).decode();
   */
  decode(): Matrix {
    const rotated = this.decodeRotated();
    if (this.rotation === 'none') return rotated;
    this.basis ??= new WeightBasis(this.n, this.rotation, this.seed);
    return this.basis.unrotateWeights(rotated);
  }

  /** tr((W − Ŵ)·Σ_X·(W − Ŵ)ᵀ) against the original `w` (see `weightedDistortion`). */
  distortion(w: Matrix, sigmaX: Matrix): number {
    return weightedDistortion(w, this.decode(), sigmaX);
  }

  /**
   * The byte format (little-endian throughout):
   * ```
   * offset  type           field
   * 0       u32            magic 0x51574D4C ("LMWQ" in byte order)
   * 4       u32            format version = 1
   * 8       u32            n (input features)
   * 12      u32            outputs
   * 16      u32            code width w in bits: 8, 16 or 32 (the smallest that holds every code)
   * 20      u32            method: 0 rtn, 1 gptq, 2 watersic (informational)
   * 24      u32            rotation: 0 none, 1 randomized Hadamard, 2 dense Haar
   * 28      u32            rotation seed
   * 32      u32            flags: bit 0 = row scales present
   * 36      f32 × n        column scales s_i
   * …       f32 × outputs  row scales t_j (only with flag bit 0)
   * …       int_w × n·outputs  codes, two's complement, index j·n + i (output-major)
   * ```
   */
  serialize(): Uint8Array {
    const { n, outputs, codes, columnScales, rowScales } = this;
    const width = codeWidthBits(codes);
    const bytes = new Uint8Array(serializedBytes(n, outputs, width, rowScales !== null));
    const view = new DataView(bytes.buffer);
    const header = [MAGIC, FORMAT_VERSION, n, outputs, width, WEIGHT_ONLY_METHODS.indexOf(this.method), ROTATIONS.indexOf(this.rotation), this.seed, rowScales === null ? 0 : FLAG_ROW_SCALES];
    header.forEach((v, k) => view.setUint32(4 * k, v, true));
    let offset = HEADER_BYTES;
    for (let i = 0; i < n; i++, offset += 4) view.setFloat32(offset, columnScales[i] as number, true);
    if (rowScales !== null) for (let j = 0; j < outputs; j++, offset += 4) view.setFloat32(offset, rowScales[j] as number, true);
    for (let k = 0; k < codes.length; k++, offset += width / 8) {
      const z = codes[k] as number;
      if (width === 8) view.setInt8(offset, z);
      else if (width === 16) view.setInt16(offset, z, true);
      else view.setInt32(offset, z, true);
    }
    return bytes;
  }

  /** Reads the format written by `serialize`; throws a `LatticeMatmulError` on anything malformed. */
  static deserialize(bytes: Uint8Array): WeightOnlyQuantized {
    check(bytes instanceof Uint8Array, 'deserialize expects a Uint8Array');
    check(bytes.length >= HEADER_BYTES, () => `weight-only data too short: ${bytes.length} bytes, the header alone has ${HEADER_BYTES}`);
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const u32 = (k: number): number => view.getUint32(4 * k, true);
    check(u32(0) === MAGIC, 'not weight-only quantized data (bad magic)');
    check(u32(1) === FORMAT_VERSION, () => `unsupported weight-only format version ${u32(1)}`);
    const n = u32(2);
    const outputs = u32(3);
    const width = u32(4);
    const method = WEIGHT_ONLY_METHODS[u32(5)];
    const rotation = ROTATIONS[u32(6)];
    const seed = u32(7);
    const flags = u32(8);
    check(n > 0 && outputs > 0, 'weight-only data has zero rows or columns');
    check(width === 8 || width === 16 || width === 32, () => `bad code width ${width}`);
    if (method === undefined) throw new LatticeMatmulError(`unknown method id ${u32(5)}`);
    if (rotation === undefined) throw new LatticeMatmulError(`unknown rotation id ${u32(6)}`);
    check((flags & ~FLAG_ROW_SCALES) === 0, () => `unknown flags ${flags}`);
    const hasRowScales = (flags & FLAG_ROW_SCALES) !== 0;
    const expected = serializedBytes(n, outputs, width, hasRowScales);
    check(bytes.length === expected, () => `weight-only data has ${bytes.length} bytes, the header implies ${expected}`);
    let offset = HEADER_BYTES;
    const columnScales = new Float32Array(n);
    for (let i = 0; i < n; i++, offset += 4) columnScales[i] = view.getFloat32(offset, true);
    let rowScales: Float32Array | null = null;
    if (hasRowScales) {
      rowScales = new Float32Array(outputs);
      for (let j = 0; j < outputs; j++, offset += 4) rowScales[j] = view.getFloat32(offset, true);
    }
    const codes = new Int32Array(n * outputs);
    for (let k = 0; k < codes.length; k++, offset += width / 8) {
      codes[k] = width === 8 ? view.getInt8(offset) : width === 16 ? view.getInt16(offset, true) : view.getInt32(offset, true);
    }
    return new WeightOnlyQuantized({ method, n, outputs, codes, columnScales, rowScales, rotation, seed });
  }
}

/** See `WeightOnlyQuantized.sideInfoBits`. */
export function sideInfoBits(method: WeightOnlyMethod, n: number, outputs: number, rowScales: boolean): number {
  const columnParameters = method === 'watersic' || rowScales ? n : 1;
  return 32 * columnParameters + (rowScales ? 32 * outputs : 0);
}

/** Narrowest two's-complement width (8, 16 or 32 bits) holding every code: the width `serialize` writes. */
export function codeWidthBits(codes: Int32Array): 8 | 16 | 32 {
  let largest = 0;
  for (let k = 0; k < codes.length; k++) {
    const z = codes[k] as number;
    const magnitude = z < 0 ? -z - 1 : z; // two's complement: −2^(w−1) … 2^(w−1) − 1
    if (magnitude > largest) largest = magnitude;
  }
  return largest < 128 ? 8 : largest < 32768 ? 16 : 32;
}

function serializedBytes(n: number, outputs: number, width: number, rowScales: boolean): number {
  return HEADER_BYTES + 4 * n + (rowScales ? 4 * outputs : 0) + (width / 8) * n * outputs;
}
