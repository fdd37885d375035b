import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LatticeMatmulError } from '../../src/errors.js';
import { createBuffer, STORAGE_USAGE } from '../../src/gpu/buffers.js';
import type { GpuContext } from '../../src/gpu/device.js';
import { requestGpuDevice } from '../../src/gpu/device.js';
import { GpuEngine } from '../../src/gpu/engine.js';
import { GpuDeviceLostError, isDeviceLost } from '../../src/gpu/errorScopes.js';
import { gpuQuantizeLattice } from '../../src/gpu/gpuQuantize.js';
import { dispatchEpilogue, dispatchF16ToF32 } from '../../src/gpu/kernels/activationIo.js';
import { dispatchHadamard, dispatchHadamardInverse } from '../../src/gpu/kernels/hadamard.js';
import { dispatchInputsI8, dispatchRotatedInputsI8 } from '../../src/gpu/kernels/inputsI8.js';
import { dispatchUniversalDequantize } from '../../src/gpu/kernels/universalDequantize.js';
import { nodeGpu } from '../../src/gpu/nodeGpu.js';
import { QuantizedLinear, type LinearWeight } from '../../src/gpu/quantizedLinear.js';
import { GpuScratch } from '../../src/gpu/scratch.js';
import { uploadWeightOnly, weightOnlyGemm, weightOnlyGemv } from '../../src/gpu/kernels/weightOnlyGemv.js';
import { dispatchUniversalCallSums, dispatchUniversalGemv, universalGemv } from '../../src/gpu/kernels/universalGemv.js';
import { dispatchUniversalGemvI8, universalGemvI8 } from '../../src/gpu/kernels/universalGemvI8.js';
import { dispatchLatticeGemvI8, latticeGemvI8 } from '../../src/gpu/kernels/latticeGemvI8.js';
import { dispatchE8InputsI8, dispatchE8ResidueGemvI8, dispatchRotatedE8InputsI8, e8ResidueGemvI8 } from '../../src/gpu/kernels/e8ResidueGemvI8.js';
import { dispatchE8PointGemvI8, e8PointGemvI8 } from '../../src/gpu/kernels/e8PointGemvI8.js';
import { d3QuadGemvI8, dispatchD3QuadGemvI8, dispatchD3QuadInputsI8 } from '../../src/gpu/kernels/d3QuadGemvI8.js';
// From the package's gpu entry point, which exports them (as it does every other GEMV form).
import { dispatchLatticeGemv, latticeGemv } from '../../src/gpu.js';
import { d3GroupScaledGemvI8, dispatchD3GroupScaledGemvI8 } from '../../src/gpu/kernels/d3GroupScaledGemvI8.js';
import { uploadUniversalMatrix } from '../../src/gpu/universalOperand.js';
import { quantizeWeights } from '../../src/weightonly/quantizeWeights.js';
import { quantize } from '../../src/quantize/quantize.js';
import type { DeterministicLatticeMatrix, LatticeQuantizedMatrix, UniversalLatticeMatrix } from '../../src/quantize/quantizedMatrix.js';
import { gaussianMatrix } from '../../src/rotation/random.js';
import { gpuUnavailableReason, testDevice } from './gpuTestDevice.js';

/*
 * The GPU API's refusals of arguments a JavaScript caller can pass despite the types: null, a
 * CPU-quantized matrix where a GPU one belongs, misspelt options, a buffer a kernel cannot bind, a lost
 * device. Each must be a LatticeMatmulError (or GpuDeviceLostError) that names the argument, thrown
 * before anything is recorded — not a TypeError from deep inside, an uncaptured validation error that
 * rejects the caller's whole command buffer, or a silent no-op.
 */

const noGpu = await gpuUnavailableReason();

