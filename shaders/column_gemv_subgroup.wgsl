// Entry point of the column GEMV baselines with subgroups (appended after
// shaders/column_gemv_reduce.wgsl; the module starts with `enable subgroups;`). Aligned blocks of
// width = min(subgroup size, 32) lanes are added by a subgroupShuffleXor butterfly (no barrier, no
// workgroup memory), then `finish_columns` adds the 256 / width block sums (3 tree levels at width 32).
//
// The butterfly needs every subgroup to be a block of consecutive invocations with
// subgroup_invocation_id = thread mod subgroup_size. WGSL does not promise it (drivers do it in
// practice), so every invocation checks its subgroup and votes; if any subgroup of the workgroup is
// not such a block the workgroup takes width = 1 (the plain tree, the same depth).
// params.subgroup_mode: 1 forces that fallback (tests); 2 makes the fallback store POISON, so a result
// equal to the CPU's shows that the shuffles ran.

const POISON: f32 = 1.0e30;

var<workgroup> layout_votes: atomic<u32>;
var<workgroup> shared_width: u32;

@compute @workgroup_size(THREADS, 1, 1)
fn main(
  @builtin(workgroup_id) workgroup: vec3<u32>,
  @builtin(num_workgroups) grid: vec3<u32>,
  @builtin(local_invocation_index) thread: u32,
  @builtin(subgroup_size) subgroup_size: u32,
  @builtin(subgroup_invocation_id) subgroup_lane: u32,
) {
  let index = workgroup.y * grid.x + workgroup.x;
  // Vote while every invocation is active (before the kernel's own loop).
  let block_width = min(subgroup_size, THREADS);
  let block_of_first = subgroupBroadcastFirst(thread) / block_width;
  let lanes_in_order = subgroupAll(subgroup_lane == thread % block_width && thread / block_width == block_of_first);
  let full = subgroupAdd(1u) == subgroup_size;
  if (!(lanes_in_order && full) || params.subgroup_mode == 1u) {
    atomicAdd(&layout_votes, 1u);
  }
  workgroupBarrier();
  if (thread == 0u) {
    shared_width = select(1u, min(subgroup_size, 32u), atomicLoad(&layout_votes) == 0u);
  }
  let width = workgroupUniformLoad(&shared_width);

  var sums = column_partials(index, thread);
  for (var h = 1u; h < width; h = h << 1u) {
    sums = ColumnSums(sums.lo + subgroupShuffleXor(sums.lo, h), sums.hi + subgroupShuffleXor(sums.hi, h));
  }
  if (width == 1u && params.subgroup_mode == 2u) {
    sums = ColumnSums(vec4<f32>(POISON), vec4<f32>(POISON));
  }
  finish_columns(index, thread, sums, width);
}
