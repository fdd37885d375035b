import dotPackedSource from '../../../shaders/dot_i8_packed.wgsl?raw';
import dotPlainSource from '../../../shaders/dot_i8_plain.wgsl?raw';
import int4GemvSource from '../../../shaders/int4_gemv.wgsl?raw';
import int4GemvCommonSource from '../../../shaders/int4_gemv_common.wgsl?raw';
import int4GemvI8Source from '../../../shaders/int4_gemv_i8.wgsl?raw';
import { check, checkOneOf, checkPositiveInteger } from '../../errors.js';
import { checkMatrix, column, type Matrix } from '../../matrix.js';
import { absmaxQuantize, type AbsmaxOptions } from '../../scalar/absmax.js';
import { float16Bits, fromFloat16Bits } from '../../scalar/floatFormats.js';
import { checkBufferRange } from '../bufferRange.js';
import { createKernelPipeline, KernelPipelines } from '../pipelines.js';
import { runAndRead } from '../runAndRead.js';
import type { GpuScratch } from '../scratch.js';
import { UniformLayout } from '../uniformLayout.js';
import type { BindingWindow } from '../workSplit.js';
import { DOT_PATHS, type DotPath } from './e8Matmul.js';
import { dispatchE8InputsI8, e8InputsI8FromWords, e8InputsKey, quantizeE8InputsI8, type E8InputsI8Values, type E8InputsOperand, type RecordedE8InputsI8 } from './e8ResidueGemvI8.js';
import { e8InputsBytes, e8InputsScalesFirst } from './inputsI8Layout.js';
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
 * The int4 group-32 GEMV baseline y = Wᵀx (shaders/int4_gemv.wgsl), in the storage of WebLLM's
 * q4f16_1 and llama.cpp's Q4_0: 4-bit codes packed 8 per u32 and read as level = nibble − 8, one fp16
 * scale per 32 entries, codes and scales in separate flat buffers (q4f16_1's choice; Q4_0 interleaves
 * them in 18-byte blocks, which WGSL cannot read as aligned words). The kernels read every nibble
 * 0..15 and scales of either sign, so Q4_0 blocks, repacked, multiply unchanged (level −8 and
 * negative d included: test/gpu/baselineKernels.test.ts); the codes `quantizeInt4Weights` makes are
 * q4f16_1's symmetric levels −7..7 (src/scalar/absmax.ts), not Q4_0's −8..7. The scales are fp16
 * pairs in u32 words on every adapter: the shader decodes them with the core builtin
 * `unpack2x16float`, so `shader-f16` is not needed and there is no f32-scale variant.
 *
 * Quantization is `absmaxQuantize(column, INT4_G32_OPTIONS)` per column (CPU). CPU twin of the
 * kernel: float64 dot products of `dequantizeInt4Weights(q)` with x. The GPU forms each code word's
 * Σ level·x in f32 (exact levels, products, vec4 `dot`s of 3 additions, one addition of its two
 * half-words), scales it, adds it to an invocation accumulator (a chain of ⌈4G/256⌉ words) and sums
 * 256 invocations in 8 levels, so each term goes through at most D = ⌈G/64⌉ + 14 roundings
 * (`int4GemvRoundingDepth`): |ŷ_j − y_j| ≤ D·u·Σ_k |Ŵ_kj·x_k|, u = 2^−24, Ŵ the dequantized W
 * (x entries below 2^−114 in magnitude may lose bits when the kernel scales them by 2^−12: see the shader).
 *
 * Its int8-input variant (shaders/int4_gemv_i8.wgsl, `dispatchInt4GemvI8`) reads the same codes with x
 * rounded to int8 per group of 32 (x̂, `dispatchInt4InputsI8`: the E8 residue GEMV's rounding and
 * layout, for an unrotated operand of n rows), as llama.cpp's WebGPU backend reads Q4_0 for a decode
 * step. CPU twin: `int4GemvI8Reference` on the GPU's x̂, in float64. Each code word's Σ level·x̂ is an
 * exact i32; the kernel multiplies it by the fp16 scale and by x̂'s scale, adds it to a chain of
 * ⌈4G/256⌉ words and sums 256 invocations in 8 levels: D = 2 + ⌈4G/256⌉ + 8 roundings
 * (`int4GemvI8RoundingDepth`).
 */

