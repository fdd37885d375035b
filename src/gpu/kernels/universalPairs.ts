import pairSplitSource from '../../../shaders/pair_split.wgsl?raw';
import pairsSource from '../../../shaders/universal_pairs.wgsl?raw';
import { latticeSpec, type LatticeName } from '../../quantize/latticeSpec.js';
import { checkPairRadixBits, PAIR_UNIT, PAIR_UNIT_WORDS } from '../../quantize/universalPairs.js';
import { checkBufferRange } from '../bufferRange.js';
import { columnRanges } from '../latticeOperand.js';
import { createKernelBindGroup, createKernelPipeline, KernelPipelines, windowBinding } from '../pipelines.js';
import { runAndRead } from '../runAndRead.js';
import type { GpuScratch } from '../scratch.js';
import { UniformLayout } from '../uniformLayout.js';
import { checkGpuUniversalMatrix, type GpuUniversalMatrix } from '../universalOperand.js';
import { bindingCap, bindingWindow, itemsPerBinding, workgroupGrid } from '../workSplit.js';
import { UNIVERSAL_OPERAND_BINDINGS, UNIVERSAL_OPERAND_MEMBERS, universalColumnsPerBinding, universalDecodeWgsl, universalOperandWindows } from './universalWgsl.js';

/*
 * Universal codes → the pair form of the int8 product (shaders/universal_pairs.wgsl; the form and its
 * CPU twin `universalPairColumns` are in src/quantize/universalPairs.ts): one workgroup per column,
 * which decodes its units, splits each c = λ·DITHER_GRID/pointScale − Z into int8 halves, and writes
 * the column's factor and exponent. Both go in one `scales` buffer: with the operand's 5 buffers, its
 * norms and the pair form, that keeps the kernel within WebGPU's default 8 storage buffers per stage.
 * The product (pairMatmul.ts) reads the form.
 */

/** Bytes of one unit (8 coordinates) of the pair form: one vec4<u32>. */
export const PAIR_UNIT_BYTES = 4 * PAIR_UNIT_WORDS;

// A pure IIFE, not a pure `new`: bundlers keep an argument with a spread (it may run getters).
const Params = /*#__PURE__*/ (() => new UniformLayout('UniversalPairsParams', {
  ...UNIVERSAL_OPERAND_MEMBERS,
  cols: 'u32', // columns in this dispatch
  kept: 'u32', // keptLength: coordinates at and past it are zero
  units: 'u32', // units per column
  out_first: 'u32', // vec4 index of this dispatch's first column in the pairs binding
  factor_first: 'u32', // global index of this dispatch's first column (factors, exponents)
  total_cols: 'u32', // the matrix's columns: the exponents follow the factors in `scales`
  radix_bits: 'u32', // r: c = 2^r·h + l
}))();

/**
 * shaders/pair_split.wgsl (round_shift, pair_limit, pair_shift, pack_unit) after its constant, taken
 * from the CPU module: what the pair-form kernel and the tests' probe compile.
 */
export function pairSplitWgsl(): string {
  return `const PAIR_UNIT: u32 = ${PAIR_UNIT}u;\n${pairSplitSource}`;
}

/** One pipeline per lattice and device. */
// A pure IIFE, not a pure `new`: bundlers keep an argument with a spread (it may run getters).
const pipelines = /*#__PURE__*/ (() => new KernelPipelines({
  label: 'universal pairs',
  bindings: [
    'uniform',
    ...UNIVERSAL_OPERAND_BINDINGS, // codes, escape bits, escape starts, escape ids, escape table
    'read-only-storage', // norms (and means)
    'storage', // pairs
    'storage', // scales: factors, then exponents (one buffer, so the kernel fits WebGPU's 8 storage buffers)
  ],
  compile: (device, pipelineLayout, lattice: LatticeName) =>
    createKernelPipeline(device, pipelineLayout, {
      label: `universal pairs ${lattice}`,
      code: `${Params.wgsl()}\n${universalDecodeWgsl(latticeSpec(lattice))}\n${pairSplitWgsl()}\n${pairsSource}`,
    }),
}))();

/** Units (vec4<u32>, 8 rotated coordinates each) per column of the pair form of a matrix of `length`. */
export function pairUnits(length: number): number {
  return Math.ceil(length / PAIR_UNIT);
}

/** Bytes of the pair form of a matrix's `cols` columns of `length`: 2 per rotated coordinate, padded to units. */
export function pairFormBytes(length: number, cols: number): number {
  return PAIR_UNIT_BYTES * pairUnits(length) * cols;
}

/** Bytes of the scales `dispatchUniversalPairs` writes for `cols` columns: a factor and an exponent each. */
export function universalPairScalesBytes(cols: number): number {
  return 8 * cols;
}

/**
 * Records a copy of the exponents in `scales` (words cols … 2·cols − 1) to `exponents` (4·cols bytes),
 * the separate buffer the product epilogue reads.
 */
export function copyPairExponents(encoder: GPUCommandEncoder, scales: GPUBuffer, exponents: GPUBuffer, cols: number): void {
  checkBufferRange(scales, 0, universalPairScalesBytes(cols), 'universal pairs: scales');
  checkBufferRange(exponents, 0, 4 * cols, 'universal pairs: exponents');
  encoder.copyBufferToBuffer(scales, 4 * cols, exponents, 0, 4 * cols);
}

