import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { countDispatches } from '../../bench/gpu/common.js';
import { createBuffer, createBufferWithData, STORAGE_USAGE } from '../../src/gpu/buffers.js';
import { gpuQuantizeLattice, uploadLatticeMatrix } from '../../src/gpu/gpuQuantize.js';
import { dispatchColumnPrep } from '../../src/gpu/kernels/columnPrep.js';
import { GpuD3QuadMatrix } from '../../src/gpu/kernels/d3QuadGemvI8.js';
import { dispatchE8Matmul, dotPathFor, e8MatmulAT } from '../../src/gpu/kernels/e8Matmul.js';
import { GpuE8PointMatrix } from '../../src/gpu/kernels/e8PointGemvI8.js';
import { dispatchF32Gemv } from '../../src/gpu/kernels/f32Gemv.js';
import { dispatchHadamard, dispatchHadamardInverse } from '../../src/gpu/kernels/hadamard.js';
import { dispatchLatticeDequantize } from '../../src/gpu/kernels/latticeDequantize.js';
import { dispatchLatticeEncode } from '../../src/gpu/kernels/latticeEncode.js';
import { dispatchMatmulF32 } from '../../src/gpu/kernels/matmulF32.js';
import { dispatchNonFiniteTail } from '../../src/gpu/kernels/nonFiniteTail.js';
import { dispatchProductEpilogue } from '../../src/gpu/kernels/productEpilogue.js';
import { dispatchStreamRead } from '../../src/gpu/kernels/streamRead.js';
import { dispatchUniversalDequantize } from '../../src/gpu/kernels/universalDequantize.js';
import { createRootsUniform, dispatchUniversalEncode } from '../../src/gpu/kernels/universalEncode.js';
import { uploadWeightOnly, weightOnlyGemv } from '../../src/gpu/kernels/weightOnlyGemv.js';
import { GpuScratch } from '../../src/gpu/scratch.js';
import { uploadUniversalMatrix, universalOperandLayout } from '../../src/gpu/universalOperand.js';
import { itemsPerBinding } from '../../src/gpu/workSplit.js';
import { universalCodec } from '../../src/quantize/latticeSpec.js';
import { quantize, schemeLattice } from '../../src/quantize/quantize.js';
import { scaleGrid } from '../../src/quantize/scaleGrid.js';
import type { DeterministicLatticeMatrix, UniversalLatticeMatrix } from '../../src/quantize/quantizedMatrix.js';
import { SCHEMES, type UniversalLatticeScheme } from '../../src/quantize/schemes.js';
import { gaussianMatrix } from '../../src/rotation/random.js';
import { quantizeWeights } from '../../src/weightonly/quantizeWeights.js';
import { contextOnTestDevice, gpuUnavailableReason } from './gpuTestDevice.js';

/*
 * Every kernel that splits its work over storage bindings takes `maxBindingBytes` through
 * `bindingCap(device, maxBindingBytes, what)`. A call site that dropped the option (passing undefined,
 * or the device's limit) would split nothing and give the same bytes, so the tests that compare a
 * split run with an unsplit one cannot see it; here each site is reached directly with a value that is
 * not a positive integer and must refuse it naming itself, which it does only by reading the option;
 * and records more dispatches (or bind groups) under a small cap than without one, which it does only
 * by using what the cap returns. GPU quantize refuses a non-integer before its own cap (it wants
 * ≥ 256), so its cap is checked by the chunks it records alone.
 */

const noGpu = await gpuUnavailableReason();

