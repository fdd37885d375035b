// The E8 residue repack on the GPU: an uploaded e8-q16-deterministic matrix (its packed codes, scale
// indices, norms, gains and means) → the residue form of src/quantize/e8Residues.ts (CPU twin
// `e8ResidueForm`, equal word for word): per block a residue word (nibble i = (central(ℓ_i) + 16) / 2,
// central(ℓ_i) the leader's coordinate mod 32 in [−16, 16)) and a side byte (bit 0 the parity, bits
// 1–3 the coordinate the parity fix moved ±32, bits 4–5 the scale index, bits 6–7 the fix: 01 +32,
// 11 −32), columns padded to whole quads with the origin's blocks; and ν_j·γ_j per column (then μ_j
// when centred). The body of shaders/quad_repack.wgsl (the bindings, the entry point and the column
// side), compiled after shaders/lattice_decode.wgsl (decode_leader, the run-time decoder: the repack
// runs once per upload) and the generated QuadRepackParams (`quadRepackShaderSource`,
// src/gpu/kernels/quadRepack.ts).

const ORIGIN_WORD: u32 = 0x88888888u;   // the origin's residues: nibbles (0 + 16) / 2

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

// Quad `quad` of local column `column`: its 4 residue words into quad_words, its side word into quad_sides.
fn repack_quad(column: u32, quad: u32) {
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
    quad_words[params.quad_first + 4u * (column * params.quads + quad) + t] = word;
    side_word = side_word | (side << (8u * t));
  }
  quad_sides[params.side_first + column * params.quads + quad] = side_word;
}
