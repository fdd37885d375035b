import { describe, expect, it } from 'vitest';
import { createBufferWithData, STORAGE_USAGE } from '../../src/gpu/buffers.js';
import { gpuQuantizeLattice, type GpuQuantizeOptions } from '../../src/gpu/gpuQuantize.js';
import type { GpuUniversalQuantizedMatrix } from '../../src/gpu/universalOperand.js';
import { LatticeMatmulError } from '../../src/errors.js';
import type { Matrix } from '../../src/matrix.js';
import { quantize } from '../../src/quantize/quantize.js';
import type { UniversalLatticeMatrix } from '../../src/quantize/quantizedMatrix.js';
import type { UniversalLatticeScheme } from '../../src/quantize/schemes.js';
import { gaussianMatrix, Rng } from '../../src/rotation/random.js';
import { float16Bits } from '../../src/scalar/floatFormats.js';
import { contextOnTestDevice, gpuUnavailableReason } from './gpuTestDevice.js';

/*
 * The GPU universal encoder (column prep → rotation → shaders/universal_encode.wgsl → universal_compact.wgsl)
 * against the CPU `quantize` with the same nonce: every code, escape symbol, long and explicit escape,
 * norm and mean bit for bit, and the same rates, after `read()` converts the GPU form back. Cases cover
 * both lattices, wide (37-bit) codes, padding and partial blocks, n = 1, centring, time-sharing, data
 * with long and explicit (non-root) escapes, column splitting, the caller's buffer at an offset, and
 * the refusals the CPU makes.
 */

const noGpu = await gpuUnavailableReason();

const universal = (lattice: 'D3' | 'E8', q: number, beta: number): UniversalLatticeScheme => ({ kind: 'lattice', mode: 'universal', lattice, q, beta });

function spiky(rows: number, cols: number, seed: number, height = 50): Matrix {
  const rng = new Rng(seed);
  const data = new Float32Array(rows * cols);
  for (let j = 0; j < cols; j++) {
    for (let i = 0; i < rows; i++) data[j * rows + i] = 0.01 * rng.nextGaussian();
    data[j * rows + rng.nextInt(rows)] = height;
  }
  return { rows, cols, data };
}

function expectSame(gpu: UniversalLatticeMatrix, cpu: UniversalLatticeMatrix): void {
  expect(gpu.blocksPerColumn).toBe(cpu.blocksPerColumn);
  expect(gpu.codes).toEqual(cpu.codes);
  expect(gpu.codesHigh).toEqual(cpu.codesHigh);
  expect(gpu.escapes).toEqual(cpu.escapes);
  expect(gpu.longEscapes).toEqual(cpu.longEscapes);
  expect(gpu.hugeEscapes).toEqual(cpu.hugeEscapes);
  expect(gpu.norms).toEqual(cpu.norms);
  expect(gpu.means).toEqual(cpu.means);
  expect(gpu.bitsStored).toBe(cpu.bitsStored);
  expect(gpu.bitsEntropy).toBe(cpu.bitsEntropy);
}

