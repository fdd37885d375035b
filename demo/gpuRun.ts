import {
  GpuEngine,
  isDeviceLost,
  requestGpuDevice,
  rotationPlan,
  SCHEMES,
  type GpuContext,
  type GpuLatticeQuantized,
  type Matrix,
  type QuantizeOptions,
  type SchemeName,
} from '../src/index.js';
import type { EngineOutput, StageListener } from './engineOutput.js';
import { isSoftwareRenderer } from './limits.js';
import type { AdapterSummary, GpuStatus } from './runProtocol.js';

/*
 * The WebGPU path: `requestGpuDevice()` then the library's `GpuEngine`. This is the only module of the
 * page that touches the engine. The engine encodes lattice schemes; the scalar baselines run on the
 * CPU reference (the worker decides, see `gpuRunsScheme`).
 */

/**
 * What a run of `scheme` on `n` × `cols` matrices, multiplied by `productKernel` (`GpuRunner.run`'s),
 * compiles on a device that has not run it before: the engine compiles each pipeline once per device
 * and variant (src/gpu/pipelines.ts). A universal scheme's quantizer and product variants follow its
 * lattice (the E8 rate presets share them), a deterministic scheme's its code shape (the scheme
 * itself), and the product kernel may change with the data (a universal pair product falls back to
 * decoding). The rotation's variant follows the length of its windows (`rotationPlan`; the same for
 * every scheme here: the page never time-shares) and, for windows of 8192 entries or more, whether
 * fewer than 8 columns spread over more workgroups (SPREAD_BELOW_COLUMNS in
 * src/gpu/kernels/hadamard.ts). A run whose keys are all old on its device compiles nothing; a new key
 * may compile (on SwiftShader a new scheme took up to 15 s, a new rotation length about 9 s).
 *
 * @example
 * pipelineKeys('e8-q16', 1000, 64, 'universal-i8'); // ['E8 (universal), universal-i8 product', 'rotation 768'] (two windows of 768 entries)
 */
export function pipelineKeys(scheme: SchemeName, n: number, cols: number, productKernel: string): readonly string[] {
  const preset = SCHEMES[scheme];
  const family = preset.kind === 'lattice' && preset.mode === 'universal' ? `${preset.lattice} (universal)` : scheme;
  const window = rotationPlan(n).stages[0]?.length ?? n;
  return [`${family}, ${productKernel} product`, `rotation ${window}${cols < 8 ? ', fewer than 8 columns' : ''}`];
}

/** A device and an engine on it, kept until the device is lost (then the worker starts a new one). */
export class GpuRunner {
  private constructor(
    private readonly context: GpuContext,
    private readonly engine: GpuEngine,
  ) {}

  /** Requests a device (the worker's `navigator.gpu`) and creates the engine on it. */
  static async create(): Promise<GpuRunner> {
    const context = await requestGpuDevice({ label: 'lattice-matmul demo' });
    try {
      return new GpuRunner(context, GpuEngine.create(context));
    } catch (error) {
      context.device.destroy();
      throw error;
    }
  }

  /** The adapter, the table layout and the integer dot-product path, for the page. */
  status(): GpuStatus & { readonly available: true } {
    return {
      available: true,
      adapter: this.adapterSummary(),
      tableLayout: this.engine.tableLayout,
      dotPath: this.engine.dotPath,
    };
  }

  /**
   * Quantizes A and B (each with its own options: universal schemes give them different nonces) and
   * multiplies them on the GPU. The engine's promises settle once the GPU has finished each step, so
   * the stage times are the GPU's. Also reads both quantized matrices back (for the rates, the error
   * picture and the comparison with the CPU).
   */
  async run(a: Matrix, b: Matrix, options: readonly [QuantizeOptions, QuantizeOptions], onStage: StageListener): Promise<EngineOutput & { productKernel: string }> {
    const owned: GpuLatticeQuantized[] = [];
    try {
      onStage('quantizeA');
      const t0 = performance.now();
      const gpuA = await this.engine.quantize(a, options[0]);
      owned.push(gpuA);
      onStage('quantizeB');
      const t1 = performance.now();
      const gpuB = await this.engine.quantize(b, options[1]);
      owned.push(gpuB);
      onStage('product');
      const t2 = performance.now();
      const product = await this.engine.matmulAT(gpuA, gpuB);
      const t3 = performance.now();
      const [qa, qb] = await Promise.all([gpuA.read(), gpuB.read()]);
      return {
        qa,
        qb,
        product,
        bitsStored: (qa.bitsStored + qb.bitsStored) / 2,
        bitsEntropy: (qa.bitsEntropy + qb.bitsEntropy) / 2,
        timings: { quantizeA: t1 - t0, quantizeB: t2 - t1, product: t3 - t2 },
        productKernel: this.engine.productKernel(gpuA, gpuB),
      };
    } finally {
      for (const matrix of owned) matrix.destroy();
    }
  }

  /**
   * Whether the device was lost (a GPU reset, a driver crash, `destroy()`): every later call on it
   * fails, so the worker drops this runner and requests a new device.
   */
  get lost(): boolean {
    return isDeviceLost(this.context.device);
  }

  destroy(): void {
    try {
      this.engine.destroy();
    } finally {
      this.context.device.destroy();
    }
  }

  private adapterSummary(): AdapterSummary {
    // requestGpuDevice() always returns its adapter; a context without one (an app's own device) says nothing about it.
    const info = this.context.adapter?.info ?? { vendor: '', architecture: '', device: '', description: '' };
    const features = this.context.features;
    return {
      vendor: info.vendor,
      architecture: info.architecture,
      device: info.device,
      description: info.description,
      softwareRenderer: isSoftwareRenderer(info),
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
