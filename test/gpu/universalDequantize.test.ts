import { describe, expect, it } from 'vitest';
import { createBufferWithData, readBuffer, STORAGE_USAGE } from '../../src/gpu/buffers.js';
import { GpuScratch } from '../../src/gpu/scratch.js';
import { dispatchUniversalDequantize, universalDequantize, universalDequantizeRotated } from '../../src/gpu/kernels/universalDequantize.js';
import { uploadUniversalMatrix } from '../../src/gpu/universalOperand.js';
import type { Matrix } from '../../src/matrix.js';
import { decodeRotated } from '../../src/product/decodeRotated.js';
import { dequantize } from '../../src/product/dequantize.js';
import { quantize } from '../../src/quantize/quantize.js';
import type { UniversalLatticeMatrix } from '../../src/quantize/quantizedMatrix.js';
import type { UniversalLatticeScheme } from '../../src/quantize/schemes.js';
import { gaussianMatrix } from '../../src/rotation/random.js';
import { contextOnTestDevice, gpuUnavailableReason } from './gpuTestDevice.js';
import { spiky } from './latticeTestSupport.js';

/*
 * The universal dequantize kernel (shaders/universal_dequantize.wgsl with the decode library) against
 * the CPU decoder `decodeRotated`, entry by entry. Tolerance: the GPU forms ν·(β/(s√N))·λ − ν·(β/(M√N))·Z
 * in f32 (a few roundings of values up to |λ|·ν/√N), the CPU in float64, so
 * |gpu − cpu| ≤ 4e-6 · (ν/√N) · β · (max|λ|/s + max|Z|/M) per entry; an exact zero (past keptLength)
 * stays zero. Escapes — roots, wide codes (E8 q = 24, 37-bit codes) and non-root escapes (a large β on
 * spiky data makes μ leave the root shell) — go through the same comparison.
 */

const noGpu = await gpuUnavailableReason();

const universal = (lattice: 'D3' | 'E8', q: number, beta: number): UniversalLatticeScheme => ({ kind: 'lattice', mode: 'universal', lattice, q, beta });

function expectClose(gpu: Float32Array, cpu: Float64Array, q: UniversalLatticeMatrix): void {
  expect(gpu.length).toBe(cpu.length);
  let worst = 0;
  for (let j = 0; j < q.cols; j++) {
    const scale = ((q.norms[j] as number) / Math.sqrt(q.length)) * q.scheme.beta * 64;
    for (let k = 0; k < q.length; k++) {
      const index = j * q.length + k;
      const c = cpu[index] as number;
      const g = gpu[index] as number;
      if (c === 0) expect(g).toBe(0);
      worst = Math.max(worst, Math.abs(g - c) / (4e-6 * scale + 1e-30));
    }
  }
  expect(worst).toBeLessThanOrEqual(1);
}

