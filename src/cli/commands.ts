import { availableParallelism } from 'node:os';
import { basename } from 'node:path';
import { LatticeMatmulError } from '../errors.js';
import { CONTAINER_FORMAT, type ContainerEntryInput, type ContainerMatrix } from '../format/container.js';
import { openQuantizedContainerFile, writeQuantizedContainerFile } from '../format/containerFile.js';
import { isSafetensorsDtype } from '../io/safetensors.js';
import { openSafetensorsFile, type SafetensorsFile } from '../io/safetensorsFile.js';
import type { Matrix } from '../matrix.js';
import { universalCodec } from '../quantize/latticeSpec.js';
import type { QuantizedMatrix } from '../quantize/quantizedMatrix.js';
import { resolveScheme, SCHEME_NAMES, type SchemeName } from '../quantize/schemes.js';
import { WeightOnlyQuantized } from '../weightonly/quantized.js';
import { ProgressBar, formatDuration } from './progressBar.js';
import { QuantizeWorkerPool } from './workerPool.js';

/*
 * The CLI's commands (src/cli/main.ts parses the arguments):
 *   quantize MODEL.safetensors -o OUT.safetensors [--scheme e8-4bit] [--tensors REGEX] [--device auto|gpu|cpu]
 *   inspect FILE
 * A PyTorch weight of shape (out, in), row-major, is exactly this library's column-major in × out matrix,
 * so tensors are quantized as they are stored, one column per output feature.
 */

/** Options of {@link quantizeModel}. */
export interface QuantizeModelOptions {
  readonly input: string;
  readonly output: string;
  readonly scheme: SchemeName;
  /** Tensors whose names match are quantized (2-D float tensors only). Default: every 2-D float tensor. */
  readonly tensors?: RegExp;
  readonly seed?: number;
  /** First nonce: matrix i gets nonce + i (reproducible files). Default: random nonces. */
  readonly nonce?: bigint;
  /** 'auto' uses a hardware GPU when there is one, worker threads otherwise. */
  readonly device?: 'auto' | 'gpu' | 'cpu';
  readonly workers?: number;
  readonly quiet?: boolean;
  readonly signal?: AbortSignal;
  /** Where messages go (default: stderr). */
  readonly log?: (line: string) => void;
}

/** What `quantizeModel` did. */
export interface QuantizeModelReport {
  readonly quantized: readonly { readonly name: string; readonly rows: number; readonly cols: number; readonly bitsStored: number }[];
  readonly skipped: readonly string[];
  readonly device: string;
  readonly seconds: number;
}

const FLOAT_DTYPES = new Set(['F32', 'F16', 'BF16', 'F64']);

/** Names of tensors `quantize` would quantize: 2-D float tensors of at least 8 × 8 matching `pattern`. */
export function selectTensors(file: SafetensorsFile, pattern: RegExp | undefined): { selected: string[]; skipped: string[] } {
  const selected: string[] = [];
  const skipped: string[] = [];
  for (const info of file.tensors) {
    const eligible = FLOAT_DTYPES.has(info.dtype) && info.shape.length === 2 && (info.shape[0] as number) >= 8 && (info.shape[1] as number) >= 8;
    if (eligible && (pattern === undefined || pattern.test(info.name))) selected.push(info.name);
    else skipped.push(info.name);
  }
  return { selected, skipped };
}

/** `Promise.all(items.map(work))` with at most `limit` calls of `work` pending; results in item order. */
async function mapWithConcurrency<T, R>(items: readonly T[], limit: number, work: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array<R>(items.length);
  let next = 0;
  const runner = async (): Promise<void> => {
    while (next < items.length) {
      const index = next++;
      results[index] = await work(items[index] as T, index);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, runner));
  return results;
}

/** Is this adapter a CPU stand-in (lavapipe, SwiftShader)? Then worker threads are faster. */
function isSoftwareAdapter(adapter: GPUAdapter | null): boolean {
  const info = adapter?.info;
  const text = [info?.vendor, info?.architecture, info?.device, info?.description].join(' ').toLowerCase();
  return /llvmpipe|lavapipe|swiftshader|software/.test(text);
}

