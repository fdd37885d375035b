// common_scale · scale_a · scale_b · dot without leaving f32 on the way: the column scales (ν·γ, anywhere
// in [2^-100, 2^100]) are split into mantissa and exponent (frexp), the mantissas multiplied with the
// dot product, and the exponents applied last, one ldexp each (each within ±128, so neither step
// overflows or underflows unless the result itself does). Multiplying the scales first would flush
// 2^-100 · 2^-30 to zero; the CPU twin (matmulAT) works in float64. Shared by the table and E8 products.
fn scaled_estimate(common_scale: f32, scale_a: f32, scale_b: f32, dot: f32) -> f32 {
  let a = frexp(scale_a);
  let b = frexp(scale_b);
  return ldexp(ldexp(common_scale * a.fract * b.fract * dot, a.exp), b.exp);
}
