import { checkDispatch } from './dispatchChecks.js';
import gemvSource from '../../../shaders/d3_quad_gemv_i8.wgsl?raw';
import repackSource from '../../../shaders/d3_quad_repack.wgsl?raw';
import quadWordSideSource from '../../../shaders/quad_word_side.wgsl?raw';
import { check, checkLabel, counted, describeValue } from '../../errors.js';
import { checkOptionsObject } from '../../quantize/strictOptions.js';
import type { Matrix } from '../../matrix.js';
import type { DeterministicLatticeMatrix } from '../../quantize/quantizedMatrix.js';
import { deterministicQuadForm, type DeterministicQuadForm } from '../../quantize/quadForm.js';
import { createBufferWithData, STORAGE_USAGE } from '../buffers.js';
import {
  checkBufferHolds,
  deterministicColumnUnit,
  type GpuDeterministicMatrix,
} from '../latticeOperand.js';
import { KernelPipelines, windowBinding } from '../pipelines.js';
import { GpuScratch } from '../scratch.js';
import { bindingWindow } from '../workSplit.js';
import type { DotPath } from './e8Matmul.js';
import { GEMV_OUTPUT_ARG_KEYS, GEMV_CALL_ARG_KEYS, compileGemvWithSums, gemvOnHost, type GemvWithSumsPipelines } from './gemvCall.js';
import { i8LeaderCopies, leaderTableWgsl, PADDED_LEADER_ENTRIES, type LeaderCopies } from './gemvI8Common.js';
import { gemvDecodeWithRulesWgsl } from './gemvDecode.js';
import { d3InputsI8Form, dispatchInputsI8, dispatchRotatedInputsI8, INPUT_GROUP, INPUTS_I8_ARG_KEYS, inputsI8Key, type InputsI8, type InputsI8Operand, type RecordedInputsI8, type SharedInputsI8Arg } from './inputsI8.js';
import { inputsI8ScalesFirst } from './inputsI8Layout.js';
import { e8ColumnSideBytes, e8QuadGemvParamsLayout, e8QuadGemvShaderSource, GpuE8QuadMatrix, recordE8QuadGemv, type E8QuadGemvArgs, type E8QuadShape } from './e8ResidueGemvI8.js';
import { DETERMINISTIC_I8_GEMV_BINDINGS, latticeInt8InputsUnsupported, LARGEST_DOT } from './latticeGemvI8.js';
import { quadRepackPipelines, quadRepackShaderSource, repackDeterministicQuads } from './quadRepack.js';

/*
 * The D3 quad GEMV: Y = ŴᵀX with int8 inputs for a d3-q6-deterministic matrix whose codes are laid
 * out in whole quads per column (16 blocks: 4 code words and one word of their 2-bit scale indices),
 * so that its loop has nothing to align — the deterministic D3 kernel of latticeGemvI8.ts reads the
 * codes as stored, where a column starts at any word, and pays per group for joining index words and
 * addressing x̂ across quads of the binding. Same codes (3.33 bits per entry), same x̂ (groups of 12,
 * shaders/gemv_i8_inputs.wgsl), same sums up to the order of the f32 additions. Each block's scale
 * multiple comes with its leader from one workgroup-table word per (code, scale index)
 * (shaders/d3_quad_gemv_i8.wgsl). Pieces: `GpuD3QuadMatrix.repack` (on the GPU from an uploaded or
 * GPU-quantized matrix, shaders/d3_quad_repack.wgsl; CPU twin `d3QuadForm`), `dispatchD3QuadGemvI8`
 * (the product with its epilogue, through `recordE8QuadGemv`; CPU twin `d3QuadGemvReference`).
 */

/** Blocks per quad: 4 code words of 4 codes. */
export const D3_QUAD_BLOCKS = 16;

/** Rotated coordinates per quad (4 groups of x̂). */
const QUAD_COORDINATES = 3 * D3_QUAD_BLOCKS;

/**
 * Leaders of d3-q6. The kernel's table holds them as packed i8, each copy padded to 256 entries with
 * zeros, so that a code byte past the leaders (which no quantizer writes, but a hand-made upload may
 * hold) adds 0, as `d3QuadGemvReference` says, where an unpadded table would clamp it to another leader.
 */
const D3_LEADERS = 6 ** 3;

