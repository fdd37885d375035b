import { checkDispatch } from './dispatchChecks.js';
import gemvSource from '../../../shaders/universal_gemv.wgsl?raw';
import lanesSource from '../../../shaders/universal_gemv_lanes.wgsl?raw';
import finishSource from '../../../shaders/universal_gemv_finish.wgsl?raw';
import finishedSource from '../../../shaders/universal_gemv_finished.wgsl?raw';
import partialSumsSource from '../../../shaders/partial_sums.wgsl?raw';
import totalsSource from '../../../shaders/universal_gemv_totals.wgsl?raw';
import plainEntrySource from '../../../shaders/universal_gemv_plain.wgsl?raw';
import subgroupEntrySource from '../../../shaders/universal_gemv_subgroup.wgsl?raw';
import { check, checkPositiveInteger, counted } from '../../errors.js';
import { checkOptionalBoolean, checkOptionsObject } from '../../quantize/strictOptions.js';
import type { Matrix } from '../../matrix.js';
import { DITHER_GRID, latticeSpec, universalCodec, type LatticeName, type LatticeSpec } from '../../quantize/latticeSpec.js';
import { STORAGE_USAGE } from '../buffers.js';
import { columnRanges } from '../latticeOperand.js';
import { createKernelBindGroup, createKernelPipeline, KernelPipelines, storageBufferCount, windowBinding } from '../pipelines.js';
import type { GpuScratch } from '../scratch.js';
import { UniformLayout } from '../uniformLayout.js';
import { checkGpuUniversalMatrix, universalDitherUnit, type GpuUniversalMatrix, type UniversalOperandLayout } from '../universalOperand.js';
import { bindingCap, bindingWindow, itemsPerBinding, workgroupGrid } from '../workSplit.js';
import { checkBufferRange } from '../bufferRange.js';
import { gemvDecodeWgsl } from './gemvDecode.js';
import { activationBytes } from './activationIo.js';
import { GEMV_OUTPUT_ARG_KEYS, GEMV_OUTPUT_MEMBERS, NO_GEMV_OUTPUT_UNIFORMS, GEMV_CALL_ARG_KEYS, beginGemv, GEMV_OUTPUT_WGSL, gemvOnHost, gemvOutputFormat, resolveGemvOutput, type GemvCallArgs, type GemvOutput, type GemvOutputArgs } from './gemvCall.js';
import { blockHashWgsl, UNIVERSAL_OPERAND_BINDINGS, UNIVERSAL_OPERAND_MEMBERS, universalColumnsPerBinding, universalDecodeWgsl, universalOperandWindows } from './universalWgsl.js';

/*
 * Weight-only products with universal lattice codes on the GPU: Y = ŴᵀX for a universal matrix W on
 * the GPU and f32 right-hand sides X (n × k, k = 1 for a GEMV), decoding the codes in the kernel. CPU
 * twin: `matvecAT` (src/product/matvec.ts). One call records:
 *   1. x̃ = R·X with W's seed (`dispatchHadamard` into a scratch buffer) when W is rotated;
 *   2. `call_sums` (shaders/universal_gemv_finish.wgsl): per right-hand side Σ offset·x̃, the
 *      column-independent part of the dither term, and Σx for the means (or the caller's `callSums`,
 *      recorded once for the layers that read the same x̃);
 *   3. the product (shaders/universal_gemv.wgsl, `main`): 8 columns per workgroup, 32 lanes per column
 *      walking consecutive groups of blocks (one code word per group where the code width divides 32),
 *      every block decoded once per tile of up to 8 right-hand sides, the 32 lane sums added by
 *      subgroup shuffles (devices with 'subgroups') and/or a workgroup-memory tree, T[j, r] = Σ c·x̃
 *      (c = λ·M/s − dither field); lane 0 writes Y = ν·unit·(T + Σ offset·x̃) + μ·Σx (+ b) as f32 or
 *      f16 (shaders/universal_gemv_finished.wgsl). The pipeline is compiled per scheme (lattice, q and
 *      so the code width) with everything that varies per scheme a constant
 *      (`universalGemvSchemeHeader`): no runtime division in the inner loop; D3 leaders with q³ ≤ 1024
 *      (d3-q6) come from a table in workgroup memory, replicated against bank conflicts.
 * That product binds 10 storage buffers; on a device that allows only WebGPU's guaranteed 8
 * (`fusedFinishSupported`) the product writes T instead (shaders/universal_gemv_totals.wgsl) and
 * `finish` forms Y in place after the sums: one more dependent dispatch per call.
 * The product shader's header comment counts instructions per code byte: the integer Voronoi decode
 * (E8) and the dither hash still dominate.
 */

/** Columns per workgroup of the shader (THREADS / LANES of shaders/universal_gemv_lanes.wgsl). */
export const UNIVERSAL_GEMV_COLUMNS = 8;

/** Invocations per workgroup of shaders/universal_gemv_lanes.wgsl (its THREADS). */
export const UNIVERSAL_LANES_THREADS = 256;

/** Invocations per workgroup of the finish pass (shaders/universal_gemv_finish.wgsl): one per output. */
export const UNIVERSAL_FINISH_THREADS = 256;

/**
 * Right-hand sides per tile: the compile-time variants (the accumulators are a register array). 8
 * rather than 16 or 64: every right-hand side adds about 45 instructions per E8 block to a decode of
 * about 1160, so a tile of 8 already spreads the decode well, and the cold compile on lavapipe grows
 * with the tile (measured: ≈ 4 s CPU for 1, 7 s for 4, 13 s for 8 with E8).
 */
export type RhsTile = 1 | 8;

