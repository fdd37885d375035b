// Lattice encoding of prepared (scaled, centred, rotated) columns: steps 4–5 of
// src/quantize/columnScaling.ts and the block loop of quantizeLattice (src/quantize/quantize.ts),
// producing the CPU's codes and scale indices bit for bit:
//   4. ν' = fround(√(Σ r_i²)) with the canonical sum (256 lanes, lane l adds fround(r_i²) for
//      i ≡ l (mod 256) in increasing i, then strides 128, 64, …, 1), by exact_sqrt; g = fround(G / ν')
//      by exact_div (G = fixedPointNumerator(N, unit), a uniform); g = 0 when ν' = 0.
//   5. X_i = clamp(round(fround(r_i · g)), ±FIXED_POINT_LIMIT) for i < keptLength, 0 beyond.
//   Blocks of d coordinates go through encode_block (shaders/lattice_code.wgsl).
// Outputs: codes and scale indices packed as src/format/packing.ts lays them out (column j's block b
// at word j·wordsPerColumn + b / perWord, bits (b % perWord)·bits…), OR-ed into words the host
// cleared; the norm ν'·2^−e (exact); the column gain of QuantizeOptions.gain in f32 (not bit-exact:
// the CPU sums in float64) — 'mmse' ⟨u, û⟩/‖û‖² (1 when û = 0), 'unbiased' ‖u‖²/⟨u, û⟩ (1 when
// ⟨u, û⟩ ≤ 0), sums over the kept coordinates; the count of clipped blocks.
//
// Compiled as exact_f32.wgsl + f32_scaling.wgsl + lattice_decode.wgsl + the LatticeTable struct +
// lattice_code.wgsl + the EncodeParams struct + this file (src/gpu/kernels/latticeEncode.ts). One workgroup of 256 invocations per column.

// Barrier loops: the pairwise reductions start from `params.first_stride` (always 128) rather than
// a constant, so that the compiler cannot unroll them. Unrolled, their barriers made these kernels
// take 10+ s to compile on lavapipe (Mesa 25, measured); as loops, about a second.

const THREADS: u32 = 256u;
const STATUS_CLIPPED_BLOCKS: u32 = 0u;
const STATUS_NORM_OVERFLOW: u32 = 2u;
const GAIN_NONE: u32 = 0u;
const GAIN_MMSE: u32 = 1u;
const GAIN_UNBIASED: u32 = 2u;

// struct EncodeParams is declared once, in src/gpu/kernels/latticeEncode.ts (a UniformLayout), which
// generates its WGSL in front of this file.
@group(0) @binding(0) var<uniform> params: EncodeParams;
@group(0) @binding(1) var<uniform> lattice: LatticeTable;
@group(0) @binding(2) var<storage, read> rotated: array<f32>;
@group(0) @binding(3) var<storage, read> exponents: array<i32>;
@group(0) @binding(4) var<storage, read_write> codes: array<atomic<u32>>;
@group(0) @binding(5) var<storage, read_write> indices: array<atomic<u32>>;
@group(0) @binding(6) var<storage, read_write> norms: array<f32>;
@group(0) @binding(7) var<storage, read_write> gains: array<f32>;
@group(0) @binding(8) var<storage, read_write> status: array<atomic<u32>, 4>;

var<workgroup> lane_a: array<f32, 256>;
var<workgroup> lane_b: array<f32, 256>;
var<workgroup> lane_c: array<f32, 256>;

