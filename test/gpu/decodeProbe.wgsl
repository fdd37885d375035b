// Test kernel for the leader decoders: writes probe_leader(code) of each code, 8 i32 per code (D3 fills
// 3). Compiled after the decoder and a one-line `probe_leader(code: vec2<u32>) -> LatticePoint` that
// the test defines: decode_leader (shaders/lattice_decode.wgsl: lattice and q from `params`) or
// gemv_leader (shaders/gemv_decode.wgsl: q compiled in).

struct ProbeParams {
  lattice: u32,
  q: u32,
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
  let leader = probe_leader(codes[i]);
  for (var k = 0u; k < 8u; k = k + 1u) {
    leaders[8u * i + k] = leader[k];
  }
}
