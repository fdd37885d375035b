// The int8 form of x̃ for the int8-input GEMVs (shaders/universal_gemv_i8.wgsl, lattice_gemv_i8.wgsl):
// per right-hand side r and group g of 12 coordinates (4 D3 blocks, the blocks of one 8-bit code
// word), the levels and scale of shaders/int8_group.wgsl (`round_int8_group`: the rule, its error and
// its NaN), written into one buffer: 4 words per group and right-hand side (block b's three levels in
// word b) from word 0, then one f32 scale per group and right-hand side from word params.scales_first
// (= 4·groups·rhs: the GEMVs read both through one binding). CPU twin: `quantizeInputsI8`
// (src/gpu/kernels/inputsI8.ts). The rotation can write the same buffer itself in its last pass
// (shaders/hadamard.wgsl, `store_int8_groups`), which saves this dispatch.
//
// One invocation per (group, right-hand side). Compiled after the generated InputI8Params and
// shaders/int8_group.wgsl.

@group(0) @binding(0) var<uniform> params: InputI8Params;
@group(0) @binding(1) var<storage, read> x_rotated: array<f32>;
@group(0) @binding(2) var<storage, read_write> x_inputs: array<u32>;  // levels, then scales as f32 bits

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
  for (var i = 0u; i < 12u; i = i + 1u) {
    let k = g * 12u + i;
    if (k < params.kept) {
      v[i] = x_rotated[base + k];
    }
  }
  let rounded = round_int8_group(v);
  let out = r * params.groups * 4u + g * 4u;
  for (var b = 0u; b < 4u; b = b + 1u) {
    x_inputs[out + b] = rounded.words[b];
  }
  x_inputs[params.scales_first + r * params.groups + g] = rounded.scale_bits;
}
