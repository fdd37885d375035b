import dotPackedSource from '../../../shaders/dot_i8_packed.wgsl?raw';
import dotPlainSource from '../../../shaders/dot_i8_plain.wgsl?raw';
import inputsSource from '../../../shaders/e8_inputs_i8.wgsl?raw';
import int8GroupSource from '../../../shaders/int8_group.wgsl?raw';
import repackSource from '../../../shaders/e8_residue_repack.wgsl?raw';
import latticeDecodeSource from '../../../shaders/lattice_decode.wgsl?raw';
import gemvSource from '../../../shaders/e8_residue_gemv_i8.wgsl?raw';
import lanesSource from '../../../shaders/universal_gemv_lanes.wgsl?raw';
import multipleCubicSource from '../../../shaders/multiple_cubic.wgsl?raw';
import plainEntrySource from '../../../shaders/universal_gemv_plain.wgsl?raw';
import subgroupEntrySource from '../../../shaders/universal_gemv_subgroup.wgsl?raw';
import { check } from '../../errors.js';
import { E8_RESIDUE_QUAD_BLOCKS, e8ResidueUnsupported, leaderOfResidue, type E8ResidueMatrix } from '../../quantize/e8Residues.js';
import { createBuffer, createBufferWithData, STORAGE_USAGE } from '../buffers.js';
import { checkBufferRange } from '../bufferRange.js';
import { checkBufferHolds, checkGpuDeterministicMatrix, deterministicColumnUnit, gatherColumnSide, operandWordsPerColumn, type GpuDeterministicMatrix } from '../latticeOperand.js';
import { rotationLength } from '../../rotation/hadamard.js';
import { createKernelBindGroup, createKernelPipeline, KernelPipelines } from '../pipelines.js';
import { GpuScratch } from '../scratch.js';
import { UniformLayout } from '../uniformLayout.js';
import { workgroupGrid } from '../workSplit.js';
import type { DotPath } from './e8Matmul.js';
import { columnGemvUsesSubgroups } from './columnGemv.js';
import { SUBGROUP_TEST_MODES } from './gemvCall.js';
import { dispatchHadamard } from './hadamard.js';
import { quantizeInputsI8 } from './inputsI8.js';
import { multipleCubic } from './latticeGemvI8.js';

/*
 * The GEMV of the E8 residue prototype (src/quantize/e8Residues.ts; not part of the package's API):
 * y = Ŵᵀx̃ for an e8-q16-deterministic matrix whose leaders were repacked at upload as residue
 * nibbles and a side byte, with x̃ rounded to int8 per group of 32 coordinates. The GPU benchmark
 * times it beside the scheme's own E8 GEMV (bench/README.md, "E8: leaders stored as residues?").
 * Pieces: `GpuE8ResidueMatrix.upload` (the CPU form on the GPU) or `.repack` (the form made on the GPU
 * from an uploaded matrix, shaders/e8_residue_repack.wgsl), `dispatchE8InputsI8` (x̃ to int8,
 * shaders/e8_inputs_i8.wgsl; CPU twin `quantizeE8InputsI8`), `dispatchE8ResidueGemvI8` (the product,
 * shaders/e8_residue_gemv_i8.wgsl; CPU twin `e8ResidueGemvReference`), and `dispatchE8ResidueCall`,
 * the three in a row from x (x̃ = R·x by `dispatchHadamard` when the matrix is rotated). One
 * right-hand side, and each operand must fit one storage binding.
 */

/** Coordinates per int8 group of x̃: one quad of 4 E8 blocks. */
export const E8_INPUT_GROUP = 8 * E8_RESIDUE_QUAD_BLOCKS;

/** Bytes of x̂ per group: 3 vec4 (levels, offsets); the scales lie in their own buffer. */
const LEVEL_BYTES_PER_GROUP = 48;

/** The largest |2⟨ℓ, x̂⟩| of a block: 8 coordinates of |ℓ| ≤ 32 and |x̂| ≤ 127, doubled. */
const LARGEST_TWICE_DOT = 2 * 8 * 32 * 127;

/** 3!: the cubic gives 6·k, and the kernel sums 2⟨ℓ, x̂⟩: the column unit divides by 12. */
const SUM_SCALE = 12;

