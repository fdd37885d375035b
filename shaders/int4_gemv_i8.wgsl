// y = Wᵀx̂ with W in the int4 g32 layout of shaders/int4_gemv.wgsl and x rounded to int8 per group of
// 32 entries (x̂, one f32 scale per group): the int4 baseline read the way llama.cpp's WebGPU backend
// reads Q4_0 for a decode step (x quantized to 8 bits per block of 32, then 4 packed 8-bit dot
// products per block), so that the int8-input lattice GEMVs are compared with an int4 kernel that
// takes the same shortcut. Compiled after shaders/int4_gemv_common.wgsl (the work split, the loop
// over code words, bindings 0–2 and 4) and shaders/dot_i8_packed.wgsl or dot_i8_plain.wgsl
// (dot_i8x4).
//
// x̂ is the layout of shaders/e8_inputs_i8.wgsl (written by `dispatchE8InputsI8` for an unrotated
// operand of n rows): per group g, 12 words from x_first + 12·g: for each block b of 8 entries (b =
// 0..3), the levels of its even entries (0, 2, 4, 6) packed as i8 in word 2b, of its odd entries in
// word 2b + 1, then the blocks' offsets 16·Σx̂ (i32) in words 8 … 11; the group's scale s_g (f32
// bits) at x_scales_first + g. Word w of group g of the codes holds entries 8w … 8w + 7 of the group,
// entry e in nibble e (level + 8): the same 8 entries as block w of x̂, and its even nibbles,
// word & 0x0F0F0F0F, are the bytes (level + 8) of the even entries in the order x̂'s word 2w packs
// them (the odd nibbles likewise after a shift by 4). So per code word:
//   Σ level·x̂ = dot(even nibbles, x̂ even) + dot(odd nibbles, x̂ odd) − 8·Σx̂,
// an exact i32 (|Σ| ≤ 8·8·127 = 8128, level −8 of Q4_0 blocks included), with 8·Σx̂ = offset / 2
// read once per word for the 8 columns. The word's term is (f32(Σ)·scale)·s_g: two roundings (f32(Σ)
// is exact), and |f32(Σ)·scale| ≤ 8128·65504 cannot overflow, so a term overflows only where the
// exact product does. A group of x with a non-finite entry has a
// NaN s_g (shaders/int8_group.wgsl), so the columns it enters are NaN.
//
// Per code word and column: a load of the code and one of the scale word, 3 bit operations, 2 packed
// dot products, a subtraction, a conversion, the scale's select and unpack and 2 multiplies and an
// add: about 13 instructions per 4 code bytes, where the f32-input kernel takes ≈ 25 (magic-number
// nibble decode and 8 multiply-adds).

// x̂: levels and offsets per group, then the scales' f32 bits (one binding).
@group(0) @binding(3) var<storage, read> x_inputs: array<u32>;

// What code word i's entries of x̂ contribute: the even and odd entries' levels (packed i8), 8·Σx̂
// over the word's 8 entries, and the group's scale.
struct WordInputs {
  even: u32,
  odd: u32,
  zero_level_sum: i32,
  scale: f32,
}

fn word_inputs(i: u32) -> WordInputs {
  let g = i >> 2u;
  let levels = params.x_first + 12u * g + 2u * (i & 3u);
  let offset = bitcast<i32>(x_inputs[params.x_first + 12u * g + 8u + (i & 3u)]);
  return WordInputs(x_inputs[levels], x_inputs[levels + 1u], offset >> 1u, bitcast<f32>(x_inputs[params.x_scales_first + g]));
}

// scale·s_g·Σ level·x̂ over one code word (8 entries) of one column.
fn word_dot(word: u32, scale_word: u32, odd: bool, inputs: WordInputs) -> f32 {
  let even_nibbles = word & 0x0F0F0F0Fu;
  let odd_nibbles = (word >> 4u) & 0x0F0F0F0Fu;
  let level_dot = dot_i8x4(even_nibbles, inputs.even) + dot_i8x4(odd_nibbles, inputs.odd) - inputs.zero_level_sum;
  return (f32(level_dot) * group_scale(scale_word, odd)) * inputs.scale;
}
