import { checkRecordingTarget } from './kernels/dispatchChecks.js';
import { check, checkOneOf, describeValue } from '../errors.js';
import { checkMatrix, largestColumnNorm, vectorOrMatrix, type Matrix, type MatrixInput } from '../matrix.js';
import type { QuantizeOptions, QuantizeOptionsFor } from '../quantize/options.js';
import { checkOptionsObject } from '../quantize/strictOptions.js';
import { DITHER_GRID, latticeSpec } from '../quantize/latticeSpec.js';
import { checkProductRange } from '../quantize/prepareColumn.js';
import type { DeterministicLatticeMatrix, LatticeQuantizedMatrix, UniversalLatticeMatrix } from '../quantize/quantizedMatrix.js';
import { BufferUsage, checkBufferUsable, createBufferWithData, STORAGE_USAGE, submitAndConfirm } from './buffers.js';
import { gpuContextOf, type GpuContext, type GpuFeatures, type GpuLimits } from './device.js';
import { throwIfDeviceLost, withValidation } from './errorScopes.js';
import { gpuQuantizeLattice, uploadLatticeMatrix, type GpuLatticeQuantized, type GpuLatticeQuantizedMatrix, type GpuQuantizedFor, type GpuSchemeRefused } from './gpuQuantize.js';
import type { Scheme, SchemeName } from '../quantize/schemes.js';
import { dispatchE8Matmul, DOT_PATHS, dotPathFor, type DotPath } from './kernels/e8Matmul.js';
import { dispatchLatticeDequantize, latticeDequantize } from './kernels/latticeDequantize.js';
import { columnExponents, scaledColumns, unscaleColumns } from './kernels/gemvCall.js';
import { dispatchLatticeGemv } from './kernels/latticeGemv.js';
import { checkMatmulF32A, dispatchMatmulF32 } from './kernels/matmulF32.js';
import { dispatchProductEpilogue } from './kernels/productEpilogue.js';
import { dispatchTableMatmul, tableMatmulLayout } from './kernels/tableMatmul.js';
import { dispatchUniversalDequantize, universalDequantize } from './kernels/universalDequantize.js';
import { dispatchUniversalGemv } from './kernels/universalGemv.js';
import { checkGpuLatticeMatrix, checkMatrixUsable, checkOutputNotRead, checkProductOperands, gemvDecodeRatio, int8SumScale, isCentred, latticeMatrixBuffers, type GpuDeterministicMatrix, type GpuLatticeMatrix } from './latticeOperand.js';
import { checkMatrixInput, gpuMatrixInputSnapshot, isCpuMatrix, type GpuMatrixInput } from './matrixInput.js';
import { dispatchF16ToF32 } from './kernels/activationIo.js';
import { checkBufferRange } from './bufferRange.js';
import { runAndRead } from './runAndRead.js';
import { GpuScratch } from './scratch.js';
import type { TableLayoutKind } from './tableLayout.js';
import type { GpuUniversalMatrix, GpuUniversalQuantizedMatrix } from './universalOperand.js';
import { checkPairMatmulA, dispatchPairMatmul, pairCommonScale, pairProductKeepsDither } from './kernels/pairMatmul.js';
import { pairRadixBits } from '../quantize/universalPairs.js';
import { copyPairExponents, dispatchUniversalPairs, pairFormBytes, pairUnits, universalPairScalesBytes } from './kernels/universalPairs.js';

/** Options of {@link GpuEngine.create}. */
export interface GpuEngineOptions {
  /** Force a D3 table layout for deterministic products (default: 'leaders', src/gpu/tableLayout.ts says why). */
  readonly tableLayout?: TableLayoutKind;
  /**
   * Force how the products form integer inner products (the E8 product, the D3 table product in its
   * leaders layout, and the universal pair product): `'packed'` (8-bit dot products, the default where
   * WGSL has them; refused where it does not) or `'plain'`. It also sets `universalProduct`'s default.
   */
  readonly dotPath?: DotPath;
  /**
   * How a product of two universal matrices is formed: `'i8'`, from each operand's pair form with
   * packed 8-bit dot products (src/quantize/universalPairs.ts; the default when the engine's `dotPath`
   * is `'packed'`, itself the default where WGSL has them), or `'decode'`, both operands decoded to f32
   * and multiplied by the f32 kernel (the default otherwise, so `dotPath: 'plain'` makes it `'decode'`).
   * With `'i8'`, operands whose units multiply below 2^-100 (β near 0 with long columns), or whose pair
   * form could shift a column by more than 6 bits, which would undo the dither (small β, or columns
   * longer than 2.1·10⁵–10⁶ for the presets: `pairProductKeepsDither`), still take the decode path;
   * `productKernel(a, b)` says which runs.
   */
  readonly universalProduct?: UniversalProductPath;
  /**
   * How a product of two deterministic matrices that a codes kernel takes (D3 q = 6: `d3-table`; E8 or
   * Z q ≤ 16: `e8-dot`) is formed: `'codes'` (the default), from their codes, each pair of blocks an
   * integer inner product scaled by k_a·k_b (two 32-bit integer multiplies); or `'decode'`, both
   * operands decoded to f32 and multiplied by the f32 kernel (`decode-f32`). Where a GPU runs 32-bit
   * integer multiplies at a quarter of the rate, as AMD's RDNA does, the codes kernels may trail the
   * f32 matmul (bench/README.md, "The products in RDNA3 machine code"); time both on yours
   * (`npm run bench` has rows of each). Centred operands keep the codes kernels, which carry the
   * means (the decoded product's epilogue does not); `productKernel(a, b)` says which runs.
   */
  readonly deterministicProduct?: DeterministicProductPath;
}

