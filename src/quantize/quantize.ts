import { check } from '../errors.js';
import { D3 } from '../lattices/d3.js';
import { E8 } from '../lattices/e8.js';
import type { Lattice } from '../lattices/lattice.js';
import { zLattice } from '../lattices/zLattice.js';
import { checkMatrix, column, type Matrix } from '../matrix.js';
import { rotationLength } from '../rotation/hadamard.js';
import { RandomizedHadamard } from '../rotation/randomizedHadamard.js';
import { absmaxQuantize, absmaxSideBitsPerEntry, type AbsmaxOptions } from '../scalar/absmax.js';
import { NVFP4_BITS_PER_ENTRY, nvfp4Quantize, nvfp4TensorScale } from '../scalar/nvfp4.js';
import { canonicalSum, fixedPointNumerator, toFixedPoint } from './columnScaling.js';
import { LatticeBlockEncoder, type BlockCode } from './latticeEncoder.js';
import { prepareColumn, unscale } from './prepareColumn.js';
import { latticeRates, SIDE_FLOAT_BITS } from './rates.js';
import type { LatticeQuantizedMatrix, QuantizedMatrix, ScalarQuantizedMatrix } from './quantizedMatrix.js';
import { MAX_DENOMINATOR, MAX_E8_DENOMINATOR, scaleGrid } from './scaleGrid.js';
import { resolveScheme, type IntScheme, type LatticeScheme, type Scheme, type SchemeName } from './schemes.js';

/** How the decoder rescales each decoded column (see {@link QuantizeOptions.gain}). */
export type GainMode = 'unbiased' | 'mmse' | 'none';

/** Options of {@link quantize}. */
export interface QuantizeOptions {
  /** A named scheme ('d3-q6', 'e8-q16', 'int3-absmax', 'int4-g32', 'int4-g128', 'nvfp4') or an explicit one. */
  readonly scheme: SchemeName | Scheme;
  /** Seed of the shared random rotation: A and B must use the same one. Default 1. */
  readonly seed?: number;
  /** Subtract each column's mean first (kept as side information). Default false. */
  readonly center?: boolean;
  /** Apply the randomized Hadamard rotation. Default true. */
  readonly rotate?: boolean;
  /**
   * Per-column gain applied to the decoded column (lattice schemes; 32 bits of side information):
   * - `'unbiased'` (default): γ = ‖u‖² / ⟨u, û⟩, so the decoded column has no component of error
   *   along the input. A deterministic quantizer's error correlates with its input; without this,
   *   that bias multiplies large inner products (low-rank or outlier-heavy data, README table).
   * - `'mmse'`: γ = ⟨u, û⟩ / ‖û‖², the seed paper's MMSE scaling: lowest error on iid Gaussian data,
   *   but it shrinks every inner product by γ_a·γ_b, which dominates when AᵀB is large.
   * - `'none'`: γ = 1, no side information.
   */
  readonly gain?: GainMode;
  /**
   * Time-sharing for rates below R* ≈ 0.906 (DESIGN §2): quantize only this fraction κ of the rotated
   * coordinates and drop the rest. Default 1. See `timeSharingFraction` in theory/.
   */
  readonly keepFraction?: number;
}

/** Smallest normal fp16 value, 2^−14. */
const FP16_MIN_NORMAL = 2 ** -14;


/**
 * Quantizes the columns of `matrix` (each a vector of `rows` entries).
 *
 * @example
 * const a = gaussianMatrix(768, 64, 1);
 * const b = gaussianMatrix(768, 32, 2);
 * const qa = quantize(a, { scheme: 'd3-q6', seed: 7 });
 * const qb = quantize(b, { scheme: 'd3-q6', seed: 7 });
 * const c = matmulAT(qa, qb); // ≈ aᵀb, 64 × 32
 * console.log(qa.bitsEntropy, productNmse(c, a, b)); // ≈ 3.0 bits, ≈ 0.06
 */
