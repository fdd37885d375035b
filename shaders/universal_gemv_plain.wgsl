// Entry point of the universal GEMV without subgroups (appended to shaders/universal_gemv.wgsl): the
// 32 lanes of a column are added by the workgroup-memory tree alone.

// No lanes are combined before the tree.
fn subgroup_partial_sum(value: f32, width: u32) -> f32 {
  return value;
}

@compute @workgroup_size(256, 1, 1)
fn main(@builtin(workgroup_id) group: vec3<u32>, @builtin(local_invocation_index) thread: u32) {
  gemv(group.x, thread, 1u, false);
}
