import { throwIfDeviceLost } from '../errorScopes.js';
import { checkDispatch } from './dispatchChecks.js';
import counterHashSource from '../../../shaders/counter_hash.wgsl?raw';
import gemvSource from '../../../shaders/e8_point_gemv_i8.wgsl?raw';
import quadInputsDirectSource from '../../../shaders/quad_inputs_direct.wgsl?raw';
import repackSource from '../../../shaders/e8_point_repack.wgsl?raw';
import { check, checkLabel } from '../../errors.js';
import { checkOptionsObject } from '../../quantize/strictOptions.js';
import type { Matrix } from '../../matrix.js';
import { E8_INPUT_GROUP } from './inputsI8Layout.js';
import { E8_POINT_FACTOR, E8_POINT_LIMIT, e8PointUnsupported, unpackPoint, type E8PointMatrix } from '../../quantize/e8Points.js';
import { E8_RESIDUE_QUAD_BLOCKS, e8ResidueQuads } from '../../quantize/e8Residues.js';
import { blockDither } from '../../quantize/universalCode.js';
import { latticeSpec, universalCodec } from '../../quantize/latticeSpec.js';
import { createBuffer, createBufferWithData, readBufferExclusive, STORAGE_USAGE } from '../buffers.js';
import { checkBufferHolds, columnRanges, checkMatrixUsable } from '../latticeOperand.js';
import { createKernelBindGroup, createKernelPipeline, KernelPipelines, windowBinding } from '../pipelines.js';
import { checkGpuUniversalMatrix, universalDitherUnit, type GpuUniversalMatrix } from '../universalOperand.js';
import { UNIVERSAL_OPERAND_BINDINGS, UNIVERSAL_OPERAND_MEMBERS, universalColumnsPerBinding, universalDecodeWgsl, universalOperandWindows } from './universalWgsl.js';
import { GpuScratch } from '../scratch.js';
import { UniformLayout } from '../uniformLayout.js';
import { bindingCap, bindingWindow, itemsPerBinding, workgroupGrid } from '../workSplit.js';
import { GEMV_OUTPUT_ARG_KEYS, GEMV_CALL_ARG_KEYS, gemvOnHost } from './gemvCall.js';
import { e8ColumnSideBytes, e8QuadGemvParamsLayout, e8QuadGemvPipelines, e8QuadGemvShaderSource, GpuE8QuadMatrix, recordE8QuadGemv, type E8InputsI8Values, type E8QuadGemvArgs, type E8QuadGemvVariant } from './e8ResidueGemvI8.js';

/*
 * The E8 point GEMV: Y = ŴᵀX for a universal E8 matrix (e8-2bit … e8-5bit, e8-q16) whose lattice
 * points were stored as int8 at upload (src/quantize/e8Points.ts: 8 bits per entry read instead of the
 * stored 3–5, ≈ 46 instructions per block instead of the code decode's ≈ 310–525), with x̃ rounded to
 * int8 per group of 32 coordinates (the E8 residue GEMV's inputs, `dispatchE8InputsI8`: one rounding
 * serves both forms). Pieces: `GpuE8PointMatrix.upload` (the CPU form `e8PointForm` on the GPU) and
 * `dispatchE8PointGemvI8` (the product with its epilogue: μ_j·Σx for a centred W, the bias, f32 or f16
 * Y, added to Y's old values with `accumulate`; shaders/e8_point_gemv_i8.wgsl; CPU twin `e8PointGemvReference`), which also rotates and rounds X
 * itself when not given x̂. The dither is the scheme's, regenerated per block from the column's keys,
 * so the product is the universal code's (its error independent of the data); the inputs' rounding
 * adds an error bounded per output as the other int8-input GEMVs' (latticeGemvI8.ts): at most
 * (½ + 2·10⁻⁴)·s_g·Σ_{k∈g}|ŵ̃_k| per group g of 32 rotated coordinates.
 */

/** Bytes of points per quad (4 blocks of 8 int8). */
const QUAD_BYTES = 32;

const Params = /*#__PURE__*/ e8QuadGemvParamsLayout('E8PointGemvParams', {
  point_first: 'u32', // vec4 of the points binding where this dispatch's first column starts
  overflow_at: 'u32', // vec2 of the keys binding holding the repack's overflow word (after every column's keys)
  column_unit: 'f32', // β/(DITHER_GRID·√N)
});

