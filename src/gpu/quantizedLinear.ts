import { check, checkLabel, checkOneOf, checkPositiveInteger, counted, describeValue } from '../errors.js';
import { checkKnownKeys, checkOptionalBoolean, checkOptionsObject } from '../quantize/strictOptions.js';
import { BufferUsage, checkBufferUsable, createBufferWithData, STORAGE_USAGE } from './buffers.js';
import { checkBufferRange } from './bufferRange.js';
import { BIAS_FORMATS, biasBytes, type BiasFormat } from './kernels/gemvCall.js';
import { ACTIVATION_FORMATS, activationBytes, dispatchEpilogue, dispatchF16ToF32, type ActivationFormat } from './kernels/activationIo.js';
import { dispatchHadamard } from './kernels/hadamard.js';
import { dispatchLatticeGemv } from './kernels/latticeGemv.js';
import { dispatchInputsI8, dispatchRotatedInputsI8, inputsI8Key, largestInputsRhs, type RecordedInputsI8, type RotatedInputsI8Args } from './kernels/inputsI8.js';
import { d3QuadInputsKey, d3QuadInputsOperand, d3QuadUnsupported, dispatchD3QuadGemvI8, dispatchD3QuadInputsI8, GpuD3QuadMatrix } from './kernels/d3QuadGemvI8.js';
import { dispatchLatticeGemvI8, latticeInt8InputsUnsupported } from './kernels/latticeGemvI8.js';
import { dispatchE8InputsI8, dispatchE8ResidueGemvI8, dispatchRotatedE8InputsI8, e8InputsKey, e8InputsRhsPerBinding, GpuE8ResidueMatrix, quadGemvBindingRhs } from './kernels/e8ResidueGemvI8.js';
import { dispatchE8PointGemvI8, GpuE8PointMatrix } from './kernels/e8PointGemvI8.js';
import { E8_POINT_LIMIT, e8PointUnsupported } from '../quantize/e8Points.js';
import { e8ResidueUnsupported } from '../quantize/e8Residues.js';
import { DOT_PATHS, type DotPath } from './kernels/e8Matmul.js';
import { dispatchUniversalCallSums, dispatchUniversalGemv, fusedFinishSupported, universalCallSumsKey, type RecordedCallSums } from './kernels/universalGemv.js';
import { dispatchUniversalGemvI8, int8InputsUnsupported, UniversalGemvI8Weights } from './kernels/universalGemvI8.js';
import { WeightOnlyGpuMatrix, weightOnlyInt8Unsupported } from './kernels/weightOnlyGemv.js';
import { checkGpuLatticeMatrix, checkMatrixUsable, checkOutputNotRead, latticeMatrixBuffers, latticeMatrixFields, MatrixColumnSide, type GpuDeterministicMatrix, type GpuLatticeMatrix, type NamedBuffer } from './latticeOperand.js';
import { isGpuContext, throwIfDeviceLost, watchDeviceLoss } from './errorScopes.js';
import { MAX_DEFAULT_PADDED_ROTATION_N, oneStageRotationLength } from '../rotation/hadamard.js';
import { MAX_HAAR_N } from '../weightonly/basis.js';
import { prepareSharingCommands, type CommandTarget, type PreparedCommands } from './prepared.js';
import type { GpuScratch } from './scratch.js';
import { itemsPerBinding } from './workSplit.js';

/*
 * A linear layer y = W·x + b over quantized weights, for building models on the GPU: the decode step
 * of an LLM records one `record` per layer into one command encoder and submits once.
 *
 * Conventions (the same for every kind of weight): W has PyTorch's shape (outFeatures, inFeatures);
 * x is `inFeatures × tokens` and y `outFeatures × tokens`, column-major (token t is a contiguous
 * vector), in the activation format ('f32' or 'f16'). A lattice matrix quantized from the
 * library's column-major W (n = inFeatures rows, outFeatures columns; a PyTorch weight read row-major)
 * computes ŴᵀX; a weight-only matrix (outputs × n) computes Ŵ·X — both are W·x here.
 *
 * Range: x lives in the caller's buffer, which the layer cannot check on the host. Each token's ‖x‖₂
 * must stay within `gemvInputNormLimit(w)` (lattice weights, ≈ 2^109–2^116; the same for f32 and int8 inputs) or 2^31 (weight-only
 * weights, `WeightOnlyQuantized`'s bound); beyond it the f32 sums may overflow to ±Infinity or NaN.
 * A NaN or ±Infinity in a token's x makes every output of that token NaN or ±Infinity (the rotation
 * spreads it over all of x̃, an unrotated W multiplies it in every column, the int8 rounding makes its
 * group's scale non-finite, and a time-shared W's check of x's rest catches it where W keeps no row), never
 * a finite value, and leaves the other tokens' outputs as they would be without it
 * (test/gpu/quantizedLinear.test.ts, "non-finite x").
 *
 * Allocation: the first `record` with a given (x buffer, offset, y buffer, offset, tokens) prepares its
 * commands (uniforms, scratch, bind groups); every later one replays them and creates no GPU buffer
 * and no bind group. Up to `maxPrepared` such combinations are kept (least recently used dropped);
 * an app that cycles through more of them (ping-pong buffers past the limit, new x or y buffers every
 * step) prepares on every record: 6 buffers and 2 bind groups per e8-q16 record, measured, left to the
 * garbage collector (a dropped set is not destroyed: an unsubmitted encoder may use it), so memory
 * stays bounded but each record allocates. Raise `maxPrepared`, or keep x and y in a few fixed buffers.
 * Their intermediate buffers (R·x, x̂, staged copies of x) come from the device's shared pool
 * (`prepareSharingCommands`): one of each size and use for all layers, not one per layer and
 * combination; a record reads them only within its own commands, which run contiguously.
 *
 * Lifetime: what `record` puts into an encoder reads the weight's buffers (except where the layer's
 * int8-input form is a repacked copy of them) and the layer's own (bias, int8-input form, column
 * side, prepared uniforms and scratch), as any recorded command reads its
 * GPUBuffers: the weight and the layer (and a group) must not be destroyed before the last submission
 * that uses them has been submitted. WebGPU rejects a submission that uses a destroyed buffer as a whole
 * (none of its commands run, y keeps its old contents), and says so only in an error scope or an
 * `uncapturederror` event; the library does not see the caller's `queue.submit`, so it cannot refuse it.
 */

/**
 * Why deterministic weights cannot take `int8Inputs`, or null: D3 with 8-bit codes (the D3 quad form,
 * or the stored-layout kernel where the quad form cannot hold the multiples) or E8 with q = 16 (the
 * residue form).
 */
function deterministicInt8InputsUnsupported(w: GpuDeterministicMatrix): string | null {
  return w.scheme.lattice === 'E8' ? e8ResidueUnsupported(w) : latticeInt8InputsUnsupported(w.scheme, w.scaleIndexBits);
}

/**
 * A matrix in a quad form of the int8-input GEMVs: an e8-q16-deterministic one's residues, a universal
 * E8 one's points, a d3-q6-deterministic one's codes in whole quads.
 *
 * @inline
 */
type QuadInt8Matrix = GpuE8ResidueMatrix | GpuE8PointMatrix | GpuD3QuadMatrix;

/**
 * The weights of a layer: a lattice matrix on the GPU (universal or deterministic), a weight-only one,
 * or a matrix already repacked for the int8-input GEMVs (`GpuE8ResidueMatrix` of an
 * e8-q16-deterministic matrix, `GpuE8PointMatrix` of a universal E8 one, `GpuD3QuadMatrix` of a
 * d3-q6-deterministic one: the layer reads them with `int8Inputs` only; the uploaded matrix they came
 * from may then be destroyed).
 */
export type LinearWeight = GpuLatticeMatrix | WeightOnlyGpuMatrix | QuadInt8Matrix;

/**
 * `QuantizedLinear.create`'s options for a weight of type W, a bias of type B and a `biasFormat` of
 * type F (both inferred from the options given; F is `never` where `biasFormat` is left out), less
 * what every run refuses, so the compiler catches it:
 * - a quad form (read by the int8-input GEMVs only) needs `int8Inputs`; any other weight, or one typed
 *   as the whole `LinearWeight` union, takes the options optionally;
 * - a Float32Array bias is f32: `biasFormat` 'f16' or 'bf16' does not compile;
 * - a Uint16Array bias holds f16 or bf16 bits: `biasFormat` must say which ('f32', or none, does not compile).
 * A bias typed as a union of the two (or a prebuilt `QuantizedLinearOptions`) keeps every format:
 * `create` still checks the pair at run time.
 */
export type LinearOptionsFor<W extends LinearWeight, B extends QuantizedLinearOptions['bias'] = QuantizedLinearOptions['bias'], F extends BiasFormat | undefined = never> = W extends QuadInt8Matrix
  ? [options: QuantizedLinearOptions & { readonly int8Inputs: DotPath } & LinearBiasOptions<B, F>]
  : [options?: QuantizedLinearOptions & LinearBiasOptions<B, F>];

/**
 * The bias and its format as `create` takes them, for a bias of type B and a format of type F (`never`:
 * not given): a Float32Array with 'f32' or none, a Uint16Array with 'f16' or 'bf16'; any other bias
 * type (a GPUBuffer or slice, which holds either; null; a union of the two arrays; `any`) with any format. A
 * format typed as a union that holds a right one (a prebuilt options object's `BiasFormat`) is taken.
 */
