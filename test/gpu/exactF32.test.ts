import { beforeAll, describe, expect, it } from 'vitest';
import { Rng } from '../../src/rotation/random.js';
import type { GpuContext } from '../../src/gpu/device.js';
import { createBuffer, createBufferWithData, readBuffer, STORAGE_USAGE } from '../../src/gpu/buffers.js';
import { withValidation } from '../../src/gpu/errorScopes.js';
import { createUniformBuffer, UniformPacker } from '../../src/gpu/uniforms.js';
import { workgroupGrid } from '../../src/gpu/workSplit.js';
import { exactF32Wgsl } from '../../src/gpu/kernels/exactF32.js';
import probeSource from './exactF32Probe.wgsl?raw';
import { contextOnTestDevice, f32Bits, f32FromBits, gpuUnavailableReason, hex } from './gpuTestDevice.js';

/*
 * shaders/exact_f32.wgsl against its CPU twins Math.fround(a / b) and Math.fround(Math.sqrt(x)):
 * the results must be bit-identical (any NaN counts as NaN). Inputs are chosen where rounding is
 * hardest: exact roots and quotients that sit next to a rounding midpoint, powers of two, the ends of
 * the normal range, subnormal inputs and results, and every special value.
 */

const noGpu = await gpuUnavailableReason();

const NAN_BITS = 0x7fc00000;
const SIGN = 0x80000000;

function isNaNBits(bits: number): boolean {
  return (bits & 0x7fffffff) >>> 0 > 0x7f800000;
}
function isNormalOrZeroBits(bits: number): boolean {
  const exponent = (bits >>> 23) & 0xff;
  return exponent !== 0 || (bits & 0x7fffff) === 0;
}

/** A positive normal f32 with a uniformly random significand and an exponent in [minExp, maxExp] (biased). */
function randomNormal(rng: Rng, minExp: number, maxExp: number): number {
  const exponent = minExp + rng.nextInt(maxExp - minExp + 1);
  return ((exponent << 23) | (rng.nextU32() & 0x7fffff)) >>> 0;
}

/** The f32 bit patterns nearest to `value` (a positive double): its rounding and the neighbours either side. */
function neighbourhood(value: number): number[] {
  const bits = f32Bits(value);
  return [bits - 1, bits, bits + 1].filter((b) => b > 0 && b < 0x7f800000);
}

interface Case {
  readonly a: number;
  readonly b: number;
}

