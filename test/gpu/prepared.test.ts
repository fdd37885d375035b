import { describe, expect, it } from 'vitest';
import { BufferUsage, createBuffer, createBufferWithData, readBufferExclusive, STORAGE_USAGE } from '../../src/gpu/buffers.js';
import { dispatchEpilogue } from '../../src/gpu/kernels/activationIo.js';
import { dispatchHadamard } from '../../src/gpu/kernels/hadamard.js';
import { GpuDeviceLostError } from '../../src/gpu/errorScopes.js';
import { prepareCommands } from '../../src/gpu/prepared.js';
import { GpuScratch } from '../../src/gpu/scratch.js';
import { rotationLength } from '../../src/rotation/hadamard.js';
import { gaussianMatrix } from '../../src/rotation/random.js';
import { contextOnTestDevice, gpuUnavailableReason, testDevice, trackBuffers } from './gpuTestDevice.js';

/*
 * Prepared commands (src/gpu/prepared.ts) replay what a chain of kernels recorded, with consecutive
 * compute passes merged into one: the results must be the bytes of the same chain recorded directly
 * (each dispatch reads what the one before it wrote, inside the merged pass), a copy between passes
 * must still split them, and the merged pass carries the labels of the passes it replaces. Commands
 * that are only dispatches replay into a caller's open compute pass (after the caller's own dispatch,
 * whatever pipeline it left set) with the same bytes, setting a pipeline once for consecutive
 * dispatches of it; commands with a copy are refused there, with the reason.
 */

const noGpu = await gpuUnavailableReason();