// A pure IIFE, not a pure `new`: bundlers keep an argument with a spread (it may run getters).
const Params = /*#__PURE__*/ (() => new UniformLayout('UniversalGemvParams', {
  ...UNIVERSAL_OPERAND_MEMBERS,
  cols: 'u32', // W columns in this dispatch
  total_cols: 'u32', // all W columns: the means' offset in `side`, Y's column stride
  rows: 'u32', // n: entries of an x column
  kept: 'u32', // keptLength
  full_blocks: 'u32', // floor(keptLength / d): blocks with every coordinate kept
  full_groups: 'u32', // floor(full_blocks / GROUP_BLOCKS): groups of the fast path
  rhs: 'u32', // right-hand sides in this dispatch
  x_rotated_first: 'u32', // element of x̃[0, first rhs] in its binding
  x_stride: 'u32', // elements between x̃ columns (N, or n unrotated)
  x_first: 'u32', // element of x[0, first rhs] in its binding
  y_first: 'u32', // element of Y[first column of the dispatch, first rhs] in its binding (then + r·total_cols + j); finish: element (f32) or half (f16)
  has_means: 'u32',
  ...GEMV_OUTPUT_MEMBERS,
  t_staged: 'u32', // finish: T is in `t` (f16 output, or Y accumulated), not in Y
  dither_offsets: 'u32', // 1: T excludes the dither offsets, `call_sums` adds Σ offset·x̃ (this kernel); 0: T includes them
  sums_first: 'u32', // call_sums, finish: index in `sums` of the first right-hand side of the dispatch
  sums_means: 'u32', // call_sums, finish: index in `sums` where Σx starts (the sums' right-hand sides)
  sums_in_kernel: 'u32', // fused product: 1 takes Σ offset·x̃ itself (W not centred, no sums binding read)
  subgroup_test_mode: 'u32', // subgroup variant only: 1 forces its fallback, 2 poisons the fallback
  unit: 'f32', // β / (DITHER_GRID · √N)
}))();

/**
 * A compiled variant: the lattice (the generated header), the RHS tile, whether subgroup shuffles are
 * used, and the scheme constants: q (default: 16 for E8, 6 for D3) and the copies of the D3 leader
 * table in workgroup memory (0: no table; only for D3 with q³ ≤ {@link MAX_TABLE_LEADERS}; default:
 * as many as fit in WebGPU's minimum of 16 KB).
 */
export interface UniversalGemvVariant {
  readonly lattice: LatticeName;
  readonly rhsTile: RhsTile;
  readonly subgroups: boolean;
  readonly q?: number;
  readonly leaderTableCopies?: LeaderTableCopies;
  /**
   * true: the product writes Y itself (the sums recorded before it; 10 storage buffers, see
   * `fusedFinishSupported`); false (default): it writes T and a finishing pass forms Y.
   */
  readonly finished?: boolean;
}

/**
 * Whether the universal GEMV's product can write Y itself on `device` (no finishing pass): it needs 10
 * storage buffers per shader stage, which WebGPU does not guarantee (8) but most adapters give when
 * asked (`requestGpuDevice` asks for the adapter's limit).
 */
export function fusedFinishSupported(device: GPUDevice): boolean {
  return device.limits.maxStorageBuffersPerShaderStage >= FINISHED_STORAGE_BUFFERS;
}

/** Copies of the leader table: 8 make the 128-bit table reads conflict-free (8 lanes per access phase). */
export type LeaderTableCopies = 0 | 1 | 2 | 4 | 8;

/** WebGPU's minimum maxComputeWorkgroupStorageSize. */
const MIN_WORKGROUP_BYTES = 16384;

/** Largest D3 leader table (q³ entries of 16 bytes per copy): q ≤ 10. */
export const MAX_TABLE_LEADERS = 1024;

/**
 * Bytes of workgroup memory that shaders/universal_gemv_lanes.wgsl declares for a tile of `rhsTile`
 * right-hand sides, counted as WebGPU counts them against `maxComputeWorkgroupStorageSize` (each
 * variable's size rounded up to 16 bytes): the partial sums (RHS_TILE·THREADS f32), the subgroup vote
 * and the width (a u32 each, 16 bytes each). Every kernel that ends in those lanes (this GEMV, the
 * int8-input ones) sizes its tables against the device's limit with it.
 */
export function lanesWorkgroupBytes(rhsTile: number): number {
  return 4 * rhsTile * UNIVERSAL_LANES_THREADS + 16 + 16;
}

/** Bytes of workgroup memory the product kernel uses besides the leader table: the lanes' reduction and `root_steps` (a vec4 per D3 root, and one for no root). */
function reductionBytes(rhsTile: RhsTile): number {
  return lanesWorkgroupBytes(rhsTile) + 16 * (latticeSpec('D3').escapes.rootCount + 1);
}

/**
 * How many copies of the D3 leader table fit next to the reduction in `workgroupBytes` of workgroup
 * memory (8 at most, 0 when not even one fits or the lattice or q has no table).
 *
 * @example
 * leaderTableCopies('D3', 6, 1, 16384); // 4: 4 × 216 × 16 bytes next to 1 KB of partial sums
 */
export function leaderTableCopies(lattice: LatticeName, q: number, rhsTile: RhsTile, workgroupBytes: number): LeaderTableCopies {
  const entries = q ** 3;
  if (lattice !== 'D3' || entries > MAX_TABLE_LEADERS) return 0;
  const budget = workgroupBytes - reductionBytes(rhsTile);
  for (const copies of [8, 4, 2, 1] as const) {
    if (16 * entries * copies <= budget) return copies;
  }
  return 0;
}

/** Bits of a universal code of `lattice` with nesting ratio q: ceil(d·log2 q), exactly (as VoronoiCode). */
function codeBitsOf(lattice: LatticeName, q: number): number {
  return universalCodec(lattice, q, 1).codeBits;
}

/** A WGSL u32 literal. */
const u32 = (value: number): string => `${value}u`;

/**
 * The GEMV's scheme header: the code width, the group size, the code reads of a group and the
 * leader-table constants (shaders/universal_gemv.wgsl uses them; the decode with q a constant comes
 * from `gemvDecodeWgsl`).
 *
 * @example
 * universalGemvSchemeHeader(latticeSpec('E8'), 16, 0); // one 32-bit code per group
 */