type LinearBiasOptions<B, F> = 0 extends 1 & B
  ? { readonly bias?: B } & BiasFormatGiven<F> // an `any` bias says nothing of its format
  : [B] extends [Float32Array]
    ? [F] extends [never]
      ? { readonly bias?: B }
      : [F] extends ['f16' | 'bf16']
        ? { readonly bias?: B; readonly biasFormat?: 'f32' }
        : { readonly bias?: B; readonly biasFormat?: F }
    : [B] extends [Uint16Array]
      ? [F] extends ['f32' | undefined]
        ? { readonly bias?: B; readonly biasFormat: 'f16' | 'bf16' }
        : { readonly bias?: B; readonly biasFormat?: F }
      : { readonly bias?: B } & BiasFormatGiven<F>;

/** `{ biasFormat?: F }` where a format was given (F inferred from it), else nothing. */
type BiasFormatGiven<F> = [F] extends [never] ? unknown : { readonly biasFormat?: F };

function isQuadInt8Matrix(weight: unknown): weight is QuadInt8Matrix {
  return weight instanceof GpuE8ResidueMatrix || weight instanceof GpuE8PointMatrix || weight instanceof GpuD3QuadMatrix;
}

/** A quad form's name, in messages. */
function quadFormName(weight: QuadInt8Matrix): string {
  return weight instanceof GpuE8PointMatrix ? 'GpuE8PointMatrix' : weight instanceof GpuD3QuadMatrix ? 'GpuD3QuadMatrix' : 'GpuE8ResidueMatrix';
}

/** The key of the x̂ a quad form reads (`e8InputsKey`: E8's groups of 32; `d3QuadInputsKey`: D3's groups of 12, 4 per quad). */
function quadInputsKey(form: QuadInt8Matrix): string {
  return form instanceof GpuD3QuadMatrix ? d3QuadInputsKey(form) : e8InputsKey(form);
}

/** What an int8-input layer's x̂ is rounded for: its quad form, or its lattice weight (the universal D3 GEMV). */
type Int8Operand = QuadInt8Matrix | GpuLatticeMatrix;

/** x̃ = R·X rotated into `args.xRotated` and rounded to int8 for `operand`, in the rotation's last pass where it can be. */
function recordRotatedRounding(device: GPUDevice, encoder: GPUCommandEncoder, scratch: GpuScratch, operand: Int8Operand, args: Omit<RotatedInputsI8Args, 'w'>): RecordedInputsI8 {
  if (operand instanceof GpuE8ResidueMatrix || operand instanceof GpuE8PointMatrix) return dispatchRotatedE8InputsI8(device, encoder, scratch, { ...args, w: operand });
  return dispatchRotatedInputsI8(device, encoder, scratch, { ...args, w: operand instanceof GpuD3QuadMatrix ? d3QuadInputsOperand(operand) : operand });
}

/** x̃ (given) rounded to int8 for `operand` in a dispatch of its own. */
function recordRounding(device: GPUDevice, encoder: GPUCommandEncoder, scratch: GpuScratch, operand: Int8Operand, args: { readonly xRotated: GPUBuffer; readonly xRotatedOffset: number; readonly rhs: number }): RecordedInputsI8 {
  if (operand instanceof GpuE8ResidueMatrix || operand instanceof GpuE8PointMatrix) return dispatchE8InputsI8(device, encoder, scratch, { ...args, w: operand });
  if (operand instanceof GpuD3QuadMatrix) return dispatchD3QuadInputsI8(device, encoder, scratch, { ...args, w: operand });
  return dispatchInputsI8(device, encoder, scratch, { ...args, w: operand });
}

/** Options of {@link QuantizedLinear.create}. Unknown keys are refused (with a suggestion), as are values of the wrong type. */
export interface QuantizedLinearOptions {
  /**
   * outFeatures values in `biasFormat` (whatever the activation format): a Float32Array (f32) or a
   * Uint16Array of f16 or bf16 bits (a model's bias as its file stores it: `biasFormat` says which) is
   * uploaded, a NaN or ±Infinity entry refused; a GPUBuffer of the layer's device, or a slice
   * `{ buffer, offset?, size? }` of one (biases side by side in one buffer; a 16-bit bias's offset a
   * multiple of 2), is read as it is, in place, unchecked (a NaN or ±Infinity there is added to its
   * outputs as IEEE arithmetic adds it).
   */
  readonly bias?: Float32Array | Uint16Array | BufferSlice | null;
  /**
   * The bias's format: 'f32' (default), 'f16' or 'bf16', widened to f32 exactly where the GEMV adds it,
   * on every GPU (bf16 by shifting its bits, f16 subnormals included). A Uint16Array bias needs 'f16'
   * or 'bf16'; a Float32Array one, 'f32' (`create` refuses a mismatch, and where the array's type says
   * which it is, so does the compiler: `LinearOptionsFor`).
   */
  readonly biasFormat?: BiasFormat;
  /**
   * Add the output to what y holds: y ← y + W·x + b (a residual connection, such as an attention
   * block's output projection or an MLP's down projection adding into the hidden state), in the GEMV's
   * own epilogue, with no pass or read of y of its own. Default false: y ← W·x + b. The sum is formed
   * in f32 (an f16 y's old value widened, the sum rounded once to f16); y's old values are added as
   * they are (a NaN there stays a NaN), and every `record` of the layer adds once more.
   */
  readonly accumulate?: boolean;
  /**
   * Format of x and y in GPU buffers. Default 'f32'. f16 outputs round as the CPU's `float16Bits` on
   * every GPU: to nearest even, |y| ≥ 65520 to ±Infinity (f16's range), a NaN to a NaN.
   */
  readonly activations?: ActivationFormat;
  /**
   * Most tokens (columns of x) one record handles; 1…64 are tuned, more work. Default 64. It only
   * bounds `tokens` (nothing is allocated for it): for a longer prompt raise it, or record the prompt
   * in chunks of at most this many tokens, x and y at each chunk's offset.
   */
  readonly maxTokens?: number;
  /** Prepared command sets kept (x/y buffer, offset and token-count combinations: a chunk of a prompt at its offset is one). Default 16. */
  readonly maxPrepared?: number;
  /**
   * Round the rotated input to int8 per group of coordinates inside the GEMV and multiply with packed
   * 8-bit dot products: for d3-q6 and d3-q6-deterministic weights per 12 coordinates
   * (src/gpu/kernels/universalGemvI8.ts: ≈ 3× fewer instructions per weight byte than the f32-input
   * kernel); for d3-q6-deterministic on the codes laid out when the layer is created in whole quads of
   * 16 blocks per column (src/gpu/kernels/d3QuadGemvI8.ts: ≈ 3× fewer instructions per block than the
   * f32-input kernel, ≈ 1.7× fewer than reading the codes as stored; the same 3.33 bits per entry, and
   * the layer owns that copy beside the weight's codes: give a `GpuD3QuadMatrix` as the weight to hold
   * one copy only; a custom scheme with a scale multiple past 255, which the quad form's table cannot
   * hold, keeps the codes as stored: src/gpu/kernels/latticeGemvI8.ts); for
   * e8-q16-deterministic per 32, on the leaders repacked when the layer is created into residue
   * nibbles and a side byte per block (src/gpu/kernels/e8ResidueGemvI8.ts: ≈ 7× fewer instructions
   * per block than the nearest-point decode, for 5 bits per entry read instead of 4.25; the layer
   * owns that form, 5/8 byte per weight, beside the weight's codes); for the universal E8 schemes
   * (e8-2bit … e8-5bit, e8-q16) per 32, on the lattice points repacked when the layer is created as
   * int8 (src/gpu/kernels/e8PointGemvI8.ts: ≈ 46 instructions per block instead of ≈ 310–525, for 8
   * bits per entry read instead of 3–5; the layer owns that form, a byte per weight, beside the
   * weight's codes; a point beyond ±127, which rotated data has not shown, is refused here, naming the
   * block, where the weight was uploaded from the host (which had its codes: `e8PointOverflow`), and
   * for a weight the GPU quantized makes the layer's outputs NaN, and `await layer.check()` rejects
   * naming it); for weight-only weights in the fixed-width
   * layout (codes of at most 8 bits, `uploadWeightOnly`'s default where that costs at most 1.5× the
   * packed bytes) per code word's ⌊32/b⌋ inputs with the column scales folded in
   * (src/gpu/kernels/weightOnlyInputsI8.ts: packed 8-bit dot products on the codes' bytes, RDNA3 count
   * in bench/README.md; the layer owns nothing more; a packed weight-only matrix is refused). Other
   * schemes are refused.
   * 'packed' uses dot4I8Packed (where WGSL has packed_4x8_integer_dot_product:
   * `dotPathFor(engine.features)`), 'plain' core WGSL. It adds the inputs' rounding error, at most
   * (½ + 2·10⁻⁴)·s_g·Σ|ŵ| per group (s_g = max|x̃| / 127 over the group): ≈ 2·10⁻⁵ in NMSE on Gaussian
   * data for D3 and ≈ 3·10⁻⁵ for E8, against the GEMV's own NMSE with exact x, ≈ 2.6·10⁻² for d3-q6 and ≈ 5·10⁻³ for e8-q16-deterministic;
   * for weight-only weights (½ + 10⁻⁴)·m_w/127 per input of code word w (m_w = max|s_i·x̃_i| over its
   * ⌊32/b⌋ inputs), times |t_j|·Σ|z| in y_j: ≈ 10⁻⁵ in NMSE on Gaussian data. Both bounds hold where
   * the scale s_g = f32(m/127) (m_w/127) is a normal f32, i.e. for groups whose largest |x̃| (|s·x̃|)
   * is at least about 2^−119; an x with subnormal entries (below 2^−126) may be flushed or rounded
   * coarsely (measured on lavapipe: 11 times the bound at x ≈ 2^−144·N(0, 1)).
   * Default null: exact f32 inputs.
   */
  readonly int8Inputs?: DotPath | null;
  readonly label?: string;
}

