// C = ÂᵀB̂ for two quantized matrices with 8-dimensional blocks (E8 or Z^8, any q ≤ 16), decoding the
// coset leaders on the fly: the GPU twin of the decoded path of src/product/matmulAT.ts.
//
// Compiled as shaders/dot_i8_packed.wgsl or shaders/dot_i8_plain.wgsl (fn dot_i8x8), then
// shaders/lattice_decode.wgsl (fn decode_leader), then this file (src/gpu/kernels/e8Matmul.ts).
//
// Operands (src/gpu/latticeOperand.ts): codes packed `code_bits` bits per value (E8 q = 16: one per
// word), scale indices `index_bits` bits per value; each column starts on a fresh word. Column side
// buffers hold norms at [0, cols), gains at [cols, 2·cols), means at [2·cols, 3·cols).
//
// Estimate: C[i, j] = common_scale · (ν_i γ_i) · (ν_j γ_j) · Σ_t k_a(t)·k_b(t)·⟨P_a(t), P_b(t)⟩
// (+ rows · μ_i · μ_j when centred), P the leader in point coordinates (E8: doubled, so the leader
// itself is P/2), common_scale = unit_a·unit_b / (s_a·s_b·N) from the host. Coordinates at or past
// keptLength are zeroed when decoding, as decodeRotated does.
//
// Tiling as shaders/d3_table_matmul.wgsl: 16 × 16 invocations, a 64 × 64 block of C, 4 × 4 per
// invocation, blocks walked in slices of SLICE. Each slice's leaders of the tile's 64 A and 64 B
// columns are decoded once (two per invocation per operand) into workgroup memory as 8 int8 lanes in
// a vec2<u32> (|P| ≤ 2q ≤ 32 fits int8), where each is used by 16 invocations through dot_i8x8.
//
// Accumulation: with integer_sums = 1 a slice's terms k_a·k_b·⟨P_a, P_b⟩ are summed exactly in i32
// (the host sets it only when SLICE · max k_a · max k_b · max|⟨P_a, P_b⟩| < 2^31) and each slice's sum
// is added to an f32 accumulator; otherwise every term is formed and added in f32.

const TILE: u32 = 64u;
const SLICE: u32 = 8u;
const THREADS_EDGE: u32 = 16u;
const PER_THREAD: u32 = 4u;
const THREADS: u32 = 256u;

struct E8MatmulParams {
  blocks: u32,          // blocks per column, both operands
  a_cols: u32,          // A columns in this dispatch (C rows)
  b_cols: u32,          // B columns in this dispatch (C columns)
  kept: u32,            // keptLength: rotated coordinates that carry data
  a_lattice: u32,       // LATTICE_E8 or LATTICE_Z8
  a_q: u32,
  a_code_first: u32,    // word offset of this dispatch's first A column in its codes binding
  a_code_words: u32,    // code words per column
  a_code_bits: u32,
  a_index_first: u32,
  a_index_words: u32,
  a_index_bits: u32,
  b_lattice: u32,
  b_q: u32,
  b_code_first: u32,
  b_code_words: u32,
  b_code_bits: u32,
  b_index_first: u32,
  b_index_words: u32,
  b_index_bits: u32,
  c_first: u32,         // element offset of this dispatch's C[0, 0] in the C binding
  c_stride: u32,        // elements between consecutive C columns
  a_has_gains: u32,
  b_has_gains: u32,
  has_means: u32,
  integer_sums: u32,
  common_scale: f32,    // unit_a · unit_b / (s_a · s_b · N)
  rows: f32,            // n, for the mean term
  a_multiples: array<vec4<i32>, 4>,
  b_multiples: array<vec4<i32>, 4>,
}

@group(0) @binding(0) var<uniform> params: E8MatmulParams;
@group(0) @binding(1) var<storage, read> a_codes: array<u32>;
@group(0) @binding(2) var<storage, read> a_indices: array<u32>;
@group(0) @binding(3) var<storage, read> a_side: array<f32>;
@group(0) @binding(4) var<storage, read> b_codes: array<u32>;
@group(0) @binding(5) var<storage, read> b_indices: array<u32>;
@group(0) @binding(6) var<storage, read> b_side: array<f32>;
@group(0) @binding(7) var<storage, read_write> c: array<f32>;

// [t][column]: the leader of block t0 + t as 8 int8 lanes, and its scale multiple.
var<workgroup> a_points: array<vec2<u32>, SLICE * TILE>;
var<workgroup> a_ks: array<i32, SLICE * TILE>;
var<workgroup> b_points: array<vec2<u32>, SLICE * TILE>;
var<workgroup> b_ks: array<i32, SLICE * TILE>;

// Value `slot` of a packed field: `bits` bits per value, floor(32 / bits) values per word.
fn packed_value(word: u32, slot: u32, bits: u32) -> u32 {
  return extractBits(word, slot * bits, bits);
}

// The 8 coordinates of a leader as int8 lanes; lanes whose rotated coordinate index
// block·8 + lane is ≥ kept are zero.
fn pack_leader(p: array<i32, 8>, block: u32) -> vec2<u32> {
  var words = vec2<u32>(0u, 0u);
  for (var lane = 0u; lane < 8u; lane = lane + 1u) {
    if (block * 8u + lane < params.kept) {
      let byte = bitcast<u32>(p[lane]) & 0xffu;
      if (lane < 4u) {
        words.x = words.x | (byte << (8u * lane));
      } else {
        words.y = words.y | (byte << (8u * (lane - 4u)));
      }
    }
  }
  return words;
}

fn a_multiple(index: u32) -> i32 {
  let i = min(index, 15u);
  return params.a_multiples[i >> 2u][i & 3u];
}

