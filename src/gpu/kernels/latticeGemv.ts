import columnSumsSource from '../../../shaders/gemv_column_sums.wgsl?raw';
import xSumsSource from '../../../shaders/gemv_x_sums.wgsl?raw';
import gemvSource from '../../../shaders/lattice_gemv.wgsl?raw';
import { check, counted, describeValue } from '../../errors.js';
import { checkOptionsObject } from '../../quantize/strictOptions.js';
import type { Matrix } from '../../matrix.js';
import type { LatticeName } from '../../quantize/latticeSpec.js';
import { schemeLattice } from '../../quantize/quantize.js';
import { STORAGE_USAGE } from '../buffers.js';
import { checkDispatch } from './dispatchChecks.js';
import {
  checkGpuDeterministicMatrix,
  columnRanges,
  columnSideWindows,
  MAX_GPU_MULTIPLES,
  multipleWords,
  operandColumnsPerBinding,
  operandWindows,
  operandWordsPerColumn,
  type GpuDeterministicMatrix,
  type MatrixColumnSide,
  deterministicColumnUnit,
} from '../latticeOperand.js';
import { createKernelBindGroup, KernelPipelines, windowBinding } from '../pipelines.js';
import type { GpuScratch } from '../scratch.js';
import { UniformLayout } from '../uniformLayout.js';
import { bindingWindow } from '../workSplit.js';
import { gemvDecodeWithRulesWgsl } from './gemvDecode.js';
import { activationBytes } from './activationIo.js';
import { GEMV_OUTPUT_ARG_KEYS, GEMV_OUTPUT_MEMBERS, beginGemv, compileGemvWithSums, dispatchGemvRange, GEMV_OUTPUT_WGSL, gemvOnHost, gemvOutputFormat, resolveGemvOutput, type GemvCallArgs, type GemvOutputArgs } from './gemvCall.js';

/*
 * Weight-only products on the GPU (shaders/lattice_gemv.wgsl): y = Ŵᵀx for a lattice-quantized W and
 * an f32 vector x (GEMV, the LLM decode step), and Y = ŴᵀX for several right-hand sides. The kernel
 * reads every packed code word of W once per 8 right-hand sides (consecutive lanes read consecutive
 * words of a column) and decodes in the kernel, compiled per scheme (lattice, q, code and scale-index
 * widths are constants: no runtime division in the inner loop; D3 leaders from a replicated table in
 * workgroup memory);
 * x is rotated with W's seed first (by the GPU Hadamard kernel unless the caller passes R·x). CPU
 * twin: dequantize(Ŵ)ᵀ·X.
 */

/** Invocations per workgroup (the shader's THREADS). */
export const LATTICE_GEMV_THREADS = 256;
/** f32 staged per chunk (the shader's X_CHUNK). */
export const LATTICE_GEMV_X_CHUNK = 3072;
/** Workgroup memory of the kernel besides the leader table: the staged chunk and the multiples (the shader's MULTIPLES). */
const STAGED_BYTES = 4 * LATTICE_GEMV_X_CHUNK + 4 * MAX_GPU_MULTIPLES;
/** Largest D3 leader table (q³ entries of 16 bytes per copy). */
const MAX_TABLE_LEADERS = 1024;
/** Right-hand sides per workgroup: 1 for a vector, 8 for a matrix (the compile-time variants). */
type RhsTile = 1 | 8;
/** Invocations per W column: 32 for a vector (8 columns per workgroup), 8 with 8 right-hand sides (32 columns). */
function lanesFor(rhsTile: RhsTile): number {
  return rhsTile === 1 ? 32 : 8;
}

