import outputSource from '../../../shaders/gemv_output.wgsl?raw';
import f16ConvertSource from '../../../shaders/f16_convert.wgsl?raw';
import { check, checkOneOf, checkPositiveInteger } from '../../errors.js';
import { checkOptionalBoolean } from '../../quantize/strictOptions.js';
import { checkMatrix, type Matrix } from '../../matrix.js';
import { absMax, normalizingExponent } from '../../quantize/columnScaling.js';
import { isRotationLength, rotationLengthsText } from '../../rotation/hadamard.js';
import { checkBufferRange } from '../bufferRange.js';
import { STORAGE_USAGE } from '../buffers.js';
import { columnRanges } from '../latticeOperand.js';
import { windowBinding } from '../pipelines.js';
import type { UniformMemberType, UniformValues } from '../uniformLayout.js';
import { runAndRead, type OneShotRecording } from '../runAndRead.js';
import type { GpuScratch } from '../scratch.js';
import { bindingCap, bindingWindow, itemsPerBinding, valuesWindow } from '../workSplit.js';
import { ACTIVATION_FORMATS, activationBytes, type ActivationFormat } from './activationIo.js';
import { dispatchHadamard } from './hadamard.js';
import { dispatchNonFiniteTail } from './nonFiniteTail.js';
import { columnGemvUsesSubgroups } from './columnGemv.js';

/*
 * What the lattice GEMV kernels that take X in the original basis share about a call (the universal
 * GEMV and the two int8-input GEMVs): the checks of X, Y and the options, the rotation x̃ = R·X with
 * W's seed, and the ranges of right-hand sides whose x̃, X and Y fit one storage binding each; and the
 * output those kernels write (f32 or f16, a bias: `GemvOutputArgs`).
 */

/** The part of W a GEMV call needs here. */
export interface GemvOperand {
  readonly rows: number;
  readonly cols: number;
  readonly length: number;
  /** Coordinates W keeps (≤ length; W is 0, or its means, from here on): an unrotated, uncentred W with fewer than rows has x's rest checked (`checkNonFiniteTail`). */
  readonly keptLength: number;
  readonly rotate: boolean;
  readonly seed: number;
}

/** The call's arguments this module checks. Offsets are in bytes (multiples of 4). */
export interface GemvCallArgs {
  /**
   * X: n × rhs column-major f32 in the original basis (STORAGE usage; not written). It may be omitted
   * when the call is given x̃ (`xRotated` for a rotated W, or int8 inputs rounded from it) and W is not
   * centred: then nothing reads X (a model with f16 activations rotates them straight from f16,
   * `dispatchHadamard`'s `inputFormat`, and never widens X to f32).
   */
  readonly x?: GPUBuffer;
  readonly xOffset?: number;
  /**
   * Y = ŴᵀX (+ b; Y + ŴᵀX + b with `accumulate`): cols × rhs column-major, f32 or f16 (`outputFormat`)
   * (written, and read first with `accumulate`; STORAGE usage, a different buffer from `x`).
   */
  readonly y: GPUBuffer;
  readonly yOffset?: number;
  /** Right-hand sides k (columns of X): 1 for a GEMV. */
  readonly rhs: number;
  /**
   * R·X (N × rhs column-major f32, N = W.length) rotated with W's seed, when the caller already has it:
   * layers quantized with one seed that read the same input (an attention block's q, k and v
   * projections) rotate it once, with `dispatchHadamard`, and pass it to each. Omitted: the call
   * rotates X itself. Ignored when W is not rotated (then x̃ = X). X is still read for Σx when W is
   * centred.
   */
  readonly xRotated?: GPUBuffer;
  readonly xRotatedOffset?: number;
  /** Largest storage binding to use, in bytes (default: the device's limit; tests pass less to exercise splitting). */
  readonly maxBindingBytes?: number;
  /**
   * Add the lanes of a column with subgroup shuffles (and rotate x with them). Default: whenever the
   * device has the `subgroups` feature; `false` forces the workgroup-memory paths; `true` on a device
   * without the feature is an error.
   */
  readonly subgroups?: boolean;
  /**
   * Tests only, for the subgroup variant. 'fallback': run as if the subgroups were not blocks of
   * consecutive invocations (the plain tree). 'require-shuffles': that fallback writes 1e30 instead,
   * so a result equal to the CPU's shows that the shuffles ran.
   */
  readonly subgroupTestMode?: 'fallback' | 'require-shuffles';
}

