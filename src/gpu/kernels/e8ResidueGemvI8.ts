import { checkDispatch } from './dispatchChecks.js';
import dotPackedSource from '../../../shaders/dot_i8_packed.wgsl?raw';
import dotPlainSource from '../../../shaders/dot_i8_plain.wgsl?raw';
import inputsSource from '../../../shaders/e8_inputs_i8.wgsl?raw';
import int8GroupSource from '../../../shaders/int8_group.wgsl?raw';
import repackSource from '../../../shaders/e8_residue_repack.wgsl?raw';
import latticeDecodeSource from '../../../shaders/lattice_decode.wgsl?raw';
import gemvSource from '../../../shaders/e8_residue_gemv_i8.wgsl?raw';
import totalsSource from '../../../shaders/e8_gemv_totals.wgsl?raw';
import quadLoopSource from '../../../shaders/quad_gemv_loop.wgsl?raw';
import quadWordSideSource from '../../../shaders/quad_word_side.wgsl?raw';
import quadInputsDirectSource from '../../../shaders/quad_inputs_direct.wgsl?raw';
import lanesSource from '../../../shaders/universal_gemv_lanes.wgsl?raw';
import multipleCubicSource from '../../../shaders/multiple_cubic.wgsl?raw';
import plainEntrySource from '../../../shaders/universal_gemv_plain.wgsl?raw';
import subgroupEntrySource from '../../../shaders/universal_gemv_subgroup.wgsl?raw';
import xSumsSource from '../../../shaders/gemv_x_sums.wgsl?raw';
import { check, checkLabel, checkOneOf, checkPositiveInteger, counted, describeValue } from '../../errors.js';
import { checkOptionsObject } from '../../quantize/strictOptions.js';
import type { Matrix } from '../../matrix.js';
import type { QuadFormShape } from '../../quantize/quadForm.js';
import { E8_RESIDUE_QUAD_BLOCKS, e8ResidueQuads, e8ResidueUnsupported, leaderOfResidue, type E8ResidueMatrix } from '../../quantize/e8Residues.js';
import { createBufferWithData, STORAGE_USAGE } from '../buffers.js';
import { checkBufferRange } from '../bufferRange.js';
import { checkBufferHolds, CUBIC_SCALE, largestMultiple, RESIDUE_SUM_SCALE, columnRanges, deterministicColumnUnit, type GpuDeterministicMatrix } from '../latticeOperand.js';
import { isRotationLength } from '../../rotation/hadamard.js';
import { createKernelBindGroup, createKernelPipeline, KernelPipelines, windowBinding } from '../pipelines.js';
import { GpuScratch } from '../scratch.js';
import { UniformLayout, type UniformMemberType, type UniformValues } from '../uniformLayout.js';
import type { UniformPacker } from '../uniforms.js';
import { bindingWindow, itemsPerBinding, workgroupGrid } from '../workSplit.js';
import { DOT_PATHS, type DotPath } from './e8Matmul.js';
import { activationBytes } from './activationIo.js';
import { GEMV_OUTPUT_ARG_KEYS, GEMV_OUTPUT_MEMBERS, GEMV_CALL_ARG_KEYS, compileGemvWithSums, dispatchGemvRange, GEMV_OUTPUT_WGSL, gemvOnHost, gemvOutputFormat, resolveGemvOutput, type GemvCallArgs, type GemvOutputArgs, type GemvWithSumsPipelines } from './gemvCall.js';
import { beginGemvI8, INPUTS_I8_ARG_KEYS, quantizeInputsI8, ROTATED_INPUTS_I8_ARG_KEYS, rotateAndRound, type InputsI8Form, type RotatedInputsI8Args } from './inputsI8.js';
import { E8_INPUT_GROUP, e8InputsBytes, e8InputsScalesFirst } from './inputsI8Layout.js';
import { DETERMINISTIC_I8_GEMV_BINDINGS, multipleCubic } from './latticeGemvI8.js';
import { quadRepackPipelines, quadRepackShaderSource, repackDeterministicQuads } from './quadRepack.js';

/*
 * The E8 residue GEMV: Y = ŴᵀX for an e8-q16-deterministic matrix whose leaders were repacked at
 * upload as residue nibbles and a side byte per block (src/quantize/e8Residues.ts: 5 bits per entry
 * read instead of 4.25, ≈ 29 instructions per block (shaders/e8_residue_gemv_i8.wgsl) instead of the nearest-point decode's ≈ 185), with
 * x̃ rounded to int8 per group of 32 coordinates. It is what `QuantizedLinear`'s `int8Inputs` runs
 * for these weights (bench/README.md, "E8: leaders stored as residues"). Pieces:
 * `GpuE8ResidueMatrix.repack` (the form made on the GPU from an uploaded matrix,
 * shaders/e8_residue_repack.wgsl; `.upload` puts the CPU form `e8ResidueForm` on the GPU),
 * `dispatchE8InputsI8` (x̃ to int8, shaders/e8_inputs_i8.wgsl; CPU twin `quantizeE8InputsI8`), and
 * `dispatchE8ResidueGemvI8` (the product with its epilogue: μ_j·Σx for a centred W, the bias, f32 or
 * f16 Y; shaders/e8_residue_gemv_i8.wgsl; CPU twin `e8ResidueGemvReference`), which also rotates and
 * rounds X itself when not given x̂. The inputs' rounding error is bounded per output as the D3
 * int8-input GEMVs' (latticeGemvI8.ts): at most (½ + 2·10⁻⁴)·s_g·Σ_{k∈g}|ŵ̃_k| per group g, here of 32
 * rotated coordinates.
 */

export { E8_INPUT_GROUP } from './inputsI8Layout.js';

/** The largest |2⟨ℓ, x̂⟩| of a block: 8 coordinates of |ℓ| ≤ 32 and |x̂| ≤ 127, doubled. */
const LARGEST_TWICE_DOT = 2 * 8 * 32 * 127;

/** Columns per workgroup of both E8 int8-input GEMVs (8 slots of 32 lanes, 2 columns per lane). */
export const E8_QUAD_WORKGROUP_COLUMNS = 16;