const UNIVERSAL_PRODUCT_PATHS = ['i8', 'decode'] as const;

/**
 * How `matmulAT` multiplies two universal matrices (GpuEngineOptions.universalProduct).
 *
 * @useDeclaredType
 */
export type UniversalProductPath = (typeof UNIVERSAL_PRODUCT_PATHS)[number];

const DETERMINISTIC_PRODUCT_PATHS = ['codes', 'decode'] as const;

/**
 * How `matmulAT` multiplies two deterministic matrices (GpuEngineOptions.deterministicProduct).
 *
 * @useDeclaredType
 */
export type DeterministicProductPath = (typeof DETERMINISTIC_PRODUCT_PATHS)[number];

const ENGINE_OPTION_KEYS = ['tableLayout', 'dotPath', 'universalProduct', 'deterministicProduct'] as const satisfies readonly (keyof GpuEngineOptions)[];

export type { GpuLatticeMatrix } from './latticeOperand.js';

/** Which kernel `matmulAT` runs for a pair of operands. */
export type ProductKernel = 'universal-i8' | 'universal-decode' | 'd3-table' | 'e8-dot' | 'decode-f32';

/**
 * The WebGPU engine: encodes matrices with the lattice quantizers on the GPU (the same codes as the
 * CPU `quantize`, bit for bit), and multiplies them from their codes.
 *
 * The device is the caller's — any `GPUDevice`, e.g. the one an app already renders or runs
 * onnxruntime-web with — and so are the buffers it is given: the engine allocates only per-call
 * scratch and the results it returns (each with `destroy()`); `engine.destroy()` just marks the engine
 * unusable: calls made before it complete, later ones are refused. Calls may overlap; they run one at
 * a time on the device (src/gpu/errorScopes.ts). A matrix or vector from the host is read when the call
 * is made (copied where the call waits for its turn), so its array may be reused at once; so is a GPU
 * input's descriptor `{ buffer, rows, cols, offset, format }` (its buffer's contents are read when the
 * call runs on the device: leave them until the call has settled).
 *
 * @example
 * const engine = GpuEngine.create(device);                  // your GPUDevice (or requestGpuDevice()'s context)
 * const qa = await engine.quantize(a, { scheme: 'e8-q16', seed: 7 });
 * const qb = await engine.quantize({ buffer: bBuffer, rows: n, cols: 64 }, { scheme: 'e8-q16', seed: 7 });
 * const c = await engine.matmulAT(qa, qb);                 // Matrix, ≈ aᵀb
 * qa.destroy(); qb.destroy();
 */
export class GpuEngine {
  readonly device: GPUDevice;
  /** The adapter, when the engine was created from a `GpuContext` (null for a bare device). */
  readonly adapter: GPUAdapter | null;
  readonly features: GpuFeatures;
  readonly limits: GpuLimits;
  /** The D3 inner-product table layout of deterministic products: 'leaders' unless forced ('full' needs ≥ 48 KB of workgroup memory, 'triangle' 32 KB). */
  readonly tableLayout: TableLayoutKind;
  /** How the deterministic products form integer inner products (E8 blocks; D3 leaders in the leaders layout). */
  readonly dotPath: DotPath;
  /** How products of two universal matrices are formed ('i8': from their pair forms; 'decode': decoded to f32). */
  readonly universalProduct: UniversalProductPath;
  /** How products of two deterministic matrices are formed ('codes': the d3-table and e8-dot kernels; 'decode': decoded to f32). */
  readonly deterministicProduct: DeterministicProductPath;
  private destroyed = false;

  private constructor(context: GpuContext, options: GpuEngineOptions) {
    this.device = context.device;
    this.adapter = context.adapter;
    this.features = context.features;
    this.limits = context.limits;
    this.tableLayout = tableMatmulLayout(context.device, options.tableLayout).kind;
    // Each option checked as given (null too: only undefined means the default).
    const dotPath = options.dotPath === undefined ? dotPathFor(context.features) : options.dotPath;
    checkOneOf(dotPath, DOT_PATHS, 'GpuEngine.create options: dotPath');
    check(
      dotPath === 'plain' || context.features.packed4x8IntegerDotProduct,
      "dotPath 'packed' needs the packed_4x8_integer_dot_product WGSL feature, which this adapter lacks",
    );
    this.dotPath = dotPath;
    // Coupled to the dotPath (GpuEngineOptions.universalProduct says so): a forced 'plain' means 'decode'.
    const universalProduct = options.universalProduct === undefined ? (dotPath === 'packed' ? 'i8' : 'decode') : options.universalProduct;
    checkOneOf(universalProduct, UNIVERSAL_PRODUCT_PATHS, 'GpuEngine.create options: universalProduct');
    this.universalProduct = universalProduct;
    const deterministicProduct = options.deterministicProduct === undefined ? 'codes' : options.deterministicProduct;
    checkOneOf(deterministicProduct, DETERMINISTIC_PRODUCT_PATHS, 'GpuEngine.create options: deterministicProduct');
    this.deterministicProduct = deterministicProduct;
  }

