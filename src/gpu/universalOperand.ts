import { check, describeValue } from '../errors.js';
import { checkQuantizedMatrix } from '../quantize/checkQuantized.js';
import { forEachEscapedBlock, universalBlockBound } from '../format/container.js';
import { streamWords } from '../format/bitFields.js';
import { E8_POINT_LIMIT } from '../quantize/e8Points.js';
import {
  escapesFromGpu,
  gpuEscapes,
  packEscapeBits,
  packUniversalCodes,
  unpackUniversalCodes,
  universalWordsPerColumn,
  type UniversalGpuEscapes,
} from '../format/universalLayout.js';
import { latticeSpec, universalCodec, type UniversalCodec } from '../quantize/latticeSpec.js';
import type { UniversalLatticeMatrix } from '../quantize/quantizedMatrix.js';
import { universalRatesOf } from '../quantize/rates.js';
import type { UniversalLatticeScheme } from '../quantize/schemes.js';
import { checkDitherKeys, nonceWords, UniversalPointReader, universalDitherUnit, type DitherKeyCount, type UniversalPointStreams } from '../quantize/universalCode.js';
import { checkBufferSize, codeBufferByteLength, createBufferWithData, readBuffer, STORAGE_USAGE } from './buffers.js';
import { withValidation } from './errorScopes.js';
import { checkGpuColumnScale, columnNormBound, latticeMatrixFields, ORDINARY_DECODE_RATIO } from './latticeOperand.js';

/**
 * A universal lattice matrix in GPU buffers: what the universal decoding kernels (dequantize, GEMV,
 * products) read. The metadata means what it means on `UniversalLatticeMatrix`; the buffers hold the
 * GPU form of src/format/universalLayout.ts, from byte 0:
 *
 * - `codes`: per-column streams of `codeBits`-bit codes (each column on a fresh u32);
 * - `escapeBits`: per-column streams of 1 bit per block;
 * - `escapeStarts`: u32 per escape-bit word, the escape slot of its first escape;
 * - `escapeIds`: 8 bits per escape (1 + root index, or 0 for a non-root escape), 4 per u32;
 * - `escapeTable`: the lattice's roots (rootCount × d i32), then the non-root escapes as records of
 *   1 + d i32 (global block index j·blocksPerColumn + b, then μ), sorted by block index;
 * - `side`: the column norms (cols f32), then the column means when centred (cols f32).
 */
export interface GpuUniversalMatrix {
  readonly kind: 'lattice';
  readonly mode: 'universal';
  readonly rows: number;
  readonly cols: number;
  readonly length: number;
  readonly keptLength: number;
  readonly seed: number;
  readonly rotate: boolean;
  readonly scheme: UniversalLatticeScheme;
  readonly nonce: bigint;
  /** The column keys E8's dither hashes (`UniversalLatticeMatrix.ditherKeys`). */
  readonly ditherKeys: DitherKeyCount;
  readonly blocksPerColumn: number;
  readonly escapeCount: number;
  readonly nonRootCount: number;
  readonly hasMeans: boolean;
  /**
   * max_j ν_j times a bound on its column's decode (+ |μ_j|·√n when centred): for a matrix the GPU
   * quantized from data, the ordinary codes' (`ordinaryUniversalDecodeRatio`); for an upload, any codes'
   * (`universalColumnBounds`). Products are refused when two such bounds multiply past 2^126.
   */
  readonly maxColumnNorm: number;
  /**
   * max_j of a bound on ‖ŵ_j‖/ν_j, at least ORDINARY_DECODE_RATIO: for an upload one that holds for any
   * codes the matrix may hold (`universalColumnBounds`), for a matrix the GPU quantized from data its
   * ordinary codes' (`ordinaryUniversalDecodeRatio`). `gemvInputNormLimit` divides by it.
   */
  readonly decodeNormRatio?: number;
  /**
   * For a matrix uploaded from the host (`uploadUniversalMatrix`, `uploadContainerEntry`), which had
   * its codes there: the first block whose lattice point λ has a coordinate beyond the E8 point form's
   * int8 range (`e8PointOverflowOnHost`), or null when every point fits (and for D3). Undefined where
   * the host never had the codes (a matrix the GPU quantized): then only the repack on the GPU finds
   * it (`GpuE8PointMatrix.check`). `QuantizedLinear.create` refuses `int8Inputs` on a matrix with one.
   */
  readonly e8PointOverflow?: {
    readonly column: number;
    readonly block: number;
    /** The first coordinate of λ (point coordinates) beyond ±127. */
    readonly coordinate: number;
    /** The matrix, where its upload was told (a container entry's name). */
    readonly matrix?: string | undefined;
  } | null | undefined;
  readonly codes: GPUBuffer;
  readonly escapeBits: GPUBuffer;
  readonly escapeStarts: GPUBuffer;
  readonly escapeIds: GPUBuffer;
  readonly escapeTable: GPUBuffer;
  readonly side: GPUBuffer;
}

