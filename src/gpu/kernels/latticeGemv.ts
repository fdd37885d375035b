import latticeDecodeSource from '../../../shaders/lattice_decode.wgsl?raw';
import gemvSource from '../../../shaders/lattice_gemv.wgsl?raw';
import { check, checkPositiveInteger } from '../../errors.js';
import { checkMatrix, type Matrix } from '../../matrix.js';
import { schemeLattice } from '../../quantize/quantize.js';
import { checkBufferRange } from '../bufferRange.js';
import { STORAGE_USAGE } from '../buffers.js';
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
} from '../latticeOperand.js';
import { createKernelBindGroup, KernelPipelines, windowBinding } from '../pipelines.js';
import { runAndRead } from '../runAndRead.js';
import type { GpuScratch } from '../scratch.js';
import { deviceTableBuffer } from '../tableLayout.js';
import { UniformLayout } from '../uniformLayout.js';
import { bindingWindow, itemsPerBinding } from '../workSplit.js';
import { dispatchHadamard } from './hadamard.js';

/*
 * Weight-only products on the GPU (shaders/lattice_gemv.wgsl): y = Ŵᵀx for a lattice-quantized W and
 * an f32 vector x (GEMV, the LLM decode step), and Y = ŴᵀX for several right-hand sides. The kernel
 * reads every packed code word of W once per 8 right-hand sides (consecutive lanes read consecutive
 * words of a column) and decodes in the kernel;
 * x is rotated with W's seed first (by the GPU Hadamard kernel unless the caller passes R·x). CPU
 * twin: dequantize(Ŵ)ᵀ·X.
 */

/** Invocations per workgroup and f32 staged per chunk (the shader's THREADS, X_CHUNK). */
const THREADS = 256;
const X_CHUNK = 3072;
/** Right-hand sides per workgroup: 1 for a vector, 8 for a matrix (the compile-time variants). */
type RhsTile = 1 | 8;
/** Invocations per W column: 32 for a vector (8 columns per workgroup), 8 with 8 right-hand sides (32 columns). */
function lanesFor(rhsTile: RhsTile): number {
  return rhsTile === 1 ? 32 : 8;
}

/** The kernel's uniform struct (`params`); its WGSL is generated and put in front of the kernel. */
const Params = /*#__PURE__*/ new UniformLayout('GemvParams', {
  cols: 'u32', // W columns in this dispatch
  rows: 'u32', // n: entries of an original x column
  length: 'u32', // N: entries of a rotated x column
  kept: 'u32', // keptLength
  blocks: 'u32', // blocks per W column
  lattice: 'u32', // LATTICE_D3, LATTICE_E8 or LATTICE_Z8
  q: 'u32',
  dim: 'u32', // block dimension: 3 or 8
  use_table: 'u32', // 1: D3 q = 6 leaders from the table
  code_first: 'u32', // word offset of this dispatch's first W column in the codes binding
  code_words: 'u32', // code words per column
  code_bits: 'u32',
  index_first: 'u32',
  index_words: 'u32',
  index_bits: 'u32',
  rhs: 'u32', // right-hand sides in this dispatch
  x_rotated_first: 'u32', // element offset of x̃ column 0 in its binding (columns N apart)
  x_first: 'u32', // element offset of x column 0 in its binding (columns n apart)
  chunk_words: 'u32', // code words per column per x̃ chunk
  chunk_entries: 'u32', // x̃ entries per right-hand side per chunk: chunk_words · per_word · dim
  y_first: 'u32', // element offset of Y[first W column of this dispatch, 0] in its binding
  y_stride: 'u32', // elements between Y columns (all W columns)
  has_gains: 'u32',
  has_means: 'u32',
  column_unit: 'f32', // unit / (pointScale · √N)
  multiples: 'array<vec4<i32>, 4>', // k_j of the scale grid (MAX_GPU_MULTIPLES, zeros past the grid)
});

