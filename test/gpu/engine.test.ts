import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testMatrixPair } from '../../src/data/testMatrices.js';
import { LatticeMatmulError } from '../../src/errors.js';
import { createBufferWithData, readBufferExclusive, STORAGE_USAGE } from '../../src/gpu/buffers.js';
import { dotPathFor } from '../../src/gpu/kernels/e8Matmul.js';
import type { GpuContext } from '../../src/gpu/device.js';
import { GpuEngine, gemvInputNormLimit } from '../../src/gpu/engine.js';
import { QuantizedLinear } from '../../src/gpu/quantizedLinear.js';
import { matmulATExact, productNmse, type Matrix } from '../../src/matrix.js';
import { dequantize } from '../../src/product/dequantize.js';
import { columnNormBound, decodeRotated } from '../../src/product/decodeRotated.js';
import { matmulAT } from '../../src/product/matmulAT.js';
import { universalPairProduct } from '../../src/product/universalPairProduct.js';
import { float16Bits, fromFloat16Bits } from '../../src/scalar/floatFormats.js';
import { matvecAT } from '../../src/product/matvec.js';
import { quantize, type QuantizeOptions } from '../../src/quantize/quantize.js';
import type { QuantizedMatrix } from '../../src/quantize/quantizedMatrix.js';
import type { GpuLatticeQuantized } from '../../src/gpu/gpuQuantize.js';
import { RandomizedHadamard } from '../../src/rotation/randomizedHadamard.js';
import { gaussianMatrix } from '../../src/rotation/random.js';
import { engineOnTestDevice, gpuUnavailableReason } from './gpuTestDevice.js';
import { readQuantizedContainer, writeQuantizedContainer } from '../../src/format/container.js';
import { uploadContainerEntry } from '../../src/gpu/containerUpload.js';
import { uploadLatticeMatrix } from '../../src/gpu/gpuQuantize.js';
import { DITHER_GRID, latticeSpec } from '../../src/quantize/latticeSpec.js';
import type { UniversalLatticeMatrix } from '../../src/quantize/quantizedMatrix.js';
import { editDescription, resealed } from '../format/containerFuzzProperty.js';
import { asDeterministic, asUniversal } from './latticeTestSupport.js';

/*
 * The GpuEngine facade end to end: GPU encode → GPU product / GEMV / dequantize, against the CPU
 * reference on the same inputs, for the universal default (given nonces, one per operand, so the GPU
 * and the CPU quantize identically) and the deterministic schemes. Codes are bit-identical (checked
 * through read()), so products differ only by the f32 decode and the order of f32 sums: the
 * tolerance is 1e-5 · ‖a_i‖·‖b_j‖ per entry (a wrong code, escape, scale or table entry moves an
 * entry by ≥ 1e-3 of that).
 */

const noGpu = await gpuUnavailableReason();

function columnNorms(m: Matrix): Float64Array {
  return Float64Array.from({ length: m.cols }, (_, j) => {
    let s = 0;
    for (let i = 0; i < m.rows; i++) s += (m.data[j * m.rows + i] as number) ** 2;
    return Math.sqrt(s);
  });
}

function expectProductClose(gpu: Matrix, cpu: Matrix, a: Matrix, b: Matrix, tolerance = 1e-5): void {
  expect([gpu.rows, gpu.cols]).toEqual([cpu.rows, cpu.cols]);
  const na = columnNorms(a);
  const nb = columnNorms(b);
  let worst = 0;
  for (let j = 0; j < cpu.cols; j++) {
    for (let i = 0; i < cpu.rows; i++) {
      const k = j * cpu.rows + i;
      const scale = (na[i] as number) * (nb[j] as number);
      worst = Math.max(worst, Math.abs((gpu.data[k] as number) - (cpu.data[k] as number)) / scale);
    }
  }
  expect(worst).toBeLessThan(tolerance);
}

/** The codes and the per-block side fields of a quantized matrix (escapes or scale indices). */
function codesOf(q: QuantizedMatrix): unknown {
  if (q.kind !== 'lattice') return q.codes;
  return q.mode === 'universal'
    ? { codes: q.codes, codesHigh: q.codesHigh, escapes: q.escapes, longEscapes: q.longEscapes, hugeEscapes: q.hugeEscapes, norms: q.norms }
    : { codes: q.codes, scaleIndices: q.scaleIndices, norms: q.norms };
}

/** Options of operand `which` (0: A, 1: B): universal schemes get their own nonce per operand. */
function operand(options: QuantizeOptions, which: number): QuantizeOptions {
  const universal = typeof options.scheme === 'string' ? !options.scheme.endsWith('-deterministic') && options.scheme !== 'int4-g32' : options.scheme.kind === 'lattice' && options.scheme.mode === 'universal';
  return universal ? { ...options, nonce: 1000 + which } : options;
}

