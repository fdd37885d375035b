import latticeDecodeSource from '../../../shaders/lattice_decode.wgsl?raw';
import dequantizeSource from '../../../shaders/lattice_dequantize.wgsl?raw';
import { check, describeValue } from '../../errors.js';
import { STORAGE_USAGE } from '../buffers.js';
import { checkBufferRange } from '../bufferRange.js';
import type { Matrix } from '../../matrix.js';
import { schemeLattice } from '../../quantize/quantize.js';
import { isRotationLength, rotationLengthsText } from '../../rotation/hadamard.js';
import {
  checkGpuDeterministicMatrix,
  columnRanges,
  gatherColumnSide,
  latticeId,
  multipleWords,
  operandColumnsPerBinding,
  operandWindows,
  operandWordsPerColumn,
  type GpuDeterministicMatrix,
  deterministicColumnUnit,
} from '../latticeOperand.js';
import { createKernelBindGroup, createKernelPipeline, KernelPipelines, windowBinding } from '../pipelines.js';
import { runAndRead } from '../runAndRead.js';
import type { GpuScratch } from '../scratch.js';
import { UniformLayout } from '../uniformLayout.js';
import { bindingCap, bindingWindow, itemsPerBinding, workgroupGrid } from '../workSplit.js';
import { dequantizeOptionsSnapshot, dispatchHadamardInverse, type HadamardOptions } from './hadamard.js';

/*
 * Codes → f32 on the GPU (shaders/lattice_dequantize.wgsl): every column decoded into the rotated
 * domain, as `decodeRotated` (src/product/decodeRotated.ts) does on the CPU, for D3, E8 and Z^8
 * schemes. `latticeDequantize` goes back to the original basis: the inverse rotation on the GPU
 * (`dispatchHadamardInverse`), the column means on the host after the one read-back.
 */

/** Invocations per workgroup of shaders/lattice_dequantize.wgsl. */
export const LATTICE_DEQUANTIZE_THREADS = 256;

/** The kernel's uniform struct (`params`); its WGSL is generated and put in front of the kernel. */
const Params = /*#__PURE__*/ new UniformLayout('DequantizeParams', {
  cols: 'u32', // columns in this dispatch
  length: 'u32', // N: entries per output column
  kept: 'u32', // keptLength
  blocks: 'u32', // blocks per column
  lattice: 'u32', // LATTICE_D3, LATTICE_E8 or LATTICE_Z8
  q: 'u32',
  dim: 'u32', // block dimension: 3 or 8
  code_first: 'u32', // word offset of this dispatch's first column in the codes binding
  code_words: 'u32', // code words per column
  code_bits: 'u32',
  index_first: 'u32',
  index_words: 'u32',
  index_bits: 'u32',
  out_first: 'u32', // element offset of this dispatch's first output column
  has_gains: 'u32',
  column_unit: 'f32', // unit / (pointScale · √N)
  normalize: 'u32', // 1: decode with the mantissa of ν·γ, write its exponent
  exponent_first: 'u32', // index in `exponents` of this dispatch's first column
  multiples: 'array<vec4<i32>, 4>', // k_j of the scale grid (MAX_GPU_MULTIPLES, zeros past the grid)
});

/** One pipeline per device (no compile-time variants), built on first use. */
const pipelines = /*#__PURE__*/ new KernelPipelines({
  label: 'lattice dequantize',
  bindings: [
    'uniform',
    'read-only-storage', // codes
    'read-only-storage', // scale indices
    'read-only-storage', // norms, gains
    'storage', // output
    'storage', // column exponents (with normalizeColumns)
  ],
  compile: (device, pipelineLayout) =>
    createKernelPipeline(device, pipelineLayout, {
      label: 'lattice dequantize',
      code: `${latticeDecodeSource}\n${Params.wgsl()}\n${dequantizeSource}`,
    }),
});

/** Arguments of `dispatchLatticeDequantize`. */
export interface LatticeDequantizeArgs {
  /** The quantized matrix (D3, E8 or Z^8 scheme). */
  readonly m: GpuDeterministicMatrix;
  /** length × cols column-major f32 (written): the decoded rotated columns, zeros past keptLength. */
  readonly output: GPUBuffer;
  /** Byte offset of the output in its buffer (a multiple of 4). */
  readonly outputOffset?: number;
  /** Largest storage binding to use, in bytes (default: the device's limit). */
  readonly maxBindingBytes?: number;
  /**
   * For products: decode with the mantissa of each column's scale ν·γ and write its binary exponent to
   * this buffer (cols i32); `dispatchProductEpilogue` applies the exponents back exactly.
   */
  readonly normalizeColumns?: GPUBuffer;
}

