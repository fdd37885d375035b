import { check } from '../errors.js';
import { checkMatrix, type Matrix } from '../matrix.js';
import type { QuantizeOptions } from '../quantize/quantize.js';
import type { LatticeQuantizedMatrix } from '../quantize/quantizedMatrix.js';
import { resolveScheme } from '../quantize/schemes.js';
import { createBuffer, createBufferWithData, readBuffer, STORAGE_USAGE } from './buffers.js';
import type { GpuContext, GpuFeatures, GpuLimits } from './device.js';
import { withValidation } from './errorScopes.js';
import { gpuQuantizeLattice, uploadLatticeMatrix, type GpuLatticeQuantizedMatrix, type GpuMatrixInput } from './gpuQuantize.js';
import { dispatchE8Matmul, dotPathFor, type DotPath } from './kernels/e8Matmul.js';
import { dispatchLatticeDequantize, latticeDequantize } from './kernels/latticeDequantize.js';
import { dispatchLatticeGemv } from './kernels/latticeGemv.js';
import { dispatchMatmulF32 } from './kernels/matmulF32.js';
import { dispatchTableMatmul, tableMatmulLayout } from './kernels/tableMatmul.js';
import { checkProductOperands, type GpuLatticeMatrix } from './latticeOperand.js';
import { GpuScratch } from './scratch.js';
import type { TableLayoutKind } from './tableLayout.js';

/** Options of {@link GpuEngine.create}. */
export interface GpuEngineOptions {
  /** Force a D3 table layout (default: the best the device's workgroup memory allows). */
  readonly tableLayout?: TableLayoutKind;
  /** Force the E8 inner-product path (default: packed 8-bit dot products where WGSL has them). */
  readonly e8DotPath?: DotPath;
}

/** Which kernel `matmulAT` runs for a pair of operands. */
export type ProductKernel = 'd3-table' | 'e8-dot' | 'decode-f32';

/**
 * The WebGPU engine: encodes matrices with the lattice quantizer on the GPU (the same codes as the
 * CPU `quantize`, bit for bit), and multiplies them from their codes.
 *
 * The device is the caller's: the engine allocates only per-call scratch and the results it returns
 * (each with `destroy()`); `engine.destroy()` just marks the engine unusable.
 *
 * @example
 * const context = await requestGpuDevice();              // browser; in Node: requestNodeGpuDevice()
 * const engine = GpuEngine.create(context);
 * const qa = await engine.quantize(a, { scheme: 'd3-q6', seed: 7 });
 * const qb = await engine.quantize({ buffer: bBuffer, rows: n, cols: 64 }, { scheme: 'd3-q6', seed: 7 });
 * const c = await engine.matmulAT(qa, qb);                // Matrix, ≈ aᵀb
 * qa.destroy(); qb.destroy();
 */
export class GpuEngine {
  readonly device: GPUDevice;
  readonly adapter: GPUAdapter;
  readonly features: GpuFeatures;
  readonly limits: GpuLimits;
  /** The D3 inner-product table layout in workgroup memory: 'full' (≥ 48 KB), 'triangle' (32 KB) or 'leaders' (16 KB). */
  readonly tableLayout: TableLayoutKind;
  /** How the E8 kernel forms inner products of decoded blocks. */
  readonly e8DotPath: DotPath;
  private destroyed = false;

  private constructor(context: GpuContext, options: GpuEngineOptions) {
    this.device = context.device;
    this.adapter = context.adapter;
    this.features = context.features;
    this.limits = context.limits;
    this.tableLayout = tableMatmulLayout(context.device, options.tableLayout).kind;
    this.e8DotPath = options.e8DotPath ?? dotPathFor(context.features);
    check(
      this.e8DotPath === 'plain' || context.features.packed4x8IntegerDotProduct,
      "e8DotPath 'packed' needs the packed_4x8_integer_dot_product WGSL feature, which this adapter lacks",
    );
  }

  /** An engine on the device of `context` (from `requestGpuDevice` or `requestNodeGpuDevice`). */
  static create(context: GpuContext, options: GpuEngineOptions = {}): GpuEngine {
    check(typeof context === 'object' && context !== null && 'device' in context, 'GpuEngine.create needs the GpuContext from requestGpuDevice()');
    return new GpuEngine(context, options);
  }

