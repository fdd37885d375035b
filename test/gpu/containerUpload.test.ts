import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LatticeMatmulError } from '../../src/errors.js';
import { GpuDeviceLostError } from '../../src/gpu/errorScopes.js';
import { readQuantizedContainer, writeQuantizedContainer, type ContainerEntry, type DeterministicContainerEntry, type UniversalContainerEntry } from '../../src/format/container.js';
import { readBufferExclusive } from '../../src/gpu/buffers.js';
import { uploadContainerEntry } from '../../src/gpu/containerUpload.js';
import { dotPathFor } from '../../src/gpu/kernels/e8Matmul.js';
import { QuantizedLinear } from '../../src/gpu/quantizedLinear.js';
import { GpuLatticeQuantizedMatrix, uploadLatticeMatrix } from '../../src/gpu/gpuQuantize.js';
import { GpuEngine } from '../../src/gpu/engine.js';
import { HUGE_ESCAPE } from '../../src/lattices/escapes.js';
import { dequantize } from '../../src/product/dequantize.js';
import { matmulAT } from '../../src/product/matmulAT.js';
import { latticeSpec } from '../../src/quantize/latticeSpec.js';
import { LONG_ESCAPE } from '../../src/quantize/universalCode.js';
import { deterministicColumnUnit } from '../../src/gpu/latticeOperand.js';
import { latticeDequantizeRotated } from '../../src/gpu/kernels/latticeDequantize.js';
import { universalDequantizeRotated } from '../../src/gpu/kernels/universalDequantize.js';
import { universalGemv } from '../../src/gpu/kernels/universalGemv.js';
import { weightOnlyCodeBits, weightOnlyGemv } from '../../src/gpu/kernels/weightOnlyGemv.js';
import { fixedWidthCodes } from '../../src/weightonly/packedCodes.js';
import { uploadUniversalMatrix, type GpuUniversalQuantizedMatrix } from '../../src/gpu/universalOperand.js';
import { decodeRotated } from '../../src/product/decodeRotated.js';
import { matvecAT } from '../../src/product/matvec.js';
import { quantize, type QuantizeOptions } from '../../src/quantize/quantize.js';
import type { DeterministicLatticeMatrix, UniversalLatticeMatrix } from '../../src/quantize/quantizedMatrix.js';
import type { UniversalLatticeScheme } from '../../src/quantize/schemes.js';
import { gaussianMatrix, Rng } from '../../src/rotation/random.js';
import { quantizeWeights } from '../../src/weightonly/index.js';
import { spreadSpectrumCovariance } from '../../src/weightonly/syntheticCovariance.js';
import { resealed, spikyMatrix, type RawContainer } from '../format/containerFuzzProperty.js';
import { contextOnTestDevice, gpuUnavailableReason, testDevice, trackBuffers } from './gpuTestDevice.js';

/*
 * Container entries on the GPU (src/gpu/containerUpload.ts): a universal matrix read from a file and
 * uploaded from its stored words decodes on the GPU (`universalDequantizeRotated`) to the CPU's
 * `decodeRotated` of the original, within the tolerance of test/gpu/universalDequantize.test.ts
 * (|gpu − cpu| ≤ 4e-6 · (ν/√N) · β · 64 per entry: the GPU's f32 forms of ν·β/(s√N)·λ − ν·β/(M√N)·Z
 * against float64, |λ|/s + |Z|/M ≤ 64 here). Its buffers are also compared word for word with those
 * of `uploadUniversalMatrix` of the original (the path that packs from the per-block arrays), and the
 * deterministic and weight-only uploads with theirs, so the kernels read the same bytes either way.
 * Sizes stay ≤ 300 × 9 (lavapipe on shared cores).
 */

const noGpu = await gpuUnavailableReason();

const universal = (lattice: 'D3' | 'E8', q: number, beta: number): UniversalLatticeScheme => ({ kind: 'lattice', mode: 'universal', lattice, q, beta });

function roundTrip(name: string, matrix: Parameters<typeof writeQuantizedContainer>[0][number]['matrix']): ContainerEntry {
  return readQuantizedContainer(writeQuantizedContainer([{ name, matrix }])).get(name);
}

async function words(device: GPUDevice, buffer: GPUBuffer, byteLength: number): Promise<number[]> {
  return Array.from(new Uint32Array(await readBufferExclusive(device, buffer, byteLength)));
}