/** Options of `QuantizedLinear.record` and of a group's `record`. */
export interface LinearRecordOptions {
  /** Tokens (columns of x and y) this record computes, 1 … maxTokens (a group's: its layers' smallest). Default 1. */
  readonly tokens?: number;
}

/** Options of `QuantizedLinear.group`. */
export interface LinearGroupOptions {
  /** Prepared command sets the group keeps (as a layer's `maxPrepared`). Default 16. */
  readonly maxPrepared?: number;
  readonly label?: string;
}

const OPTION_KEYS = ['bias', 'biasFormat', 'accumulate', 'activations', 'maxTokens', 'maxPrepared', 'int8Inputs', 'label'] as const satisfies readonly (keyof QuantizedLinearOptions)[];
const GROUP_OPTION_KEYS = ['maxPrepared', 'label'] as const satisfies readonly (keyof LinearGroupOptions)[];
const RECORD_OPTION_KEYS = ['tokens'] as const satisfies readonly (keyof LinearRecordOptions)[];
/** Prepared command sets a layer or group keeps by default (`maxPrepared`). */
const DEFAULT_MAX_PREPARED = 16;
/** Tokens a layer's or a group's `record` computes by default (`LinearRecordOptions.tokens`). */
const DEFAULT_RECORD_TOKENS = 1;

/**
 * The tokens of a layer's or a group's `record` (default DEFAULT_RECORD_TOKENS), checked against the
 * largest it may take; `limit` says where that comes from in the message ("maxTokens").
 */
function recordTokens(options: LinearRecordOptions, maxTokens: number, limit: string): number {
  const tokens = checkOptionsObject(options, RECORD_OPTION_KEYS, 'record options').tokens ?? DEFAULT_RECORD_TOKENS;
  check(Number.isInteger(tokens) && tokens >= 1 && tokens <= maxTokens, () => `tokens must be an integer in [1, ${maxTokens}] (${limit}), got ${describeValue(tokens)}`);
  return tokens;
}

/** An optional label: a string, or undefined for `fallback`. */
function labelOption(label: unknown, fallback: string): string {
  if (label === undefined) return fallback;
  checkLabel(label, 'QuantizedLinear');
  return label;
}

/** Refuses a weight whose buffers belong to another device than the layer's, or were destroyed. */
function checkWeightUsable(weight: LinearWeight, device: GPUDevice, what: string): void {
  checkMatrixUsable(weight, device, `${what}: the weight`, 'layer');
}

/**
 * A buffer, or a buffer and a byte offset (and, as in a `GPUBufferBinding`, optionally a size in bytes:
 * then what the layer reads or writes there must fit in it). The offset is a multiple of 4 for f16
 * activations too (the kernels read and write f16 as halves of u32 words, starting at a word): an f16
 * slice starts at an even element. A bias in f16 or bf16 may start at any half (a multiple of 2): the
 * GEMV reads it from the half it starts at, as a model file may place it.
 */
export type BufferSlice = GPUBuffer | { readonly buffer: GPUBuffer; readonly offset?: number; readonly size?: number };

const SLICE_KEYS = ['buffer', 'offset', 'size'] as const satisfies readonly (keyof Exclude<BufferSlice, GPUBuffer>)[];

function slice(value: BufferSlice, what: string, offsetMultiple = 4): Slice {
  check(typeof value === 'object' && value !== null, () => `${what} must be a GPUBuffer or { buffer, offset }, got ${describeValue(value)}`);
  // A typed array has a `buffer` too: it would be refused for its index keys ("unknown option '0'").
  check(!ArrayBuffer.isView(value), () => `${what} must be a GPUBuffer or { buffer, offset }, got ${describeValue(value)}: write the values into a GPUBuffer (device.queue.writeBuffer) and pass that`);
  if (!('buffer' in value)) return { buffer: value, offset: 0, size: undefined };
  // A misspelled key ({ buffer, ofset: 256 }) would otherwise read or write the buffer at byte 0.
  checkKnownKeys(value, SLICE_KEYS, what);
  const { buffer, offset = 0, size } = value;
  check(typeof buffer === 'object' && buffer !== null, () => `${what}.buffer must be a GPUBuffer, got ${describeValue(buffer)}`);
  check(Number.isInteger(offset) && offset >= 0 && offset % offsetMultiple === 0, () => `${what} offset must be a non-negative multiple of ${offsetMultiple}, got ${describeValue(offset)}`);
  check(size === undefined || (Number.isInteger(size) && size >= 0), () => `${what} size must be a non-negative integer (bytes) or absent, got ${describeValue(size)}`);
  // As WebGPU refuses such a GPUBufferBinding: a size past the buffer's end is a mistake, even where
  // what the layer needs would fit.
  check(
    size === undefined || typeof buffer.size !== 'number' || offset + size <= buffer.size,
    () => `${what}: ${size} bytes at offset ${offset} go past the end of its buffer (${buffer.size} bytes)`,
  );
  return { buffer, offset, size };
}

/** A slice's cache-key part: buffer, offset and size (the size bounds what the checks accepted). */
function sliceKey(value: Slice): string {
  return `${bufferId(value.buffer)}:${value.offset}:${value.size ?? ''}`;
}

/**
 * Checks that `bytes` from a slice's offset fit its size (if given), and bind as storage
 * (`checkBufferRange`). `sizeNote` says what `bytes` counts, at the end of a refusal for room.
 */
function checkSliceRoom(value: Slice, bytes: number, what: string, offsetMultiple = 4, sizeNote?: string): void {
  const note = sizeNote === undefined ? '' : ` (${sizeNote})`;
  check(value.size === undefined || bytes <= value.size, () => `${what} needs ${bytes} bytes, but its size is ${describeValue(value.size)}${note}`);
  checkBufferRange(value.buffer, value.offset, bytes, what, offsetMultiple, sizeNote);
}

/**
 * What an x or y of a layer counts ("inFeatures 4096 × 1 token × 2 bytes"): a weight quantized with
 * rows and cols swapped (PyTorch's (out, in) order) shows as the other count of features.
 */
function activationsNote(features: string, count: number, tokens: number, format: ActivationFormat): string {
  return `${features} ${count} × ${counted(tokens, 'token')} × ${activationBytes(format)} bytes`;
}

/**
 * Records x, which a y's buffer shares, as f32 into scratch: widened from f16 (exactly) or copied. The
 * layers then read the copy, so no dispatch binds x's buffer, and y may even overlap x.
 */
function stageSharedInput(device: GPUDevice, encoder: GPUCommandEncoder, scratch: GpuScratch, x: Slice, format: ActivationFormat, count: number, label: string): Slice {
  const staged = scratch.intermediate(`${label} x (f32 copy: a y shares its buffer)`, 4 * count, STORAGE_USAGE);
  if (format === 'f16') {
    dispatchF16ToF32(device, encoder, scratch, { input: x.buffer, inputOffset: x.offset, output: staged, count });
  } else {
    // The epilogue binds its input and output whole: copy x in pieces that each fit one binding (a
    // prefill's x may not).
    const piece = itemsPerBinding(4, device.limits.maxStorageBufferBindingSize, device.limits.minStorageBufferOffsetAlignment);
    for (let start = 0; start < count; start += piece) {
      dispatchEpilogue(device, encoder, scratch, { input: x.buffer, inputOffset: x.offset + 4 * start, bias: null, rows: Math.min(piece, count - start), columns: 1, output: staged, outputOffset: 4 * start, format: 'f32' });
    }
  }
  return { buffer: staged, offset: 0 };
}

/**
 * Refuses outputs whose byte ranges overlap: a group's layers write their ys in one pass, and with
 * overlapping ranges one layer's result would silently replace another's (outputs side by side in one
 * buffer are fine).
 */
function checkDisjointOutputs(outputs: readonly Slice[], bytes: readonly number[]): void {
  for (let i = 0; i < outputs.length; i++) {
    const a = outputs[i] as Slice;
    for (let j = i + 1; j < outputs.length; j++) {
      const b = outputs[j] as Slice;
      const aEnd = a.offset + (bytes[i] as number);
      const bEnd = b.offset + (bytes[j] as number);
      check(a.buffer !== b.buffer || aEnd <= b.offset || bEnd <= a.offset, () => `ys[${i}] (bytes ${a.offset}…${aEnd}) and ys[${j}] (bytes ${b.offset}…${bEnd}) overlap in one buffer; each layer needs its own range`);
    }
  }
}

