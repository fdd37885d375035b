import { describe, expect, it } from 'vitest';
import { column, type Matrix } from '../../src/matrix.js';
import { gaussianMatrix, Rng } from '../../src/rotation/random.js';
import { absmaxDequantize, absmaxQuantize } from '../../src/scalar/absmax.js';
import { float16Bits, fromFloat16Bits } from '../../src/scalar/floatFormats.js';
import { createBuffer, createBufferWithData, readBuffer, STORAGE_USAGE, uploadToBuffer } from '../../src/gpu/buffers.js';
import { withValidation } from '../../src/gpu/errorScopes.js';
import { nodeGpu, requestNodeGpuDevice } from '../../src/gpu/nodeGpu.js';
import { GpuScratch } from '../../src/gpu/scratch.js';
import { TIMESTAMP_QUERY_DAWN_FLAGS, timeGpuWork } from '../../src/gpu/timing.js';
import { dispatchF32Gemv, f32Gemv, f32GemvChunkWidth, f32GemvRoundingDepth, type F32GemvChunkWidth } from '../../src/gpu/kernels/f32Gemv.js';
import {
  dequantizeInt4Weights,
  dispatchInt4Gemv,
  INT4_G32_OPTIONS,
  dispatchInt4GemvI8,
  dispatchInt4InputsI8,
  int4Gemv,
  int4GemvI8,
  int4GemvI8Reference,
  int4GemvI8RoundingDepth,
  int4GemvRoundingDepth,
  int4PaddedLength,
  quantizeInt4InputsI8,
  quantizeInt4Weights,
  type Int4Weights,
} from '../../src/gpu/kernels/int4Gemv.js';
import { DOT_PATHS, dotPathFor, type DotPath } from '../../src/gpu/kernels/e8Matmul.js';
import type { E8InputsI8Values } from '../../src/gpu/kernels/e8ResidueGemvI8.js';
import { contextOnTestDevice, gpuUnavailableReason, skipUnless } from './gpuTestDevice.js';

/*
 * The GEMV baselines of the benchmark against float64 references computed here.
 *
 * Stated tolerances (u = 2^−24): an f32 sum in which every term goes through at most D roundings is
 * within γ_D·Σ|terms| ≈ D·u·Σ|terms| of the exact sum (any order, with or without fused multiply-adds),
 * and the result is rounded once more. The kernels' depths (see the module comments; 256 invocations
 * per workgroup, 8 reduction levels with or without subgroups):
 *   f32 GEMV:   D = 1 + 3 + ⌈C/256⌉ + 8, C = n/4 chunks (vec4; width 1: 1 + ⌈n/256⌉ + 8)
 *   int4 GEMV:  D = 6 + ⌈4G/256⌉ + 8   (product, dot, 2 half-words, scale; word chain), G = ⌈n/32⌉
 *   int4 GEMV, int8 x: D = 2 + ⌈4G/256⌉ + 8 (a word's exact i32 Σ level·x̂ times two scales; word chain),
 *               against Σ_k s_g·scale·level_k·x̂_k in float64 on the x̂ the GPU made
 * so the check is |ŷ_j − y_j| ≤ (D + 1)·u·Σ_k |W_kj x_k| with y the float64 dot product of the
 * (dequantized) column with x. The int4 reference dequantizes with `absmaxDequantize` on
 * `absmaxQuantize`'s own output, not with the kernel module's unpacking, so the packing is checked too.
 */

const noGpu = await gpuUnavailableReason();
const U = 2 ** -24;

// 8200: 257 groups of int4 codes (1028 words, several per invocation; the last group partial), 2050 f32 vec4s.
const ROWS = [1, 31, 100, 256, 8200];
const COLS = [1, 3, 65];
const SHAPES: [n: number, cols: number][] = ROWS.flatMap((n) => COLS.map((cols): [number, number] => [n, cols]));

function gaussianVector(n: number, seed: number): Float32Array {
  return gaussianMatrix(n, 1, seed).data;
}

/** Worst |got − exact| / ((depth + 1)·u·Σ|w x|) over the outputs (≤ 1 passes), and where. */
function worstRelativeError(got: Float32Array, w: Matrix, x: Float32Array, depth: number): { ratio: number; at: string } {
  let worst = { ratio: 0, at: 'none' };
  expect(got.length).toBe(w.cols);
  for (let j = 0; j < w.cols; j++) {
    const col = column(w, j);
    let exact = 0;
    let absSum = 0;
    for (let k = 0; k < w.rows; k++) {
      const term = (col[k] as number) * (x[k] as number);
      exact += term;
      absSum += Math.abs(term);
    }
    const value = got[j] as number;
    const ratio = value === exact ? 0 : Math.abs(value - exact) / ((depth + 1) * U * absSum);
    if (!(ratio <= worst.ratio)) worst = { ratio, at: `y[${j}] = ${value}, expected ${exact}` };
  }
  return worst;
}

/** The int4 g32 matrix the kernel should multiply by, straight from the absmax quantizer. */
function absmaxDequantizedColumns(w: Matrix): Matrix {
  const data = new Float32Array(w.rows * w.cols);
  for (let j = 0; j < w.cols; j++) {
    const quantized = absmaxQuantize(column(w, j), INT4_G32_OPTIONS);
    data.set(absmaxDequantize(quantized, w.rows, INT4_G32_OPTIONS), j * w.rows);
  }
  return { rows: w.rows, cols: w.cols, data };
}

