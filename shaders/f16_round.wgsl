// f32 → f16 bits, as the CPU twin `float16Bits` (src/scalar/floatFormats.ts) rounds: to nearest, ±Infinity
// from 65520 up (what round-to-nearest-even gives), and NaN kept a NaN. WGSL leaves pack2x16float
// indeterminate for a NaN and for values beyond f16's range, so a GPU could write a finite number
// there: those cases are encoded here, and only values that round to a finite f16 go through it.
// Used by every kernel that writes f16 activations (shaders/gemv_output.wgsl, shaders/activation_io.wgsl).

const F16_INFINITY: u32 = 0x7c00u;
const F16_QUIET_NAN: u32 = 0x7e00u;
const F16_MAX_FINITE: u32 = 0x7bffu; // 65504
const F32_F16_MAX: u32 = 0x477fe000u; // 65504 as f32 bits
const F32_F16_OVERFLOW: u32 = 0x477ff000u; // 65520: the midpoint to 2^16, where round-to-nearest-even overflows

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
  if (magnitude > F32_F16_MAX) {
    return sign | F16_MAX_FINITE; // (65504, 65520): rounds down to the largest finite f16
  }
  return pack2x16float(vec2<f32>(value, 0.0)) & 0xffffu;
}
