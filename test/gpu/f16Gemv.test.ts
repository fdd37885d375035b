import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { createBuffer, readBuffer, STORAGE_USAGE, uploadToBuffer } from '../../src/gpu/buffers.js';
import { withValidation } from '../../src/gpu/errorScopes.js';
import { GpuScratch } from '../../src/gpu/scratch.js';
import {
  dequantizeF16Weights,
  dispatchF16Gemv,
  f16Gemv,
  f16GemvRoundingDepth,
  f16GemvSupported,
  f16PaddedLength,
  f32ToF16Bits,
  packF16Weights,
} from '../../src/gpu/kernels/f16Gemv.js';
import { column, type Matrix } from '../../src/matrix.js';
import { gaussianMatrix, Rng } from '../../src/rotation/random.js';
import { float16Bits, fromFloat16Bits } from '../../src/scalar/floatFormats.js';
import { contextOnTestDevice, gpuUnavailableReason, skipUnless } from './gpuTestDevice.js';

/*
 * The f16 GEMV baseline (shaders/f16_gemv.wgsl) against float64 dot products of W rounded to f16 (the
 * reference rounding is the library's `float16Bits`, not the kernel module's fast converter, so the
 * packing is checked too). Tolerance: each term goes through at most D = f16GemvRoundingDepth(n)
 * f32 roundings (module comment), so |ŷ_j − y_j| ≤ (D + 1)·u·Σ_k |Ŵ_kj x_k| with one more rounding of
 * the result; u = 2^−24.
 */

const noGpu = await gpuUnavailableReason();
const U = 2 ** -24;
const SHAPES: [number, number][] = [1, 7, 8, 100, 256].flatMap((n) => [1, 9, 65].map((cols): [number, number] => [n, cols]));

/** W rounded to f16 by the library's reference converter. */
function roundedToF16(w: Matrix): Matrix {
  return { rows: w.rows, cols: w.cols, data: Float32Array.from(w.data, (v) => fromFloat16Bits(float16Bits(v))) };
}

function worstRatio(got: Float32Array, w: Matrix, x: Float32Array, depth: number): { ratio: number; at: string } {
  let worst = { ratio: 0, at: 'none' };
  for (let j = 0; j < w.cols; j++) {
    const col = column(w, j);
    let exact = 0;
    let abs = 0;
    for (let k = 0; k < w.rows; k++) {
      exact += (col[k] as number) * (x[k] as number);
      abs += Math.abs((col[k] as number) * (x[k] as number));
    }
    const value = got[j] as number;
    const ratio = value === exact ? 0 : Math.abs(value - exact) / ((depth + 1) * U * abs);
    if (!(ratio <= worst.ratio)) worst = { ratio, at: `y[${j}] = ${value}, expected ${exact}` };
  }
  return worst;
}

describe('f32ToF16Bits (the packer’s converter)', () => {
  it('equals float16Bits on edge values: subnormals, ties, overflow, signed zeros', () => {
    const edges = [0, -0, 1, -1, 65504, 65519.99, 65520, -65520, 2 ** -24, 2 ** -25, 2 ** -25 * 1.0000001, 3 * 2 ** -26, 2 ** -14, 2 ** -14 * (1 - 2 ** -11), 1 + 2 ** -11, 1 + 3 * 2 ** -11, 1e-30, 3.4e38];
    for (const v of edges) expect(f32ToF16Bits(v), `value ${v}`).toBe(float16Bits(Math.fround(v)));
    expect(f32ToF16Bits(Infinity)).toBe(0x7c00);
  });

  it('equals float16Bits on random f32 bit patterns', () => {
    const bits = new Uint32Array(1);
    const f = new Float32Array(bits.buffer);
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 0xffffffff }), (pattern) => {
        bits[0] = pattern;
        const v = f[0] as number;
        if (!Number.isFinite(v)) return;
        expect(f32ToF16Bits(v)).toBe(float16Bits(v));
      }),
      { seed: 1130, numRuns: 20000 },
    );
  });
});

describe('packF16Weights', () => {
  it('puts entry k of a column in half k % 2 of word k / 2, zero-padded to 8 entries', () => {
    const w: Matrix = { rows: 3, cols: 2, data: Float32Array.from([1, 2, 3, -1, 0.5, 65504]) };
    const q = packF16Weights(w);
    expect(q.chunks).toBe(1);
    expect(Array.from(q.words)).toEqual([0x40003c00, 0x4200, 0, 0, 0x3800bc00, 0x7bff, 0, 0]);
    expect(Array.from(dequantizeF16Weights(q).data)).toEqual(Array.from(w.data));
  });

  it('refuses non-finite entries and values that overflow f16', () => {
    expect(() => packF16Weights({ rows: 1, cols: 1, data: Float32Array.from([NaN]) })).toThrow(/non-finite entry NaN at row 0, column 0/);
    expect(() => packF16Weights({ rows: 2, cols: 1, data: Float32Array.from([0, 70000]) })).toThrow(/W\[1, 0\] = 70000 overflows f16/);
  });
});