/** The word counts of the buffers of a universal operand. */
export interface UniversalOperandLayout {
  readonly codec: UniversalCodec;
  /** u32 words per column of the codes and of the escape bits (= escape starts per column). */
  readonly codeWords: number;
  readonly bitWords: number;
  /** i32 words of the roots at the start of the escape table, and of one non-root record. */
  readonly rootWords: number;
  readonly recordWords: number;
}

export function universalOperandLayout(m: Pick<GpuUniversalMatrix, 'scheme' | 'blocksPerColumn'>): UniversalOperandLayout {
  const codec = universalCodec(m.scheme.lattice, m.scheme.q, m.scheme.beta);
  const words = universalWordsPerColumn(codec, m.blocksPerColumn);
  const d = codec.spec.dimension;
  return { codec, codeWords: words.codes, bitWords: words.escapeBits, rootWords: codec.spec.escapes.rootCount * d, recordWords: 1 + d };
}

/**
 * Checks that `m` is something the universal kernels can read: consistent sizes and buffers large
 * enough for what its metadata declares.
 */
export function checkGpuUniversalMatrix(m: GpuUniversalMatrix, name: string): UniversalOperandLayout {
  check(typeof m === 'object' && m !== null && m.kind === 'lattice' && m.mode === 'universal', () => `${name} must be a universal GPU lattice matrix`);
  for (const field of ['rows', 'cols', 'length', 'keptLength', 'blocksPerColumn'] as const) {
    check(Number.isInteger(m[field]) && m[field] > 0, () => `${name}.${field} must be a positive integer, got ${describeValue(m[field])}`);
  }
  for (const field of ['escapeCount', 'nonRootCount'] as const) {
    check(Number.isInteger(m[field]) && m[field] >= 0, () => `${name}.${field} must be a non-negative integer, got ${describeValue(m[field])}`);
  }
  const layout = universalOperandLayout(m);
  const d = layout.codec.spec.dimension;
  check(m.keptLength <= m.length, () => `${name}.keptLength (${m.keptLength}) exceeds length (${m.length})`);
  check(m.blocksPerColumn === Math.ceil(m.keptLength / d), () => `${name}.blocksPerColumn is ${m.blocksPerColumn}, expected ceil(keptLength / ${d})`);
  const holds = (buffer: GPUBuffer, bytes: number, what: string): void => {
    check(typeof buffer === 'object' && buffer !== null && typeof buffer.size === 'number', () => `${name}.${what} must be a GPUBuffer`);
    check(buffer.size >= bytes, () => `${name}.${what} needs ${bytes} bytes, but its buffer has ${buffer.size}`);
  };
  holds(m.codes, 4 * layout.codeWords * m.cols, 'codes');
  holds(m.escapeBits, 4 * layout.bitWords * m.cols, 'escapeBits');
  holds(m.escapeStarts, 4 * layout.bitWords * m.cols, 'escapeStarts');
  holds(m.escapeIds, 4 * Math.max(1, streamWords(m.escapeCount, 8)), 'escapeIds');
  holds(m.escapeTable, 4 * (layout.rootWords + layout.recordWords * m.nonRootCount), 'escapeTable');
  holds(m.side, 4 * m.cols * (m.hasMeans ? 2 : 1), 'side');
  return layout;
}

