// Entry point of the column GEMV baselines without subgroups (appended after
// shaders/column_gemv_reduce.wgsl): the 256 invocation sums are added by the workgroup tree alone.

@compute @workgroup_size(THREADS, 1, 1)
fn main(
  @builtin(workgroup_id) workgroup: vec3<u32>,
  @builtin(num_workgroups) grid: vec3<u32>,
  @builtin(local_invocation_index) thread: u32,
) {
  let index = workgroup.y * grid.x + workgroup.x;
  finish_columns(index, thread, column_partials(index, thread), 1u);
}
