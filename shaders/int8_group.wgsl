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
// (shaders/e8_inputs_i8.wgsl).
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

struct Int8Group {
  words: array<u32, 4>,
  scale_bits: u32,   // s as f32 bits
}

fn round_int8_group(v: array<f32, 12>) -> Int8Group {
  var m = 0.0;
  var finite = true;
  for (var i = 0u; i < 12u; i = i + 1u) {
    finite = finite && int8_finite(v[i]);
    m = max(m, abs(v[i]));
  }
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
