import tableMatmulSource from '../../../shaders/d3_table_matmul.wgsl?raw';
import scaledEstimateSource from '../../../shaders/scaled_estimate.wgsl?raw';
import { check } from '../../errors.js';
import type { Matrix } from '../../matrix.js';
import {
  checkGpuDeterministicMatrix,
  checkProductOperands,
  exactRunBlocks,
  largestMultiple,
  multipleWords,
  operandWordsPerColumn,
  planProductChunks,
  type GpuDeterministicMatrix,
} from '../latticeOperand.js';
import { createKernelBindGroup, createKernelPipeline, KernelPipelines, windowBinding } from '../pipelines.js';
import { runAndRead } from '../runAndRead.js';
import type { GpuScratch } from '../scratch.js';
import {
  chooseTableLayout,
  deviceTableBuffer,
  TABLE_TILE,
  tableLayout,
  type TableLayout,
  type TableLayoutKind,
} from '../tableLayout.js';
import { UniformLayout } from '../uniformLayout.js';

/*
 * C = ÂᵀB̂ for two D3, q = 6 quantized matrices on the GPU (shaders/d3_table_matmul.wgsl), with the
 * 216 × 216 inner-product table in workgroup memory in the layout the device's granted workgroup
 * storage allows (src/gpu/tableLayout.ts). CPU twin: the table path of `matmulAT`
 * (src/product/matmulAT.ts). Per block pair the integer k_a·k_b·T is exact; the kernel sums runs of
 * up to 16 blocks in i32 (exact, run length chosen so that no i32 overflow can occur) and the runs in
 * f32, then applies the column scales and the mean term in f32.
 */

/** Largest |T| of the D3 q = 6 table (entries lie in [−30, 36]). */
const TABLE_MAX_ABS = 36;

/** The kernel's uniform struct (`params`); its WGSL is generated and put in front of the kernel. */
const Params = /*#__PURE__*/ new UniformLayout('TableMatmulParams', {
  blocks: 'u32', // blocks per column, both operands
  a_cols: 'u32', // A columns in this dispatch (C rows)
  b_cols: 'u32', // B columns in this dispatch (C columns)
  a_code_first: 'u32', // word offset of this dispatch's first A column in its codes binding
  a_code_words: 'u32', // code words per A column
  a_index_first: 'u32',
  a_index_words: 'u32',
  a_index_bits: 'u32',
  b_code_first: 'u32',
  b_code_words: 'u32',
  b_index_first: 'u32',
  b_index_words: 'u32',
  b_index_bits: 'u32',
  c_first: 'u32', // element offset of this dispatch's C[0, 0] in the C binding
  c_stride: 'u32', // elements between consecutive C columns (all of C's rows)
  a_has_gains: 'u32',
  b_has_gains: 'u32',
  has_means: 'u32',
  slice_blocks: 'u32', // blocks per slice and per exact i32 sum (1 … SLICE)
  common_scale: 'f32', // unit_a · unit_b / (s² · N)
  rows: 'f32', // n, for the mean term
  a_multiples: 'array<vec4<i32>, 4>', // k_j of A's scale grid (MAX_GPU_MULTIPLES, zeros past the grid)
  b_multiples: 'array<vec4<i32>, 4>',
});

/**
 * The WGSL of one table layout: layout id, table words and slice depth are the compile-time choices,
 * followed by the uniform struct and the kernel.
 */
export function tableMatmulShaderSource(layout: TableLayout): string {
  return (
    `const TABLE_LAYOUT: u32 = ${layout.id}u;\n` +
    `const TABLE_WORDS: u32 = ${layout.tableWords}u;\n` +
    `const SLICE: u32 = ${layout.sliceBlocks}u;\n` +
    `${Params.wgsl()}\n` +
    `${scaledEstimateSource}\n` +
    tableMatmulSource
  );
}

