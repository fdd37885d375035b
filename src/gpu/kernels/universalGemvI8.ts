import { throwIfDeviceLost } from '../errorScopes.js';
import { checkDispatch } from './dispatchChecks.js';
import dotPackedSource from '../../../shaders/dot_i8_packed.wgsl?raw';
import dotPlainSource from '../../../shaders/dot_i8_plain.wgsl?raw';
import nibblesSource from '../../../shaders/universal_escape_nibbles.wgsl?raw';
import gemvSource from '../../../shaders/universal_gemv_i8.wgsl?raw';
import lanesSource from '../../../shaders/universal_gemv_lanes.wgsl?raw';
import plainEntrySource from '../../../shaders/universal_gemv_plain.wgsl?raw';
import subgroupEntrySource from '../../../shaders/universal_gemv_subgroup.wgsl?raw';
import { check, checkLabel, checkOneOf, counted, LatticeMatmulError } from '../../errors.js';
import { checkOptionsObject } from '../../quantize/strictOptions.js';
import type { Matrix } from '../../matrix.js';
import { gpuEscapes, packEscapeBits } from '../../format/universalLayout.js';
import { latticeSpec, universalCodec, type LatticeSpec } from '../../quantize/latticeSpec.js';
import type { UniversalLatticeMatrix } from '../../quantize/quantizedMatrix.js';
import type { UniversalLatticeScheme } from '../../quantize/schemes.js';
import { createBuffer, STORAGE_USAGE } from '../buffers.js';
import { columnRanges, checkMatrixUsable } from '../latticeOperand.js';
import { createKernelBindGroup, createKernelPipeline, KernelPipelines, windowBinding } from '../pipelines.js';
import { GpuScratch } from '../scratch.js';
import { UniformLayout } from '../uniformLayout.js';
import { checkGpuUniversalMatrix, universalDitherUnit, type GpuUniversalMatrix } from '../universalOperand.js';
import { bindingWindow, itemsPerBinding, workgroupGrid, type BindingWindow } from '../workSplit.js';
import { DOT_PATHS, type DotPath } from './e8Matmul.js';
import { gemvDecodeWgsl } from './gemvDecode.js';
import { activationBytes } from './activationIo.js';
import { checkCodeQuads, codeQuadColumnsPerBinding, codeQuadWindow, gemvI8CommonWgsl, i8LeaderTable, I8_WORKGROUP_COLUMNS, quadAlignment, type LeaderCopies, type LeaderTable, type LeaderTableArgs } from './gemvI8Common.js';
import { GEMV_OUTPUT_ARG_KEYS, GEMV_OUTPUT_MEMBERS, GEMV_CALL_ARG_KEYS, gemvOnHost, gemvOutputFormat, resolveGemvOutput, type GemvCallArgs, type GemvOutputArgs } from './gemvCall.js';
import { beginGemvI8, d3InputsI8Form, inputGroupsOf, inputRangesI8, inputsI8ForRange, type SharedInputsI8Arg } from './inputsI8.js';
import { pointFactorWgsl, recordUniversalGemvFinish } from './universalGemv.js';
import { blockHashInputWgsl, UNIVERSAL_OPERAND_MEMBERS, universalEscapeTableWgsl, universalOperandWindows } from './universalWgsl.js';

