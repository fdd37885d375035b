// The E8 leader decode of the GEMV kernels for q ≤ 16 (src/gpu/kernels/gemvDecode.ts appends this
// file after shaders/gemv_decode.wgsl and a header with `gemv_digit_bytes` and `gemv_lane_split`,
// and makes `gemv_leader` call gemv_leader_e8_bytes). The cost it replaces: gemv_leader_e8 works
// coordinate by coordinate (a split by den, the running sums and both candidates' worst coordinate
// with selects, then the leader), ≈ 25 instructions per coordinate; here the same steps run on 4
// coordinates per instruction, the worst coordinates as 8 extracts and 14 min/max of byte keys.
//
// gemv_leader_e8 for q ≤ 16 on the 8 coordinates at once, as bytes of two words (SIMD within a
// register): `digits` holds the digits as bytes, x the even ones (u0, u2, u4, u6) and y the odd ones
// (u1, u3, u5, u7), so lane j of the even word is coordinate 2j and lane j of the odd word 2j + 1.
// Equal to gemv_leader_e8(lift_e8(digits)) leader for leader, ties included: the same rule and the
// same algebra, per byte lane (test/gpu/latticeDequantize.test.ts compares both with
// VoronoiCode.decode). No lane carries into or borrows from its neighbour:
//   - v = P + den, the lifted coordinate plus den: in [2, 7q − 5] ⊂ [0, 128) (−2(q − 1) ≤ P ≤ 5(q − 1)),
//     formed by adds of non-negative lanes and one subtraction smaller than every lane;
//   - (t + 1, r) = `gemv_lane_split(v)` (generated: shifts for den a power of two, else three
//     compares, t + 1 ≤ 3), up = [r ≥ q] by a compare (bit 7 of r + 128 − q);
//     Σt ≡ Σ(t + 1) and Σ(t + up) (mod 2) are the parities of byte sums of the lanes' low bits;
//   - m = up ? den − r : r ≤ q, and M = Σ m from one multiply (the byte sums stay below 256);
//   - the worst coordinates: the largest (m·8 + i) ^ 7 = m·8 + (7 − i) (a's: largest m, the first of
//     equal ones) and the smallest m·8 + i (b's), bytes below 256 for m ≤ 16;
//   - the leader as bytes biased by 128: r − den·up (a's e1) or r − q (b's h), in [−q, q); the fix
//     ±den (towards the error: +den for e < 0, −den else, as gemv_fix) added to its lane stays in
//     [−2q, 2q] and so in the byte.
fn gemv_leader_e8_bytes(digits: vec2<u32>) -> LatticePoint {
  let lanes = 0x01010101u;
  let den = u32(G_DEN);
  let q = u32(G_Q);
  let even = digits.x;
  let odd_low = digits.y & 0x00ffffffu;            // u1, u3, u5 (lane 3: u7 cleared)
  let base = (digits.y >> 24u) * lanes + den * lanes;
  // P0 = 4u0 − 2u1 + u7, P2j = 2u2j − 2u2j+1 + u7 (j = 1, 2), P6 = 2u6 + u7;
  // P2j+1 = 2u2j+1 − 2u2j+2 + u7 (j = 0, 1, 2), P7 = u7.
  let split_even = gemv_lane_split((even << 1u) + ((even & 0xffu) << 1u) + base - (odd_low << 1u));
  let split_odd = gemv_lane_split((odd_low << 1u) + base - ((even >> 8u) << 1u));
  let r_even = split_even.y;
  let r_odd = split_odd.y;
  let up_even = ((r_even + (128u - q) * lanes) >> 7u) & lanes;
  let up_odd = ((r_odd + (128u - q) * lanes) >> 7u) & lanes;
  let floors = split_even.x ^ split_odd.x;
  // The parities as byte sums (one multiply each: on an NVIDIA GPU an integer multiply-add issues at
  // 4× the rate of a popcount).
  let odd_b = ((((floors & lanes) * lanes) >> 24u) & 1u) != 0u;
  let odd_a = (((((floors ^ up_even ^ up_odd) & lanes) * lanes) >> 24u) & 1u) != 0u;
  let up_mask_even = up_even * 0xffu;
  let up_mask_odd = up_odd * 0xffu;
  let m_even = (r_even & ~up_mask_even) | ((den * lanes - r_even) & up_mask_even);
  let m_odd = (r_odd & ~up_mask_odd) | ((den * lanes - r_odd) & up_mask_odd);
  let m_sum = i32(((m_even + m_odd) * lanes) >> 24u);
  // Keys m·8 + i (i: 0, 2, 4, 6 in the even word, 1, 3, 5, 7 in the odd one).
  let key_even = (m_even << 3u) | 0x06040200u;
  let key_odd = (m_odd << 3u) | 0x07050301u;
  let k0 = key_even & 0xffu;
  let k1 = key_odd & 0xffu;
  let k2 = extractBits(key_even, 8u, 8u);
  let k3 = extractBits(key_odd, 8u, 8u);
  let k4 = extractBits(key_even, 16u, 8u);
  let k5 = extractBits(key_odd, 16u, 8u);
  let k6 = key_even >> 24u;
  let k7 = key_odd >> 24u;
  let key_a = max(max(max(k0 ^ 7u, k1 ^ 7u), max(k2 ^ 7u, k3 ^ 7u)), max(max(k4 ^ 7u, k5 ^ 7u), max(k6 ^ 7u, k7 ^ 7u)));
  let key_b = min(min(min(k0, k1), min(k2, k3)), min(min(k4, k5), min(k6, k7)));
  let a_m = i32(key_a >> 3u);
  let b_m = i32(key_b >> 3u);
  let use_a = select(0, G_DEN - 2 * a_m, odd_a) <= 2 * G_DEN - m_sum + select(0, 2 * b_m, odd_b);
  // The coordinate the winner's parity fix moves (8: none).
  let fixed = select(8u, select(key_b & 7u, (key_a & 7u) ^ 7u, use_a), select(odd_b, odd_a, use_a));
  // The unfixed leader, biased by 128: r − den·up (a) or r − q (b).
  let bias = 128u * lanes;
  var biased_even = r_even + bias - select(q * lanes, up_even * den, use_a);
  var biased_odd = r_odd + bias - select(q * lanes, up_odd * den, use_a);
  if (fixed < 8u) {
    let shift = 8u * (fixed >> 1u);
    let word = select(biased_even, biased_odd, (fixed & 1u) != 0u);
    // +den where the unfixed value is negative (its biased byte below 128), else −den: mod 2^32,
    // one add of the lane's change shifted into place.
    let change = select(den, 0u - den, ((word >> (shift + 7u)) & 1u) != 0u) << shift;
    biased_even = biased_even + select(change, 0u, (fixed & 1u) != 0u);
    biased_odd = biased_odd + select(0u, change, (fixed & 1u) != 0u);
  }
  return LatticePoint(
    i32(biased_even & 0xffu) - 128, i32(biased_odd & 0xffu) - 128,
    i32(extractBits(biased_even, 8u, 8u)) - 128, i32(extractBits(biased_odd, 8u, 8u)) - 128,
    i32(extractBits(biased_even, 16u, 8u)) - 128, i32(extractBits(biased_odd, 16u, 8u)) - 128,
    i32(biased_even >> 24u) - 128, i32(biased_odd >> 24u) - 128,
  );
}
