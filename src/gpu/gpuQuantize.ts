import { checkQuantizedMatrix } from '../quantize/checkQuantized.js';
import { check, unlessAborted, describeValue } from '../errors.js';
import { packField, packedLayout, unpackField } from '../format/packing.js';
import { VoronoiCode } from '../lattices/voronoiCode.js';
import { toFloat32Matrix, type Matrix, type MatrixInput } from '../matrix.js';
import { checkTimeSharing, keptRotatedLength, rotatedLength, schemeLattice, type QuantizeOptions } from '../quantize/quantize.js';
import { describeSchemeChoice, resolveQuantizeOptions, throwIfAborted, type MayHave, type QuantizeOptionsFor, type ResolvedQuantizeOptions, type SchemeOf } from '../quantize/options.js';
import { checkColumnMean, checkColumnNorm } from '../quantize/prepareColumn.js';
import type { DeterministicLatticeMatrix, LatticeQuantizedMatrix, QuantizedMatrixFor, UniversalLatticeMatrix } from '../quantize/quantizedMatrix.js';
import { latticeRates } from '../quantize/rates.js';
import { scaleGrid } from '../quantize/scaleGrid.js';
import type { DeterministicLatticeScheme, Scheme, SchemeName } from '../quantize/schemes.js';
import { codeBufferByteLength, createBuffer, createBufferWithData, readBuffer, recordReadback, STORAGE_USAGE, submitAndConfirm } from './buffers.js';
import { withValidation } from './errorScopes.js';
import { gpuQuantizeUniversalUnlocked, type GpuQuantizeSource } from './gpuQuantizeUniversal.js';
import { dispatchF16ToF32 } from './kernels/activationIo.js';
import { checkColumnPrepStatus, dispatchColumnPrep, QUANTIZE_STATUS_BYTES, QuantizeStatusWord } from './kernels/columnPrep.js';
import { dispatchHadamard } from './kernels/hadamard.js';
import { dispatchLatticeEncode } from './kernels/latticeEncode.js';
import { deterministicNormBound, gpuLatticeMetadata, latticeCodeBits, latticeMatrixFields, ORDINARY_DECODE_RATIO, scaleIndexBits, type GpuDeterministicMatrix } from './latticeOperand.js';
import { checkMatrixInput, gpuMatrixInputSnapshot, isCpuMatrix, type GpuMatrixInput } from './matrixInput.js';
import { GpuScratch } from './scratch.js';
import { uploadCheckedUniversalMatrix, type GpuUniversalQuantizedMatrix } from './universalOperand.js';
import { bindingCap, itemsPerBinding, scratchChunkBytes } from './workSplit.js';

export type { GpuMatrixInput } from './matrixInput.js';

/*
 * The lattice quantizers on the GPU: column prep → randomized Hadamard rotation → lattice encoding,
 * producing exactly the codes (and escapes or scale indices), norms and means of the CPU `quantize()`.
 * Universal schemes go through src/gpu/gpuQuantizeUniversal.ts, deterministic ones through the encoder
 * below (gains within float rounding). A matrix encoded here decodes on the CPU after `read()`, and a
 * CPU-quantized matrix goes to the GPU kernels through `uploadLatticeMatrix`.
 */

/** Options of {@link gpuQuantizeLattice}: those of `quantize()` plus a binding-size cap for tests. */
export interface GpuQuantizeOptions extends QuantizeOptions {
  /** Largest storage binding to use, in bytes (default: the device's limit); smaller values force column splitting. */
  readonly maxBindingBytes?: number;
}

/** A lattice matrix quantized on (or uploaded to) the GPU. */
export type GpuLatticeQuantized = GpuUniversalQuantizedMatrix | GpuLatticeQuantizedMatrix;

/** The GPU form of a CPU matrix type (a scalar matrix has none: the GPU quantizer refuses its schemes). */
type GpuFormOf<Q> = Q extends UniversalLatticeMatrix ? GpuUniversalQuantizedMatrix : Q extends DeterministicLatticeMatrix ? GpuLatticeQuantizedMatrix : never;

