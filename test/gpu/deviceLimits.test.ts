import { describe, expect, it } from 'vitest';
import { createBuffer, createBufferWithData, STORAGE_USAGE } from '../../src/gpu/buffers.js';
import { gpuQuantizeUniversalUnlocked } from '../../src/gpu/gpuQuantizeUniversal.js';
import { dispatchEpilogue } from '../../src/gpu/kernels/activationIo.js';
import { checkMatmulF32A } from '../../src/gpu/kernels/matmulF32.js';
import { checkPairMatmulA } from '../../src/gpu/kernels/pairMatmul.js';
import { GpuScratch } from '../../src/gpu/scratch.js';
import { resolveQuantizeOptions } from '../../src/quantize/options.js';
import { scratchChunkBytes } from '../../src/gpu/workSplit.js';
import { uploadUniversalMatrix } from '../../src/gpu/universalOperand.js';
import { uploadContainerEntry } from '../../src/gpu/containerUpload.js';
import { readQuantizedContainer, writeQuantizedContainer } from '../../src/format/container.js';
import { quantize } from '../../src/quantize/quantize.js';
import type { UniversalLatticeMatrix } from '../../src/quantize/quantizedMatrix.js';
import { gaussianMatrix } from '../../src/rotation/random.js';

/*
 * Size limits refused up front, with what to do, before any GPU object is created or any command
 * recorded: a buffer beyond maxBufferSize (WebGPU returned an invalid buffer that failed only at the
 * first call using it, after minutes of packing for an lm_head) and a product whose decoded A exceeds
 * one storage binding (it was refused after the decode passes were recorded into the caller's
 * encoder). A stand-in device with small limits: each check runs before the device is used, which the
 * stand-in (no createBuffer) proves.
 */

function standIn(limits: Partial<GPUSupportedLimits>): GPUDevice {
  // `lost` never settles: a device as the dispatches' first check (checkDispatch) sees a live one.
  return {
    limits: { maxBufferSize: 2 ** 28, maxStorageBufferBindingSize: 2 ** 27, maxComputeWorkgroupsPerDimension: 65535, minStorageBufferOffsetAlignment: 256, ...limits },
    lost: new Promise<never>(() => undefined),
  } as unknown as GPUDevice;
}

/** A storage buffer as the host checks see it (size, usage, map state). */
function standInBuffer(size: number): GPUBuffer {
  return { size, usage: STORAGE_USAGE, mapState: 'unmapped', label: 'stand-in' } as unknown as GPUBuffer;
}