/** Groups of x̂ per workgroup of shaders/e8_inputs_i8.wgsl: one invocation per block, 64 of them. */
export const E8_INPUTS_GROUPS_PER_WORKGROUP = 16;

/** Right-hand sides per tile: the compile-time variants. */
type RhsTile = 1 | 8;

/**
 * The uniform members both E8 int8-input GEMVs (this residue GEMV and the point GEMV,
 * e8PointGemvI8.ts) declare and set alike per range of W columns (`recordE8QuadGemv`); each kernel's
 * layout adds its own (`e8QuadGemvParamsLayout`).
 */
const E8_QUAD_GEMV_MEMBERS = {
  cols: 'u32', // W columns in this dispatch
  quads: 'u32', // quads per column (= x̂ groups per right-hand side)
  rhs: 'u32', // right-hand sides
  rows: 'u32', // n: entries of an original x column (Σx)
  column_first: 'u32', // global index of this dispatch's first column: its ν (·γ) in the side (the point form's keys too)
  means_first: 'u32', // element of the side buffer holding μ of this dispatch's first column
  has_means: 'u32',
  x_first: 'u32', // element offset of x column 0 in its binding (Σx)
  x_scales_first: 'u32', // u32 of x̂'s first scale in the x̂ binding
  y_first: 'u32', // element (f32) or half (f16) of Y[first W column of this dispatch, 0] in its binding
  y_stride: 'u32', // elements between Y columns (all W columns)
  ...GEMV_OUTPUT_MEMBERS,
  subgroup_test_mode: 'u32', // subgroup variant only: 1 forces its fallback, 2 poisons the fallback
} as const satisfies Record<string, UniformMemberType>;

/**
 * An E8 int8-input GEMV's uniform struct: the shared members, then the kernel's `own`. (A function, so
 * that a kernel's module-level layout stays a pure call a bundler can drop.)
 */
export function e8QuadGemvParamsLayout<Own extends Record<string, UniformMemberType>>(structName: string, own: Own): UniformLayout<typeof E8_QUAD_GEMV_MEMBERS & Own> {
  return new UniformLayout(structName, { ...E8_QUAD_GEMV_MEMBERS, ...own });
}

const Params = /*#__PURE__*/ e8QuadGemvParamsLayout('E8ResidueGemvParams', {
  quad_first: 'u32', // vec4 of the residues binding where this dispatch's first column starts
  side_first: 'u32', // word of the sides binding where this dispatch's first column starts
  column_unit: 'f32', // columnUnit / 12
  multiple_cubic: 'array<vec4<i32>, 1>', // 6·k(i) = x + y·i + z·i² + w·i³
});

const InputParams = /*#__PURE__*/ new UniformLayout('E8InputsI8Params', {
  groups: 'u32', // groups per right-hand side
  rhs: 'u32',
  kept: 'u32', // keptLength: coordinates from here on are 0
  x_first: 'u32', // element of x̃[0, 0] in its binding
  x_stride: 'u32', // elements between x̃ columns
  scales_first: 'u32', // word of the first scale in the output
});


/** A compiled variant of either E8 int8-input GEMV. */
export interface E8QuadGemvVariant {
  readonly rhsTile: RhsTile;
  readonly subgroups: boolean;
  readonly dotPath: DotPath;
}

/**
 * The WGSL of one variant of an E8 int8-input GEMV: its uniform struct (`params`), the dot library,
 * the kernel's own library (`library`: the multiples' cubic, or the dither's counter hash), the lanes'
 * reduction, the shared output of a column (shaders/e8_gemv_totals.wgsl), the kernel's loop (`gemv`),
 * store_output, Σx and the entry point.
 */
export function e8QuadGemvShaderSource(variant: E8QuadGemvVariant, params: string, library: string, gemv: string): string {
  return [
    variant.subgroups ? 'enable subgroups;' : '',
    `const RHS_TILE: u32 = ${variant.rhsTile}u;`,
    params,
    variant.dotPath === 'packed' ? dotPackedSource : dotPlainSource,
    library,
    lanesSource,
    totalsSource,
    gemv,
    quadLoopSource,
    GEMV_OUTPUT_WGSL,
    xSumsSource,
    variant.subgroups ? subgroupEntrySource : plainEntrySource,
  ].join('\n');
}

/** The per-device pipelines of an E8 int8-input GEMV (`name`: 'e8 residue gemv'; `source` builds a variant's WGSL). */
export function e8QuadGemvPipelines(name: string, source: (variant: E8QuadGemvVariant) => string): KernelPipelines<E8QuadGemvVariant, GemvWithSumsPipelines> {
  return new KernelPipelines({
    label: `${name} (int8 inputs)`,
    bindings: DETERMINISTIC_I8_GEMV_BINDINGS,
    compile: (device, pipelineLayout, variant: E8QuadGemvVariant) => {
      const label = `${name} (int8 inputs, ${variant.dotPath} dot, ${counted(variant.rhsTile, 'right-hand side')} per tile${variant.subgroups ? ', subgroups' : ''})`;
      return compileGemvWithSums(device, pipelineLayout, label, source(variant));
    },
    key: (variant) => `${variant.rhsTile}/${variant.subgroups}/${variant.dotPath}`,
  });
}

/** The WGSL of one product variant. */
export function e8ResidueGemvShaderSource(variant: E8QuadGemvVariant): string {
  return e8QuadGemvShaderSource(variant, Params.wgsl(), multipleCubicSource, `${gemvSource}\n${quadWordSideSource}\n${quadInputsDirectSource}`);
}

/** The WGSL of the x̃ rounding. */
export function e8InputsShaderSource(): string {
  return `${InputParams.wgsl()}\n${int8GroupSource}\n${inputsSource}`;
}

const pipelines = /*#__PURE__*/ e8QuadGemvPipelines('e8 residue gemv', e8ResidueGemvShaderSource);

const inputPipelines = /*#__PURE__*/ new KernelPipelines({
  label: 'e8 inputs to int8',
  bindings: ['uniform', 'read-only-storage', 'storage'],
  compile: (device, pipelineLayout) => createKernelPipeline(device, pipelineLayout, { label: 'e8 inputs to int8', code: e8InputsShaderSource() }),
});

