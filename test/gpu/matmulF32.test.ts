import { describe, expect, it } from 'vitest';
import { matmulATExact, type Matrix } from '../../src/matrix.js';
import { gaussianMatrix, Rng } from '../../src/rotation/random.js';
import { createBuffer, readBuffer, STORAGE_USAGE, uploadToBuffer } from '../../src/gpu/buffers.js';
import { withValidation } from '../../src/gpu/errorScopes.js';
import { GpuScratch } from '../../src/gpu/scratch.js';
import { dispatchMatmulF32, matmulF32 } from '../../src/gpu/kernels/matmulF32.js';
import { contextOnTestDevice, gpuUnavailableReason } from './gpuTestDevice.js';

/*
 * The f32 baseline against `matmulATExact`. Stated tolerance: an f32 dot product of length n summed
 * in any order (with or without fused multiply-adds) is within γ_n·Σ|a_k b_k| of the exact value,
 * γ_n = n·u/(1 − n·u), u = 2^−24; the reference itself is rounded once more to f32. So every entry
 * must satisfy |gpu − ref| ≤ (n + 2)·u·Σ_k |A_ki·B_kj|. Small-integer inputs have exactly
 * representable products and partial sums, so there the result must be exact.
 */

const noGpu = await gpuUnavailableReason();
const U = 2 ** -24;

/** Largest |gpu − ref| / ((n + 2)·u·Σ|a b|) over all entries (≤ 1 passes), and the worst entry. */
function worstRelativeError(gpu: Matrix, a: Matrix, b: Matrix): { ratio: number; at: string } {
  const ref = matmulATExact(a, b);
  const n = a.rows;
  let worst = { ratio: 0, at: 'none' };
  for (let j = 0; j < b.cols; j++) {
    for (let i = 0; i < a.cols; i++) {
      let absDot = 0;
      for (let k = 0; k < n; k++) absDot += Math.abs((a.data[i * n + k] as number) * (b.data[j * n + k] as number));
      const got = gpu.data[j * a.cols + i] as number;
      const expected = ref.data[j * a.cols + i] as number;
      const bound = (n + 2) * U * absDot;
      const ratio = got === expected ? 0 : Math.abs(got - expected) / bound; // bound 0 → Infinity unless equal
      if (!(ratio <= worst.ratio)) worst = { ratio, at: `C[${i}, ${j}] = ${got}, expected ${expected}` };
    }
  }
  return worst;
}

function integerMatrix(rows: number, cols: number, seed: number): Matrix {
  const rng = new Rng(seed);
  const data = new Float32Array(rows * cols);
  for (let i = 0; i < data.length; i++) data[i] = rng.nextInt(17) - 8;
  return { rows, cols, data };
}

describe.skipIf(noGpu !== undefined)('matmul_f32.wgsl: C = AᵀB', () => {
  const suite = contextOnTestDevice();

  const shapes: [n: number, aCols: number, bCols: number][] = [
    [1, 1, 1],
    [1, 5, 3],
    [3, 7, 2],
    [8, 64, 64],
    [33, 65, 31],
    [100, 70, 130],
    [16, 1, 129],
    [200, 3, 1],
  ];

  it.each(shapes)('n = %i, A %i columns, B %i columns: within (n + 2)·u·Σ|ab| of matmulATExact', async (n, aCols, bCols) => {
    const a = gaussianMatrix(n, aCols, 1000 + n);
    const b = gaussianMatrix(n, bCols, 2000 + aCols);
    const c = await matmulF32(suite.context.device, a, b);
    expect([c.rows, c.cols]).toEqual([aCols, bCols]);
    const worst = worstRelativeError(c, a, b);
    expect(worst.ratio, worst.at).toBeLessThanOrEqual(1);
  });

  it.each(shapes)('n = %i, A %i columns, B %i columns: exact on small integers', async (n, aCols, bCols) => {
    const a = integerMatrix(n, aCols, 3 + n);
    const b = integerMatrix(n, bCols, 4 + bCols);
    const c = await matmulF32(suite.context.device, a, b);
    expect(Array.from(c.data)).toEqual(Array.from(matmulATExact(a, b).data));
  });

  it('splits B into several dispatches and honours unaligned offsets inside shared buffers', async () => {
    const { device } = suite.context;
    const n = 37;
    const aCols = 66;
    const bCols = 150;
    const a = integerMatrix(n, aCols, 11);
    const b = integerMatrix(n, bCols, 12);
    // A at byte 12, B at byte 4·(n·aCols) + 20 of the same buffer, C at byte 36 of another.
    const aOffset = 12;
    const bOffset = aOffset + 4 * n * aCols + 8;
    const cOffset = 36;
    const inputs = createBuffer(device, 'test A and B', bOffset + 4 * n * bCols, STORAGE_USAGE);
    const output = createBuffer(device, 'test C', cOffset + 4 * aCols * bCols, STORAGE_USAGE);
    const scratch = new GpuScratch(device);
    try {
      const c = await withValidation(device, 'split matmul', async () => {
        uploadToBuffer(device, inputs, a.data, aOffset);
        uploadToBuffer(device, inputs, b.data, bOffset);
        const encoder = device.createCommandEncoder({ label: 'split matmul' });
        // A binding limit just above A: C then takes at most 37 columns per binding, so B is split.
        dispatchMatmulF32(device, encoder, scratch, {
          a: inputs,
          b: inputs,
          c: output,
          n,
          aCols,
          bCols,
          aOffset,
          bOffset,
          cOffset,
          maxBindingBytes: Math.max(4 * n * aCols + 256, 4 * aCols * 20 + 252),
        });
        device.queue.submit([encoder.finish()]);
        return new Float32Array(await readBuffer(device, output, 4 * aCols * bCols, cOffset));
      });
      expect(Array.from(c)).toEqual(Array.from(matmulATExact(a, b).data));
    } finally {
      scratch.destroy();
      inputs.destroy();
      output.destroy();
    }
  });

  it('refuses mismatched shapes with a LatticeMatmulError', async () => {
    await expect(matmulF32(suite.context.device, gaussianMatrix(3, 2, 1), gaussianMatrix(4, 2, 1))).rejects.toThrow(
      /same number of rows/,
    );
  });
});
