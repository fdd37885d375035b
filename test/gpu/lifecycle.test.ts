import { beforeAll, describe, expect, it } from 'vitest';
import { createBuffer, createBufferWithData, readBufferExclusive, STORAGE_USAGE } from '../../src/gpu/buffers.js';
import { GpuEngine } from '../../src/gpu/engine.js';
import { uploadLatticeMatrix } from '../../src/gpu/gpuQuantize.js';
import { latticeGemv } from '../../src/gpu/kernels/latticeGemv.js';
import { universalGemv, type UniversalGemvOptions } from '../../src/gpu/kernels/universalGemv.js';
import { uploadWeightOnly, weightOnlyGemm, weightOnlyGemv } from '../../src/gpu/kernels/weightOnlyGemv.js';
import { MatrixColumnSide, type GpuDeterministicMatrix } from '../../src/gpu/latticeOperand.js';
import { QuantizedLinear } from '../../src/gpu/quantizedLinear.js';
import { GpuScratch } from '../../src/gpu/scratch.js';
import { uploadUniversalMatrix } from '../../src/gpu/universalOperand.js';
import { matvecAT } from '../../src/product/matvec.js';
import { quantize } from '../../src/quantize/quantize.js';
import type { DeterministicLatticeMatrix, UniversalLatticeMatrix } from '../../src/quantize/quantizedMatrix.js';
import { gaussianMatrix } from '../../src/rotation/random.js';
import { RandomizedHadamard } from '../../src/rotation/randomizedHadamard.js';
import { float16Bits } from '../../src/scalar/floatFormats.js';
import { quantizeWeights } from '../../src/weightonly/quantizeWeights.js';
import { contextOnTestDevice, gpuUnavailableReason, testDevice, trackBuffers } from './gpuTestDevice.js';

/*
 * Lifecycles of what owns GPU memory: a GPU matrix is its own copy (mutating the CPU object it was
 * uploaded from, or the one read() returns, changes nothing on the GPU); a GPU quantization whose
 * submission WebGPU rejects is refused, even when the application pops an error scope meanwhile
 * (RELIABILITY, "Outside our control": the submission check must catch it, not only the scope), and
 * leaves no buffer allocated; destroyed matrices and matrices of another device are refused by name
 * before anything is recorded, not reported by WebGPU at the caller's submit; an aborted or otherwise
 * refused GPU quantization settles without waiting for the device and leaves nothing allocated.
 */

const noGpu = await gpuUnavailableReason();

