import compactSource from '../../../shaders/universal_compact.wgsl?raw';
import encodeSource from '../../../shaders/universal_encode.wgsl?raw';
import { check } from '../../errors.js';
import { REDUCTION_LANES } from '../../quantize/columnScaling.js';
import { latticeSpec, type LatticeName, type UniversalCodec } from '../../quantize/latticeSpec.js';
import { UNIVERSAL_FIXED_LIMIT, universalNumerator } from '../../quantize/universalCode.js';
import { checkBufferRange } from '../bufferRange.js';
import { BufferUsage, UNIFORM_USAGE, uploadToBuffer } from '../buffers.js';
import { createKernelBindGroup, createKernelPipeline, KernelPipelines, windowBinding } from '../pipelines.js';
import type { GpuScratch } from '../scratch.js';
import { UniformLayout } from '../uniformLayout.js';
import { bindingCap, bindingWindow, itemsPerBinding, workgroupGrid } from '../workSplit.js';
import { checkReductionLanes } from './columnPrep.js';
import { f32ScalingWgsl } from './f32Scaling.js';
import { universalLatticeWgsl } from './universalWgsl.js';

/*
 * The universal lattice encoder on the GPU, in two passes (see shaders/universal_encode.wgsl and
 * shaders/universal_compact.wgsl): pass A encodes every block (codes, escape bits, a root id per block,
 * unordered non-root records, per-column counts), the host reads the counts, and pass B lays the root
 * ids out as the escape-id stream. src/gpu/gpuQuantizeUniversal.ts chains them after column prep and
 * the rotation.
 */

/** Words of the work buffer before the per-column counts (status words, then the record counter). */
export const UNIVERSAL_WORK_HEADER_WORDS = 5;
/** Work-buffer word of the number of non-root records the encoder wanted to write. */
export const UNIVERSAL_WORK_RECORDS = 4;
/** Work-buffer word of the first column whose fixed point overflowed (0xffffffff − column), or 0. */
export const UNIVERSAL_WORK_FIXED_OVERFLOW = 0;
/** vec4<i32> entries of the roots uniform (E8's 240 roots × 8 coordinates). */
export const UNIVERSAL_ROOT_VEC4S = 480;

const EncodeParams = /*#__PURE__*/ new UniformLayout('UniversalEncodeParams', {
  length: 'u32',
  kept: 'u32',
  cols: 'u32', // columns in this dispatch
  column_offset: 'u32', // global index of this dispatch's first column
  blocks: 'u32',
  rotated_first: 'u32',
  exponent_first: 'u32',
  norm_first: 'u32',
  code_first: 'u32',
  code_words: 'u32',
  code_bits: 'u32',
  bits_first: 'u32',
  bit_words: 'u32',
  dense_first: 'u32',
  dense_words: 'u32',
  counts_first: 'u32',
  records_first: 'u32',
  record_capacity: 'u32',
  root_count: 'u32',
  q: 'u32',
  nonce_lo: 'u32',
  nonce_hi: 'u32',
  fixed_limit: 'i32',
  numerator: 'f32', // G = fround(√N · DITHER_GRID / β)
  runtime_zero: 'u32',
  first_stride: 'u32',
});

const CompactParams = /*#__PURE__*/ new UniformLayout('UniversalCompactParams', {
  cols: 'u32',
  bit_words: 'u32',
  dense_words: 'u32',
});

const encodePipelines = /*#__PURE__*/ new KernelPipelines({
  label: 'universal encode',
  bindings: [
    'uniform',
    'uniform', // roots
    'read-only-storage', // rotated
    'read-only-storage', // exponents
    'storage', // codes
    'storage', // escape bits
    'storage', // dense ids
    'storage', // side (norms)
    'storage', // work
  ],
  compile: (device, pipelineLayout, lattice: LatticeName) =>
    createKernelPipeline(device, pipelineLayout, {
      label: `universal encode ${lattice}`,
      code: `${EncodeParams.wgsl()}\n${f32ScalingWgsl()}\n${universalLatticeWgsl(latticeSpec(lattice))}\n${encodeSource}`,
    }),
});

const compactPipelines = /*#__PURE__*/ new KernelPipelines({
  label: 'universal compact',
  bindings: ['uniform', 'read-only-storage', 'read-only-storage', 'read-only-storage', 'storage', 'storage'],
  compile: (device, pipelineLayout) =>
    createKernelPipeline(device, pipelineLayout, { label: 'universal compact', code: `${CompactParams.wgsl()}\n${compactSource}` }),
});