/*
 * The int8-input universal GEMV: Y = ŴᵀX for a universal D3 matrix with 8-bit codes (d3-q6), with x̃
 * rounded to int8 per group of 12 coordinates and the products taken with packed 8-bit dot products
 * (dot4I8Packed where WGSL has it) — llama.cpp's and ONNX Runtime's way of making a low-bit GEMV cheap
 * in instructions. Opt-in: it adds the error of rounding x̃, at most
 *     |Δy_j| ≤ (½ + 2·10⁻⁴)·Σ_g s_g·Σ_{k∈g} |ŵ̃_jk|,   s_g = max_{k∈g} |x̃_k| / 127
 * (ŵ̃_j the rotated decode of column j, g the groups of 12 rotated coordinates; the 2·10⁻⁴ covers the
 * GPU's f32 division), and ≈ s_g²/12 per coordinate but the group's largest where x̃'s rounding
 * residues are spread as Gaussian data's are: ≈ 2·10⁻⁵ of ‖ŵ‖²‖x‖² in NMSE, against d3-q6's own 0.05.
 * The rounding is a deterministic function of x: an x whose residues take one sign along a column
 * reaches the bound (README, "Int8 inputs" under "Layers for models"). So it is not the library's exact product.
 *
 * Pieces:
 *   - `UniversalGemvI8Weights.create` repacks W's escapes once into a nibble per block
 *     (shaders/universal_escape_nibbles.wgsl; CPU twin `escapeNibbles`): the kernel then reads
 *     8 + 4 bits per block and does no escape bookkeeping. The weights object owns that buffer.
 *   - per call: x̃ = R·X (as the f32 GEMV), x̃ to int8 (inputsI8.ts: shaders/gemv_i8_inputs.wgsl; CPU
 *     twin `quantizeInputsI8`), Σx when W is centred (the f32 GEMV's `call_sums`), then the product
 *     (shaders/universal_gemv_i8.wgsl), which writes Y itself: T holds the whole dither term, so the
 *     f32 GEMV's finishing pass is not needed (per call: the rotation, x̃ to int8, the product). With
 *     `inputsI8` (x̃ rounded once by `dispatchInputsI8` for the layers that read it) the call is the
 *     product alone. The product also adds a bias, writes f16 and adds to Y's old values when asked (`GemvOutputArgs`,
 *     gemvI8Common.ts): a QuantizedLinear's epilogue without a pass of its own.
 * The product shader's header comment counts instructions per code byte (≈ 34, or 23 per byte of codes
 * and nibbles, against ≈ 70 for the f32-input kernel).
 */


/** Nibble value of a non-root escape (NONROOT_NIBBLE of shaders/universal_escape_nibbles.wgsl and shaders/universal_gemv_i8.wgsl). */
export const UNIVERSAL_NONROOT_NIBBLE = 15;

/** Invocations per workgroup of shaders/universal_escape_nibbles.wgsl: one per code word. */
export const ESCAPE_NIBBLES_THREADS = 256;

/** Entries of the product's root_steps table (STEP_ENTRIES of shaders/universal_gemv_i8.wgsl): one per nibble value. */
export const UNIVERSAL_I8_ROOT_STEPS = 16;

/** Right-hand sides per tile: the compile-time variants. */
type RhsTile = 1 | 8;

/**
 * Why `scheme` cannot use the int8-input GEMV, or null when it can: a universal D3 scheme with 8-bit
 * codes (q = 6, i.e. d3-q6), whose leaders plus q·root fit int8 and whose roots fit a nibble.
 *
 * @example
 * int8InputsUnsupported(SCHEMES['d3-q6'] as UniversalLatticeScheme); // null
 */
export function int8InputsUnsupported(scheme: UniversalLatticeScheme): string | null {
  if (scheme.lattice !== 'D3') return `the universal int8-input GEMV reads D3 codes (d3-q6); this scheme is universal ${scheme.lattice} (universal E8 takes int8 inputs through the point GEMV: GpuE8PointMatrix, dispatchE8PointGemvI8)`;
  const codec = universalCodec('D3', scheme.q, scheme.beta);
  if (codec.codeBits !== 8) return `the int8-input GEMV reads 8-bit D3 codes (q = 6); q = ${scheme.q} has ${codec.codeBits}-bit codes`;
  // Leaders lie in q·V(D3) ⊂ [−q, q]³, roots in [−1, 1]³: |leader + q·root| ≤ 2q.
  if (2 * scheme.q > 127 || codec.spec.escapes.rootCount >= UNIVERSAL_NONROOT_NIBBLE) return `q = ${scheme.q} does not fit the int8 tables`;
  return null;
}

// A pure IIFE, not a pure `new`: bundlers keep an argument with a spread (it may run getters).
const Params = /*#__PURE__*/ (() => new UniformLayout('UniversalGemvI8Params', {
  ...UNIVERSAL_OPERAND_MEMBERS,
  cols: 'u32', // W columns in this dispatch
  total_cols: 'u32', // Y's column stride
  rhs: 'u32', // right-hand sides in this dispatch
  nibbles_first: 'u32', // vec2 of the nibbles binding that holds code quad 0's nibbles (codeQuadNibbleWindow)
  y_first: 'u32', // element (f32) or half (f16) of Y[first column of the dispatch, first rhs] in its binding
  x_codes_first: 'u32', // vec4 of x̂[group 0, first rhs] in its binding
  x_scales_first: 'u32', // u32 of the scale of x̂[group 0, first rhs] in the same binding
  ...GEMV_OUTPUT_MEMBERS,
  has_means: 'u32',
  subgroup_test_mode: 'u32', // subgroup variant only: 1 forces its fallback, 2 poisons the fallback
  unit: 'f32', // β / (DITHER_GRID · √N)
}))();

