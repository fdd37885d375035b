// The split of the pair form (src/quantize/universalPairs.ts: roundShift, pairLimit, pairShift,
// splitPair): a library compiled in front of shaders/universal_pairs.wgsl (and of the test probe that
// checks it at the boundaries, test/gpu/pairMatmul.test.ts), after the constant PAIR_UNIT that
// src/gpu/kernels/universalPairs.ts generates from the CPU module's (`pairSplitWgsl`).

// c in units of 2^s, rounded to nearest, ties to even: ⌊(c + 2^(s−1) − 1 + bit s of c) / 2^s⌋
// (roundShift, which says why not half up: a bias in every product of a shifted column).
fn round_shift(c: i32, s: u32) -> i32 {
  if (s == 0u) {
    return c;
  }
  return (c + (1 << (s - 1u)) - 1 + ((c >> s) & 1)) >> s;
}

// The largest |c| stored unshifted at radix 2^r: 128·R − ⌊R/2⌋ − 1 (pairLimit).
fn pair_limit(r: u32) -> u32 {
  return (128u << r) - ((1u << r) >> 1u) - 1u;
}

// The smallest s with every |c| ≤ `top` rounded into [−pair_limit(r), pair_limit(r)] (pairShift).
fn pair_shift(top: u32, r: u32) -> u32 {
  let limit = pair_limit(r);
  var s = 0u;
  loop {
    let rounded = select(top, u32(round_shift(i32(top), s)), s > 0u);
    if (rounded <= limit) {
      break;
    }
    s = s + 1u;
  }
  return s;
}

// The unit's 8 values in units of 2^s, each split as R·h + l (R = 2^r, h = ⌊(value + ⌊R/2⌋) / R⌋):
// (h of 0–3, h of 4–7, l of 0–3, l of 4–7).
fn pack_unit(c: array<i32, PAIR_UNIT>, s: u32, r: u32) -> vec4<u32> {
  let half = i32((1u << r) >> 1u);
  var h = vec2<u32>();
  var l = vec2<u32>();
  for (var i = 0u; i < PAIR_UNIT; i = i + 1u) {
    let value = round_shift(c[i], s);
    let high = (value + half) >> r;  // arithmetic: ⌊(value + ⌊R/2⌋) / R⌋
    let low = value - (high << r);
    let word = i >> 2u;
    let at = 8u * (i & 3u);
    h[word] = h[word] | ((u32(high) & 0xffu) << at);
    l[word] = l[word] | ((u32(low) & 0xffu) << at);
  }
  return vec4<u32>(h.x, h.y, l.x, l.y);
}