function smallIntegerData(length: number, seed: number, max: number): Float32Array {
  const rng = new Rng(seed);
  const data = new Float32Array(length);
  for (let i = 0; i < length; i++) data[i] = rng.nextInt(2 * max + 1) - max;
  return data;
}

function integerDot(w: Matrix, x: Float32Array): number[] {
  return Array.from({ length: w.cols }, (_, j) => {
    let sum = 0;
    for (let k = 0; k < w.rows; k++) sum += (w.data[j * w.rows + k] as number) * (x[k] as number);
    return sum;
  });
}

/** Worst |got − exact| / ((depth + 1)·u·Σ|terms|) of the int8-input int4 GEMV against float64 on the GPU's x̂. */
function worstI8Error(got: Float32Array, q: Int4Weights, inputs: E8InputsI8Values, depth: number): { ratio: number; at: string } {
  const exact = int4GemvI8Reference(q, inputs);
  // Σ|terms|: the reference of |W| against |x̂| (levels and scales made non-negative: the fp16 scales'
  // sign bits cleared, which Q4_0's negative scales need).
  const absolute = int4GemvI8Reference(
    { ...q, codes: q.codes.map((word) => absoluteNibbles(word)), scales: q.scales.map((word) => (word & 0x7fff7fff) >>> 0) },
    { levels: inputs.levels.map(Math.abs), scales: inputs.scales.map(Math.abs) },
  );
  let worst = { ratio: 0, at: 'none' };
  for (let j = 0; j < q.cols; j++) {
    const value = got[j] as number;
    const ratio = value === exact[j] ? 0 : Math.abs(value - (exact[j] as number)) / ((depth + 1) * U * (absolute[j] as number));
    if (!(ratio <= worst.ratio)) worst = { ratio, at: `y[${j}] = ${value}, expected ${exact[j]}` };
  }
  return worst;
}

/** A code word with every nibble v (level v − 8) replaced by |v − 8| + 8. */
function absoluteNibbles(word: number): number {
  let out = 0;
  for (let t = 0; t < 8; t++) out |= (Math.abs(((word >>> (4 * t)) & 15) - 8) + 8) << (4 * t);
  return out >>> 0;
}

/** Checks the GPU's x̂ against the CPU twin: equal levels, except ±1 where 127·x/m lies within 10⁻⁴ of a half-integer (the GPU divides in f32), and scales within 2.5 ULP. */
function expectInt4Inputs(gpu: E8InputsI8Values, x: Float32Array): void {
  const cpu = quantizeInt4InputsI8(x);
  expect(gpu.levels.length).toBe(cpu.levels.length);
  for (let k = 0; k < cpu.levels.length; k++) {
    const difference = (gpu.levels[k] as number) - (cpu.levels[k] as number);
    if (difference === 0) continue;
    const g = Math.floor(k / 32);
    const m = 127 * (cpu.scales[g] as number);
    const position = (127 * (x[k] as number)) / m;
    expect(Math.abs(difference), `level ${k}`).toBe(1);
    expect(Math.abs(Math.abs(position % 1) - 0.5), `level ${k}: 127·x/m = ${position}`).toBeLessThan(1e-4);
  }
  for (let g = 0; g < cpu.scales.length; g++) {
    const expected = cpu.scales[g] as number;
    expect(Math.abs((gpu.scales[g] as number) - expected), `scale ${g}`).toBeLessThanOrEqual(2.5 * 2 ** -23 * expected);
  }
}

