import latticeCodeSource from '../../../shaders/lattice_code.wgsl?raw';
import latticeDecodeSource from '../../../shaders/lattice_decode.wgsl?raw';
import latticeEncodeSource from '../../../shaders/lattice_encode.wgsl?raw';
import { check, checkPositiveInteger, describeValue } from '../../errors.js';
import { packedLayout } from '../../format/packing.js';
import type { Lattice } from '../../lattices/lattice.js';
import { VoronoiCode } from '../../lattices/voronoiCode.js';
import { fixedPointNumerator, REDUCTION_LANES } from '../../quantize/columnScaling.js';
import type { GainMode } from '../../quantize/quantize.js';
import { CLIP_STEPS } from '../../quantize/latticeEncoder.js';
import { FIXED_POINT_LIMIT, FRACTION_BITS, type ScaleGrid } from '../../quantize/scaleGrid.js';
import { checkBufferRange } from '../bufferRange.js';
import { BufferUsage, createBufferWithData, UNIFORM_USAGE, uploadToBuffer } from '../buffers.js';
import { createKernelBindGroup, createKernelPipeline, KernelPipelines, windowBinding } from '../pipelines.js';
import type { GpuScratch } from '../scratch.js';
import { UniformLayout } from '../uniformLayout.js';
import { bindingCap, bindingWindow, itemsPerBinding, workgroupGrid } from '../workSplit.js';
import { checkReductionLanes, QUANTIZE_STATUS_BYTES } from './columnPrep.js';
import { f32ScalingWgsl } from './f32Scaling.js';

/*
 * Lattice encoding on the GPU (shaders/lattice_encode.wgsl with the integer libraries
 * shaders/lattice_decode.wgsl and shaders/lattice_code.wgsl): per column, the canonical sum of
 * squares, ν' and g by the exact f32 routines, the fixed-point integers X, and every block through the twin of
 * `LatticeBlockEncoder.encodeBlock` (ladder, betaSet, clipping), written packed as
 * src/format/packing.ts lays fields out. Codes and scale indices equal the CPU's bit for bit.
 */

/** Largest lattice dimension the WGSL library handles (its points are `array<i32, 8>`). */
export const LATTICE_ENCODE_MAX_DIMENSION = 8;
/** Largest scale grid (the uniform table holds 16 denominators). */
const MAX_SCALES = 16;
/**
 * Denominators k·2^F must stay below this bound for codes to be exact and equal to the CPU's: the WGSL
 * libraries' i32 intermediates (2X ± den, den·P) and 64-bit squared errors are exact below 2^29;
 * E8's CPU twin compares squared distances of up to 32·den² in float64, exact below den = 2^24, and
 * its WGSL twin makes that comparison in i32 with sums of up to 96·den (shaders/lattice_decode.wgsl).
 */
function maxDenominator(lattice: Lattice): number {
  return lattice.name === 'E8' ? 2 ** 24 : 2 ** 29;
}

/** The kernel's gain_mode ids (GAIN_NONE, GAIN_MMSE, GAIN_UNBIASED in shaders/lattice_encode.wgsl). */
export const LATTICE_ENCODE_GAIN_IDS: Readonly<Record<GainMode, number>> = { none: 0, mmse: 1, unbiased: 2 };

/**
 * The `LatticeTable` uniform of shaders/lattice_code.wgsl: everything about the code and its scale
 * grid. Tables are arrays of vec4 (the uniform address space's 16-byte array stride); element k of a
 * d×d matrix is row k / d, column k % d. Filled by {@link latticeTableBytes}.
 */
const LatticeTable = /*#__PURE__*/ new UniformLayout('LatticeTable', {
  q: 'i32', // nesting ratio
  determinant: 'i32', // the inverse is inverse / determinant
  scale_count: 'u32', // scales in the grid (1..16)
  least_error: 'u32', // 1: betaSet (least error among fits); 0: ladder (first fit)
  clip_steps: 'i32', // CLIP_STEPS of latticeEncoder.ts
  fit_steps: 'u32', // 2 (see lattice_fit)
  basis: 'array<vec4<i32>, 16>', // generator, row-major d×d, basis vectors in the columns
  inverse: 'array<vec4<i32>, 16>', // numerators of its inverse, row-major d×d
  den: 'array<vec4<i32>, 4>', // den_j = k_j · 2^FRACTION_BITS
  multiple: 'array<vec4<i32>, 4>', // k_j
});

