// Exact power-of-two scaling of f32 values and a guard against fused multiply-adds.
//
// Library file (no bindings, no entry points), compiled after shaders/exact_f32.wgsl (it uses
// exact_f32_unpack) and before the kernel that calls it (src/gpu/kernels/columnPrep.ts).
//
// scale_by_power_of_two_bits(x, e) is the CPU's `Math.fround(x · 2^e)` on bit patterns: exact when the
// result is a normal f32, rounded to nearest-even when it is subnormal, ±0 below half the smallest
// subnormal and ±inf past the largest finite value. Integer arithmetic only, so a GPU that flushes
// subnormal arithmetic to zero (WGSL allows it) still gives the CPU's bits.

const F32_SCALING_SIGN: u32 = 0x80000000u;
const F32_SCALING_ABS: u32 = 0x7fffffffu;
const F32_SCALING_INF: u32 = 0x7f800000u;

// Correctly rounded x · 2^e on the bit pattern of a finite x (any i32 e).
fn scale_by_power_of_two_bits(x: u32, e: i32) -> u32 {
  let sign = x & F32_SCALING_SIGN;
  let magnitude = x & F32_SCALING_ABS;
  if (magnitude == 0u || magnitude >= F32_SCALING_INF) {
    return x; // ±0 stays, inf and NaN pass through
  }
  // magnitude = significand · 2^(exponent − 150), significand ∈ [2^23, 2^24).
  let unpacked = exact_f32_unpack(magnitude);
  // Keep the exponent arithmetic far from i32 overflow: past these bounds the answer is inf or 0.
  let shift_by = clamp(e, -400, 400);
  let exponent = unpacked.exponent + shift_by;
  if (exponent >= 255) {
    return sign | F32_SCALING_INF;
  }
  if (exponent >= 1) {
    // The hidden bit of the significand adds one to the exponent field.
    return sign | ((u32(exponent - 1) << 23u) + unpacked.significand);
  }
  // Subnormal result: in units of 2^−149 the value is significand / 2^shift.
  let shift = u32(1 - exponent);
  if (shift > 25u) {
    return sign; // below a quarter of the smallest subnormal
  }
  let kept = unpacked.significand >> shift;
  let dropped = unpacked.significand & ((1u << shift) - 1u);
  let half = 1u << (shift - 1u);
  let round_up = dropped > half || (dropped == half && (kept & 1u) == 1u);
  return sign | (kept + u32(round_up));
}

// `x` itself, in a form no compiler can merge into a fused multiply-add: xor with a run-time zero
// (a uniform the host sets to 0) forces the f32 rounding of a product before a later add or
// subtract uses it. Use it where the CPU reference rounds a product and then adds (sums of squares,
// subtracting a mean that is a product).
fn unfused(x: f32, runtime_zero: u32) -> f32 {
  return bitcast<f32>(bitcast<u32>(x) ^ runtime_zero);
}