/** The WGSL of one variant: right-hand sides per workgroup and lanes per column are the compile-time choices. */
export function latticeGemvShaderSource(rhsTile: RhsTile): string {
  return `const RHS_TILE: u32 = ${rhsTile}u;\nconst LANES: u32 = ${lanesFor(rhsTile)}u;\n${latticeDecodeSource}\n${Params.wgsl()}\n${gemvSource}`;
}

/** Per device and variant, one shader module with two pipelines: the product (`main`) and Σx (`column_sums`). */
const pipelines = /*#__PURE__*/ new KernelPipelines({
  label: 'lattice gemv',
  bindings: [
    'uniform',
    'read-only-storage', // D3 q = 6 leader table
    'read-only-storage', // W codes
    'read-only-storage', // W scale indices
    'read-only-storage', // W norms, gains, means
    'read-only-storage', // x̃ = R·x
    'read-only-storage', // x (for Σx)
    'storage', // Σx per right-hand side
    'storage', // Y
  ],
  compile: (device, pipelineLayout, rhsTile: RhsTile) => {
    const label = `lattice gemv (${rhsTile} right-hand side${rhsTile > 1 ? 's' : ''} per workgroup)`;
    const module = device.createShaderModule({ label, code: latticeGemvShaderSource(rhsTile) });
    return {
      main: device.createComputePipeline({ label, layout: pipelineLayout, compute: { module, entryPoint: 'main' } }),
      sums: device.createComputePipeline({ label: `${label}: column sums`, layout: pipelineLayout, compute: { module, entryPoint: 'column_sums' } }),
    };
  },
});

/** Arguments of `dispatchLatticeGemv`. Offsets are in bytes (multiples of 4). */
export interface LatticeGemvArgs {
  /** Ŵ: n × cols, lattice-quantized (D3, E8 or Z^8); column j gives output j. */
  readonly w: GpuDeterministicMatrix;
  /** X: n × rhs column-major f32 in the original basis (rotated here unless `xRotated` is given; read for Σx when W is centred). */
  readonly x: GPUBuffer;
  /**
   * R·X (N × rhs, N = w.length) rotated with W's seed, when the caller already has it (from offset 0).
   * Omitted: the dispatch rotates X with the GPU Hadamard kernel into a scratch buffer. Ignored when W
   * is not rotated (then x̃ = x).
   */
  readonly xRotated?: GPUBuffer;
  /** Y = ŴᵀX: cols × rhs column-major f32 (written). */
  readonly y: GPUBuffer;
  /** Right-hand sides (columns of X); default 1 (GEMV). */
  readonly rhs?: number;
  readonly xOffset?: number;
  readonly yOffset?: number;
  /** Largest storage binding to use, in bytes (default: the device's limit; tests pass less to exercise splitting). */
  readonly maxBindingBytes?: number;
}

/**
 * Records Y = ŴᵀX into `encoder` (rotation of X with W's seed included unless `xRotated` is given).
 * W's columns and X's columns are split across dispatches when they exceed one storage binding or
 * the dispatch limits. Scratch buffers go into `scratch`: destroy it after submitting.
 *
 * @example
 * // y = Ŵᵀx for one activation vector x (n entries) on the GPU:
 * const scratch = new GpuScratch(device);
 * const encoder = device.createCommandEncoder({ label: 'decode step' });
 * dispatchLatticeGemv(device, encoder, scratch, { w: gpuW, x, y }); // y: 4·cols bytes
 * device.queue.submit([encoder.finish()]);
 * scratch.destroy();
 */