/** The WGSL of the repack (shaders/e8_residue_repack.wgsl after the run-time decoder). */
export function e8ResidueRepackShaderSource(): string {
  return quadRepackShaderSource(repackSource, latticeDecodeSource);
}

const repackPipelines = /*#__PURE__*/ quadRepackPipelines('e8 residue repack', repackSource, latticeDecodeSource);

/** What both E8 int8-input forms on the GPU (the residue and the point form) hold besides their buffers. */
export interface E8QuadShape extends QuadFormShape {
  /** What ν_j (times γ_j for the deterministic forms) is multiplied by to give y. */
  readonly columnUnit: number;
  readonly hasMeans: boolean;
}

/**
 * The shape and the life of an E8 int8-input form on the GPU (`GpuE8ResidueMatrix`, `GpuE8PointMatrix`):
 * the checks both need, the fields, the device it belongs to and `destroy()` of its buffers.
 */
export abstract class GpuE8QuadMatrix implements E8QuadShape {
  readonly rows: number;
  readonly cols: number;
  readonly rotate: boolean;
  readonly seed: number;
  readonly length: number;
  readonly keptLength: number;
  readonly quadsPerColumn: number;
  readonly columnUnit: number;
  readonly hasMeans: boolean;
  private destroyed = false;

  protected constructor(
    /** The device its buffers belong to. */
    readonly device: GPUDevice,
    m: E8QuadShape,
    what: string,
    /** Rotated coordinates per quad: E8's 32 (one group of x̂), or 48 for the D3 quad form (d3QuadGemvI8.ts). */
    coordinatesPerQuad: number = E8_INPUT_GROUP,
  ) {
    check(Number.isInteger(m.cols) && m.cols >= 1 && Number.isInteger(m.quadsPerColumn) && m.quadsPerColumn >= 1, `${what}: cols and quadsPerColumn must be positive integers`);
    check(Number.isInteger(m.rows) && m.rows >= 1, `${what}: rows must be a positive integer`);
    check(m.keptLength <= coordinatesPerQuad * m.quadsPerColumn && m.keptLength <= m.length, `${what}: keptLength must fit the quads and the length`);
    check(Number.isFinite(m.columnUnit) && m.columnUnit > 0, () => `${what}: columnUnit must be positive, got ${describeValue(m.columnUnit)}`);
    check(m.rotate ? isRotationLength(m.rows, m.length) : m.length === m.rows, () => `${what}: length ${m.length} does not fit ${m.rows} rows ${m.rotate ? 'rotated' : 'unrotated'}`);
    this.rows = m.rows;
    this.cols = m.cols;
    this.rotate = m.rotate;
    this.seed = m.seed;
    this.length = m.length;
    this.keptLength = m.keptLength;
    this.quadsPerColumn = m.quadsPerColumn;
    this.columnUnit = m.columnUnit;
    this.hasMeans = m.hasMeans;
  }

  /** ν_j (·γ_j) of every column, then μ_j when centred: what both GEMVs bind beside the quads. */
  abstract readonly columnSide: GPUBuffer;

  /** The buffers `destroy()` frees. */
  protected abstract buffers(): readonly GPUBuffer[];

  get isDestroyed(): boolean {
    return this.destroyed;
  }

  /** Frees the buffers; `isDestroyed` is true afterwards. */
  destroy(): void {
    this.destroyed = true;
    for (const buffer of this.buffers()) buffer.destroy();
  }
}

/** Bytes of an E8 int8-input form's column side: ν (times γ) of every column, and μ when centred. */
export function e8ColumnSideBytes(m: { readonly cols: number; readonly hasMeans: boolean }): number {
  return (m.hasMeans ? 8 : 4) * m.cols;
}

/** What a {@link GpuE8ResidueMatrix} holds besides its buffers. */
export type E8ResidueShape = Pick<E8ResidueMatrix, 'rows' | 'cols' | 'rotate' | 'seed' | 'length' | 'keptLength' | 'quadsPerColumn' | 'multiples' | 'columnUnit'> & { readonly hasMeans: boolean };

/**
 * An {@link E8ResidueMatrix} on the GPU: residue words (whole quads per column), side words and the
 * column side (ν_j·γ_j of every column, then μ_j when centred). Made by `repack` (on the GPU, from an
 * uploaded matrix) or `upload` (from the CPU form); `destroy()` frees the buffers.
 *
 * @hideconstructor
 */
export class GpuE8ResidueMatrix extends GpuE8QuadMatrix {
  readonly multiples: Int32Array;

  constructor(
    device: GPUDevice,
    m: E8ResidueShape,
    readonly residues: GPUBuffer,
    readonly sides: GPUBuffer,
    /** ν_j·γ_j of every column, then (when centred) μ_j. */
    readonly columnSide: GPUBuffer,
  ) {
    super(device, m, 'GpuE8ResidueMatrix');
    check(m.multiples.length >= 1 && m.multiples.length <= 4, () => `GpuE8ResidueMatrix: 1…4 multiples (2-bit indices), got ${describeValue(m.multiples.length)}`);
    const largest = largestMultiple(m);
    // A quad's sum Σ_b 6k_b·2⟨ℓ_b, x̂_b⟩ is an i32.
    check(E8_RESIDUE_QUAD_BLOCKS * CUBIC_SCALE * largest * LARGEST_TWICE_DOT < 2 ** 31, () => `GpuE8ResidueMatrix: a multiple of ${largest} is too large for the kernel's i32 quad sums`);
    checkBufferHolds(residues, 16 * m.quadsPerColumn * m.cols, 'GpuE8ResidueMatrix.residues');
    checkBufferHolds(sides, 4 * m.quadsPerColumn * m.cols, 'GpuE8ResidueMatrix.sides');
    checkBufferHolds(columnSide, e8ColumnSideBytes(m), 'GpuE8ResidueMatrix.columnSide');
    this.multiples = Int32Array.from(m.multiples);
  }

  protected buffers(): readonly GPUBuffer[] {
    return [this.residues, this.sides, this.columnSide];
  }