  /**
   * An engine on `device` — the application's own `GPUDevice`, whose features and limits it reads — or
   * on the context `requestGpuDevice()` / `requestNodeGpuDevice()` returns.
   */
  static create(device: GPUDevice | GpuContext, options: GpuEngineOptions = {}): GpuEngine {
    checkOptionsObject(options, ENGINE_OPTION_KEYS, 'GpuEngine.create options');
    const context = gpuContextOf(device);
    throwIfDeviceLost(context.device, 'GpuEngine.create');
    return new GpuEngine(context, options);
  }

  /**
   * Quantizes a matrix given as a `Matrix` (uploaded) or as the caller's own GPU buffer. Lattice
   * schemes only: the scalar baselines run on the CPU (`quantize`), and a call with one typed as such
   * ('int4-g32', an `IntScheme`) does not compile.
   */
  async quantize<S extends SchemeName | Scheme>(input: MatrixInput | GpuMatrixInput, options: QuantizeOptionsFor<S> & GpuSchemeRefused<S>): Promise<GpuQuantizedFor<S>>;
  async quantize(input: MatrixInput | GpuMatrixInput, options: QuantizeOptions): Promise<GpuLatticeQuantized> {
    this.checkAlive();
    return gpuQuantizeLattice(this.device, input, options);
  }

  /** Copies a CPU-quantized lattice matrix to the GPU. */
  upload(q: UniversalLatticeMatrix): GpuUniversalQuantizedMatrix;
  upload(q: DeterministicLatticeMatrix): GpuLatticeQuantizedMatrix;
  upload(q: LatticeQuantizedMatrix): GpuLatticeQuantized;
  upload(q: LatticeQuantizedMatrix): GpuLatticeQuantized {
    this.checkAlive();
    throwIfDeviceLost(this.device, 'GpuEngine.upload');
    return uploadLatticeMatrix(this.device, q);
  }

  /** The kernel `matmulAT(a, b)` uses for these operands (refused, as there, when they cannot be multiplied). */
  productKernel(a: GpuLatticeMatrix, b: GpuLatticeMatrix): ProductKernel {
    this.checkAlive();
    return this.kernelFor(a, b);
  }

  /** `productKernel` without the engine's own check: a call accepted before `destroy()` still runs. */
  private kernelFor(a: GpuLatticeMatrix, b: GpuLatticeMatrix): ProductKernel {
    checkProductOperands(a, b);
    checkMatrixUsable(a, this.device, 'A', 'engine');
    checkMatrixUsable(b, this.device, 'B', 'engine');
    if (a.mode === 'universal' && b.mode === 'universal' && a !== b) {
      check(
        a.nonce !== b.nonce,
        'A and B were quantized with the same nonce: their quantization errors are not independent. For a Gram matrix ÂᵀÂ pass one ' +
          'GPU matrix twice (two uploads of one quantized matrix are two objects: upload it once); otherwise let quantize draw the nonces.',
      );
    }
    const kernel = productKernelOf(a, b, this.universalProduct, this.deterministicProduct);
    // The decoded products' epilogue takes means from a universal matrix's side buffer only.
    check(
      !isCentred(a) || (kernel !== 'decode-f32' && (a.mode === 'universal') === (b.mode === 'universal')),
      () =>
        `centred operands are multiplied on the GPU when both are universal, or both deterministic with one D3 q = 6 or E8/Z q ≤ 16 ` +
        `scheme (the d3-table and e8-dot kernels); not A: ${schemeText(a)} with B: ${schemeText(b)}: multiply them with the CPU matmulAT`,
    );
    return kernel;
  }

  /**
   * ÂᵀB̂ read back as a Matrix (a.cols × b.cols). It takes no options: a third argument (the CPU
   * `matmulAT`'s `{ shrink }`) is refused rather than ignored.
   */
  async matmulAT(a: GpuLatticeMatrix, b: GpuLatticeMatrix, ...extra: readonly never[]): Promise<Matrix> {
    check(
      extra.length === 0,
      () =>
        `GpuEngine.matmulAT takes two arguments (A, B), got ${2 + extra.length}: it has no options ` +
        `(shrink is an option of the CPU matmulAT, from the package root, on CPU-quantized matrices)`,
    );
    this.checkAlive();
    const kernel = this.kernelFor(a, b); // checks the operands
    const bytes = 4 * a.cols * b.cols;
    const data = await runAndRead(this.device, `GpuEngine.matmulAT (${kernel})`, bytes, (run) => {
      const output = run.storage('GpuEngine.matmulAT C', bytes);
      this.recordProduct(run.encoder, run.scratch, a, b, output, 0);
      return output;
    });
    return { rows: a.cols, cols: b.cols, data: new Float32Array(data) };
  }