const NibbleParams = /*#__PURE__*/ (() => new UniformLayout('EscapeNibbleParams', {
  ...UNIVERSAL_OPERAND_MEMBERS,
  cols: 'u32',
  code_word_first: 'u32', // code word (of the whole buffer) of the dispatch's first column
  nibbles_first: 'u32', // word of the nibbles binding that holds nibble word code_word_first / 2
}))();

/**
 * Nibble words of a matrix of `codeWords` code words in all: 16 bits beside each code word (its 4
 * blocks), the codes' quads rounded up, so the nibbles of every quad a GEMV binds exist.
 */
function nibbleWordsOf(codeWords: number): number {
  return 2 * Math.ceil(codeWords / 4);
}

/**
 * The nibbles of the code quads bound by `codes` (a `codeQuadWindow`): a binding of whole vec2 (8
 * bytes: a quad's four halves) and the vec2 that holds quad 0's nibbles.
 */
function codeQuadNibbleWindow(codes: BindingWindow, alignment: number): { window: BindingWindow; first: number } {
  // The codes' binding starts at code word codes.offset / 4 (a multiple of 4), whose nibbles are in word codes.offset / 8.
  const window = bindingWindow(codes.offset / 2, codes.size / 2, quadAlignment(alignment));
  return { window, first: window.firstElement / 2 };
}

/** The generated header of the product kernel: constants, the block hash and the dither split into packed lanes and the rest. */
export function universalGemvI8Header(spec: LatticeSpec, q: number): string {
  const { words, fields } = spec.dither;
  check(words === 1 && spec.dimension <= 4, () => `int8-input gemv: ${spec.name}'s dither does not fit one hash word and 4 lanes`);
  let mask = 0;
  let flip = 0;
  const rest: string[] = [];
  fields.forEach((field, v) => {
    const offset = 2 ** (field.bits - 1);
    if (field.bits === 8 && field.shift === 8 * v) {
      // Z = byte − 128: the byte read as i8 once its top bit is flipped.
      mask += 0xff * 2 ** (8 * v);
      flip += 0x80 * 2 ** (8 * v);
    } else {
      rest.push(`(i32(extractBits(h, ${field.shift}u, ${field.bits}u)) - ${offset}) * i8_lane(xw, ${v}u)`);
    }
  });
  return [
    `// Generated for ${spec.name}, q = ${q} by universalGemvI8Header (src/gpu/kernels/universalGemvI8.ts).`,
    pointFactorWgsl(spec),
    `const LEADER_COUNT: u32 = ${q ** spec.dimension}u;`,
    `const ROOT_COUNT: u32 = ${spec.escapes.rootCount}u;`,
    '// The hash words of a group\'s blocks (block_dither of universalWgsl.ts reads their fields). Block',
    '// first + t hashes to mix32(key ^ (first + t)) (blockHashWgsl, one hash word). With `first` a multiple',
    '// of GROUP_BLOCKS (4) and t < 4, first + t = first ^ t, and its bits from 16 up do not depend on t, so',
    '// mix32\'s first xorshift is done once per group: the hash is mix32_rest(group_hash_base(key, first) ^ t).',
    'const_assert GROUP_BLOCKS <= 65536u && (GROUP_BLOCKS & (GROUP_BLOCKS - 1u)) == 0u;',
    'fn group_hash_base(key: u32, block: u32) -> u32 {',
    `  let v = ${blockHashInputWgsl(words, 0, 'key')};`,
    '  return v ^ (v >> 16u);',
    '}',
    'fn block_hash_in_group(base: u32, t: u32) -> u32 {',
    '  return mix32_rest(base ^ t);',
    '}',
    '// The dither coordinates held in whole bytes of the hash, as packed i8 lanes (Z_v in lane v).',
    'fn dither_lanes(h: u32) -> u32 {',
    `  return (h ^ 0x${flip.toString(16)}u) & 0x${mask.toString(16)}u;`,
    '}',
    '// Σ Z_v·x̂_v over the other coordinates.',
    'fn dither_rest(h: u32, xw: u32) -> i32 {',
    `  return ${rest.length > 0 ? rest.join(' + ') : '0'};`,
    '}',
    '',
  ].join('\n');
}