fn b_multiple(index: u32) -> i32 {
  let i = min(index, 15u);
  return params.b_multiples[i >> 2u][i & 3u];
}

@compute @workgroup_size(16, 16, 1)
fn main(
  @builtin(workgroup_id) tile: vec3<u32>,
  @builtin(local_invocation_id) local: vec3<u32>,
  @builtin(local_invocation_index) thread: u32,
) {
  let i0 = tile.x * TILE;
  let j0 = tile.y * TILE;
  let a_per_word = 32u / params.a_code_bits;
  let a_index_per_word = 32u / params.a_index_bits;
  let b_per_word = 32u / params.b_code_bits;
  let b_index_per_word = 32u / params.b_index_bits;
  var acc: array<f32, 16>; // [r · 4 + s], zero-initialized
  // This slice's exact sums, zeroed explicitly after each flush (a zero-initialized `var` declared
  // inside a loop was observed to keep its previous values on Dawn + lavapipe).
  var chunk: array<i32, 16>;

  for (var t0 = 0u; t0 < params.blocks; t0 = t0 + SLICE) {
    workgroupBarrier(); // the previous slice has been read by everyone
    // Decode the slice. Consecutive invocations take consecutive blocks of one column (adjacent
    // code words). Columns past the edge and blocks past the end decode as zero.
    for (var step = 0u; step < SLICE * TILE / THREADS; step = step + 1u) {
      let e = thread + step * THREADS;
      let column = e / SLICE;
      let t = e % SLICE;
      let block = t0 + t;
      var a_point = vec2<u32>(0u, 0u);
      var a_k = 0;
      if (block < params.blocks && i0 + column < params.a_cols) {
        let base = (i0 + column);
        let word = a_codes[params.a_code_first + base * params.a_code_words + block / a_per_word];
        let code = packed_value(word, block % a_per_word, params.a_code_bits);
        a_point = pack_leader(decode_leader(params.a_lattice, code, params.a_q), block);
        let index_word = a_indices[params.a_index_first + base * params.a_index_words + block / a_index_per_word];
        a_k = a_multiple(packed_value(index_word, block % a_index_per_word, params.a_index_bits));
      }
      a_points[t * TILE + column] = a_point;
      a_ks[t * TILE + column] = a_k;
      var b_point = vec2<u32>(0u, 0u);
      var b_k = 0;
      if (block < params.blocks && j0 + column < params.b_cols) {
        let base = (j0 + column);
        let word = b_codes[params.b_code_first + base * params.b_code_words + block / b_per_word];
        let code = packed_value(word, block % b_per_word, params.b_code_bits);
        b_point = pack_leader(decode_leader(params.b_lattice, code, params.b_q), block);
        let index_word = b_indices[params.b_index_first + base * params.b_index_words + block / b_index_per_word];
        b_k = b_multiple(packed_value(index_word, block % b_index_per_word, params.b_index_bits));
      }
      b_points[t * TILE + column] = b_point;
      b_ks[t * TILE + column] = b_k;
    }
    workgroupBarrier(); // the slice is decoded

    let count = min(SLICE, params.blocks - t0);
    var a_point: array<vec2<u32>, 4>;
    var b_point: array<vec2<u32>, 4>;
    if (params.integer_sums != 0u) {
      for (var t = 0u; t < count; t = t + 1u) {
        var a_k: array<i32, 4>;
        var b_k: array<i32, 4>;
        for (var r = 0u; r < PER_THREAD; r = r + 1u) {
          let slot_a = t * TILE + local.x + THREADS_EDGE * r;
          a_point[r] = a_points[slot_a];
          a_k[r] = a_ks[slot_a];
          let slot_b = t * TILE + local.y + THREADS_EDGE * r;
          b_point[r] = b_points[slot_b];
          b_k[r] = b_ks[slot_b];
        }
        for (var r = 0u; r < PER_THREAD; r = r + 1u) {
          for (var s = 0u; s < PER_THREAD; s = s + 1u) {
            let inner = dot_i8x8(a_point[r], b_point[s]);
            chunk[r * PER_THREAD + s] = chunk[r * PER_THREAD + s] + a_k[r] * b_k[s] * inner;
          }
        }
      }
      for (var rs = 0u; rs < PER_THREAD * PER_THREAD; rs = rs + 1u) {
        acc[rs] = acc[rs] + f32(chunk[rs]);
        chunk[rs] = 0;
      }
    } else {
      for (var t = 0u; t < count; t = t + 1u) {
        var a_k: array<f32, 4>;
        var b_k: array<f32, 4>;
        for (var r = 0u; r < PER_THREAD; r = r + 1u) {
          let slot_a = t * TILE + local.x + THREADS_EDGE * r;
          a_point[r] = a_points[slot_a];
          a_k[r] = f32(a_ks[slot_a]);
          let slot_b = t * TILE + local.y + THREADS_EDGE * r;
          b_point[r] = b_points[slot_b];
          b_k[r] = f32(b_ks[slot_b]);
        }
        for (var r = 0u; r < PER_THREAD; r = r + 1u) {
          for (var s = 0u; s < PER_THREAD; s = s + 1u) {
            let inner = f32(dot_i8x8(a_point[r], b_point[s]));
            acc[r * PER_THREAD + s] = acc[r * PER_THREAD + s] + (a_k[r] * b_k[s]) * inner;
          }
        }
      }
    }
  }

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
        var value = params.common_scale * a_scale * b_scale * acc[r * PER_THREAD + s];
        if (params.has_means != 0u) {
          value = value + params.rows * a_side[2u * params.a_cols + i] * b_side[2u * params.b_cols + j];
        }
        c[params.c_first + j * params.c_stride + i] = value;
      }
    }
  }
}
