import { check, describeValue } from '../errors.js';
import { firstNonFinite } from '../matrix.js';
import {
  E2M1_MAX,
  E4M3_MAX,
  fromE2M1Bits,
  fromE4M3Bits,
  nextFloat32Up,
  toE2M1Bits,
  toE4M3Bits,
} from './floatFormats.js';

/**
 * NVFP4 (NVIDIA's 4-bit format, one of [2]'s baselines): every entry is an FP4 E2M1 value (±{0, 0.5, 1, 1.5, 2, 3, 4, 6}), every block
 * of 16 consecutive entries has an FP8 E4M3 scale, and the whole tensor one fp32 scale:
 *
 *     x̂ᵢ = e2m1(codeᵢ) · e4m3(blockScale) · tensorScale
 *
 * 4 bits per entry + 8 bits per 16 entries = 4.5 bits, plus 32 bits per tensor. The last block of a
 * vector may be shorter than 16.
 *
 * Block scale choice. The ideal block scale is `blockAbsMax / 6 / tensorScale` (maps the block's
 * largest entry onto E2M1's 6). Rounding it to nearest E4M3 can round *down* by up to 1/16, which
 * makes the largest entries clip; rounding up always makes the grid coarser. So the encoder tries
 * both E4M3 neighbours of the ideal scale (the largest E4M3 value ≤ it and the smallest ≥ it),
 * quantizes the block with each, and keeps the one of least squared error (the larger on a tie, so
 * nothing clips). An ideal scale above 448 (a `tensorScale` smaller than {@link nvfp4TensorScale}
 * gives) saturates to 448 and the block clips; one below the smallest E4M3 subnormal may get scale 0
 * (the whole block reconstructs to 0) when that is the lesser error.
 *
 * Arithmetic (f32, in this order): `S = fround(e4m3 · tensorScale)`, `code = E2M1(fround(x / S))`
 * (round to nearest, ties to even code, saturating at ±6); decoding `x̂ = fround(e2m1·e4m3 · tensorScale)`
 * where `e2m1·e4m3` is exact, as in hardware.
 */

/** Entries per E4M3 block scale. */
export const NVFP4_BLOCK_SIZE = 16;

/** Stored bits per entry of whole blocks: 4-bit value + an 8-bit scale per 16 entries (the per-tensor fp32 scale excluded). */
export const NVFP4_BITS_PER_ENTRY = 4.5;

/** Stored bits of a vector of `length` entries: 4 per entry and 8 per block, a last partial block's scale included. */
export function nvfp4VectorBits(length: number): number {
  return 4 * length + 8 * Math.ceil(length / NVFP4_BLOCK_SIZE);
}

/** Codes of one NVFP4-quantized vector. */
export interface Nvfp4Codes {
  /** One 4-bit E2M1 code per entry (stored one per byte). */
  codes: Uint8Array;
  /** E4M3 bits of the scale of each block of 16 entries (non-negative: 0x00..0x7e). */
  blockScales: Uint8Array;
}

/**
 * The per-tensor fp32 scale `tensorAbsMax / (6 · 448)` (rounded up to f32), which maps the tensor's
 * largest entry to the largest E2M1 value under the largest E4M3 block scale; 1 for an all-zero
 * tensor (any positive scale works there).
 *
 * @example
 * nvfp4TensorScale(2688); // 1
 */
export function nvfp4TensorScale(tensorAbsMax: number): number {
  check(
    typeof tensorAbsMax === 'number' && Number.isFinite(tensorAbsMax) && tensorAbsMax >= 0,
    () => `nvfp4TensorScale: tensorAbsMax must be a finite non-negative number, got ${describeValue(tensorAbsMax)}`,
  );
  if (tensorAbsMax === 0) return 1;
  const range = E2M1_MAX * E4M3_MAX;
  let scale = Math.fround(tensorAbsMax / range);
  // Rounded up to f32 (f32 × 2688 is exact in double), so the largest block's ideal scale stays ≤ 448
  // and nothing clips; this also keeps a subnormal maximum from underflowing to a zero scale.
  if (scale * range < tensorAbsMax) scale = nextFloat32Up(scale);
  return scale;
}

function checkTensorScale(tensorScale: number, where: string): void {
  check(
    typeof tensorScale === 'number' && Number.isFinite(tensorScale) && tensorScale > 0,
    () => `${where}: tensorScale must be a positive finite number, got ${describeValue(tensorScale)}`,
  );
}

/** Decoded value of an E2M1 code under block scale `blockScale` (an E4M3 value). */
function decodeEntry(code: number, blockScale: number, tensorScale: number): number {
  return Math.fround(fromE2M1Bits(code) * blockScale * tensorScale);
}

/**
 * Quantizes `x[start, end)` with the E4M3 block scale `scaleBits`, writing the codes into `codes`,
 * and returns the squared error.
 */
function quantizeBlock(
  x: Float32Array,
  start: number,
  end: number,
  scaleBits: number,
  tensorScale: number,
  codes: Uint8Array,
): number {
  const blockScale = fromE4M3Bits(scaleBits);
  const step = Math.fround(blockScale * tensorScale);
  let squaredError = 0;
  for (let i = start; i < end; i++) {
    const xi = x[i] as number;
    const code = step > 0 ? toE2M1Bits(Math.fround(xi / step)) : 0;
    codes[i] = code;
    const d = xi - decodeEntry(code, blockScale, tensorScale);
    squaredError += d * d;
  }
  return squaredError;
}