/** A compiled product variant. */
interface Variant {
  readonly q: number;
  readonly rhsTile: RhsTile;
  readonly subgroups: boolean;
  readonly dotPath: DotPath;
  readonly leaderTable: LeaderTable;
}

/** Workgroup memory of the kernel's own table besides the leaders and the lanes: root_steps (u32). */
const ROOT_STEP_BYTES = 4 * UNIVERSAL_I8_ROOT_STEPS;

/**
 * The kernel's default leader-table copies: 8, not the 16 of the deterministic one. Timed on an NVIDIA
 * H200 at 8192 × 28672 in two runs (bench/results/nvidia-h200-2026-12-04-warm.md and …-f16.md), the
 * kernel alone took 214 µs with 8 copies against 262 with 16 (1.22×; 71.5 against 87.0 µs at 8192²),
 * while the deterministic kernel was faster with 16 (80.7 against 85.6 µs).
 */
export const UNIVERSAL_I8_DEFAULT_LEADER_COPIES: LeaderCopies = 8;

/**
 * The leader table the kernel keeps on a device with `workgroupBytes` of workgroup memory
 * (`i8LeaderTable` beside the kernel's root steps; UNIVERSAL_I8_DEFAULT_LEADER_COPIES unless asked).
 *
 * @example
 * universalGemvI8LeaderTable(6, 1, 32768); // { copies: 8, entries: 216 }
 * universalGemvI8LeaderTable(6, 1, 32768, { padLeaderTable: true }); // { copies: 8, entries: 256 }
 * universalGemvI8LeaderTable(6, 1, 32768, { leaderCopies: 32, padLeaderTable: true }); // { copies: 32, entries: 216 } (32 768 bytes would not fit)
 */
export function universalGemvI8LeaderTable(q: number, rhsTile: RhsTile, workgroupBytes: number, args: LeaderTableArgs = {}): LeaderTable {
  return i8LeaderTable(q ** 3, rhsTile, ROOT_STEP_BYTES, workgroupBytes, args, UNIVERSAL_I8_DEFAULT_LEADER_COPIES);
}

/**
 * The WGSL of one product variant.
 *
 * @example
 * universalGemvI8ShaderSource({ q: 6, rhsTile: 1, subgroups: false, dotPath: 'packed', leaderTable: { copies: 8, entries: 216 } });
 */
export function universalGemvI8ShaderSource(variant: Variant): string {
  const spec = latticeSpec('D3');
  return [
    variant.subgroups ? 'enable subgroups;' : '',
    `const RHS_TILE: u32 = ${variant.rhsTile}u;`,
    Params.wgsl(),
    variant.dotPath === 'packed' ? dotPackedSource : dotPlainSource,
    universalEscapeTableWgsl(spec),
    universalGemvI8Header(spec, variant.q),
    gemvDecodeWgsl('D3', variant.q),
    lanesSource,
    gemvI8CommonWgsl(variant.leaderTable),
    gemvSource,
    variant.subgroups ? subgroupEntrySource : plainEntrySource,
  ].join('\n');
}

const pipelines = /*#__PURE__*/ new KernelPipelines({
  label: 'universal gemv (int8 inputs)',
  bindings: [
    'uniform',
    'read-only-storage', // codes
    'read-only-storage', // escape nibbles
    'read-only-storage', // escape table
    'read-only-storage', // x̂ levels and scales
    'read-only-storage', // norms and means
    'read-only-storage', // per-call sums (Σx)
    'read-only-storage', // bias
    'storage', // Y
  ],
  compile: (device, pipelineLayout, variant: Variant) =>
    createKernelPipeline(device, pipelineLayout, {
      label: `universal gemv (int8 inputs, ${variant.dotPath} dot) D3 q = ${variant.q}, ${counted(variant.rhsTile, 'right-hand side')} per tile, ${variant.leaderTable.copies} leader table copies of ${variant.leaderTable.entries} entries${variant.subgroups ? ', subgroups' : ''}`,
      code: universalGemvI8ShaderSource(variant),
    }),
  key: (variant) => `${variant.q}/${variant.rhsTile}/${variant.subgroups}/${variant.dotPath}/${variant.leaderTable.copies}/${variant.leaderTable.entries}`,
});