/** Entries per scale. */
export const INT4_GROUP_SIZE = 32;
/** Output columns per workgroup (the shader's COLUMNS). */
export const INT4_GEMV_COLUMNS_PER_WORKGROUP = COLUMN_GEMV_COLUMNS;

/** Most f32 roundings a term goes through in the kernel (see the module comment). */
export function int4GemvRoundingDepth(n: number): number {
  checkPositiveInteger(n, 'int4 gemv n');
  // product + 3 in a dot, 1 across the two half-words, the scale, the word chain, the reduction.
  return 1 + 3 + 1 + 1 + Math.ceil((4 * Math.ceil(n / INT4_GROUP_SIZE)) / COLUMN_GEMV_THREADS) + COLUMN_GEMV_REDUCTION_DEPTH;
}

/** Most f32 roundings a term goes through in the int8-input kernel (see the module comment). */
export function int4GemvI8RoundingDepth(n: number): number {
  checkPositiveInteger(n, 'int4 gemv n');
  // the two scale products, the word chain, the reduction.
  return 2 + Math.ceil((4 * Math.ceil(n / INT4_GROUP_SIZE)) / COLUMN_GEMV_THREADS) + COLUMN_GEMV_REDUCTION_DEPTH;
}

/** The absmax options that define the int4 g32 codes (symmetric levels −7..7 stored as level + 8, fp16 scales). */
export const INT4_G32_OPTIONS: AbsmaxOptions = { bits: 4, groupSize: INT4_GROUP_SIZE, grid: 'symmetric', scaleFormat: 'fp16' };

/**
 * An n × cols matrix in the int4 g32 GEMV layout (see shaders/int4_gemv.wgsl). Column j's codes are
 * the words `codes[4·G·j … 4·G·(j + 1))`, its scales `scales[S·j … S·(j + 1))`.
 */
export interface Int4Weights {
  /** n: entries per column. */
  readonly rows: number;
  readonly cols: number;
  /** G = ⌈n/32⌉ groups per column. */
  readonly groups: number;
  /** S = ⌈G/2⌉ scale words per column. */
  readonly scaleWords: number;
  /** 4·G·cols words; nibble e % 8 of word e / 8 (within a group) holds level + 8. */
  readonly codes: Uint32Array;
  /** S·cols words, each two fp16 scales (group 2i in the low half, 2i + 1 in the high half). */
  readonly scales: Uint32Array;
}

/** x's length in the kernel: n rounded up to a whole group (the padding must be zero). */
export function int4PaddedLength(n: number): number {
  checkPositiveInteger(n, 'int4 n');
  return INT4_GROUP_SIZE * Math.ceil(n / INT4_GROUP_SIZE);
}

/** Bytes the kernel reads for W (codes + scales) of an n × cols matrix. */
export function int4WeightBytes(n: number, cols: number): number {
  const groups = Math.ceil(n / INT4_GROUP_SIZE);
  return cols * (16 * groups + 4 * Math.ceil(groups / 2));
}

/**
 * Quantizes each column of W with `absmaxQuantize(column, INT4_G32_OPTIONS)` and packs codes and
 * scales in the kernel's layout. Padding entries past n get level 0 (nibble 8), padding scales 0.
 *
 * @example
 * const q = quantizeInt4Weights(w);
 * const y = await int4Gemv(device, q, x);
 */