export function universalGemvSchemeHeader(spec: LatticeSpec, q: number, copies: LeaderTableCopies): string {
  check(spec.name === 'D3' || spec.name === 'E8', () => `universal gemv: lattice ${spec.name} has no universal code`);
  const codeBits = codeBitsOf(spec.name, q);
  check(copies === 0 || (spec.name === 'D3' && q ** 3 <= MAX_TABLE_LEADERS), () => `universal gemv: no leader table for ${spec.name} q = ${q}`);
  const groupBlocks = 32 % codeBits === 0 ? 32 / codeBits : 1;
  const lowBits = Math.min(codeBits, 32);
  const highBits = codeBits - lowBits;
  let groupWords: string[];
  let groupCode: string;
  if (groupBlocks > 1 || codeBits === 32) {
    groupWords = ['  return vec2<u32>(codes[code_base + g], 0u);'];
    groupCode = codeBits === 32 ? 'words' : `vec2<u32>(extractBits(words.x, i * ${u32(codeBits)}, ${u32(codeBits)}), 0u)`;
  } else {
    groupWords = [
      `  let bit = g * ${u32(codeBits)};`,
      '  let word = code_base + (bit >> 5u);',
      '  let shift = bit & 31u;',
      '  var low = codes[word] >> shift;',
      `  if (shift + ${u32(lowBits)} > 32u) {`,
      '    low = low | (codes[word + 1u] << (32u - shift));',
      '  }',
    ];
    if (highBits > 0) {
      groupWords.push(
        '  var high = codes[word + 1u] >> shift;',
        `  if (shift + ${u32(highBits)} > 32u) {`,
        '    high = high | (codes[word + 2u] << (32u - shift));',
        '  }',
        `  return vec2<u32>(low${lowBits < 32 ? ` & ${u32(2 ** lowBits - 1)}` : ''}, high & ${u32(2 ** highBits - 1)});`,
      );
    } else {
      groupWords.push(`  return vec2<u32>(low & ${u32(2 ** lowBits - 1)}, 0u);`);
    }
    groupCode = 'words';
  }
  const entries = copies > 0 ? q ** 3 : 0;
  return [
    `// Generated for ${spec.name}, q = ${q} (${codeBits}-bit codes) by universalGemvSchemeHeader (src/gpu/kernels/universalGemv.ts).`,
    `const CODE_BITS: u32 = ${u32(codeBits)};`,
    `const GROUP_BLOCKS: u32 = ${u32(groupBlocks)};`,
    `const USE_LUT: bool = ${copies > 0};`,
    `const LUT_ENTRIES: u32 = ${u32(entries)};`,
    `const LUT_REPLICAS: u32 = ${u32(Math.max(copies, 1))};`,
    `const LUT_SIZE: u32 = ${u32(Math.max(entries * copies, 1))};`,
    `const ROOT_COUNT: u32 = ${u32(copies > 0 ? spec.escapes.rootCount : 0)};`,
    `// The code words of group g (${counted(groupBlocks, 'block')}) of the column at word code_base.`,
    'fn gemv_group_words(code_base: u32, g: u32) -> vec2<u32> {',
    ...groupWords,
    '}',
    '// The code (low 32 bits, high bits) of block i of a group.',
    'fn gemv_group_code(words: vec2<u32>, i: u32) -> vec2<u32> {',
    `  return ${groupCode};`,
    '}',
    '',
  ].join('\n');
}

/** The blocks per group of the product kernel: 32 / codeBits when codeBits divides 32, else 1. */
function groupBlocksOf(lattice: LatticeName, q: number): number {
  const codeBits = codeBitsOf(lattice, q);
  return 32 % codeBits === 0 ? 32 / codeBits : 1;
}

/** The dither offsets 2^(bits − 1) of a lattice's fields, as a WGSL constant: Z_v = field_v − offset_v. */
function ditherOffsetsWgsl(spec: LatticeSpec): string {
  const offsets = spec.dither.fields.map((field) => `${2 ** (field.bits - 1)}.0`);
  return `const G_DITHER_OFFSETS = array<f32, ${offsets.length}>(${offsets.join(', ')});`;
}

/** `G_POINT_FACTOR` = M/s (DITHER_GRID over the point scale): the factor turning λ into c's units. */
export function pointFactorWgsl(spec: LatticeSpec): string {
  return `const G_POINT_FACTOR: i32 = ${DITHER_GRID / spec.pointScale};`;
}

/**
 * The product kernel's part of the generated header: the factor M/s turning λ into c's units and
 * `block_fields`, the dither hash fields without their offsets (`block_dither` of universalWgsl.ts
 * plus the offsets).
 */
export function universalGemvHeader(spec: LatticeSpec): string {
  const { words, fields } = spec.dither;
  const hashes = Array.from({ length: words }, (_, t) => `  let h${t} = ${blockHashWgsl(words, t)};`);
  const lines = fields.map((field, v) => `  f[${v}] = i32((h${field.word} >> ${field.shift}u) & ${2 ** field.bits - 1}u);`);
  return [
    `// Generated from latticeSpec('${spec.name}') for the universal GEMV (src/gpu/kernels/universalGemv.ts).`,
    pointFactorWgsl(spec),
    '// The raw dither fields of block `block` (Z_v = field_v − 2^(bits_v − 1)).',
    'fn block_fields(keys: vec2<u32>, block: u32) -> LatticePoint {',
    ...hashes,
    '  var f = LatticePoint();',
    ...lines,
    '  return f;',
    '}',
    '',
  ].join('\n');
}

/**
 * The WGSL of one variant: `enable subgroups;` first when needed, the RHS tile, the parameters, the
 * decode library and headers (lattice, GEMV, scheme), the specialised decode, the shared code and one
 * entry file.
 *
 * @example
 * universalGemvShaderSource({ lattice: 'E8', rhsTile: 1, subgroups: false, q: 16 });
 */
export function universalGemvShaderSource(variant: UniversalGemvVariant): string {
  const spec = latticeSpec(variant.lattice);
  const q = variant.q ?? (variant.lattice === 'D3' ? 6 : 16);
  return [
    variant.subgroups ? 'enable subgroups;' : '',
    `const RHS_TILE: u32 = ${variant.rhsTile}u;`,
    Params.wgsl(),
    universalDecodeWgsl(spec),
    universalGemvHeader(spec),
    ditherOffsetsWgsl(spec),
    universalGemvSchemeHeader(spec, q, variant.leaderTableCopies ?? leaderTableCopies(variant.lattice, q, variant.rhsTile, MIN_WORKGROUP_BYTES)),
    gemvDecodeWgsl(variant.lattice, q),
    lanesSource,
    gemvSource,
    variant.finished === true ? `${finishedSource}\n${partialSumsSource}\n${GEMV_OUTPUT_WGSL}` : totalsSource,
    variant.subgroups ? subgroupEntrySource : plainEntrySource,
  ].join('\n');
}

