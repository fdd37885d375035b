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
import type { LatticeQuantizedMatrix, QuantizedMatrix } from '../../src/quantize/quantizedMatrix.js';
import { resolveScheme } from '../../src/quantize/schemes.js';

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

/** The schemes of the GPU rows: the universal defaults and the papers' deterministic schemes. */
export const GPU_SCHEMES: readonly { label: string; options: QuantizeOptions }[] = [
  { label: 'd3-q6 (universal)', options: { scheme: 'd3-q6' } },
  { label: 'e8-q16 (universal)', options: { scheme: 'e8-q16' } },
  { label: 'd3-q6-deterministic (MMSE gain)', options: { scheme: 'd3-q6-deterministic', gain: 'mmse' } },
  { label: 'e8-q16-deterministic', options: { scheme: 'e8-q16-deterministic' } },
];

export async function gpuRows(context: GpuContext, a: Matrix, b: Matrix, seed: number, onProgress: (label: string) => void): Promise<{ rows: GpuRow[]; tableLayout: string }> {
  const engine = GpuEngine.create(context);
  const { device } = context;
  const rows: GpuRow[] = [];
  const f32 = await timeF32Matmul(context, a, b);
  for (const { label, options } of GPU_SCHEMES) {
    onProgress(label);
    // One nonce per operand, the same on the CPU and the GPU, so that the codes can be compared.
    const scheme = resolveScheme(options.scheme);
    const withSeed = { ...options, seed };
    const nonces = scheme.kind === 'lattice' && scheme.mode === 'universal' ? [{ nonce: 2 * seed + 1 }, { nonce: 2 * seed + 2 }] : [{}, {}];
    const start = performance.now();
    const qa = await engine.quantize(a, { ...withSeed, ...nonces[0] });
    const qb = await engine.quantize(b, { ...withSeed, ...nonces[1] });
    const quantizeMs = (performance.now() - start) / 2;
    try {
      const estimate = await engine.matmulAT(qa, qb);
      const cpuA = quantize(a, { ...withSeed, ...nonces[0] });
      const cpuB = quantize(b, { ...withSeed, ...nonces[1] });
      const [readA, readB] = [await qa.read(), await qb.read()];
      const codesIdentical = sameCodes(readA, cpuA) && sameCodes(readB, cpuB);
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

/** Codes and escapes (universal) or scale indices (deterministic) identical. */
function sameCodes(gpu: LatticeQuantizedMatrix, cpu: QuantizedMatrix): boolean {
  if (cpu.kind !== 'lattice' || cpu.mode !== gpu.mode || !sameArray(gpu.codes, cpu.codes)) return false;
  if (gpu.mode === 'universal' && cpu.mode === 'universal') return sameArray(gpu.escapes, cpu.escapes) && sameArray(gpu.longEscapes, cpu.longEscapes);
  return gpu.mode === 'deterministic' && cpu.mode === 'deterministic' && sameArray(gpu.scaleIndices, cpu.scaleIndices);
}

function sameArray(x: ArrayLike<number>, y: ArrayLike<number>): boolean {
  if (x.length !== y.length) return false;
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return false;
  return true;
}