/** The WGSL of the escape repack (shaders/universal_escape_nibbles.wgsl with its parameters). */
export function escapeNibblesShaderSource(): string {
  return `${NibbleParams.wgsl()}\n${nibblesSource}`;
}

const nibblePipelines = /*#__PURE__*/ new KernelPipelines({
  label: 'universal escape nibbles',
  bindings: ['uniform', 'read-only-storage', 'read-only-storage', 'read-only-storage', 'storage'],
  compile: (device, pipelineLayout) => createKernelPipeline(device, pipelineLayout, { label: 'universal escape nibbles', code: escapeNibblesShaderSource() }),
});

/**
 * A universal d3-q6 matrix on the GPU prepared for the int8-input GEMV: the matrix (still the
 * caller's) and its escapes repacked as a nibble per block (owned: `destroy()` frees them).
 *
 * @example
 * const weights = UniversalGemvI8Weights.create(device, gpuW);
 * dispatchUniversalGemvI8(device, encoder, scratch, { weights, x, y, rhs: 1, dotPath: dotPathFor(engine.features) });
 * // … later
 * weights.destroy();
 */
export class UniversalGemvI8Weights {
  private destroyed = false;

  private constructor(
    readonly w: GpuUniversalMatrix,
    /**
     * `nibbleWords` u32 beside the codes: half c mod 2 of word c / 2 belongs to code word c of the
     * codes buffer (group g of column j: c = j·codeWords + g), and its nibble i describes the escape
     * of that group's block i (shaders/universal_escape_nibbles.wgsl).
     */
    readonly nibbles: GPUBuffer,
    readonly nibbleWords: number,
  ) {}

  /**
   * Repacks `w`'s escapes on the GPU (one submit on `device.queue`, ordered before any later submit).
   * Throws when the scheme has no int8-input GEMV (see {@link int8InputsUnsupported}).
   */
  static create(device: GPUDevice, w: GpuUniversalMatrix, label = 'universal gemv int8 weights'): UniversalGemvI8Weights {
    checkLabel(label, 'UniversalGemvI8Weights.create');
    throwIfDeviceLost(device, 'UniversalGemvI8Weights.create');
    const layout = checkGpuUniversalMatrix(w, 'W');
    checkMatrixUsable(w, device, 'UniversalGemvI8Weights.create: W', 'weights');
    const why = int8InputsUnsupported(w.scheme);
    if (why !== null) throw new LatticeMatmulError(`UniversalGemvI8Weights: ${why}`);
    const nibbleWords = nibbleWordsOf(layout.codeWords * w.cols);
    // Zeroed at creation: the repack or-s each code word's half into it.
    const nibbles = createBuffer(device, `${label}: escape nibbles`, 4 * nibbleWords, STORAGE_USAGE);
    const alignment = device.limits.minStorageBufferOffsetAlignment;
    const maxBinding = device.limits.maxStorageBufferBindingSize;
    const maxGroups = device.limits.maxComputeWorkgroupsPerDimension;
    const perBinding = Math.min(
      itemsPerBinding(4 * layout.codeWords, maxBinding, alignment),
      itemsPerBinding(4 * layout.bitWords, maxBinding, alignment),
      // A range's nibbles: 2 bytes per code word, and up to 4 more for the halves at its ends.
      itemsPerBinding(2 * layout.codeWords, maxBinding - 4, alignment),
    );
    const { layout: bindGroupLayout, pipeline } = nibblePipelines.get(device, undefined);
    const scratch = new GpuScratch(device);
    const encoder = device.createCommandEncoder({ label: `${label}: repack escapes` });
    const pass = encoder.beginComputePass({ label: `${label}: repack escapes` });
    pass.setPipeline(pipeline);
    for (const range of columnRanges(w.cols, perBinding)) {
      const windows = universalOperandWindows(w, layout, range.first, range.count, alignment);
      const firstWord = layout.codeWords * range.first;
      const endWord = firstWord + layout.codeWords * range.count;
      const nibbleWindow = bindingWindow(4 * Math.floor(firstWord / 2), 4 * (Math.ceil(endWord / 2) - Math.floor(firstWord / 2)), alignment);
      const rangeLabel = `${label}: escape nibbles of columns ${range.first}…${range.first + range.count - 1}`;
      const params = NibbleParams.pack({ ...windows.uniforms, cols: range.count, code_word_first: firstWord, nibbles_first: nibbleWindow.firstElement });
      const [, bits, starts, ids] = windows.bindings;
      pass.setBindGroup(
        0,
        createKernelBindGroup(device, bindGroupLayout, rangeLabel, [
          { buffer: scratch.uniform(`${rangeLabel} params`, params) },
          bits as GPUBufferBinding,
          starts as GPUBufferBinding,
          ids as GPUBufferBinding,
          windowBinding(nibbles, nibbleWindow),
        ]),
      );
      const [gx, gy] = workgroupGrid(Math.ceil((range.count * layout.codeWords) / ESCAPE_NIBBLES_THREADS), maxGroups);
      pass.dispatchWorkgroups(gx, gy);
    }
    pass.end();
    device.queue.submit([encoder.finish()]);
    scratch.destroy();
    return new UniversalGemvI8Weights(w, nibbles, nibbleWords);
  }