export function quantize(matrix: Matrix, options: QuantizeOptions): QuantizedMatrix {
  checkMatrix(matrix, 'matrix');
  check(typeof options === 'object' && options !== null, 'quantize needs an options object with a scheme');
  const scheme = resolveScheme(options.scheme);
  const seed = options.seed ?? 1;
  check(Number.isInteger(seed) && seed >= 0 && seed <= 0xffffffff, () => `seed must be an integer in [0, 2^32 − 1], got ${seed}`);
  const center = options.center ?? false;
  const rotate = options.rotate ?? true;
  const gain = options.gain ?? (scheme.kind === 'lattice' ? 'unbiased' : 'none');
  check(['unbiased', 'mmse', 'none'].includes(gain), () => `gain must be 'unbiased', 'mmse' or 'none', got '${String(gain)}'`);
  const keepFraction = options.keepFraction ?? 1;
  check(keepFraction > 0 && keepFraction <= 1, () => `keepFraction must be in (0, 1], got ${keepFraction}`);
  check(gain === 'none' || scheme.kind === 'lattice', 'a gain applies to lattice schemes only');
  check(keepFraction === 1 || scheme.kind === 'lattice', 'keepFraction (time-sharing) applies to lattice schemes only');

  const n = matrix.rows;
  const length = rotate ? rotationLength(n) : n;
  const context: Context = {
    matrix,
    seed,
    center,
    rotate,
    length,
    rotation: rotate ? new RandomizedHadamard(n, seed) : null,
  };
  if (scheme.kind === 'lattice') return quantizeLattice(context, scheme, gain, keepFraction);
  return quantizeScalar(context, scheme);
}

interface Context {
  readonly matrix: Matrix;
  readonly seed: number;
  readonly center: boolean;
  readonly rotate: boolean;
  readonly length: number;
  readonly rotation: RandomizedHadamard | null;
}

/** Z^8: the scalar lattice in blocks of 8 that share a scale index (built once). */
const Z8 = zLattice(8);

/** The lattice object of a scheme. */
export function schemeLattice(scheme: LatticeScheme): Lattice {
  switch (scheme.lattice) {
    case 'D3':
      return D3;
    case 'E8':
      return E8;
    case 'Z':
      return Z8;
  }
}

/**
 * Rotated coordinates a lattice scheme quantizes: all `length` of them at κ = 1 (a last, partial block
 * is zero-padded), otherwise κ·length rounded to whole blocks of `d`, at least one block.
 */
export function keptRotatedLength(length: number, d: number, keepFraction: number): number {
  if (keepFraction === 1) return length;
  return Math.min(length, Math.max(d, Math.round((keepFraction * length) / d) * d));
}

