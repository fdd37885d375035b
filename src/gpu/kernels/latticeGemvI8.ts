import { checkDispatch } from './dispatchChecks.js';
import dotPackedSource from '../../../shaders/dot_i8_packed.wgsl?raw';
import dotPlainSource from '../../../shaders/dot_i8_plain.wgsl?raw';
import columnSumsSource from '../../../shaders/gemv_column_sums.wgsl?raw';
import xSumsSource from '../../../shaders/gemv_x_sums.wgsl?raw';
import gemvSource from '../../../shaders/lattice_gemv_i8.wgsl?raw';
import scalePerBlockSource from '../../../shaders/d3_scale_per_block.wgsl?raw';
import multipleCubicSource from '../../../shaders/multiple_cubic.wgsl?raw';
import lanesSource from '../../../shaders/universal_gemv_lanes.wgsl?raw';
import plainEntrySource from '../../../shaders/universal_gemv_plain.wgsl?raw';
import subgroupEntrySource from '../../../shaders/universal_gemv_subgroup.wgsl?raw';
import { check, checkOneOf, counted, describeValue } from '../../errors.js';
import { checkOptionsObject } from '../../quantize/strictOptions.js';
import type { Matrix } from '../../matrix.js';
import type { DeterministicLatticeScheme } from '../../quantize/schemes.js';
import { STORAGE_USAGE } from '../buffers.js';
import {
  checkGpuDeterministicMatrix,
  columnRanges,
  columnSideWindows,
  largestMultiple,
  MAX_GPU_MULTIPLES,
  latticeCodeBits,
  operandColumnsPerBinding,
  operandWindows,
  operandWordsPerColumn,
  schemeScaleIndexBits,
  type ColumnSideWindow,
  type GpuDeterministicMatrix,
  type MatrixColumnSide,
  CUBIC_SCALE,
  deterministicColumnUnit,
} from '../latticeOperand.js';
import { createKernelBindGroup, KernelPipelines, windowBinding } from '../pipelines.js';
import type { GpuScratch } from '../scratch.js';
import { UniformLayout } from '../uniformLayout.js';
import type { BindingWindow } from '../workSplit.js';
import { DOT_PATHS, type DotPath } from './e8Matmul.js';
import { gemvDecodeWithRulesWgsl } from './gemvDecode.js';
import { activationBytes } from './activationIo.js';
import { checkCodeQuads, codeQuadColumnsPerBinding, codeQuadWindow, gemvI8CommonWgsl, i8LeaderTable, I8_WORKGROUP_COLUMNS, type LeaderTable, type LeaderTableArgs } from './gemvI8Common.js';
import { GEMV_OUTPUT_ARG_KEYS, GEMV_OUTPUT_MEMBERS, GEMV_CALL_ARG_KEYS, compileGemvWithSums, dispatchGemvRange, gemvOnHost, gemvOutputFormat, resolveGemvOutput, type GemvCallArgs, type GemvOperand, type GemvOutputArgs } from './gemvCall.js';
import { beginGemvI8, d3InputsI8Form, inputGroupsOf, inputRangesI8, inputsI8ForRange, type InputsI8Operand, type SharedInputsI8Arg } from './inputsI8.js';

/*
 * The int8-input deterministic lattice GEMV: Y = ŴᵀX for a deterministic D3 matrix with 8-bit codes
 * (d3-q6-deterministic), x̃ rounded to int8 per group of 12 coordinates (the same rounding as the
 * universal int8-input GEMV, universalGemvI8.ts) and one packed 8-bit dot product per block
 * (shaders/lattice_gemv_i8.wgsl). Opt-in, like the universal one: it adds the inputs' rounding error,
 * at most (½ + 2·10⁻⁴)·s_g·Σ_{k∈g}|ŵ̃_k| per group g of 12 rotated coordinates (s_g = max|x̃| / 127 over
 * the group). No repacking: the codes (16 bytes per load, bound in whole quads: gemvI8Common.ts) and
 * the 2-bit scale indices are read as stored.
 */


/** Largest leader coordinate of D3 with q = 6 (leaders lie in 6·V(D3) ⊂ [−6, 6]³) times 3 coordinates times 127. */
export const LARGEST_DOT = 3 * 6 * 127;


