import { resolveScheme, type DeterministicLatticeScheme, type Scheme } from '../quantize/schemes.js';
import { throwIfDeviceLost } from './errorScopes.js';
import { check, describeValue, checkLabel, LatticeMatmulError } from '../errors.js';
import { LEADER_RADIUS } from '../format/container.js';
import { packedLayout } from '../format/packing.js';
import { VoronoiCode } from '../lattices/voronoiCode.js';
import { schemeLattice } from '../quantize/quantize.js';
import { differentRotatedLengths } from '../product/operands.js';
import type { DeterministicLatticeMatrix } from '../quantize/quantizedMatrix.js';
import { F32_MAX, F32_MIN_NORMAL } from '../scalar/floatFormats.js';
import { BufferUsage } from './buffers.js';
import { checkBufferRange } from './bufferRange.js';
import type { GpuUniversalMatrix } from './universalOperand.js';
import type { GpuScratch } from './scratch.js';
import { bindingCap, bindingWindow, type BindingWindow, itemsPerBinding } from './workSplit.js';

/**
 * A deterministic lattice-quantized matrix whose per-block and per-column fields live in GPU buffers:
 * what the deterministic decoding kernels (table product, E8 product, GEMV, dequantize) read. The metadata has the meaning
 * of the same fields of `LatticeQuantizedMatrix`; the buffers hold, from byte 0:
 *
 * - `codes`: `packField(codes, codeBits, blocksPerColumn, cols).words` (src/format/packing.ts: each
 *   column starts on a fresh u32 word; D3 q = 6: 8 bits, 4 per word; E8 q = 16: one code per word);
 * - `scaleIndices`: `packField(scaleIndices, scaleIndexBits, blocksPerColumn, cols).words`;
 * - `norms`, `gains` (or null), `means` (or null): one f32 per column.
 *
 * Buffers need STORAGE and COPY_SRC usage (the kernels gather the per-column fields into one
 * scratch buffer with copies, to stay within 8 storage bindings per shader stage).
 */
export interface GpuDeterministicMatrix {
  readonly kind: 'lattice';
  readonly mode: 'deterministic';
  readonly rows: number;
  readonly cols: number;
  readonly length: number;
  readonly keptLength: number;
  readonly seed: number;
  readonly rotate: boolean;
  readonly scheme: DeterministicLatticeScheme;
  readonly unit: number;
  readonly multiples: Int32Array;
  readonly blocksPerColumn: number;
  /** Bits of one packed code, ⌈log2(q^d)⌉ (`VoronoiCode.codeBits`; D3 q = 6: 8, E8 q = 16: 32). */
  readonly codeBits: number;
  /** Bits of one packed scale index (see {@link scaleIndexBits}). */
  readonly scaleIndexBits: number;
  /**
   * max_j ν_j·|γ_j|·ratio (+ |μ_j|·√n when centred), a bound on the decoded columns' norms, with ratio
   * ORDINARY_DECODE_RATIO for a matrix the GPU quantized from data and `decodeNormRatio` for an upload
   * (which may hold any codes): products are refused when two such bounds multiply past 2^126.
   */
  readonly maxColumnNorm: number;
  /**
   * A bound on ‖ŵ_j‖/(ν_j·|γ_j|) that holds for any codes and scale indices (set on upload,
   * `deterministicDecodeRatio`); absent for a matrix the GPU quantized from data, whose ordinary codes
   * decode within ORDINARY_DECODE_RATIO. `gemvInputNormLimit` divides by it.
   */
  readonly decodeNormRatio?: number;
  readonly codes: GPUBuffer;
  readonly scaleIndices: GPUBuffer;
  readonly norms: GPUBuffer;
  readonly gains: GPUBuffer | null;
  readonly means: GPUBuffer | null;
}

/** The kernels read at most this many scale multiples (a uniform array of 16 i32). */
export const MAX_GPU_MULTIPLES = 16;

/** The lattice id the WGSL decoders use (shaders/lattice_decode.wgsl: LATTICE_D3, LATTICE_E8, LATTICE_Z8). */
export function latticeId(scheme: DeterministicLatticeScheme): number {
  switch (scheme.lattice) {
    case 'D3':
      return 0;
    case 'E8':
      return 1;
    case 'Z':
      return 2;
  }
}

/** Bits of a packed code of `scheme`: ceil(log2(q^d)) (D3 q = 6: 8; E8 q = 16: 32). */
export function latticeCodeBits(scheme: DeterministicLatticeScheme): number {
  return new VoronoiCode(schemeLattice(scheme), scheme.q).codeBits;
}

/** Bits of a packed scale index for `count` multiples: ceil(log2(count)), at least 1 (4 multiples: 2 bits, 16 per word). */
export function scaleIndexBits(count: number): number {
  return Math.max(1, Math.ceil(Math.log2(count)));
}

