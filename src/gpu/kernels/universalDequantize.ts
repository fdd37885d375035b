import { checkDispatch } from './dispatchChecks.js';
import { checkOptionsObject } from '../../quantize/strictOptions.js';
import dequantizeSource from '../../../shaders/universal_dequantize.wgsl?raw';
import { check, describeValue } from '../../errors.js';
import type { Matrix } from '../../matrix.js';
import { latticeSpec, type LatticeName } from '../../quantize/latticeSpec.js';
import { STORAGE_USAGE } from '../buffers.js';
import { checkBufferRange } from '../bufferRange.js';
import { columnRanges, checkOutputNotRead, latticeMatrixFields } from '../latticeOperand.js';
import { createKernelBindGroup, createKernelPipeline, KernelPipelines, windowBinding } from '../pipelines.js';
import { runAndRead } from '../runAndRead.js';
import type { GpuScratch } from '../scratch.js';
import { UniformLayout } from '../uniformLayout.js';
import { checkGpuUniversalMatrix, universalDitherUnit, universalPointUnit, type GpuUniversalMatrix } from '../universalOperand.js';
import { bindingCap, bindingWindow, itemsPerBinding, workgroupGrid } from '../workSplit.js';
import { dequantizeOptionsSnapshot, dispatchHadamardInverse, type HadamardOptions } from './hadamard.js';
import { UNIVERSAL_OPERAND_BINDINGS, UNIVERSAL_OPERAND_MEMBERS, universalColumnsPerBinding, universalDecodeWgsl, universalOperandWindows } from './universalWgsl.js';

/*
 * Universal codes → f32 on the GPU (shaders/universal_dequantize.wgsl): every column decoded into the
 * rotated domain, as `decodeRotated` does on the CPU (in f32 here, float64 there). `universalDequantize`
 * goes back to the original basis with the GPU inverse rotation.
 */

/** Invocations per workgroup of shaders/universal_dequantize.wgsl. */
export const UNIVERSAL_DEQUANTIZE_THREADS = 256;

// A pure IIFE, not a pure `new`: bundlers keep an argument with a spread (it may run getters).
const Params = /*#__PURE__*/ (() => new UniformLayout('UniversalDequantizeParams', {
  ...UNIVERSAL_OPERAND_MEMBERS,
  cols: 'u32', // columns in this dispatch
  length: 'u32',
  kept: 'u32',
  out_first: 'u32',
  point_unit: 'f32', // β / (pointScale · √N)
  dither_unit: 'f32', // β / (DITHER_GRID · √N)
  normalize: 'u32', // 1: decode with the norms' mantissas, write their exponents
  exponent_first: 'u32', // index in `exponents` of this dispatch's first column
}))();

/** One pipeline per lattice and device. */
// A pure IIFE, not a pure `new`: bundlers keep an argument with a spread (it may run getters).
const pipelines = /*#__PURE__*/ (() => new KernelPipelines({
  label: 'universal dequantize',
  bindings: [
    'uniform',
    ...UNIVERSAL_OPERAND_BINDINGS, // codes, escape bits, escape starts, escape ids, escape table
    'read-only-storage', // norms (and means)
    'storage', // output
    'storage', // column exponents (with normalizeColumns)
  ],
  compile: (device, pipelineLayout, lattice: LatticeName) =>
    createKernelPipeline(device, pipelineLayout, {
      label: `universal dequantize ${lattice}`,
      code: `${Params.wgsl()}\n${universalDecodeWgsl(latticeSpec(lattice))}\n${dequantizeSource}`,
    }),
}))();

