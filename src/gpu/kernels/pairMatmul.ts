import dotPackedSource from '../../../shaders/dot_i8_packed.wgsl?raw';
import dotPlainSource from '../../../shaders/dot_i8_plain.wgsl?raw';
import pairMatmulSource from '../../../shaders/pair_matmul.wgsl?raw';
import { check, checkOneOf, checkPositiveInteger } from '../../errors.js';
import { checkPairRadixBits, droppedLowMean, largestPairShift, MAX_DITHERED_PAIR_SHIFT, PAIR_UNIT, PAIR_UNIT_WORDS, pairRadixBits } from '../../quantize/universalPairs.js';
import { universalDitherUnit } from '../universalOperand.js';
import { checkBufferRange } from '../bufferRange.js';
import { createKernelBindGroup, createKernelPipeline, KernelPipelines, windowBinding } from '../pipelines.js';
import type { GpuScratch } from '../scratch.js';
import { UniformLayout } from '../uniformLayout.js';
import { bindingCap } from '../workSplit.js';
import { checkWholeProductA, MATMUL_TILE, productColumnChunks } from './matmulF32.js';
import { DOT_PATHS, type DotPath } from './e8Matmul.js';
import { PAIR_UNIT_BYTES } from './universalPairs.js';

/*
 * C = ÂᵀB̂ of two universal matrices from their pair forms (shaders/pair_matmul.wgsl; the form is
 * src/quantize/universalPairs.ts's, made by universalPairs.ts): packed 8-bit dot products
 * (`dot4I8Packed` where the WGSL language feature exists, plain sign extension otherwise), three per 4
 * coordinates. The result still lacks the columns' exponents, means and a Gram matrix's diagonal:
 * `dispatchProductEpilogue` applies them, as after the decoded f32 product. CPU twin:
 * `pairProductReference`.
 */

/**
 * The smallest unit_a·unit_b the kernel takes. It multiplies each entry's integer sum (≥ 1 in
 * magnitude unless 0) by common_scale·f_i·f_j in f32, so at or above 2^-100 every nonzero entry is a
 * normal f32 before the epilogue's exponents; below it (β near 0 with long columns: unit = β/(256·√N))
 * entries would lose bits to subnormals or vanish, and the engine multiplies such operands on the
 * decode path, whose decoded values carry the units.
 */
export const PAIR_MIN_COMMON_SCALE = 2 ** -100;

/** unit_a·unit_b (`universalDitherUnit` of each): the f32 scale of the pair product of `a` and `b`. */
export function pairCommonScale(a: PairOperandScheme, b: PairOperandScheme): number {
  return universalDitherUnit(a) * universalDitherUnit(b);
}

/**
 * Whether the pair product of `a` and `b` keeps the guarantee whatever their data, which the engine's
 * `'i8'` path requires (else it takes the decode path): their common scale is at least
 * PAIR_MIN_COMMON_SCALE (f32's range), and no column of either can be shifted by more than
 * MAX_DITHERED_PAIR_SHIFT bits in the pair form (`largestPairShift`; unit = β/(256·√N), so β near 0 or
 * long columns): such a rounding takes λ's bits and undoes the dither, and the pair product's error
 * stops being the guarantee's (371× it on the GPU for two unrotated constant columns with E8 q = 64,
 * β = 1/10000.3, n = 4096). For the presets the shift takes lengths beyond 2.1·10⁵ (d3-q6) to 10⁶
 * (e8-q16) to the decode path.
 */
export function pairProductKeepsDither(a: PairOperandScheme, b: PairOperandScheme): boolean {
  const radixBits = pairRadixBits(a.scheme.q, b.scheme.q);
  return pairCommonScale(a, b) >= PAIR_MIN_COMMON_SCALE && largestPairShift(a, radixBits) <= MAX_DITHERED_PAIR_SHIFT && largestPairShift(b, radixBits) <= MAX_DITHERED_PAIR_SHIFT;
}

/** What `pairCommonScale` and `pairProductKeepsDither` read of an operand: its scheme's q and β, and its rotated length. */
export interface PairOperandScheme {
  readonly scheme: { readonly q: number; readonly beta: number };
  readonly length: number;
}

