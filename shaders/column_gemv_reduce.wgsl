// Shared by the column GEMV baselines (shaders/f32_gemv.wgsl, f16_gemv.wgsl, int4_gemv.wgsl): the
// workgroup part of the reduction and the stores. A kernel file defines, before this file:
//   const THREADS: u32 = 256u;  const COLUMNS: u32 = 8u;  struct ColumnSums { lo: vec4<f32>, hi: vec4<f32> }
//   fn column_partials(workgroup_index: u32, thread: u32) -> ColumnSums   (this invocation's sums of the
//      workgroup's 8 columns: columns 0..3 in lo, 4..7 in hi)
//   fn store_column(workgroup_index: u32, c: u32, value: f32)             (writes y for column c, if it exists)
// and the generated params struct has a `subgroup_mode` member. One entry file follows this one:
// column_gemv_plain.wgsl or column_gemv_subgroup.wgsl.
//
// The sum over the 256 invocations always has depth 8: the entry adds aligned blocks of `width`
// lanes (log2(width) levels of subgroup shuffles; width = 1 without them), then `finish_columns` adds
// the 256 / width block sums in a tree (log2(256 / width) levels). So the error bound of each kernel
// does not depend on the subgroup size.

var<workgroup> block_sums: array<ColumnSums, THREADS>;

// `sums` is the sum over this invocation's aligned block of `width` lanes (width a power of two,
// workgroup-uniform). Adds the blocks in a tree and stores the 8 column totals. Call in uniform
// control flow.
fn finish_columns(workgroup_index: u32, thread: u32, sums: ColumnSums, width: u32) {
  let head = (thread & (width - 1u)) == 0u;
  if (head) {
    block_sums[thread] = sums;
  }
  workgroupBarrier();
  for (var stride = THREADS / 2u; stride >= width; stride = stride >> 1u) {
    if (head && thread < stride) {
      let other = block_sums[thread + stride];
      block_sums[thread] = ColumnSums(block_sums[thread].lo + other.lo, block_sums[thread].hi + other.hi);
    }
    workgroupBarrier();
  }
  if (thread < COLUMNS) {
    let total = block_sums[0];
    let value = select(total.hi[thread & 3u], total.lo[thread & 3u], thread < 4u);
    store_column(workgroup_index, thread, value);
  }
}
