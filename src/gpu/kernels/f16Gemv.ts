import f16GemvSource from '../../../shaders/f16_gemv.wgsl?raw';
import { check, checkPositiveInteger } from '../../errors.js';
import { checkMatrix, type Matrix } from '../../matrix.js';
import { fromFloat16Bits } from '../../scalar/floatFormats.js';
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
 * The f16 GEMV baseline y = Wᵀx (shaders/f16_gemv.wgsl): W stored as IEEE binary16, x and y f32 —
 * the "16-bit weights" GEMV every quantized kernel is compared with. Needs the device feature
 * 'shader-f16' (refused without it: a caller checks `f16GemvSupported(device)`).
 *
 * CPU twin: float64 dot products of `dequantizeF16Weights(packF16Weights(W))` (W rounded to f16,
 * ties to even) with x. The GPU widens each half to f32 exactly and sums in f32: per chunk of 8
 * entries two vec4 `dot`s and one addition, ⌈C/256⌉ chunks per invocation (C = ⌈n/8⌉), then 8
 * reduction levels, so each term goes through at most D = ⌈C/256⌉ + 14 roundings
 * (`f16GemvRoundingDepth`): |ŷ_j − y_j| ≤ D·u·Σ_k |Ŵ_kj·x_k|, u = 2^−24.
 */

/** Entries per chunk: 8 halves in one vec4<u32>. */
export const F16_CHUNK = 8;

/** Output columns per workgroup (the shader's COLUMNS). */
export const F16_GEMV_COLUMNS_PER_WORKGROUP = COLUMN_GEMV_COLUMNS;

/** An n × cols matrix in the f16 GEMV layout: column j is `chunks` vec4<u32> (8 halves each) from word 4·chunks·j. */
export interface F16Weights {
  readonly rows: number;
  readonly cols: number;
  /** C = ⌈rows/8⌉ chunks per column. */
  readonly chunks: number;
  /** 4·C·cols words; half e of chunk k of column j (entry 8k + e) is half e % 2 of word 4·C·j + 4k + ⌊e/2⌋. */
  readonly words: Uint32Array;
}

/** Most f32 roundings a term goes through in the kernel (see the module comment). */
export function f16GemvRoundingDepth(n: number): number {
  checkPositiveInteger(n, 'f16 gemv n');
  // product, 3 additions in a vec4 dot, the addition of the two dots, the chunk chain, the reduction.
  return 1 + 3 + 1 + Math.ceil(Math.ceil(n / F16_CHUNK) / COLUMN_GEMV_THREADS) + COLUMN_GEMV_REDUCTION_DEPTH;
}

/** x's length in the kernel: n rounded up to a whole chunk (the padding must be zero). */
export function f16PaddedLength(n: number): number {
  checkPositiveInteger(n, 'f16 gemv n');
  return F16_CHUNK * Math.ceil(n / F16_CHUNK);
}

/** Bytes the kernel reads for W of an n × cols matrix (padding included). */
export function f16WeightBytes(n: number, cols: number): number {
  return 2 * f16PaddedLength(n) * cols;
}

/** Whether `device` can run the f16 GEMV ('shader-f16'). */
export function f16GemvSupported(device: GPUDevice): boolean {
  return device.features.has('shader-f16');
}

const f32Scratch = new Float32Array(1);
const u32Scratch = new Uint32Array(f32Scratch.buffer);

/**
 * IEEE binary16 bits of a finite f32 value, rounded to nearest, ties to even (the same as
 * `float16Bits(Math.fround(v))`, by integer operations on the f32 bits: fast enough for large matrices).
 * Magnitudes of 65520 and above give ±Infinity.
 */
export function f32ToF16Bits(value: number): number {
  f32Scratch[0] = value;
  const bits = u32Scratch[0] as number;
  const sign = (bits >>> 16) & 0x8000;
  const exponent = (bits >>> 23) & 0xff;
  const mantissa = bits & 0x7fffff;
  if (exponent === 0xff) return sign | 0x7c00 | (mantissa !== 0 ? 0x200 : 0);
  const e = exponent - 127 + 15;
  if (e >= 31) return sign | 0x7c00;
  if (e <= 0) {
    // Subnormal half (or zero): the value in units of 2^−24, rounded half to even.
    if (e < -10) return sign; // below half of the smallest subnormal (2^−25): rounds to ±0
    const full = mantissa | 0x800000; // 24-bit significand, value = full·2^(exponent − 150)
    const shift = 14 - e; // to units of 2^−24
    const kept = full >>> shift;
    const rest = full - (kept << shift);
    const half = 1 << (shift - 1);
    const rounded = rest > half || (rest === half && (kept & 1) === 1) ? kept + 1 : kept;
    return sign | rounded; // a carry into bit 10 is the smallest normal's pattern
  }
  const kept = mantissa >>> 13;
  const rest = mantissa & 0x1fff;
  let result = (e << 10) | kept;
  if (rest > 0x1000 || (rest === 0x1000 && (kept & 1) === 1)) result += 1; // a carry bumps the exponent, up to Infinity
  return sign | result;
}