  /**
   * ÂᵀB̂ written into the caller's buffer (a.cols × b.cols column-major f32 from `offset`), for
   * applications that keep the result on the GPU. Resolves when the GPU has finished.
   */
  async matmulATInto(a: GpuLatticeMatrix, b: GpuLatticeMatrix, output: GPUBuffer, offset = 0): Promise<void> {
    this.checkAlive();
    const kernel = this.kernelFor(a, b);
    await withValidation(this.device, `GpuEngine.matmulAT (${kernel})`, async () => {
      const scratch = new GpuScratch(this.device);
      try {
        const encoder = this.device.createCommandEncoder({ label: `GpuEngine.matmulAT (${kernel})` });
        this.recordProduct(encoder, scratch, a, b, output, offset);
        await submitAndConfirm(this.device, encoder, `GpuEngine.matmulAT (${kernel})`);
      } finally {
        scratch.destroy();
      }
    });
  }

  /**
   * Records ÂᵀB̂ into the caller's command encoder (for apps that batch their own GPU work, and for
   * timing). Buffers it needs live in `scratch`: destroy it after the submission has finished.
   */
  recordMatmulAT(encoder: GPUCommandEncoder, scratch: GpuScratch, a: GpuLatticeMatrix, b: GpuLatticeMatrix, output: GPUBuffer, offset = 0): void {
    this.checkAlive();
    this.recordProduct(encoder, scratch, a, b, output, offset);
  }

  private recordProduct(encoder: GPUCommandEncoder, scratch: GpuScratch, a: GpuLatticeMatrix, b: GpuLatticeMatrix, output: GPUBuffer, offset: number): void {
    // WebGPU records nothing on a lost device and says nothing: C would stay silently stale.
    throwIfDeviceLost(this.device, 'GpuEngine.recordMatmulAT');
    checkRecordingTarget(this.device, encoder, scratch, 'GpuEngine.recordMatmulAT');
    const kernel = this.kernelFor(a, b); // checks the operands
    checkProductRange(a.maxColumnNorm, b.maxColumnNorm);
    // Before anything is recorded: a refused C leaves the caller's encoder as it was.
    checkOutputNotRead(output, [...latticeMatrixBuffers(a, 'A'), ...latticeMatrixBuffers(b, 'B')], 'matmulAT output');
    checkBufferRange(output, offset, 4 * a.cols * b.cols, 'matmulAT output');
    if (kernel === 'd3-table') {
      dispatchTableMatmul(this.device, encoder, scratch, { a: a as GpuDeterministicMatrix, b: b as GpuDeterministicMatrix, c: output, cOffset: offset, layout: this.tableLayout, dotPath: this.dotPath });
    } else if (kernel === 'e8-dot') {
      dispatchE8Matmul(this.device, encoder, scratch, { a: a as GpuDeterministicMatrix, b: b as GpuDeterministicMatrix, c: output, cOffset: offset, dotPath: this.dotPath });
    } else if (kernel === 'universal-i8') {
      this.recordPairProduct(encoder, scratch, a as GpuUniversalMatrix, b as GpuUniversalMatrix, output, offset);
    } else {
      this.recordDecodedProduct(encoder, scratch, a, b, output, offset); // 'universal-decode' and 'decode-f32'
    }
  }

  /**
   * Makes both operands' pair forms (src/quantize/universalPairs.ts), multiplies them with packed 8-bit
   * dot products, then applies the columns' exponents, the means and, for one quantization multiplied
   * by itself, the exact Gram diagonal (the decoded product's epilogue).
   */
  private recordPairProduct(encoder: GPUCommandEncoder, scratch: GpuScratch, a: GpuUniversalMatrix, b: GpuUniversalMatrix, output: GPUBuffer, offset: number): void {
    const gram = a === b;
    const units = pairUnits(a.length);
    const radixBits = pairRadixBits(a.scheme.q, b.scheme.q);
    // Before anything is recorded (the pair passes come first): the product binds A's pair form whole.
    checkPairMatmulA(this.device, units, a.cols, 'matmulAT: A, in the pair form');
    const operand = (m: GpuUniversalMatrix, name: string) => {
      const pairs = scratch.buffer(`GpuEngine pairs ${name}`, pairFormBytes(m.length, m.cols), STORAGE_USAGE);
      const scales = scratch.buffer(`GpuEngine pair scales ${name}`, universalPairScalesBytes(m.cols), STORAGE_USAGE);
      const exponents = scratch.buffer(`GpuEngine exponents ${name}`, 4 * m.cols, STORAGE_USAGE);
      return { m, pairs, scales, exponents, radixBits, cols: m.cols };
    };
    // Every buffer is created (and a size beyond maxBufferSize refused) before the first pass is recorded.
    const pa = operand(a, 'A');
    const pb = gram ? pa : operand(b, 'B');
    for (const p of gram ? [pa] : [pa, pb]) {
      dispatchUniversalPairs(this.device, encoder, scratch, p);
      copyPairExponents(encoder, p.scales, p.exponents, p.cols);
    }
    // The product reads each column's factor from the start of its scales (the exponents follow them).
    const factorsOf = (p: typeof pa) => ({ pairs: p.pairs, factors: p.scales, cols: p.cols });
    dispatchPairMatmul(this.device, encoder, scratch, { a: factorsOf(pa), b: factorsOf(pb), units, commonScale: pairCommonScale(a, b), radixBits, keptLength: Math.min(a.keptLength, b.keptLength), c: output, cOffset: offset, dotPath: this.dotPath });
    dispatchProductEpilogue(this.device, encoder, scratch, {
      sideA: a.side,
      sideB: b.side,
      c: output,
      cOffset: offset,
      aCols: a.cols,
      bCols: b.cols,
      rows: a.rows,
      centred: isCentred(a),
      gram,
      exponents: { a: pa.exponents, b: pb.exponents },
    });
  }

