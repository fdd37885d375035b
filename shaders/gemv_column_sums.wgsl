// The column side of the deterministic lattice GEMV kernels (shaders/lattice_gemv.wgsl,
// shaders/lattice_gemv_i8.wgsl): the column's scale ν_j·γ_j and mean μ_j (the Σx entry that the mean
// term needs is shaders/gemv_x_sums.wgsl). Compiled after a kernel that declares `params`
// (side_first, side_stride, has_gains) and `side: array<f32>` (norms from side_first, then gains and
// means side_stride apart).

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