/**
 * The WGSL of the per-call kernels (`call_sums`, `finish`) of a lattice: parameters, U_DIM and the
 * dither offsets, shaders/universal_gemv_finish.wgsl.
 */
export function universalGemvFinishShaderSource(lattice: LatticeName): string {
  const spec = latticeSpec(lattice);
  return [Params.wgsl(), `const U_DIM: u32 = ${spec.dimension}u;`, ditherOffsetsWgsl(spec), finishSource, partialSumsSource, GEMV_OUTPUT_WGSL].join('\n');
}

/** A product pipeline of one variant (either form). */
function compileProduct(device: GPUDevice, pipelineLayout: GPUPipelineLayout, variant: UniversalGemvVariant): GPUComputePipeline {
  const form = variant.finished === true ? ', writes Y' : '';
  return createKernelPipeline(device, pipelineLayout, {
    label: `universal gemv ${variant.lattice} q = ${variant.q ?? 'default'} (${counted(variant.rhsTile, 'right-hand side')} per tile${variant.subgroups ? ', subgroups' : ''}${variant.leaderTableCopies ? `, leader table × ${variant.leaderTableCopies}` : ''}${form})`,
    code: universalGemvShaderSource(variant),
  });
}

function productKey(variant: UniversalGemvVariant): string {
  return `${variant.lattice}/${variant.q ?? ''}/${variant.rhsTile}${variant.subgroups ? '+subgroups' : ''}/${variant.leaderTableCopies ?? ''}`;
}

/** The product's bindings in both forms: W's five buffers, x̃ = R·x (x when unrotated), Y (or T). */
// A pure IIFE: bundlers keep a top-level spread (it may run an iterator).
const PRODUCT_BINDINGS = /*#__PURE__*/ (() => ['uniform', ...UNIVERSAL_OPERAND_BINDINGS, 'read-only-storage', 'storage'] as const)();

/** The product kernel writing T (the split form): per device and variant. */
// A pure IIFE, not a pure `new`: bundlers keep an argument with a spread (it may run getters).
const pipelines = /*#__PURE__*/ (() => new KernelPipelines({
  label: 'universal gemv',
  bindings: PRODUCT_BINDINGS,
  compile: (device, pipelineLayout, variant: UniversalGemvVariant) => compileProduct(device, pipelineLayout, { ...variant, finished: false }),
  key: productKey,
}))();

/** The product kernel writing Y itself (the fused form, 10 storage buffers): per device and variant. */
const FINISHED_BINDINGS = /*#__PURE__*/ (() =>
  [
    ...PRODUCT_BINDINGS,
    'read-only-storage', // norms and means
    'read-only-storage', // per-call sums
    'read-only-storage', // bias
  ] as const)();

/** Storage buffers the fused form of the product binds (W's 5, x̃, Y, the norms, the sums, the bias: 10). */
const FINISHED_STORAGE_BUFFERS = /*#__PURE__*/ storageBufferCount(FINISHED_BINDINGS);

const finishedPipelines = /*#__PURE__*/ (() => new KernelPipelines({
  label: 'universal gemv (writes Y)',
  bindings: FINISHED_BINDINGS,
  compile: (device, pipelineLayout, variant: UniversalGemvVariant) => compileProduct(device, pipelineLayout, { ...variant, finished: true }),
  key: productKey,
}))();

/** The per-call kernels: per device and lattice, one module with two pipelines. */
const finishPipelines = /*#__PURE__*/ new KernelPipelines({
  label: 'universal gemv finish',
  bindings: [
    'uniform',
    'read-only-storage', // x̃
    'read-only-storage', // x
    'read-only-storage', // norms and means
    'storage', // per-call sums
    'read-only-storage', // T staged (f16 output, or Y accumulated)
    'read-only-storage', // bias
    'storage', // Y
  ],
  compile: (device, pipelineLayout, lattice: LatticeName) => {
    const label = `universal gemv finish ${lattice}`;
    const module = device.createShaderModule({ label, code: universalGemvFinishShaderSource(lattice) });
    return {
      sums: device.createComputePipeline({ label: `${label}: per-call sums`, layout: pipelineLayout, compute: { module, entryPoint: 'call_sums' } }),
      finish: device.createComputePipeline({ label, layout: pipelineLayout, compute: { module, entryPoint: 'finish' } }),
    };
  },
});


/** How the GEMV runs; the defaults suit every device. */
export interface UniversalGemvOptions extends Pick<GemvCallArgs, 'maxBindingBytes' | 'subgroups' | 'subgroupTestMode'> {
  /**
   * Decode D3 leaders through the table in workgroup memory where the scheme has one (q³ ≤ 1024) and it
   * fits. Default true; `false` decodes every block (tests compare the two).
   */
  readonly leaderTable?: boolean;
  /**
   * Let the product write Y itself, with no finishing pass (one dependent dispatch less per call).
   * Default: where the device allows it (`fusedFinishSupported`); `false` forces the split form
   * (tests compare the two); `true` on a device that does not allow it is an error.
   */
  readonly fusedFinish?: boolean;
}

/** Arguments of {@link dispatchUniversalGemv}: X, Y and the options of `GemvCallArgs`, the output (f32 or f16, bias), and W. */
export interface UniversalGemvArgs extends GemvCallArgs, GemvOutputArgs, UniversalGemvOptions {
  /** Ŵ: n × cols, universal lattice codes (D3 or E8); column j gives output row j. */
  readonly w: GpuUniversalMatrix;
  /**
   * The per-call sums already recorded for W's x̃ (`dispatchUniversalCallSums`, shared by the layers
   * that read the same x̃ with the same lattice and block layout): then the call records only the
   * product and the finishing pass. Needs `xRotated` (the same x̃) when W is rotated.
   */
  readonly callSums?: RecordedCallSums;
}

