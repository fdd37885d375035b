import { resolve } from 'node:path';
import { describe, expect, expectTypeOf, it } from 'vitest';
import {
  dispatchWeightOnlyGemv,
  gpuQuantizeLattice,
  QuantizedLinear,
  requestGpuDevice,
  type BiasFormat,
  type GpuD3QuadMatrix,
  type GpuEngine,
  type GpuLatticeMatrix,
  type GpuLatticeQuantized,
  type GpuUniversalQuantizedMatrix,
  type GpuScratch,
  type LinearWeight,
  type QuantizedLinearOptions,
  type RecordedWeightOnlyInputsI8,
  type RequestGpuDeviceOptions,
  type WeightOnlyGemvArgs,
  type WeightOnlyGpuMatrix,
} from '../../src/gpu.js';
import { requestNodeGpuDevice } from '../../src/node.js';
import type { IntScheme, SchemeName } from '../../src/quantize/schemes.js';
import { gaussianMatrix } from '../../src/rotation/random.js';
import { typeCheckMessages } from './typeCheckFile.js';

/*
 * Misuse of the public GPU API that every run refuses fails to compile, as test/types/
 * quantizeOptions.test.ts does for `quantize`'s options: each `// @ts-expect-error` line below is such a
 * call, so if one compiles again (a type loosened), `tsc --noEmit -p .` reports "Unused
 * '@ts-expect-error' directive" — and so does the last test here, which type-checks this file with the
 * compiler API, so `vitest run` alone catches it too. Where the refusal needs no GPU it is asserted
 * here; the others need a device and are asserted where a device is (the test files named below), so
 * here they are only type-checked (functions that are never called). The correct calls, wide types
 * included (a union that may hold a right value, a prebuilt options object), compile.
 */

const a = gaussianMatrix(24, 2, 1);

describe('QuantizedLinear.create: a typed-array bias and its biasFormat', () => {
  it('a Float32Array with f16 or bf16, or a Uint16Array with f32 or no format, does not compile (refused at run time: gemvEpilogue.test.ts)', () => {
    const typeChecks = (device: GPUDevice, w: GpuLatticeMatrix, weightOnly: WeightOnlyGpuMatrix, quads: GpuD3QuadMatrix, buffer: GPUBuffer) => {
      const f32 = new Float32Array(w.cols);
      const bits = new Uint16Array(w.cols);
      // @ts-expect-error a Float32Array bias is f32
      QuantizedLinear.create(device, w, { bias: f32, biasFormat: 'bf16' });
      // @ts-expect-error a Float32Array bias is f32
      QuantizedLinear.create(device, weightOnly, { bias: f32, biasFormat: 'f16', activations: 'f16' });
      // @ts-expect-error a Uint16Array bias holds f16 or bf16 bits: biasFormat must say which
      QuantizedLinear.create(device, w, { bias: bits });
      // @ts-expect-error not 'f32'
      QuantizedLinear.create(device, w, { bias: bits, biasFormat: 'f32' });
      // @ts-expect-error nor undefined (the default, 'f32')
      QuantizedLinear.create(device, w, { bias: bits, biasFormat: undefined, accumulate: true });
      // @ts-expect-error a quad form's options too
      QuantizedLinear.create(device, quads, { int8Inputs: 'plain', bias: bits });
      // @ts-expect-error a quad form still needs int8Inputs (LinearOptionsFor)
      QuantizedLinear.create(device, quads, { bias: bits, biasFormat: 'f16' });
      // @ts-expect-error a misspelt option is still refused (the options object is not a type parameter)
      QuantizedLinear.create(device, w, { bias: f32, activation: 'f16' });

      // Allowed: each array with its formats; a GPUBuffer or slice, which holds either, with any format.
      QuantizedLinear.create(device, w, { bias: f32 });
      QuantizedLinear.create(device, w, { bias: f32, biasFormat: 'f32' });
      QuantizedLinear.create(device, w, { bias: bits, biasFormat: 'bf16', activations: 'f16', accumulate: true });
      QuantizedLinear.create(device, quads, { int8Inputs: 'packed', bias: bits, biasFormat: 'f16' });
      QuantizedLinear.create(device, w, { bias: buffer, biasFormat: 'f16' });
      QuantizedLinear.create(device, w, { bias: { buffer, offset: 2 }, biasFormat: 'bf16' });
      QuantizedLinear.create(device, w, { bias: null, biasFormat: 'f16' });
      QuantizedLinear.create(device, w, { biasFormat: 'bf16' });
      QuantizedLinear.create(device, w);
      // Wide types keep every format (checked at run time): a bias that may be either array, a format
      // known only as BiasFormat or as a union holding a right one, a prebuilt options object.
      const either = bits as Float32Array | Uint16Array;
      const format = 'f16' as BiasFormat;
      QuantizedLinear.create(device, w, { bias: either, biasFormat: format });
      QuantizedLinear.create(device, w, { bias: either });
      QuantizedLinear.create(device, w, { bias: either, biasFormat: 'f32' });
      QuantizedLinear.create(device, w, { bias: bits, biasFormat: format });
      QuantizedLinear.create(device, w, { bias: f32, biasFormat: format });
      QuantizedLinear.create(device, w, { bias: bits, biasFormat: 'f16' as 'f16' | 'bf16' });
      // A bias typed `any` (from untyped code) says nothing of its format: every format compiles.
      const untyped = JSON.parse('null') as any; // eslint-disable-line @typescript-eslint/no-explicit-any -- what untyped code hands in
      QuantizedLinear.create(device, w, { bias: untyped, biasFormat: 'bf16' });
      QuantizedLinear.create(device, w, { bias: untyped, biasFormat: 'f32' });
      QuantizedLinear.create(device, w, { bias: untyped });
      const prebuilt: QuantizedLinearOptions = { bias: bits, biasFormat: 'f16' };
      QuantizedLinear.create(device, w, prebuilt);
      QuantizedLinear.create(device, w, { ...prebuilt, bias: f32 });
      QuantizedLinear.create(device, w as LinearWeight, { ...prebuilt, label: 'wide weight' });
      const optional = bits as Uint16Array | null;
      QuantizedLinear.create(device, w, { bias: optional, biasFormat: 'bf16' });
    };
    expect(typeof typeChecks).toBe('function');
  });
});