describe.skipIf(noGpu !== undefined)('GPU API arguments', () => {
  let context: GpuContext;
  let engine: GpuEngine;
  const uncaptured: string[] = [];
  const n = 64;

  beforeAll(async () => {
    context = await testDevice({ label: 'api arguments' });
    context.device.addEventListener('uncapturederror', (event) => uncaptured.push((event as GPUUncapturedErrorEvent).error.message));
    engine = GpuEngine.create(context);
  });

  afterAll(() => context.device.destroy());

  /**
   * Records with `record` into a fresh encoder and scratch, submits what it recorded and expects no
   * uncaptured error (a refusal thrown before recording leaves the encoder valid); then frees the
   * scratch and `owned`.
   */
  async function expectEncoderStaysValid(owned: readonly { destroy(): void }[], record: (encoder: GPUCommandEncoder, scratch: GpuScratch) => void): Promise<void> {
    const scratch = new GpuScratch(context.device);
    const before = uncaptured.length;
    try {
      const encoder = context.device.createCommandEncoder();
      record(encoder, scratch);
      context.device.queue.submit([encoder.finish()]);
      await context.device.queue.onSubmittedWorkDone();
      expect(uncaptured.slice(before)).toEqual([]);
    } finally {
      scratch.destroy();
      for (const object of owned) object.destroy();
    }
  }

  it('null where a matrix, an input, a device or a target belongs: a LatticeMatmulError naming it', async () => {
    const w = engine.upload(quantize(gaussianMatrix(n, 4, 1), { scheme: 'e8-4bit', nonce: 1 }) as LatticeQuantizedMatrix);
    try {
      await expect(engine.matvec(w, null as never)).rejects.toThrow(/^x must be a Float32Array, a Matrix or a GPU matrix input \{ buffer, rows, cols \}, got null$/);
      await expect(engine.matvec(null as never, new Float32Array(n))).rejects.toThrow(/^W must be a GPU lattice matrix \(GpuEngine\.quantize or GpuEngine\.upload\), got null$/);
      await expect(engine.matmulAT(w, null as never)).rejects.toThrow(/^B must be a GPU lattice matrix/);
      await expect(engine.dequantize(null as never)).rejects.toThrow(/^the matrix must be a GPU lattice matrix/);
      expect(() => engine.productKernel(undefined as never, w)).toThrow(/^A must be a GPU lattice matrix .*, got undefined$/);
      expect(() => GpuEngine.create(context, null as never)).toThrow(/^GpuEngine\.create options must be an object, got null$/);
      expect(() => QuantizedLinear.create(null as never, w)).toThrow(/^QuantizedLinear needs a GPUDevice, got null$/);
      const layer = QuantizedLinear.create(context.device, w);
      const x = createBuffer(context.device, 'x', 4 * n, STORAGE_USAGE);
      const y = createBuffer(context.device, 'y', 4 * 4, STORAGE_USAGE);
      expect(() => layer.record(null as never, x, y)).toThrow(/record needs a GPUCommandEncoder or an open GPUComputePassEncoder, got null/);
      layer.destroy();
      x.destroy();
      y.destroy();
    } finally {
      w.destroy();
    }
  });

  it.each(['e8-4bit', 'd3-q6-deterministic'] as const)('a CPU-quantized %s matrix (not uploaded) is refused as such by every GPU entry point', async (scheme) => {
    const cpu = quantize(gaussianMatrix(n, 4, 2), scheme === 'e8-4bit' ? { scheme, nonce: 2 } : { scheme });
    const asGpu = cpu as never;
    const message = /is a CPU-quantized matrix \(its codes are in a typed array\): upload it to the GPU first, with GpuEngine\.upload/;
    await expect(engine.matvec(asGpu, new Float32Array(n))).rejects.toThrow(message); // was: "‖a_i‖·‖b_j‖ = NaN"
    await expect(engine.matmulAT(asGpu, asGpu)).rejects.toThrow(message);
    await expect(engine.dequantize(asGpu)).rejects.toThrow(message); // was: "escapeCount must be a non-negative integer"
    expect(() => QuantizedLinear.create(context.device, asGpu as LinearWeight)).toThrow(message); // was: accepted, or a TypeError from Dawn
  });

  it('the context requestGpuDevice() returns, passed where a GPUDevice belongs, is refused saying to pass its .device (it was a TypeError from inside)', async () => {
    const q = quantizeWeights(gaussianMatrix(16, 64, 3), null, { method: 'rtn', rate: 2 });
    const asDevice = context as never;
    const message = /^expected a GPUDevice, got the context requestGpuDevice\(\) \/ requestNodeGpuDevice\(\) returns: pass its \.device$/;
    await expect(weightOnlyGemv(asDevice, q, new Float32Array(16))).rejects.toThrow(message);
    await expect(weightOnlyGemm(asDevice, q, gaussianMatrix(16, 2, 4))).rejects.toThrow(message);
    await expect(gpuQuantizeLattice(asDevice, gaussianMatrix(n, 2, 5), { scheme: 'e8-4bit' })).rejects.toThrow(message);
    await expect(weightOnlyGemv(42 as never, q, new Float32Array(16))).rejects.toThrow(/^expected a GPUDevice, got number$/);
    // The real device still works.
    expect((await weightOnlyGemv(context.device, q, new Float32Array(16))).length).toBe(64);
  });

  it('misspelt options of GpuEngine.create and requestGpuDevice are refused with a suggestion, not ignored', async () => {
    expect(() => GpuEngine.create(context, { tablelayout: 'full' } as never)).toThrow(/GpuEngine\.create options: unknown option 'tablelayout' \(did you mean 'tableLayout'\?\)/);
    await expect(requestGpuDevice({ gpu: await nodeGpu(), lable: 'x' } as never)).rejects.toThrow(/requestGpuDevice options: unknown option 'lable' \(did you mean 'label'\?\)/);
  });

  it('the host GEMV helpers refuse options outside their type instead of forwarding them to the dispatch', async () => {
    const w = uploadUniversalMatrix(context.device, quantize(gaussianMatrix(n, 4, 7), { scheme: 'e8-4bit', nonce: 7 }) as UniversalLatticeMatrix);
    const x = gaussianMatrix(n, 1, 8).data;
    try {
      // Before: the GPU wrote Y as f16 and the helper read it back as f32 (garbage), and a misspelt leaderTable ran on the default.
      await expect(universalGemv(context.device, w, x, { outputFormat: 'f16' } as never)).rejects.toThrow(
        /^universalGemv options: unknown option 'outputFormat'; known: maxBindingBytes, subgroups, subgroupTestMode, leaderTable, fusedFinish$/,
      );
      await expect(universalGemv(context.device, w, x, { leaderTabel: false } as never)).rejects.toThrow(/^universalGemv options: unknown option 'leaderTabel' \(did you mean 'leaderTable'\?\)/);
      expect((await universalGemv(context.device, w, x, { leaderTable: false })).rows).toBe(4);
      // The message names the option (NaN was reported as an item that does not fit a binding of NaN bytes).
      await expect(universalGemv(context.device, w, x, { maxBindingBytes: Number.NaN })).rejects.toThrow(/^universal gemv[^:]*: maxBindingBytes must be a positive integer, got NaN$/);
      // The int8-input helpers check their options before their weights (a stand-in suffices).
      const standIn = {} as never;
      const extra = { dotPath: 'plain', outputFormat: 'f16' } as never;
      await expect(universalGemvI8(context.device, standIn, x, extra)).rejects.toThrow(/^universalGemvI8 options: unknown option 'outputFormat'; known: .*padLeaderTable$/);
      await expect(latticeGemvI8(context.device, standIn, x, extra)).rejects.toThrow(/^latticeGemvI8 options: unknown option 'outputFormat'; known: .*scaleMultiples$/);
      await expect(e8ResidueGemvI8(context.device, standIn, x, extra)).rejects.toThrow(/^e8ResidueGemvI8 options: unknown option 'outputFormat'; known: .*dotPath$/);
      await expect(e8PointGemvI8(context.device, standIn, x, extra)).rejects.toThrow(/^e8PointGemvI8 options: unknown option 'outputFormat'; known: .*dotPath$/);
      await expect(d3QuadGemvI8(context.device, standIn, x, extra)).rejects.toThrow(/^d3QuadGemvI8 options: unknown option 'outputFormat'; known: .*leaderCopies$/);
      await expect(d3QuadGemvI8(context.device, standIn, x, null as never)).rejects.toThrow(/^d3QuadGemvI8 options must be an object, got null$/);
      await expect(d3GroupScaledGemvI8(context.device, standIn, x, extra)).rejects.toThrow(/^d3GroupScaledGemvI8 options: unknown option 'outputFormat'; known: .*padLeaderTable$/);
      await expect(latticeGemv(context.device, standIn, x, { columnSides: 'x' } as never)).rejects.toThrow(/^latticeGemv options: unknown option 'columnSides' \(did you mean 'columnSide'\?\)/);
    } finally {
      w.destroy();
    }
  });

  it('a GPU matrix input refuses keys other than buffer, rows, cols, offset and format (fromat: \'f16\' read f16 data as f32)', async () => {
    const buffer = createBuffer(context.device, 'f16 input', 2 * n * 2, STORAGE_USAGE);
    const w = engine.upload(quantize(gaussianMatrix(n, 4, 9), { scheme: 'e8-4bit', nonce: 9 }) as LatticeQuantizedMatrix);
    try {
      await expect(engine.quantize({ buffer, rows: n, cols: 2, fromat: 'f16' } as never, { scheme: 'e8-4bit', nonce: 1 })).rejects.toThrow(
        /^matrix: unknown option 'fromat' \(did you mean 'format'\?\); known: buffer, rows, cols, offset, format$/,
      );
      await expect(engine.matvec(w, { buffer, rows: n, cols: 1, fromat: 'f16' } as never)).rejects.toThrow(/^x: unknown option 'fromat' \(did you mean 'format'\?\)/);
      await expect(engine.matvec(w, { buffer, rows: n, cols: 1, format: null } as never)).rejects.toThrow(/^x format must be 'f32' or 'f16', got null$/);
      // An entry not on an element boundary, or a window past the buffer's end, is refused by name
      // before any binding is made (a kernel's binding window would otherwise drop the odd bytes).
      await expect(engine.quantize({ buffer, rows: n, cols: 1, offset: 2 }, { scheme: 'e8-4bit', nonce: 1 })).rejects.toThrow(/^matrix offset must be a non-negative multiple of 4, got 2$/);
      await expect(engine.quantize({ buffer, rows: n, cols: 1, offset: 1, format: 'f16' }, { scheme: 'e8-4bit', nonce: 1 })).rejects.toThrow(/^matrix offset must be a non-negative multiple of 2, got 1$/);
      await expect(engine.quantize({ buffer, rows: n, cols: 2, offset: 2, format: 'f16' }, { scheme: 'e8-4bit', nonce: 1 })).rejects.toThrow(
        new RegExp(`^matrix needs ${4 * n} bytes at offset 2, but its buffer has ${4 * n}$`),
      );
      await expect(engine.matvec(w, { buffer, rows: n, cols: 1, offset: 4 })).rejects.toThrow(new RegExp(`^x needs ${4 * n} bytes at offset 4, but its buffer has ${4 * n}$`));
      const q = await engine.quantize({ buffer, rows: n, cols: 2, format: 'f16' }, { scheme: 'e8-4bit', nonce: 1 });
      expect(q.cols).toBe(2);
      q.destroy();
    } finally {
      w.destroy();
      buffer.destroy();
    }
  });

  it.each([
    ['e8-4bit', 'universal-i8'],
    ['d3-q6-deterministic', 'd3-table'],
    ['e8-q16-deterministic', 'e8-dot'],
  ] as const)('recordMatmulAT (%s, %s) refuses a C without STORAGE usage before recording anything; the encoder stays valid', async (scheme, kernel) => {
    const options = scheme === 'e8-4bit' ? (nonce: number) => ({ scheme, nonce }) : () => ({ scheme });
    const a = engine.upload(quantize(gaussianMatrix(n, 4, 3), options(3)) as LatticeQuantizedMatrix);
    const b = engine.upload(quantize(gaussianMatrix(n, 3, 4), options(4)) as LatticeQuantizedMatrix);
    expect(engine.productKernel(a, b)).toBe(kernel);
    const c = context.device.createBuffer({ label: 'copy-only C', size: 48, usage: GPUBufferUsage.COPY_SRC });
    await expectEncoderStaysValid([c, a, b], (encoder, scratch) => {
      expect(() => engine.recordMatmulAT(encoder, scratch, a, b, c)).toThrow(/^matmulAT output: buffer "copy-only C" lacks STORAGE usage \(it was created with COPY_SRC\)$/);
    });
  });

  it('a kernel refuses a storage binding it cannot use: dispatchHadamard with a copy-only output', async () => {
    const input = createBuffer(context.device, 'input', 4 * n, STORAGE_USAGE);
    const output = context.device.createBuffer({ label: 'copy-only output', size: 4 * n, usage: GPUBufferUsage.COPY_SRC });
    await expectEncoderStaysValid([input, output], (encoder, scratch) => {
      expect(() => dispatchHadamard(context.device, encoder, scratch, { input, output, rows: n, cols: 1, seed: 1 })).toThrow(/hadamard: output: buffer "copy-only output" lacks STORAGE usage/);
    });
  });

  it('dispatchHadamard and dispatchHadamardInverse refuse keys outside their arguments before recording anything', async () => {
    const input = createBuffer(context.device, 'input', 4 * n, STORAGE_USAGE);
    const output = createBuffer(context.device, 'output', 4 * n, STORAGE_USAGE);
    await expectEncoderStaysValid([input, output], (encoder, scratch) => {
      const args = { input, output, rows: n, cols: 1, seed: 1 };
      // Before: an output format the rotation does not have (and a misspelt option) were ignored.
      expect(() => dispatchHadamard(context.device, encoder, scratch, { ...args, outputFormat: 'f16' } as never)).toThrow(/^dispatchHadamard arguments: unknown option 'outputFormat' \(did you mean 'inputFormat'\?\); known: workgroupElements, /);
      expect(() => dispatchHadamardInverse(context.device, encoder, scratch, { ...args, inputFormat: 'f16' } as never)).toThrow(/^dispatchHadamardInverse arguments: unknown option 'inputFormat'/);
      expect(() => dispatchHadamard(context.device, encoder, scratch, { ...args, sprad: true } as never)).toThrow(/unknown option 'sprad' \(did you mean 'spread'\?\)/);
      dispatchHadamard(context.device, encoder, scratch, args);
      dispatchHadamardInverse(context.device, encoder, scratch, { ...args, input: output, output: input });
    });
  });

  it('the lattice GEMV dispatches refuse keys outside their arguments before recording anything', async () => {
    const y = createBuffer(context.device, 'y', 4 * 16, STORAGE_USAGE);
    const x = createBuffer(context.device, 'x', 4 * n, STORAGE_USAGE);
    const universal = engine.upload(quantize(gaussianMatrix(n, 4, 10), { scheme: 'e8-4bit', nonce: 10 }) as UniversalLatticeMatrix);
    const deterministic = engine.upload(quantize(gaussianMatrix(n, 4, 11), { scheme: 'd3-q6-deterministic' }) as DeterministicLatticeMatrix);
    await expectEncoderStaysValid([universal, deterministic, x, y], (encoder, scratch) => {
      const io = { x, y, rhs: 1 };
      // Before: a misspelt option ran on its default (outputFromat: 'f16' wrote f32 Y).
      expect(() => dispatchUniversalGemv(context.device, encoder, scratch, { ...io, w: universal, outputFromat: 'f16' } as never)).toThrow(
        /^dispatchUniversalGemv arguments: unknown option 'outputFromat' \(did you mean 'outputFormat'\?\)/,
      );
      expect(() => dispatchLatticeGemv(context.device, encoder, scratch, { ...io, w: deterministic, subgroupTestMode: 'fallback' } as never)).toThrow(/^dispatchLatticeGemv arguments: unknown option 'subgroupTestMode'/);
      // The int8-input dispatches check their keys before their weights (a stand-in suffices).
      const standIn = { ...io, dotPath: 'plain', leaderTabel: false } as never;
      for (const [name, dispatch] of [
        ['dispatchUniversalGemvI8', dispatchUniversalGemvI8],
        ['dispatchLatticeGemvI8', dispatchLatticeGemvI8],
        ['dispatchE8ResidueGemvI8', dispatchE8ResidueGemvI8],
        ['dispatchE8PointGemvI8', dispatchE8PointGemvI8],
        ['dispatchD3QuadGemvI8', dispatchD3QuadGemvI8],
        // The benchmark's group-scaled prototype (not exported): a misspelt option ran on its default.
        ['dispatchD3GroupScaledGemvI8', dispatchD3GroupScaledGemvI8],
      ] as const) {
        expect(() => dispatch(context.device, encoder, scratch, standIn), name).toThrow(new RegExp(`^${name} arguments: unknown option 'leaderTabel'`));
      }
      dispatchUniversalGemv(context.device, encoder, scratch, { ...io, w: universal });
      dispatchLatticeGemv(context.device, encoder, scratch, { ...io, w: deterministic });
      // Exported since this stop, it starts with checkDispatch as the others do (arguments, device, target).
      expect(() => dispatchLatticeGemv(context.device, encoder, scratch, null as never)).toThrow(/^dispatchLatticeGemv: the arguments must be an object, got null$/);
      expect(() => dispatchD3GroupScaledGemvI8(context.device, encoder, scratch, null as never)).toThrow(/^dispatchD3GroupScaledGemvI8: the arguments must be an object, got null$/);
    });
  });

  // The other side of the key lists: a key the arguments' type has, missing from its list, would be
  // refused as unknown. Each list written out here from the interfaces (D3GroupScaledGemvI8Args:
  // GemvCallArgs, GemvOutputArgs, SharedInputsI8Arg, LeaderTableArgs, w and dotPath;
  // UniversalDequantizeArgs), every key given as undefined: the call passes the key check and stops
  // at the stand-in matrix, the first argument each reads after it.
  it('dispatchD3GroupScaledGemvI8 and dispatchUniversalDequantize accept every key their arguments have (the keys it takes)', async () => {
    const buffer = createBuffer(context.device, 'stand-in', 4 * n, STORAGE_USAGE);
    const everyKey = (keys: readonly string[]): Record<string, undefined> => Object.fromEntries(keys.map((key) => [key, undefined]));
    const groupScaledKeys = [
      ...['x', 'xOffset', 'y', 'yOffset', 'rhs', 'xRotated', 'xRotatedOffset', 'maxBindingBytes', 'subgroups', 'subgroupTestMode'],
      ...['bias', 'biasOffset', 'biasFormat', 'outputFormat', 'accumulate'],
      ...['inputsI8', 'leaderCopies', 'padLeaderTable', 'w', 'dotPath'],
    ];
    const dequantizeKeys = ['m', 'output', 'outputOffset', 'maxBindingBytes', 'normalizeColumns'];
    await expectEncoderStaysValid([buffer], (encoder, scratch) => {
      expect(() => dispatchD3GroupScaledGemvI8(context.device, encoder, scratch, { ...everyKey(groupScaledKeys), w: {} } as never)).toThrow(
        /^group-scaled D3 gemv \(int8 inputs, prototype\): W must be a GpuD3GroupScaledMatrix$/,
      );
      expect(() => dispatchUniversalDequantize(context.device, encoder, scratch, { ...everyKey(dequantizeKeys), m: {} } as never)).toThrow(/^quantized matrix must be a universal GPU lattice matrix$/);
    });
  });

  it('the input-rounding, call-sums, dequantize, f16 widening and epilogue dispatches refuse keys outside their arguments before recording anything', async () => {
    const buffer = createBuffer(context.device, 'stand-in', 4 * n, STORAGE_USAGE);
    await expectEncoderStaysValid([buffer], (encoder, scratch) => {
      // Before: a misspelt offset was ignored, so the call read or wrote from byte 0 without a sign.
      // The keys are checked before anything else of the arguments, so stand-ins suffice.
      const inputs = { w: {}, xRotated: buffer, rhs: 1, xRotatedOfset: 256 } as never;
      const rotated = { w: {}, x: buffer, xRotated: buffer, rhs: 1, xOfset: 256 } as never;
      for (const [name, call, misspelt] of [
        ['dispatchInputsI8', () => dispatchInputsI8(context.device, encoder, scratch, inputs), 'xRotatedOfset'],
        ['dispatchE8InputsI8', () => dispatchE8InputsI8(context.device, encoder, scratch, inputs), 'xRotatedOfset'],
        ['dispatchD3QuadInputsI8', () => dispatchD3QuadInputsI8(context.device, encoder, scratch, inputs), 'xRotatedOfset'],
        ['dispatchRotatedInputsI8', () => dispatchRotatedInputsI8(context.device, encoder, scratch, rotated), 'xOfset'],
        ['dispatchRotatedE8InputsI8', () => dispatchRotatedE8InputsI8(context.device, encoder, scratch, rotated), 'xOfset'],
        ['dispatchUniversalCallSums', () => dispatchUniversalCallSums(context.device, encoder, scratch, inputs), 'xRotatedOfset'],
        ['dispatchUniversalDequantize', () => dispatchUniversalDequantize(context.device, encoder, scratch, { m: {}, output: buffer, outputOfset: 256 } as never), 'outputOfset'],
        ['dispatchF16ToF32', () => dispatchF16ToF32(context.device, encoder, scratch, { input: buffer, output: buffer, count: 4, outputOfset: 256 } as never), 'outputOfset'],
        ['dispatchEpilogue', () => dispatchEpilogue(context.device, encoder, scratch, { input: buffer, bias: null, rows: 4, columns: 1, output: buffer, format: 'f32', outputOfset: 256 } as never), 'outputOfset'],
      ] as const) {
        expect(call, name).toThrow(new RegExp(`^${name} arguments: unknown option '${misspelt}' \\(did you mean '${misspelt.replace('Ofset', 'Offset')}'\\?\\)`));
      }
    });
  });

  it('biasOffset without a bias is refused by the GEMVs and the epilogue, as x\'s offsets without x are (it was ignored: the call added no bias)', async () => {
    const y = createBuffer(context.device, 'y', 4 * 16, STORAGE_USAGE);
    const x = createBuffer(context.device, 'x', 4 * n, STORAGE_USAGE);
    const universal = engine.upload(quantize(gaussianMatrix(n, 4, 14), { scheme: 'e8-4bit', nonce: 14 }) as UniversalLatticeMatrix);
    const deterministic = engine.upload(quantize(gaussianMatrix(n, 4, 15), { scheme: 'd3-q6-deterministic' }) as DeterministicLatticeMatrix);
    const weightOnly = uploadWeightOnly(context.device, quantizeWeights(gaussianMatrix(n, 16, 16), null, { method: 'rtn', rate: 3 }));
    await expectEncoderStaysValid([universal, deterministic, weightOnly, x, y], (encoder, scratch) => {
      const io = { x, y, rhs: 1 };
      for (const biasOffset of [0, 256]) {
        expect(() => dispatchUniversalGemv(context.device, encoder, scratch, { ...io, w: universal, biasOffset })).toThrow(/^universal gemv[^:]*: biasOffset without bias$/);
        // A bias format says no more than the offset that a bias was meant.
        expect(() => dispatchUniversalGemv(context.device, encoder, scratch, { ...io, w: universal, biasOffset, biasFormat: 'f16' })).toThrow(/^universal gemv[^:]*: biasOffset without bias$/);
        expect(() => dispatchLatticeGemv(context.device, encoder, scratch, { ...io, w: deterministic, bias: null, biasOffset })).toThrow(/: biasOffset without bias$/);
        expect(() => dispatchEpilogue(context.device, encoder, scratch, { input: x, bias: null, biasOffset, rows: 4, columns: 1, output: y, format: 'f32' })).toThrow(/^epilogue: biasOffset without bias$/);
        expect(() => weightOnly.dispatch(encoder, scratch, { x, y, biasOffset })).toThrow(/^weight-only gemv: biasOffset without bias$/);
      }
      // Without the offset, and with a bias, the same calls record.
      dispatchUniversalGemv(context.device, encoder, scratch, { ...io, w: universal, bias: null });
      dispatchLatticeGemv(context.device, encoder, scratch, { ...io, w: deterministic, bias: x, biasOffset: 0 });
      dispatchEpilogue(context.device, encoder, scratch, { input: x, bias: null, rows: 4, columns: 1, output: y, format: 'f32' });
      weightOnly.dispatch(encoder, scratch, { x, y });
    });
  });

  it('maxBindingBytes that is not a positive integer is refused by name by the rotation, dequantize and weight-only kernels (they took min(it, the limit) by hand)', async () => {
    const input = createBuffer(context.device, 'input', 4 * n, STORAGE_USAGE);
    const output = createBuffer(context.device, 'output', 4 * n * 4, STORAGE_USAGE);
    const universal = engine.upload(quantize(gaussianMatrix(n, 4, 12), { scheme: 'e8-4bit', nonce: 12 }) as UniversalLatticeMatrix);
    const weightOnly = quantizeWeights(gaussianMatrix(n, 16, 13), null, { method: 'rtn', rate: 3 });
    for (const bad of [1.5, Number.NaN, 0]) {
      const named = new RegExp(`maxBindingBytes must be a positive integer, got ${String(bad)}$`);
      await expectEncoderStaysValid([input, output], (encoder, scratch) => {
        expect(() => dispatchHadamard(context.device, encoder, scratch, { input, output, rows: n, cols: 1, seed: 1, maxBindingBytes: bad })).toThrow(named);
        expect(() => dispatchUniversalDequantize(context.device, encoder, scratch, { m: universal, output, maxBindingBytes: bad })).toThrow(named);
      });
      await expect(weightOnlyGemv(context.device, weightOnly, new Float32Array(n).fill(1), { maxBindingBytes: bad })).rejects.toThrow(named);
    }
    universal.destroy();
  });

  it('maxBindingBytes too small for one item says how much the alignment slack needs', async () => {
    const alignment = context.device.limits.minStorageBufferOffsetAlignment;
    await expect(gpuQuantizeLattice(context.device, gaussianMatrix(100, 2, 5), { scheme: 'e8-4bit', nonce: 5, maxBindingBytes: 512 })).rejects.toThrow(
      new RegExp(`with the ${alignment - 4} bytes of slack that a binding at a ${alignment}-byte aligned offset may need: allow at least \\d+`),
    );
  });

  it('QuantizedLinear.create refuses the context requestGpuDevice() returns, saying to pass its .device', async () => {
    const context = await testDevice({ label: 'context' });
    try {
      const w = GpuEngine.create(context).upload(quantize(gaussianMatrix(n, 4, 6), { scheme: 'e8-4bit', nonce: 6 }));
      expect(() => QuantizedLinear.create(context as never, w)).toThrow(/^QuantizedLinear needs a GPUDevice, got the context requestGpuDevice\(\) \/ requestNodeGpuDevice\(\) returns: pass its \.device$/);
    } finally {
      context.device.destroy();
    }
  });

  it('QuantizedLinear refuses a lost device at create, and record on a layer whose device was lost throws instead of recording nothing; so do the engine\'s upload and recordMatmulAT and the weight-only upload and dispatch', async () => {
    const lost = await testDevice({ label: 'to be lost' });
    const engine = GpuEngine.create(lost);
    const cpuW = quantize(gaussianMatrix(n, 4, 6), { scheme: 'e8-4bit', nonce: 6 });
    const w = engine.upload(cpuW);
    const layer = QuantizedLinear.create(lost.device, w);
    const weightOnlyCpu = quantizeWeights(gaussianMatrix(n, 32, 5), null, { method: 'rtn', rate: 3, rotate: false });
    const weightOnly = uploadWeightOnly(lost.device, weightOnlyCpu);
    const scratch = new GpuScratch(lost.device);
    const x = createBuffer(lost.device, 'x', 4 * n, STORAGE_USAGE);
    const y = createBuffer(lost.device, 'y', 4 * 4, STORAGE_USAGE);
    lost.device.destroy();
    await lost.device.lost;
    for (let i = 0; i < 50 && !isDeviceLost(lost.device); i++) await new Promise((resolve) => setTimeout(resolve, 10));
    expect(isDeviceLost(lost.device)).toBe(true);
    // A GpuDeviceLostError, as every later call gives, so one `instanceof` check covers a model's load.
    expect(() => QuantizedLinear.create(lost.device, w)).toThrow(GpuDeviceLostError);
    expect(() => QuantizedLinear.create(lost.device, w)).toThrow(/^QuantizedLinear\.create: the WebGPU device "to be lost" was lost \(reason: destroyed\)/);
    expect(() => layer.record(lost.device.createCommandEncoder(), x, y)).toThrow(GpuDeviceLostError);
    expect(() => GpuEngine.create(lost)).toThrow(GpuDeviceLostError);
    await expect(layer.check()).rejects.toThrow(GpuDeviceLostError);
    try {
      layer.record(lost.device.createCommandEncoder(), x, y);
    } catch (error) {
      // Telemetry that logs `name` tells the loss from other refusals.
      expect([error instanceof LatticeMatmulError, (error as Error).name]).toEqual([true, 'GpuDeviceLostError']);
    }
    // Before: these recorded or created nothing and said nothing (a product's C left silently stale).
    expect(() => engine.upload(cpuW)).toThrow(GpuDeviceLostError);
    expect(() => engine.recordMatmulAT(lost.device.createCommandEncoder(), scratch, w, w, y)).toThrow(GpuDeviceLostError);
    expect(() => uploadWeightOnly(lost.device, weightOnlyCpu)).toThrow(GpuDeviceLostError);
    expect(() => weightOnly.dispatch(lost.device.createCommandEncoder(), scratch, { x, y })).toThrow(GpuDeviceLostError);
  });
});
