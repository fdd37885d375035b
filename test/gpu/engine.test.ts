import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testMatrixPair } from '../../src/data/testMatrices.js';
import { LatticeMatmulError } from '../../src/errors.js';
import { createBufferWithData, STORAGE_USAGE } from '../../src/gpu/buffers.js';
import type { GpuContext } from '../../src/gpu/device.js';
import { GpuEngine } from '../../src/gpu/engine.js';
import { matmulATExact, productNmse, type Matrix } from '../../src/matrix.js';
import { dequantize } from '../../src/product/dequantize.js';
import { decodeRotated } from '../../src/product/decodeRotated.js';
import { matmulAT } from '../../src/product/matmulAT.js';
import { quantize, type QuantizeOptions } from '../../src/quantize/quantize.js';
import { RandomizedHadamard } from '../../src/rotation/randomizedHadamard.js';
import { gaussianMatrix } from '../../src/rotation/random.js';
import { gpuUnavailableReason, testDevice } from './gpuTestDevice.js';

/*
 * The GpuEngine facade end to end: GPU encode → GPU product / GEMV / dequantize, against the CPU
 * reference on the same inputs. Codes are bit-identical (checked through read()), so products differ
 * only by the order of f32 sums: the tolerance is 1e-5 · ‖a_i‖·‖b_j‖ per entry (a wrong code, scale
 * or table entry moves an entry by ≥ 1e-3 of that).
 */

const noGpu = await gpuUnavailableReason();

function columnNorms(m: Matrix): Float64Array {
  return Float64Array.from({ length: m.cols }, (_, j) => {
    let s = 0;
    for (let i = 0; i < m.rows; i++) s += (m.data[j * m.rows + i] as number) ** 2;
    return Math.sqrt(s);
  });
}

function expectProductClose(gpu: Matrix, cpu: Matrix, a: Matrix, b: Matrix, tolerance = 1e-5): void {
  expect([gpu.rows, gpu.cols]).toEqual([cpu.rows, cpu.cols]);
  const na = columnNorms(a);
  const nb = columnNorms(b);
  let worst = 0;
  for (let j = 0; j < cpu.cols; j++) {
    for (let i = 0; i < cpu.rows; i++) {
      const k = j * cpu.rows + i;
      const scale = (na[i] as number) * (nb[j] as number);
      worst = Math.max(worst, Math.abs((gpu.data[k] as number) - (cpu.data[k] as number)) / scale);
    }
  }
  expect(worst).toBeLessThan(tolerance);
}

