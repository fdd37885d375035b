// C = ÂᵀB̂ of two universal matrices from their pair forms (src/quantize/universalPairs.ts): R²·Σ h_a·h_b
// + R·Σ (h_a·l_b + l_a·h_b) (+ Σ l_a·l_b where a column is shifted: WITH_LOW below) per entry (R = 2^r,
// the forms' radix) with packed 8-bit dot products, times the common unit and the
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
//
// Σ l_a·l_b is dropped only for a pair of unshifted columns (l is then the dither's alone, and its
// mean, params.low_mean = N/4, is added in its place: droppedLowMean in universalPairs.ts); a shifted
// column's l follows the data, and its pairs keep the term (src/quantize/universalPairs.ts says why).
// The kernel is dispatched twice over the grid, once per value of WITH_LOW: a workgroup whose tile
// holds a shifted column (a factor f·2^s ≥ 1) runs in the WITH_LOW pipeline, which also forms
// Σ l_a·l_b (2 more packed dot products per pair of units) and adds it to the pairs with a shifted
// column; every other workgroup in the plain one, whose slice loop is the one above. The other
// pipeline's workgroup returns at once.
override WITH_LOW: bool = false;

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

// One row of an invocation's entries: the exact sums of h·h (high) and of h·l + l·h (cross) of its A
// column against its 4 B columns.
struct RowSums {
  high: vec4<i32>,
  cross: vec4<i32>,
}

// The sums plus a pair of units' terms, added in the dot products' order so that a compiler can chain
// them through the packed dot product's accumulator (v_dot4_i32_iu8 / IDP4A take one).
fn pair_high(sum: i32, a: vec4<u32>, b: vec4<u32>) -> i32 {
  return sum + dot_i8x4(a.x, b.x) + dot_i8x4(a.y, b.y);
}

fn pair_cross(sum: i32, a: vec4<u32>, b: vec4<u32>) -> i32 {
  return sum + dot_i8x4(a.x, b.z) + dot_i8x4(a.y, b.w) + dot_i8x4(a.z, b.x) + dot_i8x4(a.w, b.y);
}

// A row's sums plus unit `a` of its A column against the units `b` of its B columns. Written out per
// column, and called once per row below, so that every accumulator has a constant index: a compiler
// that keeps a row loop rolled (RADV does with the plain dot path, whose body is ≈ 4 × 90
// instructions) would otherwise index them at run time, a select chain per access (≈ 31 RDNA3
// instructions per multiply-accumulate instead of ≈ 6: bench/README.md, "Products").
fn row_sums(sums: RowSums, a: vec4<u32>, b: array<vec4<u32>, 4>) -> RowSums {
  return RowSums(
    vec4<i32>(pair_high(sums.high.x, a, b[0]), pair_high(sums.high.y, a, b[1]), pair_high(sums.high.z, a, b[2]), pair_high(sums.high.w, a, b[3])),
    vec4<i32>(pair_cross(sums.cross.x, a, b[0]), pair_cross(sums.cross.y, a, b[1]), pair_cross(sums.cross.z, a, b[2]), pair_cross(sums.cross.w, a, b[3])),
  );
}

// A row's Σ l_a·l_b plus unit `a` against the units `b` of its 4 B columns (WITH_LOW only).
fn row_low(low: vec4<i32>, a: vec4<u32>, b: array<vec4<u32>, 4>) -> vec4<i32> {
  return vec4<i32>(
    low.x + dot_i8x4(a.z, b[0].z) + dot_i8x4(a.w, b[0].w),
    low.y + dot_i8x4(a.z, b[1].z) + dot_i8x4(a.w, b[1].w),
    low.z + dot_i8x4(a.z, b[2].z) + dot_i8x4(a.w, b[2].w),
    low.w + dot_i8x4(a.z, b[3].z) + dot_i8x4(a.w, b[3].w),
  );
}