/** C entries per workgroup edge (the shader's TILE: the f32 matmul's tiling). */
const TILE = MATMUL_TILE;

const Params = /*#__PURE__*/ new UniformLayout('PairMatmulParams', {
  units: 'u32', // units per column, both operands
  a_cols: 'u32', // all of A (C's rows)
  b_cols: 'u32', // B columns in this dispatch
  a_first: 'u32', // vec4 index of A's first unit in its binding
  b_first: 'u32',
  c_first: 'u32', // element offset of this dispatch's C[0, 0] in its binding
  a_factor_first: 'u32', // index of A's first column in the factors buffer
  b_factor_first: 'u32',
  common_scale: 'f32', // unit_a · unit_b
  radix: 'f32', // R = 2^r of both pair forms
  low_mean: 'f32', // droppedLowMean: added where Σ l_a·l_b is dropped
});

/** The WGSL of one dot path: the dot library, the uniform struct, then shaders/pair_matmul.wgsl. */
export function pairMatmulShaderSource(dotPath: DotPath): string {
  return `${dotPath === 'packed' ? dotPackedSource : dotPlainSource}\n${Params.wgsl()}\n${pairMatmulSource}`;
}

/**
 * Per dot path and device, the two pipelines every product dispatches over the same grid (the shader's
 * WITH_LOW): `plain` takes the tiles of unshifted columns (Σ l_a·l_b dropped), `withLow` those that
 * hold a shifted column (the term kept for its pairs); each returns at once from the other's tiles.
 */
const pipelines = /*#__PURE__*/ new KernelPipelines({
  label: 'pair matmul',
  bindings: ['uniform', 'read-only-storage', 'read-only-storage', 'read-only-storage', 'read-only-storage', 'storage'],
  compile: (device, pipelineLayout, dotPath: DotPath) => {
    const code = pairMatmulShaderSource(dotPath);
    return {
      plain: createKernelPipeline(device, pipelineLayout, { label: `pair matmul (${dotPath} dot products)`, code, constants: { WITH_LOW: 0 } }),
      withLow: createKernelPipeline(device, pipelineLayout, { label: `pair matmul (${dotPath} dot products, shifted columns)`, code, constants: { WITH_LOW: 1 } }),
    };
  },
});

/**
 * Refuses an A the kernel cannot take (its pair form is bound whole; its columns set one grid
 * dimension), so a caller can check before recording anything: `what` names A as the caller knows it.
 */
export function checkPairMatmulA(device: GPUDevice, units: number, aCols: number, what: string, maxBinding = device.limits.maxStorageBufferBindingSize): void {
  checkWholeProductA(device, what, `${aCols} columns of ${units} 16-byte units`, PAIR_UNIT_BYTES * units, aCols, PAIR_UNIT_BYTES * units * aCols, maxBinding);
}

/** Arguments of {@link dispatchPairMatmul}: two pair forms (from byte 0 of their buffers) and C. */
export interface PairMatmulArgs {
  readonly a: { readonly pairs: GPUBuffer; readonly factors: GPUBuffer; readonly cols: number };
  readonly b: { readonly pairs: GPUBuffer; readonly factors: GPUBuffer; readonly cols: number };
  /** Units per column (both operands). */
  readonly units: number;
  /** unit_a · unit_b (`universalDitherUnit` of each). */
  readonly commonScale: number;
  /** r of the radix 2^r both pair forms were made with. */
  readonly radixBits: number;
  /** Rotated coordinates kept by both operands (the smaller keptLength): sets the dropped term's mean. */
  readonly keptLength: number;
  /** C, aCols × bCols column-major f32 (written, before the epilogue). */
  readonly c: GPUBuffer;
  /** Byte offset of C (a multiple of 4). */
  readonly cOffset?: number;
  readonly dotPath: DotPath;
  /** Largest storage binding to use, in bytes (default: the device's limit; tests pass less to exercise splitting). */
  readonly maxBindingBytes?: number;
}