export function dispatchLatticeGemv(device: GPUDevice, encoder: GPUCommandEncoder, scratch: GpuScratch, args: LatticeGemvArgs): void {
  const { w } = args;
  checkGpuDeterministicMatrix(w, 'W');
  const rhs = args.rhs ?? 1;
  checkPositiveInteger(rhs, 'gemv rhs');
  const xOffset = args.xOffset ?? 0;
  const yOffset = args.yOffset ?? 0;
  checkBufferRange(args.x, xOffset, 4 * w.rows * rhs, 'gemv: X');
  checkBufferRange(args.y, yOffset, 4 * w.cols * rhs, 'gemv: Y');
  const alignment = device.limits.minStorageBufferOffsetAlignment;
  const maxBinding = Math.min(args.maxBindingBytes ?? Infinity, device.limits.maxStorageBufferBindingSize);
  const maxGroups = device.limits.maxComputeWorkgroupsPerDimension;

  // x̃ = R·x (or x itself without rotation), N × rhs from byte xRotatedOffset of xRotated.
  let xRotated = args.x;
  let xRotatedOffset = xOffset;
  if (w.rotate) {
    if (args.xRotated) {
      checkBufferRange(args.xRotated, 0, 4 * w.length * rhs, 'gemv: R·X');
      xRotated = args.xRotated;
    } else {
      xRotated = scratch.buffer('gemv R·X', 4 * w.length * rhs, STORAGE_USAGE);
      dispatchHadamard(device, encoder, scratch, {
        input: args.x,
        output: xRotated,
        rows: w.rows,
        cols: rhs,
        seed: w.seed,
        inputOffset: xOffset,
        maxBindingBytes: args.maxBindingBytes,
      });
    }
    xRotatedOffset = 0;
  }

  const rhsTile: RhsTile = rhs === 1 ? 1 : 8;
  const lattice = schemeLattice(w.scheme);
  const dim = lattice.dimension;
  const perWord = Math.floor(32 / w.codeBits);
  const entriesPerWord = perWord * dim;
  const lanes = lanesFor(rhsTile);
  const columnsPerWorkgroup = THREADS / lanes;
  let chunkWords = Math.floor(X_CHUNK / rhsTile / entriesPerWord);
  if (chunkWords >= lanes) chunkWords -= chunkWords % lanes;
  const words = operandWordsPerColumn(w);
  const useTable = w.scheme.lattice === 'D3' && w.scheme.q === 6;

  const columnRangesList = columnRanges(w.cols, Math.min(operandColumnsPerBinding(w, maxBinding, alignment), maxGroups * columnsPerWorkgroup));
  const rhsRanges = columnRanges(
    rhs,
    Math.min(
      itemsPerBinding(4 * w.length, maxBinding, alignment),
      itemsPerBinding(4 * w.rows, maxBinding, alignment),
      itemsPerBinding(4 * w.cols, maxBinding, alignment),
      maxGroups,
    ),
  );
  const sides = columnRangesList.map((r) => gatherColumnSide(encoder, scratch, w, r.first, r.count, `gemv W columns ${r.first}…`));
  const sumsBuffers = rhsRanges.map((r) => scratch.buffer(`gemv Σx (right-hand sides ${r.first}…)`, w.means ? 4 * r.count : 4, STORAGE_USAGE));
  const columnUnit = w.unit / (lattice.pointScale * Math.sqrt(w.length));
  const table = deviceTableBuffer(device, 'leaders');
  const { layout, pipeline: { main, sums } } = pipelines.get(device, rhsTile);

  const pass = encoder.beginComputePass({ label: 'lattice gemv' });
  rhsRanges.forEach((rhsRange, rhsChunk) => {
    const xRotatedWindow = bindingWindow(xRotatedOffset + 4 * w.length * rhsRange.first, 4 * w.length * rhsRange.count, alignment);
    const xWindow = bindingWindow(xOffset + 4 * w.rows * rhsRange.first, 4 * w.rows * rhsRange.count, alignment);
    const yWindow = bindingWindow(yOffset + 4 * w.cols * rhsRange.first, 4 * w.cols * rhsRange.count, alignment);
    const sumsBuffer = sumsBuffers[rhsChunk] as GPUBuffer;
    columnRangesList.forEach((columnRange, columnChunk) => {
      const windows = operandWindows(w, columnRange.first, columnRange.count, alignment);
      const side = sides[columnChunk] as (typeof sides)[number];
      const label = `lattice gemv W columns ${columnRange.first}…${columnRange.first + columnRange.count - 1}, right-hand sides ${rhsRange.first}…${rhsRange.first + rhsRange.count - 1}`;
      const params = Params.pack({
        cols: columnRange.count,
        rows: w.rows,
        length: w.length,
        kept: w.keptLength,
        blocks: w.blocksPerColumn,
        lattice: latticeId(w.scheme),
        q: w.scheme.q,
        dim,
        use_table: useTable ? 1 : 0,
        code_first: windows.codes.firstElement,
        code_words: words.codes,
        code_bits: w.codeBits,
        index_first: windows.scaleIndices.firstElement,
        index_words: words.scaleIndices,
        index_bits: w.scaleIndexBits,
        rhs: rhsRange.count,
        x_rotated_first: xRotatedWindow.firstElement,
        x_first: xWindow.firstElement,
        chunk_words: chunkWords,
        chunk_entries: chunkWords * entriesPerWord,
        y_first: yWindow.firstElement + columnRange.first,
        y_stride: w.cols,
        has_gains: side.hasGains ? 1 : 0,
        has_means: side.hasMeans ? 1 : 0,
        column_unit: columnUnit,
        multiples: multipleWords(w),
      });
      const bindGroup = createKernelBindGroup(device, layout, label, [
        { buffer: scratch.uniform(`${label} params`, params) },
        { buffer: table },
        windowBinding(w.codes, windows.codes),
        windowBinding(w.scaleIndices, windows.scaleIndices),
        { buffer: side.buffer },
        windowBinding(xRotated, xRotatedWindow),
        windowBinding(args.x, xWindow),
        { buffer: sumsBuffer },
        windowBinding(args.y, yWindow),
      ]);
      pass.setBindGroup(0, bindGroup);
      if (columnChunk === 0 && w.means) {
        pass.setPipeline(sums);
        pass.dispatchWorkgroups(rhsRange.count);
      }
      pass.setPipeline(main);
      pass.dispatchWorkgroups(Math.ceil(columnRange.count / columnsPerWorkgroup), Math.ceil(rhsRange.count / rhsTile));
    });
  });
  pass.end();
}