export function quantizeInt4Weights(w: Matrix): Int4Weights {
  checkMatrix(w, 'W');
  const n = w.rows;
  const groups = Math.ceil(n / INT4_GROUP_SIZE);
  const scaleWords = Math.ceil(groups / 2);
  const codes = new Uint32Array(4 * groups * w.cols);
  const scales = new Uint32Array(scaleWords * w.cols);
  const zeroLevelWord = 0x88888888;
  for (let j = 0; j < w.cols; j++) {
    const quantized = absmaxQuantize(column(w, j), INT4_G32_OPTIONS);
    const codeBase = 4 * groups * j;
    codes.fill(zeroLevelWord, codeBase, codeBase + 4 * groups);
    for (let k = 0; k < n; k++) {
      const word = codeBase + (k >>> 3);
      const shift = 4 * (k & 7);
      const nibble = quantized.codes[k] as number;
      codes[word] = ((codes[word] as number) & ~(15 << shift)) | (nibble << shift);
    }
    for (let g = 0; g < groups; g++) {
      const half = float16Bits(quantized.scales[g] as number);
      const word = scaleWords * j + (g >>> 1);
      scales[word] = (scales[word] as number) | (half << (16 * (g & 1)));
    }
  }
  return { rows: n, cols: w.cols, groups, scaleWords, codes, scales };
}

/**
 * The matrix the kernel multiplies by: entry (k, j) = scale · (nibble − 8), read from the packed
 * layout (exact in f32: an fp16 scale times a level of at most 3 bits).
 */
export function dequantizeInt4Weights(q: Int4Weights): Matrix {
  checkInt4Weights(q);
  const data = new Float32Array(q.rows * q.cols);
  for (let j = 0; j < q.cols; j++) {
    for (let k = 0; k < q.rows; k++) {
      const group = k >>> 5;
      const word = q.codes[4 * q.groups * j + (k >>> 3)] as number;
      const level = ((word >>> (4 * (k & 7))) & 15) - 8;
      const scaleWord = q.scales[q.scaleWords * j + (group >>> 1)] as number;
      const scale = fromFloat16Bits((scaleWord >>> (16 * (group & 1))) & 0xffff);
      data[j * q.rows + k] = scale * level;
    }
  }
  return { rows: q.rows, cols: q.cols, data };
}

function checkInt4Weights(q: Int4Weights): void {
  check(typeof q === 'object' && q !== null, 'int4 weights must be an Int4Weights object');
  checkPositiveInteger(q.rows, 'int4 weights rows');
  checkPositiveInteger(q.cols, 'int4 weights cols');
  const groups = Math.ceil(q.rows / INT4_GROUP_SIZE);
  check(q.groups === groups, () => `int4 weights: groups is ${q.groups}, expected ⌈${q.rows}/32⌉ = ${groups}`);
  check(q.scaleWords === Math.ceil(groups / 2), () => `int4 weights: scaleWords is ${q.scaleWords}, expected ⌈G/2⌉`);
  check(
    q.codes instanceof Uint32Array && q.codes.length === 4 * groups * q.cols,
    () => `int4 weights: codes must be a Uint32Array of 4·G·cols = ${4 * groups * q.cols} words`,
  );
  check(
    q.scales instanceof Uint32Array && q.scales.length === q.scaleWords * q.cols,
    () => `int4 weights: scales must be a Uint32Array of S·cols = ${q.scaleWords * q.cols} words`,
  );
}

/** The kernel's uniform struct (`params`); its WGSL is generated and put in front of the shader. */
const Params = /*#__PURE__*/ new UniformLayout('Int4GemvParams', {
  cols: 'u32', // output columns in this dispatch
  groups: 'u32', // G = ⌈n/32⌉
  scale_words: 'u32', // S = ⌈G/2⌉
  codes_first: 'u32', // word index of column 0, group 0
  scales_first: 'u32', // word index of column 0's scales
  x_first: 'u32', // f32 x: vec4 index of x[0]; int8 x: word index of x̂'s group 0
  x_scales_first: 'u32', // int8 x: word index of x̂'s scale of group 0 (unused with f32 x)
  y_first: 'u32', // index of y[0]
  subgroup_mode: 'u32', // 0; tests: 1 forces the plain reduction, 2 poisons it
});

/** How the int4 GEMV takes x: f32 (shaders/int4_gemv.wgsl), or rounded to int8 with packed or plain 8-bit dot products (shaders/int4_gemv_i8.wgsl). */
export type Int4Input = 'f32' | DotPath;