  /**
   * Decodes both operands into the rotated domain (f32, each column scaled by a power of two), multiplies
   * them with the tiled f32 kernel, then applies the columns' exponents, the means and, for one
   * quantization multiplied by itself, the exact Gram diagonal.
   */
  private recordDecodedProduct(encoder: GPUCommandEncoder, scratch: GpuScratch, a: GpuLatticeMatrix, b: GpuLatticeMatrix, output: GPUBuffer, offset: number): void {
    const gram = a === b && a.mode === 'universal';
    const centred = isCentred(a);
    // Before anything is recorded (the decode passes come first): the product binds decoded A whole.
    checkMatmulF32A(this.device, a.length, a.cols, 'matmulAT: A, decoded');
    // Columns are decoded with their norms' mantissas and multiplied back by 2^(e_i + e_j) after the
    // f32 product: no product of in-range operands under- or overflows on the way (the CPU sums in f64).
    // Every buffer is created (and a size beyond maxBufferSize refused) before the first pass is recorded.
    const exponentsA = scratch.buffer('GpuEngine exponents A', 4 * a.cols, STORAGE_USAGE);
    const decodedA = scratch.buffer('GpuEngine decoded A', 4 * a.length * a.cols, STORAGE_USAGE);
    const exponentsB = gram ? exponentsA : scratch.buffer('GpuEngine exponents B', 4 * b.cols, STORAGE_USAGE);
    const decodedB = gram ? decodedA : scratch.buffer('GpuEngine decoded B', 4 * b.length * b.cols, STORAGE_USAGE);
    this.recordDecode(encoder, scratch, a, decodedA, exponentsA);
    if (!gram) this.recordDecode(encoder, scratch, b, decodedB, exponentsB);
    dispatchMatmulF32(this.device, encoder, scratch, { a: decodedA, b: decodedB, c: output, cOffset: offset, n: a.length, aCols: a.cols, bCols: b.cols });
    const bothUniversal = a.mode === 'universal' && b.mode === 'universal';
    dispatchProductEpilogue(this.device, encoder, scratch, {
      sideA: a.mode === 'universal' ? a.side : exponentsA,
      sideB: b.mode === 'universal' ? b.side : exponentsB,
      c: output,
      cOffset: offset,
      aCols: a.cols,
      bCols: b.cols,
      rows: a.rows,
      centred: bothUniversal && centred,
      gram,
      exponents: { a: exponentsA, b: exponentsB },
    });
  }

  private recordDecode(encoder: GPUCommandEncoder, scratch: GpuScratch, m: GpuLatticeMatrix, output: GPUBuffer, normalizeColumns: GPUBuffer): void {
    if (m.mode === 'universal') dispatchUniversalDequantize(this.device, encoder, scratch, { m, output, normalizeColumns });
    else dispatchLatticeDequantize(this.device, encoder, scratch, { m, output, normalizeColumns });
  }

