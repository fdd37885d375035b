import { describe, expect, it } from 'vitest';
import { LatticeMatmulError } from '../../src/errors.js';
import { createBufferWithData, readBuffer, STORAGE_USAGE } from '../../src/gpu/buffers.js';
import { gpuQuantizeLattice, uploadLatticeMatrix, type GpuQuantizeOptions } from '../../src/gpu/gpuQuantize.js';
import type { Matrix } from '../../src/matrix.js';
import { dequantize } from '../../src/product/dequantize.js';
import { quantize } from '../../src/quantize/quantize.js';
import type { DeterministicLatticeMatrix, UniversalLatticeMatrix } from '../../src/quantize/quantizedMatrix.js';
import { resolveScheme, SCHEMES, type LatticeScheme } from '../../src/quantize/schemes.js';
import { rotationLength } from '../../src/rotation/hadamard.js';
import { gaussianMatrix, Rng } from '../../src/rotation/random.js';
import { contextOnTestDevice, f32Bits, gpuUnavailableReason, hex } from './gpuTestDevice.js';
import { asDeterministic, asDeterministicGpu, asUniversal, asUniversalGpu } from './latticeTestSupport.js';

/*
 * gpuQuantizeLattice (column prep → rotation → lattice encode) against the CPU quantize(). Deterministic
 * schemes: codes, scale indices, norms, means, clipped-block counts and rates identical; gains within
 * GAIN_TOLERANCE (the GPU sums them in f32, the CPU in float64). Universal schemes (the default; their
 * encoder has its own tests in universalEncode.test.ts): on the same adversarial data, with the same
 * nonce, codes, escapes, norms, means and rates identical. Shapes cover n = 1, 3, 8, odd n,
 * n = 12·2^k, and n above the 256 reduction lanes; data covers zero and constant columns, 2^±90
 * magnitudes (near the ends of the supported norm range), ties, heavy tails and a spike that overloads
 * every scale.
 */

const noGpu = await gpuUnavailableReason();

const SCHEME_DIMENSION = { 'd3-q6-deterministic': 3, 'e8-q16-deterministic': 8 } as const;

/** Relative tolerance of the gains (see the encode kernel: f32 sums against float64 sums). */
const GAIN_TOLERANCE = 1e-5;

const Z_LADDER: LatticeScheme = { kind: 'lattice', mode: 'deterministic', lattice: 'Z', q: 16, overload: { kind: 'ladder', beta: 0.25, ratio: 2, steps: 4 } };

const SCHEME_CASES: readonly { readonly name: string; readonly scheme: LatticeScheme }[] = [
  { name: 'deterministic D3 q = 6 ladder', scheme: SCHEMES['d3-q6-deterministic'] },
  { name: 'deterministic E8 q = 16 betaSet', scheme: SCHEMES['e8-q16-deterministic'] },
  { name: 'deterministic Z8 q = 16 ladder', scheme: Z_LADDER },
];

/**
 * Column j follows pattern j mod 10: Gaussian, zero, constant, huge (2^90), tiny (2^−85),
 * half-integers, multiples of 1/3 (scaled by 2^−40), heavy-tailed (Gaussian / uniform), mixed
 * 2^90 and 2^−90 entries, Gaussian with an offset (for centring). The extremes keep column norms
 * inside the supported range [2^−100, 2^100] for every n used here (up to 2100 rows).
 */
function mixedMatrix(rows: number, cols: number, seed: number): Matrix {
  const rng = new Rng(seed);
  const data = new Float32Array(rows * cols);
  for (let j = 0; j < cols; j++) {
    for (let i = 0; i < rows; i++) {
      const g = rng.nextGaussian();
      let v: number;
      switch (j % 10) {
        case 0:
          v = g;
          break;
        case 1:
          v = 0;
          break;
        case 2:
          v = -1.25;
          break;
        case 3:
          v = g * 2 ** 90;
          break;
        case 4:
          v = g * 2 ** -85;
          break;
        case 5:
          v = rng.nextInt(9) - 4 + 0.5;
          break;
        case 6:
          v = Math.fround((rng.nextInt(13) - 6) / 3) * 2 ** -40;
          break;
        case 7:
          v = g / Math.max(1e-4, rng.nextFloat());
          break;
        case 8:
          v = i % 3 === 0 ? g * 2 ** 90 : g * 2 ** -90;
          break;
        default:
          v = 3 + g;
      }
      data[j * rows + i] = v;
    }
  }
  return { rows, cols, data };
}