  /**
   * Uploads the CPU form `m`.
   *
   * @example
   * const residues = GpuE8ResidueMatrix.upload(device, e8ResidueForm(quantize(w, { scheme: 'e8-q16-deterministic' }) as DeterministicLatticeMatrix), 'W');
   * residues.destroy();
   */
  static upload(device: GPUDevice, m: E8ResidueMatrix, label: string): GpuE8ResidueMatrix {
    checkLabel(label, 'GpuE8ResidueMatrix.upload');
    const side = new Float32Array((m.means === null ? 1 : 2) * m.cols);
    side.set(m.columnScales);
    if (m.means !== null) side.set(m.means, m.cols);
    const buffers = [
      createBufferWithData(device, `${label} residues`, m.residues, STORAGE_USAGE),
      createBufferWithData(device, `${label} sides`, m.sides, STORAGE_USAGE),
      createBufferWithData(device, `${label} column scales and means`, side, STORAGE_USAGE),
    ] as const;
    try {
      return new GpuE8ResidueMatrix(device, { ...m, hasMeans: m.means !== null }, ...buffers);
    } catch (error) {
      for (const buffer of buffers) buffer.destroy();
      throw error;
    }
  }

  /**
   * Repacks an uploaded e8-q16-deterministic matrix on the GPU (one submit on `device.queue`): the
   * same words as `e8ResidueForm` on its CPU matrix (shaders/e8_residue_repack.wgsl), in ranges of
   * columns whose fields fit a storage binding (`maxBindingBytes`, default the device's limit). The
   * matrix stays the caller's (and keeps what `read()` returns); the result does not read it, so the
   * caller may destroy it once the repack is submitted (a layer made on the result then holds 5 bits
   * per entry instead of 9.25: `QuantizedLinear.create(device, residues, { int8Inputs })`).
   *
   * @example
   * const w = GpuE8ResidueMatrix.repack(device, uploadLatticeMatrix(device, q), 'W');
   */
  static repack(device: GPUDevice, m: GpuDeterministicMatrix, label: string, options: { readonly maxBindingBytes?: number } = {}): GpuE8ResidueMatrix {
    const { quads, buffers } = repackDeterministicQuads(device, m, label, options, {
      what: 'GpuE8ResidueMatrix.repack',
      unsupported: e8ResidueUnsupported,
      quads: e8ResidueQuads,
      outputs: [
        { name: 'residues', quadBytes: 16 },
        { name: 'sides', quadBytes: 4 },
      ],
      pipelines: repackPipelines,
    });
    try {
      const { rows, cols, rotate, seed, length, keptLength, multiples } = m;
      return new GpuE8ResidueMatrix(device, { rows, cols, rotate, seed, length, keptLength, quadsPerColumn: quads, multiples, columnUnit: deterministicColumnUnit(m), hasMeans: m.means !== null }, ...buffers);
    } catch (error) {
      for (const buffer of buffers) buffer.destroy();
      throw error;
    }
  }


}

/**
 * Bytes the residue GEMV reads of a deterministic E8 matrix (q = 16) once repacked: 16 bytes of
 * residue words and 4 of side bytes per quad of each column, and the column side (ν·γ, and μ when
 * centred) — against the stored 4.25 bits per entry, ≈ 18 % more.
 *
 * @example
 * e8ResidueBytes({ blocksPerColumn: 1024, cols: 4096, hasMeans: false }); // 20 · 256 · 4096 + 4 · 4096
 */
export function e8ResidueBytes(m: { readonly blocksPerColumn: number; readonly cols: number; readonly hasMeans: boolean }): number {
  return 20 * e8ResidueQuads(m.blocksPerColumn) * m.cols + e8ColumnSideBytes(m);
}


/**
 * The x̃ a residue matrix reads and how it is grouped: x̂ rounded for one matrix serves another
 * exactly when their keys agree (layers of one seed and length reading one input).
 */
export function e8InputsKey(w: E8InputsOperand): string {
  const rotation = w.rotate ? `rotated (length ${w.length}, seed ${w.seed})` : `unrotated (${w.rows} rows)`;
  return `E8 groups of 32, ${rotation}, keptLength ${w.keptLength}, ${w.quadsPerColumn} groups`;
}

/** What the rounding of x̃ needs of an E8 int8-input matrix (its rotation, keptLength and quads). */
export type E8InputsOperand = Pick<GpuE8ResidueMatrix, 'rows' | 'length' | 'keptLength' | 'quadsPerColumn' | 'rotate' | 'seed'>;

/** x̃ rounded to int8 for the residue GEMV (by {@link dispatchE8InputsI8}); its buffer belongs to the scratch it was recorded with. */
export interface RecordedE8InputsI8 {
  /** Per group and right-hand side 3 vec4 (shaders/e8_inputs_i8.wgsl), then the scales (f32 bits). */
  readonly inputs: GPUBuffer;
  readonly rhs: number;
  /** The operand shape it was rounded for (`e8InputsKey`), compared by the product. */
  readonly operand: string;
}

/** Arguments of {@link dispatchE8InputsI8}. */
export interface E8InputsI8Args {
  /** A matrix the inputs are for (its rotation, keptLength and quads). */
  readonly w: E8InputsOperand;
  /** x̃ = R·X rotated with W's seed, or X itself when W is not rotated: N × rhs f32 (N = W.length). */
  readonly xRotated: GPUBuffer;
  readonly xRotatedOffset?: number;
  readonly rhs: number;
}

/**
 * Records x̃ → int8 per group of 32 (entries at or past keptLength read as 0) into `encoder` (a pass of
 * its own), into one scratch buffer, once for every residue GEMV that reads the same x̃. x̃ and x̂ of
 * all `rhs` right-hand sides must each fit one storage binding (every realistic decode batch does).
 *
 * @example
 * const inputsI8 = dispatchE8InputsI8(device, encoder, scratch, { w, xRotated, rhs: 1 });
 * dispatchE8ResidueGemvI8(device, encoder, scratch, { w, inputsI8, y, rhs: 1, dotPath });
 */