describe('requestGpuDevice: adapter or powerPreference, not both', () => {
  const adapter = { limits: {}, features: new Set() } as unknown as GPUAdapter;
  const gpu = { requestAdapter: () => Promise.resolve(adapter) } as unknown as GPU;

  it('both do not compile, and are refused at run time', async () => {
    // @ts-expect-error the preference chooses an adapter; a given one is already chosen
    await expect(requestGpuDevice({ gpu, adapter, powerPreference: 'low-power' })).rejects.toThrow(/powerPreference chooses the adapter, so it cannot go with adapter/);
    const typeChecks = () => {
      // @ts-expect-error requestNodeGpuDevice takes requestGpuDevice's options (but gpu)
      void requestNodeGpuDevice({ adapter, powerPreference: 'high-performance', flags: [] });
      // Allowed: either one, neither, a prebuilt options object, undefined for the other.
      void requestGpuDevice({ gpu, adapter, label: 'given adapter' });
      void requestGpuDevice({ gpu, powerPreference: 'high-performance', workgroupStorageLimit: 16384 });
      void requestGpuDevice({ adapter, powerPreference: undefined });
      void requestGpuDevice();
      const options: RequestGpuDeviceOptions = { gpu, powerPreference: 'low-power' };
      void requestGpuDevice({ ...options, label: 'prebuilt' });
      void requestNodeGpuDevice({ powerPreference: 'low-power', flags: ['enable-dawn-features=allow_unsafe_apis'] });
      void requestNodeGpuDevice({ adapter });
    };
    expect(typeof typeChecks).toBe('function');
  });
});

