import { check, checkOneOf, checkPositiveInteger, describeValue } from '../errors.js';
import { firstNonFinite } from '../matrix.js';
import { roundHalfEven } from '../lattices/lattice.js';
import { fp16Scale, nextFloat32Up } from './floatFormats.js';
import { checkOptionsObject } from '../quantize/strictOptions.js';

/**
 * Absmax ("ℓ∞-normalized") integer quantization of one vector, the scalar baseline of [1] and [2].
 * The vector is split into groups of `groupSize` consecutive entries (the last group may be shorter;
 * `groupSize ≥ length` means one group, i.e. per-column scaling). Each group stores one scale and
 * one `bits`-bit level per entry. Two grids:
 *
 * - `'midrise'` — the seed paper's ℓ∞ baseline: `2^b` cells of equal width tile `[−M, M]`,
 *   `M = max|x|` of the group, and each entry is reconstructed at its cell's midpoint,
 *   `x̂ = M·(2(k + ½)/2^b − 1)`. The stored scale is `M`. There is no zero level.
 * - `'symmetric'` — the grid of WebLLM/MLC's q4f16_1 at 4 bits: step
 *   `s = M/(2^{b−1} − 1)`, level `round(x/s) ∈ [−(2^{b−1}−1), 2^{b−1}−1]`, stored as
 *   `level + 2^{b−1}` (so code 0 is never produced). The stored scale is `s`. This is not
 *   llama.cpp's Q4_0, which uses all 16 codes: levels −8..7, step d = (the group's entry of largest
 *   |x|, with its sign)/−8, that entry on level −8 (exact but for d's fp16 rounding); at the same
 *   4.5 bits it has ≈ 22 % less squared error on Gaussian groups of 32 (test/scalar/absmax.test.ts).
 *
 * The scale is rounded **up** to `scaleFormat` (fp32 or fp16), so the grid always covers the group
 * and no entry clips; the error of every entry is then at most half a step. An all-zero group gets
 * scale 0, code `2^{b−1}` for every entry, and reconstructs to zeros.
 *
 * Code decisions follow the exactness rules of docs/ARCHITECTURE.md so a WGSL twin can match them
 * bit for bit: `r = fround(x / scale)` (correctly rounded division), then
 * midrise `k = clamp(floor(fround(r + 1) · 2^{b−1}), 0, 2^b − 1)` (the product by a power of two is
 * exact), symmetric `level = clamp(roundHalfEven(r), −L, L)`.
 */

/** The two integer grids; see the module comment. */
export const INT_GRIDS = ['midrise', 'symmetric'] as const;
/**
 * The integer grid of an INT scheme ({@link absmaxQuantize}): 'midrise' (2^b cells tiling [−M, M], no
 * zero level) or 'symmetric' (levels round(x/s) about zero).
 *
 * @useDeclaredType
 */
export type IntGrid = (typeof INT_GRIDS)[number];

/** How a group's scale is stored: f32, or f16 (as llama.cpp's q4_0 stores it). */
export const SCALE_FORMATS = ['fp32', 'fp16'] as const;
/**
 * How a group's scale is stored: f32, or f16 (as llama.cpp's q4_0 stores it).
 *
 * @useDeclaredType
 */
export type ScaleFormat = (typeof SCALE_FORMATS)[number];

/** Options of {@link absmaxQuantize}. */
export interface AbsmaxOptions {
  /** Bits per entry, 2..8. */
  bits: number;
  /** Entries per scale; at least the vector length for one scale per column. */
  groupSize: number;
  grid: IntGrid;
  /** Format the stored scale is rounded (up) to, and counted with in the side information. */
  scaleFormat: ScaleFormat;
}

/** Codes and scales of one quantized vector. */
export interface AbsmaxCodes {
  /** One level `0..2^bits − 1` per entry. */
  codes: Uint8Array;
  /** One scale per group, already rounded to `scaleFormat`: `M` for midrise, the step `s` for symmetric. */
  scales: Float32Array;
}