/** Pipelines per device, one per (table layout, slice depth), built on first use. */
const pipelines = /*#__PURE__*/ new KernelPipelines({
  label: 'd3 table matmul',
  bindings: [
    'uniform',
    'read-only-storage', // table words
    'read-only-storage', // A codes
    'read-only-storage', // A scale indices
    'read-only-storage', // A norms, gains, means
    'read-only-storage', // B codes
    'read-only-storage', // B scale indices
    'read-only-storage', // B norms, gains, means
    'storage', // C
  ],
  key: (choice: TableLayout) => `${choice.kind}/${choice.sliceBlocks}`,
  compile: (device, pipelineLayout, choice: TableLayout) =>
    createKernelPipeline(device, pipelineLayout, {
      label: `d3 table matmul (${choice.kind} table, slice ${choice.sliceBlocks})`,
      code: tableMatmulShaderSource(choice),
    }),
});

/** Arguments of `dispatchTableMatmul`. */
export interface TableMatmulArgs {
  /** Â: D3, q = 6 quantized, n × aCols. */
  readonly a: GpuDeterministicMatrix;
  /** B̂: D3, q = 6 quantized with the same seed and centring, n × bCols. */
  readonly b: GpuDeterministicMatrix;
  /** C = ÂᵀB̂, aCols × bCols column-major f32 (written). */
  readonly c: GPUBuffer;
  /** Byte offset of C in its buffer (a multiple of 4). */
  readonly cOffset?: number;
  /**
   * Table layout to use instead of the best one the device's workgroup storage allows (tests force
   * each layout); an error when it does not fit the device.
   */
  readonly layout?: TableLayoutKind;
  /** Largest storage binding to use, in bytes (default: the device's limit; tests pass less to exercise splitting). */
  readonly maxBindingBytes?: number;
}

/**
 * The table layout `dispatchTableMatmul` uses on `device` (or the forced `kind`).
 *
 * @example
 * tableMatmulLayout(device).kind; // 'triangle' on a 32 KB device
 */
export function tableMatmulLayout(device: GPUDevice, kind?: TableLayoutKind): TableLayout {
  const granted = device.limits.maxComputeWorkgroupStorageSize;
  if (kind === undefined) return chooseTableLayout(granted);
  const forced = tableLayout(kind, granted);
  check(forced !== null, () => `the '${kind}' table layout does not fit this device's ${granted} bytes of workgroup memory`);
  return forced;
}

/**
 * Records C = ÂᵀB̂ (+ n·μ_a·μ_b when both are centred) into `encoder` for two D3, q = 6 quantized
 * matrices. Columns of A and B are split across dispatches when their codes, or C, exceed one storage
 * binding, or the grid exceeds the dispatch limit. Scratch buffers (parameters, gathered column
 * norms/gains/means) go into `scratch`: destroy it after submitting.
 *
 * @example
 * const scratch = new GpuScratch(device);
 * const encoder = device.createCommandEncoder({ label: 'ÂᵀB̂' });
 * dispatchTableMatmul(device, encoder, scratch, { a: gpuA, b: gpuB, c }); // c: 4·aCols·bCols bytes
 * device.queue.submit([encoder.finish()]);
 * scratch.destroy();
 */