function buildCases(): { sqrtCases: number[]; divCases: Case[]; pairs: Case[] } {
  const rng = new Rng(20250522);
  const sqrtCases: number[] = [];
  const divCases: Case[] = [];

  // Random positive normals: moderate range (normal quotients), then the whole normal range.
  for (let i = 0; i < 6000; i++) {
    sqrtCases.push(randomNormal(rng, 1, 254));
    divCases.push({ a: randomNormal(rng, 64, 190), b: randomNormal(rng, 64, 190) });
    divCases.push({ a: randomNormal(rng, 1, 254), b: randomNormal(rng, 1, 254) });
  }
  // Every bit pattern class: signs, subnormals, infinities, NaNs.
  for (let i = 0; i < 4000; i++) {
    sqrtCases.push(rng.nextU32());
    divCases.push({ a: rng.nextU32(), b: rng.nextU32() });
  }
  // Powers of two (normal and subnormal) against each other and against random values.
  for (let e = -149; e <= 127; e++) {
    const power = f32Bits(2 ** e);
    sqrtCases.push(power, power - 1, power + 1);
    divCases.push({ a: power, b: f32Bits(2 ** (((e * 37) % 200) - 100)) });
    divCases.push({ a: randomNormal(rng, 100, 150), b: power });
    divCases.push({ a: power, b: randomNormal(rng, 100, 150) });
  }
  // Square roots next to a rounding midpoint: x ≈ (r + ½)² · 4^j for 24-bit roots r, and perfect
  // squares k² with their neighbours. (r + ½)² is exact in float64 since 2r + 1 < 2^25.
  for (let i = 0; i < 3000; i++) {
    const root = 0x800000 + rng.nextInt(0x800000);
    const scale = 4 ** (rng.nextInt(60) - 42); // keeps x within the normal range
    sqrtCases.push(...neighbourhood((root + 0.5) ** 2 * scale));
  }
  for (let k = 1; k <= 4096; k++) sqrtCases.push(...neighbourhood(k * k));
  // Quotients next to a rounding midpoint: a ≈ b · (q + ½) · 2^−23 for 24-bit q.
  for (let i = 0; i < 3000; i++) {
    const b = f32FromBits(randomNormal(rng, 100, 150));
    const q = 0x800000 + rng.nextInt(0x800000);
    for (const a of neighbourhood(b * (q + 0.5) * 2 ** -23)) divCases.push({ a, b: f32Bits(b) });
  }
  // Ends of the normal range, and quotients that overflow or land in (or below) the subnormals.
  for (let i = 0; i < 1500; i++) {
    sqrtCases.push(randomNormal(rng, 1, 3), randomNormal(rng, 252, 254), (rng.nextU32() & 0x7fffff) >>> 0);
    divCases.push({ a: randomNormal(rng, 1, 30), b: randomNormal(rng, 100, 160) }); // subnormal or zero
    divCases.push({ a: randomNormal(rng, 200, 254), b: randomNormal(rng, 1, 60) }); // overflow
    divCases.push({ a: (rng.nextU32() & 0x7fffff) >>> 0, b: randomNormal(rng, 100, 140) }); // subnormal a
    divCases.push({ a: randomNormal(rng, 1, 20), b: (rng.nextU32() & 0x7fffff) >>> 0 }); // subnormal b
  }
  // Subnormal quotients exactly halfway between two subnormals: a = (2t + 1) · 2^−150 · b for a power of two b.
  for (let t = 0; t < 200; t++) {
    const b = 2 ** (rng.nextInt(20) + 1);
    divCases.push({ a: f32Bits((2 * t + 1) * 2 ** -150 * b), b: f32Bits(b) });
  }
  // Special values.
  const specials = [0, SIGN, 0x7f800000, 0xff800000, NAN_BITS, 0xffc00001, 1, 0x807fffff, 0x3f800000, 0xbf800000];
  for (const a of specials) {
    sqrtCases.push(a >>> 0);
    for (const b of specials) divCases.push({ a: a >>> 0, b: b >>> 0 });
  }

  // One GPU run evaluates both routines on each pair (sqrt takes `a`): the division cases, then the
  // square-root cases as numerators over random denominators.
  const pairs: Case[] = [...divCases, ...sqrtCases.map((a) => ({ a, b: rng.nextU32() }))];
  return { sqrtCases, divCases, pairs };
}

async function runProbe(context: GpuContext, pairs: readonly Case[]): Promise<Uint32Array> {
  const { device } = context;
  const numerators = Uint32Array.from(pairs, (p) => p.a);
  const denominators = Uint32Array.from(pairs, (p) => p.b);
  const buffers: GPUBuffer[] = [];
  try {
    return await withValidation(device, 'exact_f32 probe', async () => {
      const module = device.createShaderModule({ label: 'exact_f32 probe', code: `${exactF32Wgsl}\n${probeSource}` });
      const pipeline = device.createComputePipeline({
        label: 'exact_f32 probe',
        layout: 'auto',
        compute: { module, entryPoint: 'main' },
      });
      const params = createUniformBuffer(device, 'probe params', new UniformPacker().u32(pairs.length, 'count'));
      const a = createBufferWithData(device, 'probe numerators', numerators, STORAGE_USAGE);
      const b = createBufferWithData(device, 'probe denominators', denominators, STORAGE_USAGE);
      const out = createBuffer(device, 'probe results', 16 * pairs.length, STORAGE_USAGE);
      buffers.push(params, a, b, out);
      const bindGroup = device.createBindGroup({
        label: 'exact_f32 probe',
        layout: pipeline.getBindGroupLayout(0),
        entries: [params, a, b, out].map((buffer, binding) => ({ binding, resource: { buffer } })),
      });
      const encoder = device.createCommandEncoder({ label: 'exact_f32 probe' });
      const pass = encoder.beginComputePass({ label: 'exact_f32 probe' });
      pass.setPipeline(pipeline);
      pass.setBindGroup(0, bindGroup);
      const [x, y] = workgroupGrid(Math.ceil(pairs.length / 64), device.limits.maxComputeWorkgroupsPerDimension);
      pass.dispatchWorkgroups(x, y);
      pass.end();
      device.queue.submit([encoder.finish()]);
      return new Uint32Array(await readBuffer(device, out, 16 * pairs.length));
    });
  } finally {
    for (const buffer of buffers) buffer.destroy();
  }
}

