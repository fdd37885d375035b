import columnPrepSource from '../../../shaders/column_prep.wgsl?raw';
import { check, checkPositiveInteger } from '../../errors.js';
import { REDUCTION_LANES } from '../../quantize/columnScaling.js';
import { checkBufferRange } from '../bufferRange.js';
import { BufferUsage } from '../buffers.js';
import { createKernelBindGroup, createKernelPipeline, KernelPipelines, windowBinding } from '../pipelines.js';
import type { GpuScratch } from '../scratch.js';
import { UniformLayout } from '../uniformLayout.js';
import { bindingCap, bindingWindow, itemsPerBinding, workgroupGrid } from '../workSplit.js';
import { f32ScalingWgsl } from './f32Scaling.js';

/*
 * Column preparation on the GPU (shaders/column_prep.wgsl): power-of-two scaling so that max |x_i| ∈
 * [1, 2) and optional centring, bit for bit as `prepareColumn` (src/quantize/prepareColumn.ts) before
 * its rotation. The rotation (kernels/hadamard.ts) and the lattice encoder (kernels/latticeEncode.ts)
 * follow; src/gpu/gpuQuantize.ts chains the three.
 */

/**
 * Invocations per workgroup of the prep and encode kernels (THREADS in their WGSL): invocation l is
 * lane l of the canonical 256-lane sums of src/quantize/columnScaling.ts.
 */
export const QUANTIZE_WORKGROUP_LANES = 256;

/** Throws unless the kernels' lanes are the CPU's reduction lanes (the canonical sum order). */
export function checkReductionLanes(): void {
  check(
    REDUCTION_LANES === QUANTIZE_WORKGROUP_LANES,
    () => `the GPU quantizer sums over ${QUANTIZE_WORKGROUP_LANES} lanes but the CPU reference over ${REDUCTION_LANES}`,
  );
}

/** Bytes of the status buffer shared by the prep and encode kernels: four u32 words. */
export const QUANTIZE_STATUS_BYTES = 16;

/** Word meanings of the status buffer (see shaders/column_prep.wgsl and shaders/lattice_encode.wgsl). */
export const QuantizeStatusWord = {
  /** Count of blocks that overloaded at every scale and were clipped. */
  clippedBlocks: 0,
  /** 0xffffffff − (first column with a NaN or infinite entry), or 0. */
  nonFiniteInput: 1,
  /** 0xffffffff − (first column whose norm overflows f32), or 0. */
  normOverflow: 2,
  /** 0xffffffff − (first column whose mean overflows f32), or 0. */
  meanOverflow: 3,
} as const;

/**
 * The column a status word reports (the words hold 0xffffffff − column, 0 for none), or null.
 * The universal encoder's work buffer uses the same convention for its own words.
 */
export function reportedColumn(words: Uint32Array, word: number): number | null {
  const value = words[word] as number;
  return value === 0 ? null : 0xffffffff - value;
}

/**
 * Throws what the CPU quantizer throws for the problems the column-prep kernel reported. With
 * `widenedFromF16` (the input was declared f16) a non-finite entry names the likeliest cause: f32 data
 * read as f16 halves, whose low halves are mantissa bits, about one in 32 of them an infinity or NaN.
 */
export function checkColumnPrepStatus(words: Uint32Array, widenedFromF16 = false): void {
  const nonFinite = reportedColumn(words, QuantizeStatusWord.nonFiniteInput);
  check(nonFinite === null, () => `matrix has a non-finite entry in column ${nonFinite}${widenedFromF16 ? " (the input was declared format: 'f16', 2 bytes per entry: is the buffer f32?)" : ''}`);
  const mean = reportedColumn(words, QuantizeStatusWord.meanOverflow);
  check(mean === null, () => `mean of column ${mean} exceeds the f32 range`);
  const norm = reportedColumn(words, QuantizeStatusWord.normOverflow);
  check(norm === null, () => `norm of column ${norm} exceeds the f32 range`);
}

/** The kernel's uniform struct (`params`); its WGSL is generated and put in front of the kernel. */
const Params = /*#__PURE__*/ new UniformLayout('PrepParams', {
  rows: 'u32', // n: entries of an input column
  cols: 'u32', // columns in this dispatch
  column_offset: 'u32', // global index of this dispatch's column 0 (status reports)
  center: 'u32', // 1: subtract the mean
  inverse_rows: 'f32', // fround(1/n)
  runtime_zero: 'u32', // 0 (see `unfused`)
  input_first: 'u32', // element offset of column 0 in `input`
  prepared_first: 'u32', // element offset of column 0 in `prepared`
  exponent_first: 'u32', // element offset of column 0 in `exponents`
  mean_first: 'u32', // element offset of column 0 in `means`
  first_stride: 'u32', // 128 = lanes / 2 (see the note on barrier loops in the shader)
});

/** The WGSL of the column-prep kernel: the f32 libraries, the uniform struct, the kernel. */
export function columnPrepSourceCode(): string {
  return `${f32ScalingWgsl()}\n${Params.wgsl()}\n${columnPrepSource}`;
}

/** One pipeline per device (no compile-time variants), built on first use. */
const pipelines = /*#__PURE__*/ new KernelPipelines({
  label: 'column prep',
  bindings: ['uniform', 'read-only-storage', 'storage', 'storage', 'storage', 'storage'],
  compile: (device, pipelineLayout) => createKernelPipeline(device, pipelineLayout, { label: 'column prep', code: columnPrepSourceCode() }),
});

