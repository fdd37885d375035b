// The parts of the universal decode that read only `params` and the escape table: a column's dither key
// and the μ of a non-root escape. A library, compiled after shaders/counter_hash.wgsl and the header of
// src/gpu/kernels/universalWgsl.ts (U_DIM, STREAM_DITHER), in front of shaders/universal_decode.wgsl or a
// kernel that declares `params` (nonce_lo, nonce_hi, root_words, nonroot_count) and
// `escape_table: array<i32>` (the lattice's roots, then the non-root records of 1 + U_DIM i32: global
// block index, then μ, sorted by block index).

// The keys of the column's dither hash words (ditherWordKeys of columnKeys(nonce, column)): x for word
// 0, y for word 1 (E8), the second key or, for a matrix of one key (params.dither_keys = 1), the first.
fn dither_key(global_column: u32) -> vec2<u32> {
  let first = counter_hash(params.nonce_lo, STREAM_DITHER, params.nonce_hi, global_column);
  return vec2<u32>(first, select(first, counter_hash(params.nonce_lo, STREAM_SECOND_DITHER, params.nonce_hi, global_column), params.dither_keys == 2u));
}

// μ of the non-root escape of block `global_block` (global index j·blocksPerColumn + b; the block must
// have one): binary search of the records by block index.
fn nonroot_mu(global_block: u32) -> LatticePoint {
  var mu = LatticePoint();
  let stride = U_DIM + 1u;
  var low = 0u;
  var high = params.nonroot_count;
  while (low < high) {
    let middle = (low + high) / 2u;
    if (u32(escape_table[params.root_words + middle * stride]) < global_block) {
      low = middle + 1u;
    } else {
      high = middle;
    }
  }
  let record = params.root_words + min(low, max(params.nonroot_count, 1u) - 1u) * stride;
  for (var i = 0u; i < U_DIM; i = i + 1u) {
    mu[i] = escape_table[record + 1u + i];
  }
  return mu;
}
