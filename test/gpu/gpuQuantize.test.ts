import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LatticeMatmulError } from '../../src/errors.js';
import type { GpuContext } from '../../src/gpu/device.js';
import { createBufferWithData, readBuffer, STORAGE_USAGE } from '../../src/gpu/buffers.js';
import { gpuQuantizeLattice, uploadLatticeMatrix, type GpuQuantizeOptions } from '../../src/gpu/gpuQuantize.js';
import type { Matrix } from '../../src/matrix.js';
import { dequantize } from '../../src/product/dequantize.js';
import { quantize } from '../../src/quantize/quantize.js';
import type { LatticeQuantizedMatrix } from '../../src/quantize/quantizedMatrix.js';
import { SCHEMES, type LatticeScheme } from '../../src/quantize/schemes.js';
import { Rng } from '../../src/rotation/random.js';
import { f32Bits, gpuUnavailableReason, hex, testDevice } from './gpuTestDevice.js';

/*
 * gpuQuantizeLattice (column prep → rotation → lattice encode) against the CPU quantize(): codes,
 * scale indices, norms, means, clipped-block counts and rates identical; gains within GAIN_TOLERANCE
 * (the GPU sums them in f32, the CPU in float64). Shapes cover n = 1, 3, 8, odd n, n = 12·2^k, and
 * n above the 256 reduction lanes; data covers zero and constant columns, 1e±30 magnitudes, ties,
 * heavy tails and a spike that overloads every scale.
 */

const noGpu = await gpuUnavailableReason();

/** Relative tolerance of the gains (see the encode kernel: f32 sums against float64 sums). */
const GAIN_TOLERANCE = 1e-5;

const Z_LADDER: LatticeScheme = { kind: 'lattice', lattice: 'Z', q: 16, overload: { kind: 'ladder', beta: 0.25, ratio: 2, steps: 4 } };

const SCHEME_CASES: readonly { readonly name: string; readonly scheme: LatticeScheme }[] = [
  { name: 'D3 q = 6 ladder', scheme: SCHEMES['d3-q6'] },
  { name: 'E8 q = 16 betaSet', scheme: SCHEMES['e8-q16'] },
  { name: 'Z8 q = 16 ladder', scheme: Z_LADDER },
];

/**
 * Column j follows pattern j mod 10: Gaussian, zero, constant, huge (1e30), tiny (1e−30),
 * half-integers, multiples of 1/3 (scaled by 2^−40), heavy-tailed (Gaussian / uniform), mixed
 * 1e30 and 1e−30 entries, Gaussian with an offset (for centring).
 */
function mixedMatrix(rows: number, cols: number, seed: number): Matrix {
  const rng = new Rng(seed);
  const data = new Float32Array(rows * cols);
  for (let j = 0; j < cols; j++) {
    for (let i = 0; i < rows; i++) {
      const g = rng.nextGaussian();
      let v: number;
      switch (j % 10) {
        case 0:
          v = g;
          break;
        case 1:
          v = 0;
          break;
        case 2:
          v = -1.25;
          break;
        case 3:
          v = g * 1e30;
          break;
        case 4:
          v = g * 1e-30;
          break;
        case 5:
          v = rng.nextInt(9) - 4 + 0.5;
          break;
        case 6:
          v = Math.fround((rng.nextInt(13) - 6) / 3) * 2 ** -40;
          break;
        case 7:
          v = g / Math.max(1e-4, rng.nextFloat());
          break;
        case 8:
          v = i % 3 === 0 ? g * 1e30 : g * 1e-30;
          break;
        default:
          v = 3 + g;
      }
      data[j * rows + i] = v;
    }
  }
  return { rows, cols, data };
}