/** Bits of a packed scale index of `scheme`: one of its ladder steps or betas (d3-q6-deterministic: 4 steps, 2 bits). */
export function schemeScaleIndexBits(scheme: DeterministicLatticeScheme): number {
  return scaleIndexBits(scheme.overload.kind === 'ladder' ? scheme.overload.steps : scheme.overload.betas.length);
}

/** Packed words per column of the codes and of the scale indices. */
export function operandWordsPerColumn(m: GpuDeterministicMatrix): { codes: number; scaleIndices: number } {
  return {
    codes: packedLayout(m.codeBits, m.blocksPerColumn).wordsPerColumn,
    scaleIndices: packedLayout(m.scaleIndexBits, m.blocksPerColumn).wordsPerColumn,
  };
}

/**
 * Checks that `m` is something the decoding kernels can read: a supported scheme whose codes fit a
 * u32, at most 16 multiples, consistent block counts, and buffers large enough for the packed fields.
 */
export function checkGpuDeterministicMatrix(m: GpuDeterministicMatrix, name: string): void {
  check(typeof m === 'object' && m !== null, `${name} must be a GpuDeterministicMatrix`);
  check(m.scheme?.kind === 'lattice' && m.scheme.mode === 'deterministic', () => `${name} must hold a deterministic lattice scheme`);
  for (const field of ['rows', 'cols', 'length', 'keptLength', 'blocksPerColumn'] as const) {
    check(Number.isInteger(m[field]) && m[field] > 0, () => `${name}.${field} must be a positive integer, got ${describeValue(m[field])}`);
  }
  const lattice = schemeLattice(m.scheme);
  check(m.keptLength <= m.length, () => `${name}.keptLength (${m.keptLength}) exceeds length (${m.length})`);
  check(
    m.blocksPerColumn === Math.ceil(m.keptLength / lattice.dimension),
    () => `${name}.blocksPerColumn is ${m.blocksPerColumn}, expected ceil(keptLength / ${lattice.dimension}) = ${Math.ceil(m.keptLength / lattice.dimension)}`,
  );
  check(
    m.codeBits === latticeCodeBits(m.scheme),
    () => `${name}.codeBits is ${m.codeBits}, but ${m.scheme.lattice} q = ${m.scheme.q} codes take ${latticeCodeBits(m.scheme)} bits`,
  );
  check(
    m.multiples instanceof Int32Array && m.multiples.length >= 1 && m.multiples.length <= MAX_GPU_MULTIPLES,
    () => `${name}.multiples must be an Int32Array of 1…${MAX_GPU_MULTIPLES} scale multiples`,
  );
  check(
    Number.isInteger(m.scaleIndexBits) && m.scaleIndexBits >= 1 && 2 ** m.scaleIndexBits >= m.multiples.length && m.scaleIndexBits <= 8,
    () => `${name}.scaleIndexBits is ${m.scaleIndexBits}; ${m.multiples.length} multiples need 1…8 bits covering them`,
  );
  check(Number.isFinite(m.unit) && m.unit > 0, () => `${name}.unit must be positive, got ${describeValue(m.unit)}`);
  const words = operandWordsPerColumn(m);
  checkBufferHolds(m.codes, 4 * words.codes * m.cols, `${name}.codes`);
  checkBufferHolds(m.scaleIndices, 4 * words.scaleIndices * m.cols, `${name}.scaleIndices`);
  checkBufferHolds(m.norms, 4 * m.cols, `${name}.norms`);
  if (m.gains) checkBufferHolds(m.gains, 4 * m.cols, `${name}.gains`);
  if (m.means) checkBufferHolds(m.means, 4 * m.cols, `${name}.means`);
}

/** Refuses `buffer` unless it is a GPUBuffer of at least `byteLength` bytes, naming it `name`. */
export function checkBufferHolds(buffer: GPUBuffer, byteLength: number, name: string): void {
  check(
    typeof buffer === 'object' && buffer !== null && typeof buffer.size === 'number',
    () => `${name} must be a GPUBuffer`,
  );
  check(buffer.size >= byteLength, () => `${name} needs ${byteLength} bytes, but its buffer has ${buffer.size}`);
}

/** Where the per-column fields of a range of columns sit in a side buffer made by {@link gatherColumnSide}. */
export interface ColumnSide {
  /** f32 words: norms of the range at 0, gains at `count` (when kept), means at `2·count` (when kept). */
  readonly buffer: GPUBuffer;
  readonly hasGains: boolean;
  readonly hasMeans: boolean;
}

/** Bytes per column of a side buffer made by {@link gatherColumnSide}: norm, gain and mean, one f32 each. */
const GATHERED_SIDE_BYTES = 12;

