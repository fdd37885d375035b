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
// Work split: a workgroup of 128 invocations handles ROWS_PER_WORKGROUP = 8 outputs and VECTOR_BLOCK
// vectors: 2 teams of 64 lanes, each team 4 consecutive outputs (ROWS_PER_THREAD). Lane l takes code
// vec4s l, l + 64, … of its 4 rows, so the 64 lanes of a team read 64 consecutive 16-byte vectors of
// each row (coalesced), and every s_i·x̃_i it loads serves 4 rows (fewer cache reads per code byte).
// Per group of 4 codes the lane forms dot(z, s ⊙ x̃) in f32 and adds it to its accumulator for that
// (row, vector): one vec4 per vector holds the 4 rows.
//
// Reduction, in two barriers (a tree would need 6, and llvmpipe's compile time grows with every
// barrier): the lanes' vec4 sums go to workgroup memory; 8 lanes' sums are added in order by one
// invocation per (team, vector, segment); the 8 segment sums in order by one invocation per (team,
// vector), which multiplies by t_j and stores.
//
// f32 order of one term (the host module's error bound counts these roundings): f32(z) (exact for
// |z| ≤ 2^24), s·x̃, z·(s·x̃), the 3 additions of a 4-term dot, the lane's chain of
// QUADS_PER_VEC4·⌈R/64⌉ additions, 8 + 8 additions of the reduction, the final ·t.

const WORKGROUP_SIZE: u32 = 128u;
const LANES: u32 = 64u;              // invocations per team (along the input features)
const TEAMS: u32 = 2u;               // WORKGROUP_SIZE / LANES
const ROWS_PER_THREAD: u32 = 4u;     // outputs per team: the components of a vec4 accumulator
const ROWS_PER_WORKGROUP: u32 = 8u;  // TEAMS · ROWS_PER_THREAD
const SEGMENT: u32 = 8u;             // lane sums added by one invocation in the first reduction step
const SEGMENTS: u32 = 8u;            // LANES / SEGMENT
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

// Lane sums: entry v·WORKGROUP_SIZE + invocation holds the 4 rows of vector v.
var<workgroup> lane_sums: array<vec4<f32>, VECTOR_BLOCK * WORKGROUP_SIZE>;
// Segment sums: entry (team·VECTOR_BLOCK + v)·SEGMENTS + segment.
var<workgroup> segment_sums: array<vec4<f32>, TEAMS * VECTOR_BLOCK * SEGMENTS>;

// Codes 4·quad … 4·quad + 3 of a vec4 of packed codes, sign-extended, as floats: code k sits at bit
// k·CODE_BITS of the 128-bit vector; it is shifted to the top of its word, then arithmetically back.
fn code_quad(words: vec4<u32>, quad: u32) -> vec4<f32> {
  let bit = (vec4<u32>(4u * quad) + vec4<u32>(0u, 1u, 2u, 3u)) * CODE_BITS;
  let word_index = bit / 32u;
  let word = select(
    select(vec4<u32>(words.x), vec4<u32>(words.y), word_index == vec4<u32>(1u)),
    select(vec4<u32>(words.z), vec4<u32>(words.w), word_index == vec4<u32>(3u)),
    word_index >= vec4<u32>(2u),
  );
  let top = bitcast<vec4<i32>>(word) << (vec4<u32>(32u - CODE_BITS) - bit % 32u);
  return vec4<f32>(top >> vec4<u32>(32u - CODE_BITS));
}

// s ⊙ x̃ for input features first … first + 3 of vector `vector` (0 past n; indices are clamped so
// every read is in bounds).
fn scaled_input(first: u32, vector: u32) -> vec4<f32> {
  let index = vec4<u32>(first) + vec4<u32>(0u, 1u, 2u, 3u);
  let clamped = min(index, vec4<u32>(params.n - 1u));
  let s_base = params.column_scales_first;
  let x_base = params.x_first + vector * params.x_stride;
  let s = vec4<f32>(column_scales[s_base + clamped.x], column_scales[s_base + clamped.y], column_scales[s_base + clamped.z], column_scales[s_base + clamped.w]);
  let v = vec4<f32>(x[x_base + clamped.x], x[x_base + clamped.y], x[x_base + clamped.z], x[x_base + clamped.w]);
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
  let first_row_of_workgroup = (linear % params.row_groups) * ROWS_PER_WORKGROUP;
  let team = thread / LANES;
  let lane = thread % LANES;
  let first_row = first_row_of_workgroup + team * ROWS_PER_THREAD;

  // Rows and vectors past the end repeat the last one (in-bounds reads); their sums are not stored.
  let last_row = params.outputs - 1u;
  let base0 = params.codes_first + min(first_row, last_row) * params.row_vec4s;
  let base1 = params.codes_first + min(first_row + 1u, last_row) * params.row_vec4s;
  let base2 = params.codes_first + min(first_row + 2u, last_row) * params.row_vec4s;
  let base3 = params.codes_first + min(first_row + 3u, last_row) * params.row_vec4s;
  var acc: array<vec4<f32>, VECTOR_BLOCK>;
  for (var c = lane; c < params.row_vec4s; c = c + LANES) {
    let words0 = codes[base0 + c];
    let words1 = codes[base1 + c];
    let words2 = codes[base2 + c];
    let words3 = codes[base3 + c];
    for (var quad = 0u; quad < QUADS_PER_VEC4; quad = quad + 1u) {
      let first = c * CODES_PER_VEC4 + 4u * quad;
      let z0 = code_quad(words0, quad);
      let z1 = code_quad(words1, quad);
      let z2 = code_quad(words2, quad);
      let z3 = code_quad(words3, quad);
      for (var v = 0u; v < VECTOR_BLOCK; v = v + 1u) {
        let sx = scaled_input(first, min(first_vector + v, params.vectors - 1u));
        acc[v] = acc[v] + vec4<f32>(dot(z0, sx), dot(z1, sx), dot(z2, sx), dot(z3, sx));
      }
    }
  }

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
          y[params.y_first + vector * params.y_stride + row] = row_scales[params.row_scales_first + row] * sum[r];
        }
      }
    }
  }
}
