import { checkDispatch } from './dispatchChecks.js';
import weightOnlyGemvSource from '../../../shaders/weightonly_gemv.wgsl?raw';
import packedCodesSource from '../../../shaders/weightonly_codes_packed.wgsl?raw';
import fixedCodesSource from '../../../shaders/weightonly_codes_fixed.wgsl?raw';
import fixedCodesI8Source from '../../../shaders/weightonly_codes_fixed_i8.wgsl?raw';
import dotPackedSource from '../../../shaders/dot_i8_packed.wgsl?raw';
import dotPlainSource from '../../../shaders/dot_i8_plain.wgsl?raw';
import { check, checkLabel, checkOneOf, checkPositiveInteger, counted, describeValue, LatticeMatmulError } from '../../errors.js';
import { checkMatrix, firstNonFinite, type Matrix } from '../../matrix.js';
import { normalizingExponent } from '../../quantize/columnScaling.js';
import { throwIfDeviceLost } from '../errorScopes.js';
import { checkOutputNotRead, type NamedBuffer } from '../latticeOperand.js';
import { WeightBasis } from '../../weightonly/basis.js';
import { fixedCodeBits, fixedFieldSigns, fixedRowVec4s, fixedWidthCodes, MAX_FIXED_CODE_BITS, rowLayout, weightCodeLayout, type FixedCodeBits } from '../../weightonly/packedCodes.js';
import { WeightOnlyQuantized } from '../../weightonly/quantized.js';
import { checkOptionsObject } from '../../quantize/strictOptions.js';
import { checkBufferRange } from '../bufferRange.js';
import { createBufferWithData, STORAGE_USAGE } from '../buffers.js';
import { createKernelBindGroup, createKernelPipeline, KernelPipelines, windowBinding } from '../pipelines.js';
import { runAndRead } from '../runAndRead.js';
import type { GpuScratch } from '../scratch.js';
import { UniformLayout } from '../uniformLayout.js';
import { bindingCap, bindingWindow, itemsPerBinding, valuesWindow, workgroupGrid } from '../workSplit.js';
import { ACTIVATION_FORMATS, activationBytes, type ActivationFormat } from './activationIo.js';
import { GEMV_OUTPUT_ARG_KEYS, GEMV_OUTPUT_MEMBERS, GEMV_OUTPUT_WGSL, gemvOutputArgs, gemvOutputFormat, resolveGemvOutput, type GemvOutputArgs } from './gemvCall.js';
import { dispatchHadamard } from './hadamard.js';
import { DOT_PATHS, type DotPath } from './e8Matmul.js';
import { dispatchWeightOnlyInputsI8, weightOnlyI8Constants, weightOnlyI8RecordWords, type RecordedWeightOnlyInputsI8 } from './weightOnlyInputsI8.js';

/*
 * The GEMV of weight-only quantized matrices (shaders/weightonly_gemv.wgsl): y = Ŵ·x for a
 * `WeightOnlyQuantized` (WaterSIC, GPTQ, RTN) without decoding Ŵ. With Ŵ = Ŵ'·Q (Q the quantization
 * basis) and Ŵ'[j, i] = t_j·z_ji·s_i, y_j = t_j · Σ_i z_ji · s_i · (Q·x)_i: x is rotated once, then
 * the kernel reads the codes and the two scale vectors. The codes come in one of two layouts
 * (`UploadWeightOnlyOptions.layout`):
 * - fixed width (`fixedWidthCodes`: every code in b = max b_i bits, ⌊32/b⌋ per word, repacked at
 *   upload, strided so that the lanes that own consecutive words read consecutive s_i and x̃_i), where
 *   b ≤ 8 and that costs at most 1.5× the packed bytes (the quantizers' codes at rates 2–6: their
 *   widths differ by a bit or two between features): a code's bits are found from its index, a shift
 *   and an and-or for 4 rows;
 * - packed (`WeightOnlyQuantized.packedCodes`: b_i bits for input feature i, the serialized format's
 *   layout, uploaded as it is) with a small column layout table (`weightCodeLayout`: where each code
 *   starts, which codes each vec4 owns): every width up to 25 bits, tens of instructions per code.
 *
 * Where the rotation runs (`WeightOnlyGpuMatrix.dispatch`):
 * - `none`: nothing to do.
 * - `hadamard`: on the GPU, `dispatchHadamard` with the matrix's seed (bit for bit the
 *   `RandomizedHadamard.forward` the quantizer used), into a scratch buffer, so x never leaves the GPU.
 * - `haar` (n ≤ MAX_HAAR_N and not m·2^k): on the host, `rotateOnHost` (the dense n × n rotation lives
 *   only in the CPU `WeightBasis`; O(n²) per vector). The caller passes the rotated x̃ with
 *   `inputBasis: 'quantization'`; the convenience functions do this themselves.
 *
 * CPU twin: float64 products of `q.decode()` (Ŵ in the original basis) with x. The GPU error: each
 * term t·z·s·x̃ goes through at most K = C + 16 f32 roundings, C the most codes any lane owns (packed:
 * lane l of a row takes vec4s l, l + 64, …, and vec4 c owns the codes whose last bit lies in it; fixed
 * width: lane l takes words l, l + 64, …, each with its ⌊32/b⌋ codes below n; see the shaders), so |ŷ_j − Σ_i t_j z_ji s_i x̃_i| ≤ γ_K·Σ_i |t_j z_ji s_i x̃_i|, γ_K = K·u/(1 − K·u),
 * u = 2^−24, where the intermediates are normal f32 (the upload scales s up and t down by a power of
 * two, `uploadScaleExponent`, so that s_i·x̃_i is normal wherever x̃_i is; where one is still subnormal,
 * up to (K + 2)·2^−149·max(1, |t_j|·2^−e) more in absolute terms), plus the rotation's own rounding (for `hadamard`, ⌈log2 n⌉ + 1 roundings of each x̃_i,
 * the same count the CPU decode's inverse rotation spends on Ŵ). Finite for every x with ‖x‖₂ ≤ 2^31
 * (the bounds of `WeightOnlyQuantized`).
 */

/** Vectors per workgroup: the compile-time variants (1 for a GEMV, 4 for several vectors). */
export type WeightOnlyVectorBlock = 1 | 4;

/** Outputs per workgroup (the shader's ROWS_PER_WORKGROUP). */
export const WEIGHT_ONLY_GEMV_ROWS_PER_WORKGROUP = 8;

/** Lanes along a row (the shader's LANES): lane l reads vec4s l, l + 64, … of its rows. */
export const WEIGHT_ONLY_GEMV_LANES = 64;

