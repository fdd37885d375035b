// f16 ↔ f32 as the CPU twins convert (src/scalar/floatFormats.ts): `f16_bits` rounds as `float16Bits`
// (to nearest even, ±Infinity from 65520 up, NaN kept a NaN) and `f16_value` widens exactly, as
// `float16BitsToFloat32Bits`, on every GPU and with no 'shader-f16'. WGSL leaves pack2x16float
// indeterminate for a NaN and beyond f16's range, lets it round a value within the range to either
// neighbour (Mesa's RADV compiles it to a conversion toward zero: 1 ulp off in about half the inexact
// cases), and lets a GPU flush a subnormal half (|v| < 2^-14) to ±0 in either direction; so `f16_bits`
// rounds in integer arithmetic of its own, and `f16_value` takes subnormal halves through their integer
// fraction (unpack2x16float is exact for the others). Used by every kernel
// that reads or writes f16 activations or biases (shaders/gemv_output.wgsl, shaders/activation_io.wgsl,
// shaders/hadamard.wgsl, shaders/weightonly_inputs_i8.wgsl; the weight-only GEMV's inner loop reads an
// f16 X̃ with unpack2x16float itself: shaders/weightonly_gemv.wgsl says why).

const F16_INFINITY: u32 = 0x7c00u;
const F16_QUIET_NAN: u32 = 0x7e00u;
const F32_F16_OVERFLOW: u32 = 0x477ff000u; // 65520: the midpoint to 2^16, where round-to-nearest-even overflows
const F32_F16_MIN_NORMAL: u32 = 0x38800000u; // 2^-14 as f32 bits: below it a value rounds to a subnormal half (or 0)
const F16_SUBNORMAL_STEP: f32 = 5.9604644775390625e-8; // 2^-24, f16's subnormal spacing
const F16_SUBNORMAL_STEPS: f32 = 16777216.0; // 2^24 (a product, not a quotient: WGSL's division is not exact)

fn f16_bits(value: f32) -> u32 {
  let bits = bitcast<u32>(value);
  let sign = (bits >> 16u) & 0x8000u;
  let magnitude = bits & 0x7fffffffu;
  if (magnitude > 0x7f800000u) {
    return sign | F16_QUIET_NAN;
  }
  if (magnitude >= F32_F16_OVERFLOW) {
    return sign | F16_INFINITY;
  }
  if (magnitude < F32_F16_MIN_NORMAL) {
    // The nearest multiple of 2^-24, ties to even (WGSL's round); |value|·2^24 is exact (a power of
    // two) and below 1024, whose bits are the smallest normal half's: what a value rounding up to 2^-14 takes.
    return sign | u32(round(bitcast<f32>(magnitude) * F16_SUBNORMAL_STEPS));
  }
  // A normal half: the f32's top bits with its exponent rebiased (127 − 15 = 112, so 112 << 10 =
  // 0x1c000 off the shifted bits), rounded to nearest even on the 13 bits dropped: adding 0xfff plus the
  // kept bit's parity carries exactly when they are above half, or half with an odd kept bit; a carry out
  // of the fraction steps the exponent, as rounding up to the next power of two must. Up to 65520 (above:
  // ±Infinity), so (65504, 65520) rounds down to 65504.
  return sign | (((magnitude + 0xfffu + ((magnitude >> 13u) & 1u)) >> 13u) - 0x1c000u);
}

// The f32 value of the half in the low 16 bits of `half_bits` (the high bits are ignored).
fn f16_value(half_bits: u32) -> f32 {
  let half = half_bits & 0xffffu;
  // A subnormal half (or ±0) is its 10-bit fraction times 2^-24, a normal f32: formed from the integer
  // fraction (exact), with the half's sign.
  let subnormal = bitcast<f32>(bitcast<u32>(f32(half & 0x3ffu) * F16_SUBNORMAL_STEP) | ((half & 0x8000u) << 16u));
  return select(unpack2x16float(half).x, subnormal, (half & 0x7c00u) == 0u);
}