/**
 * Copies norms, gains and means of columns `[first, first + count)` of `m` into one scratch buffer
 * (norms, then gains, then means; 3·count f32), so a kernel reads them through one binding. Records
 * copies into `encoder`, which must not be inside a pass.
 */
export function gatherColumnSide(
  encoder: GPUCommandEncoder,
  scratch: GpuScratch,
  m: GpuDeterministicMatrix,
  first: number,
  count: number,
  label: string,
): ColumnSide {
  const buffer = scratch.buffer(`${label} column norms, gains, means`, GATHERED_SIDE_BYTES * count, BufferUsage.STORAGE | BufferUsage.COPY_DST);
  recordSideCopies(encoder, m, first, count, buffer);
  return { buffer, hasGains: m.gains !== null, hasMeans: m.means !== null };
}

/** Records the copies of norms, gains and means of columns `[first, first + count)` into `buffer` (at words 0, `count`, `2·count`). */
function recordSideCopies(encoder: GPUCommandEncoder, m: GpuDeterministicMatrix, first: number, count: number, buffer: GPUBuffer): void {
  encoder.copyBufferToBuffer(m.norms, 4 * first, buffer, 0, 4 * count);
  if (m.gains) encoder.copyBufferToBuffer(m.gains, 4 * first, buffer, 4 * count, 4 * count);
  if (m.means) encoder.copyBufferToBuffer(m.means, 4 * first, buffer, 8 * count, 4 * count);
}

/**
 * Norms, gains and means of every column of a deterministic matrix in one buffer (norms at word 0,
 * gains at `cols`, means at `2·cols`), gathered once: a GEMV that is recorded again and again
 * (`QuantizedLinear`) reads them through it instead of recording `gatherColumnSide`'s copies on every
 * call, so its prepared commands are dispatches only. Owns its buffer (`destroy()`); the matrix stays
 * the caller's.
 *
 * @example
 * const side = MatrixColumnSide.create(device, gpuW, 'layer 3 column side');
 * dispatchLatticeGemvI8(device, encoder, scratch, { w: gpuW, x, y, rhs: 1, dotPath: dotPathFor(engine.features), columnSide: side });
 */
export class MatrixColumnSide {
  private constructor(
    readonly matrix: GpuDeterministicMatrix,
    readonly buffer: GPUBuffer,
  ) {}

  /** Gathers `m`'s column fields on the GPU (one submitted copy per field). */
  static create(device: GPUDevice, m: GpuDeterministicMatrix, label: string): MatrixColumnSide {
    checkLabel(label, 'MatrixColumnSide.create');
    throwIfDeviceLost(device, 'MatrixColumnSide.create');
    checkGpuDeterministicMatrix(m, 'MatrixColumnSide: W');
    checkMatrixUsable(m, device, 'MatrixColumnSide: W', 'column side');
    const buffer = device.createBuffer({ label, size: 12 * m.cols, usage: BufferUsage.STORAGE | BufferUsage.COPY_DST });
    const encoder = device.createCommandEncoder({ label: `${label}: gather` });
    recordSideCopies(encoder, m, 0, m.cols, buffer);
    device.queue.submit([encoder.finish()]);
    return new MatrixColumnSide(m, buffer);
  }

  /** Frees `buffer` (the matrix it was gathered from is left as it is). */
  destroy(): void {
    this.buffer.destroy();
  }
}

/**
 * Where a GEMV dispatch over one range of W's columns reads their norms, gains and means: the buffer,
 * and in f32 words the range's first norm (`first`) and the distance from a norm to its gain and from
 * the gain to the mean (`stride`).
 */
export interface ColumnSideWindow {
  readonly buffer: GPUBuffer;
  readonly first: number;
  readonly stride: number;
  readonly hasGains: boolean;
  readonly hasMeans: boolean;
}

/**
 * The column side of each range of `m`'s columns: read from `whole` when given (made once for `m`),
 * else gathered now per range (`gatherColumnSide`: copies recorded into `encoder`, outside a pass).
 */
export function columnSideWindows(
  encoder: GPUCommandEncoder,
  scratch: GpuScratch,
  m: GpuDeterministicMatrix,
  ranges: readonly { readonly first: number; readonly count: number }[],
  label: string,
  whole: MatrixColumnSide | undefined,
): ColumnSideWindow[] {
  const fields = { hasGains: m.gains !== null, hasMeans: m.means !== null };
  if (whole !== undefined) {
    check(whole instanceof MatrixColumnSide && whole.matrix === m, () => `${label}: columnSide must be a MatrixColumnSide made for this W`);
    return ranges.map((r) => ({ buffer: whole.buffer, first: r.first, stride: m.cols, ...fields }));
  }
  return ranges.map((r) => ({ buffer: gatherColumnSide(encoder, scratch, m, r.first, r.count, `${label} W columns ${r.first}…`).buffer, first: 0, stride: r.count, ...fields }));
}