/** A GPU quantizer when one should be used, else null. */
async function gpuQuantizer(device: 'auto' | 'gpu' | 'cpu', log: (line: string) => void): Promise<{ quantize: (m: Matrix, options: object) => Promise<QuantizedMatrix>; close: () => void; name: string } | null> {
  if (device === 'cpu') return null;
  try {
    const { nodeGpu } = await import('../gpu/nodeGpu.js');
    const { requestGpuDevice } = await import('../gpu/device.js');
    const { GpuEngine } = await import('../gpu/engine.js');
    const gpuEntry = await nodeGpu();
    // Look at the adapter before creating a device: a CPU stand-in is left alone (and says nothing).
    const adapter = await gpuEntry.requestAdapter();
    if (device === 'auto' && (adapter === null || isSoftwareAdapter(adapter))) return null;
    const context = await requestGpuDevice({ gpu: gpuEntry, ...(adapter === null ? {} : { adapter }), label: 'lattice-matmul CLI' });
    const engine = GpuEngine.create(context);
    const info = context.adapter.info;
    return {
      name: `GPU (${[info.vendor, info.architecture, info.device].filter(Boolean).join(' ') || 'WebGPU'})`,
      quantize: async (m, options) => {
        const gpu = await engine.quantize(m, options as Parameters<typeof engine.quantize>[1]);
        try {
          return await gpu.read();
        } finally {
          gpu.destroy();
        }
      },
      close: () => context.device.destroy(),
    };
  } catch (error) {
    if (device === 'gpu') throw error;
    log(`no usable GPU (${error instanceof Error ? error.message : String(error)}); quantizing on the CPU`);
    return null;
  }
}

/**
 * Quantizes the selected tensors of a safetensors model into a quantized container file.
 *
 * @example
 * await quantizeModel({ input: 'model.safetensors', output: 'model.lmq.safetensors', scheme: 'e8-4bit' });
 */
export async function quantizeModel(options: QuantizeModelOptions): Promise<QuantizeModelReport> {
  const log = options.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const start = performance.now();
  const scheme = resolveScheme(options.scheme);
  const universal = scheme.kind === 'lattice' && scheme.mode === 'universal';
  if (options.nonce !== undefined && !universal) throw new LatticeMatmulError('--nonce applies to universal lattice schemes only');
  const file = await openSafetensorsFile(options.input);
  let pool: QuantizeWorkerPool | null = null;
  let gpu: Awaited<ReturnType<typeof gpuQuantizer>> = null;
  try {
    const { selected, skipped } = selectTensors(file, options.tensors);
    if (selected.length === 0) throw new LatticeMatmulError(`no 2-D float tensor of ${options.input} matches ${options.tensors?.source ?? 'the selection'}`);
    const shapes = new Map(selected.map((name) => [name, file.info(name).shape as readonly number[]]));
    const totalColumns = selected.reduce((sum, name) => sum + ((shapes.get(name) as readonly number[])[0] as number), 0);
    gpu = await gpuQuantizer(options.device ?? 'auto', log);
    const deviceName = gpu?.name ?? `CPU (${options.workers ?? availableParallelism()} worker threads)`;
    if (!options.quiet) log(`quantizing ${selected.length} tensors (${totalColumns} columns) of ${basename(options.input)} with ${options.scheme} on ${deviceName}`);
    if (gpu === null) pool = new QuantizeWorkerPool(options.workers ?? availableParallelism());
    const bar = new ProgressBar(totalColumns, process.stderr, !options.quiet);
    const done = new Map<string, number>();
    const progressOf = (name: string) => (columns: number) => {
      done.set(name, columns);
      let sum = 0;
      for (const value of done.values()) sum += value;
      bar.update(sum, name);
    };
    // At most one tensor per worker is read and held as f32 at a time: a model's weights need not fit in memory.
    const concurrency = gpu !== null ? 1 : (pool as QuantizeWorkerPool).size;
    const results = await mapWithConcurrency(selected, concurrency, async (name, index): Promise<ContainerEntryInput> => {
        if (options.signal?.aborted) throw new LatticeMatmulError('quantize was aborted');
        const [out, inFeatures] = shapes.get(name) as readonly [number, number];
        const data = await file.readTensorAsFloat32(name);
        const quantizeOptions = {
          scheme: options.scheme,
          seed: options.seed ?? 1,
          ...(universal && options.nonce !== undefined ? { nonce: options.nonce + BigInt(index) } : {}),
        };
        const matrix: Matrix = { rows: inFeatures, cols: out, data };
        const onProgress = progressOf(name);
        const quantized =
          gpu !== null ? await gpu.quantize(matrix, quantizeOptions) : await (pool as QuantizeWorkerPool).run({ rows: inFeatures, cols: out, data, options: quantizeOptions }, onProgress);
        onProgress(out);
        return { name, matrix: quantized };
    });
    bar.finish(`quantized ${selected.length} tensors in ${formatDuration((performance.now() - start) / 1000)}`);
    await writeQuantizedContainerFile(options.output, results, {
      source: basename(options.input),
      scheme: options.scheme,
      'created-by': 'lattice-matmul quantize',
    });
    return {
      quantized: results.map(({ name, matrix }) => {
        const q = matrix as QuantizedMatrix;
        return { name, rows: q.rows, cols: q.cols, bitsStored: q.bitsStored };
      }),
      skipped,
      device: deviceName,
      seconds: (performance.now() - start) / 1000,
    };
  } finally {
    await pool?.close();
    gpu?.close();
    await file.close();
  }
}

