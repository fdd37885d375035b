import { beforeAll, describe, expect, it } from 'vitest';
import { dispatchesByPipeline } from '../../bench/gpu/common.js';
import { createBuffer, createBufferWithData, readBuffer, STORAGE_USAGE } from '../../src/gpu/buffers.js';
import { withValidation } from '../../src/gpu/errorScopes.js';
import { gpuQuantizeLattice, uploadLatticeMatrix } from '../../src/gpu/gpuQuantize.js';
import { dispatchF16ToF32 } from '../../src/gpu/kernels/activationIo.js';
import { dispatchUniversalCallSums, fusedFinishSupported } from '../../src/gpu/kernels/universalGemv.js';
import { QuantizedLinear, type LinearWeight } from '../../src/gpu/quantizedLinear.js';
import { GpuScratch } from '../../src/gpu/scratch.js';
import type { GpuUniversalMatrix, GpuUniversalQuantizedMatrix } from '../../src/gpu/universalOperand.js';
import { itemsPerBinding } from '../../src/gpu/workSplit.js';
import { matvecAT } from '../../src/product/matvec.js';
import { dequantize } from '../../src/product/dequantize.js';
import { dotPathFor } from '../../src/gpu/kernels/e8Matmul.js';
import { quantize } from '../../src/quantize/quantize.js';
import type { LatticeQuantizedMatrix, UniversalLatticeMatrix } from '../../src/quantize/quantizedMatrix.js';
import { gaussianMatrix, Rng } from '../../src/rotation/random.js';
import { float16Bits, float16BitsToFloat32Bits } from '../../src/scalar/floatFormats.js';
import { contextOnTestDevice, defaultLimitsDevice, gpuUnavailableReason, testDevice } from './gpuTestDevice.js';

/*
 * Work larger than one storage binding or one dispatch dimension, split by the kernels themselves:
 *  - f16 → f32 widening (dispatchF16ToF32) a window of both buffers at a time: an f32 output one word
 *    over the device's binding limit (WebGPU refused the single binding), chunks forced by
 *    `maxBindingBytes` at odd offsets (the same bits as one dispatch, nothing outside the output
 *    written), and the f16 staging of GPU quantize taking its caller's knob;
 *  - the universal GEMV's per-call sums with more right-hand sides than 65535 workgroups
 *    (QuantizedLinear with 70000 tokens on an 8 × 8 weight: the dispatch was refused at submit and Y
 *    stayed 0), ranges of right-hand sides forced by `maxBindingBytes`, and the refusals' messages.
 * Twins: `float16BitsToFloat32Bits` (exact; the GPU may quiet a NaN's payload) and `matvecAT`.
 */

const noGpu = await gpuUnavailableReason();

/** f32 bits of every f16 pattern (the CPU twin), for fast comparison of large outputs. */
const widened = Uint32Array.from({ length: 65536 }, (_, h) => float16BitsToFloat32Bits(h));

const isNaNHalf = (h: number): boolean => (h & 0x7c00) === 0x7c00 && (h & 0x3ff) !== 0;