/** The WGSL of one product variant. */
export function e8PointGemvShaderSource(variant: E8QuadGemvVariant): string {
  return e8QuadGemvShaderSource(variant, Params.wgsl(), counterHashSource, `${gemvSource}\n${quadInputsDirectSource}`);
}

const pipelines = /*#__PURE__*/ e8QuadGemvPipelines('e8 point gemv', e8PointGemvShaderSource);

/** Invocations per workgroup of shaders/e8_point_repack.wgsl: one per block. */
export const E8_POINT_REPACK_THREADS = 256;

// A pure IIFE, not a pure `new`: bundlers keep an argument with a spread (it may run getters).
const RepackParams = /*#__PURE__*/ (() => new UniformLayout('E8PointRepackParams', {
  ...UNIVERSAL_OPERAND_MEMBERS,
  cols: 'u32', // columns in this dispatch
  point_first: 'u32', // word of the dispatch's first column in the points binding
  column_words: 'u32', // point words per column (8 per quad)
  total_cols: 'u32', // columns of the matrix: the overflow word follows their keys
}))();

// A pure IIFE, not a pure `new`: bundlers keep an argument with a spread (it may run getters).
const repackPipelines = /*#__PURE__*/ (() =>
  new KernelPipelines({
    label: 'e8 point repack',
    bindings: ['uniform', ...UNIVERSAL_OPERAND_BINDINGS, 'storage', 'storage'],
    compile: (device, pipelineLayout) =>
      createKernelPipeline(device, pipelineLayout, { label: 'e8 point repack', code: `${RepackParams.wgsl()}\n${universalDecodeWgsl(latticeSpec('E8'))}\n${repackSource}` }),
  }))();

/** What a {@link GpuE8PointMatrix} holds besides its buffers. */
export type E8PointShape = Pick<E8PointMatrix, 'rows' | 'cols' | 'rotate' | 'seed' | 'length' | 'keptLength' | 'quadsPerColumn' | 'columnUnit'> & { readonly hasMeans: boolean };

/**
 * An {@link E8PointMatrix} on the GPU: points (whole quads per column), the columns' dither keys and
 * the column side (ν_j of every column, then μ_j when centred). Made by `upload` (from the CPU form
 * `e8PointForm`); `destroy()` frees the buffers.
 *
 * @hideconstructor
 */
export class GpuE8PointMatrix extends GpuE8QuadMatrix {
  constructor(
    device: GPUDevice,
    m: E8PointShape,
    readonly points: GPUBuffer,
    /** Two u32 per column, the keys of the dither's hash words, then the repack's overflow word and one more (0 when every point fits int8). */
    readonly keys: GPUBuffer,
    /** ν_j of every column, then (when centred) μ_j. */
    readonly columnSide: GPUBuffer,
  ) {
    super(device, m, 'GpuE8PointMatrix');
    checkBufferHolds(points, QUAD_BYTES * m.quadsPerColumn * m.cols, 'GpuE8PointMatrix.points');
    checkBufferHolds(keys, keysBytes(m.cols), 'GpuE8PointMatrix.keys');
    checkBufferHolds(columnSide, e8ColumnSideBytes(m), 'GpuE8PointMatrix.columnSide');
  }

  protected buffers(): readonly GPUBuffer[] {
    return [this.points, this.keys, this.columnSide];
  }

  /**
   * Uploads the CPU form `m`.
   *
   * @example
   * const points = GpuE8PointMatrix.upload(device, e8PointForm(quantize(w, { scheme: 'e8-4bit' }) as UniversalLatticeMatrix), 'W');
   * points.destroy();
   */
  static upload(device: GPUDevice, m: E8PointMatrix, label: string): GpuE8PointMatrix {
    checkLabel(label, 'GpuE8PointMatrix.upload');
    const side = new Float32Array((m.means === null ? 1 : 2) * m.cols);
    side.set(m.norms);
    if (m.means !== null) side.set(m.means, m.cols);
    const buffers = [
      createBufferWithData(device, `${label} points`, m.points, STORAGE_USAGE),
      createBufferWithData(device, `${label} dither keys`, Uint32Array.from({ length: 2 * m.cols + 2 }, (_, i) => (i < 2 * m.cols ? (m.ditherKeys[i] as number) : 0)), STORAGE_USAGE),
      createBufferWithData(device, `${label} norms and means`, side, STORAGE_USAGE),
    ] as const;
    try {
      return new GpuE8PointMatrix(device, { ...m, hasMeans: m.means !== null }, ...buffers);
    } catch (error) {
      for (const buffer of buffers) buffer.destroy();
      throw error;
    }
  }

