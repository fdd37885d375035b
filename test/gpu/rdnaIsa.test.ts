import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { analyzeRdnaIsa, compileRdnaIsa, rdnaLoopStats, rdnaTools, spirvBindings } from '../../bench/gpu/rdnaIsa.js';
import { splitDumps } from '../../bench/gpu/spirv.js';
import { tableLayout } from '../../src/gpu/tableLayout.js';

/*
 * The RDNA3 instruction counter of the GPU benchmark (bench/gpu/rdnaIsa.ts): first on a hand-written
 * disassembly in the form RADV prints (expected counts worked out by hand below), then end to end on
 * the kernels' own SPIR-V as Dawn emits it, compiled by RADV's null device, where the facts checked
 * come from the WGSL (bytes each iteration loads, loads issued before the first wait).
 */

// Bindings 0 (uniform), 1 (the codes) and 2: their descriptors at 0x0, 0x10 and 0x20 of the set.
// The inner loop BB1 … the back edge to BB1, with a nested loop BB2 of 4 trips (s5 from 0, +1, ≥ 4):
//   BB1: buffer_load_b128 (codes, 16 bytes) vmem, buffer_load_b32 (binding 2) vmem, s_waitcnt (not
//        counted), v_add valu, s_mov s5 salu
//   BB2 × 4: v_mul_lo_u32 quarter-rate, ds_load lds, s_add salu, s_cmp salu, s_cbranch branch
//   BB3: s_waitcnt, v_dot4 valu, s_add salu, s_cmp salu, s_cbranch branch
// valu 2, quarter-rate 4, lds 4, salu 1 + 8 + 2 = 11, vmem 2, branch 4 + 1 = 5: 28 instructions, 16
// code bytes. Loads in flight: 2 before vmcnt(1).
const DISASSEMBLY = `
shader: MESA_SHADER_COMPUTE
(the NIR and ACO's IR come first; only what follows "disasm:" is read)
BB0:
	v_mov_b32 v9, 0 ; 00000000
disasm:
BB0:
	s_load_b128 s[8:11], s[2:3], 0x10                           ; f4084201 f8000010
	s_load_b128 s[12:15], s[2:3], 0x20                          ; f4084301 f8000020
	s_mov_b32 s4, 0                                             ; be840080
BB1:
	buffer_load_b128 v[0:3], v1, s[8:11], 0 offen               ; e05c0000 80020001
	buffer_load_b32 v4, v1, s[12:15], 0 offen                   ; e0500000 80030401
	s_waitcnt vmcnt(1)                                          ; bf8907f7
	v_add_nc_u32_e32 v5, v0, v1                                 ; 4a0a0300
	s_mov_b32 s5, 0                                             ; be850080
BB2:
	v_mul_lo_u32 v5, v5, v2                                     ; d72c0005 00020505
	ds_load_b32 v6, v5                                          ; d8d80000 06000005
	s_add_u32 s5, s5, 1                                         ; 80058105
	s_cmp_ge_u32 s5, 4                                          ; bf098405
	s_cbranch_scc0 BB2                                          ; bfa1fffb
BB3:
	s_waitcnt vmcnt(0)                                          ; bf8903f7
	v_dot4_i32_iu8 v7, v3, v4, v7                               ; cc160007 041e0903
	s_add_u32 s4, s4, 1                                         ; 80048104
	s_cmp_lg_u32 s4, s6                                         ; bf070604
	s_cbranch_scc1 BB1                                          ; bfa2fff3
BB4:
	s_endpgm                                                    ; bfb00000
`;

