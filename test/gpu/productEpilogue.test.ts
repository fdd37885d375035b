import { beforeAll, describe, expect, it } from 'vitest';
import { createBuffer, createBufferWithData, readBuffer, STORAGE_USAGE } from '../../src/gpu/buffers.js';
import { GpuEngine } from '../../src/gpu/engine.js';
import { withValidation } from '../../src/gpu/errorScopes.js';
import { dispatchProductEpilogue } from '../../src/gpu/kernels/productEpilogue.js';
import { GpuScratch } from '../../src/gpu/scratch.js';
import { matmulAT } from '../../src/product/matmulAT.js';
import { universalPairProduct } from '../../src/product/universalPairProduct.js';
import { quantize } from '../../src/quantize/quantize.js';
import type { UniversalLatticeMatrix } from '../../src/quantize/quantizedMatrix.js';
import { gaussianMatrix, Rng } from '../../src/rotation/random.js';
import { contextOnTestDevice, gpuUnavailableReason } from './gpuTestDevice.js';

/*
 * The universal product's epilogue (shaders/product_epilogue.wgsl) binds C a chunk of columns at a
 * time: a caller's C may sit in a buffer larger than one storage binding (it bound the whole buffer,
 * and WebGPU refused a C of 8 × 8 in a 136 MiB buffer), or be larger than one binding itself.
 * Twin: the formula of the shader's header, in float64 and rounded as the shader rounds.
 */

const noGpu = await gpuUnavailableReason();