const Params = /*#__PURE__*/ new UniformLayout('E8ResidueGemvParams', {
  cols: 'u32',
  quads: 'u32', // quads per column (= x̂ groups)
  residue_first: 'u32', // vec4 of the residues binding where column 0's quads start
  side_first: 'u32', // word of the sides binding where column 0's side words start
  scale_first: 'u32', // element of column 0's ν·γ
  y_first: 'u32', // element of y[column 0]
  subgroup_test_mode: 'u32', // subgroup variant only: 1 forces its fallback, 2 poisons the fallback
  column_unit: 'f32', // columnUnit / 12
  multiple_cubic: 'array<vec4<i32>, 1>', // 6·k(i) = x + y·i + z·i² + w·i³
});

const InputParams = /*#__PURE__*/ new UniformLayout('E8InputsI8Params', {
  groups: 'u32',
  kept: 'u32',
  x_first: 'u32',
});

const RepackParams = /*#__PURE__*/ new UniformLayout('E8ResidueRepackParams', {
  cols: 'u32',
  blocks: 'u32', // blocks per column
  quads: 'u32', // quads per column
  code_words: 'u32', // code words per column (one 32-bit code each)
  index_words: 'u32', // scale-index words per column
  index_bits: 'u32', // 1 or 2
  has_gains: 'u32',
});

/** A compiled product variant. */
interface Variant {
  readonly subgroups: boolean;
  readonly dotPath: DotPath;
}

/** The WGSL of one product variant. */
export function e8ResidueGemvShaderSource(variant: Variant): string {
  return [
    variant.subgroups ? 'enable subgroups;' : '',
    'const RHS_TILE: u32 = 1u;',
    Params.wgsl(),
    variant.dotPath === 'packed' ? dotPackedSource : dotPlainSource,
    multipleCubicSource,
    lanesSource,
    gemvSource,
    variant.subgroups ? subgroupEntrySource : plainEntrySource,
  ].join('\n');
}

/** The WGSL of the x̃ rounding. */
export function e8InputsShaderSource(): string {
  return `${InputParams.wgsl()}\n${int8GroupSource}\n${inputsSource}`;
}

const pipelines = /*#__PURE__*/ new KernelPipelines({
  label: 'e8 residue gemv (int8 inputs, prototype)',
  bindings: ['uniform', 'read-only-storage', 'read-only-storage', 'read-only-storage', 'read-only-storage', 'read-only-storage', 'storage'],
  compile: (device, pipelineLayout, variant: Variant) =>
    createKernelPipeline(device, pipelineLayout, {
      label: `e8 residue gemv (int8 inputs, ${variant.dotPath} dot${variant.subgroups ? ', subgroups' : ''}, prototype)`,
      code: e8ResidueGemvShaderSource(variant),
    }),
  key: (variant) => `${variant.subgroups}/${variant.dotPath}`,
});

const inputPipelines = /*#__PURE__*/ new KernelPipelines({
  label: 'e8 inputs to int8 (prototype)',
  bindings: ['uniform', 'read-only-storage', 'storage', 'storage'],
  compile: (device, pipelineLayout) => createKernelPipeline(device, pipelineLayout, { label: 'e8 inputs to int8 (prototype)', code: e8InputsShaderSource() }),
});

/** The WGSL of the repack (shaders/e8_residue_repack.wgsl after the run-time decoder). */
export function e8ResidueRepackShaderSource(): string {
  return `${latticeDecodeSource}\n${RepackParams.wgsl()}\n${repackSource}`;
}

const repackPipelines = /*#__PURE__*/ new KernelPipelines({
  label: 'e8 residue repack (prototype)',
  bindings: ['uniform', 'read-only-storage', 'read-only-storage', 'read-only-storage', 'storage', 'storage', 'storage'],
  compile: (device, pipelineLayout) => createKernelPipeline(device, pipelineLayout, { label: 'e8 residue repack (prototype)', code: e8ResidueRepackShaderSource() }),
});

/**
 * An {@link E8ResidueMatrix} on the GPU: residue words (whole quads per column), side words and the
 * columns' ν·γ. Made by `upload` (from the CPU form) or `repack` (on the GPU, from an uploaded
 * matrix); `destroy()` frees the buffers.
 */
