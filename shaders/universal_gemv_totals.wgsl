// The universal GEMV product's output when a finishing pass follows (the split form,
// src/gpu/kernels/universalGemv.ts): T[j, r] = Σ c·x̃ as f32 into Y (or into an f32 staging buffer for
// f16 output), which `finish` (shaders/universal_gemv_finish.wgsl) turns into Y in place. Appended
// to shaders/universal_gemv.wgsl.

@group(0) @binding(7) var<storage, read_write> y: array<f32>;  // T[j, r] (finished by `finish`)

// No per-call sums here: `finish` adds them.
fn tile_dither_sums(r0: u32, thread: u32) -> array<f32, RHS_TILE> {
  return array<f32, RHS_TILE>();
}

// (`dither_sum` is unused.)
fn write_column_total(column: u32, rhs_index: u32, total: f32, dither_sum: f32, poison: bool) {
  y[params.y_first + rhs_index * params.total_cols + column] = select(total, POISON, poison);
}