/** Stable small ids for buffers (the prepared-command cache keys). */
const bufferIds = /*#__PURE__*/ new WeakMap<GPUBuffer, number>();
let nextBufferId = 1;
function bufferId(buffer: GPUBuffer): number {
  let id = bufferIds.get(buffer);
  if (id === undefined) {
    id = nextBufferId++;
    bufferIds.set(buffer, id);
  }
  return id;
}

/**
 * Prepared command sets by key, least recently used dropped past `limit` (what `QuantizedLinear` and
 * its groups keep per (x, y, tokens) combination).
 *
 * A dropped set is not destroyed: an encoder may hold commands recorded from it that are not submitted
 * yet (a prefill recording more combinations than `limit` into one encoder), and destroying their
 * buffers would make WebGPU reject that whole submission. Dropping the last JS reference is safe: the
 * implementation keeps a buffer alive while a command buffer references it and frees it after (GC
 * decides when, so churning through many combinations holds memory longer than `destroy()` would;
 * a shared intermediate a collected set held is left to GC too, GpuScratch's pool says why).
 * `destroy()` frees the sets still kept, at the caller's word that nothing recorded from them is
 * still to be submitted.
 */
class PreparedCache {
  private readonly sets = new Map<string, PreparedCommands>();

  constructor(private readonly limit: number) {}

  /** The set for `key`, prepared by `prepare` on first use; marks it most recently used. */
  get(key: string, prepare: () => PreparedCommands): PreparedCommands {
    let commands = this.sets.get(key);
    if (commands === undefined) {
      commands = prepare();
      if (this.sets.size >= this.limit) {
        const [oldest] = this.sets.keys();
        // Dropped, not destroyed: see above.
        if (oldest !== undefined) this.sets.delete(oldest);
      }
    } else {
      this.sets.delete(key);
    }
    this.sets.set(key, commands);
    return commands;
  }

  get size(): number {
    return this.sets.size;
  }

  destroy(): void {
    for (const commands of this.sets.values()) commands.destroy();
    this.sets.clear();
  }
}

/** A buffer, a byte offset and, if the caller gave one, a size in bytes. */
type Slice = { buffer: GPUBuffer; offset: number; size?: number | undefined };

/**
 * Layers that read the same input, recorded together (`QuantizedLinear.group`): the input is rotated
 * once per distinct rotation (lattice layers quantized with one seed share it, as the library's
 * default seed makes them, and so do weight-only layers with a Hadamard rotation of the same n and
 * seed, with each other and with such lattice layers; f16 activations are widened as the rotation
 * loads them), the rotated input
 * rounded to int8 once for the layers with `int8Inputs` that read it, then every layer's GEMV (bias
 * and output format included) runs on it. f16 activations are converted to f32 once, and only when a
 * layer reads x itself in f32 (unrotated or centred lattice weights; weight-only layers read f16).
 * Results equal the layers recorded one by one, bit for bit.
 */
export interface QuantizedLinearGroup {
  readonly layers: readonly QuantizedLinear[];
  /**
   * Rotations of x one record makes (one per distinct seed and length among the rotated layers: lattice, and
   * weight-only with a Hadamard rotation; per chunk of tokens for the int8-input layers of a record split in
   * chunks, as `int8RoundingsPerRecord` says).
   */
  readonly rotationsPerRecord: number;
  /**
   * Roundings of x̃ to int8 one record makes (one per distinct rotation, keptLength, length and grouping
   * — 12 coordinates for D3, 32 for the E8 residue GEMV — among the layers with `int8Inputs`; the first of each rotation inside the rotation's last pass where its last
   * stage takes one: `rotationRoundsInPass`). A record of more tokens than an int8-input layer's GEMV
   * takes in one call (x̃ beyond one storage binding, …) makes these per chunk of tokens for its
   * int8-input layers (`recordLayers`), and a rotation they share with the other layers once more.
   */
  readonly int8RoundingsPerRecord: number;
  /** Recordings of the universal GEMV's per-call sums one record makes (one per distinct `universalCallSumsKey` among the universal layers without `int8Inputs`). */
  readonly callSumsPerRecord: number;
  /**
   * Records y_i = W_i·x + b_i for every layer into `target`: a command encoder (outside a pass) or an
   * open compute pass of yours (as `QuantizedLinear.record`). `ys[i]` is layer i's output
   * (outFeatures_i × tokens, the layers' activation format). A y may share x's buffer, even overlap x
   * (see `QuantizedLinear.record`).
   * The group, its layers and their weights must outlive the last submission of what was recorded
   * (see `QuantizedLinear.record`).
   */
  record(target: CommandTarget, x: BufferSlice, ys: readonly BufferSlice[], options?: LinearRecordOptions): void;
  /**
   * Frees the group's prepared commands (not the layers). Idempotent. Call it only after the last
   * submission of what the group recorded has been submitted: WebGPU rejects a submission that uses a
   * destroyed buffer, as a whole.
   */
  destroy(): void;
}

/**
 * y = W·x + b on the GPU from quantized weights.
 *
 * @example
 * const layer = QuantizedLinear.create(device, engine.upload(qW), { bias, activations: 'f16' });
 * const encoder = device.createCommandEncoder();
 * for (const l of layers) l.record(encoder, hidden, next);   // no allocation after the first step
 * device.queue.submit([encoder.finish()]);
 *
 * @example
 * // A residual connection, h ← h + W_o·attention + b, with the model's bf16 bias read as stored:
 * const o = QuantizedLinear.create(device, wO, { activations: 'f16', accumulate: true, bias: oBiasBits, biasFormat: 'bf16' });
 * o.record(pass, attention, h);
 */
export class QuantizedLinear {
  readonly inFeatures: number;
  readonly outFeatures: number;
  readonly activations: ActivationFormat;
  readonly maxTokens: number;
  private readonly bias: GPUBuffer | null;
  /** Byte offset of the bias in `bias` (0 for an uploaded one). */
  private readonly biasOffset: number;
  private readonly ownsBias: boolean;
  private readonly biasFormat: BiasFormat;
  /** Whether the layer adds to y (`accumulate`). */
  private readonly accumulate: boolean;
  private readonly prepared: PreparedCache;
  /** The weights prepared for the int8-input GEMV (owned), or null. */
  private readonly int8Weights: UniversalGemvI8Weights | null;
  /** Weights in a quad form of the int8-input GEMVs (E8 residues or points, D3 quads: owned, unless it is the weight itself), or null. */
  private readonly quadForm: QuadInt8Matrix | null;
  /** The weight when it is a lattice matrix (not weight-only, not already repacked), else null. */
  private readonly lattice: GpuLatticeMatrix | null;
  private readonly int8DotPath: DotPath;
  /** Whether the GEMV takes int8 inputs (`int8Inputs` was given). */
  private readonly int8Inputs: boolean;
  /** A deterministic W's norms, gains and means gathered once (owned), so a replay copies nothing; else null. */
  private readonly columnSide: MatrixColumnSide | null;
  private destroyed = false;