/** One line of `inspect`. */
export interface InspectRow {
  readonly name: string;
  readonly kind: string;
  readonly scheme: string;
  /** (out, in) as PyTorch writes the weight. */
  readonly shape: readonly [number, number];
  readonly bitsPerEntry: number;
  readonly bytes: number;
  /** Universal codes: D = E‖ŵ − w‖²/‖w‖², the relative weight error, and 2D + D², a product's NMSE. */
  readonly weightError: number | null;
  readonly productNmse: number | null;
}

function schemeLabel(matrix: ContainerMatrix): string {
  if (matrix instanceof WeightOnlyQuantized) return `${matrix.method} (weight-only)`;
  const scheme = matrix.scheme;
  const name = SCHEME_NAMES.find((candidate) => JSON.stringify(resolveScheme(candidate)) === JSON.stringify(scheme));
  if (name !== undefined) return name;
  if (scheme.kind === 'lattice') return scheme.mode === 'universal' ? `${scheme.lattice} q=${scheme.q} β=${scheme.beta}` : `${scheme.lattice} q=${scheme.q} (deterministic)`;
  return scheme.kind;
}

/**
 * The entries of a quantized container (or, for a plain safetensors file, what `quantize` would select).
 *
 * @example
 * for (const row of await inspectFile('model.lmq.safetensors')) console.log(row.name, row.bitsPerEntry);
 */
export async function inspectFile(path: string): Promise<{ kind: 'container'; rows: InspectRow[] } | { kind: 'safetensors'; tensors: { name: string; dtype: string; shape: readonly number[]; quantizable: boolean }[] }> {
  let container;
  try {
    container = await openQuantizedContainerFile(path);
  } catch (error) {
    const safetensors = await openSafetensorsFile(path);
    try {
      // A valid safetensors file that is not a container: describe what would be quantized.
      if (error instanceof LatticeMatmulError && safetensors.metadata?.format !== CONTAINER_FORMAT && safetensors.tensors.every((t) => isSafetensorsDtype(t.dtype))) {
        const { selected } = selectTensors(safetensors, undefined);
        return { kind: 'safetensors', tensors: safetensors.tensors.map((t) => ({ name: t.name, dtype: t.dtype, shape: t.shape, quantizable: selected.includes(t.name) })) };
      }
    } finally {
      await safetensors.close();
    }
    throw error;
  }
  try {
    const rows: InspectRow[] = [];
    for (const info of container.entries) {
      const entry = await container.read(info.name);
      const matrix = entry.matrix;
      const bytes = info.tensors.reduce((sum, t) => sum + t.byteLength, 0);
      const out = info.cols;
      const inFeatures = info.rows;
      let weightError: number | null = null;
      let productNmse: number | null = null;
      if (!(matrix instanceof WeightOnlyQuantized) && matrix.kind === 'lattice' && matrix.mode === 'universal') {
        const d = universalCodec(matrix.scheme.lattice, matrix.scheme.q, matrix.scheme.beta).distortion;
        weightError = d;
        productNmse = ((2 * d + d * d) * matrix.rows) / matrix.length;
      }
      rows.push({ name: info.name, kind: entry.kind, scheme: schemeLabel(matrix), shape: [out, inFeatures], bitsPerEntry: (8 * bytes) / (inFeatures * out), bytes, weightError, productNmse });
    }
    return { kind: 'container', rows };
  } finally {
    await container.close();
  }
}