/** max |k| over the scale multiples of `m`. */
export function largestMultiple(m: Pick<GpuDeterministicMatrix, 'multiples'>): number {
  return Array.from(m.multiples).reduce((most, k) => Math.max(most, Math.abs(k)), 0);
}

const I32_MAX = 0x7fffffff;

/**
 * Blocks per exact i32 run of a product kernel: the most blocks (≤ `sliceBlocks`) whose terms, each
 * at most `largestTerm` = max k_a · max k_b · max |⟨P_a, P_b⟩| in magnitude, sum without i32 overflow.
 * Refuses scales so large that a single term could overflow (a scale range above ~480× the smallest).
 */
export function exactRunBlocks(largestTerm: number, sliceBlocks: number): number {
  check(
    largestTerm <= I32_MAX,
    () =>
      `the scale multiples are too large for the GPU's exact integer products (a single block product could reach ${largestTerm} > 2^31 − 1); ` +
      'use a scale ladder or β set spanning a smaller range',
  );
  return Math.max(1, Math.min(sliceBlocks, Math.floor(I32_MAX / largestTerm)));
}

/** The 16 multiples as i32 uniform words (zeros past the scheme's count). */
export function multipleWords(m: Pick<GpuDeterministicMatrix, 'multiples'>): number[] {
  return Array.from({ length: MAX_GPU_MULTIPLES }, (_, i) => (i < m.multiples.length ? (m.multiples[i] as number) : 0));
}

/** The metadata of a CPU quantized matrix with the packed bit widths, for building a {@link GpuDeterministicMatrix}. */
export function gpuLatticeMetadata(
  q: DeterministicLatticeMatrix,
): Omit<GpuDeterministicMatrix, 'kind' | 'mode' | 'codes' | 'scaleIndices' | 'norms' | 'gains' | 'means'> {
  // Every upload of a deterministic matrix (uploadLatticeMatrix, uploadContainerEntry) comes here.
  checkDeterministicColumnScales(q);
  const decodeNormRatio = deterministicDecodeRatio(q);
  return {
    rows: q.rows,
    cols: q.cols,
    length: q.length,
    keptLength: q.keptLength,
    seed: q.seed,
    rotate: q.rotate,
    scheme: q.scheme,
    unit: q.unit,
    multiples: q.multiples,
    blocksPerColumn: q.blocksPerColumn,
    codeBits: latticeCodeBits(q.scheme),
    scaleIndexBits: scaleIndexBits(q.multiples.length),
    maxColumnNorm: deterministicNormBound(q.norms, q.gains, q.means, q.rows, decodeNormRatio),
    decodeNormRatio,
  };
}

/**
 * A bound on ‖ŵ_j‖/(ν_j·|γ_j|) for any codes and scale indices of `q`'s scheme: each block decodes to
 * columnUnit·k_b·P_b with columnUnit = unit/(s·√N), k_b ≤ the largest multiple and ‖P_b‖ ≤ q·s·
 * LEADER_RADIUS (a coset leader, in point coordinates), so over its blocks ‖ŵ_j‖/(ν_j·|γ_j|) ≤
 * unit·k_max·q·LEADER_RADIUS·√(blocks/N). Ordinary codes decode within 2ν_j·|γ_j|, but scale
 * indices chosen to (every block at the largest multiple: 8192 where an honest block takes 16 on a
 * wide ladder) decode hundreds of times further, and made the GEMV's sums overflow within its limit.
 */
export function deterministicDecodeRatio(q: Pick<DeterministicLatticeMatrix, 'scheme' | 'unit' | 'multiples' | 'blocksPerColumn' | 'length'>): number {
  let largestMultiple = 0;
  for (const k of q.multiples) largestMultiple = Math.max(largestMultiple, Math.abs(k));
  const bound = q.unit * largestMultiple * q.scheme.q * LEADER_RADIUS * Math.sqrt(q.blocksPerColumn / q.length);
  return Math.max(ORDINARY_DECODE_RATIO, bound);
}

/**
 * Refuses a column whose nonzero scale, as the GPU kernels form it in f32 before applying it to their
 * sums, would leave f32's normal range: below 2^-126 it flushes to 0 or keeps only a few bits (the
 * GEMV then returns 0 or a result several per cent off), above it overflows. The product kernels
 * split exponents and are not affected; the GEMV and dequantize kernels multiply the f32 factors
 * directly. `formula` names the product for the message.
 */