/**
 * The per-call sums of the universal GEMV (Σ offset·x̃ per right-hand side, and Σx when W is
 * centred), recorded once by {@link dispatchUniversalCallSums} for every universal GEMV that reads
 * the same x̃: pass it as `callSums`. Its buffer belongs to the scratch it was recorded with.
 */
export interface RecordedCallSums {
  /** rhs dither-offset sums, then rhs Σx (zeros when W is not centred). */
  readonly sums: GPUBuffer;
  readonly rhs: number;
  /** What they were computed for (`universalCallSumsKey`), compared by the GEMV. */
  readonly operand: string;
}

/**
 * What the per-call sums of W depend on besides x̃: sums recorded for one matrix serve another exactly
 * when their keys agree (the lattice's dither offsets, the blocks and kept coordinates, the rotation,
 * whether Σx is needed).
 */
export function universalCallSumsKey(w: GpuUniversalMatrix): string {
  const rotation = w.rotate ? `rotated (length ${w.length}, seed ${w.seed})` : `unrotated (${w.rows} rows)`;
  return `${w.scheme.lattice} dither offsets, ${rotation}, keptLength ${w.keptLength}, ${w.blocksPerColumn} blocks, ${w.hasMeans ? 'with Σx' : 'no Σx'}`;
}

/** Arguments of {@link dispatchUniversalCallSums}. */
export interface UniversalCallSumsArgs {
  /** A matrix the sums are for: any universal GEMV operand with the same `universalCallSumsKey` may use them. */
  readonly w: GpuUniversalMatrix;
  /** x̃ = R·X rotated with W's seed (N × rhs f32), or X itself when W is not rotated. */
  readonly xRotated: GPUBuffer;
  readonly xRotatedOffset?: number;
  /** X (n × rhs f32), read for Σx when W is centred (else it may be omitted). */
  readonly x?: GPUBuffer;
  readonly xOffset?: number;
  readonly rhs: number;
  /**
   * Largest storage binding for x̃ and X, in bytes (default and upper bound: the device's
   * `maxStorageBufferBindingSize`): tests set it small to make the sums take several dispatches.
   */
  readonly maxBindingBytes?: number;
}

const UNIVERSAL_CALL_SUMS_ARG_KEYS = ['w', 'xRotated', 'xRotatedOffset', 'x', 'xOffset', 'rhs', 'maxBindingBytes'] as const satisfies readonly (keyof UniversalCallSumsArgs)[];

/**
 * Records the universal GEMV's per-call sums into `encoder`, in a pass of their own, once for several
 * GEMVs that read the same x̃ (layers quantized with one seed reading one input: an attention block's
 * q, k and v). The right-hand sides are summed a range at a time where x̃ or X of all of them exceed
 * one storage binding, and each range's workgroups lie on a 2-D grid (any number of right-hand
 * sides); the sums themselves (8 bytes per right-hand side) are bound whole, so they must fit one
 * binding: at most maxStorageBufferBindingSize / 8 right-hand sides per call.
 *
 * @example
 * dispatchHadamard(device, encoder, scratch, { input: x, output: xRotated, rows: q.rows, cols: 1, seed: q.seed });
 * const callSums = dispatchUniversalCallSums(device, encoder, scratch, { w: q, xRotated, rhs: 1 });
 * for (const [w, y] of [[q, qOut], [k, kOut], [v, vOut]] as const) dispatchUniversalGemv(device, encoder, scratch, { w, xRotated, y, rhs: 1, callSums });
 */
export function dispatchUniversalCallSums(device: GPUDevice, encoder: GPUCommandEncoder, scratch: GpuScratch, args: UniversalCallSumsArgs): RecordedCallSums {
  checkDispatch(device, encoder, scratch, args, 'dispatchUniversalCallSums');
  checkOptionsObject(args, UNIVERSAL_CALL_SUMS_ARG_KEYS, 'dispatchUniversalCallSums arguments');
  const what = 'universal gemv call sums';
  const { w, rhs } = args;
  const layout = checkGpuUniversalMatrix(w, 'W');
  checkPositiveInteger(rhs, `${what}: rhs`);
  const alignment = device.limits.minStorageBufferOffsetAlignment;
  const deviceBinding = device.limits.maxStorageBufferBindingSize;
  const maxBinding = bindingCap(device, args.maxBindingBytes, what);
  // The sums of every right-hand side are one binding (the GEMVs that read them bind them whole).
  check(
    8 * rhs <= deviceBinding,
    () =>
      `${what}: the sums of ${rhs} right-hand sides take ${8 * rhs} bytes, more than one storage binding ` +
      `(maxStorageBufferBindingSize ${deviceBinding} bytes): at most ${Math.floor(deviceBinding / 8)} right-hand sides per call`,
  );
  const xRotatedOffset = args.xRotatedOffset ?? 0;
  checkBufferRange(args.xRotated, xRotatedOffset, 4 * w.length * rhs, `${what}: xRotated`);
  const oneColumn = (entries: number, name: string): number => {
    const bytes = 4 * entries + alignment - 4;
    check(
      bytes <= maxBinding,
      () =>
        `${what}: one right-hand side of ${name} (${entries} f32 entries, ${4 * entries} bytes, plus ${alignment - 4} bytes of alignment slack) ` +
        `does not fit a storage binding of ${maxBinding} bytes`,
    );
    return itemsPerBinding(4 * entries, maxBinding, alignment);
  };
  const perRange = Math.min(oneColumn(w.length, 'x̃'), w.hasMeans ? oneColumn(w.rows, 'X') : Infinity);
  let xBuffer: GPUBuffer | null = null;
  const xOffset = args.xOffset ?? 0;
  if (w.hasMeans) {
    check(args.x !== undefined, () => `${what}: W is centred, so x is needed (for Σx)`);
    checkBufferRange(args.x, xOffset, 4 * w.rows * rhs, `${what}: x`);
    xBuffer = args.x;
  }
  const unread = xBuffer === null ? scratch.buffer(`${what}: X (not read)`, 4, STORAGE_USAGE) : null;
  const sums = scratch.buffer(`universal gemv sums (${counted(rhs, 'right-hand side')})`, 8 * rhs, STORAGE_USAGE);
  // Not written by the sums pass.
  const y: GPUBufferBinding = { buffer: scratch.buffer(`${what}: Y (not written)`, 4, STORAGE_USAGE) };
  const pass = encoder.beginComputePass({ label: `${what} (${universalCallSumsKey(w)})` });
  for (const range of columnRanges(rhs, perRange)) {
    const xRotatedWindow = bindingWindow(xRotatedOffset + 4 * w.length * range.first, 4 * w.length * range.count, alignment);
    let x: { binding: GPUBufferBinding; firstElement: number };
    if (xBuffer !== null) {
      const window = bindingWindow(xOffset + 4 * w.rows * range.first, 4 * w.rows * range.count, alignment);
      x = { binding: windowBinding(xBuffer, window), firstElement: window.firstElement };
    } else {
      x = { binding: { buffer: unread as GPUBuffer }, firstElement: 0 };
    }
    const rhsLabel =
      range.count === rhs ? `${counted(rhs, 'right-hand side')}` : `right-hand sides ${range.first}…${range.first + range.count - 1} of ${rhs}`;
    recordUniversalGemvFinish(device, pass, scratch, {
      w,
      layout,
      uniforms: {
        total_cols: w.cols,
        rows: w.rows,
        kept: w.keptLength,
        full_blocks: 0,
        full_groups: 0,
        rhs: range.count,
        x_rotated_first: xRotatedWindow.firstElement,
        x_stride: w.length,
        x_first: x.firstElement,
        has_means: w.hasMeans ? 1 : 0,
        dither_offsets: 1,
        subgroup_test_mode: 0,
        unit: 0,
      },
      rhs: range.count,
      rhsLabel,
      xRotated: windowBinding(args.xRotated, xRotatedWindow),
      x: x.binding,
      y,
      yFirst: 0,
      passes: 'sums',
      sumsTarget: { buffer: sums, first: range.first, means: rhs },
    });
  }
  pass.end();
  return { sums, rhs, operand: universalCallSumsKey(w) };
}