describe.skipIf(noGpu !== undefined)('exact_f32.wgsl (bit-identical to Math.fround)', () => {
  const suite = contextOnTestDevice();
  let results: Uint32Array;
  const { sqrtCases, divCases, pairs } = buildCases();

  beforeAll(async () => {
    results = await runProbe(suite.context, pairs);
  });

  it('covers tens of thousands of inputs', () => {
    expect(sqrtCases.length).toBeGreaterThan(20000);
    expect(divCases.length).toBeGreaterThan(30000);
  });

  it('exact_div_bits equals Math.fround(a / b) on every pair', () => {
    const mismatches: string[] = [];
    pairs.forEach(({ a, b }, i) => {
      const expected = f32Bits(f32FromBits(a) / f32FromBits(b));
      const got = results[4 * i] as number;
      const ok = isNaNBits(expected) ? got === NAN_BITS : got === expected;
      if (!ok) mismatches.push(`${hex(a)} / ${hex(b)}: got ${hex(got)}, expected ${hex(expected)}`);
    });
    expect(mismatches.slice(0, 10)).toEqual([]);
  });

  it('exact_sqrt_bits equals Math.fround(Math.sqrt(x)) on every input', () => {
    const mismatches: string[] = [];
    pairs.forEach(({ a }, i) => {
      const expected = f32Bits(Math.sqrt(f32FromBits(a)));
      const got = results[4 * i + 1] as number;
      const ok = isNaNBits(expected) ? got === NAN_BITS : got === expected;
      if (!ok) mismatches.push(`sqrt ${hex(a)}: got ${hex(got)}, expected ${hex(expected)}`);
    });
    expect(mismatches.slice(0, 10)).toEqual([]);
  });

  it('the f32 wrappers agree on normal inputs with normal results', () => {
    const mismatches: string[] = [];
    let checked = 0;
    pairs.forEach(({ a, b }, i) => {
      const quotient = results[4 * i] as number;
      if (isNormalOrZeroBits(a) && isNormalOrZeroBits(b) && isNormalOrZeroBits(quotient) && !isNaNBits(a) && !isNaNBits(b)) {
        checked++;
        const wrapped = results[4 * i + 2] as number;
        if (!(isNaNBits(quotient) ? isNaNBits(wrapped) : wrapped === quotient)) {
          mismatches.push(`exact_div(${hex(a)}, ${hex(b)}) = ${hex(wrapped)}, bits version ${hex(quotient)}`);
        }
        const root = results[4 * i + 1] as number;
        const wrappedRoot = results[4 * i + 3] as number;
        if (!(isNaNBits(root) ? isNaNBits(wrappedRoot) : wrappedRoot === root)) {
          mismatches.push(`exact_sqrt(${hex(a)}) = ${hex(wrappedRoot)}, bits version ${hex(root)}`);
        }
      }
    });
    expect(checked).toBeGreaterThan(20000);
    expect(mismatches.slice(0, 10)).toEqual([]);
  });
});
