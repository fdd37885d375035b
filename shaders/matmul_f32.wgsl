// C = AᵀB in f32: the baseline the quantized kernels are measured against.
//
// Layout (column-major, like src/matrix.ts): A is n × a_cols with A[k, i] = a[a_first + i·n + k],
// B is n × b_cols with B[k, j] = b[b_first + j·n + k], C is a_cols × b_cols with
// C[i, j] = c[c_first + j·a_cols + i]. Each C entry is one column of A dotted with one column of B.
//
// Tiling: a workgroup of 16 × 16 invocations computes a 64 × 64 block of C; each invocation owns a
// 4 × 4 sub-block (rows i0 + tx + 16·r, columns j0 + ty + 16·s, so neighbouring invocations touch
// neighbouring addresses). The shared dimension is walked in slices of 16: the workgroup copies a
// 16 × 64 slice of A and of B into workgroup memory (8 KB, within every device's 16 KB), where each
// value is read by 16 invocations. Every C entry is accumulated in f32 with k increasing (a driver may
// fuse the multiply-add).

const TILE: u32 = 64u;          // C block edge per workgroup
const SLICE: u32 = 16u;         // k values per shared-memory slice
const THREADS_EDGE: u32 = 16u;  // invocations per workgroup edge
const PER_THREAD: u32 = 4u;     // C entries per invocation edge (TILE / THREADS_EDGE)
const THREADS: u32 = 256u;      // THREADS_EDGE²

// struct MatmulParams is declared once, in src/gpu/kernels/matmulF32.ts (a UniformLayout), which
// generates its WGSL in front of this file.
@group(0) @binding(0) var<uniform> params: MatmulParams;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> c: array<f32>;

// [k][i]: slice row k of the A block (column i of A), and likewise for B.
var<workgroup> a_slice: array<f32, 1024>; // SLICE · TILE
var<workgroup> b_slice: array<f32, 1024>;

@compute @workgroup_size(16, 16, 1)
fn main(
  @builtin(workgroup_id) block: vec3<u32>,
  @builtin(local_invocation_id) local: vec3<u32>,
  @builtin(local_invocation_index) thread: u32,
) {
  let i0 = block.x * TILE;
  let j0 = block.y * TILE;
  var acc: array<f32, 16>; // [r · 4 + s], zero-initialized

  for (var k0 = 0u; k0 < params.n; k0 = k0 + SLICE) {
    // Copy the slices: 1024 values each, 4 per invocation. Consecutive invocations take consecutive
    // k of one column, which are adjacent in memory. Values past the matrix edges read as zero.
    for (var step = 0u; step < SLICE * TILE / THREADS; step = step + 1u) {
      let e = thread + step * THREADS;
      let column = e / SLICE;
      let k = k0 + e % SLICE;
      let slot = (e % SLICE) * TILE + column;
      var a_value = 0.0;
      if (k < params.n && i0 + column < params.a_cols) {
        a_value = a[params.a_first + (i0 + column) * params.n + k];
      }
      a_slice[slot] = a_value;
      var b_value = 0.0;
      if (k < params.n && j0 + column < params.b_cols) {
        b_value = b[params.b_first + (j0 + column) * params.n + k];
      }
      b_slice[slot] = b_value;
    }
    workgroupBarrier();

    for (var k = 0u; k < SLICE; k = k + 1u) {
      var a_values: array<f32, 4>;
      var b_values: array<f32, 4>;
      for (var r = 0u; r < PER_THREAD; r = r + 1u) {
        a_values[r] = a_slice[k * TILE + local.x + THREADS_EDGE * r];
        b_values[r] = b_slice[k * TILE + local.y + THREADS_EDGE * r];
      }
      for (var r = 0u; r < PER_THREAD; r = r + 1u) {
        for (var s = 0u; s < PER_THREAD; s = s + 1u) {
          acc[r * PER_THREAD + s] = acc[r * PER_THREAD + s] + a_values[r] * b_values[s];
        }
      }
    }
    workgroupBarrier();
  }

  for (var r = 0u; r < PER_THREAD; r = r + 1u) {
    for (var s = 0u; s < PER_THREAD; s = s + 1u) {
      let i = i0 + local.x + THREADS_EDGE * r;
      let j = j0 + local.y + THREADS_EDGE * s;
      if (i < params.a_cols && j < params.b_cols) {
        c[params.c_first + j * params.a_cols + i] = acc[r * PER_THREAD + s];
      }
    }
  }
}