describe.skipIf(noGpu !== undefined)('container entries uploaded from their stored words', () => {
  const suite = contextOnTestDevice();

  const cases: { name: string; a: () => ReturnType<typeof gaussianMatrix>; options: QuantizeOptions }[] = [
    { name: 'd3-q6, 100 × 7', a: () => gaussianMatrix(100, 7, 1), options: { scheme: 'd3-q6', seed: 3, nonce: 21 } },
    { name: 'e8-q16, 300 × 5, centred', a: () => gaussianMatrix(300, 5, 2), options: { scheme: 'e8-q16', seed: 3, nonce: 22, center: true } },
    { name: 'E8 q = 24 (37-bit codes), 256 × 6', a: () => gaussianMatrix(256, 6, 3), options: { scheme: 'e8-5bit', seed: 3, nonce: 23 } },
    { name: 'E8 q = 4, spiky rotated (table and explicit escapes)', a: () => spikyMatrix(64, 9, 5), options: { scheme: universal('E8', 4, 0.3), seed: 3, nonce: 14 } },
    { name: 'D3 q = 5, spiky unrotated (explicit escapes)', a: () => spikyMatrix(60, 9, 6), options: { scheme: universal('D3', 5, 0.2), seed: 3, nonce: 15, rotate: false } },
    { name: 'e8-q16, time-sharing κ = 0.4', a: () => gaussianMatrix(200, 4, 7), options: { scheme: 'e8-q16', seed: 6, nonce: 16, keepFraction: 0.4 } },
  ];

  // A file of format version 1 (test/format/containerVersions.test.ts): its E8 matrices hash both
  // dither words with one key (params.dither_keys = 1 in the kernels), its D3 matrix one word.
  it.each(['e8_2bit', 'e8_q16_centred', 'd3_q6'])('version-1 file, %s: GPU dequantize and GEMV = the CPU decode of the one-key dither; read() keeps ditherKeys', async (name) => {
    const { device } = suite.context;
    const bytes = new Uint8Array(readFileSync(new URL('../format/fixtures/universal-v1.safetensors', import.meta.url)));
    const entry = readQuantizedContainer(bytes).get(name);
    if (entry.kind !== 'universal') throw new Error('universal entry expected');
    const m = entry.matrix;
    expect(m.ditherKeys).toBe(m.scheme.lattice === 'E8' ? 1 : 2);
    const fromFile = uploadContainerEntry(device, entry);
    try {
      const gpu = await universalDequantizeRotated(device, fromFile);
      const cpu = decodeRotated(m);
      let worst = 0;
      for (let j = 0; j < m.cols; j++) {
        const scale = ((m.norms[j] as number) / Math.sqrt(m.length)) * m.scheme.beta * 64;
        for (let k = 0; k < m.length; k++) {
          worst = Math.max(worst, Math.abs((gpu[j * m.length + k] as number) - (cpu[j * m.length + k] as number)) / (4e-6 * scale));
        }
      }
      expect(worst).toBeLessThanOrEqual(1);
      const x = gaussianMatrix(m.rows, 1, 9);
      const y = await universalGemv(device, fromFile, x);
      const expected = matvecAT(m, x);
      for (let j = 0; j < m.cols; j++) {
        const bound = 1e-5 * (m.norms[j] as number) * Math.hypot(...(x.data as Float32Array)) + 1e-6 * Math.abs(expected.data[j] as number);
        expect(Math.abs((y.data[j] as number) - (expected.data[j] as number)), `column ${j}`).toBeLessThanOrEqual(bound);
      }
      expect((await fromFile.read()).ditherKeys).toBe(m.ditherKeys);
    } finally {
      fromFile.destroy();
    }
  });

  for (const { name, a, options } of cases) {
    it(`universal ${name}: GPU dequantize of the loaded matrix = CPU decodeRotated of the original; buffers = uploadUniversalMatrix's`, async () => {
      const { device } = suite.context;
      const original = quantize(a(), options) as UniversalLatticeMatrix;
      const entry = roundTrip('u', original);
      if (entry.kind !== 'universal') throw new Error('universal entry expected');
      const fromFile = uploadContainerEntry(device, entry);
      const fromMatrix = uploadUniversalMatrix(device, original);
      try {
        expect([fromFile.escapeCount, fromFile.nonRootCount]).toEqual([fromMatrix.escapeCount, fromMatrix.nonRootCount]);
        for (const key of ['codes', 'escapeBits', 'escapeStarts', 'escapeIds', 'escapeTable', 'side'] as const) {
          expect(fromFile[key].size, key).toBe(fromMatrix[key].size);
          expect(await words(device, fromFile[key], fromFile[key].size), key).toEqual(await words(device, fromMatrix[key], fromMatrix[key].size));
        }
        const gpu = await universalDequantizeRotated(device, fromFile);
        const cpu = decodeRotated(original);
        expect(gpu.length).toBe(cpu.length);
        let worst = 0;
        for (let j = 0; j < original.cols; j++) {
          const scale = ((original.norms[j] as number) / Math.sqrt(original.length)) * original.scheme.beta * 64;
          for (let k = 0; k < original.length; k++) {
            const c = cpu[j * original.length + k] as number;
            const g = gpu[j * original.length + k] as number;
            if (c === 0) expect(g).toBe(0);
            worst = Math.max(worst, Math.abs(g - c) / (4e-6 * scale + 1e-30));
          }
        }
        expect(worst).toBeLessThanOrEqual(1);
        // Read back from the GPU, the matrix is the original bit for bit.
        const back = await fromFile.read();
        expect(back.codes).toEqual(original.codes);
        expect(back.escapes).toEqual(original.escapes);
        expect(back.hugeEscapes).toEqual(original.hugeEscapes);
      } finally {
        fromFile.destroy();
        fromMatrix.destroy();
      }
    });
  }

  it('an allocation that fails part-way (a universal escape table, deterministic norms) frees the buffers made before it, on every upload', () => {
    const { device } = suite.context;
    const original = quantize(gaussianMatrix(64, 3, 11), { scheme: 'd3-q6', seed: 3, nonce: 24 }) as UniversalLatticeMatrix;
    const entry = roundTrip('u', original);
    const deterministic = quantize(gaussianMatrix(64, 3, 12), { scheme: 'd3-q6-deterministic', seed: 3 }) as DeterministicLatticeMatrix;
    const tracker = trackBuffers(device);
    tracker.failWhen = (descriptor) => descriptor.label?.endsWith(' escape table') === true || descriptor.label?.startsWith('lattice norms') === true;
    try {
      expect(() => uploadContainerEntry(device, entry)).toThrow('allocation failed');
      expect(() => uploadUniversalMatrix(device, original)).toThrow('allocation failed');
      expect(() => uploadLatticeMatrix(device, deterministic)).toThrow('allocation failed');
      expect(tracker.live()).toEqual([]);
    } finally {
      tracker.restore();
    }
  });

  it('deterministic d3-q6-deterministic with gains: the same buffers and the same GPU decode as uploadLatticeMatrix', async () => {
    const { device } = suite.context;
    const original = quantize(gaussianMatrix(120, 5, 8), { scheme: 'd3-q6-deterministic', seed: 7, gain: 'mmse', center: true }) as DeterministicLatticeMatrix;
    const entry = roundTrip('d', original);
    if (entry.kind !== 'deterministic') throw new Error('deterministic entry expected');
    const fromFile = uploadContainerEntry(device, entry);
    const fromMatrix = uploadLatticeMatrix(device, original);
    try {
      for (const key of ['codes', 'scaleIndices', 'norms'] as const) {
        expect(await words(device, fromFile[key], fromFile[key].size), key).toEqual(await words(device, fromMatrix[key], fromMatrix[key].size));
      }
      expect(fromFile.gains).not.toBeNull();
      expect(await words(device, fromFile.gains as GPUBuffer, 4 * 5)).toEqual(await words(device, fromMatrix.gains as GPUBuffer, 4 * 5));
      const a = await latticeDequantizeRotated(device, fromFile);
      const b = await latticeDequantizeRotated(device, fromMatrix);
      expect(Array.from(a)).toEqual(Array.from(b));
      expect(a.some((v) => v !== 0)).toBe(true);
    } finally {
      fromFile.destroy();
      fromMatrix.destroy();
    }
  });

  it('deterministic: stored bit widths other than the kernels\' are refused, a failed upload frees what it made, a lost device throws the loss', async () => {
    const { device } = suite.context;
    const entry = roundTrip('d', quantize(gaussianMatrix(24, 2, 9), { scheme: 'd3-q6-deterministic', seed: 7 }));
    if (entry.kind !== 'deterministic') throw new Error('deterministic entry expected');
    for (const change of [{ codeBits: entry.stored.codeBits + 1 }, { scaleIndexBits: entry.stored.scaleIndexBits + 1 }]) {
      const altered: DeterministicContainerEntry = { ...entry, stored: { ...entry.stored, ...change } };
      expect(() => uploadContainerEntry(device, altered), JSON.stringify(change)).toThrow(/^uploadContainerEntry: matrix "d" is packed with \d+-bit codes and \d+-bit scale indices, the kernels read \d+ and \d+$/);
    }
    // An allocation that fails part-way (the norms, after the codes and scale indices went up).
    const tracker = trackBuffers(device);
    tracker.failWhen = (descriptor) => descriptor.label?.endsWith(' norms') === true;
    try {
      expect(() => uploadContainerEntry(device, entry)).toThrow('allocation failed');
      expect(tracker.live()).toEqual([]);
    } finally {
      tracker.restore();
    }
    const lost = await testDevice({ label: 'container upload lost device' });
    lost.device.destroy();
    await lost.device.lost;
    expect(() => uploadContainerEntry(lost.device, entry)).toThrow(GpuDeviceLostError);
  });

  it('weight-only: the stored code words go up as they are, or repacked to fixed width where they fit 8 bits; GEMV = GEMV of the original, bit for bit', async () => {
    const { device } = suite.context;
    const sigma = spreadSpectrumCovariance(32, 2, 1).sigma;
    // A step of 0.2 gives codes of a few bits (fixed width); 1e-4 gives codes over 8 bits (packed).
    for (const [step, layout] of [[0.2, 'fixed'], [1e-4, 'packed']] as const) {
      const original = quantizeWeights(gaussianMatrix(32, 24, 9), sigma, { method: 'watersic', step, rotate: true, seed: 5 });
      const entry = roundTrip('w', original);
      if (entry.kind !== 'weight-only') throw new Error('weight-only entry expected');
      const uploaded = uploadContainerEntry(device, entry);
      try {
        const codeBits = weightOnlyCodeBits(original, 'auto');
        expect(codeBits === 'packed' ? 'packed' : 'fixed').toBe(layout);
        expect(uploaded.codeBits).toBe(codeBits);
        // Packed: the stored words as they are; fixed: those codes repacked.
        const expected = codeBits === 'packed' ? entry.stored.words : fixedWidthCodes(original.codes, original.n, original.outputs, codeBits).words;
        expect(await words(device, uploaded.codes, expected.byteLength)).toEqual(Array.from(expected));
        expect(Array.from(entry.stored.words)).toEqual(Array.from(original.packedCodes.words));
      } finally {
        uploaded.destroy();
      }
      const x = gaussianMatrix(32, 1, 10).data;
      expect(Array.from(await weightOnlyGemv(device, entry.matrix, x))).toEqual(Array.from(await weightOnlyGemv(device, original, x)));
    }
  });

  it.each([8, -8])('a universal E8 entry with an explicit escape beyond int8 (μ_0 = %i): uploads (the f32-input layer reads it), and a layer with int8Inputs is refused at create, naming the entry and the block', async (mu) => {
    const { device } = suite.context;
    // Block 1 of column 1 made an explicit escape μ = (±8, 0, …, 0) (point coordinates): |L_0| ≤ 24·2, so λ_0 = L_0 ± 24·8 is beyond ±127 with μ's sign.
    const q = quantize(gaussianMatrix(64, 3, 2), { scheme: 'e8-5bit', nonce: 3n }) as UniversalLatticeMatrix;
    const index = q.blocksPerColumn + 1;
    expect(q.escapes[index]).not.toBe(LONG_ESCAPE);
    const escapes = q.escapes.slice();
    const longsBefore = escapes.slice(0, index).filter((symbol) => symbol === LONG_ESCAPE).length;
    const hugesBefore = Array.from(q.longEscapes.slice(0, longsBefore)).filter((long) => long === HUGE_ESCAPE).length;
    escapes[index] = LONG_ESCAPE;
    const longEscapes = Array.from(q.longEscapes);
    longEscapes.splice(longsBefore, 0, HUGE_ESCAPE);
    const hugeEscapes = Array.from(q.hugeEscapes);
    hugeEscapes.splice(8 * hugesBefore, 0, mu, 0, 0, 0, 0, 0, 0, 0);
    const hacked: UniversalLatticeMatrix = { ...q, escapes, longEscapes: Uint16Array.from(longEscapes), hugeEscapes: Int32Array.from(hugeEscapes) };
    const entry = roundTrip('layers.0.q', hacked);
    if (entry.kind !== 'universal') throw new Error('expected a universal entry');
    const w = uploadContainerEntry(device, entry);
    const int8Inputs = dotPathFor(suite.context.features);
    try {
      expect(w.e8PointOverflow).toMatchObject({ column: 1, block: 1, matrix: 'container entry "layers.0.q"' });
      const coordinate = w.e8PointOverflow?.coordinate as number;
      expect(Math.abs(coordinate)).toBeGreaterThan(127);
      expect(Math.sign(coordinate)).toBe(Math.sign(mu));
      expect(() => QuantizedLinear.create(device, w, { int8Inputs })).toThrow(LatticeMatmulError);
      expect(() => QuantizedLinear.create(device, w, { int8Inputs })).toThrow(
        new RegExp(`^QuantizedLinear "quantized linear": int8Inputs: block 1 of column 1 of container entry "layers\\.0\\.q" has a lattice point coordinate ${coordinate}, beyond the int8 lattice points' ±127 .*create this layer without int8Inputs`),
      );
      const layer = QuantizedLinear.create(device, w);
      await layer.check();
      layer.destroy();
      // The entry as written from the sound matrix: nothing found, and the int8-input layer checks clean.
      const sound = uploadContainerEntry(device, roundTrip('sound', q) as UniversalContainerEntry);
      expect(sound.e8PointOverflow).toBeNull();
      const soundLayer = QuantizedLinear.create(device, sound, { int8Inputs });
      await soundLayer.check();
      soundLayer.destroy();
      sound.destroy();
    } finally {
      w.destroy();
    }
  });

  it('scalar baselines are refused (no GPU kernel reads them)', () => {
    const entry = roundTrip('s', quantize(gaussianMatrix(32, 2, 11), { scheme: 'int4-g32', seed: 1 }));
    expect(() => uploadContainerEntry(suite.context.device, entry)).toThrow(LatticeMatmulError);
    expect(() => uploadContainerEntry(suite.context.device, entry)).toThrow(/scalar baseline \(int\), which no GPU kernel reads/);
    // And typed so: a scalar entry's upload returns `never` (this line does not compile if it returns a matrix type).
    if (entry.kind !== 'scalar') throw new Error('expected a scalar entry');
    const upload: () => never = () => uploadContainerEntry(suite.context.device, entry);
    expect(upload).toThrow(/scalar baseline/);
  });
});

