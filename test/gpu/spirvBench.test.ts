import { describe, expect, it } from 'vitest';
import { analyzeSpirv, pipeClass, splitDumps, uniformWords } from '../../bench/gpu/spirv.js';

/*
 * The SPIR-V instruction counter of the GPU benchmark (bench/gpu/spirv.ts) on a hand-written module in
 * the form Tint emits (function variables with loads and stores, loops with OpLoopMerge, the uniform
 * buffer as an array of vec4<u32>). Expected counts are worked out by hand below, from the counting
 * rules in the module comment.
 */

// main: for (g = 0; g < params.n; g++) {            ← the inner loop (loads `codes`)
//   w = codes[g];                                    OpAccessChain 1 + OpLoad 1 (vec4<u32>: 16 bytes)
//   s = w.x + w.y                                    OpIAdd 1 (extracts are free)
//   for (i = 0; i < 4; i++) { s = s * 3 }            nested: 4 × (ULessThan 1 + BranchConditional 1 + IMul 1 + IAdd 1) = 16
//   if (params.mode == 1) { s = f(s) } else { v = vec4(s) + vec4(1) }   taken side only when mode is known
//   acc += s                                         IAdd 1
// }
// f(a) = a ^ 5 (BitwiseXor 1); the else side adds a vec4 (4). Loop header: ULessThan 1 + BranchConditional 1;
// the uniform read: AccessChain 1 + Load 1 + IEqual 1 + BranchConditional 1; continue: IAdd 1.
const MODULE = `
; SPIR-V
               OpCapability Shader
               OpDecorate %params Binding 0
               OpDecorate %codes Binding 1
       %uint = OpTypeInt 32 0
       %bool = OpTypeBool
     %v4uint = OpTypeVector %uint 4
     %uint_0 = OpConstant %uint 0
     %uint_1 = OpConstant %uint 1
     %uint_3 = OpConstant %uint 3
     %uint_4 = OpConstant %uint 4
     %uint_5 = OpConstant %uint 5
 %ptr_u_v4 = OpTypePointer Uniform %v4uint
 %ptr_s_v4 = OpTypePointer StorageBuffer %v4uint
 %ptr_f_u = OpTypePointer Function %uint
     %params = OpVariable %ptr_params Uniform
      %codes = OpVariable %_ptr_StorageBuffer_codes_block_tint_explicit_layout StorageBuffer
          %f = OpFunction %uint None %fn_type
          %a = OpFunctionParameter %uint
        %f_0 = OpLabel
        %f_1 = OpBitwiseXor %uint %a %uint_5
               OpReturnValue %f_1
               OpFunctionEnd
       %main = OpFunction %void None %void_fn
         %m0 = OpLabel
        %acc = OpVariable %ptr_f_u Function
          %g = OpVariable %ptr_f_u Function
          %i = OpVariable %ptr_f_u Function
          %s = OpVariable %ptr_f_u Function
               OpStore %acc %uint_0
               OpStore %g %uint_0
               OpBranch %h
          %h = OpLabel
               OpLoopMerge %exit %cont None
               OpBranch %test
       %test = OpLabel
         %g1 = OpLoad %uint %g
         %pc = OpAccessChain %ptr_u_v4 %params %uint_0 %uint_0
         %pv = OpLoad %v4uint %pc
         %pn = OpCompositeExtract %uint %pv 0
         %lt = OpULessThan %bool %g1 %pn
               OpSelectionMerge %body None
               OpBranchConditional %lt %body %exit
       %body = OpLabel
         %g2 = OpLoad %uint %g
         %wc = OpAccessChain %ptr_s_v4 %codes %uint_0 %g2
          %w = OpLoad %v4uint %wc
         %wx = OpCompositeExtract %uint %w 0
         %wy = OpCompositeExtract %uint %w 1
         %s0 = OpIAdd %uint %wx %wy
               OpStore %s %s0
               OpStore %i %uint_0
               OpBranch %ih
         %ih = OpLabel
               OpLoopMerge %iexit %icont None
               OpBranch %itest
      %itest = OpLabel
         %i1 = OpLoad %uint %i
         %ilt = OpULessThan %bool %i1 %uint_4
               OpSelectionMerge %ibody None
               OpBranchConditional %ilt %ibody %iexit
      %ibody = OpLabel
         %s1 = OpLoad %uint %s
         %s2 = OpIMul %uint %s1 %uint_3
               OpStore %s %s2
               OpBranch %icont
      %icont = OpLabel
         %i2 = OpLoad %uint %i
         %i3 = OpIAdd %uint %i2 %uint_1
               OpStore %i %i3
               OpBranch %ih
      %iexit = OpLabel
         %mc = OpAccessChain %ptr_u_v4 %params %uint_0 %uint_1
         %mv = OpLoad %v4uint %mc
         %mode = OpCompositeExtract %uint %mv 2
         %is1 = OpIEqual %bool %mode %uint_1
               OpSelectionMerge %join None
               OpBranchConditional %is1 %then %else
       %then = OpLabel
         %s3 = OpLoad %uint %s
         %s4 = OpFunctionCall %uint %f %s3
               OpStore %s %s4
               OpBranch %join
       %else = OpLabel
         %s5 = OpLoad %uint %s
         %sv = OpCompositeConstruct %v4uint %s5 %s5 %s5 %s5
         %sw = OpIAdd %v4uint %sv %sv
               OpBranch %join
       %join = OpLabel
         %a1 = OpLoad %uint %acc
         %s6 = OpLoad %uint %s
         %a2 = OpIAdd %uint %a1 %s6
               OpStore %acc %a2
               OpBranch %cont
       %cont = OpLabel
         %g3 = OpLoad %uint %g
         %g4 = OpIAdd %uint %g3 %uint_1
               OpStore %g %g4
               OpBranch %h
       %exit = OpLabel
               OpReturn
               OpFunctionEnd
`;