  private constructor(
    readonly device: GPUDevice,
    readonly weight: LinearWeight,
    options: QuantizedLinearOptions,
    readonly label: string,
  ) {
    // Everything is checked before anything is allocated, so a refused layer leaves no GPU buffer behind.
    check(
      typeof device === 'object' && device !== null && typeof device.createBuffer === 'function',
      () => `QuantizedLinear needs a GPUDevice, got ${isGpuContext(device) ? 'the context requestGpuDevice() / requestNodeGpuDevice() returns: pass its .device' : describeValue(device)}`,
    );
    watchDeviceLoss(device);
    throwIfDeviceLost(device, 'QuantizedLinear.create');
    if (weight instanceof WeightOnlyGpuMatrix) {
      check(
        weight.rotation !== 'haar',
        () =>
          `QuantizedLinear: this weight-only matrix of n = ${weight.n} inputs was rotated with the dense "haar" rotation (rotate: true picks it where n ≤ ${MAX_DEFAULT_PADDED_ROTATION_N} is no Hadamard length; ` +
          `before format version 3, where n ≤ ${MAX_HAAR_N} is none), which only the host applies; ` +
          (weight.n > MAX_DEFAULT_PADDED_ROTATION_N ? `quantize it again (rotate: true now rotates n > ${MAX_DEFAULT_PADDED_ROTATION_N} inputs with the randomized Hadamard rotation), or ` : '') +
          `quantize it with rotate: false, or pad W's inputs with zeros to ${oneStageRotationLength(weight.n)} (a Hadamard length) and x with as many zeros`,
      );
      this.inFeatures = weight.n;
      this.outFeatures = weight.outputs;
      this.lattice = null;
    } else if (isQuadInt8Matrix(weight)) {
      check((options.int8Inputs ?? null) !== null, () => `QuantizedLinear: a ${quadFormName(weight)} is read by the int8-input GEMV only: pass int8Inputs (dotPathFor(engine.features))`);
      this.inFeatures = weight.rows;
      this.outFeatures = weight.cols;
      this.lattice = null;
    } else {
      check(typeof weight === 'object' && weight !== null && weight.kind === 'lattice', 'QuantizedLinear needs a GPU lattice matrix, a WeightOnlyGpuMatrix, a GpuE8ResidueMatrix, a GpuE8PointMatrix or a GpuD3QuadMatrix');
      checkGpuLatticeMatrix(weight, 'QuantizedLinear weight');
      // A hand-built matrix's buffers: WebGPU would refuse one without STORAGE only at the caller's submit.
      for (const [name, buffer] of latticeMatrixFields(weight)) if (buffer !== null) checkBufferUsable(buffer, BufferUsage.STORAGE, `QuantizedLinear weight ${name}`);
      this.inFeatures = weight.rows;
      this.outFeatures = weight.cols;
      this.lattice = weight;
    }
    checkWeightUsable(weight, device, 'QuantizedLinear');
    this.activations = options.activations ?? 'f32';
    checkOneOf(this.activations, ACTIVATION_FORMATS, 'activations');
    this.maxTokens = options.maxTokens ?? 64;
    checkPositiveInteger(this.maxTokens, 'maxTokens');
    const maxPrepared = options.maxPrepared ?? DEFAULT_MAX_PREPARED;
    checkPositiveInteger(maxPrepared, 'maxPrepared');
    this.prepared = new PreparedCache(maxPrepared);
    const int8Inputs = options.int8Inputs ?? null;
    checkOneOf(int8Inputs, [...DOT_PATHS, null], 'int8Inputs');
    this.int8DotPath = int8Inputs ?? 'plain';
    this.int8Inputs = int8Inputs !== null;
    const lattice = this.lattice;
    if (int8Inputs !== null && weight instanceof WeightOnlyGpuMatrix) {
      check(weightOnlyInt8Unsupported(weight) === null, () => `int8Inputs: ${weightOnlyInt8Unsupported(weight) ?? ''}`);
    } else if (int8Inputs !== null && !isQuadInt8Matrix(weight)) {
      check(lattice !== null, 'int8Inputs needs lattice weights (d3-q6, the universal E8 schemes, d3-q6-deterministic or e8-q16-deterministic) or fixed-width weight-only ones');
      const why = lattice.mode === 'universal' ? (lattice.scheme.lattice === 'E8' ? e8PointUnsupported(lattice) : int8InputsUnsupported(lattice.scheme)) : deterministicInt8InputsUnsupported(lattice);
      check(why === null, () => `int8Inputs: ${why ?? ''}`);
      // A universal E8 matrix uploaded from the host carries what its points need (its codes were
      // there): a point beyond int8 is refused now, not left to NaN outputs until check().
      const overflow = lattice.mode === 'universal' ? lattice.e8PointOverflow : undefined;
      check(
        overflow === undefined || overflow === null,
        () =>
          `QuantizedLinear ${JSON.stringify(label)}: int8Inputs: block ${overflow?.block} of column ${overflow?.column} of ${overflow?.matrix ?? 'the weight'} has a lattice point coordinate ${overflow?.coordinate}, ` +
          `beyond the int8 lattice points' ±${E8_POINT_LIMIT} that the int8-input GEMV reads (a coordinate far above its column's RMS: an unrotated column's spike, or an explicit escape); ` +
          `create this layer without int8Inputs (the f32-input GEMV decodes every code; for your own weights, quantizing with the rotation avoids such points)`,
      );
    }
    this.accumulate = checkOptionalBoolean(options.accumulate, 'accumulate') ?? false;
    const bias = options.bias ?? null;
    const biasFormat = options.biasFormat ?? 'f32';
    checkOneOf(biasFormat, BIAS_FORMATS, 'biasFormat');
    this.biasFormat = biasFormat;
    let biasSlice: Slice | null = null;
    const hostBias = bias instanceof Float32Array || bias instanceof Uint16Array;
    if (hostBias) {
      check(bias.length === this.outFeatures, () => `bias has ${bias.length} entries, expected outFeatures = ${this.outFeatures}`);
      if (bias instanceof Float32Array) {
        check(biasFormat === 'f32', () => `a Float32Array bias is f32, but biasFormat is ${JSON.stringify(biasFormat)}: leave biasFormat out, or pass the bias's ${biasFormat} bits as a Uint16Array`);
        check(bias.every(Number.isFinite), 'bias has a non-finite entry');
      } else {
        check(biasFormat !== 'f32', "a Uint16Array bias holds f16 or bf16 bits: say which with biasFormat: 'f16' or 'bf16'");
        // All exponent bits set: ±Infinity or NaN in either format.
        const exponent = biasFormat === 'f16' ? 0x7c00 : 0x7f80;
        const at = bias.findIndex((bits) => (bits & exponent) === exponent);
        check(at < 0, () => `bias has a non-finite entry (${biasFormat} bits 0x${(bias[at] ?? 0).toString(16)} at ${at})`);
      }
    } else if (bias !== null) {
      check(typeof bias === 'object' && !ArrayBuffer.isView(bias) && !Array.isArray(bias), () => `bias must be a Float32Array, a Uint16Array (with biasFormat), a GPUBuffer, a slice { buffer, offset } or null, got ${describeValue(bias)}`);
      // A 16-bit bias may start at any half: the GEMV binds the word holding its first one.
      const bytes = biasBytes(biasFormat);
      biasSlice = slice(bias, 'bias', bytes);
      // A usable storage buffer with room (checkBufferRange, inside, checks the usage first).
      checkSliceRoom(biasSlice, bytes * this.outFeatures, 'bias', bytes);
    }
    this.ownsBias = hostBias;
    this.biasOffset = biasSlice?.offset ?? 0;
    const created: { destroy(): void }[] = [];
    const own = <T extends { destroy(): void }>(resource: T): T => {
      created.push(resource);
      return resource;
    };
    try {
      this.bias = hostBias ? own(createBufferWithData(device, `${label} bias`, bias, STORAGE_USAGE)) : (biasSlice?.buffer ?? null);
      const e8 = lattice?.scheme.lattice === 'E8';
      this.int8Weights = int8Inputs !== null && lattice?.mode === 'universal' && !e8 ? own(UniversalGemvI8Weights.create(device, lattice, `${label} int8-input weights`)) : null;
      this.quadForm = isQuadInt8Matrix(weight)
        ? weight
        : int8Inputs === null || lattice === null || this.int8Weights !== null
          ? null
          : lattice.mode === 'deterministic'
            ? e8
              ? own(GpuE8ResidueMatrix.repack(device, lattice, `${label} E8 residues`))
              : // D3: the quad form, unless its table's byte cannot hold the multiples (custom ladders
                // past 255): then the kernel on the codes as stored (dispatchLatticeGemvI8).
                d3QuadUnsupported(lattice) === null
                ? own(GpuD3QuadMatrix.repack(device, lattice, `${label} D3 quads`))
                : null
            : own(GpuE8PointMatrix.repack(device, lattice, `${label} E8 points`));
      // The quad forms carry their own column side.
      this.columnSide = lattice?.mode === 'deterministic' && this.quadForm === null ? own(MatrixColumnSide.create(device, lattice, `${label} column norms, gains, means`)) : null;
    } catch (error) {
      for (const resource of created) resource.destroy();
      throw error;
    }
  }

  /**
   * A layer over `weight` (which stays the caller's: `destroy()` does not destroy it, and it must
   * outlive the layer's last submission). `weight` must be on `device` and not destroyed (both are
   * refused, here and at every `record`, for the library's own weight classes). Options are strict: an
   * unknown key (`activation`) is refused, naming the closest known one.
   */
  static create<W extends LinearWeight, B extends QuantizedLinearOptions['bias'] = QuantizedLinearOptions['bias'], F extends BiasFormat | undefined = never>(
    device: GPUDevice,
    weight: W,
    ...rest: LinearOptionsFor<W, B, F>
  ): QuantizedLinear {
    const [options = {}] = rest as [QuantizedLinearOptions?];
    checkOptionsObject(options, OPTION_KEYS, 'QuantizedLinear options');
    return new QuantizedLinear(device, weight, options, labelOption(options.label, 'quantized linear'));
  }