describe.skipIf(noGpu !== undefined)('universal dequantize (GPU) = decodeRotated (CPU)', () => {
  const suite = contextOnTestDevice();

  const cases: { name: string; scheme: UniversalLatticeScheme | 'd3-q6' | 'e8-q16'; a: () => Matrix; options?: { center?: boolean; keepFraction?: number; rotate?: boolean } }[] = [
    { name: 'd3-q6, 1 × 1', scheme: 'd3-q6', a: () => gaussianMatrix(1, 1, 1) },
    { name: 'd3-q6, 100 × 7 (padding, partial block)', scheme: 'd3-q6', a: () => gaussianMatrix(100, 7, 2) },
    { name: 'e8-q16, 300 × 5 centred', scheme: 'e8-q16', a: () => gaussianMatrix(300, 5, 3), options: { center: true } },
    { name: 'E8 q = 24 (37-bit codes), 256 × 6', scheme: universal('E8', 24, 0.15), a: () => gaussianMatrix(256, 6, 4) },
    { name: 'E8 q = 4, spiky (non-root escapes), unrotated', scheme: universal('E8', 4, 0.3), a: () => spiky(64, 9, 5), options: { rotate: false } },
    { name: 'D3 q = 5, spiky, unrotated', scheme: universal('D3', 5, 0.2), a: () => spiky(60, 9, 6), options: { rotate: false } },
    { name: 'e8-q16, time-sharing κ = 0.4', scheme: 'e8-q16', a: () => gaussianMatrix(200, 4, 7), options: { keepFraction: 0.4 } },
  ];

  for (const { name, scheme, a, options } of cases) {
    it(name, async () => {
      const matrix = a();
      const q = quantize(matrix, { scheme, seed: 3, nonce: 11, ...options }) as UniversalLatticeMatrix;
      const gpu = uploadUniversalMatrix(suite.context.device, q);
      try {
        expectClose(await universalDequantizeRotated(suite.context.device, gpu), decodeRotated(q), q);
      } finally {
        gpu.destroy();
      }
    });
  }

  it('has non-root escapes in the spiky cases (so the binary search runs)', () => {
    const q = quantize(spiky(64, 9, 5), { scheme: universal('E8', 4, 0.3), seed: 3, nonce: 11, rotate: false }) as UniversalLatticeMatrix;
    expect(q.longEscapes.length).toBeGreaterThan(0);
  });

  it('splits columns across bindings (maxBindingBytes) with the same result', async () => {
    const q = quantize(gaussianMatrix(96, 40, 8), { scheme: 'd3-q6', seed: 3, nonce: 12 }) as UniversalLatticeMatrix;
    const gpu = uploadUniversalMatrix(suite.context.device, q);
    try {
      expectClose(await universalDequantizeRotated(suite.context.device, gpu, { maxBindingBytes: 1024 }), decodeRotated(q), q);
    } finally {
      gpu.destroy();
    }
  });

  // A time-shared W (zeros past keptLength, cleared by the call) into a buffer at a word past a binding
  // boundary, its columns split across dispatches: the bytes before and after stay as they were (NaN).
  it('writes from outputOffset, in column ranges, leaving the bytes around its output as they were', async () => {
    const { device } = suite.context;
    const q = quantize(gaussianMatrix(200, 4, 7), { scheme: 'e8-q16', seed: 3, nonce: 11, keepFraction: 0.4 }) as UniversalLatticeMatrix;
    const gpu = uploadUniversalMatrix(device, q);
    const offset = device.limits.minStorageBufferOffsetAlignment + 4;
    const count = q.length * q.cols;
    const output = createBufferWithData(device, 'dequantize at an offset', new Float32Array(offset / 4 + count + 3).fill(Number.NaN), STORAGE_USAGE);
    const scratch = new GpuScratch(device);
    try {
      const encoder = device.createCommandEncoder({ label: 'dequantize at an offset' });
      dispatchUniversalDequantize(device, encoder, scratch, { m: gpu, output, outputOffset: offset, maxBindingBytes: 2 * 4 * q.length });
      device.queue.submit([encoder.finish()]);
      const all = new Float32Array(await readBuffer(device, output, output.size));
      expect(Array.from(all.subarray(0, offset / 4)).every(Number.isNaN), 'before').toBe(true);
      expect(Array.from(all.subarray(offset / 4 + count)).every(Number.isNaN), 'after').toBe(true);
      expectClose(all.slice(offset / 4, offset / 4 + count), decodeRotated(q), q);
    } finally {
      scratch.destroy();
      output.destroy();
      gpu.destroy();
    }
  });

  it('dequantize with the inverse rotation and means matches the CPU dequantize', async () => {
    const matrix = gaussianMatrix(130, 6, 9);
    const q = quantize(matrix, { scheme: 'e8-q16', seed: 4, nonce: 13, center: true }) as UniversalLatticeMatrix;
    const gpu = uploadUniversalMatrix(suite.context.device, q);
    try {
      const back = await universalDequantize(suite.context.device, gpu);
      const cpu = dequantize(q);
      for (let i = 0; i < cpu.data.length; i++) expect(Math.abs((back.data[i] as number) - (cpu.data[i] as number))).toBeLessThan(2e-5);
    } finally {
      gpu.destroy();
    }
  });

  it('read() returns the uploaded matrix bit for bit', async () => {
    for (const scheme of ['d3-q6', universal('E8', 24, 0.15), universal('E8', 4, 0.3)] as const) {
      const q = quantize(spiky(64, 5, 10), { scheme, seed: 3, nonce: 14, rotate: false }) as UniversalLatticeMatrix;
      const gpu = uploadUniversalMatrix(suite.context.device, q);
      try {
        const back = await gpu.read();
        expect(back.codes).toEqual(q.codes);
        expect(back.codesHigh).toEqual(q.codesHigh);
        expect(back.escapes).toEqual(q.escapes);
        expect(back.longEscapes).toEqual(q.longEscapes);
        expect(back.hugeEscapes).toEqual(q.hugeEscapes);
        expect(back.norms).toEqual(q.norms);
        expect(back.bitsStored).toBe(q.bitsStored);
      } finally {
        gpu.destroy();
      }
    }
  });
});