/**
 * The default copies of the leader table: 32 (32 KB: 256 entries each, the 216 leaders and zeros for
 * the code bytes past them), where the workgroup memory holds them beside the staged x̂ (an H200's
 * 48 KB), else the most that fit (16 in 32 KB, 8 in 16 KB). With 32 every warp-wide lookup takes one
 * pass through the banks; the table of stop 50 (one word per (scale index, code), 1024 of them, with
 * room for one copy) took 3.3 on real codes, which by the estimate of shaders/d3_quad_gemv_i8.wgsl
 * held the kernel to ≈ 1.8 TB/s on an H200 (it measured 1.46). Not yet timed on a GPU; the benchmark
 * times 16 and 1 beside it.
 */
export const D3_QUAD_DEFAULT_LEADER_COPIES: LeaderCopies = 32;

/**
 * Quads of one step of the quad GEMV loop with one right-hand side (32 lanes × 2 quads each): the
 * shader's STAGE_QUADS, generated from here (it asserts the loop's step), and the staged x̂'s budget.
 */
const D3_QUAD_STAGE_QUADS = 64;

/** The largest scale multiple: k is a byte of the word the kernel's lanes keep (`multiple_bytes`). */
const LARGEST_TABLE_MULTIPLE = 255;

/**
 * The leader-table copies of the D3 quad GEMV for a tile of `rhsTile` right-hand sides: `requested`
 * (checked) or the default, 32, or the most below it that fit `workgroupBytes` beside the lanes' sums
 * and the staged x̂ (5 KB with one right-hand side); each copy takes 1 KB (256 entries).
 *
 * @example
 * d3QuadLeaderCopies(1, 49152); // 32: 32 768 bytes beside 1056 + 5120
 * d3QuadLeaderCopies(1, 32768); // 16
 * d3QuadLeaderCopies(1, 16384); // 8
 */
export function d3QuadLeaderCopies(rhsTile: 1 | 8, workgroupBytes: number, requested?: LeaderCopies): LeaderCopies {
  return i8LeaderCopies(PADDED_LEADER_ENTRIES, rhsTile, stagedInputBytes(rhsTile), workgroupBytes, requested, D3_QUAD_DEFAULT_LEADER_COPIES);
}

/**
 * Workgroup bytes of the kernel's staged x̂ (shaders/d3_quad_gemv_i8.wgsl): one right-hand side stages
 * a step's 64 quads, 4 vec4 of levels and one of scales each; a tile keeps two placeholder vec4s.
 */
function stagedInputBytes(rhsTile: 1 | 8): number {
  return rhsTile === 1 ? 16 * 5 * D3_QUAD_STAGE_QUADS : 2 * 16;
}

/** Quads per column of a matrix of `blocksPerColumn` blocks. */
export function d3Quads(blocksPerColumn: number): number {
  return Math.ceil(blocksPerColumn / D3_QUAD_BLOCKS);
}

const Params = /*#__PURE__*/ e8QuadGemvParamsLayout('D3QuadGemvParams', {
  quad_first: 'u32', // vec4 of the codes binding where this dispatch's first column starts
  side_first: 'u32', // word of the scale-index binding where this dispatch's first column starts
  column_unit: 'f32', // the deterministic column unit
  multiple_bytes: 'u32', // k of 2-bit scale index i in byte i (0 past the matrix's multiples; each ≤ 255)
});


/** A compiled variant of the D3 quad GEMV. */
export interface D3QuadGemvVariant {
  readonly rhsTile: 1 | 8;
  readonly subgroups: boolean;
  readonly dotPath: DotPath;
  readonly copies: LeaderCopies;
}

/** The WGSL of one variant: the quad GEMVs' module (e8QuadGemvShaderSource) with the D3 decode for the table's fill. */
export function d3QuadGemvShaderSource(variant: D3QuadGemvVariant): string {
  const library = [gemvDecodeWithRulesWgsl('D3', 6), `const LEADER_COUNT: u32 = ${D3_LEADERS}u;`, `const STAGE_QUADS: u32 = ${D3_QUAD_STAGE_QUADS}u;`, leaderTableWgsl({ copies: variant.copies, entries: PADDED_LEADER_ENTRIES })].join('\n');
  return e8QuadGemvShaderSource(variant, Params.wgsl(), library, `${gemvSource}\n${quadWordSideSource}`);
}