/**
 * Y = ŴᵀX on the GPU for a quantized W already on the GPU and X given on the CPU (a vector of n
 * entries, or an n × rhs matrix): uploads X, rotates it on the GPU, dispatches inside validation error
 * scopes, reads Y back (cols × rhs) and destroys what it created. For tests and benchmarks.
 *
 * @example
 * const y = await latticeGemv(device, gpuW, x); // cols × 1, ≈ dequantize(qW)ᵀ·x
 */
export async function latticeGemv(
  device: GPUDevice,
  w: GpuDeterministicMatrix,
  x: Float32Array | Matrix,
  options: { readonly xRotated?: Float32Array; readonly maxBindingBytes?: number } = {},
): Promise<Matrix> {
  const xMatrix: Matrix = x instanceof Float32Array ? { rows: x.length, cols: 1, data: x } : x;
  checkMatrix(xMatrix, 'X');
  check(xMatrix.rows === w.rows, () => `X has ${xMatrix.rows} rows, but W has ${w.rows}`);
  const rhs = xMatrix.cols;
  const yBytes = 4 * w.cols * rhs;
  const data = await runAndRead(device, 'lattice gemv', yBytes, (run) => {
    const xBuffer = run.upload('gemv X', xMatrix.data);
    let xRotated: GPUBuffer | undefined;
    if (options.xRotated) {
      check(options.xRotated.length === w.length * rhs, () => `xRotated has ${options.xRotated?.length} entries, expected ${w.length * rhs}`);
      xRotated = run.upload('gemv R·X', options.xRotated);
    }
    const yBuffer = run.storage('gemv Y', yBytes);
    dispatchLatticeGemv(device, run.encoder, run.scratch, { w, x: xBuffer, xRotated, y: yBuffer, rhs, maxBindingBytes: options.maxBindingBytes });
    return yBuffer;
  });
  return { rows: w.cols, cols: rhs, data: new Float32Array(data) };
}