describe.skipIf(noGpu !== undefined)('each binding cap reads maxBindingBytes', () => {
  const suite = contextOnTestDevice();
  let device: GPUDevice;
  const big: GPUBuffer[] = [];
  const BIG = 1 << 16;
  beforeAll(() => {
    device = suite.context.device;
    for (let i = 0; i < 8; i++) big.push(createBuffer(device, `test buffer ${i}`, BIG, STORAGE_USAGE));
  });
  afterAll(() => {
    for (const buffer of big) buffer.destroy();
  });

  /** Distinct 64 KiB storage buffers, room for every small call below. */
  const buffer = (i: number): GPUBuffer => big[i] as GPUBuffer;
  const refusal = (what: string): RegExp => new RegExp(`^${what}: maxBindingBytes must be a positive integer, got 1\\.5$`);

  it('every kernel refuses maxBindingBytes 1.5 naming itself', async () => {
    const bad = 1.5;
    const scratch = new GpuScratch(device);
    const encoder = device.createCommandEncoder({ label: 'binding cap refusals' });
    const deterministic = uploadLatticeMatrix(device, quantize(gaussianMatrix(24, 3, 1), { scheme: 'd3-q6-deterministic', seed: 2 }) as DeterministicLatticeMatrix);
    const e8Deterministic = uploadLatticeMatrix(device, quantize(gaussianMatrix(16, 2, 3), { scheme: 'e8-q16-deterministic', seed: 4 }) as DeterministicLatticeMatrix);
    const universal = uploadUniversalMatrix(device, quantize(gaussianMatrix(16, 2, 5), { scheme: 'e8-4bit', rotate: false, seed: 6 }) as UniversalLatticeMatrix);
    try {
      const cases: [string, () => unknown][] = [
        ['f32 gemv', () => dispatchF32Gemv(device, encoder, scratch, { w: buffer(0), x: buffer(1), y: buffer(2), n: 8, cols: 2, maxBindingBytes: bad })],
        ['dispatchColumnPrep', () =>
          dispatchColumnPrep(device, encoder, scratch, { input: buffer(0), prepared: buffer(1), exponents: buffer(2), means: null, status: buffer(3), rows: 8, cols: 2, center: false, maxBindingBytes: bad })],
        ['GpuE8PointMatrix.repack', () => GpuE8PointMatrix.repack(device, universal, 'test repack', { maxBindingBytes: bad })],
        ['hadamard', () => dispatchHadamard(device, encoder, scratch, { input: buffer(0), output: buffer(1), rows: 8, cols: 1, seed: 1, maxBindingBytes: bad })],
        ['inverse hadamard', () => dispatchHadamardInverse(device, encoder, scratch, { input: buffer(0), output: buffer(1), rows: 8, cols: 1, seed: 1, maxBindingBytes: bad })],
        ['dispatchLatticeDequantize', () => dispatchLatticeDequantize(device, encoder, scratch, { m: deterministic, output: buffer(0), maxBindingBytes: bad })],
        ['dispatchLatticeEncode', () => {
          const scheme = SCHEMES['d3-q6-deterministic'];
          dispatchLatticeEncode(device, encoder, scratch, {
            rotated: buffer(0), exponents: buffer(1), codes: buffer(2), scaleIndices: buffer(3), norms: buffer(4), gains: buffer(5), gain: 'mmse', status: buffer(6),
            lattice: schemeLattice(scheme), q: scheme.q, grid: scaleGrid(scheme.overload), length: 24, keptLength: 24, cols: 2, maxBindingBytes: bad,
          });
        }],
        ['product', () => dispatchMatmulF32(device, encoder, scratch, { a: buffer(0), b: buffer(1), c: buffer(2), n: 8, aCols: 2, bCols: 2, maxBindingBytes: bad })],
        ['gemv non-finite tail', () => dispatchNonFiniteTail(device, encoder, scratch, { x: buffer(0), rows: 8, kept: 4, rhs: 1, y: buffer(1), cols: 2, maxBindingBytes: bad })],
        ['product epilogue', () =>
          dispatchProductEpilogue(device, encoder, scratch, { sideA: buffer(0), sideB: buffer(1), c: buffer(2), cOffset: 0, aCols: 2, bCols: 2, rows: 8, centred: true, gram: false, maxBindingBytes: bad })],
        ['quad repack', () => GpuD3QuadMatrix.repack(device, deterministic, 'test repack', { maxBindingBytes: bad })],
        ['stream read', () => dispatchStreamRead(device, encoder, scratch, { data: buffer(0), bytes: 1024, maxBindingBytes: bad })],
        ['dispatchUniversalDequantize', () => dispatchUniversalDequantize(device, encoder, scratch, { m: universal, output: buffer(0), maxBindingBytes: bad })],
        ['dispatchUniversalEncode', () => {
          const scheme = SCHEMES['e8-4bit'] as UniversalLatticeScheme;
          const layout = universalOperandLayout({ scheme, blocksPerColumn: 2 });
          const codec = universalCodec(scheme.lattice, scheme.q, scheme.beta);
          const shape = { codec, length: 16, keptLength: 16, blocksPerColumn: 2, codeWords: layout.codeWords, bitWords: layout.bitWords, denseWords: 1, cols: 2, nonce: { lo: 1, hi: 0 }, recordCapacity: 256 };
          const roots = createRootsUniform(device, scratch, codec);
          dispatchUniversalEncode(device, encoder, scratch, {
            shape, roots, rotated: buffer(0), exponents: buffer(1), codes: buffer(2), escapeBits: buffer(3), denseIds: buffer(4), side: buffer(5), work: buffer(6), cols: 2, columnOffset: 0, maxBindingBytes: bad,
          });
        }],
      ];
      for (const [what, call] of cases) expect(call, what).toThrow(refusal(what));
      const weightOnly = quantizeWeights(gaussianMatrix(32, 16, 7), null, { method: 'rtn', rate: 3 });
      await expect(weightOnlyGemv(device, weightOnly, new Float32Array(32).fill(1), { maxBindingBytes: bad })).rejects.toThrow(refusal('dispatchWeightOnlyGemv'));
      // The lattice product's column ranges ('product', as the f32 product's), behind e8MatmulAT.
      await expect(e8MatmulAT(device, e8Deterministic, e8Deterministic, { dotPath: dotPathFor(suite.context.features), maxBindingBytes: bad })).rejects.toThrow(refusal('product'));
    } finally {
      encoder.finish();
      scratch.destroy();
      for (const m of [deterministic, e8Deterministic, universal]) m.destroy();
    }
  });

  it.each(['d3-q6-deterministic', 'e8-4bit'] as const)('GPU quantize (%s) records one column prep per chunk of columns that fits maxBindingBytes, not one for all', async (scheme) => {
    const rows = 64;
    const cols = 12;
    const maxBindingBytes = 1024;
    const labels: string[] = [];
    const createBindGroup = device.createBindGroup.bind(device);
    device.createBindGroup = (descriptor: GPUBindGroupDescriptor): GPUBindGroup => {
      labels.push(descriptor.label ?? '');
      return createBindGroup(descriptor);
    };
    const source = createBufferWithData(device, 'quantize input', gaussianMatrix(rows, cols, 9).data, STORAGE_USAGE);
    try {
      const m = await gpuQuantizeLattice(device, { buffer: source, rows, cols }, { scheme, seed: 3, rotate: false, maxBindingBytes, ...(scheme === 'e8-4bit' ? { nonce: 5 } : {}) });
      m.destroy();
    } finally {
      delete (device as { createBindGroup?: unknown }).createBindGroup;
      source.destroy();
    }
    // A column of 64 f32 is 256 bytes: a 1 KB binding holds at most 4 (3 after the offset's slack).
    const chunks = labels.filter((label) => label.startsWith('column prep')).length;
    expect(chunks).toBeGreaterThanOrEqual(Math.ceil(cols / itemsPerBinding(4 * rows, maxBindingBytes, device.limits.minStorageBufferOffsetAlignment)));
    expect(chunks).toBeGreaterThan(1);
  });

  it('every kernel splits into more dispatches under a small maxBindingBytes than without one', () => {
    const scratch = new GpuScratch(device);
    const dotPath = dotPathFor(suite.context.features);
    const deterministic = uploadLatticeMatrix(device, quantize(gaussianMatrix(24, 16, 11), { scheme: 'd3-q6-deterministic', seed: 2 }) as DeterministicLatticeMatrix);
    const e8Deterministic = uploadLatticeMatrix(device, quantize(gaussianMatrix(16, 16, 13), { scheme: 'e8-q16-deterministic', seed: 4 }) as DeterministicLatticeMatrix);
    const universal = uploadUniversalMatrix(device, quantize(gaussianMatrix(32, 16, 19), { scheme: 'e8-4bit', rotate: false, seed: 6 }) as UniversalLatticeMatrix);
    const weightOnly = uploadWeightOnly(device, quantizeWeights(gaussianMatrix(32, 16, 7), null, { method: 'rtn', rate: 3 }));
    try {
      const d3 = SCHEMES['d3-q6-deterministic'];
      const e8 = SCHEMES['e8-4bit'] as UniversalLatticeScheme;
      const layout = universalOperandLayout({ scheme: e8, blocksPerColumn: 2 });
      const codec = universalCodec(e8.lattice, e8.q, e8.beta);
      const shape = { codec, length: 16, keptLength: 16, blocksPerColumn: 2, codeWords: layout.codeWords, bitWords: layout.bitWords, denseWords: 1, cols: 8, nonce: { lo: 1, hi: 0 }, recordCapacity: 256 };
      const roots = createRootsUniform(device, scratch, codec);
      // Each records 8 or more columns (or right-hand sides) of a few hundred bytes at most: one
      // dispatch (or one per fixed pass) fits them all, a 512-byte binding a few.
      const cases: [string, (encoder: GPUCommandEncoder, cap: { maxBindingBytes?: number }) => void][] = [
        ['f32 gemv', (encoder, cap) => dispatchF32Gemv(device, encoder, scratch, { w: buffer(0), x: buffer(1), y: buffer(2), n: 32, cols: 8, ...cap })],
        ['column prep', (encoder, cap) =>
          dispatchColumnPrep(device, encoder, scratch, { input: buffer(0), prepared: buffer(1), exponents: buffer(2), means: null, status: buffer(3), rows: 32, cols: 8, center: false, ...cap })],
        ['lattice dequantize', (encoder, cap) => dispatchLatticeDequantize(device, encoder, scratch, { m: deterministic, output: buffer(0), ...cap })],
        ['lattice encode', (encoder, cap) =>
          dispatchLatticeEncode(device, encoder, scratch, {
            rotated: buffer(0), exponents: buffer(1), codes: buffer(2), scaleIndices: buffer(3), norms: buffer(4), gains: null, gain: 'none', status: buffer(6),
            lattice: schemeLattice(d3), q: d3.q, grid: scaleGrid(d3.overload), length: 48, keptLength: 48, cols: 8, ...cap,
          })],
        ['f32 product', (encoder, cap) => dispatchMatmulF32(device, encoder, scratch, { a: buffer(0), b: buffer(1), c: buffer(2), n: 8, aCols: 2, bCols: 16, ...cap })],
        ['non-finite tail', (encoder, cap) => dispatchNonFiniteTail(device, encoder, scratch, { x: buffer(0), rows: 32, kept: 4, rhs: 8, y: buffer(1), cols: 2, ...cap })],
        ['product epilogue', (encoder, cap) =>
          dispatchProductEpilogue(device, encoder, scratch, { sideA: buffer(0), sideB: buffer(1), c: buffer(2), cOffset: 0, aCols: 16, bCols: 8, rows: 8, centred: true, gram: false, ...cap })],
        ['universal encode', (encoder, cap) =>
          dispatchUniversalEncode(device, encoder, scratch, { shape, roots, rotated: buffer(0), exponents: buffer(1), codes: buffer(2), escapeBits: buffer(3), denseIds: buffer(4), side: buffer(5), work: buffer(6), cols: 8, columnOffset: 0, ...cap })],
        ['lattice product', (encoder, cap) => dispatchE8Matmul(device, encoder, scratch, { a: e8Deterministic, b: e8Deterministic, c: buffer(0), dotPath, ...cap })],
        ['hadamard', (encoder, cap) => dispatchHadamard(device, encoder, scratch, { input: buffer(0), output: buffer(1), rows: 32, cols: 8, seed: 1, ...cap })],
        ['universal dequantize', (encoder, cap) => dispatchUniversalDequantize(device, encoder, scratch, { m: universal, output: buffer(0), ...cap })],
        ['stream read', (encoder, cap) => dispatchStreamRead(device, encoder, scratch, { data: buffer(0), bytes: 4096, ...cap })],
        ['weight-only gemv', (encoder, cap) => weightOnly.dispatch(encoder, scratch, { x: buffer(0), y: buffer(1), vectors: 8, ...cap })],
      ];
      for (const [what, record] of cases) {
        const whole = countDispatches(device, (encoder) => record(encoder, {}));
        const split = countDispatches(device, (encoder) => record(encoder, { maxBindingBytes: 512 }));
        expect(split, what).toBeGreaterThan(whole);
      }
    } finally {
      scratch.destroy();
      for (const m of [deterministic, e8Deterministic, universal, weightOnly]) m.destroy();
    }
  });

  it('the quad and point repacks make more bind groups under a small maxBindingBytes than without one', () => {
    const d3 = uploadLatticeMatrix(device, quantize(gaussianMatrix(48, 24, 15), { scheme: 'd3-q6-deterministic', rotate: false, seed: 2 }) as DeterministicLatticeMatrix);
    const e8 = uploadUniversalMatrix(device, quantize(gaussianMatrix(64, 24, 17), { scheme: 'e8-4bit', rotate: false, seed: 6 }) as UniversalLatticeMatrix);
    const bindGroups = (repack: () => { destroy(): void }): number => {
      let count = 0;
      const createBindGroup = device.createBindGroup.bind(device);
      device.createBindGroup = (descriptor: GPUBindGroupDescriptor): GPUBindGroup => {
        count++;
        return createBindGroup(descriptor);
      };
      try {
        repack().destroy();
      } finally {
        delete (device as { createBindGroup?: unknown }).createBindGroup;
      }
      return count;
    };
    try {
      expect(bindGroups(() => GpuD3QuadMatrix.repack(device, d3, 'split', { maxBindingBytes: 512 })), 'quad repack').toBeGreaterThan(bindGroups(() => GpuD3QuadMatrix.repack(device, d3, 'whole')));
      expect(bindGroups(() => GpuE8PointMatrix.repack(device, e8, 'split', { maxBindingBytes: 1024 })), 'point repack').toBeGreaterThan(bindGroups(() => GpuE8PointMatrix.repack(device, e8, 'whole')));
    } finally {
      d3.destroy();
      e8.destroy();
    }
  });
});