/**
 * Records the decoding of every column of `m` into the rotated domain: output column j =
 * (ν_j/√N)·γ_j·(unit/s)·k·leader, block by block (what `decodeRotated` computes on the CPU, in f32).
 * The output needs STORAGE and COPY_DST usage (with time-sharing its tail is cleared first). Columns
 * are split across dispatches when they exceed one binding. Scratch buffers go into `scratch`.
 *
 * @example
 * const scratch = new GpuScratch(device);
 * const encoder = device.createCommandEncoder({ label: 'dequantize' });
 * dispatchLatticeDequantize(device, encoder, scratch, { m: gpuW, output }); // output: 4·length·cols bytes
 * device.queue.submit([encoder.finish()]);
 * scratch.destroy();
 */
export function dispatchLatticeDequantize(device: GPUDevice, encoder: GPUCommandEncoder, scratch: GpuScratch, args: LatticeDequantizeArgs): void {
  const { m } = args;
  checkGpuDeterministicMatrix(m, 'quantized matrix');
  const outputOffset = args.outputOffset ?? 0;
  const outputBytes = 4 * m.length * m.cols;
  check(
    Number.isInteger(outputOffset) && outputOffset >= 0 && outputOffset % 4 === 0,
    () => `dequantize: output offset must be a non-negative multiple of 4, got ${describeValue(outputOffset)}`,
  );
  check(
    outputOffset + outputBytes <= args.output.size,
    () => `dequantize: the output needs ${outputBytes} bytes at offset ${outputOffset}, but its buffer has ${args.output.size}`,
  );
  const lattice = schemeLattice(m.scheme);
  const dim = lattice.dimension;
  if (m.blocksPerColumn * dim < m.length) encoder.clearBuffer(args.output, outputOffset, outputBytes);
  if (args.normalizeColumns) checkBufferRange(args.normalizeColumns, 0, 4 * m.cols, 'dequantize: column exponents');
  const exponents = args.normalizeColumns ?? scratch.buffer('dequantize: unused exponents', 4, STORAGE_USAGE);

  const alignment = device.limits.minStorageBufferOffsetAlignment;
  const maxBinding = bindingCap(device, args.maxBindingBytes, 'dispatchLatticeDequantize');
  const words = operandWordsPerColumn(m);
  const maxGroups = device.limits.maxComputeWorkgroupsPerDimension;
  const ranges = columnRanges(
    m.cols,
    Math.min(
      operandColumnsPerBinding(m, maxBinding, alignment),
      itemsPerBinding(4 * m.length, maxBinding, alignment),
      Math.max(1, Math.floor((maxGroups * maxGroups * LATTICE_DEQUANTIZE_THREADS) / words.codes)),
    ),
  );
  const sides = ranges.map((r) => gatherColumnSide(encoder, scratch, m, r.first, r.count, `dequantize columns ${r.first}…`));
  const columnUnit = deterministicColumnUnit(m);
  const { layout, pipeline } = pipelines.get(device);

  const pass = encoder.beginComputePass({ label: 'lattice dequantize' });
  pass.setPipeline(pipeline);
  ranges.forEach((range, chunk) => {
    const windows = operandWindows(m, range.first, range.count, alignment);
    const outWindow = bindingWindow(outputOffset + 4 * m.length * range.first, 4 * m.length * range.count, alignment);
    const side = sides[chunk] as (typeof sides)[number];
    const label = `lattice dequantize columns ${range.first}…${range.first + range.count - 1}`;
    const params = Params.pack({
      cols: range.count,
      length: m.length,
      kept: m.keptLength,
      blocks: m.blocksPerColumn,
      lattice: latticeId(m.scheme),
      q: m.scheme.q,
      dim,
      code_first: windows.codes.firstElement,
      code_words: words.codes,
      code_bits: m.codeBits,
      index_first: windows.scaleIndices.firstElement,
      index_words: words.scaleIndices,
      index_bits: m.scaleIndexBits,
      out_first: outWindow.firstElement,
      has_gains: side.hasGains ? 1 : 0,
      column_unit: columnUnit,
      normalize: args.normalizeColumns ? 1 : 0,
      exponent_first: range.first,
      multiples: multipleWords(m),
    });
    pass.setBindGroup(0, createKernelBindGroup(device, layout, label, [
      { buffer: scratch.uniform(`${label} params`, params) },
      windowBinding(m.codes, windows.codes),
      windowBinding(m.scaleIndices, windows.scaleIndices),
      { buffer: side.buffer },
      windowBinding(args.output, outWindow),
      { buffer: exponents },
    ]));
    const [x, y] = workgroupGrid(Math.ceil((range.count * words.codes) / LATTICE_DEQUANTIZE_THREADS), maxGroups);
    pass.dispatchWorkgroups(x, y);
  });
  pass.end();
}

