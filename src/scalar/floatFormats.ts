import { check, describeValue } from '../errors.js';
import { roundHalfEven } from '../lattices/lattice.js';

/**
 * The small binary floating-point formats the scalar baselines store: IEEE fp16 (scales), OCP FP8
 * E4M3FN (NVFP4 block scales) and FP4 E2M1 (NVFP4 values). All three are "sign, E exponent bits
 * with a bias, M mantissa bits, subnormals at exponent field 0"; they differ only in what the top of
 * the range means:
 *
 * | format | bias | largest finite | top of the range                          |
 * |--------|------|----------------|-------------------------------------------|
 * | fp16   | 15   | 65504          | exponent field 31 = ±Infinity / NaN       |
 * | E4M3FN | 7    | 448            | only S.1111.111 is NaN, no infinities     |
 * | E2M1   | 1    | 6              | no infinities, no NaN                     |
 *
 * Conversions round the exact (double) value to nearest, ties to the even mantissa (for E2M1 that
 * is the even code), and never go through f32 first, so there is no double rounding. A NaN input is
 * refused with a `LatticeMatmulError` rather than encoded.
 */
interface MiniFloatFormat {
  readonly name: string;
  readonly exponentBits: number;
  readonly mantissaBits: number;
  readonly bias: number;
  /** Bit pattern (without sign) of the largest finite value. */
  readonly maxFiniteBits: number;
  /** What a value beyond the largest finite one becomes: IEEE fp16 overflows, FP8/FP4 saturate. */
  readonly overflow: 'infinity' | 'saturate';
}

const FP16: MiniFloatFormat = {
  name: 'fp16',
  exponentBits: 5,
  mantissaBits: 10,
  bias: 15,
  maxFiniteBits: 0x7bff,
  overflow: 'infinity',
};
const E4M3: MiniFloatFormat = {
  name: 'E4M3',
  exponentBits: 4,
  mantissaBits: 3,
  bias: 7,
  maxFiniteBits: 0x7e,
  overflow: 'saturate',
};
const E2M1: MiniFloatFormat = {
  name: 'E2M1',
  exponentBits: 2,
  mantissaBits: 1,
  bias: 1,
  maxFiniteBits: 0x7,
  overflow: 'saturate',
};

/** Smallest positive normal f32, 2^−126: below it an f32 keeps fewer than 24 significant bits (or is flushed to 0 on a GPU). */
export const F32_MIN_NORMAL = 2 ** -126;
/** Largest finite f32 value, (2 − 2^−23)·2^127. */
export const F32_MAX = (2 - 2 ** -23) * 2 ** 127;
/** Largest finite fp16 value. */
export const FP16_MAX = 65504;
/** Largest finite E4M3FN value (S.1111.110). */
export const E4M3_MAX = 448;
/** Largest E2M1 value. */
export const E2M1_MAX = 6;


/** `floor(log2 a)` for a positive finite double, exact (Math.log2 may be off by one near powers of 2). */
function exponentOf(a: number): number {
  let e = Math.floor(Math.log2(a));
  if (2 ** e > a) e -= 1;
  else if (2 ** (e + 1) <= a) e += 1;
  return e;
}

/** Value of an unsigned bit pattern (exponent field and mantissa) of `format`; specials excluded. */
function magnitudeOf(bits: number, format: MiniFloatFormat): number {
  const mantissaScale = 2 ** format.mantissaBits;
  const exponentField = bits >>> format.mantissaBits;
  const mantissa = bits & (mantissaScale - 1);
  if (exponentField === 0) return mantissa * 2 ** (1 - format.bias - format.mantissaBits);
  return (1 + mantissa / mantissaScale) * 2 ** (exponentField - format.bias);
}