  /** Frees the nibble buffer (not the matrix). Idempotent. */
  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    this.nibbles.destroy();
  }

  /** Whether `destroy()` ran. */
  get isDestroyed(): boolean {
    return this.destroyed;
  }
}

/** Arguments of {@link dispatchUniversalGemvI8}: those of the f32 GEMV (`dispatchUniversalGemv`) with prepared weights instead of `w`. */
export interface UniversalGemvI8Args extends GemvCallArgs, SharedInputsI8Arg, GemvOutputArgs, LeaderTableArgs {
  readonly weights: UniversalGemvI8Weights;
  /** 'packed': dot4I8Packed (only where WGSL has packed_4x8_integer_dot_product: `dotPathFor(features)`); 'plain': core WGSL. */
  readonly dotPath: DotPath;
}

/** The keys of {@link UniversalGemvI8Args}: dispatchUniversalGemvI8 refuses any other (a misspelt option must not run on its default). */
const UNIVERSAL_GEMV_I8_ARG_KEYS = [...GEMV_CALL_ARG_KEYS, ...GEMV_OUTPUT_ARG_KEYS, 'inputsI8', 'leaderCopies', 'padLeaderTable', 'weights', 'dotPath'] as const satisfies readonly (keyof UniversalGemvI8Args)[];

/**
 * Records Y = ŴᵀX with int8 inputs into `encoder`: x̃ = R·X (when W is rotated) and x̃ to int8 (unless
 * `inputsI8` gives them; inside the rotation's last pass where it can be: `beginGemvI8`), Σx (when W is
 * centred), the product. Scratch buffers go into `scratch`
 * (destroy it after submitting, or record through prepared commands).
 *
 * @example
 * const weights = UniversalGemvI8Weights.create(device, gpuW);
 * const scratch = new GpuScratch(device);
 * const encoder = device.createCommandEncoder();
 * dispatchUniversalGemvI8(device, encoder, scratch, { weights, x, y, rhs: 1, dotPath: 'packed' });
 * device.queue.submit([encoder.finish()]);
 * scratch.destroy();
 */
