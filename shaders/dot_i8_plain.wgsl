// dot_i8x4 / dot_i8x8 in core WGSL: the inner product of two vectors of 4 (8) int8 lanes, held
// little-endian in a u32 (vec2<u32>), by sign-extending every lane; pack_i8x4 packs such a vector. The fallback of shaders/dot_i8_packed.wgsl.

fn dot_i8x4(a: u32, b: u32) -> i32 {
  let x = bitcast<i32>(a);
  let y = bitcast<i32>(b);
  return extractBits(x, 0u, 8u) * extractBits(y, 0u, 8u) +
    extractBits(x, 8u, 8u) * extractBits(y, 8u, 8u) +
    extractBits(x, 16u, 8u) * extractBits(y, 16u, 8u) +
    extractBits(x, 24u, 8u) * extractBits(y, 24u, 8u);
}

fn dot_i8x8(a: vec2<u32>, b: vec2<u32>) -> i32 {
  return dot_i8x4(a.x, b.x) + dot_i8x4(a.y, b.y);
}

// The low 8 bits of each component of v (each in [−128, 127]) as the 4 int8 lanes of a u32.
fn pack_i8x4(v: vec4<i32>) -> u32 {
  let bytes = bitcast<vec4<u32>>(v) & vec4<u32>(0xffu);
  return bytes.x | (bytes.y << 8u) | (bytes.z << 16u) | (bytes.w << 24u);
}