const pipelines = /*#__PURE__*/ new KernelPipelines({
  label: 'd3 quad gemv (int8 inputs)',
  bindings: DETERMINISTIC_I8_GEMV_BINDINGS,
  compile: (device, pipelineLayout, variant: D3QuadGemvVariant): GemvWithSumsPipelines => {
    const label = `d3 quad gemv (int8 inputs, ${variant.dotPath} dot, ${counted(variant.rhsTile, 'right-hand side')} per tile, ${variant.copies} table copies${variant.subgroups ? ', subgroups' : ''})`;
    return compileGemvWithSums(device, pipelineLayout, label, d3QuadGemvShaderSource(variant));
  },
  key: (variant) => `${variant.rhsTile}/${variant.subgroups}/${variant.dotPath}/${variant.copies}`,
});

/** The WGSL of the repack. */
export function d3QuadRepackShaderSource(): string {
  return quadRepackShaderSource(repackSource);
}

const repackPipelines = /*#__PURE__*/ quadRepackPipelines('d3 quad repack', repackSource);

/** The D3 quad form on the CPU (`d3QuadForm`): what `GpuD3QuadMatrix` holds, word for word (`columnUnit`: `deterministicColumnUnit`). */
export interface D3QuadMatrix extends DeterministicQuadForm {
  /** 4 words per quad of each column: block 4w + i's code in byte i of word w (code 0 past the column's blocks). */
  readonly codes: Uint32Array;
  /** One word per quad of each column: block t's scale index in bits 2t, 2t + 1. */
  readonly indices: Uint32Array;
}

/** Refuses what the D3 quad GEMV cannot read: the int8-input GEMV's schemes (8-bit D3 codes, 1- or 2-bit indices), multiples up to 255. */
export function d3QuadUnsupported(m: Pick<GpuDeterministicMatrix, 'scheme' | 'multiples'> & { readonly scaleIndexBits?: number }): string | null {
  // A hand-built GPU matrix states its own index width: the repack reads 1 or 2 bits (a wider index
  // would spill into its neighbour's field).
  const scheme = latticeInt8InputsUnsupported(m.scheme, m.scaleIndexBits);
  if (scheme !== null) return scheme;
  if (m.multiples.length > 4) return `the D3 quad GEMV takes at most 4 scale multiples (2-bit indices), got ${m.multiples.length}`;
  return multiplesOutOfByte(m.multiples);
}

/** Why `multiples` do not fit the quad table's byte (integers 0…255), naming them, or null. */
function multiplesOutOfByte(multiples: ArrayLike<number>): string | null {
  const values = Array.from(multiples);
  if (values.every((k) => Number.isInteger(k) && k >= 0 && k <= LARGEST_TABLE_MULTIPLE)) return null;
  return `the D3 quad GEMV holds each scale multiple in a byte (integers 0…${LARGEST_TABLE_MULTIPLE}); this matrix has ${values.join(', ')}`;
}

/**
 * CPU twin of the repack (shaders/d3_quad_repack.wgsl): `m`'s codes in whole quads per column and one
 * word of 2-bit scale indices per quad.
 *
 * @example
 * const form = d3QuadForm(quantize(w, { scheme: 'd3-q6-deterministic' }) as DeterministicLatticeMatrix);
 */
export function d3QuadForm(m: DeterministicLatticeMatrix): D3QuadMatrix {
  const why = d3QuadUnsupported(m);
  check(why === null, () => `d3QuadForm: ${why ?? ''}`);
  const blocks = m.blocksPerColumn;
  const quads = d3Quads(blocks);
  const codes = new Uint32Array(4 * quads * m.cols);
  const indices = new Uint32Array(quads * m.cols);
  for (let j = 0; j < m.cols; j++) {
    for (let b = 0; b < blocks; b++) {
      const at = j * blocks + b;
      const word = 4 * j * quads + (b >> 2);
      codes[word] = ((codes[word] as number) | ((m.codes[at] as number) << (8 * (b & 3)))) >>> 0;
      const indexWord = j * quads + Math.floor(b / D3_QUAD_BLOCKS);
      indices[indexWord] = ((indices[indexWord] as number) | ((m.scaleIndices[at] as number) << (2 * (b % D3_QUAD_BLOCKS)))) >>> 0;
    }
  }
  return { ...deterministicQuadForm(m, quads, deterministicColumnUnit(m)), codes, indices };
}

