// The scale of shaders/lattice_gemv_i8.wgsl for a scale index per block (d3-q6-deterministic): each
// block's 6k from its own index, the group's sum of 6k_b·⟨P_b, x̂_b⟩ in i32. Module: after
// lattice_gemv_i8.wgsl, with the generated `multiple6(index)` and `fill_multiples(thread)`
// (scaleMultiplesWgsl in src/gpu/kernels/latticeGemvI8.ts), `multiple_cubic` (shaders/multiple_cubic.wgsl)
// and GROUP_INDEX_BITS = 4·INDEX_BITS.

// Decodes the leaders (and, with a table of multiples, those) into workgroup memory, then waits for
// the whole workgroup. `multiple6(index)` and `fill_multiples(thread)` are generated
// (scaleMultiplesWgsl in latticeGemvI8.ts): the cubic below by default, or a lookup in a table of the
// 4 values filled from it, the kernel's former form, kept to compare the two on a GPU.
fn fill_tables(thread: u32) {
  fill_multiples(thread);
  fill_leader_table(thread);
  workgroupBarrier();
}


// Adds 6k·⟨P, x̂⟩ of one block (x̂ word `i` of the group) to the group's integer sums.
fn add_block(code: u32, index: u32, i: u32, replica: u32, xs: ptr<function, array<vec4<u32>, RHS_TILE>>, exact: ptr<function, array<i32, RHS_TILE>>) {
  let leader = leader_table[code * LEADER_COPIES + replica];
  let k6 = multiple6(index);
  for (var r = 0u; r < RHS_TILE; r = r + 1u) {
    (*exact)[r] = (*exact)[r] + k6 * dot_i8x4(leader, (*xs)[r][i]);
  }
}

// Group g's sum (code word `word`, scale indices in the low 8 bits of `index_bits`) per right-hand side.
fn group_total(word: u32, index_bits: u32, g: u32, column: GemvColumn, group_inputs: InputGroup) -> array<f32, RHS_TILE> {
  let replica = column.replica;
  var inputs = group_inputs;
  var exact = array<i32, RHS_TILE>();
  add_block(word & 0xffu, index_bits & INDEX_MASK, 0u, replica, &inputs.words, &exact);
  add_block((word >> 8u) & 0xffu, (index_bits >> INDEX_BITS) & INDEX_MASK, 1u, replica, &inputs.words, &exact);
  add_block((word >> 16u) & 0xffu, (index_bits >> (2u * INDEX_BITS)) & INDEX_MASK, 2u, replica, &inputs.words, &exact);
  add_block(word >> 24u, (index_bits >> (3u * INDEX_BITS)) & INDEX_MASK, 3u, replica, &inputs.words, &exact);
  var total = array<f32, RHS_TILE>();
  for (var r = 0u; r < RHS_TILE; r = r + 1u) {
    total[r] = f32(exact[r]) * inputs.scales[r];
  }
  return total;
}