/** The keys of {@link UniversalGemvArgs}: dispatchUniversalGemv refuses any other (a misspelt option must not run on its default). */
const UNIVERSAL_GEMV_ARG_KEYS = [...GEMV_CALL_ARG_KEYS, ...GEMV_OUTPUT_ARG_KEYS, 'leaderTable', 'fusedFinish', 'w', 'callSums'] as const satisfies readonly (keyof UniversalGemvArgs)[];

/**
 * Records Y = ŴᵀX into `encoder`: the rotation of X with W's seed (when W is rotated), the per-call
 * sums (unless `callSums` gives them) and the product, which adds a bias, writes f16 and adds to Y's
 * old values when asked (`GemvOutputArgs`) — or, on devices without 10 storage buffers per stage (`fusedFinishSupported`),
 * the product, then the sums and a finishing pass that does that. W's columns and X's columns are split across dispatches when they exceed a
 * storage binding or the dispatch grid. Scratch buffers (x̃, sums, parameters) go into `scratch`:
 * destroy it after submitting.
 *
 * @example
 * // y = Ŵᵀx for one activation vector x (n entries) on the GPU:
 * const scratch = new GpuScratch(device);
 * const encoder = device.createCommandEncoder({ label: 'decode step' });
 * dispatchUniversalGemv(device, encoder, scratch, { w: gpuW, x, y, rhs: 1 }); // y: 4·cols bytes
 * device.queue.submit([encoder.finish()]);
 * scratch.destroy();
 */