describe.skipIf(noGpu !== undefined)('universal GPU encoder = CPU quantize, bit for bit', () => {
  const suite = contextOnTestDevice();

  async function both(matrix: Matrix, options: GpuQuantizeOptions): Promise<{ gpu: UniversalLatticeMatrix; cpu: UniversalLatticeMatrix }> {
    const { maxBindingBytes: _ignored, ...cpuOptions } = options;
    const cpu = quantize(matrix, cpuOptions) as UniversalLatticeMatrix;
    const onGpu = (await gpuQuantizeLattice(suite.context.device, matrix, options)) as GpuUniversalQuantizedMatrix;
    try {
      return { gpu: await onGpu.read(), cpu };
    } finally {
      onGpu.destroy();
    }
  }

  const cases: { name: string; a: () => Matrix; options: GpuQuantizeOptions }[] = [
    { name: 'd3-q6, 1 × 1', a: () => gaussianMatrix(1, 1, 1), options: { scheme: 'd3-q6' } },
    { name: 'd3-q6, 100 × 7 (padding, partial blocks)', a: () => gaussianMatrix(100, 7, 2), options: { scheme: 'd3-q6' } },
    { name: 'e8-q16, 300 × 5, centred', a: () => gaussianMatrix(300, 5, 3), options: { scheme: 'e8-q16', center: true } },
    { name: 'E8 q = 24 (37-bit codes), 256 × 4', a: () => gaussianMatrix(256, 4, 4), options: { scheme: universal('E8', 24, 0.15) } },
    { name: 'E8 q = 4, spiky, unrotated (long and explicit escapes)', a: () => spiky(64, 6, 5), options: { scheme: universal('E8', 4, 0.3), rotate: false } },
    { name: 'D3 q = 5, spiky, unrotated', a: () => spiky(60, 6, 6), options: { scheme: universal('D3', 5, 0.2), rotate: false } },
    // One explicit escape per column, 300 in all: more than the encoder's first record list (256), so
    // pass A runs again with room for every record.
    { name: 'E8 q = 4, spiky, unrotated, 64 × 300 (the non-root record list overflows once)', a: () => spiky(64, 300, 12), options: { scheme: universal('E8', 4, 0.3), rotate: false } },
    { name: 'e8-q16, time-sharing κ = 0.4', a: () => gaussianMatrix(200, 3, 7), options: { scheme: 'e8-q16', keepFraction: 0.4 } },
    { name: 'd3-q6, columns split across bindings', a: () => gaussianMatrix(96, 20, 8), options: { scheme: 'd3-q6', maxBindingBytes: 1024 } },
    // 50 rows pad to 64 rotated entries: each chunk's input starts 50 entries per column in, not 64.
    { name: 'd3-q6, 50 × 20 (padded), columns split across bindings', a: () => gaussianMatrix(50, 20, 11), options: { scheme: 'd3-q6', maxBindingBytes: 1024 } },
    // Enough blocks that several are ties of the dither grid that the mirror bit (blockMirror) resolves
    // the other way (measured: 4.5·10⁻⁵ of D3 blocks, 9·10⁻⁵ of E8 blocks): a GPU that did not mirror
    // fails both.
    { name: 'd3-q6, 8192 × 48 (131 072 blocks: ties the mirror bit resolves)', a: () => gaussianMatrix(8192, 48, 9), options: { scheme: 'd3-q6' } },
    { name: 'e8-q16, 8192 × 96 (98 304 blocks: ties the mirror bit resolves)', a: () => gaussianMatrix(8192, 96, 10), options: { scheme: 'e8-q16' } },
  ];

  for (const { name, a, options } of cases) {
    it(name, async () => {
      const { gpu, cpu } = await both(a(), { seed: 3, nonce: 17n, ...options });
      expectSame(gpu, cpu);
    });
  }

  it('the spiky cases do exercise long and explicit escapes', () => {
    const q = quantize(spiky(64, 6, 5), { scheme: universal('E8', 4, 0.3), rotate: false, seed: 3, nonce: 17n }) as UniversalLatticeMatrix;
    expect(q.longEscapes.length).toBeGreaterThan(0);
    const many = quantize(spiky(64, 300, 12), { scheme: universal('E8', 4, 0.3), rotate: false, seed: 3, nonce: 17n }) as UniversalLatticeMatrix;
    expect(many.longEscapes.length).toBeGreaterThan(256);
  });

  it('reads the caller’s GPU buffer at an offset', async () => {
    const matrix = gaussianMatrix(80, 6, 9);
    const padded = new Float32Array(16 + matrix.data.length);
    padded.set(matrix.data, 16);
    const buffer = createBufferWithData(suite.context.device, 'test input', padded, STORAGE_USAGE);
    try {
      const onGpu = (await gpuQuantizeLattice(suite.context.device, { buffer, rows: 80, cols: 6, offset: 64 }, { scheme: 'e8-q16', seed: 5, nonce: 3 })) as GpuUniversalQuantizedMatrix;
      try {
        expectSame(await onGpu.read(), quantize(matrix, { scheme: 'e8-q16', seed: 5, nonce: 3 }) as UniversalLatticeMatrix);
      } finally {
        onGpu.destroy();
      }
    } finally {
      buffer.destroy();
    }
  });

  it('quantizes an f16 matrix in the caller’s buffer like the CPU quantizes the same HalfMatrix', async () => {
    const values = gaussianMatrix(70, 5, 12);
    const bits = Uint16Array.from(values.data, (v) => float16Bits(v));
    const padded = new Uint16Array(2 + bits.length);
    padded.set(bits, 2);
    const buffer = createBufferWithData(suite.context.device, 'f16 input', padded, STORAGE_USAGE);
    try {
      const onGpu = (await gpuQuantizeLattice(suite.context.device, { buffer, rows: 70, cols: 5, offset: 4, format: 'f16' }, { scheme: 'd3-q6', seed: 2, nonce: 8 })) as GpuUniversalQuantizedMatrix;
      try {
        expectSame(await onGpu.read(), quantize({ rows: 70, cols: 5, data: bits }, { scheme: 'd3-q6', seed: 2, nonce: 8 }) as UniversalLatticeMatrix);
      } finally {
        onGpu.destroy();
      }
    } finally {
      buffer.destroy();
    }
  });

  it('refuses what the CPU refuses: a non-finite entry, a coordinate beyond the code’s range', async () => {
    const bad = gaussianMatrix(40, 3, 10);
    bad.data[45] = Number.NaN;
    await expect(gpuQuantizeLattice(suite.context.device, bad, { scheme: 'd3-q6', nonce: 1 })).rejects.toThrow(LatticeMatmulError);
    const tiny = universal('D3', 6, 0.001);
    const spike = spiky(300, 2, 11);
    expect(() => quantize(spike, { scheme: tiny, rotate: false, nonce: 1 })).toThrow(/beyond the universal code's range/);
    await expect(gpuQuantizeLattice(suite.context.device, spike, { scheme: tiny, rotate: false, nonce: 1 })).rejects.toThrow(/beyond the universal code's range/);
  });

  // Audit helper-137: y far below the range made i32(floor(y)) saturate at −2^31, whose abs is −2^31,
  // so the GPU's range check passed and it returned codes the CPU refuses (the positive side was caught).
  it.each([1, -1])('refuses, as the CPU does, a coordinate of sign %i beyond the range by far (β = 10⁻⁷: y ≈ ∓2^31)', async (sign) => {
    const data = new Float32Array(8);
    data[0] = sign;
    const options = { scheme: universal('E8', 16, 1e-7), seed: 1, nonce: 3n, rotate: false } as const;
    expect(() => quantize({ rows: 8, cols: 1, data }, options)).toThrow(/beyond the universal code's range/);
    await expect(gpuQuantizeLattice(suite.context.device, { rows: 8, cols: 1, data }, options)).rejects.toThrow(/beyond the universal code's range/);
  });

  // Audit helper-137: for y in (−½, 0) the shader formed y − floor(y) = y + 1 in f32, which can round up
  // onto 1 − w and round X up where the CPU's exact fraction rounds it down. Columns built so that it
  // does (bits of f32 entries), and one through the default rotation.
  it.each([
    ['e8-q16', [0x3f800000, 0xb8a41bb9, 0xbe138386, 0xbd960ecd, 0xbb355c00, 0x3d8c976d, 0xbe7362da, 0x3e1a0593], 12345n, false],
    ['d3-q6', [0x3f800000, 0xb9677040, 0x3e17fac6], 12345n, false],
    ['e8-2bit', [0x3f800000, 0xb9ec0ff1, 0x3ea72fee, 0xbe40ae86, 0x3e0ae5d0, 0xbe661516, 0xbeb71be8, 0xbe87068d], 12345n, false],
    ['d3-q6', [0x3fde479a, 0x3fde6318], 14617n, true],
  ] as const)('%s: a fixed-point value in (−½, 0) whose f32 fraction rounds onto the rounding threshold (%j, nonce %s, rotate %s)', async (scheme, bits, nonce, rotate) => {
    const data = new Float32Array(new Uint32Array(bits).buffer);
    const m = { rows: data.length, cols: 1, data };
    const options = { scheme, seed: 1, nonce, rotate } as const;
    const gpu = await gpuQuantizeLattice(suite.context.device, m, options);
    try {
      expectSame((await gpu.read()) as UniversalLatticeMatrix, quantize(m, options) as UniversalLatticeMatrix);
    } finally {
      gpu.destroy();
    }
  });
});
