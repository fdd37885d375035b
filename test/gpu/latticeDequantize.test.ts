import { describe, expect, it } from 'vitest';
import latticeDecodeSource from '../../shaders/lattice_decode.wgsl?raw';
import { D3 } from '../../src/lattices/d3.js';
import { E8 } from '../../src/lattices/e8.js';
import type { Lattice } from '../../src/lattices/lattice.js';
import { VoronoiCode } from '../../src/lattices/voronoiCode.js';
import { zLattice } from '../../src/lattices/zLattice.js';
import type { Matrix } from '../../src/matrix.js';
import { decodeRotated } from '../../src/product/decodeRotated.js';
import { dequantize } from '../../src/product/dequantize.js';
import { quantize, type QuantizeOptions } from '../../src/quantize/quantize.js';
import type { LatticeScheme } from '../../src/quantize/schemes.js';
import { gaussianMatrix, Rng } from '../../src/rotation/random.js';
import type { GpuContext } from '../../src/gpu/device.js';
import { createBuffer, createBufferWithData, readBuffer, STORAGE_USAGE } from '../../src/gpu/buffers.js';
import { withValidation } from '../../src/gpu/errorScopes.js';
import {
  latticeDequantize,
  latticeDequantizeRotated,
  type LatticeDequantizeOptions,
} from '../../src/gpu/kernels/latticeDequantize.js';
import { RandomizedHadamard } from '../../src/rotation/randomizedHadamard.js';
import { createUniformBuffer, UniformPacker } from '../../src/gpu/uniforms.js';
import { workgroupGrid } from '../../src/gpu/workSplit.js';
import probeSource from './decodeProbe.wgsl?raw';
import { gemvDecodeWithRulesWgsl } from '../../src/gpu/kernels/gemvDecode.js';
import { MAX_UNIVERSAL_Q, type LatticeName } from '../../src/quantize/latticeSpec.js';
import { uploadLatticeMatrix } from '../../src/gpu/gpuQuantize.js';
import { contextOnTestDevice, f32Bits, gpuUnavailableReason } from './gpuTestDevice.js';
import { asDeterministic, columnNorm, shifted, withRandomCodes } from './latticeTestSupport.js';

/*
 * 1. The WGSL integer decoders against VoronoiCode.decode: decode_leader (shaders/lattice_decode.wgsl,
 *    lattice and q at run time) and gemv_leader (shaders/gemv_decode.wgsl, q compiled in: the GEMV
 *    kernels' decode); every code of the small codes, and many codes of the larger ones (random, plus
 *    digit patterns that land on Voronoi boundaries): leaders must be identical, integer for integer.
 * 2. The dequantize kernel against decodeRotated: stated tolerance |gpu − cpu| ≤ 1e-6·|cpu| per entry
 *    (the GPU forms ν·γ·(unit/(s√N))·k·P in five f32 roundings, the CPU in float64; an exact zero must
 *    stay zero), and `latticeDequantize` (decode, inverse rotation and means, all but the mean
 *    addition on the GPU) against the CPU dequantize: ≤ 1e-5·‖column‖ + 1e-6·|mean|.
 * 3. The GPU inverse rotation and mean addition bit for bit against the CPU's applied to the GPU's
 *    rotated decode.
 */

const noGpu = await gpuUnavailableReason();

const LATTICE_IDS = { D3: 0, E8: 1, Z8: 2 } as const;

/**
 * Runs shaders `decoder` with the probe kernel beside this file over `codes` (up to 2^53) and reads
 * back 8 i32 per code. `probeLeader` is the body of the probe's `probe_leader(code: vec2<u32>)`.
 */