export function checkGpuColumnScale(column: number, formula: string, scale: number, factorsNonzero = scale !== 0): void {
  // 0 only for a zero column: a product of nonzero factors that underflowed (β = 5e-324, say) would
  // make the GPU decode 0 and its GEMV limit 0, refusing every x.
  check(
    (scale === 0 && !factorsNonzero) || (scale >= F32_MIN_NORMAL && scale <= F32_MAX),
    () =>
      `GPU upload: column ${column}'s scale ${formula} = ${scale.toExponential(3)} is outside f32's normal range [2^-126, 2^128), ` +
      'in which the GPU GEMV and dequantize kernels form it (the result would be 0, inaccurate or infinite); ' +
      'the CPU functions (matvecAT, matmulAT, dequantize) compute in float64 and handle this matrix',
  );
}

/**
 * 3!: the int8-input GEMVs (D3's, and the E8 residue GEMV's) take each block's 6·k from its scale
 * index as a cubic with integer coefficients (`multipleCubic` in kernels/latticeGemvI8.ts), so their
 * column units divide by it too.
 */
export const CUBIC_SCALE = 6;

/**
 * 12: the E8 residue GEMV (kernels/e8ResidueGemvI8.ts, e8-q16-deterministic with int8 inputs) sums
 * 6·k·2⟨ℓ, x̂⟩ per block (the cubic's 6k, the block's sum taken doubled), so its column unit divides by
 * twice CUBIC_SCALE.
 */
export const RESIDUE_SUM_SCALE = 2 * CUBIC_SCALE;

/**
 * How many times the f32 GEMV's sums (Σ k·⟨P, x̃⟩) the largest sums of a deterministic scheme's
 * int8-input GEMVs are: D3's (lattice_gemv_i8.wgsl) sum 6·k·⟨P, x̂⟩·s_g, CUBIC_SCALE; the E8 residue
 * GEMV (q = 16) 6·k·2⟨ℓ, x̂⟩·s_g, RESIDUE_SUM_SCALE; null where no int8-input GEMV reads the scheme's
 * codes. Their column units divide by it (`deterministicColumnUnit`), and `gemvInputNormLimit` bounds
 * their sums with it.
 */
export function int8SumScale(scheme: DeterministicLatticeMatrix['scheme']): typeof CUBIC_SCALE | typeof RESIDUE_SUM_SCALE | null {
  return scheme.lattice === 'D3' ? CUBIC_SCALE : scheme.lattice === 'E8' && scheme.q === 16 ? RESIDUE_SUM_SCALE : null;
}

/**
 * The column unit of the deterministic GEMV and dequantize kernels, unit/(pointScale·√N) (what turns a
 * block's k·P into entries, before ν_j·γ_j), divided by `cubicScale` in the int8-input GEMVs (D3's
 * CUBIC_SCALE, the E8 residue GEMV's RESIDUE_SUM_SCALE).
 */
export function deterministicColumnUnit(m: Pick<DeterministicLatticeMatrix, 'scheme' | 'unit' | 'length'>, cubicScale: 1 | typeof CUBIC_SCALE | typeof RESIDUE_SUM_SCALE = 1): number {
  return m.unit / (cubicScale * schemeLattice(m.scheme).pointScale * Math.sqrt(m.length));
}

/**
 * Refuses a deterministic matrix whose column scale ν_j·|γ_j|·columnUnit the GPU forms outside f32's
 * normal range (`checkGpuColumnScale`). The kernels form ν_j·γ_j first (shaders/gemv_column_sums.wgsl
 * `column_scale`, shaders/lattice_dequantize.wgsl) and then multiply by their column unit
 * (`deterministicColumnUnit`; the int8-input GEMVs' divided by CUBIC_SCALE for D3, by RESIDUE_SUM_SCALE
 * for E8 with q = 16, whose kernels form ν_j·γ_j·unit before the sum); each product is checked.
 */
export function checkDeterministicColumnScales(q: Pick<DeterministicLatticeMatrix, 'scheme' | 'unit' | 'length' | 'norms' | 'gains'>): void {
  const int8Scale = int8SumScale(q.scheme);
  const units = int8Scale === null ? [deterministicColumnUnit(q)] : [deterministicColumnUnit(q), deterministicColumnUnit(q, int8Scale)];
  for (let j = 0; j < q.norms.length; j++) {
    const scale = (q.norms[j] as number) * (q.gains === null ? 1 : Math.abs(q.gains[j] as number));
    checkGpuColumnScale(j, 'ν·|γ|', scale);
    for (const unit of units) checkGpuColumnScale(j, 'ν·|γ|·columnUnit', scale * unit, scale !== 0);
  }
}