/** Sizes of one universal encoding (from the codec and the shape). */
export interface UniversalEncodeShape {
  readonly codec: UniversalCodec;
  readonly length: number;
  readonly keptLength: number;
  readonly blocksPerColumn: number;
  /** Words per column: codes, escape bits, dense ids (one byte per block). */
  readonly codeWords: number;
  readonly bitWords: number;
  readonly denseWords: number;
  /** Total columns of the matrix (for the work buffer's counts). */
  readonly cols: number;
  readonly nonce: { readonly lo: number; readonly hi: number };
  /** Capacity of the non-root record list in the work buffer. */
  readonly recordCapacity: number;
}

/** u32 words of the work buffer of `shape`. */
export function universalWorkWords(shape: UniversalEncodeShape): number {
  return UNIVERSAL_WORK_HEADER_WORDS + 2 * shape.cols + shape.recordCapacity * (shape.codec.spec.dimension + 1);
}

/** The roots of the codec's lattice as the encoder's uniform (vec4-padded i32). */
export function createRootsUniform(device: GPUDevice, scratch: GpuScratch, codec: UniversalCodec): GPUBuffer {
  const roots = codec.spec.escapes.roots;
  check(roots.length <= 4 * UNIVERSAL_ROOT_VEC4S, () => `${codec.spec.name} has more roots than the encoder's table holds`);
  const words = new Int32Array(4 * UNIVERSAL_ROOT_VEC4S);
  words.set(roots);
  const buffer = scratch.buffer(`universal roots ${codec.spec.name}`, words.byteLength, UNIFORM_USAGE);
  uploadToBuffer(device, buffer, words);
  return buffer;
}

/** Arguments of {@link dispatchUniversalEncode}: one chunk of columns. Offsets in bytes. */
export interface UniversalEncodeArgs {
  readonly shape: UniversalEncodeShape;
  readonly roots: GPUBuffer;
  /** The chunk's prepared (scaled, centred, rotated) columns: length × cols f32 from byte 0. */
  readonly rotated: GPUBuffer;
  readonly exponents: GPUBuffer;
  /** The matrix's buffers (all columns), cleared before the first chunk. */
  readonly codes: GPUBuffer;
  readonly escapeBits: GPUBuffer;
  readonly denseIds: GPUBuffer;
  /** Norms are written at [columnOffset, columnOffset + cols). */
  readonly side: GPUBuffer;
  readonly work: GPUBuffer;
  readonly cols: number;
  readonly columnOffset: number;
  readonly maxBindingBytes?: number;
}

/** Records pass A for one chunk of columns. */
export function dispatchUniversalEncode(device: GPUDevice, encoder: GPUCommandEncoder, scratch: GpuScratch, args: UniversalEncodeArgs): void {
  checkReductionLanes();
  const { shape, cols, columnOffset } = args;
  const { codec } = shape;
  checkBufferRange(args.rotated, 0, 4 * shape.length * cols, 'universal encode: rotated');
  checkBufferRange(args.exponents, 0, 4 * cols, 'universal encode: exponents');
  checkBufferRange(args.codes, 0, 4 * shape.codeWords * (columnOffset + cols), 'universal encode: codes');
  checkBufferRange(args.escapeBits, 0, 4 * shape.bitWords * (columnOffset + cols), 'universal encode: escape bits');
  checkBufferRange(args.denseIds, 0, 4 * shape.denseWords * (columnOffset + cols), 'universal encode: dense ids');
  checkBufferRange(args.side, 0, 4 * (columnOffset + cols), 'universal encode: side');
  checkBufferRange(args.work, 0, 4 * universalWorkWords(shape), 'universal encode: work');
  const alignment = device.limits.minStorageBufferOffsetAlignment;
  const maxBinding = bindingCap(device, args.maxBindingBytes, 'dispatchUniversalEncode');
  const perDispatch = Math.min(
    itemsPerBinding(4 * shape.length, maxBinding, alignment),
    itemsPerBinding(4 * shape.codeWords, maxBinding, alignment),
    itemsPerBinding(4 * shape.denseWords, maxBinding, alignment),
  );
  const { layout, pipeline } = encodePipelines.get(device, codec.spec.name);
  const pass = encoder.beginComputePass({ label: `universal encode ${codec.spec.name} q = ${codec.q}` });
  pass.setPipeline(pipeline);
  for (let j0 = 0; j0 < cols; j0 += perDispatch) {
    const count = Math.min(perDispatch, cols - j0);
    const global = columnOffset + j0;
    const rotatedWindow = bindingWindow(4 * shape.length * j0, 4 * shape.length * count, alignment);
    const exponentWindow = bindingWindow(4 * j0, 4 * count, alignment);
    const codeWindow = bindingWindow(4 * shape.codeWords * global, 4 * shape.codeWords * count, alignment);
    const bitWindow = bindingWindow(4 * shape.bitWords * global, 4 * shape.bitWords * count, alignment);
    const denseWindow = bindingWindow(4 * shape.denseWords * global, 4 * shape.denseWords * count, alignment);
    const normWindow = bindingWindow(4 * global, 4 * count, alignment);
    const label = `universal encode ${codec.spec.name}, columns ${global}…${global + count - 1}`;
    const params = EncodeParams.pack({
      length: shape.length,
      kept: shape.keptLength,
      cols: count,
      column_offset: global,
      blocks: shape.blocksPerColumn,
      rotated_first: rotatedWindow.firstElement,
      exponent_first: exponentWindow.firstElement,
      norm_first: normWindow.firstElement,
      code_first: codeWindow.firstElement,
      code_words: shape.codeWords,
      code_bits: codec.codeBits,
      bits_first: bitWindow.firstElement,
      bit_words: shape.bitWords,
      dense_first: denseWindow.firstElement,
      dense_words: shape.denseWords,
      counts_first: UNIVERSAL_WORK_HEADER_WORDS,
      records_first: UNIVERSAL_WORK_HEADER_WORDS + 2 * shape.cols,
      record_capacity: shape.recordCapacity,
      root_count: codec.spec.escapes.rootCount,
      q: codec.q,
      nonce_lo: shape.nonce.lo,
      nonce_hi: shape.nonce.hi,
      fixed_limit: UNIVERSAL_FIXED_LIMIT,
      numerator: universalNumerator(shape.length, codec.beta),
      runtime_zero: 0,
      first_stride: REDUCTION_LANES / 2,
    });
    pass.setBindGroup(
      0,
      createKernelBindGroup(device, layout, label, [
        { buffer: scratch.uniform(label, params) },
        { buffer: args.roots },
        windowBinding(args.rotated, rotatedWindow),
        windowBinding(args.exponents, exponentWindow),
        windowBinding(args.codes, codeWindow),
        windowBinding(args.escapeBits, bitWindow),
        windowBinding(args.denseIds, denseWindow),
        windowBinding(args.side, normWindow),
        { buffer: args.work },
      ]),
    );
    const [x, y] = workgroupGrid(count, device.limits.maxComputeWorkgroupsPerDimension);
    pass.dispatchWorkgroups(x, y);
  }
  pass.end();
}