/** A pipeline variant: the reduction and how x is taken. */
export interface Int4GemvVariant {
  readonly subgroups: boolean;
  readonly input: Int4Input;
}

/**
 * The WGSL of one variant.
 *
 * @example
 * int4GemvShaderSource({ subgroups: true, input: 'f32' });
 * int4GemvShaderSource({ subgroups: false, input: 'packed' }); // x as int8, dot4I8Packed
 */
export function int4GemvShaderSource(variant: Int4GemvVariant): string {
  const kernel = variant.input === 'f32' ? [int4GemvCommonSource, int4GemvSource] : [variant.input === 'packed' ? dotPackedSource : dotPlainSource, int4GemvCommonSource, int4GemvI8Source];
  return columnGemvSource({ subgroups: variant.subgroups, header: Params.wgsl(), kernel: kernel.join('\n') });
}

/** Pipelines per device and variant, built on first use. */
const pipelines = /*#__PURE__*/ new KernelPipelines({
  label: 'int4 gemv',
  bindings: ['uniform', 'read-only-storage', 'read-only-storage', 'read-only-storage', 'storage'],
  compile: (device, pipelineLayout, variant: Int4GemvVariant) =>
    createKernelPipeline(device, pipelineLayout, {
      label: `int4 gemv (${variant.input === 'f32' ? 'f32 x' : `int8 x, ${variant.input} dot`}${variant.subgroups ? ', subgroups' : ''})`,
      code: int4GemvShaderSource(variant),
    }),
  key: (variant) => `${variant.input}/${variant.subgroups}`,
});

/** The weights, output and options both int4 GEMVs take. Offsets are in bytes. */
interface Int4GemvWeightArgs extends ColumnGemvOptions {
  /** Packed codes (`Int4Weights.codes`), 16·G·cols bytes; offset a multiple of 16. */
  readonly codes: GPUBuffer;
  /** Packed fp16 scales (`Int4Weights.scales`), 4·S·cols bytes; offset a multiple of 4. */
  readonly scales: GPUBuffer;
  /** y = Ŵᵀx, cols f32 (written); offset a multiple of 4. */
  readonly y: GPUBuffer;
  readonly n: number;
  readonly cols: number;
  readonly codesOffset?: number;
  readonly scalesOffset?: number;
  readonly yOffset?: number;
  /** Largest storage binding to use, in bytes (default: the device's limit; tests pass less to exercise splitting). */
  readonly maxBindingBytes?: number;
}

/** Arguments of `dispatchInt4Gemv`. Offsets are in bytes. */
export interface Int4GemvArgs extends Int4GemvWeightArgs {
  /** x, `int4PaddedLength(n)` f32 (zero past n); offset a multiple of 16. */
  readonly x: GPUBuffer;
  readonly xOffset?: number;
}

/**
 * Records y = Ŵᵀx into `encoder` for int4 g32 weights Ŵ. Columns are split across several dispatches
 * when the codes, scales or y are larger than one storage binding; x must fit one binding. Parameter
 * buffers go into `scratch` (destroy it after submitting).
 *
 * @example
 * const scratch = new GpuScratch(device);
 * const encoder = device.createCommandEncoder({ label: 'int4 gemv' });
 * dispatchInt4Gemv(device, encoder, scratch, { codes, scales, x, y, n: 4096, cols: 4096 });
 * device.queue.submit([encoder.finish()]);
 * scratch.destroy();
 */
export function dispatchInt4Gemv(device: GPUDevice, encoder: GPUCommandEncoder, scratch: GpuScratch, args: Int4GemvArgs): void {
  checkPositiveInteger(args.n, 'int4 gemv n');
  const x = { buffer: args.x, offset: args.xOffset ?? 0, bytes: 4 * int4PaddedLength(args.n), alignment: 16 };
  recordInt4Gemv(device, encoder, scratch, args, 'f32', x, (window) => ({ x_first: window.firstElement / 4, x_scales_first: 0 }));
}