export class GpuE8ResidueMatrix {
  readonly rows: number;
  readonly cols: number;
  readonly rotate: boolean;
  readonly seed: number;
  readonly length: number;
  readonly keptLength: number;
  readonly quadsPerColumn: number;
  readonly multiples: Int32Array;
  readonly columnUnit: number;
  private destroyed = false;

  constructor(
    m: Omit<E8ResidueMatrix, 'residues' | 'sides' | 'columnScales' | 'blocksPerColumn'>,
    readonly residues: GPUBuffer,
    readonly sides: GPUBuffer,
    readonly columnScales: GPUBuffer,
  ) {
    check(Number.isInteger(m.cols) && m.cols >= 1 && Number.isInteger(m.quadsPerColumn) && m.quadsPerColumn >= 1, 'GpuE8ResidueMatrix: cols and quadsPerColumn must be positive integers');
    check(m.keptLength <= E8_INPUT_GROUP * m.quadsPerColumn && m.keptLength <= m.length, 'GpuE8ResidueMatrix: keptLength must fit the quads and the length');
    check(m.multiples.length >= 1 && m.multiples.length <= 4, () => `GpuE8ResidueMatrix: 1…4 multiples (2-bit indices), got ${m.multiples.length}`);
    const largest = Math.max(...Array.from(m.multiples, Math.abs));
    // A quad's sum Σ_b 6k_b·2⟨ℓ_b, x̂_b⟩ is an i32.
    check(E8_RESIDUE_QUAD_BLOCKS * 6 * largest * LARGEST_TWICE_DOT < 2 ** 31, () => `GpuE8ResidueMatrix: a multiple of ${largest} is too large for the kernel's i32 quad sums`);
    check(Number.isFinite(m.columnUnit) && m.columnUnit > 0, () => `GpuE8ResidueMatrix: columnUnit must be positive, got ${m.columnUnit}`);
    checkBufferHolds(residues, 16 * m.quadsPerColumn * m.cols, 'GpuE8ResidueMatrix.residues');
    checkBufferHolds(sides, 4 * m.quadsPerColumn * m.cols, 'GpuE8ResidueMatrix.sides');
    checkBufferHolds(columnScales, 4 * m.cols, 'GpuE8ResidueMatrix.columnScales');
    check(m.rotate ? m.length === rotationLength(m.rows) : m.length === m.rows, () => `GpuE8ResidueMatrix: length ${m.length} does not fit ${m.rows} rows ${m.rotate ? 'rotated' : 'unrotated'}`);
    this.rows = m.rows;
    this.cols = m.cols;
    this.rotate = m.rotate;
    this.seed = m.seed;
    this.length = m.length;
    this.keptLength = m.keptLength;
    this.quadsPerColumn = m.quadsPerColumn;
    this.multiples = Int32Array.from(m.multiples);
    this.columnUnit = m.columnUnit;
  }

  /**
   * Uploads `m`.
   *
   * @example
   * const w = GpuE8ResidueMatrix.upload(device, e8ResidueForm(quantize(w, { scheme: 'e8-q16-deterministic', center: false })), 'W');
   * w.destroy();
   */
  static upload(device: GPUDevice, m: E8ResidueMatrix, label: string): GpuE8ResidueMatrix {
    const buffers = [
      createBufferWithData(device, `${label} residues`, m.residues, STORAGE_USAGE),
      createBufferWithData(device, `${label} sides`, m.sides, STORAGE_USAGE),
      createBufferWithData(device, `${label} column scales`, m.columnScales, STORAGE_USAGE),
    ] as const;
    try {
      return new GpuE8ResidueMatrix(m, ...buffers);
    } catch (error) {
      for (const buffer of buffers) buffer.destroy();
      throw error;
    }
  }