/** Asserts that the GPU result equals the CPU one (codes, indices, norms, means bit for bit; gains within tolerance). */
function expectSameQuantization(gpu: DeterministicLatticeMatrix, cpu: DeterministicLatticeMatrix): void {
  const { gains: gpuGains, norms: gpuNorms, means: gpuMeans, ...gpuRest } = gpu;
  const { gains: cpuGains, norms: cpuNorms, means: cpuMeans, ...cpuRest } = cpu;
  // Metadata, codes, scale indices, clipped blocks and both rates: equal.
  const firstCodeMismatch = gpu.codes.findIndex((code, k) => code !== cpu.codes[k]);
  expect(
    firstCodeMismatch,
    firstCodeMismatch < 0
      ? ''
      : `column ${Math.floor(firstCodeMismatch / cpu.blocksPerColumn)}, block ${firstCodeMismatch % cpu.blocksPerColumn}: ` +
          `GPU code ${gpu.codes[firstCodeMismatch]}, CPU code ${cpu.codes[firstCodeMismatch]}`,
  ).toBe(-1);
  expect(gpuRest).toEqual(cpuRest);
  expect(Array.from(gpuNorms, (v) => hex(f32Bits(v)))).toEqual(Array.from(cpuNorms, (v) => hex(f32Bits(v))));
  if (cpuMeans === null) {
    expect(gpuMeans).toBeNull();
  } else {
    // ±0 are the same mean (WGSL does not promise the sign of zero).
    expect(Array.from(gpuMeans ?? [], (v) => hex(f32Bits(v + 0)))).toEqual(Array.from(cpuMeans, (v) => hex(f32Bits(v + 0))));
  }
  if (cpuGains === null) {
    expect(gpuGains).toBeNull();
  } else {
    expect(gpuGains).not.toBeNull();
    cpuGains.forEach((want, j) => {
      const got = (gpuGains as Float32Array)[j] as number;
      expect(Math.abs(got - want), `gain of column ${j}: GPU ${got}, CPU ${want}`).toBeLessThanOrEqual(GAIN_TOLERANCE * Math.abs(want));
    });
  }
}

/** The universal GPU result equals the CPU one with the same nonce: every stored field and both rates. */
function expectSameUniversal(gpu: UniversalLatticeMatrix, cpu: UniversalLatticeMatrix): void {
  const firstCodeMismatch = gpu.codes.findIndex((code, k) => code !== cpu.codes[k]);
  expect(
    firstCodeMismatch,
    firstCodeMismatch < 0
      ? ''
      : `column ${Math.floor(firstCodeMismatch / cpu.blocksPerColumn)}, block ${firstCodeMismatch % cpu.blocksPerColumn}: ` +
          `GPU code ${gpu.codes[firstCodeMismatch]}, CPU code ${cpu.codes[firstCodeMismatch]}`,
  ).toBe(-1);
  const { norms: gpuNorms, means: gpuMeans, ...gpuRest } = gpu;
  const { norms: cpuNorms, means: cpuMeans, ...cpuRest } = cpu;
  expect(gpuRest).toEqual(cpuRest);
  expect(Array.from(gpuNorms, (v) => hex(f32Bits(v)))).toEqual(Array.from(cpuNorms, (v) => hex(f32Bits(v))));
  expect(gpuMeans === null ? null : Array.from(gpuMeans, (v) => hex(f32Bits(v + 0)))).toEqual(cpuMeans === null ? null : Array.from(cpuMeans, (v) => hex(f32Bits(v + 0))));
}

