// The escape nibbles of a universal D3 matrix: a form of its escapes repacked at upload for the
// int8-input GEMV (shaders/universal_gemv_i8.wgsl), so that kernel reads 4 bits per block and does no
// escape bookkeeping (escape bit, popcount slot, escape id) in its inner loop. CPU twin:
// `escapeNibbles` (src/gpu/kernels/universalGemvI8.ts).
//
// Block b of column j gets nibble b mod 8 of word j·nibble_words + b / 8:
//   0                 not escaped,
//   1 … ROOT_COUNT    escaped through a root (its escape id: 1 + the root's index; ROOT_COUNT < 15),
//   NONROOT_NIBBLE    escaped with a non-root μ (the kernel finds μ in the escape table).
// Blocks past the column's last block get 0. One invocation per nibble word.
//
// Compiled after the generated EscapeNibbleParams (src/gpu/kernels/universalGemvI8.ts).

const NONROOT_NIBBLE: u32 = 15u;

@group(0) @binding(0) var<uniform> params: EscapeNibbleParams;
@group(0) @binding(1) var<storage, read> escape_bits: array<u32>;
@group(0) @binding(2) var<storage, read> escape_starts: array<u32>;
@group(0) @binding(3) var<storage, read> escape_ids: array<u32>;
@group(0) @binding(4) var<storage, read_write> nibbles: array<u32>;

@compute @workgroup_size(256, 1, 1)
fn main(
  @builtin(workgroup_id) group: vec3<u32>,
  @builtin(num_workgroups) groups: vec3<u32>,
  @builtin(local_invocation_index) thread: u32,
) {
  let index = (group.y * groups.x + group.x) * 256u + thread;
  if (index >= params.cols * params.nibble_words) {
    return;
  }
  let column = index / params.nibble_words;
  let first_block = (index - column * params.nibble_words) * 8u;
  let bits_base = params.bits_first + column * params.bit_words;
  let starts_base = params.starts_first + column * params.bit_words;
  var word = 0u;
  for (var i = 0u; i < 8u; i = i + 1u) {
    let b = first_block + i;
    if (b < params.blocks) {
      let escapes = escape_bits[bits_base + (b >> 5u)];
      let bit = b & 31u;
      if (((escapes >> bit) & 1u) != 0u) {
        let slot = escape_starts[starts_base + (b >> 5u)] + countOneBits(escapes & ((1u << bit) - 1u));
        let id = (escape_ids[slot >> 2u] >> ((slot & 3u) * 8u)) & 255u;
        word = word | (select(NONROOT_NIBBLE, id, id != 0u) << (4u * i));
      }
    }
  }
  nibbles[params.nibbles_first + index] = word;
}