/** The kernel's uniform struct (`params`); its WGSL is generated and put in front of the kernel. */
// A pure IIFE, not a pure `new`: bundlers keep an argument with a spread (it may run getters).
const Params = /*#__PURE__*/ (() => new UniformLayout('GemvParams', {
  cols: 'u32', // W columns in this dispatch
  rows: 'u32', // n: entries of an original x column
  length: 'u32', // N: entries of a rotated x column
  kept: 'u32', // keptLength
  code_first: 'u32', // word offset of this dispatch's first W column in the codes binding
  code_words: 'u32', // code words per column
  index_first: 'u32',
  index_words: 'u32',
  rhs: 'u32', // right-hand sides in this dispatch
  x_rotated_first: 'u32', // element offset of x̃ column 0 in its binding (columns N apart)
  x_first: 'u32', // element offset of x column 0 in its binding (columns n apart)
  chunk_words: 'u32', // code words per column per x̃ chunk
  chunk_entries: 'u32', // x̃ entries per right-hand side per chunk: chunk_words · per_word · dim
  y_first: 'u32', // element (f32) or half (f16) of Y[first W column of this dispatch, 0] in its binding
  y_stride: 'u32', // elements between Y columns (all W columns)
  ...GEMV_OUTPUT_MEMBERS,
  has_gains: 'u32',
  has_means: 'u32',
  side_first: 'u32', // word of this dispatch's first norm in the side binding
  side_stride: 'u32', // words from a norm to its gain, and from the gain to the mean
  column_unit: 'f32', // unit / (pointScale · √N)
  multiples: 'array<vec4<i32>, 4>', // k_j of the scale grid (MAX_GPU_MULTIPLES, zeros past the grid)
}))();

/**
 * The scheme part of a compiled variant: lattice, q, code and scale-index widths, and the copies of
 * the D3 leader table in workgroup memory (0: decoded per block).
 */
export interface LatticeGemvScheme {
  readonly lattice: LatticeName;
  readonly q: number;
  readonly codeBits: number;
  readonly indexBits: number;
  readonly leaderTableCopies: 0 | 1 | 2 | 4 | 8;
}

/** A compiled variant: the right-hand-side tile and the scheme. */
export interface LatticeGemvVariant extends LatticeGemvScheme {
  readonly rhsTile: RhsTile;
}

/** d3-q6-deterministic as it runs on a device with the minimum 16 KB of workgroup memory. */
const D3_Q6_SCHEME: LatticeGemvScheme = { lattice: 'D3', q: 6, codeBits: 8, indexBits: 2, leaderTableCopies: 1 };

/**
 * Copies of the D3 leader table that fit next to the staged chunk in `workgroupBytes` (8 at most, 0
 * for other lattices, q³ > 1024, or no room).
 *
 * @example
 * latticeLeaderTableCopies('D3', 6, 16384); // 1: 216 × 16 bytes next to 12 KB of staged x̃
 */
export function latticeLeaderTableCopies(lattice: LatticeName, q: number, workgroupBytes: number): LatticeGemvScheme['leaderTableCopies'] {
  const entries = q ** 3;
  if (lattice !== 'D3' || entries > MAX_TABLE_LEADERS) return 0;
  for (const copies of [8, 4, 2, 1] as const) {
    if (STAGED_BYTES + 16 * entries * copies <= workgroupBytes) return copies;
  }
  return 0;
}

/**
 * The WGSL of one variant: the right-hand-side tile and lanes per column, the scheme's packing as
 * constants, the decode with q a constant, the parameters, the kernel. The scheme defaults to
 * d3-q6-deterministic with one table copy.
 *
 * @example
 * latticeGemvShaderSource(1, { lattice: 'E8', q: 16, codeBits: 32, indexBits: 2, leaderTableCopies: 0 });
 */