/**
 * max_j ν_j·|γ_j|·ratio + |μ_j|·√rows: a bound on the norm of every decoded (uncentred) column, with
 * `ratio` a bound on ‖ŵ_j‖/(ν_j·|γ_j|) (ORDINARY_DECODE_RATIO for a matrix the GPU quantized from data,
 * whose columns decode a few per cent beyond ν_j·|γ_j|; an upload's `deterministicDecodeRatio`, since it
 * may hold any codes).
 */
export function deterministicNormBound(norms: ArrayLike<number>, gains: ArrayLike<number> | null, means: ArrayLike<number> | null, rows: number, ratio: number): number {
  return columnNormBound(norms, means, rows, Float64Array.from(norms, (_, j) => (gains === null ? 1 : Math.abs(gains[j] as number)) * ratio));
}

/**
 * max_j ν_j·r_j + |μ_j|·√rows: a bound on the norm of every (uncentred) column, with `ratios` r_j a
 * bound on ‖ŵ_j‖/ν_j per column (none: 1). Universal matrices: `universalColumnBounds`' ratios for an
 * upload, none for a matrix the GPU quantized from data; deterministic ones: `deterministicNormBound`.
 */
export function columnNormBound(norms: ArrayLike<number>, means: ArrayLike<number> | null, rows: number, ratios: ArrayLike<number> | null = null): number {
  let largest = 0;
  for (let j = 0; j < norms.length; j++) {
    const decoded = (norms[j] as number) * (ratios === null ? 1 : (ratios[j] as number));
    largest = Math.max(largest, decoded + (means === null ? 0 : Math.abs(means[j] as number) * Math.sqrt(rows)));
  }
  return largest;
}

/** A lattice matrix the GPU kernels read: universal or deterministic. */
export type GpuLatticeMatrix = GpuUniversalMatrix | GpuDeterministicMatrix;

/**
 * Refuses anything but a GPU lattice matrix (from `GpuEngine.quantize`, `GpuEngine.upload`,
 * `uploadContainerEntry`, or built by hand with GPUBuffer fields): null, another kind of object, or a
 * CPU-quantized matrix (`quantize()`), which has the same fields with typed arrays in place of GPU
 * buffers and would otherwise fail later with a misleading message.
 */
export function checkGpuLatticeMatrix(m: unknown, what: string): asserts m is GpuLatticeMatrix {
  const wanted = 'a GPU lattice matrix (GpuEngine.quantize or GpuEngine.upload)';
  check(typeof m === 'object' && m !== null, () => `${what} must be ${wanted}, got ${describeValue(m)}`);
  const { kind, mode, codes } = m as { kind?: unknown; mode?: unknown; codes?: unknown };
  check(kind === 'lattice' && (mode === 'universal' || mode === 'deterministic'), () => `${what} must be ${wanted}, got an object of kind ${describeValue(kind)}`);
  check(!ArrayBuffer.isView(codes), () => `${what} is a CPU-quantized matrix (its codes are in a typed array): upload it to the GPU first, with GpuEngine.upload`);
  // A hand-built matrix's scheme and nonce, which every kernel choice reads (a null scheme threw TypeErrors).
  const { scheme, nonce } = m as { scheme?: unknown; nonce?: unknown };
  let resolved: Scheme;
  try {
    resolved = resolveScheme(scheme as Scheme);
  } catch (error) {
    throw new LatticeMatmulError(`${what}.scheme: ${(error as Error).message}`, { cause: error });
  }
  check(resolved.kind === 'lattice' && resolved.mode === mode, () => `${what}.scheme must be a ${String(mode)} lattice scheme, got a ${resolved.kind === 'lattice' ? resolved.mode : resolved.kind} one`);
  check(mode !== 'universal' || (typeof nonce === 'bigint' && nonce >= 0n), () => `${what}.nonce must be a non-negative bigint, got ${describeValue(nonce)}`);
}

/**
 * Refuses a GPU matrix the library owns (an uploaded or GPU-quantized lattice matrix, a
 * `WeightOnlyGpuMatrix`: they say their `device` and `isDestroyed`) when it was destroyed or its
 * buffers belong to another device than `device` — otherwise WebGPU would report it only at the
 * submit, as an uncaptured validation error. A `GpuLatticeMatrix` built by hand (a plain object that
 * says neither) is trusted. `what` names the matrix, `user` what it is used with ('engine', 'layer').
 */
export function checkMatrixUsable(m: object, device: GPUDevice, what: string, user: string): void {
  const owned = m as { readonly device?: GPUDevice; readonly isDestroyed?: unknown };
  if (typeof owned.isDestroyed !== 'boolean' || owned.device === undefined) return;
  const owner = owned.device;
  // Devices that requestGpuDevice opened without a label share its default one, and an app's own are
  // often unlabelled: "on X, the layer on X" read as if the devices were the same.
  const devices = owner.label === device.label
    ? `both devices are labelled ${describeValue(device.label)}: label them to tell them apart`
    : `on ${describeValue(owner.label)}, the ${user} on ${describeValue(device.label)}`;
  check(
    owner === device,
    () => `${what} was uploaded to another GPUDevice than the ${user}'s (${devices}); upload it to the ${user}'s device`,
  );
  check(!owned.isDestroyed, () => `${what} was destroyed`);
}

