// Test kernel for `gemv_leader`, the GEMV kernels' decode with q a compile-time constant
// (shaders/gemv_decode.wgsl behind the header src/gpu/kernels/gemvDecode.ts generates for one lattice
// and q; compiled after them): writes gemv_leader(low, high) of each code, 8 i32 per code (D3 fills 3).

struct ProbeParams {
  count: u32,
}

@group(0) @binding(0) var<uniform> params: ProbeParams;
@group(0) @binding(1) var<storage, read> codes: array<vec2<u32>>; // (low, high) words of each code
@group(0) @binding(2) var<storage, read_write> leaders: array<i32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  let i = id.x + id.y * groups.x * 64u;
  if (i >= params.count) {
    return;
  }
  let code = codes[i];
  let leader = gemv_leader(code.x, code.y);
  for (var k = 0u; k < 8u; k = k + 1u) {
    leaders[8u * i + k] = leader[k];
  }
}