  /**
   * Repacks an uploaded universal E8 matrix on the GPU (one submit on `device.queue`): the same words
   * as `e8PointForm` on its CPU matrix (shaders/e8_point_repack.wgsl), in ranges of columns whose
   * codes fit a storage binding (`maxBindingBytes`, default the device's limit); norms and means are
   * copied. The matrix stays the caller's; the result does not read it, so the caller may destroy it
   * once the repack is submitted. A point beyond ±127 cannot be known here without waiting for the
   * GPU: the repack marks it, every GEMV on the result then writes NaN, and `check()` rejects, naming
   * the cause (`e8PointForm` refuses such a matrix at once on the CPU). No preset's matrix has shown one
   * on rotated data (|λ| ≤ 72 measured).
   *
   * @example
   * const w = GpuE8PointMatrix.repack(device, engine.upload(quantize(x, { scheme: 'e8-4bit' })) as GpuUniversalMatrix, 'W');
   * await w.check();
   */
  static repack(device: GPUDevice, m: GpuUniversalMatrix, label: string, options: { readonly maxBindingBytes?: number } = {}): GpuE8PointMatrix {
    checkLabel(label, 'GpuE8PointMatrix.repack');
    const what = 'GpuE8PointMatrix.repack';
    throwIfDeviceLost(device, what);
    const layout = checkGpuUniversalMatrix(m, `${what}: W`);
    checkMatrixUsable(m, device, `${what}: W`, 'repack');
    const why = e8PointUnsupported(m);
    check(why === null, () => `${what}: ${why ?? ''}`);
    const quads = e8ResidueQuads(m.blocksPerColumn);
    const alignment = device.limits.minStorageBufferOffsetAlignment;
    const maxBinding = bindingCap(device, options.maxBindingBytes, what);
    const maxGroups = device.limits.maxComputeWorkgroupsPerDimension;
    check(keysBytes(m.cols) <= maxBinding, () => `${what}: the dither keys of ${m.cols} columns do not fit one storage binding (${maxBinding} bytes)`);
    const perRange = Math.min(
      universalColumnsPerBinding(layout, maxBinding, alignment),
      itemsPerBinding(QUAD_BYTES * quads, maxBinding, alignment),
      Math.max(1, Math.floor((E8_POINT_REPACK_THREADS * maxGroups * maxGroups) / m.blocksPerColumn)),
    );
    const sideBytes = e8ColumnSideBytes(m);
    const buffers = [
      createBuffer(device, `${label} points`, QUAD_BYTES * quads * m.cols, STORAGE_USAGE),
      createBuffer(device, `${label} dither keys`, keysBytes(m.cols), STORAGE_USAGE),
      createBuffer(device, `${label} norms and means`, sideBytes, STORAGE_USAGE),
    ] as const;
    const [points, keys, side] = buffers;
    const scratch = new GpuScratch(device);
    try {
      const encoder = device.createCommandEncoder({ label: `${label}: repack` });
      encoder.copyBufferToBuffer(m.side, 0, side, 0, sideBytes);
      const { layout: bindGroupLayout, pipeline } = repackPipelines.get(device, undefined);
      const pass = encoder.beginComputePass({ label: `${label}: repack` });
      pass.setPipeline(pipeline);
      for (const range of columnRanges(m.cols, perRange)) {
        const rangeLabel = `${label}: repack columns ${range.first}…${range.first + range.count - 1}`;
        const windows = universalOperandWindows(m, layout, range.first, range.count, alignment);
        const pointWindow = bindingWindow(QUAD_BYTES * quads * range.first, QUAD_BYTES * quads * range.count, alignment);
        const params = RepackParams.pack({
          ...windows.uniforms,
          cols: range.count,
          point_first: pointWindow.firstElement,
          column_words: (QUAD_BYTES / 4) * quads,
          total_cols: m.cols,
        });
        pass.setBindGroup(
          0,
          createKernelBindGroup(device, bindGroupLayout, rangeLabel, [
            { buffer: scratch.uniform(`${rangeLabel} params`, params) },
            ...windows.bindings,
            windowBinding(points, pointWindow),
            { buffer: keys },
          ]),
        );
        const [gx, gy] = workgroupGrid(Math.ceil((range.count * m.blocksPerColumn) / E8_POINT_REPACK_THREADS), maxGroups);
        pass.dispatchWorkgroups(gx, gy);
      }
      pass.end();
      device.queue.submit([encoder.finish()]);
      const { rows, cols, rotate, seed, length, keptLength, hasMeans } = m;
      return new GpuE8PointMatrix(device, { rows, cols, rotate, seed, length, keptLength, quadsPerColumn: quads, columnUnit: universalDitherUnit(m), hasMeans }, ...buffers);
    } catch (error) {
      for (const buffer of buffers) buffer.destroy();
      throw error;
    } finally {
      scratch.destroy();
    }
  }