/**
 * Records the pair product into `encoder`. Columns of B (and C) are split across dispatches when B's
 * pairs or C exceed one binding or the grid exceeds the dispatch limit; A's pairs are bound whole.
 *
 * @example
 * dispatchPairMatmul(device, encoder, scratch, { a, b, units, commonScale, radixBits, keptLength, c, dotPath: 'packed' });
 */
export function dispatchPairMatmul(device: GPUDevice, encoder: GPUCommandEncoder, scratch: GpuScratch, args: PairMatmulArgs): void {
  const { units } = args;
  const aCols = args.a.cols;
  const bCols = args.b.cols;
  checkPositiveInteger(units, 'pair matmul units');
  checkPositiveInteger(aCols, 'pair matmul A columns');
  checkPositiveInteger(bCols, 'pair matmul B columns');
  checkOneOf(args.dotPath, DOT_PATHS, 'dotPath');
  check(
    Number.isFinite(args.commonScale) && args.commonScale >= PAIR_MIN_COMMON_SCALE,
    () => `pair matmul: commonScale ${args.commonScale} is below 2^-100, where its f32 products lose bits (multiply such operands on the decode path)`,
  );
  checkPairRadixBits(args.radixBits, 'pair matmul');
  check(
    Number.isInteger(args.keptLength) && args.keptLength >= 0 && args.keptLength <= PAIR_UNIT * units,
    () => `pair matmul: keptLength must be an integer in [0, ${PAIR_UNIT * units}] (${PAIR_UNIT} per unit), got ${args.keptLength}`,
  );
  const cOffset = args.cOffset ?? 0;
  checkBufferRange(args.a.pairs, 0, PAIR_UNIT_BYTES * units * aCols, 'pair matmul: A');
  checkBufferRange(args.b.pairs, 0, PAIR_UNIT_BYTES * units * bCols, 'pair matmul: B');
  checkBufferRange(args.a.factors, 0, 4 * aCols, 'pair matmul: A factors');
  checkBufferRange(args.b.factors, 0, 4 * bCols, 'pair matmul: B factors');
  checkBufferRange(args.c, cOffset, 4 * aCols * bCols, 'pair matmul: C');
  const maxBinding = bindingCap(device, args.maxBindingBytes, 'pair matmul');
  checkPairMatmulA(device, units, aCols, 'pair matmul: A', maxBinding);
  const chunks = productColumnChunks(device, { aCols, bCols, bColumnBytes: PAIR_UNIT_BYTES * units, bOffset: 0, cOffset }, maxBinding);

  const { layout, pipeline } = pipelines.get(device, args.dotPath);
  const pass = encoder.beginComputePass({ label: `pair matmul (${args.dotPath})` });
  for (const { first: j0, count: chunkCols, bWindow, cWindow } of chunks) {
    const label = `pair matmul (B columns ${j0}…${j0 + chunkCols - 1})`;
    const params = Params.pack({
      units,
      a_cols: aCols,
      b_cols: chunkCols,
      a_first: 0,
      b_first: bWindow.firstElement / PAIR_UNIT_WORDS, // a window starts at a multiple of 16 bytes
      c_first: cWindow.firstElement,
      a_factor_first: 0,
      b_factor_first: j0,
      common_scale: args.commonScale,
      radix: 2 ** args.radixBits,
      low_mean: droppedLowMean(args.keptLength, args.radixBits),
    });
    pass.setBindGroup(
      0,
      createKernelBindGroup(device, layout, label, [
        { buffer: scratch.uniform(`${label} params`, params) },
        { buffer: args.a.pairs, size: PAIR_UNIT_BYTES * units * aCols },
        { buffer: args.a.factors },
        windowBinding(args.b.pairs, bWindow),
        { buffer: args.b.factors },
        windowBinding(args.c, cWindow),
      ]),
    );
    // Each tile is written by exactly one of the two (the other returns before touching C).
    for (const variant of [pipeline.plain, pipeline.withLow]) {
      pass.setPipeline(variant);
      pass.dispatchWorkgroups(Math.ceil(aCols / TILE), Math.ceil(chunkCols / TILE));
    }
  }
  pass.end();
}