export function latticeGemvShaderSource(rhsTile: RhsTile, scheme: LatticeGemvScheme = D3_Q6_SCHEME): string {
  const { lattice, q, codeBits, indexBits, leaderTableCopies } = scheme;
  check(Number.isInteger(codeBits) && codeBits >= 1 && codeBits <= 32, () => `lattice gemv: codeBits must be 1…32, got ${describeValue(codeBits)}`);
  check(Number.isInteger(indexBits) && indexBits >= 1 && indexBits <= 8, () => `lattice gemv: indexBits must be 1…8, got ${describeValue(indexBits)}`);
  check(leaderTableCopies === 0 || (lattice === 'D3' && q ** 3 <= MAX_TABLE_LEADERS), () => `lattice gemv: no leader table for ${lattice} q = ${q}`);
  const perWord = Math.floor(32 / codeBits);
  const indexPerWord = Math.floor(32 / indexBits);
  const entries = leaderTableCopies > 0 ? q ** 3 : 0;
  return [
    `const RHS_TILE: u32 = ${rhsTile}u;`,
    `const LANES: u32 = ${lanesFor(rhsTile)}u;`,
    `const DIM: u32 = ${lattice === 'D3' ? 3 : 8}u;`,
    `const CODE_BITS: u32 = ${codeBits}u;`,
    `const PER_WORD: u32 = ${perWord}u;`,
    `const INDEX_BITS: u32 = ${indexBits}u;`,
    `const INDEX_PER_WORD: u32 = ${indexPerWord}u;`,
    `const INDEX_ALIGNED: bool = ${indexPerWord % perWord === 0};`,
    `const USE_LUT: bool = ${leaderTableCopies > 0};`,
    `const LUT_ENTRIES: u32 = ${entries}u;`,
    `const LUT_REPLICAS: u32 = ${Math.max(leaderTableCopies, 1)}u;`,
    `const LUT_SIZE: u32 = ${Math.max(entries * leaderTableCopies, 1)}u;`,
    gemvDecodeWithRulesWgsl(lattice, q),
    Params.wgsl(),
    gemvSource,
    columnSumsSource,
    xSumsSource,
    GEMV_OUTPUT_WGSL,
  ].join('\n');
}

/** Per device and variant, one shader module with two pipelines: the product (`main`) and Σx (`column_sums`). */
const pipelines = /*#__PURE__*/ new KernelPipelines({
  label: 'lattice gemv',
  bindings: [
    'uniform',
    'read-only-storage', // bias
    'read-only-storage', // W codes
    'read-only-storage', // W scale indices
    'read-only-storage', // W norms, gains, means
    'read-only-storage', // x̃ = R·x
    'read-only-storage', // x (for Σx)
    'storage', // Σx per right-hand side
    'storage', // Y
  ],
  compile: (device, pipelineLayout, variant: LatticeGemvVariant) => {
    const { rhsTile } = variant;
    const label = `lattice gemv ${variant.lattice} q = ${variant.q} (${counted(rhsTile, 'right-hand side')} per workgroup${variant.leaderTableCopies > 0 ? `, leader table × ${variant.leaderTableCopies}` : ''})`;
    return compileGemvWithSums(device, pipelineLayout, label, latticeGemvShaderSource(rhsTile, variant));
  },
  key: (v) => `${v.rhsTile}/${v.lattice}/${v.q}/${v.codeBits}/${v.indexBits}/${v.leaderTableCopies}`,
});

/** Arguments of `dispatchLatticeGemv`: X, Y and the options of `GemvCallArgs` (`rhs` defaults to 1), and W. */
export interface LatticeGemvArgs extends Omit<GemvCallArgs, 'rhs' | 'subgroupTestMode'>, GemvOutputArgs {
  /** Ŵ: n × cols, lattice-quantized (D3, E8 or Z^8); column j gives output j. */
  readonly w: GpuDeterministicMatrix;
  /** Right-hand sides (columns of X); default 1 (GEMV). */
  readonly rhs?: number;
  /** W's norms, gains and means gathered once (`MatrixColumnSide.create`); else copied per call. */
  readonly columnSide?: MatrixColumnSide;
}

/** The keys of {@link LatticeGemvArgs} (GemvCallArgs' but subgroupTestMode): dispatchLatticeGemv refuses any other (a misspelt option must not run on its default). */
const LATTICE_GEMV_ARG_KEYS = ['x', 'xOffset', 'y', 'yOffset', 'rhs', 'xRotated', 'xRotatedOffset', 'maxBindingBytes', 'subgroups', ...GEMV_OUTPUT_ARG_KEYS, 'w', 'columnSide'] as const satisfies readonly (keyof LatticeGemvArgs)[];