/** Arguments of {@link dispatchUniversalDequantize}. */
export interface UniversalDequantizeArgs {
  readonly m: GpuUniversalMatrix;
  /** length × cols column-major f32 (written): the decoded rotated columns, zeros past keptLength. */
  readonly output: GPUBuffer;
  /** Byte offset of the output (a multiple of 4). */
  readonly outputOffset?: number;
  /** Largest storage binding to use, in bytes (default: the device's limit). */
  readonly maxBindingBytes?: number;
  /**
   * For products: decode every column with the mantissa of its norm (in [0.5, 1)) and write the
   * norm's binary exponent to this buffer (cols i32), so that the f32 product of decoded columns is
   * free of overflow and underflow; `dispatchProductEpilogue` applies the exponents back exactly.
   */
  readonly normalizeColumns?: GPUBuffer;
}

/** The keys of {@link UniversalDequantizeArgs}: the dispatch refuses any other (a misspelt offset was ignored). */
const DEQUANTIZE_ARG_KEYS = ['m', 'output', 'outputOffset', 'maxBindingBytes', 'normalizeColumns'] as const satisfies readonly (keyof UniversalDequantizeArgs)[];

/**
 * Records the decoding of every column of `m` into the rotated domain (what `decodeRotated` computes
 * on the CPU). The output needs STORAGE and COPY_DST usage. Columns are split across dispatches when
 * they exceed one binding or the dispatch grid.
 *
 * @example
 * dispatchUniversalDequantize(device, encoder, scratch, { m: gpuW, output }); // output: 4·length·cols bytes
 */
export function dispatchUniversalDequantize(device: GPUDevice, encoder: GPUCommandEncoder, scratch: GpuScratch, args: UniversalDequantizeArgs): void {
  checkDispatch(device, encoder, scratch, args, 'dispatchUniversalDequantize');
  checkOptionsObject(args, DEQUANTIZE_ARG_KEYS, 'dispatchUniversalDequantize arguments');
  const { m } = args;
  const layout = checkGpuUniversalMatrix(m, 'quantized matrix');
  const outputOffset = args.outputOffset ?? 0;
  checkBufferRange(args.output, outputOffset, 4 * m.length * m.cols, 'universal dequantize: output');
  checkOutputNotRead(args.output, [...latticeMatrixFields(m), ['normalizeColumns', args.normalizeColumns ?? null]], 'universal dequantize: output');
  const d = layout.codec.spec.dimension;
  if (m.blocksPerColumn * d < m.length) encoder.clearBuffer(args.output, outputOffset, 4 * m.length * m.cols);
  if (args.normalizeColumns) checkBufferRange(args.normalizeColumns, 0, 4 * m.cols, 'universal dequantize: column exponents');
  const exponents = args.normalizeColumns ?? scratch.buffer('universal dequantize: unused exponents', 4, STORAGE_USAGE);

  const alignment = device.limits.minStorageBufferOffsetAlignment;
  const maxBinding = bindingCap(device, args.maxBindingBytes, 'dispatchUniversalDequantize');
  const maxGroups = device.limits.maxComputeWorkgroupsPerDimension;
  const ranges = columnRanges(
    m.cols,
    Math.min(
      universalColumnsPerBinding(layout, maxBinding, alignment),
      itemsPerBinding(4 * m.length, maxBinding, alignment),
      Math.max(1, Math.floor((maxGroups * maxGroups * UNIVERSAL_DEQUANTIZE_THREADS) / m.blocksPerColumn)),
    ),
  );
  const { layout: bindGroupLayout, pipeline } = pipelines.get(device, m.scheme.lattice);
  const pass = encoder.beginComputePass({ label: 'universal dequantize' });
  pass.setPipeline(pipeline);
  for (const range of ranges) {
    const windows = universalOperandWindows(m, layout, range.first, range.count, alignment);
    const outWindow = bindingWindow(outputOffset + 4 * m.length * range.first, 4 * m.length * range.count, alignment);
    const label = `universal dequantize columns ${range.first}…${range.first + range.count - 1}`;
    const params = Params.pack({
      ...windows.uniforms,
      cols: range.count,
      length: m.length,
      kept: m.keptLength,
      out_first: outWindow.firstElement,
      point_unit: universalPointUnit(m),
      dither_unit: universalDitherUnit(m),
      normalize: args.normalizeColumns ? 1 : 0,
      exponent_first: range.first,
    });
    pass.setBindGroup(
      0,
      createKernelBindGroup(device, bindGroupLayout, label, [
        { buffer: scratch.uniform(`${label} params`, params) },
        ...windows.bindings,
        { buffer: m.side },
        windowBinding(args.output, outWindow),
        { buffer: exponents },
      ]),
    );
    const [x, y] = workgroupGrid(Math.ceil((range.count * m.blocksPerColumn) / UNIVERSAL_DEQUANTIZE_THREADS), maxGroups);
    pass.dispatchWorkgroups(x, y);
  }
  pass.end();
}