describe.skipIf(noGpu !== undefined)('gpuQuantizeLattice = quantize()', () => {
  const suite = contextOnTestDevice();

  async function compare(m: Matrix, options: GpuQuantizeOptions): Promise<DeterministicLatticeMatrix> {
    const { maxBindingBytes: _unused, ...cpuOptions } = options;
    const cpu = asDeterministic(quantize(m, cpuOptions));
    const gpuMatrix = asDeterministicGpu(await gpuQuantizeLattice(suite.context.device, m, options));
    try {
      expectSameQuantization(await gpuMatrix.read(), cpu);
    } finally {
      gpuMatrix.destroy();
    }
    return cpu;
  }

  describe.each(SCHEME_CASES)('$name', ({ scheme }) => {
    it.each([
      [1, 1],
      [1, 17],
      [3, 3],
      [8, 17],
      [13, 3],
      [100, 17],
      [48, 1],
      [192, 3],
      [300, 17],
    ])('n = %i, %i columns, rotated', async (rows, cols) => {
      await compare(mixedMatrix(rows, cols, 1000 * rows + cols), { scheme, seed: 7 });
    });

    it.each([
      [13, true, true],
      [100, false, false],
      [100, false, true],
      [192, true, false],
    ])('n = %i, 17 columns, rotate %s, centre %s', async (rows, rotate, center) => {
      await compare(mixedMatrix(rows, 17, rows + 5), { scheme, seed: 3, rotate, center });
    });
  });

  // The universal schemes on the same adversarial columns (zero, constant, 2^±90, ties, heavy tails).
  describe.each(['d3-q6', 'e8-q16', 'e8-5bit'] as const)('universal %s (mixed columns)', (scheme) => {
    it.each([
      [1, 3, true, false],
      [3, 10, true, true],
      [13, 10, false, false],
      [100, 17, true, true],
      [300, 10, true, false],
    ])('n = %i, %i columns, rotate %s, centre %s', async (rows, cols, rotate, center) => {
      const m = mixedMatrix(rows, cols, 7 * rows + cols);
      const options = { scheme, seed: 7, nonce: 2n ** 63n + BigInt(rows), rotate, center };
      const gpuMatrix = asUniversalGpu(await gpuQuantizeLattice(suite.context.device, m, options));
      try {
        expectSameUniversal(await gpuMatrix.read(), asUniversal(quantize(m, options)));
      } finally {
        gpuMatrix.destroy();
      }
    });
  });

  it.each([
    ['d3-q6-deterministic', 1000, 3],
    ['e8-q16-deterministic', 2100, 2],
  ] as const)('%s, n = %i: more blocks per column than workgroup lanes', async (scheme, rows, cols) => {
    expect(Math.ceil(rotationLength(rows) / SCHEME_DIMENSION[scheme])).toBeGreaterThan(256);
    await compare(mixedMatrix(rows, cols, rows), { scheme, seed: 4, center: true });
  });

  it('rotatedLength: n = 896 rotated to 1024 (a padded matrix of format version 2) as on the CPU, and 960 refused alike', async () => {
    const m = mixedMatrix(896, 10, 896);
    // Universal, with a nonce: every stored field bit for bit, the length the one asked for.
    const universal = { scheme: 'e8-4bit', seed: 12, nonce: 2n ** 63n + 896n, rotatedLength: 1024 } as const;
    const cpu = asUniversal(quantize(m, universal));
    expect(cpu.length).toBe(1024);
    const gpuMatrix = asUniversalGpu(await gpuQuantizeLattice(suite.context.device, m, universal));
    try {
      expectSameUniversal(await gpuMatrix.read(), cpu);
    } finally {
      gpuMatrix.destroy();
    }
    // Deterministic: the same fields as every other deterministic case (gains within tolerance).
    expect((await compare(m, { scheme: 'd3-q6-deterministic', seed: 12, center: true, rotatedLength: 1024 })).length).toBe(1024);
    // 960 is no rotated length of 896 rows: both refuse it with the same message.
    for (const scheme of ['e8-4bit', 'd3-q6-deterministic'] as const) {
      const refused = /rotatedLength 960 is not a rotated length of 896 rows \(896 or 1024\)/;
      expect(() => quantize(m, { scheme, rotatedLength: 960 })).toThrow(refused);
      await expect(gpuQuantizeLattice(suite.context.device, m, { scheme, rotatedLength: 960 })).rejects.toThrow(refused);
    }
  });

  it('a spike overloads every scale and is clipped, as on the CPU', async () => {
    const rows = 100;
    const data = new Float32Array(rows * 3);
    data[5] = 1; // column 0: e_5 (√n in normalized units, far beyond the largest D3 scale)
    data[rows + 7] = -4;
    data[rows + 8] = 4;
    for (let i = 0; i < rows; i++) data[2 * rows + i] = i === 50 ? 1e6 : Math.sin(i);
    const cpu = await compare({ rows, cols: 3, data }, { scheme: 'd3-q6-deterministic', rotate: false });
    expect(cpu.clippedBlocks).toBeGreaterThan(0);
  });

  it('a one-scale ladder (no index bits), MMSE and no gains, time-sharing', async () => {
    const m = mixedMatrix(96, 5, 11);
    const oneScale: LatticeScheme = { kind: 'lattice', mode: 'deterministic', lattice: 'D3', q: 6, overload: { kind: 'ladder', beta: 0.6, ratio: 2, steps: 1 } };
    await compare(m, { scheme: oneScale, gain: 'mmse' });
    await compare(m, { scheme: 'e8-q16-deterministic', gain: 'none', center: true });
    await compare(m, { scheme: 'd3-q6-deterministic', keepFraction: 0.3 });
  });

  // n = 50 pads to 64 rotated entries: a chunk's input starts n entries per column in, not 64.
  it.each([40, 50])('columns split over small storage bindings give the same result (n = %i)', async (n) => {
    const m = mixedMatrix(n, 17, 12);
    const cpu = asDeterministic(quantize(m, { scheme: 'e8-q16-deterministic', seed: 2, center: true }));
    const gpuMatrix = asDeterministicGpu(await gpuQuantizeLattice(suite.context.device, m, { scheme: 'e8-q16-deterministic', seed: 2, center: true, maxBindingBytes: 1024 }));
    try {
      expectSameQuantization(await gpuMatrix.read(), cpu);
    } finally {
      gpuMatrix.destroy();
    }
  });

  it('takes a GPUBuffer input at an offset', async () => {
    const m = mixedMatrix(50, 6, 13);
    const { device } = suite.context;
    const padded = new Float32Array(16 + m.data.length);
    padded.set(m.data, 16);
    const buffer = createBufferWithData(device, 'user matrix', padded, STORAGE_USAGE);
    try {
      const gpuMatrix = asDeterministicGpu(await gpuQuantizeLattice(device, { buffer, rows: 50, cols: 6, offset: 64 }, { scheme: 'd3-q6-deterministic', seed: 9, center: true }));
      try {
        expectSameQuantization(await gpuMatrix.read(), asDeterministic(quantize(m, { scheme: 'd3-q6-deterministic', seed: 9, center: true })));
      } finally {
        gpuMatrix.destroy();
      }
    } finally {
      buffer.destroy();
    }
  });

  it('read() gives a matrix the CPU decodes like its own; uploadLatticeMatrix round-trips', async () => {
    const m = mixedMatrix(64, 4, 14);
    const options = { scheme: 'd3-q6-deterministic', seed: 5, gain: 'none' } as const;
    const cpu = asDeterministic(quantize(m, options));
    const gpuMatrix = asDeterministicGpu(await gpuQuantizeLattice(suite.context.device, m, options));
    try {
      const fromGpu = await gpuMatrix.read();
      // With gain 'none' every field is bit-exact, so decoding gives the same floats.
      expect(Array.from(dequantize(fromGpu).data)).toEqual(Array.from(dequantize(cpu).data));
    } finally {
      gpuMatrix.destroy();
    }
    const uploaded = uploadLatticeMatrix(suite.context.device, cpu);
    try {
      expect(uploaded.scaleIndexBits).toBe(2);
      expect(await uploaded.read()).toEqual(cpu);
    } finally {
      uploaded.destroy();
    }
  });

  it('universal: read() decodes on the CPU like the CPU quantization; uploadLatticeMatrix round-trips', async () => {
    const m = mixedMatrix(64, 4, 14);
    const options = { scheme: 'e8-q16', seed: 5, nonce: 99 } as const;
    const cpu = asUniversal(quantize(m, options));
    const gpuMatrix = asUniversalGpu(await gpuQuantizeLattice(suite.context.device, m, options));
    try {
      expect(Array.from(dequantize(await gpuMatrix.read()).data)).toEqual(Array.from(dequantize(cpu).data));
    } finally {
      gpuMatrix.destroy();
    }
    const uploaded = uploadLatticeMatrix(suite.context.device, cpu);
    try {
      expect(uploaded.mode).toBe('universal');
      expect(await uploaded.read()).toEqual(cpu);
    } finally {
      uploaded.destroy();
    }
  });

  it('routes by mode: universal presets give universal GPU matrices with the given nonce, -deterministic ones deterministic', async () => {
    const m = mixedMatrix(24, 2, 15);
    for (const scheme of ['d3-q6', 'e8-q16', 'e8-2bit', 'd3-q6-deterministic', 'e8-q16-deterministic'] as const) {
      const universal = SCHEMES[scheme].mode === 'universal';
      const gpuMatrix = await gpuQuantizeLattice(suite.context.device, m, universal ? { scheme, nonce: 5 } : { scheme });
      try {
        expect(gpuMatrix.mode).toBe(SCHEMES[scheme].mode);
        if (gpuMatrix.mode === 'universal') expect(gpuMatrix.nonce).toBe(5n);
        expect(gpuMatrix.scheme).toEqual(SCHEMES[scheme]);
      } finally {
        gpuMatrix.destroy();
      }
    }
    // Without a nonce, two GPU quantizations draw different ones (independent errors).
    const first = asUniversalGpu(await gpuQuantizeLattice(suite.context.device, m, { scheme: 'd3-q6' }));
    const second = asUniversalGpu(await gpuQuantizeLattice(suite.context.device, m, { scheme: 'd3-q6' }));
    try {
      expect(first.nonce).not.toBe(second.nonce);
    } finally {
      first.destroy();
      second.destroy();
    }
  });

  it('refuses what the CPU refuses, with the same kind of error', async () => {
    const { device } = suite.context;
    // @ts-expect-error a scalar scheme does not compile (GpuSchemeRefused)
    await expect(gpuQuantizeLattice(device, mixedMatrix(8, 1, 1), { scheme: 'int4-g32' })).rejects.toThrow(LatticeMatmulError);
    // Named as given: the preset, or the kind of a scheme object.
    // @ts-expect-error a scalar scheme does not compile (GpuSchemeRefused)
    await expect(gpuQuantizeLattice(device, mixedMatrix(8, 1, 1), { scheme: 'int4-g32' })).rejects.toThrow(/encodes lattice schemes; 'int4-g32' \(a scalar baseline\) runs on the CPU with quantize\(\)/);
    // @ts-expect-error nor does a scalar scheme object
    await expect(gpuQuantizeLattice(device, mixedMatrix(8, 1, 1), { scheme: resolveScheme('nvfp4') })).rejects.toThrow(/encodes lattice schemes; an nvfp4 scheme \(a scalar baseline\) runs on the CPU/);
    // Option errors: the same strict checks as the CPU's (only maxBindingBytes is GPU-specific).
    const options: [Record<string, unknown>, RegExp][] = [
      [{ scheme: 'd3-q6', keepFraction: 0 }, /keepFraction/],
      [{ scheme: 'd3-q6-deterministic', keepFraction: 0 }, /keepFraction/],
      [{ scheme: 'd3-q6', gain: 'mmse' }, /gain applies to deterministic lattice schemes only/],
      [{ scheme: 'd3-q6-deterministic', nonce: 3 }, /nonce applies to universal lattice schemes only/],
      [{ scheme: 'e8-q16', nonce: -1 }, /nonce must be a non-negative safe integer/],
      [{ scheme: 'e8-q16', centre: true }, /unknown option 'centre' \(did you mean 'center'\?\)/],
      [{ scheme: 'e8-q16', maxBindingBytes: 100 }, /maxBindingBytes must be an integer ≥ 256, got 100/],
      [{ scheme: { kind: 'lattice', lattice: 'E8', q: 16, beta: 0.25 } }, /a lattice scheme needs mode/],
    ];
    for (const [bad, message] of options) {
      await expect(gpuQuantizeLattice(device, mixedMatrix(8, 1, 1), bad as unknown as GpuQuantizeOptions)).rejects.toThrow(message);
    }
    expect(() => quantize(mixedMatrix(8, 1, 1), { scheme: 'e8-q16', maxBindingBytes: 1024 } as unknown as GpuQuantizeOptions)).toThrow(/unknown option 'maxBindingBytes'/);
    for (const scheme of ['d3-q6', 'd3-q6-deterministic'] as const) {
      // Norms outside [2^−100, 2^100]: the CPU and the GPU both refuse them, naming the column.
      for (const factor of [2 ** 100, 2 ** -103]) {
        const outside: Matrix = { rows: 4, cols: 2, data: new Float32Array([1, 2, 3, 4, 1, 1, 1, 1].map((v, i) => (i >= 4 ? v * factor : v))) };
        expect(() => quantize(outside, { scheme })).toThrow(/column 1 has norm .* outside the supported range/);
        await expect(gpuQuantizeLattice(device, outside, { scheme })).rejects.toThrow(/column 1 has norm .* outside the supported range/);
      }
      // A norm beyond the f32 range: the CPU and the GPU both refuse it.
      const overflow: Matrix = { rows: 4, cols: 2, data: new Float32Array([1, 2, 3, 4, 3e38, 3e38, 3e38, 3e38]) };
      expect(() => quantize(overflow, { scheme })).toThrow(/norm of column 1/);
      await expect(gpuQuantizeLattice(device, overflow, { scheme })).rejects.toThrow(/norm of column 1/);
      // A mean beyond ±2^100 with center: true (a constant column has a centred norm of 0, in range):
      // before, both quantized it and the container refused to write it.
      const offset: Matrix = { rows: 4, cols: 2, data: new Float32Array([1, 2, 3, 4, -2e30, -2e30, -2e30, -2e30]) };
      expect(() => quantize(offset, { scheme, center: true })).toThrow(/^column 1 has mean -2\.000e\+30, beyond ±2\^100/);
      await expect(gpuQuantizeLattice(device, offset, { scheme, center: true })).rejects.toThrow(/^column 1 has mean -2\.000e\+30, beyond ±2\^100/);
      const atLimit: Matrix = { rows: 4, cols: 1, data: new Float32Array(4).fill(2 ** 100) };
      expect(quantize(atLimit, { scheme, center: true }).kind).toBe('lattice');
    }
    for (const scheme of ['int4-g32', 'nvfp4', 'int3-absmax'] as const) {
      expect(() => quantize({ rows: 4, cols: 1, data: new Float32Array(4).fill(2e30) }, { scheme, center: true })).toThrow(/^column 0 has mean 2\.000e\+30, beyond ±2\^100/);
    }
    // A NaN in a GPU input (a CPU Matrix is checked before upload).
    const data = new Float32Array(24).fill(1);
    data[13] = Number.NaN;
    const buffer = createBufferWithData(device, 'matrix with NaN', data, STORAGE_USAGE);
    try {
      await expect(gpuQuantizeLattice(device, { buffer, rows: 8, cols: 3 }, { scheme: 'd3-q6-deterministic' })).rejects.toThrow(/non-finite entry in column 1/);
      await expect(gpuQuantizeLattice(device, { buffer, rows: 8, cols: 3 }, { scheme: 'd3-q6' })).rejects.toThrow(/non-finite entry in column 1$/);
      // The input buffer is untouched and still usable.
      expect(new Float32Array(await readBuffer(device, buffer, 8))).toEqual(new Float32Array([1, 1]));
    } finally {
      buffer.destroy();
    }
  });

  it('an f32 buffer declared f16 is refused by its non-finite halves, and the refusal asks whether it is f32', async () => {
    const { device } = suite.context;
    // Gaussian f32 entries read as f16 halves: each low half is 16 mantissa bits, an f16 infinity or
    // NaN when its 5 exponent bits are all ones (about 1 in 32), so 512 halves have one with
    // probability 1 − (31/32)^512 > 1 − 10^-7 (and this fixed matrix does: the test is deterministic).
    const { data } = gaussianMatrix(16, 16, 5);
    const buffer = createBufferWithData(device, 'f32 data declared f16', data, STORAGE_USAGE);
    try {
      for (const scheme of ['d3-q6-deterministic', 'e8-4bit'] as const) {
        await expect(gpuQuantizeLattice(device, { buffer, rows: 32, cols: 16, format: 'f16' }, { scheme })).rejects.toThrow(
          /non-finite entry in column \d+ \(the input was declared format: 'f16', 2 bytes per entry: is the buffer f32\?\)$/,
        );
      }
    } finally {
      buffer.destroy();
    }
  });
});