/** What a {@link GpuD3QuadMatrix} holds besides its buffers. */
export type D3QuadShape = E8QuadShape & { readonly blocksPerColumn: number; readonly multiples: ArrayLike<number> };

/**
 * A d3-q6-deterministic matrix in the D3 quad layout on the GPU: its codes in whole quads per column,
 * a word of 2-bit scale indices per quad, and the column side (ν_j·γ_j of every column, then μ_j when
 * centred). Made by `repack` (on the GPU, from a `GpuDeterministicMatrix`) or `upload` (the CPU form);
 * `destroy()` frees the buffers. The matrix it was made from keeps what `read()` returns.
 *
 * @hideconstructor
 */
export class GpuD3QuadMatrix extends GpuE8QuadMatrix {
  readonly blocksPerColumn: number;
  readonly multiples: Int32Array;

  constructor(
    device: GPUDevice,
    m: D3QuadShape,
    readonly codes: GPUBuffer,
    readonly indices: GPUBuffer,
    /** ν_j·γ_j of every column, then (when centred) μ_j. */
    readonly columnSide: GPUBuffer,
  ) {
    super(device, m, 'GpuD3QuadMatrix', QUAD_COORDINATES);
    check(Number.isInteger(m.blocksPerColumn) && d3Quads(m.blocksPerColumn) === m.quadsPerColumn, 'GpuD3QuadMatrix: quadsPerColumn must be ⌈blocksPerColumn / 16⌉');
    check(m.multiples.length >= 1 && m.multiples.length <= 4, () => `GpuD3QuadMatrix: 1…4 multiples (2-bit indices), got ${describeValue(m.multiples.length)}`);
    const outOfByte = multiplesOutOfByte(m.multiples);
    check(outOfByte === null, () => `GpuD3QuadMatrix: ${outOfByte ?? ''}`);
    const multiples = Int32Array.from(m.multiples);
    // A group's sum Σ_b k_b·⟨P_b, x̂_b⟩ over 4 blocks is an i32 (always, with k ≤ 255).
    check(4 * LARGEST_TABLE_MULTIPLE * LARGEST_DOT < 2 ** 31, 'GpuD3QuadMatrix: group sums must fit an i32');
    checkBufferHolds(codes, 16 * m.quadsPerColumn * m.cols, 'GpuD3QuadMatrix.codes');
    checkBufferHolds(indices, 4 * m.quadsPerColumn * m.cols, 'GpuD3QuadMatrix.indices');
    checkBufferHolds(columnSide, e8ColumnSideBytes(m), 'GpuD3QuadMatrix.columnSide');
    this.blocksPerColumn = m.blocksPerColumn;
    this.multiples = multiples;
  }

  protected buffers(): readonly GPUBuffer[] {
    return [this.codes, this.indices, this.columnSide];
  }

  /**
   * Uploads the CPU form `m`.
   *
   * @example
   * const w = GpuD3QuadMatrix.upload(device, d3QuadForm(q), 'W');
   */
  static upload(device: GPUDevice, m: D3QuadMatrix, label: string): GpuD3QuadMatrix {
    checkLabel(label, 'GpuD3QuadMatrix.upload');
    const side = new Float32Array((m.means === null ? 1 : 2) * m.cols);
    side.set(m.columnScales);
    if (m.means !== null) side.set(m.means, m.cols);
    const buffers = [
      createBufferWithData(device, `${label} quad codes`, m.codes, STORAGE_USAGE),
      createBufferWithData(device, `${label} quad scale indices`, m.indices, STORAGE_USAGE),
      createBufferWithData(device, `${label} column scales and means`, side, STORAGE_USAGE),
    ] as const;
    try {
      return new GpuD3QuadMatrix(device, { ...m, hasMeans: m.means !== null }, ...buffers);
    } catch (error) {
      for (const buffer of buffers) buffer.destroy();
      throw error;
    }
  }