/** Asserts that the GPU result equals the CPU one (codes, indices, norms, means bit for bit; gains within tolerance). */
function expectSameQuantization(gpu: LatticeQuantizedMatrix, cpu: LatticeQuantizedMatrix): void {
  const { gains: gpuGains, norms: gpuNorms, means: gpuMeans, ...gpuRest } = gpu;
  const { gains: cpuGains, norms: cpuNorms, means: cpuMeans, ...cpuRest } = cpu;
  // Metadata, codes, scale indices, clipped blocks and both rates: equal.
  const firstCodeMismatch = gpu.codes.findIndex((code, k) => code !== cpu.codes[k]);
  expect(
    firstCodeMismatch,
    firstCodeMismatch < 0
      ? ''
      : `column ${Math.floor(firstCodeMismatch / cpu.blocksPerColumn)}, block ${firstCodeMismatch % cpu.blocksPerColumn}: ` +
          `GPU code ${gpu.codes[firstCodeMismatch]}, CPU code ${cpu.codes[firstCodeMismatch]}`,
  ).toBe(-1);
  expect(gpuRest).toEqual(cpuRest);
  expect(Array.from(gpuNorms, (v) => hex(f32Bits(v)))).toEqual(Array.from(cpuNorms, (v) => hex(f32Bits(v))));
  if (cpuMeans === null) {
    expect(gpuMeans).toBeNull();
  } else {
    // ±0 are the same mean (WGSL does not promise the sign of zero).
    expect(Array.from(gpuMeans ?? [], (v) => hex(f32Bits(v + 0)))).toEqual(Array.from(cpuMeans, (v) => hex(f32Bits(v + 0))));
  }
  if (cpuGains === null) {
    expect(gpuGains).toBeNull();
  } else {
    expect(gpuGains).not.toBeNull();
    cpuGains.forEach((want, j) => {
      const got = (gpuGains as Float32Array)[j] as number;
      expect(Math.abs(got - want), `gain of column ${j}: GPU ${got}, CPU ${want}`).toBeLessThanOrEqual(GAIN_TOLERANCE * Math.abs(want));
    });
  }
}