async function runDecodeProbe(context: GpuContext, decoder: string, probeLeader: string, params: { lattice: number; q: number }, codes: ArrayLike<number>): Promise<Int32Array> {
  const { device } = context;
  const count = codes.length;
  const words = new Uint32Array(2 * count);
  for (let i = 0; i < count; i++) {
    const code = codes[i] as number;
    words[2 * i] = code % 2 ** 32;
    words[2 * i + 1] = Math.floor(code / 2 ** 32);
  }
  const source = `${decoder}\nfn probe_leader(code: vec2<u32>) -> LatticePoint { ${probeLeader} }\n${probeSource}`;
  const buffers: GPUBuffer[] = [];
  try {
    return await withValidation(device, 'decode probe', async () => {
      const module = device.createShaderModule({ label: 'decode probe', code: source });
      const pipeline = device.createComputePipeline({ label: 'decode probe', layout: 'auto', compute: { module, entryPoint: 'main' } });
      const paramsBuffer = createUniformBuffer(device, 'decode probe params', new UniformPacker().u32(params.lattice, 'lattice').u32(params.q, 'q').u32(count, 'count'));
      buffers.push(paramsBuffer);
      const input = createBufferWithData(device, 'decode probe codes', words, STORAGE_USAGE);
      buffers.push(input);
      const output = createBuffer(device, 'decode probe leaders', 32 * count, STORAGE_USAGE);
      buffers.push(output);
      const encoder = device.createCommandEncoder({ label: 'decode probe' });
      const pass = encoder.beginComputePass({ label: 'decode probe' });
      pass.setPipeline(pipeline);
      pass.setBindGroup(
        0,
        device.createBindGroup({
          label: 'decode probe',
          layout: pipeline.getBindGroupLayout(0),
          entries: [
            { binding: 0, resource: { buffer: paramsBuffer } },
            { binding: 1, resource: { buffer: input } },
            { binding: 2, resource: { buffer: output } },
          ],
        }),
      );
      const [x, y] = workgroupGrid(Math.ceil(count / 64), device.limits.maxComputeWorkgroupsPerDimension);
      pass.dispatchWorkgroups(x, y);
      pass.end();
      device.queue.submit([encoder.finish()]);
      return new Int32Array(await readBuffer(device, output, 32 * count));
    });
  } finally {
    for (const buffer of buffers) buffer.destroy();
  }
}

/** decode_leader (lattice and q at run time, from the probe's uniforms) of every code (below 2^32). */
function gpuDecode(context: GpuContext, lattice: keyof typeof LATTICE_IDS, q: number, codes: Uint32Array): Promise<Int32Array> {
  return runDecodeProbe(context, latticeDecodeSource, 'return decode_leader(params.lattice, code.x, params.q);', { lattice: LATTICE_IDS[lattice], q }, codes);
}

/** gemv_leader (the lattice and q compiled in) of every code. */
function gpuGemvDecode(context: GpuContext, lattice: LatticeName, q: number, codes: readonly number[]): Promise<Int32Array> {
  return runDecodeProbe(context, gemvDecodeWithRulesWgsl(lattice, q), 'return gemv_leader(code.x, code.y);', { lattice: 0, q }, codes);
}

/** Codes whose GPU leader differs from VoronoiCode.decode's (the count, and the first as text). */
function decodeMismatches(code: VoronoiCode, codes: ArrayLike<number>, got: Int32Array): { count: number; first: string } {
  const d = code.lattice.dimension;
  let count = 0;
  let first = '';
  for (let i = 0; i < codes.length; i++) {
    const expected = code.decode(codes[i] as number);
    for (let k = 0; k < d; k++) {
      if (got[8 * i + k] !== expected[k]) {
        count++;
        first ||= `code ${codes[i]}: got ${Array.from(got.subarray(8 * i, 8 * i + d))}, expected ${Array.from(expected)}`;
        break;
      }
    }
  }
  return { count, first };
}

/** The number of distinct leaders among the GPU's (a bijection gives as many as codes). */
function distinctLeaders(got: Int32Array, count: number, d: number): number {
  const distinct = new Set<string>();
  for (let i = 0; i < count; i++) distinct.add(Array.from(got.subarray(8 * i, 8 * i + d)).join(','));
  return distinct.size;
}

/**
 * 8-dimensional codes to probe: codes whose digits are all equal or alternate, then random codes below
 * q^8 (which may exceed 2^32).
 */
function sampleCodes(q: number, count: number, seed: number): number[] {
  const size = q ** 8;
  const rng = new Rng(seed);
  const codes: number[] = [];
  const fromDigits = (digits: number[]) => digits.reduce((sum, d, i) => sum + d * q ** i, 0);
  for (let a = 0; a < q; a++) {
    for (let b = 0; b < q; b++) {
      codes.push(fromDigits([a, b, a, b, a, b, a, b]), fromDigits([a, a, a, a, b, b, b, b]), fromDigits([a, a, a, a, a, a, a, b]));
    }
  }
  const highRange = Math.ceil(size / 2 ** 32);
  while (codes.length < count) {
    if (highRange === 1) {
      codes.push(size === 2 ** 32 ? rng.nextU32() : rng.nextInt(size));
    } else {
      const code = rng.nextInt(highRange) * 2 ** 32 + rng.nextU32();
      if (code < size) codes.push(code);
    }
  }
  return codes;
}

