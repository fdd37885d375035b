// Weight-only product Y = ŴᵀX for a universal (dithered) lattice matrix W (n × cols, D3 or E8) and f32
// right-hand sides X (n × rhs): the LLM decode step (rhs = 1, GEMV) and small batches (rhs ≤ 64).
// CPU twin: matvecAT (src/product/matvec.ts). Module (src/gpu/kernels/universalGemv.ts):
//   [enable subgroups;]  const RHS_TILE  the generated UniversalGemvParams  lattice_decode.wgsl + the
//   lattice header + universal_decode.wgsl (universalWgsl.ts)  the GEMV header (G_POINT_FACTOR,
//   block_fields)  this file  one entry file: universal_gemv_plain.wgsl or
//   universal_gemv_subgroup.wgsl (it defines `main` and `subgroup_partial_sum`).
//
// Math. Rotated column j, block b, coordinate v decodes to (ν_j/√N)·β·(λ_v/s − Z_v/M) (M = DITHER_GRID,
// s = pointScale), so with x̃ = R·x (the caller's x when W is not rotated) and unit = β/(M·√N):
//   Y[j, r] = ν_j·unit · Σ_{b,v} (λ_v·M/s − Z_v)·x̃_r[b·d + v]  +  μ_j·Σ_i x_r[i]
// and Z_v = field_v − offset_v (field_v the raw hash bits, offset_v = 2^(bits_v − 1)), hence
//   Σ (λ_v·M/s − Z_v)·x̃_v = T[j, r] + Σ offset_v·x̃_v,   T[j, r] = Σ c_v·x̃_v,  c_v = λ_v·(M/s) − field_v.
// The offset sum does not depend on the column: it is computed once per call and right-hand side
// (`call_sums` of shaders/universal_gemv_finish.wgsl, with Σx for the mean term). This kernel writes
// T[j, r] into Y; `finish` then forms Y = ν_j·unit·(T + Σ offset·x̃) + μ_j·Σx in place. (The split keeps
// this kernel at 7 storage bindings, W's 5 buffers, x̃ and Y: WebGPU guarantees only 8 per stage, and
// the norms, the sums and x would make 10; the extra pass moves 8 bytes per output.) c_v is an exact integer (|λ| ≤ 2^22 for every escape the encoder
// emits, so |c| < 2^31), converted to f32 once. Coordinates at or past keptLength count as zero (only
// the last block of a column can be partial).
//
// Layout. A workgroup of 256 invocations owns COLUMNS = 8 columns; the LANES = 32 consecutive
// invocations of one column walk its blocks lane, lane + 32, …: at each step the 32 lanes read
// 32 consecutive codes (32·codeBits contiguous bits: one 128-byte line for E8 q = 16) and 32·d
// consecutive x̃ entries, and they share one escape-bit word (block b = 32·step + lane, so the word is
// the step and the bit the lane: no division or modulo in the indexing, the bit and x̃ offsets advance
// by constants). A block is decoded once per tile of RHS_TILE right-hand sides and its c reused for
// each of them (x̃ is read once per block and right-hand side); more right-hand sides loop over tiles
// inside the workgroup, so W's codes come from memory once and are re-read from cache (rhs = 1
// compiles RHS_TILE = 1, else 8: the accumulators are registers, so the tile is a constant; k = 64 decodes
// every block 8 times, see the cost below). Accumulation in f32:
// per lane, then over the 32 lanes of a column: `subgroup_partial_sum` first adds the lanes of each
// aligned group of `width` lanes (subgroup shuffles; width = 1 in the plain variant), then a tree in
// workgroup memory adds the groups (no tree when width = 32).
//
// Cost of the inner loop, counted by hand on this WGSL and the decode library it calls (instructions
// per block, an integer division counted as ≈ 25: GPUs have no integer divider and emulate it):
//   E8 q = 16 (32-bit codes, 4 bytes per block): code read and masks ≈ 12; base-q digits 8 u32
//   divisions ≈ 185; lift ≈ 25; coset leader = nearest E8 point = two D8 roundings (8 floor divisions
//   each, ≈ 41 per coordinate with the error tracking) + the shifted copy, the balance and the
//   selects ≈ 820; escape test ≈ 5 (taken rarely: popcount, μ from the table or a binary search);
//   dither: 2 mix32 + 8 fields ≈ 46; c and the tail mask ≈ 60; loop ≈ 5. About 1160 per block, i.e.
//   ≈ 290 per code byte, plus ≈ 45 per block (8 loads, 8 FMAs, index clamps) ≈ 11 per code byte for
//   each right-hand side of the tile.
//   D3 q = 6 (8-bit codes): ≈ 285 per block = per code byte (3 digit divisions, a D3 rounding with 3
//   floor divisions), plus ≈ 20 per right-hand side. E8 q = 24 (37-bit codes, two words): the 16-bit
//   limb digits cost 24 divisions, ≈ 350 per code byte.
// For comparison, a GPU moves a byte from memory in the time of ≈ 3–4 integer instructions (H100/H200:
// ≈ 17 T integer instructions/s against 3.3–4.8 TB/s), so this loop is bound by the integer decode, two
// orders of magnitude above the bandwidth limit, not by its (coalesced, read-once) memory traffic.
// That is where the real-GPU tuning goes: divisions by the uniform q through multiplicative inverses or
// f32 reciprocals with an exact correction, the rounding rules without division (den = s·q is fixed),
// table decodes where q^d is small.

