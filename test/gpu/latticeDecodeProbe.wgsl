// Test kernel for shaders/lattice_decode.wgsl (compiled after it): writes decode_leader(lattice, code, q)
// for each code, 8 i32 per code (D3 fills 3).

struct ProbeParams {
  lattice: u32,
  q: u32,
  count: u32,
}

@group(0) @binding(0) var<uniform> params: ProbeParams;
@group(0) @binding(1) var<storage, read> codes: array<u32>;
@group(0) @binding(2) var<storage, read_write> leaders: array<i32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  let i = id.x + id.y * groups.x * 64u;
  if (i >= params.count) {
    return;
  }
  let leader = decode_leader(params.lattice, codes[i], params.q);
  for (var k = 0u; k < 8u; k = k + 1u) {
    leaders[8u * i + k] = leader[k];
  }
}