  /**
   * Ŵᵀx for a quantized weight matrix W (n × cols) and a vector x of n entries, an n × k matrix of k
   * right-hand sides, or either already in a GPU buffer: the decode step of an LLM, reading the
   * packed codes once. The result (cols × k) is read back.
   *
   * x from the host is refused when ‖Ŵ‖·‖x‖ leaves the product range (as `matvecAT`), and goes up
   * scaled per column by a power of two (so x of f32 subnormals, which a GPU may flush, loses nothing,
   * and x beyond what the GPU GEMV itself takes, `gemvInputNormLimit`, is computed too); x already in a
   * GPU buffer cannot be checked or scaled on the host: keep its columns' norms within
   * `gemvInputNormLimit(w)` (about 2^111–2^116) and its entries 0 or at least 2^-80 in magnitude yourself.
   */
  async matvec(w: GpuLatticeMatrix, x: Float32Array | Matrix | GpuMatrixInput): Promise<Matrix> {
    this.checkAlive();
    checkMatvecOperands(w, x);
    checkMatrixUsable(w, this.device, 'W', 'engine');
    // x from the host goes up with each column scaled to a largest entry in [1, 2), and y comes back
    // scaled by 2^−e in float64, as matvecAT rotates x: exact (powers of two), so only an x that the GPU
    // would hold as f32 subnormals (which WGSL lets a GPU flush to zero, and which lose bits on the
    // way where it keeps them) gives other bits than x itself.
    const hostX = hostSnapshot(x);
    if (hostX !== null) checkMatrix(hostX, 'x');
    const given = hostX ?? gpuMatrixInputSnapshot(x as GpuMatrixInput, 'x');
    const rhs = given.cols;
    const bytes = 4 * w.cols * rhs;
    const exponents = hostX === null ? null : columnExponents(hostX);
    const data = new Float32Array(
      await runAndRead(this.device, 'GpuEngine.matvec', bytes, (run) => {
        const input = this.matvecInput(w, given, (buffer) => run.own(buffer), exponents);
        const output = run.storage('GpuEngine.matvec y', bytes);
        this.recordMatvec(run.encoder, run.scratch, w, input, output, 0);
        return output;
      }),
    );
    if (exponents !== null) unscaleColumns(data, w.cols, exponents);
    return { rows: w.cols, cols: rhs, data };
  }

  /**
   * Ŵᵀx written into the caller's buffer (cols × k column-major f32 from `offset`), so that a model's
   * activations can stay on the GPU. Resolves when the GPU has finished. Checks as `matvec`, but y
   * stays on the GPU, so a host x is not scaled: a column whose largest |entry| is below 2^-80 (held
   * as f32 subnormals on the way) is refused, naming `matvec`, and so is x beyond
   * `gemvInputNormLimit(w)`.
   */
  async matvecInto(w: GpuLatticeMatrix, x: Float32Array | Matrix | GpuMatrixInput, output: GPUBuffer, offset = 0): Promise<void> {
    this.checkAlive();
    checkMatvecOperands(w, x);
    checkMatrixUsable(w, this.device, 'W', 'engine');
    checkOutputNotRead(output, latticeMatrixBuffers(w, 'W'), 'matvecInto output');
    checkBufferUsable(output, BufferUsage.STORAGE, 'matvecInto output');
    const hostX = hostSnapshot(x);
    const given = hostX ?? gpuMatrixInputSnapshot(x as GpuMatrixInput, 'x');
    if (hostX !== null) {
      // y stays on the GPU, so x cannot go up scaled as in matvec: refuse what the GPU would hold as
      // f32 subnormals (its rotated entries and products reach 2^-39 of its largest entry).
      checkMatrix(hostX, 'x');
      const exponents = columnExponents(hostX);
      const tiny = exponents.findIndex((e) => e > -SMALLEST_GPU_X_EXPONENT);
      check(
        tiny < 0,
        () =>
          `matvecInto: the largest |entry| of x's column ${tiny} is below 2^${1 - (exponents[tiny] as number)}, under 2^${SMALLEST_GPU_X_EXPONENT}, ` +
          'which the GPU GEMV would hold as f32 subnormals (a GPU may flush them to zero); use matvec, which scales x and y exactly, or scale x up yourself',
      );
    }
    await withValidation(this.device, 'GpuEngine.matvec', async () => {
      const temporaries: GPUBuffer[] = [];
      const scratch = new GpuScratch(this.device);
      try {
        const encoder = this.device.createCommandEncoder({ label: 'GpuEngine.matvec' });
        this.recordMatvec(encoder, scratch, w, this.matvecInput(w, given, (buffer) => temporaries.push(buffer)), output, offset);
        await submitAndConfirm(this.device, encoder, 'GpuEngine.matvec');
      } finally {
        scratch.destroy();
        for (const buffer of temporaries) buffer.destroy();
      }
    });
  }

  /**
   * x as a GPU matrix input (uploaded, and the buffer handed to `temporary`, when it comes from the
   * CPU, where the caller checked it; its range against W checked first, since only the host copy's
   * norms are known).
   */
  private matvecInput(w: GpuLatticeMatrix, x: Float32Array | Matrix | GpuMatrixInput, temporary: (buffer: GPUBuffer) => void, exponents: Int32Array | null = null): GpuMatrixInput {
    const xMatrix = hostMatrix(x);
    if (xMatrix !== null) {
      const xNorm = largestColumnNorm(xMatrix);
      checkProductRange(w.maxColumnNorm, xNorm);
      const data = exponents === null ? xMatrix.data : scaledColumns(xMatrix, exponents);
      // The GEMV's limit is on what the GPU reads: x, or matvec's x scaled per column to a largest
      // entry in [1, 2) (a norm of at most 2·√n, far inside it), whose result matvec scales back.
      checkGemvInputNorm(w, exponents === null ? xNorm : largestColumnNorm({ ...xMatrix, data }));
      const buffer = createBufferWithData(this.device, 'GpuEngine.matvec x', data, STORAGE_USAGE);
      temporary(buffer);
      return { buffer, rows: xMatrix.rows, cols: xMatrix.cols };
    }
    return x as GpuMatrixInput;
  }