/**
 * What `GpuEngine.quantize` (and `gpuQuantizeLattice`) resolves to for the scheme `S`, as
 * `QuantizedMatrixFor` for the CPU's `quantize`: a universal scheme gives a
 * `GpuUniversalQuantizedMatrix`, a deterministic one a `GpuLatticeQuantizedMatrix`, a scheme known
 * only as `SchemeName` or `Scheme` their union (`GpuLatticeQuantized`), a scalar baseline `never`
 * (such a call does not compile, and is refused at run time: those run on the CPU).
 *
 * @example
 * const w = await engine.quantize(x, { scheme: 'e8-4bit' }); // GpuUniversalQuantizedMatrix
 * const points = GpuE8PointMatrix.repack(device, w, 'W');     // type-checks without narrowing
 */
export type GpuQuantizedFor<S extends SchemeName | Scheme> = GpuFormOf<QuantizedMatrixFor<S>>;

/**
 * What the GPU quantizer refuses for the scheme `S` beyond `QuantizeOptionsFor<S>`: a scheme that is
 * no lattice scheme (int, nvfp4: every run refuses them, they run on the CPU) gets `scheme: never`, so
 * the call does not compile. A scheme known only as `SchemeName` or `Scheme` is still checked at run time.
 */
export type GpuSchemeRefused<S> = [MayHave<SchemeOf<S>, 'kind', 'lattice'>] extends [never] ? { readonly scheme: never } : unknown;

/**
 * A lattice-quantized matrix held in GPU buffers it owns (layout in src/gpu/latticeOperand.ts), the
 * GPU form of `LatticeQuantizedMatrix`. Scale indices are stored with `scaleIndexBits` ≥ 1 bits (a
 * single-scale grid stores zeros). `destroy()` frees the buffers.
 */
export class GpuLatticeQuantizedMatrix implements GpuDeterministicMatrix {
  readonly kind = 'lattice' as const;
  readonly mode = 'deterministic' as const;
  readonly rows: number;
  readonly cols: number;
  readonly length: number;
  readonly keptLength: number;
  readonly seed: number;
  readonly rotate: boolean;
  readonly scheme: DeterministicLatticeScheme;
  readonly unit: number;
  readonly multiples: Int32Array;
  readonly blocksPerColumn: number;
  readonly codeBits: number;
  readonly scaleIndexBits: number;
  readonly maxColumnNorm: number;
  /** Set on upload (`deterministicDecodeRatio`); absent for a matrix the GPU quantized from data (`GpuDeterministicMatrix`). */
  readonly decodeNormRatio?: number;
  private destroyed = false;

  /** Whether `destroy()` was called: its buffers can no longer be recorded or read. */
  get isDestroyed(): boolean {
    return this.destroyed;
  }

  constructor(
    readonly device: GPUDevice,
    metadata: Omit<GpuDeterministicMatrix, 'kind' | 'mode' | 'codes' | 'scaleIndices' | 'norms' | 'gains' | 'means'>,
    readonly codes: GPUBuffer,
    readonly scaleIndices: GPUBuffer,
    readonly norms: GPUBuffer,
    readonly means: GPUBuffer | null,
    readonly gains: GPUBuffer | null,
    /** Blocks that overloaded at every scale and were clipped. */
    readonly clippedBlocks: number,
  ) {
    this.rows = metadata.rows;
    this.cols = metadata.cols;
    this.length = metadata.length;
    this.keptLength = metadata.keptLength;
    this.seed = metadata.seed;
    this.rotate = metadata.rotate;
    this.scheme = metadata.scheme;
    this.unit = metadata.unit;
    this.multiples = metadata.multiples.slice(); // its own copy: the kernels read it on every call
    this.blocksPerColumn = metadata.blocksPerColumn;
    this.codeBits = metadata.codeBits;
    this.scaleIndexBits = metadata.scaleIndexBits;
    this.maxColumnNorm = metadata.maxColumnNorm;
    if (metadata.decodeNormRatio !== undefined) this.decodeNormRatio = metadata.decodeNormRatio;
  }

