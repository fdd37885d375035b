import { throwIfDeviceLost } from './errorScopes.js';
import { check, LatticeMatmulError, describeValue } from '../errors.js';
import type {
  ContainerEntry,
  DeterministicContainerEntry,
  ScalarContainerEntry,
  UniversalContainerEntry,
  WeightOnlyContainerEntry,
} from '../format/container.js';
import { codecOf, gpuEscapesFromStored } from '../format/universalLayout.js';
import { codeBufferByteLength, createBufferWithData, STORAGE_USAGE } from './buffers.js';
import { GpuLatticeQuantizedMatrix } from './gpuQuantize.js';
import { uploadWeightOnly, type WeightOnlyGpuMatrix } from './kernels/weightOnlyGemv.js';
import { gpuLatticeMetadata } from './latticeOperand.js';
import { uploadUniversalWords, type GpuUniversalQuantizedMatrix } from './universalOperand.js';

/*
 * Container entries (src/format/container.ts) to the GPU. The container stores each matrix's packed
 * words in the layouts the kernels read, so this uploads them as they are: the code and escape-bit
 * words of a universal matrix, the packed codes and scale indices of a deterministic one, the packed
 * code rows of a weight-only one (unless its codes fit 8 bits: `uploadWeightOnly` then repacks them
 * to fixed width, for its faster kernel). The only work on the host is what the GPU form has and the stored
 * form has not: a universal matrix's escape ranks (4 bits, relative to the block's leader) become the
 * GPU's 8-bit root ids and non-root records (`gpuEscapesFromStored`, straight from the stored words),
 * and a universal E8 matrix's first lattice point beyond int8, if any (`e8PointOverflowOnHost`, which
 * decodes only the blocks whose escape could reach one), so that `QuantizedLinear.create` refuses
 * `int8Inputs` on it at once, naming the entry, instead of a layer whose outputs are NaN until `check()`.
 */

/** What `uploadContainerEntry` returns for each kind of entry. */
export type GpuContainerMatrix = GpuUniversalQuantizedMatrix | GpuLatticeQuantizedMatrix | WeightOnlyGpuMatrix;

/**
 * Uploads a container entry for the GPU kernels: a universal entry becomes a
 * `GpuUniversalQuantizedMatrix` (universal dequantize, GEMV, products) and a deterministic one a
 * `GpuLatticeQuantizedMatrix`, both from the stored words without repacking; a weight-only one a
 * `WeightOnlyGpuMatrix` (its GEMV), whose codes go up as stored or, where they fit 8 bits, repacked
 * to fixed width (`uploadWeightOnly`'s default layout, for the faster kernel). Scalar
 * baselines (INT, NVFP4) have no GPU kernel and are refused with a `LatticeMatmulError`. The result
 * owns its buffers: `destroy()` it.
 *
 * @example
 * const container = readQuantizedContainer(bytes);
 * const w = uploadContainerEntry(device, container.get('layers.0.q'));
 * try { … } finally { w.destroy(); }
 */
export function uploadContainerEntry(device: GPUDevice, entry: UniversalContainerEntry): GpuUniversalQuantizedMatrix;
export function uploadContainerEntry(device: GPUDevice, entry: DeterministicContainerEntry): GpuLatticeQuantizedMatrix;
export function uploadContainerEntry(device: GPUDevice, entry: WeightOnlyContainerEntry): WeightOnlyGpuMatrix;
/** A scalar baseline has no GPU kernel: always refused (typed `never`, so code after it is flagged as unreachable). */
export function uploadContainerEntry(device: GPUDevice, entry: ScalarContainerEntry): never;
export function uploadContainerEntry(device: GPUDevice, entry: ContainerEntry): GpuContainerMatrix;
export function uploadContainerEntry(device: GPUDevice, entry: ContainerEntry): GpuContainerMatrix {
  throwIfDeviceLost(device, 'uploadContainerEntry');
  check(
    typeof entry === 'object' && entry !== null && typeof entry.kind === 'string' && typeof entry.matrix === 'object' && entry.matrix !== null,
    'uploadContainerEntry needs an entry of readQuantizedContainer',
  );
  switch (entry.kind) {
    case 'universal': {
      const m = entry.matrix;
      return uploadUniversalWords(device, m, entry.stored, gpuEscapesFromStored(codecOf(m), entry.stored, m.blocksPerColumn, m.cols), `container entry ${JSON.stringify(entry.name)}`);
    }
    case 'deterministic':
      return uploadDeterministic(device, entry);
    case 'weight-only':
      // Read through WeightOnlyQuantized.fromPacked, the matrix's packedCodes are the stored words
      // (uploaded as they are where the layout stays packed).
      return uploadWeightOnly(device, entry.matrix, { label: `container ${entry.name}` });
    case 'scalar':
      throw new LatticeMatmulError(
        `uploadContainerEntry: matrix ${JSON.stringify(entry.name)} is a scalar baseline (${entry.matrix.scheme.kind}), which no GPU kernel reads; decode it on the CPU (dequantize, matmulAT)`,
      );
    default:
      throw new LatticeMatmulError(`uploadContainerEntry: unknown entry kind ${describeValue((entry as { kind: unknown }).kind)}`);
  }
}

function uploadDeterministic(device: GPUDevice, entry: DeterministicContainerEntry): GpuLatticeQuantizedMatrix {
  const m = entry.matrix;
  const metadata = gpuLatticeMetadata(m);
  check(
    metadata.codeBits === entry.stored.codeBits && metadata.scaleIndexBits === entry.stored.scaleIndexBits,
    () => `uploadContainerEntry: matrix ${JSON.stringify(entry.name)} is packed with ${entry.stored.codeBits}-bit codes and ${entry.stored.scaleIndexBits}-bit scale indices, the kernels read ${metadata.codeBits} and ${metadata.scaleIndexBits}`,
  );
  const label = `container ${entry.name}`;
  const owned: GPUBuffer[] = [];
  const upload = (what: string, data: ArrayBufferView, byteLength = data.byteLength): GPUBuffer => {
    const buffer = createBufferWithData(device, `${label} ${what}`, data, STORAGE_USAGE, byteLength);
    owned.push(buffer);
    return buffer;
  };
  try {
    return new GpuLatticeQuantizedMatrix(
      device,
      metadata,
      upload('codes', entry.stored.codes, codeBufferByteLength(entry.stored.codes.byteLength)),
      upload('scale indices', entry.stored.scaleIndices),
      upload('norms', m.norms),
      m.means === null ? null : upload('means', m.means),
      m.gains === null ? null : upload('gains', m.gains),
      m.clippedBlocks,
    );
  } catch (error) {
    for (const buffer of owned) buffer.destroy();
    throw error;
  }
}
