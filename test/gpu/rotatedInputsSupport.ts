import { createBufferWithData, BufferUsage, readBuffer, STORAGE_USAGE } from '../../src/gpu/buffers.js';
import { dispatchHadamard, rotationRoundsInPass } from '../../src/gpu/kernels/hadamard.js';
import type { RecordedInputsI8 } from '../../src/gpu/kernels/inputsI8.js';
import { GpuScratch } from '../../src/gpu/scratch.js';
import { gaussianMatrix } from '../../src/rotation/random.js';
import { float16Bits } from '../../src/scalar/floatFormats.js';
import { expect } from 'vitest';

/*
 * The check shared by the tests of the rotation that rounds x̃ to int8 in its own last pass
 * (dispatchRotatedInputsI8, D3's groups of 12: int8InputGemv.test.ts; dispatchRotatedE8InputsI8, E8's
 * groups of 32: e8ResidueGemv.test.ts): x̃ and x̂ equal, bit for bit, those of the rotation followed by
 * the rounding kernel, but for a NaN's sign and payload in x̃, which WGSL leaves to the implementation
 * (lavapipe on an AVX-512 AMD EPYC gave the batched-loads rotation's NaNs the other sign; a NaN is still
 * a NaN wherever the other has one, and x̂ is compared bit for bit).
 */

/** A case: W's rows, length and seed, right-hand sides, x's format (f16 at an odd half offset), a NaN in column 1. */
export interface RotatedRoundingCase {
  readonly w: { readonly rows: number; readonly length: number; readonly seed: number };
  readonly rhs: number;
  readonly format: 'f32' | 'f16';
  readonly withNaN: boolean;
  /** Whether the rotation of `w.rows` is expected to round in its pass. */
  readonly fused: boolean;
}

/** f32 words with every NaN as the quiet NaN 0x7fc00000: WGSL leaves a NaN's sign and payload to the implementation. */
function canonicalNaNs(words: Uint32Array): Uint32Array {
  return words.map((word) => ((word & 0x7f800000) === 0x7f800000 && (word & 0x007fffff) !== 0 ? 0x7fc00000 : word));
}

/**
 * Runs `together` (rotation and rounding in one call) and the rotation followed by `apart` on the same
 * x, expects equal x̃ and x̂ and equal operand keys, and returns x̂'s words for the caller's own checks.
 */
export async function expectRotatedRoundingEqual(
  device: GPUDevice,
  c: RotatedRoundingCase,
  together: (scratch: GpuScratch, encoder: GPUCommandEncoder, x: { readonly x: GPUBuffer; readonly xOffset: number; readonly inputFormat: 'f32' | 'f16'; readonly xRotated: GPUBuffer; readonly rhs: number }) => RecordedInputsI8,
  apart: (scratch: GpuScratch, encoder: GPUCommandEncoder, xRotated: GPUBuffer) => RecordedInputsI8,
): Promise<Uint32Array> {
  const { w, rhs, format } = c;
  const x = gaussianMatrix(w.rows, rhs, w.seed);
  if (c.withNaN) x.data[w.rows + 7] = Number.NaN;
  const offset = format === 'f16' ? 6 : 0;
  const bytes = new Uint8Array(Math.ceil((offset + (format === 'f16' ? 2 : 4) * w.rows * rhs) / 4) * 4);
  if (format === 'f16') bytes.set(new Uint8Array(Uint16Array.from(x.data, (v) => float16Bits(v)).buffer), offset);
  else bytes.set(new Uint8Array(x.data.buffer));
  const xBuffer = createBufferWithData(device, 'x', bytes, STORAGE_USAGE);
  const scratch = new GpuScratch(device);
  try {
    expect(rotationRoundsInPass(device, w.rows)).toBe(c.fused);
    const rotated = [0, 1].map((i) => scratch.buffer(`R·x ${i}`, 4 * w.length * rhs, STORAGE_USAGE | BufferUsage.COPY_SRC)) as [GPUBuffer, GPUBuffer];
    const encoder = device.createCommandEncoder({ label: 'rotated inputs test' });
    const joint = together(scratch, encoder, { x: xBuffer, xOffset: offset, inputFormat: format, xRotated: rotated[0], rhs });
    dispatchHadamard(device, encoder, scratch, { input: xBuffer, inputOffset: offset, inputFormat: format, output: rotated[1], rows: w.rows, cols: rhs, seed: w.seed });
    const separate = apart(scratch, encoder, rotated[1]);
    expect(joint.operand).toBe(separate.operand);
    expect(joint.inputs.size).toBe(separate.inputs.size);
    device.queue.submit([encoder.finish()]);
    const read = async (buffer: GPUBuffer): Promise<Uint32Array> => new Uint32Array(await readBuffer(device, buffer, buffer.size));
    const [xt0, xt1, in0, in1] = await Promise.all([read(rotated[0]), read(rotated[1]), read(joint.inputs), read(separate.inputs)]);
    expect(canonicalNaNs(xt0)).toEqual(canonicalNaNs(xt1));
    expect(in0).toEqual(in1);
    return in0;
  } finally {
    scratch.destroy();
    xBuffer.destroy();
  }
}