describe('analyzeRdnaIsa (hand-written disassembly)', () => {
  it('counts the inner loop by unit, nested loops times their trips, code bytes from the code binding only', () => {
    const stats = analyzeRdnaIsa(DISASSEMBLY, [0, 1, 2], [1], 'test compiler');
    expect(stats.instructions).toBe(28);
    expect(stats.codeBytes).toBe(16);
    expect(stats.perCodeByte).toBe(28 / 16);
    expect(stats.perCodeByteByClass).toEqual({ valu: 2 / 16, valuQuarterRate: 4 / 16, salu: 11 / 16, vmem: 2 / 16, lds: 4 / 16, smem: 0, branch: 5 / 16 });
    expect(stats.loadsInFlight).toBe(2);
    expect(stats.unknownTrips).toBe(0);
    expect(stats.compiler).toBe('test compiler');
  });

  it('counts a nested loop whose trip count it cannot read once, and says so', () => {
    const text = DISASSEMBLY.replace('s_cmp_ge_u32 s5, 4', 's_cmp_ge_u32 s5, s7');
    const stats = analyzeRdnaIsa(text, [0, 1, 2], [1], '');
    expect(stats.instructions).toBe(28 - 3 * 5);
    expect(stats.unknownTrips).toBe(1);
  });

  it('counts by opcode, and a nested loop of unknown trips as many times as the caller assumes (exactly one count per such loop)', () => {
    const text = DISASSEMBLY.replace('s_cmp_ge_u32 s5, 4', 's_cmp_ge_u32 s5, s7');
    const stats = analyzeRdnaIsa(text, [0, 1, 2], [1], '', { assumedTrips: [4] });
    // The same as the loop with its trip count in the code (first test).
    expect(stats.instructions).toBe(28);
    expect(stats.unknownTrips).toBe(1);
    expect(stats.opcodes).toEqual({
      buffer_load_b128: 1,
      buffer_load_b32: 1,
      v_add_nc_u32_e32: 1,
      s_mov_b32: 1,
      v_mul_lo_u32: 4,
      ds_load_b32: 4,
      s_add_u32: 5,
      s_cmp_ge_u32: 4,
      s_cbranch_scc0: 4,
      v_dot4_i32_iu8: 1,
      s_cmp_lg_u32: 1,
      s_cbranch_scc1: 1,
    });
    expect(() => analyzeRdnaIsa(text, [0, 1, 2], [1], '', { assumedTrips: [] })).toThrow(/1 nested loop\(s\) of unknown trip count, but 0 trip count\(s\) were assumed/);
    expect(() => analyzeRdnaIsa(DISASSEMBLY, [0, 1, 2], [1], '', { assumedTrips: [4] })).toThrow(/0 nested loop\(s\) of unknown trip count, but 1/);
  });

  it('takes the innermost loop that loads codes, or with `outermost` the outermost', () => {
    // A code load inside the nested loop BB2 too: the innermost loop is now BB2 (5 + 1 instructions,
    // 4 code bytes), the outermost still BB1 (its 13, BB2's 6 four times; 16 + 4·4 code bytes).
    const text = DISASSEMBLY.replace('\ts_add_u32 s5, s5, 1', '\tbuffer_load_b32 v8, v1, s[8:11], 0 offen ; 00000000\n\ts_add_u32 s5, s5, 1');
    const inner = analyzeRdnaIsa(text, [0, 1, 2], [1], '');
    expect(inner.instructions).toBe(6);
    expect(inner.codeBytes).toBe(4);
    const outer = analyzeRdnaIsa(text, [0, 1, 2], [1], '', { outermost: true });
    expect(outer.instructions).toBe(28 + 4);
    expect(outer.codeBytes).toBe(16 + 16);
  });

  it('takes the binding from the descriptor last loaded into the registers (b256: two descriptors)', () => {
    // One s_load_b256 at 0x10 loads bindings 1 and 2 into s[8:11] and s[12:15]: with binding 2 as the
    // codes, the b32 load is the code load (4 bytes).
    const text = DISASSEMBLY.replace('s_load_b128 s[8:11], s[2:3], 0x10', 's_load_b256 s[8:15], s[2:3], 0x10').replace(
      's_load_b128 s[12:15], s[2:3], 0x20',
      's_nop 0',
    );
    expect(analyzeRdnaIsa(text, [0, 1, 2], [2], '').codeBytes).toBe(4);
    // Binding numbers need not be consecutive: descriptors follow their order.
    expect(analyzeRdnaIsa(DISASSEMBLY, [0, 4, 9], [4], '').codeBytes).toBe(16);
  });

  it('refuses output without a disassembly or without a loop that loads codes', () => {
    expect(() => analyzeRdnaIsa('nothing here', [0, 1], [1], '')).toThrow(/no disassembly/);
    expect(() => analyzeRdnaIsa(DISASSEMBLY, [0, 1, 2], [0], '')).toThrow(/no loop loads from the code bindings/);
  });

  it('reads the bindings and their WGSL names from Tint\'s SPIR-V', () => {
    const spirv = [
      '%19 = OpVariable %_ptr_Uniform_params_block_tint_explicit_layout Uniform',
      '%25 = OpVariable %_ptr_StorageBuffer_escape_nibbles_block_tint_explicit_layout StorageBuffer',
      '%29 = OpVariable %_ptr_StorageBuffer_codes_block_tint_explicit_layout StorageBuffer',
      'OpDecorate %29 Binding 1',
      'OpDecorate %19 Binding 0',
      'OpDecorate %25 Binding 2',
    ].join('\n');
    expect(spirvBindings(spirv)).toEqual([
      { binding: 0, uniform: true, name: 'params' },
      { binding: 1, uniform: false, name: 'codes' },
      { binding: 2, uniform: false, name: 'escape_nibbles' },
    ]);
  });
});

