import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { LatticeMatmulError } from '../../src/errors.js';
import { createKernelBindGroup, createKernelPipeline, KernelPipelines } from '../../src/gpu/pipelines.js';
import { runAndRead } from '../../src/gpu/runAndRead.js';
import { UniformLayout, type UniformMemberType, type UniformScalar } from '../../src/gpu/uniformLayout.js';
import { UniformPacker } from '../../src/gpu/uniforms.js';
import { contextOnTestDevice, f32Bits, gpuUnavailableReason, hex } from './gpuTestDevice.js';

/*
 * UniformLayout: one declaration gives the WGSL struct and the host's bytes. The offsets follow WGSL's
 * layout rules (a 4-byte scalar: alignment 4; array<vec4<T>, N>: alignment 16, size 16·N; a member
 * starts at the next multiple of its alignment). The CPU tests check offsets worked out by hand from
 * those rules and the bytes the kernels packed by hand before (explicit pad words); the GPU test lets
 * WGSL itself read every member of random layouts and compares the bits with the values packed.
 */

const noGpu = await gpuUnavailableReason();

/** The u32 words of packed bytes. */
function words(packer: UniformPacker): number[] {
  return Array.from(new Uint32Array(packer.bytes().buffer));
}

describe('UniformLayout on the CPU', () => {
  it.each<[string, Record<string, UniformMemberType>, Record<string, number>, number]>([
    // Scalars only: 4 bytes each, no padding; the struct's alignment is 4.
    ['scalars', { a: 'u32', b: 'i32', c: 'f32' }, { a: 0, b: 4, c: 8 }, 12],
    // An array after one scalar starts at the next multiple of 16.
    ['scalar then array', { a: 'u32', m: 'array<vec4<i32>, 2>' }, { a: 0, m: 16 }, 48],
    // A scalar after an array needs no padding; the struct size rounds up to 16.
    ['array, scalar, array', { m: 'array<vec4<u32>, 1>', s: 'f32', n: 'array<vec4<f32>, 3>' }, { m: 0, s: 16, n: 32 }, 80],
    ['array, scalar', { m: 'array<vec4<u32>, 1>', s: 'f32' }, { m: 0, s: 16 }, 32],
    // Four scalars fill 16 bytes exactly: no padding before the array.
    ['four scalars then array', { a: 'u32', b: 'u32', c: 'u32', d: 'u32', m: 'array<vec4<i32>, 4>' }, { a: 0, d: 12, m: 16 }, 80],
  ])('%s: offsets and size follow the WGSL rules', (_name, members, offsets, byteSize) => {
    const layout = new UniformLayout('Probe', members);
    for (const [name, offset] of Object.entries(offsets)) expect(layout.offsetOf(name), name).toBe(offset);
    expect(layout.byteSize).toBe(byteSize);
  });

  it('generates the WGSL struct in declaration order', () => {
    const layout = new UniformLayout('GemvParams', { cols: 'u32', scale: 'f32', multiples: 'array<vec4<i32>, 4>' });
    expect(layout.wgsl()).toBe('struct GemvParams {\n  cols: u32,\n  scale: f32,\n  multiples: array<vec4<i32>, 4>,\n}\n');
  });

  it('packs scalars and arrays at their offsets with zeros in the padding', () => {
    const layout = new UniformLayout('P', { a: 'u32', b: 'i32', m: 'array<vec4<i32>, 2>', s: 'f32' });
    const packed = words(layout.pack({ a: 7, b: -2, m: [1, -1, 2, -2, 3, -3, 4, -4], s: 0.1 }));
    const minus = (v: number) => v >>> 0;
    expect(packed).toEqual([7, minus(-2), 0, 0, 1, minus(-1), 2, minus(-2), 3, minus(-3), 4, minus(-4), f32Bits(0.1), 0, 0, 0]);
  });

  // The kernels packed these structs by hand, with explicit pad words before the arrays; a layout that
  // lists only the data members must give the same bytes.
  it.each([
    ['29 scalars then two array<vec4<i32>, 4> (e8 matmul)', 29, 3, 'i32', 4, 2],
    ['25 scalars then array<vec4<i32>, 4> (lattice gemv)', 25, 3, 'i32', 4, 1],
    ['22 scalars then array<vec4<u32>, 5> (hadamard)', 22, 2, 'u32', 5, 1],
    ['6 scalars then four arrays (lattice table)', 6, 2, 'i32', 16, 4],
    ['16 scalars then array<vec4<i32>, 4> (lattice dequantize)', 16, 0, 'i32', 4, 1],
  ] as const)('%s: the same bytes as the hand-padded packer', (_name, scalars, pads, scalar, vectors, arrays) => {
    const members: Record<string, UniformMemberType> = {};
    const values: Record<string, number | number[]> = {};
    const byHand = new UniformPacker();
    for (let i = 0; i < scalars; i++) {
      members[`s${i}`] = i % 3 === 2 ? 'f32' : 'u32';
      values[`s${i}`] = i % 3 === 2 ? i + 0.25 : 1000 + i;
      if (i % 3 === 2) byHand.f32(i + 0.25, `s${i}`);
      else byHand.u32(1000 + i, `s${i}`);
    }
    for (let p = 0; p < pads; p++) byHand.u32(0, `pad${p}`);
    for (let k = 0; k < arrays; k++) {
      members[`m${k}`] = `array<vec4<${scalar}>, ${vectors}>`;
      const data = Array.from({ length: 4 * vectors }, (_, i) => (scalar === 'i32' ? (i % 2 === 0 ? -i - k : i + k) : i * 1000 + k));
      values[`m${k}`] = data;
      for (const v of data) byHand[scalar](v, `m${k}`);
    }
    const layout = new UniformLayout('HandPacked', members);
    expect(words(layout.pack(values))).toEqual(words(byHand));
  });

  it.each<[string, () => unknown, RegExp]>([
    ['a missing value', () => new UniformLayout('P', { a: 'u32', b: 'u32' }).pack({ a: 1 } as never), /P\.b has no value/],
    ['an unknown member', () => new UniformLayout('P', { a: 'u32' }).pack({ a: 1, z: 2 } as never), /P has no member z/],
    ['an array of the wrong length', () => new UniformLayout('P', { m: 'array<vec4<i32>, 2>' }).pack({ m: [1, 2, 3] }), /P\.m .* needs 8 values, got 3/],
    ['a number for an array', () => new UniformLayout('P', { m: 'array<vec4<i32>, 1>' }).pack({ m: 4 as never }), /P\.m .* needs 4 values, got number/],
    ['an array for a scalar', () => new UniformLayout('P', { a: 'u32' }).pack({ a: [1] as never }), /P\.a must be a number, got object/],
    ['an array entry out of range', () => new UniformLayout('P', { m: 'array<vec4<u32>, 2>' }).pack({ m: [0, 0, 0, 0, 0, 0, -1, 0] }), /P\.m\[1\]\[2\] must be an integer/],
    ['a non-finite f32', () => new UniformLayout('P', { s: 'f32' }).pack({ s: Number.NaN }), /P\.s must be finite/],
    ['an i32 out of range', () => new UniformLayout('P', { s: 'i32' }).pack({ s: 2 ** 31 }), /P\.s must be an integer in \[-2\^31/],
    ['no members', () => new UniformLayout('P', {}), /P needs at least one member/],
    ['a vec3 array', () => new UniformLayout('P', { m: 'array<vec3<f32>, 2>' as never }), /P\.m: type must be .* got 'array<vec3<f32>, 2>'/],
    ['an empty array', () => new UniformLayout('P', { m: 'array<vec4<f32>, 0>' }), /P\.m: type must be/],
    ['a fractional length', () => new UniformLayout('P', { m: 'array<vec4<f32>, 1.5>' }), /P\.m: type must be/],
    ['a bare vec4', () => new UniformLayout('P', { m: 'vec4<f32>' as never }), /P\.m: type must be/],
    ['a member name that is not an identifier', () => new UniformLayout('P', { 'a-b': 'u32' }), /member name 'a-b'/],
    ['a struct name that is not an identifier', () => new UniformLayout('1P', { a: 'u32' }), /struct name '1P'/],
  ])('refuses %s with LatticeMatmulError', (_name, run, message) => {
    expect(run).toThrow(LatticeMatmulError);
    expect(run).toThrow(message);
  });

  it('UniformPacker.padTo refuses to move backwards or off a word boundary', () => {
    expect(() => new UniformPacker().u32(1, 'a').u32(2, 'b').padTo(4)).toThrow(/at or past byte 8, got 4/);
    expect(() => new UniformPacker().padTo(6)).toThrow(LatticeMatmulError);
    expect(words(new UniformPacker().u32(5, 'a').padTo(12).u32(6, 'b'))).toEqual([5, 0, 0, 6]);
    expect(words(new UniformPacker().u32(5, 'a').padTo(16).u32(6, 'b'))).toEqual([5, 0, 0, 0, 6, 0, 0, 0]);
  });
});

/** A random member type: a scalar or array<vec4<T>, N> with N in 1…4. */
const memberTypeArbitrary: fc.Arbitrary<UniformMemberType> = fc.oneof(
  fc.constantFrom<UniformScalar>('u32', 'i32', 'f32'),
  fc
    .tuple(fc.constantFrom<UniformScalar>('u32', 'i32', 'f32'), fc.integer({ min: 1, max: 4 }))
    .map(([scalar, n]): UniformMemberType => `array<vec4<${scalar}>, ${n}>`),
);

/** A value of scalar type `scalar`: the whole range, f32 finite and normal or zero (loads may flush subnormals). */
function scalarValue(scalar: UniformScalar): fc.Arbitrary<number> {
  if (scalar === 'u32') return fc.integer({ min: 0, max: 0xffffffff });
  if (scalar === 'i32') return fc.integer({ min: -0x80000000, max: 0x7fffffff });
  return fc
    .float({ noNaN: true, noDefaultInfinity: true })
    .filter((x) => x === 0 || Math.abs(x) >= 2 ** -126)
    .map((x) => (Object.is(x, -0) ? 0 : x));
}

/** Random layouts (1…8 members) with one value per component. */
const layoutCaseArbitrary = fc.array(memberTypeArbitrary, { minLength: 1, maxLength: 8 }).chain((types) =>
  fc.tuple(
    fc.constant(types),
    fc.tuple(
      ...types.map((type) => {
        const match = /^array<vec4<(u32|i32|f32)>, (\d+)>$/.exec(type);
        return match === null
          ? scalarValue(type as UniformScalar).map((v): number | number[] => v)
          : fc.array(scalarValue(match[1] as UniformScalar), { minLength: 4 * Number(match[2]), maxLength: 4 * Number(match[2]) });
      }),
    ),
  ),
);

/** The bits WGSL reads for `value` of type `scalar`. */
function bitsOf(scalar: UniformScalar, value: number): number {
  return scalar === 'f32' ? f32Bits(value) : value >>> 0;
}

describe.skipIf(noGpu !== undefined)('UniformLayout read by WGSL', () => {
  const suite = contextOnTestDevice();

  /** Runs a kernel that copies every component of `params` (as u32 bits, in declaration order) to `out`. */
  async function readBack(layout: UniformLayout<Record<string, UniformMemberType>>, values: Record<string, number | number[]>, components: number): Promise<number[]> {
    const copies: string[] = [];
    let k = 0;
    for (const [name, type] of Object.entries(layout.members)) {
      const match = /^array<vec4<(?:u32|i32|f32)>, (\d+)>$/.exec(type);
      if (match === null) copies.push(`out[${k++}] = bitcast<u32>(params.${name});`);
      else {
        for (let e = 0; e < Number(match[1]); e++) for (let c = 0; c < 4; c++) copies.push(`out[${k++}] = bitcast<u32>(params.${name}[${e}][${c}]);`);
      }
    }
    const code = `${layout.wgsl()}
@group(0) @binding(0) var<uniform> params: ${layout.structName};
@group(0) @binding(1) var<storage, read_write> out: array<u32>;
@compute @workgroup_size(1)
fn main() {
  ${copies.join('\n  ')}
}`;
    const pipelines = new KernelPipelines({
      label: 'uniform layout probe',
      bindings: ['uniform', 'storage'],
      compile: (device, pipelineLayout) => createKernelPipeline(device, pipelineLayout, { label: 'uniform layout probe', code }),
    });
    const device = suite.context.device;
    const data = await runAndRead(device, 'uniform layout probe', 4 * components, (run) => {
      const { layout: bindGroupLayout, pipeline } = pipelines.get(device);
      const out = run.storage('uniform layout probe out', 4 * components);
      const params = run.scratch.uniform('uniform layout probe params', layout.pack(values));
      const pass = run.encoder.beginComputePass({ label: 'uniform layout probe' });
      pass.setPipeline(pipeline);
      pass.setBindGroup(0, createKernelBindGroup(device, bindGroupLayout, 'uniform layout probe', [{ buffer: params }, { buffer: out }]));
      pass.dispatchWorkgroups(1);
      pass.end();
      return out;
    });
    return Array.from(new Uint32Array(data));
  }

  it('WGSL reads every member of random layouts with the bits that were packed', async () => {
    await fc.assert(
      fc.asyncProperty(layoutCaseArbitrary, async ([types, memberValues]) => {
        const members: Record<string, UniformMemberType> = {};
        const values: Record<string, number | number[]> = {};
        const expected: number[] = [];
        types.forEach((type, i) => {
          members[`m${i}`] = type;
          const value = memberValues[i] as number | number[];
          values[`m${i}`] = value;
          const scalar = (type.length === 3 ? type : /vec4<(u32|i32|f32)>/.exec(type)?.[1]) as UniformScalar;
          for (const v of typeof value === 'number' ? [value] : value) expected.push(bitsOf(scalar, v));
        });
        const layout = new UniformLayout('Probe', members);
        const read = await readBack(layout, values, expected.length);
        expect(read.map(hex), layout.wgsl()).toEqual(expected.map(hex));
      }),
      { seed: 20261130, numRuns: 24 },
    );
  });
});