/** A universal matrix on the GPU that owns its buffers: `read()` brings it back, `destroy()` frees it. */
export class GpuUniversalQuantizedMatrix implements GpuUniversalMatrix {
  readonly kind = 'lattice' as const;
  readonly mode = 'universal' as const;
  private destroyed = false;

  /** Whether `destroy()` was called: its buffers can no longer be recorded or read. */
  get isDestroyed(): boolean {
    return this.destroyed;
  }

  constructor(
    readonly device: GPUDevice,
    readonly metadata: Omit<GpuUniversalMatrix, 'kind' | 'mode' | 'codes' | 'escapeBits' | 'escapeStarts' | 'escapeIds' | 'escapeTable' | 'side'>,
    readonly codes: GPUBuffer,
    readonly escapeBits: GPUBuffer,
    readonly escapeStarts: GPUBuffer,
    readonly escapeIds: GPUBuffer,
    readonly escapeTable: GPUBuffer,
    readonly side: GPUBuffer,
  ) {}

  get rows(): number {
    return this.metadata.rows;
  }
  get cols(): number {
    return this.metadata.cols;
  }
  get length(): number {
    return this.metadata.length;
  }
  get keptLength(): number {
    return this.metadata.keptLength;
  }
  get seed(): number {
    return this.metadata.seed;
  }
  get rotate(): boolean {
    return this.metadata.rotate;
  }
  get scheme(): UniversalLatticeScheme {
    return this.metadata.scheme;
  }
  get nonce(): bigint {
    return this.metadata.nonce;
  }
  get ditherKeys(): DitherKeyCount {
    return this.metadata.ditherKeys;
  }
  get blocksPerColumn(): number {
    return this.metadata.blocksPerColumn;
  }
  get escapeCount(): number {
    return this.metadata.escapeCount;
  }
  get nonRootCount(): number {
    return this.metadata.nonRootCount;
  }
  get hasMeans(): boolean {
    return this.metadata.hasMeans;
  }
  get maxColumnNorm(): number {
    return this.metadata.maxColumnNorm;
  }
  get decodeNormRatio(): number {
    return this.metadata.decodeNormRatio ?? ORDINARY_DECODE_RATIO;
  }
  get e8PointOverflow(): GpuUniversalMatrix['e8PointOverflow'] {
    return this.metadata.e8PointOverflow;
  }

  /**
   * Reads the buffers back into the object the CPU `quantize()` returns: the same codes, escapes,
   * norms and means, bit for bit.
   *
   * @example
   * const q = await gpuMatrix.read();
   * const c = matmulAT(q, quantize(b, { scheme: q.scheme, seed: q.seed })); // decodes on the CPU
   */
  async read(): Promise<UniversalLatticeMatrix> {
    check(!this.destroyed, 'GpuUniversalQuantizedMatrix.read: the matrix was destroyed');
    const layout = checkGpuUniversalMatrix(this, 'matrix');
    const { device, cols, blocksPerColumn } = this;
    const d = layout.codec.spec.dimension;
    const [codeWords, bitWords, idWords, table, side] = await withValidation(device, 'GpuUniversalQuantizedMatrix.read', () =>
      Promise.all([
        readBuffer(device, this.codes, 4 * layout.codeWords * cols),
        readBuffer(device, this.escapeBits, 4 * layout.bitWords * cols),
        readBuffer(device, this.escapeIds, 4 * Math.max(1, streamWords(this.escapeCount, 8))),
        readBuffer(device, this.escapeTable, 4 * (layout.rootWords + layout.recordWords * this.nonRootCount)),
        readBuffer(device, this.side, 4 * cols * (this.hasMeans ? 2 : 1)),
      ]),
    );
    const codes = unpackUniversalCodes(new Uint32Array(codeWords), layout.codec, blocksPerColumn, cols);
    const nonRoots = new Int32Array(table, 4 * layout.rootWords, layout.recordWords * this.nonRootCount);
    const escapeBits = new Uint32Array(bitWords);
    const escapes = escapesFromGpu(layout.codec, codes, escapeBits, new Uint32Array(idWords), nonRoots, blocksPerColumn, cols);
    const norms = new Float32Array(side, 0, cols).slice();
    const means = this.hasMeans ? new Float32Array(side, 4 * cols, cols).slice() : null;
    const rates = universalRatesOf(layout.codec, this.rows, cols, blocksPerColumn, escapes.escapes, escapes.longEscapes, escapes.hugeEscapes.length / d, means !== null);
    return {
      kind: 'lattice',
      mode: 'universal',
      scheme: this.scheme,
      rows: this.rows,
      cols,
      length: this.length,
      keptLength: this.keptLength,
      seed: this.seed,
      rotate: this.rotate,
      nonce: this.nonce,
      ditherKeys: this.ditherKeys,
      means,
      norms,
      blocksPerColumn,
      ...codes,
      ...escapes,
      ...rates,
    };
  }

