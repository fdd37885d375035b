// The counter-based hash of src/rotation/random.ts in u32 arithmetic: the universal code's dither and
// randomized rounding (shaders/universal_encode.wgsl, shaders/universal_decode.wgsl). (The rotation's
// signs come packed from the host instead: src/gpu/rotationSigns.ts.) A library: no bindings, no entry
// points.

// mix32 of src/rotation/random.ts ("lowbias32"): u32 `*` wraps like Math.imul.
fn mix32(v: u32) -> u32 {
  return mix32_rest(v ^ (v >> 16u));
}

// mix32 after its first xorshift: mix32(v) = mix32_rest(v ^ (v >> 16)). Hashes of inputs that differ
// only below bit 16 share v >> 16, so a caller can do that step once for all of them
// (group_hash_base of src/gpu/kernels/universalGemvI8.ts).
fn mix32_rest(v: u32) -> u32 {
  var x = v;
  x = x * 0x7feb352du;
  x = x ^ (x >> 15u);
  x = x * 0x846ca68bu;
  x = x ^ (x >> 16u);
  return x;
}

// counterHash(seed, stream, index, sub) of src/rotation/random.ts.
fn counter_hash(seed: u32, stream: u32, index: u32, sub: u32) -> u32 {
  var h = mix32(seed ^ 0x9e3779b9u);
  h = mix32(h ^ stream);
  h = mix32(h ^ index);
  return mix32(h ^ sub);
}