/** Encodes `x` (not NaN) to the nearest value of `format`, ties to even mantissa. */
function encode(x: number, format: MiniFloatFormat): number {
  check(typeof x === 'number' && !Number.isNaN(x), () => `cannot convert ${describeValue(x)} to ${format.name}`);
  const signBit = x < 0 || Object.is(x, -0) ? 1 << (format.exponentBits + format.mantissaBits) : 0;
  const a = Math.abs(x);
  const mantissaScale = 2 ** format.mantissaBits;
  const minNormalExponent = 1 - format.bias;
  let magnitude: number;
  if (a === Infinity) {
    magnitude = Infinity;
  } else if (a < 2 ** minNormalExponent) {
    // Subnormal (or zero): an integer number of quanta 2^(minNormalExponent − M). A count that
    // rounds up to mantissaScale is exactly the smallest normal's bit pattern, so no special case.
    magnitude = roundHalfEven(a / 2 ** (minNormalExponent - format.mantissaBits));
  } else {
    let e = exponentOf(a);
    let mantissa = roundHalfEven((a / 2 ** e - 1) * mantissaScale);
    if (mantissa === mantissaScale) {
      e += 1;
      mantissa = 0;
    }
    // A biased exponent past the top cannot be stored; mark it as overflow below.
    magnitude = e + format.bias >= 2 ** format.exponentBits ? Infinity : ((e + format.bias) << format.mantissaBits) | mantissa;
  }
  if (magnitude > format.maxFiniteBits) {
    if (format.overflow === 'saturate') magnitude = format.maxFiniteBits;
    else magnitude = (2 ** format.exponentBits - 1) << format.mantissaBits; // IEEE infinity
  }
  return signBit | magnitude;
}

function checkBits(bits: number, width: number, name: string): void {
  check(
    Number.isInteger(bits) && bits >= 0 && bits < 2 ** width,
    () => `${name} bits must be an integer in [0, ${2 ** width - 1}], got ${describeValue(bits)}`,
  );
}

function signOf(bits: number, format: MiniFloatFormat): number {
  return bits >>> (format.exponentBits + format.mantissaBits) ? -1 : 1;
}

/**
 * IEEE binary16 bit pattern of `x`, rounded to nearest, ties to even. Magnitudes of 65520 and
 * above overflow to ±Infinity (0x7c00 / 0xfc00), as IEEE prescribes; −0 keeps its sign bit.
 *
 * @example
 * float16Bits(1);     // 0x3c00
 * float16Bits(1 / 3); // 0x3555
 */
export function float16Bits(x: number): number {
  return encode(x, FP16);
}

/**
 * The value of an IEEE binary16 bit pattern (0..0xffff); a NaN pattern is refused (this reads stored
 * scales and weights, where a NaN is a corrupt file). For activations, which may hold NaN honestly (an
 * f16 output of `QuantizedLinear` writes 0x7e00 for one), use `float16BitsToFloat32Bits`.
 */
export function fromFloat16Bits(bits: number): number {
  checkBits(bits, 16, 'fp16');
  const magnitudeBits = bits & 0x7fff;
  if (magnitudeBits >= 0x7c00) {
    check(magnitudeBits === 0x7c00, () => `fp16 bits 0x${bits.toString(16)} are a NaN`);
    return signOf(bits, FP16) * Infinity;
  }
  return signOf(bits, FP16) * magnitudeOf(magnitudeBits, FP16);
}

/**
 * `x` rounded to the nearest fp16 value (ties to even), returned as a JS number. Overflows to
 * ±Infinity beyond 65504 (the fp16 scales of {@link absmaxQuantize} round up instead, and refuse what
 * exceeds 65504).
 *
 * @example
 * toFloat16(0.1); // 0.0999755859375
 */
export function toFloat16(x: number): number {
  return fromFloat16Bits(float16Bits(x));
}

/**
 * The smallest fp16 value `≥ x`, for storing a quantization scale: a scale that rounds *up* keeps
 * every entry of its group inside the quantization grid (a scale rounded down would push the group's
 * largest entry past the last level, where it clips). The cost is at most one fp16 ulp (2⁻¹⁰
 * relative) of extra step size. A positive scale below the smallest fp16 subnormal (2⁻²⁴) becomes
 * 2⁻²⁴; a scale above 65504 cannot be stored and is refused rather than turned into Infinity.
 *
 * @example
 * fp16Scale(1 / 3); // 0.333496… (0x3556), while toFloat16(1/3) = 0.333251… rounds down
 */
