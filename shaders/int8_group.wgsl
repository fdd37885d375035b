// One group of 12 rotated coordinates x̃ rounded to int8, the rule of the int8-input GEMVs (its two
// writers: shaders/gemv_i8_inputs.wgsl, and the rotation's last pass, shaders/hadamard.wgsl, which
// rounds while the rotated column is still in workgroup memory; CPU twin `quantizeInputsI8`,
// src/gpu/kernels/inputsI8.ts):
//   s = m / 127 with m = max |x̃| over the group,
//   x̂_k = clamp(round(127·x̃_k / m), −127, 127),
// coordinates at or past keptLength passed in as 0. Block b's three levels go into the low three
// bytes of word b as i8 (the high byte 0). |x̂_k·s − x̃_k| ≤ s·(½ + 10⁻⁴) (WGSL's division is within
// 2.5 ULP). A group with a non-finite entry gets a NaN scale (as bits: a NaN is not a WGSL constant)
// and zero levels, so the products it enters are NaN, never a silently finite number.

// The rule per coordinate and per group, shared with the E8 residue GEMV's groups of 32
// (round_int8_group_e8 below, and shaders/e8_inputs_i8.wgsl).
// Whether `value` is finite, by its bit pattern (exponent not all ones): WGSL lets a compiler assume
// no NaN or infinity in float comparisons, and drop one that tests for them.
fn int8_finite(value: f32) -> bool {
  return (bitcast<u32>(value) & 0x7fffffffu) < 0x7f800000u;
}

// x̂ of a coordinate of a group whose max |x̃| is m > 0.
fn int8_level(value: f32, m: f32) -> i32 {
  return i32(clamp(round(value / m * 127.0), -127.0, 127.0));
}

// s = m / 127 as f32 bits, a NaN for a group with a non-finite entry.
fn int8_scale_bits(m: f32, finite: bool) -> u32 {
  return select(0x7fc00000u, bitcast<u32>(m / 127.0), finite);
}

// A group's max |x̃| and whether all its entries are finite, taken one entry at a time (from
// GroupMax(0.0, true)).
struct GroupMax {
  m: f32,
  finite: bool,
}

fn group_max_with(acc: GroupMax, value: f32) -> GroupMax {
  return GroupMax(max(acc.m, abs(value)), acc.finite && int8_finite(value));
}

struct Int8Group {
  words: array<u32, 4>,
  scale_bits: u32,   // s as f32 bits
}

fn round_int8_group(v: array<f32, 12>) -> Int8Group {
  var acc = GroupMax(0.0, true);
  for (var i = 0u; i < 12u; i = i + 1u) {
    acc = group_max_with(acc, v[i]);
  }
  let m = acc.m;
  let finite = acc.finite;
  var group = Int8Group();
  for (var b = 0u; b < 4u; b = b + 1u) {
    var word = 0u;
    if (m > 0.0 && finite) {
      for (var t = 0u; t < 3u; t = t + 1u) {
        let level = int8_level(v[3u * b + t], m);
        word = word | ((u32(level) & 0xffu) << (8u * t));
      }
    }
    group.words[b] = word;
  }
  group.scale_bits = int8_scale_bits(m, finite);
  return group;
}

// The E8 residue GEMV's groups of 32 (4 blocks of 8; the layout of shaders/e8_inputs_i8.wgsl, whose
// kernel rounds a block per invocation, and of the rotation's last pass, shaders/hadamard.wgsl, which
// rounds a group per invocation): block b's even coordinates' levels (word 2b) and odd ones' (word
// 2b + 1) as packed i8, and its offset 16·Σx̂ (word 8 + b), for a group whose max |x̃| is m > 0.
fn e8_block_levels(v: array<f32, 8>, m: f32) -> vec3<u32> {
  var words = vec2<u32>();
  var sum = 0;
  for (var half = 0u; half < 2u; half = half + 1u) {
    var word = 0u;
    for (var t = 0u; t < 4u; t = t + 1u) {
      let level = int8_level(v[2u * t + half], m);
      word = word | ((u32(level) & 0xffu) << (8u * t));
      sum = sum + level;
    }
    words[half] = word;
  }
  return vec3<u32>(words, bitcast<u32>(16 * sum));
}

struct Int8GroupE8 {
  words: array<u32, 12>,
  scale_bits: u32,   // s as f32 bits
}

fn round_int8_group_e8(v: array<f32, 32>) -> Int8GroupE8 {
  var acc = GroupMax(0.0, true);
  for (var i = 0u; i < 32u; i = i + 1u) {
    acc = group_max_with(acc, v[i]);
  }
  let m = acc.m;
  let finite = acc.finite;
  var group = Int8GroupE8();
  if (m > 0.0 && finite) {
    for (var b = 0u; b < 4u; b = b + 1u) {
      var block = array<f32, 8>();
      for (var i = 0u; i < 8u; i = i + 1u) {
        block[i] = v[8u * b + i];
      }
      let levels = e8_block_levels(block, m);
      group.words[2u * b] = levels.x;
      group.words[2u * b + 1u] = levels.y;
      group.words[8u + b] = levels.z;
    }
  }
  group.scale_bits = int8_scale_bits(m, finite);
  return group;
}
