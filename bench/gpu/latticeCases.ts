import { check } from '../../src/errors.js';
import { createBuffer, createBufferWithData, readBuffer, STORAGE_USAGE } from '../../src/gpu/buffers.js';
import { gpuQuantizeLattice, uploadLatticeMatrix, type GpuLatticeQuantizedMatrix } from '../../src/gpu/gpuQuantize.js';
import { dispatchE8Matmul, dotPathFor } from '../../src/gpu/kernels/e8Matmul.js';
import { dispatchHadamard } from '../../src/gpu/kernels/hadamard.js';
import { dispatchLatticeGemv } from '../../src/gpu/kernels/latticeGemv.js';
import { dispatchTableMatmul, tableMatmulLayout } from '../../src/gpu/kernels/tableMatmul.js';
import type { GpuLatticeMatrix } from '../../src/gpu/latticeOperand.js';
import { GpuScratch } from '../../src/gpu/scratch.js';
import { productNmse, type Matrix } from '../../src/matrix.js';
import { quantize } from '../../src/quantize/quantize.js';
import type { LatticeQuantizedMatrix } from '../../src/quantize/quantizedMatrix.js';
import type { SchemeName } from '../../src/quantize/schemes.js';
import { F32_GEMV, F32_MATMUL } from './baselineCases.js';
import { gemvNmse, type BenchCase, type BenchContext } from './benchCase.js';

/*
 * The nested-lattice kernels: encoding (column prep + rotation + lattice rounding) and the decoding
 * products. Product operands are quantized by the CPU reference and uploaded, so a product's figures
 * do not depend on the GPU encoder; the encoder's codes are checked against the CPU on a column slice.
 */

/** Columns of W whose GPU codes are compared with the CPU quantizer after the encode runs. */
const CHECKED_COLUMNS = 16;

function cpuLatticeQuantize(m: Matrix, scheme: SchemeName, seed: number): LatticeQuantizedMatrix {
  const q = quantize(m, { scheme, seed });
  check(q.kind === 'lattice', () => `${scheme} did not produce a lattice-quantized matrix`);
  return q;
}

/** Bytes of everything a decoding kernel reads for `m`: packed codes, scale indices, per-column fields. */
function latticeBytes(m: GpuLatticeMatrix): number {
  return [m.codes, m.scaleIndices, m.norms, m.gains, m.means].reduce((sum, buffer) => sum + (buffer?.size ?? 0), 0);
}

/** Bits per matrix entry a decoding kernel reads (codes, scale indices, per-column fields). */
function bitsRead(bytes: number, entries: number): number {
  return (8 * bytes) / entries;
}

/** W of the GEMV problem encoded on the GPU with `scheme`, once per run (shared by the GEMV cases). */
function encodedWeights(context: BenchContext, scheme: SchemeName): Promise<GpuLatticeQuantizedMatrix> {
  const key = `gemv W ${scheme}`;
  let entry = context.shared.get(key);
  if (entry === undefined) {
    const value = gpuQuantizeLattice(context.gpu.device, context.gemv.w, { scheme, seed: context.seed });
    entry = { value, destroy: () => void value.then((m) => m.destroy(), () => undefined) };
    context.shared.set(key, entry);
  }
  return entry.value as Promise<GpuLatticeQuantizedMatrix>;
}

function firstColumns(m: Matrix, count: number): Matrix {
  const cols = Math.min(count, m.cols);
  return { rows: m.rows, cols, data: m.data.slice(0, m.rows * cols) };
}

function encodeCase(scheme: SchemeName, label: string): BenchCase {
  return {
    name: `${label} encode (rotation + rounding)`,
    kind: 'encode',
    baseline: F32_GEMV,
    async prepare({ gpu: { device }, gemv, seed }: BenchContext) {
      const { n, cols } = gemv;
      const input = createBufferWithData(device, `bench ${label} encode input`, gemv.w.data, STORAGE_USAGE);
      let last: GpuLatticeQuantizedMatrix | null = null;
      const notes = [`${label} encode: times include the status readback of gpuQuantizeLattice (wall clock)`];
      const problems: string[] = [];
      return {
        shape: `${n} × ${cols}`,
        bitsPerEntry: null,
        // Reads W (f32) once; the codes it writes (a tenth of that) are not counted.
        bytes: 4 * n * cols,
        flops: null,
        run: async () => {
          const encoded = await gpuQuantizeLattice(device, { buffer: input, rows: n, cols }, { scheme, seed });
          last?.destroy();
          last = encoded;
        },
        nmse: async () => {
          if (last === null) return null;
          const gpu = await last.read();
          const slice = firstColumns(gemv.w, CHECKED_COLUMNS);
          const cpu = cpuLatticeQuantize(slice, scheme, seed);
          const differing: number[] = [];
          for (let i = 0; i < cpu.codes.length; i++) {
            if (gpu.codes[i] !== cpu.codes[i] || gpu.scaleIndices[i] !== cpu.scaleIndices[i]) differing.push(i);
          }
          if (differing.length === 0) {
            notes.push(`${label} encode: GPU codes and scale indices of the first ${slice.cols} columns equal the CPU quantizer's`);
          } else {
            const first = differing[0] as number;
            const block = first % cpu.blocksPerColumn;
            problems.push(
              `${label} encode: GPU codes differ from the CPU quantizer in ${differing.length} of ${cpu.codes.length} blocks ` +
                `of the first ${slice.cols} columns (first: column ${Math.floor(first / cpu.blocksPerColumn)}, block ${block} ` +
                `of ${cpu.blocksPerColumn}: GPU code ${gpu.codes[first]}, CPU ${cpu.codes[first]})`,
            );
          }
          return null;
        },
        notes,
        problems,
        destroy: () => {
          input.destroy();
          (last as GpuLatticeQuantizedMatrix | null)?.destroy();
        },
      };
    },
  };
}

