// How the D3 table product's inner loop holds a leader in the leaders layout
// (shaders/d3_table_matmul.wgsl) where WGSL has packed_4x8_integer_dot_product: the packed word itself
// (3 int8 lanes, the 4th 0), and the pair's table entry ⟨leader(a), leader(b)⟩ as one dot4I8Packed.
// shaders/d3_leader_plain.wgsl is the same functions in core WGSL.

alias Leader = u32;

// The leader of a slice word (leaders layout: the packed leader, its 4th byte 0).
fn slice_leader(word: u32) -> Leader {
  return word;
}

fn leader_dot(a: Leader, b: Leader) -> i32 {
  return dot4I8Packed(a, b);
}