/**
 * The unrotated operand of n rows whose x̂ the int8-input int4 GEMV reads: groups of 32 entries over
 * x padded to `int4PaddedLength(n)`, entries past n rounding as 0.
 */
export function int4InputsOperand(n: number): E8InputsOperand {
  checkPositiveInteger(n, 'int4 n');
  const groups = Math.ceil(n / INT4_GROUP_SIZE);
  return { rows: n, length: INT4_GROUP_SIZE * groups, keptLength: n, quadsPerColumn: groups, rotate: false, seed: 0 };
}

/** Arguments of `dispatchInt4InputsI8`. */
export interface Int4InputsI8Args {
  /** x, `int4PaddedLength(n)` f32 (the padding is not read); offset a multiple of 4. */
  readonly x: GPUBuffer;
  readonly xOffset?: number;
  readonly n: number;
}

/**
 * Records x → x̂, x rounded to int8 per group of 32 with one f32 scale per group (`dispatchE8InputsI8`
 * for `int4InputsOperand(n)`; CPU twin `quantizeInt4InputsI8`), once for every int8-input int4 GEMV
 * that reads the same x. The result lives in `scratch`.
 *
 * @example
 * const inputsI8 = dispatchInt4InputsI8(device, encoder, scratch, { x, n: 4096 });
 * dispatchInt4GemvI8(device, encoder, scratch, { codes, scales, inputsI8, y, n: 4096, cols: 4096, dotPath: dotPathFor(features) });
 */
export function dispatchInt4InputsI8(device: GPUDevice, encoder: GPUCommandEncoder, scratch: GpuScratch, args: Int4InputsI8Args): RecordedE8InputsI8 {
  return dispatchE8InputsI8(device, encoder, scratch, { w: int4InputsOperand(args.n), xRotated: args.x, xRotatedOffset: args.xOffset ?? 0, rhs: 1 });
}

/** CPU twin of `dispatchInt4InputsI8` (a level may differ by one where 127·x/m is within 10⁻⁴ of a half-integer: the GPU divides in f32). */
export function quantizeInt4InputsI8(x: Float32Array): E8InputsI8Values {
  const operand = int4InputsOperand(x.length);
  return quantizeE8InputsI8(x, operand.keptLength, operand.quadsPerColumn);
}

/** Arguments of `dispatchInt4GemvI8`. Offsets are in bytes. */
export interface Int4GemvI8Args extends Int4GemvWeightArgs {
  /** x̂ of one right-hand side of n entries, from `dispatchInt4InputsI8`. */
  readonly inputsI8: RecordedE8InputsI8;
  /** 'packed': dot4I8Packed (only where WGSL has packed_4x8_integer_dot_product: `dotPathFor(features)`); 'plain': core WGSL. */
  readonly dotPath: DotPath;
}

/**
 * Records y = Ŵᵀx̂ into `encoder` for int4 g32 weights Ŵ and x̂ from `dispatchInt4InputsI8` (the
 * int8-input baseline: 4-bit codes against 8-bit x, as llama.cpp's WebGPU backend multiplies Q4_0 by
 * a vector). Columns are split as `dispatchInt4Gemv` splits them.
 *
 * @example
 * const inputsI8 = dispatchInt4InputsI8(device, encoder, scratch, { x, n: 4096 });
 * dispatchInt4GemvI8(device, encoder, scratch, { codes, scales, inputsI8, y, n: 4096, cols: 4096, dotPath: 'packed' });
 */
