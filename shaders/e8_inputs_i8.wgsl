// x̃ rounded to int8 per group of 32 coordinates (4 E8 blocks) for the E8 residue GEMV
// (shaders/e8_residue_gemv_i8.wgsl), by the rule of the int8-input GEMVs (shaders/int8_group.wgsl,
// compiled in front of this file: int8_finite, e8_block_levels, int8_scale_bits;
// s = m / 127 with m = max |x̃| over the group, x̂_k = clamp(round(127·x̃_k / m), −127, 127), a NaN
// scale and zero levels for a group with a non-finite entry, coordinates at or past keptLength 0).
// CPU twin: `quantizeE8InputsI8` (src/gpu/kernels/e8ResidueGemvI8.ts). One buffer: per right-hand
// side r and group g, 3 vec4 (12 words) from word 12·(r·groups + g): block b's even coordinates (0,
// 2, 4, 6) in word 2b and odd ones in word 2b + 1 as packed i8, then the 4 blocks' offsets o_b =
// 16·Σ x̂ (i32) in words 8 … 11; the scales' f32 bits from word scales_first + r·groups + g. One
// invocation per block (8 consecutive entries), so a workgroup of 64 rounds 16 groups (groups of
// every right-hand side in a row): each block's max and finiteness go through workgroup memory to the
// 4 blocks of its group (the max is exact in any order, so the result does not depend on the split).

const BLOCKS: u32 = 64u;   // invocations per workgroup, one per block

@group(0) @binding(0) var<uniform> params: E8InputsI8Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;          // x̃: columns x_stride apart from element x_first
@group(0) @binding(2) var<storage, read_write> x_inputs: array<u32>;

var<workgroup> block_max: array<f32, BLOCKS>;
var<workgroup> block_finite: array<u32, BLOCKS>;

@compute @workgroup_size(64, 1, 1)
fn main(
  @builtin(workgroup_id) workgroup: vec3<u32>,
  @builtin(num_workgroups) workgroups: vec3<u32>,
  @builtin(local_invocation_index) thread: u32,
) {
  let block = (workgroup.y * workgroups.x + workgroup.x) * BLOCKS + thread;
  let slot = block >> 2u;   // r·groups + g
  let b = block & 3u;
  let r = slot / params.groups;
  let g = slot % params.groups;
  var v = array<f32, 8>();
  var m = 0.0;
  var finite = true;
  for (var i = 0u; i < 8u; i = i + 1u) {
    let at = 8u * (4u * g + b) + i;   // coordinate of the column
    var value = 0.0;
    if (at < params.kept && r < params.rhs) {
      value = x[params.x_first + r * params.x_stride + at];
    }
    v[i] = value;
    finite = finite && int8_finite(value);
    m = max(m, abs(value));
  }
  block_max[thread] = m;
  block_finite[thread] = select(0u, 1u, finite);
  workgroupBarrier();
  let first = thread & ~3u;
  let group_max = max(max(block_max[first], block_max[first + 1u]), max(block_max[first + 2u], block_max[first + 3u]));
  let group_finite = (block_finite[first] & block_finite[first + 1u] & block_finite[first + 2u] & block_finite[first + 3u]) != 0u;
  if (r >= params.rhs) {
    return;
  }
  var levels = vec3<u32>();
  if (group_max > 0.0 && group_finite) {
    levels = e8_block_levels(v, group_max);
  }
  x_inputs[12u * slot + 2u * b] = levels.x;
  x_inputs[12u * slot + 2u * b + 1u] = levels.y;
  x_inputs[12u * slot + 8u + b] = levels.z;
  if (b == 0u) {
    x_inputs[params.scales_first + slot] = int8_scale_bits(group_max, group_finite);
  }
}