function allCodes(size: number): Uint32Array {
  return Uint32Array.from({ length: size }, (_, i) => i);
}

describe.skipIf(noGpu !== undefined)('lattice_decode.wgsl: the integer decoders', () => {
  const suite = contextOnTestDevice();

  const cases: [name: keyof typeof LATTICE_IDS, q: number, lattice: Lattice, codes: () => Uint32Array][] = [
    ['D3', 6, D3, () => allCodes(216)],
    ['D3', 2, D3, () => allCodes(8)],
    ['D3', 5, D3, () => allCodes(125)],
    ['D3', 10, D3, () => allCodes(1000)],
    ['E8', 2, E8, () => allCodes(256)],
    ['E8', 3, E8, () => allCodes(6561)],
    ['E8', 4, E8, () => allCodes(65536)],
    ['E8', 14, E8, () => Uint32Array.from(sampleCodes(14, 20000, 1))],
    ['E8', 16, E8, () => Uint32Array.from(sampleCodes(16, 30000, 2))],
    ['Z8', 16, zLattice(8), () => Uint32Array.from(sampleCodes(16, 5000, 3))],
    ['Z8', 5, zLattice(8), () => allCodes(5 ** 6)],
  ];

  it.each(cases)('%s q = %i: GPU leaders equal VoronoiCode.decode for every probed code', async (name, q, lattice, makeCodes) => {
    const codes = makeCodes();
    const got = await gpuDecode(suite.context, name, q, codes);
    const code = new VoronoiCode(lattice, q);
    const { count, first } = decodeMismatches(code, codes, got);
    expect(count, first).toBe(0);
    // Exhaustive: the decoder is a bijection onto q^d distinct leaders.
    if (codes.length === code.size) expect(distinctLeaders(got, codes.length, lattice.dimension)).toBe(code.size);
  });
});

describe.skipIf(noGpu !== undefined)('gemv_decode.wgsl: the decoders with q compiled in (gemv_leader, the GEMV kernels\' decode)', () => {
  const suite = contextOnTestDevice();

  // Every code of the small codes; for the rest, digit patterns and random codes. The q of every
  // scheme preset (D3 6; E8 6, 12, 16, 24: codes over 32 bits for 24; Z^8 16), powers of two (digits
  // and roundings by shifts) and not, and the largest E8 q the decoder takes (MAX_UNIVERSAL_Q). E8
  // with q ≤ 16 takes the byte-lane decoder (gemv_leader_e8_bytes; every code of q = 2, 3, 4; its
  // lane split by shifts for q = 2, 4, 8, 16, by compares for 3, 6, 12), q = 24, 32 and 64
  // gemv_leader_e8.
  const cases: [name: LatticeName, q: number, lattice: Lattice, codes: () => readonly number[]][] = [
    ['D3', 2, D3, () => Array.from(allCodes(8))],
    ['D3', 5, D3, () => Array.from(allCodes(125))],
    ['D3', 6, D3, () => Array.from(allCodes(216))],
    ['D3', 10, D3, () => Array.from(allCodes(1000))],
    ['D3', 16, D3, () => Array.from(allCodes(4096))],
    ['E8', 2, E8, () => Array.from(allCodes(256))],
    ['E8', 3, E8, () => Array.from(allCodes(6561))],
    ['E8', 4, E8, () => Array.from(allCodes(65536))],
    ['E8', 6, E8, () => sampleCodes(6, 20000, 11)],
    ['E8', 8, E8, () => sampleCodes(8, 60000, 17)],
    ['E8', 12, E8, () => sampleCodes(12, 60000, 12)],
    ['E8', 16, E8, () => sampleCodes(16, 100000, 13)],
    ['E8', 24, E8, () => sampleCodes(24, 20000, 14)],
    ['E8', 32, E8, () => sampleCodes(32, 20000, 18)],
    ['E8', MAX_UNIVERSAL_Q, E8, () => sampleCodes(MAX_UNIVERSAL_Q, 20000, 15)],
    ['Z', 5, zLattice(8), () => Array.from(allCodes(5 ** 8))],
    ['Z', 16, zLattice(8), () => sampleCodes(16, 5000, 16)],
  ];

  it.each(cases)('%s q = %i: gemv_leader equals VoronoiCode.decode for every probed code', async (name, q, lattice, makeCodes) => {
    const codes = makeCodes();
    const got = await gpuGemvDecode(suite.context, name, q, codes);
    const code = new VoronoiCode(lattice, q);
    const { count, first } = decodeMismatches(code, codes, got);
    expect(count, first).toBe(0);
    if (codes.length === code.size) expect(distinctLeaders(got, codes.length, lattice.dimension)).toBe(code.size);
  });
});

