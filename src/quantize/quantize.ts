import { Int32Builder } from '../format/int32Builder.js';
import { check } from '../errors.js';
import { HUGE_ESCAPE } from '../lattices/escapes.js';
import type { Lattice } from '../lattices/lattice.js';
import { columnReader, type ColumnReader, type MatrixInput } from '../matrix.js';
import { isRotationLength, MAX_PADDED_ROTATION_N, oneStageRotationLength, rotationLength, rotationLengthsText } from '../rotation/hadamard.js';
import { checkTimeSharedRotation } from './checkQuantized.js';
import { RandomizedHadamard } from '../rotation/randomizedHadamard.js';
import { absmaxQuantize, absmaxSideBitsPerEntry, type AbsmaxOptions } from '../scalar/absmax.js';
import { E2M1_MAX, E4M3_MAX, FP16_MAX } from '../scalar/floatFormats.js';
import { nvfp4Quantize, nvfp4TensorScale, nvfp4VectorBits } from '../scalar/nvfp4.js';
import { canonicalSum, fixedPointNumerator, toFixedPoint } from './columnScaling.js';
import { LatticeBlockEncoder, type BlockCode } from './latticeEncoder.js';
import { checkColumnMean, checkColumnNorm, prepareColumn, unscale } from './prepareColumn.js';
import { latticeSpec, universalCodec } from './latticeSpec.js';
import { resolveQuantizeOptions, throwIfAborted, type QuantizeOptions, type QuantizeOptionsFor, type ResolvedQuantizeOptions } from './options.js';
import { latticeRates, SIDE_FLOAT_BITS, universalRatesOf } from './rates.js';
import type { DeterministicLatticeMatrix, QuantizedMatrix, QuantizedMatrixFor, ScalarQuantizedMatrix, UniversalLatticeMatrix } from './quantizedMatrix.js';
import { scaleGrid } from './scaleGrid.js';
import type { DeterministicLatticeScheme, IntScheme, LatticeScheme, Nvfp4Scheme, Scheme, SchemeName, UniversalLatticeScheme } from './schemes.js';
import {
  blockDither,
  ditherWordKeys,
  DITHER_KEYS,
  blockMirror,
  columnKeys,
  LONG_ESCAPE,
  randomizedRound,
  UNIVERSAL_FIXED_LIMIT,
  UniversalBlockEncoder,
  universalNumerator,
  type UniversalBlock,
} from './universalCode.js';

const TWO_POW_32 = 2 ** 32;

/** Smallest normal fp16 value, 2^−14. */
const FP16_MIN_NORMAL = 2 ** -14;

/** Smallest normal E4M3 value, 2^−6. */
const E4M3_MIN_NORMAL = 2 ** -6;

/**
 * Quantizes the columns of `matrix` (each a vector of `rows` entries): an f32 `Matrix`, or an f16 /
 * bf16 `HalfMatrix` (converted exactly).
 *
 * Lattice schemes are universal by default (subtractive dither, escape codes): the product error of
 * two quantized matrices depends only on their norms (`expectedProductError`). Schemes whose name ends
 * in '-deterministic' are the papers' deterministic quantizers, kept as an explicit opt-in.
 *
 * @example
 * const a = gaussianMatrix(768, 64, 1);
 * const b = gaussianMatrix(768, 32, 2);
 * const qa = quantize(a, { scheme: 'e8-q16', seed: 7 });
 * const qb = quantize(b, { scheme: 'e8-q16', seed: 7 });
 * const c = matmulAT(qa, qb); // ≈ aᵀb, 64 × 32
 * console.log(qa.bitsStored, productNmse(c, a, b)); // ≈ 4.28 bits (4.284: the 32 bits of each column's norm are 32/n of a bit at n = 768), ≈ 0.009
 */
