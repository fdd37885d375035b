// Y = Ŵ'·X̃ for a weight-only quantized matrix (src/weightonly/quantized.ts) and the activations X̃
// already in the quantization basis (X̃ = Q·X; src/gpu/kernels/weightOnlyGemv.ts rotates them):
//
//   y[v][j] = t_j · Σ_i z_ji · (s_i · x̃[v][i])
//
// with integer codes z, per-input-feature steps s (column scales) and per-output rescalers t (row
// scales, all 1 when the matrix has none). The prefix written by `weightOnlyGemvShaderSource`
// declares the two compile-time constants:
//   CODE_BITS     8, 16 or 32: bits per code (the width of the serialized format)
//   VECTOR_BLOCK  1 or 4: vectors (columns of X̃) per workgroup
//
// Layout:
//   codes:  output j owns the R = row_vec4s vec4<u32> from codes_first + j·R. Code i of the row is
//           the CODE_BITS-bit two's complement field at bit (i·CODE_BITS) % 32 of word
//           (i·CODE_BITS) / 32 of the row (little-endian packing: code i, i + 1, … from the low
//           bits up). Codes past n (the row's padding to whole vec4) are 0.
//   column_scales: s_i at column_scales_first + i, i < n.
//   row_scales:    t_j at row_scales_first + j.
//   x:      vector v is x_stride f32 from x_first + v·x_stride; entries i < n are read.
//   y:      y[v][j] at y_first + v·y_stride + j.
//
// Work split: a workgroup of 256 invocations handles ROWS_PER_WORKGROUP = 16 outputs and VECTOR_BLOCK
// vectors: 4 teams of 64 lanes, each team 4 consecutive outputs (ROWS_PER_THREAD). Lane l takes code
// vec4s l, l + 64, … of its 4 rows, so the 64 lanes of a team read 64 consecutive 16-byte vectors of
// each row (coalesced), and every s_i·x̃_i it loads serves 4 rows (fewer cache reads per code byte).
// Per group of 4 codes the lane forms dot(z, s ⊙ x̃) in f32 and adds it to its accumulator for that
// (row, vector); the 64 lane sums of each accumulator are then added in a tree in workgroup memory,
// and lane 0 multiplies by t_j.
//
// f32 order of one term (the host module's error bound counts these roundings): f32(z) (exact for
// |z| ≤ 2^24), s·x̃, z·(s·x̃), the 3 additions of a 4-term dot, the lane's chain of
// QUADS_PER_VEC4·⌈R/64⌉ additions, 6 tree levels, the final ·t.

const WORKGROUP_SIZE: u32 = 256u;
const LANES: u32 = 64u;              // invocations per team (along the input features)
const ROWS_PER_THREAD: u32 = 4u;     // outputs per team
const ROWS_PER_WORKGROUP: u32 = 16u; // (WORKGROUP_SIZE / LANES) · ROWS_PER_THREAD
const CODES_PER_VEC4: u32 = 128u / CODE_BITS;
const QUADS_PER_VEC4: u32 = CODES_PER_VEC4 / 4u;

struct WeightOnlyGemvParams {
  outputs: u32,              // outputs (rows of Ŵ') in this dispatch
  n: u32,                    // input features
  row_vec4s: u32,            // R: vec4<u32> of codes per output
  vectors: u32,              // vectors in this dispatch
  row_groups: u32,           // ⌈outputs / ROWS_PER_WORKGROUP⌉
  codes_first: u32,          // vec4 index of output 0's codes
  column_scales_first: u32,  // index of s_0
  row_scales_first: u32,     // index of t_0
  x_first: u32,              // index of vector 0's x̃_0
  x_stride: u32,             // f32 between consecutive vectors of x
  y_first: u32,              // index of vector 0's y_0
  y_stride: u32,             // f32 between consecutive vectors of y
}

@group(0) @binding(0) var<uniform> params: WeightOnlyGemvParams;
@group(0) @binding(1) var<storage, read> codes: array<vec4<u32>>;
@group(0) @binding(2) var<storage, read> column_scales: array<f32>;
@group(0) @binding(3) var<storage, read> row_scales: array<f32>;
@group(0) @binding(4) var<storage, read> x: array<f32>;
@group(0) @binding(5) var<storage, read_write> y: array<f32>;

var<workgroup> lane_sums: array<f32, ROWS_PER_THREAD * WORKGROUP_SIZE>;

// Codes 4·quad … 4·quad + 3 of a vec4 of packed codes, sign-extended, as floats.
fn code_quad(words: vec4<u32>, quad: u32) -> vec4<f32> {
  var z: vec4<f32>;
  for (var t = 0u; t < 4u; t = t + 1u) {
    let bit = (4u * quad + t) * CODE_BITS;
    z[t] = f32(extractBits(bitcast<i32>(words[bit / 32u]), bit % 32u, CODE_BITS));
  }
  return z;
}

