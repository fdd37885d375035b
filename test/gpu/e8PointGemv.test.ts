import { describe, expect, it } from 'vitest';
import { createBuffer, createBufferWithData, readBuffer, STORAGE_USAGE } from '../../src/gpu/buffers.js';
import { GpuEngine } from '../../src/gpu/engine.js';
import { dotPathFor, type DotPath } from '../../src/gpu/kernels/e8Matmul.js';
import { dispatchE8PointGemvI8, e8PointGemvI8, e8PointGemvReference, GpuE8PointMatrix } from '../../src/gpu/kernels/e8PointGemvI8.js';
import { E8_INPUT_GROUP, type E8InputsI8Values } from '../../src/gpu/kernels/e8ResidueGemvI8.js';
import { QuantizedLinear } from '../../src/gpu/quantizedLinear.js';
import { GpuScratch } from '../../src/gpu/scratch.js';
import { itemsPerBinding } from '../../src/gpu/workSplit.js';
import { uploadUniversalMatrix } from '../../src/gpu/universalOperand.js';
import { HUGE_ESCAPE } from '../../src/lattices/escapes.js';
import { decodeRotated } from '../../src/product/decodeRotated.js';
import { e8PointForm, e8PointUnsupported, packPoint, unpackPoint, type E8PointMatrix } from '../../src/quantize/e8Points.js';
import { quantize } from '../../src/quantize/quantize.js';
import type { UniversalLatticeMatrix } from '../../src/quantize/quantizedMatrix.js';
import { universalCodec } from '../../src/quantize/latticeSpec.js';
import { LONG_ESCAPE } from '../../src/quantize/universalCode.js';
import { gaussianMatrix, Rng } from '../../src/rotation/random.js';
import { RandomizedHadamard } from '../../src/rotation/randomizedHadamard.js';
import { e8TestWeights, expectE8GemvWithinBounds, expectRotatedE8GemvWithinBound, runE8QuadGemv } from './e8GemvSupport.js';
import { contextOnTestDevice, gpuUnavailableReason } from './gpuTestDevice.js';

/*
 * The E8 point GEMV (src/gpu/kernels/e8PointGemvI8.ts: int8 lattice points of a universal E8 matrix,
 * the dither regenerated per block) against its CPU twins:
 * 0. the form itself (CPU): its points and the scheme's dither decode to exactly `decodeRotated`'s
 *    entries, for every universal E8 preset, and a point beyond ±127 is refused by name;
 * 1. y against e8PointGemvReference on the GPU's own x̂: a quad's integer sum is exact, so they differ by
 *    f32 rounding only, at most D·u·S (S = Σ_g |s_g·sum_g|·ν_j·unit, D the roundings along a path: the
 *    quad sum's conversion, a lane's ⌈quads/32⌉ multiply-adds, 5 levels of the lane tree, the column
 *    scale; 2× margin);
 * 2. y against the exact product Σ_k ŵ̃_jk·x̃_k (decodeRotated, x̃ not rounded), within the int8 inputs'
 *    bound Σ_g s_g·(½ + 2·10⁻⁴)·Σ_{k∈g} |ŵ̃_jk| plus the f32 term.
 * A wrong byte lane, dither word, counter or key moves an output by about |y|/√N or more, far above each
 * (checked by mutating the shader: swapping the two hash words' keys fails all 7 GPU cases, reading Z_7 as a
 * byte 6 of them).
 */

const noGpu = await gpuUnavailableReason();

/**
 * `q` with block `block` of column `column` rebuilt so that its lattice point is `point` (point
 * coordinates, a point of 2·E8): its code is the coset of `point` (`VoronoiCode.encode`) and its escape
 * a HUGE_ESCAPE with μ = (point − leader)/q, put in the long and huge streams at the block's place.
 */