  /**
   * Reads the buffers back into the object the CPU `quantize()` returns (same codes, scale indices,
   * norms, means, rates; gains as computed on the GPU).
   *
   * @example
   * const q = await gpuMatrix.read();
   * const c = matmulAT(q, quantize(b, { scheme: 'd3-q6', seed: q.seed })); // decodes on the CPU
   */
  async read(): Promise<DeterministicLatticeMatrix> {
    check(!this.destroyed, 'GpuLatticeQuantizedMatrix.read: the matrix was destroyed');
    const { device, cols, blocksPerColumn } = this;
    const codeLayout = packedLayout(this.codeBits, blocksPerColumn);
    const indexLayout = packedLayout(this.scaleIndexBits, blocksPerColumn);
    const readWords = async (buffer: GPUBuffer, count: number) => new Uint32Array(await readBuffer(device, buffer, 4 * count));
    const readFloats = async (buffer: GPUBuffer | null) =>
      buffer === null ? null : new Float32Array(await readBuffer(device, buffer, 4 * cols));
    const [codeWords, indexWords, norms, means, gains] = await withValidation(device, 'GpuLatticeQuantizedMatrix.read', () =>
      Promise.all([
        readWords(this.codes, codeLayout.wordsPerColumn * cols),
        readWords(this.scaleIndices, indexLayout.wordsPerColumn * cols),
        readFloats(this.norms),
        readFloats(this.means),
        readFloats(this.gains),
      ]),
    );
    const codes = unpackField({ words: codeWords, bits: this.codeBits, ...codeLayout }, blocksPerColumn, cols);
    const scaleIndices = Uint8Array.from(
      unpackField({ words: indexWords, bits: this.scaleIndexBits, ...indexLayout }, blocksPerColumn, cols),
    );
    const indexCounts = new Float64Array(this.multiples.length);
    for (const index of scaleIndices) indexCounts[index] = (indexCounts[index] as number) + 1;

    const { bitsStored, bitsEntropy } = latticeRates({
      rows: this.rows,
      cols,
      blocksPerColumn,
      codeBits: this.codeBits,
      codeCount: new VoronoiCode(schemeLattice(this.scheme), this.scheme.q).size,
      indexBits: scaleGrid(this.scheme.overload).indexBits,
      indexCounts,
      sideFloatsPerColumn: 1 + (means ? 1 : 0) + (gains ? 1 : 0),
    });

    return {
      kind: 'lattice',
      mode: 'deterministic',
      scheme: this.scheme,
      rows: this.rows,
      cols,
      length: this.length,
      keptLength: this.keptLength,
      seed: this.seed,
      rotate: this.rotate,
      means,
      norms: norms as Float32Array,
      gains,
      unit: this.unit,
      multiples: this.multiples.slice(),
      blocksPerColumn,
      codes,
      scaleIndices,
      clippedBlocks: this.clippedBlocks,
      bitsStored,
      bitsEntropy,
    };
  }

  /** Frees the GPU buffers (idempotent). */
  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    for (const [, buffer] of latticeMatrixFields(this)) buffer?.destroy();
  }
}

/**
 * A host matrix as f32, copied when the call is made: it is uploaded only when the call's turn on the
 * device comes, and a caller may reuse its array for the next call meanwhile (f16/bf16 input is widened
 * into a new array anyway).
 */
function hostSnapshot(given: MatrixInput): Matrix {
  const matrix = toFloat32Matrix(given, 'matrix');
  return matrix === given ? { rows: matrix.rows, cols: matrix.cols, data: matrix.data.slice() } : matrix;
}

