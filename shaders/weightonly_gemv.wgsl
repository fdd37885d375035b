// Y = Ŵ'·X̃ for a weight-only quantized matrix (src/weightonly/quantized.ts) and the activations X̃
// already in the quantization basis (X̃ = Q·X; src/gpu/kernels/weightOnlyGemv.ts rotates them):
//
//   y[v][j] = t_j · Σ_i z_ji · (s_i · x̃[v][i])
//
// with integer codes z, per-input-feature steps s (column scales) and per-output rescalers t (row
// scales, all 1 when the matrix has none). The prefix written by `weightOnlyGemvShaderSource`
// declares the compile-time constants VECTOR_BLOCK, 1 or 4: vectors (columns of X̃) per workgroup, and
// X_F16: X̃ comes as f16 (a model's activations, widened on load, so the products are those of the
// f32 values bit for bit, on GPUs that keep subnormal halves: `x_value`; no 'shader-f16' needed), and
// the parameter struct WeightOnlyGemvParams
// (generated from its UniformLayout).
//
// Layout of the codes: one of two, each with its `codes` binding and its lane loop
// (`lane_accumulators`) in a file of its own that src/gpu/kernels/weightOnlyGemv.ts appends to this
// one: the packed layout below (shaders/weightonly_codes_packed.wgsl), or the fixed-width layout of
// shaders/weightonly_codes_fixed.wgsl (1 … 8 bits per code, repacked at upload; `code_layout` is then
// not read).
// Packed layout (src/weightonly/packedCodes.ts, the serialized format's own layout):
//   codes:  output j owns the R = row_vec4s vec4<u32> from codes_first + j·R: a little-endian bit
//           stream where code i takes b_i bits (1 … 25, two's complement) from bit P_i of the row;
//           bit p is bit p % 32 of word p / 32 of the row. Bits past P_n are 0.
//   code_layout: at layout_first, n + R + 2 u32: P_0 … P_n (b_i = P_{i+1} − P_i), then F_0 … F_R:
//           vec4 c of a row owns codes F_c … F_{c+1} − 1, those whose last bit lies in it. An owned
//           code starts at most 32 bits before the vec4, so the last word of vec4 c − 1 and the
//           four words of vec4 c (a 160-bit window) hold it.
//   column_scales: s_i at column_scales_first + i, i < n.
//   row_scales:    t_j at row_scales_first + j.
//   x:      vector v is x_stride f32 (f16 with X_F16: indices count halves) from x_first + v·x_stride;
//           entries i < n are read.
//   y:      y[v][j] at y_first + v·y_stride + j: f32, or f16 halves, plus b_j when params.has_bias
//           (`store_output`, shaders/gemv_output.wgsl: a QuantizedLinear's epilogue, done here).
//
// Work split: a workgroup of 128 invocations handles ROWS_PER_WORKGROUP = 8 outputs and VECTOR_BLOCK
// vectors: 2 teams of 64 lanes, each team 4 consecutive outputs (ROWS_PER_THREAD). In the packed
// layout lane l takes code vec4s l, l + 64, … of its 4 rows, so the 64 lanes of a team read 64
// consecutive 16-byte vectors of each row (coalesced); it also reads the last word of the vec4 before
// (a cached read: the neighbouring lane loaded it). In the fixed-width layout lane l takes the words
// l, l + 64, … (that file says why). The 4 rows share the bit positions, so each owned code is
// extracted for the 4 rows at once (vec4 lanes = rows), and every s_i·x̃_i it loads serves 4 rows.
//
// Reduction, in two barriers (a tree would need 6, and llvmpipe's compile time grows with every
// barrier): the lanes' vec4 sums go to workgroup memory; 8 lanes' sums are added in order by one
// invocation per (team, vector, segment); the 8 segment sums in order by one invocation per (team,
// vector), which multiplies by t_j and stores.
//
// f32 order of one term (the host module's error bound counts these roundings): f32(z) (exact, |z| ≤
// 2^24), s·x̃, z·(s·x̃) and the lane's chain of one addition per code its vec4s own (the packed loop;
// the fixed-width loop fuses the two into one multiply-add), 7 + 7 additions of the reduction, the
// final ·t.

// Where the code vec4s of the 4 rows from `first_row` start in `codes` (vec4 lanes = rows). Rows
// past the end repeat the last one (in-bounds reads); their sums are not stored.
fn row_bases(first_row: u32) -> vec4<u32> {
  let rows = min(vec4<u32>(first_row) + vec4<u32>(0u, 1u, 2u, 3u), vec4<u32>(params.outputs - 1u));
  return vec4<u32>(params.codes_first) + rows * params.row_vec4s;
}

// s_i·x̃_i of vector v of the workgroup's block (vectors past the end repeat the last one): the
// term's first rounding, as both lane loops form it.
fn scaled_input(s: f32, i: u32, first_vector: u32, v: u32) -> f32 {
  let vector = min(first_vector + v, params.vectors - 1u);
  return s * x_value(params.x_first + vector * params.x_stride + i);
}