/** The encode kernel's uniform struct (`params`); its WGSL is generated and put in front of the kernel. */
const EncodeParams = /*#__PURE__*/ new UniformLayout('EncodeParams', {
  length: 'u32', // N: entries of a rotated column
  kept_length: 'u32', // coordinates quantized (time-sharing keeps a prefix)
  cols: 'u32', // columns in this dispatch
  column_offset: 'u32', // global index of this dispatch's column 0 (status reports)
  blocks_per_column: 'u32',
  rotated_first: 'u32', // element offset of column 0 in `rotated`
  exponent_first: 'u32', // element offset of column 0 in `exponents`
  norm_first: 'u32', // element offset of column 0 in `norms`
  gain_first: 'u32', // element offset of column 0 in `gains`
  code_first: 'u32', // word offset of column 0 in `codes`
  code_bits: 'u32',
  codes_per_word: 'u32',
  code_words_per_column: 'u32',
  index_first: 'u32', // word offset of column 0 in `indices`
  index_bits: 'u32', // 0: one scale, nothing stored
  indices_per_word: 'u32',
  index_words_per_column: 'u32',
  gain_mode: 'u32', // GAIN_NONE, GAIN_MMSE or GAIN_UNBIASED
  numerator: 'f32', // G
  fixed_limit: 'f32', // FIXED_POINT_LIMIT (2^24, exact in f32)
  unit: 'f32', // fround(β₀ / 16)
  sqrt_length: 'f32', // √N
  runtime_zero: 'u32', // 0 (see `unfused`)
  first_stride: 'u32', // 128 = lanes / 2 (see the note on barrier loops in the shader)
});

/**
 * WGSL of the integer block encoder: the lattice rules shared with the decoding kernels (nearest points,
 * digits, coset leaders; shaders/lattice_decode.wgsl), the `LatticeTable` struct, then the encoder's
 * own part (Voronoi encode, decode-and-compare, ladder, betaSet, clipping; shaders/lattice_code.wgsl).
 */
export function latticeCodeWgsl(): string {
  return `${latticeDecodeSource}\n${LatticeTable.wgsl()}\n${latticeCodeSource}`;
}

/** The WGSL of the encode kernel: f32 libraries, lattice library, the kernel's uniform struct, kernel. */
export function latticeEncodeSourceCode(): string {
  return `${f32ScalingWgsl()}\n${latticeCodeWgsl()}\n${EncodeParams.wgsl()}\n${latticeEncodeSource}`;
}

/** The nearest-point rule of the WGSL library for a lattice (NEAREST_RULE). */
function nearestRule(lattice: Lattice): number {
  if (lattice.name === 'E8') return 2;
  if (/^D\d+$/.test(lattice.name)) return 1;
  if (/^Z\d+$/.test(lattice.name)) return 0;
  return check(false, () => `the GPU encoder supports Z^d, D_d and E8, not ${lattice.name}`) as never;
}

/** The override constants of shaders/lattice_code.wgsl for `lattice`. */
export function latticeConstants(lattice: Lattice): Record<string, number> {
  check(
    lattice.dimension >= 1 && lattice.dimension <= LATTICE_ENCODE_MAX_DIMENSION,
    () => `the GPU encoder handles lattices of dimension 1…${LATTICE_ENCODE_MAX_DIMENSION}, not ${lattice.dimension}`,
  );
  return { LATTICE_DIMENSION: lattice.dimension, POINT_SCALE: lattice.pointScale, NEAREST_RULE: nearestRule(lattice) };
}

/**
 * The bytes of the `LatticeTable` uniform of shaders/lattice_code.wgsl: q, the determinant, the grid
 * (count, rule), CLIP_STEPS, the generator and its inverse numerators (from the CPU Lattice object),
 * and the denominators k_j·2^F and multiples k_j. Checks the integer ranges the library relies on.
 */