export function quantize<S extends SchemeName | Scheme>(input: MatrixInput, options: QuantizeOptionsFor<S>): QuantizedMatrixFor<S>;
export function quantize(input: MatrixInput, options: QuantizeOptions): QuantizedMatrix {
  // Column by column: a 16-bit matrix is widened one column at a time, not copied whole to f32.
  const matrix = columnReader(input, 'matrix');
  const resolved = resolveQuantizeOptions(options);
  const { scheme } = resolved;
  const n = matrix.rows;
  const length = rotatedLength(n, resolved);
  checkTimeSharing(n, length, resolved);
  throwIfAborted(resolved.signal, 'quantize');
  const context: Context = {
    matrix,
    options: resolved,
    length,
    rotation: resolved.rotate ? new RandomizedHadamard(n, resolved.seed, length) : null,
  };
  if (scheme.kind === 'lattice') {
    return scheme.mode === 'universal' ? quantizeUniversal(context, scheme) : quantizeDeterministic(context, scheme);
  }
  return quantizeScalar(context, scheme);
}

interface Context {
  readonly matrix: ColumnReader;
  readonly options: ResolvedQuantizeOptions;
  readonly length: number;
  readonly rotation: RandomizedHadamard | null;
}

/** Refuses keepFraction < 1 where n = `rows` is rotated to `length` (`rotatedLength`) in more than one stage (`checkTimeSharedRotation`). */
export function checkTimeSharing(rows: number, length: number, options: Pick<ResolvedQuantizeOptions, 'keepFraction' | 'rotate'>): void {
  if (options.keepFraction === 1) return;
  checkTimeSharedRotation(rows, length, options.rotate, 'keepFraction < 1');
}

/**
 * N, the rotated length of the columns `quantize` (CPU or GPU) writes: n without rotation; the
 * `rotatedLength` option when given (checked against n); else `rotationLength(n)` (no padding past 256
 * entries), or with time-sharing (keepFraction < 1) the one-stage plan's, padded for n ≤ 1024 (a kept
 * prefix of a two-window rotation weighs the inputs unequally).
 */
export function rotatedLength(n: number, options: Pick<ResolvedQuantizeOptions, 'keepFraction' | 'rotate' | 'rotatedLength'>): number {
  if (!options.rotate) return n;
  const asked = options.rotatedLength;
  if (asked !== null) {
    check(isRotationLength(n, asked), () => `rotatedLength ${asked} is not a rotated length of ${n} rows (${rotationLengthsText(n)})`);
    return asked;
  }
  return options.keepFraction < 1 && n <= MAX_PADDED_ROTATION_N ? oneStageRotationLength(n) : rotationLength(n);
}

/** Reports progress after column j and honours the abort signal (every column: columns are long). */
function columnDone(ctx: Context, j: number): void {
  const { onProgress, signal } = ctx.options;
  if (onProgress !== null) onProgress(j + 1, ctx.matrix.cols);
  if (j + 1 < ctx.matrix.cols) throwIfAborted(signal, 'quantize');
}

/** The lattice object of a scheme (from its `latticeSpec`). */
export function schemeLattice(scheme: LatticeScheme): Lattice {
  return latticeSpec(scheme.lattice).lattice;
}

/**
 * Rotated coordinates a lattice scheme quantizes: all `length` of them at κ = 1 (a last, partial block
 * is zero-padded), otherwise κ·length rounded to whole blocks of `d`, at least one block.
 */
export function keptRotatedLength(length: number, d: number, keepFraction: number): number {
  if (keepFraction === 1) return length;
  return Math.min(length, Math.max(d, Math.round((keepFraction * length) / d) * d));
}