describe.skipIf(noGpu !== undefined)('GpuEngine', () => {
  // Universal products on their decode path, which computes what matmulAT does (within f32
  // rounding); the default pair path drops a small term and is compared with its twin and with
  // matmulAT in test/gpu/pairMatmul.test.ts.
  const suite = engineOnTestDevice({ universalProduct: 'decode' });

  const cases: readonly [string, QuantizeOptions, 'universal-decode' | 'd3-table' | 'e8-dot' | 'decode-f32'][] = [
    ['d3-q6 (universal)', { scheme: 'd3-q6', seed: 3 }, 'universal-decode'],
    ['e8-q16 (universal), centred', { scheme: 'e8-q16', seed: 4, center: true }, 'universal-decode'],
    ['e8-5bit (universal, 37-bit codes)', { scheme: 'e8-5bit', seed: 4 }, 'universal-decode'],
    ['d3-q6-deterministic', { scheme: 'd3-q6-deterministic', seed: 3 }, 'd3-table'],
    ['d3-q6-deterministic centred, MMSE gain', { scheme: 'd3-q6-deterministic', seed: 3, center: true, gain: 'mmse' }, 'd3-table'],
    ['e8-q16-deterministic', { scheme: 'e8-q16-deterministic', seed: 4 }, 'e8-dot'],
    ['deterministic Z q=16', { scheme: { kind: 'lattice', mode: 'deterministic', lattice: 'Z', q: 16, overload: { kind: 'ladder', beta: 0.3, ratio: 2, steps: 4 } }, seed: 5 }, 'e8-dot'],
    ['deterministic D3 q=4 (no table)', { scheme: { kind: 'lattice', mode: 'deterministic', lattice: 'D3', q: 4, overload: { kind: 'ladder', beta: 0.5, ratio: 1.5, steps: 4 } }, seed: 6 }, 'decode-f32'],
  ];

  for (const [name, options, kernel] of cases) {
    for (const [n, aCols, bCols] of [
      [1, 1, 1],
      [13, 3, 5],
      [100, 17, 9],
      [192, 33, 2],
    ] as const) {
      it(`${name}, n = ${n}, ${aCols} × ${bCols}: GPU codes = CPU codes, ${kernel} product ≈ CPU matmulAT`, async () => {
        const { a, b } = testMatrixPair('gaussian', n, aCols, bCols, n + aCols);
        const qa = await suite.engine.quantize(a, operand(options, 0));
        const qb = await suite.engine.quantize(b, operand(options, 1));
        try {
          const cpuA = quantize(a, operand(options, 0));
          const cpuB = quantize(b, operand(options, 1));
          expect(codesOf(await qa.read())).toEqual(codesOf(cpuA));
          expect(codesOf(await qb.read())).toEqual(codesOf(cpuB));
          expect(suite.engine.productKernel(qa, qb)).toBe(kernel);
          expectProductClose(await suite.engine.matmulAT(qa, qb), matmulAT(cpuA, cpuB), a, b);
        } finally {
          qa.destroy();
          qb.destroy();
        }
      });
    }
  }

  it.each([
    ['d3-q6', false],
    ['e8-q16', true],
  ] as const)('%s (universal) Gram matrix ÂᵀÂ (one matrix passed twice, centred %s): the CPU Gram matrix, exact diagonal, from the decoded and the pair product', async (scheme, center) => {
    const a = gaussianMatrix(100, 9, 61);
    const options = { scheme, seed: 2, nonce: 5, center };
    const qa = await suite.engine.quantize(a, options);
    const pairEngine = GpuEngine.create(suite.context, { universalProduct: 'i8' });
    try {
      const cpuQ = quantize(a, options);
      const exact = matmulATExact(a, a);
      for (const [kernel, product, twin] of [
        ['universal-decode', suite.engine, matmulAT],
        ['universal-i8', pairEngine, universalPairProduct],
      ] as const) {
        expect(product.productKernel(qa, qa)).toBe(kernel);
        const gpu = await product.matmulAT(qa, qa);
        expectProductClose(gpu, twin(cpuQ, cpuQ), a, a);
        for (let i = 0; i < 9; i++) {
          // The diagonal is the stored ‖a_i‖² (+ n·μ_i²): exact up to f32 rounding, no quantization error.
          const k = i * 9 + i;
          expect(Math.abs((gpu.data[k] as number) - (exact.data[k] as number)), `${kernel}, column ${i}`).toBeLessThanOrEqual(1e-5 * (exact.data[k] as number));
        }
      }
    } finally {
      qa.destroy();
    }
  });

  it('matvec and matvecInto read a host x when called: one array reused for un-awaited calls gives each call its own x', async () => {
    const w = await suite.engine.quantize(gaussianMatrix(64, 4, 1), { scheme: 'e8-q16', seed: 7, nonce: 1 });
    try {
      const values = [1e-20, 1, 1e20];
      const alone: Matrix[] = [];
      for (const v of values) alone.push(await suite.engine.matvec(w, new Float32Array(64).fill(v)));
      // Before: x was checked and scaled at the call, uploaded at its turn: [NaN…], then 1e20's y for x = 1.
      const shared = new Float32Array(64);
      const pending = values.map((v) => {
        shared.fill(v);
        return suite.engine.matvec(w, shared);
      });
      shared.fill(Number.NaN);
      expect((await Promise.all(pending)).map((y) => Array.from(y.data))).toEqual(alone.map((y) => Array.from(y.data)));

      const out = suite.context.device.createBuffer({ label: 'matvecInto y', size: 16, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC });
      try {
        const x = new Float32Array(64).fill(1);
        const done = suite.engine.matvecInto(w, x, out);
        x.fill(Number.NaN);
        await done;
        const read = suite.context.device.createBuffer({ label: 'matvecInto read', size: 16, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
        const encoder = suite.context.device.createCommandEncoder();
        encoder.copyBufferToBuffer(out, 0, read, 0, 16);
        suite.context.device.queue.submit([encoder.finish()]);
        await read.mapAsync(GPUMapMode.READ);
        const y = Array.from(new Float32Array(read.getMappedRange().slice(0)));
        read.destroy();
        expect(y).toEqual(Array.from(alone[1]?.data ?? []));
      } finally {
        out.destroy();
      }
    } finally {
      w.destroy();
    }
  });

  it('quantize reads a host matrix when called: one array reused for un-awaited calls gives each call its own matrix', async () => {
    const options = { scheme: 'd3-q6', seed: 3, nonce: 9 } as const;
    const sources = [gaussianMatrix(40, 3, 1), gaussianMatrix(40, 3, 2)];
    const shared: Matrix = { rows: 40, cols: 3, data: new Float32Array(120) };
    const pending = sources.map((m) => {
      shared.data.set(m.data);
      return suite.engine.quantize(shared, options);
    });
    // Before: the data was checked when called and read at the call's turn (this NaN was refused then).
    shared.data.fill(Number.NaN);
    const results = await Promise.all(pending);
    try {
      for (const [i, q] of results.entries()) expect(codesOf(await q.read())).toEqual(codesOf(quantize(sources[i] as Matrix, options)));
    } finally {
      for (const q of results) q.destroy();
    }
  });

  it('destroy(): calls made before it complete (every kind, as if it had not been called), later calls are refused', async () => {
    const doomed = GpuEngine.create(suite.context, { universalProduct: 'decode' });
    const a = gaussianMatrix(48, 5, 11);
    const b = gaussianMatrix(48, 4, 12);
    const x = gaussianMatrix(48, 2, 13);
    const [qa, qb] = [await suite.engine.quantize(a, { scheme: 'e8-q16', seed: 1, nonce: 1 }), await suite.engine.quantize(b, { scheme: 'e8-q16', seed: 1, nonce: 2 })];
    const out = suite.context.device.createBuffer({ label: 'destroy test C', size: 4 * 5 * 4, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC });
    try {
      const product = doomed.matmulAT(qa, qb);
      const into = doomed.matmulATInto(qa, qb, out);
      const y = doomed.matvec(qa, x);
      const decoded = doomed.dequantize(qa);
      const quantized = doomed.quantize(a, { scheme: 'e8-q16', seed: 1, nonce: 1 });
      doomed.destroy();
      // Before: the products (which checked the engine again at their turn) were refused, the others ran.
      expect(Array.from((await product).data)).toEqual(Array.from((await suite.engine.matmulAT(qa, qb)).data));
      await expect(into).resolves.toBeUndefined();
      expect(Array.from((await y).data)).toEqual(Array.from((await suite.engine.matvec(qa, x)).data));
      expect(Array.from((await decoded).data)).toEqual(Array.from((await suite.engine.dequantize(qa)).data));
      const q = await quantized;
      expect(codesOf(await q.read())).toEqual(codesOf(await qa.read()));
      q.destroy();
      for (const later of [() => doomed.matmulAT(qa, qb), () => doomed.matvec(qa, x), () => doomed.dequantize(qa), () => doomed.quantize(a, { scheme: 'e8-q16' })]) {
        await expect(later()).rejects.toThrow('this GpuEngine was destroyed');
      }
      expect(() => doomed.productKernel(qa, qb)).toThrow('this GpuEngine was destroyed');
    } finally {
      out.destroy();
      qa.destroy();
      qb.destroy();
    }
  });

  describe("deterministicProduct: 'decode' (deterministic operands decoded to f32, the f32 matmul)", () => {
    let decoding: GpuEngine;
    beforeAll(() => {
      decoding = GpuEngine.create(suite.context, { deterministicProduct: 'decode' });
    });
    afterAll(() => decoding.destroy());

    const decodeCases: readonly [string, QuantizeOptions, 'd3-table' | 'e8-dot' | 'decode-f32'][] = [
      ['d3-q6-deterministic', { scheme: 'd3-q6-deterministic', seed: 3 }, 'decode-f32'],
      ['e8-q16-deterministic', { scheme: 'e8-q16-deterministic', seed: 4 }, 'decode-f32'],
      // Centred operands keep the codes kernel, which carries the means.
      ['d3-q6-deterministic centred', { scheme: 'd3-q6-deterministic', seed: 3, center: true }, 'd3-table'],
    ];
    for (const [name, options, kernel] of decodeCases) {
      for (const [n, aCols, bCols] of [
        [1, 1, 1],
        [100, 17, 9],
      ] as const) {
        it(`${name}, n = ${n}, ${aCols} × ${bCols}: ${kernel} ≈ CPU matmulAT, and the codes engine's product`, async () => {
          const { a, b } = testMatrixPair('heavy-tailed', n, aCols, bCols, n + aCols);
          const qa = await decoding.quantize(a, operand(options, 0));
          const qb = await decoding.quantize(b, operand(options, 1));
          try {
            expect(decoding.productKernel(qa, qb)).toBe(kernel);
            const gpu = await decoding.matmulAT(qa, qb);
            expectProductClose(gpu, matmulAT(quantize(a, operand(options, 0)), quantize(b, operand(options, 1))), a, b);
            expectProductClose(gpu, await suite.engine.matmulAT(qa, qb), a, b);
          } finally {
            qa.destroy();
            qb.destroy();
          }
        });
      }
    }

    it('a deterministic matrix passed twice (decode-f32): the CPU product of it with itself, no Gram diagonal (that is a universal side\'s)', async () => {
      const a = gaussianMatrix(40, 3, 71);
      const options: QuantizeOptions = { scheme: 'd3-q6-deterministic', seed: 3 };
      const qa = await decoding.quantize(a, options);
      try {
        expect(decoding.productKernel(qa, qa)).toBe('decode-f32');
        const cpuQ = quantize(a, options);
        expectProductClose(await decoding.matmulAT(qa, qa), matmulAT(cpuQ, cpuQ), a, a);
      } finally {
        qa.destroy();
      }
    });

    it('refuses any other value, as the other engine options', () => {
      expect(() => GpuEngine.create(suite.context, { deterministicProduct: 'f32' as never })).toThrow(LatticeMatmulError);
      expect(() => GpuEngine.create(suite.context, { deterministicProduct: 'f32' as never })).toThrow(/deterministicProduct must be 'codes' or 'decode', got "f32"/);
      expect(GpuEngine.create(suite.context).deterministicProduct).toBe('codes');
    });
  });

  it('refuses two different universal matrices quantized with the same nonce (their errors are not independent)', async () => {
    const qa = await suite.engine.quantize(gaussianMatrix(40, 3, 62), { scheme: 'e8-q16', seed: 1, nonce: 9 });
    const qb = await suite.engine.quantize(gaussianMatrix(40, 2, 63), { scheme: 'e8-q16', seed: 1, nonce: 9 });
    try {
      await expect(suite.engine.matmulAT(qa, qb)).rejects.toThrow(/same nonce/);
    } finally {
      qa.destroy();
      qb.destroy();
    }
  });

  it('productKernel and matmulAT refuse alike, with messages that fit the pair: one quantization in two objects, centred deterministic operands the decode-f32 path cannot take', async () => {
    const a = gaussianMatrix(40, 3, 64);
    const cpu = quantize(a, { scheme: 'e8-q16', seed: 1, nonce: 9 });
    const [first, second] = [suite.engine.upload(cpu), suite.engine.upload(cpu)];
    const shifted = { ...a, data: a.data.map((v) => v + 1) };
    const deterministic = { kind: 'lattice', mode: 'deterministic', lattice: 'D3', q: 4, overload: { kind: 'ladder', beta: 0.5, ratio: 1.5, steps: 4 } } as const;
    const ca = await suite.engine.quantize(shifted, { scheme: deterministic, seed: 1, center: true });
    const cb = await suite.engine.quantize(shifted, { scheme: 'e8-q16-deterministic', seed: 1, center: true });
    try {
      // Before: "Pass the same matrix twice", to a user who had.
      expect(() => suite.engine.productKernel(first, second)).toThrow(/same nonce.*two uploads of one quantized matrix are two objects: upload it once/);
      expect(suite.engine.productKernel(first, first)).toBe('universal-decode');
      // Before: productKernel answered 'decode-f32', and matmulAT refused them as "different modes (universal × deterministic)".
      for (const [x, y] of [[ca, ca], [ca, cb], [cb, ca]] as const) {
        expect(() => suite.engine.productKernel(x, y)).toThrow(/^centred operands are multiplied on the GPU when both are universal, or both deterministic .*not A: deterministic (D3 q = 4|E8 q = 16) with B: deterministic/);
        await expect(suite.engine.matmulAT(x, y)).rejects.toThrow(/^centred operands/);
      }
      expect(suite.engine.productKernel(cb, cb)).toBe('e8-dot'); // centred, and multiplied
    } finally {
      for (const m of [first, second, ca, cb]) m.destroy();
    }
  });

  it('matvecInto takes a host x whose largest |entry| is 2^-80 exactly and refuses one an f32 ulp below (f32 subnormals on the way)', async () => {
    const w = await suite.engine.quantize(gaussianMatrix(16, 2, 72), operand({ scheme: 'e8-q16', seed: 1 }, 0));
    const y = createBufferWithData(suite.engine.device, 'tiny x y', new Float32Array(2), STORAGE_USAGE);
    try {
      const x = new Float32Array(16).fill(2 ** -81);
      x[3] = 2 ** -80;
      await suite.engine.matvecInto(w, x, y);
      x[3] = Math.fround(2 ** -80 * (1 - 2 ** -24)); // the f32 just below 2^-80
      expect(x[3]).toBeLessThan(2 ** -80);
      await expect(suite.engine.matvecInto(w, x, y)).rejects.toThrow(/^matvecInto: the largest \|entry\| of x's column 0 is below 2\^-80, under 2\^-80/);
    } finally {
      w.destroy();
      y.destroy();
    }
  });

  it('matmulATInto names an output too small at its offset (24 bytes of C at offset 8 of 28), and writes C from the offset it is given', async () => {
    const a = gaussianMatrix(16, 3, 68);
    const b = gaussianMatrix(16, 2, 69);
    const qa = await suite.engine.quantize(a, operand({ scheme: 'e8-q16', seed: 1 }, 0));
    const qb = await suite.engine.quantize(b, operand({ scheme: 'e8-q16', seed: 1 }, 1));
    const output = createBufferWithData(suite.engine.device, 'offset C', new Float32Array(7).fill(-1), STORAGE_USAGE);
    try {
      await expect(suite.engine.matmulATInto(qa, qb, output, 8)).rejects.toThrow(/^matmulAT output needs 24 bytes at offset 8, but its buffer has 28/);
      await suite.engine.matmulATInto(qa, qb, output, 4);
      const written = new Float32Array(await readBufferExclusive(suite.engine.device, output, 28));
      expect(written[0]).toBe(-1); // before the offset: untouched
      expect(Array.from(written.subarray(1))).toEqual(Array.from((await suite.engine.matmulAT(qa, qb)).data));
    } finally {
      for (const resource of [qa, qb, output]) resource.destroy();
    }
  });

  it("refuses an output that is one of the operands' own buffers (the result would overwrite them silently)", async () => {
    const x = gaussianMatrix(40, 1, 65);
    for (const scheme of ['e8-q16', 'd3-q6-deterministic'] as const) {
      const qa = await suite.engine.quantize(gaussianMatrix(40, 3, 66), operand({ scheme, seed: 1 }, 0));
      const qb = await suite.engine.quantize(gaussianMatrix(40, 2, 67), operand({ scheme, seed: 1 }, 1));
      try {
        const before = await qa.read();
        const fields = qa.mode === 'universal' ? (['codes', 'escapeBits', 'side'] as const) : (['codes', 'scaleIndices', 'norms'] as const);
        for (const field of fields) {
          const buffer = (qa as unknown as Record<string, GPUBuffer>)[field] as GPUBuffer;
          // Before (universal): C was written over A's codes and the call resolved.
          await expect(suite.engine.matmulATInto(qa, qb, buffer), field).rejects.toThrow(new RegExp(`^matmulAT output is A's ${field} buffer`));
          await expect(suite.engine.matmulATInto(qb, qa, buffer), field).rejects.toThrow(new RegExp(`^matmulAT output is B's ${field} buffer`));
          await expect(suite.engine.matvecInto(qa, x, buffer), field).rejects.toThrow(new RegExp(`^matvecInto output is W's ${field} buffer`));
        }
        const layer = QuantizedLinear.create(suite.engine.device, qa);
        const xBuffer = createBufferWithData(suite.engine.device, 'aliasing x', x.data, STORAGE_USAGE);
        try {
          const encoder = suite.engine.device.createCommandEncoder();
          expect(() => layer.record(encoder, xBuffer, qa.codes)).toThrow(/^y is the weight's codes buffer/);
        } finally {
          layer.destroy();
          xBuffer.destroy();
        }
        expect(codesOf(await qa.read())).toEqual(codesOf(before));
      } finally {
        qa.destroy();
        qb.destroy();
      }
    }
  });

  it('a universal × deterministic product decodes both (universal-decode) and matches the CPU', async () => {
    const { a, b } = testMatrixPair('gaussian', 100, 7, 5, 64);
    const qa = await suite.engine.quantize(a, { scheme: 'e8-q16', seed: 3, nonce: 1 });
    const qb = await suite.engine.quantize(b, { scheme: 'd3-q6-deterministic', seed: 3 });
    try {
      expect(suite.engine.productKernel(qa, qb)).toBe('universal-decode');
      expect(suite.engine.productKernel(qb, qa)).toBe('universal-decode');
      const cpu = matmulAT(quantize(a, { scheme: 'e8-q16', seed: 3, nonce: 1 }), quantize(b, { scheme: 'd3-q6-deterministic', seed: 3 }));
      expectProductClose(await suite.engine.matmulAT(qa, qb), cpu, a, b);
    } finally {
      qa.destroy();
      qb.destroy();
    }
  });

  // Centred operands of different modes: the GPU may refuse them (as it refuses centred deterministic
  // operands of different schemes) or multiply them with the mean term; it must not return a product
  // without the mean term.
  it.each([
    ['e8-q16', 'd3-q6-deterministic'],
    ['d3-q6-deterministic', 'e8-q16'],
  ] as const)('centred %s × %s: refused with LatticeMatmulError or equal to the CPU product, never without the mean term', async (sa, sb) => {
    const { a, b } = testMatrixPair('gaussian', 100, 3, 2, 64);
    const optionsA = { ...operand({ scheme: sa, seed: 3 }, 0), center: true };
    const optionsB = { ...operand({ scheme: sb, seed: 3 }, 1), center: true };
    const shift = (m: Matrix, offset: number): Matrix => ({ ...m, data: m.data.map((v) => v + offset) });
    const [sa0, sb0] = [shift(a, 2), shift(b, -1)];
    const ca = await suite.engine.quantize(sa0, optionsA);
    const cb = await suite.engine.quantize(sb0, optionsB);
    try {
      const result = await suite.engine.matmulAT(ca, cb).then(
        (c) => c,
        (error: unknown) => error,
      );
      if (result instanceof Error) {
        expect(result).toBeInstanceOf(LatticeMatmulError);
      } else {
        expectProductClose(result as Matrix, matmulAT(quantize(sa0, optionsA), quantize(sb0, optionsB)), sa0, sb0);
      }
    } finally {
      ca.destroy();
      cb.destroy();
    }
  });

  it.each([
    ['d3-q6-deterministic', 'the GPU path keeps the unbiased gain'],
    ['d3-q6', 'the universal code needs no gain'],
  ] as const)('%s reaches the CPU figure on low-rank data (n = 256): %s', async (scheme, _why) => {
    const { a, b } = testMatrixPair('low-rank', 256, 24, 24, 9);
    const options = { scheme, seed: 2 };
    const qa = await suite.engine.quantize(a, operand(options, 0));
    const qb = await suite.engine.quantize(b, operand(options, 1));
    try {
      const gpuNmse = productNmse(await suite.engine.matmulAT(qa, qb), a, b);
      const cpuNmse = productNmse(matmulAT(quantize(a, operand(options, 0)), quantize(b, operand(options, 1))), a, b);
      expect(Math.abs(gpuNmse - cpuNmse)).toBeLessThan(1e-4 * cpuNmse + 1e-7);
      expect(gpuNmse).toBeLessThan(0.15);
    } finally {
      qa.destroy();
      qb.destroy();
    }
  });

  it.each(['d3-q6', 'd3-q6-deterministic'] as const)('%s: quantizes the caller’s GPU buffer and writes the product into the caller’s buffer', async (scheme) => {
    const a = gaussianMatrix(48, 7, 21);
    const b = gaussianMatrix(48, 5, 22);
    const aBuffer = createBufferWithData(suite.context.device, 'test A', a.data, STORAGE_USAGE);
    const bBuffer = createBufferWithData(suite.context.device, 'test B', b.data, STORAGE_USAGE);
    const out = suite.context.device.createBuffer({ label: 'test C', size: 4 * 7 * 5, usage: STORAGE_USAGE });
    const options = { scheme, seed: 8 };
    const qa = await suite.engine.quantize({ buffer: aBuffer, rows: 48, cols: 7 }, operand(options, 0));
    const qb = await suite.engine.quantize({ buffer: bBuffer, rows: 48, cols: 5 }, operand(options, 1));
    try {
      await suite.engine.matmulATInto(qa, qb, out);
      const staging = suite.context.device.createBuffer({ label: 'test C staging', size: 4 * 35, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
      const encoder = suite.context.device.createCommandEncoder({ label: 'test C copy' });
      encoder.copyBufferToBuffer(out, 0, staging, 0, 4 * 35);
      suite.context.device.queue.submit([encoder.finish()]);
      await staging.mapAsync(GPUMapMode.READ);
      const data = new Float32Array(staging.getMappedRange().slice(0));
      staging.destroy();
      const cpu = matmulAT(quantize(a, operand(options, 0)), quantize(b, operand(options, 1)));
      expectProductClose({ rows: 7, cols: 5, data }, cpu, a, b);
    } finally {
      for (const buffer of [aBuffer, bBuffer, out]) buffer.destroy();
      qa.destroy();
      qb.destroy();
    }
  });

  // The universal cases run the universal GEMV (src/gpu/kernels/universalGemv.ts).
  it.each(['d3-q6', 'e8-q16', 'd3-q6-deterministic', 'e8-q16-deterministic'] as const)('%s matvec ≈ dequantize(W)ᵀ·x in the rotated domain (float64 reference)', async (scheme) => {
    const n = 100;
    const w = gaussianMatrix(n, 9, 31);
    const x = gaussianMatrix(n, 1, 32).data;
    const options = operand({ scheme, seed: 12 }, 0);
    const qw = await suite.engine.quantize(w, options);
    try {
      const y = await suite.engine.matvec(qw, x);
      const cpu = quantize(w, options);
      // Reference: ⟨ŵ_j, R x⟩ with ŵ decoded in the rotated domain (the estimator's own definition).
      const rotatedX = new RandomizedHadamard(n, 12).forward(x);
      const decoded = decodeRotated(cpu);
      const xNorm = Math.sqrt(x.reduce((s, v) => s + v * v, 0));
      const wNorms = columnNorms(w);
      for (let j = 0; j < 9; j++) {
        let expected = 0;
        for (let k = 0; k < cpu.length; k++) expected += (decoded[j * cpu.length + k] as number) * (rotatedX[k] as number);
        expect(Math.abs((y.data[j] as number) - expected)).toBeLessThan(1e-5 * (wNorms[j] as number) * xNorm);
      }
    } finally {
      qw.destroy();
    }
  });

  it.each(['d3-q6', 'd3-q6-deterministic'] as const)('%s matvec takes x from the caller’s GPU buffer (f32 and f16, at an offset, 3 right-hand sides) and matches the Float32Array path', async (scheme) => {
    const n = 48;
    const w = gaussianMatrix(n, 5, 51);
    const x = gaussianMatrix(n, 3, 52);
    const qw = await suite.engine.quantize(w, operand({ scheme, seed: 14 }, 0));
    const padded = new Float32Array(4 + x.data.length);
    padded.set(x.data, 4);
    const xBuffer = createBufferWithData(suite.context.device, 'test x', padded, STORAGE_USAGE);
    try {
      const fromGpu = await suite.engine.matvec(qw, { buffer: xBuffer, rows: n, cols: 3, offset: 16 });
      const fromHost = await suite.engine.matvec(qw, x);
      expect([fromGpu.rows, fromGpu.cols]).toEqual([5, 3]);
      expect(Array.from(fromGpu.data)).toEqual(Array.from(fromHost.data));
      const single = await suite.engine.matvec(qw, x.data.slice(0, n));
      for (let j = 0; j < 5; j++) expect(single.data[j]).toBe(fromHost.data[j]);
      // f16 x at an offset (widened on the GPU from there): x's f16 values from the host, bit for bit.
      const halves = new Uint16Array(4 + x.data.length).fill(float16Bits(1000)); // before the offset: not x
      halves.set(Array.from(x.data, (v) => float16Bits(v)), 4);
      const x16Buffer = createBufferWithData(suite.context.device, 'test x (f16)', halves, STORAGE_USAGE);
      try {
        const fromGpu16 = await suite.engine.matvec(qw, { buffer: x16Buffer, rows: n, cols: 3, offset: 8, format: 'f16' });
        const fromHost16 = await suite.engine.matvec(qw, { rows: n, cols: 3, data: Float32Array.from(halves.subarray(4), (h) => fromFloat16Bits(h)) });
        expect(Array.from(fromGpu16.data)).toEqual(Array.from(fromHost16.data));
      } finally {
        x16Buffer.destroy();
      }
    } finally {
      xBuffer.destroy();
      qw.destroy();
    }
  });

  it.each(['e8-q16', 'd3-q6', 'e8-q16-deterministic'] as const)('%s: dequantize on the GPU equals the CPU dequantize to f32 rounding', async (scheme) => {
    const a = gaussianMatrix(40, 6, 41);
    const options = operand({ scheme, seed: 13, center: true }, 0);
    const qa = await suite.engine.quantize(a, options);
    try {
      const gpu = await suite.engine.dequantize(qa);
      const cpu = dequantize(quantize(a, options));
      for (let k = 0; k < cpu.data.length; k++) expect(gpu.data[k] as number).toBeCloseTo(cpu.data[k] as number, 5);
    } finally {
      qa.destroy();
    }
  });

  // The README's bound: the CPU scales each decoded point in f64 and rounds once, the GPU scales in f32
  // (then rotates back in its own order), so an entry may differ by a couple of f32 ulps of the column's
  // largest entry (measured ≤ 2.4·2⁻²³ of it); relative to the column's RMS that grows with the column's peak.
  it.each(['gaussian', 'heavy-tailed', 'outlier-rows', 'spikes'] as const)('dequantize on the GPU is within 4·2⁻²³ of each column\'s largest entry of the CPU dequantize, on the README\'s five schemes (%s columns, n not a power of two)', async (kind) => {
    const a = testMatrixPair(kind, 1000, 4, 1, 3).a;
    const schemes: QuantizeOptions[] = [{ scheme: 'e8-4bit', nonce: 3 }, { scheme: 'd3-q6', nonce: 3 }, { scheme: 'e8-2bit', nonce: 3, center: true }, { scheme: 'd3-q6-deterministic' }, { scheme: 'e8-q16-deterministic' }];
    for (const options of schemes) {
      const qa = await suite.engine.quantize(a, options);
      const gpu = await suite.engine.dequantize(qa).finally(() => qa.destroy());
      const cpu = dequantize(quantize(a, options));
      for (let j = 0; j < a.cols; j++) {
        const column = (m: Matrix): Float32Array => m.data.subarray(j * a.rows, (j + 1) * a.rows);
        const largest = column(cpu).reduce((most, v) => Math.max(most, Math.abs(v)), 0);
        let worst = 0;
        column(gpu).forEach((v, i) => (worst = Math.max(worst, Math.abs(v - (column(cpu)[i] as number)))));
        expect(worst / largest, `${String(options.scheme)}, column ${j}`).toBeLessThanOrEqual(4 * 2 ** -23);
      }
    }
  });

  it.each(['d3-q6', 'e8-2bit', 'd3-q6-deterministic'] as const)('%s: a CPU-quantized matrix uploaded to the GPU multiplies like the GPU-quantized one', async (scheme) => {
    const { a, b } = testMatrixPair('heavy-tailed', 64, 4, 4, 3);
    const cpuA = quantize(a, operand({ scheme, seed: 1 }, 0));
    const cpuB = quantize(b, operand({ scheme, seed: 1 }, 1));
    if (cpuA.kind !== 'lattice' || cpuB.kind !== 'lattice') throw new Error('expected lattice matrices');
    const ua: GpuLatticeQuantized = cpuA.mode === 'universal' ? suite.engine.upload(asUniversal(cpuA)) : suite.engine.upload(asDeterministic(cpuA));
    const ub: GpuLatticeQuantized = suite.engine.upload(cpuB);
    const ga = await suite.engine.quantize(a, operand({ scheme, seed: 1 }, 0));
    try {
      expect([ua.mode, ub.mode]).toEqual([cpuA.mode, cpuB.mode]);
      expectProductClose(await suite.engine.matmulAT(ua, ub), matmulATExact(a, b), a, b, 0.5); // sanity: an estimate of AᵀB
      expectProductClose(await suite.engine.matmulAT(ua, ub), matmulAT(cpuA, cpuB), a, b);
      expectProductClose(await suite.engine.matmulAT(ga, ub), matmulAT(cpuA, cpuB), a, b);
    } finally {
      ua.destroy();
      ub.destroy();
      ga.destroy();
    }
  });

  it('GpuEngine.create takes a bare GPUDevice: no adapter, features and limits read from the device, same products', async () => {
    const bare = GpuEngine.create(suite.context.device, { universalProduct: 'decode' });
    const a = gaussianMatrix(40, 3, 71);
    const b = gaussianMatrix(40, 2, 72);
    const qa = await bare.quantize(a, { scheme: 'e8-q16', seed: 3, nonce: 1 });
    const qb = await bare.quantize(b, { scheme: 'e8-q16', seed: 3, nonce: 2 });
    try {
      expect(bare.adapter).toBeNull();
      expect(bare.device).toBe(suite.context.device);
      expect(bare.limits.maxStorageBufferBindingSize).toBe(suite.context.device.limits.maxStorageBufferBindingSize);
      expect(bare.limits.maxComputeWorkgroupStorageSize).toBe(suite.context.device.limits.maxComputeWorkgroupStorageSize);
      expect(bare.features.subgroups).toBe(suite.context.device.features.has('subgroups'));
      expect(bare.tableLayout).toBe(suite.engine.tableLayout);
      const cpu = matmulAT(quantize(a, { scheme: 'e8-q16', seed: 3, nonce: 1 }), quantize(b, { scheme: 'e8-q16', seed: 3, nonce: 2 }));
      expectProductClose(await bare.matmulAT(qa, qb), cpu, a, b);
    } finally {
      qa.destroy();
      qb.destroy();
      bare.destroy();
    }
    expect(suite.engine.adapter).toBe(suite.context.adapter);
  });

  it('GpuEngine.create(suite.context) and GpuEngine.create(suite.context.device) resolve the same defaults in Node (no navigator.gpu)', () => {
    // Before: the bare device's context assumed no packed dot products, so it chose dotPath 'plain' and
    // universalProduct 'decode' where the context chose 'packed' and 'i8' (the same matmulAT differed by up to 0.049).
    const fromContext = GpuEngine.create(suite.context);
    const fromDevice = GpuEngine.create(suite.context.device);
    expect(fromDevice.features).toEqual(suite.context.features);
    expect([fromDevice.dotPath, fromDevice.universalProduct, fromDevice.deterministicProduct, fromDevice.tableLayout]).toEqual([
      fromContext.dotPath,
      fromContext.universalProduct,
      fromContext.deterministicProduct,
      fromContext.tableLayout,
    ]);
  });

  it('GpuEngine.create refuses a dotPath outside packed / plain and null options, naming them', () => {
    // Before: 'foo' was kept as the dotPath and made universalProduct default to 'decode'.
    expect(() => GpuEngine.create(suite.context, { dotPath: 'foo' as never })).toThrow(/^GpuEngine\.create options: dotPath must be 'packed' or 'plain', got "foo"$/);
    expect(() => GpuEngine.create(suite.context, { dotPath: null as never })).toThrow(/^GpuEngine\.create options: dotPath must be 'packed' or 'plain', got null$/);
    expect(() => GpuEngine.create(suite.context, { universalProduct: null as never })).toThrow(/^GpuEngine\.create options: universalProduct must be 'i8' or 'decode', got null$/);
    expect(() => GpuEngine.create(suite.context, { deterministicProduct: null as never })).toThrow(/^GpuEngine\.create options: deterministicProduct must be 'codes' or 'decode', got null$/);
    // The documented coupling: a forced 'plain' dotPath makes universalProduct default to 'decode'.
    expect(GpuEngine.create(suite.context, { dotPath: 'plain' }).universalProduct).toBe('decode');
  });

  it("GpuEngine.create refuses dotPath 'packed' where the adapter lacks packed_4x8_integer_dot_product, and defaults to 'plain' there", () => {
    // The same device, described as an adapter without the WGSL feature (e.g. a browser without it).
    const without: GpuContext = { ...suite.context, features: { ...suite.context.features, packed4x8IntegerDotProduct: false } };
    expect(() => GpuEngine.create(without, { dotPath: 'packed' })).toThrow(/dotPath 'packed' needs the packed_4x8_integer_dot_product WGSL feature, which this adapter lacks/);
    const defaulted = GpuEngine.create(without);
    expect(defaulted.dotPath).toBe('plain');
    expect(defaulted.universalProduct).toBe('decode');
  });

  it('matmulAT refuses a third argument (shrink is the CPU matmulAT\'s option) instead of ignoring it', async () => {
    const qa = await suite.engine.quantize(gaussianMatrix(16, 2, 81), { scheme: 'e8-q16', nonce: 1 });
    try {
      await expect(suite.engine.matmulAT(qa, qa, ...([{ shrink: 'product' }] as never[]))).rejects.toThrow(
        /^GpuEngine\.matmulAT takes two arguments \(A, B\), got 3: it has no options \(shrink is an option of the CPU matmulAT/,
      );
      expect((await suite.engine.matmulAT(qa, qa)).rows).toBe(2);
    } finally {
      qa.destroy();
    }
  });

  it.each(['d3-q6', 'e8-q16', 'd3-q6-deterministic', 'e8-q16-deterministic'] as const)('%s: matvec answers right up to the GPU GEMV range and refuses host x beyond it or beyond the product range', async (scheme) => {
    const n = 64;
    const w = gaussianMatrix(n, 4, 31);
    const options = operand({ scheme, seed: 3 }, 0);
    const cpu = quantize(w, options);
    const gpu = await suite.engine.quantize(w, options);
    const bigW = { rows: n, cols: 4, data: w.data.map((v) => v * 2 ** 20) };
    const big = await suite.engine.quantize(bigW, options);
    const output = createBufferWithData(suite.context.device, 'matvecInto y', new Float32Array(4), STORAGE_USAGE);
    try {
      // x along a decoded column: the direction that makes the GEMV's sums largest. Scaled by a power
      // of two to the largest ‖x‖ ≤ the limit, the result is that power of two times the CPU's, to
      // within the GPU's f32 sums; 16 times that overflowed the GPU's sums (Inf, NaN), so matvecInto
      // (which sends x up as it is) refuses it, although the CPU computes it (‖Ŵ‖·‖x‖ is far below
      // 2^126), while matvec (which sends x up scaled to a largest entry in [1, 2)) computes it too.
      const column = dequantize(cpu).data.slice(0, n);
      const norm = Math.hypot(...column);
      const limit = gemvInputNormLimit(gpu);
      const scale = 2 ** Math.floor(Math.log2(limit / norm));
      const reference = matvecAT(cpu, { rows: n, cols: 1, data: column }).data;
      const atLimit = (await suite.engine.matvec(gpu, column.map((v) => v * scale))).data;
      for (let j = 0; j < 4; j++) expect(Math.abs((atLimit[j] as number) / scale - (reference[j] as number)), `column ${j}`).toBeLessThan(1e-5 * gpu.maxColumnNorm * norm);
      const beyond = column.map((v) => v * scale * 16);
      expect(() => matvecAT(cpu, { rows: n, cols: 1, data: beyond })).not.toThrow();
      await expect(suite.engine.matvecInto(gpu, { rows: n, cols: 1, data: beyond }, output)).rejects.toThrow(/beyond the .* the GPU GEMV of this W takes/);
      const beyondResult = (await suite.engine.matvec(gpu, beyond)).data;
      for (let j = 0; j < 4; j++) expect(Math.abs((beyondResult[j] as number) / (16 * scale) - (reference[j] as number)), `column ${j}, 16 × the limit`).toBeLessThan(1e-5 * gpu.maxColumnNorm * norm);
      // An output too small (or at an offset past its room) is named as the caller's argument.
      await expect(suite.engine.matvecInto(gpu, column, output, 4)).rejects.toThrow(/^matvec output needs 16 bytes at offset 4/);
      await expect(suite.engine.matvecInto(gpu, { rows: n, cols: 2, data: new Float32Array(2 * n) }, output)).rejects.toThrow(/^matvec output needs 32 bytes/);
      // ‖Ŵ‖·‖x‖ beyond 2^126 (the product range of matvecAT), with ‖x‖ well inside the GEMV's limit.
      const x = column.map((v) => (v / norm) * 2 ** 105);
      expect(() => matvecAT(quantize(bigW, options), { rows: n, cols: 1, data: x })).toThrow(/beyond the f32 range/);
      await expect(suite.engine.matvec(big, x)).rejects.toThrow(/beyond the f32 range/);
    } finally {
      gpu.destroy();
      big.destroy();
      output.destroy();
    }
  });

  it.each([
    ['D3, q = 3, β = 64', { kind: 'lattice', mode: 'universal', lattice: 'D3', q: 3, beta: 64 }],
    ['D3, q = 3, β = 16', { kind: 'lattice', mode: 'universal', lattice: 'D3', q: 3, beta: 16 }],
    ['E8, q = 4, β = 32', { kind: 'lattice', mode: 'universal', lattice: 'E8', q: 4, beta: 32 }],
    ['e8-2bit', 'e8-2bit'],
    ['d3-q6', 'd3-q6'],
  ] as const)('bounds a GPU-quantized universal matrix by its decoded norms (%s): a product that could leave f32 is refused, not ±Infinity', async (_, scheme) => {
    const a0 = gaussianMatrix(64, 4, 1);
    const b0 = gaussianMatrix(64, 4, 2);
    const columnNorms = (m: Matrix) => Array.from({ length: m.cols }, (_, j) => Math.hypot(...m.data.subarray(j * m.rows, (j + 1) * m.rows)));
    // Scaled so that max‖a_i‖·max‖b_j‖ = 0.95·2^126: inside the range by the inputs' norms alone.
    const s = Math.sqrt((0.95 * 2 ** 126) / (Math.max(...columnNorms(a0)) * Math.max(...columnNorms(b0))));
    const a = { ...a0, data: a0.data.map((v) => v * s) };
    const b = { ...b0, data: b0.data.map((v) => v * s) };
    const qa = quantize(a, { scheme, seed: 1, nonce: 1n });
    const qb = quantize(b, { scheme, seed: 1, nonce: 2n });
    const ga = await suite.engine.quantize(a, { scheme, seed: 1, nonce: 1n });
    const gb = await suite.engine.quantize(b, { scheme, seed: 1, nonce: 2n });
    try {
      // The bound holds: no decoded column is longer (the GPU refuses by it, the CPU by the decoded norms).
      for (const [q, g] of [[qa, ga], [qb, gb]] as const) expect(g.maxColumnNorm).toBeGreaterThanOrEqual(Math.max(...columnNorms(dequantize(q))) * (1 - 1e-6));
      const decodedProduct = Math.max(...columnNorms(dequantize(qa))) * Math.max(...columnNorms(dequantize(qb)));
      let cpu: Matrix | null = null;
      try {
        cpu = matmulAT(qa, qb);
      } catch (error) {
        expect(String(error)).toMatch(/beyond the f32 range/);
      }
      // The CPU's half of the promise: a product it returns is finite, and one whose decoded norms
      // multiply past 2^126 (MAX_NORM_PRODUCT) is refused.
      if (cpu !== null) expect(Array.from(cpu.data).every(Number.isFinite), `CPU product ${Array.from(cpu.data).slice(0, 4)}`).toBe(true);
      if (decodedProduct > 2 ** 126) expect(cpu, `decoded norms multiply to ${decodedProduct}`).toBeNull();
      const gpu = await suite.engine.matmulAT(ga, gb).then((c) => c, (error: unknown) => error);
      if (gpu instanceof Error) expect(gpu.message).toMatch(/beyond the f32 range/);
      else expect(Array.from((gpu as Matrix).data).every(Number.isFinite), `GPU product ${Array.from((gpu as Matrix).data).slice(0, 4)}`).toBe(true);
      // What the CPU refuses the GPU refuses too (it may refuse more, near the limit).
      if (cpu === null) expect(gpu).toBeInstanceOf(LatticeMatmulError);
      // Large β decodes far beyond the norms: the case that returned ±Infinity.
      if (typeof scheme !== 'string') expect(decodedProduct).toBeGreaterThan(2 ** 128);
    } finally {
      ga.destroy();
      gb.destroy();
    }
  });

  it('refuses what it cannot do, with LatticeMatmulError', async () => {
    const a = gaussianMatrix(24, 2, 1);
    // @ts-expect-error a scalar scheme does not compile (GpuSchemeRefused); JS callers are refused at run time
    await expect(suite.engine.quantize(a, { scheme: 'int4-g32' })).rejects.toThrow(/CPU/);
    // @ts-expect-error a universal scheme takes no gain (QuantizeOptionsFor), and JS callers are refused at run time
    await expect(suite.engine.quantize(a, { scheme: 'd3-q6', gain: 'mmse' })).rejects.toThrow(/gain applies to deterministic lattice schemes only/);
    await expect(suite.engine.quantize(a, { scheme: 'd3-q6', centre: true } as unknown as QuantizeOptions)).rejects.toThrow(/did you mean 'center'/);
    for (const scheme of ['d3-q6', 'd3-q6-deterministic'] as const) {
      const qa = await suite.engine.quantize(a, { scheme, seed: 1 });
      const qb = await suite.engine.quantize(gaussianMatrix(24, 2, 2), { scheme, seed: 2 });
      const qc = await suite.engine.quantize(gaussianMatrix(48, 2, 2), { scheme, seed: 1 });
      try {
        await expect(suite.engine.matmulAT(qa, qb)).rejects.toThrow(/seed/);
        await expect(suite.engine.matmulAT(qa, qc)).rejects.toThrow(LatticeMatmulError);
        await expect(suite.engine.matvec(qa, new Float32Array(23))).rejects.toThrow(/rows/);
      } finally {
        for (const q of [qa, qb, qc]) q.destroy();
      }
    }
    const other = GpuEngine.create(suite.context);
    other.destroy();
    await expect(other.quantize(a, { scheme: 'd3-q6' })).rejects.toThrow(/destroyed/);
  });
});

/*
 * Explicit ("huge") escapes, μ up to ±2^16 per coordinate, can make a universal column decode far
 * beyond its stored norm ν (the container reader allows decoded norms up to 2^110). The GPU matrix's
 * maxColumnNorm and gemvInputNormLimit assumed ordinary codes (a decode within 2ν), so GpuEngine.matvec
 * took x for which the GPU GEMV's code-unit sums overflowed (NaN) where the CPU matvecAT was finite.
 * The upload now bounds each column's decode, for any codes, from its escape streams
 * (universalColumnBounds) or its scheme's largest multiple (deterministicDecodeRatio); matrices the GPU
 * quantized keep exactly the limits of the ordinary formulas.
 */
describe.skipIf(noGpu !== undefined)('GpuEngine.matvec and explicit escapes', () => {
  const suite = engineOnTestDevice();

  /** Every block of every column an explicit escape μ = (2^16, −2^16, 2^16, …), a lattice point of D3 and E8. */
  function allExplicit(m: UniversalLatticeMatrix): Uint8Array {
    const d = latticeSpec(m.scheme.lattice).dimension;
    const blocks = m.blocksPerColumn * m.cols;
    const wordsPerColumn = Math.ceil(m.blocksPerColumn / 32);
    const bits = new Uint32Array(wordsPerColumn * m.cols);
    for (let j = 0; j < m.cols; j++) for (let b = 0; b < m.blocksPerColumn; b++) bits[j * wordsPerColumn + (b >> 5)] = ((bits[j * wordsPerColumn + (b >> 5)] as number) | (1 << (b & 31))) >>> 0;
    const tensor = (dtype: 'U32' | 'I32', shape: number[], data: Uint32Array | Int32Array) => ({ dtype, shape, data: new Uint8Array(data.buffer.slice(0)) });
    return resealed(writeQuantizedContainer([{ name: 'w', matrix: m }]), (r) => {
      r.tensors.set('w.escape_bits', tensor('U32', [m.cols, wordsPerColumn], bits));
      r.tensors.set('w.escape_ranks', tensor('U32', [Math.ceil((4 * blocks) / 32)], new Uint32Array(Math.ceil((4 * blocks) / 32)))); // rank 0: long
      r.tensors.set('w.long_escapes', tensor('U32', [Math.ceil((16 * blocks) / 32)], new Uint32Array(Math.ceil((16 * blocks) / 32)).fill(0xffffffff))); // 0xFFFF: explicit
      r.tensors.set('w.explicit_escapes', tensor('I32', [blocks, d], Int32Array.from({ length: blocks * d }, (_, i) => (i % 2 === 1 ? -(2 ** 16) : 2 ** 16))));
      editDescription(r, 'w', (description) => Object.assign(description, { escapes: blocks, longEscapes: blocks, explicitEscapes: blocks }));
    });
  }

  it.each(['d3-q6', 'e8-q16'] as const)('%s, every block an explicit escape of 2^16: matvec matches matvecAT up to its limit and refuses x where the GPU sums would overflow', async (scheme) => {
    const n = 64;
    const entry = readQuantizedContainer(allExplicit(quantize(gaussianMatrix(n, 4, 1), { scheme, seed: 3, nonce: 5 }) as UniversalLatticeMatrix)).get('w');
    if (entry.kind !== 'universal') throw new Error('universal entry expected');
    const w = uploadContainerEntry(suite.context.device, entry);
    try {
      const x = gaussianMatrix(n, 1, 7);
      const xNorm = Math.hypot(...x.data);
      const scaledX = (k: number): Matrix => ({ ...x, data: x.data.map((v) => v * 2 ** k) });
      // The real decoded norm (float64, as matvecAT takes it), for the tolerance.
      const decodedNorm = columnNormBound(entry.matrix, decodeRotated(entry.matrix));
      // x·2^100: the CPU computes it (about 4e35); the GPU GEMV's sums overflowed (NaN) before the
      // escape-aware limit, and now matvecInto refuses it (matvec sends x up scaled: below).
      expect(matvecAT(entry.matrix, scaledX(100)).data.every(Number.isFinite)).toBe(true);
      const output = createBufferWithData(suite.context.device, 'matvecInto y', new Float32Array(4), STORAGE_USAGE);
      try {
        await expect(suite.engine.matvecInto(w, scaledX(100), output)).rejects.toThrow(/beyond the .* the GPU GEMV of this W takes/);
        // Small x, and the largest power of two within the limits (the limit must stay a limit: x goes
        // up as it is through matvecInto): the GPU computes what the CPU does; matvec also beyond it.
        const top = Math.floor(Math.log2(Math.min(gemvInputNormLimit(w), 2 ** 126 / w.maxColumnNorm) / xNorm));
        expect(top).toBeLessThan(100);
        for (const k of [0, 60, top, 100]) {
          const cpu = matvecAT(entry.matrix, scaledX(k)).data;
          const results: [string, ArrayLike<number>][] = [['matvec', (await suite.engine.matvec(w, scaledX(k))).data]];
          if (k <= top) {
            await suite.engine.matvecInto(w, scaledX(k), output);
            results.push(['matvecInto', new Float32Array(await readBufferExclusive(suite.context.device, output, 16))]);
          }
          for (const [call, gpu] of results) {
            for (let j = 0; j < 4; j++) {
              expect(Number.isFinite(gpu[j]), `${call}, 2^${k}, column ${j}`).toBe(true);
              expect(Math.abs((gpu[j] as number) - (cpu[j] as number)), `${call}, 2^${k}, column ${j}`).toBeLessThan(1e-5 * decodedNorm * xNorm * 2 ** k);
            }
          }
        }
      } finally {
        output.destroy();
      }
    } finally {
      w.destroy();
    }
  });

  /** `m` with every block replaced as `craft` says; checked as every reader checks it. */
  function crafted(m: QuantizedMatrix, craft: (m: QuantizedMatrix) => object): QuantizedMatrix {
    return readQuantizedContainer(writeQuantizedContainer([{ name: 'w', matrix: { ...m, ...craft(m) } as QuantizedMatrix }])).get('w').matrix as QuantizedMatrix;
  }

  // Without explicit escapes a column may still decode far beyond 2ν: every block a table escape
  // (‖μ‖ = 4), or every block at the largest scale multiple of a wide ladder. The GEMV limit assumed 2ν
  // and GpuEngine.matvec returned ±Infinity for x within it (at 0.9 of it, and at 1/16 for the ladder).
  it.each([
    ['d3-q6, every block an extended-table escape (‖μ‖² = 16)', { scheme: 'd3-q6', seed: 1, nonce: 5, rotate: false }, (m: QuantizedMatrix) => {
      const u = m as UniversalLatticeMatrix;
      const blocks = u.codes.length;
      return { codes: new Uint32Array(blocks), escapes: new Uint8Array(blocks).fill(16), longEscapes: new Uint16Array(blocks).fill(134), hugeEscapes: new Int32Array(0) };
    }],
    ['a D3 ladder of ratio 8 (multiples 16 … 8192), every block at 8192 with a far leader', { scheme: { kind: 'lattice', mode: 'deterministic', lattice: 'D3', q: 6, overload: { kind: 'ladder', beta: 0.4, ratio: 8, steps: 4 } }, seed: 1, rotate: false }, (m: QuantizedMatrix) => {
      const d = m as QuantizedMatrix & { codes: Uint32Array; scaleIndices: Uint8Array; multiples: Int32Array };
      return { codes: d.codes.slice().fill(126), scaleIndices: new Uint8Array(d.scaleIndices.length).fill(d.multiples.length - 1) };
    }],
  ] as const)('%s: matvec is finite and equals matvecAT for x along a column up to its limit', async (_name, options, craft) => {
    const n = 96;
    const m = crafted(quantize({ rows: n, cols: 2, data: gaussianMatrix(n, 2, 1).data.map((v) => v * 1e-3) }, options as QuantizeOptions), craft);
    const column = dequantize(m).data.slice(0, n);
    const columnNorm = Math.hypot(...column);
    expect(columnNorm / ((m as { norms: Float32Array }).norms[0] as number)).toBeGreaterThan(6); // far beyond 2ν
    for (const w of [suite.engine.upload(m as never), uploadContainerEntry(suite.context.device, readQuantizedContainer(writeQuantizedContainer([{ name: 'w', matrix: m }])).get('w') as never) as GpuLatticeQuantized]) {
      try {
        const limit = gemvInputNormLimit(w);
        for (const share of [1 - 2 ** -12, 0.5, 2 ** -4]) {
          const x = Float32Array.from(column, (v) => (v / columnNorm) * limit * share);
          const gpu = (await suite.engine.matvec(w, x)).data;
          const cpu = matvecAT(m, { rows: n, cols: 1, data: x }).data;
          for (let j = 0; j < 2; j++) {
            expect(Number.isFinite(gpu[j]), `${share} of the limit, column ${j}`).toBe(true);
            expect(Math.abs((gpu[j] as number) - (cpu[j] as number)), `${share} of the limit, column ${j}`).toBeLessThan(1e-5 * columnNorm * limit * share);
          }
        }
      } finally {
        w.destroy();
      }
    }
  });

  it('d3-q6, every block a table escape, norms of 2^58: the GPU product refuses what the CPU refuses (it returned entries of 3.2e38)', async () => {
    const n = 96;
    const make = (seed: number, nonce: number) =>
      crafted(quantize({ rows: n, cols: 2, data: gaussianMatrix(n, 2, seed).data.map((v) => v * 2 ** 58) }, { scheme: 'd3-q6', seed: 1, nonce, rotate: false }), (m) => {
        const blocks = (m as UniversalLatticeMatrix).codes.length;
        return { codes: new Uint32Array(blocks), escapes: new Uint8Array(blocks).fill(16), longEscapes: new Uint16Array(blocks).fill(134), hugeEscapes: new Int32Array(0) };
      });
    const a = make(1, 1);
    const b = make(2, 2);
    expect(() => matmulAT(a, b)).toThrow(/the product's entries can reach/);
    const [ga, gb] = [suite.engine.upload(a as never), suite.engine.upload(b as never)];
    try {
      await expect(suite.engine.matmulAT(ga, gb)).rejects.toThrow(/the product's entries can reach/);
    } finally {
      ga.destroy();
      gb.destroy();
    }
    // The same codes with norms 2^-3 times as large (2^55): both compute, and agree. Every block an
    // escape far out makes the pair product (universal-i8) store each column shifted, rounded to
    // multiples of 2^s: its CPU twin, universalPairProduct, rounds alike.
    const smaller = (m: QuantizedMatrix): QuantizedMatrix => ({ ...m, norms: (m as UniversalLatticeMatrix).norms.map((v) => v * 2 ** -3) }) as QuantizedMatrix;
    const small = smaller(make(1, 3));
    const smallB = smaller(make(2, 4));
    const [gs, gsB] = [suite.engine.upload(small as never), suite.engine.upload(smallB as never)];
    try {
      const cpu = (suite.engine.productKernel(gs, gsB) === 'universal-i8' ? universalPairProduct : matmulAT)(small, smallB).data;
      const gpu = (await suite.engine.matmulAT(gs, gsB)).data;
      for (let i = 0; i < cpu.length; i++) expect(Math.abs((gpu[i] as number) - (cpu[i] as number))).toBeLessThan(1e-5 * Math.abs(cpu[i] as number));
    } finally {
      gs.destroy();
      gsB.destroy();
    }
  });

  it.each([
    ['d3-q6-deterministic', 9.13e18],
    ['e8-q16-deterministic', 9.205e18],
  ] as const)(
    '%s, two opposite columns of norm %s whose ν·|γ| products lie just inside 2^126 but decoded norms beyond it: CPU and GPU both refuse, and agree at a quarter of it',
    async (scheme, norm) => {
      // Before: ν·|γ| was taken for the decoded norm; d3-q6-deterministic's CPU table path and the GPU
      // returned 8.58e37, past 2^126 = 8.51e37 (e8-q16-deterministic's GPU gains happened to refuse here).
      const n = 256;
      const g = gaussianMatrix(n, 1, 5).data;
      const unitColumn = g.map((v) => v / Math.hypot(...g));
      const make = (norm: number): Matrix => ({ rows: n, cols: 2, data: Float32Array.from({ length: 2 * n }, (_, i) => (i < n ? 1 : -1) * (unitColumn[i % n] as number) * norm) });
      const tooLarge = make(norm);
      const q = quantize(tooLarge, { scheme, seed: 5 });
      if (q.kind !== 'lattice' || q.mode !== 'deterministic' || q.gains === null) throw new Error('deterministic matrix with gains expected');
      expect(((q.norms[0] as number) * Math.abs(q.gains[0] as number)) ** 2).toBeLessThan(2 ** 126); // the bound both sides took
      const decoded = dequantize(q);
      expect(Math.hypot(...decoded.data.subarray(0, n)) ** 2).toBeGreaterThan(2 ** 126); // what made the bound wrong
      expect(() => matmulAT(q, q)).toThrow(/the product's entries can reach/);
      const gq = await suite.engine.quantize(tooLarge, { scheme, seed: 5 });
      try {
        await expect(suite.engine.matmulAT(gq, gq)).rejects.toThrow(/the product's entries can reach/);
      } finally {
        gq.destroy();
      }
      // A quarter of it (the GPU's 2ν·|γ| bound then just inside): both compute, and agree.
      const fits = make(norm / 4);
      const cpu = matmulAT(quantize(fits, { scheme, seed: 5 }), quantize(fits, { scheme, seed: 5 })).data;
      const gf = await suite.engine.quantize(fits, { scheme, seed: 5 });
      try {
        const gpu = (await suite.engine.matmulAT(gf, gf)).data;
        for (let i = 0; i < 4; i++) expect(Math.abs((gpu[i] as number) - (cpu[i] as number))).toBeLessThan(1e-5 * Math.abs(cpu[i] as number));
      } finally {
        gf.destroy();
      }
    },
  );

  it.each([
    ['d3-q6', { scheme: 'd3-q6', seed: 3, nonce: 8 }],
    ['e8-q16, centred', { scheme: 'e8-q16', seed: 3, nonce: 9, center: true }],
    ['e8-4bit', { scheme: 'e8-4bit', seed: 3, nonce: 10 }],
    ['d3-q6-deterministic', { scheme: 'd3-q6-deterministic', seed: 3 }],
    ['e8-q16-deterministic', { scheme: 'e8-q16-deterministic', seed: 3 }],
  ] as const)('%s, ordinary codes: maxColumnNorm and the GEMV limit are the ordinary formulas (GPU-quantized) or within a few bits of them (uploaded: bounded for any codes)', async (_name, options) => {
    const a = gaussianMatrix(512, 6, 11);
    const cpu = quantize(a, options);
    if (cpu.kind !== 'lattice') throw new Error('lattice matrix expected');
    if (cpu.mode === 'universal') expect(cpu.hugeEscapes.length).toBe(0);
    // The ordinary formulas, from each matrix's own norms, gains and means (the GPU's gains can
    // differ from the CPU's in the last bits).
    const ordinary = (q: QuantizedMatrix): { normBound: number; limit: number } => {
      if (q.kind !== 'lattice') throw new Error('lattice matrix expected');
      const root = Math.sqrt(q.length);
      const spec = latticeSpec(q.scheme.lattice);
      let normBound = 0;
      // A universal block decodes within β·R of its input (covering radius R = 1 for D3 and E8, in λ units).
      const universalRatio = q.mode === 'universal' ? 1 + q.scheme.beta * Math.sqrt(q.blocksPerColumn / q.length) : 1;
      for (let j = 0; j < q.cols; j++) {
        // Deterministic: 2ν·|γ| (ORDINARY_DECODE_RATIO), as a column decodes a few per cent beyond ν·|γ|.
        const scale = q.mode === 'universal' ? universalRatio : 2 * (q.gains === null ? 1 : Math.abs(q.gains[j] as number));
        normBound = Math.max(normBound, (q.norms[j] as number) * scale + (q.means === null ? 0 : Math.abs(q.means[j] as number) * Math.sqrt(q.rows)));
      }
      const perNormOfX =
        q.mode === 'universal'
          ? root * ((2 * DITHER_GRID) / q.scheme.beta + Math.max(...spec.dither.fields.map((field) => 2 ** (field.bits - 1))))
          : // The int8-input GEMVs' sums: 6·k for D3 (the cubic), 12·k for the E8 residue GEMV (q = 16).
            ((q.scheme.lattice === 'D3' ? 6 : q.scheme.q === 16 ? 12 : 1) * 2 * spec.pointScale * root) / q.unit;
      return { normBound, limit: 2 ** 127 / Math.max(root, perNormOfX) };
    };
    const uploaded = uploadLatticeMatrix(suite.context.device, cpu);
    const gpuQuantized = await suite.engine.quantize(a, options);
    try {
      for (const [w, q] of [[uploaded, cpu], [gpuQuantized, await gpuQuantized.read()]] as const) {
        const expected = ordinary(q);
        if (w === gpuQuantized) {
          // Codes the GPU made from data are ordinary: a decode within ν·(1 + β·R·√(blocks/N)) (universal; 2ν·|γ|
          // deterministic) for the product range, within 2ν for the GEMV's sums.
          expect(w.maxColumnNorm).toBeCloseTo(expected.normBound, 12 - Math.ceil(Math.log10(expected.normBound)));
          const decoded = dequantize(q);
          for (let j = 0; j < q.cols; j++) expect(Math.hypot(...decoded.data.subarray(j * q.rows, (j + 1) * q.rows))).toBeLessThanOrEqual(w.maxColumnNorm);
          expect(gemvInputNormLimit(w)).toBe(expected.limit);
        } else {
          // An upload may hold any codes (a crafted container): its bounds assume their worst decode,
          // a few times the ordinary one for these presets (≈ 3.5–8).
          expect(w.maxColumnNorm).toBeGreaterThan(expected.normBound);
          expect(w.maxColumnNorm).toBeLessThan(10 * expected.normBound);
          expect(gemvInputNormLimit(w)).toBeLessThan(expected.limit);
          expect(gemvInputNormLimit(w)).toBeGreaterThan(expected.limit / 4);
        }
      }
    } finally {
      uploaded.destroy();
      gpuQuantized.destroy();
    }
  });

  it.each([
    ['d3-q6-deterministic (the D3 quad GEMV)', 'd3-q6-deterministic'],
    ['e8-q16-deterministic (the E8 residue GEMV, whose sums are 12·k: it returned +Infinity at 0.35 of the limit)', 'e8-q16-deterministic'],
  ] as const)('%s: a QuantizedLinear with int8 inputs is finite and right for x along a decoded column up to gemvInputNormLimit', async (_name, scheme) => {
    const n = 512;
    const a = gaussianMatrix(n, 8, 1);
    const cpu = quantize(a, { scheme, seed: 4 });
    const uploaded = uploadLatticeMatrix(suite.context.device, cpu);
    const gpuQuantized = await suite.engine.quantize(a, { scheme, seed: 4 });
    try {
      for (const [w, q] of [[uploaded, cpu], [gpuQuantized, await gpuQuantized.read()]] as const) {
        const layer = QuantizedLinear.create(suite.context.device, w, { maxTokens: 1, int8Inputs: dotPathFor(suite.context.features) });
        try {
          const limit = gemvInputNormLimit(w);
          const decoded = dequantize(q).data;
          for (const j of [0, 5]) {
            // x along decoded column j: the direction that makes the sums of column j largest.
            const column = decoded.slice(j * n, (j + 1) * n);
            const columnNorm = Math.hypot(...column);
            for (const share of [1 - 2 ** -12, 0.5, 2 ** -4]) {
              const x = Float32Array.from(column, (v) => (v / columnNorm) * limit * share);
              const xBuffer = createBufferWithData(suite.context.device, 'int8 limit x', x, STORAGE_USAGE);
              const yBuffer = createBufferWithData(suite.context.device, 'int8 limit y', new Float32Array(q.cols), STORAGE_USAGE);
              try {
                const encoder = suite.context.device.createCommandEncoder();
                layer.record(encoder, xBuffer, yBuffer);
                suite.context.device.queue.submit([encoder.finish()]);
                const y = new Float32Array(await readBufferExclusive(suite.context.device, yBuffer, 4 * q.cols));
                const reference = matvecAT(q, { rows: n, cols: 1, data: x }).data;
                const xNorm = Math.hypot(...x);
                for (let k = 0; k < q.cols; k++) {
                  expect(Number.isFinite(y[k]), `${share} of the limit, x along column ${j}, output ${k}`).toBe(true);
                  // The int8 rounding of x̃: far below 1 % of ‖ŵ_k‖·‖x‖ (the layer's documented bound is per group).
                  const wNorm = Math.hypot(...decoded.subarray(k * n, (k + 1) * n));
                  expect(Math.abs((y[k] as number) - (reference[k] as number)), `${share} of the limit, x along column ${j}, output ${k}`).toBeLessThan(1e-2 * wNorm * xNorm);
                }
              } finally {
                xBuffer.destroy();
                yBuffer.destroy();
              }
            }
          }
        } finally {
          layer.destroy();
        }
      }
    } finally {
      uploaded.destroy();
      gpuQuantized.destroy();
    }
  });
});

describe('dotPathFor', () => {
  it("follows the WGSL language feature, and names what it needs when given something else (was a TypeError from inside)", () => {
    expect(dotPathFor({ packed4x8IntegerDotProduct: true } as GpuContext['features'])).toBe('packed');
    expect(dotPathFor({ packed4x8IntegerDotProduct: false } as GpuContext['features'])).toBe('plain');
    for (const given of [undefined, null, {}]) {
      expect(() => dotPathFor(given as unknown as GpuContext['features'])).toThrow(/dotPathFor: features must be a GpuContext's features \{ packed4x8IntegerDotProduct, … \}, got /);
    }
  });
});