describe.skipIf(noGpu !== undefined)('GpuEngine', () => {
  let context: GpuContext;
  let engine: GpuEngine;
  beforeAll(async () => {
    context = await testDevice();
    engine = GpuEngine.create(context);
  });
  afterAll(() => {
    engine.destroy();
    context.device.destroy();
  });

  const cases: readonly [string, QuantizeOptions, 'd3-table' | 'e8-dot' | 'decode-f32'][] = [
    ['d3-q6', { scheme: 'd3-q6', seed: 3 }, 'd3-table'],
    ['d3-q6 centred, MMSE gain', { scheme: 'd3-q6', seed: 3, center: true, gain: 'mmse' }, 'd3-table'],
    ['e8-q16', { scheme: 'e8-q16', seed: 4 }, 'e8-dot'],
    ['Z q=16', { scheme: { kind: 'lattice', lattice: 'Z', q: 16, overload: { kind: 'ladder', beta: 0.3, ratio: 2, steps: 4 } }, seed: 5 }, 'e8-dot'],
    ['D3 q=4 (no table)', { scheme: { kind: 'lattice', lattice: 'D3', q: 4, overload: { kind: 'ladder', beta: 0.5, ratio: 1.5, steps: 4 } }, seed: 6 }, 'decode-f32'],
  ];

  for (const [name, options, kernel] of cases) {
    for (const [n, aCols, bCols] of [
      [1, 1, 1],
      [13, 3, 5],
      [100, 17, 9],
      [192, 33, 2],
    ] as const) {
      it(`${name}, n = ${n}, ${aCols} × ${bCols}: GPU codes = CPU codes, ${kernel} product ≈ CPU matmulAT`, async () => {
        const { a, b } = testMatrixPair('gaussian', n, aCols, bCols, n + aCols);
        const qa = await engine.quantize(a, options);
        const qb = await engine.quantize(b, options);
        try {
          const cpuA = quantize(a, options);
          const cpuB = quantize(b, options);
          const readA = await qa.read();
          expect(readA.codes).toEqual(cpuA.kind === 'lattice' ? cpuA.codes : null);
          expect(readA.scaleIndices).toEqual(cpuA.kind === 'lattice' ? cpuA.scaleIndices : null);
          expect(engine.productKernel(qa, qb)).toBe(kernel);
          expectProductClose(await engine.matmulAT(qa, qb), matmulAT(cpuA, cpuB), a, b);
        } finally {
          qa.destroy();
          qb.destroy();
        }
      });
    }
  }

  it('reaches the CPU figure on low-rank data (n = 256): the GPU path keeps the unbiased gain', async () => {
    const { a, b } = testMatrixPair('low-rank', 256, 24, 24, 9);
    const qa = await engine.quantize(a, { scheme: 'd3-q6', seed: 2 });
    const qb = await engine.quantize(b, { scheme: 'd3-q6', seed: 2 });
    try {
      const gpuNmse = productNmse(await engine.matmulAT(qa, qb), a, b);
      const cpuNmse = productNmse(matmulAT(quantize(a, { scheme: 'd3-q6', seed: 2 }), quantize(b, { scheme: 'd3-q6', seed: 2 })), a, b);
      expect(Math.abs(gpuNmse - cpuNmse)).toBeLessThan(1e-4 * cpuNmse + 1e-7);
      expect(gpuNmse).toBeLessThan(0.15);
    } finally {
      qa.destroy();
      qb.destroy();
    }
  });

  it('quantizes the caller’s GPU buffer and writes the product into the caller’s buffer', async () => {
    const a = gaussianMatrix(48, 7, 21);
    const b = gaussianMatrix(48, 5, 22);
    const aBuffer = createBufferWithData(context.device, 'test A', a.data, STORAGE_USAGE);
    const bBuffer = createBufferWithData(context.device, 'test B', b.data, STORAGE_USAGE);
    const out = context.device.createBuffer({ label: 'test C', size: 4 * 7 * 5, usage: STORAGE_USAGE });
    const qa = await engine.quantize({ buffer: aBuffer, rows: 48, cols: 7 }, { scheme: 'd3-q6', seed: 8 });
    const qb = await engine.quantize({ buffer: bBuffer, rows: 48, cols: 5 }, { scheme: 'd3-q6', seed: 8 });
    try {
      await engine.matmulATInto(qa, qb, out);
      const staging = context.device.createBuffer({ size: 4 * 35, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
      const encoder = context.device.createCommandEncoder();
      encoder.copyBufferToBuffer(out, 0, staging, 0, 4 * 35);
      context.device.queue.submit([encoder.finish()]);
      await staging.mapAsync(GPUMapMode.READ);
      const data = new Float32Array(staging.getMappedRange().slice(0));
      staging.destroy();
      const cpu = matmulAT(quantize(a, { scheme: 'd3-q6', seed: 8 }), quantize(b, { scheme: 'd3-q6', seed: 8 }));
      expectProductClose({ rows: 7, cols: 5, data }, cpu, a, b);
    } finally {
      for (const buffer of [aBuffer, bBuffer, out]) buffer.destroy();
      qa.destroy();
      qb.destroy();
    }
  });

  it.each(['d3-q6', 'e8-q16'] as const)('%s matvec ≈ dequantize(W)ᵀ·x in the rotated domain (float64 reference)', async (scheme) => {
    const n = 100;
    const w = gaussianMatrix(n, 9, 31);
    const x = gaussianMatrix(n, 1, 32).data;
    const qw = await engine.quantize(w, { scheme, seed: 12 });
    try {
      const y = await engine.matvec(qw, x);
      const cpu = quantize(w, { scheme, seed: 12 });
      // Reference: ⟨ŵ_j, R x⟩ with ŵ decoded in the rotated domain (the estimator's own definition).
      const rotatedX = new RandomizedHadamard(n, 12).forward(x);
      const decoded = decodeRotated(cpu);
      const xNorm = Math.sqrt(x.reduce((s, v) => s + v * v, 0));
      const wNorms = columnNorms(w);
      for (let j = 0; j < 9; j++) {
        let expected = 0;
        for (let k = 0; k < cpu.length; k++) expected += (decoded[j * cpu.length + k] as number) * (rotatedX[k] as number);
        expect(Math.abs((y.data[j] as number) - expected)).toBeLessThan(1e-5 * (wNorms[j] as number) * xNorm);
      }
    } finally {
      qw.destroy();
    }
  });

  it('matvec takes x from the caller’s GPU buffer (at an offset, 3 right-hand sides) and matches the Float32Array path', async () => {
    const n = 48;
    const w = gaussianMatrix(n, 5, 51);
    const x = gaussianMatrix(n, 3, 52);
    const qw = await engine.quantize(w, { scheme: 'd3-q6', seed: 14 });
    const padded = new Float32Array(4 + x.data.length);
    padded.set(x.data, 4);
    const xBuffer = createBufferWithData(context.device, 'test x', padded, STORAGE_USAGE);
    try {
      const fromGpu = await engine.matvec(qw, { buffer: xBuffer, rows: n, cols: 3, offset: 16 });
      const fromHost = await engine.matvec(qw, x);
      expect([fromGpu.rows, fromGpu.cols]).toEqual([5, 3]);
      expect(Array.from(fromGpu.data)).toEqual(Array.from(fromHost.data));
      const single = await engine.matvec(qw, x.data.slice(0, n));
      for (let j = 0; j < 5; j++) expect(single.data[j]).toBe(fromHost.data[j]);
    } finally {
      xBuffer.destroy();
      qw.destroy();
    }
  });

  it('dequantize on the GPU equals the CPU dequantize to f32 rounding', async () => {
    const a = gaussianMatrix(40, 6, 41);
    const qa = await engine.quantize(a, { scheme: 'e8-q16', seed: 13, center: true });
    try {
      const gpu = await engine.dequantize(qa);
      const cpu = dequantize(quantize(a, { scheme: 'e8-q16', seed: 13, center: true }));
      for (let k = 0; k < cpu.data.length; k++) expect(gpu.data[k] as number).toBeCloseTo(cpu.data[k] as number, 5);
    } finally {
      qa.destroy();
    }
  });

  it('a CPU-quantized matrix uploaded to the GPU multiplies like the GPU-quantized one', async () => {
    const { a, b } = testMatrixPair('heavy-tailed', 64, 4, 4, 3);
    const cpuA = quantize(a, { scheme: 'd3-q6', seed: 1 });
    const cpuB = quantize(b, { scheme: 'd3-q6', seed: 1 });
    if (cpuA.kind !== 'lattice' || cpuB.kind !== 'lattice') throw new Error('expected lattice matrices');
    const ua = engine.upload(cpuA);
    const ub = engine.upload(cpuB);
    try {
      expectProductClose(await engine.matmulAT(ua, ub), matmulATExact(a, b), a, b, 0.5); // sanity: an estimate of AᵀB
      expectProductClose(await engine.matmulAT(ua, ub), matmulAT(cpuA, cpuB), a, b);
    } finally {
      ua.destroy();
      ub.destroy();
    }
  });

  it('refuses what it cannot do, with LatticeMatmulError', async () => {
    const a = gaussianMatrix(24, 2, 1);
    await expect(engine.quantize(a, { scheme: 'int4-g32' })).rejects.toThrow(/CPU/);
    const qa = await engine.quantize(a, { scheme: 'd3-q6', seed: 1 });
    const qb = await engine.quantize(gaussianMatrix(24, 2, 2), { scheme: 'd3-q6', seed: 2 });
    const qc = await engine.quantize(gaussianMatrix(48, 2, 2), { scheme: 'd3-q6', seed: 1 });
    try {
      await expect(engine.matmulAT(qa, qb)).rejects.toThrow(/seed/);
      await expect(engine.matmulAT(qa, qc)).rejects.toThrow(LatticeMatmulError);
      await expect(engine.matvec(qa, new Float32Array(23))).rejects.toThrow(/rows/);
      const other = GpuEngine.create(context);
      other.destroy();
      await expect(other.quantize(a, { scheme: 'd3-q6' })).rejects.toThrow(/destroyed/);
    } finally {
      for (const q of [qa, qb, qc]) q.destroy();
    }
  });
});
