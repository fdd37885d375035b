import { createBuffer, createBufferWithData, readBuffer, STORAGE_USAGE } from '../../src/gpu/buffers.js';
import { dispatchF32Gemv, f32GemvChunkWidth } from '../../src/gpu/kernels/f32Gemv.js';
import { dispatchInt4Gemv, int4PaddedLength, int4WeightBytes, quantizeInt4Weights } from '../../src/gpu/kernels/int4Gemv.js';
import { dispatchMatmulF32 } from '../../src/gpu/kernels/matmulF32.js';
import { GpuScratch } from '../../src/gpu/scratch.js';
import { productNmse } from '../../src/matrix.js';
import { gemvNmse, type BenchCase } from './benchCase.js';

/*
 * The baselines: the f32 GEMV and matmul every quantized kernel is compared with, and the int4
 * group-32 GEMV written the way WebLLM (q4f16_1) and llama.cpp (Q4_0) run it.
 */

export const F32_GEMV = 'f32 GEMV';
export const F32_MATMUL = 'f32 matmul AᵀB';

/** Records a dispatch with its own scratch, destroyed after the submission. */
function withScratch(device: GPUDevice, dispatch: (scratch: GpuScratch) => void): () => void {
  const scratch = new GpuScratch(device);
  dispatch(scratch);
  return () => scratch.destroy();
}

export const f32GemvCase: BenchCase = {
  name: F32_GEMV,
  kind: 'gemv',
  baseline: null,
  async prepare({ gpu: { device }, gemv }) {
    const { n, cols } = gemv;
    const w = createBufferWithData(device, 'bench f32 W', gemv.w.data, STORAGE_USAGE);
    const x = createBufferWithData(device, 'bench x', gemv.x, STORAGE_USAGE);
    const y = createBuffer(device, 'bench f32 y', 4 * cols, STORAGE_USAGE);
    return {
      shape: `${n} × ${cols}`,
      bitsPerEntry: 32,
      bytes: 4 * n * cols + 4 * n,
      flops: 2 * n * cols,
      record: (encoder) => withScratch(device, (scratch) => dispatchF32Gemv(device, encoder, scratch, { w, x, y, n, cols })),
      nmse: async () => gemvNmse(new Float32Array(await readBuffer(device, y, 4 * cols)), gemv),
      problems: [],
      notes: [`f32 GEMV loads ${f32GemvChunkWidth(n) === 4 ? 'vec4' : 'scalar'} chunks`],
      destroy: () => [w, x, y].forEach((buffer) => buffer.destroy()),
    };
  },
};

export const int4GemvCase: BenchCase = {
  name: 'int4 g32 GEMV',
  kind: 'gemv',
  baseline: F32_GEMV,
  async prepare({ gpu: { device }, gemv }) {
    const { n, cols } = gemv;
    const weights = quantizeInt4Weights(gemv.w);
    const paddedX = new Float32Array(int4PaddedLength(n));
    paddedX.set(gemv.x);
    const codes = createBufferWithData(device, 'bench int4 codes', weights.codes, STORAGE_USAGE);
    const scales = createBufferWithData(device, 'bench int4 scales', weights.scales, STORAGE_USAGE);
    const x = createBufferWithData(device, 'bench int4 x', paddedX, STORAGE_USAGE);
    const y = createBuffer(device, 'bench int4 y', 4 * cols, STORAGE_USAGE);
    const weightBytes = int4WeightBytes(n, cols);
    return {
      shape: `${n} × ${cols}`,
      bitsPerEntry: (8 * weightBytes) / (n * cols),
      bytes: weightBytes + 4 * n,
      flops: 2 * n * cols,
      record: (encoder) =>
        withScratch(device, (scratch) => dispatchInt4Gemv(device, encoder, scratch, { codes, scales, x, y, n, cols })),
      nmse: async () => gemvNmse(new Float32Array(await readBuffer(device, y, 4 * cols)), gemv),
      problems: [],
      notes: ['int4 g32: 8 nibbles per u32, fp16 scale pairs per u32 decoded with unpack2x16float (no shader-f16 needed)'],
      destroy: () => [codes, scales, x, y].forEach((buffer) => buffer.destroy()),
    };
  },
};

export const f32MatmulCase: BenchCase = {
  name: F32_MATMUL,
  kind: 'product',
  baseline: null,
  async prepare({ gpu: { device }, product }) {
    const { n, a, b } = product;
    const aBuffer = createBufferWithData(device, 'bench f32 A', a.data, STORAGE_USAGE);
    const bBuffer = createBufferWithData(device, 'bench f32 B', b.data, STORAGE_USAGE);
    const c = createBuffer(device, 'bench f32 C', 4 * a.cols * b.cols, STORAGE_USAGE);
    return {
      shape: `${n} × ${a.cols} × ${b.cols}`,
      bitsPerEntry: 32,
      bytes: 4 * n * (a.cols + b.cols),
      flops: 2 * n * a.cols * b.cols,
      record: (encoder) =>
        withScratch(device, (scratch) =>
          dispatchMatmulF32(device, encoder, scratch, { a: aBuffer, b: bBuffer, c, n, aCols: a.cols, bCols: b.cols }),
        ),
      nmse: async () => {
        const data = new Float32Array(await readBuffer(device, c, 4 * a.cols * b.cols));
        return productNmse({ rows: a.cols, cols: b.cols, data }, a, b);
      },
      notes: [],
      problems: [],
      destroy: () => [aBuffer, bBuffer, c].forEach((buffer) => buffer.destroy()),
    };
  },
};