/** Arguments of {@link dispatchUniversalPairs}. */
export interface UniversalPairsArgs {
  readonly m: GpuUniversalMatrix;
  /** The pair form (written from byte 0): `pairFormBytes(m.length, m.cols)` bytes. */
  readonly pairs: GPUBuffer;
  /**
   * The columns' scales (written): f_j·2^s_j (f32) at word j, then e_j (i32; ν_j = f_j·2^e_j) at word
   * cols + j, `universalPairScalesBytes(cols)` bytes. The product binds it as its factors; the
   * epilogue takes the exponents from a copy (`copyPairExponents`).
   */
  readonly scales: GPUBuffer;
  /** r of the radix 2^r (`pairRadixBits` of the product's two schemes; both operands use one). */
  readonly radixBits: number;
  /** Largest storage binding to use, in bytes (default: the device's limit; tests pass less to exercise splitting). */
  readonly maxBindingBytes?: number;
}

/**
 * Records the pair form of `m` (see src/quantize/universalPairs.ts). Columns are split across
 * dispatches when their codes or pairs exceed one binding, or the grid exceeds the dispatch limit.
 *
 * @example
 * dispatchUniversalPairs(device, encoder, scratch, { m: gpuA, pairs, scales, radixBits: pairRadixBits(12, 12) });
 */
export function dispatchUniversalPairs(device: GPUDevice, encoder: GPUCommandEncoder, scratch: GpuScratch, args: UniversalPairsArgs): void {
  const { m } = args;
  const layout = checkGpuUniversalMatrix(m, 'quantized matrix');
  const units = pairUnits(m.length);
  checkPairRadixBits(args.radixBits, 'universal pairs');
  checkBufferRange(args.pairs, 0, pairFormBytes(m.length, m.cols), 'universal pairs: pairs');
  checkBufferRange(args.scales, 0, universalPairScalesBytes(m.cols), 'universal pairs: scales');
  const alignment = device.limits.minStorageBufferOffsetAlignment;
  const maxBinding = bindingCap(device, args.maxBindingBytes, 'universal pairs');
  const maxGroups = device.limits.maxComputeWorkgroupsPerDimension;
  const ranges = columnRanges(
    m.cols,
    Math.min(universalColumnsPerBinding(layout, maxBinding, alignment), itemsPerBinding(PAIR_UNIT_BYTES * units, maxBinding, alignment), maxGroups * maxGroups),
  );
  const { layout: bindGroupLayout, pipeline } = pipelines.get(device, m.scheme.lattice);
  const pass = encoder.beginComputePass({ label: 'universal pairs' });
  pass.setPipeline(pipeline);
  for (const range of ranges) {
    const windows = universalOperandWindows(m, layout, range.first, range.count, alignment);
    const pairsWindow = bindingWindow(PAIR_UNIT_BYTES * units * range.first, PAIR_UNIT_BYTES * units * range.count, alignment);
    const label = `universal pairs columns ${range.first}…${range.first + range.count - 1}`;
    const params = Params.pack({
      ...windows.uniforms,
      cols: range.count,
      kept: m.keptLength,
      units,
      out_first: pairsWindow.firstElement / PAIR_UNIT_WORDS, // a window starts at a multiple of 16 bytes
      factor_first: range.first,
      total_cols: m.cols,
      radix_bits: args.radixBits,
    });
    pass.setBindGroup(
      0,
      createKernelBindGroup(device, bindGroupLayout, label, [
        { buffer: scratch.uniform(`${label} params`, params) },
        ...windows.bindings,
        { buffer: m.side },
        windowBinding(args.pairs, pairsWindow),
        { buffer: args.scales },
      ]),
    );
    const [x, y] = workgroupGrid(range.count, maxGroups);
    pass.dispatchWorkgroups(x, y);
  }
  pass.end();
}

/** The pair form of `m` made on the GPU and read back (for tests: it equals `universalPairColumns` bit for bit). */
export async function universalPairsOnGpu(
  device: GPUDevice,
  m: GpuUniversalMatrix,
  options: Pick<UniversalPairsArgs, 'radixBits' | 'maxBindingBytes'>,
): Promise<{ words: Uint32Array; factors: Float32Array; exponents: Int32Array }> {
  const pairBytes = pairFormBytes(m.length, m.cols);
  const scalesBytes = universalPairScalesBytes(m.cols);
  const data = await runAndRead(device, 'universal pairs', pairBytes + scalesBytes, (run) => {
    const out = run.storage('universal pairs (read back)', pairBytes + scalesBytes);
    const pairs = run.storage('universal pairs', pairBytes);
    const scales = run.storage('universal pairs scales', scalesBytes);
    dispatchUniversalPairs(device, run.encoder, run.scratch, { m, pairs, scales, ...options });
    run.encoder.copyBufferToBuffer(pairs, 0, out, 0, pairBytes);
    run.encoder.copyBufferToBuffer(scales, 0, out, pairBytes, scalesBytes);
    return out;
  });
  return {
    words: new Uint32Array(data, 0, pairBytes / 4),
    factors: new Float32Array(data, pairBytes, m.cols),
    exponents: new Int32Array(data, pairBytes + 4 * m.cols, m.cols),
  };
}