function quantizeUniversal(ctx: Context, scheme: UniversalLatticeScheme): UniversalLatticeMatrix {
  const { matrix, length } = ctx;
  const { keepFraction, center } = ctx.options;
  const nonce = ctx.options.nonce as bigint;
  const { rows: n, cols } = matrix;
  const codec = universalCodec(scheme.lattice, scheme.q, scheme.beta);
  const { spec } = codec;
  const d = spec.dimension;
  const keptLength = keptRotatedLength(length, d, keepFraction);
  const blocksPerColumn = Math.ceil(keptLength / d);
  const numerator = universalNumerator(length, scheme.beta);

  const codes = new Uint32Array(blocksPerColumn * cols);
  const codesHigh = codec.codeBits > 32 ? new Uint16Array(blocksPerColumn * cols) : null;
  const escapes = new Uint8Array(blocksPerColumn * cols);
  const longEscapes = new Int32Builder();
  const hugeEscapes = new Int32Builder();
  const norms = new Float32Array(cols);
  const means = center ? new Float32Array(cols) : null;
  const scaled = new Float32Array(n);
  const rotated = new Float32Array(length);
  const fixed = new Int32Array(blocksPerColumn * d);
  const dither = new Int32Array(d);
  const encoder = new UniversalBlockEncoder(codec);
  const block: UniversalBlock = { code: 0, symbol: 0, longIndex: 0 };

  for (let j = 0; j < cols; j++) {
    const prepared = prepareColumn(matrix.column(j), center, ctx.rotation, scaled, rotated);
    if (means) means[j] = unscale(prepared.scaledMean, prepared.exponent, `mean of column ${j}`);
    const scaledNorm = Math.fround(Math.sqrt(canonicalSum(rotated, length, true)));
    norms[j] = unscale(scaledNorm, prepared.exponent, `norm of column ${j}`);
    checkColumnNorm(norms[j] as number, j, means === null ? null : (means[j] as number));
    if (means) checkColumnMean(means[j] as number, j);
    const gain = scaledNorm === 0 ? 0 : Math.fround(numerator / scaledNorm);
    const keys = columnKeys(nonce, j);
    const wordKeys = ditherWordKeys(keys, DITHER_KEYS);
    for (let i = 0; i < fixed.length; i++) {
      const y = i < keptLength ? Math.fround((rotated[i] as number) * gain) : 0;
      const x = randomizedRound(y, keys.round, i);
      check(Math.abs(x) <= UNIVERSAL_FIXED_LIMIT, () => universalRangeMessage(j, i, x, scheme.beta, length, ctx.options.rotate));
      fixed[i] = x;
    }
    for (let b = 0; b < blocksPerColumn; b++) {
      blockDither(codec, wordKeys, b, dither);
      encoder.encode(fixed, b * d, dither, blockMirror(keys.round, b, d), block);
      const index = j * blocksPerColumn + b;
      codes[index] = block.code % TWO_POW_32;
      if (codesHigh !== null) codesHigh[index] = Math.floor(block.code / TWO_POW_32);
      escapes[index] = block.symbol;
      if (block.symbol === LONG_ESCAPE) {
        longEscapes.push(block.longIndex);
        if (block.longIndex === HUGE_ESCAPE) for (const v of encoder.mu) hugeEscapes.push(v);
      }
    }
    columnDone(ctx, j);
  }

  const { bitsStored, bitsEntropy } = universalRatesOf(codec, n, cols, blocksPerColumn, escapes, longEscapes.view(), hugeEscapes.length / d, means !== null);
  return {
    kind: 'lattice',
    mode: 'universal',
    scheme,
    rows: n,
    cols,
    length,
    keptLength,
    seed: ctx.options.seed,
    rotate: ctx.options.rotate,
    nonce,
    ditherKeys: DITHER_KEYS,
    means,
    norms,
    blocksPerColumn,
    codes,
    codesHigh,
    escapes,
    longEscapes: new Uint16Array(longEscapes.view()),
    hugeEscapes: hugeEscapes.view().slice(),
    bitsStored,
    bitsEntropy,
  };
}

/**
 * What to change when a rotated coordinate leaves the universal code's range (2^14 steps β); shared
 * with the GPU quantizer's message. A normalized column has norm √N, so no coordinate exceeds √N and
 * β ≥ √N/2^14 always fits. Below that, an unrotated column can still have one large coordinate
 * (rotation spreads it); a rotated one fits only with a larger β.
 */
export function universalRangeAdvice(beta: number, length: number, rotate: boolean): string {
  // 1 % above √N/2^14: clear of the f32 roundings of the gain and of the randomized rounding.
  const safeBeta = (Math.sqrt(length) / 2 ** 14) * 1.01;
  const fits = `every column fits with β ≥ ${safeBeta.toPrecision(3)} (just above √${length}/2^14)`;
  return rotate
    ? `the scheme's β = ${beta} is too small for columns of ${length} rotated coordinates: ${fits}`
    : `quantize with rotate: true (the default), which spreads such spikes; or ${fits}`;
}