  /**
   * Quantizes a matrix given as a `Matrix` (uploaded) or as the caller's own GPU buffer. Lattice
   * schemes only: the scalar baselines run on the CPU (`quantize`).
   */
  async quantize(input: Matrix | GpuMatrixInput, options: QuantizeOptions): Promise<GpuLatticeQuantizedMatrix> {
    this.checkAlive();
    const scheme = resolveScheme(options.scheme);
    check(scheme.kind === 'lattice', () => `the GPU engine encodes lattice schemes; '${scheme.kind}' baselines run on the CPU with quantize()`);
    return gpuQuantizeLattice(this.device, input, options);
  }

  /** Copies a CPU-quantized lattice matrix to the GPU (the same bytes the GPU encoder writes). */
  upload(q: LatticeQuantizedMatrix): GpuLatticeQuantizedMatrix {
    this.checkAlive();
    return uploadLatticeMatrix(this.device, q);
  }

  /** The kernel `matmulAT(a, b)` uses for these operands. */
  productKernel(a: GpuLatticeMatrix, b: GpuLatticeMatrix): ProductKernel {
    const same = a.scheme.lattice === b.scheme.lattice && a.scheme.q === b.scheme.q;
    if (same && a.scheme.lattice === 'D3' && a.scheme.q === 6) return 'd3-table';
    if (same && (a.scheme.lattice === 'E8' || a.scheme.lattice === 'Z') && a.scheme.q <= 16) return 'e8-dot';
    return 'decode-f32';
  }

  /** ÂᵀB̂ read back as a Matrix (a.cols × b.cols). */
  async matmulAT(a: GpuLatticeMatrix, b: GpuLatticeMatrix): Promise<Matrix> {
    const output = createBuffer(this.device, 'GpuEngine.matmulAT C', 4 * a.cols * b.cols, STORAGE_USAGE);
    try {
      await this.matmulATInto(a, b, output);
      return { rows: a.cols, cols: b.cols, data: new Float32Array(await readBuffer(this.device, output, 4 * a.cols * b.cols)) };
    } finally {
      output.destroy();
    }
  }

  /**
   * ÂᵀB̂ written into the caller's buffer (a.cols × b.cols column-major f32 from `offset`), for
   * applications that keep the result on the GPU. Resolves when the GPU has finished.
   */
  async matmulATInto(a: GpuLatticeMatrix, b: GpuLatticeMatrix, output: GPUBuffer, offset = 0): Promise<void> {
    this.checkAlive();
    const kernel = this.productKernel(a, b);
    const scratch = new GpuScratch(this.device);
    try {
      await withValidation(this.device, `GpuEngine.matmulAT (${kernel})`, async () => {
        const encoder = this.device.createCommandEncoder({ label: `GpuEngine.matmulAT (${kernel})` });
        this.recordMatmulAT(encoder, scratch, a, b, output, offset);
        this.device.queue.submit([encoder.finish()]);
        await this.device.queue.onSubmittedWorkDone();
      });
    } finally {
      scratch.destroy();
    }
  }

  /**
   * Records ÂᵀB̂ into the caller's command encoder (for apps that batch their own GPU work, and for
   * timing). Buffers it needs live in `scratch`: destroy it after the submission has finished.
   */
  recordMatmulAT(encoder: GPUCommandEncoder, scratch: GpuScratch, a: GpuLatticeMatrix, b: GpuLatticeMatrix, output: GPUBuffer, offset = 0): void {
    this.checkAlive();
    checkProductOperands(a, b);
    const kernel = this.productKernel(a, b);
    if (kernel === 'd3-table') {
      dispatchTableMatmul(this.device, encoder, scratch, { a, b, c: output, cOffset: offset, layout: this.tableLayout });
    } else if (kernel === 'e8-dot') {
      dispatchE8Matmul(this.device, encoder, scratch, { a, b, c: output, cOffset: offset, dotPath: this.e8DotPath });
    } else {
      check(a.means === null && b.means === null, 'centred operands of different schemes are not supported on the GPU; multiply them with the CPU matmulAT');
      // Different codes on each side: decode both in the rotated domain, then an f32 product.
      const decodedA = scratch.buffer('GpuEngine decoded A', 4 * a.length * a.cols, STORAGE_USAGE);
      const decodedB = scratch.buffer('GpuEngine decoded B', 4 * b.length * b.cols, STORAGE_USAGE);
      dispatchLatticeDequantize(this.device, encoder, scratch, { m: a, output: decodedA });
      dispatchLatticeDequantize(this.device, encoder, scratch, { m: b, output: decodedB });
      dispatchMatmulF32(this.device, encoder, scratch, { a: decodedA, b: decodedB, c: output, cOffset: offset, n: a.length, aCols: a.cols, bCols: b.cols });
    }
  }