export function dispatchE8InputsI8(device: GPUDevice, encoder: GPUCommandEncoder, scratch: GpuScratch, args: E8InputsI8Args): RecordedE8InputsI8 {
  checkDispatch(device, encoder, scratch, args, 'dispatchE8InputsI8');
  checkOptionsObject(args, INPUTS_I8_ARG_KEYS, 'dispatchE8InputsI8 arguments');
  const what = 'e8 inputs to int8';
  const { w, rhs } = args;
  checkPositiveInteger(rhs, `${what}: rhs`);
  const offset = args.xRotatedOffset ?? 0;
  checkBufferRange(args.xRotated, offset, 4 * w.length * rhs, `${what}: xRotated`);
  const groups = w.quadsPerColumn;
  const window = bindingWindow(offset, 4 * w.length * rhs, device.limits.minStorageBufferOffsetAlignment);
  checkE8InputsFitBinding(device, w, rhs, window.size);
  const inputs = scratch.intermediate(`${what} (${e8InputsKey(w)}, ${counted(rhs, 'right-hand side')}): levels and scales`, e8InputsBytes(groups, rhs), STORAGE_USAGE);
  const { layout, pipeline } = inputPipelines.get(device, undefined);
  const params = InputParams.pack({ groups, rhs, kept: w.keptLength, x_first: window.firstElement, x_stride: w.length, scales_first: e8InputsScalesFirst(groups, rhs) });
  const pass = encoder.beginComputePass({ label: what });
  pass.setPipeline(pipeline);
  pass.setBindGroup(0, createKernelBindGroup(device, layout, what, [{ buffer: scratch.uniform(`${what} params`, params) }, windowBinding(args.xRotated, window), { buffer: inputs }]));
  const [gx, gy] = workgroupGrid(Math.ceil((groups * rhs) / E8_INPUTS_GROUPS_PER_WORKGROUP), device.limits.maxComputeWorkgroupsPerDimension);
  pass.dispatchWorkgroups(gx, gy);
  pass.end();
  return { inputs, rhs, operand: e8InputsKey(w) };
}

/** Refuses right-hand sides whose x̃ (a binding of `xBytes`) or x̂ would not fit one storage binding. */
function checkE8InputsFitBinding(device: GPUDevice, w: E8InputsOperand, rhs: number, xBytes: number): void {
  const maxBinding = device.limits.maxStorageBufferBindingSize;
  check(xBytes <= maxBinding && e8InputsBytes(w.quadsPerColumn, rhs) <= maxBinding, () => `e8 inputs to int8: ${rhs} right-hand sides of ${w.length} entries do not fit one storage binding (${maxBinding} bytes); round fewer at a time`);
}

/** The most right-hand sides whose x̃ and x̂ pass `checkE8InputsFitBinding` (x̃ from offset 0). */
function largestE8InputsRhs(device: GPUDevice, w: E8InputsOperand): number {
  const maxBinding = device.limits.maxStorageBufferBindingSize;
  // e8InputsBytes(groups, rhs) ≤ maxBinding ⟺ 52·groups·rhs ≤ 16·⌊maxBinding / 16⌋.
  return Math.min(Math.floor(maxBinding / (4 * w.length)), Math.floor((16 * Math.floor(maxBinding / 16)) / (52 * w.quadsPerColumn)));
}

/**
 * The most right-hand sides whose x̃, from any 4-byte aligned offset (the alignment slack
 * `itemsPerBinding` allows for), and x̂ pass `checkE8InputsFitBinding`: what QuantizedLinear rounds per
 * call when it records more tokens in chunks.
 */
export function e8InputsRhsPerBinding(device: GPUDevice, w: E8InputsOperand): number {
  return Math.min(largestE8InputsRhs(device, w), itemsPerBinding(4 * w.length, device.limits.maxStorageBufferBindingSize, device.limits.minStorageBufferOffsetAlignment));
}

/** The x̂ form of an E8 int8-input matrix (groups of 32: the residue and the point form), for `beginGemvI8`. */
export function e8InputsI8Form(device: GPUDevice, encoder: GPUCommandEncoder, scratch: GpuScratch, w: E8InputsOperand): InputsI8Form {
  return {
    operand: e8InputsKey(w),
    source: 'dispatchE8InputsI8',
    largestRhs: largestE8InputsRhs(device, w),
    rotateAndRound: (args) => dispatchRotatedE8InputsI8(device, encoder, scratch, { ...args, w }),
  };
}

/** Arguments of {@link dispatchRotatedE8InputsI8}: X, x̃'s buffer and a rotated residue matrix's shape. */
export type RotatedE8InputsI8Args = RotatedInputsI8Args<E8InputsOperand>;

/**
 * Records x̃ = R·X with W's seed into `xRotated` and x̃ rounded to int8 for W in groups of 32 (as
 * `dispatchHadamard` then `dispatchE8InputsI8`, bit for bit): in the rotation's own dispatches where
 * its last stage takes one pass (`rotationRoundsInPass`), else in the rotation's and one more.
 *
 * @example
 * const inputsI8 = dispatchRotatedE8InputsI8(device, encoder, scratch, { w, x, xRotated, rhs: 1 });
 * dispatchE8ResidueGemvI8(device, encoder, scratch, { w, inputsI8, y, rhs: 1, dotPath });
 */
export function dispatchRotatedE8InputsI8(device: GPUDevice, encoder: GPUCommandEncoder, scratch: GpuScratch, args: RotatedE8InputsI8Args): RecordedE8InputsI8 {
  checkDispatch(device, encoder, scratch, args, 'dispatchRotatedE8InputsI8');
  checkOptionsObject(args, ROTATED_INPUTS_I8_ARG_KEYS, 'dispatchRotatedE8InputsI8 arguments');
  const { w, rhs } = args;
  return rotateAndRound(device, encoder, scratch, args, 'e8 inputs to int8: dispatchRotatedE8InputsI8', {
    groups: w.quadsPerColumn,
    groupSize: E8_INPUT_GROUP,
    bytes: e8InputsBytes(w.quadsPerColumn, rhs),
    operand: e8InputsKey(w),
    checkFit: () => checkE8InputsFitBinding(device, w, rhs, 4 * w.length * rhs),
    apart: (xRotated) => dispatchE8InputsI8(device, encoder, scratch, { w, xRotated, rhs }),
  });
}