export function dispatchUniversalGemv(device: GPUDevice, encoder: GPUCommandEncoder, scratch: GpuScratch, args: UniversalGemvArgs): void {
  checkDispatch(device, encoder, scratch, args, 'dispatchUniversalGemv');
  checkOptionsObject(args, UNIVERSAL_GEMV_ARG_KEYS, 'dispatchUniversalGemv arguments');
  const { w } = args;
  const layout = checkGpuUniversalMatrix(w, 'W');
  const format = gemvOutputFormat(args, 'universal gemv');
  const shared = args.callSums;
  if (shared !== undefined) {
    check(typeof shared === 'object' && shared !== null && shared.sums !== undefined, 'universal gemv: callSums must come from dispatchUniversalCallSums');
    check(shared.operand === universalCallSumsKey(w), () => `universal gemv: callSums were recorded for ${shared.operand}, but W needs ${universalCallSumsKey(w)}`);
    check(shared.rhs === args.rhs, () => `universal gemv: callSums hold ${shared.rhs} right-hand sides, the call has ${args.rhs}`);
    check(!w.rotate || args.xRotated !== undefined, 'universal gemv: callSums go with the xRotated they were computed from');
  }
  const call = beginGemv(device, encoder, scratch, w, args, 'universal gemv', { yBytes: activationBytes(format), sumsX: w.hasMeans });
  const { rows, cols, length, rhs, subgroups, testMode, alignment, maxBinding, maxGroups, xRotated, xRotatedOffset, xWindow: xWindowOf, rhsRanges } = call;
  const output = resolveGemvOutput(device, scratch, args, format, cols, 'universal gemv');
  const d = layout.codec.spec.dimension;
  const rhsTile: RhsTile = rhs === 1 ? 1 : 8;
  const columnRangeList = columnRanges(cols, Math.min(universalColumnsPerBinding(layout, maxBinding, alignment), maxGroups * UNIVERSAL_GEMV_COLUMNS));
  const unit = universalDitherUnit(w);
  checkOptionalBoolean(args.leaderTable, 'universal gemv: leaderTable');
  const copies = args.leaderTable === false ? 0 : leaderTableCopies(w.scheme.lattice, w.scheme.q, rhsTile, device.limits.maxComputeWorkgroupStorageSize);
  const groupBlocks = groupBlocksOf(w.scheme.lattice, w.scheme.q);
  checkOptionalBoolean(args.fusedFinish, 'universal gemv: fusedFinish');
  check(args.fusedFinish !== true || fusedFinishSupported(device), () => `universal gemv: fusedFinish needs ${FINISHED_STORAGE_BUFFERS} storage buffers per shader stage; this device allows ${device.limits.maxStorageBuffersPerShaderStage}`);
  const fused = args.fusedFinish ?? fusedFinishSupported(device);
  const variant = { lattice: w.scheme.lattice, rhsTile, subgroups, q: w.scheme.q, leaderTableCopies: copies };
  const { layout: bindGroupLayout, pipeline } = (fused ? finishedPipelines : pipelines).get(device, variant);

  const pass = encoder.beginComputePass({ label: 'universal gemv' });
  for (const rhsRange of rhsRanges) {
    const rhsLabel = `right-hand sides ${rhsRange.first}…${rhsRange.first + rhsRange.count - 1}`;
    const xRotatedWindow = bindingWindow(xRotatedOffset + 4 * length * rhsRange.first, 4 * length * rhsRange.count, alignment);
    const xWindow = xWindowOf(rhsRange.first, rhsRange.count);
    const yWindow = output.yWindow(rhsRange.first, rhsRange.count);
    const common = {
      total_cols: cols,
      rows,
      kept: w.keptLength,
      full_blocks: Math.floor(w.keptLength / d),
      full_groups: Math.floor(Math.floor(w.keptLength / d) / groupBlocks),
      rhs: rhsRange.count,
      x_rotated_first: xRotatedWindow.firstElement,
      x_stride: length,
      x_first: xWindow.firstElement,
      has_means: w.hasMeans ? 1 : 0,
      subgroup_test_mode: testMode,
      unit,
    };
    const finishArgs = {
      w,
      layout,
      uniforms: { ...common, dither_offsets: 1 },
      rhs: rhsRange.count,
      rhsLabel,
      xRotated: windowBinding(xRotated, xRotatedWindow),
      x: xWindow.binding,
      y: yWindow.binding,
      yFirst: yWindow.first,
      output,
    };
    // Split form: the product leaves T in Y (or, with f16 output or when Y's old values are added, in
    // an f32 buffer of its own), then the sums and `finish`. Fused form: the sums first (or the
    // caller's), then the product writes Y. A W that is not centred needs no Σx, so the fused product
    // takes Σ offset·x̃ itself (same bits).
    const staged = !fused && (output.f16 || output.accumulate) ? scratch.intermediate(`universal gemv T (${rhsLabel})`, 4 * cols * rhsRange.count, STORAGE_USAGE) : null;
    const sharedSums = shared === undefined ? null : { buffer: shared.sums, first: rhsRange.first, means: shared.rhs };
    const sumsInKernel = fused && sharedSums === null && !w.hasMeans;
    // The fused product's sums binding: the caller's, a placeholder when it takes them itself, or
    // recorded now; the split form's product reads none.
    let productSums: { buffer: GPUBuffer; first: number; means: number } | null = null;
    if (fused) {
      productSums =
        sharedSums ??
        (sumsInKernel
          ? { buffer: scratch.buffer('universal gemv: no sums binding (taken in the product)', 4, STORAGE_USAGE), first: 0, means: 0 }
          : { buffer: recordUniversalGemvFinish(device, pass, scratch, { ...finishArgs, passes: 'sums' }), first: 0, means: rhsRange.count });
    }
    pass.setPipeline(pipeline);
    for (const columnRange of columnRangeList) {
      const windows = universalOperandWindows(w, layout, columnRange.first, columnRange.count, alignment);
      const label = `universal gemv W columns ${columnRange.first}…${columnRange.first + columnRange.count - 1}, ${rhsLabel}`;
      const outputUniforms = fused ? output.uniforms(columnRange.first) : NO_GEMV_OUTPUT_UNIFORMS;
      const params = Params.pack({
        ...windows.uniforms,
        ...common,
        dither_offsets: 1,
        cols: columnRange.count,
        y_first: (staged === null ? yWindow.first : 0) + columnRange.first,
        ...outputUniforms,
        t_staged: 0,
        sums_first: productSums?.first ?? 0,
        sums_means: productSums?.means ?? 0,
        sums_in_kernel: sumsInKernel ? 1 : 0,
      });
      const outputBindings: GPUBufferBinding[] =
        productSums === null ? [staged === null ? yWindow.binding : { buffer: staged }] : [yWindow.binding, { buffer: w.side }, { buffer: productSums.buffer }, output.bias];
      pass.setBindGroup(
        0,
        createKernelBindGroup(device, bindGroupLayout, label, [
          { buffer: scratch.uniform(`${label} params`, params) },
          ...windows.bindings,
          windowBinding(xRotated, xRotatedWindow),
          ...outputBindings,
        ]),
      );
      pass.dispatchWorkgroups(Math.ceil(columnRange.count / UNIVERSAL_GEMV_COLUMNS));
    }
    if (!fused) {
      recordUniversalGemvFinish(device, pass, scratch, {
        ...finishArgs,
        ...(staged === null ? {} : { t: staged }),
        ...(sharedSums === null ? {} : { sums: sharedSums }),
      });
    }
  }
  pass.end();
  call.checkNonFiniteTail(format);
}

/** The uniforms of the finishing passes that do not depend on the operand's column window. */
export type UniversalGemvFinishUniforms = Omit<Parameters<typeof Params.pack>[0], keyof typeof UNIVERSAL_OPERAND_MEMBERS | 'cols' | 'y_first' | keyof typeof GEMV_OUTPUT_MEMBERS | 't_staged' | 'sums_first' | 'sums_means' | 'sums_in_kernel'>;