  /**
   * Ŵᵀx for a quantized weight matrix W (n × cols) and a vector x of n entries, an n × k matrix of k
   * right-hand sides, or either already in a GPU buffer: the decode step of an LLM, reading the
   * packed codes once. The result (cols × k) is read back.
   */
  async matvec(w: GpuLatticeMatrix, x: Float32Array | Matrix | GpuMatrixInput): Promise<Matrix> {
    const rhs = x instanceof Float32Array ? 1 : x.cols;
    const output = createBuffer(this.device, 'GpuEngine.matvec y', 4 * w.cols * rhs, STORAGE_USAGE);
    try {
      await this.matvecInto(w, x, output);
      return { rows: w.cols, cols: rhs, data: new Float32Array(await readBuffer(this.device, output, 4 * w.cols * rhs)) };
    } finally {
      output.destroy();
    }
  }

  /**
   * Ŵᵀx written into the caller's buffer (cols × k column-major f32 from `offset`), so that a model's
   * activations can stay on the GPU. Resolves when the GPU has finished.
   */
  async matvecInto(w: GpuLatticeMatrix, x: Float32Array | Matrix | GpuMatrixInput, output: GPUBuffer, offset = 0): Promise<void> {
    this.checkAlive();
    const scratch = new GpuScratch(this.device);
    const temporaries: GPUBuffer[] = [];
    try {
      await withValidation(this.device, 'GpuEngine.matvec', async () => {
        let input: GpuMatrixInput;
        if (!(x instanceof Float32Array) && !('data' in x)) {
          input = x; // already on the GPU (a Float32Array also has a `buffer`, hence the order of the tests)
        } else {
          const xMatrix: Matrix = x instanceof Float32Array ? { rows: x.length, cols: 1, data: x } : x;
          checkMatrix(xMatrix, 'x');
          const buffer = createBufferWithData(this.device, 'GpuEngine.matvec x', xMatrix.data, STORAGE_USAGE);
          temporaries.push(buffer);
          input = { buffer, rows: xMatrix.rows, cols: xMatrix.cols };
        }
        check(input.rows === w.rows, () => `x has ${input.rows} rows, but W has ${w.rows}`);
        check(Number.isInteger(input.cols) && input.cols >= 1, () => `x must have at least one column, got ${input.cols}`);
        const encoder = this.device.createCommandEncoder({ label: 'GpuEngine.matvec' });
        dispatchLatticeGemv(this.device, encoder, scratch, {
          w,
          x: input.buffer,
          xOffset: input.offset ?? 0,
          y: output,
          yOffset: offset,
          rhs: input.cols,
        });
        this.device.queue.submit([encoder.finish()]);
        await this.device.queue.onSubmittedWorkDone();
      });
    } finally {
      scratch.destroy();
      for (const buffer of temporaries) buffer.destroy();
    }
  }

  /** The matrix reconstructed from its codes (decoded on the GPU, rotated back on the CPU). */
  async dequantize(q: GpuLatticeMatrix): Promise<Matrix> {
    this.checkAlive();
    return latticeDequantize(this.device, q);
  }

  /** Marks the engine unusable. The device stays the caller's; results keep their own `destroy()`. */
  destroy(): void {
    this.destroyed = true;
  }

  private checkAlive(): void {
    check(!this.destroyed, 'this GpuEngine was destroyed');
  }
}
