// y = Wᵀx with W quantized to INT4, symmetric, one fp16 scale per group of 32 entries along n: the
// int4 baseline, written the way WebLLM (q4f16_1) and llama.cpp (Q4_0) store and read it.
//
// Layout (src/gpu/kernels/int4Gemv.ts packs it): W is n × cols column-major and column j gives output
// y[j]. Each column is cut into G = ⌈n/32⌉ groups of 32 entries (the last one padded with level 0).
//   codes:  group g of column j is the vec4<u32> codes[codes_first + j·G + g]; entry e (0..31) of
//           the group is nibble e % 8 (bits 4·(e % 8) …) of word e / 8. A nibble holds level + 8,
//           level ∈ [−7, 7].
//   scales: column j owns S = ⌈G/2⌉ words from scales_first + j·S; the fp16 scale of group g is
//           half g % 2 (low half first) of word g / 2, decoded with the core builtin unpack2x16float
//           (no shader-f16 needed).
//   x:      32·G floats from vec4 index x_first, zero past n (so the padding contributes 0·0).
//   y:      y[y_first + j].
//
// Work split: a workgroup of 256 invocations handles COLUMNS = 4 output columns, LANES = 64
// invocations per column. Lane l takes groups l, l + 64, … of its column, so the 64 lanes of a column
// read 64 consecutive 16-byte code vectors (1 KB, coalesced) per step. Per group the lane forms
// Σ_e level_e·x_e with vec4 dot products (f32), multiplies by the scale once and adds it to its f32
// accumulator; the 64 lane sums are then added in a tree in workgroup memory.

const WORKGROUP_SIZE: u32 = 256u;
const LANES: u32 = 64u;   // invocations per output column
const COLUMNS: u32 = 4u;  // output columns per workgroup (WORKGROUP_SIZE / LANES)

// struct Int4GemvParams is declared once, in src/gpu/kernels/int4Gemv.ts (a UniformLayout), which
// generates its WGSL in front of this file.
@group(0) @binding(0) var<uniform> params: Int4GemvParams;
@group(0) @binding(1) var<storage, read> codes: array<vec4<u32>>;
@group(0) @binding(2) var<storage, read> scales: array<u32>;
@group(0) @binding(3) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;

var<workgroup> lane_sums: array<f32, WORKGROUP_SIZE>;

// The levels of the four nibbles starting at bit `first` of `word`, as floats.
fn levels(word: u32, first: u32) -> vec4<f32> {
  let nibbles = (vec4<u32>(word) >> vec4<u32>(first, first + 4u, first + 8u, first + 12u)) & vec4<u32>(15u);
  return vec4<f32>(nibbles) - vec4<f32>(8.0);
}

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
    let code_base = params.codes_first + column * params.groups;
    let scale_base = params.scales_first + column * params.scale_words;
    for (var g = lane; g < params.groups; g = g + LANES) {
      let words = codes[code_base + g];
      let scale = unpack2x16float(scales[scale_base + g / 2u])[g % 2u];
      let xb = params.x_first + 8u * g;
      var partial = dot(levels(words.x, 0u), x[xb]) + dot(levels(words.x, 16u), x[xb + 1u]);
      partial = partial + dot(levels(words.y, 0u), x[xb + 2u]) + dot(levels(words.y, 16u), x[xb + 3u]);
      partial = partial + dot(levels(words.z, 0u), x[xb + 4u]) + dot(levels(words.z, 16u), x[xb + 5u]);
      partial = partial + dot(levels(words.w, 0u), x[xb + 6u]) + dot(levels(words.w, 16u), x[xb + 7u]);
      acc = acc + scale * partial;
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
