// The weights of a quad GEMV whose quad is a vec4 of words and one side word (shaders/quad_gemv_loop.wgsl's
// `QuadWords` and `load_quad` for the E8 residue GEMV, shaders/e8_residue_gemv_i8.wgsl: residue words
// and side bytes; and the D3 quad GEMV, shaders/d3_quad_gemv_i8.wgsl: code words and scale indices).
// Compiled with the kernel, whose uniforms give quad_first (the vec4 of `quad_words` where the
// dispatch's first column starts) and side_first (the word of `quad_sides`).

@group(0) @binding(1) var<storage, read> quad_words: array<vec4<u32>>;   // a quad per vec4
@group(0) @binding(2) var<storage, read> quad_sides: array<u32>;         // a word per quad

struct QuadWords {
  words: vec4<u32>,
  side: u32,
}

// Quad k of local column `column`: loads only, at indices clamped to the bindings.
fn load_quad(column: u32, k: u32) -> QuadWords {
  let quad = column * params.quads + k;
  return QuadWords(quad_words[min(params.quad_first + quad, arrayLength(&quad_words) - 1u)], quad_sides[min(params.side_first + quad, arrayLength(&quad_sides) - 1u)]);
}