  private recordMatvec(encoder: GPUCommandEncoder, scratch: GpuScratch, w: GpuLatticeMatrix, given: GpuMatrixInput, output: GPUBuffer, offset: number): void {
    // Again in the call's section: W may have been destroyed while the call waited for the device.
    checkMatrixUsable(w, this.device, 'W', 'engine');
    checkMatrixInput(given, 'x');
    check(given.rows === w.rows, () => `x has ${given.rows} rows, but W has ${w.rows}`);
    // Before anything is recorded, named as the caller knows it (the kernels would name themselves).
    checkBufferRange(output, offset, 4 * w.cols * given.cols, 'matvec output');
    let input = given;
    if ((given.format ?? 'f32') === 'f16') {
      const widened = scratch.buffer('GpuEngine.matvec x (f32)', 4 * given.rows * given.cols, STORAGE_USAGE);
      dispatchF16ToF32(this.device, encoder, scratch, { input: given.buffer, inputOffset: given.offset ?? 0, output: widened, count: given.rows * given.cols });
      input = { buffer: widened, rows: given.rows, cols: given.cols };
    }
    const args = { x: input.buffer, xOffset: input.offset ?? 0, y: output, yOffset: offset, rhs: input.cols };
    if (w.mode === 'universal') dispatchUniversalGemv(this.device, encoder, scratch, { w, ...args });
    else dispatchLatticeGemv(this.device, encoder, scratch, { w, ...args });
  }

  /** The matrix reconstructed from its codes (decoded and rotated back on the GPU). */
  async dequantize(q: GpuLatticeMatrix): Promise<Matrix> {
    this.checkAlive();
    checkGpuLatticeMatrix(q, 'the matrix');
    checkMatrixUsable(q, this.device, 'the matrix', 'engine');
    return q.mode === 'universal' ? universalDequantize(this.device, q) : latticeDequantize(this.device, q);
  }

  /**
   * Marks the engine unusable: later calls are refused, calls already made complete. The device stays
   * the caller's; results keep their own `destroy()`.
   */
  destroy(): void {
    this.destroyed = true;
  }

  private checkAlive(): void {
    check(!this.destroyed, 'this GpuEngine was destroyed');
  }
}

/** The kernel for two checked operands (`GpuEngine.productKernel`). */
function productKernelOf(a: GpuLatticeMatrix, b: GpuLatticeMatrix, universalProduct: UniversalProductPath, deterministicProduct: DeterministicProductPath): ProductKernel {
  if (a.mode === 'universal' && b.mode === 'universal') {
    // The pair product's f32 scale is unit_a·unit_b; operands whose units are too small for it (β near
    // 0 with long columns), or whose pair form could shift a column by more than 6 bits (which undoes
    // the dither), go the decode path, whose decoded values carry the units.
    const pairs = universalProduct === 'i8' && pairProductKeepsDither(a, b);
    return pairs ? 'universal-i8' : 'universal-decode';
  }
  if (a.mode === 'universal' || b.mode === 'universal') return 'universal-decode';
  // Centred operands need a codes kernel's means (the decoded product's epilogue takes them from a
  // universal matrix's side buffer only).
  if (deterministicProduct === 'decode' && !isCentred(a) && !isCentred(b)) return 'decode-f32';
  const same = a.scheme.lattice === b.scheme.lattice && a.scheme.q === b.scheme.q;
  if (same && a.scheme.lattice === 'D3' && a.scheme.q === 6) return 'd3-table';
  if (same && (a.scheme.lattice === 'E8' || a.scheme.lattice === 'Z') && a.scheme.q <= 16) return 'e8-dot';
  return 'decode-f32';
}

/** A GPU matrix's scheme for a message: "universal E8 q = 12" or "deterministic D3 q = 4". */
function schemeText(m: GpuLatticeMatrix): string {
  return `${m.mode} ${m.scheme.lattice} q = ${m.scheme.q}`;
}

/**
 * log2 of the smallest largest |entry| of an x column that `matvecInto` takes from the host: the
 * GEMV's rotated entries reach 2^-15 of it (N ≤ 2^30) and f32 keeps 2^-24 of those, so above 2^-87
 * nothing that matters to the result is an f32 subnormal; 2^-80 leaves a margin.
 */
const SMALLEST_GPU_X_EXPONENT = -80;

/** x as a Matrix when it comes from the host (a Float32Array is one column), null for a GPU input. */
function hostMatrix(x: Float32Array | Matrix | GpuMatrixInput): Matrix | null {
  return x instanceof Float32Array || isCpuMatrix(x) ? vectorOrMatrix(x) : null;
}

/**
 * A host x copied when the call is made: the call uploads it only when its turn on the device comes,
 * and a caller that reuses one array for several un-awaited calls would otherwise have x checked and
 * scaled as it was, then uploaded as it is (NaN from another x's exponents). A GPU x's descriptor is
 * copied likewise (`gpuMatrixInputSnapshot`).
 */
function hostSnapshot(x: Float32Array | Matrix | GpuMatrixInput): Matrix | null {
  const matrix = hostMatrix(x);
  return matrix === null ? null : { rows: matrix.rows, cols: matrix.cols, data: matrix.data.slice() };
}