/** `subgroup_test_mode` of the shaders (shaders/universal_gemv_subgroup.wgsl). */
export const SUBGROUP_TEST_MODES = { none: 0, fallback: 1, 'require-shuffles': 2 } as const;

/** A checked call: its sizes, the device limits it splits by, x̃ and the ranges of right-hand sides. */
export interface GemvCall {
  readonly rows: number;
  readonly cols: number;
  readonly length: number;
  readonly rhs: number;
  readonly xOffset: number;
  readonly yOffset: number;
  readonly subgroups: boolean;
  /** `subgroup_test_mode` for the shader's uniforms. */
  readonly testMode: number;
  readonly alignment: number;
  readonly maxBinding: number;
  readonly maxGroups: number;
  /** x̃ = R·X (N × rhs; a scratch buffer), or X itself when W is not rotated. */
  readonly xRotated: GPUBuffer;
  readonly xRotatedOffset: number;
  /**
   * X of right-hand sides [first, first + count) as a kernel binds it (for Σx, or as x̃ when W is not
   * rotated): the binding and the element of X[0, first] in it; a 4-byte placeholder (never read) when
   * the call has no X.
   */
  xWindow(first: number, count: number): { readonly binding: GPUBufferBinding; readonly firstElement: number };
  /** Right-hand sides per dispatch: x̃, X and Y of one range each fit a storage binding. */
  readonly rhsRanges: readonly { readonly first: number; readonly count: number }[];
  /**
   * Records, after the kernel's dispatches, what keeps an unrotated W that is 0 past keptLength from a
   * silently finite Y: Y = NaN for the right-hand sides whose X has a NaN or ±Infinity there, which no
   * GEMV reads (`dispatchNonFiniteTail`). Nothing for a rotated W, whose one-stage rotation (time-sharing
   * needs one: `checkTimeSharedRotation`) spreads every entry of X over all of x̃, nor for a centred W,
   * whose Σx reads every row.
   */
  checkNonFiniteTail(outputFormat: ActivationFormat): void;
}

/** How a kernel reads X and writes Y, for {@link beginGemv}. */
export interface GemvCallShape {
  /**
   * False when the kernel takes x̃ in another form the caller already has (int8 inputs rounded once for
   * several layers): nothing is rotated and `xRotated` is X (not read as x̃). Default true.
   */
  readonly readsXRotated?: boolean;
  /** Bytes of one element of Y: 4 (f32, the default) or 2 (f16). */
  readonly yBytes?: 2 | 4;
  /** Whether the kernel reads X for Σx (W is centred): then X is required. Default false. */
  readonly sumsX?: boolean;
}

/**
 * Checks a GEMV call (`what` names it in errors) and records x̃ = R·X with W's seed into a scratch
 * buffer when W is rotated (unless the caller passes `xRotated`, or the kernel reads no x̃: `shape`).
 *
 * @example
 * const call = beginGemv(device, encoder, scratch, gpuW, { x, y, rhs: 1 }, 'universal gemv');
 */
