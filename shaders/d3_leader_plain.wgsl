// How the D3 table product's inner loop holds a leader in the leaders layout
// (shaders/d3_table_matmul.wgsl) in core WGSL: sign-extended once per operand into a vec3 (3 field
// extracts), so that each of the 16 pairs it meets costs 3 multiply-adds. The fallback of
// shaders/d3_leader_packed.wgsl.

alias Leader = vec3<i32>;

// The leader of a slice word (leaders layout: the packed leader, its 4th byte 0).
fn slice_leader(word: u32) -> Leader {
  let w = bitcast<i32>(word);
  return vec3<i32>(extractBits(w, 0u, 8u), extractBits(w, 8u, 8u), extractBits(w, 16u, 8u));
}

fn leader_dot(a: Leader, b: Leader) -> i32 {
  return dot(a, b);
}