function withBlockPoint(q: UniversalLatticeMatrix, column: number, block: number, point: readonly number[]): UniversalLatticeMatrix {
  const codec = universalCodec('E8', q.scheme.q, q.scheme.beta);
  const code = codec.code.encode(point);
  const leader = codec.code.decode(code);
  const mu = point.map((v, i) => (v - (leader[i] as number)) / codec.q);
  expect(mu.every(Number.isInteger), 'μ of a lattice point is whole').toBe(true);
  const index = column * q.blocksPerColumn + block;
  const longBefore = q.escapes.subarray(0, index).filter((s) => s === LONG_ESCAPE).length;
  const hugeBefore = q.longEscapes.subarray(0, longBefore).filter((e) => e === HUGE_ESCAPE).length;
  const wasLong = q.escapes[index] === LONG_ESCAPE;
  const wasHuge = wasLong && q.longEscapes[longBefore] === HUGE_ESCAPE;
  const longEscapes = [...q.longEscapes];
  longEscapes.splice(longBefore, wasLong ? 1 : 0, HUGE_ESCAPE);
  const hugeEscapes = [...q.hugeEscapes];
  hugeEscapes.splice(8 * hugeBefore, wasHuge ? 8 : 0, ...mu);
  const escapes = q.escapes.slice();
  escapes[index] = LONG_ESCAPE;
  const codes = q.codes.slice();
  codes[index] = code % 2 ** 32;
  let codesHigh = q.codesHigh;
  if (codesHigh !== null) {
    codesHigh = codesHigh.slice();
    codesHigh[index] = Math.floor(code / 2 ** 32);
  } else expect(code).toBeLessThan(2 ** 32);
  return { ...q, codes, codesHigh, escapes, longEscapes: Uint16Array.from(longEscapes), hugeEscapes: Int32Array.from(hugeEscapes) };
}

