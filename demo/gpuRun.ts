import {
  requestGpuDevice,
  type GpuContext,
  type Matrix,
  type QuantizedMatrix,
  type QuantizeOptions,
} from '../src/index.js';
import type { EngineOutput, StageListener } from './engineOutput.js';
import type { AdapterSummary, GpuStatus } from './runProtocol.js';

/*
 * The WebGPU path: `requestGpuDevice()` then the library's GPU engine. This is the only module of the
 * page that touches the engine.
 *
 * PENDING: src/gpu/engine.ts (GpuEngine) is still being written; until it is exported from
 * src/index.ts the interface the demo relies on is declared here and `loadEngine` reports the engine
 * as unavailable, so the page falls back to the CPU reference.
 */

/** A matrix quantized on the GPU (codes stay in GPU buffers until `read`). */
interface GpuQuantizedMatrixApi {
  readonly bitsStored: number;
  readonly bitsEntropy: number;
  read(): Promise<QuantizedMatrix>;
  destroy(): void;
}

/** The GPU engine's surface the demo uses. */
interface GpuEngineApi {
  readonly tableLayout: string;
  quantize(input: Matrix, options: QuantizeOptions): Promise<GpuQuantizedMatrixApi>;
  matmulAT(qa: GpuQuantizedMatrixApi, qb: GpuQuantizedMatrixApi): Promise<Matrix>;
  destroy(): void;
}

function createEngine(_context: GpuContext): GpuEngineApi {
  throw new Error('the GPU engine (GpuEngine in src/gpu/engine.ts) is not part of this build yet');
}

/** A device and an engine on it, kept for the worker's lifetime. */
export class GpuRunner {
  private constructor(
    private readonly context: GpuContext,
    private readonly engine: GpuEngineApi,
  ) {}

  /** Requests a device (`navigator.gpu` of the worker) and creates the engine on it. */
  static async create(): Promise<GpuRunner> {
    const context = await requestGpuDevice({ label: 'lattice-matmul demo' });
    try {
      return new GpuRunner(context, createEngine(context));
    } catch (error) {
      context.device.destroy();
      throw error;
    }
  }

  /** The adapter and table layout, for the page. */
  status(): GpuStatus {
    return { available: true, adapter: this.adapterSummary(), tableLayout: this.engine.tableLayout };
  }

  /**
   * Quantizes A and B and multiplies them on the GPU. Each stage is timed until the queue has drained,
   * so the times are the GPU's and not just the submissions'. Also reads both quantized matrices back
   * (for the error picture and the comparison with the CPU).
   */
  async run(a: Matrix, b: Matrix, options: QuantizeOptions, onStage: StageListener): Promise<EngineOutput> {
    const queue = this.context.device.queue;
    const owned: GpuQuantizedMatrixApi[] = [];
    try {
      onStage('quantizeA');
      const t0 = performance.now();
      const gpuA = await this.engine.quantize(a, options);
      owned.push(gpuA);
      await queue.onSubmittedWorkDone();
      onStage('quantizeB');
      const t1 = performance.now();
      const gpuB = await this.engine.quantize(b, options);
      owned.push(gpuB);
      await queue.onSubmittedWorkDone();
      onStage('product');
      const t2 = performance.now();
      const product = await this.engine.matmulAT(gpuA, gpuB);
      const t3 = performance.now();
      const [qa, qb] = await Promise.all([gpuA.read(), gpuB.read()]);
      return {
        qa,
        qb,
        product,
        bitsStored: (gpuA.bitsStored + gpuB.bitsStored) / 2,
        bitsEntropy: (gpuA.bitsEntropy + gpuB.bitsEntropy) / 2,
        timings: { quantizeA: t1 - t0, quantizeB: t2 - t1, product: t3 - t2 },
      };
    } finally {
      for (const matrix of owned) matrix.destroy();
    }
  }

  destroy(): void {
    this.engine.destroy();
    this.context.device.destroy();
  }

  private adapterSummary(): AdapterSummary {
    const info = this.context.adapter.info;
    const features = this.context.features;
    return {
      vendor: info.vendor,
      architecture: info.architecture,
      device: info.device,
      description: info.description,
      workgroupStorageBytes: this.context.limits.maxComputeWorkgroupStorageSize,
      features: [
        features.subgroups ? 'subgroups' : null,
        features.shaderF16 ? 'shader-f16' : null,
        features.timestampQuery ? 'timestamp-query' : null,
        features.packed4x8IntegerDotProduct ? 'packed_4x8_integer_dot_product' : null,
      ].filter((name): name is string => name !== null),
    };
  }
}