/** What {@link recordUniversalGemvFinish} needs: the operand, the per-call uniforms and the bindings of one range of right-hand sides. */
export interface UniversalGemvFinishArgs {
  readonly w: GpuUniversalMatrix;
  readonly layout: UniversalOperandLayout;
  readonly uniforms: UniversalGemvFinishUniforms;
  /** Right-hand sides in this range, and a label for them. */
  readonly rhs: number;
  readonly rhsLabel: string;
  readonly xRotated: GPUBufferBinding;
  readonly x: GPUBufferBinding;
  /**
   * Y (the whole range of right-hand sides), and the element (f32) or half (f16) of Y[0, first] in that
   * binding. T[j, r] is in Y (f32 output) or in `t`.
   */
  readonly y: GPUBufferBinding;
  readonly yFirst: number;
  /** The bias and the format of Y (default: f32, no bias); f16 output needs `t`. */
  readonly output?: Pick<GemvOutput, 'f16' | 'accumulate' | 'bias' | 'uniforms'>;
  /** T of the range (cols × rhs f32 from element 0) when Y is f16. */
  readonly t?: GPUBuffer;
  /**
   * 'sums and finish' (default): both passes; 'sums': the per-call sums only, for a product kernel
   * that applies ν·unit and μ·Σx itself (the int8-input GEMV).
   */
  readonly passes?: 'sums and finish' | 'sums';
  /**
   * Sums already recorded for every right-hand side of the call (`dispatchUniversalCallSums`): the
   * finishing pass reads this range's at index `first` (Σx from `means` on) and no sums are recorded.
   */
  readonly sums?: { readonly buffer: GPUBuffer; readonly first: number; readonly means: number };
  /**
   * With passes 'sums': where to write them (default: a new buffer of `2·rhs` f32, from index 0): this
   * range's Σ offset·x̃ at index `first`, its Σx at `means + first` (a buffer for more right-hand sides
   * than this range, filled a range at a time).
   */
  readonly sumsTarget?: { readonly buffer: GPUBuffer; readonly first: number; readonly means: number };
}

/**
 * Records the finishing passes of a universal GEMV into `pass`, after a product kernel left T[j, r] in
 * Y: the per-call sums (Σ offset·x̃ when `uniforms.dither_offsets` is 1, and Σx for the means: `sums[r]`
 * and `sums[rhs + r]` of the returned buffer), then Y = ν·unit·(T + Σ offset·x̃) + μ·Σx over all
 * columns (dispatches of a pass see the storage writes of the earlier ones). The int8-input GEMV
 * (universalGemvI8.ts) records the sums only, before its product.
 */
export function recordUniversalGemvFinish(device: GPUDevice, pass: GPUComputePassEncoder, scratch: GpuScratch, args: UniversalGemvFinishArgs): GPUBuffer {
  const { w, rhs, rhsLabel } = args;
  const { layout: finishLayout, pipeline: finish } = finishPipelines.get(device, w.scheme.lattice);
  const label = `universal gemv finish, ${rhsLabel}`;
  const whole = universalOperandWindows(w, args.layout, 0, w.cols, 1);
  const output = args.output;
  check(args.passes === 'sums' || (output?.f16 !== true && output?.accumulate !== true) || args.t !== undefined, 'universal gemv finish: f16 output, or Y accumulated, needs T staged in `t`');
  const shared = args.sums;
  check(shared === undefined || args.passes !== 'sums', 'universal gemv finish: shared sums leave nothing to record in a sums-only pass');
  const target = args.sumsTarget;
  check(target === undefined || args.passes === 'sums', 'universal gemv finish: sumsTarget is for a sums-only pass');
  check(args.uniforms.rhs === rhs, () => `universal gemv finish: uniforms.rhs (${args.uniforms.rhs}) must be rhs (${rhs})`);
  const where = shared ?? target;
  const params = Params.pack({
    ...whole.uniforms,
    ...args.uniforms,
    cols: w.cols,
    y_first: args.yFirst,
    ...(output?.uniforms(0) ?? NO_GEMV_OUTPUT_UNIFORMS),
    t_staged: args.t === undefined ? 0 : 1,
    sums_first: where?.first ?? 0,
    sums_means: where?.means ?? rhs,
    sums_in_kernel: 0,
  });
  const sums = where?.buffer ?? scratch.buffer(`universal gemv sums (${rhsLabel})`, 8 * rhs, STORAGE_USAGE);
  const unused = (): GPUBufferBinding => ({ buffer: scratch.buffer('universal gemv finish: unused binding', 4, STORAGE_USAGE) });
  pass.setBindGroup(
    0,
    createKernelBindGroup(device, finishLayout, label, [
      { buffer: scratch.uniform(`${label} params`, params) },
      args.xRotated,
      args.x,
      { buffer: w.side },
      { buffer: sums },
      args.t === undefined ? unused() : { buffer: args.t },
      output?.bias ?? unused(),
      args.y,
    ]),
  );
  if (shared === undefined) {
    pass.setPipeline(finish.sums);
    // One workgroup per right-hand side, on a 2-D grid past maxComputeWorkgroupsPerDimension.
    const [gx, gy] = workgroupGrid(rhs, device.limits.maxComputeWorkgroupsPerDimension);
    pass.dispatchWorkgroups(gx, gy);
  }
  if (args.passes !== 'sums') {
    pass.setPipeline(finish.finish);
    const [gx, gy] = workgroupGrid(Math.ceil((w.cols * rhs) / UNIVERSAL_FINISH_THREADS), device.limits.maxComputeWorkgroupsPerDimension);
    pass.dispatchWorkgroups(gx, gy);
  }
  return sums;
}

/** The keys of {@link UniversalGemvOptions}: the host GEMV refuses any other (one is forwarded to the dispatch, where `outputFormat: 'f16'` would make Y unreadable). */
const UNIVERSAL_GEMV_OPTION_KEYS = ['maxBindingBytes', 'subgroups', 'subgroupTestMode', 'leaderTable', 'fusedFinish'] as const satisfies readonly (keyof UniversalGemvOptions)[];

/**
 * Y = ŴᵀX on the GPU for a universal matrix already on the GPU and X given on the CPU (a vector of n
 * entries, or an n × k matrix): uploads X, records `dispatchUniversalGemv`, reads Y back (cols × k) and
 * destroys what it created, inside one validation section. For tests and benchmarks.
 *
 * @example
 * const qW = quantize(w, { scheme: 'e8-q16', seed: 7 });
 * const y = await universalGemv(device, uploadUniversalMatrix(device, qW), x); // cols × 1, ≈ matvecAT(qW, x)
 */
export async function universalGemv(device: GPUDevice, w: GpuUniversalMatrix, x: Matrix | Float32Array, options: UniversalGemvOptions = {}): Promise<Matrix> {
  checkGpuUniversalMatrix(w, 'W');
  checkOptionsObject(options, UNIVERSAL_GEMV_OPTION_KEYS, 'universalGemv options');
  return gemvOnHost(device, 'universal gemv', w, x, options, (run, io, given) => dispatchUniversalGemv(device, run.encoder, run.scratch, { ...given, ...io, w }));
}