  /** Frees the GPU buffers (idempotent). */
  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    for (const [, buffer] of latticeMatrixFields(this)) buffer?.destroy();
  }
}

/** The escape table (roots, then the non-root records) of a codec with the given records. */
export function escapeTableWords(codec: UniversalCodec, nonRoots: Int32Array): Int32Array {
  const roots = codec.spec.escapes.roots;
  const table = new Int32Array(roots.length + nonRoots.length);
  table.set(roots);
  table.set(nonRoots, roots.length);
  return table;
}

/**
 * Puts a CPU-quantized universal matrix on the GPU in the GPU form (escape ranks resolved to root ids
 * on the CPU; the codes and escape bits are the stored words as they are).
 *
 * @example
 * const gpuW = uploadUniversalMatrix(device, quantize(w, { scheme: 'e8-q16', seed: 7 }));
 */
export function uploadUniversalMatrix(device: GPUDevice, q: UniversalLatticeMatrix): GpuUniversalQuantizedMatrix {
  // Packing trusts the per-block arrays (a codes array one short packed its last code as 0, silently).
  checkQuantizedMatrix(q, 'uploadUniversalMatrix q');
  check(q.kind === 'lattice' && q.mode === 'universal', 'uploadUniversalMatrix needs a universal lattice matrix');
  return uploadCheckedUniversalMatrix(device, q);
}

/**
 * {@link uploadUniversalMatrix} of a matrix `checkQuantizedMatrix` has already accepted (`uploadLatticeMatrix`
 * checks before it dispatches on the mode).
 */
export function uploadCheckedUniversalMatrix(device: GPUDevice, q: UniversalLatticeMatrix): GpuUniversalQuantizedMatrix {
  // The codes buffer is the largest: refuse it before packing (minutes of CPU time for an LLM's lm_head).
  const codeBytes = codeBufferByteLength(4 * universalWordsPerColumn(universalCodec(q.scheme.lattice, q.scheme.q, q.scheme.beta), q.blocksPerColumn).codes * q.cols);
  checkBufferSize(device, `upload: the codes of this ${q.rows} × ${q.cols} matrix`, codeBytes);
  checkWholeBinding(device, 'norms and means', 4 * q.cols * (q.means === null ? 1 : 2), q.cols);
  return uploadUniversalWords(device, q, { codes: packUniversalCodes(q), escapeBits: packEscapeBits(q) }, gpuEscapes(q));
}

/**
 * Refuses a universal matrix whose `what` (a buffer every universal kernel binds whole: the norms and
 * means, the escape ids, the escape table) would exceed one storage binding, before anything is
 * packed or created; it could not be used (the kernels' bind groups would be refused). Only a matrix
 * of millions of columns gets there (2^24 centred columns at 128 MiB).
 */
function checkWholeBinding(device: GPUDevice, what: string, bytes: number, cols: number): void {
  const limit = device.limits.maxStorageBufferBindingSize;
  check(
    bytes <= limit,
    () =>
      `upload: the ${what} of this matrix's ${cols} columns (${bytes} bytes) exceed one storage binding (maxStorageBufferBindingSize = ${limit}), ` +
      `which the universal kernels bind whole; split it into matrices of at most ${Math.max(1, Math.floor((cols * limit) / bytes))} columns`,
  );
}