/** Arguments of {@link dispatchE8ResidueGemvI8}: X (or x̂), Y and the options of `GemvCallArgs`, the output, W and the dot path. */
export interface E8ResidueGemvI8Args extends E8QuadGemvArgs {
  readonly w: GpuE8ResidueMatrix;
}

/** The keys of {@link E8ResidueGemvI8Args}: dispatchE8ResidueGemvI8 refuses any other (a misspelt option must not run on its default). */
const E8_RESIDUE_GEMV_I8_ARG_KEYS = [...GEMV_CALL_ARG_KEYS, ...GEMV_OUTPUT_ARG_KEYS, 'inputsI8', 'dotPath', 'w'] as const satisfies readonly (keyof E8ResidueGemvI8Args)[];

/**
 * Records Y = ŴᵀX (+ μ·Σx for a centred W) (+ b) with int8 inputs into `encoder`: x̃ = R·X (when W is
 * rotated and neither `xRotated` nor `inputsI8` is given), x̃ to int8 (unless `inputsI8` is given; in
 * the rotation's last pass where it can be: `dispatchRotatedE8InputsI8`), then one pass with Σx (when
 * W is centred) and the product per range of columns whose residues fit a binding. Scratch buffers
 * go into `scratch`.
 *
 * @example
 * const w = GpuE8ResidueMatrix.repack(device, gpuW, 'W');
 * dispatchE8ResidueGemvI8(device, encoder, scratch, { w, x, y, rhs: 1, dotPath: dotPathFor(engine.features) });
 */
export function dispatchE8ResidueGemvI8(device: GPUDevice, encoder: GPUCommandEncoder, scratch: GpuScratch, args: E8ResidueGemvI8Args): void {
  checkDispatch(device, encoder, scratch, args, 'dispatchE8ResidueGemvI8');
  checkOptionsObject(args, E8_RESIDUE_GEMV_I8_ARG_KEYS, 'dispatchE8ResidueGemvI8 arguments');
  const what = 'e8 residue gemv (int8 inputs)';
  const { w } = args;
  check(w instanceof GpuE8ResidueMatrix && !w.isDestroyed, `${what}: W must be a live GpuE8ResidueMatrix`);
  const quads = w.quadsPerColumn;
  const multiples = multipleCubic(w.multiples);
  recordE8QuadGemv(device, encoder, scratch, w, args, {
    what,
    quadBytes: 16,
    pipelines,
    side: { bytes: e8ColumnSideBytes(w), refusal: `the column side of ${w.cols} columns does not fit` },
    range: (range, shared, alignment) => {
      const residueWindow = bindingWindow(16 * quads * range.first, 16 * quads * range.count, alignment);
      const sideWindow = bindingWindow(4 * quads * range.first, 4 * quads * range.count, alignment);
      return {
        params: Params.pack({
          ...shared,
          quad_first: residueWindow.firstElement / 4, // a whole number: columns start on 16-byte quads and bindings on aligned offsets
          side_first: sideWindow.firstElement,
          column_unit: w.columnUnit / RESIDUE_SUM_SCALE, // the cubic gives 6·k, and the kernel sums 2⟨ℓ, x̂⟩
          multiple_cubic: multiples,
        }),
        weights: [windowBinding(w.residues, residueWindow), windowBinding(w.sides, sideWindow)],
      };
    },
  });
}

/** The uniform values `recordE8QuadGemv` sets alike for both E8 int8-input GEMVs, per range of columns. */
export type E8QuadGemvSharedUniforms = UniformValues<typeof E8_QUAD_GEMV_MEMBERS>;

/** Arguments both E8 int8-input GEMVs take besides W: X (or x̂), Y and the options of `GemvCallArgs`, the output, the dot path. */
export interface E8QuadGemvArgs extends GemvCallArgs, GemvOutputArgs {
  /**
   * x̃ already rounded for W (`dispatchE8InputsI8`, shared by the layers that read the same x̃, residue
   * and point matrices alike); then the call neither rotates nor rounds (and takes no `xRotated`). X is
   * still read for Σx when W is centred.
   */
  readonly inputsI8?: RecordedE8InputsI8;
  /** 'packed': dot4I8Packed (only where WGSL has packed_4x8_integer_dot_product: `dotPathFor(features)`); 'plain': core WGSL. */
  readonly dotPath: DotPath;
}

/** What one E8 int8-input GEMV brings to `recordE8QuadGemv`. */
export interface E8QuadGemvKernel {
  /** Names the kernel in messages and labels. */
  readonly what: string;
  /** Bytes of W's first binding per quad of a column (its columns are split so that a range fits one binding). */
  readonly quadBytes: number;
  /** The kernel's pipelines per variant (a `KernelPipelines`, or a view of one that fixes more of its variant). */
  readonly pipelines: Pick<KernelPipelines<E8QuadGemvVariant, GemvWithSumsPipelines>, 'get'>;
  /** The per-column buffers bound whole: bytes of the largest, and the refusal's words when it exceeds a binding. */
  readonly side: { readonly bytes: number; readonly refusal: string };
  /**
   * The range's packed uniforms (the shared values, `shared`, with the kernel's own) and W's two
   * bindings in front of the column side (the quads, then their side bits or the dither keys).
   */
  range(range: { readonly first: number; readonly count: number }, shared: E8QuadGemvSharedUniforms, alignment: number): { readonly params: UniformPacker; readonly weights: readonly [GPUBufferBinding, GPUBufferBinding] };
  /** x̂ of another grouping than E8's one group of 32 per quad (the D3 quad GEMV's 4 groups of 12). */
  readonly inputs?: QuadGemvInputs;
}

/** How a quad GEMV's x̂ is rounded and laid out, where it is not E8's (`E8QuadGemvKernel.inputs`). */
export interface QuadGemvInputs {
  /** What `beginGemvI8` checks given x̂ against, and how it rounds x̃ inside the rotation. */
  readonly form: InputsI8Form;
  /** Rounds the call's x̃ (`call.xRotated` from `xRotatedOffset`) when no x̂ was given or made in the rotation. */
  readonly round: (xRotated: GPUBuffer, xRotatedOffset: number, rhs: number) => RecordedE8InputsI8;
  /** The u32 index of x̂'s first scale in its binding for `rhs` right-hand sides. */
  readonly scalesFirst: (rhs: number) => number;
}

