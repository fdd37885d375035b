// y = Wᵀx in f32: the GEMV baseline the quantized GEMV kernels are measured against.
//
// Layout (column-major, like src/matrix.ts): W is n × cols and column j gives output y[j].
// The weights and x are read in chunks of CHUNK_WIDTH floats, declared by a prefix that
// src/gpu/kernels/f32Gemv.ts puts in front of this file:
//   CHUNK_WIDTH = 4:  `alias Chunk = vec4<f32>;`, used when n is a multiple of 4 and both W and x start
//                     at 16-byte boundaries (128-bit loads, what fast GEMV kernels use);
//   CHUNK_WIDTH = 1:  `alias Chunk = f32;` for every other shape.
// Each also defines `fn chunk_dot(a: Chunk, b: Chunk) -> f32`. Column j is the chunks
// w[w_first + j·C …] with C = n / CHUNK_WIDTH, and x is x[x_first …] (chunk indices).
//
// Work split (llama.cpp's WebGPU mat-vec pattern; the same in f16_gemv.wgsl and int4_gemv.wgsl): a
// workgroup of THREADS = 256 invocations owns COLUMNS = 8 output columns. Invocation t takes chunks
// t, t + 256, … of x; for each it loads the x chunk once (kept in registers) and the same chunk of
// its 8 columns, so 8 independent 16-byte weight loads are in flight per invocation and x costs one
// load per 8 weight loads. Consecutive invocations read consecutive chunks of a column (coalesced).
// Each invocation accumulates its 8 column sums in two vec4<f32>; the workgroup adds them with
// shaders/column_gemv_reduce.wgsl and an entry file (subgroup shuffles where available).
// No division or modulo in the loop: the 8 column bases are computed once per workgroup.

const THREADS: u32 = 256u;
const COLUMNS: u32 = 8u;  // output columns per workgroup

struct ColumnSums {
  lo: vec4<f32>,  // columns 0..3 of the workgroup
  hi: vec4<f32>,  // columns 4..7
}

// struct F32GemvParams is declared once, in src/gpu/kernels/f32Gemv.ts (a UniformLayout), which
// generates its WGSL in front of this file.
@group(0) @binding(0) var<uniform> params: F32GemvParams;
@group(0) @binding(1) var<storage, read> w: array<Chunk>;
@group(0) @binding(2) var<storage, read> x: array<Chunk>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;

// Chunk index of column `first + c`'s chunk 0, clamped to the last column: a workgroup that runs past
// the last column re-reads that column instead of branching in the loop (its extra sums are not stored).
fn column_base(first: u32, c: u32) -> u32 {
  return params.w_first + min(first + c, params.cols - 1u) * params.chunks;
}

fn column_partials(workgroup_index: u32, thread: u32) -> ColumnSums {
  let first = workgroup_index * COLUMNS;
  let b0 = column_base(first, 0u);
  let b1 = column_base(first, 1u);
  let b2 = column_base(first, 2u);
  let b3 = column_base(first, 3u);
  let b4 = column_base(first, 4u);
  let b5 = column_base(first, 5u);
  let b6 = column_base(first, 6u);
  let b7 = column_base(first, 7u);
  var lo = vec4<f32>(0.0);
  var hi = vec4<f32>(0.0);
  for (var k = thread; k < params.chunks; k = k + THREADS) {
    let xk = x[params.x_first + k];
    lo = lo + vec4<f32>(chunk_dot(w[b0 + k], xk), chunk_dot(w[b1 + k], xk), chunk_dot(w[b2 + k], xk), chunk_dot(w[b3 + k], xk));
    hi = hi + vec4<f32>(chunk_dot(w[b4 + k], xk), chunk_dot(w[b5 + k], xk), chunk_dot(w[b6 + k], xk), chunk_dot(w[b7 + k], xk));
  }
  return ColumnSums(lo, hi);
}

fn store_column(workgroup_index: u32, c: u32, value: f32) {
  let column = workgroup_index * COLUMNS + c;
  if (column < params.cols) {
    y[params.y_first + column] = value;
  }
}