/** Arguments of {@link dispatchColumnPrep}. Offsets are in bytes (multiples of 4). */
export interface ColumnPrepArgs {
  /** The input, rows × cols column-major f32. */
  readonly input: GPUBuffer;
  readonly inputOffset?: number;
  /** Written: the scaled (and centred) columns, rows × cols f32. A different buffer from `input`. */
  readonly prepared: GPUBuffer;
  readonly preparedOffset?: number;
  /** Written: the exponent e of each column (i32; the column was multiplied by 2^e). */
  readonly exponents: GPUBuffer;
  readonly exponentsOffset?: number;
  /** Written when centring: each column's mean μ'·2^−e (f32). Null without centring. */
  readonly means: GPUBuffer | null;
  readonly meansOffset?: number;
  /** The 16-byte status buffer (see {@link QuantizeStatusWord}); the caller clears it. */
  readonly status: GPUBuffer;
  readonly rows: number;
  readonly cols: number;
  readonly center: boolean;
  /** Global index of column 0 (for status reports when the caller splits a matrix). Default 0. */
  readonly columnOffset?: number;
  /** Largest storage binding to use, in bytes (default: the device's limit). */
  readonly maxBindingBytes?: number;
}

/**
 * Records the column preparation into `encoder`: for each column, e with max |x_i|·2^e ∈ [1, 2)
 * (0 for a zero column), v_i = x_i·2^e (exact), and with centring μ' = fround(canonicalSum · fround(1/n)),
 * v_i = fround(v_i − μ'). Identical bit for bit to the CPU's `prepareColumn` before the rotation.
 * A NaN or infinite entry, or a mean past the f32 range, is reported in the status buffer.
 * Columns are split across dispatches when they exceed one storage binding or the dispatch limit.
 *
 * @example
 * dispatchColumnPrep(device, encoder, scratch, { input, prepared, exponents, means: null, status, rows: 768, cols: 64, center: false });
 */
export function dispatchColumnPrep(device: GPUDevice, encoder: GPUCommandEncoder, scratch: GpuScratch, args: ColumnPrepArgs): void {
  const { rows, cols } = args;
  checkReductionLanes();
  checkPositiveInteger(rows, 'column prep rows');
  checkPositiveInteger(cols, 'column prep cols');
  check(args.input !== args.prepared, 'column prep: input and prepared must be different buffers');
  const inputOffset = args.inputOffset ?? 0;
  const preparedOffset = args.preparedOffset ?? 0;
  const exponentsOffset = args.exponentsOffset ?? 0;
  const meansOffset = args.meansOffset ?? 0;
  const columnOffset = args.columnOffset ?? 0;
  checkBufferRange(args.input, inputOffset, 4 * rows * cols, 'column prep: input');
  checkBufferRange(args.prepared, preparedOffset, 4 * rows * cols, 'column prep: prepared');
  checkBufferRange(args.exponents, exponentsOffset, 4 * cols, 'column prep: exponents');
  if (args.means) checkBufferRange(args.means, meansOffset, 4 * cols, 'column prep: means');
  check(args.status.size >= QUANTIZE_STATUS_BYTES, () => `column prep: the status buffer needs ${QUANTIZE_STATUS_BYTES} bytes`);
  check(!args.center || args.means !== null, 'column prep: centring needs a means buffer');

  const alignment = device.limits.minStorageBufferOffsetAlignment;
  const maxBinding = bindingCap(device, args.maxBindingBytes, 'dispatchColumnPrep');
  const columnsPerChunk = itemsPerBinding(4 * rows, maxBinding, alignment);
  const means = args.means ?? scratch.buffer('column prep (no means)', 4, BufferUsage.STORAGE);
  const { layout, pipeline } = pipelines.get(device);

  const pass = encoder.beginComputePass({ label: `column prep n = ${rows}` });
  pass.setPipeline(pipeline);
  for (let j0 = 0; j0 < cols; j0 += columnsPerChunk) {
    const count = Math.min(columnsPerChunk, cols - j0);
    const inputWindow = bindingWindow(inputOffset + 4 * rows * j0, 4 * rows * count, alignment);
    const preparedWindow = bindingWindow(preparedOffset + 4 * rows * j0, 4 * rows * count, alignment);
    const exponentWindow = bindingWindow(exponentsOffset + 4 * j0, 4 * count, alignment);
    const meanWindow = args.means ? bindingWindow(meansOffset + 4 * j0, 4 * count, alignment) : { offset: 0, size: 4, firstElement: 0 };
    const label = `column prep n = ${rows}, columns ${columnOffset + j0}…${columnOffset + j0 + count - 1}`;
    const params = Params.pack({
      rows,
      cols: count,
      column_offset: columnOffset + j0,
      center: args.center ? 1 : 0,
      inverse_rows: Math.fround(1 / rows),
      runtime_zero: 0,
      input_first: inputWindow.firstElement,
      prepared_first: preparedWindow.firstElement,
      exponent_first: exponentWindow.firstElement,
      mean_first: meanWindow.firstElement,
      first_stride: REDUCTION_LANES / 2,
    });
    const bindGroup = createKernelBindGroup(device, layout, label, [
      { buffer: scratch.uniform(label, params) },
      windowBinding(args.input, inputWindow),
      windowBinding(args.prepared, preparedWindow),
      windowBinding(args.exponents, exponentWindow),
      windowBinding(means, meanWindow),
      { buffer: args.status, offset: 0, size: QUANTIZE_STATUS_BYTES },
    ]);
    pass.setBindGroup(0, bindGroup);
    const [x, y] = workgroupGrid(count, device.limits.maxComputeWorkgroupsPerDimension);
    pass.dispatchWorkgroups(x, y);
  }
  pass.end();
}