  /**
   * Lays out a d3-q6-deterministic matrix on the GPU in whole quads (one submit on `device.queue`):
   * the same words as `d3QuadForm` on its CPU matrix, in ranges of columns whose fields fit a storage
   * binding (`maxBindingBytes`, default the device's limit). The result does not read `m`, so the
   * caller may destroy `m` once the repack is submitted.
   *
   * @example
   * const w = GpuD3QuadMatrix.repack(device, uploadLatticeMatrix(device, q), 'W');
   */
  static repack(device: GPUDevice, m: GpuDeterministicMatrix, label: string, options: { readonly maxBindingBytes?: number } = {}): GpuD3QuadMatrix {
    const { quads, buffers } = repackDeterministicQuads(device, m, label, options, {
      what: 'GpuD3QuadMatrix.repack',
      unsupported: d3QuadUnsupported,
      quads: d3Quads,
      outputs: [
        { name: 'quad codes', quadBytes: 16 },
        { name: 'quad scale indices', quadBytes: 4 },
      ],
      pipelines: repackPipelines,
    });
    try {
      const { rows, cols, rotate, seed, length, keptLength, multiples, blocksPerColumn } = m;
      return new GpuD3QuadMatrix(device, { rows, cols, rotate, seed, length, keptLength, blocksPerColumn, quadsPerColumn: quads, multiples, columnUnit: deterministicColumnUnit(m), hasMeans: m.means !== null }, ...buffers);
    } catch (error) {
      for (const buffer of buffers) buffer.destroy();
      throw error;
    }
  }

}

/**
 * The x̂ operand of a quad matrix for the D3 rounding (`dispatchInputsI8`, `dispatchRotatedInputsI8`):
 * groups of 12, 4 per quad, so x̂ rounded for it serves the quad matrices of the same rotation,
 * keptLength and quads.
 */
export function d3QuadInputsOperand(w: Pick<GpuD3QuadMatrix, 'rows' | 'length' | 'keptLength' | 'quadsPerColumn' | 'rotate' | 'seed'>): InputsI8Operand {
  return { rows: w.rows, length: w.length, keptLength: w.keptLength, blocksPerColumn: D3_QUAD_BLOCKS * w.quadsPerColumn, rotate: w.rotate, seed: w.seed };
}

/** The key of the x̂ a quad matrix reads (`inputsI8Key` of its operand): x̂ with this key serves it. */
export function d3QuadInputsKey(w: Pick<GpuD3QuadMatrix, 'rows' | 'length' | 'keptLength' | 'quadsPerColumn' | 'rotate' | 'seed'>): string {
  return inputsI8Key(d3QuadInputsOperand(w));
}

/** Arguments of {@link dispatchD3QuadGemvI8}: X (or x̂ from `dispatchD3QuadInputsI8`), Y and the options of `GemvCallArgs`, the output, W, the dot path. */
export interface D3QuadGemvI8Args extends Omit<E8QuadGemvArgs, 'inputsI8'>, SharedInputsI8Arg {
  readonly w: GpuD3QuadMatrix;
  /** Copies of the kernel's leader table (each 1 KB; default 32: `D3_QUAD_DEFAULT_LEADER_COPIES`, or the most that fit). */
  readonly leaderCopies?: LeaderCopies;
}

/** The keys of {@link D3QuadGemvI8Args}: dispatchD3QuadGemvI8 refuses any other (a misspelt option must not run on its default). */
const D3_QUAD_GEMV_I8_ARG_KEYS = [...GEMV_CALL_ARG_KEYS, ...GEMV_OUTPUT_ARG_KEYS, 'inputsI8', 'dotPath', 'w', 'leaderCopies'] as const satisfies readonly (keyof D3QuadGemvI8Args)[];

/**
 * Records Y = ŴᵀX (+ μ·Σx for a centred W) (+ b) with int8 inputs into `encoder`: x̃ = R·X (when W is
 * rotated and neither `xRotated` nor `inputsI8` is given), x̃ to int8 in groups of 12 (unless `inputsI8`
 * is given; in the rotation's last pass where it can be), then one pass with Σx (when W is centred)
 * and the product per range of columns whose quads fit a binding.
 *
 * @example
 * const w = GpuD3QuadMatrix.repack(device, gpuW, 'W');
 * dispatchD3QuadGemvI8(device, encoder, scratch, { w, x, y, rhs: 1, dotPath: dotPathFor(engine.features) });
 */