const THREADS: u32 = 256u;
const LANES: u32 = 32u;                  // invocations per column
const COLUMNS: u32 = THREADS / LANES;    // columns per workgroup
// What test mode 2 writes when the subgroup path did not run (a finite value no test produces).
const POISON: f32 = 1.0e30;

@group(0) @binding(0) var<uniform> params: UniversalGemvParams;
@group(0) @binding(1) var<storage, read> codes: array<u32>;
@group(0) @binding(2) var<storage, read> escape_bits: array<u32>;
@group(0) @binding(3) var<storage, read> escape_starts: array<u32>;
@group(0) @binding(4) var<storage, read> escape_ids: array<u32>;
@group(0) @binding(5) var<storage, read> escape_table: array<i32>;
@group(0) @binding(6) var<storage, read> x_rotated: array<f32>;     // x̃ (or x when unrotated)
@group(0) @binding(7) var<storage, read_write> y: array<f32>;       // T[j, r] (finished by `finish`)

var<workgroup> partials: array<f32, RHS_TILE * THREADS>;
// Subgroup variant: invocations whose subgroup is not the expected block vote here.
var<workgroup> layout_votes: atomic<u32>;
var<workgroup> shared_width: u32;

// Adds c·x̃ of one block for each right-hand side of the tile. `at[v]` is the x̃ offset of coordinate v:
// v itself, or a kept coordinate of the block for coordinates past keptLength, whose c is 0 (so no
// branch, and no read outside the right-hand side's kept entries).
fn add_block(c: array<f32, 8>, at: array<u32, 8>, x_index: u32, r0: u32, acc: ptr<function, array<f32, RHS_TILE>>) {
  for (var r = 0u; r < RHS_TILE; r = r + 1u) {
    if (r0 + r < params.rhs) {
      let base = x_index + r * params.x_stride;
      var s = 0.0;
      for (var v = 0u; v < U_DIM; v = v + 1u) {
        s = s + c[v] * x_rotated[base + at[v]];
      }
      (*acc)[r] = (*acc)[r] + s;
    }
  }
}

