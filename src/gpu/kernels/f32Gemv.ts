import f32GemvSource from '../../../shaders/f32_gemv.wgsl?raw';
import { check, checkPositiveInteger } from '../../errors.js';
import { checkMatrix, type Matrix } from '../../matrix.js';
import { checkBufferRange } from '../bufferRange.js';
import { createKernelPipeline, KernelPipelines } from '../pipelines.js';
import { runAndRead } from '../runAndRead.js';
import type { GpuScratch } from '../scratch.js';
import { UniformLayout } from '../uniformLayout.js';
import type { BindingWindow } from '../workSplit.js';
import {
  checkGemvVector,
  COLUMN_GEMV_COLUMNS,
  COLUMN_GEMV_REDUCTION_DEPTH,
  COLUMN_GEMV_THREADS,
  type ColumnGemvOptions,
  columnGemvSource,
  columnGemvSubgroupMode,
  columnGemvUsesSubgroups,
  recordColumnGemv,
} from './columnGemv.js';

/*
 * The f32 GEMV baseline y = Wᵀx (shaders/f32_gemv.wgsl): W is n × cols column-major, x has n entries,
 * y has cols. CPU twin: float64 dot products of the columns with x. The GPU sums each column in f32:
 * every invocation adds ⌈C/256⌉ chunk products in order (C = n / width chunks), a vec4 chunk product
 * is a `dot` (4 products, 3 additions), then 8 levels of workgroup sum, so each term goes through at
 * most D = ⌈C/256⌉ + 12 roundings (see `f32GemvRoundingDepth`) and
 * |ŷ_j − y_j| ≤ D·u·Σ_k |W_kj·x_k|, u = 2^−24 (a driver may fuse multiply-adds, which only removes
 * roundings).
 */

/** Output columns per workgroup (the shader's COLUMNS). */
export const F32_GEMV_COLUMNS_PER_WORKGROUP = COLUMN_GEMV_COLUMNS;

/**
 * Most f32 roundings any term w·x goes through in the kernel: the product, 3 additions inside a vec4
 * `dot` (none for width 1), ⌈C/256⌉ accumulations per invocation, 8 reduction levels.
 */
export function f32GemvRoundingDepth(n: number, chunkWidth: F32GemvChunkWidth): number {
  return 1 + (chunkWidth === 4 ? 3 : 0) + Math.ceil(n / chunkWidth / COLUMN_GEMV_THREADS) + COLUMN_GEMV_REDUCTION_DEPTH;
}

/** Floats per load: 4 (vec4) when the shape and offsets allow it, else 1. */
export type F32GemvChunkWidth = 1 | 4;

/** The kernel's uniform struct (`params`); its WGSL is generated and put in front of the shader. */
const Params = /*#__PURE__*/ new UniformLayout('F32GemvParams', {
  cols: 'u32', // output columns in this dispatch
  chunks: 'u32', // C = n / CHUNK_WIDTH chunks per column
  w_first: 'u32', // chunk index of W[0, 0]
  x_first: 'u32', // chunk index of x[0]
  y_first: 'u32', // index of y[0]
  subgroup_mode: 'u32', // 0; tests: 1 forces the plain reduction, 2 poisons it (column_gemv_subgroup.wgsl)
});

/** A compiled variant: the chunk width and whether the reduction uses subgroup shuffles. */
export interface F32GemvVariant {
  readonly chunkWidth: F32GemvChunkWidth;
  readonly subgroups: boolean;
}

/**
 * The WGSL of one variant: the uniform struct, a prefix that declares the chunk type the loads use,
 * the kernel, the shared reduction and the entry file.
 *
 * @example
 * f32GemvShaderSource({ chunkWidth: 4, subgroups: false });
 */
export function f32GemvShaderSource(variant: F32GemvVariant): string {
  const prefix =
    variant.chunkWidth === 4
      ? 'alias Chunk = vec4<f32>;\nfn chunk_dot(a: Chunk, b: Chunk) -> f32 { return dot(a, b); }\n'
      : 'alias Chunk = f32;\nfn chunk_dot(a: Chunk, b: Chunk) -> f32 { return a * b; }\n';
  return columnGemvSource({ subgroups: variant.subgroups, header: `${Params.wgsl()}\n${prefix}`, kernel: f32GemvSource });
}

/** Pipelines per device and variant, built on first use. */
const pipelines = /*#__PURE__*/ new KernelPipelines({
  label: 'f32 gemv',
  bindings: ['uniform', 'read-only-storage', 'read-only-storage', 'storage'],
  compile: (device, pipelineLayout, variant: F32GemvVariant) =>
    createKernelPipeline(device, pipelineLayout, {
      label: `f32 gemv (chunk width ${variant.chunkWidth}${variant.subgroups ? ', subgroups' : ''})`,
      code: f32GemvShaderSource(variant),
    }),
  key: (variant) => `${variant.chunkWidth}${variant.subgroups ? '+subgroups' : ''}`,
});