function quantizeLattice(ctx: Context, scheme: LatticeScheme, gain: GainMode, keepFraction: number): LatticeQuantizedMatrix {
  const { matrix, length } = ctx;
  const { rows: n, cols } = matrix;
  const lattice = schemeLattice(scheme);
  const d = lattice.dimension;
  const grid = scaleGrid(scheme.overload, scheme.lattice === 'E8' ? MAX_E8_DENOMINATOR : MAX_DENOMINATOR);
  const encoder = new LatticeBlockEncoder(lattice, scheme.q, grid);
  const keptLength = keptRotatedLength(length, d, keepFraction);
  const blocksPerColumn = Math.ceil(keptLength / d);
  const numerator = fixedPointNumerator(length, grid.unit);
  const s = lattice.pointScale;

  const codes = new Uint32Array(blocksPerColumn * cols);
  const scaleIndices = new Uint8Array(blocksPerColumn * cols);
  const norms = new Float32Array(cols);
  const means = ctx.center ? new Float32Array(cols) : null;
  const gains = gain === 'none' ? null : new Float32Array(cols);
  const scaled = new Float32Array(n);
  const rotated = new Float32Array(length);
  const fixed = new Int32Array(blocksPerColumn * d); // zero beyond keptLength
  const decoded = new Int32Array(d);
  const block: BlockCode = { code: 0, scaleIndex: 0, clipped: false };
  const indexCounts = new Float64Array(grid.multiples.length);
  let clippedBlocks = 0;

  for (let j = 0; j < cols; j++) {
    const prepared = prepareColumn(column(matrix, j), ctx.center, ctx.rotation, scaled, rotated);
    if (means) means[j] = unscale(prepared.scaledMean, prepared.exponent, `mean of column ${j}`);
    const scaledNorm = Math.fround(Math.sqrt(canonicalSum(rotated, length, true)));
    norms[j] = unscale(scaledNorm, prepared.exponent, `norm of column ${j}`);
    if (scaledNorm === 0) {
      fixed.fill(0);
    } else {
      const gain = Math.fround(numerator / scaledNorm);
      toFixedPoint(rotated, gain, keptLength, fixed);
    }
    let dotUHat = 0;
    let normHat = 0;
    let normU = 0;
    const toUnit = scaledNorm === 0 ? 0 : Math.sqrt(length) / scaledNorm;
    for (let b = 0; b < blocksPerColumn; b++) {
      encoder.encodeBlock(fixed.subarray(b * d, (b + 1) * d), block, decoded);
      const index = j * blocksPerColumn + b;
      codes[index] = block.code;
      scaleIndices[index] = block.scaleIndex;
      indexCounts[block.scaleIndex] = (indexCounts[block.scaleIndex] as number) + 1;
      if (block.clipped) clippedBlocks++;
      if (gains) {
        const step = (grid.unit * (grid.multiples[block.scaleIndex] as number)) / s;
        for (let i = 0; i < d; i++) {
          const k = b * d + i;
          if (k >= keptLength) break;
          const u = (rotated[k] as number) * toUnit;
          const uHat = step * (decoded[i] as number);
          dotUHat += u * uHat;
          normHat += uHat * uHat;
          normU += u * u;
        }
      }
    }
    if (gains) gains[j] = columnGain(gain, normU, dotUHat, normHat);
  }

  const { bitsStored, bitsEntropy } = latticeRates({
    rows: n,
    cols,
    blocksPerColumn,
    codeBits: encoder.code.codeBits,
    codeCount: encoder.code.size,
    indexBits: grid.indexBits,
    indexCounts,
    sideFloatsPerColumn: 1 + (means ? 1 : 0) + (gains ? 1 : 0),
  });

  return {
    kind: 'lattice',
    scheme,
    rows: n,
    cols,
    length,
    keptLength,
    seed: ctx.seed,
    rotate: ctx.rotate,
    means,
    norms,
    gains,
    unit: grid.unit,
    multiples: grid.multiples,
    blocksPerColumn,
    codes,
    scaleIndices,
    clippedBlocks,
    bitsStored,
    bitsEntropy,
  };
}

/** The gain of one column from ‖u‖², ⟨u, û⟩ and ‖û‖² (1 where it is undefined, e.g. a zero column). */
function columnGain(mode: GainMode, normU: number, dotUHat: number, normHat: number): number {
  if (mode === 'mmse') return normHat > 0 ? Math.fround(dotUHat / normHat) : 1;
  if (mode === 'unbiased') return dotUHat > 0 ? Math.fround(normU / dotUHat) : 1;
  return 1;
}

