import { checkU32 } from '../rotation/random.js';
import { check, checkOneOf, describeValue, LatticeMatmulError } from '../errors.js';
import type { Matrix } from '../matrix.js';
import { isShortWindowedRotation, rotationLength } from '../rotation/hadamard.js';
import { MAX_HAAR_N, WeightBasis, type RotationKind } from './basis.js';
import { meanColumnEntropy } from './codeRate.js';
import { crc32 } from '../format/crc32.js';
import { weightedDistortion } from './distortion.js';
import { checkMethod, WEIGHT_ONLY_METHODS, type WeightOnlyMethod } from './method.js';
import {
  columnCodeWidths,
  MAX_CODE_BITS,
  packWeightCodes,
  rowLayout,
  unpackWeightCodes,
  type PackedWeightCodes,
} from './packedCodes.js';

/**
 * What the quantizer measured and predicted (present on the result of `quantizeWeights`, absent on a
 * deserialized matrix). Rates are in bits per entry of W. The terms that need Σ_X are NaN for a
 * matrix quantized without it (RTN with `sigmaX` null).
 */
export interface WeightOnlyAnalysis {
  /** The step the search settled on: c for WaterSIC, Δ for GPTQ and RTN. */
  readonly step: number;
  /** Quantizations tried by the rate search (1 when a step was given). */
  readonly evaluations: number;
  /** The mean squared entry of W, σ_W². */
  readonly sigmaW2: number;
  /**
   * An estimate of how far `rate` understates what the codes cost (bits per entry): the rate counts
   * each input feature's `outputs` codes at their empirical entropy, which cannot exceed log2(outputs)
   * and falls short of the true entropy near it. Over the features within ENTROPY_SATURATION_MARGIN
   * bits of that cap, their code width minus their entropy, per entry of W; 0 when outputs ≫ 2^rate.
   * A rate search refuses to settle above MAX_RATE_UNDERSTATEMENT (both in quantizeWeights.ts); a
   * fixed step reports it.
   */
  readonly entropyUnderstatementBits: number;
  /** ln|Σ_X| of the covariance as given (−∞ when Σ_X is singular). */
  readonly logDetSigmaX: number;
  /** ½·log2(AM/GM) of the Cholesky pivots L_ii² of the damped H in the quantization basis. */
  readonly pivotAmGmBits: number;
  /** ½·log2(|H|/|Σ_X|)/n: the damping's share of the gap (+∞ when Σ_X is singular, as are the next two). */
  readonly dampingBits: number;
  /** ½·log2(AM(diag Σ_X)/|Σ_X|^{1/n}) (+∞ when Σ_X is singular). */
  readonly diagonalAmGmBits: number;
  /**
   * High-rate prediction of the gap to the weight-only limit at this rate (`predictedGapBits`; +∞ when
   * Σ_X is singular: the limit σ_W²·|Σ_X|^{1/n}·2^{−2R} is then 0, and `weightOnlyLimit` refuses it).
   */
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

/** The fields of `WeightOnlyQuantized.fromPacked`: the packed codes as stored, and the scales. */
export interface WeightOnlyPackedFields {
  readonly method: WeightOnlyMethod;
  readonly rotation: RotationKind;
  readonly seed: number;
  readonly packed: PackedWeightCodes;
  readonly columnScales: Float32Array;
  readonly rowScales: Float32Array | null;
}

const MAGIC = 0x51574d4c; // "LMWQ" read as a little-endian u32
/**
 * The newest format version `serialize` writes (`deserialize` reads 1 to it). Version 3 has the
 * layout of version 2 and may hold a 'hadamard' rotation of 256 < n ≤ 1024 inputs that is no Hadamard
 * length (two windows, `rotationPlan`), which earlier versions cannot; `serialize` writes 3 only then.
 */
export const WEIGHT_ONLY_FORMAT_VERSION = 3;

/**
 * Whether a weight-only matrix rotated by `rotation` over n inputs needs format version 3, of
 * `serialize` and of the quantized container alike: a 'hadamard' rotation in two windows with n ≤ 1024.
 */
export function weightOnlyNeedsVersion3(rotation: RotationKind, n: number): boolean {
  return rotation === 'hadamard' && isShortWindowedRotation(n, n);
}
const HEADER_BYTES = 48;
const CHECKSUM_BYTES = 4;
const V1_HEADER_BYTES = 36;
const ROTATIONS: readonly RotationKind[] = ['none', 'hadamard', 'haar'];
const FLAG_ROW_SCALES = 1;

/**
 * Largest |s_i|·2^(b_i − 1), b_i the bits of input feature i's codes: the largest magnitude a code
 * of that column decodes to before the row scale (2^48 ≈ 2.8e14).
 */
export const MAX_COLUMN_MAGNITUDE = 2 ** 48;
/** Largest |t_j| of a row scale (the rescalers stay near 1). */
export const MAX_ROW_SCALE = 2 ** 16;
/** Most entries n·outputs of one matrix. */
export const MAX_WEIGHT_ENTRIES = 2 ** 31 - 1;

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
 * orientation. `packedCodes` is the bit-packed form the file and the GPU use; `serialize` documents
 * the byte format.
 *
 * Invariants (checked by the constructor, so by `deserialize` too), with b_i the bits of input
 * feature i's codes (`codeWidths`):
 * - every code is an integer in [−2^24, 2^24 − 1] (exact in f32), so |z_ji| ≤ 2^(b_i − 1);
 * - every scale is finite, |s_i|·2^(b_i − 1) ≤ 2^48 and |t_j| ≤ 2^16, so every decoded entry has
 *   |z_ji·s_i·t_j| ≤ 2^64;
 * - n·outputs ≤ 2^31 − 1; a `hadamard` rotation rotates n unpadded (`rotationLength(n) = n`), a
 *   `haar` rotation n ≤ MAX_HAAR_N, the same cap quantizing uses.
 *
 * Why `decode()` is finite (f32 max ≈ 2^128): entries of Ŵ' are at most 2^64·(1 + 2^−24)²; the
 * inverse Hadamard rotation forms ± sums of one column's entries, at most n·2^65 < 2^97 in every
 * intermediate; the dense rotation gives at most ‖column‖₂ ≤ √n·2^65. Why the GPU GEMV is finite for
 * every x with ‖x‖₂ ≤ 2^31: x̃ = Q·x has |x̃_i| ≤ ‖x‖₂·(1 + 2^−10), so every term |z·s_i·x̃_i| ≤
 * 2^48·2^31·(1.01), every partial sum at most n times that (< 2^111), and the final ·t_j < 2^127.
 */
export class WeightOnlyQuantized {
  readonly method: WeightOnlyMethod;
  /** Input features: rows of the stored W. */
  readonly n: number;
  /** Output features: columns of the stored W. */
  readonly outputs: number;
  /** The codes, output j, input feature i at j·n + i. Do not modify (the packed form is cached). */
  readonly codes: Int32Array;
  readonly columnScales: Float32Array;
  readonly rowScales: Float32Array | null;
  readonly rotation: RotationKind;
  readonly seed: number;
  readonly analysis: WeightOnlyAnalysis | undefined;
  private readonly widths: Uint8Array;
  private packed: PackedWeightCodes | undefined;
  private cachedCodeRate: number | undefined;
  private basis: WeightBasis | undefined;