/** The E4M3 bit patterns of the largest value ≤ `ideal` and the smallest ≥ `ideal` (ideal ≥ 0). */
function e4m3Neighbours(ideal: number): [number, number] {
  if (ideal >= E4M3_MAX) return [0x7e, 0x7e];
  const nearest = toE4M3Bits(ideal);
  const value = fromE4M3Bits(nearest);
  if (value === ideal) return [nearest, nearest];
  // Non-negative E4M3 patterns are ordered like their values.
  return value < ideal ? [nearest, nearest + 1] : [nearest - 1, nearest];
}

/**
 * Quantizes one vector to NVFP4 under `tensorScale` (normally {@link nvfp4TensorScale} of the
 * whole tensor's absolute maximum).
 *
 * @example
 * const t = nvfp4TensorScale(maxAbs);
 * const q = nvfp4Quantize(x, t);
 * const xHat = nvfp4Dequantize(q, x.length, t);
 */
export function nvfp4Quantize(x: Float32Array, tensorScale: number): Nvfp4Codes {
  check(x instanceof Float32Array, 'nvfp4Quantize: x must be a Float32Array');
  checkTensorScale(tensorScale, 'nvfp4Quantize');
  const bad = firstNonFinite(x);
  check(bad < 0, () => `nvfp4Quantize: x has a non-finite entry ${x[bad]} at index ${bad}`);

  const n = x.length;
  const codes = new Uint8Array(n);
  const blockScales = new Uint8Array(Math.ceil(n / NVFP4_BLOCK_SIZE));
  const candidateCodes = new Uint8Array(NVFP4_BLOCK_SIZE);
  for (let b = 0; b < blockScales.length; b++) {
    const start = b * NVFP4_BLOCK_SIZE;
    const end = Math.min(start + NVFP4_BLOCK_SIZE, n);
    let blockMax = 0;
    for (let i = start; i < end; i++) blockMax = Math.max(blockMax, Math.abs(x[i] as number));
    const ideal = blockMax / E2M1_MAX / tensorScale;
    const [lower, upper] = e4m3Neighbours(ideal);
    // Try the upper neighbour first, into `codes`; the lower one wins only with strictly less error.
    const upperError = quantizeBlock(x, start, end, upper, tensorScale, codes);
    blockScales[b] = upper;
    if (lower !== upper) {
      const lowerError = quantizeBlock(x.subarray(start, end), 0, end - start, lower, tensorScale, candidateCodes);
      if (lowerError < upperError) {
        codes.set(candidateCodes.subarray(0, end - start), start);
        blockScales[b] = lower;
      }
    }
  }
  return { codes, blockScales };
}

/** Reconstructs `length` entries from {@link nvfp4Quantize}'s output, into `out` when given. */
export function nvfp4Dequantize(codes: Nvfp4Codes, length: number, tensorScale: number, out?: Float32Array): Float32Array {
  checkTensorScale(tensorScale, 'nvfp4Dequantize');
  check(Number.isInteger(length) && length >= 0, () => `nvfp4Dequantize: length must be a non-negative integer, got ${describeValue(length)}`);
  check(
    typeof codes === 'object' && codes !== null && codes.codes instanceof Uint8Array && codes.blockScales instanceof Uint8Array,
    'nvfp4Dequantize: codes must be { codes: Uint8Array, blockScales: Uint8Array }',
  );
  const blocks = Math.ceil(length / NVFP4_BLOCK_SIZE);
  check(codes.codes.length === length, () => `nvfp4Dequantize: ${codes.codes.length} codes for length ${length}`);
  check(
    codes.blockScales.length === blocks,
    () => `nvfp4Dequantize: ${codes.blockScales.length} block scales, expected ${blocks} for length ${length}`,
  );
  const result = out ?? new Float32Array(length);
  check(result.length === length, () => `nvfp4Dequantize: out has ${result.length} entries, expected ${length}`);
  for (let b = 0; b < blocks; b++) {
    // A block scale is a non-negative E4M3 value (nvfp4Quantize never sets the sign bit, and the
    // container refuses it): a set sign bit would silently negate the block, so it is refused, as
    // absmaxDequantize refuses a negative scale. fromE4M3Bits refuses the NaN pattern 0x7f.
    const scaleBits = codes.blockScales[b] as number;
    check(
      scaleBits < 0x80,
      () => `nvfp4Dequantize: block scale ${b} is 0x${scaleBits.toString(16)}, whose sign bit is set; a block scale must be a non-negative E4M3 value (0x00..0x7e)`,
    );
    const blockScale = fromE4M3Bits(scaleBits);
    const end = Math.min((b + 1) * NVFP4_BLOCK_SIZE, length);
    for (let i = b * NVFP4_BLOCK_SIZE; i < end; i++) {
      const code = codes.codes[i] as number;
      check(code < 16, () => `nvfp4Dequantize: code ${code} at index ${i} is not a 4-bit E2M1 code`);
      result[i] = decodeEntry(code, blockScale, tensorScale);
    }
  }
  return result;
}