/**
 * 6·k(i) for the scale indices i = 0…3 as a cubic A + B·i + C·i² + D·i³ through the multiples k
 * (k(i) = 0 past them, as in the f32-input kernel's table), returned as [A, B, C, D]. The kernel
 * evaluates it with three integer multiply-adds per block instead of looking k up in workgroup memory
 * (shaders/lattice_gemv_i8.wgsl says why). The coefficients are integers: with the forward
 * differences Δ₁, Δ₂, Δ₃ of k(0…3), 6·k(i) = 6k₀ + (6Δ₁ − 3Δ₂ + 2Δ₃)·i + (3Δ₂ − 3Δ₃)·i² + Δ₃·i³.
 *
 * @example
 * multipleCubic([16, 23, 32, 45]); // [96, 40, 0, 2]: 96 + 40·i + 2·i³ = 96, 138, 192, 270
 */
export function multipleCubic(multiples: ArrayLike<number>): [number, number, number, number] {
  check(multiples.length <= 4, () => `the int8-input GEMV takes at most 4 scale multiples (2-bit indices), got ${describeValue(multiples.length)}`);
  const k = (i: number): number => (i < multiples.length ? (multiples[i] as number) : 0);
  const d1 = k(1) - k(0);
  const d2 = k(2) - 2 * k(1) + k(0);
  const d3 = k(3) - 3 * k(2) + 3 * k(1) - k(0);
  return [6 * k(0), 6 * d1 - 3 * d2 + 2 * d3, 3 * d2 - 3 * d3, d3]; // CUBIC_SCALE · k(i), by Newton's form
}

/** Right-hand sides per tile: the compile-time variants. */
type RhsTile = 1 | 8;

/**
 * How the kernel takes each block's 6k from its scale index: 'cubic' evaluates `multipleCubic` (three
 * integer multiply-adds), 'table' looks it up in a 4-entry workgroup table filled once per workgroup
 * (a load, an address and a clamp per block: the kernel's former form, kept to compare the two on a GPU).
 */
export const SCALE_MULTIPLE_SOURCES = ['cubic', 'table'] as const;
/**
 * How the kernel takes each block's 6k from its scale index: 'cubic' evaluates a cubic (three integer
 * multiply-adds), 'table' reads a 4-entry workgroup table.
 *
 * @useDeclaredType
 */
export type ScaleMultipleSource = (typeof SCALE_MULTIPLE_SOURCES)[number];

/** The kernel's default source of the scale multiples. */
const DEFAULT_SCALE_MULTIPLES: ScaleMultipleSource = 'cubic';

/** Workgroup bytes of the kernel's own table: 4 i32 for 'table' (WebGPU counts a variable in 16-byte units), none for 'cubic'. */
function multipleTableBytes(source: ScaleMultipleSource): number {
  return source === 'table' ? 16 : 0;
}

/**
 * Why the deterministic `scheme` cannot use the int8-input GEMVs, or null when they can: D3 with 8-bit
 * codes (q = 6) and scale indices of 1 or 2 bits (2 for the d3-q6-deterministic ladder).
 * `scaleIndexBits`: the width a GPU matrix states (`GpuDeterministicMatrix.scaleIndexBits`; a
 * hand-built one may disagree with its scheme), checked too when given.
 *
 * @example
 * latticeInt8InputsUnsupported(SCHEMES['d3-q6-deterministic']); // null
 */
export function latticeInt8InputsUnsupported(scheme: DeterministicLatticeScheme, scaleIndexBits?: number): string | null {
  if (scheme.lattice !== 'D3') return `the int8-input GEMV reads D3 codes; this scheme is ${scheme.lattice}`;
  const codeBits = latticeCodeBits(scheme);
  if (codeBits !== 8) return `the int8-input GEMV reads 8-bit D3 codes (q = 6); q = ${scheme.q} has ${codeBits}-bit codes`;
  const indexBits = schemeScaleIndexBits(scheme);
  if (indexBits !== 1 && indexBits !== 2) return `the int8-input GEMV reads scale indices of 1 or 2 bits; this scheme has ${indexBits}`;
  if (scaleIndexBits !== undefined && scaleIndexBits !== 1 && scaleIndexBits !== 2) return `the int8-input GEMV reads scale indices of 1 or 2 bits; this matrix has ${describeValue(scaleIndexBits)}`;
  return null;
}