  /**
   * Resolves when every point fit int8 (always, for a matrix from `upload`), and rejects, naming the
   * cause, when the repack found one beyond ±127 (the GEMVs on this matrix then write NaN).
   *
   * @example
   * await GpuE8PointMatrix.repack(device, gpuW, 'W').check();
   */
  async check(): Promise<void> {
    check(!this.isDestroyed, 'GpuE8PointMatrix.check: the matrix was destroyed');
    const words = new Uint32Array(await readBufferExclusive(this.device, this.keys, 4, 8 * this.cols));
    check(
      words[0] === 0,
      `GpuE8PointMatrix: a lattice point coordinate of this matrix is beyond the int8 points' ±${E8_POINT_LIMIT} (a coordinate far above its column's RMS, as an unrotated column's spike); its GEMVs write NaN: use the scheme's own GEMV`,
    );
  }

}

/** Bytes of a point matrix's keys buffer: two words per column, the overflow word and one more (a whole vec2). */
function keysBytes(cols: number): number {
  return 8 * cols + 8;
}


/**
 * Bytes the point GEMV reads of a universal E8 matrix once repacked: 32 bytes of points per quad of
 * each column, its keys and its column side (ν, and μ when centred).
 *
 * @example
 * e8PointBytes({ blocksPerColumn: 512, cols: 4096, hasMeans: false }); // 32 · 128 · 4096 + 12 · 4096 + 8
 */
export function e8PointBytes(m: { readonly blocksPerColumn: number; readonly cols: number; readonly hasMeans: boolean }): number {
  return QUAD_BYTES * e8ResidueQuads(m.blocksPerColumn) * m.cols + keysBytes(m.cols) + e8ColumnSideBytes(m);
}

/** Arguments of {@link dispatchE8PointGemvI8}: X (or x̂), Y and the options of `GemvCallArgs`, the output, W and the dot path. */
export interface E8PointGemvI8Args extends E8QuadGemvArgs {
  readonly w: GpuE8PointMatrix;
}

/** The keys of {@link E8PointGemvI8Args}: dispatchE8PointGemvI8 refuses any other (a misspelt option must not run on its default). */
const E8_POINT_GEMV_I8_ARG_KEYS = [...GEMV_CALL_ARG_KEYS, ...GEMV_OUTPUT_ARG_KEYS, 'inputsI8', 'dotPath', 'w'] as const satisfies readonly (keyof E8PointGemvI8Args)[];

/**
 * Records Y = ŴᵀX (+ μ·Σx for a centred W) (+ b) with int8 inputs into `encoder`: x̃ = R·X (when W is
 * rotated and neither `xRotated` nor `inputsI8` is given), x̃ to int8 (unless `inputsI8` is given; in
 * the rotation's last pass where it can be), then one pass with Σx (when W is centred) and the
 * product per range of columns whose points fit a binding. Scratch buffers go into `scratch`.
 *
 * @example
 * const w = GpuE8PointMatrix.upload(device, e8PointForm(q), 'W');
 * dispatchE8PointGemvI8(device, encoder, scratch, { w, x, y, rhs: 1, dotPath: dotPathFor(engine.features) });
 */