function universalRangeMessage(j: number, i: number, x: number, beta: number, length: number, rotate: boolean): string {
  return (
    `column ${j}: rotated coordinate ${i} is ${(Math.abs(x) / 256).toExponential(2)} times the quantizer's step β, ` +
    `beyond the universal code's range (2^14); ${universalRangeAdvice(beta, length, rotate)}`
  );
}

function quantizeDeterministic(ctx: Context, scheme: DeterministicLatticeScheme): DeterministicLatticeMatrix {
  const { matrix, length } = ctx;
  const { gain, keepFraction, center } = ctx.options;
  const { rows: n, cols } = matrix;
  const spec = latticeSpec(scheme.lattice);
  const lattice = spec.lattice;
  const d = lattice.dimension;
  const grid = scaleGrid(scheme.overload, spec.maxDenominator);
  const encoder = new LatticeBlockEncoder(lattice, scheme.q, grid);
  const keptLength = keptRotatedLength(length, d, keepFraction);
  const blocksPerColumn = Math.ceil(keptLength / d);
  const numerator = fixedPointNumerator(length, grid.unit);
  const s = lattice.pointScale;

  const codes = new Uint32Array(blocksPerColumn * cols);
  const scaleIndices = new Uint8Array(blocksPerColumn * cols);
  const norms = new Float32Array(cols);
  const means = center ? new Float32Array(cols) : null;
  const gains = gain === 'none' ? null : new Float32Array(cols);
  const scaled = new Float32Array(n);
  const rotated = new Float32Array(length);
  const fixed = new Int32Array(blocksPerColumn * d); // zero beyond keptLength
  const decoded = new Int32Array(d);
  const block: BlockCode = { code: 0, scaleIndex: 0, clipped: false };
  const indexCounts = new Float64Array(grid.multiples.length);
  let clippedBlocks = 0;

  for (let j = 0; j < cols; j++) {
    const prepared = prepareColumn(matrix.column(j), center, ctx.rotation, scaled, rotated);
    if (means) means[j] = unscale(prepared.scaledMean, prepared.exponent, `mean of column ${j}`);
    const scaledNorm = Math.fround(Math.sqrt(canonicalSum(rotated, length, true)));
    norms[j] = unscale(scaledNorm, prepared.exponent, `norm of column ${j}`);
    checkColumnNorm(norms[j] as number, j, means === null ? null : (means[j] as number));
    if (means) checkColumnMean(means[j] as number, j);
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
    columnDone(ctx, j);
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
    mode: 'deterministic',
    scheme,
    rows: n,
    cols,
    length,
    keptLength,
    seed: ctx.options.seed,
    rotate: ctx.options.rotate,
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
function columnGain(mode: ResolvedQuantizeOptions['gain'], normU: number, dotUHat: number, normHat: number): number {
  if (mode === 'mmse') return normHat > 0 ? Math.fround(dotUHat / normHat) : 1;
  if (mode === 'unbiased') return dotUHat > 0 ? Math.fround(normU / dotUHat) : 1;
  return 1;
}

/**
 * Scalar schemes, one rotated column at a time (no `length × cols` f32 staging of the rotated matrix):
 * int schemes rotate and quantize each column in one pass; NVFP4's tensor scale needs every column's
 * absolute maximum first, so it rotates each column twice (a pass for the maxima, then one to encode),
 * bit for bit the same rotation. Refusals come in the order of the staged version: each column's own
 * checks as it is reached, then the scale-range checks over all columns.
 */
function quantizeScalar(ctx: Context, scheme: IntScheme | Nvfp4Scheme): ScalarQuantizedMatrix {
  const { matrix, length } = ctx;
  const { rows: n, cols } = matrix;
  const { center } = ctx.options;
  const scaled = new Float32Array(n);
  const target = new Float32Array(length);
  const means = center ? new Float32Array(cols) : null;
  const columnAbsMax = new Float64Array(cols);
  const codes = new Uint8Array(length * cols);
  const sideBits = SIDE_FLOAT_BITS * (means ? 1 : 0) * cols;
  if (scheme.kind === 'int') {
    const options = absmaxOptions(scheme, length);
    const groupsPerColumn = Math.ceil(length / options.groupSize);
    const scales = new Float32Array(groupsPerColumn * cols);
    // An fp16 scale out of range is refused after every column's own checks (checkFp16ScaleRange
    // below, over all columns); the columns after the first such one are not encoded.
    let scalesInRange = true;
    for (let j = 0; j < cols; j++) {
      const absMax = rotateScalarColumn(ctx, j, scaled, target, means);
      columnAbsMax[j] = absMax;
      if (scheme.scaleFormat === 'fp16' && fp16ScaleProblem(scheme, absMax, j) !== null) scalesInRange = false;
      if (scalesInRange) {
        const result = absmaxQuantize(target, options);
        codes.set(result.codes, j * length);
        scales.set(result.scales, j * groupsPerColumn);
      }
      columnDone(ctx, j);
    }
    if (scheme.scaleFormat === 'fp16') checkFp16ScaleRange(scheme, columnAbsMax);
    const bits = (length * cols * (scheme.bits + absmaxSideBitsPerEntry(options, length)) + sideBits) / (n * cols);
    return { ...scalarBase(ctx, means, bits), scheme, codes, scales, tensorScale: 1, groupsPerColumn };
  }
  let tensorAbsMax = 0;
  for (let j = 0; j < cols; j++) {
    const absMax = rotateScalarColumn(ctx, j, scaled, target, means);
    columnAbsMax[j] = absMax;
    tensorAbsMax = Math.max(tensorAbsMax, absMax);
    columnDone(ctx, j);
  }
  const tensorScale = nvfp4TensorScale(tensorAbsMax);
  checkNvfp4BlockScaleRange(columnAbsMax, tensorScale);
  const groupsPerColumn = Math.ceil(length / 16);
  const scales = new Uint8Array(groupsPerColumn * cols);
  for (let j = 0; j < cols; j++) {
    // The second pass runs after progress reached every column: an abort meanwhile still stops it.
    throwIfAborted(ctx.options.signal, 'quantize');
    rotateScalarColumn(ctx, j, scaled, target, null); // the first pass's column again, bit for bit
    const result = nvfp4Quantize(target, tensorScale);
    codes.set(result.codes, j * length);
    scales.set(result.blockScales, j * groupsPerColumn);
  }
  const bits = (cols * nvfp4VectorBits(length) + SIDE_FLOAT_BITS + sideBits) / (n * cols);
  return { ...scalarBase(ctx, means, bits), scheme: { kind: 'nvfp4' }, codes, scales, tensorScale, groupsPerColumn };
}

/**
 * Column j centred (when asked), rotated and back in the input's units, as f32 into `target`
 * (`length` entries), its mean into `means` (when given), its norm, mean and range checked; returns
 * its largest |entry|.
 */
function rotateScalarColumn(ctx: Context, j: number, scaled: Float32Array, target: Float32Array, means: Float32Array | null): number {
  const { length } = ctx;
  const prepared = prepareColumn(ctx.matrix.column(j), ctx.options.center, ctx.rotation, scaled, target);
  const mean = ctx.options.center ? unscale(prepared.scaledMean, prepared.exponent, `mean of column ${j}`) : null;
  if (means && mean !== null) means[j] = mean;
  checkColumnNorm(unscale(Math.fround(Math.sqrt(canonicalSum(target, length, true))), prepared.exponent, `norm of column ${j}`), j);
  if (mean !== null) checkColumnMean(mean, j);
  // Scalar codes live in the input's own units: undo the power-of-two scaling (exact).
  const back = 2 ** -prepared.exponent;
  let absMax = 0;
  for (let i = 0; i < length; i++) {
    const v = Math.fround((target[i] as number) * back);
    check(Number.isFinite(v), () => `column ${j} exceeds the f32 range after rotation`);
    target[i] = v;
    absMax = Math.max(absMax, Math.abs(v));
  }
  return absMax;
}

/*
 * Scale ranges of the scalar schemes. A scale below its format's normal range loses precision and, far
 * enough down, rounds every code of its group to zero: a nonzero column would then decode to zeros. Each
 * column is checked by its own largest group (its absolute maximum after rotation), not by the
 * tensor's: a small column next to large ones is just as badly served. Smaller groups *within* a column
 * need no check: a scale rounded up to a subnormal is at most one subnormal spacing above the exact
 * one, so such a group's error stays within the error bound of the column's largest (normal-scaled)
 * group — fp16: a step at most 2^−24 above the exact one, against steps ≥ 2^−14 there; E4M3: a block
 * scale at most 2^−9 above the ideal one, against a block scale ≥ 2^−6 there.
 */

/** The end of `fp16ScaleProblem`'s messages: the remedy for a caller who holds the matrix (the CLI restates it). */
export const FP16_SCALE_ADVICE = 'multiply the matrix by a power of two first';

/**
 * Why column j's largest fp16 group scale (its largest entry after rotation `absMax` over the top
 * level) falls below fp16's normal range or above its largest value, or null for a column it fits.
 */
function fp16ScaleProblem(scheme: IntScheme, absMax: number, j: number): string | null {
  const maxLevel = scheme.grid === 'midrise' ? 1 : 2 ** (scheme.bits - 1) - 1;
  const scale = absMax / maxLevel;
  if (!(absMax === 0 || scale >= FP16_MIN_NORMAL)) {
    return (
      `this scheme stores fp16 group scales, and column ${j}'s largest entry after rotation (${absMax.toExponential(3)}) ` +
      `needs a scale below fp16's normal range (${FP16_MIN_NORMAL.toExponential(3)}); ${FP16_SCALE_ADVICE}`
    );
  }
  if (!(scale <= FP16_MAX)) {
    return (
      `this scheme stores fp16 group scales, and column ${j}'s largest entry after rotation (${absMax.toExponential(3)}) ` +
      `needs a scale of ${scale.toExponential(3)}, above fp16's largest value (${FP16_MAX}), which the matrix times 2^-${Math.ceil(Math.log2(scale / FP16_MAX))} fits; ${FP16_SCALE_ADVICE}`
    );
  }
  return null;
}

/** Refuses the first nonzero column whose largest fp16 group scale is out of fp16's range (`fp16ScaleProblem`). */
function checkFp16ScaleRange(scheme: IntScheme, columnAbsMax: Float64Array): void {
  for (let j = 0; j < columnAbsMax.length; j++) {
    const problem = fp16ScaleProblem(scheme, columnAbsMax[j] as number, j);
    check(problem === null, () => problem ?? '');
  }
}

/**
 * Refuses a nonzero column whose largest NVFP4 block needs an E4M3 block scale below E4M3's normal
 * range (2^−6). The tensor scale maps the tensor's largest entry to block scale 448, so this is a
 * column more than 448 / 2^−6 = 28672 times smaller (after rotation) than the tensor's largest; one
 * fp32 tensor scale serves every column, so no power of two fixes it. Far enough below (an ideal block
 * scale under half the smallest E4M3 subnormal, 2^−10) the whole column would decode to zeros.
 */
function checkNvfp4BlockScaleRange(columnAbsMax: Float64Array, tensorScale: number): void {
  for (let j = 0; j < columnAbsMax.length; j++) {
    const absMax = columnAbsMax[j] as number;
    const blockScale = absMax / E2M1_MAX / tensorScale;
    check(
      absMax === 0 || blockScale >= E4M3_MIN_NORMAL,
      () =>
        `nvfp4 shares one fp32 scale across the tensor, and column ${j}'s largest entry after rotation (${absMax.toExponential(3)}) ` +
        `needs an E4M3 block scale of ${blockScale.toExponential(3)}, below E4M3's normal range (${E4M3_MIN_NORMAL}): ` +
        `it is more than ${E4M3_MAX / E4M3_MIN_NORMAL} times smaller than the tensor's largest entry; quantize such columns separately`,
    );
  }
}

function scalarBase(ctx: Context, means: Float32Array | null, bits: number) {
  return {
    kind: 'scalar' as const,
    rows: ctx.matrix.rows,
    cols: ctx.matrix.cols,
    length: ctx.length,
    keptLength: ctx.length,
    seed: ctx.options.seed,
    rotate: ctx.options.rotate,
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

export type { QuantizeOptions, QuantizeOptionsFor, GainMode, QuantizeProgress } from './options.js';