/**
 * The most right-hand sides whose X (when the call reads it: an unrotated or centred W) and Y windows
 * each fit a binding of `maxBinding` bytes in one `recordE8QuadGemv` call, which binds them whole
 * (Y counted as f32). QuantizedLinear records more tokens in chunks that fit.
 */
export function quadGemvBindingRhs(w: Pick<GpuE8QuadMatrix, 'rows' | 'cols'>, readsX: boolean, maxBinding: number, alignment: number): number {
  return Math.min(readsX ? itemsPerBinding(4 * w.rows, maxBinding, alignment) : Infinity, itemsPerBinding(4 * w.cols, maxBinding, alignment));
}

/**
 * Records an E8 int8-input GEMV (the residue GEMV above, the point GEMV of e8PointGemvI8.ts): x̃ = R·X
 * (when W is rotated and neither `xRotated` nor `inputsI8` is given), x̃ to int8 (unless `inputsI8` is
 * given; in the rotation's last pass where it can be: `dispatchRotatedE8InputsI8`), then one pass with
 * Σx (when W is centred) and the product per range of columns whose quads fit a binding.
 */
export function recordE8QuadGemv(device: GPUDevice, encoder: GPUCommandEncoder, scratch: GpuScratch, w: GpuE8QuadMatrix, args: E8QuadGemvArgs, kernel: E8QuadGemvKernel): void {
  const { what } = kernel;
  checkOneOf(args.dotPath, DOT_PATHS, `${what}: dotPath`);
  const format = gemvOutputFormat(args, what);
  // x̂ given (checked against W), or rounded inside the rotation's last pass where the call rotates X itself and the rotation allows it.
  const form = kernel.inputs?.form ?? e8InputsI8Form(device, encoder, scratch, w);
  const { call, shared } = beginGemvI8(device, encoder, scratch, w, args, what, { yBytes: activationBytes(format), sumsX: w.hasMeans }, form);
  const { rhs, alignment, maxBinding, maxGroups, subgroups, testMode } = call;
  // The product loops over the right-hand sides inside each workgroup (shaders/quad_gemv_loop.wgsl):
  // they are no dispatch dimension, so only X's window (when X is bound) and Y's must fit one binding,
  // and Σx of a centred W takes a workgroup per right-hand side (shaders/gemv_x_sums.wgsl). This used to
  // require one of `call.rhsRanges`, which also split at maxComputeWorkgroupsPerDimension: a layer of
  // 65536 tokens or more was refused as not fitting one storage binding (4.5 MB of x against 128 MiB).
  const bindingRhs = quadGemvBindingRhs(w, args.x !== undefined, maxBinding, alignment);
  check(rhs <= bindingRhs, () => `${what}: x or Y of ${rhs} right-hand sides does not fit one storage binding (${maxBinding} bytes); call with at most ${bindingRhs}`);
  check(
    !w.hasMeans || rhs <= maxGroups,
    () => `${what}: W is centred, and Σx takes a workgroup per right-hand side: ${rhs} are more than maxComputeWorkgroupsPerDimension (${maxGroups}); call with at most ${maxGroups}`,
  );
  const inputs =
    shared ?? (kernel.inputs === undefined ? dispatchE8InputsI8(device, encoder, scratch, { w, xRotated: call.xRotated, xRotatedOffset: call.xRotatedOffset, rhs }) : kernel.inputs.round(call.xRotated, call.xRotatedOffset, rhs));
  const output = resolveGemvOutput(device, scratch, args, format, w.cols, what);
  const quads = w.quadsPerColumn;
  const ranges = columnRanges(w.cols, Math.min(itemsPerBinding(kernel.quadBytes * quads, maxBinding, alignment), maxGroups * E8_QUAD_WORKGROUP_COLUMNS));
  check(kernel.side.bytes <= maxBinding, () => `${what}: ${kernel.side.refusal} one storage binding (${maxBinding} bytes)`);
  const rhsTile: RhsTile = rhs === 1 ? 1 : 8;
  const { layout, pipeline } = kernel.pipelines.get(device, { rhsTile, subgroups, dotPath: args.dotPath });
  const xWindow = call.xWindow(0, rhs);
  const yWindow = output.yWindow(0, rhs);
  const sums = scratch.buffer(`${what} Σx`, w.hasMeans ? 4 * rhs : 4, STORAGE_USAGE);

  const pass = encoder.beginComputePass({ label: what });
  ranges.forEach((range, chunk) => {
    const label = `${what} W columns ${range.first}…${range.first + range.count - 1}`;
    const { params, weights } = kernel.range(
      range,
      {
        cols: range.count,
        quads,
        rhs,
        rows: w.rows,
        column_first: range.first,
        means_first: w.cols + range.first,
        has_means: w.hasMeans ? 1 : 0,
        x_first: xWindow.firstElement,
        x_scales_first: kernel.inputs === undefined ? e8InputsScalesFirst(quads, rhs) : kernel.inputs.scalesFirst(rhs),
        y_first: yWindow.first + range.first,
        y_stride: w.cols,
        ...output.uniforms(range.first),
        subgroup_test_mode: testMode,
      },
      alignment,
    );
    pass.setBindGroup(
      0,
      createKernelBindGroup(device, layout, label, [
        { buffer: scratch.uniform(`${label} params`, params) },
        ...weights,
        { buffer: w.columnSide },
        { buffer: inputs.inputs },
        xWindow.binding,
        { buffer: sums },
        output.bias,
        yWindow.binding,
      ]),
    );
    dispatchGemvRange(pass, pipeline, chunk === 0 && w.hasMeans, rhs, Math.ceil(range.count / E8_QUAD_WORKGROUP_COLUMNS));
  });
  pass.end();
  call.checkNonFiniteTail(format);
}

/**
 * Records x̂ from x (one right-hand side, f32) for `w` into scratch buffers: x̃ = R·x and x̃ to int8
 * (`dispatchRotatedE8InputsI8`, when W is rotated), else x to int8 (`dispatchE8InputsI8`). What the
 * benchmark's kernel-alone rows make once.
 */