/**
 * The rotated-domain decode of `m` on the GPU, read back (the f32 counterpart of `decodeRotated`).
 *
 * @example
 * const rotated = await universalDequantizeRotated(device, gpuW); // ≈ decodeRotated(qW)
 */
export async function universalDequantizeRotated(device: GPUDevice, m: GpuUniversalMatrix, options: Pick<UniversalDequantizeArgs, 'maxBindingBytes'> = {}): Promise<Float32Array> {
  const outputBytes = 4 * m.length * m.cols;
  const data = await runAndRead(device, 'universal dequantize', outputBytes, (run) => {
    const output = run.storage('dequantized (rotated)', outputBytes);
    dispatchUniversalDequantize(device, run.encoder, run.scratch, { m, output, ...options });
    return output;
  });
  return new Float32Array(data);
}

/** Options of {@link universalDequantize}. */
export interface UniversalDequantizeOptions extends Pick<UniversalDequantizeArgs, 'maxBindingBytes'> {
  readonly rotation?: Omit<HadamardOptions, 'maxBindingBytes'>;
}

/**
 * The matrix reconstructed from its universal codes (as the CPU `dequantize`), with one read-back:
 * decoded on the GPU, rotated back on the GPU, the column means added on the host.
 *
 * @example
 * const approx = await universalDequantize(device, gpuW); // rows × cols ≈ dequantize(qW)
 */
export async function universalDequantize(device: GPUDevice, m: GpuUniversalMatrix, options: UniversalDequantizeOptions = {}): Promise<Matrix> {
  checkGpuUniversalMatrix(m, 'quantized matrix');
  const { rows, cols, length } = m;
  check(m.rotate || length === rows, () => `dequantize: an unrotated matrix has length = rows, got ${describeValue(length)} and ${rows}`);
  const matrixBytes = 4 * rows * cols;
  const meansBytes = m.hasMeans ? 4 * cols : 0;
  const { maxBindingBytes, rotation } = dequantizeOptionsSnapshot(options, 'universalDequantize');
  const bytes = await runAndRead(device, 'universal dequantize', matrixBytes + meansBytes, (run) => {
    const result = run.storage('dequantized', matrixBytes + meansBytes);
    if (m.rotate) {
      const rotated = run.storage('dequantized (rotated)', 4 * length * cols);
      dispatchUniversalDequantize(device, run.encoder, run.scratch, { m, output: rotated, maxBindingBytes });
      dispatchHadamardInverse(device, run.encoder, run.scratch, { ...rotation, input: rotated, output: result, rows, length, cols, seed: m.seed, maxBindingBytes });
    } else {
      dispatchUniversalDequantize(device, run.encoder, run.scratch, { m, output: result, maxBindingBytes });
    }
    if (m.hasMeans) run.encoder.copyBufferToBuffer(m.side, 4 * cols, result, matrixBytes, meansBytes);
    return result;
  });
  const data = new Float32Array(bytes, 0, rows * cols);
  if (m.hasMeans) {
    const means = new Float32Array(bytes, matrixBytes, cols);
    for (let j = 0; j < cols; j++) {
      const mean = means[j] as number;
      for (let i = j * rows; i < (j + 1) * rows; i++) data[i] = (data[i] as number) + mean;
    }
  }
  return { rows, cols, data };
}
