// The universal GEMV product's output when it finishes Y itself (the fused form, on devices that give
// a shader stage at least 10 storage buffers; src/gpu/kernels/universalGemv.ts): the per-call sums
// are recorded before the product (or, for a W that is not centred, taken by the product itself:
// params.sums_in_kernel, `dither_sum` from `tile_dither_sums`), so the lane that holds T[j, r] writes
//   Y[j, r] = ν_j·unit·(T[j, r] + Σ offset·x̃_r) + μ_j·Σx_r (+ b_j)
// as f32 or f16 (store_output, shaders/gemv_output.wgsl), the expression `finish` of
// shaders/universal_gemv_finish.wgsl evaluates, with no finishing pass and no f32 staging of T.
// Appended to shaders/universal_gemv.wgsl with shaders/gemv_output.wgsl.

@group(0) @binding(7) var<storage, read_write> y: array<atomic<u32>>;  // f32 bits, or f16 halves (store_output)
@group(0) @binding(8) var<storage, read> side: array<f32>;  // norms, then means when centred (all columns)
@group(0) @binding(9) var<storage, read> sums: array<f32>;  // per-call sums: Σ offset·x̃ from sums_first, Σx from sums_means (unread with sums_in_kernel)
@group(0) @binding(10) var<storage, read> bias: array<u32>; // b (the dispatch's columns from bias_first) when params.has_bias

fn write_column_total(column: u32, rhs_index: u32, total: f32, dither_sum: f32, poison: bool) {
  let j = params.column_offset + column;
  let scale = side[j] * params.unit;
  var mean = 0.0;
  if (params.has_means != 0u) {
    mean = side[params.total_cols + j];
  }
  let s = params.sums_first + rhs_index;
  // In-kernel sums: Σx is 0 (W not centred), as `call_sums` writes it then.
  var dither = dither_sum;
  var sum_x = 0.0;
  if (params.sums_in_kernel == 0u) {
    dither = sums[s];
    sum_x = sums[params.sums_means + s];
  }
  let value = scale * (total + dither) + mean * sum_x;
  store_output(params.y_first + rhs_index * params.total_cols + column, params.bias_first + column, select(value, POISON, poison));
}

// Σ_{b,v} offset_v·x̃_r[b·d + v] over the kept coordinates, for the right-hand sides r0 … of the tile
// (0 past params.rhs), when params.sums_in_kernel is set (W not centred: no Σx needed), instead of a
// `call_sums` dispatch: in `call_sums`' order (shaders/universal_gemv_finish.wgsl: invocation t adds
// blocks t, t + THREADS, …, then `sum_partials`; offset_v·x̃ is exact, a power of two times an f32),
// so the same bits. Every invocation gets the sums; called in uniform control flow, it leaves
// `partials` free for `column_totals`. ≈ N/THREADS loads and multiply-adds per invocation and
// right-hand side: small beside the decode of the workgroup's 8 columns.
fn tile_dither_sums(r0: u32, thread: u32) -> array<f32, RHS_TILE> {
  var sums = array<f32, RHS_TILE>();
  if (params.sums_in_kernel == 0u) {
    return sums;
  }
  for (var r = 0u; r < RHS_TILE; r = r + 1u) {
    var dither = 0.0;
    if (r0 + r < params.rhs) {
      let base = params.x_rotated_first + (r0 + r) * params.x_stride;
      for (var b = thread; b < params.blocks; b = b + THREADS) {
        let k0 = b * U_DIM;
        for (var v = 0u; v < U_DIM; v = v + 1u) {
          if (k0 + v < params.kept) {
            dither = dither + G_DITHER_OFFSETS[v] * x_rotated[base + k0 + v];
          }
        }
      }
    }
    partials[r * THREADS + thread] = dither;
  }
  sum_partials(RHS_TILE, thread);
  for (var r = 0u; r < RHS_TILE; r = r + 1u) {
    sums[r] = partials[r * THREADS];
  }
  workgroupBarrier();
  return sums;
}
