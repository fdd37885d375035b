/**
 * The GPU rows of the paper table: the same matrices encoded and multiplied by the WebGPU engine
 * (Dawn in Node), with the codes compared to the CPU's and the kernels timed against an f32 matmul
 * of the same shape in the same run.
 */
import type { GpuContext } from '../../src/gpu/device.js';
import { GpuEngine } from '../../src/gpu/engine.js';
import { dispatchMatmulF32 } from '../../src/gpu/kernels/matmulF32.js';
import { createBufferWithData, createBuffer, STORAGE_USAGE } from '../../src/gpu/buffers.js';
import { GpuScratch } from '../../src/gpu/scratch.js';
import { timeGpuWork, type GpuTiming } from '../../src/gpu/timing.js';
import { productNmse, type Matrix } from '../../src/matrix.js';
import { matmulAT } from '../../src/product/matmulAT.js';
import { quantize, type QuantizeOptions } from '../../src/quantize/quantize.js';

export interface GpuRow {
  scheme: string;
  nmse: number;
  /** NMSE of the CPU estimate from the same codes (the GPU's must match it). */
  cpuNmse: number;
  codesIdentical: boolean;
  kernel: string;
  quantizeMs: number;
  productMs: number;
  f32MatmulMs: number;
  timing: string;
}

export const GPU_SCHEMES: readonly { label: string; options: QuantizeOptions }[] = [
  { label: 'd3-q6', options: { scheme: 'd3-q6', gain: 'mmse' } },
  { label: 'd3-q6 default', options: { scheme: 'd3-q6' } },
  { label: 'e8-q16 default', options: { scheme: 'e8-q16' } },
];

export async function gpuRows(context: GpuContext, a: Matrix, b: Matrix, seed: number, onProgress: (label: string) => void): Promise<{ rows: GpuRow[]; tableLayout: string }> {
  const engine = GpuEngine.create(context);
  const { device } = context;
  const rows: GpuRow[] = [];
  const f32 = await timeF32Matmul(context, a, b);
  for (const { label, options } of GPU_SCHEMES) {
    onProgress(label);
    const withSeed = { ...options, seed };
    const start = performance.now();
    const qa = await engine.quantize(a, withSeed);
    const qb = await engine.quantize(b, withSeed);
    const quantizeMs = (performance.now() - start) / 2;
    try {
      const estimate = await engine.matmulAT(qa, qb);
      const cpuA = quantize(a, withSeed);
      const cpuB = quantize(b, withSeed);
      const [readA, readB] = [await qa.read(), await qb.read()];
      const codesIdentical =
        cpuA.kind === 'lattice' && cpuB.kind === 'lattice' && sameArray(readA.codes, cpuA.codes) && sameArray(readB.codes, cpuB.codes) &&
        sameArray(readA.scaleIndices, cpuA.scaleIndices) && sameArray(readB.scaleIndices, cpuB.scaleIndices);
      const kernel = engine.productKernel(qa, qb);
      const timing = await timeGpuWork(
        device,
        (encoder) => {
          const scratch = new GpuScratch(device);
          const c = createBuffer(device, 'paper product C', 4 * a.cols * b.cols, STORAGE_USAGE);
          engine.recordMatmulAT(encoder, scratch, qa, qb, c);
          return () => {
            scratch.destroy();
            c.destroy();
          };
        },
        { timestampQuery: context.features.timestampQuery, label: `${label} product` },
      );
      rows.push({
        scheme: label,
        nmse: productNmse(estimate, a, b),
        cpuNmse: productNmse(matmulAT(cpuA, cpuB), a, b),
        codesIdentical,
        kernel,
        quantizeMs,
        productMs: timing.medianMs,
        f32MatmulMs: f32.medianMs,
        timing: timing.method,
      });
    } finally {
      qa.destroy();
      qb.destroy();
    }
  }
  engine.destroy();
  return { rows, tableLayout: engine.tableLayout };
}

async function timeF32Matmul(context: GpuContext, a: Matrix, b: Matrix): Promise<GpuTiming> {
  const { device } = context;
  const aBuffer = createBufferWithData(device, 'paper f32 A', a.data, STORAGE_USAGE);
  const bBuffer = createBufferWithData(device, 'paper f32 B', b.data, STORAGE_USAGE);
  try {
    return await timeGpuWork(
      device,
      (encoder) => {
        const scratch = new GpuScratch(device);
        const c = createBuffer(device, 'paper f32 C', 4 * a.cols * b.cols, STORAGE_USAGE);
        dispatchMatmulF32(device, encoder, scratch, { a: aBuffer, b: bBuffer, c, n: a.rows, aCols: a.cols, bCols: b.cols });
        return () => {
          scratch.destroy();
          c.destroy();
        };
      },
      { timestampQuery: context.features.timestampQuery, label: 'f32 matmul' },
    );
  } finally {
    aBuffer.destroy();
    bBuffer.destroy();
  }
}

function sameArray(x: ArrayLike<number>, y: ArrayLike<number>): boolean {
  if (x.length !== y.length) return false;
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return false;
  return true;
}
