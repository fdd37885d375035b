// dot_i8x4 / dot_i8x8 through WGSL's packed 8-bit dot product (language feature
// packed_4x8_integer_dot_product): the inner product of two vectors of 4 (8) int8 lanes, held
// little-endian in a u32 (vec2<u32>); pack_i8x4 packs such a vector (the feature's pack4xI8). Prepended to shaders/e8_matmul.wgsl and
// shaders/universal_gemv_i8.wgsl where the feature exists; shaders/dot_i8_plain.wgsl is the same
// functions without it.

fn dot_i8x4(a: u32, b: u32) -> i32 {
  return dot4I8Packed(a, b);
}

fn dot_i8x8(a: vec2<u32>, b: vec2<u32>) -> i32 {
  return dot4I8Packed(a.x, b.x) + dot4I8Packed(a.y, b.y);
}

// The low 8 bits of each component of v (each in [−128, 127]) as the 4 int8 lanes of a u32.
fn pack_i8x4(v: vec4<i32>) -> u32 {
  return pack4xI8(v);
}