/** The metadata of a universal matrix that its GPU form carries besides the buffers. */
export type UniversalOperandMetadata = Pick<
  UniversalLatticeMatrix,
  'rows' | 'cols' | 'length' | 'keptLength' | 'seed' | 'rotate' | 'scheme' | 'nonce' | 'ditherKeys' | 'blocksPerColumn' | 'norms' | 'means' | 'codes' | 'codesHigh' | 'escapes' | 'longEscapes' | 'hugeEscapes'
>;

/**
 * Creates the GPU buffers of a universal matrix from words that are already in the GPU layout: the
 * stored form's code and escape-bit words (uploaded as they are) and the escape part of the GPU form
 * (`gpuEscapes` of a matrix, or `gpuEscapesFromStored` of a file's stored words). Shared by
 * `uploadUniversalMatrix` and the quantized container's upload (src/gpu/containerUpload.ts).
 *
 * @example
 * const stored = packUniversalStored(m);
 * const gpu = uploadUniversalWords(device, m, stored, gpuEscapesFromStored(codecOf(m), stored, m.blocksPerColumn, m.cols));
 */
export function uploadUniversalWords(
  device: GPUDevice,
  m: UniversalOperandMetadata,
  words: { readonly codes: Uint32Array; readonly escapeBits: Uint32Array },
  escapes: UniversalGpuEscapes,
  name?: string,
): GpuUniversalQuantizedMatrix {
  const codec = universalCodec(m.scheme.lattice, m.scheme.q, m.scheme.beta);
  const layout = universalWordsPerColumn(codec, m.blocksPerColumn);
  check(words.codes.length === layout.codes * m.cols, () => `universal upload: ${words.codes.length} code words, expected ${layout.codes * m.cols}`);
  check(words.escapeBits.length === layout.escapeBits * m.cols, () => `universal upload: ${words.escapeBits.length} escape-bit words, expected ${layout.escapeBits * m.cols}`);
  check(m.norms.length === m.cols && (m.means === null || m.means.length === m.cols), () => `universal upload: expected ${m.cols} norms (and means)`);
  checkUniversalColumnScales(m);
  checkDitherKeys(m.ditherKeys, 'universal upload: ditherKeys');
  const side = new Float32Array(m.cols * (m.means ? 2 : 1));
  side.set(m.norms);
  if (m.means) side.set(m.means, m.cols);
  const table = escapeTableWords(codec, escapes.nonRoots);
  for (const [what, data] of [['norms and means', side], ['escape ids', escapes.escapeIds], ['escape table', table]] as const) {
    checkWholeBinding(device, what, data.byteLength, m.cols);
  }
  const label = `universal ${m.scheme.lattice} q=${m.scheme.q} (${m.cols} columns)`;
  const make = (what: string, data: ArrayBufferView, byteLength = data.byteLength): GPUBuffer => createBufferWithData(device, `${label} ${what}`, data, STORAGE_USAGE, byteLength);
  const buffers: GPUBuffer[] = [];
  try {
    // Codes in whole 16-byte quads (codeBufferByteLength), the rest as sized.
    buffers.push(make('codes', words.codes, codeBufferByteLength(words.codes.byteLength)));
    for (const [what, data] of [
      ['escape bits', words.escapeBits],
      ['escape starts', escapes.escapeStarts],
      ['escape ids', escapes.escapeIds],
      ['escape table', table],
      ['norms and means', side],
    ] as const) {
      buffers.push(make(what, data));
    }
  } catch (error) {
    for (const buffer of buffers) buffer.destroy();
    throw error;
  }
  const [codes, escapeBits, escapeStarts, escapeIds, escapeTable, sideBuffer] = buffers as [GPUBuffer, GPUBuffer, GPUBuffer, GPUBuffer, GPUBuffer, GPUBuffer];
  return new GpuUniversalQuantizedMatrix(
    device,
    {
      rows: m.rows,
      cols: m.cols,
      length: m.length,
      keptLength: m.keptLength,
      seed: m.seed,
      rotate: m.rotate,
      scheme: m.scheme,
      nonce: m.nonce,
      ditherKeys: m.ditherKeys,
      blocksPerColumn: m.blocksPerColumn,
      escapeCount: escapes.escapeCount,
      nonRootCount: escapes.nonRootCount,
      hasMeans: m.means !== null,
      ...universalColumnBounds(m),
      e8PointOverflow: e8PointOverflowOnHost(m, name),
    },
    codes,
    escapeBits,
    escapeStarts,
    escapeIds,
    escapeTable,
    sideBuffer,
  );
}