  /**
   * Records y = W·x + b (y += W·x + b with `accumulate`) for `tokens` columns into `target`. x: inFeatures × tokens, y: outFeatures ×
   * tokens, both in the layer's activation format. They may lie in one buffer (an arena of
   * activations), even overlap (y = W·x in place): x is then first copied into the layer's scratch by
   * a dispatch of its own (reading 2 or 4·inFeatures·tokens bytes), as WebGPU lets no dispatch bind
   * one buffer both for reading and for writing.
   *
   * `target` is a command encoder (outside a pass: the layer records one compute pass), or an open
   * compute pass of yours: the layer's dispatches then join it, after what you recorded there, so a
   * decode step can put all its layers (and your own kernels) in one pass. That halves the host cost of
   * recording a layer (opening and closing a pass costs Dawn more than a layer's dispatches; see
   * `PreparedCommands`). Dispatches in one pass see each other's writes as across passes. Every
   * layer records dispatches only, and leaves the pass's pipeline and bind groups set to its last
   * dispatch's: set your pipeline and every bind group again before your own next dispatch in the pass,
   * or it runs the layer's last kernel again (WebGPU raises no error for that).
   *
   * What is recorded reads the weight's buffers and the layer's: like any GPUBuffer they must outlive
   * the last submission that uses them. Destroying the layer, or its weight, after `record` and before
   * `queue.submit` makes WebGPU reject the whole submission (no command in it runs, y is left as it
   * was); that shows only in an error scope or an `uncapturederror` event, since the submit is
   * yours. One exception: with `int8Inputs`, an E8 or d3-q6-deterministic layer reads only its own
   * repacked copy of the weight, so that submission runs as recorded (y is right); the next `record`
   * refuses the destroyed weight. Recording never invalidates commands recorded earlier: the
   * `maxPrepared` limit drops prepared sets without destroying them. Likewise x and y must be buffers of the layer's device, and
   * a compute pass given as `target` must still be open: WebGPU offers no way to ask a buffer for its
   * device or a pass whether it has ended, so either mistake surfaces as WebGPU's validation error
   * (an error scope of yours or `uncapturederror`), with the submission rejected and y left as it was.
   * Once the device's `lost` promise has resolved, `record` throws `GpuDeviceLostError`; before it
   * has (just after `device.destroy()`), a record returns, its submission runs nothing, and the
   * library's reads of y reject with the loss.
   *
   * @example
   * const pass = encoder.beginComputePass({ label: 'decode step' });
   * for (const [i, layer] of layers.entries()) layer.record(pass, hidden[i % 2], hidden[(i + 1) % 2]);
   * pass.end();
   */
  record(target: CommandTarget, x: BufferSlice, y: BufferSlice, options: LinearRecordOptions = {}): void {
    check(!this.destroyed, () => `${this.label}: this QuantizedLinear was destroyed`);
    checkWeightUsable(this.weight, this.device, this.label);
    const tokens = recordTokens(options, this.maxTokens, 'maxTokens');
    const input = slice(x, 'x');
    const output = slice(y, 'y');
    const key = `${sliceKey(input)}|${sliceKey(output)}|${tokens}`;
    const commands = this.prepared.get(key, () => {
      this.checkInput(input, tokens);
      this.checkOutput(output, tokens, 'y');
      return prepareSharingCommands(this.device, `${this.label} (${counted(tokens, 'token')})`, (recorder, scratch) => QuantizedLinear.recordLayers([this], recorder, scratch, input, [output], tokens, this.label));
    });
    commands.record(target);
  }

  /**
   * A group of layers that read the same input (same device, inFeatures and activation format),
   * recorded with one rotation per distinct seed (see {@link QuantizedLinearGroup}).
   *
   * @example
   * const qkv = QuantizedLinear.group([q, k, v]);       // one rotation of x instead of three
   * qkv.record(encoder, hidden, [qOut, kOut, vOut]);
   */
  static group(given: readonly QuantizedLinear[], options: LinearGroupOptions = {}): QuantizedLinearGroup {
    check(Array.isArray(given) && given.length > 0, 'QuantizedLinear.group needs a non-empty array of QuantizedLinear layers');
    // A copy: the group records what it was given, whatever the caller's array becomes. Array.from reads
    // a hole as undefined, which the check below refuses (every() skips holes).
    const layers: readonly QuantizedLinear[] = Array.from(given);
    check(layers.every((layer) => layer instanceof QuantizedLinear), 'QuantizedLinear.group needs a non-empty array of QuantizedLinear layers');
    const [first] = layers as [QuantizedLinear, ...QuantizedLinear[]];
    check(new Set(layers).size === layers.length, 'QuantizedLinear.group: a layer appears twice');
    // As create: a group on a lost device could only fail at its first record.
    throwIfDeviceLost(first.device, 'QuantizedLinear.group');
    // Layers by position and label: layers keep the default label unless given one, so the label alone may not tell which.
    const named = (i: number): string => `layer ${i} ("${(layers[i] as QuantizedLinear).label}")`;
    for (const [i, layer] of layers.entries()) {
      check(!layer.destroyed, () => `${layer.label}: this QuantizedLinear was destroyed`);
      check(layer.device === first.device, 'QuantizedLinear.group: the layers are on different devices');
      check(layer.inFeatures === first.inFeatures, () => `QuantizedLinear.group: ${named(i)} has inFeatures ${layer.inFeatures}, ${named(0)} ${first.inFeatures}`);
      check(layer.activations === first.activations, () => `QuantizedLinear.group: ${named(i)} takes ${layer.activations} activations, ${named(0)} ${first.activations}`);
    }
    checkOptionsObject(options, GROUP_OPTION_KEYS, 'QuantizedLinear.group options');
    const maxPrepared = options.maxPrepared ?? DEFAULT_MAX_PREPARED;
    checkPositiveInteger(maxPrepared, 'maxPrepared');
    const label = labelOption(options.label, `group of ${layers.length} layers`);
    const prepared = new PreparedCache(maxPrepared);
    const maxTokens = layers.reduce((fewest, layer) => Math.min(fewest, layer.maxTokens), Infinity);
    const rotationKeys = new Set(layers.flatMap((layer) => layer.rotation()?.key ?? []));
    let destroyed = false;

    return {
      layers: [...layers],
      rotationsPerRecord: rotationKeys.size,
      int8RoundingsPerRecord: new Set(layers.flatMap((layer) => layer.int8RoundingKey() ?? [])).size,
      callSumsPerRecord: new Set(layers.flatMap((layer) => layer.callSumsKey() ?? [])).size,
      record(target, x, ys, recordOptions = {}) {
        check(!destroyed, () => `${label}: this group was destroyed`);
        for (const layer of layers) {
          check(!layer.destroyed, () => `${label}: ${layer.label} was destroyed`);
          checkWeightUsable(layer.weight, layer.device, `${label}: ${layer.label}`);
        }
        const tokens = recordTokens(recordOptions, maxTokens, "the layers' smallest maxTokens");
        check(Array.isArray(ys) && ys.length === layers.length, () => `${label}: ys needs one output per layer (${layers.length}), got ${Array.isArray(ys) ? ys.length : describeValue(ys)}`);
        const input = slice(x, 'x');
        const outputs = ys.map((y, i) => slice(y, `ys[${i}]`));
        const key = `${sliceKey(input)}|${outputs.map(sliceKey).join(',')}|${tokens}`;
        const commands = prepared.get(key, () => {
          first.checkInput(input, tokens);
          // A y must not be any member's weight or bias either: later members would read it written over.
          const readers = layers.map((layer, j) => [layer, `layer ${j}'s`] as const);
          layers.forEach((layer, i) => layer.checkOutput(outputs[i] as Slice, tokens, `ys[${i}]`, readers));
          checkDisjointOutputs(outputs, layers.map((layer) => layer.outputBytes(tokens)));
          return prepareSharingCommands(first.device, `${label} (${counted(tokens, 'token')})`, (recorder, scratch) => QuantizedLinear.recordLayers(layers, recorder, scratch, input, outputs, tokens, label));
        });
        commands.record(target);
      },
      destroy() {
        if (destroyed) return;
        destroyed = true;
        prepared.destroy();
      },
    };
  }

  /** x: a storage buffer with inFeatures × tokens activations at its offset. */
  private checkInput(input: Slice, tokens: number): void {
    checkSliceRoom(input, activationBytes(this.activations) * this.inFeatures * tokens, 'x', 4, activationsNote('inFeatures', this.inFeatures, tokens, this.activations));
  }

  /**
   * y: a storage buffer with room for outFeatures × tokens activations at its offset, and none of the
   * buffers that `readers` (this layer, or every member of a group with their names) read.
   */
  private checkOutput(output: Slice, tokens: number, what: string, readers: readonly (readonly [QuantizedLinear, string])[] = [[this, 'the']]): void {
    checkOutputNotRead(output.buffer, readers.flatMap(([layer, name]) => layer.readBuffers(name)), what);
    checkSliceRoom(output, this.outputBytes(tokens), what, 4, activationsNote('outFeatures', this.outFeatures, tokens, this.activations));
  }

  /** The caller's buffers the layer reads besides x: the weight's and a GPUBuffer bias, named "`name` weight's codes", "`name` bias". */
  private readBuffers(name: string): NamedBuffer[] {
    const weight = this.weight;
    const weightName = `${name} weight`;
    const buffers: NamedBuffer[] =
      weight instanceof WeightOnlyGpuMatrix
        ? weight.namedBuffers(weightName)
        : weight instanceof GpuE8ResidueMatrix
          ? [[`${weightName}'s residues`, weight.residues], [`${weightName}'s sides`, weight.sides], [`${weightName}'s column side`, weight.columnSide]]
          : weight instanceof GpuE8PointMatrix
            ? [[`${weightName}'s points`, weight.points], [`${weightName}'s keys`, weight.keys], [`${weightName}'s column side`, weight.columnSide]]
            : weight instanceof GpuD3QuadMatrix
              ? [[`${weightName}'s quad codes`, weight.codes], [`${weightName}'s quad scale indices`, weight.indices], [`${weightName}'s column side`, weight.columnSide]]
              : latticeMatrixBuffers(weight, weightName);
    return this.ownsBias ? buffers : [...buffers, [`${name} bias`, this.bias]];
  }

  /** Bytes of y for `tokens` columns. */
  private outputBytes(tokens: number): number {
    return activationBytes(this.activations) * this.outFeatures * tokens;
  }