const VECTOR_BLOCKS: readonly WeightOnlyVectorBlock[] = [1, 4];
const CODE_BITS: readonly WeightOnlyCodeBits[] = /*#__PURE__*/ (() => ['packed' as const, ...Array.from({ length: MAX_FIXED_CODE_BITS }, (_, k) => (k + 1) as FixedCodeBits)])();

/** The kernel's uniform struct (`params`); its WGSL is generated and put in front of the kernel. */
// A pure IIFE, not a pure `new`: bundlers keep an argument with a spread (it may run getters).
const Params = /*#__PURE__*/ (() => new UniformLayout('WeightOnlyGemvParams', {
  outputs: 'u32', // outputs (rows of Ŵ') in this dispatch
  n: 'u32', // input features
  row_vec4s: 'u32', // R: vec4<u32> of codes per output
  vectors: 'u32', // vectors in this dispatch
  row_groups: 'u32', // ⌈outputs / ROWS_PER_WORKGROUP⌉
  codes_first: 'u32', // vec4 index of output 0's codes
  layout_first: 'u32', // index of P_0 in `code_layout`
  column_scales_first: 'u32', // index of s_0
  row_scales_first: 'u32', // index of t_0
  x_first: 'u32', // index of vector 0's x̃_0
  x_stride: 'u32', // elements (f32 or f16) between consecutive vectors of x
  y_first: 'u32', // index (f32) or half index (f16) of vector 0's y_0
  y_stride: 'u32', // elements between consecutive vectors of y
  ...GEMV_OUTPUT_MEMBERS,
}))();

/** A compiled variant: vectors per workgroup, the format X̃ is read in, and the codes' layout. */
export interface WeightOnlyGemvVariant {
  readonly vectorBlock: WeightOnlyVectorBlock;
  readonly inputFormat: ActivationFormat;
  /** 'packed' (the serialized layout), or the bits of the fixed-width layout. Default 'packed'. */
  readonly codeBits?: WeightOnlyCodeBits;
  /**
   * Fixed-width codes only: x̂, X̃ rounded to int8 with s folded in (`dispatchWeightOnlyInputsI8`),
   * multiplied with packed 8-bit dot products ('packed': WGSL's dot4I8Packed; 'plain': core WGSL).
   * Default null: s·x̃ in f32.
   */
  readonly int8Dot?: DotPath | null;
}

/** The layout of a weight-only matrix's codes on the GPU: 'packed' (b_i bits each), or a fixed 1 … 8 bits per code. */
export type WeightOnlyCodeBits = 'packed' | FixedCodeBits;

/**
 * The WGSL of one variant: the vectors per workgroup, X̃'s format and the code width (the compile-time
 * choices), the generated parameter struct, the kernel, and the lane loop of its code layout.
 *
 * @example
 * weightOnlyGemvShaderSource({ vectorBlock: 1, inputFormat: 'f32' }); // the GEMV variant, packed codes
 * weightOnlyGemvShaderSource({ vectorBlock: 1, inputFormat: 'f32', codeBits: 4 }); // 4-bit fixed-width codes
 */
export function weightOnlyGemvShaderSource(variant: WeightOnlyGemvVariant): string {
  const bits = variant.codeBits ?? 'packed';
  const int8Dot = variant.int8Dot ?? null;
  if (int8Dot !== null) {
    check(bits !== 'packed', 'weight-only gemv: int8 inputs need fixed-width codes');
    const constants = [`const VECTOR_BLOCK: u32 = ${variant.vectorBlock}u;`, 'const X_F16: bool = false;', weightOnlyI8Constants(bits)];
    return `${constants.join('\n')}\n${Params.wgsl()}\n${weightOnlyGemvSource}\n${int8Dot === 'packed' ? dotPackedSource : dotPlainSource}\n${fixedCodesI8Source}\n${GEMV_OUTPUT_WGSL}`;
  }
  const constants = [`const VECTOR_BLOCK: u32 = ${variant.vectorBlock}u;`, `const X_F16: bool = ${variant.inputFormat === 'f16'};`, ...(bits === 'packed' ? [] : fixedWidthConstants(bits))];
  return `${constants.join('\n')}\n${Params.wgsl()}\n${weightOnlyGemvSource}\n${bits === 'packed' ? packedCodesSource : fixedCodesSource}\n${GEMV_OUTPUT_WGSL}`;
}

/**
 * The fixed-width loop's constants: CODE_BITS, and FIELD_SIGNS, the top bit of each of a word's
 * ⌊32/b⌋ fields (xor'ed in, it turns a two's complement field z into z + 2^(b−1) ≥ 0).
 */
function fixedWidthConstants(bits: FixedCodeBits): string[] {
  return [`const CODE_BITS: u32 = ${bits}u;`, `const FIELD_SIGNS: u32 = 0x${fixedFieldSigns(bits).toString(16)}u;`];
}

/** Pipelines per device, one per variant, built on first use. */
const pipelines = /*#__PURE__*/ new KernelPipelines({
  label: 'weight-only gemv',
  // params; codes (packed or fixed width); the packed codes' layout table (a placeholder for fixed
  // width); column scales; row scales; x; bias; y.
  bindings: ['uniform', 'read-only-storage', 'read-only-storage', 'read-only-storage', 'read-only-storage', 'read-only-storage', 'read-only-storage', 'storage'],
  key: (variant: WeightOnlyGemvVariant) => `${variant.vectorBlock}/${variant.inputFormat}/${variant.codeBits ?? 'packed'}/${variant.int8Dot ?? 'f32'}`,
  compile: (device, pipelineLayout, variant: WeightOnlyGemvVariant) =>
    createKernelPipeline(device, pipelineLayout, {
      label: `weight-only gemv (${codeLayoutName(variant.codeBits ?? 'packed')}, ${counted(variant.vectorBlock, 'vector')} per workgroup${variant.inputFormat === 'f16' ? ', f16 x' : ''}${(variant.int8Dot ?? null) === null ? '' : `, int8 x (${variant.int8Dot})`})`,
      code: weightOnlyGemvShaderSource(variant),
    }),
});

/** The codes' layout in words, for labels and messages. */
function codeLayoutName(bits: WeightOnlyCodeBits): string {
  return bits === 'packed' ? 'packed codes' : `${bits}-bit codes`;
}

/**
 * Arguments of `dispatchWeightOnlyGemv`. Offsets are in bytes. X̃ comes as `x` (with `inputFormat` and
 * `xOffset`) or as `inputsI8` with `int8Dot`, one of the two: neither, both, or `inputsI8` without
 * `int8Dot` (or with `inputFormat` or `xOffset`) does not compile, as every run refuses it.
 */
