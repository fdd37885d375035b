import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LatticeMatmulError } from '../../src/errors.js';
import { createBuffer, readBufferExclusive, STORAGE_USAGE } from '../../src/gpu/buffers.js';
import { GpuEngine } from '../../src/gpu/engine.js';
import { GpuDeviceLostError } from '../../src/gpu/errorScopes.js';
import { dispatchEpilogue, dispatchF16ToF32 } from '../../src/gpu/kernels/activationIo.js';
import { GpuE8PointMatrix } from '../../src/gpu/kernels/e8PointGemvI8.js';
import { GpuE8ResidueMatrix } from '../../src/gpu/kernels/e8ResidueGemvI8.js';
import { dispatchHadamard } from '../../src/gpu/kernels/hadamard.js';
import { dispatchUniversalDequantize, universalDequantize } from '../../src/gpu/kernels/universalDequantize.js';
import { dispatchWeightOnlyGemv, uploadWeightOnly } from '../../src/gpu/kernels/weightOnlyGemv.js';
import { MatrixColumnSide, type GpuDeterministicMatrix } from '../../src/gpu/latticeOperand.js';
import { prepareCommands } from '../../src/gpu/prepared.js';
import { QuantizedLinear } from '../../src/gpu/quantizedLinear.js';
import { GpuScratch } from '../../src/gpu/scratch.js';
import { uploadUniversalMatrix, type GpuUniversalMatrix } from '../../src/gpu/universalOperand.js';
import { dequantize } from '../../src/product/dequantize.js';
import { matmulAT } from '../../src/product/matmulAT.js';
import { quantize } from '../../src/quantize/quantize.js';
import type { UniversalLatticeMatrix } from '../../src/quantize/quantizedMatrix.js';
import { gaussianMatrix } from '../../src/rotation/random.js';
import { quantizeWeights } from '../../src/weightonly/index.js';
import { contextOnTestDevice, gpuUnavailableReason, testDevice } from './gpuTestDevice.js';

/*
 * The GPU entry points with hostile arguments (a probe of ≈ 2 700 calls found these): each is refused
 * with a LatticeMatmulError (or GpuDeviceLostError) before anything reaches WebGPU, where it used to
 * abort Node (a non-string label reaches Dawn's native code), raise an uncaptured validation error at
 * the caller's submit, or throw a TypeError. Every case runs with an uncapturederror listener that
 * must stay silent.
 */

const noGpu = await gpuUnavailableReason();

