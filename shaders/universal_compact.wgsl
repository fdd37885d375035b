// Second pass of the universal GPU encoder (src/gpu/kernels/universalEncode.ts): once the host knows
// each column's escape count (hence `column_starts`, the escape slot of each column's first escape),
// every column writes, for each of its escape-bit words, the slot of the word's first escape
// (`escape_starts`), and copies the root ids of its escaped blocks from the per-block `dense_ids` into
// the escape-id stream (8 bits per escape, in block order) — the GPU form of
// src/format/universalLayout.ts. One workgroup of 256 invocations per column; invocation l handles a
// contiguous range of the column's escape-bit words, so slots follow block order.

const THREADS: u32 = 256u;

@group(0) @binding(0) var<uniform> params: UniversalCompactParams;
@group(0) @binding(1) var<storage, read> escape_bits: array<u32>;
@group(0) @binding(2) var<storage, read> dense_ids: array<u32>;
@group(0) @binding(3) var<storage, read> column_starts: array<u32>;
@group(0) @binding(4) var<storage, read_write> escape_starts: array<u32>;
@group(0) @binding(5) var<storage, read_write> escape_ids: array<atomic<u32>>;

var<workgroup> lane_counts: array<u32, 256>;

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
  let per_lane = (params.bit_words + THREADS - 1u) / THREADS;
  let first = min(lane * per_lane, params.bit_words);
  let last = min(first + per_lane, params.bit_words);
  let words = column * params.bit_words;
  var count = 0u;
  for (var w = first; w < last; w = w + 1u) {
    count = count + countOneBits(escape_bits[words + w]);
  }
  lane_counts[lane] = count;
  workgroupBarrier();
  // Exclusive prefix over the lanes, serially by lane 0 (256 additions per column).
  if (lane == 0u) {
    var running = 0u;
    for (var l = 0u; l < THREADS; l = l + 1u) {
      let here = lane_counts[l];
      lane_counts[l] = running;
      running = running + here;
    }
  }
  workgroupBarrier();
  var slot = column_starts[column] + lane_counts[lane];
  for (var w = first; w < last; w = w + 1u) {
    escape_starts[words + w] = slot;
    var bits = escape_bits[words + w];
    while (bits != 0u) {
      let block = w * 32u + firstTrailingBit(bits);
      let id = (dense_ids[column * params.dense_words + (block >> 2u)] >> ((block & 3u) * 8u)) & 255u;
      atomicOr(&escape_ids[slot >> 2u], id << ((slot & 3u) * 8u));
      slot = slot + 1u;
      bits = bits & (bits - 1u);
    }
  }
}
