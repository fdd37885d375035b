// Weight-only product Y = ŴᵀX for a lattice-quantized W (n × cols; D3, E8 or Z^8) and f32 right-hand
// sides X (n × rhs): the LLM decode step (rhs = 1, GEMV) and its batched form. CPU twin:
// dequantize(Ŵ)ᵀ·X. Compiled as `const RHS_TILE: u32` (right-hand sides per workgroup) and
// `const LANES: u32` (invocations per W column) — 1 and 32 for a vector, 8 and 8 for a matrix —
// then shaders/lattice_decode.wgsl, the GemvParams struct, then this file
// (src/gpu/kernels/latticeGemv.ts).
//
// Math: Ŵ's column j is R⁻¹ŵ_j + μ_j·1 with ŵ_j its rotated-domain decode and R the randomized
// Hadamard rotation (orthogonal), so ⟨Ŵ_j, x⟩ = ⟨ŵ_j, R·x⟩ + μ_j·Σx. The kernel reads x̃ = R·x (N
// entries per right-hand side, rotated by the caller or by the host with the same seed) and computes
//   Y[j, r] = (ν_j·γ_j) · column_unit · Σ_blocks k·⟨P, x̃_r,block⟩  (+ μ_j · Σ_k x_r[k] when centred)
// with column_unit = unit / (pointScale · √N) and P the leader in point coordinates; x̃ entries at or
// past keptLength count as zero. Accumulation in f32.
//
// Layout: a workgroup of 256 invocations owns COLUMNS = 256 / LANES columns of W and RHS_TILE
// right-hand sides; LANES consecutive invocations share one column and read its code words lane by
// lane, so they read LANES consecutive words at a time (128 bytes for a vector): every code word is
// read once per group of RHS_TILE right-hand sides. With several right-hand sides, more columns per
// workgroup share each staged chunk of x̃.
// x̃ is walked in chunks staged in workgroup memory (chunk_entries per right-hand side, a whole number
// of code words, at most X_CHUNK / RHS_TILE). D3, q = 6 leaders come from the 216-leader table,
// unpacked to f32 in workgroup memory once per workgroup; other codes are decoded with
// lattice_decode.wgsl. A lane reads a scale-index word once per run of blocks that share it. The
// lanes' partial sums are then added in workgroup memory.
//
// Entry point `column_sums` (one workgroup per right-hand side) computes Σ_k x_r[k] for the mean
// term into `sums`; the host dispatches it before `main` only when W is centred.

const THREADS: u32 = 256u;
const COLUMNS: u32 = THREADS / LANES; // W columns per workgroup
const X_CHUNK: u32 = 3072u;     // f32 staged per chunk, all right-hand sides together (12 KB)
const LEADER_WORDS: u32 = 216u; // the D3 q = 6 leader table (3 int8 per word)

// struct GemvParams is declared once, in src/gpu/kernels/latticeGemv.ts (a UniformLayout), which
// generates its WGSL in front of this file.
@group(0) @binding(0) var<uniform> params: GemvParams;
@group(0) @binding(1) var<storage, read> leader_table: array<u32>;
@group(0) @binding(2) var<storage, read> codes: array<u32>;
@group(0) @binding(3) var<storage, read> indices: array<u32>;
@group(0) @binding(4) var<storage, read> side: array<f32>;
@group(0) @binding(5) var<storage, read> x_rotated: array<f32>;
@group(0) @binding(6) var<storage, read> x: array<f32>;
@group(0) @binding(7) var<storage, read_write> sums: array<f32>;
@group(0) @binding(8) var<storage, read_write> y: array<f32>;

var<workgroup> staged: array<f32, X_CHUNK>;
var<workgroup> leaders: array<vec4<f32>, LEADER_WORDS>; // D3 q = 6 leaders as f32 (w unused): 3.4 KB

// Σ_k x_r[k] for right-hand side r = workgroup x, in a fixed order: strided per invocation, then a tree.
@compute @workgroup_size(256, 1, 1)
fn column_sums(@builtin(workgroup_id) group: vec3<u32>, @builtin(local_invocation_index) thread: u32) {
  let r = group.x;
  var partial = 0.0;
  for (var k = thread; k < params.rows; k = k + THREADS) {
    partial = partial + x[params.x_first + r * params.rows + k];
  }
  staged[thread] = partial;
  for (var half = THREADS / 2u; half > 0u; half = half / 2u) {
    workgroupBarrier();
    if (thread < half) {
      staged[thread] = staged[thread] + staged[thread + half];
    }
  }
  if (thread == 0u) {
    sums[r] = staged[0];
  }
}

fn multiple(index: u32) -> f32 {
  let i = min(index, 15u);
  return f32(params.multiples[i >> 2u][i & 3u]);
}

// Scale multiple of block `block` of column j, reading the index word only when the block leaves the
// cached one (`cached` holds [word index, word]).
fn block_multiple(j: u32, block: u32, index_per_word: u32, cached: ptr<function, vec2<u32>>) -> f32 {
  let word_index = block / index_per_word;
  if (word_index != (*cached).x) {
    *cached = vec2<u32>(word_index, indices[params.index_first + j * params.index_words + word_index]);
  }
  return multiple(extractBits((*cached).y, (block % index_per_word) * params.index_bits, params.index_bits));
}

