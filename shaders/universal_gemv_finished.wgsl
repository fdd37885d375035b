// The universal GEMV product's output when it finishes Y itself (the fused form, on devices that give
// a shader stage at least 10 storage buffers; src/gpu/kernels/universalGemv.ts): the per-call sums
// are recorded before the product, so the lane that holds T[j, r] writes
//   Y[j, r] = ν_j·unit·(T[j, r] + Σ offset·x̃_r) + μ_j·Σx_r (+ b_j)
// as f32 or f16 (store_output, shaders/gemv_output.wgsl), the expression `finish` of
// shaders/universal_gemv_finish.wgsl evaluates, with no finishing pass and no f32 staging of T.
// Appended to shaders/universal_gemv.wgsl with shaders/gemv_output.wgsl.

@group(0) @binding(7) var<storage, read_write> y: array<atomic<u32>>;  // f32 bits, or f16 halves (store_output)
@group(0) @binding(8) var<storage, read> side: array<f32>;  // norms, then means when centred (all columns)
@group(0) @binding(9) var<storage, read> sums: array<f32>;  // per-call sums: Σ offset·x̃ from sums_first, Σx from sums_means
@group(0) @binding(10) var<storage, read> bias: array<f32>; // b (the dispatch's columns from bias_first) when params.has_bias

fn write_column_total(column: u32, rhs_index: u32, total: f32, poison: bool) {
  let j = params.column_offset + column;
  let scale = side[j] * params.unit;
  var mean = 0.0;
  if (params.has_means != 0u) {
    mean = side[params.total_cols + j];
  }
  let s = params.sums_first + rhs_index;
  let value = scale * (total + sums[s]) + mean * sums[params.sums_means + s];
  store_output(params.y_first + rhs_index * params.total_cols + column, params.bias_first + column, select(value, POISON, poison));
}
