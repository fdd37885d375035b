// Correctly rounded f32 division and square root in integer arithmetic.
//
// WGSL does not promise correctly rounded `/` or `sqrt` (drivers use reciprocal and inverse-square-root
// approximations), but a quantizer's per-column scale decides codes, so the GPU must produce the same
// bits as the CPU reference, which computes Math.fround(a / b) and Math.fround(Math.sqrt(x)).
// These routines work on the bit patterns (bitcast<u32>) with u32 shifts, compares and subtractions
// only, so every conforming implementation gives the same result.
//
// Domain and results (round to nearest, ties to even, as IEEE 754 binary32):
//   exact_div_bits / exact_div: every finite and infinite input, including subnormal inputs and results
//     (a subnormal quotient is rounded correctly; overflow gives ±inf).
//     Special cases follow IEEE: x/±0 = ±inf (x ≠ 0), 0/0 = inf/inf = NaN, x/±inf = ±0, NaN → NaN.
//   exact_sqrt_bits / exact_sqrt: +0 → +0, −0 → −0, +inf → +inf, negative or NaN → NaN, every
//     positive finite input (subnormals included) → the correctly rounded root.
//   The NaN returned is the quiet NaN 0x7fc00000.
// The f32 wrappers (exact_div, exact_sqrt) pass values through bitcast; a GPU that flushes subnormal
// f32 values to zero on load may hand them a zero instead, so the bit versions are the ones to use on
// subnormal data. For positive normal inputs (the quantizer's case) both agree.
//
// Cost: one 24-step loop of shift/compare/subtract per call. Library file: no bindings, no entry
// points; a kernel that needs it is compiled as this source followed by its own.

const EXACT_F32_SIGN: u32 = 0x80000000u;
const EXACT_F32_ABS: u32 = 0x7fffffffu;
const EXACT_F32_INF: u32 = 0x7f800000u;
const EXACT_F32_NAN: u32 = 0x7fc00000u;
const EXACT_F32_HIDDEN: u32 = 0x00800000u;
const EXACT_F32_FRACTION: u32 = 0x007fffffu;

// A finite nonzero magnitude as significand · 2^(exponent − 150) with the significand in [2^23, 2^24):
// normals have exponent = biased exponent; subnormals are shifted up and get exponent ≤ 0.
struct ExactF32Unpacked {
  significand: u32,
  exponent: i32,
}

fn exact_f32_unpack(magnitude: u32) -> ExactF32Unpacked {
  let biased = magnitude >> 23u;
  if (biased == 0u) {
    // Subnormal: value = fraction · 2^−149 = (fraction << shift) · 2^(1 − shift − 150).
    let shift = countLeadingZeros(magnitude) - 8u;
    return ExactF32Unpacked(magnitude << shift, 1 - i32(shift));
  }
  return ExactF32Unpacked((magnitude & EXACT_F32_FRACTION) | EXACT_F32_HIDDEN, i32(biased));
}