export function dispatchInt4GemvI8(device: GPUDevice, encoder: GPUCommandEncoder, scratch: GpuScratch, args: Int4GemvI8Args): void {
  checkPositiveInteger(args.n, 'int4 gemv n');
  checkOneOf(args.dotPath, DOT_PATHS, 'int4 gemv: dotPath');
  const { inputsI8 } = args;
  const operand = e8InputsKey(int4InputsOperand(args.n));
  check(inputsI8.rhs === 1, () => `int4 gemv: inputsI8 holds ${inputsI8.rhs} right-hand sides; this GEMV takes one`);
  check(inputsI8.operand === operand, () => `int4 gemv: inputsI8 was rounded for ${inputsI8.operand}, not for ${operand}`);
  const groups = Math.ceil(args.n / INT4_GROUP_SIZE);
  recordInt4Gemv(device, encoder, scratch, args, args.dotPath, { buffer: inputsI8.inputs, offset: 0, bytes: e8InputsBytes(groups, 1), alignment: 4 }, (x) => ({
    x_first: x.firstElement,
    x_scales_first: x.firstElement + e8InputsScalesFirst(groups, 1),
  }));
}

/** What both dispatch functions share: the weights' checks, the variant's pipeline and `recordColumnGemv`. */
function recordInt4Gemv(
  device: GPUDevice,
  encoder: GPUCommandEncoder,
  scratch: GpuScratch,
  args: Int4GemvWeightArgs,
  input: Int4Input,
  x: { readonly buffer: GPUBuffer; readonly offset: number; readonly bytes: number; readonly alignment: number },
  xParams: (window: BindingWindow) => { x_first: number; x_scales_first: number },
): void {
  const { n, cols } = args;
  checkPositiveInteger(cols, 'int4 gemv cols');
  const groups = Math.ceil(n / INT4_GROUP_SIZE);
  const scaleWords = Math.ceil(groups / 2);
  const codesOffset = args.codesOffset ?? 0;
  const scalesOffset = args.scalesOffset ?? 0;
  const yOffset = args.yOffset ?? 0;
  checkBufferRange(args.codes, codesOffset, 16 * groups * cols, 'int4 gemv: codes', 16);
  checkBufferRange(args.scales, scalesOffset, 4 * scaleWords * cols, 'int4 gemv: scales', 4);
  checkBufferRange(x.buffer, x.offset, x.bytes, input === 'f32' ? 'int4 gemv: x' : 'int4 gemv: inputsI8', x.alignment);
  checkBufferRange(args.y, yOffset, 4 * cols, 'int4 gemv: y', 4);
  const subgroups = columnGemvUsesSubgroups(device, args, 'int4 gemv');
  const { layout, pipeline } = pipelines.get(device, { subgroups, input });
  recordColumnGemv(device, encoder, scratch, {
    kernel: input === 'f32' ? 'int4 gemv' : 'int4 gemv (int8 x)',
    layout,
    pipeline,
    cols,
    weights: [
      { buffer: args.codes, offset: codesOffset, bytesPerColumn: 16 * groups },
      { buffer: args.scales, offset: scalesOffset, bytesPerColumn: 4 * scaleWords },
    ],
    x: { buffer: x.buffer, offset: x.offset, bytes: x.bytes },
    y: { buffer: args.y, offset: yOffset },
    maxBindingBytes: args.maxBindingBytes,
    params: ({ cols: chunkCols, weights: [codesWindow, scalesWindow], x: xWindow, y }) =>
      Params.pack({
        cols: chunkCols,
        groups,
        scale_words: scaleWords,
        codes_first: (codesWindow as BindingWindow).firstElement,
        scales_first: (scalesWindow as BindingWindow).firstElement,
        ...xParams(xWindow),
        y_first: y.firstElement,
        subgroup_mode: columnGemvSubgroupMode(args),
      }),
  });
}

/** The host helpers' checks of W and x, and x zero-padded to whole groups, as the kernels read it. */
function checkedPaddedX(weights: Int4Weights, x: Float32Array): Float32Array {
  checkInt4Weights(weights);
  checkGemvVector(x, weights.rows, 'int4 gemv');
  const paddedX = new Float32Array(int4PaddedLength(weights.rows));
  paddedX.set(x);
  return paddedX;
}

/**
 * y = Ŵᵀx on the GPU for CPU data: uploads the packed weights and x (zero-padded to whole groups),
 * dispatches inside validation error scopes, reads back and destroys its buffers. For tests and
 * benchmarks; applications keep data on the GPU and call `dispatchInt4Gemv`.
 *
 * @example
 * const y = await int4Gemv(device, quantizeInt4Weights(w), x); // w.cols entries
 */