/** Arguments of `dispatchF32Gemv`. Offsets are in bytes (multiples of 4). */
export interface F32GemvArgs extends ColumnGemvOptions {
  /** W, n × cols column-major f32. */
  readonly w: GPUBuffer;
  /** x, n f32. */
  readonly x: GPUBuffer;
  /** y = Wᵀx, cols f32 (written). */
  readonly y: GPUBuffer;
  readonly n: number;
  readonly cols: number;
  readonly wOffset?: number;
  readonly xOffset?: number;
  readonly yOffset?: number;
  /** Largest storage binding to use, in bytes (default: the device's limit; tests pass less to exercise splitting). */
  readonly maxBindingBytes?: number;
  /** Force the scalar path (1) even where vec4 loads are possible; for tests. */
  readonly chunkWidth?: F32GemvChunkWidth;
}

/**
 * The chunk width `dispatchF32Gemv` uses: 4 when n is a multiple of 4 and W and x start at multiples
 * of 16 bytes, else 1.
 */
export function f32GemvChunkWidth(n: number, wOffset = 0, xOffset = 0): F32GemvChunkWidth {
  return n % 4 === 0 && wOffset % 16 === 0 && xOffset % 16 === 0 ? 4 : 1;
}

/**
 * Records y = Wᵀx into `encoder`. Columns are split across several dispatches when W or y is larger
 * than one storage binding; x must fit one binding. Parameter buffers go into `scratch` (destroy it
 * after submitting).
 *
 * @example
 * const scratch = new GpuScratch(device);
 * const encoder = device.createCommandEncoder({ label: 'gemv' });
 * dispatchF32Gemv(device, encoder, scratch, { w, x, y, n: 4096, cols: 4096 });
 * device.queue.submit([encoder.finish()]);
 * scratch.destroy();
 */
export function dispatchF32Gemv(device: GPUDevice, encoder: GPUCommandEncoder, scratch: GpuScratch, args: F32GemvArgs): void {
  const { n, cols } = args;
  checkPositiveInteger(n, 'f32 gemv n');
  checkPositiveInteger(cols, 'f32 gemv cols');
  const wOffset = args.wOffset ?? 0;
  const xOffset = args.xOffset ?? 0;
  const yOffset = args.yOffset ?? 0;
  checkBufferRange(args.w, wOffset, 4 * n * cols, 'f32 gemv: W');
  checkBufferRange(args.x, xOffset, 4 * n, 'f32 gemv: x');
  checkBufferRange(args.y, yOffset, 4 * cols, 'f32 gemv: y');
  const possibleWidth = f32GemvChunkWidth(n, wOffset, xOffset);
  const chunkWidth = args.chunkWidth ?? possibleWidth;
  check(
    chunkWidth === 1 || possibleWidth === 4,
    () => `f32 gemv: chunk width 4 needs n % 4 = 0 and 16-byte-aligned W and x (n = ${n}, offsets ${wOffset}, ${xOffset})`,
  );
  const subgroups = columnGemvUsesSubgroups(device, args, 'f32 gemv');
  const { layout, pipeline } = pipelines.get(device, { chunkWidth, subgroups });
  recordColumnGemv(device, encoder, scratch, {
    kernel: 'f32 gemv',
    layout,
    pipeline,
    cols,
    weights: [{ buffer: args.w, offset: wOffset, bytesPerColumn: 4 * n }],
    x: { buffer: args.x, offset: xOffset, bytes: 4 * n },
    y: { buffer: args.y, offset: yOffset },
    maxBindingBytes: args.maxBindingBytes,
    params: (chunk) =>
      Params.pack({
        cols: chunk.cols,
        chunks: n / chunkWidth,
        w_first: (chunk.weights[0] as BindingWindow).firstElement / chunkWidth,
        x_first: chunk.x.firstElement / chunkWidth,
        y_first: chunk.y.firstElement,
        subgroup_mode: columnGemvSubgroupMode(args),
      }),
  });
}

/**
 * y = Wᵀx on the GPU for CPU data: uploads, dispatches inside validation error scopes, reads back and
 * destroys its buffers. For tests and benchmarks; applications keep data on the GPU and call
 * `dispatchF32Gemv`.
 *
 * @example
 * const y = await f32Gemv(device, w, x); // w.cols entries
 */
export async function f32Gemv(device: GPUDevice, w: Matrix, x: Float32Array, options: ColumnGemvOptions = {}): Promise<Float32Array> {
  checkMatrix(w, 'W');
  checkGemvVector(x, w.rows, 'f32 gemv');
  const data = await runAndRead(device, 'f32 gemv', 4 * w.cols, (run) => {
    const wBuffer = run.upload('f32 gemv W', w.data);
    const xBuffer = run.upload('f32 gemv x', x);
    const yBuffer = run.storage('f32 gemv y', 4 * w.cols);
    dispatchF32Gemv(device, run.encoder, run.scratch, { ...options, w: wBuffer, x: xBuffer, y: yBuffer, n: w.rows, cols: w.cols });
    return yBuffer;
  });
  return new Float32Array(data);
}
