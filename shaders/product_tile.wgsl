// The part of the quantized × quantized product kernels (shaders/d3_table_matmul.wgsl and
// shaders/e8_matmul.wgsl) that does not depend on the lattice: a block's scale multiple from its index
// and the output of an invocation's 4 × 4 entries of C. Compiled with the kernel, which declares
// TILE, THREADS_EDGE, PER_THREAD, `params` (a struct with the shared members of productParamsLayout,
// src/gpu/kernels/productCommon.ts), `a_side`, `b_side` (norms at [0, cols), gains at [cols, 2·cols),
// means at [2·cols, 3·cols)) and `c`.

// common_scale · scale_a · scale_b · dot without leaving f32 on the way: the column scales (ν·γ, anywhere
// in [2^-100, 2^100]) are split into mantissa and exponent (frexp), the mantissas multiplied with the
// dot product, and the exponents applied last, one ldexp each (each within ±128, so neither step
// overflows or underflows unless the result itself does). Multiplying the scales first would flush
// 2^-100 · 2^-30 to zero; the CPU twin (matmulAT) works in float64.
fn scaled_estimate(common_scale: f32, scale_a: f32, scale_b: f32, dot: f32) -> f32 {
  let a = frexp(scale_a);
  let b = frexp(scale_b);
  return ldexp(ldexp(common_scale * a.fract * b.fract * dot, a.exp), b.exp);
}

// k of scale index `index` of A (of B), from the uniform's 16 multiples (indices past them read the last slot).
fn a_multiple(index: u32) -> i32 {
  let i = min(index, 15u);
  return params.a_multiples[i >> 2u][i & 3u];
}

fn b_multiple(index: u32) -> i32 {
  let i = min(index, 15u);
  return params.b_multiples[i >> 2u][i & 3u];
}

// Writes the invocation's entries of the tile whose C[0, 0] is (i0, j0): rows i0 + local.x + 16·r,
// columns j0 + local.y + 16·s, each common_scale · (ν_i γ_i) · (ν_j γ_j) · acc[r·4 + s]
// (+ rows · μ_i · μ_j when centred); entries past the dispatch's columns are not written.
fn write_tile(i0: u32, j0: u32, local: vec3<u32>, acc: array<f32, 16>) {
  for (var r = 0u; r < PER_THREAD; r = r + 1u) {
    for (var s = 0u; s < PER_THREAD; s = s + 1u) {
      let i = i0 + local.x + THREADS_EDGE * r;
      let j = j0 + local.y + THREADS_EDGE * s;
      if (i < params.a_cols && j < params.b_cols) {
        var a_scale = a_side[i];
        if (params.a_has_gains != 0u) {
          a_scale = a_scale * a_side[params.a_cols + i];
        }
        var b_scale = b_side[j];
        if (params.b_has_gains != 0u) {
          b_scale = b_scale * b_side[params.b_cols + j];
        }
        var value = scaled_estimate(params.common_scale, a_scale, b_scale, acc[r * PER_THREAD + s]);
        if (params.has_means != 0u) {
          value = value + params.rows * a_side[2u * params.a_cols + i] * b_side[2u * params.b_cols + j];
        }
        c[params.c_first + j * params.c_stride + i] = value;
      }
    }
  }
}