// The product for the workgroup's columns. `width`: lanes whose sums `subgroup_partial_sum` already
// combined (workgroup-uniform); `poison`: write POISON instead of results (subgroup test mode 2).
fn gemv(group_x: u32, thread: u32, width: u32, poison: bool) {
  let local_column = thread / LANES;
  let lane = thread % LANES;
  let column = group_x * COLUMNS + local_column;
  let in_range = column < params.cols;
  let global_column = params.column_offset + column;
  let key = dither_key(global_column);
  let code_base = params.code_first + column * params.code_words;
  let bits_base = params.bits_first + column * params.bit_words;
  let starts_base = params.starts_first + column * params.bit_words;
  let low_bits = min(params.code_bits, 32u);
  let low_mask = select((1u << low_bits) - 1u, 0xffffffffu, low_bits == 32u);
  let high_bits = params.code_bits - low_bits; // 0, or 1…16 for codes wider than 32 bits
  let high_mask = (1u << high_bits) - 1u;
  let code_step = LANES * params.code_bits;
  let lanes_below = (1u << lane) - 1u;
  let first_global_block = global_column * params.blocks;
  let qi = i32(params.q);

  for (var r0 = 0u; r0 < params.rhs; r0 = r0 + RHS_TILE) {
    var acc = array<f32, RHS_TILE>();
    if (in_range) {
      var bit = lane * params.code_bits;
      var x_index = params.x_rotated_first + r0 * params.x_stride + lane * U_DIM;
      var step = 0u;
      for (var b = lane; b < params.blocks; b = b + LANES) {
        // The code: codeBits bits from `bit` (low 32 bits, then the high bits).
        let word = code_base + (bit >> 5u);
        let shift = bit & 31u;
        var low = codes[word] >> shift;
        if (shift + low_bits > 32u) {
          low = low | (codes[word + 1u] << (32u - shift));
        }
        var high = 0u;
        if (high_bits > 0u) {
          high = codes[word + 1u] >> shift;
          if (shift + high_bits > 32u) {
            high = high | (codes[word + 2u] << (32u - shift));
          }
        }
        var point = coset_leader(u_lift(universal_digits(vec2<u32>(low & low_mask, high & high_mask))), params.q, U_RULE, U_DIM);
        // Escape: bit `lane` of word `step`; λ = leader + q·μ.
        let escapes = escape_bits[bits_base + step];
        if (((escapes >> lane) & 1u) != 0u) {
          let slot = escape_starts[starts_base + step] + countOneBits(escapes & lanes_below);
          let mu = escape_mu(slot, first_global_block + b);
          for (var v = 0u; v < U_DIM; v = v + 1u) {
            point[v] = point[v] + qi * mu[v];
          }
        }
        // c = λ·M/s − field; coordinates past keptLength (last block only) get c = 0.
        let fields = block_fields(key, b);
        let last = select(params.kept - b * U_DIM, U_DIM, b < params.full_blocks) - 1u;
        var c = array<f32, 8>();
        var at = array<u32, 8>();
        for (var v = 0u; v < U_DIM; v = v + 1u) {
          c[v] = select(0.0, f32(point[v] * G_POINT_FACTOR - fields[v]), v <= last);
          at[v] = min(v, last);
        }
        add_block(c, at, x_index, r0, &acc);
        bit = bit + code_step;
        x_index = x_index + LANES * U_DIM;
        step = step + 1u;
      }
    }

    // The column's total over its 32 lanes (at lane 0).
    var totals = array<f32, RHS_TILE>();
    for (var r = 0u; r < RHS_TILE; r = r + 1u) {
      totals[r] = subgroup_partial_sum(acc[r], width);
    }
    if (width < LANES) {
      for (var r = 0u; r < RHS_TILE; r = r + 1u) {
        partials[r * THREADS + thread] = totals[r];
      }
      workgroupBarrier();
      for (var h = width; h < LANES; h = h << 1u) {
        if ((lane & (2u * h - 1u)) == 0u) {
          for (var r = 0u; r < RHS_TILE; r = r + 1u) {
            partials[r * THREADS + thread] = partials[r * THREADS + thread] + partials[r * THREADS + thread + h];
          }
        }
        workgroupBarrier();
      }
      // Lane 0 reads back its own slots only, which no invocation writes before the next tile's
      // barrier: no barrier needed before the next tile.
      for (var r = 0u; r < RHS_TILE; r = r + 1u) {
        totals[r] = partials[r * THREADS + thread];
      }
    }

    if (in_range && lane == 0u) {
      for (var r = 0u; r < RHS_TILE; r = r + 1u) {
        let rhs_index = r0 + r;
        if (rhs_index < params.rhs) {
          y[params.y_first + rhs_index * params.total_cols + column] = select(totals[r], POISON, poison);
        }
      }
    }
  }
}