export function dispatchD3QuadGemvI8(device: GPUDevice, encoder: GPUCommandEncoder, scratch: GpuScratch, args: D3QuadGemvI8Args): void {
  checkDispatch(device, encoder, scratch, args, 'dispatchD3QuadGemvI8');
  checkOptionsObject(args, D3_QUAD_GEMV_I8_ARG_KEYS, 'dispatchD3QuadGemvI8 arguments');
  const what = 'd3 quad gemv (int8 inputs)';
  const { w } = args;
  check(w instanceof GpuD3QuadMatrix && !w.isDestroyed, `${what}: W must be a live GpuD3QuadMatrix`);
  const copies = d3QuadLeaderCopies(args.rhs === 1 ? 1 : 8, device.limits.maxComputeWorkgroupStorageSize, args.leaderCopies);
  const quads = w.quadsPerColumn;
  const groups = 4 * quads;
  const operand = d3QuadInputsOperand(w);
  // k of index i in byte i: the kernel takes a block's k with one shift and mask.
  const multipleBytes = [0, 1, 2, 3].reduce((word, i) => word + (w.multiples[i] ?? 0) * 2 ** (8 * i), 0);
  recordE8QuadGemv(device, encoder, scratch, w, args, {
    what,
    quadBytes: 16,
    pipelines: { get: (gpu, variant) => pipelines.get(gpu, { ...variant, copies }) },
    side: { bytes: e8ColumnSideBytes(w), refusal: `the column side of ${w.cols} columns does not fit` },
    inputs: {
      form: d3InputsI8Form(device, encoder, scratch, operand),
      round: (xRotated, xRotatedOffset, rhs) => dispatchInputsI8(device, encoder, scratch, { w: operand, xRotated, xRotatedOffset, rhs }),
      scalesFirst: (rhs) => inputsI8ScalesFirst(groups, rhs),
    },
    range: (range, shared, alignment) => {
      const codeWindow = bindingWindow(16 * quads * range.first, 16 * quads * range.count, alignment);
      const indexWindow = bindingWindow(4 * quads * range.first, 4 * quads * range.count, alignment);
      return {
        params: Params.pack({
          ...shared,
          quad_first: codeWindow.firstElement / 4, // a whole number: columns start on 16-byte quads and bindings on aligned offsets
          side_first: indexWindow.firstElement,
          column_unit: w.columnUnit,
          multiple_bytes: multipleBytes,
        }),
        weights: [windowBinding(w.codes, codeWindow), windowBinding(w.indices, indexWindow)],
      };
    },
  });
}

/** Arguments of {@link dispatchD3QuadInputsI8}. */
export interface D3QuadInputsI8Args {
  /** A quad matrix the inputs are for: any with the same rotation, keptLength and quads may use them. */
  readonly w: GpuD3QuadMatrix;
  /** x̃ = R·X rotated with W's seed, or X itself when W is not rotated: N × rhs f32 (N = W.length). */
  readonly xRotated: GPUBuffer;
  readonly xRotatedOffset?: number;
  readonly rhs: number;
}

/**
 * Records x̃ → int8 in groups of 12 (4 per quad) once, for several `dispatchD3QuadGemvI8` calls that
 * read the same x̃ (their `inputsI8`).
 *
 * @example
 * const inputsI8 = dispatchD3QuadInputsI8(device, encoder, scratch, { w, xRotated, rhs: 1 });
 * dispatchD3QuadGemvI8(device, encoder, scratch, { w, inputsI8, y, rhs: 1, dotPath });
 */
export function dispatchD3QuadInputsI8(device: GPUDevice, encoder: GPUCommandEncoder, scratch: GpuScratch, args: D3QuadInputsI8Args): RecordedInputsI8 {
  checkDispatch(device, encoder, scratch, args, 'dispatchD3QuadInputsI8');
  checkOptionsObject(args, INPUTS_I8_ARG_KEYS, 'dispatchD3QuadInputsI8 arguments');
  return dispatchInputsI8(device, encoder, scratch, { w: d3QuadInputsOperand(args.w), xRotated: args.xRotated, xRotatedOffset: args.xRotatedOffset ?? 0, rhs: args.rhs });
}

/**
 * Records x̂ from x (one right-hand side, f32) for `w` into scratch buffers: x̃ = R·x rounded in the
 * rotation (when W is rotated), else x rounded. What the benchmark's kernel-alone rows make once.
 */