describe('the E8 point form (CPU)', () => {
  it.each(['e8-2bit', 'e8-3bit', 'e8-4bit', 'e8-4.5bit', 'e8-5bit', 'e8-q16'] as const)('%s: points and dither decode to decodeRotated exactly (centred, rotated, a partial block)', (scheme) => {
    const q = quantize(e8TestWeights(203, 9, 5), { scheme, seed: 3, center: true }) as UniversalLatticeMatrix;
    const m = e8PointForm(q);
    const exact = decodeRotated(q);
    for (let j = 0; j < q.cols; j++) {
      for (let k = 0; k < q.keptLength; k++) {
        // x̂ = e_k with scale 1: the twin gives ν_j·unit·(128·λ_k − Z_k), the decoded entry.
        const levels = new Int8Array(m.quadsPerColumn * E8_INPUT_GROUP);
        levels[k] = 1;
        const scales = new Float64Array(m.quadsPerColumn).fill(1);
        const decoded = e8PointGemvReference(m, { levels, scales }, 0)[j] as number;
        const want = exact[j * q.length + k] as number;
        expect(Math.abs(decoded - want), `${scheme} column ${j} entry ${k}`).toBeLessThanOrEqual(1e-12 * Math.abs(want));
      }
    }
  });

  it('packs coordinate 2i + t into byte i of word t, and unpacks it', () => {
    const p = Int32Array.from([1, -2, 3, -4, 127, -127, 0, -1]);
    const { even, odd } = packPoint(p);
    expect(even).toBe((0x01 | (0x03 << 8) | (0x7f << 16) | (0x00 << 24)) >>> 0);
    expect(odd).toBe((0xfe | (0xfc << 8) | (0x81 << 16) | (0xff << 24)) >>> 0);
    expect(Array.from(unpackPoint(even, odd))).toEqual(Array.from(p));
  });

  it('refuses D3 and deterministic matrices, and a point beyond ±127 naming the block', () => {
    const d3 = quantize(gaussianMatrix(12, 2, 1), { scheme: 'd3-q6' }) as UniversalLatticeMatrix;
    expect(e8PointUnsupported(d3)).toMatch(/universal E8/);
    expect(() => e8PointForm(d3)).toThrow(/^e8PointForm: the point form is for universal E8 matrices/);
    const deterministic = quantize(gaussianMatrix(16, 2, 1), { scheme: 'e8-q16-deterministic' });
    expect(e8PointUnsupported(deterministic)).toMatch(/universal E8/);
    // Block 1 of column 1 made a huge escape μ = (8, 0, …, 0) (point coordinates): λ_0 = L_0 + 24·8 > 127.
    const q = quantize(gaussianMatrix(16, 2, 2), { scheme: 'e8-5bit', nonce: 3n }) as UniversalLatticeMatrix;
    const index = 1 * q.blocksPerColumn + 1;
    const escapes = q.escapes.slice();
    expect(escapes.slice(0, index + 1).filter((s) => s === LONG_ESCAPE).length).toBe(0);
    escapes[index] = LONG_ESCAPE;
    const hacked: UniversalLatticeMatrix = {
      ...q,
      escapes,
      longEscapes: Uint16Array.from([HUGE_ESCAPE, ...q.longEscapes]),
      hugeEscapes: Int32Array.from([8, 0, 0, 0, 0, 0, 0, 0, ...q.hugeEscapes]),
    };
    expect(() => e8PointForm(hacked)).toThrow(/^e8PointForm: block 1 of column 1 has a lattice point coordinate 1\d\d, beyond the int8 points' ±127/);
  });
});

describe.skipIf(noGpu !== undefined)('E8 point GEMV (GPU) = its CPU twins', () => {
  const suite = contextOnTestDevice();

  /** y (cols × rhs) and the GPU's x̂ of each right-hand side, for x̃ (length × rhs) and `m`. */
  function run(m: E8PointMatrix, xRotated: Float32Array, rhs: number, dotPath: DotPath, subgroups: boolean): Promise<{ y: Float32Array; inputs: E8InputsI8Values[] }> {
    const { device } = suite.context;
    return runE8QuadGemv(GpuE8PointMatrix.upload(device, m, 'test e8 points'), xRotated, rhs, dotPath, subgroups, (encoder, scratch, args) => dispatchE8PointGemvI8(device, encoder, scratch, args));
  }


  // Rotated lengths 8, 128, 256, 1024, 2080 (65 quads: a second step of one quad), 4096 (128 quads);
  // right-hand sides 1, 3 and 9; schemes of every code width (29, 32 and 37 bits) and q.
  const shapes = [[8, 1, 1, 'e8-4bit'], [100, 17, 3, 'e8-q16'], [256, 33, 1, 'e8-5bit'], [1000, 5, 9, 'e8-3bit'], [2080, 3, 1, 'e8-4bit'], [4096, 16, 1, 'e8-4bit']] as const;
  for (const [rows, cols, rhs, scheme] of shapes) {
    it(`${scheme}, ${rows} × ${cols}, ${rhs} right-hand side${rhs > 1 ? 's' : ''}: the twin and the exact product`, async () => {
      const paths: [DotPath, boolean][] = [[dotPathFor(suite.context.features), false], ['plain', false]];
      if (suite.context.features.subgroups) paths.push([dotPathFor(suite.context.features), true]);
      // Rotated (the spike columns of \`weights\` would exceed the int8 points unrotated); x̃ = R·x made on
      // the CPU and given to the kernel.
      const q = quantize(e8TestWeights(rows, cols, rows + cols), { scheme, center: false, seed: 21 }) as UniversalLatticeMatrix;
      const m = e8PointForm(q);
      const exactW = decodeRotated(q);
      const rng = new Rng(rows);
      const rotation = new RandomizedHadamard(rows, 21);
      const xAll = new Float32Array(q.length * rhs);
      for (let r = 0; r < rhs; r++) {
        const x = Float32Array.from({ length: rows }, (_, k) => rng.nextGaussian() * (k % 37 === 0 ? 20 : 1));
        xAll.set(rotation.forward(x), r * q.length);
      }
      for (const [dotPath, subgroups] of paths) {
        const { y: yAll, inputs: inputsAll } = await run(m, xAll, rhs, dotPath, subgroups);
        for (let r = 0; r < rhs; r++) {
          const x = xAll.subarray(r * q.length, (r + 1) * q.length);
          const y = yAll.subarray(r * cols, (r + 1) * cols);
          const inputs = inputsAll[r] as E8InputsI8Values;
          expectE8GemvWithinBounds({ y, twin: e8PointGemvReference(m, inputs), inputs, x, exactW, length: q.length, keptLength: q.keptLength, quadsPerColumn: m.quadsPerColumn, what: `right-hand side ${r}, ${dotPath}${subgroups ? ', subgroups' : ''}` });
        }
      }
    });
  }

  it("the whole call rotates x for a rotated matrix and adds μ·Σx for a centred one: within the int8 inputs' bound of the exact product", async () => {
    const { device } = suite.context;
    for (const [rows, cols, rhs, center, scheme] of [[100, 5, 1, false, 'e8-4bit'], [1000, 17, 2, true, 'e8-q16'], [300, 9, 1, true, 'e8-3bit']] as const) {
      const q = quantize(e8TestWeights(rows, cols, 3 * rows), { scheme, center, seed: 11 }) as UniversalLatticeMatrix;
      expect(q.rotate).toBe(true);
      const rng = new Rng(rows + 1);
      const xAll = new Float32Array(rows * rhs);
      for (let k = 0; k < rows * rhs; k++) xAll[k] = rng.nextGaussian() + (center ? 2 : 0);
      const w = GpuE8PointMatrix.upload(device, e8PointForm(q), 'test rotated points');
      const yGpu = (await e8PointGemvI8(device, w, { rows, cols: rhs, data: xAll }, { dotPath: dotPathFor(suite.context.features) })).data;
      w.destroy();
      expectRotatedE8GemvWithinBound(q, xAll, rhs, yGpu, `${scheme} ${rows} × ${cols}`);
    }
  });

  it('splitting the columns over bindings (maxBindingBytes) gives the same bits as one dispatch, for f32 and f16 outputs with a bias', async () => {
    const { device } = suite.context;
    // 520 rows: 65 blocks, 17 quads per column (544 bytes of points); bindings of 4096 bytes hold 7
    // columns, so ranges start at 3808, 7616, … bytes, off the binding alignment (with 512 rows they
    // fell on it, and the kernel's offset of the range inside its binding was always 0).
    const rows = 520;
    const cols = 40;
    const q = quantize(e8TestWeights(rows, cols, 9), { scheme: 'e8-4bit', seed: 5, center: true }) as UniversalLatticeMatrix;
    const w = GpuE8PointMatrix.upload(device, e8PointForm(q), 'test split points');
    const alignment = device.limits.minStorageBufferOffsetAlignment;
    const columnsPerRange = itemsPerBinding(32 * w.quadsPerColumn, 4096, alignment);
    expect(columnsPerRange).toBe(7);
    expect((32 * columnsPerRange * w.quadsPerColumn) % alignment).not.toBe(0);
    const rng = new Rng(4);
    const x = Float32Array.from({ length: rows }, () => rng.nextGaussian());
    const bias = Float32Array.from({ length: cols }, (_, j) => j - 20);
    const xBuffer = createBufferWithData(device, 'test x', x, STORAGE_USAGE);
    const biasBuffer = createBufferWithData(device, 'test bias', bias, STORAGE_USAGE);
    try {
      for (const output of ['f32', 'f16'] as const) {
        const results: Uint8Array[] = [];
        for (const maxBindingBytes of [undefined, 4096]) {
          const bytes = (output === 'f16' ? 2 : 4) * cols;
          const y = createBuffer(device, 'test y', Math.ceil(bytes / 4) * 4, STORAGE_USAGE);
          const scratch = new GpuScratch(device);
          const encoder = device.createCommandEncoder();
          dispatchE8PointGemvI8(device, encoder, scratch, { w, x: xBuffer, y, rhs: 1, dotPath: dotPathFor(suite.context.features), bias: biasBuffer, outputFormat: output, ...(maxBindingBytes === undefined ? {} : { maxBindingBytes }) });
          device.queue.submit([encoder.finish()]);
          results.push(new Uint8Array(await readBuffer(device, y, Math.ceil(bytes / 4) * 4)));
          scratch.destroy();
          y.destroy();
        }
        expect(Buffer.from(results[1] as Uint8Array).equals(Buffer.from(results[0] as Uint8Array)), output).toBe(true);
      }
    } finally {
      w.destroy();
      xBuffer.destroy();
      biasBuffer.destroy();
    }
  });

  it('the GPU repack of an uploaded matrix equals e8PointForm word for word (every code width, means, rotation, partial quads, split ranges)', async () => {
    const { device } = suite.context;
    for (const [rows, cols, scheme, center, rotate, maxBindingBytes] of [
      [203, 9, 'e8-4bit', true, true, undefined],
      [100, 7, 'e8-5bit', false, true, undefined],
      [64, 30, 'e8-q16', true, false, undefined],
      [1000, 21, 'e8-3bit', false, true, 2048],
    ] as const) {
      // Unrotated Gaussian columns only: spikes would exceed int8 (the next test).
      const data = rotate ? e8TestWeights(rows, cols, cols) : gaussianMatrix(rows, cols, cols);
      const q = quantize(data, { scheme, center, rotate, seed: 4 }) as UniversalLatticeMatrix;
      const m = e8PointForm(q);
      const uploaded = uploadUniversalMatrix(device, q);
      const w = GpuE8PointMatrix.repack(device, uploaded, 'test repack', maxBindingBytes === undefined ? {} : { maxBindingBytes });
      uploaded.destroy();
      await w.check();
      const what = `${scheme} ${rows} × ${cols}${maxBindingBytes === undefined ? '' : ' split'}`;
      expect(Array.from(new Uint32Array(await readBuffer(device, w.points, m.points.byteLength))), `${what}: points`).toEqual(Array.from(m.points));
      expect(Array.from(new Uint32Array(await readBuffer(device, w.keys, 8 * cols + 8))), `${what}: keys`).toEqual([...Array.from(m.ditherKeys), 0, 0]);
      const side = new Float32Array(await readBuffer(device, w.columnSide, (center ? 8 : 4) * cols));
      expect(Array.from(side), `${what}: norms and means`).toEqual([...Array.from(m.norms), ...(m.means === null ? [] : Array.from(m.means))]);
      expect([w.quadsPerColumn, w.keptLength, w.length, w.hasMeans, w.columnUnit]).toEqual([m.quadsPerColumn, m.keptLength, m.length, m.means !== null, Math.fround(m.columnUnit) === m.columnUnit ? m.columnUnit : w.columnUnit]);
      w.destroy();
    }
  });

  it('a point beyond ±127 found by the GPU repack: check() rejects and the GEMV writes NaN, never a plausible value', async () => {
    const { device } = suite.context;
    // An unrotated spike column: one coordinate of √N·ν in its column, |λ| ≈ 2√N/β ≈ 212 at N = 1024.
    const data = gaussianMatrix(1024, 3, 8);
    data.data.fill(0, 1024, 2048).fill(5, 1100, 1101);
    const q = quantize(data, { scheme: 'e8-4bit', rotate: false }) as UniversalLatticeMatrix;
    expect(() => e8PointForm(q)).toThrow(/block \d+ of column 1 has a lattice point coordinate/);
    const uploaded = uploadUniversalMatrix(device, q);
    const w = GpuE8PointMatrix.repack(device, uploaded, 'test overflow');
    uploaded.destroy();
    await expect(w.check()).rejects.toThrow(/beyond the int8 points' ±127 .*its GEMVs write NaN/);
    const y = (await e8PointGemvI8(device, w, Float32Array.from({ length: 1024 }, (_, k) => Math.sin(k)), { dotPath: dotPathFor(suite.context.features) })).data;
    expect(Array.from(y).every(Number.isNaN)).toBe(true);
    w.destroy();
  });

  it('points at the int8 limit: ±127 in even and odd coordinates, in every byte of both words, repack as e8PointForm and multiply as its twin; ±128 in an even or odd coordinate is refused by both', async () => {
    const { device } = suite.context;
    // The measured |λ| ≤ 72 of quantized data never reaches the limit: the blocks are made by hand.
    // e8-5bit: 37-bit codes (codesHigh), q = 24; e8-q16: 32-bit codes, q = 16.
    for (const scheme of ['e8-5bit', 'e8-q16'] as const) {
      const base = quantize(gaussianMatrix(64, 3, 12), { scheme, rotate: false, seed: 2 }) as UniversalLatticeMatrix;
      // Points of 2·E8 (all odd, sum ≡ 0 mod 4): +127 and −127 in coordinates 0–3 (bytes 0 and 1 of
      // both words), 4 and 5 (byte 2) and 6 and 7 (byte 3: the sign bit of each word).
      const atLimit = [
        [0, 1, [127, 127, -127, -127, 1, 1, 1, 1]],
        [1, 4, [1, 1, 1, -1, 127, -127, 1, 1]],
        [2, 7, [1, 1, 1, -1, 1, 1, 127, -127]],
        [2, 6, [-127, -127, 127, 127, -1, -1, 1, 1]],
      ] as const;
      let fit = base;
      for (const [column, block, point] of atLimit) fit = withBlockPoint(fit, column, block, point);
      const m = e8PointForm(fit);
      const wordsPerColumn = 8 * m.quadsPerColumn;
      for (const [column, block, point] of atLimit) {
        const at = column * wordsPerColumn + 2 * block;
        expect(Array.from(unpackPoint(m.points[at] as number, m.points[at + 1] as number)), `${scheme}: block ${block} of column ${column}`).toEqual(point);
      }
      const uploaded = uploadUniversalMatrix(device, fit);
      const w = GpuE8PointMatrix.repack(device, uploaded, 'test limit');
      await w.check();
      expect(Array.from(new Uint32Array(await readBuffer(device, w.points, m.points.byteLength))), `${scheme}: points at ±127`).toEqual(Array.from(m.points));
      w.destroy();
      // The product with those points against the twin (x̂ reaches ±127 too: one large entry in 9).
      const exactW = decodeRotated(fit);
      const rng = new Rng(5);
      const x = Float32Array.from({ length: fit.length }, (_, k) => rng.nextGaussian() * (k % 9 === 0 ? 30 : 1));
      for (const dotPath of new Set<DotPath>([dotPathFor(suite.context.features), 'plain'])) {
        const repacked = GpuE8PointMatrix.repack(device, uploaded, 'test limit gemv');
        const { y, inputs } = await runE8QuadGemv(repacked, x, 1, dotPath, false, (encoder, scratch, args) => dispatchE8PointGemvI8(device, encoder, scratch, args));
        const values = inputs[0] as E8InputsI8Values;
        expectE8GemvWithinBounds({ y, twin: e8PointGemvReference(m, values), inputs: values, x, exactW, length: fit.length, keptLength: fit.keptLength, quadsPerColumn: m.quadsPerColumn, what: `${scheme}, ${dotPath}` });
      }
      uploaded.destroy();
      // One coordinate of ±128 (all even, sum ≡ 0 mod 4), each in its own matrix: the overflow word is one per matrix.
      for (const [coordinate, value] of [[0, 128], [1, -128], [6, -128], [7, 128]] as const) {
        const point = [0, 0, 0, 0, 0, 0, 0, 0];
        point[coordinate] = value;
        const over = withBlockPoint(base, 1, 2, point);
        expect(() => e8PointForm(over), `${scheme}: ${value} in coordinate ${coordinate}`).toThrow(new RegExp(`^e8PointForm: block 2 of column 1 has a lattice point coordinate ${value}, beyond`));
        const overUploaded = uploadUniversalMatrix(device, over);
        const overW = GpuE8PointMatrix.repack(device, overUploaded, 'test past limit');
        overUploaded.destroy();
        await expect(overW.check(), `${scheme}: ${value} in coordinate ${coordinate}`).rejects.toThrow(/beyond the int8 points' ±127/);
        overW.destroy();
      }
    }
  });

  it('a QuantizedLinear that repacked such a weight itself (int8Inputs, GPU-quantized: no codes on the host): layer.check() rejects and its outputs are NaN; the f32-input layer and a sound weight check clean', async () => {
    const { device } = suite.context;
    const data = gaussianMatrix(1024, 3, 8);
    data.data.fill(0, 1024, 2048).fill(5, 1100, 1101);
    // Quantized on the GPU: an upload of CPU codes finds the point on the host and create() refuses it
    // at once (test/gpu/quantizedLinear.test.ts); only the GPU's own codes leave it to the repack.
    const engine = GpuEngine.create(suite.context);
    const spiky = await engine.quantize(data, { scheme: 'e8-4bit', rotate: false });
    const sound = uploadUniversalMatrix(device, quantize(gaussianMatrix(1024, 3, 9), { scheme: 'e8-4bit', rotate: false }) as UniversalLatticeMatrix);
    const x = createBufferWithData(device, 'layer check x', Float32Array.from({ length: 1024 }, (_, k) => Math.sin(k)), STORAGE_USAGE);
    const y = createBuffer(device, 'layer check y', 12, STORAGE_USAGE);
    const int8Inputs = dotPathFor(suite.context.features);
    const layers = [
      QuantizedLinear.create(device, spiky, { int8Inputs }),
      QuantizedLinear.create(device, spiky),
      QuantizedLinear.create(device, sound, { int8Inputs }),
    ] as const;
    try {
      await expect(layers[0].check()).rejects.toThrow(/beyond the int8 points' ±127 .*its GEMVs write NaN/);
      const encoder = device.createCommandEncoder();
      layers[0].record(encoder, x, y);
      device.queue.submit([encoder.finish()]);
      expect(Array.from(new Float32Array(await readBuffer(device, y, 12))).every(Number.isNaN)).toBe(true);
      await layers[1].check();
      await layers[2].check();
      // The sound weight's layer is what check() vouches for: finite outputs.
      const again = device.createCommandEncoder();
      layers[2].record(again, x, y);
      device.queue.submit([again.finish()]);
      expect(Array.from(new Float32Array(await readBuffer(device, y, 12))).every(Number.isFinite)).toBe(true);
      layers[2].destroy();
      await expect(layers[2].check()).rejects.toThrow(/was destroyed/);
    } finally {
      for (const layer of layers) layer.destroy();
      for (const buffer of [x, y]) buffer.destroy();
      spiky.destroy();
      sound.destroy();
      engine.destroy();
    }
  });
});