type ProductDispatch = (
  context: BenchContext,
  encoder: GPUCommandEncoder,
  scratch: GpuScratch,
  operands: { a: GpuLatticeMatrix; b: GpuLatticeMatrix; c: GPUBuffer },
) => void;

function productCase(scheme: SchemeName, name: string, dispatch: ProductDispatch, describe: (context: BenchContext) => string): BenchCase {
  return {
    name,
    kind: 'product',
    baseline: F32_MATMUL,
    async prepare(context) {
      const { device } = context.gpu;
      const { n, a, b } = context.product;
      const qa = cpuLatticeQuantize(a, scheme, context.seed);
      const qb = cpuLatticeQuantize(b, scheme, context.seed);
      const gpuA = uploadLatticeMatrix(device, qa);
      const gpuB = uploadLatticeMatrix(device, qb);
      const c = createBuffer(device, `bench ${name} C`, 4 * a.cols * b.cols, STORAGE_USAGE);
      return {
        shape: `${n} × ${a.cols} × ${b.cols}`,
        bitsPerEntry: bitsRead(latticeBytes(gpuA) + latticeBytes(gpuB), n * (a.cols + b.cols)),
        bytes: latticeBytes(gpuA) + latticeBytes(gpuB),
        flops: 2 * n * a.cols * b.cols,
        record: (encoder) => {
          const scratch = new GpuScratch(device);
          dispatch(context, encoder, scratch, { a: gpuA, b: gpuB, c });
          return () => scratch.destroy();
        },
        nmse: async () => {
          const data = new Float32Array(await readBuffer(device, c, 4 * a.cols * b.cols));
          return productNmse({ rows: a.cols, cols: b.cols, data }, a, b);
        },
        notes: [describe(context)],
        problems: [],
        destroy: () => {
          gpuA.destroy();
          gpuB.destroy();
          c.destroy();
        },
      };
    },
  };
}

export const d3EncodeCase = encodeCase('d3-q6', 'D3 q=6');
export const e8EncodeCase = encodeCase('e8-q16', 'E8 q=16');

export const d3TableProductCase = productCase(
  'd3-q6',
  'D3 q=6 table product ÂᵀB̂',
  ({ gpu }, encoder, scratch, operands) => dispatchTableMatmul(gpu.device, encoder, scratch, operands),
  ({ gpu }) =>
    `D3 table product: '${tableMatmulLayout(gpu.device).kind}' table layout in ` +
    `${gpu.limits.maxComputeWorkgroupStorageSize} bytes of workgroup memory`,
);

export const e8ProductCase = productCase(
  'e8-q16',
  'E8 q=16 product ÂᵀB̂',
  ({ gpu }, encoder, scratch, operands) =>
    dispatchE8Matmul(gpu.device, encoder, scratch, { ...operands, dotPath: dotPathFor(gpu.features) }),
  ({ gpu }) => `E8 product: '${dotPathFor(gpu.features)}' int8 dot products`,
);

/**
 * y = Ŵᵀx from codes (the LLM decode step). With `rotateX` the recorded work includes rotating x
 * (the GPU Hadamard kernel, as `dispatchLatticeGemv` does by default); without, x̃ = R·x is computed
 * once beforehand, as an engine does when several matrices share the rotation seed.
 */
function gemvCase(scheme: SchemeName, label: string, rotateX: boolean): BenchCase {
  return {
    name: `${label} GEMV${rotateX ? ' + rotating x' : ''}`,
    kind: 'gemv',
    baseline: F32_GEMV,
    async prepare(context) {
      const { device } = context.gpu;
      const { gemv } = context;
      const { n, cols } = gemv;
      const w = await encodedWeights(context, scheme);
      const x = createBufferWithData(device, `bench ${label} gemv x`, gemv.x, STORAGE_USAGE);
      const xRotated = createBuffer(device, `bench ${label} gemv R·x`, 4 * w.length, STORAGE_USAGE);
      const y = createBuffer(device, `bench ${label} gemv y`, 4 * cols, STORAGE_USAGE);
      if (!rotateX) {
        const scratch = new GpuScratch(device);
        const encoder = device.createCommandEncoder({ label: `bench ${label} rotate x` });
        dispatchHadamard(device, encoder, scratch, { input: x, output: xRotated, rows: n, cols: 1, seed: w.seed });
        device.queue.submit([encoder.finish()]);
        scratch.destroy();
      }
      const weightBytes = latticeBytes(w);
      return {
        shape: `${n} × ${cols}`,
        bitsPerEntry: bitsRead(weightBytes, n * cols),
        bytes: weightBytes + 4 * (rotateX ? n : w.length),
        flops: 2 * n * cols,
        record: (encoder) => {
          const scratch = new GpuScratch(device);
          dispatchLatticeGemv(device, encoder, scratch, rotateX ? { w, x, y } : { w, x, xRotated, y });
          return () => scratch.destroy();
        },
        nmse: async () => gemvNmse(new Float32Array(await readBuffer(device, y, 4 * cols)), gemv),
        notes: [`${label} GEMV: W encoded on the GPU (gpuQuantizeLattice), ${w.codeBits}-bit codes + ${w.scaleIndexBits}-bit scale indices per block`],
        problems: [],
        destroy: () => [x, xRotated, y].forEach((buffer) => buffer.destroy()),
      };
    },
  };
}

export const d3GemvCase = gemvCase('d3-q6', 'D3 q=6', false);
export const d3GemvRotatingCase = gemvCase('d3-q6', 'D3 q=6', true);
export const e8GemvCase = gemvCase('e8-q16', 'E8 q=16', false);