// s ⊙ x̃ for input features first … first + 3 of vector `vector` (0 past n; indices are clamped so
// every read is in bounds).
fn scaled_input(first: u32, vector: u32) -> vec4<f32> {
  let index = vec4<u32>(first) + vec4<u32>(0u, 1u, 2u, 3u);
  let clamped = min(index, vec4<u32>(params.n - 1u));
  let base = params.x_first + vector * params.x_stride;
  let s = vec4<f32>(
    column_scales[params.column_scales_first + clamped.x],
    column_scales[params.column_scales_first + clamped.y],
    column_scales[params.column_scales_first + clamped.z],
    column_scales[params.column_scales_first + clamped.w],
  );
  let v = vec4<f32>(x[base + clamped.x], x[base + clamped.y], x[base + clamped.z], x[base + clamped.w]);
  return select(vec4<f32>(0.0), s * v, index < vec4<u32>(params.n));
}

@compute @workgroup_size(WORKGROUP_SIZE, 1, 1)
fn main(
  @builtin(workgroup_id) workgroup: vec3<u32>,
  @builtin(num_workgroups) grid: vec3<u32>,
  @builtin(local_invocation_index) thread: u32,
) {
  let linear = workgroup.y * grid.x + workgroup.x;
  let vector_blocks = (params.vectors + VECTOR_BLOCK - 1u) / VECTOR_BLOCK;
  // Workgroup-uniform: the whole workgroup leaves together, before any barrier.
  if (linear >= params.row_groups * vector_blocks) {
    return;
  }
  let first_vector = (linear / params.row_groups) * VECTOR_BLOCK;
  let team = thread / LANES;
  let lane = thread % LANES;
  let first_row = (linear % params.row_groups) * ROWS_PER_WORKGROUP + team * ROWS_PER_THREAD;

  // Rows and vectors past the end repeat the last one (in-bounds reads); their sums are not stored.
  var row_base: array<u32, ROWS_PER_THREAD>;
  for (var r = 0u; r < ROWS_PER_THREAD; r = r + 1u) {
    row_base[r] = params.codes_first + min(first_row + r, params.outputs - 1u) * params.row_vec4s;
  }
  var acc: array<array<f32, VECTOR_BLOCK>, ROWS_PER_THREAD>;
  for (var c = lane; c < params.row_vec4s; c = c + LANES) {
    var words: array<vec4<u32>, ROWS_PER_THREAD>;
    for (var r = 0u; r < ROWS_PER_THREAD; r = r + 1u) {
      words[r] = codes[row_base[r] + c];
    }
    for (var quad = 0u; quad < QUADS_PER_VEC4; quad = quad + 1u) {
      let first = c * CODES_PER_VEC4 + 4u * quad;
      var z: array<vec4<f32>, ROWS_PER_THREAD>;
      for (var r = 0u; r < ROWS_PER_THREAD; r = r + 1u) {
        z[r] = code_quad(words[r], quad);
      }
      for (var v = 0u; v < VECTOR_BLOCK; v = v + 1u) {
        let sx = scaled_input(first, min(first_vector + v, params.vectors - 1u));
        for (var r = 0u; r < ROWS_PER_THREAD; r = r + 1u) {
          acc[r][v] = acc[r][v] + dot(z[r], sx);
        }
      }
    }
  }

  // Per vector: tree sum of each row's 64 lane sums (every invocation reaches every barrier).
  for (var v = 0u; v < VECTOR_BLOCK; v = v + 1u) {
    for (var r = 0u; r < ROWS_PER_THREAD; r = r + 1u) {
      lane_sums[r * WORKGROUP_SIZE + thread] = acc[r][v];
    }
    workgroupBarrier();
    for (var stride = LANES / 2u; stride > 0u; stride = stride / 2u) {
      if (lane < stride) {
        for (var r = 0u; r < ROWS_PER_THREAD; r = r + 1u) {
          let k = r * WORKGROUP_SIZE + thread;
          lane_sums[k] = lane_sums[k] + lane_sums[k + stride];
        }
      }
      workgroupBarrier();
    }
    let vector = first_vector + v;
    if (lane == 0u && vector < params.vectors) {
      for (var r = 0u; r < ROWS_PER_THREAD; r = r + 1u) {
        let row = first_row + r;
        if (row < params.outputs) {
          y[params.y_first + vector * params.y_stride + row] =
            row_scales[params.row_scales_first + row] * lane_sums[r * WORKGROUP_SIZE + thread];
        }
      }
    }
    // The next vector overwrites lane_sums: wait until lane 0 has read them.
    workgroupBarrier();
  }
}