@compute @workgroup_size(16, 16, 1)
fn main(
  @builtin(workgroup_id) block: vec3<u32>,
  @builtin(local_invocation_id) local: vec3<u32>,
  @builtin(local_invocation_index) thread: u32,
) {
  let i0 = block.x * TILE;
  let j0 = block.y * TILE;
  // Which pipeline takes this tile: the one that keeps Σ l_a·l_b if a column is shifted (f·2^s ≥ 1).
  if (thread < 2u * TILE) {
    var shifted = false;
    if (thread < TILE) {
      let i = i0 + thread;
      shifted = i < params.a_cols && a_factors[params.a_factor_first + i] >= 1.0;
    } else {
      let j = j0 + thread - TILE;
      shifted = j < params.b_cols && b_factors[params.b_factor_first + j] >= 1.0;
    }
    a_slice[thread] = vec4<u32>(select(0u, 1u, shifted)); // a_slice is free until the slice loop's first barrier
  }
  workgroupBarrier();
  if (thread == 0u) {
    var any = 0u;
    for (var k = 0u; k < 2u * TILE; k = k + 1u) {
      any = any | a_slice[k].x;
    }
    a_slice[2u * TILE] = vec4<u32>(any);
  }
  if (workgroupUniformLoad(&a_slice[2u * TILE]).x != select(0u, 1u, WITH_LOW)) {
    return;
  }
  var a_flags = vec4<bool>();
  var b_flags = vec4<bool>();
  if (WITH_LOW) {
    a_flags = vec4<bool>(a_slice[local.x].x != 0u, a_slice[local.x + THREADS_EDGE].x != 0u, a_slice[local.x + 2u * THREADS_EDGE].x != 0u, a_slice[local.x + 3u * THREADS_EDGE].x != 0u);
    b_flags = vec4<bool>(a_slice[TILE + local.y].x != 0u, a_slice[TILE + local.y + THREADS_EDGE].x != 0u, a_slice[TILE + local.y + 2u * THREADS_EDGE].x != 0u, a_slice[TILE + local.y + 3u * THREADS_EDGE].x != 0u);
  }
  var acc: array<vec4<f32>, 4>; // [r][s], zero-initialized
  // A slice's exact sums per row, zeroed explicitly after each flush (a zero-initialized `var` declared
  // inside a loop was observed to keep its previous values on Dawn + lavapipe: shaders/e8_matmul.wgsl).
  var rows: array<RowSums, 4>;
  var lows: array<vec4<i32>, 4>; // WITH_LOW: a slice's Σ l_a·l_b per row

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
      let at = t * TILE;
      let b = array<vec4<u32>, 4>(b_slice[at + local.y], b_slice[at + local.y + THREADS_EDGE], b_slice[at + local.y + 2u * THREADS_EDGE], b_slice[at + local.y + 3u * THREADS_EDGE]);
      rows[0] = row_sums(rows[0], a_slice[at + local.x], b);
      rows[1] = row_sums(rows[1], a_slice[at + local.x + THREADS_EDGE], b);
      rows[2] = row_sums(rows[2], a_slice[at + local.x + 2u * THREADS_EDGE], b);
      rows[3] = row_sums(rows[3], a_slice[at + local.x + 3u * THREADS_EDGE], b);
      if (WITH_LOW) {
        lows[0] = row_low(lows[0], a_slice[at + local.x], b);
        lows[1] = row_low(lows[1], a_slice[at + local.x + THREADS_EDGE], b);
        lows[2] = row_low(lows[2], a_slice[at + local.x + 2u * THREADS_EDGE], b);
        lows[3] = row_low(lows[3], a_slice[at + local.x + 3u * THREADS_EDGE], b);
      }
    }
    for (var r = 0u; r < PER_THREAD; r = r + 1u) {
      acc[r] = acc[r] + params.radix * params.radix * vec4<f32>(rows[r].high) + params.radix * vec4<f32>(rows[r].cross);
      rows[r] = RowSums();
      if (WITH_LOW) {
        // Only the pairs with a shifted column keep it (the others drop it, as the plain pipeline does).
        let keep = vec4<bool>(a_flags[r]) | b_flags;
        acc[r] = acc[r] + select(vec4<f32>(), vec4<f32>(lows[r]), keep);
        lows[r] = vec4<i32>();
      }
    }
  }

  for (var r = 0u; r < PER_THREAD; r = r + 1u) {
    // The pairs that dropped Σ l_a·l_b get its mean (the plain pipeline's flags are all false).
    acc[r] = acc[r] + select(vec4<f32>(params.low_mean), vec4<f32>(), vec4<bool>(a_flags[r]) | b_flags);
    for (var s = 0u; s < PER_THREAD; s = s + 1u) {
      let i = i0 + local.x + THREADS_EDGE * r;
      let j = j0 + local.y + THREADS_EDGE * s;
      if (i < params.a_cols && j < params.b_cols) {
        let scale = params.common_scale * a_factors[params.a_factor_first + i] * b_factors[params.b_factor_first + j];
        c[params.c_first + j * params.a_cols + i] = scale * acc[r][s];
      }
    }
  }
}
