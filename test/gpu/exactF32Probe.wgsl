// Test kernel for shaders/exact_f32.wgsl (compiled after it): for each input pair (a, b) writes
// exact_div_bits(a, b), exact_sqrt_bits(a), and the f32-wrapper results bitcast back to u32.

struct ProbeParams {
  count: u32,
}

@group(0) @binding(0) var<uniform> params: ProbeParams;
@group(0) @binding(1) var<storage, read> numerators: array<u32>;
@group(0) @binding(2) var<storage, read> denominators: array<u32>;
@group(0) @binding(3) var<storage, read_write> results: array<u32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  let i = id.x + id.y * groups.x * 64u;
  if (i >= params.count) {
    return;
  }
  let a = numerators[i];
  let b = denominators[i];
  results[4u * i] = exact_div_bits(a, b);
  results[4u * i + 1u] = exact_sqrt_bits(a);
  results[4u * i + 2u] = bitcast<u32>(exact_div(bitcast<f32>(a), bitcast<f32>(b)));
  results[4u * i + 3u] = bitcast<u32>(exact_sqrt(bitcast<f32>(a)));
}