  /**
   * The randomized Hadamard rotation this layer's GEMV applies to x, or null: lattice weights (and
   * their residue form) with rotate, and weight-only weights with the 'hadamard' rotation (the quantizer's
   * `RandomizedHadamard(n, seed)`, which `dispatchHadamard` computes bit for bit for both kinds, so
   * layers of either kind with one n and seed read one x̃). Layers with equal `key`s share x̃.
   */
  private rotation(): { readonly rows: number; readonly length: number; readonly seed: number; readonly key: string } | null {
    const weight = this.weight;
    const described = (rows: number, length: number, seed: number) => ({ rows, length, seed, key: `${rows}/${length}/${seed}` });
    if (weight instanceof WeightOnlyGpuMatrix) return weight.rotation === 'hadamard' ? described(weight.n, weight.n, weight.seed) : null;
    return weight.rotate ? described(weight.rows, weight.length, weight.seed) : null;
  }

  /**
   * The x̃ rounding this layer's int8-input GEMV reads (layers with equal keys share one), or null
   * without `int8Inputs`.
   */
  private int8RoundingKey(): string | null {
    if (!this.int8Inputs) return null;
    if (this.quadForm !== null) return quadInputsKey(this.quadForm);
    return this.lattice === null ? null : inputsI8Key(this.lattice);
  }

  /**
   * The most tokens this layer's int8-input GEMV takes in one call: x̃ (from any offset) and its int8
   * levels and scales each within one storage binding (`largestInputsRhs`, `e8InputsRhsPerBinding`;
   * 8191 tokens at inFeatures = 4096 under WebGPU's default 128 MiB), and for a quad form x and y,
   * which it binds whole (`quadGemvBindingRhs`: 2340 tokens at outFeatures = 14336, 261 at 128256),
   * and a centred W's Σx, a workgroup per token. Infinity where the layer's GEMV takes any number:
   * f32 inputs, or weight-only weights (their GEMV splits its vectors itself).
   */
  private int8TokensPerCall(): number {
    if (!this.int8Inputs) return Infinity;
    const { device } = this;
    const form = this.quadForm;
    if (form === null) return this.lattice === null ? Infinity : largestInputsRhs(device, this.lattice);
    const rounding = form instanceof GpuD3QuadMatrix ? largestInputsRhs(device, d3QuadInputsOperand(form)) : e8InputsRhsPerBinding(device, form);
    const limits = device.limits;
    const product = quadGemvBindingRhs(form, this.readsX(), limits.maxStorageBufferBindingSize, limits.minStorageBufferOffsetAlignment);
    return Math.min(rounding, product, form.hasMeans ? limits.maxComputeWorkgroupsPerDimension : Infinity);
  }

  /**
   * The per-call sums this layer's GEMV reads (universal weights without `int8Inputs`:
   * `universalCallSumsKey`), or null — also when its product takes them itself (the fused form, W not
   * centred), which costs no dispatch.
   */
  private callSumsKey(): string | null {
    const weight = this.lattice;
    if (this.int8Inputs || weight === null || weight.mode !== 'universal') return null;
    if (fusedFinishSupported(this.device) && !weight.hasMeans) return null;
    return universalCallSumsKey(weight);
  }

  /**
   * Whether the GEMV reads x as f32: unrotated or centred lattice weights (Σx). Weight-only weights
   * read x in the activation format (their rotation or their GEMV widens f16 as it loads it).
   */
  private readsX(): boolean {
    const weight = this.weight;
    if (weight instanceof WeightOnlyGpuMatrix) return false;
    if (isQuadInt8Matrix(weight)) return !weight.rotate || weight.hasMeans;
    return !weight.rotate || (weight.mode === 'universal' ? weight.hasMeans : weight.means !== null);
  }

  /**
   * The GEMV into y, on x̃ = R·x (`xRotated`) or on x̃ rounded to int8 (`inputsI8`), both recorded for
   * the layers that read x, on x as f32 when the layer reads it (`readsX`; else null), or (weight-only
   * weights) on x in the activation format; every GEMV kernel adds the bias and writes the activation
   * format itself (GemvOutputArgs).
   */
  private recordGemv(encoder: GPUCommandEncoder, scratch: GpuScratch, x: Slice, inputFormat: ActivationFormat, xF32: Slice | null, xRotated: Slice | null, inputsI8: RecordedInputsI8 | null, callSums: RecordedCallSums | null, y: Slice, tokens: number): void {
    const rotatedInput = xRotated === null ? {} : { xRotated: xRotated.buffer, xRotatedOffset: xRotated.offset };
    const weight = this.weight;
    const bias = this.bias === null ? {} : { bias: this.bias, biasOffset: this.biasOffset, biasFormat: this.biasFormat };
    const output = { ...bias, outputFormat: this.activations, accumulate: this.accumulate };
    if (weight instanceof WeightOnlyGpuMatrix) {
      // On x̃ where the layer has a Hadamard rotation (recorded once for the group), else on x itself (unrotated weights).
      const input = xRotated === null ? { x: x.buffer, xOffset: x.offset, inputFormat } : { x: xRotated.buffer, xOffset: xRotated.offset, inputFormat: 'f32' as const, inputBasis: 'quantization' as const };
      weight.dispatch(encoder, scratch, { ...input, y: y.buffer, yOffset: y.offset, vectors: tokens, ...output, ...(this.int8Inputs ? { int8Inputs: this.int8DotPath } : {}) });
    } else {
      const f32Input = xF32 === null ? {} : { x: xF32.buffer, xOffset: xF32.offset };
      const io = { ...f32Input, y: y.buffer, yOffset: y.offset, rhs: tokens, ...rotatedInput, ...output };
      // A quad form (made by the layer, or the weight itself), else the lattice weight's GEMVs.
      const lattice = this.lattice;
      const quadForm = this.quadForm;
      if (quadForm !== null) {
        // recordLayers rounds x̃ for it (the call checks that they were rounded for this matrix).
        check(inputsI8 !== null, 'QuantizedLinear: the quad int8-input GEMVs are recorded with their rounded inputs');
        const quadArgs = { ...io, dotPath: this.int8DotPath, inputsI8 };
        if (quadForm instanceof GpuE8ResidueMatrix) dispatchE8ResidueGemvI8(this.device, encoder, scratch, { ...quadArgs, w: quadForm });
        else if (quadForm instanceof GpuE8PointMatrix) dispatchE8PointGemvI8(this.device, encoder, scratch, { ...quadArgs, w: quadForm });
        else dispatchD3QuadGemvI8(this.device, encoder, scratch, { ...quadArgs, w: quadForm });
      } else if (lattice !== null && this.int8Inputs) {
        const int8 = { ...io, dotPath: this.int8DotPath, ...(inputsI8 === null ? {} : { inputsI8 }) };
        if (this.int8Weights !== null) dispatchUniversalGemvI8(this.device, encoder, scratch, { ...int8, weights: this.int8Weights });
        // A D3 deterministic layer without a quad form: multiples past the quad table's byte.
        else if (lattice.mode === 'deterministic') dispatchLatticeGemvI8(this.device, encoder, scratch, { ...int8, w: lattice, ...this.columnSideArg() });
      } else if (lattice?.mode === 'universal') {
        dispatchUniversalGemv(this.device, encoder, scratch, { ...io, w: lattice, ...(callSums === null ? {} : { callSums }) });
      } else if (lattice !== null) {
        dispatchLatticeGemv(this.device, encoder, scratch, { ...io, w: lattice, ...this.columnSideArg() });
      }
    }
  }

  private columnSideArg(): { columnSide?: MatrixColumnSide } {
    return this.columnSide === null ? {} : { columnSide: this.columnSide };
  }