describe('size limits refused before the device is used', () => {
  it('createBuffer and createBufferWithData refuse a buffer beyond maxBufferSize, naming the fix', () => {
    const device = standIn({ maxBufferSize: 1024 });
    for (const make of [() => createBuffer(device, 'big', 1028, STORAGE_USAGE), () => createBufferWithData(device, 'big', new Float32Array(257), STORAGE_USAGE)]) {
      expect(make).toThrow(/^big: 1028 bytes is more than this device's maxBufferSize \(1024\); request the adapter's maximum \(deviceRequirements\(adapter\), or requestGpuDevice\) or split the matrix$/);
    }
  });

  it('uploading a universal matrix whose codes exceed maxBufferSize is refused before its codes are packed', () => {
    const q = quantize(gaussianMatrix(64, 40, 1), { scheme: 'e8-4bit', nonce: 1 }) as UniversalLatticeMatrix;
    // 8 blocks of 29 bits per column: 8 words, 32 bytes; 40 columns, whole 16-byte quads: 1280 bytes.
    expect(() => uploadUniversalMatrix(standIn({ maxBufferSize: 1276 }), q)).toThrow(/^upload: the codes of this 64 × 40 matrix: 1280 bytes is more than this device's maxBufferSize \(1276\)/);
  });

  it('uploading a universal matrix whose norms and means exceed one binding is refused before its codes are packed (every kernel binds them whole)', () => {
    // Centred, 40 columns: 40 norms and 40 means, 320 bytes.
    const q = quantize(gaussianMatrix(8, 40, 1), { scheme: 'e8-q16', nonce: 1, center: true }) as UniversalLatticeMatrix;
    expect(() => uploadUniversalMatrix(standIn({ maxStorageBufferBindingSize: 256 }), q)).toThrow(
      /^upload: the norms and means of this matrix's 40 columns \(320 bytes\) exceed one storage binding \(maxStorageBufferBindingSize = 256\), which the universal kernels bind whole; split it into matrices of at most 32 columns$/,
    );
  });

  it('the norms and means, escape ids and escape table are refused past one binding on the container path too (it packs nothing itself)', () => {
    const centred = quantize(gaussianMatrix(8, 40, 1), { scheme: 'e8-q16', nonce: 1, center: true }) as UniversalLatticeMatrix;
    // One D3 column: 4 bytes of norm, one word of escape ids, and an escape table of at least D3's 12 roots × 3 i32 = 144 bytes.
    const oneColumn = quantize(gaussianMatrix(64, 1, 2), { scheme: 'd3-q6', nonce: 2 }) as UniversalLatticeMatrix;
    const cases: [UniversalLatticeMatrix, number, RegExp][] = [
      [centred, 256, /^upload: the norms and means of this matrix's 40 columns \(320 bytes\) exceed one storage binding/],
      [oneColumn, 140, /^upload: the escape table of this matrix's 1 columns \(\d+ bytes\) exceed one storage binding \(maxStorageBufferBindingSize = 140\)/],
    ];
    for (const [q, limit, message] of cases) {
      const entry = readQuantizedContainer(writeQuantizedContainer([{ name: 'w', matrix: q }])).get('w');
      expect(() => uploadContainerEntry(standIn({ maxStorageBufferBindingSize: limit }), entry)).toThrow(message);
      expect(() => uploadUniversalMatrix(standIn({ maxStorageBufferBindingSize: limit }), q)).toThrow(message);
    }
  });

  it("GPU quantize refuses columns whose dense escape ids exceed one binding before encoding (it did so after all the work), naming how many fit", async () => {
    // d3-q6 at n = 4096: 1366 blocks, 342 words of dense ids per column; a 1 MiB binding takes 766 columns.
    const device = standIn({ maxStorageBufferBindingSize: 1 << 20 });
    const source = { buffer: {} as GPUBuffer, offset: 0, rows: 4096, cols: 800, length: 4096 };
    await expect(gpuQuantizeUniversalUnlocked(device, source, resolveQuantizeOptions({ scheme: 'd3-q6', nonce: 1 }), undefined)).rejects.toThrow(
      /^GPU quantize: the dense escape ids of 800 columns \(1094400 bytes\) exceed one storage binding \(1048576\); quantize at most 766 columns at a time$/,
    );
  });

  it("GPU quantize's scratch chunks take one column longer than 64 MiB when a binding holds it (n ≥ 2^24 was refused, naming the 64 MiB as the binding)", () => {
    expect(scratchChunkBytes(4096, 2 ** 27, 256)).toBe(2 ** 26);
    expect(scratchChunkBytes(2 ** 24 + 1, 2 ** 27, 256)).toBe(4 * (2 ** 24 + 1) + 252);
    expect(scratchChunkBytes(2 ** 25, 2 ** 27, 256)).toBe(2 ** 27);
    expect(scratchChunkBytes(4096, 2 ** 20, 256)).toBe(2 ** 20);
  });

  it('the standalone epilogue refuses values beyond one binding before recording, with the columns that fit', () => {
    const device = standIn({ maxStorageBufferBindingSize: 1 << 20 });
    const encoder = { beginComputePass: () => expect.unreachable('the refusal comes first') } as unknown as GPUCommandEncoder;
    const args = { input: standInBuffer(4 * 1024 * 300), bias: null, rows: 1024, columns: 300, output: standInBuffer(4 * 1024 * 300), format: 'f32' } as const;
    expect(() => dispatchEpilogue(device, encoder, new GpuScratch(device), args)).toThrow(
      /^epilogue: 1024 × 300 values \(1228800 bytes\) exceed one storage binding \(1048576\); call it for at most 255 columns at a time$/,
    );
  });

  it('a product refuses a decoded A larger than one binding with the columns that fit, or beyond the grid', () => {
    const device = standIn({ maxStorageBufferBindingSize: 1 << 20 });
    expect(() => checkMatmulF32A(device, 1024, 300, 'matmulAT: A, decoded')).toThrow(
      /^matmulAT: A, decoded \(1024 × 300 f32, 1228800 bytes\) is larger than one storage binding \(1048576 bytes\): multiply it in parts of at most 256 columns, or swap the operands/,
    );
    expect(() => checkMatmulF32A(device, 1024, 256, 'A')).not.toThrow();
    expect(() => checkMatmulF32A(standIn({ maxComputeWorkgroupsPerDimension: 4 }), 4, 257, 'A')).toThrow(/^A has 257 columns, more than 256 \(4 workgroups of 64 in one dimension\): multiply it in parts, or swap the operands \(ÂᵀB̂ = \(B̂ᵀÂ\)ᵀ\) when the other has fewer columns$/);
  });

  it("the pair product refuses an A whose pair form is larger than one binding, with the columns that fit, or beyond the grid", () => {
    const device = standIn({ maxStorageBufferBindingSize: 1 << 20 });
    // 128 units of 16 bytes per column (1024 rotated coordinates): 512 columns fit 1 MiB.
    expect(() => checkPairMatmulA(device, 128, 513, 'matmulAT: A, in the pair form')).toThrow(
      /^matmulAT: A, in the pair form \(513 columns of 128 16-byte units, 1050624 bytes\) is larger than one storage binding \(1048576 bytes\): multiply it in parts of at most 512 columns, or swap the operands/,
    );
    expect(() => checkPairMatmulA(device, 128, 512, 'A')).not.toThrow();
    expect(() => checkPairMatmulA(standIn({ maxComputeWorkgroupsPerDimension: 4 }), 1, 257, 'A')).toThrow(/^A has 257 columns, more than 256 \(4 workgroups of 64 in one dimension\): multiply it in parts, or swap the operands \(ÂᵀB̂ = \(B̂ᵀÂ\)ᵀ\) when the other has fewer columns$/);
  });
});