/** A block whose lattice point λ does not fit the E8 point form's int8 (`e8PointOverflowOnHost`). */
export type E8PointOverflow = NonNullable<GpuUniversalMatrix['e8PointOverflow']>;

/**
 * The first block of a universal E8 matrix whose lattice point λ has a coordinate beyond the int8
 * points' ±127 (what `e8PointForm` refuses and the GPU repack marks), or null (always null for D3).
 * Decodes only the blocks a bound cannot clear: λ = L + q·μ with ‖L‖ ≤ q·s·R (R = 1, the covering
 * radius; s = 2, the point scale), so a block fits when q·s·R + q·max|μ_v| ≤ 127 — every unescaped
 * block for q ≤ 31, every root escape (max|μ_v| = 2) for q ≤ 31, so at the presets (q ≤ 24) only the
 * extended table's far rows and explicit escapes are decoded, one pass over the escape symbols as
 * `universalColumnBounds`. (The bound only picks what to decode; were it ever too tight, the repack
 * on the GPU still marks the point and the GEMVs write NaN.)
 */
export function e8PointOverflowOnHost(m: UniversalPointStreams, matrix?: string): E8PointOverflow | null {
  if (m.scheme.lattice !== 'E8') return null;
  const reader = new UniversalPointReader(m);
  const { blocks } = reader;
  const { spec } = blocks;
  const { q } = m.scheme;
  const leaderBound = q * spec.pointScale * spec.coveringRadius;
  const fits = (muMax: number): boolean => leaderBound + q * muMax <= E8_POINT_LIMIT;
  // Unescaped blocks are cleared by the bound alone (q ≤ 31): then only the escaped ones are visited.
  const escapedOnly = fits(0);
  while (escapedOnly ? blocks.nextEscaped() : blocks.next()) {
    if (fits(blocks.escapeLargest())) continue;
    const point = reader.point();
    for (let v = 0; v < spec.dimension; v++) {
      const coordinate = point[v] as number;
      if (Math.abs(coordinate) > E8_POINT_LIMIT) return { column: blocks.column, block: blocks.block, coordinate, ...(matrix === undefined ? {} : { matrix }) };
    }
  }
  return null;
}

// β/(DITHER_GRID·√N): what the universal kernels multiply ν_j by in f32 to turn a column's sums in the
// dither grid's units into entries (the GEMVs' `unit`, dequantize's `dither_unit`); one definition with
// the CPU decode's.
export { universalDitherUnit };

/** β/(pointScale·√N): dequantize's `point_unit`, the same for the lattice point λ itself. */
export function universalPointUnit(m: Pick<GpuUniversalMatrix, 'scheme' | 'length'>): number {
  return m.scheme.beta / (latticeSpec(m.scheme.lattice).pointScale * Math.sqrt(m.length));
}

/**
 * Refuses a universal matrix whose column scale the GPU forms outside f32's normal range
 * (`checkGpuColumnScale`): ν_j times `universalDitherUnit` (the GEMVs, shaders/universal_gemv_finish.wgsl,
 * universal_gemv_finished.wgsl, universal_gemv_i8.wgsl; dequantize) and `universalPointUnit`
 * (dequantize). Shared by every universal upload (`uploadUniversalWords`).
 */
function checkUniversalColumnScales(m: Pick<UniversalOperandMetadata, 'scheme' | 'length' | 'norms'>): void {
  const units = [universalDitherUnit(m), universalPointUnit(m)];
  for (let j = 0; j < m.norms.length; j++) {
    for (const unit of units) checkGpuColumnScale(j, 'ν·unit', (m.norms[j] as number) * unit, (m.norms[j] as number) !== 0);
  }
}

