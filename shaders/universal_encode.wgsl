// Universal (dithered) lattice encoding of prepared (scaled, centred, rotated) columns: the GPU twin of
// quantizeUniversal (src/quantize/quantize.ts) and UniversalBlockEncoder (src/quantize/universalCode.ts),
// producing the CPU's codes and escapes bit for bit. First of two passes (src/gpu/kernels/universalEncode.ts):
//   - per column: ν' = fround(√(Σ r_i²)) with the canonical sum (256 lanes; see lattice_encode.wgsl),
//     g = fround(G / ν') by exact_div, norm ν'·2^−e into `side`;
//   - per block: fixed point by randomized rounding, dither, nearest point, Voronoi code, leader, escape;
//     the code is OR-ed into the per-column code stream, the escape bit into the escape bits, the escape's
//     root id (0 for a non-root μ) into `dense_ids` (one byte per block), and a non-root μ appended to the
//     record list in `work` (unordered; the host sorts it);
//   - per column: the escape and non-root counts into `work`.
// The second pass (universal_compact.wgsl) turns the dense ids into the escape-id stream once the host
// has the counts.
//
// Compiled as exact_f32.wgsl + f32_scaling.wgsl + lattice_decode.wgsl + the generated lattice header +
// universal_decode.wgsl (mix32, counter_hash) + this file, after the generated `UniversalEncodeParams`.
// One workgroup of 256 invocations per column.
//
// `work` (u32): [0] fixed-point overflow (0xffffffff − first column), [1] non-finite input, [2] norm
// overflow, [3] mean overflow (the column-prep status words), [4] non-root records written, then
// 2 words per column (escapes, non-roots) from `counts_first`, then the records (1 + d words each) from
// `records_first`, at most `record_capacity` of them.

const THREADS: u32 = 256u;
const WORK_FIXED_OVERFLOW: u32 = 0u;
const WORK_NORM_OVERFLOW: u32 = 2u;
const WORK_RECORDS: u32 = 4u;

@group(0) @binding(0) var<uniform> params: UniversalEncodeParams;
@group(0) @binding(1) var<uniform> roots: array<vec4<i32>, 480>;
@group(0) @binding(2) var<storage, read> rotated: array<f32>;
@group(0) @binding(3) var<storage, read> exponents: array<i32>;
@group(0) @binding(4) var<storage, read_write> codes: array<atomic<u32>>;
@group(0) @binding(5) var<storage, read_write> escape_bits: array<atomic<u32>>;
@group(0) @binding(6) var<storage, read_write> dense_ids: array<atomic<u32>>;
@group(0) @binding(7) var<storage, read_write> side: array<f32>;
@group(0) @binding(8) var<storage, read_write> work: array<atomic<u32>>;

var<workgroup> lane_sum: array<f32, 256>;
var<workgroup> lane_escapes: array<u32, 256>;
var<workgroup> lane_nonroots: array<u32, 256>;

fn root_coordinate(index: u32) -> i32 {
  return roots[index >> 2u][index & 3u];
}

// ORs `bits` bits of `value` into the code stream at bit `bit` of the column starting at word `base`.
fn or_code_bits(base: u32, bit: u32, bits: u32, value: u32) {
  let word = base + (bit >> 5u);
  let shift = bit & 31u;
  atomicOr(&codes[word], value << shift);
  if (shift + bits > 32u) {
    atomicOr(&codes[word + 1u], value >> (32u - shift));
  }
}

// (high, low) · q + u for the Horner form of the code Σ u_i q^i; every partial product fits 32 bits
// (16-bit limbs, q ≤ 64, codes below 2^48).
fn wide_mul_add(value: vec2<u32>, q: u32, u: u32) -> vec2<u32> {
  let a = (value.x & 0xffffu) * q + u;
  let b = (value.x >> 16u) * q + (a >> 16u);
  return vec2<u32>((a & 0xffffu) | (b << 16u), value.y * q + (b >> 16u));
}