export type WeightOnlyGemvArgs = WeightOnlyGemvFields &
  (
    | { readonly x: GPUBuffer; readonly inputsI8?: undefined; readonly int8Dot?: undefined }
    | { readonly inputsI8: RecordedWeightOnlyInputsI8; readonly int8Dot: DotPath; readonly x?: undefined; readonly inputFormat?: undefined; readonly xOffset?: undefined }
  );

/**
 * Every argument of `dispatchWeightOnlyGemv` (`WeightOnlyGemvArgs` takes `x` or `inputsI8`, as it says).
 *
 * @inline
 */
export interface WeightOnlyGemvFields extends GemvOutputArgs {
  /**
   * Packed codes (`WeightOnlyQuantized.packedCodes.words`), or with `codeBits` 1 … 8 the fixed-width
   * codes (`fixedWidthCodes(q.codes, n, outputs, codeBits).words`): 16·R·outputs bytes; offset a
   * multiple of 16.
   */
  readonly codes: GPUBuffer;
  /** The layout of `codes`: 'packed' (default) or 1 … 8 bits per code (the fixed-width layout). */
  readonly codeBits?: WeightOnlyCodeBits;
  /** Packed codes only: the column layout table (`weightCodeLayout(widths, R)`), n + R + 2 u32. */
  readonly codeLayout?: GPUBuffer;
  /** s, n f32. */
  readonly columnScales: GPUBuffer;
  /** t, outputs f32 (all 1 for a matrix without row scales). */
  readonly rowScales: GPUBuffer;
  /**
   * X̃ = Q·X in the quantization basis: `vectors` columns of n values (f32, or f16 with `inputFormat`),
   * column-major. Give it, or `inputsI8`.
   */
  readonly x?: GPUBuffer;
  /**
   * X̃ rounded to int8 by `dispatchWeightOnlyInputsI8` for these codes (their width and n) and these
   * column scales, in place of `x`; fixed-width codes only, with `int8Dot`.
   */
  readonly inputsI8?: RecordedWeightOnlyInputsI8;
  /** How `inputsI8` are multiplied: 'packed' (dot4I8Packed) or 'plain' (core WGSL). */
  readonly int8Dot?: DotPath;
  /** X̃'s format: 'f32' (default) or 'f16' (widened exactly as it is read; `xOffset` a multiple of 2). */
  readonly inputFormat?: ActivationFormat;
  /** Y = Ŵ'·X̃ (+ b; Y + that with `accumulate`): `vectors` columns of `outputs` values (f32, or f16 with `outputFormat`), column-major (written, and read first with `accumulate`). */
  readonly y: GPUBuffer;
  readonly n: number;
  readonly outputs: number;
  /** R: vec4<u32> of codes per output row (`packedCodes.rowVec4s`, or the fixed-width codes' `rowVec4s`). */
  readonly rowVec4s: number;
  /** Columns of X and Y. Default 1. */
  readonly vectors?: number;
  readonly codesOffset?: number;
  readonly codeLayoutOffset?: number;
  readonly columnScalesOffset?: number;
  readonly rowScalesOffset?: number;
  readonly xOffset?: number;
  readonly yOffset?: number;
  /** Largest storage binding to use, in bytes (default: the device's limit; tests pass less to exercise splitting). */
  readonly maxBindingBytes?: number;
  /** Force a vector block (default: 1 for one vector, else 4). */
  readonly vectorBlock?: WeightOnlyVectorBlock;
}

/**
 * Records Y = Ŵ'·X̃ into `encoder`: y[v][j] = t_j · Σ_i z_ji · s_i · x̃[v][i] for X̃ already in the
 * quantization basis (see `WeightOnlyGpuMatrix.dispatch` for x in the original basis). Outputs are
 * split across dispatches when the codes, t or Y exceed one storage binding, vectors when X or Y
 * do; s, the layout table and one vector of X̃ must fit one binding. The kernel trusts the layout
 * table to match the codes (`WeightOnlyGpuMatrix` builds both from one `WeightOnlyQuantized`): a
 * wrong table gives wrong products, but no read outside the bindings (WebGPU's robust buffer
 * access) and no more than n codes of work per vec4 (the shader clamps the table's entries).
 * Parameter buffers go into `scratch` (destroy it after submitting).
 *
 * @example
 * const scratch = new GpuScratch(device);
 * const encoder = device.createCommandEncoder({ label: 'weight-only gemv' });
 * dispatchWeightOnlyGemv(device, encoder, scratch, { codes, codeLayout, columnScales, rowScales, x, y, n: 4096, outputs: 4096, rowVec4s: 160 });
 * device.queue.submit([encoder.finish()]);
 * scratch.destroy();
 */
