// The entry point `column_sums` of the deterministic GEMV kernels (shaders/lattice_gemv.wgsl,
// shaders/lattice_gemv_i8.wgsl, shaders/e8_residue_gemv_i8.wgsl): Σ_k x_r[k] per right-hand side r,
// for the mean term μ_j·Σx_r of a centred W. Compiled after a kernel that declares `params` (rows,
// x_first), `x: array<f32>` (columns `rows` apart from element x_first) and `sums: array<f32>`
// (read_write). One workgroup per right-hand side, in a fixed order: strided per invocation, then a
// tree.

var<workgroup> column_sum_partials: array<f32, 256>;

@compute @workgroup_size(256, 1, 1)
fn column_sums(@builtin(workgroup_id) group: vec3<u32>, @builtin(local_invocation_index) thread: u32) {
  let r = group.x;
  var partial = 0.0;
  for (var k = thread; k < params.rows; k = k + 256u) {
    partial = partial + x[params.x_first + r * params.rows + k];
  }
  column_sum_partials[thread] = partial;
  for (var half = 128u; half > 0u; half = half / 2u) {
    workgroupBarrier();
    if (thread < half) {
      column_sum_partials[thread] = column_sum_partials[thread] + column_sum_partials[thread + half];
    }
  }
  if (thread == 0u) {
    sums[r] = column_sum_partials[0];
  }
}