/**
 * The column bounds of a universal matrix's GPU form, computed once on upload from its escape
 * streams: O(escapes) plus one pass over the per-block escape symbols.
 *
 * - `decodeNormRatio`, for the GEMV's input limit (`gemvInputNormLimit`), bounds ‖ŵ_j‖/ν_j for any
 *   codes the container reader and `checkQuantizedMatrix` accept: each block's entries are
 *   (ν_j/√N)·β·(λ/s − Z/256), whose norm is at most (ν_j·β/√N)·c_b in λ units, c_b =
 *   `universalBlockBound(q, ‖μ_b‖)` (the leader radius, the escape μ_b, the dither), so
 *   ‖ŵ_j‖/ν_j ≤ (β/√N)·√(Σ_b c_b²). Ordinary codes decode within 2ν_j, but codes chosen to (every
 *   block a far leader or a table escape) reach 6 and more: with the factor 2 alone, such a
 *   container made the GEMV's code-unit sums overflow for x within the limit. The bound is ≈ 3–4 for
 *   every matrix (its unescaped blocks count at the leader radius), about 1–2 bits off the limit,
 *   which stays beyond 2^110.
 * - `maxColumnNorm`, for the product range, is max_j of ν_j times that column's bound (+ |μ_j|·√n
 *   when centred): the CPU refuses a product by the decoded norms, and the GPU, which cannot decode
 *   on the host, by this bound, so that no accepted product can leave f32 (with ν_j alone, the
 *   table-escape container above returned entries of 3.2e38 where the CPU refused, and Infinity
 *   beyond). An explicit μ (coordinates up to ±2^16) can make a column decode far beyond ν_j (the
 *   reader allows 2^110).
 */
export function universalColumnBounds(
  m: Pick<UniversalOperandMetadata, 'scheme' | 'length' | 'rows' | 'cols' | 'blocksPerColumn' | 'norms' | 'means' | 'escapes' | 'longEscapes' | 'hugeEscapes'>,
): { readonly maxColumnNorm: number; readonly decodeNormRatio: number } {
  const unescaped = universalBlockBound(m.scheme.q, 0) ** 2;
  // Σ_b c_b² per column, starting from every block unescaped.
  const blockSquares = new Float64Array(m.cols).fill(m.blocksPerColumn * unescaped);
  forEachEscapedBlock(m.scheme.lattice, m, (j, escapeNorm) => {
    blockSquares[j] = (blockSquares[j] as number) + universalBlockBound(m.scheme.q, escapeNorm) ** 2 - unescaped;
  });
  const perNorm = m.scheme.beta / Math.sqrt(m.length);
  const ratios = blockSquares.map((sum) => perNorm * Math.sqrt(sum));
  let largestRatio = 0;
  for (const ratio of ratios) largestRatio = Math.max(largestRatio, ratio);
  return {
    maxColumnNorm: columnNormBound(m.norms, m.means, m.rows, ratios),
    decodeNormRatio: Math.max(ORDINARY_DECODE_RATIO, largestRatio),
  };
}

/**
 * A bound on ‖ŵ_j‖/ν_j for the ordinary codes of a matrix quantized from data (by `GpuEngine.quantize`):
 * each block decodes to its input plus an error of at most β·R (R the lattice's covering radius, in the
 * block's λ units, which are ν_j·β/√N of the column), so ‖ŵ_j‖ ≤ ν_j·(1 + β·R·√(blocks/N)). From 1.05 (e8-5bit) to 1.45
 * for the presets, under ORDINARY_DECODE_RATIO; ≈ 38 for D3 at β = 64, where a product bounded by ν_j
 * alone returned ±Infinity that the CPU (which decodes) refused.
 */
export function ordinaryUniversalDecodeRatio(scheme: UniversalLatticeScheme, blocksPerColumn: number, length: number): number {
  return 1 + scheme.beta * latticeSpec(scheme.lattice).coveringRadius * Math.sqrt(blocksPerColumn / length);
}

/** The two u32 halves of a matrix's nonce, for the kernels' uniforms. */
export function operandNonce(m: Pick<GpuUniversalMatrix, 'nonce'>): { readonly lo: number; readonly hi: number } {
  return nonceWords(m.nonce);
}