/** Validates `options`, with messages naming the offending field. */
export function checkAbsmaxOptions(options: AbsmaxOptions): void {
  // Its keys too: all four are required, but an extra one ({ center: true }) was ignored silently.
  checkOptionsObject(options, ['bits', 'groupSize', 'grid', 'scaleFormat'], 'absmax options');
  check(
    Number.isInteger(options.bits) && options.bits >= 2 && options.bits <= 8,
    () => `absmax bits must be an integer in 2..8, got ${describeValue(options.bits)}`,
  );
  checkPositiveInteger(options.groupSize, 'absmax groupSize');
  checkOneOf(options.grid, INT_GRIDS, 'absmax grid');
  checkOneOf(options.scaleFormat, SCALE_FORMATS, 'absmax scaleFormat');
}

/** The largest symmetric level, `2^{b−1} − 1`. */
function symmetricMaxLevel(bits: number): number {
  return 2 ** (bits - 1) - 1;
}

/**
 * The stored scale of a group with absolute maximum `groupMax`, rounded up to the format so that
 * `scale · maxLevel ≥ groupMax` (midrise: `maxLevel = 1`, the scale is `M` itself).
 */
function groupScale(groupMax: number, maxLevel: number, format: AbsmaxOptions['scaleFormat']): number {
  if (groupMax === 0) return 0;
  const exact = groupMax / maxLevel;
  if (format === 'fp16') {
    check(
      exact <= 65504,
      () => `a group with absolute maximum ${groupMax} needs scale ${exact}, beyond the largest fp16 value 65504`,
    );
    return fp16Scale(exact);
  }
  let scale = Math.fround(exact);
  // f32 × small integer is exact in double, so this comparison is exact.
  if (scale * maxLevel < groupMax) scale = nextFloat32Up(scale);
  // Rounded up, the top level's value can pass f32's largest value (a group maximum near 3.4e38):
  // it would decode to Infinity.
  check(
    Number.isFinite(Math.fround(scale * maxLevel)),
    () => `a group with absolute maximum ${groupMax} is too close to f32's largest value: its scale rounded up (${scale}) times the top level ${maxLevel} is not a finite f32; scale the input down`,
  );
  return scale;
}

function groupCount(length: number, groupSize: number): number {
  return Math.ceil(length / groupSize);
}

/**
 * Quantizes one (rotated, normalized) vector with absmax scaling per group of `groupSize` entries.
 *
 * @example
 * const q = absmaxQuantize(x, { bits: 4, groupSize: 32, grid: 'symmetric', scaleFormat: 'fp16' });
 * const xHat = absmaxDequantize(q, x.length, { bits: 4, groupSize: 32, grid: 'symmetric', scaleFormat: 'fp16' });
 */
export function absmaxQuantize(x: Float32Array, options: AbsmaxOptions): AbsmaxCodes {
  checkAbsmaxOptions(options);
  check(x instanceof Float32Array, 'absmaxQuantize: x must be a Float32Array');
  const bad = firstNonFinite(x);
  check(bad < 0, () => `absmaxQuantize: x has a non-finite entry ${x[bad]} at index ${bad}`);

  const { bits, groupSize, grid, scaleFormat } = options;
  const n = x.length;
  const codes = new Uint8Array(n);
  const scales = new Float32Array(groupCount(n, groupSize));
  const zeroCode = 2 ** (bits - 1);
  const topCell = 2 ** bits - 1;
  const halfCells = 2 ** (bits - 1);
  const maxLevel = grid === 'midrise' ? 1 : symmetricMaxLevel(bits);

  for (let g = 0; g < scales.length; g++) {
    const start = g * groupSize;
    const end = Math.min(start + groupSize, n);
    let groupMax = 0;
    for (let i = start; i < end; i++) groupMax = Math.max(groupMax, Math.abs(x[i] as number));
    const scale = groupScale(groupMax, maxLevel, scaleFormat);
    scales[g] = scale;
    if (scale === 0) {
      codes.fill(zeroCode, start, end);
      continue;
    }
    for (let i = start; i < end; i++) {
      const r = Math.fround((x[i] as number) / scale);
      if (grid === 'midrise') {
        const cell = Math.floor(Math.fround(r + 1) * halfCells);
        codes[i] = Math.min(Math.max(cell, 0), topCell);
      } else {
        const level = Math.min(Math.max(roundHalfEven(r), -maxLevel), maxLevel);
        codes[i] = level + zeroCode;
      }
    }
  }
  return { codes, scales };
}