// A pure IIFE, not a pure `new`: bundlers keep an argument with a spread (it may run getters).
const Params = /*#__PURE__*/ (() => new UniformLayout('LatticeGemvI8Params', {
  cols: 'u32', // W columns in this dispatch
  rows: 'u32', // n: entries of an original x column (Σx)
  code_first: 'u32', // u32 word of this dispatch's first W column in the codes binding (read as vec4 quads)
  code_words: 'u32', // code words per column (= int8 groups per right-hand side)
  index_first: 'u32',
  index_words: 'u32',
  rhs: 'u32', // right-hand sides in this dispatch
  x_first: 'u32', // element offset of x column 0 in its binding (Σx)
  y_first: 'u32', // element (f32) or half (f16) of Y[first W column of this dispatch, 0] in its binding
  y_stride: 'u32', // elements between Y columns (all W columns)
  x_codes_first: 'u32', // vec4 of x̂[group 0, first rhs] in its binding
  x_scales_first: 'u32', // u32 of the scale of x̂[group 0, first rhs] in the same binding
  ...GEMV_OUTPUT_MEMBERS,
  has_gains: 'u32',
  has_means: 'u32',
  side_first: 'u32', // word of this dispatch's first norm in the side binding
  side_stride: 'u32', // words from a norm to its gain, and from the gain to the mean
  subgroup_test_mode: 'u32', // subgroup variant only: 1 forces its fallback, 2 poisons the fallback
  column_unit: 'f32', // unit / (6 · pointScale · √N): the 1/6 of the cubic's 6·k
  multiple_cubic: 'array<vec4<i32>, 1>', // 6·k(i) = x + y·i + z·i² + w·i³ (multipleCubic); an index per block
  group_multiples: 'array<vec4<i32>, 4>', // k of each group index (MAX_GPU_MULTIPLES, zeros past them); the group-scaled prototype
}))();

/** The options that choose the kernel's workgroup tables: the leader table's layout and the source of the scale multiples. */
export type LatticeGemvI8TableArgs = LeaderTableArgs & { readonly scaleMultiples?: ScaleMultipleSource };

/**
 * The leader table the kernel keeps on a device with `workgroupBytes` of workgroup memory
 * (`i8LeaderTable` beside the kernel's own table: none with the default 'cubic' scale multiples).
 *
 * @example
 * latticeGemvI8LeaderTable(6, 1, 32768); // { copies: 16, entries: 216 }
 * latticeGemvI8LeaderTable(6, 1, 32768, { padLeaderTable: true }); // { copies: 16, entries: 256 }
 * latticeGemvI8LeaderTable(6, 1, 16384, { padLeaderTable: true }); // { copies: 16, entries: 216 } (16 384 bytes would not fit beside 1 056)
 */
export function latticeGemvI8LeaderTable(q: number, rhsTile: RhsTile, workgroupBytes: number, args: LatticeGemvI8TableArgs = {}): LeaderTable {
  return i8LeaderTable(q ** 3, rhsTile, multipleTableBytes(args.scaleMultiples ?? DEFAULT_SCALE_MULTIPLES), workgroupBytes, args);
}

/**
 * How the kernel takes a group's scale: from an index per block (d3-q6-deterministic, `indexBits`
 * each, 4 per group; shaders/d3_scale_per_block.wgsl with the multiples from the cubic or a table), or
 * from one index per group of 4 blocks (the group-scaled prototype, `indexBits` = 4: its WGSL comes
 * from d3GroupScaledGemvI8.ts, so that the library's bundles do not carry it).
 */
export type GemvI8Scale = { readonly place: 'block'; readonly multiples: ScaleMultipleSource } | { readonly place: 'group'; readonly name: string; readonly wgsl: string };

interface Variant {
  readonly q: number;
  readonly scale: GemvI8Scale;
  readonly indexBits: number;
  readonly rhsTile: RhsTile;
  readonly subgroups: boolean;
  readonly dotPath: DotPath;
  readonly leaderTable: LeaderTable;
}