describe.skipIf(noGpu !== undefined)('f16_gemv.wgsl', () => {
  const suite = contextOnTestDevice();

  it('runs where the device has shader-f16 (lavapipe has it)', () => {
    expect(f16GemvSupported(suite.context.device)).toBe(suite.context.features.shaderF16);
  });

  describe.each([false, true])('subgroups: %s', (subgroups) => {
    it.for(SHAPES)('n = %i, cols = %i: within (D + 1)·u·Σ|ŵx| of float64 dots of W rounded to f16', async ([n, cols], context) => {
      skipUnless(context, suite.context.features.shaderF16, 'shader-f16');
      skipUnless(context, !subgroups || suite.context.features.subgroups, 'subgroups');
      const w = gaussianMatrix(n, cols, 100 + n + cols);
      const x = gaussianMatrix(n, 1, 7 + n).data;
      const y = await f16Gemv(suite.context.device, packF16Weights(w), x, { subgroups });
      const worst = worstRatio(y, roundedToF16(w), x, f16GemvRoundingDepth(n));
      expect(worst.ratio, worst.at).toBeLessThanOrEqual(1);
    });
  });

  it('exact on small integers; the shuffles ran (require-shuffles) and the forced fallback agrees', async (context) => {
    skipUnless(context, suite.context.features.shaderF16, 'shader-f16');
    skipUnless(context, suite.context.features.subgroups, 'subgroups');
    const n = 200;
    const cols = 33;
    const rng = new Rng(4);
    const w: Matrix = { rows: n, cols, data: Float32Array.from({ length: n * cols }, () => rng.nextInt(33) - 16) };
    const x = Float32Array.from({ length: n }, () => rng.nextInt(17) - 8);
    const expected = Array.from({ length: cols }, (_, j) => column(w, j).reduce((sum, v, k) => sum + v * (x[k] as number), 0));
    const q = packF16Weights(w);
    expect(Array.from(await f16Gemv(suite.context.device, q, x, { subgroups: true, subgroupTestMode: 'require-shuffles' }))).toEqual(expected);
    expect(Array.from(await f16Gemv(suite.context.device, q, x, { subgroups: true, subgroupTestMode: 'fallback' }))).toEqual(expected);
    expect(Array.from(await f16Gemv(suite.context.device, q, x, { subgroups: false }))).toEqual(expected);
  });

  it('splits columns across dispatches and honours offsets inside shared buffers', async (context) => {
    skipUnless(context, suite.context.features.shaderF16, 'shader-f16');
    const { device } = suite.context;
    const n = 20; // 3 chunks, x padded to 24
    const cols = 19;
    const rng = new Rng(9);
    const w: Matrix = { rows: n, cols, data: Float32Array.from({ length: n * cols }, () => rng.nextInt(9) - 4) };
    const x = Float32Array.from({ length: n }, () => rng.nextInt(9) - 4);
    const padded = new Float32Array(f16PaddedLength(n));
    padded.set(x);
    const q = packF16Weights(w);
    const wOffset = 16 * 3;
    const xOffset = wOffset + 4 * q.words.length + 16;
    const yOffset = 4 * 5;
    const inputs = createBuffer(device, 'test f16 W and x', xOffset + 4 * padded.length, STORAGE_USAGE);
    const output = createBuffer(device, 'test f16 y', yOffset + 4 * cols, STORAGE_USAGE);
    const scratch = new GpuScratch(device);
    try {
      const y = await withValidation(device, 'split f16 gemv', async () => {
        uploadToBuffer(device, inputs, q.words, wOffset);
        uploadToBuffer(device, inputs, padded, xOffset);
        const encoder = device.createCommandEncoder({ label: 'split f16 gemv' });
        // 512-byte bindings: 5 columns (48 bytes each, after 252 bytes of slack) per dispatch.
        dispatchF16Gemv(device, encoder, scratch, { w: inputs, x: inputs, y: output, n, cols, wOffset, xOffset, yOffset, maxBindingBytes: 512 });
        device.queue.submit([encoder.finish()]);
        return new Float32Array(await readBuffer(device, output, 4 * cols, yOffset));
      });
      const expected = Array.from({ length: cols }, (_, j) => column(w, j).reduce((sum, v, k) => sum + v * (x[k] as number), 0));
      expect(Array.from(y)).toEqual(expected);
    } finally {
      scratch.destroy();
      inputs.destroy();
      output.destroy();
    }
  });

  it('refuses a vector of the wrong length and misaligned offsets', async (context) => {
    skipUnless(context, suite.context.features.shaderF16, 'shader-f16');
    const { device } = suite.context;
    const q = packF16Weights(gaussianMatrix(16, 2, 1));
    await expect(f16Gemv(device, q, new Float32Array(15))).rejects.toThrow(/x has 15 entries, W has 16 rows/);
    const buffer = createBuffer(device, 'test buffer', 1024, STORAGE_USAGE);
    const scratch = new GpuScratch(device);
    try {
      const encoder = device.createCommandEncoder();
      expect(() => dispatchF16Gemv(device, encoder, scratch, { w: buffer, x: buffer, y: buffer, n: 16, cols: 2, wOffset: 8 })).toThrow(/W offset must be a non-negative multiple of 16/);
      expect(() => dispatchF16Gemv(device, encoder, scratch, { w: buffer, x: buffer, y: buffer, n: 800, cols: 2 })).toThrow(/W needs 3200 bytes/);
    } finally {
      scratch.destroy();
      buffer.destroy();
    }
  });
});