describe.skipIf(noGpu !== undefined)('product epilogue in chunks of C columns', () => {
  const suite = contextOnTestDevice();
  let device: GPUDevice;
  beforeAll(() => {
    device = suite.context.device;
  });

  /** C after the epilogue, on the GPU with `maxBindingBytes`, and its twin. */
  async function run(aCols: number, bCols: number, gram: boolean, maxBindingBytes: number | undefined, cOffset: number): Promise<{ got: Float32Array; want: Float32Array }> {
    const rng = new Rng(aCols * 1000 + bCols);
    const rows = 37;
    const c = Float32Array.from({ length: aCols * bCols }, () => rng.nextGaussian());
    const side = (cols: number): Float32Array => Float32Array.from({ length: 2 * cols }, () => rng.nextGaussian()); // norms, then means
    const exponents = (cols: number): Int32Array => Int32Array.from({ length: cols }, () => rng.nextInt(9) - 4);
    const sideA = side(aCols);
    const sideB = gram ? sideA : side(bCols);
    const eA = exponents(aCols);
    const eB = gram ? eA : exponents(bCols);
    const want = new Float32Array(aCols * bCols);
    for (let j = 0; j < bCols; j++) {
      for (let i = 0; i < aCols; i++) {
        let value = Math.fround(c[j * aCols + i] as number) * 2 ** ((eA[i] as number) + (eB[j] as number));
        value = Math.fround(value + Math.fround(Math.fround(rows * (sideA[aCols + i] as number)) * (sideB[bCols + j] as number)));
        if (gram && i === j) value = Math.fround(Math.fround((sideA[i] as number) ** 2) + Math.fround(Math.fround(rows * (sideA[aCols + i] as number)) * (sideA[aCols + i] as number)));
        want[j * aCols + i] = value;
      }
    }
    const padded = new Float32Array(cOffset / 4 + aCols * bCols + 16).fill(-999);
    padded.set(c, cOffset / 4);
    const buffers = [
      createBufferWithData(device, 'test C', padded, STORAGE_USAGE),
      createBufferWithData(device, 'test side A', sideA, STORAGE_USAGE),
      createBufferWithData(device, 'test side B', sideB, STORAGE_USAGE),
      createBufferWithData(device, 'test exponents A', eA, STORAGE_USAGE),
      createBufferWithData(device, 'test exponents B', eB, STORAGE_USAGE),
    ] as const;
    const scratch = new GpuScratch(device);
    try {
      const bytes = await withValidation(device, 'epilogue test', async () => {
        const encoder = device.createCommandEncoder({ label: 'epilogue test' });
        dispatchProductEpilogue(device, encoder, scratch, {
          c: buffers[0], cOffset, sideA: buffers[1], sideB: buffers[2], aCols, bCols, rows, centred: true, gram,
          exponents: { a: buffers[3], b: buffers[4] },
          ...(maxBindingBytes === undefined ? {} : { maxBindingBytes }),
        });
        device.queue.submit([encoder.finish()]);
        return readBuffer(device, buffers[0], padded.byteLength);
      });
      const all = new Float32Array(bytes);
      // Nothing outside C is touched.
      expect(Array.from(all.subarray(0, cOffset / 4)).every((v) => v === -999)).toBe(true);
      expect(Array.from(all.subarray(cOffset / 4 + aCols * bCols)).every((v) => v === -999)).toBe(true);
      return { got: all.slice(cOffset / 4, cOffset / 4 + aCols * bCols), want };
    } finally {
      scratch.destroy();
      for (const buffer of buffers) buffer.destroy();
    }
  }

  it.each([
    { aCols: 7, bCols: 9, gram: false, maxBindingBytes: undefined, cOffset: 0 },
    // 256 + 2 columns of 7: chunks of 2 columns (the 252 bytes of slack at a 256-byte alignment count).
    { aCols: 7, bCols: 9, gram: false, maxBindingBytes: 252 + 2 * 28, cOffset: 12 },
    // A Gram matrix split so that diagonal entries fall in later chunks (j = b_first + local column).
    { aCols: 10, bCols: 10, gram: true, maxBindingBytes: 252 + 3 * 40, cOffset: 1000 },
    { aCols: 1, bCols: 5, gram: false, maxBindingBytes: 252 + 4, cOffset: 4 },
    // 1200 entries: a grid of several workgroups of 256 invocations.
    { aCols: 40, bCols: 30, gram: false, maxBindingBytes: undefined, cOffset: 0 },
  ])('$aCols × $bCols, gram $gram, binding cap $maxBindingBytes, C at byte $cOffset: bit for bit its twin', async ({ aCols, bCols, gram, maxBindingBytes, cOffset }) => {
    if (gram && aCols !== bCols) throw new Error('a Gram matrix is square');
    const { got, want } = await run(aCols, bCols, gram, maxBindingBytes, cOffset);
    expect(Array.from(got)).toEqual(Array.from(want));
  });

  it('a universal product into a caller buffer larger than one storage binding (C of 8 × 8 at its start) equals the CPU product', async () => {
    const engine = GpuEngine.create(suite.context);
    const a = quantize(gaussianMatrix(64, 8, 1), { scheme: 'e8-q16', nonce: 1 }) as UniversalLatticeMatrix;
    const b = quantize(gaussianMatrix(64, 8, 2), { scheme: 'e8-q16', nonce: 2 }) as UniversalLatticeMatrix;
    const [ga, gb] = [engine.upload(a), engine.upload(b)];
    const big = createBuffer(device, 'test C beyond one binding', device.limits.maxStorageBufferBindingSize + 8 * 1024 * 1024, STORAGE_USAGE);
    try {
      await engine.matmulATInto(ga, gb, big, 256);
      const got = new Float32Array(await readBuffer(device, big, 256 + 4 * 64)).subarray(64);
      // The pair product (universal-i8) drops a term that matmulAT keeps: its CPU twin is universalPairProduct.
      const want = (engine.productKernel(ga, gb) === 'universal-i8' ? universalPairProduct : matmulAT)(a, b).data;
      for (let k = 0; k < 64; k++) expect(Math.abs((got[k] as number) - (want[k] as number))).toBeLessThan(1e-4 * (1 + Math.abs(want[k] as number)));
    } finally {
      big.destroy();
      ga.destroy();
      gb.destroy();
    }
  });
});