/**
 * Quantizes the columns of a matrix with a lattice scheme on the GPU: the same result as the CPU
 * `quantize(matrix, options)` — codes and escapes (universal) or scale indices (deterministic), norms,
 * means and rates bit for bit; deterministic gains within 1e−5 relative — kept in GPU buffers. The
 * input is a CPU `Matrix` or an f32 matrix already on the GPU. Work is split over columns to respect the
 * device's binding and dispatch limits. Options are resolved once, by the CPU quantizer's rules
 * (`resolveQuantizeOptions`), so both quantizers accept and refuse the same options.
 *
 * Like the CPU it throws a `LatticeMatmulError` for a non-finite entry or a norm or mean beyond the
 * f32 range; these are found on the GPU, so the promise settles after the work has run.
 *
 * Exactness caveat: a device that flushes f32 subnormals (WGSL allows it) can give a different mean
 * for a column whose mean is below 2^−126 times its largest entry (never the codes or norms).
 *
 * @example
 * const { device } = await requestNodeGpuDevice();
 * const qa = await gpuQuantizeLattice(device, a, { scheme: 'e8-q16', seed: 7, nonce: 1 });
 * const cpuForm = await qa.read(); // equals quantize(a, { scheme: 'e8-q16', seed: 7, nonce: 1 })
 * qa.destroy();
 */
export async function gpuQuantizeLattice<S extends SchemeName | Scheme>(
  device: GPUDevice,
  given: MatrixInput | GpuMatrixInput,
  options: GpuQuantizeOptions & QuantizeOptionsFor<S> & GpuSchemeRefused<S>,
): Promise<GpuQuantizedFor<S>>;
export async function gpuQuantizeLattice(device: GPUDevice, given: MatrixInput | GpuMatrixInput, options: GpuQuantizeOptions): Promise<GpuLatticeQuantized> {
  const host = isCpuMatrix(given as Matrix | GpuMatrixInput) ? hostSnapshot(given as MatrixInput) : null;
  const resolved = resolveQuantizeOptions(options, 'GPU quantize options', ['maxBindingBytes']);
  const { scheme } = resolved;
  check(scheme.kind === 'lattice', () => `the GPU quantizer encodes lattice schemes; ${describeSchemeChoice((options as { scheme?: unknown }).scheme, scheme)} (a scalar baseline) runs on the CPU with quantize()`);
  const maxBindingBytes = (options as GpuQuantizeOptions).maxBindingBytes;
  check(maxBindingBytes === undefined || (Number.isInteger(maxBindingBytes) && maxBindingBytes >= 256), () => `maxBindingBytes must be an integer ≥ 256, got ${describeValue(maxBindingBytes)}`);
  if (host !== null) checkMatrixInput(host, 'matrix');
  // A GPU input's descriptor copied too: the section reads it only when its turn comes.
  const input: Matrix | GpuMatrixInput = host ?? gpuMatrixInputSnapshot(given as GpuMatrixInput, 'matrix');
  const length = rotatedLength(input.rows, resolved);
  checkTimeSharing(input.rows, length, resolved);
  throwIfAborted(resolved.signal, 'GPU quantize');
  check(length <= 2 ** 30, () => `n = ${input.rows} pads to ${length} entries, more than this library supports (2^30)`);
  // What the section built, destroyed if the section still fails (its error scope catches what no
  // submission check saw): a refused call must not leave the result's buffers allocated.
  let built: GpuLatticeQuantized | null = null;
  const section = withValidation(device, 'gpuQuantizeLattice', async () => {
    // Aborted while it waited for the device: encode nothing.
    throwIfAborted(resolved.signal, 'GPU quantize');
    const gpuInput = isCpuMatrix(input) ? null : (input as GpuMatrixInput);
    let staged: GPUBuffer | null = null;
    try {
      if (gpuInput === null) {
        staged = createBufferWithData(device, 'quantize input', (input as Matrix).data, STORAGE_USAGE);
      } else if ((gpuInput.format ?? 'f32') === 'f16') {
        // f16 activations or weights in the app's buffer: widened exactly to f32 before column prep.
        staged = createBuffer(device, 'quantize input (f32)', 4 * input.rows * input.cols, STORAGE_USAGE);
        const scratch = new GpuScratch(device);
        try {
          const encoder = device.createCommandEncoder({ label: 'quantize input f16 → f32' });
          dispatchF16ToF32(device, encoder, scratch, {
            input: gpuInput.buffer,
            inputOffset: gpuInput.offset ?? 0,
            output: staged,
            count: input.rows * input.cols,
            ...(maxBindingBytes === undefined ? {} : { maxBindingBytes }),
          });
          // Confirmed: a rejected widening (a destroyed input, say) would leave zeros to quantize.
          await submitAndConfirm(device, encoder, 'quantize input f16 → f32');
        } finally {
          scratch.destroy();
        }
      }
      const source: GpuQuantizeSource = staged
        ? { buffer: staged, offset: 0, rows: input.rows, cols: input.cols, length, widenedFromF16: gpuInput !== null }
        : { buffer: (gpuInput as GpuMatrixInput).buffer, offset: (gpuInput as GpuMatrixInput).offset ?? 0, rows: input.rows, cols: input.cols, length };
      built = scheme.mode === 'universal'
        ? await gpuQuantizeUniversalUnlocked(device, source, resolved, maxBindingBytes)
        : await quantizeDeterministicUnlocked(device, source, resolved, maxBindingBytes);
      return built;
    } finally {
      staged?.destroy();
    }
  }).catch((error: unknown) => {
    (built as GpuLatticeQuantized | null)?.destroy();
    throw error;
  });
  // An abort settles the call at once, even while it waits behind other work on the device; what the
  // section still builds is then freed.
  const result = await unlessAborted(section, resolved.signal, 'GPU quantize', (late) => late.destroy());
  try {
    resolved.onProgress?.(input.cols, input.cols);
  } catch (error) {
    result.destroy();
    throw error;
  }
  return result;
}