  constructor(fields: WeightOnlyQuantizedFields) {
    check(typeof fields === 'object' && fields !== null, 'WeightOnlyQuantized needs its fields { method, n, outputs, codes, … }');
    checkMethod(fields.method);
    const { n, outputs } = fields;
    checkSizes(n, outputs);
    check(fields.codes instanceof Int32Array && fields.codes.length === n * outputs, () => `codes must be an Int32Array of n·outputs = ${n * outputs} entries`);
    check(fields.columnScales instanceof Float32Array && fields.columnScales.length === n, () => `columnScales must be a Float32Array of n = ${n} entries`);
    check(
      fields.rowScales === null || (fields.rowScales instanceof Float32Array && fields.rowScales.length === outputs),
      () => `rowScales must be null or a Float32Array of outputs = ${outputs} entries`,
    );
    checkRotation(fields.rotation, n);
    checkU32(fields.seed, 'seed');
    const widths = columnCodeWidths(fields.codes, n, outputs);
    checkScales(fields.columnScales, widths, fields.rowScales);
    this.method = fields.method;
    this.n = n;
    this.outputs = outputs;
    this.codes = fields.codes;
    this.columnScales = fields.columnScales;
    this.rowScales = fields.rowScales;
    this.rotation = fields.rotation;
    this.seed = fields.seed;
    this.analysis = fields.analysis;
    this.widths = widths;
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

  /** b_i: bits per code of input feature i, the narrowest two's complement width of its codes (a copy). */
  get codeWidths(): Uint8Array {
    return this.widths.slice();
  }

  /**
   * The codes bit-packed per input feature (`packWeightCodes`): the layout of the file and of the
   * GPU's code buffer. Computed once (read as stored by `deserialize`); do not modify.
   */
  get packedCodes(): PackedWeightCodes {
    this.packed ??= packWeightCodes(this.codes, this.n, this.outputs);
    return this.packed;
  }

  /** Bits per entry of the serialized form (packed codes plus widths, scales, header and checksum). */
  get storedBitsPerEntry(): number {
    const { rowVec4s } = rowLayout(this.widths);
    return (8 * serializedBytes(this.n, this.outputs, rowVec4s, this.rowScales !== null)) / (this.n * this.outputs);
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
   * `quantizeWeights`). Every entry is finite (see the class comment).
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
   * The byte format, versions 2 and 3 (little-endian throughout; 3 only for a two-window rotation of
   * n ≤ 1024, see WEIGHT_ONLY_FORMAT_VERSION):
   * ```
   * offset  type                 field
   * 0       u32                  magic 0x51574D4C ("LMWQ" in byte order)
   * 4       u32                  format version = 2 or 3
   * 8       u32                  n (input features)
   * 12      u32                  outputs
   * 16      u32                  R: vec4<u32> (16 bytes) of codes per output row
   * 20      u32                  method: 0 rtn, 1 gptq, 2 watersic (informational)
   * 24      u32                  rotation: 0 none, 1 randomized Hadamard, 2 dense Haar
   * 28      u32                  rotation seed
   * 32      u32                  flags: bit 0 = row scales present; other bits 0
   * 36      u32 × 3              reserved, 0
   * 48      u32 × 4·R·outputs    packed codes (`packWeightCodes`): row j from byte 48 + 16·R·j
   * …       u8 × n               b_i, bits per code of input feature i (1 … 25), then zero bytes
   *                              up to a multiple of 4
   * …       f32 × n              column scales s_i
   * …       f32 × outputs        row scales t_j (only with flag bit 0)
   * end − 4 u32                  CRC-32 (IEEE, as zlib) of every byte before it
   * ```
   * The codes come first, at a 16-byte-aligned offset, so a reader can hand them to the GPU as they
   * are. The writer is canonical: every b_i is the narrowest width of its column and padding is zero,
   * so `deserialize(bytes).serialize()` returns `bytes` exactly.
   *
   * @example
   * const bytes = q.serialize();                          // ≈ (mean b_i)/8 bytes per weight
   * const back = WeightOnlyQuantized.deserialize(bytes);  // the same codes and scales
   */
  serialize(): Uint8Array {
    const { n, outputs, columnScales, rowScales } = this;
    const packed = this.packedCodes;
    const bytes = new Uint8Array(serializedBytes(n, outputs, packed.rowVec4s, rowScales !== null));
    const view = new DataView(bytes.buffer);
    const header = [
      MAGIC, weightOnlyNeedsVersion3(this.rotation, n) ? 3 : 2, n, outputs, packed.rowVec4s, WEIGHT_ONLY_METHODS.indexOf(this.method),
      ROTATIONS.indexOf(this.rotation), this.seed, rowScales === null ? 0 : FLAG_ROW_SCALES, 0, 0, 0,
    ];
    header.forEach((v, k) => view.setUint32(4 * k, v, true));
    let offset = HEADER_BYTES;
    for (let k = 0; k < packed.words.length; k++, offset += 4) view.setUint32(offset, packed.words[k] as number, true);
    bytes.set(packed.widths, offset);
    offset += padded4(n);
    for (let i = 0; i < n; i++, offset += 4) view.setFloat32(offset, columnScales[i] as number, true);
    if (rowScales !== null) for (let j = 0; j < outputs; j++, offset += 4) view.setFloat32(offset, rowScales[j] as number, true);
    view.setUint32(offset, crc32(bytes, 0, offset), true);
    return bytes;
  }

  /**
   * Reads the format written by `serialize` (versions 2 and 3, and the unchecked version 1 of earlier
   * releases); throws a `LatticeMatmulError` naming the problem on anything malformed. The byte
   * length is checked against the header's sizes before anything is allocated, then the checksum,
   * then every field: the result satisfies the class invariants, so `decode()` and the GPU GEMV are
   * finite and their work is bounded by the bytes (codes: at most 32·length bytes of Int32Array; a
   * dense rotation only up to MAX_HAAR_N).
   *
   * @example
   * const q = WeightOnlyQuantized.deserialize(new Uint8Array(await file.arrayBuffer()));
   */
  static deserialize(bytes: Uint8Array): WeightOnlyQuantized {
    check(bytes instanceof Uint8Array, 'deserialize expects a Uint8Array');
    check(bytes.length >= 8, () => `weight-only data too short: ${bytes.length} bytes, not even a magic and a version`);
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    check(view.getUint32(0, true) === MAGIC, 'not weight-only quantized data (bad magic)');
    const version = view.getUint32(4, true);
    if (version === 1) return readVersion1(bytes, view);
    check(version === 2 || version === 3, () => `unsupported weight-only format version ${version} (this library reads 1 to ${WEIGHT_ONLY_FORMAT_VERSION})`);

    check(
      bytes.length >= HEADER_BYTES + CHECKSUM_BYTES,
      () => `weight-only data too short: ${bytes.length} bytes, the version 2 header and checksum alone take ${HEADER_BYTES + CHECKSUM_BYTES}`,
    );
    const u32 = (k: number): number => view.getUint32(4 * k, true);
    const n = u32(2);
    const outputs = u32(3);
    const rowVec4s = u32(4);
    const flags = u32(8);
    check(n > 0 && outputs > 0 && rowVec4s > 0, () => `weight-only data: n = ${n}, outputs = ${outputs} and vec4 per row = ${rowVec4s} must all be positive`);
    check((flags & ~FLAG_ROW_SCALES) === 0, () => `weight-only data: unknown flags 0x${flags.toString(16)}`);
    const hasRowScales = (flags & FLAG_ROW_SCALES) !== 0;
    const expected = serializedBytes(n, outputs, rowVec4s, hasRowScales);
    check(
      bytes.length === expected,
      () => `weight-only data has ${bytes.length} bytes, its header (n = ${n}, outputs = ${outputs}, ${rowVec4s} vec4 per row, ` +
        `${hasRowScales ? 'with' : 'no'} row scales) implies ${expected}`,
    );
    const end = bytes.length - CHECKSUM_BYTES;
    const stored = view.getUint32(end, true);
    const computed = crc32(bytes, 0, end);
    check(
      stored === computed,
      () => `weight-only data is corrupted: its checksum is 0x${hex(stored)} but the bytes give 0x${hex(computed)}`,
    );
    for (let k = 9; k < 12; k++) check(u32(k) === 0, () => `weight-only data: reserved header word ${k} is ${u32(k)}, expected 0`);
    const { method, rotation } = headerKinds(u32(5), u32(6), n, outputs, version);

    const codesAt = HEADER_BYTES;
    const widthsAt = codesAt + 16 * rowVec4s * outputs;
    const widths = new Uint8Array(bytes.subarray(widthsAt, widthsAt + n)); // a copy (Buffer.slice would be a view)
    for (let k = widthsAt + n; k < widthsAt + padded4(n); k++) check(bytes[k] === 0, () => `weight-only data: padding byte ${k} is ${bytes[k]}, expected 0`);
    let offset = widthsAt + padded4(n);
    const columnScales = new Float32Array(n);
    for (let i = 0; i < n; i++, offset += 4) columnScales[i] = view.getFloat32(offset, true);
    let rowScales: Float32Array | null = null;
    if (hasRowScales) {
      rowScales = new Float32Array(outputs);
      for (let j = 0; j < outputs; j++, offset += 4) rowScales[j] = view.getFloat32(offset, true);
    }
    const words = new Uint32Array(4 * rowVec4s * outputs);
    for (let k = 0; k < words.length; k++) words[k] = view.getUint32(codesAt + 4 * k, true);
    const packed: PackedWeightCodes = { n, outputs, widths, rowVec4s, words };
    return WeightOnlyQuantized.fromPacked({ method, rotation, seed: u32(7), packed, columnScales, rowScales });
  }

  /**
   * A matrix from its packed codes as stored (`packWeightCodes`: the file's and the GPU's layout) and
   * its scales, with every check a reader needs, in an order that allocates nothing large before
   * the cheap checks pass: sizes and rotation, code widths (1 … 25, and they must need exactly
   * `rowVec4s` vec4 per row), scales (finite, within the bounds of the class comment), then the codes
   * (unpacked: padding zero, widths the narrowest). The packed form is kept as given, so
   * `packedCodes` returns these very words (which an upload in the packed layout uses as they are). Shared by `deserialize` and
   * the quantized container (src/format/container.ts); `source` prefixes the messages.
   *
   * @example
   * const q = WeightOnlyQuantized.fromPacked({ method: 'rtn', rotation: 'none', seed: 0, packed, columnScales, rowScales: null });
   */
  static fromPacked(fields: WeightOnlyPackedFields, source = 'weight-only data'): WeightOnlyQuantized {
    check(typeof fields === 'object' && fields !== null, 'fromPacked needs { method, rotation, seed, packed, columnScales, rowScales }');
    const { packed, columnScales, rowScales } = fields;
    checkMethod(fields.method);
    check(typeof packed === 'object' && packed !== null, () => `${source}: packed codes missing`);
    const { n, outputs, widths, rowVec4s, words } = packed;
    checkSizes(n, outputs);
    checkRotation(fields.rotation, n);
    check(widths instanceof Uint8Array && widths.length === n, () => `${source}: expected ${n} code widths`);
    for (let i = 0; i < n; i++) {
      const width = widths[i] as number;
      check(width >= 1 && width <= MAX_CODE_BITS, () => `${source}: input feature ${i} has code width ${width}, expected 1 … ${MAX_CODE_BITS}`);
    }
    const layout = rowLayout(widths);
    check(
      layout.rowVec4s === rowVec4s,
      () => `${source}: the code widths need ${layout.rowBits} bits per row, ${layout.rowVec4s} vec4, but the header says ${rowVec4s}`,
    );
    check(words instanceof Uint32Array && words.length === 4 * rowVec4s * outputs, () => `${source}: expected ${4 * rowVec4s * outputs} code words`);
    check(columnScales instanceof Float32Array && columnScales.length === n, () => `${source}: columnScales must be a Float32Array of n = ${n} entries`);
    check(
      rowScales === null || (rowScales instanceof Float32Array && rowScales.length === outputs),
      () => `${source}: rowScales must be null or a Float32Array of outputs = ${outputs} entries`,
    );
    checkScales(columnScales, widths, rowScales); // before the codes are unpacked
    const codes = unpackWeightCodes(packed);
    const q = new WeightOnlyQuantized({ method: fields.method, n, outputs, codes, columnScales, rowScales, rotation: fields.rotation, seed: fields.seed });
    q.packed = packed;
    return q;
  }
}

/** See `WeightOnlyQuantized.sideInfoBits`. */
export function sideInfoBits(method: WeightOnlyMethod, n: number, outputs: number, rowScales: boolean): number {
  const columnParameters = method === 'watersic' || rowScales ? n : 1;
  return 32 * columnParameters + (rowScales ? 32 * outputs : 0);
}

/** Bytes of the version 2 format. */
function serializedBytes(n: number, outputs: number, rowVec4s: number, rowScales: boolean): number {
  return HEADER_BYTES + 16 * rowVec4s * outputs + padded4(n) + 4 * n + (rowScales ? 4 * outputs : 0) + CHECKSUM_BYTES;
}

function padded4(bytes: number): number {
  return 4 * Math.ceil(bytes / 4);
}

function hex(value: number): string {
  return value.toString(16).toUpperCase().padStart(8, '0');
}

/** The method and rotation ids of a header (words 5 and 6, both format versions), checked with the sizes. */
function headerKinds(methodId: number, rotationId: number, n: number, outputs: number, version: number): { method: WeightOnlyMethod; rotation: RotationKind } {
  const method = WEIGHT_ONLY_METHODS[methodId];
  if (method === undefined) throw new LatticeMatmulError(`weight-only data: unknown method id ${methodId}`);
  const rotation = ROTATIONS[rotationId];
  if (rotation === undefined) throw new LatticeMatmulError(`weight-only data: unknown rotation id ${rotationId}`);
  checkSizes(n, outputs);
  checkRotation(rotation, n);
  check(
    version >= 3 || !weightOnlyNeedsVersion3(rotation, n),
    () => `weight-only data of format version ${version}: a 'hadamard' rotation of n = ${n} inputs is the two-window rotation of n ≤ 1024, which only version 3 holds`,
  );
  return { method, rotation };
}

function checkSizes(n: number, outputs: number): void {
  check(Number.isInteger(n) && n > 0 && Number.isInteger(outputs) && outputs > 0, () => `n and outputs must be positive integers, got ${describeValue(n)} and ${outputs}`);
  check(
    n * outputs <= MAX_WEIGHT_ENTRIES,
    () => `n·outputs = ${n}·${outputs} entries is more than one weight-only matrix may hold (${MAX_WEIGHT_ENTRIES})`,
  );
}

/** The rotation is known and fits n: Hadamard only where it needs no padding (a Hadamard length, or n > 256), the dense rotation only up to MAX_HAAR_N. */
function checkRotation(rotation: RotationKind, n: number): void {
  checkOneOf(rotation, ROTATIONS, 'rotation');
  check(
    rotation !== 'hadamard' || rotationLength(n) === n,
    () => `rotation 'hadamard' needs an unpadded rotation, rotationLength(n) = n (n = m·2^k with m ∈ {1, 12, 20}, or n > 256), got n = ${n}`,
  );
  check(
    rotation !== 'haar' || n <= MAX_HAAR_N,
    () => `rotation 'haar' (a dense n × n rotation, O(n³) to build) is limited to n ≤ ${MAX_HAAR_N}, got n = ${n}`,
  );
}

/** Finite scales within the bounds that keep every decoded entry below 2^64 (see the class comment). */
function checkScales(columnScales: Float32Array, widths: Uint8Array, rowScales: Float32Array | null): void {
  const problem = scalesOutOfRange(columnScales, widths, rowScales);
  check(problem === null, () => problem as string);
}

/**
 * Why these scales break the format's invariants (a non-finite scale, |s_i|·2^(b_i − 1) > 2^48 or
 * |t_j| > 2^16), or null when they keep them. `widths`: each input feature's code bits b_i.
 */
export function scalesOutOfRange(columnScales: Float32Array, widths: Uint8Array, rowScales: Float32Array | null): string | null {
  for (let i = 0; i < columnScales.length; i++) {
    const s = columnScales[i] as number;
    if (!Number.isFinite(s)) return `columnScales[${i}] is not finite: ${s}`;
    const largest = Math.abs(s) * 2 ** ((widths[i] as number) - 1);
    if (largest > MAX_COLUMN_MAGNITUDE) return `columnScales[${i}] = ${s} with ${widths[i]}-bit codes decodes to magnitudes up to ${largest}, above the limit 2^48`;
  }
  if (rowScales === null) return null;
  for (let j = 0; j < rowScales.length; j++) {
    const t = rowScales[j] as number;
    if (!Number.isFinite(t)) return `rowScales[${j}] is not finite: ${t}`;
    if (Math.abs(t) > MAX_ROW_SCALE) return `rowScales[${j}] = ${t} is outside [−2^16, 2^16]`;
  }
  return null;
}

/**
 * Version 1 (no checksum, codes as int8/16/32): header of 9 u32 (magic, version 1, n, outputs, code
 * width 8/16/32, method, rotation, seed, flags), f32 column scales, f32 row scales (flag bit 0), codes
 * output-major. Read with the same checks as version 2 except the checksum it does not have.
 */
function readVersion1(bytes: Uint8Array, view: DataView): WeightOnlyQuantized {
  check(bytes.length >= V1_HEADER_BYTES, () => `weight-only data too short: ${bytes.length} bytes, the version 1 header alone has ${V1_HEADER_BYTES}`);
  const u32 = (k: number): number => view.getUint32(4 * k, true);
  const n = u32(2);
  const outputs = u32(3);
  const width = u32(4);
  const flags = u32(8);
  check(n > 0 && outputs > 0, () => `weight-only data: n = ${n} and outputs = ${outputs} must be positive`);
  check(width === 8 || width === 16 || width === 32, () => `weight-only data: bad code width ${width} (version 1 has 8, 16 or 32)`);
  check((flags & ~FLAG_ROW_SCALES) === 0, () => `weight-only data: unknown flags 0x${flags.toString(16)}`);
  const hasRowScales = (flags & FLAG_ROW_SCALES) !== 0;
  const expected = V1_HEADER_BYTES + 4 * n + (hasRowScales ? 4 * outputs : 0) + (width / 8) * n * outputs;
  check(bytes.length === expected, () => `weight-only data has ${bytes.length} bytes, its version 1 header implies ${expected}`);
  const { method, rotation } = headerKinds(u32(5), u32(6), n, outputs, 1);
  let offset = V1_HEADER_BYTES;
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
  return new WeightOnlyQuantized({ method, n, outputs, codes, columnScales, rowScales, rotation, seed: u32(7) });
}