@compute @workgroup_size(256, 1, 1)
fn main(@builtin(workgroup_id) group: vec3<u32>, @builtin(local_invocation_index) thread: u32) {
  if (params.use_table != 0u) {
    for (var w = thread; w < LEADER_WORDS; w = w + THREADS) {
      let word = bitcast<i32>(leader_table[w]);
      leaders[w] = vec4<f32>(f32(extractBits(word, 0u, 8u)), f32(extractBits(word, 8u, 8u)), f32(extractBits(word, 16u, 8u)), 0.0);
    }
  }
  let local_column = thread / LANES;
  let lane = thread % LANES;
  let j = group.x * COLUMNS + local_column;
  let r0 = group.y * RHS_TILE;
  let per_word = 32u / params.code_bits;
  let index_per_word = 32u / params.index_bits;
  let entries_per_word = per_word * params.dim;
  var acc: array<f32, RHS_TILE>; // zero-initialized

  for (var w0 = 0u; w0 < params.code_words; w0 = w0 + params.chunk_words) {
    workgroupBarrier(); // everyone is done with the previous chunk (and, the first time, the table is in place)
    let e0 = w0 * entries_per_word;
    for (var e = thread; e < RHS_TILE * params.chunk_entries; e = e + THREADS) {
      let r = e / params.chunk_entries;
      let k = e0 + e % params.chunk_entries;
      var value = 0.0;
      if (r0 + r < params.rhs && k < params.kept) {
        value = x_rotated[params.x_rotated_first + (r0 + r) * params.length + k];
      }
      staged[e] = value;
    }
    workgroupBarrier();

    if (j < params.cols) {
      let words_here = min(params.chunk_words, params.code_words - w0);
      var cached_index = vec2<u32>(0xffffffffu, 0u);
      for (var w = lane; w < words_here; w = w + LANES) {
        let word_index = w0 + w;
        let word = codes[params.code_first + j * params.code_words + word_index];
        let first_block = word_index * per_word;
        let base = w * entries_per_word; // this word's first entry in the staged chunk
        if (params.use_table != 0u) {
          // D3, q = 6: 4 codes of 8 bits per word, leaders from the table.
          for (var slot = 0u; slot < 4u && first_block + slot < params.blocks; slot = slot + 1u) {
            let k = block_multiple(j, first_block + slot, index_per_word, &cached_index);
            let p = leaders[extractBits(word, 8u * slot, 8u)].xyz;
            let at = base + 3u * slot;
            for (var r = 0u; r < RHS_TILE; r = r + 1u) {
              let xs = r * params.chunk_entries + at;
              acc[r] = acc[r] + k * dot(p, vec3<f32>(staged[xs], staged[xs + 1u], staged[xs + 2u]));
            }
          }
        } else if (params.dim == 8u) {
          // E8 or Z^8: decoded here.
          for (var slot = 0u; slot < per_word && first_block + slot < params.blocks; slot = slot + 1u) {
            let k = block_multiple(j, first_block + slot, index_per_word, &cached_index);
            let p = decode_leader(params.lattice, extractBits(word, slot * params.code_bits, params.code_bits), params.q);
            let lo = vec4<f32>(f32(p[0]), f32(p[1]), f32(p[2]), f32(p[3]));
            let hi = vec4<f32>(f32(p[4]), f32(p[5]), f32(p[6]), f32(p[7]));
            let at = base + 8u * slot;
            for (var r = 0u; r < RHS_TILE; r = r + 1u) {
              let xs = r * params.chunk_entries + at;
              let x_lo = vec4<f32>(staged[xs], staged[xs + 1u], staged[xs + 2u], staged[xs + 3u]);
              let x_hi = vec4<f32>(staged[xs + 4u], staged[xs + 5u], staged[xs + 6u], staged[xs + 7u]);
              acc[r] = acc[r] + k * (dot(lo, x_lo) + dot(hi, x_hi));
            }
          }
        } else {
          // D3 with another q: decoded here.
          for (var slot = 0u; slot < per_word && first_block + slot < params.blocks; slot = slot + 1u) {
            let k = block_multiple(j, first_block + slot, index_per_word, &cached_index);
            let v = decode_leader(LATTICE_D3, extractBits(word, slot * params.code_bits, params.code_bits), params.q);
            let p = vec3<f32>(f32(v[0]), f32(v[1]), f32(v[2]));
            let at = base + 3u * slot;
            for (var r = 0u; r < RHS_TILE; r = r + 1u) {
              let xs = r * params.chunk_entries + at;
              acc[r] = acc[r] + k * dot(p, vec3<f32>(staged[xs], staged[xs + 1u], staged[xs + 2u]));
            }
          }
        }
      }
    }
  }

  // Add the LANES lanes of each column: staged[thread · RHS_TILE + r] (256 · RHS_TILE ≤ X_CHUNK).
  workgroupBarrier();
  for (var r = 0u; r < RHS_TILE; r = r + 1u) {
    staged[thread * RHS_TILE + r] = acc[r];
  }
  workgroupBarrier();
  if (thread < COLUMNS * RHS_TILE) {
    let c = thread / RHS_TILE;
    let r = thread % RHS_TILE;
    let column = group.x * COLUMNS + c;
    if (column < params.cols && r0 + r < params.rhs) {
      var total = 0.0;
      for (var l = 0u; l < LANES; l = l + 1u) {
        total = total + staged[(c * LANES + l) * RHS_TILE + r];
      }
      var scale = side[column];
      if (params.has_gains != 0u) {
        scale = scale * side[params.cols + column];
      }
      var value = scale * params.column_unit * total;
      if (params.has_means != 0u) {
        value = value + side[2u * params.cols + column] * sums[r0 + r];
      }
      y[params.y_first + (r0 + r) * params.y_stride + column] = value;
    }
  }
}