export function dispatchD3QuadInputs(device: GPUDevice, encoder: GPUCommandEncoder, scratch: GpuScratch, w: GpuD3QuadMatrix, x: GPUBuffer, xOffset = 0): RecordedInputsI8 {
  if (!w.rotate) return dispatchD3QuadInputsI8(device, encoder, scratch, { w, xRotated: x, xRotatedOffset: xOffset, rhs: 1 });
  const xRotated = scratch.intermediate('d3 quad gemv: x̃', 4 * w.length, STORAGE_USAGE);
  return dispatchRotatedInputsI8(device, encoder, scratch, { w: d3QuadInputsOperand(w), x, xOffset, xRotated, rhs: 1 });
}

/** Options of {@link d3QuadGemvI8}. */
export type D3QuadGemvI8Options = Pick<D3QuadGemvI8Args, 'maxBindingBytes' | 'subgroups' | 'subgroupTestMode' | 'dotPath' | 'leaderCopies'>;

/** The keys of {@link D3QuadGemvI8Options}: the host GEMV refuses any other (one is forwarded to the dispatch, where `outputFormat: 'f16'` would make Y unreadable). */
const D3_QUAD_GEMV_I8_OPTION_KEYS = ['maxBindingBytes', 'subgroups', 'subgroupTestMode', 'dotPath', 'leaderCopies'] as const satisfies readonly (keyof D3QuadGemvI8Options)[];

/**
 * Y = ŴᵀX with int8 inputs for X given on the CPU: uploads X, records the GEMV, reads Y back. For tests
 * and benchmarks.
 *
 * @example
 * const y = await d3QuadGemvI8(device, GpuD3QuadMatrix.repack(device, gpuW, 'W'), x, { dotPath: 'packed' });
 */
export async function d3QuadGemvI8(device: GPUDevice, w: GpuD3QuadMatrix, x: Matrix | Float32Array, options: D3QuadGemvI8Options): Promise<Matrix> {
  checkOptionsObject(options, D3_QUAD_GEMV_I8_OPTION_KEYS, 'd3QuadGemvI8 options');
  return gemvOnHost(device, 'd3 quad gemv (int8 inputs)', w, x, options, (run, io, given) => dispatchD3QuadGemvI8(device, run.encoder, run.scratch, { ...given, ...io, w }));
}

/**
 * CPU twin of the product for one right-hand side: y_j = ν_jγ_j·columnUnit·Σ_g s_g·Σ_{b∈g} k_b·⟨P_b,
 * x̂_b⟩ (+ μ_j·Σx, `xSum`, for a centred matrix) from the quad form and x̂ rounded in groups of 12
 * (`quantizeInputsI8` with 4·quads groups), in float64. `leaders` is the D3 leader table
 * (`leaderTable(new VoronoiCode(D3, 6))`).
 */
export function d3QuadGemvReference(m: D3QuadMatrix, leaders: Int32Array, inputs: InputsI8, xSum?: number): Float64Array {
  check(m.means === null || xSum !== undefined, 'd3QuadGemvReference: a centred matrix needs Σx (xSum)');
  check(inputs.levels.length >= INPUT_GROUP * 4 * m.quadsPerColumn, 'd3QuadGemvReference: x̂ must hold 4 groups per quad');
  const y = new Float64Array(m.cols);
  for (let j = 0; j < m.cols; j++) {
    let total = 0;
    for (let g = 0; g < 4 * m.quadsPerColumn; g++) {
      let exact = 0;
      const word = m.codes[4 * j * m.quadsPerColumn + g] as number;
      const indexWord = m.indices[j * m.quadsPerColumn + (g >> 2)] as number;
      for (let i = 0; i < 4; i++) {
        const code = (word >>> (8 * i)) & 0xff;
        const k = m.multiples[(indexWord >>> (2 * (4 * (g & 3) + i))) & 3] ?? 0;
        if (code >= leaders.length / 3) continue; // past the leaders: the table's 0
        let dot = 0;
        for (let c = 0; c < 3; c++) dot += (leaders[3 * code + c] as number) * (inputs.levels[INPUT_GROUP * g + 3 * i + c] as number);
        exact += k * dot;
      }
      total += (inputs.scales[g] as number) * exact;
    }
    y[j] = (m.columnScales[j] as number) * m.columnUnit * total + (m.means === null ? 0 : (m.means[j] as number) * (xSum as number));
  }
  return y;
}