export function dispatchWeightOnlyGemv(device: GPUDevice, encoder: GPUCommandEncoder, scratch: GpuScratch, args: WeightOnlyGemvArgs): void {
  checkDispatch(device, encoder, scratch, args, 'dispatchWeightOnlyGemv');
  checkOptionsObject(args, GEMV_ARG_KEYS, 'dispatchWeightOnlyGemv arguments');
  const { n, outputs, rowVec4s } = args;
  const vectors = args.vectors ?? 1;
  checkPositiveInteger(n, 'weight-only gemv n');
  checkPositiveInteger(outputs, 'weight-only gemv outputs');
  checkPositiveInteger(rowVec4s, 'weight-only gemv rowVec4s');
  checkPositiveInteger(vectors, 'weight-only gemv vectors');
  const vectorBlock = args.vectorBlock ?? (vectors === 1 ? 1 : 4);
  check(VECTOR_BLOCKS.includes(vectorBlock), () => `weight-only gemv: vectorBlock must be 1 or 4, got ${describeValue(vectorBlock)}`);
  const codesOffset = args.codesOffset ?? 0;
  const codeLayoutOffset = args.codeLayoutOffset ?? 0;
  const columnScalesOffset = args.columnScalesOffset ?? 0;
  const rowScalesOffset = args.rowScalesOffset ?? 0;
  const xOffset = args.xOffset ?? 0;
  const yOffset = args.yOffset ?? 0;
  const codeBits = args.codeBits ?? 'packed';
  checkOneOf(codeBits, CODE_BITS, 'weight-only gemv: codeBits');
  if (codeBits !== 'packed') {
    const expected = fixedRowVec4s(n, codeBits);
    check(rowVec4s === expected, () => `weight-only gemv: ${codeBits}-bit codes of n = ${n} take rowVec4s = ${expected}, got ${rowVec4s}`);
  }
  // The fixed-width kernel reads no layout table: a placeholder keeps its binding.
  const codeLayout = codeBits === 'packed' ? args.codeLayout : (args.codeLayout ?? scratch.buffer('weight-only gemv: no code layout', 4, STORAGE_USAGE));
  check(codeLayout !== undefined, 'weight-only gemv: packed codes need their codeLayout table (weightCodeLayout)');
  const layoutEntries = codeBits === 'packed' ? n + rowVec4s + 2 : 1;
  checkBufferRange(args.codes, codesOffset, 16 * rowVec4s * outputs, 'weight-only gemv: codes', 16);
  const inputsI8 = args.inputsI8 ?? null;
  const int8Dot = args.int8Dot ?? null;
  checkOneOf(int8Dot, [...DOT_PATHS, null], 'weight-only gemv: int8Dot');
  check((args.x === undefined) !== (inputsI8 === null), 'weight-only gemv: give x (X̃ in f32 or f16) or inputsI8 (from dispatchWeightOnlyInputsI8), one of them');
  check((int8Dot === null) === (inputsI8 === null), 'weight-only gemv: inputsI8 and int8Dot go together');
  if (inputsI8 !== null) {
    // Records of another width, n or matrix would multiply into a wrong y without a sign.
    const made = `${inputsI8.codeBits}-bit codes, n = ${inputsI8.n}, ${inputsI8.vectors} vectors`;
    check(codeBits !== 'packed' && inputsI8.codeBits === codeBits && inputsI8.n === n && inputsI8.vectors >= vectors, () => `weight-only gemv: inputsI8 were made for ${made}; this call has ${codeBits === 'packed' ? 'packed' : `${codeBits}-bit`} codes, n = ${n}, ${vectors} vectors`);
    check(inputsI8.columnScales === args.columnScales && inputsI8.columnScalesOffset === columnScalesOffset, 'weight-only gemv: inputsI8 were made with other column scales than this call multiplies by (s is folded into them): round x for this matrix');
    check(args.inputFormat === undefined && args.xOffset === undefined, 'weight-only gemv: inputFormat and xOffset describe x; inputsI8 carry their own layout');
  }
  const x = args.x ?? (inputsI8 as RecordedWeightOnlyInputsI8).inputs;
  checkOutputNotRead(args.y, [['x', x], ['the codes', args.codes], ['the code layout', codeLayout], ['the column scales', args.columnScales], ['the row scales', args.rowScales]], 'weight-only gemv: y');
  checkBufferRange(codeLayout, codeLayoutOffset, 4 * layoutEntries, 'weight-only gemv: code layout', 4);
  checkBufferRange(args.columnScales, columnScalesOffset, 4 * n, 'weight-only gemv: column scales', 4);
  checkBufferRange(args.rowScales, rowScalesOffset, 4 * outputs, 'weight-only gemv: row scales', 4);
  const inputFormat = args.inputFormat ?? 'f32';
  checkOneOf(inputFormat, ACTIVATION_FORMATS, 'weight-only gemv: inputFormat');
  const xBytes = activationBytes(inputFormat);
  // Per vector: n values of X̃, or a record of int8 inputs per code word.
  const xVectorBytes = inputsI8 === null ? xBytes * n : 16 * rowVec4s * weightOnlyI8RecordWords(inputsI8.codeBits);
  checkBufferRange(x, xOffset, xVectorBytes * vectors, inputsI8 === null ? 'weight-only gemv: x' : 'weight-only gemv: inputsI8', inputsI8 === null ? xBytes : 4);
  const format = gemvOutputFormat(args, 'weight-only gemv');
  const yBytes = activationBytes(format);
  checkBufferRange(args.y, yOffset, yBytes * outputs * vectors, 'weight-only gemv: y', yBytes);
  const output = resolveGemvOutput(device, scratch, args, format, outputs, 'weight-only gemv');

  const alignment = device.limits.minStorageBufferOffsetAlignment;
  const maxBinding = bindingCap(device, args.maxBindingBytes, 'dispatchWeightOnlyGemv');
  const slack = alignment - 4;
  const columnScalesWindow = bindingWindow(columnScalesOffset, 4 * n, alignment);
  const layoutWindow = bindingWindow(codeLayoutOffset, 4 * layoutEntries, alignment);
  check(
    columnScalesWindow.size <= maxBinding && layoutWindow.size <= maxBinding,
    () => `weight-only gemv: the column scales (${n} f32) or the code layout (${layoutEntries} u32) are larger than one storage binding (${maxBinding} bytes)`,
  );
  const rowsPerChunk = Math.min(itemsPerBinding(16 * rowVec4s, maxBinding, alignment), itemsPerBinding(4, maxBinding, alignment), outputs);
  // A chunk of vc vectors binds y from its first row of the first vector to its last row of the
  // last vector: (vc − 1)·outputs + rows f32.
  const vectorsPerChunk = Math.min(
    itemsPerBinding(inputsI8 === null ? 4 * n : xVectorBytes, maxBinding, alignment),
    1 + Math.floor((maxBinding - slack - 4 * rowsPerChunk) / (4 * outputs)),
  );

  const { layout, pipeline } = pipelines.get(device, { vectorBlock, inputFormat, codeBits, int8Dot });
  const pass = encoder.beginComputePass({ label: `weight-only gemv (${codeLayoutName(codeBits)})` });
  pass.setPipeline(pipeline);
  for (let v0 = 0; v0 < vectors; v0 += vectorsPerChunk) {
    const chunkVectors = Math.min(vectorsPerChunk, vectors - v0);
    const xWindow = valuesWindow(xOffset + xVectorBytes * v0, (xVectorBytes / xBytes) * chunkVectors, xBytes, alignment);
    for (let j0 = 0; j0 < outputs; j0 += rowsPerChunk) {
      const chunkRows = Math.min(rowsPerChunk, outputs - j0);
      const codesWindow = bindingWindow(codesOffset + 16 * rowVec4s * j0, 16 * rowVec4s * chunkRows, alignment);
      const rowScalesWindow = bindingWindow(rowScalesOffset + 4 * j0, 4 * chunkRows, alignment);
      const yWindow = output.elementWindow(v0 * outputs + j0, (chunkVectors - 1) * outputs + chunkRows);
      const rowGroups = Math.ceil(chunkRows / WEIGHT_ONLY_GEMV_ROWS_PER_WORKGROUP);
      const label = `weight-only gemv (outputs ${j0}…${j0 + chunkRows - 1}, vectors ${v0}…${v0 + chunkVectors - 1})`;
      const params = Params.pack({
        outputs: chunkRows,
        n,
        row_vec4s: rowVec4s,
        vectors: chunkVectors,
        row_groups: rowGroups,
        codes_first: codesWindow.firstElement / 4,
        layout_first: layoutWindow.firstElement,
        column_scales_first: columnScalesWindow.firstElement,
        row_scales_first: rowScalesWindow.firstElement,
        x_first: xWindow.firstElement,
        x_stride: xVectorBytes / xBytes,
        y_first: yWindow.first,
        y_stride: outputs,
        ...output.uniforms(j0),
      });
      pass.setBindGroup(0, createKernelBindGroup(device, layout, label, [
        { buffer: scratch.uniform(`${label} params`, params) },
        windowBinding(args.codes, codesWindow),
        windowBinding(codeLayout, layoutWindow),
        windowBinding(args.columnScales, columnScalesWindow),
        windowBinding(args.rowScales, rowScalesWindow),
        windowBinding(x, xWindow),
        output.bias,
        yWindow.binding,
      ]));
      const [gx, gy] = workgroupGrid(rowGroups * Math.ceil(chunkVectors / vectorBlock), device.limits.maxComputeWorkgroupsPerDimension);
      pass.dispatchWorkgroups(gx, gy);
    }
  }
  pass.end();
}