describe('GPU quantization: lattice schemes only', () => {
  it('a scheme typed as a scalar baseline does not compile, and is refused at run time (before the device is used)', async () => {
    // No GPU needed: the scheme is refused before anything touches the device.
    const device = {} as GPUDevice;
    // @ts-expect-error int schemes run on the CPU (quantize)
    await expect(gpuQuantizeLattice(device, a, { scheme: 'int4-g32' })).rejects.toThrow(/encodes lattice schemes; 'int4-g32' \(a scalar baseline\) runs on the CPU/);
    const int: IntScheme = { kind: 'int', bits: 4, groupSize: 32, grid: 'symmetric', scaleFormat: 'fp16' };
    // @ts-expect-error a scheme object's kind counts as a name's does
    await expect(gpuQuantizeLattice(device, a, { scheme: int })).rejects.toThrow(/encodes lattice schemes; an int scheme \(a scalar baseline\)/);
    // @ts-expect-error nvfp4 too
    await expect(gpuQuantizeLattice(device, a, { scheme: 'nvfp4', seed: 3 })).rejects.toThrow(/encodes lattice schemes; 'nvfp4'/);

    const typeChecks = (engine: GpuEngine) => {
      // @ts-expect-error GpuEngine.quantize as gpuQuantizeLattice (engine.test.ts asserts the refusal)
      void engine.quantize(a, { scheme: 'int3-absmax' });
      // Allowed: lattice schemes; a name known only as SchemeName; a union holding a lattice scheme.
      expectTypeOf(engine.quantize(a, { scheme: 'e8-q16', nonce: 2 })).resolves.toEqualTypeOf<GpuUniversalQuantizedMatrix>();
      expectTypeOf(engine.quantize(a, { scheme: 'nvfp4' as SchemeName })).resolves.toEqualTypeOf<GpuLatticeQuantized>();
      expectTypeOf(engine.quantize(a, { scheme: 'e8-q16' as 'e8-q16' | 'int4-g32' })).resolves.toEqualTypeOf<GpuUniversalQuantizedMatrix>();
      void gpuQuantizeLattice(engine.device, a, { scheme: 'd3-q6-deterministic', gain: 'mmse', maxBindingBytes: 1024 });
    };
    expect(typeof typeChecks).toBe('function');
  });
});

describe('dispatchWeightOnlyGemv: x, or inputsI8 with int8Dot', () => {
  it('neither, both, or inputsI8 without int8Dot or with x’s layout does not compile (refused at run time: weightOnlyGemv.test.ts)', () => {
    const typeChecks = (device: GPUDevice, encoder: GPUCommandEncoder, scratch: GpuScratch, buffers: Record<'codes' | 'columnScales' | 'rowScales' | 'x' | 'y', GPUBuffer>, inputsI8: RecordedWeightOnlyInputsI8) => {
      const { codes, columnScales, rowScales, x, y } = buffers;
      const w = { codes, codeBits: 4, columnScales, rowScales, y, n: 40, outputs: 3, rowVec4s: 2 } as const;
      // @ts-expect-error neither x nor inputsI8
      dispatchWeightOnlyGemv(device, encoder, scratch, w);
      // @ts-expect-error both
      dispatchWeightOnlyGemv(device, encoder, scratch, { ...w, x, inputsI8, int8Dot: 'plain' });
      // @ts-expect-error inputsI8 without int8Dot
      dispatchWeightOnlyGemv(device, encoder, scratch, { ...w, inputsI8 });
      // @ts-expect-error both, without int8Dot
      dispatchWeightOnlyGemv(device, encoder, scratch, { ...w, x, inputsI8 });
      // @ts-expect-error int8Dot without inputsI8
      dispatchWeightOnlyGemv(device, encoder, scratch, { ...w, x, int8Dot: 'packed' });
      // @ts-expect-error inputsI8 carry their own layout: no inputFormat
      dispatchWeightOnlyGemv(device, encoder, scratch, { ...w, inputsI8, int8Dot: 'plain', inputFormat: 'f16' });
      // @ts-expect-error nor xOffset
      dispatchWeightOnlyGemv(device, encoder, scratch, { ...w, inputsI8, int8Dot: 'plain', xOffset: 256 });

      // Allowed: x (with its format and offset), or inputsI8 with int8Dot; a prebuilt or union-typed input.
      dispatchWeightOnlyGemv(device, encoder, scratch, { ...w, x, xOffset: 256, inputFormat: 'f16', vectors: 2 });
      dispatchWeightOnlyGemv(device, encoder, scratch, { ...w, inputsI8, int8Dot: 'packed', bias: null, accumulate: true });
      const input = inputsI8.vectors > 1 ? { inputsI8, int8Dot: 'plain' as const } : { x, inputFormat: 'f32' as const };
      const args: WeightOnlyGemvArgs = { ...w, ...input };
      dispatchWeightOnlyGemv(device, encoder, scratch, args);
    };
    expect(typeof typeChecks).toBe('function');
  });
});

describe('this file type-checks (so `vitest run` alone fails when a misuse above compiles again)', () => {
  it('the TypeScript compiler reports no error in it, an unused @ts-expect-error included', () => {
    expect(typeCheckMessages(resolve(import.meta.dirname, 'gpuApiTypes.test.ts'))).toEqual([]);
  }, 120_000);
});