/**
 * Records Y = ŴᵀX into `encoder` (rotation of X with W's seed included unless `xRotated` is given),
 * with a bias, as f16 or added to Y's old values when asked (`GemvOutputArgs`). W's columns and X's columns are split across dispatches when they exceed one storage binding or
 * the dispatch limits. Scratch buffers go into `scratch`: destroy it after submitting.
 *
 * @example
 * // y = Ŵᵀx for one activation vector x (n entries) on the GPU:
 * const scratch = new GpuScratch(device);
 * const encoder = device.createCommandEncoder({ label: 'decode step' });
 * dispatchLatticeGemv(device, encoder, scratch, { w: gpuW, x, y }); // y: 4·cols bytes
 * device.queue.submit([encoder.finish()]);
 * scratch.destroy();
 */
export function dispatchLatticeGemv(device: GPUDevice, encoder: GPUCommandEncoder, scratch: GpuScratch, args: LatticeGemvArgs): void {
  checkDispatch(device, encoder, scratch, args, 'dispatchLatticeGemv');
  checkOptionsObject(args, LATTICE_GEMV_ARG_KEYS, 'dispatchLatticeGemv arguments');
  const { w } = args;
  checkGpuDeterministicMatrix(w, 'W');
  const format = gemvOutputFormat(args, 'gemv');
  const call = beginGemv(device, encoder, scratch, w, { ...args, rhs: args.rhs ?? 1 }, 'gemv', { yBytes: activationBytes(format), sumsX: w.means !== null });
  const { rhs, alignment, maxBinding, maxGroups, xRotated, xRotatedOffset, xWindow: xWindowOf, rhsRanges } = call;
  const output = resolveGemvOutput(device, scratch, args, format, w.cols, 'gemv');

  const rhsTile: RhsTile = rhs === 1 ? 1 : 8;
  const lattice = schemeLattice(w.scheme);
  const dim = lattice.dimension;
  const perWord = Math.floor(32 / w.codeBits);
  const entriesPerWord = perWord * dim;
  const lanes = lanesFor(rhsTile);
  const columnsPerWorkgroup = LATTICE_GEMV_THREADS / lanes;
  let chunkWords = Math.floor(LATTICE_GEMV_X_CHUNK / rhsTile / entriesPerWord);
  if (chunkWords >= lanes) chunkWords -= chunkWords % lanes;
  const words = operandWordsPerColumn(w);

  const columnRangesList = columnRanges(w.cols, Math.min(operandColumnsPerBinding(w, maxBinding, alignment), maxGroups * columnsPerWorkgroup));
  const sides = columnSideWindows(encoder, scratch, w, columnRangesList, 'gemv', args.columnSide);
  const sumsBuffers = rhsRanges.map((r) => scratch.buffer(`gemv Σx (right-hand sides ${r.first}…)`, w.means ? 4 * r.count : 4, STORAGE_USAGE));
  const columnUnit = deterministicColumnUnit(w);
  const variant: LatticeGemvVariant = {
    rhsTile,
    lattice: w.scheme.lattice,
    q: w.scheme.q,
    codeBits: w.codeBits,
    indexBits: w.scaleIndexBits,
    leaderTableCopies: latticeLeaderTableCopies(w.scheme.lattice, w.scheme.q, device.limits.maxComputeWorkgroupStorageSize),
  };
  const { layout, pipeline } = pipelines.get(device, variant);

  const pass = encoder.beginComputePass({ label: 'lattice gemv' });
  rhsRanges.forEach((rhsRange, rhsChunk) => {
    const xRotatedWindow = bindingWindow(xRotatedOffset + 4 * w.length * rhsRange.first, 4 * w.length * rhsRange.count, alignment);
    const xWindow = xWindowOf(rhsRange.first, rhsRange.count);
    const yWindow = output.yWindow(rhsRange.first, rhsRange.count);
    const sumsBuffer = sumsBuffers[rhsChunk] as GPUBuffer;
    columnRangesList.forEach((columnRange, columnChunk) => {
      const windows = operandWindows(w, columnRange.first, columnRange.count, alignment);
      const side = sides[columnChunk] as (typeof sides)[number];
      const label = `lattice gemv W columns ${columnRange.first}…${columnRange.first + columnRange.count - 1}, right-hand sides ${rhsRange.first}…${rhsRange.first + rhsRange.count - 1}`;
      const params = Params.pack({
        cols: columnRange.count,
        rows: w.rows,
        length: w.length,
        kept: w.keptLength,
        code_first: windows.codes.firstElement,
        code_words: words.codes,
        index_first: windows.scaleIndices.firstElement,
        index_words: words.scaleIndices,
        rhs: rhsRange.count,
        x_rotated_first: xRotatedWindow.firstElement,
        x_first: xWindow.firstElement,
        chunk_words: chunkWords,
        chunk_entries: chunkWords * entriesPerWord,
        y_first: yWindow.first + columnRange.first,
        y_stride: w.cols,
        ...output.uniforms(columnRange.first),
        has_gains: side.hasGains ? 1 : 0,
        has_means: side.hasMeans ? 1 : 0,
        side_first: side.first,
        side_stride: side.stride,
        column_unit: columnUnit,
        multiples: multipleWords(w),
      });
      const bindGroup = createKernelBindGroup(device, layout, label, [
        { buffer: scratch.uniform(`${label} params`, params) },
        output.bias,
        windowBinding(w.codes, windows.codes),
        windowBinding(w.scaleIndices, windows.scaleIndices),
        { buffer: side.buffer },
        windowBinding(xRotated, xRotatedWindow),
        xWindow.binding,
        { buffer: sumsBuffer },
        yWindow.binding,
      ]);
      pass.setBindGroup(0, bindGroup);
      dispatchGemvRange(pass, pipeline, columnChunk === 0 && w.means !== null, rhsRange.count, Math.ceil(columnRange.count / columnsPerWorkgroup), Math.ceil(rhsRange.count / rhsTile));
    });
  });
  pass.end();
  call.checkNonFiniteTail(format);
}