/**
 * Rounds W (finite, |entries| < 65520) to f16 and packs it in the kernel's layout.
 *
 * @example
 * const q = packF16Weights(w);
 * const y = await f16Gemv(device, q, x);
 */
export function packF16Weights(w: Matrix): F16Weights {
  checkMatrix(w, 'W'); // refuses non-finite entries
  const chunks = Math.ceil(w.rows / F16_CHUNK);
  const words = new Uint32Array(4 * chunks * w.cols);
  for (let j = 0; j < w.cols; j++) {
    const base = 4 * chunks * j;
    for (let k = 0; k < w.rows; k++) {
      const value = w.data[j * w.rows + k] as number;
      const half = f32ToF16Bits(value);
      check((half & 0x7c00) !== 0x7c00, () => `f16 weights: W[${k}, ${j}] = ${value} overflows f16 (|W| must be below 65520)`);
      const word = base + (k >>> 1);
      words[word] = (words[word] as number) | (half << (16 * (k & 1)));
    }
  }
  return { rows: w.rows, cols: w.cols, chunks, words };
}

/** The matrix the kernel multiplies by: each entry's f16 value (exact in f32). */
export function dequantizeF16Weights(q: F16Weights): Matrix {
  checkF16Weights(q);
  const data = new Float32Array(q.rows * q.cols);
  for (let j = 0; j < q.cols; j++) {
    for (let k = 0; k < q.rows; k++) {
      const word = q.words[4 * q.chunks * j + (k >>> 1)] as number;
      data[j * q.rows + k] = fromFloat16Bits((word >>> (16 * (k & 1))) & 0xffff);
    }
  }
  return { rows: q.rows, cols: q.cols, data };
}

function checkF16Weights(q: F16Weights): void {
  check(typeof q === 'object' && q !== null, 'f16 weights must be an F16Weights object');
  checkPositiveInteger(q.rows, 'f16 weights rows');
  checkPositiveInteger(q.cols, 'f16 weights cols');
  const chunks = Math.ceil(q.rows / F16_CHUNK);
  check(q.chunks === chunks, () => `f16 weights: chunks is ${q.chunks}, expected ⌈${q.rows}/8⌉ = ${chunks}`);
  check(
    q.words instanceof Uint32Array && q.words.length === 4 * chunks * q.cols,
    () => `f16 weights: words must be a Uint32Array of 4·C·cols = ${4 * chunks * q.cols} words`,
  );
}

const Params = /*#__PURE__*/ new UniformLayout('F16GemvParams', {
  cols: 'u32', // output columns in this dispatch
  chunks: 'u32', // C = ⌈n/8⌉
  w_first: 'u32', // vec4 index of column 0, chunk 0
  x_first: 'u32', // vec4 index of x[0]
  y_first: 'u32', // index of y[0]
  subgroup_mode: 'u32', // 0; tests: 1 forces the plain reduction, 2 poisons it
});

/**
 * The WGSL of one variant (`enable f16;`, subgroups or not).
 *
 * @example
 * f16GemvShaderSource(false);
 */
export function f16GemvShaderSource(subgroups: boolean): string {
  return columnGemvSource({ subgroups, enables: ['f16'], header: Params.wgsl(), kernel: f16GemvSource });
}

const pipelines = /*#__PURE__*/ new KernelPipelines({
  label: 'f16 gemv',
  bindings: ['uniform', 'read-only-storage', 'read-only-storage', 'storage'],
  compile: (device, pipelineLayout, subgroups: boolean) =>
    createKernelPipeline(device, pipelineLayout, { label: `f16 gemv${subgroups ? ' (subgroups)' : ''}`, code: f16GemvShaderSource(subgroups) }),
  key: (subgroups) => (subgroups ? 'subgroups' : 'plain'),
});

