// Decoding of the universal (dithered) lattice code: the WGSL twin of UniversalBlockDecoder and
// blockDither (src/quantize/universalCode.ts) on the GPU form of src/format/universalLayout.ts.
//
// A library: compiled after shaders/lattice_decode.wgsl (integer rules), shaders/counter_hash.wgsl, the
// generated header of src/gpu/kernels/universalWgsl.ts (U_DIM, U_RULE, u_lift, block_dither, …) and
// shaders/universal_escape_table.wgsl (dither_key, nonroot_mu), in front of a kernel that declares
//   - `params` with the members of UNIVERSAL_OPERAND_MEMBERS (universalWgsl.ts),
//   - `codes`, `escape_bits`, `escape_starts`, `escape_ids` (array<u32>) and `escape_table` (array<i32>),
// under those names (core WGSL has no storage-pointer parameters, so the library names the bindings).

// `bits` bits (1…32) of the code stream from bit `bit` of the stream starting at word `base`.
fn read_code_bits(base: u32, bit: u32, bits: u32) -> u32 {
  let word = base + (bit >> 5u);
  let shift = bit & 31u;
  var value = codes[word] >> shift;
  if (shift + bits > 32u) {
    value = value | (codes[word + 1u] << (32u - shift));
  }
  return select((1u << bits) - 1u, 0xffffffffu, bits == 32u) & value;
}

// The code of block `block` of local column `column`: (low 32 bits, high bits).
fn universal_code(column: u32, block: u32) -> vec2<u32> {
  let base = params.code_first + column * params.code_words;
  let bit = block * params.code_bits;
  let low = read_code_bits(base, bit, min(params.code_bits, 32u));
  var high = 0u;
  if (params.code_bits > 32u) {
    high = read_code_bits(base, bit + 32u, params.code_bits - 32u);
  }
  return vec2<u32>(low, high);
}

// The U_DIM base-q digits of the code (high·2^32 + low), least significant first. Codes wider than 32
// bits are divided by q in 16-bit limbs (q ≤ 64, so every partial remainder shifted by 16 fits 32 bits).
fn universal_digits(code: vec2<u32>) -> LatticePoint {
  let q = params.q;
  if (code.y == 0u) {
    return code_digits(code.x, q, U_DIM);
  }
  var digits = LatticePoint();
  var high = code.y;
  var low = code.x;
  for (var i = 0u; i < U_DIM; i = i + 1u) {
    let high_quotient = high / q;
    let r1 = high - high_quotient * q;
    let t1 = (r1 << 16u) | (low >> 16u);
    let q1 = t1 / q;
    let r2 = t1 - q1 * q;
    let t2 = (r2 << 16u) | (low & 0xffffu);
    let q2 = t2 / q;
    digits[i] = i32(t2 - q2 * q);
    high = high_quotient;
    low = (q1 << 16u) | q2;
  }
  return digits;
}

// μ of escape slot `slot` of the block with global index `global_block` (point coordinates): a root
// from the table, or a non-root record found by binary search on the block index.
fn escape_mu(slot: u32, global_block: u32) -> LatticePoint {
  var mu = LatticePoint();
  let id = (escape_ids[slot >> 2u] >> ((slot & 3u) * 8u)) & 255u;
  if (id > 0u) {
    let row = (id - 1u) * U_DIM;
    for (var i = 0u; i < U_DIM; i = i + 1u) {
      mu[i] = escape_table[row + i];
    }
    return mu;
  }
  return nonroot_mu(global_block);
}

// λ = leader(code) + q·μ of block `block` of local column `column` (point coordinates).
fn universal_point(column: u32, block: u32) -> LatticePoint {
  let digits = universal_digits(universal_code(column, block));
  var point = coset_leader(u_lift(digits), params.q, U_RULE, U_DIM);
  let word_index = column * params.bit_words + (block >> 5u);
  let bits = escape_bits[params.bits_first + word_index];
  let bit = block & 31u;
  if (((bits >> bit) & 1u) != 0u) {
    let slot = escape_starts[params.starts_first + word_index] + countOneBits(bits & ((1u << bit) - 1u));
    let global_block = (params.column_offset + column) * params.blocks + block;
    let mu = escape_mu(slot, global_block);
    let q = i32(params.q);
    for (var i = 0u; i < U_DIM; i = i + 1u) {
      point[i] = point[i] + q * mu[i];
    }
  }
  return point;
}