export function dispatchUniversalGemvI8(device: GPUDevice, encoder: GPUCommandEncoder, scratch: GpuScratch, args: UniversalGemvI8Args): void {
  checkDispatch(device, encoder, scratch, args, 'dispatchUniversalGemvI8');
  checkOptionsObject(args, UNIVERSAL_GEMV_I8_ARG_KEYS, 'dispatchUniversalGemvI8 arguments');
  const { weights } = args;
  check(weights instanceof UniversalGemvI8Weights, 'universal gemv (int8 inputs): weights must come from UniversalGemvI8Weights.create');
  check(!weights.isDestroyed, 'universal gemv (int8 inputs): these weights were destroyed');
  checkOneOf(args.dotPath, DOT_PATHS, 'universal gemv (int8 inputs): dotPath');
  const w = weights.w;
  const what = 'universal gemv (int8 inputs)';
  const layout = checkGpuUniversalMatrix(w, 'W');
  const format = gemvOutputFormat(args, what);
  // x̂ given, or rounded inside the rotation's last pass where it can be; else undefined: rounded per range below.
  const { call, shared } = beginGemvI8(device, encoder, scratch, w, args, what, { yBytes: activationBytes(format), sumsX: w.hasMeans }, d3InputsI8Form(device, encoder, scratch, w));
  const { cols, rhs, alignment, maxBinding, maxGroups, subgroups, testMode } = call;
  const output = resolveGemvOutput(device, scratch, args, format, cols, what);
  const groups = layout.codeWords;
  check(groups === inputGroupsOf(w), () => `${what}: ${groups} code words per column, expected one per 4 blocks`);
  checkCodeQuads(w.codes, groups * cols, what);
  const rhsTile: RhsTile = rhs === 1 ? 1 : 8;
  const rhsRanges = inputRangesI8(call, groups);
  const columnRangeList = columnRanges(
    cols,
    // The nibbles' binding is half the codes'.
    Math.min(codeQuadColumnsPerBinding(4 * groups, maxBinding, alignment), maxGroups * I8_WORKGROUP_COLUMNS),
  );
  const leaderTable = universalGemvI8LeaderTable(w.scheme.q, rhsTile, device.limits.maxComputeWorkgroupStorageSize, args);
  const { layout: bindGroupLayout, pipeline } = pipelines.get(device, { q: w.scheme.q, rhsTile, subgroups, dotPath: args.dotPath, leaderTable });
  const unit = universalDitherUnit(w);

  const pass = encoder.beginComputePass({ label: what });
  for (const rhsRange of rhsRanges) {
    const rhsLabel = `right-hand sides ${rhsRange.first}…${rhsRange.first + rhsRange.count - 1}`;
    const xWindow = call.xWindow(rhsRange.first, rhsRange.count);
    const yWindow = output.yWindow(rhsRange.first, rhsRange.count);
    const inputs = inputsI8ForRange(device, pass, scratch, call, w, shared, rhsRange, `${what} x̃ to int8, ${rhsLabel}`);

    // Σx for the means (sums[rhs + r]); without means the kernel does not read it.
    const sums = w.hasMeans
      ? recordUniversalGemvFinish(device, pass, scratch, {
          w,
          layout,
          uniforms: {
            total_cols: cols,
            rows: call.rows,
            kept: w.keptLength,
            full_blocks: 0,
            full_groups: 0,
            rhs: rhsRange.count,
            // With dither_offsets 0 the sums pass reads X only (for Σx); X is bound in x̃'s place too.
            x_rotated_first: xWindow.firstElement,
            x_stride: call.rows,
            x_first: xWindow.firstElement,
            has_means: 1,
            dither_offsets: 0,
            subgroup_test_mode: 0,
            unit,
          },
          rhs: rhsRange.count,
          rhsLabel,
          xRotated: xWindow.binding,
          x: xWindow.binding,
          // Not written by the sums pass.
          y: yWindow.binding,
          yFirst: yWindow.first,
          passes: 'sums',
        })
      : scratch.buffer(`${what} no sums (${rhsLabel})`, 4, STORAGE_USAGE);
    pass.setPipeline(pipeline);
    for (const columnRange of columnRangeList) {
      const windows = universalOperandWindows(w, layout, columnRange.first, columnRange.count, alignment);
      const codeWindow = codeQuadWindow(groups, columnRange.first, columnRange.count, alignment);
      const nibbles = codeQuadNibbleWindow(codeWindow, alignment);
      const label = `${what} W columns ${columnRange.first}…${columnRange.first + columnRange.count - 1}, ${rhsLabel}`;
      const params = Params.pack({
        ...windows.uniforms,
        cols: columnRange.count,
        total_cols: cols,
        rhs: rhsRange.count,
        code_first: codeWindow.firstElement,
        nibbles_first: nibbles.first,
        y_first: yWindow.first + columnRange.first,
        x_codes_first: inputs.codesFirst,
        x_scales_first: inputs.scalesFirst,
        ...output.uniforms(columnRange.first),
        has_means: w.hasMeans ? 1 : 0,
        subgroup_test_mode: testMode,
        unit,
      });
      const [, , , , table] = windows.bindings;
      pass.setBindGroup(
        0,
        createKernelBindGroup(device, bindGroupLayout, label, [
          { buffer: scratch.uniform(`${label} params`, params) },
          windowBinding(w.codes, codeWindow),
          windowBinding(weights.nibbles, nibbles.window),
          table as GPUBufferBinding,
          inputs.binding,
          { buffer: w.side },
          { buffer: sums },
          output.bias,
          yWindow.binding,
        ]),
      );
      pass.dispatchWorkgroups(Math.ceil(columnRange.count / I8_WORKGROUP_COLUMNS));
    }
  }
  pass.end();
  call.checkNonFiniteTail(format);
}