export async function int4Gemv(device: GPUDevice, weights: Int4Weights, x: Float32Array, options: ColumnGemvOptions = {}): Promise<Float32Array> {
  const paddedX = checkedPaddedX(weights, x);
  const data = await runAndRead(device, 'int4 gemv', 4 * weights.cols, (run) => {
    const codes = run.upload('int4 gemv codes', weights.codes);
    const scales = run.upload('int4 gemv scales', weights.scales);
    const xBuffer = run.upload('int4 gemv x', paddedX);
    const y = run.storage('int4 gemv y', 4 * weights.cols);
    dispatchInt4Gemv(device, run.encoder, run.scratch, { ...options, codes, scales, x: xBuffer, y, n: weights.rows, cols: weights.cols });
    return y;
  });
  return new Float32Array(data);
}

/** Options of `int4GemvI8`. */
export type Int4GemvI8Options = ColumnGemvOptions & { readonly dotPath: DotPath };

/**
 * y = Ŵᵀx̂ on the GPU for CPU data, with x rounded to int8 on the GPU (`dispatchInt4InputsI8`): uploads,
 * dispatches inside validation error scopes, reads back y and x̂, and destroys its buffers. For tests
 * and benchmarks. x̂ is returned so that a caller can compare with `int4GemvI8Reference` on the very
 * levels the kernel read.
 *
 * @example
 * const { y, inputs } = await int4GemvI8(device, quantizeInt4Weights(w), x, { dotPath: 'plain' });
 */
export async function int4GemvI8(device: GPUDevice, weights: Int4Weights, x: Float32Array, options: Int4GemvI8Options): Promise<{ y: Float32Array; inputs: E8InputsI8Values }> {
  const paddedX = checkedPaddedX(weights, x);
  const groups = weights.groups;
  const inputBytes = e8InputsBytes(groups, 1);
  const data = await runAndRead(device, 'int4 gemv (int8 x)', 4 * weights.cols + inputBytes, (run) => {
    const codes = run.upload('int4 gemv codes', weights.codes);
    const scales = run.upload('int4 gemv scales', weights.scales);
    const xBuffer = run.upload('int4 gemv x', paddedX);
    const out = run.storage('int4 gemv y and x̂', 4 * weights.cols + inputBytes);
    const inputsI8 = dispatchInt4InputsI8(device, run.encoder, run.scratch, { x: xBuffer, n: weights.rows });
    dispatchInt4GemvI8(device, run.encoder, run.scratch, { ...options, codes, scales, inputsI8, y: out, n: weights.rows, cols: weights.cols });
    run.encoder.copyBufferToBuffer(inputsI8.inputs, 0, out, 4 * weights.cols, inputBytes);
    return out;
  });
  const y = new Float32Array(data, 0, weights.cols);
  return { y: new Float32Array(y), inputs: e8InputsI8FromWords(new Uint32Array(data, 4 * weights.cols, inputBytes / 4), groups, 1)[0] as E8InputsI8Values };
}

/**
 * CPU twin of the int8-input kernel: y_j = Σ_k Ŵ_kj·s_g(k)·x̂_k in float64, with Ŵ from
 * `dequantizeInt4Weights` (scale·level, exact) and the given x̂ (levels in coordinate order, a scale
 * per group of 32).
 */
export function int4GemvI8Reference(weights: Int4Weights, inputs: E8InputsI8Values): Float64Array {
  const w = dequantizeInt4Weights(weights);
  const y = new Float64Array(w.cols);
  for (let j = 0; j < w.cols; j++) {
    let total = 0;
    for (let k = 0; k < w.rows; k++) {
      total += (w.data[j * w.rows + k] as number) * (inputs.scales[Math.floor(k / INT4_GROUP_SIZE)] as number) * (inputs.levels[k] as number);
    }
    y[j] = total;
  }
  return y;
}