describe.skipIf(noGpu !== undefined)('gpuQuantizeLattice = quantize()', () => {
  let context: GpuContext;
  beforeAll(async () => {
    context = await testDevice();
  });
  afterAll(() => context?.device.destroy());

  async function compare(m: Matrix, options: GpuQuantizeOptions): Promise<LatticeQuantizedMatrix> {
    const cpu = quantize(m, options) as LatticeQuantizedMatrix;
    const gpuMatrix = await gpuQuantizeLattice(context.device, m, options);
    try {
      expectSameQuantization(await gpuMatrix.read(), cpu);
    } finally {
      gpuMatrix.destroy();
    }
    return cpu;
  }

  describe.each(SCHEME_CASES)('$name', ({ scheme }) => {
    it.each([
      [1, 1],
      [1, 17],
      [3, 3],
      [8, 17],
      [13, 3],
      [100, 17],
      [48, 1],
      [192, 3],
      [300, 17],
    ])('n = %i, %i columns, rotated', async (rows, cols) => {
      await compare(mixedMatrix(rows, cols, 1000 * rows + cols), { scheme, seed: 7 });
    });

    it.each([
      [13, true, true],
      [100, false, false],
      [100, false, true],
      [192, true, false],
    ])('n = %i, 17 columns, rotate %s, centre %s', async (rows, rotate, center) => {
      await compare(mixedMatrix(rows, 17, rows + 5), { scheme, seed: 3, rotate, center });
    });
  });

  it.each([
    ['d3-q6', 1000, 3], // N = 1024: 342 blocks per column
    ['e8-q16', 2100, 2], // N = 2560 = 20·128: 320 blocks per column
  ] as const)('%s, n = %i: more blocks per column than workgroup lanes', async (scheme, rows, cols) => {
    await compare(mixedMatrix(rows, cols, rows), { scheme, seed: 4, center: true });
  });

  it('a spike overloads every scale and is clipped, as on the CPU', async () => {
    const rows = 100;
    const data = new Float32Array(rows * 3);
    data[5] = 1; // column 0: e_5 (√n in normalized units, far beyond the largest D3 scale)
    data[rows + 7] = -4;
    data[rows + 8] = 4;
    for (let i = 0; i < rows; i++) data[2 * rows + i] = i === 50 ? 1e6 : Math.sin(i);
    const cpu = await compare({ rows, cols: 3, data }, { scheme: 'd3-q6', rotate: false });
    expect(cpu.clippedBlocks).toBeGreaterThan(0);
  });

  it('a one-scale ladder (no index bits), MMSE and no gains, time-sharing', async () => {
    const m = mixedMatrix(96, 5, 11);
    const oneScale: LatticeScheme = { kind: 'lattice', lattice: 'D3', q: 6, overload: { kind: 'ladder', beta: 0.6, ratio: 2, steps: 1 } };
    await compare(m, { scheme: oneScale, gain: 'mmse' });
    await compare(m, { scheme: 'e8-q16', gain: 'none', center: true });
    await compare(m, { scheme: 'd3-q6', keepFraction: 0.3 });
  });

  it('columns split over small storage bindings give the same result', async () => {
    const m = mixedMatrix(40, 17, 12);
    const cpu = quantize(m, { scheme: 'e8-q16', seed: 2, center: true }) as LatticeQuantizedMatrix;
    const gpuMatrix = await gpuQuantizeLattice(context.device, m, { scheme: 'e8-q16', seed: 2, center: true, maxBindingBytes: 1024 });
    try {
      expectSameQuantization(await gpuMatrix.read(), cpu);
    } finally {
      gpuMatrix.destroy();
    }
  });

  it('takes a GPUBuffer input at an offset', async () => {
    const m = mixedMatrix(50, 6, 13);
    const { device } = context;
    const padded = new Float32Array(16 + m.data.length);
    padded.set(m.data, 16);
    const buffer = createBufferWithData(device, 'user matrix', padded, STORAGE_USAGE);
    try {
      const gpuMatrix = await gpuQuantizeLattice(device, { buffer, rows: 50, cols: 6, offset: 64 }, { scheme: 'd3-q6', seed: 9, center: true });
      try {
        expectSameQuantization(await gpuMatrix.read(), quantize(m, { scheme: 'd3-q6', seed: 9, center: true }) as LatticeQuantizedMatrix);
      } finally {
        gpuMatrix.destroy();
      }
    } finally {
      buffer.destroy();
    }
  });

  it('read() gives a matrix the CPU decodes like its own; uploadLatticeMatrix round-trips', async () => {
    const m = mixedMatrix(64, 4, 14);
    const options = { scheme: 'd3-q6', seed: 5, gain: 'none' } as const;
    const cpu = quantize(m, options) as LatticeQuantizedMatrix;
    const gpuMatrix = await gpuQuantizeLattice(context.device, m, options);
    try {
      const fromGpu = await gpuMatrix.read();
      // With gain 'none' every field is bit-exact, so decoding gives the same floats.
      expect(Array.from(dequantize(fromGpu).data)).toEqual(Array.from(dequantize(cpu).data));
    } finally {
      gpuMatrix.destroy();
    }
    const uploaded = uploadLatticeMatrix(context.device, cpu);
    try {
      expect(uploaded.scaleIndexBits).toBe(2);
      expect(await uploaded.read()).toEqual(cpu);
    } finally {
      uploaded.destroy();
    }
  });

  it('refuses what the CPU refuses, with the same kind of error', async () => {
    const { device } = context;
    await expect(gpuQuantizeLattice(device, mixedMatrix(8, 1, 1), { scheme: 'int4-g32' })).rejects.toThrow(LatticeMatmulError);
    await expect(gpuQuantizeLattice(device, mixedMatrix(8, 1, 1), { scheme: 'd3-q6', keepFraction: 0 })).rejects.toThrow(/keepFraction/);
    // A norm beyond the f32 range: the CPU and the GPU both refuse it.
    const overflow: Matrix = { rows: 4, cols: 2, data: new Float32Array([1, 2, 3, 4, 3e38, 3e38, 3e38, 3e38]) };
    expect(() => quantize(overflow, { scheme: 'd3-q6' })).toThrow(/norm of column 1/);
    await expect(gpuQuantizeLattice(device, overflow, { scheme: 'd3-q6' })).rejects.toThrow(/norm of column 1/);
    // A NaN in a GPU input (a CPU Matrix is checked before upload).
    const data = new Float32Array(24).fill(1);
    data[13] = Number.NaN;
    const buffer = createBufferWithData(device, 'matrix with NaN', data, STORAGE_USAGE);
    try {
      await expect(gpuQuantizeLattice(device, { buffer, rows: 8, cols: 3 }, { scheme: 'd3-q6' })).rejects.toThrow(/non-finite entry in column 1/);
      // The input buffer is untouched and still usable.
      expect(new Float32Array(await readBuffer(device, buffer, 8))).toEqual(new Float32Array([1, 1]));
    } finally {
      buffer.destroy();
    }
  });
});