/** The deterministic encoder (inside the caller's section). */
async function quantizeDeterministicUnlocked(
  device: GPUDevice,
  source: GpuQuantizeSource,
  options: ResolvedQuantizeOptions,
  maxBindingBytes: number | undefined,
): Promise<GpuLatticeQuantizedMatrix> {
  const scheme = options.scheme as DeterministicLatticeScheme;
  const { seed, center, rotate, gain, keepFraction } = options;
  const { rows: n, cols, length } = source;
  const lattice = schemeLattice(scheme);
  const d = lattice.dimension;
  const grid = scaleGrid(scheme.overload);
  const keptLength = keptRotatedLength(length, d, keepFraction);
  const blocksPerColumn = Math.ceil(keptLength / d);
  const metadata = {
    rows: n,
    cols,
    length,
    keptLength,
    seed,
    rotate,
    scheme,
    unit: grid.unit,
    multiples: grid.multiples,
    blocksPerColumn,
    codeBits: latticeCodeBits(scheme),
    scaleIndexBits: scaleIndexBits(grid.multiples.length),
  };
  const codeLayout = packedLayout(metadata.codeBits, blocksPerColumn);
  const indexLayout = packedLayout(metadata.scaleIndexBits, blocksPerColumn);

  const owned: GPUBuffer[] = [];
  const make = (label: string, bytes: number): GPUBuffer => {
    const buffer = createBuffer(device, label, bytes, STORAGE_USAGE);
    owned.push(buffer);
    return buffer;
  };
  const scratch = new GpuScratch(device);
  try {
    const codes = make(`lattice codes (${scheme.lattice} q = ${scheme.q}, ${cols} columns)`, codeBufferByteLength(4 * codeLayout.wordsPerColumn * cols));
    const scaleIndices = make(`lattice scale indices (${cols} columns)`, 4 * indexLayout.wordsPerColumn * cols);
    const norms = make(`lattice norms (${cols} columns)`, 4 * cols);
    const means = center ? make(`lattice means (${cols} columns)`, 4 * cols) : null;
    const gains = gain !== 'none' ? make(`lattice gains (${cols} columns)`, 4 * cols) : null;
    const status = scratch.buffer('quantize status', QUANTIZE_STATUS_BYTES, STORAGE_USAGE);

    const alignment = device.limits.minStorageBufferOffsetAlignment;
    const maxBinding = bindingCap(device, maxBindingBytes, 'GPU quantize');
    const chunkCols = Math.min(
      cols,
      itemsPerBinding(4 * length, scratchChunkBytes(length, maxBinding, alignment), alignment),
      itemsPerBinding(4 * n, maxBinding, alignment),
      itemsPerBinding(4 * codeLayout.wordsPerColumn, maxBinding, alignment),
      itemsPerBinding(4 * indexLayout.wordsPerColumn, maxBinding, alignment),
    );
    const prepared = scratch.buffer('quantize prepared columns', 4 * n * chunkCols, STORAGE_USAGE);
    const rotated = rotate ? scratch.buffer('quantize rotated columns', 4 * length * chunkCols, STORAGE_USAGE) : prepared;
    const exponents = scratch.buffer('quantize column exponents', 4 * chunkCols, STORAGE_USAGE);

    const encoder = device.createCommandEncoder({ label: 'gpuQuantizeLattice' });
    encoder.clearBuffer(codes);
    encoder.clearBuffer(scaleIndices);
    encoder.clearBuffer(status);
    for (let j0 = 0; j0 < cols; j0 += chunkCols) {
      const count = Math.min(chunkCols, cols - j0);
      dispatchColumnPrep(device, encoder, scratch, {
        input: source.buffer,
        inputOffset: source.offset + 4 * n * j0,
        prepared,
        exponents,
        means,
        meansOffset: 4 * j0,
        status,
        rows: n,
        cols: count,
        center,
        columnOffset: j0,
        maxBindingBytes: maxBinding,
      });
      if (rotate) {
        dispatchHadamard(device, encoder, scratch, { input: prepared, output: rotated, rows: n, length, cols: count, seed, maxBindingBytes: maxBinding });
      }
      dispatchLatticeEncode(device, encoder, scratch, {
        rotated,
        exponents,
        codes,
        codesOffset: 4 * codeLayout.wordsPerColumn * j0,
        scaleIndices,
        scaleIndicesOffset: 4 * indexLayout.wordsPerColumn * j0,
        indexBits: metadata.scaleIndexBits,
        norms,
        normsOffset: 4 * j0,
        gains,
        gainsOffset: 4 * j0,
        gain,
        status,
        lattice,
        q: scheme.q,
        grid,
        length,
        keptLength,
        cols: count,
        columnOffset: j0,
        maxBindingBytes: maxBinding,
      });
    }
    // The status is read in the same submission, so a rejected submission cannot pass as "no problem".
    const readback = recordReadback(device, encoder, status, QUANTIZE_STATUS_BYTES);
    device.queue.submit([encoder.finish()]);
    let words: Uint32Array;
    try {
      words = new Uint32Array(await readback.result());
    } finally {
      readback.destroy();
    }
    throwIfAborted(options.signal, 'GPU quantize');
    checkColumnPrepStatus(words, source.widenedFromF16 === true);
    const readFloats = async (buffer: GPUBuffer | null): Promise<Float32Array | null> => (buffer === null ? null : new Float32Array(await readBuffer(device, buffer, 4 * cols)));
    const [normValues, gainValues, meanValues] = [await readFloats(norms), await readFloats(gains), await readFloats(means)];
    (normValues as Float32Array).forEach((norm, j) => {
      checkColumnNorm(norm, j, meanValues === null ? null : (meanValues[j] as number));
      if (meanValues !== null) checkColumnMean(meanValues[j] as number, j);
    });
    // ν·|γ| alone is no bound: a column decodes a few per cent beyond it (1.03 measured), and products
    // just inside 2^126 by it were accepted where the CPU, on the decoded norms, refused them.
    const maxColumnNorm = deterministicNormBound(normValues as Float32Array, gainValues, meanValues, n, ORDINARY_DECODE_RATIO);
    return new GpuLatticeQuantizedMatrix(device, { ...metadata, maxColumnNorm }, codes, scaleIndices, norms, means, gains, words[QuantizeStatusWord.clippedBlocks] as number);
  } catch (error) {
    for (const buffer of owned) buffer.destroy();
    throw error;
  } finally {
    scratch.destroy();
  }
}