/** Refuses a W that is not a GPU lattice matrix and an x that is not an object (before `x.cols` is read). */
function checkMatvecOperands(w: GpuLatticeMatrix, x: Float32Array | Matrix | GpuMatrixInput): void {
  checkGpuLatticeMatrix(w, 'W');
  check(
    x instanceof Float32Array || (typeof x === 'object' && x !== null && !ArrayBuffer.isView(x) && Number.isInteger((x as { cols?: unknown }).cols)),
    () => `x must be a Float32Array, a Matrix or a GPU matrix input { buffer, rows, cols }, got ${describeValue(x)}`,
  );
}

/**
 * The largest ‖x‖ (per right-hand side) for which the GPU GEMV of `w` keeps every intermediate in f32.
 * Its kernels sum in the codes' own units and scale once at the end, so a sum can overflow although
 * the result (at most about ‖ŵ_j‖·‖x‖) is in range. With N = w.length and x̃ = R·x (‖x̃‖ = ‖x‖):
 *
 * - universal (shaders/universal_gemv_finished.wgsl): T = Σ c·x̃ with ŵ_j = ν_j·unit·(c + offsets),
 *   unit = β / (DITHER_GRID·√N), and the dither sum Σ offset·x̃: every partial sum is at most
 *   (‖ŵ_j‖ / (ν_j·unit) + max offset·√N)·‖x‖;
 * - deterministic (shaders/lattice_gemv.wgsl): Σ k·⟨P, x̃⟩ with ŵ_j = ν_j·γ_j·columnUnit·k·P,
 *   columnUnit = unit / (pointScale·√N): at most ‖ŵ_j‖ / (ν_j·|γ_j|·columnUnit)·‖x‖; the int8-input
 *   GEMVs (`QuantizedLinear`'s `int8Inputs`) sum `int8SumScale` times that (D3's 6·k, the E8 residue
 *   GEMV's 12·k), and the limit holds for them too;
 * - the rotation's butterflies, scaled in the last pass (shaders/hadamard.wgsl): at most √N·‖x‖.
 *
 * A column's decode is at most `gemvDecodeRatio(w)` times its norm (ν_j, ν_j·|γ_j|): twice
 * (ORDINARY_DECODE_RATIO: the code's relative error is below 1) for a matrix the GPU quantized from
 * data, and for an uploaded one (which may hold any codes a reader accepts) a bound that holds for
 * any codes, set on upload (`universalColumnBounds`, `deterministicDecodeRatio`: ≈ 3.5–8 for the
 * presets, 0.8–2 bits off the limit); the sums are kept below 2^127, half of f32's range, for their
 * rounding. Measured on lavapipe (d3-q6, e8-q16, e8-4bit and both deterministic presets, n = 64 and
 * 512, x along a decoded column, the worst direction found): the universal GEMVs' sums overflowed from
 * 2.1–2.4 bits above this limit, f32 or int8 inputs (Gaussian x: 3.8–6.2 bits); the deterministic
 * ones from 2.0 bits (the E8 residue GEMV, int8 inputs, GPU-quantized) to 7.2 (E8's f32 GEMV of an
 * upload, which the residue GEMV's factor 12 does not concern). `GpuEngine.matvecInto` checks it for x
 * on the host (`matvec` sends x up scaled to a largest entry in [1, 2), within it); for x already in a
 * GPU buffer (and every `QuantizedLinear` input) it is the caller's to keep.
 *
 * @example
 * const limit = gemvInputNormLimit(gpuW); // ≈ 2^112 for d3-q6 at n = 512 quantized on the GPU, 2^111 uploaded
 * if (activationNorm > limit) throw new Error('scale the activations down first');
 */
export function gemvInputNormLimit(w: GpuLatticeMatrix): number {
  const spec = latticeSpec(w.scheme.lattice);
  const root = Math.sqrt(w.length);
  const ratio = gemvDecodeRatio(w);
  const perNormOfX =
    w.mode === 'universal'
      ? root * ((ratio * DITHER_GRID) / w.scheme.beta + spec.dither.fields.reduce((most, field) => Math.max(most, 2 ** (field.bits - 1)), 0))
      : ((int8SumScale(w.scheme) ?? 1) * ratio * spec.pointScale * root) / w.unit;
  return 2 ** 127 / Math.max(root, perNormOfX);
}

/** Refuses a GEMV whose x as the GPU reads it (largest column norm `xNorm`) is beyond what its kernels take (`gemvInputNormLimit`). */
function checkGemvInputNorm(w: GpuLatticeMatrix, xNorm: number): void {
  const limit = gemvInputNormLimit(w);
  check(
    xNorm <= limit,
    () =>
      `x has a column of norm ${xNorm.toExponential(3)}, beyond the ${limit.toExponential(3)} the GPU GEMV of this W takes ` +
      "(it sums in the codes' units before scaling, and f32 would overflow); scale x down by a power of two (and the result up afterwards, in float64)",
  );
}