// Index + 1 of μ among the roots, or 0 when μ is not a root.
fn root_id(mu: LatticePoint) -> u32 {
  for (var r = 0u; r < params.root_count; r = r + 1u) {
    var same = true;
    for (var i = 0u; i < U_DIM; i = i + 1u) {
      same = same && root_coordinate(r * U_DIM + i) == mu[i];
    }
    if (same) {
      return r + 1u;
    }
  }
  return 0u;
}

fn reduce_lanes(lane: u32) {
  workgroupBarrier();
  for (var stride = params.first_stride; stride >= 1u; stride = stride / 2u) {
    if (lane < stride) {
      lane_sum[lane] = lane_sum[lane] + lane_sum[lane + stride];
      lane_escapes[lane] = lane_escapes[lane] + lane_escapes[lane + stride];
      lane_nonroots[lane] = lane_nonroots[lane] + lane_nonroots[lane + stride];
    }
    workgroupBarrier();
  }
}

@compute @workgroup_size(256, 1, 1)
fn main(
  @builtin(workgroup_id) workgroup_id: vec3<u32>,
  @builtin(num_workgroups) workgroup_count: vec3<u32>,
  @builtin(local_invocation_index) lane: u32,
) {
  let column = workgroup_id.y * workgroup_count.x + workgroup_id.x;
  if (column >= params.cols) {
    return;
  }
  let global_column = params.column_offset + column;
  let base = params.rotated_first + column * params.length;

  // ν' and g: the canonical sum of fround(r²), then exact sqrt and division.
  var acc = 0.0;
  for (var i = lane; i < params.length; i = i + THREADS) {
    let r = rotated[base + i];
    acc = acc + unfused(r * r, params.runtime_zero);
  }
  lane_sum[lane] = acc;
  lane_escapes[lane] = 0u;
  lane_nonroots[lane] = 0u;
  reduce_lanes(lane);
  let norm_bits = exact_sqrt_bits(bitcast<u32>(lane_sum[0]));
  var gain = 0.0;
  if ((norm_bits & 0x7fffffffu) != 0u) {
    gain = bitcast<f32>(exact_div_bits(bitcast<u32>(params.numerator), norm_bits));
  }
  workgroupBarrier();

  // The encoders write two dither keys (DITHER_KEYS of src/quantize/universalCode.ts).
  let dither_column_keys = vec2<u32>(
    counter_hash(params.nonce_lo, STREAM_DITHER, params.nonce_hi, global_column),
    counter_hash(params.nonce_lo, STREAM_SECOND_DITHER, params.nonce_hi, global_column),
  );
  let round_key = counter_hash(params.nonce_lo, STREAM_ROUNDING, params.nonce_hi, global_column);
  let q = i32(params.q);
  let code_base = params.code_first + column * params.code_words;
  var escapes = 0u;
  var nonroots = 0u;
  var overflow = false;
  for (var b = lane; b < params.blocks; b = b + THREADS) {
    // 1. Fixed point by randomized rounding: X = floor(y) + (y − floor(y) ≥ 1 − w), decided exactly as
    // the CPU's float64 (randomizedRound). y − floor(y) is exact in f32 (Sterbenz) but for y in (−½, 0),
    // where floor(y) = −1 and y + 1 may round up onto 1 − w: there y ≥ −w, the same test, is exact.
    var p = LatticePoint();
    for (var i = 0u; i < U_DIM; i = i + 1u) {
      let k = b * U_DIM + i;
      var y = 0.0;
      if (k < params.kept) {
        // Rounded to f32 before `y - low` uses it, as the CPU's fround(r·g): a compiler could
        // otherwise fuse the product into that subtraction (NVIDIA's do) and flip a rounding decision
        // (≈ 8 in 10⁶ coordinates by emulation), and the codes would no longer equal the CPU's.
        y = unfused(rotated[base + k] * gain, params.runtime_zero);
      }
      let low = floor(y);
      let w = f32(mix32(round_key ^ k) >> 8u) * (1.0 / 16777216.0);
      let up = select(y - low >= 1.0 - w, y >= -w, low == -1.0);
      let x = i32(low) + select(0, 1, up);
      // Both ends compared, not abs(x): i32(low) saturates at −2^31 (and + 1 may wrap from 2^31 − 1),
      // whose abs is −2^31 again, and a y far below the range was taken for one within it.
      overflow = overflow || x < -params.fixed_limit || x > params.fixed_limit;
      p[i] = x;
    }
    // 2–3. Dither, nearest point (mirrored by bit 0 of the first coordinate's rounding hash, as
    // blockMirror: P = −Q(−(X + Z)), so that ties add no mean), code and leader.
    let z = block_dither(dither_column_keys, b);
    let sign = select(1, -1, (mix32(round_key ^ (b * U_DIM)) & 1u) == 1u);
    for (var i = 0u; i < U_DIM; i = i + 1u) {
      p[i] = sign * (p[i] + z[i]);
    }
    var point = nearest_point_dithered(U_RULE, p, U_DITHER_GRID, U_DIM);
    for (var i = 0u; i < U_DIM; i = i + 1u) {
      point[i] = sign * point[i];
    }
    let u = u_coefficients(point);
    var digits = LatticePoint();
    var code = vec2<u32>(0u, 0u);
    for (var step = 0u; step < U_DIM; step = step + 1u) {
      let i = U_DIM - 1u - step;
      digits[i] = u[i] - q * floor_div(u[i], q);
      code = wide_mul_add(code, params.q, u32(digits[i]));
    }
    let leader = coset_leader(u_lift(digits), params.q, U_RULE, U_DIM);
    let bit = b * params.code_bits;
    or_code_bits(code_base, bit, min(params.code_bits, 32u), code.x);
    if (params.code_bits > 32u) {
      or_code_bits(code_base, bit + 32u, params.code_bits - 32u, code.y);
    }
    // 4. Escape: μ = (P − L) / q (exact), its root id.
    var escaped = false;
    var mu = LatticePoint();
    for (var i = 0u; i < U_DIM; i = i + 1u) {
      let difference = point[i] - leader[i];
      escaped = escaped || difference != 0;
      mu[i] = difference / q;
    }
    if (escaped) {
      escapes = escapes + 1u;
      atomicOr(&escape_bits[params.bits_first + column * params.bit_words + (b >> 5u)], 1u << (b & 31u));
      let id = root_id(mu);
      atomicOr(&dense_ids[params.dense_first + column * params.dense_words + (b >> 2u)], id << ((b & 3u) * 8u));
      if (id == 0u) {
        nonroots = nonroots + 1u;
        let record = atomicAdd(&work[WORK_RECORDS], 1u);
        if (record < params.record_capacity) {
          let at = params.records_first + record * (U_DIM + 1u);
          atomicStore(&work[at], global_column * params.blocks + b);
          for (var i = 0u; i < U_DIM; i = i + 1u) {
            atomicStore(&work[at + 1u + i], bitcast<u32>(mu[i]));
          }
        }
      }
    }
  }
  if (overflow) {
    atomicMax(&work[WORK_FIXED_OVERFLOW], 0xffffffffu - global_column);
  }

  lane_escapes[lane] = escapes;
  lane_nonroots[lane] = nonroots;
  lane_sum[lane] = 0.0;
  reduce_lanes(lane);
  if (lane == 0u) {
    atomicStore(&work[params.counts_first + 2u * global_column], lane_escapes[0]);
    atomicStore(&work[params.counts_first + 2u * global_column + 1u], lane_nonroots[0]);
    let norm = scale_by_power_of_two_bits(norm_bits, -exponents[params.exponent_first + column]);
    if (norm >= 0x7f800000u) {
      atomicMax(&work[WORK_NORM_OVERFLOW], 0xffffffffu - global_column);
    }
    side[params.norm_first + column] = bitcast<f32>(norm);
  }
}