/** A GPU buffer a kernel reads, with what it is for a message ("A's codes", "layer 1's bias"). */
export type NamedBuffer = readonly [string, GPUBuffer | null];

/** A lattice matrix's GPU buffers by field name: what its kernels read, and what its owner destroys. */
export function latticeMatrixFields(m: GpuLatticeMatrix): NamedBuffer[] {
  return m.mode === 'universal'
    ? [['codes', m.codes], ['escapeBits', m.escapeBits], ['escapeStarts', m.escapeStarts], ['escapeIds', m.escapeIds], ['escapeTable', m.escapeTable], ['side', m.side]]
    : [['codes', m.codes], ['scaleIndices', m.scaleIndices], ['norms', m.norms], ['gains', m.gains], ['means', m.means]];
}

/** The GPU buffers a lattice matrix's kernels read, named `${name}'s ${field}`. */
export function latticeMatrixBuffers(m: GpuLatticeMatrix, name: string): NamedBuffer[] {
  return latticeMatrixFields(m).map(([field, buffer]) => [`${name}'s ${field}`, buffer]);
}

/**
 * Refuses an output that is a buffer the same call reads (`reads`: an operand's, or in a layer group
 * any member's weight and bias): the result would be written over what it reads. Where the write comes
 * in another pass or dispatch than the reads (the decoded products, the universal GEMV's finishing
 * pass, a group's later members) WebGPU sees no conflict, and the matrix would be left silently
 * corrupt for every later call.
 */
export function checkOutputNotRead(output: GPUBuffer, reads: readonly NamedBuffer[], what: string): void {
  for (const [name, buffer] of reads) {
    check(buffer !== output, () => `${what} is ${name} buffer: the result would overwrite it; write it into a buffer of its own`);
  }
}

/**
 * How many times its norm (ν_j; ν_j·|γ_j| deterministic) a column of ordinary codes (as quantization
 * makes them) can decode to: the code's relative error is below 1. The GEMV's input limit of a matrix
 * the GPU quantized assumes it; an upload bounds any codes instead (`decodeNormRatio`).
 */
export const ORDINARY_DECODE_RATIO = 2;

/**
 * The largest ‖ŵ_j‖/ν_j (‖ŵ_j‖/(ν_j·|γ_j|)) the GPU GEMV of `w` must expect: its `decodeNormRatio`,
 * a bound for any codes set on upload (`universalColumnBounds`, `deterministicDecodeRatio`), or
 * ORDINARY_DECODE_RATIO for a matrix the GPU quantized from data. Used by `gemvInputNormLimit`.
 */
export function gemvDecodeRatio(w: GpuLatticeMatrix): number {
  return Math.max(ORDINARY_DECODE_RATIO, w.decodeNormRatio ?? ORDINARY_DECODE_RATIO);
}

/** Whether a GPU lattice matrix was centred (has column means). */
export function isCentred(m: GpuLatticeMatrix): boolean {
  return m.mode === 'universal' ? m.hasMeans : m.means !== null;
}

/**
 * Checks the conditions under which two quantized matrices multiply (those of the CPU `matmulAT`):
 * same rows, rotation, seed, lengths, and both centred or neither.
 */
export function checkProductOperands(a: GpuLatticeMatrix, b: GpuLatticeMatrix): void {
  checkGpuLatticeMatrix(a, 'A');
  checkGpuLatticeMatrix(b, 'B');
  check(a.rows === b.rows, () => `A and B must have the same number of rows (got ${describeValue(a.rows)} and ${describeValue(b.rows)})`);
  check(a.rotate === b.rotate, 'A and B must both be rotated or both not');
  check(!a.rotate || a.seed === b.seed, () => `A and B were rotated with different seeds (${a.seed} and ${b.seed}); quantize both with the same seed`);
  check(a.length === b.length, () => differentRotatedLengths(a.rows, a.length, b.length));
  check(a.keptLength === b.keptLength, () => `A and B keep different numbers of rotated coordinates (${a.keptLength} and ${b.keptLength})`);
  check(isCentred(a) === isCentred(b), 'A and B must both be centred or both not (the mean term needs both means)');
}

/** Bindings of the packed codes and scale indices of columns `[first, first + count)`. */
export interface OperandWindows {
  readonly codes: BindingWindow;
  readonly scaleIndices: BindingWindow;
}