export function beginGemv(device: GPUDevice, encoder: GPUCommandEncoder, scratch: GpuScratch, w: GemvOperand, args: GemvCallArgs, what: string, shape: GemvCallShape = {}): GemvCall {
  const readsXRotated = shape.readsXRotated ?? true;
  const { rows, cols, length } = w;
  const rhs = args.rhs;
  checkPositiveInteger(rhs, `${what} rhs`);
  const xOffset = args.xOffset ?? 0;
  const yOffset = args.yOffset ?? 0;
  const x = args.x ?? null;
  // An offset into a buffer not given would be ignored: the caller meant to pass that buffer.
  check(args.xRotatedOffset === undefined || args.xRotated !== undefined, `${what}: xRotatedOffset without xRotated`);
  // An unrotated W that keeps fewer coordinates than its rows: its kernels never read x's rest. A
  // centred W is its means there, not 0, and its Σx (all rows) already carries a non-finite entry
  // into Y as decoding and multiplying would (±Infinity where that gives ±Infinity).
  const tailChecked = !w.rotate && w.keptLength < rows && !(shape.sumsX ?? false);
  if (x === null) {
    check(args.xOffset === undefined, `${what}: xOffset without x`);
    check(!(shape.sumsX ?? false), () => `${what}: W is centred, so x is needed (for Σx)`);
    check(!readsXRotated || (w.rotate && args.xRotated !== undefined), () => `${what}: x is needed: ${w.rotate ? 'give xRotated (R·x) to call without x' : 'W is not rotated, so x is what it multiplies'}`);
    check(!tailChecked, () => `${what}: x is needed: W is not rotated and keeps ${w.keptLength} of its ${rows} rows, so x's entries past keptLength are checked for NaN and ±Infinity`);
  } else {
    check(x !== args.y, `${what}: x and y must be different buffers`);
    checkBufferRange(x, xOffset, 4 * rows * rhs, `${what}: x`);
  }
  const yBytes = shape.yBytes ?? 4;
  checkBufferRange(args.y, yOffset, yBytes * cols * rhs, `${what}: y`, yBytes);
  if (w.rotate) {
    check(isRotationLength(rows, length), () => `${what}: W.length is ${length}, but a rotated W of ${rows} rows has length ${rotationLengthsText(rows)}`);
  } else {
    check(length === rows, () => `${what}: an unrotated W has length = rows, got length ${length} and rows ${rows}`);
  }
  const subgroups = columnGemvUsesSubgroups(device, args, what);
  const testMode = SUBGROUP_TEST_MODES[args.subgroupTestMode ?? 'none'];

  const alignment = device.limits.minStorageBufferOffsetAlignment;
  const maxBinding = bindingCap(device, args.maxBindingBytes, what); // NaN named as maxBindingBytes, not as an item that does not fit
  const maxGroups = device.limits.maxComputeWorkgroupsPerDimension;

  let placeholder: GPUBuffer | null = null;
  const xOrPlaceholder = (): GPUBuffer => x ?? (placeholder ??= scratch.buffer(`${what}: X (not read)`, 4, STORAGE_USAGE));
  // X itself when W is not rotated (or the kernel reads no x̃); replaced below otherwise.
  let xRotated: GPUBuffer | null = x;
  let xRotatedOffset = xOffset;
  if (!readsXRotated) {
    check(args.xRotated === undefined, `${what}: pass xRotated or int8 inputs rounded from it, not both`);
  } else if (w.rotate && args.xRotated !== undefined) {
    xRotated = args.xRotated;
    xRotatedOffset = args.xRotatedOffset ?? 0;
    check(xRotated !== args.y, `${what}: xRotated and y must be different buffers`);
    checkBufferRange(xRotated, xRotatedOffset, 4 * length * rhs, `${what}: xRotated`);
  } else if (w.rotate) {
    xRotated = scratch.intermediate(`${what} R·X`, 4 * length * rhs, STORAGE_USAGE);
    xRotatedOffset = 0;
    dispatchHadamard(device, encoder, scratch, {
      input: xOrPlaceholder(), // present: checked above
      output: xRotated,
      rows,
      length,
      cols: rhs,
      seed: w.seed,
      inputOffset: xOffset,
      maxBindingBytes: args.maxBindingBytes,
      subgroups,
    });
  }
  const rhsRanges = columnRanges(
    rhs,
    Math.min(itemsPerBinding(4 * length, maxBinding, alignment), itemsPerBinding(4 * rows, maxBinding, alignment), itemsPerBinding(4 * cols, maxBinding, alignment), maxGroups),
  );
  const xWindow = (first: number, count: number): { binding: GPUBufferBinding; firstElement: number } => {
    if (x === null) return { binding: { buffer: xOrPlaceholder() }, firstElement: 0 };
    const window = bindingWindow(xOffset + 4 * rows * first, 4 * rows * count, alignment);
    return { binding: windowBinding(x, window), firstElement: window.firstElement };
  };
  const checkNonFiniteTail = (outputFormat: ActivationFormat): void => {
    if (!tailChecked || x === null) return; // x is present when tailChecked: refused above
    dispatchNonFiniteTail(device, encoder, scratch, { x, xOffset, rows, kept: w.keptLength, rhs, y: args.y, yOffset, cols, outputFormat, maxBindingBytes: args.maxBindingBytes });
  };
  return { rows, cols, length, rhs, xOffset, yOffset, subgroups, testMode, alignment, maxBinding, maxGroups, xRotated: xRotated ?? xOrPlaceholder(), xRotatedOffset, xWindow, rhsRanges, checkNonFiniteTail };
}