describe.skipIf(noGpu !== undefined)('GPU object lifecycles', () => {
  const suite = contextOnTestDevice();
  let device: GPUDevice;
  let engine: GpuEngine;
  beforeAll(() => {
    device = suite.context.device;
    engine = GpuEngine.create(device);
  });

  const n = 64;
  const w = gaussianMatrix(n, 4, 3);
  const x = gaussianMatrix(n, 1, 4);

  it('a deterministic GPU matrix keeps its own scale multiples: mutating the uploaded CPU object or what read() returns changes nothing', async () => {
    const q = quantize(w, { scheme: 'd3-q6-deterministic', seed: 7 }) as DeterministicLatticeMatrix;
    const reference = matvecAT(q, x).data;
    const uploaded = engine.upload(q);
    const quantized = await engine.quantize(w, { scheme: 'd3-q6-deterministic', seed: 7 });
    try {
      q.multiples.fill(1000);
      const read = await quantized.read();
      (read as DeterministicLatticeMatrix).multiples.fill(3);
      for (const [what, g] of [['uploaded', uploaded], ['GPU-quantized', quantized]] as const) {
        const y = (await engine.matvec(g, x)).data;
        for (let j = 0; j < reference.length; j++) expect(Math.abs((y[j] as number) - (reference[j] as number)), `${what}, column ${j}`).toBeLessThan(1e-4);
      }
    } finally {
      uploaded.destroy();
      quantized.destroy();
    }
  });

  for (const [scheme, format] of [['d3-q6', 'f32'], ['d3-q6', 'f16'], ['e8-q16', 'f32'], ['d3-q6-deterministic', 'f16'], ['d3-q6-deterministic', 'f32']] as const) {
    it(`GPU quantize of a destroyed input (${scheme}, ${format}) is refused, also when the application pops its error scope meanwhile, and leaves no buffer`, async () => {
      for (const popScope of [false, true]) {
        const bytes = format === 'f32' ? 4 : 2;
        const input = createBufferWithData(device, 'lifecycle input', format === 'f32' ? w.data : Uint16Array.from(w.data, (v) => float16Bits(v)), STORAGE_USAGE);
        expect(input.size).toBeGreaterThanOrEqual(bytes * n * 4);
        input.destroy();
        const tracker = trackBuffers(device);
        try {
          if (popScope) device.pushErrorScope('validation'); // the application's own scope
          // Before: the universal encode and the f16 widening were confirmed by the scope only, so
          // with the scope popped the call resolved to a matrix of zero norms.
          const refused = expect(engine.quantize({ buffer: input, rows: n, cols: 4, format }, { scheme, seed: 7 })).rejects.toThrow(/destroyed|submission/);
          if (popScope) {
            await new Promise((resolve) => setTimeout(resolve, 0));
            await device.popErrorScope(); // may take the library's error: the submission check must still refuse
          }
          await refused;
          // Before: the result's codes, escapes and norms stayed allocated after the refusal.
          expect(tracker.live(), popScope ? 'with the scope popped' : 'alone').toEqual([]);
        } finally {
          tracker.restore();
        }
      }
    });
  }

  for (const scheme of ['e8-q16', 'd3-q6-deterministic'] as const) {
    it(`an abort settles GPU quantize (${scheme}) at once, also while it waits behind other work, and a throwing onProgress frees the result`, async () => {
      // The device's rotation signs for seed 7 at both lengths, cached once per device.
      for (const m of [w, gaussianMatrix(1024, 1, 9)]) (await engine.quantize(m, { scheme, seed: 7 })).destroy();
      const tracker = trackBuffers(device);
      try {
        // Aborted right after the call. Before: the abort was only checked before the call queued,
        // so it resolved to a matrix.
        const controller = new AbortController();
        const call = engine.quantize(w, { scheme, seed: 7, signal: controller.signal });
        controller.abort('stop');
        await expect(call).rejects.toThrow(/^GPU quantize was aborted: stop$/);

        // Aborted while three quantizations ahead of it hold the device: it settles before they end.
        let aheadDone = false;
        const ahead = Promise.all([10, 11, 12].map((seed) => engine.quantize(gaussianMatrix(1024, 64, seed), { scheme, seed: 7 }))).then((done) => {
          aheadDone = true;
          return done;
        });
        const queuedController = new AbortController();
        const queued = engine.quantize(w, { scheme, seed: 7, signal: queuedController.signal });
        queuedController.abort();
        await expect(queued).rejects.toThrow(/^GPU quantize was aborted: AbortError/);
        expect(aheadDone, 'the aborted call waited for the work ahead of it').toBe(false);
        for (const m of await ahead) m.destroy();

        // Before: the callback's error rejected the call and left the result's buffers allocated.
        const progressFails = engine.quantize(w, {
          scheme,
          seed: 7,
          onProgress: () => {
            throw new Error('progress callback failed');
          },
        });
        await expect(progressFails).rejects.toThrow('progress callback failed');
        // Sections run in call order: once this one is done, the aborted ones have ended too.
        (await engine.quantize(w, { scheme, seed: 7 })).destroy();
        expect(tracker.live()).toEqual([]);
      } finally {
        tracker.restore();
      }
    });
  }

  for (const scheme of ['e8-q16', 'd3-q6-deterministic'] as const) {
    it(`GPU quantize (${scheme}) refused only by its error scope, after it built its result, frees the result`, async () => {
      const m = gaussianMatrix(1024, 64, 13);
      (await engine.quantize(m, { scheme, seed: 7 })).destroy(); // rotation signs cached before tracking
      const tracker = trackBuffers(device);
      try {
        const call = engine.quantize(m, { scheme, seed: 7 });
        const refused = expect(call).rejects.toThrow(/GPUValidationError/);
        // While the call holds the device, an invalid call of the application lands in its scope
        // (RELIABILITY, "Outside our control"): every submission of the call passes its check and the
        // result is built, and only the scope, popped at the end, refuses the call.
        await new Promise((resolve) => setTimeout(resolve, 0));
        device.createBuffer({ label: 'invalid usage', size: 4, usage: 0xffff }).destroy();
        await refused;
        expect(tracker.live()).toEqual([]);
      } finally {
        tracker.restore();
      }
    });
  }

  it("an input reused by the caller before an earlier call's turn: each call uses what it was given when it was made", async () => {
    // Calls wait for their turn on the device; the app reuses one descriptor or array for the next
    // call meanwhile. Before, GPU quantize read the moved offset (another window), matvec's cols
    // dropped from 4 to 2 left the result's last two columns 0, universalGemv multiplied the second x
    // with the first's exponents, and weightOnlyGemv computed NaN and ±Infinity from an x its check
    // had never seen (the second call, given it directly, is refused); matvecInto and weightOnlyGemm alike.
    const windows = gaussianMatrix(n, 8, 11);
    const buffer = createBufferWithData(device, 'lifecycle two windows', windows.data, STORAGE_USAGE);
    const xs = gaussianMatrix(n, 4, 12);
    const xBuffer = createBufferWithData(device, 'lifecycle x of 4 columns', xs.data, STORAGE_USAGE);
    const gemvW = quantize(w, { scheme: 'e8-q16', seed: 7, nonce: 3 }) as UniversalLatticeMatrix;
    const gpuGemvW = uploadUniversalMatrix(device, gemvW);
    const weightOnly = quantizeWeights(gaussianMatrix(16, n, 13), null, { method: 'rtn', rate: 3 });
    const w0 = await engine.quantize(w, { scheme: 'd3-q6', seed: 7, nonce: 4 });
    try {
      const aloneQuantized = await engine.quantize({ buffer, rows: n, cols: 4 }, { scheme: 'e8-q16', seed: 1, nonce: 5 });
      const aloneCodes = await aloneQuantized.read();
      aloneQuantized.destroy();
      const input: { buffer: GPUBuffer; rows: number; cols: number; offset: number } = { buffer, rows: n, cols: 4, offset: 0 };
      const first = engine.quantize(input, { scheme: 'e8-q16', seed: 1, nonce: 5 });
      input.offset = 4 * n * 4;
      const second = engine.quantize(input, { scheme: 'e8-q16', seed: 1, nonce: 6 });
      const [q0, q1] = await Promise.all([first, second]);
      expect(await q0.read()).toEqual(aloneCodes);
      q0.destroy();
      q1.destroy();

      const aloneY = await engine.matvec(w0, { buffer: xBuffer, rows: n, cols: 4 });
      const x: { buffer: GPUBuffer; rows: number; cols: number } = { buffer: xBuffer, rows: n, cols: 4 };
      const y = engine.matvec(w0, x);
      x.cols = 2;
      const [y4, y2] = await Promise.all([y, engine.matvec(w0, x)]);
      expect(y4).toEqual(aloneY);
      expect(y2.data).toEqual(aloneY.data.subarray(0, 2 * w0.cols));
      // matvecInto alike (y stays on the GPU): the first call writes all 4 columns, the second 2.
      const yBytes = 4 * w0.cols * 4;
      const into = [createBuffer(device, 'lifecycle matvecInto y (4 columns)', yBytes, STORAGE_USAGE), createBuffer(device, 'lifecycle matvecInto y (2 columns)', yBytes, STORAGE_USAGE)];
      try {
        x.cols = 4;
        const firstInto = engine.matvecInto(w0, x, into[0] as GPUBuffer);
        x.cols = 2;
        await Promise.all([firstInto, engine.matvecInto(w0, x, into[1] as GPUBuffer)]);
        const [into4, into2] = await Promise.all(into.map((buffer) => readBufferExclusive(device, buffer, yBytes)));
        expect(new Float32Array(into4 as ArrayBuffer)).toEqual(aloneY.data);
        expect(new Float32Array(into2 as ArrayBuffer).subarray(0, 2 * w0.cols)).toEqual(aloneY.data.subarray(0, 2 * w0.cols));
      } finally {
        for (const buffer of into) buffer.destroy();
      }

      const small = gaussianMatrix(n, 1, 14).data.map((v) => v * 1e-3);
      const aloneGemv = await universalGemv(device, gpuGemvW, small);
      const reused = small.slice();
      const gemv = universalGemv(device, gpuGemvW, reused);
      reused.set(gaussianMatrix(n, 1, 15).data.map((v) => v * 1e30));
      const [gemv1] = await Promise.all([gemv, universalGemv(device, gpuGemvW, reused)]);
      expect(gemv1).toEqual(aloneGemv);
      // Its options alike: a key added after the call (outputFormat: 'f16', which it refuses) reached
      // its dispatch, which wrote Y in f16, read back as f32 (−24350 for 1.79).
      const options: UniversalGemvOptions & { outputFormat?: string } = {};
      const waiting = Promise.all([universalGemv(device, gpuGemvW, small), universalGemv(device, gpuGemvW, small, options)]);
      options.outputFormat = 'f16';
      expect((await waiting)[1]).toEqual(aloneGemv);
      // latticeGemv's given R·x alike: an array refilled with another x's R·x after the call (the first
      // call's result was then that x's product, ~1e31, scaled by the first x's exponents).
      const deterministicW = quantize(w, { scheme: 'd3-q6-deterministic', seed: 7 }) as DeterministicLatticeMatrix;
      const gpuDeterministicW = uploadLatticeMatrix(device, deterministicW);
      try {
        const rotation = new RandomizedHadamard(n, deterministicW.seed);
        const rotated = (v: Float32Array): Float32Array => {
          const out = new Float32Array(deterministicW.length);
          rotation.forward(v, out);
          return out;
        };
        const huge = gaussianMatrix(n, 1, 15).data.map((v) => v * 1e30);
        const aloneLattice = await latticeGemv(device, gpuDeterministicW, small, { xRotated: rotated(small) });
        const reusedRotated = rotated(small);
        const latticeFirst = latticeGemv(device, gpuDeterministicW, small, { xRotated: reusedRotated });
        reusedRotated.set(rotated(huge));
        const [lattice1] = await Promise.all([latticeFirst, latticeGemv(device, gpuDeterministicW, huge, { xRotated: reusedRotated })]);
        expect(lattice1).toEqual(aloneLattice);
      } finally {
        gpuDeterministicW.destroy();
      }

      const xw = gaussianMatrix(weightOnly.n, 1, 16).data;
      const aloneWeightOnly = await weightOnlyGemv(device, weightOnly, xw);
      const reusedW = xw.slice();
      const weightOnlyFirst = weightOnlyGemv(device, weightOnly, reusedW);
      reusedW.fill(3e37);
      const weightOnlySecond = expect(weightOnlyGemv(device, weightOnly, reusedW)).rejects.toThrow(/above 2\^31, the norm for which the GEMV is finite/);
      expect(await weightOnlyFirst).toEqual(aloneWeightOnly);
      await weightOnlySecond;
      // weightOnlyGemm alike: its X refilled after the call.
      const xm = gaussianMatrix(weightOnly.n, 3, 17);
      const aloneGemm = await weightOnlyGemm(device, weightOnly, xm);
      const reusedM = { ...xm, data: xm.data.slice() };
      const gemmFirst = weightOnlyGemm(device, weightOnly, reusedM);
      reusedM.data.fill(3e37);
      const gemmSecond = expect(weightOnlyGemm(device, weightOnly, reusedM)).rejects.toThrow(/above 2\^31, the norm for which the GEMV is finite/);
      expect(await gemmFirst).toEqual(aloneGemm);
      await gemmSecond;
    } finally {
      for (const resource of [buffer, xBuffer, gpuGemvW, w0]) resource.destroy();
    }
  });

  it('matmulATInto, matvecInto and a QuantizedLinear (uploaded bias, deterministic column side) leave no buffer once settled or destroyed', async () => {
    const universal = engine.upload(quantize(w, { scheme: 'd3-q6', seed: 7, nonce: 21 }) as UniversalLatticeMatrix);
    const deterministic = engine.upload(quantize(w, { scheme: 'd3-q6-deterministic', seed: 7 }) as DeterministicLatticeMatrix);
    const output = createBuffer(device, 'lifecycle output', 4 * 4 * 4, STORAGE_USAGE);
    const xBuffer = createBufferWithData(device, 'lifecycle layer x', x.data, STORAGE_USAGE);
    // Once untracked: whatever a first call caches per device (pipelines, rotation signs) is not a leak.
    await engine.matmulATInto(universal, universal, output);
    await engine.matvecInto(deterministic, x, output);
    const tracker = trackBuffers(device);
    try {
      await engine.matmulATInto(universal, universal, output);
      expect(tracker.live(), 'matmulATInto').toEqual([]);
      await engine.matvecInto(deterministic, x, output);
      expect(tracker.live(), 'matvecInto (x from the host)').toEqual([]);
      for (const weight of [deterministic, universal]) {
        const layer = QuantizedLinear.create(device, weight, { bias: new Float32Array(4).fill(0.5) });
        const encoder = device.createCommandEncoder({ label: 'lifecycle layer' });
        layer.record(encoder, xBuffer, output);
        device.queue.submit([encoder.finish()]);
        await device.queue.onSubmittedWorkDone();
        layer.destroy();
        expect(tracker.live(), `QuantizedLinear over ${weight.mode} weights`).toEqual([]);
      }
    } finally {
      tracker.restore();
      for (const resource of [universal, deterministic, output, xBuffer]) resource.destroy();
    }
  });

  it('destroyed matrices and matrices of another device are refused by name before anything is recorded', async () => {
    const other = await testDevice({ label: 'lifecycle other device' });
    const otherEngine = GpuEngine.create(other.device);
    const destroyed = await engine.quantize(w, { scheme: 'd3-q6-deterministic', seed: 7 });
    destroyed.destroy();
    const live = await engine.quantize(w, { scheme: 'd3-q6-deterministic', seed: 7 });
    const elsewhere = await otherEngine.quantize(w, { scheme: 'd3-q6-deterministic', seed: 7 });
    const universal = await engine.quantize(w, { scheme: 'd3-q6', seed: 7 });
    const c = createBuffer(device, 'lifecycle C', 4 * 16, STORAGE_USAGE);
    const scratch = new GpuScratch(device);
    const errors: string[] = [];
    const onError = (event: Event): void => void errors.push(String((event as GPUUncapturedErrorEvent).error.message));
    device.addEventListener('uncapturederror', onError);
    try {
      const encoder = device.createCommandEncoder({ label: 'lifecycle refusals' });
      expect(() => engine.recordMatmulAT(encoder, scratch, destroyed, live, c)).toThrow(/^A was destroyed/);
      expect(() => engine.recordMatmulAT(encoder, scratch, live, elsewhere, c)).toThrow(/^B was uploaded to another GPUDevice than the engine's \(on "lifecycle other device"/);
      await expect(engine.matvec(destroyed, x)).rejects.toThrow(/^W was destroyed/);
      await expect(engine.matvec(elsewhere, x)).rejects.toThrow(/^W was uploaded to another GPUDevice/);
      await expect(engine.matmulAT(live, elsewhere)).rejects.toThrow(/^B was uploaded to another GPUDevice/);
      await expect(engine.dequantize(destroyed)).rejects.toThrow(/^the matrix was destroyed/);
      expect(() => MatrixColumnSide.create(device, destroyed as GpuDeterministicMatrix, 'side')).toThrow(/MatrixColumnSide: W was destroyed/);
      expect(() => MatrixColumnSide.create(device, universal as unknown as GpuDeterministicMatrix, 'side')).toThrow(/MatrixColumnSide: W must hold a deterministic lattice scheme/);
      const weightOnly = uploadWeightOnly(device, quantizeWeights(gaussianMatrix(n, 32, 5), null, { method: 'rtn', rate: 3, rotate: false }));
      weightOnly.destroy();
      const y = createBuffer(device, 'lifecycle y', 16, STORAGE_USAGE);
      const xBuffer = createBufferWithData(device, 'lifecycle x', x.data, STORAGE_USAGE);
      expect(() => weightOnly.dispatch(encoder, scratch, { x: xBuffer, y })).toThrow(/this matrix was destroyed/);
      // Nothing was recorded: the encoder submits cleanly, and nothing reached WebGPU as an error.
      device.queue.submit([encoder.finish()]);
      await device.queue.onSubmittedWorkDone();
      await new Promise((resolve) => setTimeout(resolve, 20));
      expect(errors).toEqual([]);
      y.destroy();
      xBuffer.destroy();
    } finally {
      device.removeEventListener('uncapturederror', onError);
      for (const m of [live, elsewhere, universal]) m.destroy();
      c.destroy();
      scratch.destroy();
      other.device.destroy();
    }
  });
});