export function dispatchE8ResidueInputs(device: GPUDevice, encoder: GPUCommandEncoder, scratch: GpuScratch, w: E8InputsOperand, x: GPUBuffer, xOffset = 0): RecordedE8InputsI8 {
  if (!w.rotate) return dispatchE8InputsI8(device, encoder, scratch, { w, xRotated: x, xRotatedOffset: xOffset, rhs: 1 });
  const xRotated = scratch.intermediate('e8 residue gemv: x̃', 4 * w.length, STORAGE_USAGE);
  return dispatchRotatedE8InputsI8(device, encoder, scratch, { w, x, xOffset, xRotated, rhs: 1 });
}

/** Options of {@link e8ResidueGemvI8}. */
export type E8ResidueGemvI8Options = Pick<E8ResidueGemvI8Args, 'maxBindingBytes' | 'subgroups' | 'subgroupTestMode' | 'dotPath'>;

/** The keys of {@link E8ResidueGemvI8Options}: the host GEMV refuses any other (one is forwarded to the dispatch, where `outputFormat: 'f16'` would make Y unreadable). */
const E8_RESIDUE_GEMV_I8_OPTION_KEYS = ['maxBindingBytes', 'subgroups', 'subgroupTestMode', 'dotPath'] as const satisfies readonly (keyof E8ResidueGemvI8Options)[];

/**
 * Y = ŴᵀX with int8 inputs for X given on the CPU: uploads X, records the GEMV, reads Y back. For tests
 * and benchmarks.
 *
 * @example
 * const y = await e8ResidueGemvI8(device, GpuE8ResidueMatrix.repack(device, gpuW, 'W'), x, { dotPath: 'packed' });
 */
export async function e8ResidueGemvI8(device: GPUDevice, w: GpuE8ResidueMatrix, x: Matrix | Float32Array, options: E8ResidueGemvI8Options): Promise<Matrix> {
  checkOptionsObject(options, E8_RESIDUE_GEMV_I8_OPTION_KEYS, 'e8ResidueGemvI8 options');
  return gemvOnHost(device, 'e8 residue gemv (int8 inputs)', w, x, options, (run, io, given) => dispatchE8ResidueGemvI8(device, run.encoder, run.scratch, { ...given, ...io, w }));
}

/** x̃ rounded as shaders/e8_inputs_i8.wgsl does for one right-hand side: levels in coordinate order (0 past keptLength) and a scale per group of 32. */
export interface E8InputsI8Values {
  readonly levels: Int8Array;
  readonly scales: Float64Array;
}

/**
 * x̂ of each of `rhs` right-hand sides from the words `dispatchE8InputsI8` wrote (`groups` groups each,
 * the layout of shaders/e8_inputs_i8.wgsl: word 2b of a group holds block b's even coordinates, word
 * 2b + 1 its odd ones), levels in coordinate order: what a test or a host helper reads back.
 */
export function e8InputsI8FromWords(words: Uint32Array, groups: number, rhs: number): E8InputsI8Values[] {
  check(words.length >= 13 * groups * rhs, () => `e8InputsI8FromWords: ${words.length} words hold less than ${groups} groups of ${rhs} right-hand sides`);
  const scales = new Float32Array(words.buffer, words.byteOffset + 4 * e8InputsScalesFirst(groups, rhs), groups * rhs);
  return Array.from({ length: rhs }, (_, r) => {
    const levels = new Int8Array(groups * E8_INPUT_GROUP);
    for (let g = 0; g < groups; g++) {
      for (let b = 0; b < 4; b++) {
        for (let half = 0; half < 2; half++) {
          const word = words[12 * (r * groups + g) + 2 * b + half] as number;
          for (let t = 0; t < 4; t++) levels[g * E8_INPUT_GROUP + 8 * b + 2 * t + half] = (word << (24 - 8 * t)) >> 24;
        }
      }
    }
    return { levels, scales: Float64Array.from(scales.subarray(r * groups, (r + 1) * groups)) };
  });
}

/**
 * CPU twin of shaders/e8_inputs_i8.wgsl for one right-hand side: `quantizeInputsI8`'s rule on groups
 * of 32 coordinates (a level may differ by one where 127·x̃/m is within 10⁻⁴ of a half-integer: the GPU
 * divides in f32).
 */
export function quantizeE8InputsI8(xRotated: ArrayLike<number>, kept: number, groups: number): E8InputsI8Values {
  return quantizeInputsI8(xRotated, kept, groups, E8_INPUT_GROUP);
}

/**
 * CPU twin of the product for one right-hand side: y_j = ν_jγ_j·columnUnit·Σ_g s_g·Σ_{b∈g} k_b·⟨ℓ_b,
 * x̂_b⟩ (+ μ_j·Σx, `xSum`, for a centred matrix) from the residue form (decoded by `leaderOfResidue`)
 * and given x̂, in float64.
 */
export function e8ResidueGemvReference(m: E8ResidueMatrix, inputs: E8InputsI8Values, xSum?: number): Float64Array {
  check(m.means === null || xSum !== undefined, 'e8ResidueGemvReference: a centred matrix needs Σx (xSum)');
  const y = new Float64Array(m.cols);
  const leader = new Int32Array(8);
  for (let j = 0; j < m.cols; j++) {
    let total = 0;
    for (let g = 0; g < m.quadsPerColumn; g++) {
      let exact = 0;
      const sideWord = m.sides[j * m.quadsPerColumn + g] as number;
      for (let t = 0; t < E8_RESIDUE_QUAD_BLOCKS; t++) {
        const side = (sideWord >>> (8 * t)) & 0xff;
        leaderOfResidue(m.residues[(j * m.quadsPerColumn + g) * E8_RESIDUE_QUAD_BLOCKS + t] as number, side, leader);
        let dot = 0;
        for (let i = 0; i < 8; i++) dot += (leader[i] as number) * (inputs.levels[g * E8_INPUT_GROUP + 8 * t + i] as number);
        exact += (m.multiples[(side >> 4) & 3] as number) * dot;
      }
      total += (inputs.scales[g] as number) * exact;
    }
    y[j] = (m.columnScales[j] as number) * m.columnUnit * total + (m.means === null ? 0 : (m.means[j] as number) * (xSum as number));
  }
  return y;
}