/** Arguments of {@link dispatchUniversalCompact} (whole buffers; all columns in one dispatch). */
export interface UniversalCompactArgs {
  readonly shape: UniversalEncodeShape;
  readonly escapeBits: GPUBuffer;
  readonly denseIds: GPUBuffer;
  /** u32 per column: the escape slot of the column's first escape. */
  readonly columnStarts: GPUBuffer;
  /** Written: u32 per escape-bit word. */
  readonly escapeStarts: GPUBuffer;
  /** OR-ed into (cleared by the caller): 8 bits per escape. */
  readonly escapeIds: GPUBuffer;
}

/** Records pass B: escape starts and the escape-id stream from the dense ids. */
export function dispatchUniversalCompact(device: GPUDevice, encoder: GPUCommandEncoder, scratch: GpuScratch, args: UniversalCompactArgs): void {
  const { shape } = args;
  checkBufferRange(args.escapeBits, 0, 4 * shape.bitWords * shape.cols, 'universal compact: escape bits');
  checkBufferRange(args.denseIds, 0, 4 * shape.denseWords * shape.cols, 'universal compact: dense ids');
  checkBufferRange(args.columnStarts, 0, 4 * shape.cols, 'universal compact: column starts');
  checkBufferRange(args.escapeStarts, 0, 4 * shape.bitWords * shape.cols, 'universal compact: escape starts');
  const limit = device.limits.maxStorageBufferBindingSize;
  for (const [buffer, what] of [
    [args.denseIds, 'dense ids'],
    [args.escapeIds, 'escape ids'],
  ] as const) {
    check(buffer.size <= limit, () => `universal compact: the ${what} (${buffer.size} bytes) exceed one storage binding (${limit}); quantize fewer columns at a time`);
  }
  const { layout, pipeline } = compactPipelines.get(device);
  const label = 'universal compact';
  const params = CompactParams.pack({ cols: shape.cols, bit_words: shape.bitWords, dense_words: shape.denseWords });
  const pass = encoder.beginComputePass({ label });
  pass.setPipeline(pipeline);
  pass.setBindGroup(
    0,
    createKernelBindGroup(device, layout, label, [
      { buffer: scratch.uniform(label, params) },
      { buffer: args.escapeBits },
      { buffer: args.denseIds },
      { buffer: args.columnStarts },
      { buffer: args.escapeStarts },
      { buffer: args.escapeIds },
    ]),
  );
  const [x, y] = workgroupGrid(shape.cols, device.limits.maxComputeWorkgroupsPerDimension);
  pass.dispatchWorkgroups(x, y);
  pass.end();
}

/** BufferUsage of the encoder's intermediate buffers. */
export const UNIVERSAL_WORK_USAGE = /*#__PURE__*/ (() => BufferUsage.STORAGE | BufferUsage.COPY_DST | BufferUsage.COPY_SRC)();
