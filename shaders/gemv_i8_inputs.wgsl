// The int8 form of x̃ for the int8-input GEMVs (shaders/universal_gemv_i8.wgsl, lattice_gemv_i8.wgsl): per right-hand
// side r and group g of 12 coordinates (4 D3 blocks, the blocks of one 8-bit code word),
//   s = m / 127 with m = max |x̃| over the group's kept coordinates,
//   x̂_k = clamp(round(127·x̃_k / m), −127, 127)   (0 for coordinates at or past keptLength),
// written into one buffer: 4 words per group and right-hand side (block b's three coordinates in the
// low three bytes of word b, as i8; the high byte 0) from word 0, then one f32 scale per group and
// right-hand side from word params.scales_first (= 4·groups·rhs: the GEMVs read both through one
// binding). |x̂_k·s − x̃_k| ≤ s·(½ + 10⁻⁴) (WGSL's division is
// within 2.5 ULP). A group with a non-finite entry gets a NaN scale, so the products it enters are
// NaN, never a silently finite number. CPU twin: `quantizeInputsI8` (src/gpu/kernels/inputsI8.ts).
//
// One invocation per (group, right-hand side). Compiled after the generated InputI8Params.

@group(0) @binding(0) var<uniform> params: InputI8Params;
@group(0) @binding(1) var<storage, read> x_rotated: array<f32>;
@group(0) @binding(2) var<storage, read_write> x_inputs: array<u32>;  // levels, then scales as f32 bits (a NaN is written as bits)

@compute @workgroup_size(256, 1, 1)
fn main(
  @builtin(workgroup_id) group: vec3<u32>,
  @builtin(num_workgroups) groups: vec3<u32>,
  @builtin(local_invocation_index) thread: u32,
) {
  let index = (group.y * groups.x + group.x) * 256u + thread;
  if (index >= params.groups * params.rhs) {
    return;
  }
  let r = index / params.groups;
  let g = index - r * params.groups;
  let base = params.x_rotated_first + r * params.x_stride;
  var v = array<f32, 12>();
  var m = 0.0;
  var finite = true;
  for (var i = 0u; i < 12u; i = i + 1u) {
    let k = g * 12u + i;
    if (k < params.kept) {
      v[i] = x_rotated[base + k];
      // NaN fails both comparisons; ±Inf the second.
      finite = finite && abs(v[i]) <= 3.4028234e38;
      m = max(m, abs(v[i]));
    }
  }
  let out = r * params.groups * 4u + g * 4u;
  for (var b = 0u; b < 4u; b = b + 1u) {
    var word = 0u;
    if (m > 0.0 && finite) {
      for (var t = 0u; t < 3u; t = t + 1u) {
        let level = i32(clamp(round(v[3u * b + t] / m * 127.0), -127.0, 127.0));
        word = word | ((u32(level) & 0xffu) << (8u * t));
      }
    }
    x_inputs[out + b] = word;
  }
  x_inputs[params.scales_first + r * params.groups + g] = select(0x7fc00000u, bitcast<u32>(m / 127.0), finite);
}