describe.skipIf(noGpu !== undefined)('kernels split work beyond one binding or dispatch dimension', () => {
  const suite = contextOnTestDevice();
  let device: GPUDevice;
  beforeAll(() => {
    device = suite.context.device;
  });

  const f16Pipeline = 'activation io (f16_to_f32)';

  /**
   * Widens `halves` (placed at byte `inputOffset` of their buffer) into an output buffer at byte
   * `outputOffset` filled with a sentinel, and returns the whole output buffer's words and the
   * conversion's dispatches.
   */
  async function widen(halves: Uint16Array, inputOffset: number, outputOffset: number, maxBindingBytes?: number): Promise<{ words: Uint32Array; dispatches: number }> {
    const count = halves.length;
    const inputHalves = new Uint16Array(inputOffset / 2 + count + 3).fill(0x7bff);
    inputHalves.set(halves, inputOffset / 2);
    const input = createBufferWithData(device, 'test f16 input', inputHalves, STORAGE_USAGE);
    const outputWords = outputOffset / 4 + count + 5;
    const output = createBufferWithData(device, 'test f32 output', new Uint32Array(outputWords).fill(0xdeadbeef), STORAGE_USAGE);
    const knob = maxBindingBytes === undefined ? {} : { maxBindingBytes };
    const args = { input, inputOffset, output, outputOffset, count, ...knob };
    const scratch = new GpuScratch(device);
    try {
      const dispatches = dispatchesByPipeline(device, (encoder) => dispatchF16ToF32(device, encoder, scratch, args)).get(f16Pipeline) ?? 0;
      const words = await withValidation(device, 'f16 → f32 test', async () => {
        const encoder = device.createCommandEncoder({ label: 'f16 → f32 test' });
        dispatchF16ToF32(device, encoder, scratch, args);
        device.queue.submit([encoder.finish()]);
        return new Uint32Array(await readBuffer(device, output, 4 * outputWords));
      });
      return { words, dispatches };
    } finally {
      scratch.destroy();
      input.destroy();
      output.destroy();
    }
  }

  /** Checks `words[outputOffset / 4 + e]` = the twin of `halves[e]` (a NaN for a NaN) and the sentinel elsewhere. */
  function expectWidened(words: Uint32Array, halves: Uint16Array, outputOffset: number): void {
    const first = outputOffset / 4;
    let wrong = -1;
    for (let e = 0; e < halves.length && wrong < 0; e++) {
      const h = halves[e] as number;
      const got = words[first + e] as number;
      const ok = isNaNHalf(h) ? (got & 0x7f800000) === 0x7f800000 && (got & 0x7fffff) !== 0 : got === widened[h];
      if (!ok) wrong = e;
    }
    expect(wrong, wrong < 0 ? '' : `element ${wrong}: f16 0x${halves[wrong]?.toString(16)} gave 0x${words[first + wrong]?.toString(16)}`).toBe(-1);
    for (let i = 0; i < first; i++) expect(words[i]).toBe(0xdeadbeef);
    for (let i = first + halves.length; i < words.length; i++) expect(words[i]).toBe(0xdeadbeef);
  }

  it('widens f16 values whose f32 output is one word over a storage binding (one binding was refused)', async () => {
    // The device's own limit where it is 128 MiB (lavapipe, WebGPU's default); big GPUs allow bindings
    // of GiBs, too much for a test, so there the same 128 MiB comes as the kernel's cap instead.
    const deviceBinding = device.limits.maxStorageBufferBindingSize;
    const maxBinding = Math.min(deviceBinding, 2 ** 27);
    const count = maxBinding / 4 + 1;
    // Every f16 pattern, over and over, shifted so chunks do not start on a pattern boundary.
    const halves = new Uint16Array(count);
    for (let e = 0; e < count; e++) halves[e] = (e * 40503 + 11) & 0xffff;
    const { words, dispatches } = await widen(halves, 2, 0, maxBinding < deviceBinding ? maxBinding : undefined);
    const perChunk = itemsPerBinding(4, maxBinding, device.limits.minStorageBufferOffsetAlignment);
    expect(dispatches).toBe(Math.ceil(count / perChunk));
    expect(dispatches).toBeGreaterThan(1);
    expectWidened(words, halves, 0);
  }, 120_000);

  it('widens in chunks forced by maxBindingBytes at odd offsets: the same bits as one dispatch', async () => {
    const rng = new Rng(5);
    const count = 1000;
    const halves = Uint16Array.from({ length: count }, () => rng.nextInt(65536));
    const alignment = device.limits.minStorageBufferOffsetAlignment;
    for (const [inputOffset, outputOffset, maxBindingBytes] of [
      [0, 0, 1024],
      [2, 4, 1024],
      [alignment + 6, alignment + 12, 600],
      [2 * alignment - 2, 4, alignment + 4],
    ] as const) {
      const what = `input at ${inputOffset}, output at ${outputOffset}, bindings of ${maxBindingBytes} bytes`;
      const whole = await widen(halves, inputOffset, outputOffset);
      const split = await widen(halves, inputOffset, outputOffset, maxBindingBytes);
      expect(whole.dispatches, what).toBe(1);
      expect(split.dispatches, what).toBe(Math.ceil(count / itemsPerBinding(4, maxBindingBytes, alignment)));
      expect(split.dispatches, what).toBeGreaterThan(1);
      expect(split.words, what).toEqual(whole.words);
      expectWidened(split.words, halves, outputOffset);
    }
  });

  it('GPU quantize of an f16 matrix passes its maxBindingBytes to the f16 staging: chunks, same codes as the CPU', async () => {
    const rows = 16;
    const cols = 40;
    const bits = Uint16Array.from(gaussianMatrix(rows, cols, 21).data, (v) => float16Bits(v));
    const padded = new Uint16Array(3 + bits.length);
    padded.set(bits, 3);
    const buffer = createBufferWithData(device, 'f16 quantize input', padded, STORAGE_USAGE);
    // Count the conversion's bind groups (one per chunk) while GPU quantize records its own commands.
    const labels: string[] = [];
    const createBindGroup = device.createBindGroup.bind(device);
    device.createBindGroup = (descriptor: GPUBindGroupDescriptor): GPUBindGroup => {
      labels.push(descriptor.label ?? '');
      return createBindGroup(descriptor);
    };
    const options = { scheme: 'e8-q16', seed: 3, nonce: 4 } as const;
    try {
      const onGpu = (await gpuQuantizeLattice(device, { buffer, rows, cols, offset: 6, format: 'f16' }, { ...options, maxBindingBytes: 512 })) as GpuUniversalQuantizedMatrix;
      try {
        const gpu = await onGpu.read();
        const cpu = quantize({ rows, cols, data: bits }, options) as UniversalLatticeMatrix;
        expect(gpu.codes).toEqual(cpu.codes);
        expect(gpu.codesHigh).toEqual(cpu.codesHigh);
        expect(gpu.escapes).toEqual(cpu.escapes);
        expect(gpu.norms).toEqual(cpu.norms);
        expect(gpu.means).toEqual(cpu.means);
      } finally {
        onGpu.destroy();
      }
    } finally {
      delete (device as { createBindGroup?: unknown }).createBindGroup;
      buffer.destroy();
    }
    const chunks = labels.filter((label) => label.startsWith('f16 → f32')).length;
    expect(chunks).toBe(Math.ceil((rows * cols) / itemsPerBinding(4, 512, device.limits.minStorageBufferOffsetAlignment)));
    expect(chunks).toBeGreaterThan(1);
  });

  /** y = W·x of a QuantizedLinear over `tokens` tokens against `matvecAT`, recorded and submitted under validation. */
  async function linear(gpu: GPUDevice, center: boolean, tokens: number): Promise<void> {
    const n = 8;
    const out = 8;
    const cpu = quantize(gaussianMatrix(n, out, 1), { scheme: 'e8-q16', seed: 2, nonce: 1, center }) as LatticeQuantizedMatrix;
    const weight = uploadLatticeMatrix(gpu, cpu);
    const layer = QuantizedLinear.create(gpu, weight as LinearWeight, { maxTokens: tokens });
    const x = gaussianMatrix(n, tokens, 3);
    const xBuffer = createBufferWithData(gpu, 'test x', x.data, STORAGE_USAGE);
    const yBuffer = createBuffer(gpu, 'test y', 4 * out * tokens, STORAGE_USAGE);
    try {
      const y = await withValidation(gpu, `QuantizedLinear over ${tokens} tokens`, async () => {
        const encoder = gpu.createCommandEncoder({ label: 'many tokens' });
        layer.record(encoder, xBuffer, yBuffer, { tokens });
        gpu.queue.submit([encoder.finish()]);
        return new Float32Array(await readBuffer(gpu, yBuffer, 4 * out * tokens));
      });
      const expected = matvecAT(cpu, x).data;
      let rowNorm = 0;
      for (let j = 0; j < out; j++) rowNorm = Math.max(rowNorm, cpu.norms[j] as number);
      let worst = 0;
      let worstAt = -1;
      for (let r = 0; r < tokens; r++) {
        let xNorm = 0;
        for (let i = 0; i < n; i++) xNorm += (x.data[r * n + i] as number) ** 2;
        const tolerance = 1e-4 * (4 * rowNorm + 1) * (Math.sqrt(xNorm) + 1);
        for (let j = 0; j < out; j++) {
          const error = Math.abs((y[r * out + j] as number) - (expected[r * out + j] as number)) / tolerance;
          if (!(error <= worst)) {
            worst = error;
            worstAt = r * out + j;
          }
        }
      }
      expect(worst, `worst at output ${worstAt}: ${y[worstAt]} vs ${expected[worstAt]}`).toBeLessThanOrEqual(1);
    } finally {
      layer.destroy();
      weight.destroy();
      xBuffer.destroy();
      yBuffer.destroy();
    }
  }

  // Where the product writes Y itself (adapter limits: 10 storage buffers or more) only a centred W
  // records the per-call sums (an uncentred one takes them in the product); on WebGPU's default 8
  // storage buffers both do.
  for (const limits of ['adapter', 'default'] as const) {
    for (const center of limits === 'adapter' ? [true] : [false, true]) {
      it(`QuantizedLinear over 70000 tokens (per-call sums beyond 65535 workgroups): y = W·x, ${center ? 'centred' : 'uncentred'}, ${limits} limits`, async () => {
        if (limits === 'adapter') {
          await linear(device, center, 70000);
          return;
        }
        const plain = await defaultLimitsDevice();
        try {
          expect(fusedFinishSupported(plain)).toBe(false);
          await linear(plain, center, 70000);
        } finally {
          plain.destroy();
        }
      }, 120_000);
    }
  }

  // The quad int8-input GEMVs (E8 points, E8 residues, D3 quads) loop over the right-hand sides inside
  // each workgroup, yet refused any call of more than maxComputeWorkgroupsPerDimension (65535) of them
  // as not fitting one storage binding: a layer of 70000 tokens of 16 inputs (4.5 MB of x) was refused
  // against 128 MiB, where the f32-input layer and the other int8-input GEMVs take it. Here 150 tokens
  // on a device that reports a limit of 100 workgroups per dimension to the library (as
  // wholeBindings.test.ts lowers the binding limit; 70000 tokens on the real limit took 12–20 s each).
  it.each([
    ['e8-4bit', 150, 100],
    ['e8-q16-deterministic', 150, 100],
    ['d3-q6-deterministic', 150, 100],
  ] as const)(
    'QuantizedLinear with int8Inputs (%s, a quad form) over %i tokens, beyond the workgroup limit: the same bits as in two records, y ≈ W·x; centred (Σx a workgroup per token): recorded in chunks, the same bits',
    async (scheme, tokens, workgroupLimit) => {
      const gpu = (await testDevice()).device;
      const limits = new Proxy(gpu.limits, { get: (target, name) => (name === 'maxComputeWorkgroupsPerDimension' ? workgroupLimit : Reflect.get(target, name)) });
      Object.defineProperty(gpu, 'limits', { value: limits, configurable: true });
      const limit = gpu.limits.maxComputeWorkgroupsPerDimension;
      expect(tokens).toBeGreaterThan(limit);
      const n = 16;
      const out = 8;
      const half = Math.ceil(tokens / 2);
      const dotPath = dotPathFor(suite.context.features);
      const cpu = quantize(gaussianMatrix(n, out, 1), { scheme, seed: 2 }) as LatticeQuantizedMatrix;
      const weight = uploadLatticeMatrix(gpu, cpu);
      const layer = QuantizedLinear.create(gpu, weight as LinearWeight, { maxTokens: tokens, int8Inputs: dotPath });
      const x = gaussianMatrix(n, tokens, 3);
      const xBuffer = createBufferWithData(gpu, 'test x', x.data, STORAGE_USAGE);
      const whole = createBufferWithData(gpu, 'test y (one record)', new Float32Array(out * tokens).fill(Number.NaN), STORAGE_USAGE);
      const halves = createBufferWithData(gpu, 'test y (two records)', new Float32Array(out * tokens).fill(Number.NaN), STORAGE_USAGE);
      const centred = uploadLatticeMatrix(gpu, quantize(gaussianMatrix(n, out, 1), { scheme, seed: 2, center: true }) as LatticeQuantizedMatrix);
      const centredLayer = QuantizedLinear.create(gpu, centred as LinearWeight, { maxTokens: tokens, int8Inputs: dotPath });
      /** `target`'s y of all the tokens in one record, and in two records of about half. */
      const oneAndTwoRecords = (target: QuantizedLinear, what: string): Promise<[Float32Array, Float32Array]> =>
        withValidation(gpu, `${what} over ${tokens} tokens`, async () => {
          const encoder = gpu.createCommandEncoder({ label: `many tokens, ${what}` });
          target.record(encoder, xBuffer, whole, { tokens });
          target.record(encoder, xBuffer, halves, { tokens: half });
          target.record(encoder, { buffer: xBuffer, offset: 4 * n * half }, { buffer: halves, offset: 4 * out * half }, { tokens: tokens - half });
          gpu.queue.submit([encoder.finish()]);
          return [new Float32Array(await readBuffer(gpu, whole, 4 * out * tokens)), new Float32Array(await readBuffer(gpu, halves, 4 * out * tokens))];
        });
      try {
        const [y, yHalves] = await oneAndTwoRecords(layer, 'int8 QuantizedLinear');
        // Every int8-input path gives the same bits at any batch size (the README says so).
        expect(Buffer.from(y.buffer).equals(Buffer.from(yHalves.buffer))).toBe(true);
        // And every output was written (none left NaN), with W·x on a sample of tokens (the last ones
        // included): the inputs' int8 rounding adds ≈ 10⁻³ of ‖ŵ_j‖·‖x‖ here.
        expect(y.some(Number.isNaN)).toBe(false);
        const sample = Array.from({ length: tokens }, (_, r) => r).filter((r) => r % 97 === 0 || r >= tokens - 64);
        const expected = matvecAT(cpu, { rows: n, cols: sample.length, data: Float32Array.from(sample.flatMap((r) => Array.from(x.data.subarray(r * n, (r + 1) * n)))) }).data;
        const decoded = dequantize(cpu).data;
        const columnNorms = Array.from({ length: out }, (_, j) => Math.hypot(...decoded.subarray(j * n, (j + 1) * n)));
        let worst = 0;
        sample.forEach((r, s) => {
          const xNorm = Math.hypot(...x.data.subarray(r * n, (r + 1) * n));
          for (let j = 0; j < out; j++) worst = Math.max(worst, Math.abs((y[r * out + j] as number) - (expected[s * out + j] as number)) / ((columnNorms[j] as number) * xNorm));
        });
        expect(worst).toBeLessThan(2e-2);
        // A centred W's Σx takes a workgroup per right-hand side: the kernel refuses more than the limit
        // ("call with at most 100"), so the layer records chunks of at most that many tokens, with the
        // bits of records of 75 (it refused the record with the kernel's message).
        const [centredY, centredHalves] = await oneAndTwoRecords(centredLayer, 'centred int8 QuantizedLinear');
        expect(half).toBeLessThanOrEqual(limit);
        expect(centredY.some(Number.isNaN)).toBe(false);
        expect(Buffer.from(centredY.buffer).equals(Buffer.from(centredHalves.buffer))).toBe(true);
        expect(Buffer.from(centredY.buffer).equals(Buffer.from(y.buffer))).toBe(false);
      } finally {
        layer.destroy();
        centredLayer.destroy();
        weight.destroy();
        centred.destroy();
        xBuffer.destroy();
        whole.destroy();
        halves.destroy();
        gpu.destroy();
      }
    },
    120_000,
  );

  /** The per-call sums (rhs dither sums, then rhs Σx) of a centred 8 × 8 E8 matrix, and their dispatches. */
  async function callSums(w: GpuUniversalMatrix, rhs: number, offsets: { xRotated: number; x: number }, maxBindingBytes?: number): Promise<{ sums: Uint32Array; dispatches: number }> {
    const rng = new Rng(rhs);
    const xRotated = Float32Array.from({ length: offsets.xRotated / 4 + w.length * rhs }, () => rng.nextGaussian());
    const x = Float32Array.from({ length: offsets.x / 4 + w.rows * rhs }, () => rng.nextGaussian());
    const xRotatedBuffer = createBufferWithData(device, 'test x̃', xRotated, STORAGE_USAGE);
    const xBuffer = createBufferWithData(device, 'test x', x, STORAGE_USAGE);
    const args = { w, xRotated: xRotatedBuffer, xRotatedOffset: offsets.xRotated, x: xBuffer, xOffset: offsets.x, rhs, ...(maxBindingBytes === undefined ? {} : { maxBindingBytes }) };
    const scratch = new GpuScratch(device);
    try {
      const dispatches = dispatchesByPipeline(device, (encoder) => dispatchUniversalCallSums(device, encoder, scratch, args)).get('universal gemv finish E8: per-call sums') ?? 0;
      const sums = await withValidation(device, 'call sums test', async () => {
        const encoder = device.createCommandEncoder({ label: 'call sums test' });
        const recorded = dispatchUniversalCallSums(device, encoder, scratch, args);
        device.queue.submit([encoder.finish()]);
        return new Uint32Array(await readBuffer(device, recorded.sums, 8 * rhs));
      });
      return { sums, dispatches };
    } finally {
      scratch.destroy();
      xRotatedBuffer.destroy();
      xBuffer.destroy();
    }
  }

  function centredWeight(): { weight: GpuUniversalQuantizedMatrix } {
    const cpu = quantize(gaussianMatrix(8, 8, 4), { scheme: 'e8-q16', seed: 2, nonce: 1, center: true }) as UniversalLatticeMatrix;
    return { weight: uploadLatticeMatrix(device, cpu) as GpuUniversalQuantizedMatrix };
  }

  it('per-call sums over 70000 right-hand sides in one call: the same bits as in ranges of at most 65535', async () => {
    const { weight } = centredWeight();
    try {
      const offsets = { xRotated: 0, x: 0 };
      const whole = await callSums(weight, 70000, offsets);
      const ranges = await callSums(weight, 70000, offsets, 4 * 8 * 20000);
      expect(whole.dispatches).toBe(1);
      expect(ranges.dispatches).toBe(4);
      expect(whole.sums).toEqual(ranges.sums);
      // Σx of the last right-hand side is there (not left 0).
      expect(whole.sums[2 * 70000 - 1]).not.toBe(0);
    } finally {
      weight.destroy();
    }
  }, 120_000);

  it('per-call sums in ranges of right-hand sides forced by maxBindingBytes, at offsets: the same bits as one range', async () => {
    const { weight } = centredWeight();
    try {
      const alignment = device.limits.minStorageBufferOffsetAlignment;
      const offsets = { xRotated: alignment + 32, x: 96 };
      const whole = await callSums(weight, 50, offsets);
      const maxBindingBytes = alignment + 4 * 8 * 4; // 4 or 5 right-hand sides per range
      const split = await callSums(weight, 50, offsets, maxBindingBytes);
      expect(whole.dispatches).toBe(1);
      expect(split.dispatches).toBe(Math.ceil(50 / itemsPerBinding(4 * 8, maxBindingBytes, alignment)));
      expect(split.dispatches).toBeGreaterThan(1);
      expect(split.sums).toEqual(whole.sums);
      expect(whole.sums.every((bits) => bits !== 0)).toBe(true);
    } finally {
      weight.destroy();
    }
  });

  it('per-call sums refusals say the limit in bytes and the most right-hand sides that fit', () => {
    const { weight } = centredWeight();
    const buffer = createBuffer(device, 'small x', 1024, STORAGE_USAGE);
    const scratch = new GpuScratch(device);
    try {
      const limit = device.limits.maxStorageBufferBindingSize;
      const rhs = limit / 8 + 1;
      const encoder = device.createCommandEncoder({ label: 'refusals' });
      expect(() => dispatchUniversalCallSums(device, encoder, scratch, { w: weight, xRotated: buffer, x: buffer, rhs })).toThrow(
        `the sums of ${rhs} right-hand sides take ${8 * rhs} bytes, more than one storage binding (maxStorageBufferBindingSize ${limit} bytes): at most ${limit / 8} right-hand sides per call`,
      );
      const alignment = device.limits.minStorageBufferOffsetAlignment;
      expect(() => dispatchUniversalCallSums(device, encoder, scratch, { w: weight, xRotated: buffer, x: buffer, rhs: 2, maxBindingBytes: alignment + 16 })).toThrow(
        `one right-hand side of x̃ (8 f32 entries, 32 bytes, plus ${alignment - 4} bytes of alignment slack) does not fit a storage binding of ${alignment + 16} bytes`,
      );
      encoder.finish();
    } finally {
      scratch.destroy();
      buffer.destroy();
      weight.destroy();
    }
  });
});