export function latticeTableBytes(lattice: Lattice, q: number, grid: ScaleGrid): Uint8Array {
  const d = lattice.dimension;
  latticeConstants(lattice);
  const code = new VoronoiCode(lattice, q); // checks q and q^d ≤ 2^32
  const count = grid.multiples.length;
  check(count >= 1 && count <= MAX_SCALES, () => `the GPU encoder handles 1…${MAX_SCALES} scales, got ${describeValue(count)}`);
  const largest = grid.multiples[count - 1] as number;
  const limit = maxDenominator(lattice);
  check(
    largest * 2 ** FRACTION_BITS < limit,
    () =>
      `scale multiple ${largest} is too large for exact ${lattice.name} encoding on the GPU ` +
      `(k·2^${FRACTION_BITS} must stay below 2^${Math.log2(limit)}); use fewer ladder steps or a smaller ratio`,
  );
  // Tables are zero past d·d entries and past `count` scales.
  const basis = new Int32Array(4 * 16);
  const inverse = new Int32Array(4 * 16);
  for (let k = 0; k < d * d; k++) {
    basis[k] = lattice.basis[k] as number;
    inverse[k] = lattice.basisInverse.numerators[k] as number;
  }
  const den = new Int32Array(4 * 4);
  const multiple = new Int32Array(4 * 4);
  for (let j = 0; j < count; j++) {
    const k = grid.multiples[j] as number;
    multiple[j] = k;
    den[j] = k * 2 ** FRACTION_BITS;
  }
  return LatticeTable.pack({
    q: code.q,
    determinant: lattice.basisInverse.determinant,
    scale_count: count,
    least_error: grid.leastError ? 1 : 0,
    clip_steps: CLIP_STEPS,
    fit_steps: 2, // see lattice_fit
    basis,
    inverse,
    den,
    multiple,
  }).bytes();
}

/** The pipeline per lattice kind and device, built on first use (everything else is a uniform). */
const pipelines = /*#__PURE__*/ new KernelPipelines({
  label: 'lattice encode',
  bindings: ['uniform', 'uniform', 'read-only-storage', 'read-only-storage', 'storage', 'storage', 'storage', 'storage', 'storage'],
  key: (lattice: Lattice) => lattice.name,
  compile: (device, pipelineLayout, lattice: Lattice) =>
    createKernelPipeline(device, pipelineLayout, {
      label: `lattice encode ${lattice.name}`,
      code: latticeEncodeSourceCode(),
      constants: latticeConstants(lattice),
    }),
});

/** Arguments of {@link dispatchLatticeEncode}. Offsets are in bytes (multiples of 4). */
export interface LatticeEncodeArgs {
  /** The prepared (scaled, centred, rotated) columns: length × cols f32. */
  readonly rotated: GPUBuffer;
  readonly rotatedOffset?: number;
  /** Each column's exponent e (i32), from the column prep kernel. */
  readonly exponents: GPUBuffer;
  readonly exponentsOffset?: number;
  /** Packed codes (codeBits bits each, src/format/packing.ts); the caller clears them (bits are OR-ed in). */
  readonly codes: GPUBuffer;
  readonly codesOffset?: number;
  /** Packed scale indices (`indexBits` bits, ≥ the grid's); cleared by the caller; nothing is written for one scale. */
  readonly scaleIndices: GPUBuffer;
  readonly scaleIndicesOffset?: number;
  /** Bits per stored scale index (default: the grid's indexBits, 0 for a single scale). */
  readonly indexBits?: number;
  /** Written: ν'·2^−e per column (f32). */
  readonly norms: GPUBuffer;
  readonly normsOffset?: number;
  /** Written unless `gain` is 'none': the gain per column (f32, not bit-exact). */
  readonly gains: GPUBuffer | null;
  /** Which gain to compute (QuantizeOptions.gain); 'none' needs no gains buffer. */
  readonly gain: GainMode;
  readonly gainsOffset?: number;
  /** The 16-byte status buffer (clipped blocks are counted, norm overflows reported). */
  readonly status: GPUBuffer;
  readonly lattice: Lattice;
  readonly q: number;
  readonly grid: ScaleGrid;
  /** N: entries per rotated column. */
  readonly length: number;
  /** Coordinates quantized per column (≤ length). */
  readonly keptLength: number;
  readonly cols: number;
  /** Global index of column 0 (status reports). Default 0. */
  readonly columnOffset?: number;
  /** Largest storage binding to use, in bytes (default: the device's limit). */
  readonly maxBindingBytes?: number;
}