/** `multiple6` (and `fill_multiples`, called by fill_tables) for the variant's source of 6k. */
function scaleMultiplesWgsl(source: ScaleMultipleSource): string {
  if (source === 'cubic') return 'fn multiple6(index: u32) -> i32 { return multiple_cubic(index); }\nfn fill_multiples(thread: u32) {}';
  return [
    'var<workgroup> multiple_table: array<i32, 4>;',
    'fn multiple6(index: u32) -> i32 { return multiple_table[index]; }',
    'fn fill_multiples(thread: u32) { if (thread < 4u) { multiple_table[thread] = multiple_cubic(thread); } }',
  ].join('\n');
}

/**
 * The WGSL of one variant.
 *
 * @example
 * latticeGemvI8ShaderSource({ q: 6, scale: { place: 'block', multiples: 'cubic' }, indexBits: 2, rhsTile: 1, subgroups: false, dotPath: 'packed', leaderTable: { copies: 16, entries: 216 } });
 */
export function latticeGemvI8ShaderSource(variant: Variant): string {
  const { scale } = variant;
  const groupIndexBits = scale.place === 'block' ? 4 * variant.indexBits : variant.indexBits; // a group: 4 blocks, one code word
  return [
    variant.subgroups ? 'enable subgroups;' : '',
    `const RHS_TILE: u32 = ${variant.rhsTile}u;`,
    Params.wgsl(),
    variant.dotPath === 'packed' ? dotPackedSource : dotPlainSource,
    gemvDecodeWithRulesWgsl('D3', variant.q),
    `const LEADER_COUNT: u32 = ${variant.q ** 3}u;`,
    `const INDEX_BITS: u32 = ${variant.indexBits}u;`,
    `const INDEX_MASK: u32 = ${2 ** variant.indexBits - 1}u;`,
    `const GROUP_INDEX_BITS: u32 = ${groupIndexBits}u;`,
    `const INDEX_GROUPS_LOG2: u32 = ${Math.log2(32 / groupIndexBits)}u;`,
    lanesSource,
    gemvI8CommonWgsl(variant.leaderTable),
    gemvSource,
    ...(scale.place === 'block' ? [multipleCubicSource, scalePerBlockSource, scaleMultiplesWgsl(scale.multiples)] : [scale.wgsl]),
    columnSumsSource,
    xSumsSource,
    variant.subgroups ? subgroupEntrySource : plainEntrySource,
  ].join('\n');
}

/**
 * The bind-group layout of the deterministic int8-input GEMVs (this kernel: codes and scale indices;
 * the E8 residue GEMV, e8ResidueGemvI8.ts: residues and side bytes).
 */
export const DETERMINISTIC_I8_GEMV_BINDINGS = [
  'uniform',
  'read-only-storage', // W: codes, or residues
  'read-only-storage', // W: scale indices, or side bytes
  'read-only-storage', // norms, gains, means (ν·γ and μ for the residue GEMV)
  'read-only-storage', // x̂ levels and scales
  'read-only-storage', // x (Σx)
  'storage', // Σx
  'read-only-storage', // bias
  'storage', // Y
] as const satisfies readonly GPUBufferBindingType[];

const pipelines = /*#__PURE__*/ new KernelPipelines({
  label: 'lattice gemv (int8 inputs)',
  bindings: DETERMINISTIC_I8_GEMV_BINDINGS,
  compile: (device, pipelineLayout, variant: Variant) => {
    const place = variant.scale.place === 'block' ? `scale multiples from a ${variant.scale.multiples}` : 'a scale index per group of 4 blocks (prototype)';
    const label = `lattice gemv (int8 inputs, ${variant.dotPath} dot) D3 q = ${variant.q}, ${counted(variant.rhsTile, 'right-hand side')} per tile, ${variant.leaderTable.copies} leader table copies of ${variant.leaderTable.entries} entries, ${place}${variant.subgroups ? ', subgroups' : ''}`;
    return compileGemvWithSums(device, pipelineLayout, label, latticeGemvI8ShaderSource(variant));
  },
  key: (variant) => `${variant.q}/${variant.scale.place === 'block' ? variant.scale.multiples : `group:${variant.scale.name}`}/${variant.indexBits}/${variant.rhsTile}/${variant.subgroups}/${variant.dotPath}/${variant.leaderTable.copies}/${variant.leaderTable.entries}`,
});