/** Options of `uploadWeightOnly`. */
export interface UploadWeightOnlyOptions {
  /** Prefix of the buffers' labels. Default 'weight-only'. */
  readonly label?: string;
  /**
   * The codes' layout on the GPU. 'auto' (default): fixed width (every code in the widest code's
   * bits, repacked at upload) where that is at most 8 bits and the repacked codes take at most 1.5×
   * the packed bytes,
   * else packed. 'fixed': fixed width whatever it costs in memory (refused when a code needs more
   * than 8 bits). 'packed': the serialized layout as it is (the least memory; the slowest kernel).
   * The products are the same up to the f32 roundings the error bound counts.
   */
  readonly layout?: WeightOnlyLayout;
}

const WEIGHT_ONLY_LAYOUTS = ['auto', 'fixed', 'packed'] as const;
/**
 * The values of `UploadWeightOnlyOptions.layout`.
 *
 * @useDeclaredType
 */
export type WeightOnlyLayout = (typeof WEIGHT_ONLY_LAYOUTS)[number];

/** Most bytes of fixed-width codes, per byte of packed codes, that layout: 'auto' accepts. */
const FIXED_LAYOUT_MAX_GROWTH = 1.5;

/**
 * The layout `uploadWeightOnly(device, q, { layout })` gives q's codes on the GPU: a fixed 1 … 8 bits
 * per code, or 'packed' (see `UploadWeightOnlyOptions.layout`). Refuses 'fixed' for codes wider than
 * 8 bits.
 *
 * @example
 * weightOnlyCodeBits(quantizeWeights(w, null, { method: 'rtn', rate: 4 }), 'auto'); // 6 (codes of 5 and 6 bits)
 */
export function weightOnlyCodeBits(q: WeightOnlyQuantized, layout: WeightOnlyLayout): WeightOnlyCodeBits {
  checkOneOf(layout, WEIGHT_ONLY_LAYOUTS, 'uploadWeightOnly: layout');
  if (layout === 'packed') return 'packed';
  // From the widths alone: packing the codes (q.packedCodes) would be a pass over every code that a
  // fixed-width upload never uses.
  const widths = q.codeWidths;
  const bits = fixedCodeBits(widths);
  check(layout !== 'fixed' || bits !== null, () => `uploadWeightOnly: layout 'fixed' holds codes of at most 8 bits; this matrix has codes of ${widths.reduce((a, b) => Math.max(a, b), 0)} bits (use 'packed' or 'auto')`);
  if (bits === null) return 'packed';
  return layout === 'fixed' || fixedRowVec4s(q.n, bits) <= FIXED_LAYOUT_MAX_GROWTH * rowLayout(widths).rowVec4s ? bits : 'packed';
}

/** Arguments of `WeightOnlyGpuMatrix.dispatch`. Offsets are in bytes (multiples of 4). */
export interface WeightOnlyMatrixGemvArgs extends GemvOutputArgs {
  /** X: `vectors` columns of n values (f32, or f16 with `inputFormat`), column-major. */
  readonly x: GPUBuffer;
  /**
   * X's format: 'f32' (default) or 'f16' (a model's activations, widened exactly where they are read:
   * by the rotation, or by the GEMV itself; `xOffset` a multiple of 2).
   */
  readonly inputFormat?: ActivationFormat;
  /** Y = Ŵ·X (+ b; Y + that with `accumulate`): `vectors` columns of `outputs` values (f32, or f16 with `outputFormat`), column-major (written, and read first with `accumulate`). */
  readonly y: GPUBuffer;
  /** Default 1. */
  readonly vectors?: number;
  readonly xOffset?: number;
  readonly yOffset?: number;
  /**
   * 'original' (default): X as the layer sees it, rotated here (`hadamard` on the GPU; `haar` is
   * refused: rotate with `rotateOnHost`). 'quantization': X̃ = Q·X already.
   */
  readonly inputBasis?: 'original' | 'quantization';
  /** Largest storage binding to use, in bytes (tests). */
  readonly maxBindingBytes?: number;
  /** Force a vector block (tests). */
  readonly vectorBlock?: WeightOnlyVectorBlock;
  /**
   * Round X̃ to int8 (s folded in, one scale per code word's inputs: `dispatchWeightOnlyInputsI8`) and
   * multiply the codes with packed 8-bit dot products ('packed': dot4I8Packed, where WGSL has
   * packed_4x8_integer_dot_product; 'plain': core WGSL). Fixed-width codes only. It adds x̂'s
   * rounding (NMSE ≈ 10⁻⁵ of y on Gaussian data) and reads far fewer values per code. Default: f32.
   */
  readonly int8Inputs?: DotPath;
}

/**
 * The e ≥ 0 by which `uploadWeightOnly` scales the column scales up (s_i·2^e) and the row scales down
 * (t_j·2^−e): the largest e that brings max|s_i| to at most [1, 2) and keeps every nonzero |t_j·2^−e| at
 * least 2^−126 (normal). Why: the kernels form s_i·x̃_i (the f32 GEMV) and max|s_i·x̃_i| (the int8
 * rounding) in f32, and a matrix with tiny column scales made those subnormal for ordinary x (s = 2^−100,
 * t = 2^16, x ≈ 2^−40: y off by 354 times the stated bound, then 0). Powers of two, so nothing changes
 * where the products were normal: the same y, bit for bit; and t_j·Σ is the same product, so the
 * finiteness bound (‖x‖₂ ≤ 2^31) holds as before.
 */
export function uploadScaleExponent(columnScales: Float32Array, rowScales: Float32Array): number {
  let largestS = 0;
  for (const v of columnScales) largestS = Math.max(largestS, Math.abs(v));
  let smallestT = Infinity;
  for (const v of rowScales) if (v !== 0) smallestT = Math.min(smallestT, Math.abs(v));
  if (largestS === 0 || smallestT === Infinity) return 0;
  // normalizingExponent(a) = −⌊log2 a⌋: |t|·2^−e ≥ 2^(⌊log2 min|t|⌋ − e) ≥ 2^−126.
  return Math.max(0, Math.min(normalizingExponent(largestS), 126 - normalizingExponent(smallestT)));
}

