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
// Work split (the same as shaders/int4_gemv.wgsl): a workgroup of 256 invocations handles COLUMNS = 4
// output columns, LANES = 64 invocations per column; lane l takes chunks l, l + 64, … so the lanes of
// a column read consecutive addresses (coalesced). Each lane accumulates in f32; the 64 lane sums
// are added in a tree in workgroup memory.

const WORKGROUP_SIZE: u32 = 256u;
const LANES: u32 = 64u;   // invocations per output column
const COLUMNS: u32 = 4u;  // output columns per workgroup (WORKGROUP_SIZE / LANES)

// struct F32GemvParams is declared once, in src/gpu/kernels/f32Gemv.ts (a UniformLayout), which
// generates its WGSL in front of this file.
@group(0) @binding(0) var<uniform> params: F32GemvParams;
@group(0) @binding(1) var<storage, read> w: array<Chunk>;
@group(0) @binding(2) var<storage, read> x: array<Chunk>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;

var<workgroup> lane_sums: array<f32, WORKGROUP_SIZE>;

@compute @workgroup_size(WORKGROUP_SIZE, 1, 1)
fn main(
  @builtin(workgroup_id) workgroup: vec3<u32>,
  @builtin(num_workgroups) grid: vec3<u32>,
  @builtin(local_invocation_index) thread: u32,
) {
  let team = thread / LANES;
  let lane = thread % LANES;
  let column = (workgroup.y * grid.x + workgroup.x) * COLUMNS + team;

  var acc = 0.0;
  if (column < params.cols) {
    let base = params.w_first + column * params.chunks;
    for (var c = lane; c < params.chunks; c = c + LANES) {
      acc = acc + chunk_dot(w[base + c], x[params.x_first + c]);
    }
  }

  // Tree sum of each column's 64 lane sums (every invocation reaches the barriers).
  lane_sums[thread] = acc;
  workgroupBarrier();
  for (var stride = LANES / 2u; stride > 0u; stride = stride / 2u) {
    if (lane < stride) {
      lane_sums[thread] = lane_sums[thread] + lane_sums[thread + stride];
    }
    workgroupBarrier();
  }
  if (lane == 0u && column < params.cols) {
    y[params.y_first + column] = lane_sums[thread];
  }
}