/** Arguments of {@link dispatchLatticeGemvI8}: X, Y and the options of `GemvCallArgs`, W and the dot path. */
export interface LatticeGemvI8Args extends GemvCallArgs, SharedInputsI8Arg, GemvOutputArgs, LeaderTableArgs {
  /** Ŵ: n × cols, d3-q6-deterministic (see {@link latticeInt8InputsUnsupported}). */
  readonly w: GpuDeterministicMatrix;
  /** 'packed': dot4I8Packed (only where WGSL has packed_4x8_integer_dot_product: `dotPathFor(features)`); 'plain': core WGSL. */
  readonly dotPath: DotPath;
  /** W's norms, gains and means gathered once (`MatrixColumnSide.create`); else copied per call. */
  readonly columnSide?: MatrixColumnSide;
  /** How the kernel takes each block's scale multiple (default 'cubic'; 'table' to compare: {@link ScaleMultipleSource}). */
  readonly scaleMultiples?: ScaleMultipleSource;
}

/** The keys of {@link LatticeGemvI8Args}: dispatchLatticeGemvI8 refuses any other (a misspelt option must not run on its default). */
const LATTICE_GEMV_I8_ARG_KEYS = [...GEMV_CALL_ARG_KEYS, ...GEMV_OUTPUT_ARG_KEYS, 'inputsI8', 'leaderCopies', 'padLeaderTable', 'w', 'dotPath', 'columnSide', 'scaleMultiples'] as const satisfies readonly (keyof LatticeGemvI8Args)[];

/**
 * Records Y = ŴᵀX with int8 inputs into `encoder`: x̃ = R·X (when W is rotated) and x̃ to int8 (unless
 * `inputsI8` gives them; inside the rotation's last pass where it can be: `beginGemvI8`), Σx (when W is
 * centred), the product. Scratch buffers go into `scratch`.
 *
 * @example
 * const scratch = new GpuScratch(device);
 * const encoder = device.createCommandEncoder();
 * dispatchLatticeGemvI8(device, encoder, scratch, { w: gpuW, x, y, rhs: 1, dotPath: dotPathFor(engine.features) });
 * device.queue.submit([encoder.finish()]);
 * scratch.destroy();
 */
export function dispatchLatticeGemvI8(device: GPUDevice, encoder: GPUCommandEncoder, scratch: GpuScratch, args: LatticeGemvI8Args): void {
  checkDispatch(device, encoder, scratch, args, 'dispatchLatticeGemvI8');
  checkOptionsObject(args, LATTICE_GEMV_I8_ARG_KEYS, 'dispatchLatticeGemvI8 arguments');
  const what = 'lattice gemv (int8 inputs)';
  const { w } = args;
  checkGpuDeterministicMatrix(w, 'W');
  const why = latticeInt8InputsUnsupported(w.scheme, w.scaleIndexBits);
  check(why === null, () => `${what}: ${why ?? ''}`);
  check(
    LARGEST_DOT * 4 * CUBIC_SCALE * largestMultiple(w) < 2 ** 31,
    () => `${what}: scale multiples up to ${largestMultiple(w)} are too large for the kernel's i32 group sums (4 blocks of 6·k·⟨P, x̂⟩, |⟨P, x̂⟩| ≤ ${LARGEST_DOT})`,
  );
  const scaleMultiples = args.scaleMultiples ?? DEFAULT_SCALE_MULTIPLES;
  checkOneOf(scaleMultiples, SCALE_MULTIPLE_SOURCES, `${what}: scaleMultiples`);
  const words = operandWordsPerColumn(w);
  recordGemvI8(device, encoder, scratch, args, what, {
    w,
    centred: w.means !== null,
    q: w.scheme.q,
    scale: { place: 'block', multiples: scaleMultiples },
    indexBits: w.scaleIndexBits,
    kernelTableBytes: multipleTableBytes(scaleMultiples),
    indices: w.scaleIndices,
    indexWords: words.scaleIndices,
    columnsPerBinding: (maxBinding, alignment) => operandColumnsPerBinding(w, maxBinding, alignment),
    indexWindow: (first, count, alignment) => operandWindows(w, first, count, alignment).scaleIndices,
    sides: (ranges) => columnSideWindows(encoder, scratch, w, ranges, what, args.columnSide),
    uniforms: {
      column_unit: deterministicColumnUnit(w, CUBIC_SCALE), // the kernel takes the cubic's 1/6 here
      multiple_cubic: multipleCubic(w.multiples),
      group_multiples: NO_GROUP_MULTIPLES,
    },
  });
}