  /**
   * Repacks an uploaded e8-q16-deterministic matrix (not centred) on the GPU (one submit on
   * `device.queue`): the same words as `e8ResidueForm` on its CPU matrix (shaders/e8_residue_repack.wgsl).
   * The matrix stays the caller's. Each operand must fit one storage binding (a prototype: no splits).
   *
   * @example
   * const w = GpuE8ResidueMatrix.repack(device, uploadLatticeMatrix(device, q), 'W');
   */
  static repack(device: GPUDevice, m: GpuDeterministicMatrix, label: string): GpuE8ResidueMatrix {
    const what = 'GpuE8ResidueMatrix.repack';
    checkGpuDeterministicMatrix(m, `${what}: W`);
    const why = e8ResidueUnsupported(m);
    check(why === null, () => `${what}: ${why ?? ''}`);
    const quads = Math.ceil(m.blocksPerColumn / E8_RESIDUE_QUAD_BLOCKS);
    const words = operandWordsPerColumn(m);
    const maxBinding = device.limits.maxStorageBufferBindingSize;
    const residueBytes = 16 * quads * m.cols;
    check(Math.max(residueBytes, 4 * words.codes * m.cols) <= maxBinding, () => `${what}: ${m.cols} columns do not fit one storage binding (${maxBinding} bytes); the prototype does not split them`);
    const groups = Math.ceil((m.cols * quads) / 256);
    const maxGroups = device.limits.maxComputeWorkgroupsPerDimension;
    check(groups <= maxGroups * maxGroups, () => `${what}: too many quads for one dispatch`);
    const buffers = [
      createBuffer(device, `${label} residues`, residueBytes, STORAGE_USAGE),
      createBuffer(device, `${label} sides`, 4 * quads * m.cols, STORAGE_USAGE),
      createBuffer(device, `${label} column scales`, 4 * m.cols, STORAGE_USAGE),
    ] as const;
    const scratch = new GpuScratch(device);
    try {
      const encoder = device.createCommandEncoder({ label: `${label}: repack` });
      const side = gatherColumnSide(encoder, scratch, m, 0, m.cols, `${label}: repack`);
      const { layout, pipeline } = repackPipelines.get(device, undefined);
      const params = RepackParams.pack({ cols: m.cols, blocks: m.blocksPerColumn, quads, code_words: words.codes, index_words: words.scaleIndices, index_bits: m.scaleIndexBits, has_gains: side.hasGains ? 1 : 0 });
      const pass = encoder.beginComputePass({ label: `${label}: repack` });
      pass.setPipeline(pipeline);
      pass.setBindGroup(
        0,
        createKernelBindGroup(device, layout, `${label}: repack`, [
          { buffer: scratch.uniform(`${label}: repack params`, params) },
          { buffer: m.codes },
          { buffer: m.scaleIndices },
          { buffer: side.buffer },
          ...buffers.map((buffer) => ({ buffer })),
        ]),
      );
      const [gx, gy] = workgroupGrid(groups, maxGroups);
      pass.dispatchWorkgroups(gx, gy);
      pass.end();
      device.queue.submit([encoder.finish()]);
      const { rows, cols, rotate, seed, length, keptLength, multiples } = m;
      return new GpuE8ResidueMatrix({ rows, cols, rotate, seed, length, keptLength, quadsPerColumn: quads, multiples, columnUnit: deterministicColumnUnit(m) }, ...buffers);
    } catch (error) {
      for (const buffer of buffers) buffer.destroy();
      throw error;
    } finally {
      scratch.destroy();
    }
  }

  get isDestroyed(): boolean {
    return this.destroyed;
  }

  destroy(): void {
    this.destroyed = true;
    this.residues.destroy();
    this.sides.destroy();
    this.columnScales.destroy();
  }
}

/** x̂ on the GPU for {@link dispatchE8ResidueGemvI8}: its levels (3 vec4 per group) and scales (f32 bits). */
export interface E8InputsI8 {
  readonly levels: GPUBuffer;
  readonly scales: GPUBuffer;
  readonly groups: number;
}

/**
 * Records x̃ (f32, `w.length` entries from `xOffset` bytes; entries at or past keptLength read as 0)
 * rounded to int8 per group of 32 into two scratch buffers.
 */
