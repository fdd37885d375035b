// The split of the pair form (src/quantize/universalPairs.ts: roundShift, pairShift, splitPair): a
// library compiled in front of shaders/universal_pairs.wgsl (and of the test probe that checks it at
// the boundaries, test/gpu/pairMatmul.test.ts), after the constants PAIR_UNIT and PAIR_LIMIT that
// src/gpu/kernels/universalPairs.ts generates from the CPU module's (`pairSplitWgsl`).

// c in units of 2^s, rounded: ⌊(c + 2^(s−1)) / 2^s⌋ (roundShift).
fn round_shift(c: i32, s: u32) -> i32 {
  if (s == 0u) {
    return c;
  }
  return (c + (1 << (s - 1u))) >> s;
}

// The smallest s with every |c| ≤ `top` rounded into [−PAIR_LIMIT, PAIR_LIMIT] (pairShift).
fn pair_shift(top: u32) -> u32 {
  var s = 0u;
  loop {
    let rounded = select(top, (top >> s) + ((top >> (s - 1u)) & 1u), s > 0u);
    if (rounded <= PAIR_LIMIT) {
      break;
    }
    s = s + 1u;
  }
  return s;
}

// The unit's 8 values in units of 2^s, each split as 128·h + l: (h of 0–3, h of 4–7, l of 0–3, l of 4–7).
fn pack_unit(c: array<i32, PAIR_UNIT>, s: u32) -> vec4<u32> {
  var h = vec2<u32>();
  var l = vec2<u32>();
  for (var i = 0u; i < PAIR_UNIT; i = i + 1u) {
    let value = round_shift(c[i], s);
    let high = (value + 64) >> 7u;  // arithmetic: ⌊(value + 64) / 128⌋
    let low = value - high * 128;
    let word = i >> 2u;
    let at = 8u * (i & 3u);
    h[word] = h[word] | ((u32(high) & 0xffu) << at);
    l[word] = l[word] | ((u32(low) & 0xffu) << at);
  }
  return vec4<u32>(h.x, h.y, l.x, l.y);
}