/**
 * A `WeightOnlyQuantized` uploaded for the GEMV kernel: it owns its buffers — the codes (fixed width,
 * or packed as `q.packedCodes` holds them with the column layout table: `codeBits`), column scales s·2^e,
 * row scales t·2^−e (t = ones when the matrix has none; e from `uploadScaleExponent`, the same products);
 * call `destroy()` when done.
 */
export class WeightOnlyGpuMatrix {
  readonly n: number;
  readonly outputs: number;
  /** R: vec4<u32> of codes per output row. */
  readonly rowVec4s: number;
  readonly rotation: WeightOnlyQuantized['rotation'];
  readonly seed: number;
  /** The layout of `codes`: 'packed' (b_i bits per code, with `codeLayout`), or a fixed 1 … 8 bits per code. */
  readonly codeBits: WeightOnlyCodeBits;
  readonly codes: GPUBuffer;
  /** The packed codes' layout table (`weightCodeLayout`); null for fixed-width codes, which need none. */
  readonly codeLayout: GPUBuffer | null;
  readonly columnScales: GPUBuffer;
  readonly rowScales: GPUBuffer;
  private basis: WeightBasis | undefined;
  private destroyed = false;

  /** Whether `destroy()` was called: its buffers can no longer be recorded. */
  get isDestroyed(): boolean {
    return this.destroyed;
  }

  constructor(
    readonly device: GPUDevice,
    q: WeightOnlyQuantized,
    options: UploadWeightOnlyOptions = {},
  ) {
    check(q instanceof WeightOnlyQuantized, 'weight-only gemv: q must be a WeightOnlyQuantized');
    const checked = checkOptionsObject(options, ['label', 'layout'], 'uploadWeightOnly options');
    const label = checked.label ?? 'weight-only';
    checkLabel(label, 'uploadWeightOnly');
    const codeBits = weightOnlyCodeBits(q, checked.layout ?? 'auto');
    // q.packedCodes (computed once, a pass over every code) only where the packed codes are uploaded.
    this.n = q.n;
    this.outputs = q.outputs;
    this.codeBits = codeBits;
    this.rowVec4s = codeBits === 'packed' ? q.packedCodes.rowVec4s : fixedRowVec4s(q.n, codeBits);
    this.rotation = q.rotation;
    this.seed = q.seed;
    const created: GPUBuffer[] = [];
    try {
      if (codeBits !== 'packed') created.push(createBufferWithData(device, `${label} codes (${codeBits} bits each, ${this.rowVec4s} vec4 per row)`, fixedWidthCodes(q.codes, q.n, q.outputs, codeBits).words, STORAGE_USAGE));
      else {
        const packed = q.packedCodes;
        created.push(createBufferWithData(device, `${label} codes (packed, ${packed.rowVec4s} vec4 per row)`, packed.words, STORAGE_USAGE));
        created.push(createBufferWithData(device, `${label} code layout`, weightCodeLayout(packed.widths, packed.rowVec4s), STORAGE_USAGE));
      }
      const rowScales = q.rowScales ?? new Float32Array(q.outputs).fill(1);
      const e = uploadScaleExponent(q.columnScales, rowScales);
      created.push(createBufferWithData(device, `${label} column scales`, e === 0 ? q.columnScales : q.columnScales.map((v) => v * 2 ** e), STORAGE_USAGE));
      created.push(createBufferWithData(device, `${label} row scales`, e === 0 ? rowScales : rowScales.map((v) => v * 2 ** -e), STORAGE_USAGE));
    } catch (error) {
      for (const buffer of created) buffer.destroy();
      throw error;
    }
    const [codes, second, third, fourth] = created as [GPUBuffer, GPUBuffer, GPUBuffer, GPUBuffer | undefined];
    this.codes = codes;
    if (fourth === undefined) [this.codeLayout, this.columnScales, this.rowScales] = [null, second, third];
    else [this.codeLayout, this.columnScales, this.rowScales] = [second, third, fourth];
  }

  /**
   * X̃ = Q·X on the CPU for `vectors` columns of n entries (column-major): the same rotation the
   * quantizer used (`hadamard` in f32 exactly as the GPU computes it, `haar` in float64 rounded to
   * f32, `none` a copy).
   */
  rotateOnHost(x: Float32Array, vectors = 1): Float32Array {
    checkPositiveInteger(vectors, 'weight-only gemv vectors');
    checkInput(x, this.n * vectors);
    if (this.rotation === 'none') return Float32Array.from(x);
    this.basis ??= new WeightBasis(this.n, this.rotation, this.seed);
    return Float32Array.from(this.basis.rotateWeights({ rows: this.n, cols: vectors, data: x }));
  }