describe.skipIf(noGpu !== undefined)('GPU entry points refuse hostile arguments before WebGPU sees them', () => {
  const suite = contextOnTestDevice();
  let device: GPUDevice;
  let engine: GpuEngine;
  const uncaptured: string[] = [];
  const universal = (seed: number): GpuUniversalMatrix => engine.upload(quantize(gaussianMatrix(64, 8, seed), { scheme: 'e8-4bit', seed: 1, nonce: seed })) as GpuUniversalMatrix;
  const deterministic = (): GpuDeterministicMatrix => engine.upload(quantize(gaussianMatrix(64, 8, 3), { scheme: 'e8-q16-deterministic', seed: 1 })) as GpuDeterministicMatrix;
  const expectRefused = (call: () => unknown, message: RegExp): void => {
    expect(call).toThrow(LatticeMatmulError);
    expect(call).toThrow(message);
  };

  beforeAll(() => {
    device = suite.context.device;
    device.addEventListener('uncapturederror', (event) => uncaptured.push((event as GPUUncapturedErrorEvent).error.message));
    engine = GpuEngine.create(suite.context);
  });
  afterAll(() => engine?.destroy());

  it.each([
    ['a symbol', Symbol('label')],
    ['an object without a prototype', Object.create(null) as unknown],
    ['a number', 7],
  ])('a label that is %s is refused (Dawn aborted the process on the first two)', (_, label) => {
    const w = deterministic();
    expectRefused(() => MatrixColumnSide.create(device, w, label as never), /^MatrixColumnSide\.create: label must be a string, got /);
    expectRefused(() => GpuE8ResidueMatrix.repack(device, w, label as never), /^GpuE8ResidueMatrix\.repack: label must be a string/);
    expectRefused(() => GpuE8PointMatrix.repack(device, universal(1), label as never), /^GpuE8PointMatrix\.repack: label must be a string/);
    expectRefused(() => prepareCommands(device, label as never, () => undefined), /^prepareCommands: label must be a string/);
    const weights = quantizeWeights(gaussianMatrix(16, 64, 4), { method: 'rtn', rate: 3 });
    expectRefused(() => uploadWeightOnly(device, weights, { label: label as never }), /^uploadWeightOnly: label must be a string/);
    expectRefused(() => QuantizedLinear.create(device, w, { label: label as never }), /^QuantizedLinear: label must be a string/);
  });

  it('repacks and column sides refuse a destroyed matrix (they returned, and the submit failed uncaptured)', () => {
    const u = engine.upload(quantize(gaussianMatrix(64, 8, 5), { scheme: 'e8-4bit', seed: 1, nonce: 5 }));
    u.destroy();
    expectRefused(() => GpuE8PointMatrix.repack(device, u as GpuUniversalMatrix, 'p'), /^GpuE8PointMatrix\.repack: W was destroyed$/);
    const d = engine.upload(quantize(gaussianMatrix(64, 8, 6), { scheme: 'e8-q16-deterministic', seed: 1 }));
    d.destroy();
    expectRefused(() => GpuE8ResidueMatrix.repack(device, d as GpuDeterministicMatrix, 'r'), /^GpuE8ResidueMatrix\.repack: W was destroyed$/);
    expectRefused(() => MatrixColumnSide.create(device, d as GpuDeterministicMatrix, 's'), /^MatrixColumnSide: W was destroyed$/);
  });

  it("a group keeps the layers it was given, whatever the caller's array becomes, and refuses holes", async () => {
    const q = QuantizedLinear.create(device, universal(11));
    const k = QuantizedLinear.create(device, universal(12));
    const holey = [q, k, q];
    delete holey[1]; // [q, <hole>, q]: every() skips the hole
    expectRefused(() => QuantizedLinear.group(holey), /^QuantizedLinear\.group needs a non-empty array of QuantizedLinear layers$/);
    const layers = [q, k];
    const group = QuantizedLinear.group(layers);
    layers[1] = 'changed' as never;
    layers.push(q);
    const x = createBuffer(device, 'x', 4 * 64, STORAGE_USAGE);
    const ys = [createBuffer(device, 'y0', 4 * 8, STORAGE_USAGE), createBuffer(device, 'y1', 4 * 8, STORAGE_USAGE)];
    const encoder = device.createCommandEncoder();
    group.record(encoder, x, ys); // two outputs for the two layers grouped, as before the array changed
    device.queue.submit([encoder.finish()]);
    await device.queue.onSubmittedWorkDone();
    expect(group.layers).toEqual([q, k]);
    group.destroy();
    q.destroy();
    k.destroy();
  });

  it('dispatches refuse an output that is one of their inputs (WebGPU refused the dispatch at submit)', () => {
    const buffer = createBuffer(device, 'shared', 4096, STORAGE_USAGE);
    const other = createBuffer(device, 'other', 1024, STORAGE_USAGE);
    const encoder = device.createCommandEncoder();
    const scratch = new GpuScratch(device);
    expectRefused(() => dispatchF16ToF32(device, encoder, scratch, { input: buffer, output: buffer, count: 16, outputOffset: 512 }), /^f16 → f32 output is the input buffer/);
    expectRefused(
      () => dispatchEpilogue(device, encoder, scratch, { input: other, bias: buffer, rows: 4, columns: 1, output: buffer, outputOffset: 512, format: 'f32' }),
      /^epilogue output is the bias buffer/,
    );
    const u = universal(21);
    expectRefused(() => dispatchUniversalDequantize(device, encoder, scratch, { m: u, output: buffer, normalizeColumns: buffer }), /^universal dequantize: output is normalizeColumns buffer/);
    const weights = uploadWeightOnly(device, quantizeWeights(gaussianMatrix(16, 64, 4), { method: 'rtn', rate: 3 }), { layout: 'packed' });
    const { codes, codeLayout, columnScales, rowScales, n, outputs, rowVec4s } = weights;
    expectRefused(
      () => dispatchWeightOnlyGemv(device, encoder, scratch, { codes, codeLayout: codeLayout ?? undefined, columnScales, rowScales, n, outputs, rowVec4s, x: buffer, y: buffer }),
      /^weight-only gemv: y is x buffer/,
    );
    encoder.finish();
    scratch.destroy();
    weights.destroy();
  });

  it('a dispatch given an open compute pass says so, and how to record into one (prepareCommands)', () => {
    const encoder = device.createCommandEncoder();
    const pass = encoder.beginComputePass();
    const scratch = new GpuScratch(device);
    expectRefused(() => dispatchHadamard(device, pass as never, scratch, {} as never), /^dispatchHadamard: encoder must be a GPUCommandEncoder, got a compute pass; to record into an open pass, prepare the call once, prepareCommands\(device, label, /);
    pass.end();
    encoder.finish();
    scratch.destroy();
  });

  it.each([
    ['device', (e: GPUCommandEncoder, s: GpuScratch) => [null, e, s, {}], /^expected a GPUDevice, got null$/],
    ['encoder', (_: GPUCommandEncoder, s: GpuScratch) => ['device', {}, s, {}], /^dispatchHadamard: encoder must be a GPUCommandEncoder, got an object$/],
    ['scratch', (e: GPUCommandEncoder) => ['device', e, {}, {}], /^dispatchHadamard: scratch must be a GpuScratch/],
    ['arguments', (e: GPUCommandEncoder, s: GpuScratch) => ['device', e, s, null], /^dispatchHadamard: the arguments must be an object, got null$/],
  ])('a dispatch refuses a bad %s (TypeErrors before)', (_, argsOf, message) => {
    const encoder = device.createCommandEncoder();
    const scratch = new GpuScratch(device);
    const [d, e, s, a] = argsOf(encoder, scratch);
    expectRefused(() => dispatchHadamard((d === 'device' ? device : d) as never, e as never, s as never, a as never), message as RegExp);
    encoder.finish();
    scratch.destroy();
  });

  it('engine.matvec refuses an x that is not f32 by naming x; a destroyed engine refuses productKernel', async () => {
    const u = universal(31);
    await expect(engine.matvec(u, new Float64Array(64) as never)).rejects.toThrow(/^x must be a Float32Array, a Matrix or a GPU matrix input \{ buffer, rows, cols \}, got a Float64Array of 512 bytes$/);
    const spare = GpuEngine.create(suite.context);
    spare.destroy();
    expectRefused(() => spare.productKernel(u, universal(32)), /^this GpuEngine was destroyed$/);
  });

  it('recordMatmulAT, readBufferExclusive, prepareCommands and QuantizedLinear refuse what they cannot use (TypeErrors or uncaptured errors before)', async () => {
    const a = universal(51);
    const b = universal(52);
    const c = createBuffer(device, 'c', 4 * 64, STORAGE_USAGE);
    expectRefused(() => engine.recordMatmulAT({} as never, new GpuScratch(device), a, b, c), /^GpuEngine\.recordMatmulAT: encoder must be a GPUCommandEncoder/);
    expectRefused(() => engine.recordMatmulAT(device.createCommandEncoder(), {} as never, a, b, c), /^GpuEngine\.recordMatmulAT: scratch must be a GpuScratch/);
    // A scratch of another device: WebGPU dropped the whole submission (a validation error only an error scope shows).
    const other = await testDevice({ label: 'other device' });
    try {
      expectRefused(() => engine.recordMatmulAT(device.createCommandEncoder(), new GpuScratch(other.device), a, b, c), /^GpuEngine\.recordMatmulAT: scratch was made for another GPUDevice/);
    } finally {
      other.device.destroy();
    }
    await expect(readBufferExclusive(device, null as never, 4)).rejects.toThrow(/^readBufferExclusive: buffer must be a GPUBuffer, got null$/);
    expectRefused(() => prepareCommands(device, 'finishing', (encoder) => void encoder.finish()), /^prepared commands cannot capture/);
    // A hand-built matrix whose codes lack STORAGE usage.
    const codes = device.createBuffer({ label: 'copy-only codes', size: a.codes.size, usage: GPUBufferUsage.COPY_SRC });
    const handBuilt = { ...a, kind: a.kind, mode: a.mode, scheme: a.scheme, nonce: a.nonce, codes } as GpuUniversalMatrix;
    expectRefused(() => QuantizedLinear.create(device, handBuilt), /^QuantizedLinear weight codes: buffer "copy-only codes" lacks STORAGE usage/);
  });

  it("a hand-built matrix's scheme and nonce are checked where every kernel choice reads them (TypeErrors before)", async () => {
    const a = universal(61);
    const b = universal(62);
    const handBuilt = (changes: object): GpuUniversalMatrix => ({ ...a, kind: a.kind, mode: a.mode, scheme: a.scheme, nonce: a.nonce, ...changes }) as GpuUniversalMatrix;
    expectRefused(() => engine.productKernel(handBuilt({ scheme: null }), b), /^A\.scheme: scheme must be a scheme name/);
    expectRefused(() => engine.productKernel(handBuilt({ nonce: 'x' }), b), /^A\.nonce must be a non-negative bigint, got "x"$/);
    expectRefused(() => QuantizedLinear.create(device, handBuilt({ scheme: 'd3-q6-deterministic' })), /^QuantizedLinear weight\.scheme must be a universal lattice scheme, got a deterministic one$/);
  });

  it('upload and the CPU functions refuse a matrix that is already on the GPU, saying so', () => {
    const onGpu = universal(71) as never;
    expectRefused(() => engine.upload(onGpu), /^uploadLatticeMatrix q is already on the GPU \(its codes are a GPUBuffer\)/);
    expectRefused(() => matmulAT(onGpu, onGpu), /^A is already on the GPU \(its codes are a GPUBuffer\): this takes a CPU-quantized matrix/);
    expectRefused(() => dequantize(onGpu), /^dequantize q is already on the GPU/);
  });

  it('uploadUniversalMatrix checks the CPU matrix as uploadLatticeMatrix does (a codes array one short went up with its last code 0)', () => {
    const q = quantize(gaussianMatrix(64, 3, 72), { scheme: 'd3-q6', seed: 1, nonce: 72, center: true }) as UniversalLatticeMatrix;
    const tampered: [Partial<UniversalLatticeMatrix>, RegExp][] = [
      [{ codes: q.codes.slice(0, -1) }, /^uploadUniversalMatrix q\.codes has 65 entries, expected 66/],
      [{ keptLength: q.length + 1 }, /^uploadUniversalMatrix q\.keptLength must be an integer in \[1, 64\], got 65/],
      [{ rows: 0 }, /^uploadUniversalMatrix q\.rows must be a positive integer, got 0/],
    ];
    for (const [fields, message] of tampered) expectRefused(() => uploadUniversalMatrix(device, { ...q, ...fields }), message);
  });

  it("a hand-built universal matrix with a buffer one word short of its layout is refused by name (D3 q = 6, 64 × 3, centred)", async () => {
    const gpu = engine.upload(quantize(gaussianMatrix(64, 3, 73), { scheme: 'd3-q6', seed: 1, nonce: 73, center: true })) as GpuUniversalMatrix;
    // 22 blocks per column: 8-bit codes (216 < 2^8) fill 6 words, escape bits (and starts) 1 word, per column;
    // escape ids 8 bits each (at least one word); the table holds D3's 12 roots (3 words each) and a 4-word record per non-root escape; side: norm and mean per column.
    const needed = {
      codes: 4 * 6 * 3,
      escapeBits: 4 * 3,
      escapeStarts: 4 * 3,
      escapeIds: 4 * Math.max(1, Math.ceil(gpu.escapeCount / 4)),
      escapeTable: 4 * (12 * 3 + 4 * gpu.nonRootCount),
      side: 4 * 2 * 3,
    };
    const fields = (({ kind, mode, rows, cols, length, keptLength, seed, rotate, scheme, nonce, ditherKeys, blocksPerColumn, escapeCount, nonRootCount, hasMeans, maxColumnNorm }) =>
      ({ kind, mode, rows, cols, length, keptLength, seed, rotate, scheme, nonce, ditherKeys, blocksPerColumn, escapeCount, nonRootCount, hasMeans, maxColumnNorm }))(gpu);
    const buffers = { codes: gpu.codes, escapeBits: gpu.escapeBits, escapeStarts: gpu.escapeStarts, escapeIds: gpu.escapeIds, escapeTable: gpu.escapeTable, side: gpu.side };
    for (const [field, bytes] of Object.entries(needed)) {
      const short = device.createBuffer({ label: `short ${field}`, size: bytes - 4, usage: STORAGE_USAGE });
      try {
        const handBuilt = { ...fields, ...buffers, [field]: short } as GpuUniversalMatrix;
        await expect(universalDequantize(device, handBuilt)).rejects.toThrow(new RegExp(`^quantized matrix\\.${field} needs ${bytes} bytes, but its buffer has ${bytes - 4}$`));
      } finally {
        short.destroy();
      }
    }
    // The buffers as uploaded hold their layout.
    expect((await universalDequantize(device, { ...fields, ...buffers } as GpuUniversalMatrix)).rows).toBe(64);
  });

  it('a hand-built deterministic matrix whose fields disagree with its scheme, or with a buffer one word short of its layout, is refused by name (E8 q = 16, 64 × 8)', () => {
    const m = deterministic();
    const cols = 8;
    // 8 blocks of 8 per column: 32-bit codes fill 8 words; scale indices of b bits 8·b bits (each column on a fresh word); norms, gains and means one f32 per column.
    const needed = { codes: 4 * 8 * cols, scaleIndices: 4 * Math.ceil((8 * m.scaleIndexBits) / 32) * cols, norms: 4 * cols, gains: 4 * cols, means: 4 * cols };
    const made: GPUBuffer[] = [];
    const buffer = (bytes: number): GPUBuffer => {
      const b = device.createBuffer({ label: 'hand-built', size: bytes, usage: STORAGE_USAGE | GPUBufferUsage.COPY_SRC });
      made.push(b);
      return b;
    };
    const whole = { ...m, gains: buffer(needed.gains), means: buffer(needed.means) };
    const refused = (changes: object, message: RegExp): void => expectRefused(() => MatrixColumnSide.create(device, { ...whole, ...changes } as GpuDeterministicMatrix, 'side'), message);
    try {
      refused({ keptLength: 65, blocksPerColumn: 9 }, /^MatrixColumnSide: W\.keptLength \(65\) exceeds length \(64\)$/);
      refused({ codeBits: 31 }, /^MatrixColumnSide: W\.codeBits is 31, but E8 q = 16 codes take 32 bits$/);
      refused({ multiples: new Int32Array(17).fill(1), scaleIndexBits: 5 }, /^MatrixColumnSide: W\.multiples must be an Int32Array of 1…16 scale multiples$/);
      refused({ multiples: Int32Array.of(1, 2, 3, 4, 5), scaleIndexBits: 2 }, /^MatrixColumnSide: W\.scaleIndexBits is 2; 5 multiples need 1…8 bits covering them$/);
      for (const [field, bytes] of Object.entries(needed)) {
        refused({ [field]: buffer(bytes - 4) }, new RegExp(`^MatrixColumnSide: W\\.${field} needs ${bytes} bytes, but its buffer has ${bytes - 4}$`));
      }
      MatrixColumnSide.create(device, whole, 'side').destroy();
    } finally {
      for (const b of made) b.destroy();
    }
  });

  it('a destroyed layer or group, a group with a destroyed member and layers of two activation formats are refused by name', async () => {
    // Float32Array biases: the layers own their bias buffers, which destroy() frees.
    const q = QuantizedLinear.create(device, universal(21), { bias: new Float32Array(8), label: 'q' });
    const k = QuantizedLinear.create(device, universal(22), { bias: new Float32Array(8), label: 'k' });
    const halves = QuantizedLinear.create(device, universal(23), { activations: 'f16', label: 'h' });
    const x = createBuffer(device, 'x', 4 * 64, STORAGE_USAGE);
    const ys = [createBuffer(device, 'y0', 4 * 8, STORAGE_USAGE), createBuffer(device, 'y1', 4 * 8, STORAGE_USAGE)];
    const encoder = device.createCommandEncoder();
    try {
      // An f16 layer in a group that reads x as f32 would take the halves of f32 words for activations.
      expectRefused(() => QuantizedLinear.group([q, halves]), /^QuantizedLinear\.group: layer 1 \("h"\) takes f16 activations, layer 0 \("q"\) f32$/);
      expectRefused(() => q.record(encoder, null as never, ys[0] as GPUBuffer), /^x must be a GPUBuffer or \{ buffer, offset \}, got null$/);
      const group = QuantizedLinear.group([q, k], { label: 'qk' });
      expectRefused(() => group.record(encoder, x, ys[0] as never), /^qk: ys needs one output per layer \(2\), got /);
      k.destroy();
      expectRefused(() => group.record(encoder, x, ys), /^qk: k was destroyed$/);
      expectRefused(() => k.record(encoder, x, ys[1] as GPUBuffer), /^k: this QuantizedLinear was destroyed$/);
      await expect(k.check()).rejects.toThrow(/^k: this QuantizedLinear was destroyed$/);
      expectRefused(() => QuantizedLinear.group([q, k]), /^k: this QuantizedLinear was destroyed$/);
      group.destroy();
      expectRefused(() => group.record(encoder, x, ys), /^qk: this group was destroyed$/);
      q.record(encoder, x, ys[0] as GPUBuffer); // the live member still records
      device.queue.submit([encoder.finish()]);
      await device.queue.onSubmittedWorkDone();
    } finally {
      for (const layer of [q, k, halves]) layer.destroy();
      for (const buffer of [x, ...ys]) buffer.destroy();
    }
  });

  it('engine.productKernel refuses operands whose product would be wrong: rows, rotation, kept coordinates, centring', () => {
    const upload = (rows: number, options: object) => engine.upload(quantize(gaussianMatrix(rows, 4, rows + 1), { scheme: 'e8-4bit', seed: 1, nonce: 31, ...options }));
    const a = upload(64, { nonce: 30 });
    const [rows, unrotated, halfKept, centred, alike] = [upload(32, {}), upload(64, { rotate: false }), upload(64, { keepFraction: 0.5 }), upload(64, { center: true }), upload(64, {})];
    try {
      expectRefused(() => engine.productKernel(a, rows), /^A and B must have the same number of rows \(got 64 and 32\)$/);
      expectRefused(() => engine.productKernel(a, unrotated), /^A and B must both be rotated or both not$/);
      expectRefused(() => engine.productKernel(a, halfKept), /^A and B keep different numbers of rotated coordinates \(64 and 32\)$/);
      expectRefused(() => engine.productKernel(a, centred), /^A and B must both be centred or both not/);
      expect(() => engine.productKernel(a, alike)).not.toThrow();
    } finally {
      for (const m of [a, rows, unrotated, halfKept, centred, alike]) m.destroy();
    }
  });

  it('no case reached WebGPU as an uncaptured error', () => {
    expect(uncaptured).toEqual([]);
  });
});

describe.skipIf(noGpu !== undefined)('after the device is lost', () => {
  it('repacks, column sides, dispatches and QuantizedLinear.group throw GpuDeviceLostError (they returned silently)', async () => {
    const lost = await testDevice();
    const engine = GpuEngine.create(lost);
    const u = engine.upload(quantize(gaussianMatrix(64, 8, 41), { scheme: 'e8-4bit', seed: 1, nonce: 41 })) as GpuUniversalMatrix;
    const d = engine.upload(quantize(gaussianMatrix(64, 8, 42), { scheme: 'e8-q16-deterministic', seed: 1 })) as GpuDeterministicMatrix;
    const scratch = new GpuScratch(lost.device);
    const layer = QuantizedLinear.create(lost.device, u);
    lost.device.destroy();
    await lost.device.lost;
    // A group of layers on a lost device (it was made, and failed only at its first record).
    expect(() => QuantizedLinear.group([layer])).toThrow(GpuDeviceLostError);
    expect(() => GpuE8PointMatrix.repack(lost.device, u, 'p')).toThrow(GpuDeviceLostError);
    expect(() => GpuE8ResidueMatrix.repack(lost.device, d, 'r')).toThrow(GpuDeviceLostError);
    expect(() => MatrixColumnSide.create(lost.device, d, 's')).toThrow(GpuDeviceLostError);
    expect(() => dispatchHadamard(lost.device, {} as never, scratch, {} as never)).toThrow(GpuDeviceLostError);
  });

  it("a layer's and a group's record throw GpuDeviceLostError naming the record, also for commands prepared before the loss", async () => {
    const lost = await testDevice();
    const engine = GpuEngine.create(lost);
    const w = engine.upload(quantize(gaussianMatrix(64, 8, 43), { scheme: 'd3-q6', seed: 1, nonce: 43 }));
    const layer = QuantizedLinear.create(lost.device, w);
    const group = QuantizedLinear.group([layer]);
    const x = createBuffer(lost.device, 'x', 4 * 64, STORAGE_USAGE);
    const y = createBuffer(lost.device, 'y', 4 * 8, STORAGE_USAGE);
    // Prepared before the loss: the same x and y later replay what was prepared.
    const encoder = lost.device.createCommandEncoder();
    layer.record(encoder, x, y);
    group.record(encoder, x, [y]);
    lost.device.queue.submit([encoder.finish()]);
    await lost.device.queue.onSubmittedWorkDone();
    expect(layer.preparedCount).toBe(1);
    lost.device.destroy();
    await lost.device.lost;
    for (const record of [() => layer.record(lost.device.createCommandEncoder(), x, y), () => group.record(lost.device.createCommandEncoder(), x, [y])]) {
      expect(record).toThrow(GpuDeviceLostError);
      expect(record).toThrow(/record/);
    }
  });
});