function quantizeScalar(ctx: Context, scheme: IntScheme | { kind: 'nvfp4' }): ScalarQuantizedMatrix {
  const { matrix, length } = ctx;
  const { rows: n, cols } = matrix;
  const scaled = new Float32Array(n);
  const rotatedAll = new Float32Array(length * cols);
  const means = ctx.center ? new Float32Array(cols) : null;
  let tensorAbsMax = 0;
  for (let j = 0; j < cols; j++) {
    const target = rotatedAll.subarray(j * length, (j + 1) * length);
    const prepared = prepareColumn(column(matrix, j), ctx.center, ctx.rotation, scaled, target);
    if (means) means[j] = unscale(prepared.scaledMean, prepared.exponent, `mean of column ${j}`);
    // Scalar codes live in the input's own units: undo the power-of-two scaling (exact).
    const back = 2 ** -prepared.exponent;
    for (let i = 0; i < length; i++) {
      const v = Math.fround((target[i] as number) * back);
      check(Number.isFinite(v), () => `column ${j} exceeds the f32 range after rotation`);
      target[i] = v;
      if (Math.abs(v) > tensorAbsMax) tensorAbsMax = Math.abs(v);
    }
  }
  const codes = new Uint8Array(length * cols);
  const sideBits = SIDE_FLOAT_BITS * (means ? 1 : 0) * cols;
  if (scheme.kind === 'int') {
    const options = absmaxOptions(scheme, length);
    if (scheme.scaleFormat === 'fp16' && tensorAbsMax > 0) {
      // fp16 scales below its normal range lose precision and, far enough down, round every code to
      // zero: refuse such data instead of returning a silent all-zero matrix.
      const largestScale = scheme.grid === 'midrise' ? tensorAbsMax : tensorAbsMax / (2 ** (scheme.bits - 1) - 1);
      check(
        largestScale >= FP16_MIN_NORMAL,
        () =>
          `this scheme stores fp16 group scales, and the largest entry after rotation (${tensorAbsMax.toExponential(3)}) ` +
          `needs a scale below fp16's normal range (${FP16_MIN_NORMAL.toExponential(3)}); multiply the matrix by a power of two first`,
      );
    }
    const groupsPerColumn = Math.ceil(length / options.groupSize);
    const scales = new Float32Array(groupsPerColumn * cols);
    for (let j = 0; j < cols; j++) {
      const result = absmaxQuantize(rotatedAll.subarray(j * length, (j + 1) * length), options);
      codes.set(result.codes, j * length);
      scales.set(result.scales, j * groupsPerColumn);
    }
    const bits = (length * cols * (scheme.bits + absmaxSideBitsPerEntry(options, length)) + sideBits) / (n * cols);
    return { ...scalarBase(ctx, means, bits), scheme, codes, scales, tensorScale: 1, groupsPerColumn };
  }
  const tensorScale = nvfp4TensorScale(tensorAbsMax);
  const groupsPerColumn = Math.ceil(length / 16);
  const scales = new Uint8Array(groupsPerColumn * cols);
  for (let j = 0; j < cols; j++) {
    const result = nvfp4Quantize(rotatedAll.subarray(j * length, (j + 1) * length), tensorScale);
    codes.set(result.codes, j * length);
    scales.set(result.blockScales, j * groupsPerColumn);
  }
  const bits = (length * cols * NVFP4_BITS_PER_ENTRY + SIDE_FLOAT_BITS + sideBits) / (n * cols);
  return { ...scalarBase(ctx, means, bits), scheme: { kind: 'nvfp4' }, codes, scales, tensorScale, groupsPerColumn };
}

function scalarBase(ctx: Context, means: Float32Array | null, bits: number) {
  return {
    kind: 'scalar' as const,
    rows: ctx.matrix.rows,
    cols: ctx.matrix.cols,
    length: ctx.length,
    keptLength: ctx.length,
    seed: ctx.seed,
    rotate: ctx.rotate,
    means,
    bitsStored: bits,
    bitsEntropy: bits,
  };
}

/** The absmax options of an INT scheme for rotated columns of `length` entries. */
export function absmaxOptions(scheme: IntScheme, length: number): AbsmaxOptions {
  return {
    bits: scheme.bits,
    groupSize: scheme.groupSize === 'column' ? length : scheme.groupSize,
    grid: scheme.grid,
    scaleFormat: scheme.scaleFormat,
  };
}