export function dispatchE8InputsI8(device: GPUDevice, encoder: GPUCommandEncoder, scratch: GpuScratch, w: GpuE8ResidueMatrix, x: GPUBuffer, xOffset = 0): E8InputsI8 {
  const what = 'e8 inputs to int8 (prototype)';
  checkBufferRange(x, xOffset, 4 * w.keptLength, `${what}: x`);
  const groups = w.quadsPerColumn;
  const levels = scratch.buffer(`${what}: levels`, LEVEL_BYTES_PER_GROUP * groups, STORAGE_USAGE);
  const scales = scratch.buffer(`${what}: scales`, 4 * groups, STORAGE_USAGE);
  const { layout, pipeline } = inputPipelines.get(device, undefined);
  const params = InputParams.pack({ groups, kept: w.keptLength, x_first: xOffset / 4 });
  const pass = encoder.beginComputePass({ label: what });
  pass.setPipeline(pipeline);
  pass.setBindGroup(0, createKernelBindGroup(device, layout, what, [{ buffer: scratch.uniform(`${what} params`, params) }, { buffer: x }, { buffer: levels }, { buffer: scales }]));
  // One invocation per block: 16 groups per workgroup of 64.
  const workgroups = Math.ceil(groups / 16);
  check(workgroups <= device.limits.maxComputeWorkgroupsPerDimension, () => `${what}: ${groups} groups need more workgroups than one dispatch row holds`);
  pass.dispatchWorkgroups(workgroups);
  pass.end();
  return { levels, scales, groups };
}

/** Arguments of {@link dispatchE8ResidueGemvI8}. */
export interface E8ResidueGemvI8Args {
  readonly w: GpuE8ResidueMatrix;
  /** x̂ from {@link dispatchE8InputsI8} for this matrix's shape. */
  readonly inputs: E8InputsI8;
  /** y: `w.cols` f32 from `yOffset` bytes (written). */
  readonly y: GPUBuffer;
  readonly yOffset?: number;
  /** 'packed': dot4I8Packed (only where WGSL has packed_4x8_integer_dot_product); 'plain': core WGSL. */
  readonly dotPath: DotPath;
  /** As the library's GEMVs (GemvCallArgs.subgroups): default, whenever the device has them. */
  readonly subgroups?: boolean;
  readonly subgroupTestMode?: 'fallback' | 'require-shuffles';
}

/**
 * Records y = Ŵᵀx̃ of the residue prototype into `encoder` (one compute pass).
 *
 * @example
 * const inputs = dispatchE8InputsI8(device, encoder, scratch, w, xRotated);
 * dispatchE8ResidueGemvI8(device, encoder, scratch, { w, inputs, y, dotPath: dotPathFor(features) });
 */
export function dispatchE8ResidueGemvI8(device: GPUDevice, encoder: GPUCommandEncoder, scratch: GpuScratch, args: E8ResidueGemvI8Args): void {
  const what = 'e8 residue gemv (int8 inputs, prototype)';
  const { w, inputs, y } = args;
  check(w instanceof GpuE8ResidueMatrix && !w.isDestroyed, `${what}: W must be a live GpuE8ResidueMatrix`);
  check(inputs.groups === w.quadsPerColumn, () => `${what}: x̂ has ${inputs.groups} groups, W ${w.quadsPerColumn} quads per column`);
  check(args.dotPath === 'packed' || args.dotPath === 'plain', () => `${what}: dotPath must be 'packed' or 'plain', got '${String(args.dotPath)}'`);
  const yOffset = args.yOffset ?? 0;
  checkBufferRange(y, yOffset, 4 * w.cols, `${what}: y`);
  const maxBinding = device.limits.maxStorageBufferBindingSize;
  check(w.residues.size <= maxBinding, () => `${what}: the residues (${w.residues.size} bytes) exceed one storage binding (${maxBinding}); the prototype does not split them`);
  const subgroups = columnGemvUsesSubgroups(device, args, what);
  const workgroups = Math.ceil(w.cols / 16);
  check(workgroups <= device.limits.maxComputeWorkgroupsPerDimension, () => `${what}: ${w.cols} columns need ${workgroups} workgroups, more than one dispatch row holds`);
  const { layout, pipeline } = pipelines.get(device, { subgroups, dotPath: args.dotPath });
  const params = Params.pack({
    cols: w.cols,
    quads: w.quadsPerColumn,
    residue_first: 0,
    side_first: 0,
    scale_first: 0,
    y_first: yOffset / 4,
    subgroup_test_mode: SUBGROUP_TEST_MODES[args.subgroupTestMode ?? 'none'],
    column_unit: w.columnUnit / SUM_SCALE,
    multiple_cubic: multipleCubic(w.multiples),
  });
  const pass = encoder.beginComputePass({ label: what });
  pass.setPipeline(pipeline);
  pass.setBindGroup(
    0,
    createKernelBindGroup(device, layout, what, [
      { buffer: scratch.uniform(`${what} params`, params) },
      { buffer: w.residues },
      { buffer: w.sides },
      { buffer: w.columnScales },
      { buffer: inputs.levels },
      { buffer: inputs.scales },
      { buffer: y },
    ]),
  );
  pass.dispatchWorkgroups(workgroups);
  pass.end();
}