/** Options of {@link universalGemvI8}. */
export type UniversalGemvI8Options = Pick<UniversalGemvI8Args, 'maxBindingBytes' | 'subgroups' | 'subgroupTestMode' | 'dotPath' | 'leaderCopies' | 'padLeaderTable'>;

/** The keys of {@link UniversalGemvI8Options}: the host GEMV refuses any other (one is forwarded to the dispatch, where `outputFormat: 'f16'` would make Y unreadable). */
const UNIVERSAL_GEMV_I8_OPTION_KEYS = ['maxBindingBytes', 'subgroups', 'subgroupTestMode', 'dotPath', 'leaderCopies', 'padLeaderTable'] as const satisfies readonly (keyof UniversalGemvI8Options)[];

/**
 * Y = ŴᵀX with int8 inputs for X given on the CPU: uploads X, records the GEMV, reads Y back. For tests
 * and benchmarks.
 *
 * @example
 * const weights = UniversalGemvI8Weights.create(device, uploadUniversalMatrix(device, quantize(w, { scheme: 'd3-q6' })));
 * const y = await universalGemvI8(device, weights, x, { dotPath: 'packed' });
 */
export async function universalGemvI8(device: GPUDevice, weights: UniversalGemvI8Weights, x: Matrix | Float32Array, options: UniversalGemvI8Options): Promise<Matrix> {
  checkOptionsObject(options, UNIVERSAL_GEMV_I8_OPTION_KEYS, 'universalGemvI8 options');
  return gemvOnHost(device, 'universal gemv (int8 inputs)', weights.w, x, options, (run, io, given) => dispatchUniversalGemvI8(device, run.encoder, run.scratch, { ...given, ...io, weights }));
}

/**
 * CPU twin of shaders/universal_escape_nibbles.wgsl: the escape nibble words of a universal D3 matrix,
 * laid out beside its codes (half c mod 2 of word c / 2 for code word c = j·codeWords + g, nibble i of
 * it for block 4g + i of column j; 0 none, 1 + root index, 15 non-root).
 *
 * @example
 * escapeNibbles(quantize(w, { scheme: 'd3-q6' }));
 */
export function escapeNibbles(m: UniversalLatticeMatrix): Uint32Array {
  const escapes = gpuEscapes(m);
  const bits = packEscapeBits(m);
  const blocks = m.blocksPerColumn;
  const bitWords = Math.ceil(blocks / 32);
  const codeWords = inputGroupsOf(m);
  const out = new Uint32Array(nibbleWordsOf(codeWords * m.cols));
  for (let j = 0; j < m.cols; j++) {
    for (let b = 0; b < blocks; b++) {
      const wordIndex = j * bitWords + (b >>> 5);
      const word = bits[wordIndex] as number;
      const bit = b & 31;
      if (((word >>> bit) & 1) === 0) continue;
      const below = word & ((2 ** bit - 1) >>> 0);
      let slot = escapes.escapeStarts[wordIndex] as number;
      for (let t = below; t !== 0; t &= t - 1) slot++;
      const id = ((escapes.escapeIds[slot >>> 2] as number) >>> ((slot & 3) * 8)) & 0xff;
      const nibble = id === 0 ? UNIVERSAL_NONROOT_NIBBLE : id;
      const codeWord = j * codeWords + (b >>> 2);
      const at = codeWord >>> 1;
      out[at] = ((out[at] as number) | (nibble << (16 * (codeWord & 1) + 4 * (b & 3)))) >>> 0;
    }
  }
  return out;
}