// lane_a[0] ← Σ lane_a (and the same for lane_b, lane_c when `all`), pairwise with strides
// 128 … 1: the canonical tree.
fn reduce_lanes(lane: u32, all: bool) {
  workgroupBarrier();
  for (var stride = params.first_stride; stride >= 1u; stride = stride / 2u) {
    if (lane < stride) {
      lane_a[lane] = lane_a[lane] + lane_a[lane + stride];
      if (all) {
        lane_b[lane] = lane_b[lane] + lane_b[lane + stride];
        lane_c[lane] = lane_c[lane] + lane_c[lane + stride];
      }
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
  let base = params.rotated_first + column * params.length;

  // 4. ν' and g. Each square is rounded before it is added (no fused multiply-add).
  var acc = 0.0;
  for (var i = lane; i < params.length; i = i + THREADS) {
    let r = rotated[base + i];
    acc = acc + unfused(r * r, params.runtime_zero);
  }
  lane_a[lane] = acc;
  reduce_lanes(lane, false);
  let norm_bits = exact_sqrt_bits(bitcast<u32>(lane_a[0]));
  var gain = 0.0;
  if ((norm_bits & 0x7fffffffu) != 0u) {
    gain = bitcast<f32>(exact_div_bits(bitcast<u32>(params.numerator), norm_bits));
  }
  workgroupBarrier(); // every lane has read lane_a[0] before it is reused

  // 5. blocks.
  let d = LATTICE_DIMENSION;
  let kept = params.kept_length;
  var dot_sum = 0.0;
  var hat_sum = 0.0;
  var r_sum = 0.0;
  for (var b = lane; b < params.blocks_per_column; b = b + THREADS) {
    // Explicitly zeroed: Dawn on lavapipe keeps a loop-body `var` without initializer from the
    // previous iteration (contrary to WGSL), which leaked the previous block's coordinates into a
    // partial last block.
    var x = LatticePoint();
    for (var i = 0u; i < d; i = i + 1u) {
      let k = b * d + i;
      if (k < kept) {
        let y = round(rotated[base + k] * gain);
        x[i] = i32(clamp(y, -params.fixed_limit, params.fixed_limit));
      }
    }
    let block = encode_block(&x);

    let code_word = params.code_first + column * params.code_words_per_column + b / params.codes_per_word;
    atomicOr(&codes[code_word], block.code << ((b % params.codes_per_word) * params.code_bits));
    if (params.index_bits > 0u) {
      let index_word = params.index_first + column * params.index_words_per_column + b / params.indices_per_word;
      atomicOr(&indices[index_word], block.scale_index << ((b % params.indices_per_word) * params.index_bits));
    }
    if (block.clipped) {
      atomicAdd(&status[STATUS_CLIPPED_BLOCKS], 1u);
    }
    if (params.gain_mode != GAIN_NONE) {
      // ⟨u, û⟩, ‖û‖², ‖u‖² up to factors common to the column: Σ k_j·⟨r, P⟩, Σ k_j²·‖P‖², Σ r².
      var rp = 0.0;
      var pp = 0;
      for (var i = 0u; i < d; i = i + 1u) {
        let k = b * d + i;
        if (k < kept) {
          let r = rotated[base + k];
          rp = rp + r * f32(block.point[i]);
          pp = pp + block.point[i] * block.point[i];
          r_sum = r_sum + r * r;
        }
      }
      let multiple = f32(lattice_multiple(block.scale_index));
      dot_sum = dot_sum + multiple * rp;
      hat_sum = hat_sum + multiple * multiple * f32(pp);
    }
  }

  lane_a[lane] = dot_sum;
  lane_b[lane] = hat_sum;
  lane_c[lane] = r_sum;
  reduce_lanes(lane, true);

  if (lane == 0u) {
    let norm = scale_by_power_of_two_bits(norm_bits, -exponents[params.exponent_first + column]);
    if (norm >= 0x7f800000u) {
      atomicMax(&status[STATUS_NORM_OVERFLOW], 0xffffffffu - (params.column_offset + column));
    }
    norms[params.norm_first + column] = bitcast<f32>(norm);
    if (params.gain_mode != GAIN_NONE) {
      // u = r·√N/ν' and û = (unit·k/s)·P, so with t = √N·s / (ν'·unit):
      // ⟨u, û⟩/‖û‖² = t·Σk⟨r,P⟩ / Σk²‖P‖² and ‖u‖²/⟨u, û⟩ = t·Σr² / Σk⟨r,P⟩.
      let dot = lane_a[0];
      let hat = lane_b[0];
      let factor = (params.sqrt_length / bitcast<f32>(norm_bits)) * (f32(POINT_SCALE) / params.unit);
      var column_gain = 1.0;
      if (params.gain_mode == GAIN_MMSE && hat > 0.0) {
        column_gain = (dot / hat) * factor;
      } else if (params.gain_mode == GAIN_UNBIASED && dot > 0.0) {
        column_gain = (lane_c[0] / dot) * factor;
      }
      gains[params.gain_first + column] = column_gain;
    }
  }
}
