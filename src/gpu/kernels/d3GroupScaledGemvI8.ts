import scalePerGroupSource from '../../../shaders/d3_scale_per_group.wgsl?raw';
import { check, describeValue, checkLabel } from '../../errors.js';
import { checkOptionsObject } from '../../quantize/strictOptions.js';
import type { Matrix } from '../../matrix.js';
import { GROUP_SCALE_BLOCKS, GROUP_SCALE_INDEX_BITS, groupIndexWordsPerColumn, groupScaledBaseScheme, type D3GroupScaledMatrix } from '../../quantize/d3GroupScale.js';
import { latticeSpec } from '../../quantize/latticeSpec.js';
import { codeBufferByteLength, createBufferWithData, STORAGE_USAGE } from '../buffers.js';
import { checkBufferHolds, deterministicColumnUnit, largestMultiple, MAX_GPU_MULTIPLES, multipleWords } from '../latticeOperand.js';
import type { GpuScratch } from '../scratch.js';
import { bindingWindow, itemsPerBinding } from '../workSplit.js';
import { checkDispatch } from './dispatchChecks.js';
import type { DotPath } from './e8Matmul.js';
import { GEMV_CALL_ARG_KEYS, GEMV_OUTPUT_ARG_KEYS, gemvOnHost, type GemvCallArgs, type GemvOperand, type GemvOutputArgs } from './gemvCall.js';
import { checkCodeQuads, i8LeaderTable, type LeaderTable, type LeaderTableArgs } from './gemvI8Common.js';
import type { InputsI8Operand, SharedInputsI8Arg } from './inputsI8.js';
import { LARGEST_DOT, recordGemvI8, type GemvI8Scale } from './latticeGemvI8.js';

/*
 * The GEMV of the group-scaled D3 prototype (src/quantize/d3GroupScale.ts: one scale index per group
 * of 4 blocks; not a scheme of the library, and not exported by the package): the int8-input
 * deterministic GEMV (latticeGemvI8.ts) with the scale taken per group
 * (shaders/d3_scale_per_group.wgsl), which the GPU benchmark times beside d3-q6-deterministic's
 * (bench/README.md, "D3: one scale index per group of 4 blocks?").
 */

/** The kernel's scale: one index per group, its multiple from a 16-entry workgroup table. */
export const D3_GROUP_SCALE: GemvI8Scale = { place: 'group', name: 'd3_scale_per_group', wgsl: scalePerGroupSource };

/** Workgroup bytes of the group-scaled kernel's table of multiples (shaders/d3_scale_per_group.wgsl: 16 i32). */
const GROUP_MULTIPLES_TABLE_BYTES = 4 * MAX_GPU_MULTIPLES;

/** The largest |Σ_b ⟨P_b, x̂_b⟩| over a group of 4 blocks: the group-scaled kernel's i32 sum before its multiple. */
const LARGEST_GROUP_DOT = GROUP_SCALE_BLOCKS * LARGEST_DOT;

/**
 * The leader table of the group-scaled kernel on a device with `workgroupBytes` of workgroup memory
 * (`i8LeaderTable` beside its 64-byte table of multiples).
 *
 * @example
 * d3GroupScaledLeaderTable(1, 32768); // { copies: 16, entries: 216 }
 * d3GroupScaledLeaderTable(1, 32768, { leaderCopies: 32 }); // { copies: 32, entries: 216 }
 */
export function d3GroupScaledLeaderTable(rhsTile: 1 | 8, workgroupBytes: number, args: LeaderTableArgs = {}): LeaderTable {
  return i8LeaderTable(6 ** 3, rhsTile, GROUP_MULTIPLES_TABLE_BYTES, workgroupBytes, args);
}

/**
 * A {@link D3GroupScaledMatrix} on the GPU (a prototype the benchmark times; not a scheme of the
 * library): its codes (sized in whole 16-byte quads, as the int8-input GEMVs read them), group scale
 * indices and norms. Made by {@link GpuD3GroupScaledMatrix.upload}, or from buffers laid out as those
 * (the benchmark's copies); `destroy()` frees the buffers.
 */
export class GpuD3GroupScaledMatrix implements GemvOperand, InputsI8Operand {
  readonly rows: number;
  readonly cols: number;
  readonly length: number;
  readonly keptLength: number;
  readonly blocksPerColumn: number;
  readonly groupsPerColumn: number;
  /** Its columns are taken as given: no rotation (so no seed). */
  readonly rotate = false;
  readonly seed = 0;
  readonly unit: number;
  readonly multiples: Int32Array;
  private destroyed = false;