  /**
   * Records Y = Ŵ·X into `encoder` (the rotation, then `dispatchWeightOnlyGemv`). Parameter and
   * intermediate buffers go into `scratch` (destroy it after submitting).
   *
   * @example
   * const matrix = uploadWeightOnly(device, q);
   * const scratch = new GpuScratch(device);
   * const encoder = device.createCommandEncoder({ label: 'layer' });
   * matrix.dispatch(encoder, scratch, { x, y });
   * device.queue.submit([encoder.finish()]);
   * scratch.destroy();
   */
  dispatch(encoder: GPUCommandEncoder, scratch: GpuScratch, args: WeightOnlyMatrixGemvArgs): void {
    checkOptionsObject(args, MATRIX_GEMV_ARG_KEYS, 'WeightOnlyGpuMatrix.dispatch arguments');
    check(!this.isDestroyed, 'WeightOnlyGpuMatrix.dispatch: this matrix was destroyed');
    throwIfDeviceLost(this.device, 'WeightOnlyGpuMatrix.dispatch'); // WebGPU would record nothing, silently
    // By name, before recording (WebGPU would reject the caller's whole submission at its submit).
    checkOutputNotRead(args.y, this.namedBuffers('the matrix'), 'WeightOnlyGpuMatrix.dispatch: y');
    const { device, n, outputs, rowVec4s } = this;
    const vectors = args.vectors ?? 1;
    checkPositiveInteger(vectors, 'weight-only gemv vectors');
    const inputBasis = args.inputBasis ?? 'original';
    checkOneOf(inputBasis, ['original', 'quantization'], 'inputBasis');
    const int8Inputs = args.int8Inputs ?? null;
    checkOneOf(int8Inputs, [...DOT_PATHS, null], 'WeightOnlyGpuMatrix.dispatch: int8Inputs');
    const codeBits = this.codeBits;
    check(int8Inputs === null || codeBits !== 'packed', () => weightOnlyInt8Unsupported(this) ?? '');
    let x = args.x;
    let xOffset = args.xOffset ?? 0;
    let inputFormat = args.inputFormat ?? 'f32';
    if (inputBasis === 'original' && this.rotation === 'haar') {
      throw new LatticeMatmulError(
        `weight-only gemv: the dense rotation of n = ${n} inputs runs on the host; pass rotateOnHost(x) with inputBasis: 'quantization'`,
      );
    }
    if (inputBasis === 'original' && this.rotation === 'hadamard') {
      const rotated = scratch.intermediate('weight-only gemv rotated x', 4 * n * vectors, STORAGE_USAGE);
      const hadamardArgs = { input: x, output: rotated, rows: n, length: n, cols: vectors, seed: this.seed, inputOffset: xOffset, inputFormat };
      dispatchHadamard(device, encoder, scratch, args.maxBindingBytes === undefined ? hadamardArgs : { ...hadamardArgs, maxBindingBytes: args.maxBindingBytes });
      x = rotated;
      xOffset = 0;
      inputFormat = 'f32';
    }
    // x rounded to int8 (s folded in) for this matrix, or x itself.
    const input =
      int8Inputs !== null && codeBits !== 'packed'
        ? {
            inputsI8: dispatchWeightOnlyInputsI8(device, encoder, scratch, { x, xOffset, inputFormat, columnScales: this.columnScales, n, codeBits, vectors, ...(args.maxBindingBytes === undefined ? {} : { maxBindingBytes: args.maxBindingBytes }) }),
            int8Dot: int8Inputs,
          }
        : { x, xOffset, inputFormat };
    const gemvArgs: WeightOnlyGemvArgs = {
      codes: this.codes,
      codeBits,
      ...(this.codeLayout === null ? {} : { codeLayout: this.codeLayout }),
      columnScales: this.columnScales,
      rowScales: this.rowScales,
      ...input,
      y: args.y,
      n,
      outputs,
      rowVec4s,
      vectors,
      yOffset: args.yOffset ?? 0,
      ...gemvOutputArgs(args),
      ...(args.maxBindingBytes === undefined ? {} : { maxBindingBytes: args.maxBindingBytes }),
      ...(args.vectorBlock === undefined ? {} : { vectorBlock: args.vectorBlock }),
    };
    dispatchWeightOnlyGemv(device, encoder, scratch, gemvArgs);
  }

  /** Its buffers, named `${name}'s codes` and so on (what its kernel reads; `checkOutputNotRead`). */
  namedBuffers(name: string): NamedBuffer[] {
    return this.fields().map(([field, buffer]) => [`${name}'s ${field}`, buffer]);
  }

  /** Destroys its buffers (once; later calls do nothing). */
  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    for (const [, buffer] of this.fields()) buffer.destroy();
  }

  /** Its buffers by field name (one list for the checks and `destroy`). */
  private fields(): (readonly [string, GPUBuffer])[] {
    return [['codes', this.codes], ...(this.codeLayout === null ? [] : [['codeLayout', this.codeLayout] as const]), ['columnScales', this.columnScales], ['rowScales', this.rowScales]];
  }
}

/**
 * Uploads `q` for the GEMV kernel: its codes in fixed width (the widest code's bits, repacked) where
 * that is at most 8 bits and 1.5× the packed bytes, else the packed codes as they are (`q.packedCodes`, the
 * serialized format's layout) with their layout table (`options.layout` decides otherwise); plus the
 * scales. The result owns its buffers: `destroy()` it.
 *
 * @example
 * const matrix = uploadWeightOnly(device, quantizeWeights(w, sigmaX, { method: 'watersic', rate: 4 }));
 * try { … matrix.dispatch(encoder, scratch, { x, y }) … } finally { matrix.destroy(); }
 */
export function uploadWeightOnly(device: GPUDevice, q: WeightOnlyQuantized, options: UploadWeightOnlyOptions = {}): WeightOnlyGpuMatrix {
  throwIfDeviceLost(device, 'uploadWeightOnly');
  return new WeightOnlyGpuMatrix(device, q, options);
}

/**
 * Why `m` cannot take int8 inputs (`WeightOnlyMatrixGemvArgs.int8Inputs`), or null: its codes must be
 * in the fixed-width layout (codes of at most 8 bits; `uploadWeightOnly` picks it where that costs at
 * most 1.5× the packed bytes, `layout: 'fixed'` forces it).
 */
export function weightOnlyInt8Unsupported(m: Pick<WeightOnlyGpuMatrix, 'codeBits'>): string | null {
  return m.codeBits === 'packed' ? "int8 inputs need the weight-only codes in the fixed-width layout (codes of at most 8 bits), and this matrix was uploaded packed: upload it with layout 'fixed'" : null;
}

/** Test and benchmark knobs of `weightOnlyGemv` and `weightOnlyGemm`. */
export interface WeightOnlyGemvOptions {
  readonly maxBindingBytes?: number;
  readonly vectorBlock?: WeightOnlyVectorBlock;
  /** The codes' layout (`UploadWeightOnlyOptions.layout`; default 'auto'). */
  readonly layout?: UploadWeightOnlyOptions['layout'];
  /** x rounded to int8 (`WeightOnlyMatrixGemvArgs.int8Inputs`). Default: f32. */
  readonly int8Inputs?: DotPath;
}

// The keys of each argument object: any other is refused (`{ vector: 3 }` must not compute one vector
// and leave the rest of y unwritten).
const GEMV_ARG_KEYS = [
  'codes', 'codeBits', 'codeLayout', 'columnScales', 'rowScales', 'x', 'inputFormat', 'y', 'n', 'outputs', 'rowVec4s', 'vectors',
  'codesOffset', 'codeLayoutOffset', 'columnScalesOffset', 'rowScalesOffset', 'xOffset', 'yOffset', 'maxBindingBytes',
  'vectorBlock', 'inputsI8', 'int8Dot', ...GEMV_OUTPUT_ARG_KEYS,
] as const satisfies readonly (keyof WeightOnlyGemvArgs)[];
const MATRIX_GEMV_ARG_KEYS = [
  'x', 'inputFormat', 'y', 'vectors', 'xOffset', 'yOffset', 'inputBasis', 'maxBindingBytes', 'vectorBlock', 'int8Inputs', ...GEMV_OUTPUT_ARG_KEYS,
] as const satisfies readonly (keyof WeightOnlyMatrixGemvArgs)[];
const GEMV_OPTION_KEYS = ['maxBindingBytes', 'vectorBlock', 'layout', 'int8Inputs'] as const satisfies readonly (keyof WeightOnlyGemvOptions)[];