/**
 * The rotated-domain decode of `m` on the GPU, read back: a Float32Array of `cols × length`,
 * column-major (the f32 counterpart of `decodeRotated`). For tests and users.
 *
 * @example
 * const rotated = await latticeDequantizeRotated(device, gpuW); // ≈ decodeRotated(qW)
 */
export async function latticeDequantizeRotated(
  device: GPUDevice,
  m: GpuDeterministicMatrix,
  options: Pick<LatticeDequantizeArgs, 'maxBindingBytes'> = {},
): Promise<Float32Array> {
  const outputBytes = 4 * m.length * m.cols;
  const data = await runAndRead(device, 'lattice dequantize', outputBytes, (run) => {
    const output = run.storage('dequantized (rotated)', outputBytes);
    dispatchLatticeDequantize(device, run.encoder, run.scratch, { m, output, ...options });
    return output;
  });
  return new Float32Array(data);
}

/** Options of `latticeDequantize`. */
export interface LatticeDequantizeOptions extends Pick<LatticeDequantizeArgs, 'maxBindingBytes'> {
  /** Options of the inverse rotation (e.g. `subgroups: false` forces its workgroup-memory path). */
  readonly rotation?: Omit<HadamardOptions, 'maxBindingBytes'>;
}

/**
 * The matrix reconstructed from its codes (as the CPU `dequantize`), with one read-back: the GPU
 * decodes the rotated columns (`dispatchLatticeDequantize`), undoes the rotation
 * (`dispatchHadamardInverse`, bit for bit `RandomizedHadamard.inverse`) and copies the column means
 * behind the result; the host adds the means (one f32 addition per entry, as `dequantize` does; on
 * the GPU it would take a kernel of its own for no gain, since the result is read back anyway).
 *
 * @example
 * const approx = await latticeDequantize(device, gpuW); // rows × cols ≈ dequantize(qW)
 */
export async function latticeDequantize(device: GPUDevice, m: GpuDeterministicMatrix, options: LatticeDequantizeOptions = {}): Promise<Matrix> {
  checkGpuDeterministicMatrix(m, 'quantized matrix');
  const { rows, cols, length } = m;
  check(
    m.rotate ? isRotationLength(rows, length) : length === rows,
    () =>
      `dequantize: length ${length} does not match ${rows} rows ` +
      `(expected ${m.rotate ? `a rotated length of ${rows} rows, ${rotationLengthsText(rows)}` : 'rows, without rotation'})`,
  );
  const matrixBytes = 4 * rows * cols;
  const meansBytes = m.means ? 4 * cols : 0;
  const { maxBindingBytes, rotation } = dequantizeOptionsSnapshot(options, 'latticeDequantize');
  const bytes = await runAndRead(device, 'lattice dequantize', matrixBytes + meansBytes, (run) => {
    // Matrix (rows × cols) first, then the means.
    const result = run.storage('dequantized', matrixBytes + meansBytes);
    if (m.rotate) {
      const rotated = run.storage('dequantized (rotated)', 4 * length * cols);
      dispatchLatticeDequantize(device, run.encoder, run.scratch, { m, output: rotated, maxBindingBytes });
      dispatchHadamardInverse(device, run.encoder, run.scratch, {
        ...rotation,
        input: rotated,
        output: result,
        rows,
        length,
        cols,
        seed: m.seed,
        maxBindingBytes,
      });
    } else {
      dispatchLatticeDequantize(device, run.encoder, run.scratch, { m, output: result, maxBindingBytes });
    }
    if (m.means) run.encoder.copyBufferToBuffer(m.means, 0, result, matrixBytes, meansBytes);
    return result;
  });
  const data = new Float32Array(bytes, 0, rows * cols);
  if (m.means) {
    const means = new Float32Array(bytes, matrixBytes, cols);
    for (let j = 0; j < cols; j++) {
      const mean = means[j] as number;
      // A Float32Array store rounds the float64 sum of two f32 values exactly like an f32 addition.
      for (let i = j * rows; i < (j + 1) * rows; i++) data[i] = (data[i] as number) + mean;
    }
  }
  return { rows, cols, data };
}