// Outer loop blocks without the branch: header test (AccessChain, Load, ULessThan, BranchConditional = 4),
// body (AccessChain, Load, IAdd = 3), nested loop 4 × 4 = 16, uniform branch (AccessChain, Load, IEqual,
// BranchConditional = 4), join (IAdd = 1), continue (IAdd = 1): 29.
const COMMON = 29;

describe('analyzeSpirv (bench/gpu/spirv.ts)', () => {
  it('counts both sides of an unknown branch, the nested constant loop 4 times, and 16 code bytes', () => {
    const stats = analyzeSpirv(MODULE, ['codes']);
    expect(stats.codeBytes).toBe(16);
    expect(stats.unknownTrips).toBe(0);
    expect(stats.instructions).toBe(COMMON + 1 + 4);
    expect(stats.perCodeByte).toBeCloseTo((COMMON + 5) / 16, 12);
  });

  it('follows only the taken side when the uniform member is known (mode = uniform word 6)', () => {
    expect(analyzeSpirv(MODULE, ['codes'], new Map([[6, 1]])).instructions).toBe(COMMON + 1);
    expect(analyzeSpirv(MODULE, ['codes'], new Map([[6, 0]])).instructions).toBe(COMMON + 4);
  });

  // By class, the 29 common instructions: address 3 (three access chains), memory 3 (two uniform
  // loads and the code load), branch 6 (the two tests and the nested loop's 4), integer multiply 4
  // (the nested IMul), ALU 13 (the rest); the taken side adds 1 ALU (mode 1: the xor) or 4 (mode 0:
  // the vec4 add).
  it('splits the count by the SM resource each instruction is assumed to use', () => {
    const common = { intMultiply: 4, float: 0, memory: 3, address: 3, branch: 6, other: 0 };
    const perByte = (counts: Record<string, number>): Record<string, number> => Object.fromEntries(Object.entries(counts).map(([c, n]) => [c, n / 16]));
    expect(analyzeSpirv(MODULE, ['codes'], new Map([[6, 1]])).perCodeByteByClass).toEqual(perByte({ alu: 14, ...common }));
    expect(analyzeSpirv(MODULE, ['codes'], new Map([[6, 0]])).perCodeByteByClass).toEqual(perByte({ alu: 17, ...common }));
    const stats = analyzeSpirv(MODULE, ['codes']);
    expect(Object.values(stats.perCodeByteByClass).reduce((a, b) => a + b, 0)).toBeCloseTo(stats.perCodeByte, 12);
  });

  it('puts an integer add of an integer product (through a bitcast) with the product: one IMAD', () => {
    const fused = MODULE.replace(
      '         %s0 = OpIAdd %uint %wx %wy',
      ['         %p0 = OpIMul %uint %wx %wy', '         %pb = OpBitcast %uint %p0', '         %s0 = OpIAdd %uint %pb %wy'].join('\n'),
    );
    const stats = analyzeSpirv(fused, ['codes'], new Map([[6, 1]]));
    expect(stats.instructions).toBe(COMMON + 2);
    expect(stats.perCodeByteByClass.alu).toBe(13 / 16);
    expect(stats.perCodeByteByClass.intMultiply).toBe(6 / 16);
  });

  it.each([
    ['OpShiftRightLogical', undefined, 'alu'],
    ['OpSelect', undefined, 'alu'],
    ['OpExtInst', 'UMin', 'alu'],
    ['OpIMul', undefined, 'intMultiply'],
    ['OpSDot', undefined, 'intMultiply'],
    ['OpFMul', undefined, 'float'],
    ['OpExtInst', 'Fma', 'float'],
    ['OpAtomicOr', undefined, 'memory'],
    ['OpAccessChain', undefined, 'address'],
    ['OpConvertSToF', undefined, 'other'],
    ['OpExtInst', 'Exp2', 'other'],
  ] as const)('puts %s %s in %s', (op, ext, expected) => {
    expect(pipeClass(op, ext)).toBe(expected);
  });

  it('refuses a module without the code binding or without a loop that loads it', () => {
    expect(() => analyzeSpirv(MODULE, ['weights'])).toThrow(/no storage variable named 'weights'/);
    expect(() => analyzeSpirv(MODULE.replace('%wc = OpAccessChain %ptr_s_v4 %codes', '%wc = OpAccessChain %ptr_s_v4 %params'), ['codes'])).toThrow(/no loop loads/);
  });
});

describe('uniformWords and splitDumps', () => {
  it('places members at WGSL word offsets (arrays of vec4 16-byte aligned)', () => {
    const wgsl = 'struct P {\n  a: u32,\n  b: f32,\n  table: array<vec4<i32>, 2>,\n  mode: u32,\n}\n';
    expect([...uniformWords(wgsl, 'P', { a: 3, mode: 1, missing: 9 })]).toEqual([
      [0, 3],
      [12, 1],
    ]);
  });

  it('pairs each SPIR-V dump with the marker of the WGSL dumped before it', () => {
    const output = ['info:', '// Dumped WGSL:', '// spirv-stats: one', 'fn main() {}', 'info:', '/* Dumped SPIRV disassembly */', 'OpCapability Shader', 'info:', '// Dumped WGSL:', '// spirv-stats: two', 'info:', '/* Dumped SPIRV disassembly */', 'OpNop'].join('\n');
    const dumps = splitDumps(output);
    expect([...dumps.keys()]).toEqual(['one', 'two']);
    expect(dumps.get('two')).toContain('OpNop');
  });
});