export function dispatchE8PointGemvI8(device: GPUDevice, encoder: GPUCommandEncoder, scratch: GpuScratch, args: E8PointGemvI8Args): void {
  checkDispatch(device, encoder, scratch, args, 'dispatchE8PointGemvI8');
  checkOptionsObject(args, E8_POINT_GEMV_I8_ARG_KEYS, 'dispatchE8PointGemvI8 arguments');
  const what = 'e8 point gemv (int8 inputs)';
  const { w } = args;
  check(w instanceof GpuE8PointMatrix && !w.isDestroyed, `${what}: W must be a live GpuE8PointMatrix`);
  const quads = w.quadsPerColumn;
  recordE8QuadGemv(device, encoder, scratch, w, args, {
    what,
    quadBytes: QUAD_BYTES,
    pipelines,
    side: { bytes: Math.max(e8ColumnSideBytes(w), keysBytes(w.cols)), refusal: `the keys and column side of ${w.cols} columns do not fit` },
    range: (range, shared, alignment) => {
      const pointWindow = bindingWindow(QUAD_BYTES * quads * range.first, QUAD_BYTES * quads * range.count, alignment);
      return {
        params: Params.pack({
          ...shared,
          point_first: pointWindow.firstElement / 4, // a whole number: columns start on 32-byte quads and bindings on aligned offsets
          overflow_at: w.cols,
          column_unit: w.columnUnit,
        }),
        weights: [windowBinding(w.points, pointWindow), { buffer: w.keys }],
      };
    },
  });
}

/** Options of {@link e8PointGemvI8}. */
export type E8PointGemvI8Options = Pick<E8PointGemvI8Args, 'maxBindingBytes' | 'subgroups' | 'subgroupTestMode' | 'dotPath'>;

/** The keys of {@link E8PointGemvI8Options}: the host GEMV refuses any other (one is forwarded to the dispatch, where `outputFormat: 'f16'` would make Y unreadable). */
const E8_POINT_GEMV_I8_OPTION_KEYS = ['maxBindingBytes', 'subgroups', 'subgroupTestMode', 'dotPath'] as const satisfies readonly (keyof E8PointGemvI8Options)[];

/**
 * Y = ŴᵀX with int8 inputs for X given on the CPU: uploads X, records the GEMV, reads Y back. For tests
 * and benchmarks.
 *
 * @example
 * const y = await e8PointGemvI8(device, GpuE8PointMatrix.upload(device, e8PointForm(q), 'W'), x, { dotPath: 'packed' });
 */
export async function e8PointGemvI8(device: GPUDevice, w: GpuE8PointMatrix, x: Matrix | Float32Array, options: E8PointGemvI8Options): Promise<Matrix> {
  checkOptionsObject(options, E8_POINT_GEMV_I8_OPTION_KEYS, 'e8PointGemvI8 options');
  return gemvOnHost(device, 'e8 point gemv (int8 inputs)', w, x, options, (run, io, given) => dispatchE8PointGemvI8(device, run.encoder, run.scratch, { ...given, ...io, w }));
}

/**
 * CPU twin of the product for one right-hand side: y_j = ν_j·columnUnit·Σ_g s_g·Σ_{b∈g} Σ_v (λ_v·128 −
 * Z_v)·x̂_v (+ μ_j·Σx, `xSum`, for a centred matrix) from the point form (`unpackPoint`), the scheme's
 * block dither (`blockDither`) and given x̂, in float64.
 */
export function e8PointGemvReference(m: E8PointMatrix, inputs: E8InputsI8Values, xSum?: number): Float64Array {
  check(m.means === null || xSum !== undefined, 'e8PointGemvReference: a centred matrix needs Σx (xSum)');
  const codec = universalCodec(m.scheme.lattice, m.scheme.q, m.scheme.beta);
  const y = new Float64Array(m.cols);
  const point = new Int32Array(8);
  const dither = new Int32Array(8);
  const wordsPerColumn = 2 * E8_RESIDUE_QUAD_BLOCKS * m.quadsPerColumn;
  for (let j = 0; j < m.cols; j++) {
    const keys = { first: m.ditherKeys[2 * j] as number, second: m.ditherKeys[2 * j + 1] as number };
    let total = 0;
    for (let g = 0; g < m.quadsPerColumn; g++) {
      let exact = 0;
      for (let t = 0; t < E8_RESIDUE_QUAD_BLOCKS; t++) {
        const b = g * E8_RESIDUE_QUAD_BLOCKS + t;
        unpackPoint(m.points[j * wordsPerColumn + 2 * b] as number, m.points[j * wordsPerColumn + 2 * b + 1] as number, point);
        blockDither(codec, keys, b, dither);
        for (let i = 0; i < 8; i++) exact += (E8_POINT_FACTOR * (point[i] as number) - (dither[i] as number)) * (inputs.levels[g * E8_INPUT_GROUP + 8 * t + i] as number);
      }
      total += (inputs.scales[g] as number) * exact;
    }
    y[j] = (m.norms[j] as number) * m.columnUnit * total + (m.means === null ? 0 : (m.means[j] as number) * (xSum as number));
  }
  return y;
}
