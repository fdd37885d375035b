import { createBuffer, createBufferWithData, readBufferExclusive, STORAGE_USAGE } from '../../src/gpu/buffers.js';
import type { GpuContext } from '../../src/gpu/device.js';
import { GpuEngine, type GpuEngineOptions } from '../../src/gpu/engine.js';
import type { GpuLatticeQuantized } from '../../src/gpu/gpuQuantize.js';
import { dispatchMatmulF32 } from '../../src/gpu/kernels/matmulF32.js';
import type { Matrix } from '../../src/matrix.js';
import type { GpuScratch } from '../../src/gpu/scratch.js';
import type { SchemeName } from '../../src/quantize/schemes.js';
import { gaussianMatrix, Rng } from '../../src/rotation/random.js';
import { failedRow, gigaPerSecond, prepared, row, rowSamples, timeCalls, type BenchRow, type BenchSettings } from './common.js';
import { MAC_KEYS, productMacKey } from './instructionStats.js';

/*
 * Products C = AᵀB (A n × a, B n × b) at a shape that fills the GPU: the f32 tiled matmul
 * (matmulF32.ts), the engine's universal product (GpuEngine on 'e8-q16' operands: decode to f32, then
 * the tiled matmul), and the deterministic products the engine runs for deterministic operands (the
 * D3 table kernel for 'd3-q6-deterministic', the packed E8 kernel for 'e8-q16-deterministic').
 * Operands are quantized on the GPU by the engine. FLOP/s counts the dense 2·n·a·b; the check is the
 * NMSE n‖Ĉ − AᵀB‖²/(‖A‖²‖B‖²) estimated on SAMPLED entries of C (the exact product of the full
 * shape costs too much CPU).
 */

export interface ProductProblem {
  readonly n: number;
  readonly a: Matrix;
  readonly b: Matrix;
}

const SAMPLED_ENTRIES = 256;

export function productShape(p: ProductProblem): string {
  return `${p.n} × ${p.a.cols} × ${p.b.cols}`;
}

/** Sampled NMSE of C (a.cols × b.cols column-major) against the exact AᵀB. */
function sampledNmse(c: Float32Array, p: ProductProblem, seed: number): number {
  const { n, a, b } = p;
  const rng = new Rng(seed);
  let aNorm = 0;
  for (const v of a.data) aNorm += v * v;
  let bNorm = 0;
  for (const v of b.data) bNorm += v * v;
  let error = 0;
  for (let s = 0; s < SAMPLED_ENTRIES; s++) {
    const i = rng.nextInt(a.cols);
    const j = rng.nextInt(b.cols);
    let exact = 0;
    for (let t = 0; t < n; t++) exact += (a.data[i * n + t] as number) * (b.data[j * n + t] as number);
    const d = (c[j * a.cols + i] as number) - exact;
    error += d * d;
  }
  // The sampled mean squared error, scaled to the whole C.
  const total = (error / SAMPLED_ENTRIES) * a.cols * b.cols;
  return Number.isFinite(total) ? (n * total) / (aNorm * bNorm) : Number.POSITIVE_INFINITY;
}

export function productProblem(n: number, aCols: number, bCols: number, seed: number): ProductProblem {
  return { n, a: gaussianMatrix(n, aCols, seed), b: gaussianMatrix(n, bCols, seed + 1) };
}

async function timedProduct(
  context: GpuContext,
  kernel: string,
  p: ProductProblem,
  settings: BenchSettings,
  record: (encoder: GPUCommandEncoder, scratch: GpuScratch, c: GPUBuffer) => void,
  limit: number,
  bitsPerEntry: number,
  bytesRead: number,
  macKey: string | null = null,
): Promise<BenchRow> {
  const { device } = context;
  const c = createBuffer(device, `bench ${kernel} C`, 4 * p.a.cols * p.b.cols, STORAGE_USAGE);
  const call = prepared(device, `bench ${kernel}`, (encoder, scratch) => record(encoder, scratch, c));
  try {
    const timing = await timeCalls(context, kernel, 1, (encoder) => call.record(encoder), settings);
    const data = new Float32Array(await readBufferExclusive(device, c, c.size));
    const nmse = sampledNmse(data, p, settings.seed + 7);
    const ms = timing.perCallMs;
    return row({
      kernel,
      family: 'product',
      shape: productShape(p),
      bitsPerEntry,
      bytesRead,
      ms,
      gbps: gigaPerSecond(bytesRead, ms),
      gflops: gigaPerSecond(2 * p.n * p.a.cols * p.b.cols, ms),
      callsPerSample: 1,
      ...rowSamples(timing),
      timing: timing.method,
      check: { metric: `nmse vs exact float64 (${SAMPLED_ENTRIES} sampled entries)`, value: nmse, limit, ok: nmse <= limit },
      macKey,
    });
  } finally {
    call.destroy();
    c.destroy();
  }
}