/** The uniform's group multiples where the scale is per block (unused there). */
const NO_GROUP_MULTIPLES: readonly number[] = /*#__PURE__*/ (() => new Array<number>(MAX_GPU_MULTIPLES).fill(0))();

/** What differs between the matrices the kernel reads: where their scale indices sit and what they mean. */
export interface ScaleIndexReader {
  readonly w: GemvOperand & InputsI8Operand & { readonly codes: GPUBuffer };
  readonly centred: boolean;
  readonly q: number;
  readonly scale: GemvI8Scale;
  readonly indexBits: number;
  /** Workgroup bytes of the kernel's own tables beside the leaders. */
  readonly kernelTableBytes: number;
  readonly indices: GPUBuffer;
  /** Scale-index words per column. */
  readonly indexWords: number;
  /** Columns per binding of the matrix's own fields (the codes' quads are counted apart). */
  readonly columnsPerBinding: (maxBindingBytes: number, alignment: number) => number;
  readonly indexWindow: (first: number, count: number, alignment: number) => BindingWindow;
  /** The norms, gains and means of each range of columns. */
  readonly sides: (ranges: readonly { readonly first: number; readonly count: number }[]) => ColumnSideWindow[];
  readonly uniforms: { readonly column_unit: number; readonly multiple_cubic: readonly number[]; readonly group_multiples: readonly number[] };
}

/**
 * Records the GEMV of {@link dispatchLatticeGemvI8} (or the group-scaled prototype's,
 * d3GroupScaledGemvI8.ts) once their matrix is checked.
 */