  constructor(
    m: Omit<D3GroupScaledMatrix, 'codes' | 'groupIndices' | 'norms'>,
    readonly codes: GPUBuffer,
    readonly groupIndices: GPUBuffer,
    readonly norms: GPUBuffer,
  ) {
    check(Number.isInteger(m.rows) && m.rows >= 1 && Number.isInteger(m.cols) && m.cols >= 1, () => `GpuD3GroupScaledMatrix: ${m.rows} × ${m.cols} is not a matrix shape`);
    check(m.blocksPerColumn === Math.ceil(m.rows / latticeSpec('D3').lattice.dimension) && m.groupsPerColumn === Math.ceil(m.blocksPerColumn / GROUP_SCALE_BLOCKS), 'GpuD3GroupScaledMatrix: blocksPerColumn and groupsPerColumn must be ceil(rows / 3) and ceil(blocks / 4)');
    check(m.multiples instanceof Int32Array && m.multiples.length >= 1 && m.multiples.length <= 2 ** GROUP_SCALE_INDEX_BITS, () => `GpuD3GroupScaledMatrix: 1…${2 ** GROUP_SCALE_INDEX_BITS} multiples, got ${describeValue(m.multiples.length)}`);
    const largest = largestMultiple(m);
    check(LARGEST_GROUP_DOT * largest < 2 ** 31, () => `GpuD3GroupScaledMatrix: a multiple of ${largest} is too large for the kernel's i32 group sums (|Σ⟨P, x̂⟩| ≤ ${LARGEST_GROUP_DOT})`);
    check(Number.isFinite(m.unit) && m.unit > 0, () => `GpuD3GroupScaledMatrix: unit must be positive, got ${describeValue(m.unit)}`);
    checkCodeQuads(codes, m.groupsPerColumn * m.cols, 'GpuD3GroupScaledMatrix');
    checkBufferHolds(groupIndices, 4 * groupIndexWordsPerColumn(m.groupsPerColumn) * m.cols, 'GpuD3GroupScaledMatrix.groupIndices');
    checkBufferHolds(norms, 4 * m.cols, 'GpuD3GroupScaledMatrix.norms');
    this.rows = m.rows;
    this.cols = m.cols;
    this.length = m.rows;
    this.keptLength = m.rows;
    this.blocksPerColumn = m.blocksPerColumn;
    this.groupsPerColumn = m.groupsPerColumn;
    this.unit = m.unit;
    this.multiples = Int32Array.from(m.multiples);
  }

  /**
   * Uploads `m`.
   *
   * @example
   * const w = GpuD3GroupScaledMatrix.upload(device, encodeD3GroupScaled(gaussianMatrix(4096, 64, 1)), 'prototype W');
   * w.destroy();
   */
  static upload(device: GPUDevice, m: D3GroupScaledMatrix, label: string): GpuD3GroupScaledMatrix {
    checkLabel(label, 'GpuD3GroupScaledMatrix.upload');
    const buffers = [
      createBufferWithData(device, `${label} codes`, m.codes, STORAGE_USAGE, codeBufferByteLength(m.codes.byteLength)), // whole quads, as the kernel reads them
      createBufferWithData(device, `${label} group scale indices`, m.groupIndices, STORAGE_USAGE),
      createBufferWithData(device, `${label} norms`, m.norms, STORAGE_USAGE),
    ] as const;
    try {
      return new GpuD3GroupScaledMatrix(m, ...buffers);
    } catch (error) {
      for (const buffer of buffers) buffer.destroy();
      throw error;
    }
  }

  get isDestroyed(): boolean {
    return this.destroyed;
  }

  destroy(): void {
    this.destroyed = true;
    this.codes.destroy();
    this.groupIndices.destroy();
    this.norms.destroy();
  }
}

/** Arguments of {@link dispatchD3GroupScaledGemvI8}: those of {@link dispatchLatticeGemvI8} with the prototype's W. */
export interface D3GroupScaledGemvI8Args extends GemvCallArgs, SharedInputsI8Arg, GemvOutputArgs, LeaderTableArgs {
  readonly w: GpuD3GroupScaledMatrix;
  readonly dotPath: DotPath;
}

/** The keys of {@link D3GroupScaledGemvI8Args}: the dispatch refuses any other (a misspelt option must not run on its default). */
const D3_GROUP_SCALED_GEMV_I8_ARG_KEYS = [...GEMV_CALL_ARG_KEYS, ...GEMV_OUTPUT_ARG_KEYS, 'inputsI8', 'leaderCopies', 'padLeaderTable', 'w', 'dotPath'] as const satisfies readonly (keyof D3GroupScaledGemvI8Args)[];