// Correctly rounded a / b on f32 bit patterns.
fn exact_div_bits(a: u32, b: u32) -> u32 {
  let sign = (a ^ b) & EXACT_F32_SIGN;
  let mag_a = a & EXACT_F32_ABS;
  let mag_b = b & EXACT_F32_ABS;
  if (mag_a > EXACT_F32_INF || mag_b > EXACT_F32_INF) {
    return EXACT_F32_NAN;
  }
  if (mag_a == EXACT_F32_INF) {
    return select(sign | EXACT_F32_INF, EXACT_F32_NAN, mag_b == EXACT_F32_INF);
  }
  if (mag_b == EXACT_F32_INF) {
    return sign;
  }
  if (mag_b == 0u) {
    return select(sign | EXACT_F32_INF, EXACT_F32_NAN, mag_a == 0u);
  }
  if (mag_a == 0u) {
    return sign;
  }

  let ua = exact_f32_unpack(mag_a);
  let ub = exact_f32_unpack(mag_b);
  // a / b = (sa / sb) · 2^(ea − eb). Make the significand ratio lie in [1, 2): then the biased
  // exponent of the quotient is ea − eb + 127.
  var exponent = ua.exponent - ub.exponent + 127;
  var remainder = ua.significand;
  if (remainder < ub.significand) {
    remainder = remainder << 1u;
    exponent = exponent - 1;
  }
  // Restoring long division: 24 quotient bits, 2^0 down to 2^−23. The remainder stays below
  // 2 · significand_b < 2^25, so u32 never overflows.
  var quotient = 0u;
  for (var step = 0u; step < 24u; step = step + 1u) {
    quotient = quotient << 1u;
    if (remainder >= ub.significand) {
      remainder = remainder - ub.significand;
      quotient = quotient | 1u;
    }
    remainder = remainder << 1u;
  }
  // Exact quotient = (quotient + rest) ulps with rest = remainder / (2 · significand_b) in [0, 1).

  if (exponent >= 255) {
    return sign | EXACT_F32_INF;
  }
  if (exponent >= 1) {
    let above_half = remainder > ub.significand;
    let tie = remainder == ub.significand;
    let round_up = above_half || (tie && (quotient & 1u) == 1u);
    // The hidden bit of `quotient` adds one to the exponent field; a carry out of the significand
    // moves to the next binade (or to inf), as rounding should.
    return sign | ((u32(exponent - 1) << 23u) + quotient + u32(round_up));
  }

  // Subnormal result: in units of 2^−149 the exact value is (quotient + rest) / 2^shift.
  let shift = u32(1 - exponent);
  if (shift > 25u) {
    return sign; // below a quarter of the smallest subnormal: rounds to zero
  }
  let kept = quotient >> shift;
  let dropped = quotient & ((1u << shift) - 1u);
  let half = 1u << (shift - 1u);
  let rest_nonzero = remainder != 0u;
  let above_half = dropped > half || (dropped == half && rest_nonzero);
  let tie = dropped == half && !rest_nonzero;
  let round_up = above_half || (tie && (kept & 1u) == 1u);
  return sign | (kept + u32(round_up));
}

// Correctly rounded sqrt on an f32 bit pattern.
fn exact_sqrt_bits(x: u32) -> u32 {
  if ((x & EXACT_F32_ABS) == 0u) {
    return x; // ±0
  }
  if ((x & EXACT_F32_SIGN) != 0u || x > EXACT_F32_INF) {
    return EXACT_F32_NAN; // negative, or NaN
  }
  if (x == EXACT_F32_INF) {
    return x;
  }

  let u = exact_f32_unpack(x);
  // x = s · 2^k with k = e − 150. Make the power even and the significand lie in [2^24, 2^26):
  // s2 · 2^k2. Then N = s2 · 2^22 ∈ [2^46, 2^48), √N ∈ [2^23, 2^24) is a 24-bit significand, and
  // √x = √N · 2^((k2 − 22) / 2).
  let k = u.exponent - 150;
  var s2 = u.significand << 2u;
  var k2 = k - 2;
  if ((k & 1) != 0) {
    s2 = u.significand << 1u;
    k2 = k - 1;
  }
  // Digit-by-digit integer square root of N, two bits of N per step from the top (bits 47..46 down
  // to 1..0); pairs below bit 22 are zeros. Invariant: remainder = (N so far) − root² ≤ 2 · root.
  var root = 0u;
  var remainder = 0u;
  for (var pair_index = 23i; pair_index >= 0i; pair_index = pair_index - 1i) {
    var pair = 0u;
    if (pair_index >= 11i) {
      pair = (s2 >> u32(2i * pair_index - 22i)) & 3u;
    }
    remainder = (remainder << 2u) | pair;
    let trial = (root << 2u) | 1u;
    root = root << 1u;
    if (remainder >= trial) {
      remainder = remainder - trial;
      root = root | 1u;
    }
  }
  // √N is irrational unless N is a perfect square, so it is never exactly halfway:
  // √N > root + ½ ⇔ N − root² > root + ¼ ⇔ remainder > root (integers).
  let round_up = remainder > root;
  // Value = (root / 2^23) · 2^(23 + (k2 − 22) / 2): biased exponent 139 + k2 / 2 (k2 is even).
  let biased = 139 + k2 / 2;
  return (u32(biased - 1) << 23u) + root + u32(round_up);
}

// Correctly rounded a / b (see exact_div_bits).
fn exact_div(a: f32, b: f32) -> f32 {
  return bitcast<f32>(exact_div_bits(bitcast<u32>(a), bitcast<u32>(b)));
}

// Correctly rounded sqrt(x) (see exact_sqrt_bits).
fn exact_sqrt(x: f32) -> f32 {
  return bitcast<f32>(exact_sqrt_bits(bitcast<u32>(x)));
}