describe.skipIf(noGpu !== undefined)('baseline GEMV kernels', () => {
  const suite = contextOnTestDevice();

  describe('f32_gemv.wgsl: y = Wᵀx', () => {
    it.each(SHAPES)('n = %i, cols = %i: within (D + 1)·u·Σ|wx| of the float64 dot products, both reductions', async (n, cols) => {
      const w = gaussianMatrix(n, cols, 10 + n);
      const x = gaussianVector(n, 20 + cols);
      const depth = f32GemvRoundingDepth(n, f32GemvChunkWidth(n));
      for (const subgroups of suite.context.features.subgroups ? [false, true] : [false]) {
        const y = await f32Gemv(suite.context.device, w, x, { subgroups });
        const worst = worstRelativeError(y, w, x, depth);
        expect(worst.ratio, `subgroups ${subgroups}: ${worst.at}`).toBeLessThanOrEqual(1);
      }
    });

    it('subgroup variant: the shuffles ran (require-shuffles) and the forced fallback gives the same exact sums', async (context) => {
      skipUnless(context, suite.context.features.subgroups, 'subgroups');
      const n = 1000; // 250 chunks: every invocation of the workgroup holds a partial sum
      const cols = 17;
      const w: Matrix = { rows: n, cols, data: smallIntegerData(n * cols, 11, 8) };
      const x = smallIntegerData(n, 12, 8);
      const expected = integerDot(w, x);
      expect(Array.from(await f32Gemv(suite.context.device, w, x, { subgroups: true, subgroupTestMode: 'require-shuffles' }))).toEqual(expected);
      expect(Array.from(await f32Gemv(suite.context.device, w, x, { subgroups: true, subgroupTestMode: 'fallback' }))).toEqual(expected);
      await expect(f32Gemv(suite.context.device, w, x, { subgroups: false, subgroupTestMode: 'fallback' })).rejects.toThrow(/subgroupTestMode applies to the subgroup variant/);
    });

    it('subgroups must be a boolean and subgroupTestMode one of its values (\'yes\' and 0 chose a variant by truthiness)', async () => {
      const w: Matrix = { rows: 8, cols: 2, data: smallIntegerData(16, 13, 8) };
      const x = smallIntegerData(8, 14, 8);
      await expect(f32Gemv(suite.context.device, w, x, { subgroups: 'yes' as never })).rejects.toThrow(/^f32 gemv: subgroups must be true or false, got "yes"$/);
      await expect(f32Gemv(suite.context.device, w, x, { subgroups: 0 as never })).rejects.toThrow(/^f32 gemv: subgroups must be true or false, got 0$/);
      await expect(f32Gemv(suite.context.device, w, x, { subgroups: suite.context.features.subgroups, subgroupTestMode: 'falback' as never })).rejects.toThrow(
        /^f32 gemv: subgroupTestMode must be 'fallback' or 'require-shuffles', got "falback"$/,
      );
    });

    it.each(SHAPES)('n = %i, cols = %i: exact on small integers', async (n, cols) => {
      const w: Matrix = { rows: n, cols, data: smallIntegerData(n * cols, 30 + n, 8) };
      const x = smallIntegerData(n, 40 + cols, 8);
      expect(Array.from(await f32Gemv(suite.context.device, w, x))).toEqual(integerDot(w, x));
    });

    it.each([1, 4] as F32GemvChunkWidth[])(
      'chunk width %i: splits columns across dispatches and honours unaligned offsets in shared buffers',
      async (chunkWidth) => {
        const { device } = suite.context;
        const n = 68;
        const cols = 70;
        const w: Matrix = { rows: n, cols, data: smallIntegerData(n * cols, 5, 8) };
        const x = smallIntegerData(n, 6, 8);
        // Width 4 needs 16-byte offsets; width 1 gets offsets that are not.
        const wOffset = chunkWidth === 4 ? 48 : 12;
        const xOffset = wOffset + 4 * n * cols + (chunkWidth === 4 ? 16 : 8);
        const yOffset = 36;
        const inputs = createBuffer(device, 'test W and x', xOffset + 4 * n, STORAGE_USAGE);
        const output = createBuffer(device, 'test y', yOffset + 4 * cols, STORAGE_USAGE);
        const scratch = new GpuScratch(device);
        try {
          const y = await withValidation(device, 'split f32 gemv', async () => {
            uploadToBuffer(device, inputs, w.data, wOffset);
            uploadToBuffer(device, inputs, x, xOffset);
            const encoder = device.createCommandEncoder({ label: 'split f32 gemv' });
            // At most 1024 bytes per binding: 2 columns of W (272 bytes each, after alignment slack) per dispatch.
            dispatchF32Gemv(device, encoder, scratch, {
              w: inputs,
              x: inputs,
              y: output,
              n,
              cols,
              wOffset,
              xOffset,
              yOffset,
              chunkWidth,
              maxBindingBytes: 1024,
            });
            device.queue.submit([encoder.finish()]);
            return new Float32Array(await readBuffer(device, output, 4 * cols, yOffset));
          });
          expect(Array.from(y)).toEqual(integerDot(w, x));
        } finally {
          scratch.destroy();
          inputs.destroy();
          output.destroy();
        }
      },
    );

    it('refuses a vector of the wrong length and vec4 loads at unaligned offsets', async () => {
      const { device } = suite.context;
      await expect(f32Gemv(device, gaussianMatrix(4, 2, 1), new Float32Array(5))).rejects.toThrow(/x has 5 entries, W has 4 rows/);
      const buffer = createBuffer(device, 'test buffer', 1024, STORAGE_USAGE);
      const scratch = new GpuScratch(device);
      try {
        const encoder = device.createCommandEncoder();
        expect(() =>
          dispatchF32Gemv(device, encoder, scratch, { w: buffer, x: buffer, y: buffer, n: 8, cols: 2, wOffset: 4, chunkWidth: 4 }),
        ).toThrow(/chunk width 4 needs/);
        expect(() => dispatchF32Gemv(device, encoder, scratch, { w: buffer, x: buffer, y: buffer, n: 100, cols: 3 })).toThrow(
          /W needs 1200 bytes/,
        );
      } finally {
        scratch.destroy();
        buffer.destroy();
      }
    });
  });

  describe('int4 g32 packing', () => {
    it.each(ROWS)('n = %i: the packed codes decode to absmaxDequantize of absmaxQuantize, column by column', (n) => {
      const w = gaussianMatrix(n, 3, 50 + n);
      const q = quantizeInt4Weights(w);
      expect(q.groups).toBe(Math.ceil(n / 32));
      expect(q.codes.length).toBe(4 * q.groups * 3);
      expect(q.scales.length).toBe(Math.ceil(q.groups / 2) * 3);
      expect(Array.from(dequantizeInt4Weights(q).data)).toEqual(Array.from(absmaxDequantizedColumns(w).data));
    });

    it('stores entry e of a group in nibble e % 8 of word e / 8, level + 8, and pads with level 0', () => {
      // Entries 0..31 run through every level −7..7, entry 32 is 7: both groups have absmax 7 (scale 1).
      const n = 33;
      const data = new Float32Array(n);
      for (let k = 0; k < n; k++) data[k] = ((k * 4) % 15) - 7; // entry 0 is −7
      data[32] = 7;
      const q = quantizeInt4Weights({ rows: n, cols: 1, data });
      for (let k = 0; k < n; k++) {
        const word = q.codes[k >> 3] as number;
        expect((word >>> (4 * (k % 8))) & 15, `entry ${k}`).toBe((data[k] as number) + 8);
      }
      // Group 1 holds one entry: the other 31 nibbles are the zero level 8.
      expect(Array.from(q.codes.subarray(4, 8))).toEqual([0x8888888f, 0x88888888, 0x88888888, 0x88888888]);
      expect(q.scales[0]).toBe(float16Bits(1) | (float16Bits(1) << 16));
    });
  });

  describe('int4_gemv.wgsl: y = Ŵᵀx', () => {
    it.each(SHAPES)(
      'n = %i, cols = %i: within (D + 1)·u·Σ|ŵx| of float64 dots of the dequantized W, both reductions',
      async (n, cols) => {
        const w = gaussianMatrix(n, cols, 60 + n);
        const x = gaussianVector(n, 70 + cols);
        const q = quantizeInt4Weights(w);
        for (const subgroups of suite.context.features.subgroups ? [false, true] : [false]) {
          const y = await int4Gemv(suite.context.device, q, x, { subgroups });
          const worst = worstRelativeError(y, absmaxDequantizedColumns(w), x, int4GemvRoundingDepth(n));
          expect(worst.ratio, `subgroups ${subgroups}: ${worst.at}`).toBeLessThanOrEqual(1);
        }
      },
    );

    it('subgroup variant: the shuffles ran (require-shuffles); x entries of every magnitude keep their exact products', async (context) => {
      skipUnless(context, suite.context.features.subgroups, 'subgroups');
      // 9000 rows: 282 groups, more than one per invocation for some. Scale 1 in every group.
      const n = 9000;
      const cols = 9;
      const data = smallIntegerData(n * cols, 13, 7);
      for (let j = 0; j < cols; j++) for (let k = 0; k < n; k += 32) data[j * n + k] = 7;
      const w: Matrix = { rows: n, cols, data };
      // x_k = ±2^e with e spread over [−100, 100]: every product level·x is exact, and so are the
      // kernel's x·16^−k, so each output must equal the float64 sum rounded by the kernel's additions;
      // with one nonzero x per column-sum only the exact value remains.
      const x = new Float32Array(n);
      x[4000] = 2 ** -100;
      x[8999] = -(2 ** 100);
      const q = quantizeInt4Weights(w);
      const expected = integerDot(w, x).map((v) => Math.fround(v));
      expect(Array.from(await int4Gemv(suite.context.device, q, x, { subgroups: true, subgroupTestMode: 'require-shuffles' }))).toEqual(expected);
      expect(Array.from(await int4Gemv(suite.context.device, q, x, { subgroups: false }))).toEqual(expected);
    });

    it.each(SHAPES)('n = %i, cols = %i: exact when every group spans ±7 (scale 1) and x is small integers', async (n, cols) => {
      const data = smallIntegerData(n * cols, 80 + n, 7);
      // Put a ±7 in every group of every column so each scale is exactly 1 and codes are W + 8.
      for (let j = 0; j < cols; j++) {
        for (let k = 0; k < n; k += 32) data[j * n + k] = (j + k) % 2 === 0 ? 7 : -7;
      }
      const w: Matrix = { rows: n, cols, data };
      const x = smallIntegerData(n, 90 + cols, 9);
      expect(Array.from(await int4Gemv(suite.context.device, quantizeInt4Weights(w), x))).toEqual(integerDot(w, x));
    });

    it('reads each nibble position against its own x entry (hand-packed codes, fp16 scales 0.5 and 2)', async () => {
      // One column per position e of a 64-entry column (two groups): nibble e has level (e % 7) + 1,
      // every other nibble level 0. x_k = k + 1, so y_e = scale(e) · level · (e + 1).
      const n = 64;
      const cols = n;
      const codes = new Uint32Array(8 * cols).fill(0x88888888);
      const scales = new Uint32Array(cols).fill(float16Bits(0.5) | (float16Bits(2) << 16));
      const expected: number[] = [];
      for (let e = 0; e < n; e++) {
        const level = (e % 7) + 1;
        const word = 8 * e + (e >> 3);
        codes[word] = ((codes[word] as number) & ~(15 << (4 * (e % 8)))) | ((level + 8) << (4 * (e % 8)));
        expected.push((e < 32 ? 0.5 : 2) * level * (e + 1));
      }
      const weights: Int4Weights = { rows: n, cols, groups: 2, scaleWords: 1, codes, scales };
      const x = Float32Array.from({ length: n }, (_, k) => k + 1);
      expect(Array.from(await int4Gemv(suite.context.device, weights, x))).toEqual(expected);
    });

    it('splits columns across dispatches and honours offsets inside shared buffers', async () => {
      const { device } = suite.context;
      const n = 70; // G = 3, S = 2: x padded to 96
      const cols = 37;
      const data = smallIntegerData(n * cols, 7, 7);
      for (let j = 0; j < cols; j++) for (let k = 0; k < n; k += 32) data[j * n + k] = 7;
      const w: Matrix = { rows: n, cols, data };
      const q = quantizeInt4Weights(w);
      const x = smallIntegerData(n, 8, 9);
      const paddedX = new Float32Array(int4PaddedLength(n));
      paddedX.set(x);
      const codesOffset = 16 * 5;
      const scalesOffset = 4 * 3;
      const xOffset = 16 * 7;
      const yOffset = 4 * 9;
      const codes = createBuffer(device, 'test codes', codesOffset + 4 * q.codes.length, STORAGE_USAGE);
      const rest = createBuffer(device, 'test scales and x', xOffset + 4 * paddedX.length + 1024, STORAGE_USAGE);
      const output = createBuffer(device, 'test y', yOffset + 4 * cols, STORAGE_USAGE);
      const scratch = new GpuScratch(device);
      try {
        const y = await withValidation(device, 'split int4 gemv', async () => {
          uploadToBuffer(device, codes, q.codes, codesOffset);
          // Scales after x in the same buffer.
          const scalesAt = xOffset + 4 * paddedX.length + scalesOffset;
          uploadToBuffer(device, rest, q.scales, scalesAt);
          uploadToBuffer(device, rest, paddedX, xOffset);
          const encoder = device.createCommandEncoder({ label: 'split int4 gemv' });
          // 512-byte bindings: 5 columns of codes per dispatch (48 bytes each, after 252 bytes of alignment slack).
          dispatchInt4Gemv(device, encoder, scratch, {
            codes,
            scales: rest,
            x: rest,
            y: output,
            n,
            cols,
            codesOffset,
            scalesOffset: scalesAt,
            xOffset,
            yOffset,
            maxBindingBytes: 512,
          });
          device.queue.submit([encoder.finish()]);
          return new Float32Array(await readBuffer(device, output, 4 * cols, yOffset));
        });
        expect(Array.from(y)).toEqual(integerDot(w, x));
      } finally {
        scratch.destroy();
        codes.destroy();
        rest.destroy();
        output.destroy();
      }
    });

    it('refuses a vector of the wrong length, malformed weights and misaligned offsets', async () => {
      const { device } = suite.context;
      const q = quantizeInt4Weights(gaussianMatrix(40, 2, 1));
      await expect(int4Gemv(device, q, new Float32Array(39))).rejects.toThrow(/x has 39 entries, W has 40 rows/);
      await expect(int4Gemv(device, { ...q, codes: q.codes.subarray(1) }, new Float32Array(40))).rejects.toThrow(
        /codes must be a Uint32Array of 4·G·cols = 16 words/,
      );
      const buffer = createBufferWithData(device, 'test buffer', new Uint32Array(256), STORAGE_USAGE);
      const scratch = new GpuScratch(device);
      try {
        const encoder = device.createCommandEncoder();
        const args = { codes: buffer, scales: buffer, x: buffer, y: buffer, n: 40, cols: 2 };
        expect(() => dispatchInt4Gemv(device, encoder, scratch, { ...args, codesOffset: 8 })).toThrow(
          /codes offset must be a non-negative multiple of 16/,
        );
        expect(() => dispatchInt4Gemv(device, encoder, scratch, { ...args, n: 1100 })).toThrow(/codes needs 1120 bytes/);
      } finally {
        scratch.destroy();
        buffer.destroy();
      }
    });
  });

  describe('int4_gemv_i8.wgsl: y = Ŵᵀx̂, x rounded to int8 per group of 32', () => {
    const dotPaths = (): DotPath[] => [...new Set<DotPath>(['plain', dotPathFor(suite.context.features)])];

    it.each(SHAPES)(
      'n = %i, cols = %i: x̂ is the CPU twin\'s, and y is within (D + 1)·u·Σ|terms| of float64 on it, every dot path and reduction',
      async (n, cols) => {
        const w = gaussianMatrix(n, cols, 160 + n);
        // A correlated x with one large entry: groups of very different scales.
        const x = gaussianVector(n, 170 + cols).map((v, k) => v + 0.5 * Math.sin(k / 7) + (k === n >> 1 ? 40 : 0));
        const q = quantizeInt4Weights(w);
        for (const dotPath of dotPaths()) {
          for (const subgroups of suite.context.features.subgroups ? [false, true] : [false]) {
            const { y, inputs } = await int4GemvI8(suite.context.device, q, x, { dotPath, subgroups });
            expectInt4Inputs(inputs, x);
            const worst = worstI8Error(y, q, inputs, int4GemvI8RoundingDepth(n));
            expect(worst.ratio, `${dotPath}, subgroups ${subgroups}: ${worst.at}`).toBeLessThanOrEqual(1);
          }
        }
      },
    );

    it.each(SHAPES)('n = %i, cols = %i: exact when every group of W spans ±7 and every group of x spans ±127 (both scales 1)', async (n, cols) => {
      const data = smallIntegerData(n * cols, 180 + n, 7);
      for (let j = 0; j < cols; j++) for (let k = 0; k < n; k += 32) data[j * n + k] = (j + k) % 2 === 0 ? 7 : -7;
      const w: Matrix = { rows: n, cols, data };
      const x = smallIntegerData(n, 190 + cols, 127);
      for (let k = 0; k < n; k += 32) x[Math.min(n - 1, k + 5)] = k % 64 === 0 ? 127 : -127;
      for (const dotPath of dotPaths()) {
        const { y } = await int4GemvI8(suite.context.device, quantizeInt4Weights(w), x, { dotPath });
        expect(Array.from(y), dotPath).toEqual(integerDot(w, x));
      }
    });

    it('reads each nibble position against its own entry of x̂ (hand-packed codes, fp16 scales 0.5 and 2)', async () => {
      // As the f32-input test: column e has level (e % 7) + 1 at nibble e, level 0 elsewhere. x_k runs
      // over 1 … 126 and each group holds a 127, so x̂ = x with scale 1: y_e = scale(e)·level·x_e.
      const n = 64;
      const cols = n;
      const codes = new Uint32Array(8 * cols).fill(0x88888888);
      const scales = new Uint32Array(cols).fill(float16Bits(0.5) | (float16Bits(2) << 16));
      const x = Float32Array.from({ length: n }, (_, k) => (k % 32 === 13 ? 127 : ((37 * k) % 126) + 1) * (k % 3 === 0 ? -1 : 1));
      const expected: number[] = [];
      for (let e = 0; e < n; e++) {
        const level = (e % 7) + 1;
        const word = 8 * e + (e >> 3);
        codes[word] = ((codes[word] as number) & ~(15 << (4 * (e % 8)))) | ((level + 8) << (4 * (e % 8)));
        expected.push((e < 32 ? 0.5 : 2) * level * (x[e] as number));
      }
      const weights: Int4Weights = { rows: n, cols, groups: 2, scaleWords: 1, codes, scales };
      for (const dotPath of dotPaths()) {
        expect(Array.from((await int4GemvI8(suite.context.device, weights, x, { dotPath })).y), dotPath).toEqual(expected);
      }
    });

    it('a non-finite entry of x makes every output NaN (x̂ of its group has a NaN scale), even against an all-zero column', async () => {
      const { device } = suite.context;
      const n = 100;
      const cols = 9;
      const data = smallIntegerData(n * cols, 5, 7);
      data.fill(0, 0, n); // column 0: every scale 0
      const q = quantizeInt4Weights({ rows: n, cols, data });
      for (const bad of [NaN, Infinity, -Infinity]) {
        const x = new Float32Array(int4PaddedLength(n)).fill(1);
        x[77] = bad;
        const codes = createBufferWithData(device, 'test codes', q.codes, STORAGE_USAGE);
        const scales = createBufferWithData(device, 'test scales', q.scales, STORAGE_USAGE);
        const xBuffer = createBufferWithData(device, 'test x', x, STORAGE_USAGE);
        const y = createBuffer(device, 'test y', 4 * cols, STORAGE_USAGE);
        const scratch = new GpuScratch(device);
        try {
          const out = await withValidation(device, 'int4 gemv, non-finite x', async () => {
            const encoder = device.createCommandEncoder({ label: 'int4 gemv, non-finite x' });
            const inputsI8 = dispatchInt4InputsI8(device, encoder, scratch, { x: xBuffer, n });
            dispatchInt4GemvI8(device, encoder, scratch, { codes, scales, inputsI8, y, n, cols, dotPath: dotPathFor(suite.context.features) });
            device.queue.submit([encoder.finish()]);
            return new Float32Array(await readBuffer(device, y, 4 * cols));
          });
          expect(Array.from(out).every(Number.isNaN), `x[77] = ${bad}: ${Array.from(out).join(', ')}`).toBe(true);
        } finally {
          scratch.destroy();
          for (const buffer of [codes, scales, xBuffer, y]) buffer.destroy();
        }
      }
    });

    it('splits columns across dispatches and honours offsets, for every dot path', async () => {
      const { device } = suite.context;
      const n = 70;
      const cols = 37;
      const data = smallIntegerData(n * cols, 17, 7);
      for (let j = 0; j < cols; j++) for (let k = 0; k < n; k += 32) data[j * n + k] = 7;
      const w: Matrix = { rows: n, cols, data };
      const q = quantizeInt4Weights(w);
      const x = smallIntegerData(n, 18, 127);
      for (let k = 0; k < n; k += 32) x[k + 1] = 127;
      const paddedX = new Float32Array(int4PaddedLength(n));
      paddedX.set(x);
      const codesOffset = 16 * 5;
      const scalesOffset = 4 * 3;
      const xOffset = 4 * 11;
      const yOffset = 4 * 9;
      const codes = createBuffer(device, 'test codes', codesOffset + 4 * q.codes.length, STORAGE_USAGE);
      const scales = createBuffer(device, 'test scales', scalesOffset + 4 * q.scales.length, STORAGE_USAGE);
      const xBuffer = createBuffer(device, 'test x', xOffset + 4 * paddedX.length, STORAGE_USAGE);
      const output = createBuffer(device, 'test y', yOffset + 4 * cols, STORAGE_USAGE);
      try {
        uploadToBuffer(device, codes, q.codes, codesOffset);
        uploadToBuffer(device, scales, q.scales, scalesOffset);
        uploadToBuffer(device, xBuffer, paddedX, xOffset);
        for (const dotPath of DOT_PATHS.filter((path) => path === 'plain' || dotPathFor(suite.context.features) === 'packed')) {
          const scratch = new GpuScratch(device);
          try {
            const y = await withValidation(device, 'split int4 gemv (int8 x)', async () => {
              const encoder = device.createCommandEncoder({ label: 'split int4 gemv (int8 x)' });
              const inputsI8 = dispatchInt4InputsI8(device, encoder, scratch, { x: xBuffer, xOffset, n });
              // 512-byte bindings: 5 columns of codes per dispatch.
              dispatchInt4GemvI8(device, encoder, scratch, { codes, scales, inputsI8, y: output, n, cols, codesOffset, scalesOffset, yOffset, dotPath, maxBindingBytes: 512 });
              device.queue.submit([encoder.finish()]);
              return new Float32Array(await readBuffer(device, output, 4 * cols, yOffset));
            });
            expect(Array.from(y), dotPath).toEqual(integerDot(w, x));
          } finally {
            scratch.destroy();
          }
        }
      } finally {
        for (const buffer of [codes, scales, xBuffer, output]) buffer.destroy();
      }
    });

    it('refuses x̂ rounded for another n, a dot path it does not know and a vector of the wrong length', async () => {
      const { device } = suite.context;
      const q = quantizeInt4Weights(gaussianMatrix(40, 2, 1));
      await expect(int4GemvI8(device, q, new Float32Array(39), { dotPath: 'plain' })).rejects.toThrow(/x has 39 entries, W has 40 rows/);
      const buffer = createBufferWithData(device, 'test buffer', new Uint32Array(256), STORAGE_USAGE);
      const scratch = new GpuScratch(device);
      try {
        const encoder = device.createCommandEncoder();
        const inputsI8 = dispatchInt4InputsI8(device, encoder, scratch, { x: buffer, n: 70 });
        const args = { codes: buffer, scales: buffer, inputsI8, y: buffer, n: 40, cols: 2, dotPath: 'plain' as const };
        expect(() => dispatchInt4GemvI8(device, encoder, scratch, args)).toThrow(/inputsI8 was rounded for E8 groups of 32, unrotated \(70 rows\).*not for .*unrotated \(40 rows\)/);
        expect(() => dispatchInt4GemvI8(device, encoder, scratch, { ...args, n: 70, dotPath: 'fast' as DotPath })).toThrow(/dotPath must be 'packed' or 'plain', got "fast"/);
      } finally {
        scratch.destroy();
        buffer.destroy();
      }
    });
  });

  describe('llama.cpp Q4_0 blocks, repacked into the int4 g32 layout', () => {
    // The README and bench call the int4 kernels Q4_0's storage and decode: 4 bits + one fp16 scale per
    // 32 entries, x̂ = (nibble − 8)·d. Q4_0's quantizer (llama.cpp's quantize_row_q4_0_ref, written here
    // from its definition: d = (the entry of largest |x|, signed) / −8, q = min(15, trunc(x/d + 8.5)))
    // puts every block's largest entry on nibble 0 (level −8, which int4-g32's own codes never use) and
    // gives d the opposite sign of that entry (a negative fp16 scale for half the blocks). Its 18-byte
    // block holds entry e in the low nibble of byte e for e < 16, in the high nibble of byte e − 16
    // otherwise; repacked to the kernel's layout (entry e in nibble e % 8 of word e / 8), both kernels
    // must multiply by exactly Q4_0's dequantized matrix.
    function q40Blocks(x: Float32Array): { d: number[]; qs: Uint8Array } {
      const d: number[] = [];
      const qs = new Uint8Array(x.length / 2);
      for (let b = 0; b < x.length / 32; b++) {
        let amax = 0;
        let max = 0;
        for (let e = 0; e < 32; e++) {
          const v = x[32 * b + e] as number;
          if (amax < Math.abs(v)) {
            amax = Math.abs(v);
            max = v;
          }
        }
        const scale = Math.fround(max / -8);
        const inverse = scale === 0 ? 0 : Math.fround(1 / scale);
        d.push(float16Bits(scale));
        for (let e = 0; e < 16; e++) {
          const low = Math.min(15, Math.trunc(Math.fround(Math.fround((x[32 * b + e] as number) * inverse) + 8.5)));
          const high = Math.min(15, Math.trunc(Math.fround(Math.fround((x[32 * b + 16 + e] as number) * inverse) + 8.5)));
          qs[16 * b + e] = low | (high << 4);
        }
      }
      return { d, qs };
    }

    it('both kernels multiply by Q4_0\'s (nibble − 8)·d, level −8 and negative scales included', async () => {
      const n = 256; // 8 blocks per column (Q4_0 needs whole blocks)
      const cols = 24; // 3 workgroups of 8 columns
      const w = gaussianMatrix(n, cols, 404);
      const groups = n / 32;
      const scaleWords = groups / 2;
      const codes = new Uint32Array(4 * groups * cols);
      const scales = new Uint32Array(scaleWords * cols);
      const dequantized = new Float32Array(n * cols);
      let levelMinus8 = 0;
      let negativeScales = 0;
      for (let j = 0; j < cols; j++) {
        const { d, qs } = q40Blocks(w.data.subarray(j * n, (j + 1) * n));
        for (let k = 0; k < n; k++) {
          const b = k >> 5;
          const e = k & 31;
          const byte = qs[16 * b + (e & 15)] as number;
          const nibble = e < 16 ? byte & 15 : byte >> 4;
          const word = 4 * groups * j + (k >> 3);
          codes[word] = ((codes[word] as number) | (nibble << (4 * (k & 7)))) >>> 0;
          dequantized[j * n + k] = (nibble - 8) * fromFloat16Bits(d[b] as number);
          if (nibble === 0) levelMinus8++;
        }
        for (let b = 0; b < groups; b++) {
          scales[scaleWords * j + (b >> 1)] = ((scales[scaleWords * j + (b >> 1)] as number) | ((d[b] as number) << (16 * (b & 1)))) >>> 0;
          if ((d[b] as number) & 0x8000) negativeScales++;
        }
      }
      expect(levelMinus8).toBeGreaterThanOrEqual(groups * cols); // at least each block's largest entry
      expect(negativeScales).toBeGreaterThan(0);
      const q: Int4Weights = { rows: n, cols, groups, scaleWords, codes, scales };
      expect(Array.from(dequantizeInt4Weights(q).data)).toEqual(Array.from(dequantized));
      const x = gaussianVector(n, 405);
      const exactW: Matrix = { rows: n, cols, data: dequantized };
      const y = await int4Gemv(suite.context.device, q, x);
      const worst = worstRelativeError(y, exactW, x, int4GemvRoundingDepth(n));
      expect(worst.ratio, worst.at).toBeLessThanOrEqual(1);
      for (const dotPath of [...new Set<DotPath>(['plain', dotPathFor(suite.context.features)])]) {
        const { y: yI8, inputs } = await int4GemvI8(suite.context.device, q, x, { dotPath });
        const worstI8 = worstI8Error(yI8, q, inputs, int4GemvI8RoundingDepth(n));
        expect(worstI8.ratio, `${dotPath}: ${worstI8.at}`).toBeLessThanOrEqual(1);
      }
    });
  });

  describe('timeGpuWork', () => {
    it('times with timestamp queries when the device has them, else with the wall clock', async () => {
      // Full-resolution timestamps (Dawn quantizes them to 2^16 ns by default).
      const timed = await requestNodeGpuDevice({ label: 'timing test device', flags: TIMESTAMP_QUERY_DAWN_FLAGS });
      const { device } = timed;
      const n = 1024;
      const cols = 512;
      const w = createBufferWithData(device, 'timed W', gaussianMatrix(n, cols, 1).data, STORAGE_USAGE);
      const x = createBufferWithData(device, 'timed x', gaussianVector(n, 2), STORAGE_USAGE);
      const y = createBuffer(device, 'timed y', 4 * cols, STORAGE_USAGE);
      const record = (encoder: GPUCommandEncoder): (() => void) => {
        const scratch = new GpuScratch(device);
        dispatchF32Gemv(device, encoder, scratch, { w, x, y, n, cols });
        return () => scratch.destroy();
      };
      try {
        const wall = await timeGpuWork(device, record, { timestampQuery: false, samples: 3, repeats: 4, label: 'wall' });
        expect(wall.method).toBe('wall-clock');
        expect(wall.samplesMs).toHaveLength(3);
        expect(wall.repeats).toBe(4);
        expect(wall.minMs).toBeLessThanOrEqual(wall.medianMs);
        expect(wall.medianMs).toBeLessThanOrEqual(wall.maxMs);
        expect(wall.minMs).toBeGreaterThan(0);

        let preludes = 0;
        const auto = await timeGpuWork(device, record, { samples: 3, repeats: 16, warmup: 1, prelude: () => preludes++ });
        expect(preludes).toBe(4); // once per submission: 1 warm-up + 3 samples
        // In wall-clock mode each sample's prelude is a submission of its own (checked as the others).
        let wallPreludes = 0;
        const wallWithPrelude = await timeGpuWork(device, record, { timestampQuery: false, samples: 4, warmup: 1, prelude: () => wallPreludes++ });
        expect(wallPreludes).toBe(5);
        // The summary is of the samples returned: an even count's median is the mean of the middle two.
        const sorted = [...wallWithPrelude.samplesMs].sort((a, b) => a - b);
        expect(sorted).toHaveLength(4);
        expect(wallWithPrelude.medianMs).toBe(((sorted[1] as number) + (sorted[2] as number)) / 2);
        expect([wallWithPrelude.minMs, wallWithPrelude.maxMs]).toEqual([sorted[0], sorted[3]]);
        if (timed.features.timestampQuery) {
          expect(auto.method).toBe('timestamp-query');
          // The stamps must bracket the work: 16 GEMVs of 2 MB each take far longer than no work at all.
          // Compared as whole brackets (medianMs is per recording, so × repeats) against the empty
          // bracket's fastest sample: on a CPU adapter both vary with the machine's load, and a load spike
          // only lengthens a sample. (A CI run measured an empty bracket of 1.96 ms, median, against
          // 1.54 ms per GEMV: comparing one GEMV with the whole empty bracket failed; 16 GEMVs, ≈ 25 ms
          // there, against 3× the fastest empty bracket keeps a margin of about 4× even then.)
          const empty = await timeGpuWork(device, () => undefined, { samples: 5 });
          expect(auto.medianMs * auto.repeats).toBeGreaterThan(3 * empty.minMs);
        } else {
          expect(auto.method).toBe('wall-clock');
        }
        await expect(
          timeGpuWork(device, (encoder) => encoder.copyBufferToBuffer(w, 2, y, 0, 4), { samples: 1, label: 'invalid copy' }),
        ).rejects.toThrow(/WebGPU error in timing invalid copy/);
      } finally {
        w.destroy();
        x.destroy();
        y.destroy();
        device.destroy();
      }
    });

    it('refuses timestamp queries on a device without the feature', async () => {
      const adapter = await (await nodeGpu()).requestAdapter();
      if (adapter === null) throw new Error('nodeGpu() found an adapter before, but not now');
      const plain = await adapter.requestDevice({ label: 'device without timestamp-query' });
      try {
        await expect(timeGpuWork(plain, () => undefined, { timestampQuery: true })).rejects.toThrow(
          /no timestamp-query feature/,
        );
        const wall = await timeGpuWork(plain, () => undefined, { samples: 1, warmup: 0 });
        expect(wall.method).toBe('wall-clock');
      } finally {
        plain.destroy();
      }
    });

    it('warmupMs keeps submitting the work until that time has passed (a GPU raises its clock only after work), and refuses a negative time', async () => {
      const { device } = await requestNodeGpuDevice({ label: 'warm-up test device' });
      let records = 0;
      const started = performance.now();
      await timeGpuWork(device, () => void records++, { samples: 1, warmup: 0, warmupMs: 80 });
      expect(performance.now() - started).toBeGreaterThanOrEqual(80);
      expect(records).toBeGreaterThan(2);
      records = 0;
      await timeGpuWork(device, () => void records++, { samples: 1, warmup: 0 });
      expect(records).toBe(1);
      await expect(timeGpuWork(device, () => undefined, { warmupMs: -1 })).rejects.toThrow(/warmupMs must be a non-negative number, got -1/);
      device.destroy();
    });
  });
});