/** The binding windows of columns `[first, first + count)` of `m` (see `bindingWindow`). */
export function operandWindows(m: GpuDeterministicMatrix, first: number, count: number, alignment: number): OperandWindows {
  const words = operandWordsPerColumn(m);
  return {
    codes: bindingWindow(4 * words.codes * first, 4 * words.codes * count, alignment),
    scaleIndices: bindingWindow(4 * words.scaleIndices * first, 4 * words.scaleIndices * count, alignment),
  };
}

/** How many columns of `m` one binding of at most `maxBindingBytes` holds (codes, scale indices, and the side `gatherColumnSide` gathers). */
export function operandColumnsPerBinding(m: GpuDeterministicMatrix, maxBindingBytes: number, alignment: number): number {
  const words = operandWordsPerColumn(m);
  return Math.min(
    itemsPerBinding(4 * words.codes, maxBindingBytes, alignment),
    itemsPerBinding(4 * words.scaleIndices, maxBindingBytes, alignment),
    // A range's norms, gains and means gathered into one side buffer (`gatherColumnSide`) are bound too.
    itemsPerBinding(GATHERED_SIDE_BYTES, maxBindingBytes, alignment),
  );
}

/** Splits `[0, total)` into consecutive ranges of at most `size`. */
export function columnRanges(total: number, size: number): { first: number; count: number }[] {
  const ranges: { first: number; count: number }[] = [];
  for (let first = 0; first < total; first += size) ranges.push({ first, count: Math.min(size, total - first) });
  return ranges;
}

/** One dispatch of a quantized × quantized product: a range of A columns against a range of B columns. */
export interface ProductChunk {
  readonly aRange: { readonly first: number; readonly count: number };
  readonly bRange: { readonly first: number; readonly count: number };
  readonly aWindows: OperandWindows;
  readonly bWindows: OperandWindows;
  /** Binding of C's columns `bRange` (all rows); the chunk's C[0, 0] is element `firstElement + aRange.first`. */
  readonly cWindow: BindingWindow;
  readonly aSide: ColumnSide;
  readonly bSide: ColumnSide;
  readonly label: string;
}

/**
 * Splits C = ÂᵀB̂ (a.cols × b.cols f32 at byte `cOffset` of `c`) into dispatches whose bindings fit
 * `maxBindingBytes` and whose grids (`tile` columns per workgroup edge) fit the dispatch limit, and
 * gathers each range's column side fields (copies recorded into `encoder`, before any pass).
 */
export function planProductChunks(
  device: GPUDevice,
  encoder: GPUCommandEncoder,
  scratch: GpuScratch,
  operands: { a: GpuDeterministicMatrix; b: GpuDeterministicMatrix; c: GPUBuffer; cOffset: number; maxBindingBytes: number | undefined },
  tile: number,
  label: string,
): ProductChunk[] {
  const { a, b, c, cOffset } = operands;
  checkBufferRange(c, cOffset, 4 * a.cols * b.cols, `${label}: C`);
  const alignment = device.limits.minStorageBufferOffsetAlignment;
  const maxBinding = bindingCap(device, operands.maxBindingBytes, 'product');
  const maxColumnsPerGrid = device.limits.maxComputeWorkgroupsPerDimension * tile;
  const aRanges = columnRanges(a.cols, Math.min(operandColumnsPerBinding(a, maxBinding, alignment), maxColumnsPerGrid));
  const bRanges = columnRanges(
    b.cols,
    Math.min(operandColumnsPerBinding(b, maxBinding, alignment), itemsPerBinding(4 * a.cols, maxBinding, alignment), maxColumnsPerGrid),
  );
  const aSides = aRanges.map((r) => gatherColumnSide(encoder, scratch, a, r.first, r.count, `${label} A columns ${r.first}…`));
  const bSides = bRanges.map((r) => gatherColumnSide(encoder, scratch, b, r.first, r.count, `${label} B columns ${r.first}…`));
  const chunks: ProductChunk[] = [];
  aRanges.forEach((aRange, i) => {
    bRanges.forEach((bRange, j) => {
      chunks.push({
        aRange,
        bRange,
        aWindows: operandWindows(a, aRange.first, aRange.count, alignment),
        bWindows: operandWindows(b, bRange.first, bRange.count, alignment),
        cWindow: bindingWindow(cOffset + 4 * a.cols * bRange.first, 4 * a.cols * bRange.count, alignment),
        aSide: aSides[i] as ColumnSide,
        bSide: bSides[j] as ColumnSide,
        label: `${label} A ${aRange.first}…${aRange.first + aRange.count - 1} × B ${bRange.first}…${bRange.first + bRange.count - 1}`,
      });
    });
  });
  return chunks;
}
