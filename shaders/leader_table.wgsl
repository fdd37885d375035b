// The packed leader table of the int8-input GEMVs (shaders/gemv_i8_common.wgsl's kernels and the D3
// quad GEMV, shaders/d3_quad_gemv_i8.wgsl): LEADER_COPIES copies of LEADER_TABLE_ENTRIES words, one
// leader as packed i8 per word, in workgroup memory. The module defines LEADER_COUNT, LEADER_COPIES,
// LEADER_TABLE_ENTRIES, THREADS and gemv_leader(code, 0u) (the lattice's decode).
//
// The leader table holds LEADER_COPIES copies (generated, i8LeaderCopies in gemvI8Common.ts: 16 by
// default where the workgroup memory holds them, 8 for the universal kernel, which an H200 ran 1.22×
// faster with 8 than with 16: UNIVERSAL_I8_DEFAULT_LEADER_COPIES, 32 for the D3 quad GEMV:
// D3_QUAD_DEFAULT_LEADER_COPIES; 1 to 32 on request), entry e of copy c at word
// e·LEADER_COPIES + c, and lane l reads copy l mod LEADER_COPIES. A warp's 32 lookups take one pass
// through the 32 banks of workgroup memory only if no two lanes read different words of one bank:
// with 32 copies lane l always reads bank l (1 pass); with 16, lanes l and l + 16 share theirs (2.00
// passes on average); with 8 or fewer the lanes of a copy meet at random in its banks, so 8 copies
// take 2.93 passes and 1 copy 3.06 (bench/leaderBankPasses.ts, on real codes and uniform ones alike).
// Why 16 (an estimate for an NVIDIA H200, bench/README.md "An H200's budget per byte"): an SM's
// load/store path takes one warp-wide lookup per clock and pass, and it issues 128 lane-instructions
// per clock. Per 2 KB of a warp's codes (64 blocks per lane; ≈ 139 clocks of the SM's share of HBM
// with the scale indices) the deterministic kernel's ≈ 15 instructions per block take ≈ 240 clocks
// of issue; its lookups with 8 copies ≈ 190 passes, plus the code, side-bit and x̂ loads (≈ 72):
// ≈ 260, the bound. 16 copies take ≈ 128 passes (≈ 200 in all), below the issue's 240, so 32
// (≈ 136) would gain nothing more and double the fill before the loop (27 KB of stores, ≈ 216
// passes per workgroup, a few percent of a 4096-row layer's loop). The benchmark times 8 and 32
// beside the default (`leaderCopies`), since a GPU may disagree. Each entry is a leader as packed i8
// (its three coordinates in the low three bytes). A copy holds LEADER_TABLE_ENTRIES entries: the
// LEADER_COUNT leaders, or on request (padLeaderTable) 256, every value of a code byte (those past
// LEADER_COUNT 0), so that the index Tint clamps, code·LEADER_COPIES + replica, can never exceed the
// table's last word and a GPU's compiler could drop the clamp (i8LeaderEntries in gemvI8Common.ts).
var<workgroup> leader_table: array<u32, LEADER_TABLE_ENTRIES * LEADER_COPIES>;

fn pack_i8x3(p: vec3<i32>) -> u32 {
  return (u32(p.x) & 0xffu) | ((u32(p.y) & 0xffu) << 8u) | ((u32(p.z) & 0xffu) << 16u);
}

// Decodes the LEADER_COUNT leaders into `leader_table` (every copy; the padding past them, 0); the
// caller adds a barrier.
// Invocation e decodes leader e once and stores its copies in a rotated order (copy (k + e) mod
// LEADER_COPIES at step k), so the 32 invocations of a warp store to 32 different banks at each step
// when there are 32 copies.
fn fill_leader_table(thread: u32) {
  for (var e = thread; e < LEADER_TABLE_ENTRIES; e = e + THREADS) {
    var entry = 0u;
    if (e < LEADER_COUNT) {
      let p = gemv_leader(e, 0u);
      entry = pack_i8x3(vec3<i32>(p[0], p[1], p[2]));
    }
    for (var k = 0u; k < LEADER_COPIES; k = k + 1u) {
      leader_table[e * LEADER_COPIES + (k + e) % LEADER_COPIES] = entry;
    }
  }
}
