// Entry point of the universal GEMV with subgroups (appended to shaders/universal_gemv.wgsl; the module
// starts with `enable subgroups;`, written by src/gpu/kernels/universalGemv.ts because an enable
// directive must precede every declaration). The lanes of a column are first added within aligned
// groups of width = min(subgroup size, 32) invocations by a subgroupShuffleXor butterfly (no barrier),
// then the groups by the workgroup-memory tree of the shared code, which has nothing left to do when
// width = 32 (NVIDIA, or AMD's 64: the butterfly's partners h < 32 stay inside one column).
//
// The butterfly needs every subgroup to be a block of consecutive invocations [k·S, k·S + S) with
// subgroup_invocation_id = thread mod S. WGSL does not promise it (drivers do it in practice), so
// every invocation checks its subgroup and votes; if any subgroup of the workgroup is not such a
// block, the whole workgroup takes width = 1, i.e. the plain tree (the same sums in another order).
// Tests: params.subgroup_test_mode = 1 forces that fallback; 2 makes the fallback write POISON, so a
// result equal to the CPU's shows that the shuffles ran.

// The sum of `value` over the aligned group of `width` lanes holding this invocation (every lane of
// the group gets it). Runs in uniform control flow: `width` is workgroup-uniform.
fn subgroup_partial_sum(value: f32, width: u32) -> f32 {
  var sum = value;
  for (var h = 1u; h < width; h = h << 1u) {
    sum = sum + subgroupShuffleXor(sum, h);
  }
  return sum;
}

@compute @workgroup_size(256, 1, 1)
fn main(
  @builtin(workgroup_id) group: vec3<u32>,
  @builtin(local_invocation_index) thread: u32,
  @builtin(subgroup_size) subgroup_size: u32,
  @builtin(subgroup_invocation_id) subgroup_lane: u32,
) {
  // Is this subgroup the full block of `thread`, lanes in thread order? (While every invocation is active.)
  let block_width = min(subgroup_size, THREADS);
  let block_of_first = subgroupBroadcastFirst(thread) / block_width;
  let lanes_in_order = subgroupAll(subgroup_lane == thread % block_width && thread / block_width == block_of_first);
  let full = subgroupAdd(1u) == subgroup_size;
  if (!(lanes_in_order && full) || params.subgroup_test_mode == 1u) {
    atomicAdd(&layout_votes, 1u);
  }
  workgroupBarrier();
  if (thread == 0u) {
    shared_width = select(1u, min(subgroup_size, LANES), atomicLoad(&layout_votes) == 0u);
  }
  let width = workgroupUniformLoad(&shared_width);
  gemv(group.x, thread, width, params.subgroup_test_mode == 2u && width == 1u);
}
