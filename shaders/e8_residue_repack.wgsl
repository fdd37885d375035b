// The E8 residue repack on the GPU: an uploaded e8-q16-deterministic matrix (its packed codes, scale
// indices, norms, gains and means) → the residue form of src/quantize/e8Residues.ts (CPU twin
// `e8ResidueForm`, equal word for word): per block a residue word (nibble i = (central(ℓ_i) + 16) / 2,
// central(ℓ_i) the leader's coordinate mod 32 in [−16, 16)) and a side byte (bit 0 the parity, bits
// 1–3 the coordinate the parity fix moved ±32, bits 4–5 the scale index, bits 6–7 the fix: 01 +32,
// 11 −32), columns padded to whole quads with the origin's blocks; and ν_j·γ_j per column (then μ_j
// when centred). Compiled after shaders/lattice_decode.wgsl (decode_leader, the run-time decoder: the
// repack runs once per upload) and the generated E8ResidueRepackParams. One invocation per (column,
// quad) of a range of columns (the host splits the matrix into ranges whose fields fit a binding).

const THREADS: u32 = 256u;
const ORIGIN_WORD: u32 = 0x88888888u;   // the origin's residues: nibbles (0 + 16) / 2

@group(0) @binding(0) var<uniform> params: E8ResidueRepackParams;
@group(0) @binding(1) var<storage, read> codes: array<u32>;
@group(0) @binding(2) var<storage, read> indices: array<u32>;
@group(0) @binding(3) var<storage, read> column_side: array<f32>;   // the range's norms, then gains and means (cols apart)
@group(0) @binding(4) var<storage, read_write> residues: array<u32>;
@group(0) @binding(5) var<storage, read_write> sides: array<u32>;
@group(0) @binding(6) var<storage, read_write> out_side: array<f32>;  // ν_j·γ_j of every column, then μ_j

// The residue word and the side byte (scale index 0) of a leader of E8 with q = 16.
fn residue_of(leader: LatticePoint) -> vec2<u32> {
  var word = 0u;
  var side = u32(leader[0]) & 1u;
  for (var i = 0u; i < 8u; i = i + 1u) {
    let l = leader[i];
    let central = ((l + 16) & 31) - 16;   // l mod 32 in [−16, 16) (two's complement: & 31 is mod 32)
    word = word | (u32((central + 16) >> 1u) << (4u * i));
    let fix = l - central;
    if (fix != 0) {
      side = side | (i << 1u) | select(0xc0u, 0x40u, fix > 0);
    }
  }
  return vec2<u32>(word, side);
}

@compute @workgroup_size(256, 1, 1)
fn main(
  @builtin(workgroup_id) group: vec3<u32>,
  @builtin(num_workgroups) groups: vec3<u32>,
  @builtin(local_invocation_index) thread: u32,
) {
  let invocation = (group.y * groups.x + group.x) * THREADS + thread;
  if (invocation >= params.cols * params.quads) {
    return;
  }
  let column = invocation / params.quads;
  let quad = invocation % params.quads;
  let index_per_word = 32u / params.index_bits;
  var side_word = 0u;
  for (var t = 0u; t < 4u; t = t + 1u) {
    let block = 4u * quad + t;
    var word = ORIGIN_WORD;
    var side = 0u;
    if (block < params.blocks) {
      let code = codes[params.code_first + column * params.code_words + block];   // 32-bit codes: one per word
      let index_word = indices[params.index_first + column * params.index_words + block / index_per_word];
      let index = extractBits(index_word, (block % index_per_word) * params.index_bits, params.index_bits);
      let r = residue_of(decode_leader(LATTICE_E8, code, 16u));
      word = r.x;
      side = r.y | (index << 4u);
    }
    residues[params.residue_first + 4u * (column * params.quads + quad) + t] = word;
    side_word = side_word | (side << (8u * t));
  }
  sides[params.side_first + column * params.quads + quad] = side_word;
  if (quad == 0u) {
    var scale = column_side[column];
    if (params.has_gains != 0u) {
      scale = scale * column_side[params.cols + column];
    }
    out_side[params.column_first + column] = scale;
    if (params.has_means != 0u) {
      out_side[params.means_first + column] = column_side[2u * params.cols + column];
    }
  }
}