export async function f32ProductRow(context: GpuContext, p: ProductProblem, settings: BenchSettings): Promise<BenchRow> {
  const kernel = 'f32 tiled matmul AᵀB';
  const { device } = context;
  let buffers: GPUBuffer[] = [];
  try {
    const a = createBufferWithData(device, 'bench product A', p.a.data, STORAGE_USAGE);
    const b = createBufferWithData(device, 'bench product B', p.b.data, STORAGE_USAGE);
    buffers = [a, b];
    return await timedProduct(
      context,
      kernel,
      p,
      settings,
      (encoder, scratch, c) => dispatchMatmulF32(device, encoder, scratch, { a, b, c, n: p.n, aCols: p.a.cols, bCols: p.b.cols }),
      1e-8,
      32,
      4 * p.n * (p.a.cols + p.b.cols),
      MAC_KEYS.f32,
    );
  } catch (error) {
    return failedRow({ kernel, family: 'product', shape: productShape(p) }, error);
  } finally {
    for (const buffer of buffers) buffer.destroy();
  }
}

function operandBytes(q: GpuLatticeQuantized): number {
  const buffers = q.mode === 'universal' ? [q.codes, q.escapeBits, q.escapeStarts, q.escapeIds, q.escapeTable, q.side] : [q.codes, q.scaleIndices, q.norms, q.gains, q.means];
  return buffers.reduce((sum, buffer) => sum + (buffer?.size ?? 0), 0);
}

/** The D3 table product's layout, with its dot path where it uses one (the leaders layout). */
function tableLabel(engine: GpuEngine): string {
  return `${engine.tableLayout} table${engine.tableLayout === 'leaders' ? `, ${engine.dotPath} dot` : ''}`;
}

/**
 * A product through GpuEngine.recordMatmulAT on operands quantized on the GPU with `scheme` (the D3
 * table product in the given table layout, else the best that fits the device).
 */
export async function engineProductRow(context: GpuContext, scheme: SchemeName, p: ProductProblem, settings: BenchSettings, engineOptions: GpuEngineOptions = {}): Promise<BenchRow> {
  const engine = GpuEngine.create(context, engineOptions);
  const operands: GpuLatticeQuantized[] = [];
  let kernel = `engine product ${scheme}`;
  try {
    const a = await engine.quantize(p.a, { scheme, seed: settings.seed });
    operands.push(a);
    const b = await engine.quantize(p.b, { scheme, seed: settings.seed });
    operands.push(b);
    const productKernel = engine.productKernel(a, b);
    kernel = `engine product ${scheme} (${productKernel}${productKernel === 'd3-table' ? `, ${tableLabel(engine)}` : ''})`;
    const bytes = operandBytes(a) + operandBytes(b);
    const row = await timedProduct(
      context,
      kernel,
      p,
      settings,
      (encoder, scratch, c) => engine.recordMatmulAT(encoder, scratch, a, b, c),
      scheme.startsWith('d3') ? 0.2 : 0.1,
      (8 * bytes) / (p.n * (p.a.cols + p.b.cols)),
      bytes,
    );
    // The E8 product's staging loop has its SPIR-V count (instructionStats.ts: e8ProductSubject), and
    // each kernel's slice loop its RDNA3 count per multiply-accumulate (productSubjects).
    const macKey = productMacKey(productKernel, scheme, engine.tableLayout, engine.dotPath);
    return { ...row, ...(productKernel === 'e8-dot' ? { spirvKey: `product:${scheme}:${engine.dotPath}` } : {}), macKey, productKernel };
  } catch (error) {
    return failedRow({ kernel, family: 'product', shape: productShape(p) }, error);
  } finally {
    for (const q of operands) q.destroy();
    engine.destroy();
  }
}