/** Sets every f32 of a tensor of a raw container to `value`. */
function fillFloats(raw: RawContainer, tensor: string, value: number): void {
  const t = raw.tensors.get(tensor);
  if (t === undefined) throw new Error(`no tensor ${tensor}`);
  new Float32Array(t.data.buffer, t.data.byteOffset, t.data.byteLength / 4).fill(value);
}

/*
 * A column's scale as the GPU GEMV and dequantize kernels form it in f32 (ν·γ·columnUnit,
 * deterministic; ν·unit, universal) must be a normal f32: norms and gains of 2^-100 each (both in the
 * library's range) multiply to 2^-200, which the GPU flushed to 0 (its GEMV returned 0 where the CPU
 * returns about 1e-31). The uploads refuse such a column, naming it; the CPU functions take the matrix.
 */
describe.skipIf(noGpu !== undefined)('column scales outside f32\'s normal range on the GPU are refused at upload', () => {
  const suite = contextOnTestDevice();

  it.each(['e8-q16-deterministic', 'd3-q6-deterministic'] as const)('%s: norms = gains = 2^-100 (scale 2^-200): uploadContainerEntry and uploadLatticeMatrix refuse; matvecAT computes it', (scheme) => {
    const original = quantize(gaussianMatrix(64, 3, 9), { scheme, seed: 7, gain: 'mmse' }) as DeterministicLatticeMatrix;
    const bytes = resealed(writeQuantizedContainer([{ name: 'w', matrix: original }]), (r) => {
      fillFloats(r, 'w.gains', 2 ** -100);
      fillFloats(r, 'w.norms', 2 ** -100);
    });
    const entry = readQuantizedContainer(bytes).get('w');
    if (entry.kind !== 'deterministic') throw new Error('deterministic entry expected');
    const message = /column 0's scale ν·\|γ\| = 6\.223e-61 is outside f32's normal range .* the CPU functions \(matvecAT, matmulAT, dequantize\) compute in float64/;
    expect(() => uploadContainerEntry(suite.context.device, entry)).toThrow(LatticeMatmulError);
    expect(() => uploadContainerEntry(suite.context.device, entry)).toThrow(message);
    expect(() => uploadLatticeMatrix(suite.context.device, entry.matrix)).toThrow(message);
    const x = gaussianMatrix(64, 1, 7);
    const y = matvecAT(entry.matrix, { ...x, data: x.data.map((v) => v * 2 ** 100) }).data;
    expect(y.every((v) => Number.isFinite(v) && v !== 0)).toBe(true);
  });

  it.each([
    ['d3-q6-deterministic', 6],
    ['e8-q16-deterministic', 12],
  ] as const)('%s: ν·|γ|·columnUnit normal but its int8-input GEMV\'s unit/%i subnormal is refused; twice that bound uploads', (scheme, divisor) => {
    // The int8-input GEMVs form ν_j·γ_j·(columnUnit/divisor) before their sums (the cubic's 6k, and the
    // E8 residue GEMV's doubled block sum): a column at 0.375·divisor·2^-126 would be subnormal there.
    // ν = 2^-100 (the smallest norm quantize writes) and the gain bring ν·|γ|·columnUnit to scale·2^-126.
    const q = quantize(gaussianMatrix(64, 2, 9), { scheme, seed: 7, gain: 'mmse' }) as DeterministicLatticeMatrix;
    const unit = deterministicColumnUnit(q);
    const withScale = (scale: number): DeterministicLatticeMatrix => ({
      ...q,
      norms: Float32Array.of(q.norms[0] as number, 2 ** -100),
      gains: Float32Array.of((q.gains as Float32Array)[0] as number, Math.fround((scale * 2 ** -26) / unit)),
    });
    expect(() => uploadLatticeMatrix(suite.context.device, withScale(0.375 * divisor))).toThrow(/column 1's scale ν·\|γ\|·columnUnit = .* is outside f32's normal range/);
    uploadLatticeMatrix(suite.context.device, withScale(2 * divisor)).destroy();
  });

  it('universal: ν·unit below 2^-126 (β = 2^-40, ν = 2^-100) is refused by both uploads; the original uploads', () => {
    const original = quantize(gaussianMatrix(64, 3, 1), { scheme: 'd3-q6', seed: 3, nonce: 5 }) as UniversalLatticeMatrix;
    const tiny: UniversalLatticeMatrix = { ...original, scheme: { ...original.scheme, beta: 2 ** -40 }, norms: Float32Array.of(1, 2 ** -100, 1) };
    expect(() => uploadUniversalMatrix(suite.context.device, tiny)).toThrow(/column 1's scale ν·unit = .*e-46 is outside f32's normal range/);
    const entry = roundTrip('u', tiny);
    if (entry.kind !== 'universal') throw new Error('universal entry expected');
    expect(() => uploadContainerEntry(suite.context.device, entry)).toThrow(/column 1's scale ν·unit/);
    uploadUniversalMatrix(suite.context.device, original).destroy();
  });

  it('universal: β = 5e-324 (a subnormal double, in (0, 64]) makes ν·unit underflow to 0: refused, where it was taken for a zero column (every x was then refused by the GEMV)', () => {
    const original = quantize(gaussianMatrix(64, 2, 1), { scheme: 'd3-q6', seed: 3, nonce: 5 }) as UniversalLatticeMatrix;
    const tiny: UniversalLatticeMatrix = { ...original, scheme: { ...original.scheme, beta: 5e-324 } };
    expect(() => uploadUniversalMatrix(suite.context.device, tiny)).toThrow(/column 0's scale ν·unit = 0\.000e\+0 is outside f32's normal range/);
    // A zero column (ν = 0) still uploads.
    uploadUniversalMatrix(suite.context.device, { ...original, norms: Float32Array.of(0, 1) }).destroy();
  });
});

/*
 * Valid containers whose codes are hostile: every value within the rules of docs/FORMAT.md §7 but
 * chosen at random rather than by quantization (codes anywhere below q^d, escapes of every kind —
 * ranks, extended-table indices, explicit μ up to ±2^16 — on half the blocks, scale indices at any
 * multiple, negative and zero gains, norms from 0 and 2^-100 to 2^30, means), on partial last blocks,
 * unrotated, time-shared and two-window (version 3) matrices. The reader accepts them, so the kernels
 * must decode them as the CPU does: GPU dequantize (rotated), the GEMV (GpuEngine.matvec) and the
 * products (a decoding engine, and the deterministic code kernels: the D3 table, the E8 dot) against
 * decodeRotated, matvecAT and matmulAT. A stored word uploaded wrong, an escape table read out of
 * its range, a kernel that keeps a coordinate past keptLength moves an entry by about its column's
 * scale, far above the tolerances (f32 rounding: 1e-5 of the column's largest entry, 1e-4 of
 * ‖ŵ_j‖·‖x‖ and of ‖ŵ_a‖·‖ŵ_b‖).
 */
describe.skipIf(noGpu !== undefined)('hostile but valid codes decode on the GPU as on the CPU', () => {
  const suite = contextOnTestDevice();
  let engines: GpuEngine[];
  beforeAll(() => {
    engines = [GpuEngine.create(suite.context, { universalProduct: 'decode', deterministicProduct: 'decode' }), GpuEngine.create(suite.context, { deterministicProduct: 'codes' })];
  });
  afterAll(() => {
    for (const engine of engines ?? []) engine.destroy();
  });

  // Universal schemes get a nonce (deterministic ones refuse one); rows include two-window rotations (257, 260, 300).
  const configs: [string, QuantizeOptions, readonly number[]][] = [
    ['d3-q6', { scheme: 'd3-q6', nonce: 1 }, [40, 257]],
    ['e8-q16, centred', { scheme: 'e8-q16', nonce: 2, center: true }, [100, 260]],
    ['e8-5bit (37-bit codes)', { scheme: 'e8-5bit', nonce: 3 }, [32, 300]],
    ['E8 q = 4, unrotated (a partial last block)', { scheme: universal('E8', 4, 0.3), nonce: 4, rotate: false }, [21, 67]],
    ['D3 q = 5, unrotated', { scheme: universal('D3', 5, 0.3), nonce: 5, rotate: false }, [22, 64]],
    ['e8-q16, time-shared', { scheme: 'e8-q16', nonce: 6, keepFraction: 0.5 }, [100, 257]],
    ['d3-q6-deterministic with gains', { scheme: 'd3-q6-deterministic', gain: 'mmse' }, [30, 257]],
    ['e8-q16-deterministic, centred', { scheme: 'e8-q16-deterministic', center: true }, [64, 260]],
    ['d3-q6-deterministic, unrotated (a partial last block)', { scheme: 'd3-q6-deterministic', rotate: false }, [22, 67]],
  ];

  /** `base` with random valid codes, escapes, scale indices, gains, norms and means (seeded). */
  function hostile(base: UniversalLatticeMatrix | DeterministicLatticeMatrix, seed: number): UniversalLatticeMatrix | DeterministicLatticeMatrix {
    const rng = new Rng(seed);
    const spec = latticeSpec(base.scheme.lattice);
    const d = spec.dimension;
    const blocks = base.blocksPerColumn * base.cols;
    const norm = (): number => [0, 2 ** -100, 2 ** (rng.nextInt(60) - 30), Math.fround(0.1 + 10 * rng.nextFloat())][rng.nextInt(4)] as number;
    const norms = Float32Array.from({ length: base.cols }, norm);
    const means = base.means === null ? null : Float32Array.from({ length: base.cols }, () => Math.fround((rng.nextFloat() - 0.5) * 2 ** (rng.nextInt(20) - 10)));
    /** A code in [0, size), size ≤ 2^53. */
    const code = (size: number): number => {
      if (size <= 2 ** 32) return rng.nextU32() % size;
      for (;;) {
        const value = rng.nextInt(Math.ceil(size / 2 ** 32)) * 2 ** 32 + rng.nextU32();
        if (value < size) return value;
      }
    };
    if (base.mode === 'deterministic') {
      // D3's last partial block keeps its leader's coordinates past keptLength 0 (§7): codes there stay as quantized.
      const size = base.scheme.q ** d;
      const tailKept = base.keptLength % d !== 0 && base.scheme.lattice === 'D3';
      const codes = Uint32Array.from(base.codes, (c, i) => (tailKept && i % base.blocksPerColumn === base.blocksPerColumn - 1 ? c : code(size)));
      const scaleIndices = Uint8Array.from(base.scaleIndices, () => rng.nextInt(base.multiples.length));
      const gains = base.gains === null ? null : Float32Array.from({ length: base.cols }, () => (rng.nextInt(5) === 0 ? 0 : Math.fround((rng.nextFloat() - 0.3) * 4)));
      return { ...base, codes, scaleIndices, gains, norms, means };
    }
    const size = base.scheme.q ** d;
    const codes = new Uint32Array(blocks);
    const codesHigh = base.codesHigh === null ? null : new Uint16Array(blocks);
    for (let i = 0; i < blocks; i++) {
      const value = code(size);
      codes[i] = value % 2 ** 32;
      if (codesHigh !== null) codesHigh[i] = Math.floor(value / 2 ** 32);
    }
    const escapes = new Uint8Array(blocks);
    const longEscapes: number[] = [];
    const hugeEscapes: number[] = [];
    for (let i = 0; i < blocks; i++) {
      const kind = rng.nextInt(8);
      if (kind < 4) continue;
      if (kind < 6) {
        escapes[i] = 1 + rng.nextInt(Math.min(15, spec.escapes.rootCount));
        continue;
      }
      escapes[i] = LONG_ESCAPE;
      if (kind === 6) {
        longEscapes.push(rng.nextInt(spec.escapes.extendedCount));
        continue;
      }
      longEscapes.push(HUGE_ESCAPE);
      // A lattice point of coordinates up to ±2^16 (or ±8): D3 an even sum; E8 (doubled) all even with a sum ≡ 0 mod 4.
      const big = rng.nextInt(2) === 0 ? 2 ** 16 : 8;
      const mu = Array.from({ length: d }, () => 2 * (rng.nextInt(big + 1) - big / 2));
      if (d === 8 && (mu.reduce((a, b) => a + b, 0) / 2) % 2 !== 0) mu[0] = (mu[0] as number) + ((mu[0] as number) > 0 ? -2 : 2);
      hugeEscapes.push(...mu);
    }
    return { ...base, codes, codesHigh, escapes, longEscapes: Uint16Array.from(longEscapes), hugeEscapes: Int32Array.from(hugeEscapes), norms, means };
  }

  const cols = 3;

  /** Case `index` of a configuration, as the reader returns it. */
  function hostileEntry(options: QuantizeOptions, rows: number, index: number): UniversalContainerEntry | DeterministicContainerEntry {
    const seed = 100 * rows + index;
    const base = quantize(gaussianMatrix(rows, cols, seed), { ...options, seed }) as UniversalLatticeMatrix | DeterministicLatticeMatrix;
    const entry = roundTrip('w', hostile(base, seed));
    if (entry.kind !== 'universal' && entry.kind !== 'deterministic') throw new Error('lattice entry expected');
    return entry;
  }

  it('the cases hold every kind of escape, explicit μ of ±2^16, norms of 0 and 2^-100, negative and zero gains (so the kernels meet them)', () => {
    const seen = { rank: 0, table: 0, explicit: 0, explicitHuge: 0, zeroNorm: 0, smallestNorm: 0, negativeGain: 0, zeroGain: 0 };
    for (const [, options, rowsList] of configs) {
      for (const [index, rows] of rowsList.entries()) {
        const q = hostileEntry(options, rows, index).matrix;
        seen.zeroNorm += q.norms.filter((v) => v === 0).length;
        seen.smallestNorm += q.norms.filter((v) => v === 2 ** -100).length;
        if (q.mode === 'deterministic') {
          seen.negativeGain += q.gains?.filter((v) => v < 0).length ?? 0;
          seen.zeroGain += q.gains?.filter((v) => v === 0).length ?? 0;
          continue;
        }
        seen.rank += q.escapes.filter((e) => e > 0 && e < LONG_ESCAPE).length;
        seen.table += q.longEscapes.filter((e) => e !== HUGE_ESCAPE).length;
        seen.explicit += q.hugeEscapes.length / latticeSpec(q.scheme.lattice).dimension;
        seen.explicitHuge += q.hugeEscapes.filter((v) => Math.abs(v) > 2 ** 14).length;
      }
    }
    for (const [what, count] of Object.entries(seen)) expect(count, what).toBeGreaterThan(0);
  });

  for (const [name, options, rowsList] of configs) {
    it(`${name}, rows ${rowsList.join(' and ')}`, async () => {
      let compared = 0;
      for (const [index, rows] of rowsList.entries()) {
        const entry = hostileEntry(options, rows, index);
        const q = entry.matrix;
        const w: GpuUniversalQuantizedMatrix | GpuLatticeQuantizedMatrix = entry.kind === 'universal' ? uploadContainerEntry(suite.context.device, entry) : uploadContainerEntry(suite.context.device, entry);
        try {
          const rotated = decodeRotated(q);
          const gpu = w instanceof GpuLatticeQuantizedMatrix ? await latticeDequantizeRotated(suite.context.device, w) : await universalDequantizeRotated(suite.context.device, w);
          const full = dequantize(q).data as Float32Array;
          const columnNorms = Array.from({ length: cols }, (_, j) => Math.hypot(...full.subarray(j * rows, (j + 1) * rows)));
          for (let j = 0; j < cols; j++) {
            const column = rotated.subarray(j * q.length, (j + 1) * q.length);
            const peak = column.reduce((most, v) => Math.max(most, Math.abs(v)), 0);
            for (let k = 0; k < q.length; k++) expect(Math.abs((gpu[j * q.length + k] as number) - (column[k] as number)), `dequantize, column ${j} entry ${k}`).toBeLessThanOrEqual(1e-5 * peak);
          }
          const x = gaussianMatrix(rows, 1, 100 * rows + index + 1);
          const xNorm = Math.hypot(...x.data);
          const xAbs = x.data.reduce((sum, v) => sum + Math.abs(v), 0);
          const y = matvecAT(q, x).data;
          const c = matmulAT(q, q).data;
          for (const engine of engines) {
            const yGpu = (await engine.matvec(w, x)).data;
            for (let j = 0; j < cols; j++) {
              const meanTerm = q.means === null ? 0 : Math.abs(q.means[j] as number) * xAbs;
              expect(Math.abs((yGpu[j] as number) - (y[j] as number)), `matvec, column ${j}`).toBeLessThanOrEqual(1e-4 * (columnNorms[j] as number) * xNorm + 1e-5 * meanTerm);
            }
            // The default engine's universal products are the pair estimator (not the decoded product): decode engine only.
            if (engine !== engines[0] && entry.kind === 'universal') continue;
            const cGpu = (await engine.matmulAT(w, w)).data;
            for (let a = 0; a < cols; a++) {
              for (let b = 0; b < cols; b++) {
                expect(Math.abs((cGpu[b * cols + a] as number) - (c[b * cols + a] as number)), `product (${a}, ${b})`).toBeLessThanOrEqual(1e-4 * (columnNorms[a] as number) * (columnNorms[b] as number));
              }
            }
          }
          compared++;
        } finally {
          w.destroy();
        }
      }
      expect(compared).toBe(rowsList.length);
    });
  }
});