/**
 * Records the lattice encoding of prepared columns into `encoder`. Codes and scale indices are
 * bit-identical to `quantize()`'s for the same prepared columns; norms are ν'·2^−e exactly; gains
 * are within float rounding of the CPU's (f32 sums here, float64 there: about 1e−5 relative). Columns are split across
 * dispatches when they exceed one storage binding or the dispatch limit. The lattice table and
 * parameters go into `scratch`.
 *
 * @example
 * encoder.clearBuffer(codes); encoder.clearBuffer(scaleIndices); encoder.clearBuffer(status);
 * dispatchLatticeEncode(device, encoder, scratch, {
 *   rotated, exponents, codes, scaleIndices, norms, gains: null, gain: 'none', status,
 *   lattice: D3, q: 6, grid: scaleGrid(SCHEMES['d3-q6-deterministic'].overload), length: 768, keptLength: 768, cols: 64,
 * });
 */
export function dispatchLatticeEncode(device: GPUDevice, encoder: GPUCommandEncoder, scratch: GpuScratch, args: LatticeEncodeArgs): void {
  const { lattice, q, grid, length, keptLength, cols } = args;
  checkReductionLanes();
  checkPositiveInteger(length, 'lattice encode length');
  checkPositiveInteger(keptLength, 'lattice encode keptLength');
  checkPositiveInteger(cols, 'lattice encode cols');
  check(keptLength <= length, () => `lattice encode: keptLength (${keptLength}) exceeds length (${length})`);
  const tableBytes = latticeTableBytes(lattice, q, grid);
  const d = lattice.dimension;
  const blocksPerColumn = Math.ceil(keptLength / d);
  const codeBits = new VoronoiCode(lattice, q).codeBits;
  const codeLayout = packedLayout(codeBits, blocksPerColumn);
  const indexBits = args.indexBits ?? grid.indexBits;
  check(
    Number.isInteger(indexBits) && indexBits >= grid.indexBits && indexBits <= 32,
    () => `lattice encode: indexBits must be an integer in [${grid.indexBits}, 32], got ${describeValue(indexBits)}`,
  );
  const indexLayout = indexBits > 0 ? packedLayout(indexBits, blocksPerColumn) : { perWord: 1, wordsPerColumn: 0 };

  const offsets = {
    rotated: args.rotatedOffset ?? 0,
    exponents: args.exponentsOffset ?? 0,
    codes: args.codesOffset ?? 0,
    scaleIndices: args.scaleIndicesOffset ?? 0,
    norms: args.normsOffset ?? 0,
    gains: args.gainsOffset ?? 0,
  };
  checkBufferRange(args.rotated, offsets.rotated, 4 * length * cols, 'lattice encode: rotated');
  checkBufferRange(args.exponents, offsets.exponents, 4 * cols, 'lattice encode: exponents');
  checkBufferRange(args.codes, offsets.codes, 4 * codeLayout.wordsPerColumn * cols, 'lattice encode: codes');
  checkBufferRange(args.scaleIndices, offsets.scaleIndices, 4 * indexLayout.wordsPerColumn * cols, 'lattice encode: scaleIndices');
  checkBufferRange(args.norms, offsets.norms, 4 * cols, 'lattice encode: norms');
  check(typeof args.gain === 'string' && Object.hasOwn(LATTICE_ENCODE_GAIN_IDS, args.gain), () => `lattice encode: unknown gain mode ${describeValue(args.gain)}`);
  check((args.gain === 'none') === (args.gains === null), 'lattice encode: a gains buffer is needed exactly when gain is not none');
  if (args.gains) checkBufferRange(args.gains, offsets.gains, 4 * cols, 'lattice encode: gains');
  check(args.status.size >= QUANTIZE_STATUS_BYTES, () => `lattice encode: the status buffer needs ${QUANTIZE_STATUS_BYTES} bytes`);

  const alignment = device.limits.minStorageBufferOffsetAlignment;
  const maxBinding = bindingCap(device, args.maxBindingBytes, 'dispatchLatticeEncode');
  const columnsPerChunk = Math.min(
    itemsPerBinding(4 * length, maxBinding, alignment),
    itemsPerBinding(4 * codeLayout.wordsPerColumn, maxBinding, alignment),
    indexLayout.wordsPerColumn > 0 ? itemsPerBinding(4 * indexLayout.wordsPerColumn, maxBinding, alignment) : Infinity,
  );
  const table = scratch.buffer(`lattice table ${lattice.name} q = ${q}`, tableBytes.byteLength, UNIFORM_USAGE);
  uploadToBuffer(device, table, tableBytes);
  const placeholder = (what: string): GPUBuffer =>
    scratch.buffer(`lattice encode (no ${what})`, 4, BufferUsage.STORAGE);
  const indexBuffer = indexLayout.wordsPerColumn > 0 ? args.scaleIndices : placeholder('scale indices');
  const gainBuffer = args.gains ?? placeholder('gains');
  const columnOffset = args.columnOffset ?? 0;
  const { layout, pipeline } = pipelines.get(device, lattice);

  const pass = encoder.beginComputePass({ label: `lattice encode ${lattice.name} q = ${q}` });
  pass.setPipeline(pipeline);
  for (let j0 = 0; j0 < cols; j0 += columnsPerChunk) {
    const count = Math.min(columnsPerChunk, cols - j0);
    const window = (offset: number, bytesPerColumn: number) =>
      bytesPerColumn > 0 ? bindingWindow(offset + bytesPerColumn * j0, bytesPerColumn * count, alignment) : { offset: 0, size: 4, firstElement: 0 };
    const rotatedWindow = window(offsets.rotated, 4 * length);
    const exponentWindow = window(offsets.exponents, 4);
    const codeWindow = window(offsets.codes, 4 * codeLayout.wordsPerColumn);
    const indexWindow = window(offsets.scaleIndices, 4 * indexLayout.wordsPerColumn);
    const normWindow = window(offsets.norms, 4);
    const gainWindow = args.gains ? window(offsets.gains, 4) : { offset: 0, size: 4, firstElement: 0 };
    const label = `lattice encode ${lattice.name} q = ${q}, columns ${columnOffset + j0}…${columnOffset + j0 + count - 1}`;
    const params = EncodeParams.pack({
      length,
      kept_length: keptLength,
      cols: count,
      column_offset: columnOffset + j0,
      blocks_per_column: blocksPerColumn,
      rotated_first: rotatedWindow.firstElement,
      exponent_first: exponentWindow.firstElement,
      norm_first: normWindow.firstElement,
      gain_first: gainWindow.firstElement,
      code_first: codeWindow.firstElement,
      code_bits: codeBits,
      codes_per_word: codeLayout.perWord,
      code_words_per_column: codeLayout.wordsPerColumn,
      index_first: indexWindow.firstElement,
      index_bits: indexLayout.wordsPerColumn > 0 ? indexBits : 0,
      indices_per_word: indexLayout.perWord,
      index_words_per_column: indexLayout.wordsPerColumn,
      gain_mode: LATTICE_ENCODE_GAIN_IDS[args.gain],
      numerator: fixedPointNumerator(length, grid.unit),
      fixed_limit: FIXED_POINT_LIMIT,
      unit: grid.unit,
      sqrt_length: Math.sqrt(length),
      runtime_zero: 0,
      first_stride: REDUCTION_LANES / 2,
    });
    const bindGroup = createKernelBindGroup(device, layout, label, [
      { buffer: scratch.uniform(label, params) },
      { buffer: table },
      windowBinding(args.rotated, rotatedWindow),
      windowBinding(args.exponents, exponentWindow),
      windowBinding(args.codes, codeWindow),
      windowBinding(indexBuffer, indexWindow),
      windowBinding(args.norms, normWindow),
      windowBinding(gainBuffer, gainWindow),
      { buffer: args.status, offset: 0, size: QUANTIZE_STATUS_BYTES },
    ]);
    pass.setBindGroup(0, bindGroup);
    const [x, y] = workgroupGrid(count, device.limits.maxComputeWorkgroupsPerDimension);
    pass.dispatchWorkgroups(x, y);
  }
  pass.end();
}

/** A uniform buffer holding the lattice table (for probes and tests that call the WGSL library directly). */
export function createLatticeTableBuffer(device: GPUDevice, lattice: Lattice, q: number, grid: ScaleGrid): GPUBuffer {
  return createBufferWithData(device, `lattice table ${lattice.name} q = ${q}`, latticeTableBytes(lattice, q, grid), UNIFORM_USAGE);
}