/**
 * Records Y = ŴᵀX with int8 inputs for the group-scaled D3 prototype (one scale index per group of 4
 * blocks: shaders/d3_scale_per_group.wgsl): the int8-input deterministic GEMV with one multiple per
 * group, for the benchmark to time beside d3-q6-deterministic's. CPU twin: `dequantizeD3GroupScaled(m)ᵀ·x̃`
 * on x̃ rounded as `quantizeInputsI8` does.
 *
 * @example
 * dispatchD3GroupScaledGemvI8(device, encoder, scratch, { w, x, y, rhs: 1, dotPath: dotPathFor(features) });
 */
export function dispatchD3GroupScaledGemvI8(device: GPUDevice, encoder: GPUCommandEncoder, scratch: GpuScratch, args: D3GroupScaledGemvI8Args): void {
  checkDispatch(device, encoder, scratch, args, 'dispatchD3GroupScaledGemvI8');
  checkOptionsObject(args, D3_GROUP_SCALED_GEMV_I8_ARG_KEYS, 'dispatchD3GroupScaledGemvI8 arguments');
  const what = 'group-scaled D3 gemv (int8 inputs, prototype)';
  const { w } = args;
  check(w instanceof GpuD3GroupScaledMatrix, `${what}: W must be a GpuD3GroupScaledMatrix`);
  check(!w.isDestroyed, `${what}: W was destroyed`);
  const indexWords = groupIndexWordsPerColumn(w.groupsPerColumn);
  recordGemvI8(device, encoder, scratch, args, what, {
    w,
    centred: false,
    q: 6,
    scale: D3_GROUP_SCALE,
    indexBits: GROUP_SCALE_INDEX_BITS,
    kernelTableBytes: GROUP_MULTIPLES_TABLE_BYTES,
    indices: w.groupIndices,
    indexWords,
    columnsPerBinding: (maxBinding, alignment) => itemsPerBinding(4 * indexWords, maxBinding, alignment),
    indexWindow: (first, count, alignment) => bindingWindow(4 * indexWords * first, 4 * indexWords * count, alignment),
    sides: (ranges) => ranges.map((r) => ({ buffer: w.norms, first: r.first, stride: w.cols, hasGains: false, hasMeans: false })),
    uniforms: {
      column_unit: deterministicColumnUnit({ scheme: groupScaledBaseScheme(), unit: w.unit, length: w.length }), // k itself: no cubic
      multiple_cubic: [0, 0, 0, 0],
      group_multiples: multipleWords(w),
    },
  });
}

/** Options of {@link d3GroupScaledGemvI8}. */
export type D3GroupScaledGemvI8Options = Pick<D3GroupScaledGemvI8Args, 'maxBindingBytes' | 'subgroups' | 'subgroupTestMode' | 'dotPath' | 'leaderCopies' | 'padLeaderTable'>;

/** The keys of {@link D3GroupScaledGemvI8Options}: the host GEMV refuses any other (it forwards its options to the dispatch). */
const D3_GROUP_SCALED_GEMV_I8_OPTION_KEYS = ['maxBindingBytes', 'subgroups', 'subgroupTestMode', 'dotPath', 'leaderCopies', 'padLeaderTable'] as const satisfies readonly (keyof D3GroupScaledGemvI8Options)[];

/**
 * Y = ŴᵀX of the group-scaled prototype with int8 inputs for X given on the CPU: uploads X, records the
 * GEMV, reads Y back. For tests and benchmarks.
 *
 * @example
 * const y = await d3GroupScaledGemvI8(device, GpuD3GroupScaledMatrix.upload(device, encodeD3GroupScaled(w), 'W'), x, { dotPath: 'packed' });
 */
export async function d3GroupScaledGemvI8(device: GPUDevice, w: GpuD3GroupScaledMatrix, x: Matrix | Float32Array, options: D3GroupScaledGemvI8Options): Promise<Matrix> {
  checkOptionsObject(options, D3_GROUP_SCALED_GEMV_I8_OPTION_KEYS, 'd3GroupScaledGemvI8 options');
  return gemvOnHost(device, 'group-scaled D3 gemv (int8 inputs, prototype)', w, x, options, (run, io, given) => dispatchD3GroupScaledGemvI8(device, run.encoder, run.scratch, { ...given, ...io, w }));
}
