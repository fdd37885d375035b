import leaderPackedSource from '../../../shaders/d3_leader_packed.wgsl?raw';
import leaderPlainSource from '../../../shaders/d3_leader_plain.wgsl?raw';
import tableMatmulSource from '../../../shaders/d3_table_matmul.wgsl?raw';
import { check, checkOneOf } from '../../errors.js';
import type { Matrix } from '../../matrix.js';
import {
  checkGpuDeterministicMatrix,
  checkProductOperands,
  exactRunBlocks,
  largestMultiple,
  planProductChunks,
  type GpuDeterministicMatrix,
} from '../latticeOperand.js';
import { createKernelBindGroup, createKernelPipeline, KernelPipelines } from '../pipelines.js';
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
import { DOT_PATHS, type DotPath } from './e8Matmul.js';
import { PRODUCT_TILE_WGSL, productBindings, productBindingTypes, productParams, productParamsLayout } from './productCommon.js';

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
const Params = /*#__PURE__*/ productParamsLayout('TableMatmulParams', {
  slice_blocks: 'u32', // blocks per slice and per exact i32 sum (1 … SLICE)
});

/** A compiled variant: the table layout and, for the leaders layout, how a pair's dot product is formed. */
export interface TableMatmulVariant {
  readonly layout: TableLayout;
  /** Used by the leaders layout only (the others read T from the table): `'packed'` needs the WGSL feature. */
  readonly dotPath: DotPath;
}

/** The dot path a layout compiles with: its own for the leaders layout; the others do not use one. */
function variantOf(layout: TableLayout, dotPath: DotPath): TableMatmulVariant {
  return { layout, dotPath: layout.kind === 'leaders' ? dotPath : 'plain' };
}

/**
 * The WGSL of one variant: layout id, table words and slice depth are the compile-time choices,
 * followed by the leader functions of the dot path, the uniform struct and the kernel.
 */
export function tableMatmulShaderSource(variant: TableMatmulVariant): string {
  const { layout, dotPath } = variant;
  return (
    `const TABLE_LAYOUT: u32 = ${layout.id}u;\n` +
    `const TABLE_WORDS: u32 = ${layout.tableWords}u;\n` +
    `const SLICE: u32 = ${layout.sliceBlocks}u;\n` +
    `${dotPath === 'packed' ? leaderPackedSource : leaderPlainSource}\n` +
    `${Params.wgsl()}\n` +
    `${PRODUCT_TILE_WGSL}\n` +
    tableMatmulSource
  );
}

/** Pipelines per device, one per (table layout, slice depth, dot path), built on first use. */
const pipelines = /*#__PURE__*/ new KernelPipelines({
  label: 'd3 table matmul',
  bindings: /*#__PURE__*/ productBindingTypes('uniform', 'read-only-storage' /* table words */),
  key: (variant: TableMatmulVariant) => `${variant.layout.kind}/${variant.layout.sliceBlocks}/${variant.dotPath}`,
  compile: (device, pipelineLayout, variant: TableMatmulVariant) =>
    createKernelPipeline(device, pipelineLayout, {
      label: `d3 table matmul (${variant.layout.kind} table, slice ${variant.layout.sliceBlocks}${variant.layout.kind === 'leaders' ? `, ${variant.dotPath} dot` : ''})`,
      code: tableMatmulShaderSource(variant),
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
   * Table layout to use instead of the default, 'leaders' (tests and the benchmark force each layout);
   * an error when it does not fit the device's workgroup storage.
   */
  readonly layout?: TableLayoutKind;
  /**
   * How the leaders layout forms a pair's inner product: `'packed'` uses `dot4I8Packed` (only where the
   * WGSL language feature exists: see `dotPathFor`), `'plain'` core WGSL. The other layouts read it from
   * the table and ignore this.
   */
  readonly dotPath: DotPath;
  /** Largest storage binding to use, in bytes (default: the device's limit; tests pass less to exercise splitting). */
  readonly maxBindingBytes?: number;
}

/**
 * The table layout `dispatchTableMatmul` uses on `device` (or the forced `kind`).
 *
 * @example
 * tableMatmulLayout(device).kind; // 'leaders' (the default on every device)
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
 * dispatchTableMatmul(device, encoder, scratch, { a: gpuA, b: gpuB, c, dotPath: dotPathFor(features) }); // c: 4·aCols·bCols bytes
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
  checkOneOf(args.dotPath, DOT_PATHS, 'dotPath');
  const layoutChoice = tableMatmulLayout(device, args.layout);
  const sliceBlocks = exactRunBlocks(largestMultiple(a) * largestMultiple(b) * TABLE_MAX_ABS, layoutChoice.sliceBlocks);
  const common = (a.unit * b.unit) / a.length; // pointScale of D3 is 1
  const table = deviceTableBuffer(device, layoutChoice.kind);
  const { layout, pipeline } = pipelines.get(device, variantOf(layoutChoice, args.dotPath));
  const chunks = planProductChunks(
    device,
    encoder,
    scratch,
    { a, b, c: args.c, cOffset: args.cOffset ?? 0, maxBindingBytes: args.maxBindingBytes },
    TABLE_TILE,
    'd3 table matmul',
  );

  const pass = encoder.beginComputePass({ label: `d3 table matmul (${layoutChoice.kind} table, ${args.dotPath} dot)` });
  pass.setPipeline(pipeline);
  for (const chunk of chunks) {
    const params = Params.pack({ ...productParams(a, b, chunk, common), slice_blocks: sliceBlocks });
    const bindGroup = createKernelBindGroup(device, layout, chunk.label, [
      { buffer: scratch.uniform(`${chunk.label} params`, params) },
      { buffer: table },
      ...productBindings(a, b, args.c, chunk),
    ]);
    pass.setBindGroup(0, bindGroup);
    pass.dispatchWorkgroups(Math.ceil(chunk.aRange.count / TABLE_TILE), Math.ceil(chunk.bRange.count / TABLE_TILE));
  }
  pass.end();
}

/**
 * C = ÂᵀB̂ for two D3, q = 6 matrices already on the GPU: dispatches inside validation error scopes,
 * reads C back, and destroys what it created. For tests and benchmarks; applications call
 * `dispatchTableMatmul` and keep C on the GPU.
 *
 * @example
 * const c = await tableMatmulAT(device, gpuA, gpuB, { dotPath: dotPathFor(features) }); // ≈ matmulAT(qa, qb)
 */
export async function tableMatmulAT(
  device: GPUDevice,
  a: GpuDeterministicMatrix,
  b: GpuDeterministicMatrix,
  options: Pick<TableMatmulArgs, 'layout' | 'dotPath' | 'maxBindingBytes'>,
): Promise<Matrix> {
  const cBytes = 4 * a.cols * b.cols;
  const data = await runAndRead(device, 'd3 table matmul', cBytes, (run) => {
    const cBuffer = run.storage('table matmul C', cBytes);
    dispatchTableMatmul(device, run.encoder, run.scratch, { a, b, c: cBuffer, ...options });
    return cBuffer;
  });
  return { rows: a.cols, cols: b.cols, data: new Float32Array(data) };
}