/**
 * Reconstructs the vector of `length` entries from {@link absmaxQuantize}'s output (same options),
 * into `out` when given. Midrise: `x̂ = fround(M · (2k + 1 − 2^b)/2^b)`; symmetric:
 * `x̂ = fround(s · (code − 2^{b−1}))`.
 */
export function absmaxDequantize(
  codes: AbsmaxCodes,
  length: number,
  options: AbsmaxOptions,
  out?: Float32Array,
): Float32Array {
  checkAbsmaxOptions(options);
  check(Number.isInteger(length) && length >= 0, () => `absmaxDequantize: length must be a non-negative integer, got ${describeValue(length)}`);
  check(
    typeof codes === 'object' && codes !== null && codes.codes instanceof Uint8Array && codes.scales instanceof Float32Array,
    'absmaxDequantize: codes must be { codes: Uint8Array, scales: Float32Array }',
  );
  const { bits, groupSize, grid } = options;
  const groups = groupCount(length, groupSize);
  check(codes.codes.length === length, () => `absmaxDequantize: ${codes.codes.length} codes for length ${length}`);
  check(
    codes.scales.length === groups,
    () => `absmaxDequantize: ${codes.scales.length} scales, expected ${groups} (length ${length}, groupSize ${groupSize})`,
  );
  for (let g = 0; g < groups; g++) {
    const s = codes.scales[g] as number;
    check(Number.isFinite(s) && s >= 0, () => `absmaxDequantize: scale ${g} is ${s}, expected finite and ≥ 0`);
  }
  const result = out ?? new Float32Array(length);
  check(result.length === length, () => `absmaxDequantize: out has ${result.length} entries, expected ${length}`);

  const cells = 2 ** bits;
  const zeroCode = 2 ** (bits - 1);
  const maxLevel = symmetricMaxLevel(bits);
  for (let i = 0; i < length; i++) {
    const code = codes.codes[i] as number;
    check(code < cells, () => `absmaxDequantize: code ${code} at index ${i} does not fit in ${bits} bits`);
    const scale = codes.scales[Math.floor(i / groupSize)] as number;
    if (grid === 'midrise') {
      // (2k + 1 − 2^b)/2^b is exact in f32 for b ≤ 8, so one rounding.
      result[i] = Math.fround(scale * ((2 * code + 1 - cells) / cells));
    } else {
      const level = code - zeroCode;
      check(level >= -maxLevel, () => `absmaxDequantize: code ${code} at index ${i} is not a symmetric ${bits}-bit level`);
      result[i] = Math.fround(scale * level);
    }
  }
  return result;
}

/**
 * Side information in bits per entry: one scale (32 or 16 bits) per group. Without `length` this is
 * `scaleBits / groupSize`; with it, the exact `scaleBits · ⌈length/groupSize⌉ / length`, which counts
 * a shorter last group (and `groupSize > length`) correctly.
 *
 * @example
 * absmaxSideBitsPerEntry({ bits: 4, groupSize: 32, grid: 'symmetric', scaleFormat: 'fp16' }); // 0.5
 */
export function absmaxSideBitsPerEntry(options: AbsmaxOptions, length?: number): number {
  checkAbsmaxOptions(options);
  const scaleBits = options.scaleFormat === 'fp32' ? 32 : 16;
  if (length === undefined) return scaleBits / options.groupSize;
  checkPositiveInteger(length, 'absmaxSideBitsPerEntry length');
  return (scaleBits * groupCount(length, options.groupSize)) / length;
}