/** The two pipelines of a deterministic GEMV's module: the product and Σx. */
export interface GemvWithSumsPipelines {
  readonly main: GPUComputePipeline;
  readonly sums: GPUComputePipeline;
}

/**
 * Compiles a deterministic GEMV's module (`code`, with the Σx entry of shaders/gemv_x_sums.wgsl) into
 * its two pipelines, `main` (labelled `label`) and `column_sums`.
 */
export function compileGemvWithSums(device: GPUDevice, pipelineLayout: GPUPipelineLayout, label: string, code: string): GemvWithSumsPipelines {
  const module = device.createShaderModule({ label, code });
  return {
    main: device.createComputePipeline({ label, layout: pipelineLayout, compute: { module, entryPoint: 'main' } }),
    sums: device.createComputePipeline({ label: `${label}: column sums`, layout: pipelineLayout, compute: { module, entryPoint: 'column_sums' } }),
  };
}

/**
 * Records one range's dispatches of a deterministic GEMV whose module has the Σx entry
 * (shaders/gemv_x_sums.wgsl: `sums`, one workgroup per right-hand side) beside its product (`main`),
 * with the range's bind group already set: Σx first when `withSums` (W centred, the call's first
 * range: later ranges read the same sums), then the product's workgroups.
 */
export function dispatchGemvRange(pass: GPUComputePassEncoder, pipeline: GemvWithSumsPipelines, withSums: boolean, rhs: number, workgroupsX: number, workgroupsY = 1): void {
  if (withSums) {
    pass.setPipeline(pipeline.sums);
    pass.dispatchWorkgroups(rhs);
  }
  pass.setPipeline(pipeline.main);
  pass.dispatchWorkgroups(workgroupsX, workgroupsY);
}

/**
 * What the GEMV kernels write, carrying a QuantizedLinear's epilogue (the universal, deterministic,
 * int8-input and weight-only GEMVs; shaders/gemv_output.wgsl): Y as f32 or f16, with a bias added, in
 * the GEMV's own passes.
 */
export interface GemvOutputArgs {
  /** b: one value per column of W (output), in `biasFormat`, added to every right-hand side's output; omitted or null: none. */
  readonly bias?: GPUBuffer | null;
  /** Byte offset of b (a multiple of 4 for f32, of 2 for f16 and bf16); refused without a bias. */
  readonly biasOffset?: number;
  /**
   * b's format: 'f32' (default), or 'f16' or 'bf16' (a model's bias as its file stores it, read as
   * halves of u32 words and widened to f32 exactly on every GPU, f16 subnormals included (a bf16
   * subnormal is an f32 subnormal, which a GPU may flush in the add, as an f32 bias's); its buffer
   * must hold the whole word of its last value). Read unchecked, as an f32 b is: a NaN or ±Infinity entry reaches its outputs.
   */
  readonly biasFormat?: BiasFormat;
  /**
   * Y's format: 'f32' (default) or 'f16' (`f16_bits` of shaders/f16_convert.wgsl, as the epilogue
   * kernel: rounded as the CPU's `float16Bits` on every GPU — to nearest even, ±Infinity from
   * |y| ≥ 65520, NaN for NaN; written as halves of u32 words, so no 'shader-f16' is needed; `yOffset`
   * a multiple of 2).
   */
  readonly outputFormat?: ActivationFormat;
  /**
   * Add to what Y holds instead of overwriting it: Y ← Y + (ŴᵀX + b), in f32 (an f16 Y's old half
   * widened, the sum rounded once), each element read and written by the invocation that forms it
   * (a residual connection without a pass of its own). Default false. Y's old values are added as
   * they are: a NaN or ±Infinity there stays in the sum. Each call adds once, however it is split
   * across dispatches, and leaves the halves that share an f16 Y's first and last words as they
   * are. X (and x̃) must be other buffers than Y: for Y ← Y + ŴᵀY, copy Y first (`QuantizedLinear`
   * does).
   */
  readonly accumulate?: boolean;
}