/**
 * Puts a CPU-quantized lattice matrix on the GPU (codes and scale indices packed as
 * src/format/packing.ts lays them out), for the GPU product and decoding kernels.
 *
 * @example
 * const gpuB = uploadLatticeMatrix(device, quantize(b, { scheme: 'd3-q6', seed: 7 }));
 */
export function uploadLatticeMatrix(device: GPUDevice, q: UniversalLatticeMatrix): GpuUniversalQuantizedMatrix;
export function uploadLatticeMatrix(device: GPUDevice, q: DeterministicLatticeMatrix): GpuLatticeQuantizedMatrix;
export function uploadLatticeMatrix(device: GPUDevice, q: LatticeQuantizedMatrix): GpuLatticeQuantized;
export function uploadLatticeMatrix(device: GPUDevice, q: LatticeQuantizedMatrix): GpuLatticeQuantized {
  checkQuantizedMatrix(q, 'uploadLatticeMatrix q');
  check(q.kind === 'lattice', 'uploadLatticeMatrix needs a lattice-quantized matrix (scalar schemes run on the CPU)');
  if (q.mode === 'universal') return uploadCheckedUniversalMatrix(device, q);
  const metadata = gpuLatticeMetadata(q);
  const { blocksPerColumn, cols } = q;
  check(
    q.codes.length === blocksPerColumn * cols && q.scaleIndices.length === blocksPerColumn * cols,
    () => `uploadLatticeMatrix: expected ${blocksPerColumn * cols} codes and scale indices`,
  );
  check(q.norms.length === cols, () => `uploadLatticeMatrix: expected ${cols} norms, got ${describeValue(q.norms.length)}`);
  const codes = packField(q.codes, metadata.codeBits, blocksPerColumn, cols).words;
  const scaleIndices = packField(q.scaleIndices, metadata.scaleIndexBits, blocksPerColumn, cols).words;
  const owned: GPUBuffer[] = [];
  const upload = (label: string, data: ArrayBufferView, byteLength = data.byteLength): GPUBuffer => {
    const buffer = createBufferWithData(device, label, data, STORAGE_USAGE, byteLength);
    owned.push(buffer);
    return buffer;
  };
  try {
    const perColumn = (what: string, data: Float32Array | null): GPUBuffer | null => {
      if (data === null) return null;
      check(data.length === cols, () => `uploadLatticeMatrix: expected ${cols} ${what}, got ${describeValue(data.length)}`);
      return upload(`lattice ${what} (${cols} columns)`, data);
    };
    return new GpuLatticeQuantizedMatrix(
      device,
      metadata,
      upload(`lattice codes (${q.scheme.lattice} q = ${q.scheme.q}, ${cols} columns)`, codes, codeBufferByteLength(codes.byteLength)),
      upload(`lattice scale indices (${cols} columns)`, scaleIndices),
      upload(`lattice norms (${cols} columns)`, q.norms),
      perColumn('means', q.means),
      perColumn('gains', q.gains),
      q.clippedBlocks,
    );
  } catch (error) {
    for (const buffer of owned) buffer.destroy();
    throw error;
  }
}