/**
 * Y = ŴᵀX on the GPU for a quantized W already on the GPU and X given on the CPU (a vector of n
 * entries, or an n × rhs matrix): uploads X, rotates it on the GPU, dispatches inside validation error
 * scopes, reads Y back (cols × rhs) and destroys what it created. For tests and benchmarks.
 *
 * @example
 * const y = await latticeGemv(device, gpuW, x); // cols × 1, ≈ dequantize(qW)ᵀ·x
 */
export async function latticeGemv(
  device: GPUDevice,
  w: GpuDeterministicMatrix,
  x: Float32Array | Matrix,
  options: { readonly xRotated?: Float32Array; readonly maxBindingBytes?: number; readonly columnSide?: MatrixColumnSide } = {},
): Promise<Matrix> {
  checkOptionsObject(options, ['xRotated', 'maxBindingBytes', 'columnSide'], 'latticeGemv options');
  // R·X copied now too, as X is scaled then (`gemvOnHost` copies only the options object): read at the
  // call's turn, an array the caller refilled meanwhile is another X's R·X, scaled by this X's exponents.
  const withOwnXRotated = options.xRotated ? { ...options, xRotated: Float32Array.from(options.xRotated) } : options;
  return gemvOnHost(device, 'lattice gemv', w, x, withOwnXRotated, (run, io, given, scaledLikeX) => {
    let xRotated: GPUBuffer | undefined;
    if (given.xRotated) {
      check(given.xRotated.length === w.length * io.rhs, () => `xRotated has ${given.xRotated?.length} entries, expected ${w.length * io.rhs}`);
      xRotated = run.upload('lattice gemv R·X', scaledLikeX(given.xRotated));
    }
    dispatchLatticeGemv(device, run.encoder, run.scratch, { ...io, w, xRotated, maxBindingBytes: given.maxBindingBytes, ...(given.columnSide === undefined ? {} : { columnSide: given.columnSide }) });
  });
}