/** A bias's format: f32, or the 16-bit formats a model file stores biases in. */
export type BiasFormat = 'f32' | 'f16' | 'bf16';

/** The formats a GEMV's bias may be read in (`GemvOutputArgs.biasFormat`); the index is the shader's `bias_format`. */
export const BIAS_FORMATS = ['f32', 'f16', 'bf16'] as const satisfies readonly BiasFormat[];

/** Bytes per bias entry in `format`. */
export function biasBytes(format: BiasFormat): 2 | 4 {
  return format === 'f32' ? 4 : 2;
}

/**
 * The uniform members of shaders/gemv_output.wgsl's `store_output`, in every GEMV kernel's struct that
 * appends it (spread into the kernel's layout, so the kernels and `GemvOutput.uniforms` agree).
 */
export const GEMV_OUTPUT_MEMBERS = {
  bias_first: 'u32', // element (f32) or half (f16, bf16) of b[first W column of this dispatch] in its binding
  has_bias: 'u32',
  bias_format: 'u32', // 0: f32, 1: f16, 2: bf16 (BIAS_FORMATS' order)
  output_f16: 'u32', // Y as f16 halves (else f32)
  accumulate: 'u32', // Y ← Y + value (else Y ← value)
} as const satisfies Record<string, UniformMemberType>;

/** The values of {@link GEMV_OUTPUT_MEMBERS}. */
export type GemvOutputUniforms = UniformValues<typeof GEMV_OUTPUT_MEMBERS>;

/** The output members of a dispatch that writes no Y through `store_output` (its Y is a scratch T, say). */
export const NO_GEMV_OUTPUT_UNIFORMS: GemvOutputUniforms = { bias_first: 0, has_bias: 0, bias_format: 0, output_f16: 0, accumulate: 0 };

/**
 * The WGSL of `store_output` (shaders/gemv_output.wgsl) with the f16 rounding it uses
 * (shaders/f16_convert.wgsl): the library every GEMV kernel that writes Y appends to its source.
 */
export const GEMV_OUTPUT_WGSL = `${f16ConvertSource}\n${outputSource}`;

/** The keys of {@link GemvOutputArgs}, for the strict argument checks of the calls that take them. */
export const GEMV_OUTPUT_ARG_KEYS = ['bias', 'biasOffset', 'biasFormat', 'outputFormat', 'accumulate'] as const satisfies readonly (keyof GemvOutputArgs)[];

/**
 * The output arguments `args` gives (those of GEMV_OUTPUT_ARG_KEYS that are not undefined), for a call
 * that passes them on to a GEMV: an output argument added later is forwarded without a list of its own
 * (a hand-written copy once dropped `accumulate`).
 */
export function gemvOutputArgs(args: GemvOutputArgs): GemvOutputArgs {
  const given: Record<string, unknown> = {};
  for (const key of GEMV_OUTPUT_ARG_KEYS) if (args[key] !== undefined) given[key] = args[key];
  return given as GemvOutputArgs;
}

/** The keys of {@link GemvCallArgs} (with GEMV_OUTPUT_ARG_KEYS, what the GEMV dispatches' key lists start from). */
export const GEMV_CALL_ARG_KEYS = ['x', 'xOffset', 'y', 'yOffset', 'rhs', 'xRotated', 'xRotatedOffset', 'maxBindingBytes', 'subgroups', 'subgroupTestMode'] as const satisfies readonly (keyof GemvCallArgs)[];

/** The output of a call, resolved once: the bias binding and the Y window of each range of right-hand sides. */
export interface GemvOutput {
  readonly f16: boolean;
  /** Whether Y's old values are added (`GemvOutputArgs.accumulate`): a kernel may not use Y as scratch then. */
  readonly accumulate: boolean;
  /** The bias binding (a 4-byte placeholder without bias). */
  readonly bias: GPUBufferBinding;
  /** The output members of a kernel's uniforms (shaders/gemv_output.wgsl) for a dispatch whose first output column is `firstColumn`. */
  uniforms(firstColumn: number): GemvOutputUniforms;
  /** Y of right-hand sides [first, first + count): the binding and the element (f32) or half (f16) index of Y[0, first] in it. */
  yWindow(first: number, count: number): ValuesWindow;
  /** Elements [start, start + count) of Y (column-major, any shape): the binding and the element or half index of element `start` in it. */
  elementWindow(start: number, count: number): ValuesWindow;
}