/**
 * y = Ŵ·x on the GPU for CPU data (x of n = q.n entries, y of q.outputs): uploads, rotates x (see the
 * module comment), dispatches inside validation error scopes, reads back and destroys its buffers.
 * For tests and benchmarks; applications keep the matrix uploaded (`uploadWeightOnly`) and call
 * `WeightOnlyGpuMatrix.dispatch`.
 *
 * @example
 * const q = quantizeWeights(w, sigmaX, { method: 'watersic', rate: 4, rotate: true });
 * const y = await weightOnlyGemv(device, q, x); // ≈ Ŵ·x with Ŵ = q.decode()
 */
export async function weightOnlyGemv(device: GPUDevice, q: WeightOnlyQuantized, x: Float32Array, options: WeightOnlyGemvOptions = {}): Promise<Float32Array> {
  check(q instanceof WeightOnlyQuantized, 'weight-only gemv: q must be a WeightOnlyQuantized');
  checkOptionsObject(options, GEMV_OPTION_KEYS, 'weightOnlyGemv options');
  checkInput(x, q.n);
  // A copy: x is uploaded only when the call's turn on the device comes, and one reused for the next
  // call meanwhile escaped the norm check made here (NaN and ±Infinity from an x of 3e37).
  return runWeightOnlyGemv(device, weightOnlySnapshot(q), x.slice(), 1, { ...options });
}

/**
 * Y = Ŵ·X on the GPU for an n × V matrix X (V vectors): a q.outputs × V matrix. Same behaviour as
 * `weightOnlyGemv`, with 4 vectors per workgroup so each code is read once per 4 vectors.
 *
 * @example
 * const y = await weightOnlyGemm(device, q, { rows: q.n, cols: 8, data }); // q.outputs × 8
 */
export async function weightOnlyGemm(device: GPUDevice, q: WeightOnlyQuantized, x: Matrix, options: WeightOnlyGemvOptions = {}): Promise<Matrix> {
  check(q instanceof WeightOnlyQuantized, 'weight-only gemm: q must be a WeightOnlyQuantized');
  checkOptionsObject(options, GEMV_OPTION_KEYS, 'weightOnlyGemm options');
  checkMatrix(x, 'X');
  check(x.rows === q.n, () => `weight-only gemm: X has ${x.rows} rows, the matrix has n = ${q.n} inputs`);
  for (let v = 0; v < x.cols; v++) checkInputNorm(x.data.subarray(v * q.n, (v + 1) * q.n), ` column ${v}`);
  const data = await runWeightOnlyGemv(device, weightOnlySnapshot(q), x.data.slice(), x.cols, { ...options }); // copies, as weightOnlyGemv's
  return { rows: q.outputs, cols: x.cols, data };
}

/**
 * `q` copied when a call is made (and checked again by the constructor): it is uploaded only when the
 * call's turn on the device comes, and its arrays are the caller's (`columnScales`, `rowScales` and
 * `codes` as given to the constructor): scales zeroed after an earlier call made it return zeros, and
 * whatever was set there escaped the constructor's checks. Its options are copied likewise (an `int8Inputs` set
 * on the caller's object after the call rounded x to int8). For tests and benchmarks, which upload the
 * whole matrix per call anyway.
 */
function weightOnlySnapshot(q: WeightOnlyQuantized): WeightOnlyQuantized {
  return new WeightOnlyQuantized({
    method: q.method,
    n: q.n,
    outputs: q.outputs,
    codes: q.codes.slice(),
    columnScales: q.columnScales.slice(),
    rowScales: q.rowScales === null ? null : q.rowScales.slice(),
    rotation: q.rotation,
    seed: q.seed,
  });
}

async function runWeightOnlyGemv(
  device: GPUDevice,
  q: WeightOnlyQuantized,
  x: Float32Array,
  vectors: number,
  options: WeightOnlyGemvOptions,
): Promise<Float32Array> {
  const yBytes = 4 * q.outputs * vectors;
  const data = await runAndRead(device, 'weight-only gemv', yBytes, (run) => {
    const matrix = run.own(uploadWeightOnly(device, q, options.layout === undefined ? {} : { layout: options.layout }));
    const onHost = matrix.rotation === 'haar';
    const input = onHost ? matrix.rotateOnHost(x, vectors) : x;
    const xBuffer = run.upload('weight-only gemv x', input);
    const yBuffer = run.storage('weight-only gemv y', yBytes);
    matrix.dispatch(run.encoder, run.scratch, {
      x: xBuffer,
      y: yBuffer,
      vectors,
      inputBasis: onHost ? 'quantization' : 'original',
      ...(options.maxBindingBytes === undefined ? {} : { maxBindingBytes: options.maxBindingBytes }),
      ...(options.vectorBlock === undefined ? {} : { vectorBlock: options.vectorBlock }),
      ...(options.int8Inputs === undefined ? {} : { int8Inputs: options.int8Inputs }),
    });
    return yBuffer;
  });
  return new Float32Array(data);
}

function checkInput(x: Float32Array, length: number): void {
  check(x instanceof Float32Array, 'weight-only gemv: x must be a Float32Array');
  check(x.length === length, () => `weight-only gemv: x has ${x.length} entries, expected ${length}`);
  const bad = firstNonFinite(x);
  check(bad < 0, () => `weight-only gemv: x has a non-finite entry ${x[bad]} at index ${bad}`);
  checkInputNorm(x, '');
}

/**
 * The GEMV is finite for ‖x‖₂ ≤ 2^31 (`WeightOnlyQuantized`'s bounds); beyond it the rotation's or the
 * product's f32 sums may overflow into ±Infinity, and Infinity − Infinity into NaN, so a host x beyond
 * it is refused, naming the power of two to scale it (and y) by.
 */
function checkInputNorm(x: Float32Array, which: string): void {
  let squares = 0;
  for (let i = 0; i < x.length; i++) squares += (x[i] as number) ** 2;
  const norm = Math.sqrt(squares);
  if (norm <= MAX_INPUT_NORM) return;
  const shift = Math.ceil(Math.log2(norm / MAX_INPUT_NORM));
  throw new LatticeMatmulError(
    `weight-only gemv: x${which} has ‖x‖₂ = ${norm.toPrecision(6)}, above 2^31, the norm for which the GEMV is finite; ` +
      `multiply x by 2^-${shift} and y by 2^${shift}`,
  );
}

/** The largest ‖x‖₂ of the weight-only GEMV's finiteness bound (`WeightOnlyQuantized`). */
const MAX_INPUT_NORM = 2 ** 31;