const schemes: [name: string, options: QuantizeOptions][] = [
  ['d3-q6-deterministic', { scheme: 'd3-q6-deterministic', seed: 5 }],
  ['e8-q16-deterministic', { scheme: 'e8-q16-deterministic', seed: 5 }],
  ['Z^8 q = 16', { scheme: { kind: 'lattice', mode: 'deterministic', lattice: 'Z', q: 16, overload: { kind: 'betaSet', betas: [0.2, 0.3] } } as LatticeScheme, seed: 5 }],
  ['D3 q = 5 (7-bit codes)', { scheme: { kind: 'lattice', mode: 'deterministic', lattice: 'D3', q: 5, overload: { kind: 'ladder', beta: 0.45, ratio: 1.5, steps: 3 } } as LatticeScheme, seed: 5 }],
];

function worstRelative(got: Float32Array, expected: Float64Array): { ratio: number; at: string } {
  let worst = { ratio: 0, at: 'none' };
  for (let i = 0; i < expected.length; i++) {
    const e = expected[i] as number;
    const g = got[i] as number;
    const ratio = g === e ? 0 : Math.abs(g - e) / (1e-6 * Math.abs(e));
    if (!(ratio <= worst.ratio)) worst = { ratio, at: `entry ${i}: ${g}, expected ${e}` };
  }
  return worst;
}