/** Arguments of {@link dispatchE8ResidueCall}: those of the product with x itself instead of x̂. */
export interface E8ResidueCallArgs extends Omit<E8ResidueGemvI8Args, 'inputs'> {
  /** x: `w.rows` f32 in the original basis, from `xOffset` bytes. */
  readonly x: GPUBuffer;
  readonly xOffset?: number;
}

/**
 * Records x̂ from x for `w` into scratch buffers: x̃ = R·x (`dispatchHadamard`, when W is rotated), then
 * x̃ to int8 (`dispatchE8InputsI8`). The first half of the whole call; the benchmark's kernel-alone rows
 * make it once.
 */
export function dispatchE8ResidueInputs(device: GPUDevice, encoder: GPUCommandEncoder, scratch: GpuScratch, w: GpuE8ResidueMatrix, x: GPUBuffer, xOffset = 0): E8InputsI8 {
  if (!w.rotate) return dispatchE8InputsI8(device, encoder, scratch, w, x, xOffset);
  const xRotated = scratch.buffer('e8 residue call: x̃', 4 * w.length, STORAGE_USAGE);
  dispatchHadamard(device, encoder, scratch, { input: x, inputOffset: xOffset, output: xRotated, rows: w.rows, cols: 1, seed: w.seed });
  return dispatchE8InputsI8(device, encoder, scratch, w, xRotated);
}

/**
 * Records the prototype's whole call y = Ŵᵀx: x̂ from x (`dispatchE8ResidueInputs`), then the product
 * (`dispatchE8ResidueGemvI8`).
 *
 * @example
 * dispatchE8ResidueCall(device, encoder, scratch, { w, x, y, dotPath: dotPathFor(features) });
 */
export function dispatchE8ResidueCall(device: GPUDevice, encoder: GPUCommandEncoder, scratch: GpuScratch, args: E8ResidueCallArgs): void {
  dispatchE8ResidueGemvI8(device, encoder, scratch, { ...args, inputs: dispatchE8ResidueInputs(device, encoder, scratch, args.w, args.x, args.xOffset) });
}

/** x̃ rounded as shaders/e8_inputs_i8.wgsl does: levels in coordinate order (0 past keptLength) and a scale per group of 32. */
export interface E8InputsI8Values {
  readonly levels: Int8Array;
  readonly scales: Float64Array;
}

/**
 * CPU twin of shaders/e8_inputs_i8.wgsl: `quantizeInputsI8`'s rule on groups of 32 coordinates (a
 * level may differ by one where 127·x̃/m is within 10⁻⁴ of a half-integer: the GPU divides in f32).
 */
export function quantizeE8InputsI8(xRotated: ArrayLike<number>, kept: number, groups: number): E8InputsI8Values {
  return quantizeInputsI8(xRotated, kept, groups, E8_INPUT_GROUP);
}

/**
 * CPU twin of the product: y_j = ν_jγ_j·columnUnit·Σ_g s_g·Σ_{b∈g} k_b·⟨ℓ_b, x̂_b⟩ from the residue form
 * (decoded by `leaderOfResidue`) and given x̂, in float64.
 */
export function e8ResidueGemvReference(m: E8ResidueMatrix, inputs: E8InputsI8Values): Float64Array {
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
    y[j] = (m.columnScales[j] as number) * m.columnUnit * total;
  }
  return y;
}