/** Arguments of `dispatchF16Gemv`. Offsets are in bytes. */
export interface F16GemvArgs extends ColumnGemvOptions {
  /** Packed halves (`F16Weights.words`), 16·C·cols bytes; offset a multiple of 16. */
  readonly w: GPUBuffer;
  /** x, `f16PaddedLength(n)` f32 (zero past n); offset a multiple of 16. */
  readonly x: GPUBuffer;
  /** y = Ŵᵀx, cols f32 (written); offset a multiple of 4. */
  readonly y: GPUBuffer;
  readonly n: number;
  readonly cols: number;
  readonly wOffset?: number;
  readonly xOffset?: number;
  readonly yOffset?: number;
  /** Largest storage binding to use, in bytes (default: the device's limit; tests pass less to exercise splitting). */
  readonly maxBindingBytes?: number;
}

/**
 * Records y = Ŵᵀx for f16 weights into `encoder`. Columns are split across dispatches when W or y is
 * larger than one storage binding; x must fit one. Parameter buffers go into `scratch`.
 *
 * @example
 * const scratch = new GpuScratch(device);
 * const encoder = device.createCommandEncoder({ label: 'f16 gemv' });
 * dispatchF16Gemv(device, encoder, scratch, { w, x, y, n: 4096, cols: 4096 });
 * device.queue.submit([encoder.finish()]);
 * scratch.destroy();
 */
export function dispatchF16Gemv(device: GPUDevice, encoder: GPUCommandEncoder, scratch: GpuScratch, args: F16GemvArgs): void {
  const { n, cols } = args;
  checkPositiveInteger(n, 'f16 gemv n');
  checkPositiveInteger(cols, 'f16 gemv cols');
  check(f16GemvSupported(device), "f16 gemv: the device lacks the 'shader-f16' feature (unsupported on this adapter)");
  const chunks = Math.ceil(n / F16_CHUNK);
  const wOffset = args.wOffset ?? 0;
  const xOffset = args.xOffset ?? 0;
  const yOffset = args.yOffset ?? 0;
  checkBufferRange(args.w, wOffset, 16 * chunks * cols, 'f16 gemv: W', 16);
  checkBufferRange(args.x, xOffset, 4 * F16_CHUNK * chunks, 'f16 gemv: x', 16);
  checkBufferRange(args.y, yOffset, 4 * cols, 'f16 gemv: y', 4);
  const subgroups = columnGemvUsesSubgroups(device, args, 'f16 gemv');
  const { layout, pipeline } = pipelines.get(device, subgroups);
  recordColumnGemv(device, encoder, scratch, {
    kernel: 'f16 gemv',
    layout,
    pipeline,
    cols,
    weights: [{ buffer: args.w, offset: wOffset, bytesPerColumn: 16 * chunks }],
    x: { buffer: args.x, offset: xOffset, bytes: 4 * F16_CHUNK * chunks },
    y: { buffer: args.y, offset: yOffset },
    maxBindingBytes: args.maxBindingBytes,
    params: (chunk) =>
      Params.pack({
        cols: chunk.cols,
        chunks,
        w_first: (chunk.weights[0] as BindingWindow).firstElement / 4,
        x_first: chunk.x.firstElement / 4,
        y_first: chunk.y.firstElement,
        subgroup_mode: columnGemvSubgroupMode(args),
      }),
  });
}

/**
 * y = Ŵᵀx on the GPU for CPU data: uploads the packed halves and x (zero-padded to whole chunks),
 * dispatches inside validation error scopes, reads back and destroys its buffers. For tests and
 * benchmarks.
 *
 * @example
 * const y = await f16Gemv(device, packF16Weights(w), x); // w.cols entries
 */
export async function f16Gemv(device: GPUDevice, weights: F16Weights, x: Float32Array, options: ColumnGemvOptions = {}): Promise<Float32Array> {
  checkF16Weights(weights);
  checkGemvVector(x, weights.rows, 'f16 gemv');
  check(f16GemvSupported(device), "f16 gemv: the device lacks the 'shader-f16' feature (unsupported on this adapter)");
  const paddedX = new Float32Array(f16PaddedLength(weights.rows));
  paddedX.set(x);
  const data = await runAndRead(device, 'f16 gemv', 4 * weights.cols, (run) => {
    const w = run.upload('f16 gemv W', weights.words);
    const xBuffer = run.upload('f16 gemv x', paddedX);
    const y = run.storage('f16 gemv y', 4 * weights.cols);
    dispatchF16Gemv(device, run.encoder, run.scratch, { ...options, w, x: xBuffer, y, n: weights.rows, cols: weights.cols });
    return y;
  });
  return new Float32Array(data);
}
