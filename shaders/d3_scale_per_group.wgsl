// The scale of shaders/lattice_gemv_i8.wgsl for one scale index per group of 4 blocks (12 entries, one
// code word): the group-scaled D3 prototype (src/gpu/kernels/d3GroupScaledGemvI8.ts, `D3GroupScaledMatrix`
// in src/quantize/d3GroupScale.ts), which bench/README.md ("D3: one scale index per group of 4
// blocks?") weighs against d3-q6-deterministic. Module: after lattice_gemv_i8.wgsl, with
// GROUP_INDEX_BITS = INDEX_BITS (4: up to 16 multiples, 8 groups per index word).
//
// Per group: Σ_b ⟨P_b, x̂_b⟩ over its 4 blocks in i32 (|·| ≤ 4·3·6·127 = 9144), times the group's k
// (the host refuses k with 9144·k ≥ 2^31), converted to f32 (exact below 2^24, else rounded once) and
// scaled by s_g. So a block costs its code field, its leader's address, Tint's clamp, the lookup and
// one packed dot product added to the sum (≈ 6 instructions, against ≈ 12 with its own index field,
// the cubic and the multiply: shaders/lattice_gemv_i8.wgsl), and the group its index field, the
// multiple's lookup (a 16-entry workgroup table) and one integer multiply, ≈ 1 per block beside the
// streaming loop's ≈ 3 per block that both forms pay: ≈ 9 per block against ≈ 15 (bench/README.md,
// "D3: one scale index per group of 4 blocks?").

// k of each scale index (0 past the multiples), filled from the uniform once per workgroup: an index
// varies across the lanes of a warp, which a uniform array would serve one value at a time.
var<workgroup> group_multiples: array<i32, 16>;

// Decodes the leaders and copies the multiples into workgroup memory, then waits for the whole workgroup.
fn fill_tables(thread: u32) {
  if (thread < 16u) {
    group_multiples[thread] = params.group_multiples[thread / 4u][thread % 4u];
  }
  fill_leader_table(thread);
  workgroupBarrier();
}

// Group g's sum (code word `word`, its scale index in the low INDEX_BITS of `index_bits`) per right-hand side.
fn group_total(word: u32, index_bits: u32, g: u32, column: GemvColumn, inputs: InputGroup) -> array<f32, RHS_TILE> {
  let base = column.replica;
  let l0 = leader_table[(word & 0xffu) * LEADER_COPIES + base];
  let l1 = leader_table[((word >> 8u) & 0xffu) * LEADER_COPIES + base];
  let l2 = leader_table[((word >> 16u) & 0xffu) * LEADER_COPIES + base];
  let l3 = leader_table[(word >> 24u) * LEADER_COPIES + base];
  let k = group_multiples[index_bits & INDEX_MASK];
  var total = array<f32, RHS_TILE>();
  for (var r = 0u; r < RHS_TILE; r = r + 1u) {
    let xs = inputs.words[r];
    let exact = dot_i8x4(l0, xs[0]) + dot_i8x4(l1, xs[1]) + dot_i8x4(l2, xs[2]) + dot_i8x4(l3, xs[3]);
    total[r] = f32(exact * k) * inputs.scales[r];
  }
  return total;
}