export function dispatchTableMatmul(device: GPUDevice, encoder: GPUCommandEncoder, scratch: GpuScratch, args: TableMatmulArgs): void {
  const { a, b } = args;
  checkGpuDeterministicMatrix(a, 'A');
  checkGpuDeterministicMatrix(b, 'B');
  for (const [m, name] of [[a, 'A'], [b, 'B']] as const) {
    check(
      m.scheme.lattice === 'D3' && m.scheme.q === 6,
      () => `the table product needs D3, q = 6 codes; ${name} is ${m.scheme.lattice}, q = ${m.scheme.q}`,
    );
  }
  checkProductOperands(a, b);
  const layoutChoice = tableMatmulLayout(device, args.layout);
  const sliceBlocks = exactRunBlocks(largestMultiple(a) * largestMultiple(b) * TABLE_MAX_ABS, layoutChoice.sliceBlocks);
  const aWords = operandWordsPerColumn(a);
  const bWords = operandWordsPerColumn(b);
  const common = (a.unit * b.unit) / a.length; // pointScale of D3 is 1
  const table = deviceTableBuffer(device, layoutChoice.kind);
  const { layout, pipeline } = pipelines.get(device, layoutChoice);
  const chunks = planProductChunks(
    device,
    encoder,
    scratch,
    { a, b, c: args.c, cOffset: args.cOffset ?? 0, maxBindingBytes: args.maxBindingBytes },
    TABLE_TILE,
    'd3 table matmul',
  );

  const pass = encoder.beginComputePass({ label: `d3 table matmul (${layoutChoice.kind} table)` });
  pass.setPipeline(pipeline);
  for (const { aRange, bRange, aWindows, bWindows, cWindow, aSide, bSide, label } of chunks) {
    const params = Params.pack({
      blocks: a.blocksPerColumn,
      a_cols: aRange.count,
      b_cols: bRange.count,
      a_code_first: aWindows.codes.firstElement,
      a_code_words: aWords.codes,
      a_index_first: aWindows.scaleIndices.firstElement,
      a_index_words: aWords.scaleIndices,
      a_index_bits: a.scaleIndexBits,
      b_code_first: bWindows.codes.firstElement,
      b_code_words: bWords.codes,
      b_index_first: bWindows.scaleIndices.firstElement,
      b_index_words: bWords.scaleIndices,
      b_index_bits: b.scaleIndexBits,
      c_first: cWindow.firstElement + aRange.first,
      c_stride: a.cols,
      a_has_gains: aSide.hasGains ? 1 : 0,
      b_has_gains: bSide.hasGains ? 1 : 0,
      has_means: aSide.hasMeans ? 1 : 0,
      slice_blocks: sliceBlocks,
      common_scale: common,
      rows: a.rows,
      a_multiples: multipleWords(a),
      b_multiples: multipleWords(b),
    });
    const bindGroup = createKernelBindGroup(device, layout, label, [
      { buffer: scratch.uniform(`${label} params`, params) },
      { buffer: table },
      windowBinding(a.codes, aWindows.codes),
      windowBinding(a.scaleIndices, aWindows.scaleIndices),
      { buffer: aSide.buffer },
      windowBinding(b.codes, bWindows.codes),
      windowBinding(b.scaleIndices, bWindows.scaleIndices),
      { buffer: bSide.buffer },
      windowBinding(args.c, cWindow),
    ]);
    pass.setBindGroup(0, bindGroup);
    pass.dispatchWorkgroups(Math.ceil(aRange.count / TABLE_TILE), Math.ceil(bRange.count / TABLE_TILE));
  }
  pass.end();
}

/**
 * C = ÂᵀB̂ for two D3, q = 6 matrices already on the GPU: dispatches inside validation error scopes,
 * reads C back, and destroys what it created. For tests and benchmarks; applications call
 * `dispatchTableMatmul` and keep C on the GPU.
 *
 * @example
 * const c = await tableMatmulAT(device, gpuA, gpuB); // ≈ matmulAT(qa, qb)
 */
export async function tableMatmulAT(
  device: GPUDevice,
  a: GpuDeterministicMatrix,
  b: GpuDeterministicMatrix,
  options: Pick<TableMatmulArgs, 'layout' | 'maxBindingBytes'> = {},
): Promise<Matrix> {
  const cBytes = 4 * a.cols * b.cols;
  const data = await runAndRead(device, 'd3 table matmul', cBytes, (run) => {
    const cBuffer = run.storage('table matmul C', cBytes);
    dispatchTableMatmul(device, run.encoder, run.scratch, { a, b, c: cBuffer, ...options });
    return cBuffer;
  });
  return { rows: a.cols, cols: b.cols, data: new Float32Array(data) };
}