describe.skipIf(noGpu !== undefined)('prepared commands', () => {
  const suite = contextOnTestDevice();

  it('refuses what it cannot replay (dynamic offsets, a pass left open or begun inside another) and frees the scratch then; a destroyed set frees its scratch and refuses a record; a pass with a copy is refused in a pass', () => {
    const { device } = suite.context;
    const tracker = trackBuffers(device);
    try {
      const refusals: readonly [string, (encoder: GPUCommandEncoder) => void, RegExp][] = [
        ['dynamic offsets', (encoder) => encoder.beginComputePass().setBindGroup(0, null, [256]), /^prepared commands cannot capture dynamic offsets/],
        ['left open', (encoder) => void encoder.beginComputePass(), /^left open: a compute pass was left open$/],
        ['nested', (encoder) => [0, 1].forEach(() => encoder.beginComputePass()), /^nested: a compute pass began inside another$/],
      ];
      for (const [label, record, message] of refusals) {
        expect(() =>
          prepareCommands(device, label, (encoder, scratch) => {
            scratch.buffer(`${label} scratch`, 16, STORAGE_USAGE);
            record(encoder);
          }),
        ).toThrow(message);
        expect(tracker.live(), label).toEqual([]);
      }
      // An empty list of dynamic offsets is none.
      prepareCommands(device, 'no offsets', (encoder) => {
        const pass = encoder.beginComputePass();
        pass.setBindGroup(0, null, []);
        pass.end();
      }).destroy();
      const destroyed = prepareCommands(device, 'destroyed', (_encoder, scratch) => void scratch.buffer('destroyed scratch', 16, STORAGE_USAGE));
      expect(tracker.live()).toEqual(['destroyed scratch']);
      destroyed.destroy();
      expect(tracker.live()).toEqual([]);
      expect(() => destroyed.record(device.createCommandEncoder())).toThrow(/^destroyed: these prepared commands were destroyed$/);
      // A pass and a copy: a caller's pass could take the pass but not the copy, so the set is refused there.
      const mixed = prepareCommands(device, 'pass and copy', (encoder, scratch) => {
        const from = scratch.buffer('from', 16, STORAGE_USAGE);
        const to = scratch.buffer('to', 16, STORAGE_USAGE);
        encoder.beginComputePass().end();
        encoder.copyBufferToBuffer(from, 0, to, 0, 16);
      });
      expect(mixed.fitsInPass).toBe(false);
      const pass = device.createCommandEncoder().beginComputePass();
      expect(() => mixed.record(pass)).toThrow(/^pass and copy: these commands include a buffer copy, which a compute pass cannot record/);
      pass.end();
      mixed.destroy();
    } finally {
      tracker.restore();
    }
  });

  it('a set recorded once its device is lost throws the loss (WebGPU would record nothing and say nothing)', async () => {
    const own = await testDevice({ label: 'prepared loss device' });
    const prepared = prepareCommands(own.device, 'on a lost device', (encoder) => encoder.beginComputePass().end());
    own.device.destroy();
    await own.device.lost;
    expect(() => prepared.record(own.device.createCommandEncoder())).toThrow(GpuDeviceLostError);
    prepared.destroy();
  });

  it('merge consecutive passes, keep a copy between them, and give the bytes of the direct recording', async () => {
    const { device } = suite.context;
    const rows = 300;
    const cols = 2;
    const length = rotationLength(rows);
    const x = createBufferWithData(device, 'x', gaussianMatrix(rows, cols, 3).data, STORAGE_USAGE);
    const bias = createBufferWithData(device, 'bias', Float32Array.from({ length }, (_, i) => i / 7), STORAGE_USAGE);
    // rotate → add bias → copy → add bias again: dependent steps, a copy in the middle.
    const chain = (encoder: GPUCommandEncoder, scratch: GpuScratch, out: GPUBuffer): void => {
      const rotated = scratch.buffer('rotated', 4 * length * cols, STORAGE_USAGE);
      const biased = scratch.buffer('biased', 4 * length * cols, STORAGE_USAGE | BufferUsage.COPY_SRC);
      const copied = scratch.buffer('copied', 4 * length * cols, STORAGE_USAGE | BufferUsage.COPY_DST);
      dispatchHadamard(device, encoder, scratch, { input: x, output: rotated, rows, cols, seed: 5 });
      dispatchEpilogue(device, encoder, scratch, { input: rotated, bias, rows: length, columns: cols, output: biased, format: 'f32' });
      encoder.copyBufferToBuffer(biased, 0, copied, 0, 4 * length * cols);
      dispatchEpilogue(device, encoder, scratch, { input: copied, bias, rows: length, columns: cols, output: out, format: 'f32' });
    };
    const direct = createBuffer(device, 'direct out', 4 * length * cols, STORAGE_USAGE);
    const replayed = createBuffer(device, 'replayed out', 4 * length * cols, STORAGE_USAGE);
    const scratch = new GpuScratch(device);
    const prepared = prepareCommands(device, 'chain', (encoder, preparedScratch) => chain(encoder, preparedScratch, replayed));
    try {
      const encoder = device.createCommandEncoder({ label: 'direct' });
      chain(encoder, scratch, direct);
      device.queue.submit([encoder.finish()]);

      // Replay into an encoder that records the passes it is asked for.
      const real = device.createCommandEncoder({ label: 'replay' });
      const passLabels: string[] = [];
      const counting = new Proxy(real, {
        get(target, property) {
          if (property === 'beginComputePass') {
            return (descriptor?: GPUComputePassDescriptor) => {
              passLabels.push(descriptor?.label ?? '');
              return target.beginComputePass(descriptor);
            };
          }
          const value = Reflect.get(target, property) as unknown;
          return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
        },
      });
      prepared.record(counting);
      device.queue.submit([real.finish()]);
      expect(passLabels).toHaveLength(2);
      expect(passLabels[0]).toMatch(/^hadamard.* → epilogue/);
      expect(passLabels[1]).toMatch(/^epilogue/);

      const a = new Uint8Array(await readBufferExclusive(device, direct, 4 * length * cols));
      const b = new Uint8Array(await readBufferExclusive(device, replayed, 4 * length * cols));
      expect(b).toEqual(a);
      // The chain wrote something (not a buffer left at zero).
      expect(new Float32Array(a.buffer).some((v) => v !== 0)).toBe(true);
    } finally {
      prepared.destroy();
      scratch.destroy();
      for (const buffer of [x, bias, direct, replayed]) buffer.destroy();
    }
  });

  it('replay into a caller\'s compute pass: same bytes, no repeated pipeline; a copy is refused there', async () => {
    const { device } = suite.context;
    const rows = 250; // rotated to 256 in one stage: one dispatch (300 would take two windows)
    const cols = 2;
    const length = rotationLength(rows);
    const x = createBufferWithData(device, 'x', gaussianMatrix(rows, cols, 4).data, STORAGE_USAGE);
    const bias = createBufferWithData(device, 'bias', Float32Array.from({ length }, (_, i) => 1 - i / 9), STORAGE_USAGE);
    const other = createBufferWithData(device, 'other', Float32Array.from({ length: 8 }, (_, i) => i), STORAGE_USAGE);
    const otherOut = createBuffer(device, 'other out', 4 * 8, STORAGE_USAGE);
    // rotate → add bias → add bias: three dependent dispatches, the last two on one pipeline.
    const chain = (encoder: GPUCommandEncoder, scratch: GpuScratch, out: GPUBuffer): void => {
      const rotated = scratch.buffer('rotated', 4 * length * cols, STORAGE_USAGE);
      const biased = scratch.buffer('biased', 4 * length * cols, STORAGE_USAGE);
      dispatchHadamard(device, encoder, scratch, { input: x, output: rotated, rows, cols, seed: 6 });
      dispatchEpilogue(device, encoder, scratch, { input: rotated, bias, rows: length, columns: cols, output: biased, format: 'f32' });
      dispatchEpilogue(device, encoder, scratch, { input: biased, bias, rows: length, columns: cols, output: out, format: 'f32' });
    };
    const direct = createBuffer(device, 'direct out', 4 * length * cols, STORAGE_USAGE);
    const replayed = createBuffer(device, 'replayed out', 4 * length * cols, STORAGE_USAGE);
    const scratch = new GpuScratch(device);
    const prepared = prepareCommands(device, 'chain', (encoder, preparedScratch) => chain(encoder, preparedScratch, replayed));
    const withCopy = prepareCommands(device, 'chain with a copy', (encoder, preparedScratch) => {
      const copied = preparedScratch.buffer('copied', 4 * length * cols, STORAGE_USAGE | BufferUsage.COPY_DST);
      encoder.copyBufferToBuffer(replayed, 0, copied, 0, 4 * length * cols);
    });
    try {
      expect(prepared.fitsInPass).toBe(true);
      expect(withCopy.fitsInPass).toBe(false);
      const encoder = device.createCommandEncoder({ label: 'direct' });
      chain(encoder, scratch, direct);
      device.queue.submit([encoder.finish()]);

      // The caller's pass: its own dispatch first (another pipeline and bind group), then the replay.
      const real = device.createCommandEncoder({ label: 'caller' });
      const callerPass = real.beginComputePass({ label: 'caller pass' });
      const callerCommands = prepareCommands(device, 'caller dispatch', (recorder, s2) => dispatchEpilogue(device, recorder, s2, { input: other, bias: null, rows: 8, columns: 1, output: otherOut, format: 'f16' }));
      callerCommands.record(callerPass);
      const calls: string[] = [];
      const counting = new Proxy(callerPass, {
        get(target, property) {
          const value = Reflect.get(target, property) as unknown;
          if (typeof value !== 'function') return value;
          return (...args: unknown[]) => {
            calls.push(String(property));
            return (value as (...a: unknown[]) => unknown).apply(target, args);
          };
        },
      });
      prepared.record(counting);
      expect(() => withCopy.record(callerPass)).toThrow(/chain with a copy: these commands include a buffer copy, which a compute pass cannot record/);
      callerPass.end();
      device.queue.submit([real.finish()]);
      expect(calls.filter((call) => call === 'dispatchWorkgroups')).toHaveLength(3);
      expect(calls.filter((call) => call === 'setPipeline')).toHaveLength(2); // the rotation's, then the epilogue's once
      expect(calls.filter((call) => call === 'setBindGroup')).toHaveLength(3);
      expect(calls).not.toContain('end');

      const a = new Uint8Array(await readBufferExclusive(device, direct, 4 * length * cols));
      const b = new Uint8Array(await readBufferExclusive(device, replayed, 4 * length * cols));
      expect(b).toEqual(a);
      expect(new Float32Array(a.buffer).some((v) => v !== 0)).toBe(true);
      callerCommands.destroy();
    } finally {
      prepared.destroy();
      withCopy.destroy();
      scratch.destroy();
      for (const buffer of [x, bias, other, otherOut, direct, replayed]) buffer.destroy();
    }
  });
});