/** The checked output format of a call (first, so that `beginGemv` checks Y with its element size). */
export function gemvOutputFormat(args: GemvOutputArgs, what: string): ActivationFormat {
  const format = args.outputFormat ?? 'f32';
  checkOneOf(format, ACTIVATION_FORMATS, `${what}: outputFormat`);
  return format;
}

/** A binding of values and the index of the first one in it (a word, or a half of 16-bit values). */
interface ValuesWindow {
  readonly binding: GPUBufferBinding;
  readonly first: number;
}

/**
 * Checks the output arguments of a GEMV and resolves them (Y of `cols` × rhs elements: its
 * range and offset are `beginGemv`'s checks, with `yBytes: activationBytes(format)`).
 */
export function resolveGemvOutput(device: GPUDevice, scratch: GpuScratch, args: GemvOutputArgs & { readonly y: GPUBuffer; readonly yOffset?: number }, format: ActivationFormat, cols: number, what: string): GemvOutput {
  const f16 = format === 'f16';
  const accumulate = checkOptionalBoolean(args.accumulate, `${what}: accumulate`) ?? false;
  const yOffset = args.yOffset ?? 0;
  const alignment = device.limits.minStorageBufferOffsetAlignment;
  // Y and the bias are bound alike: f32 as words, 16-bit values as halves (`first` then counts halves).
  const boundValues = (buffer: GPUBuffer, offset: number, count: number, bytes: 2 | 4): ValuesWindow => {
    const window = valuesWindow(offset, count, bytes, alignment);
    return { binding: windowBinding(buffer, window), first: window.firstElement };
  };
  const bias = args.bias ?? null;
  const biasFormat = args.biasFormat ?? 'f32';
  checkOneOf(biasFormat, BIAS_FORMATS, `${what}: biasFormat`);
  // As for x's offsets: an offset into a bias not given would be ignored (the caller meant to add one).
  check(args.biasOffset === undefined || bias !== null, `${what}: biasOffset without bias`);
  let biasWindow: ValuesWindow = { binding: { buffer: scratch.buffer(`${what}: no bias`, 4, STORAGE_USAGE) }, first: 0 };
  if (bias !== null) {
    const biasOffset = args.biasOffset ?? 0;
    const bytes = biasBytes(biasFormat);
    checkBufferRange(bias, biasOffset, bytes * cols, `${what}: bias`, bytes);
    check(bias !== args.y, `${what}: bias and y must be different buffers`);
    biasWindow = boundValues(bias, biasOffset, cols, bytes);
  }
  const yBytes = activationBytes(format);
  const elementWindow = (start: number, count: number): ValuesWindow => boundValues(args.y, yOffset + yBytes * start, count, yBytes);
  // The output members but the bias's first element, resolved once.
  const members = { has_bias: bias === null ? 0 : 1, bias_format: BIAS_FORMATS.indexOf(biasFormat), output_f16: f16 ? 1 : 0, accumulate: accumulate ? 1 : 0 };
  return {
    f16,
    accumulate,
    bias: biasWindow.binding,
    uniforms: (firstColumn) => ({ bias_first: biasWindow.first + firstColumn, ...members }),
    yWindow(first, count) {
      return elementWindow(cols * first, cols * count);
    },
    elementWindow,
  };
}

/** Per column of a checked x, the e that brings its largest |entry| into [1, 2) (0 for a zero column). */
export function columnExponents(x: Matrix): Int32Array {
  const exponents = new Int32Array(x.cols);
  for (let r = 0; r < x.cols; r++) {
    const amax = absMax(x.data.subarray(r * x.rows, (r + 1) * x.rows));
    exponents[r] = normalizingExponent(amax);
  }
  return exponents;
}