export function fp16Scale(x: number): number {
  check(
    typeof x === 'number' && Number.isFinite(x) && x >= 0,
    () => `a scale must be a finite non-negative number, got ${describeValue(x)}`,
  );
  check(x <= FP16_MAX, () => `scale ${x} exceeds the largest fp16 value ${FP16_MAX}`);
  let bits = float16Bits(x);
  // Positive fp16 patterns are ordered like their values, so +1 is the next value up.
  if (fromFloat16Bits(bits) < x) bits += 1;
  return fromFloat16Bits(bits);
}

/**
 * OCP FP8 E4M3FN bit pattern of `x`: bias 7, largest finite 448, no infinities. Rounds to nearest,
 * ties to even; magnitudes above 448 (and ±Infinity) saturate to ±448, like the `.satfinite`
 * conversions hardware uses for scales.
 *
 * @example
 * toE4M3Bits(448);      // 0x7e
 * toE4M3Bits(0.015625); // 0x08, the smallest normal 2⁻⁶
 */
export function toE4M3Bits(x: number): number {
  return encode(x, E4M3);
}

/** The value of an E4M3FN bit pattern (0..255); the NaN patterns 0x7f and 0xff are refused. */
export function fromE4M3Bits(bits: number): number {
  checkBits(bits, 8, 'E4M3');
  const magnitudeBits = bits & 0x7f;
  check(magnitudeBits !== 0x7f, () => `E4M3 bits 0x${bits.toString(16)} are a NaN`);
  return signOf(bits, E4M3) * magnitudeOf(magnitudeBits, E4M3);
}

/**
 * FP4 E2M1 code (0..15) of `x`: values ±{0, 0.5, 1, 1.5, 2, 3, 4, 6}, code = sign·8 + index.
 * Rounds to nearest, ties to the even code (e.g. 2.5 → 2, 3.5 → 4, 5 → 4); magnitudes above 6
 * saturate to ±6.
 *
 * @example
 * toE2M1Bits(2.9); // 5 (value 3)
 * toE2M1Bits(-7);  // 15 (value −6)
 */
export function toE2M1Bits(x: number): number {
  return encode(x, E2M1);
}

/** The value of an E2M1 code (0..15). Codes 0 and 8 are +0 and −0. */
export function fromE2M1Bits(bits: number): number {
  checkBits(bits, 4, 'E2M1');
  return signOf(bits, E2M1) * magnitudeOf(bits & 0x7, E2M1);
}

/**
 * The smallest f32 strictly greater than `v`, a non-negative finite f32 (used to round a scale up
 * to f32: positive f32 bit patterns are ordered like their values).
 */
export function nextFloat32Up(v: number): number {
  check(Number.isFinite(v) && v >= 0 && Math.fround(v) === v, () => `nextFloat32Up needs a finite non-negative f32, got ${describeValue(v)}`);
  const bits = new Uint32Array(new Float32Array([v]).buffer);
  bits[0] = (bits[0] as number) + 1;
  return new Float32Array(bits.buffer)[0] as number;
}

/**
 * f16 bit pattern → f32 bit pattern, exact (subnormals normalized; NaN payload and sign kept).
 *
 * @example
 * float16BitsToFloat32Bits(0x3c00); // 0x3f800000 (1.0)
 */
export function float16BitsToFloat32Bits(h: number): number {
  const sign = (h & 0x8000) << 16;
  const exponent = (h >>> 10) & 0x1f;
  let mantissa = h & 0x3ff;
  if (exponent === 0x1f) return (sign | 0x7f800000 | (mantissa << 13)) >>> 0;
  if (exponent !== 0) return (sign | ((exponent + 112) << 23) | (mantissa << 13)) >>> 0;
  if (mantissa === 0) return sign >>> 0;
  // Subnormal m · 2^-24: shift the leading 1 up to bit 10, lowering the exponent by one per shift.
  let e = 113; // f32 biased exponent of 2^-14, the exponent of the smallest normal f16
  while ((mantissa & 0x400) === 0) {
    mantissa <<= 1;
    e -= 1;
  }
  return (sign | (e << 23) | ((mantissa & 0x3ff) << 13)) >>> 0;
}

