// The output of both E8 int8-input GEMVs (shaders/e8_residue_gemv_i8.wgsl, shaders/e8_point_gemv_i8.wgsl):
// Y[j, r] = scale·total (+ μ_j·Σx_r) (+ b_j) of local column `column` for the tile of right-hand sides
// from r0, as f32 or f16 (store_output). A library compiled in front of the kernel's loop
// (e8QuadGemvShaderSource, src/gpu/kernels/e8ResidueGemvI8.ts), after the shared uniform members
// (E8_QUAD_GEMV_MEMBERS); the kernel declares `side` and `sums`.
fn write_scaled_totals(column: u32, scale: f32, totals: array<f32, RHS_TILE>, r0: u32, poison: bool) {
  for (var r = 0u; r < RHS_TILE; r = r + 1u) {
    let rhs_index = r0 + r;
    if (rhs_index < params.rhs) {
      var value = scale * totals[r];
      if (params.has_means != 0u) {
        value = value + side[params.means_first + column] * sums[rhs_index];
      }
      store_output(params.y_first + rhs_index * params.y_stride + column, params.bias_first + column, select(value, POISON, poison));
    }
  }
}
