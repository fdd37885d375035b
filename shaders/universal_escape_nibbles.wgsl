// The escape nibbles of a universal D3 matrix: a form of its escapes repacked at upload for the
// int8-input GEMV (shaders/universal_gemv_i8.wgsl), so that kernel reads 4 bits per block and does no
// escape bookkeeping (escape bit, popcount slot, escape id) in its inner loop. CPU twin:
// `escapeNibbles` (src/gpu/kernels/universalGemvI8.ts).
//
// Laid out beside the codes, so the GEMV loads the nibbles of a quad of code words as one vec2: code
// word c of the codes buffer (group g of column j, c = j·code_words + g) gets half c mod 2 (16 bits)
// of nibble word c / 2, block 4g + i of its column nibble i of that half:
//   0                 not escaped,
//   1 … ROOT_COUNT    escaped through a root (its escape id: 1 + the root's index; ROOT_COUNT < 15),
//   NONROOT_NIBBLE    escaped with a non-root μ (the kernel finds μ in the escape table).
// Blocks past the column's last block get 0. One invocation per code word of the dispatch's columns;
// two columns may share a nibble word (and two dispatches, when the columns are split across
// bindings), so each half is or-ed into the zeroed buffer.
//
// Compiled after the generated EscapeNibbleParams (src/gpu/kernels/universalGemvI8.ts).

const NONROOT_NIBBLE: u32 = 15u;
const GROUP_BLOCKS: u32 = 4u;

@group(0) @binding(0) var<uniform> params: EscapeNibbleParams;
@group(0) @binding(1) var<storage, read> escape_bits: array<u32>;
@group(0) @binding(2) var<storage, read> escape_starts: array<u32>;
@group(0) @binding(3) var<storage, read> escape_ids: array<u32>;
@group(0) @binding(4) var<storage, read_write> nibbles: array<atomic<u32>>;

@compute @workgroup_size(256, 1, 1)
fn main(
  @builtin(workgroup_id) group: vec3<u32>,
  @builtin(num_workgroups) groups: vec3<u32>,
  @builtin(local_invocation_index) thread: u32,
) {
  let index = (group.y * groups.x + group.x) * 256u + thread;
  if (index >= params.cols * params.code_words) {
    return;
  }
  let column = index / params.code_words;
  let first_block = (index - column * params.code_words) * GROUP_BLOCKS;
  let bits_base = params.bits_first + column * params.bit_words;
  let starts_base = params.starts_first + column * params.bit_words;
  var half = 0u;
  for (var i = 0u; i < GROUP_BLOCKS; i = i + 1u) {
    let b = first_block + i;
    if (b < params.blocks) {
      let escapes = escape_bits[bits_base + (b >> 5u)];
      let bit = b & 31u;
      if (((escapes >> bit) & 1u) != 0u) {
        let slot = escape_starts[starts_base + (b >> 5u)] + countOneBits(escapes & ((1u << bit) - 1u));
        let id = (escape_ids[slot >> 2u] >> ((slot & 3u) * 8u)) & 255u;
        half = half | (select(NONROOT_NIBBLE, id, id != 0u) << (4u * i));
      }
    }
  }
  // Code word c = code_word_first + index of the buffer: half c mod 2 of nibble word c / 2.
  let c = params.code_word_first + index;
  if (half != 0u) {
    atomicOr(&nibbles[params.nibbles_first + c / 2u - params.code_word_first / 2u], half << ((c & 1u) * 16u));
  }
}
