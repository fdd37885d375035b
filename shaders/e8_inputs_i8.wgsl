// x̃ rounded to int8 per group of 32 coordinates (4 E8 blocks) for the E8 residue prototype's GEMV
// (shaders/e8_residue_gemv_i8.wgsl), by the rule of the int8-input GEMVs (shaders/int8_group.wgsl:
// s = m / 127 with m = max |x̃| over the group, x̂_k = clamp(round(127·x̃_k / m), −127, 127), a NaN
// scale and zero levels for a group with a non-finite entry, coordinates at or past keptLength 0).
// CPU twin: `quantizeE8InputsI8` (src/gpu/kernels/e8ResidueGemvI8.ts). One invocation per group; per
// group 3 vec4: block b's even coordinates (0, 2, 4, 6) in word 2b and odd ones in word 2b + 1 as
// packed i8, then the 4 blocks' offsets o_b = 16·Σ x̂ (i32); the scale's f32 bits in `x_scales`.

@group(0) @binding(0) var<uniform> params: E8InputsI8Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> x_levels: array<vec4<u32>>;
@group(0) @binding(3) var<storage, read_write> x_scales: array<u32>;

@compute @workgroup_size(64, 1, 1)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
  let g = id.x;
  if (g >= params.groups) {
    return;
  }
  var v = array<f32, 32>();
  var m = 0.0;
  var finite = true;
  for (var k = 0u; k < 32u; k = k + 1u) {
    let at = 32u * g + k;
    var value = 0.0;
    if (at < params.kept) {
      value = x[params.x_first + at];
    }
    v[k] = value;
    // By the bit pattern: WGSL lets a compiler drop float tests for NaN and infinity.
    finite = finite && (bitcast<u32>(value) & 0x7fffffffu) < 0x7f800000u;
    m = max(m, abs(value));
  }
  var words = array<u32, 8>();
  var offsets = vec4<i32>();
  if (m > 0.0 && finite) {
    for (var b = 0u; b < 4u; b = b + 1u) {
      var sum = 0;
      for (var half = 0u; half < 2u; half = half + 1u) {
        var word = 0u;
        for (var t = 0u; t < 4u; t = t + 1u) {
          let level = i32(clamp(round(v[8u * b + 2u * t + half] / m * 127.0), -127.0, 127.0));
          word = word | ((u32(level) & 0xffu) << (8u * t));
          sum = sum + level;
        }
        words[2u * b + half] = word;
      }
      offsets[b] = 16 * sum;
    }
  }
  x_levels[3u * g] = vec4<u32>(words[0], words[1], words[2], words[3]);
  x_levels[3u * g + 1u] = vec4<u32>(words[4], words[5], words[6], words[7]);
  x_levels[3u * g + 2u] = bitcast<vec4<u32>>(offsets);
  x_scales[g] = select(0x7fc00000u, bitcast<u32>(m / 127.0), finite);
}