const tools = rdnaTools();
// CI installs them (scripts/ensure-system.sh): there missing tools are a broken setup, not a skip.
if (!tools.ok && process.env.CI) throw new Error(`CI: the RDNA3 machine-code checks cannot run: ${tools.reason}`);

describe.skipIf(!tools.ok)(`RDNA3 machine code of the benchmark's kernels (RADV null device)${tools.ok ? '' : `: skipped, ${tools.reason}`}`, () => {
  // The benchmark's SPIR-V child compiles each kernel with Dawn's shader dumps on (bench/gpu.ts); run
  // once, when the first test needs it.
  let dumps: Map<string, string> | null = null;
  let childNote = '';
  const dump = (moduleKey: string): string | undefined => {
    if (dumps === null) {
      const request = { subgroups: true, f16: false, universal: [], deterministic: [], int8DotPaths: ['packed'], workgroupBytes: 16384 };
      const child = spawnSync(process.execPath, ['--import', 'tsx', '--import', './scripts/raw-loader.mjs', 'bench/gpu.ts', '--spirv-child', JSON.stringify(request)], {
        encoding: 'utf8',
        maxBuffer: 512 * 2 ** 20,
        timeout: 120_000,
      });
      childNote = `child exit ${child.status}: ${(child.stderr ?? '').slice(-300)}`;
      dumps = splitDumps(child.stdout ?? '');
    }
    return dumps.get(moduleKey);
  };
  const count = (moduleKey: string, codeVariables: readonly string[]) => {
    const spirv = dump(moduleKey);
    if (spirv === undefined || !tools.ok) throw new Error(`no SPIR-V dump of ${moduleKey} (${childNote})`);
    return rdnaLoopStats(compileRdnaIsa(spirv, tools, 'dawn_entry_point'), spirv, codeVariables);
  };

  it('the streaming read: 4 loads of 16 bytes per iteration, all in flight before the first wait (shaders/stream_read.wgsl, UNROLL = 4)', () => {
    const stats = count('stream', ['data']);
    expect(stats.codeBytes).toBe(64);
    expect(stats.perCodeByteByClass.vmem).toBe(4 / 64);
    expect(stats.loadsInFlight).toBe(4);
    expect(stats.compiler).toMatch(/RADV|radv/);
  });

  // Each lane loads LANE_COLUMNS·STEP_QUADS = 4 code quads per step (shaders/gemv_i8_common.wgsl), and
  // their side words, before decoding any: all of them must be in flight together.
  it('the deterministic D3 GEMV (int8 inputs): 4 quads and their 8 index words per step, all issued before a wait', () => {
    const stats = count('lattice-i8-packed-cubic', ['codes']);
    expect(stats.codeBytes).toBe(64);
    expect(stats.loadsInFlight).toBeGreaterThanOrEqual(12);
  });

  it('the universal D3 GEMV (int8 inputs): 4 quads and their 4 nibble pairs per step in flight together, the rare escapes\' search after the decode', () => {
    const stats = count('universal-i8-packed', ['codes']);
    expect(stats.codeBytes).toBe(64);
    expect(stats.loadsInFlight).toBeGreaterThanOrEqual(8);
  });

  it('the E8 residue GEMV: 4 residue quads and 4 side words per step, all issued before a wait', () => {
    const stats = count('e8-residue-i8-packed', ['quad_words']);
    expect(stats.codeBytes).toBe(64);
    expect(stats.loadsInFlight).toBeGreaterThanOrEqual(8);
  });

  it('the E8 point GEMV: 8 point vectors per step, all issued before a wait', () => {
    const stats = count('e8-point-i8-packed', ['points']);
    expect(stats.codeBytes).toBe(128);
    expect(stats.loadsInFlight).toBeGreaterThanOrEqual(8);
  });

  // The products' slice loops (bench/gpu/instructionStats.ts, productSubjects): one iteration stages a
  // slice of A and B and accumulates an invocation's 4 × 4 entries over it. What each kernel's WGSL
  // does per pair of its units must be what the machine code does, once per pair: a test of the count
  // (loop choice, assumed trips) and of the kernels' structure.
  const slice = (moduleKey: string, codeVariables: readonly string[], assumedTrips: readonly number[]) => {
    const spirv = dump(moduleKey);
    if (spirv === undefined || !tools.ok) throw new Error(`no SPIR-V dump of ${moduleKey} (${childNote})`);
    const stats = rdnaLoopStats(compileRdnaIsa(spirv, tools, 'dawn_entry_point'), spirv, codeVariables, { outermost: true, assumedTrips });
    const ops = (pattern: RegExp) => Object.entries(stats.opcodes).reduce((sum, [op, n]) => sum + (pattern.test(op) ? n : 0), 0);
    return { stats, ops };
  };
  const PAIRS = 16; // an invocation's 4 × 4 entries of C

  it('the f32 matmul: one FMA per multiply-accumulate (SLICE = 16 coordinates per slice)', () => {
    const { stats, ops } = slice('mac-f32', ['a', 'b'], []);
    expect(ops(/^v_(fmac|fma|mac|mad)_f32/)).toBe(PAIRS * 16);
    expect(stats.unknownTrips).toBe(0);
  });

  it('the D3 product (leaders layout, packed dot): one packed dot product per pair of blocks, the leaders decoded at the copy', () => {
    const layout = tableLayout('leaders', 16384);
    if (layout === null) throw new Error('the leaders layout fits 16 KB');
    const { stats, ops } = slice('mac-d3-leaders-packed', ['a_codes', 'b_codes'], [layout.sliceBlocks]);
    expect(ops(/^v_dot4_i32_iu8/)).toBe(PAIRS * layout.sliceBlocks);
    // k_a·k_b·entry: two 32-bit multiplies per pair (quarter rate on RDNA3), a few more at the copy.
    const multiplies = ops(/^v_mul_lo_u32/);
    expect(multiplies).toBeGreaterThanOrEqual(2 * PAIRS * layout.sliceBlocks);
    expect(multiplies).toBeLessThan(2 * PAIRS * layout.sliceBlocks + 32);
    expect(stats.unknownTrips).toBe(1);
  });

  it('the E8 product (packed dot): two packed dot products per pair of blocks (8 coordinates)', () => {
    const { ops } = slice('product-e8-q16-deterministic-packed', ['a_codes', 'b_codes'], [4, 1, 8]);
    expect(ops(/^v_dot4_i32_iu8/)).toBe(2 * PAIRS * 8);
  });

  it('the universal pair product (packed dot): six packed dot products per pair of units, its slices read 16 bytes at a time', () => {
    const { ops } = slice('mac-pair-packed', ['a_pairs', 'b_pairs'], [8]);
    expect(ops(/^v_dot4_i32_iu8/)).toBe(6 * PAIRS * 8);
    // Per unit step, 4 vec4 of A and 4 of B.
    expect(ops(/^ds_load_b128/)).toBe(8 * 8);
  });
});