  /**
   * Records y_i = W_i·x + b_i for layers that read the same x (one layer, or a group) into `encoder`:
   * one rotation per distinct rotation (read straight from f16 activations), one int8 rounding per
   * distinct x̃ and grouping among the `int8Inputs` layers (the first of each rotation inside the
   * rotation's last pass where its last stage takes one: `dispatchRotatedInputsI8`,
   * `dispatchRotatedE8InputsI8`), one recording of the universal GEMV's
   * per-call sums per distinct x̃ and block layout among the other universal layers, x converted from
   * f16 to f32 only if a layer reads x itself, then each layer's GEMV. Scratch buffers go into
   * `scratch` (prepared commands keep it).
   *
   * An x in a buffer that a y shares (an arena of activations; the ranges may even overlap: y = W·x in
   * place) is first copied as f32 into scratch (`stageSharedInput`), and everything reads the copy: a
   * dispatch may not bind one buffer both for reading and for writing, even disjoint ranges of it.
   *
   * Where the tokens exceed what an int8-input layer's GEMV takes in one call (`int8TokensPerCall`:
   * x̃ beyond one binding, …), those layers are recorded per chunk of tokens, the others on all of them.
   */
  private static recordLayers(layers: readonly QuantizedLinear[], encoder: GPUCommandEncoder, scratch: GpuScratch, given: Slice, ys: readonly Slice[], tokens: number, label: string): void {
    const [first] = layers as [QuantizedLinear, ...QuantizedLinear[]];
    const { device, activations, inFeatures } = first;
    const shared = ys.some((y) => y.buffer === given.buffer);
    // Staged whole, before any output is written: y may overlap x (in place), also when split below.
    const x = shared ? stageSharedInput(device, encoder, scratch, given, activations, inFeatures * tokens, label) : given;
    // The format the layers read x in: the activations', or f32 once staged.
    const inputFormat: ActivationFormat = shared ? 'f32' : activations;
    // Each layer's limit once (Infinity where its GEMV takes any number of tokens).
    const perLayer = layers.map((layer) => layer.int8TokensPerCall());
    const perCall = perLayer.reduce((fewest, most) => Math.min(fewest, most), Infinity);
    if (perCall >= tokens) {
      QuantizedLinear.recordTokens(layers, encoder, scratch, x, inputFormat, ys, tokens, label);
      return;
    }
    // An int8-input GEMV cannot take all the tokens in one call (x̃, or a quad form's x or y, beyond
    // one binding; a centred quad form's Σx beyond one dispatch dimension): the int8-input layers run on
    // consecutive chunks of tokens (x and y windows at offsets), each within it, which gives the bits
    // of one call (every int8-input path gives the same bits at any batch size). The others run on all
    // the tokens at once, as alone (a deterministic f32-input layer's bits depend on the batch); a
    // rotation both read is then made twice.
    const chunked = layers.filter((_, i) => perLayer[i] !== Infinity);
    const whole = layers.filter((_, i) => perLayer[i] === Infinity);
    const outputOf = (layer: QuantizedLinear): Slice => ys[layers.indexOf(layer)] as Slice;
    if (whole.length > 0) QuantizedLinear.recordTokens(whole, encoder, scratch, x, inputFormat, whole.map(outputOf), tokens, label);
    // f16 windows start on a 4-byte word: an odd feature count splits at even tokens only.
    const odd = (inputFormat === 'f16' && inFeatures % 2 === 1) || (activations === 'f16' && chunked.some((layer) => layer.outFeatures % 2 === 1));
    const chunk = odd ? perCall - (perCall % 2) : perCall;
    // Only where a binding holds x̃ or y of one token with f16 activations of an odd width (every limit
    // is at least 1: a binding that holds no token's x̃ or y is refused by itemsPerBinding).
    check(
      chunk >= 1,
      () => `${label}: record at most ${perCall} token at a time (int8Inputs: x̃ or y of ${perCall} token fills one storage binding of ${device.limits.maxStorageBufferBindingSize} bytes, and f16 activations of an odd width split only at even tokens)`,
    );
    for (let start = 0; start < tokens; start += chunk) {
      const count = Math.min(chunk, tokens - start);
      const xPart = { buffer: x.buffer, offset: x.offset + activationBytes(inputFormat) * inFeatures * start };
      const yParts = chunked.map((layer) => ({ buffer: outputOf(layer).buffer, offset: outputOf(layer).offset + layer.outputBytes(start) }));
      QuantizedLinear.recordTokens(chunked, encoder, scratch, xPart, inputFormat, yParts, count, `${label} (tokens ${start}…${start + count - 1})`);
    }
  }

  /** `recordLayers` for `tokens` columns of x read in `inputFormat` (staged already where a y shares its buffer). */
  private static recordTokens(layers: readonly QuantizedLinear[], encoder: GPUCommandEncoder, scratch: GpuScratch, x: Slice, inputFormat: ActivationFormat, ys: readonly Slice[], tokens: number, label: string): void {
    const [first] = layers as [QuantizedLinear, ...QuantizedLinear[]];
    const { device, inFeatures } = first;
    let xF32: Slice | null = inputFormat === 'f16' ? null : x;
    const f32Input = (): Slice => {
      if (xF32 === null) {
        const staging = scratch.intermediate(`${label} x (f32)`, 4 * inFeatures * tokens, STORAGE_USAGE);
        dispatchF16ToF32(device, encoder, scratch, { input: x.buffer, inputOffset: x.offset, output: staging, count: inFeatures * tokens });
        xF32 = { buffer: staging, offset: 0 };
      }
      return xF32;
    };
    const rotated = new Map<string, Slice>();
    const rounded = new Map<string, RecordedInputsI8>();
    const summed = new Map<string, RecordedCallSums>();
    // Per rotation, the first int8-input layer that reads it: the rotation rounds x̃ for it in its
    // pass (in its groups: 12 for D3, 32 for the E8 residue GEMV; a layer of the other kind reading the
    // same x̃ rounds it in a dispatch of its own).
    const roundedInRotation = new Map<string, QuantizedLinear>();
    for (const layer of layers) {
      const key = layer.rotation()?.key;
      if (key !== undefined && layer.int8RoundingKey() !== null && !roundedInRotation.has(key)) roundedInRotation.set(key, layer);
    }
    layers.forEach((layer, i) => {
      const rotation = layer.rotation();
      const w = layer.lattice;
      let xRotated: Slice | null = null;
      let inputsI8: RecordedInputsI8 | null = null;
      const roundingKey = layer.int8RoundingKey();
      if (roundingKey !== null) inputsI8 = rounded.get(roundingKey) ?? null;
      if (rotation !== null) {
        const { key } = rotation;
        xRotated = rotated.get(key) ?? null;
        if (xRotated === null) {
          const buffer = scratch.intermediate(`${label} R·x (seed ${rotation.seed})`, 4 * rotation.length * tokens, STORAGE_USAGE);
          const int8Layer = roundedInRotation.get(key);
          const int8Operand = int8Layer === undefined ? null : (int8Layer.quadForm ?? int8Layer.lattice);
          if (int8Operand !== null) {
            // The rotation rounds to int8 in its own pass where it takes one (else two dispatches).
            const recorded = recordRotatedRounding(device, encoder, scratch, int8Operand, { x: x.buffer, xOffset: x.offset, inputFormat, xRotated: buffer, rhs: tokens });
            rounded.set(recorded.operand, recorded);
            if (roundingKey !== null) inputsI8 = rounded.get(roundingKey) ?? null;
          } else {
            dispatchHadamard(device, encoder, scratch, { input: x.buffer, inputOffset: x.offset, inputFormat, output: buffer, rows: rotation.rows, length: rotation.length, cols: tokens, seed: rotation.seed });
          }
          xRotated = { buffer, offset: 0 };
          rotated.set(key, xRotated);
        }
      }
      const int8Operand = layer.quadForm ?? w;
      if (roundingKey !== null && inputsI8 === null && int8Operand !== null) {
        const source = xRotated ?? f32Input();
        inputsI8 = recordRounding(device, encoder, scratch, int8Operand, { xRotated: source.buffer, xRotatedOffset: source.offset, rhs: tokens });
        rounded.set(roundingKey, inputsI8);
      }
      let callSums: RecordedCallSums | null = null;
      const sumsKey = layer.callSumsKey();
      if (sumsKey !== null && w !== null && w.mode === 'universal') {
        callSums = summed.get(sumsKey) ?? null;
        if (callSums === null) {
          const source = xRotated ?? f32Input();
          const x32 = w.hasMeans ? { x: f32Input().buffer, xOffset: f32Input().offset } : {};
          callSums = dispatchUniversalCallSums(device, encoder, scratch, { w, xRotated: source.buffer, xRotatedOffset: source.offset, ...x32, rhs: tokens });
          summed.set(sumsKey, callSums);
        }
      }
      layer.recordGemv(encoder, scratch, x, inputFormat, layer.readsX() ? f32Input() : null, inputsI8 === null ? xRotated : null, inputsI8, callSums, ys[i] as Slice, tokens);
    });
  }

  /** Prepared command sets currently kept (for tests and memory accounting). */
  get preparedCount(): number {
    return this.prepared.size;
  }

  /**
   * Resolves when nothing found while the layer was made spoils its outputs, and rejects, naming the
   * cause, when something did: the one such case is `int8Inputs` on universal E8 weights, repacked into
   * int8 lattice points, with a point beyond ±127, for a weight the GPU quantized (then every GEMV of
   * the layer writes NaN; the repack runs on the GPU, so `create` cannot know; a weight uploaded from
   * the host is refused by `create` itself). Every other layer resolves at once. Await it
   * once after `create`, while loading a model.
   *
   * @example
   * const layer = QuantizedLinear.create(device, w, { int8Inputs: dotPathFor(engine.features) });
   * await layer.check();
   */
  async check(): Promise<void> {
    check(!this.destroyed, () => `${this.label}: this QuantizedLinear was destroyed`);
    // A lost device runs nothing: every output is spoiled.
    throwIfDeviceLost(this.device, `${this.label}: check`);
    if (this.quadForm instanceof GpuE8PointMatrix) await this.quadForm.check();
  }

  /**
   * Frees the prepared commands, an uploaded bias, the int8-input form (or E8 residues) and the gathered column side (not
   * the weight). Idempotent. Call it only after the last submission of what the layer recorded has been
   * submitted (WebGPU keeps submitted work's buffers alive until it has run): commands recorded and
   * not yet submitted would make WebGPU reject their whole submission.
   */
  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    this.prepared.destroy();
    this.int8Weights?.destroy();
    // The layer's own repack, not a quad form given as the weight (which stays the caller's).
    if (this.quadForm !== this.weight) this.quadForm?.destroy();
    this.columnSide?.destroy();
    if (this.ownsBias) this.bias?.destroy();
  }
}