// Element `at` of X̃ (an f32 index, or a half index with X_F16) as f32. An f16 is widened by
// unpack2x16float alone, not f16_value (shaders/f16_convert.wgsl): this runs once per code in the inner
// loop, where f16_value's subnormal case would add ≈ 5 instructions; WGSL lets a GPU read a subnormal
// half (|x̃| < 2^-14) as ±0 here (lavapipe does not). Rotated weights read X̃ in f32 (the rotation
// widens exactly), and `int8Inputs` reads it through f16_value.
fn x_value(at: u32) -> f32 {
  if (X_F16) {
    return unpack2x16float(x[at >> 1u])[at & 1u];
  }
  return bitcast<f32>(x[at]);
}

const WORKGROUP_SIZE: u32 = 128u;
const LANES: u32 = 64u;              // invocations per team (along the input features)
const TEAMS: u32 = 2u;               // WORKGROUP_SIZE / LANES
const ROWS_PER_THREAD: u32 = 4u;     // outputs per team: the components of a vec4 accumulator
const ROWS_PER_WORKGROUP: u32 = 8u;  // TEAMS · ROWS_PER_THREAD
const SEGMENT: u32 = 8u;             // lane sums added by one invocation in the first reduction step
const SEGMENTS: u32 = 8u;            // LANES / SEGMENT

// struct WeightOnlyGemvParams is declared once, in src/gpu/kernels/weightOnlyGemv.ts (a UniformLayout),
// which generates its WGSL in front of this file.
@group(0) @binding(0) var<uniform> params: WeightOnlyGemvParams;
// Binding 1, `codes`, is declared by the layout's file: vec4<u32> (packed) or u32 (fixed width).
@group(0) @binding(2) var<storage, read> code_layout: array<u32>;
@group(0) @binding(3) var<storage, read> column_scales: array<f32>;
@group(0) @binding(4) var<storage, read> row_scales: array<f32>;
@group(0) @binding(5) var<storage, read> x: array<u32>;  // f32 bits, or f16 halves when X_F16
@group(0) @binding(6) var<storage, read> bias: array<u32>;  // b when params.has_bias
@group(0) @binding(7) var<storage, read_write> y: array<atomic<u32>>;  // f32 bits or f16 halves (store_output)

// Lane sums: entry v·WORKGROUP_SIZE + invocation holds the 4 rows of vector v.
var<workgroup> lane_sums: array<vec4<f32>, VECTOR_BLOCK * WORKGROUP_SIZE>;
// Segment sums: entry (team·VECTOR_BLOCK + v)·SEGMENTS + segment.
var<workgroup> segment_sums: array<vec4<f32>, TEAMS * VECTOR_BLOCK * SEGMENTS>;

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
  let first_row_of_workgroup = (linear % params.row_groups) * ROWS_PER_WORKGROUP;
  let team = thread / LANES;
  let lane = thread % LANES;
  let first_row = first_row_of_workgroup + team * ROWS_PER_THREAD;

  let acc = lane_accumulators(first_row, lane, first_vector);

  for (var v = 0u; v < VECTOR_BLOCK; v = v + 1u) {
    lane_sums[v * WORKGROUP_SIZE + thread] = acc[v];
  }
  workgroupBarrier();
  // Step 1: invocation k < TEAMS·VECTOR_BLOCK·SEGMENTS adds the SEGMENT lane sums of its segment.
  if (thread < TEAMS * VECTOR_BLOCK * SEGMENTS) {
    let segment = thread % SEGMENTS;
    let team_vector = thread / SEGMENTS;
    let v = team_vector % VECTOR_BLOCK;
    let base = v * WORKGROUP_SIZE + (team_vector / VECTOR_BLOCK) * LANES + segment * SEGMENT;
    var sum = lane_sums[base];
    for (var k = 1u; k < SEGMENT; k = k + 1u) {
      sum = sum + lane_sums[base + k];
    }
    segment_sums[thread] = sum;
  }
  workgroupBarrier();
  // Step 2: invocation k < TEAMS·VECTOR_BLOCK adds its SEGMENTS segment sums, scales by t, stores.
  if (thread < TEAMS * VECTOR_BLOCK) {
    let vector = first_vector + thread % VECTOR_BLOCK;
    let row0 = first_row_of_workgroup + (thread / VECTOR_BLOCK) * ROWS_PER_THREAD;
    var sum = segment_sums[thread * SEGMENTS];
    for (var k = 1u; k < SEGMENTS; k = k + 1u) {
      sum = sum + segment_sums[thread * SEGMENTS + k];
    }
    if (vector < params.vectors) {
      for (var r = 0u; r < ROWS_PER_THREAD; r = r + 1u) {
        let row = row0 + r;
        if (row < params.outputs) {
          store_output(params.y_first + vector * params.y_stride + row, params.bias_first + row, row_scales[params.row_scales_first + row] * sum[r]);
        }
      }
    }
  }
}