export function recordGemvI8(device: GPUDevice, encoder: GPUCommandEncoder, scratch: GpuScratch, args: GemvCallArgs & SharedInputsI8Arg & GemvOutputArgs & LeaderTableArgs & { readonly dotPath: DotPath }, what: string, reader: ScaleIndexReader): void {
  const { w } = reader;
  checkOneOf(args.dotPath, DOT_PATHS, `${what}: dotPath`);
  const format = gemvOutputFormat(args, what);
  // x̂ given, or rounded inside the rotation's last pass where it can be; else undefined: rounded per range below.
  const { call, shared } = beginGemvI8(device, encoder, scratch, w, args, what, { yBytes: activationBytes(format), sumsX: reader.centred }, d3InputsI8Form(device, encoder, scratch, w));
  const { rhs, alignment, maxBinding, maxGroups, subgroups, testMode } = call;
  const output = resolveGemvOutput(device, scratch, args, format, w.cols, what);

  const groups = inputGroupsOf(w);
  checkCodeQuads(w.codes, groups * w.cols, what);
  const rhsTile: RhsTile = rhs === 1 ? 1 : 8;
  const rhsRanges = inputRangesI8(call, groups);
  const columnRangeList = columnRanges(
    w.cols,
    Math.min(reader.columnsPerBinding(maxBinding, alignment), codeQuadColumnsPerBinding(4 * groups, maxBinding, alignment), maxGroups * I8_WORKGROUP_COLUMNS),
  );
  const sides = reader.sides(columnRangeList);
  const leaderTable = i8LeaderTable(reader.q ** 3, rhsTile, reader.kernelTableBytes, device.limits.maxComputeWorkgroupStorageSize, args);
  const { layout, pipeline } = pipelines.get(device, {
    q: reader.q,
    scale: reader.scale,
    indexBits: reader.indexBits,
    rhsTile,
    subgroups,
    dotPath: args.dotPath,
    leaderTable,
  });

  const pass = encoder.beginComputePass({ label: what });
  for (const rhsRange of rhsRanges) {
    const rhsLabel = `right-hand sides ${rhsRange.first}…${rhsRange.first + rhsRange.count - 1}`;
    const xWindow = call.xWindow(rhsRange.first, rhsRange.count);
    const yWindow = output.yWindow(rhsRange.first, rhsRange.count);
    const inputs = inputsI8ForRange(device, pass, scratch, call, w, shared, rhsRange, `${what} x̃ to int8, ${rhsLabel}`);
    const sums = scratch.buffer(`${what} Σx (${rhsLabel})`, reader.centred ? 4 * rhsRange.count : 4, STORAGE_USAGE);
    columnRangeList.forEach((columnRange, chunk) => {
      const indexWindow = reader.indexWindow(columnRange.first, columnRange.count, alignment);
      const codeWindow = codeQuadWindow(groups, columnRange.first, columnRange.count, alignment);
      const side = sides[chunk] as ColumnSideWindow;
      const label = `${what} W columns ${columnRange.first}…${columnRange.first + columnRange.count - 1}, ${rhsLabel}`;
      const params = Params.pack({
        cols: columnRange.count,
        rows: w.rows,
        code_first: codeWindow.firstElement,
        code_words: groups,
        index_first: indexWindow.firstElement,
        index_words: reader.indexWords,
        rhs: rhsRange.count,
        x_first: xWindow.firstElement,
        y_first: yWindow.first + columnRange.first,
        y_stride: w.cols,
        x_codes_first: inputs.codesFirst,
        x_scales_first: inputs.scalesFirst,
        ...output.uniforms(columnRange.first),
        has_gains: side.hasGains ? 1 : 0,
        has_means: side.hasMeans ? 1 : 0,
        side_first: side.first,
        side_stride: side.stride,
        subgroup_test_mode: testMode,
        ...reader.uniforms,
      });
      pass.setBindGroup(
        0,
        createKernelBindGroup(device, layout, label, [
          { buffer: scratch.uniform(`${label} params`, params) },
          windowBinding(w.codes, codeWindow),
          windowBinding(reader.indices, indexWindow),
          { buffer: side.buffer },
          inputs.binding,
          xWindow.binding,
          { buffer: sums },
          output.bias,
          yWindow.binding,
        ]),
      );
      dispatchGemvRange(pass, pipeline, chunk === 0 && reader.centred, rhsRange.count, Math.ceil(columnRange.count / I8_WORKGROUP_COLUMNS));
    });
  }
  pass.end();
  call.checkNonFiniteTail(format);
}

/** Options of {@link latticeGemvI8}. */
export type LatticeGemvI8Options = Pick<LatticeGemvI8Args, 'maxBindingBytes' | 'subgroups' | 'subgroupTestMode' | 'dotPath' | 'columnSide' | 'leaderCopies' | 'padLeaderTable' | 'scaleMultiples'>;

/** The keys of {@link LatticeGemvI8Options}: the host GEMV refuses any other (one is forwarded to the dispatch, where `outputFormat: 'f16'` would make Y unreadable). */
const LATTICE_GEMV_I8_OPTION_KEYS = ['maxBindingBytes', 'subgroups', 'subgroupTestMode', 'dotPath', 'columnSide', 'leaderCopies', 'padLeaderTable', 'scaleMultiples'] as const satisfies readonly (keyof LatticeGemvI8Options)[];

/**
 * Y = ŴᵀX with int8 inputs for X given on the CPU: uploads X, records the GEMV, reads Y back. For tests
 * and benchmarks.
 *
 * @example
 * const y = await latticeGemvI8(device, uploadLatticeMatrix(device, quantize(w, { scheme: 'd3-q6-deterministic' })), x, { dotPath: 'packed' });
 */
export async function latticeGemvI8(device: GPUDevice, w: GpuDeterministicMatrix, x: Matrix | Float32Array, options: LatticeGemvI8Options): Promise<Matrix> {
  checkOptionsObject(options, LATTICE_GEMV_I8_OPTION_KEYS, 'latticeGemvI8 options');
  return gemvOnHost(device, 'lattice gemv (int8 inputs)', w, x, options, (run, io, given) => dispatchLatticeGemvI8(device, run.encoder, run.scratch, { ...given, ...io, w }));
}
