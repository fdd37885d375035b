// Entry point of the rotation without subgroups (appended to shaders/hadamard.wgsl): every
// butterfly level of the pass in workgroup memory, with a barrier between levels.

@compute @workgroup_size(THREADS, 1, 1)
fn main(
  @builtin(workgroup_id) workgroup_id: vec3<u32>,
  @builtin(num_workgroups) workgroup_count: vec3<u32>,
  @builtin(local_invocation_index) thread: u32,
) {
  let workgroup = linear_workgroup(workgroup_id, workgroup_count);
  load_groups(workgroup, thread);
  workgroup_levels(1u, thread);
  store_results(workgroup, thread);
}