/** x (checked) with column r multiplied by 2^exponents[r]: exact in f32 for the x the exponents came from, whose largest entry lands in [1, 2). */
export function scaledColumns(x: Matrix, exponents: Int32Array): Float32Array {
  const scaled = new Float32Array(x.data.length);
  for (let r = 0; r < x.cols; r++) {
    const factor = 2 ** (exponents[r] as number);
    for (let i = r * x.rows; i < (r + 1) * x.rows; i++) scaled[i] = (x.data[i] as number) * factor;
  }
  return scaled;
}

/** Y (column-major, `rows` entries per column) with column r multiplied by 2^-exponents[r] in place: undoes `scaledColumns` of x in Y = ŴᵀX. */
export function unscaleColumns(y: Float32Array, rows: number, exponents: Int32Array): void {
  for (let r = 0; r < exponents.length; r++) {
    const unscale = 2 ** -(exponents[r] as number);
    for (let j = r * rows; j < (r + 1) * rows; j++) y[j] = (y[j] as number) * unscale;
  }
}

/**
 * Y = ŴᵀX for X given on the CPU (a vector of n entries, or an n × rhs matrix), for the GEMVs' test and
 * benchmark entry points: checks X against W, uploads it with each column scaled by a power of two to
 * a largest |entry| in [1, 2) (as `GpuEngine.matvec`: exact, and no x a GPU would hold as f32
 * subnormals, which it may flush to zero, or whose sums overflow), lets `dispatch` record the GEMV into
 * the run (with X, an f32 Y of cols × rhs and rhs, and the scaling for an input derived linearly from
 * X, such as a given R·X: a column-major matrix of rhs columns scaled per column as X was), reads Y
 * back and scales it back in float64, and destroys what it created, inside one validation section
 * (`runAndRead`). `dispatch` gets a copy of `options` made when the call is made, as X is scaled then:
 * the run waits for its turn on the device, and a caller may change its options object meanwhile (a
 * key added then, such as `outputFormat: 'f16'` that the caller's check refuses, would reach the
 * dispatch unchecked).
 *
 * @example
 * gemvOnHost(device, 'universal gemv', w, x, options, (run, io, given) => dispatchUniversalGemv(device, run.encoder, run.scratch, { ...given, ...io, w }));
 */
export async function gemvOnHost<Options extends object>(
  device: GPUDevice,
  what: string,
  w: { readonly rows: number; readonly cols: number },
  x: Matrix | Float32Array,
  options: Options,
  dispatch: (run: OneShotRecording, io: { readonly x: GPUBuffer; readonly y: GPUBuffer; readonly rhs: number }, given: Readonly<Options>, scaledLikeX: (values: Float32Array) => Float32Array) => void,
): Promise<Matrix> {
  const given: Readonly<Options> = { ...options };
  const xMatrix: Matrix = x instanceof Float32Array ? { rows: x.length, cols: 1, data: x } : x;
  checkMatrix(xMatrix, `${what} x`);
  check(xMatrix.rows === w.rows, () => `${what}: x has ${xMatrix.rows} rows, but W has ${w.rows}`);
  const rhs = xMatrix.cols;
  const yBytes = 4 * w.cols * rhs;
  const exponents = columnExponents(xMatrix);
  const scaledLikeX = (values: Float32Array): Float32Array => {
    check(values.length % rhs === 0, () => `${what}: a matrix of ${rhs} columns has a multiple of ${rhs} entries, got ${values.length}`);
    return scaledColumns({ rows: values.length / rhs, cols: rhs, data: values }, exponents);
  };
  // Scaled (a copy) when the call is made, as the exponents are: X is uploaded only when the call's turn
  // on the device comes, and a caller may reuse its array for the next call meanwhile (read then, the
  // new X was scaled by the old one's exponents: another X's product, or ±Infinity and NaN).
  const scaledX = scaledLikeX(xMatrix.data);
  const data = new Float32Array(
    await runAndRead(device, what, yBytes, (run) => {
      const io = { x: run.upload(`${what} x`, scaledX), y: run.storage(`${what} y`, yBytes), rhs };
      dispatch(run, io, given, scaledLikeX);
      return io.y;
    }),
  );
  unscaleColumns(data, w.cols, exponents);
  return { rows: w.cols, cols: rhs, data };
}
