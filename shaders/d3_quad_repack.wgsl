// The D3 quad layout on the GPU: an uploaded (or GPU-quantized) d3-q6-deterministic matrix → its codes
// in whole quads per column (4 code words of 4 codes, 16 blocks; the blocks past the column's are
// code 0, the origin), one word of the quad's 16 scale indices at 2 bits each (block t of the quad at
// bits 2t, whatever the matrix's own index width, 1 or 2), and ν_j·γ_j per column (then μ_j when
// centred): what shaders/d3_quad_gemv_i8.wgsl reads. CPU twin: `d3QuadForm`
// (src/gpu/kernels/d3QuadGemvI8.ts), equal word for word. The body of shaders/quad_repack.wgsl (the
// bindings, the entry point and the column side), compiled after the generated QuadRepackParams
// (`quadRepackShaderSource`, src/gpu/kernels/quadRepack.ts).

// Quad `quad` of local column `column`: its 4 code words into quad_words, its index word into quad_sides.
fn repack_quad(column: u32, quad: u32) {
  // The quad's 4 code words: a word past the column's is 0, and so are the bytes of its last word past
  // its blocks (whatever an uploaded matrix holds there), as in d3QuadForm.
  for (var t = 0u; t < 4u; t = t + 1u) {
    let word = 4u * quad + t;
    var value = 0u;
    if (word < params.code_words) {
      let kept = select(0u, params.blocks - 4u * word, params.blocks > 4u * word);   // the column's blocks in this word
      value = codes[params.code_first + column * params.code_words + word] & select(0xffffffffu, (1u << (8u * kept)) - 1u, kept < 4u);
    }
    quad_words[params.quad_first + 4u * (column * params.quads + quad) + t] = value;
  }
  let index_per_word = 32u / params.index_bits;
  var index_word = 0u;
  for (var t = 0u; t < 16u; t = t + 1u) {
    let block = 16u * quad + t;
    if (block < params.blocks) {
      let source = indices[params.index_first + column * params.index_words + block / index_per_word];
      index_word = index_word | (extractBits(source, (block % index_per_word) * params.index_bits, params.index_bits) << (2u * t));
    }
  }
  quad_sides[params.side_first + column * params.quads + quad] = index_word;
}