describe.skipIf(noGpu !== undefined)('lattice_dequantize.wgsl on the device', () => {
  const suite = contextOnTestDevice();

  const sizes: [n: number, cols: number][] = [
    [1, 3],
    [3, 1],
    [8, 17],
    [13, 33],
    [100, 3],
    [192, 64],
  ];

  for (const [name, options] of schemes) {
    it.each(sizes)(`${name}, n = %i, %i columns: rotated decode within 1e-6 relative of decodeRotated`, async (n, cols) => {
      const q = asDeterministic(quantize(gaussianMatrix(n, cols, 60 + n), options));
      const gq = uploadLatticeMatrix(suite.context.device, q);
      try {
        const got = await latticeDequantizeRotated(suite.context.device, gq);
        expect(got.length).toBe(q.cols * q.length);
        const worst = worstRelative(got, decodeRotated(q));
        expect(worst.ratio, worst.at).toBeLessThanOrEqual(1);
      } finally {
        gq.destroy();
      }
    });
  }

  it.each([3, 13, 100])('random codes (every leader, E8 coordinates past N dropped; a last D3 block zero there, as the format requires), n = %i', async (n) => {
    for (const [name, options] of schemes) {
      const q = withRandomCodes(asDeterministic(quantize(gaussianMatrix(n, 17, 75 + n), options)), n);
      const gq = uploadLatticeMatrix(suite.context.device, q);
      try {
        const worst = worstRelative(await latticeDequantizeRotated(suite.context.device, gq), decodeRotated(q));
        expect(worst.ratio, `${name}: ${worst.at}`).toBeLessThanOrEqual(1);
      } finally {
        gq.destroy();
      }
    }
  });

  it('no gains, time-sharing (keepFraction 0.4: zeros past keptLength) and a split over bindings', async () => {
    for (const [options, maxBindingBytes] of [
      [{ scheme: 'e8-q16-deterministic', seed: 6, gain: 'none' }, undefined],
      [{ scheme: 'd3-q6-deterministic', seed: 6, keepFraction: 0.4 }, undefined],
      [{ scheme: 'e8-q16-deterministic', seed: 6, keepFraction: 0.4 }, 1024],
    ] as const) {
      const q = asDeterministic(quantize(gaussianMatrix(192, 33, 70), options));
      const gq = uploadLatticeMatrix(suite.context.device, q);
      try {
        const got = await latticeDequantizeRotated(suite.context.device, gq, { maxBindingBytes });
        const worst = worstRelative(got, decodeRotated(q));
        expect(worst.ratio, `${JSON.stringify(options)}: ${worst.at}`).toBeLessThanOrEqual(1);
      } finally {
        gq.destroy();
      }
    }
  });

  /** Largest |got − expected| over column j must stay within 1e-5·‖expected column‖ + 1e-6·|mean|. */
  function expectCloseToDequantize(got: Matrix, expected: Matrix, means: Float32Array | null, what: string): void {
    expect([got.rows, got.cols]).toEqual([expected.rows, expected.cols]);
    const n = expected.rows;
    for (let j = 0; j < expected.cols; j++) {
      const tolerance = 1e-5 * columnNorm(expected, j) + 1e-6 * Math.abs(means?.[j] ?? 0);
      let worst = 0;
      for (let i = 0; i < n; i++) worst = Math.max(worst, Math.abs((got.data[j * n + i] as number) - (expected.data[j * n + i] as number)));
      expect(worst, `${what}, column ${j}`).toBeLessThanOrEqual(tolerance);
    }
  }

  // n → N = rotationLength(n): 100 → 128, 192 (12·16), 13 → 16, 40 (20·2), 1000 → 1024, 3000 → 3072 (12·256).
  it.each([
    [100, 17, false],
    [192, 3, true],
    [13, 5, true],
    [40, 4, true],
    [1000, 3, false],
    [3000, 2, true],
  ])('back to the original basis (n = %i, %i columns, centred %s): matches dequantize', async (n, cols, center) => {
    for (const scheme of ['d3-q6-deterministic', 'e8-q16-deterministic'] as const) {
      const a: Matrix = shifted(gaussianMatrix(n, cols, 80 + n), center ? 2 : 0);
      const q = asDeterministic(quantize(a, { scheme, seed: 7, center }));
      const gq = uploadLatticeMatrix(suite.context.device, q);
      try {
        expectCloseToDequantize(await latticeDequantize(suite.context.device, gq), dequantize(q), q.means, scheme);
      } finally {
        gq.destroy();
      }
    }
  });

  it('without rotation (rotate: false): the decoded columns plus the means', async () => {
    const q = asDeterministic(quantize(shifted(gaussianMatrix(24, 5, 90), 3), { scheme: 'e8-q16-deterministic', seed: 3, rotate: false }));
    expect(q.length).toBe(24);
    const gq = uploadLatticeMatrix(suite.context.device, q);
    try {
      expectCloseToDequantize(await latticeDequantize(suite.context.device, gq), dequantize(q), q.means, 'rotate: false');
    } finally {
      gq.destroy();
    }
  });

  /**
   * The GPU's inverse rotation and mean addition are exact: the result equals, bit for bit (±0
   * equal), the CPU's `RandomizedHadamard.inverse` of the GPU's own rotated decode plus the mean in
   * f32, on each rotation path (subgroups off and on, and several passes).
   */
  it.each([
    ['workgroup memory', { subgroups: false }],
    ['default (subgroups where the device has them)', {}],
    ['several passes', { workgroupElements: 64 }],
  ] as [string, LatticeDequantizeOptions['rotation']][])('inverse rotation and means on the GPU are exact (%s)', async (_name, rotation) => {
    const n = 700; // N = 768 = 12·64
    const cols = 6;
    const q = asDeterministic(quantize(shifted(gaussianMatrix(n, cols, 91), 1.5), { scheme: 'd3-q6-deterministic', seed: 11, center: true }));
    const gq = uploadLatticeMatrix(suite.context.device, q);
    try {
      const rotated = await latticeDequantizeRotated(suite.context.device, gq);
      const got = await latticeDequantize(suite.context.device, gq, { rotation });
      const inverse = new RandomizedHadamard(n, q.seed);
      const expected = new Float32Array(n * cols);
      for (let j = 0; j < cols; j++) {
        const column = inverse.inverse(rotated.subarray(j * q.length, (j + 1) * q.length));
        for (let i = 0; i < n; i++) expected[j * n + i] = (column[i] as number) + (q.means?.[j] as number);
      }
      let mismatches = 0;
      let first = '';
      for (let i = 0; i < expected.length; i++) {
        const g = got.data[i] as number;
        const e = expected[i] as number;
        if (f32Bits(g) !== f32Bits(e) && !(g === 0 && e === 0)) {
          mismatches++;
          first ||= `entry ${i}: got ${g}, expected ${e}`;
        }
      }
      expect(mismatches, first).toBe(0);
    } finally {
      gq.destroy();
    }
  });
});
