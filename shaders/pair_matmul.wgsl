// C = ÂᵀB̂ of two universal matrices from their pair forms (src/quantize/universalPairs.ts): R²·Σ h_a·h_b
// + R·Σ (h_a·l_b + l_a·h_b) per entry (R = 2^r, the forms' radix) with packed 8-bit dot products, times the common unit and the
// columns' factors; the product epilogue then applies the exponents, the means and a Gram matrix's
// diagonal (shaders/product_epilogue.wgsl). CPU twin: pairProductReference (universalPairs.ts).
// Compiled after shaders/dot_i8_packed.wgsl or shaders/dot_i8_plain.wgsl and the generated
// `PairMatmulParams` (src/gpu/kernels/pairMatmul.ts).
//
// Layout: A's pairs are a_cols columns of `units` vec4<u32> from vec4 a_first (each a unit of 8
// rotated coordinates: h of 0–3, h of 4–7, l of 0–3, l of 4–7), B's likewise; C is a_cols × b_cols
// column-major from c_first (C[i, j] = c[c_first + j·a_cols + i]); factors per column from
// a_factor_first / b_factor_first.
//
// Tiling as shaders/matmul_f32.wgsl: 16 × 16 invocations, a 64 × 64 block of C, 4 × 4 entries per
// invocation (rows i0 + tx + 16·r, columns j0 + ty + 16·s); the shared dimension in slices of SLICE
// units (64 coordinates), A's and B's 64 columns of a slice copied into workgroup memory (16 KB), where
// each unit is read by 16 invocations. Per pair of units (8 coordinates): 6 packed dot products, 2 for
// h·h and 4 for the cross terms, so 3 per 4 coordinates where the f32 kernel spends 4 multiply-adds.
// The sums of a slice stay exact in i32 (|Σ h·h| ≤ 64·128² = 2^20 and |Σ cross| ≤ 2^21 per slice)
// and go to the f32 accumulator once per slice, times R² ≤ 2^16 and R: exact.

const TILE: u32 = 64u;
const SLICE: u32 = 8u;          // units per slice
const THREADS_EDGE: u32 = 16u;
const PER_THREAD: u32 = 4u;
const THREADS: u32 = 256u;
const STAGE_STEPS: u32 = 4u;    // 2 · SLICE · TILE / THREADS

@group(0) @binding(0) var<uniform> params: PairMatmulParams;
@group(0) @binding(1) var<storage, read> a_pairs: array<vec4<u32>>;
@group(0) @binding(2) var<storage, read> a_factors: array<f32>;
@group(0) @binding(3) var<storage, read> b_pairs: array<vec4<u32>>;
@group(0) @binding(4) var<storage, read> b_factors: array<f32>;
@group(0) @binding(5) var<storage, read_write> c: array<f32>;

// [t][column]: unit u0 + t of the tile's column.
var<workgroup> a_slice: array<vec4<u32>, 512>; // SLICE · TILE
var<workgroup> b_slice: array<vec4<u32>, 512>;

@compute @workgroup_size(16, 16, 1)
fn main(
  @builtin(workgroup_id) block: vec3<u32>,
  @builtin(local_invocation_id) local: vec3<u32>,
  @builtin(local_invocation_index) thread: u32,
) {
  let i0 = block.x * TILE;
  let j0 = block.y * TILE;
  var acc: array<f32, 16>; // [r · 4 + s], zero-initialized
  // A slice's exact sums, zeroed explicitly after each flush (a zero-initialized `var` declared inside
  // a loop was observed to keep its previous values on Dawn + lavapipe: shaders/e8_matmul.wgsl).
  var high: array<i32, 16>;
  var cross: array<i32, 16>;

  for (var u0 = 0u; u0 < params.units; u0 = u0 + SLICE) {
    workgroupBarrier(); // the previous slice has been read by everyone
    // Consecutive invocations copy consecutive units of one column (adjacent 16-byte words); columns
    // past the edge and units past the end are zeros.
    for (var step = 0u; step < STAGE_STEPS; step = step + 1u) {
      let e = thread + step * THREADS;
      let is_b = e >= SLICE * TILE;
      let f = e % (SLICE * TILE);
      let column = f / SLICE;
      let t = f % SLICE;
      let unit = u0 + t;
      if (is_b) {
        let j = j0 + column;
        var value = vec4<u32>();
        if (unit < params.units && j < params.b_cols) {
          value = b_pairs[params.b_first + j * params.units + unit];
        }
        b_slice[t * TILE + column] = value;
      } else {
        let i = i0 + column;
        var value = vec4<u32>();
        if (unit < params.units && i < params.a_cols) {
          value = a_pairs[params.a_first + i * params.units + unit];
        }
        a_slice[t * TILE + column] = value;
      }
    }
    workgroupBarrier(); // the slice is copied

    let count = min(SLICE, params.units - u0);
    for (var t = 0u; t < count; t = t + 1u) {
      var a: array<vec4<u32>, 4>;
      var b: array<vec4<u32>, 4>;
      for (var r = 0u; r < PER_THREAD; r = r + 1u) {
        a[r] = a_slice[t * TILE + local.x + THREADS_EDGE * r];
        b[r] = b_slice[t * TILE + local.y + THREADS_EDGE * r];
      }
      for (var r = 0u; r < PER_THREAD; r = r + 1u) {
        for (var s = 0u; s < PER_THREAD; s = s + 1u) {
          let rs = r * PER_THREAD + s;
          high[rs] = high[rs] + dot_i8x4(a[r].x, b[s].x) + dot_i8x4(a[r].y, b[s].y);
          cross[rs] = cross[rs] + dot_i8x4(a[r].x, b[s].z) + dot_i8x4(a[r].y, b[s].w) + dot_i8x4(a[r].z, b[s].x) + dot_i8x4(a[r].w, b[s].y);
        }
      }
    }
    for (var rs = 0u; rs < PER_THREAD * PER_THREAD; rs = rs + 1u) {
      acc[rs] = acc[rs] + params.radix * params.radix * f32(high[rs]) + params.radix * f32(cross[rs]);
      high[rs] = 0;
      cross[rs] = 0;
    }
  }

  for (var r = 0u; r < PER_THREAD; r = r + 1u) {
    for (var s = 0u; s < PER_THREAD; s = s + 1u) {
      let i = i0 + local.x + THREADS_EDGE * r;
      let j = j0 + local.y + THREADS_EDGE * s;
      if (i < params.a_cols && j < params.b_cols) {
        let scale = params.common_scale * a_factors[params.a_factor_first + i] * b_factors[params.b_factor_first + j];
        c[params.c_first + j * params.a_cols + i] = scale * acc[r * PER_THREAD + s];
      }
    }
  }
}
