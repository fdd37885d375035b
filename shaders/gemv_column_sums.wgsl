// The column side of the deterministic lattice GEMV kernels (shaders/lattice_gemv.wgsl,
// shaders/lattice_gemv_i8.wgsl): the column's scale ν_j·γ_j and mean μ_j, and the entry point
// `column_sums`, Σ_k x_r[k] per right-hand side r (for the mean term of a centred W). Compiled after a
// kernel that declares `params` (rows, x_first, side_first, side_stride, has_gains), `side:
// array<f32>` (norms from side_first, then gains and means side_stride apart), `x: array<f32>`
// (columns `rows` apart from element x_first) and `sums: array<f32>` (read_write). The sums: one
// workgroup per right-hand side, in a fixed order: strided per invocation, then a tree.

// ν_j·γ_j of local column `column` (ν_j without gains).
fn column_scale(column: u32) -> f32 {
  var scale = side[params.side_first + column];
  if (params.has_gains != 0u) {
    scale = scale * side[params.side_first + params.side_stride + column];
  }
  return scale;
}

// μ_j of local column `column` (when params.has_means).
fn column_mean(column: u32) -> f32 {
  return side[params.side_first + 2u * params.side_stride + column];
}

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
