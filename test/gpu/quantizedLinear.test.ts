import { readFileSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import { readQuantizedContainer } from '../../src/format/container.js';
import { uploadContainerEntry } from '../../src/gpu/containerUpload.js';
import { createBuffer, createBufferWithData, readBufferExclusive, STORAGE_USAGE } from '../../src/gpu/buffers.js';
import { GpuScratch } from '../../src/gpu/scratch.js';
import { uploadLatticeMatrix } from '../../src/gpu/gpuQuantize.js';
import { GpuE8ResidueMatrix } from '../../src/gpu/kernels/e8ResidueGemvI8.js';
import { GpuE8PointMatrix } from '../../src/gpu/kernels/e8PointGemvI8.js';
import { GpuD3QuadMatrix } from '../../src/gpu/kernels/d3QuadGemvI8.js';
import type { GpuUniversalMatrix, GpuUniversalQuantizedMatrix } from '../../src/gpu/universalOperand.js';
import { GpuEngine } from '../../src/gpu/engine.js';
import { e8PointForm } from '../../src/quantize/e8Points.js';
import type { GpuDeterministicMatrix } from '../../src/gpu/latticeOperand.js';
import { uploadWeightOnly } from '../../src/gpu/kernels/weightOnlyGemv.js';
import { QuantizedLinear, type BufferSlice, type LinearWeight, type QuantizedLinearGroup, type QuantizedLinearOptions } from '../../src/gpu/quantizedLinear.js';
import { LatticeMatmulError } from '../../src/errors.js';
import { toFloat32Matrix, type Matrix } from '../../src/matrix.js';
import { matvecAT } from '../../src/product/matvec.js';
import { quantize } from '../../src/quantize/quantize.js';
import type { DeterministicLatticeMatrix, LatticeQuantizedMatrix, UniversalLatticeMatrix } from '../../src/quantize/quantizedMatrix.js';
import { decodeRotated } from '../../src/product/decodeRotated.js';
import { RandomizedHadamard } from '../../src/rotation/randomizedHadamard.js';
import { rotationRoundsInPass } from '../../src/gpu/kernels/hadamard.js';
import { fusedFinishSupported } from '../../src/gpu/kernels/universalGemv.js';
import { dispatchesByPipeline } from '../../bench/gpu/common.js';
import { dotPathFor } from '../../src/gpu/kernels/e8Matmul.js';
import { quantizeInputsI8 } from '../../src/gpu/kernels/inputsI8.js';
import { gaussianMatrix } from '../../src/rotation/random.js';
import { float16Bits, fromFloat16Bits } from '../../src/scalar/floatFormats.js';
import { quantizeWeights } from '../../src/weightonly/quantizeWeights.js';
import { contextOnTestDevice, gpuUnavailableReason, testDevice, trackBuffers } from './gpuTestDevice.js';
import { relativeSquaredError } from '../relativeError.js';

/*
 * QuantizedLinear: y = W·x + b over universal, deterministic and weight-only weights, f32 and f16
 * activations, against the CPU twins (`matvecAT` for lattice weights, `decode()`·x for weight-only),
 * plus bias. Tolerance: the GEMV kernels' own bounds are tested elsewhere; here |y − y_cpu| ≤
 * 1e-4·(Σ|terms| scale) — 1e-4 · (‖row of Ŵ‖·‖x‖ + |b|) — for f32, and one f16 rounding (2^−11
 * relative) more for f16 outputs. Also: recording again with the same buffers creates no buffer and no
 * bind group, and a ten-layer step recorded into one encoder with one submit equals the layers run one
 * by one.
 */

const noGpu = await gpuUnavailableReason();

function f16Matrix(m: Matrix): { bits: Uint16Array; values: Matrix } {
  const bits = Uint16Array.from(m.data, (v) => float16Bits(v));
  return { bits, values: toFloat32Matrix({ rows: m.rows, cols: m.cols, data: bits }) };
}

describe.skipIf(noGpu !== undefined)('QuantizedLinear', () => {
  const suite = contextOnTestDevice();
  let device: GPUDevice;
  beforeAll(() => {
    device = suite.context.device;
  });

  /** Runs one layer on x (f32 values; uploaded as f32 or f16) and returns y as f32 values. */
  async function run(layer: QuantizedLinear, x: Matrix): Promise<Float32Array> {
    const f16 = layer.activations === 'f16';
    const input = f16 ? f16Matrix(x).bits : x.data;
    const xBuffer = createBufferWithData(device, 'test x', input, STORAGE_USAGE);
    const bytes = (f16 ? 2 : 4) * layer.outFeatures * x.cols;
    const yBuffer = createBuffer(device, 'test y', bytes, STORAGE_USAGE);
    try {
      const encoder = device.createCommandEncoder({ label: 'test layer' });
      layer.record(encoder, xBuffer, yBuffer, { tokens: x.cols });
      device.queue.submit([encoder.finish()]);
      const raw = await readBufferExclusive(device, yBuffer, bytes);
      return f16 ? toFloat32Matrix({ rows: layer.outFeatures, cols: x.cols, data: new Uint16Array(raw) }).data : new Float32Array(raw);
    } finally {
      xBuffer.destroy();
      yBuffer.destroy();
    }
  }

  function expectClose(gpu: Float32Array, cpu: ArrayLike<number>, scale: number, f16: boolean): void {
    for (let i = 0; i < cpu.length; i++) {
      const c = cpu[i] as number;
      const tolerance = 1e-4 * scale + (f16 ? 2 ** -10 * Math.abs(c) : 0);
      expect(Math.abs((gpu[i] as number) - c), `entry ${i}`).toBeLessThanOrEqual(tolerance);
    }
  }

  /** Each layer's output buffer for `tokens` columns in the layers' activation format. */
  function layerOutputs(layers: readonly QuantizedLinear[], tokens: number, what: string): GPUBuffer[] {
    return layers.map((layer, i) => createBuffer(device, `${what} ${i}`, (layer.activations === 'f16' ? 2 : 4) * layer.outFeatures * tokens, STORAGE_USAGE));
  }

  /** Every layer's output in `actual` holds the same bytes as in `expected`. */
  async function expectSameOutputs(layers: readonly QuantizedLinear[], tokens: number, expected: readonly GPUBuffer[], actual: readonly GPUBuffer[], what: string): Promise<void> {
    for (const [i, layer] of layers.entries()) {
      const bytes = (layer.activations === 'f16' ? 2 : 4) * layer.outFeatures * tokens;
      const a = new Uint8Array(await readBufferExclusive(device, expected[i] as GPUBuffer, bytes));
      const b = new Uint8Array(await readBufferExclusive(device, actual[i] as GPUBuffer, bytes));
      expect(b, `layer ${i} (${what})`).toEqual(a);
    }
  }

  /** `group` records the same bytes as its layers one by one, from `x` with `tokens` columns (outputs freed after). */
  async function expectGroupAsLayers(group: QuantizedLinearGroup, layers: readonly QuantizedLinear[], x: GPUBuffer, tokens: number, what: string): Promise<void> {
    const single = layerOutputs(layers, tokens, 'single');
    const grouped = layerOutputs(layers, tokens, 'grouped');
    try {
      const encoder = device.createCommandEncoder({ label: what });
      layers.forEach((layer, i) => layer.record(encoder, x, single[i] as GPUBuffer, { tokens }));
      group.record(encoder, x, grouped, { tokens });
      device.queue.submit([encoder.finish()]);
      await expectSameOutputs(layers, tokens, single, grouped, what);
    } finally {
      for (const buffer of [...single, ...grouped]) buffer.destroy();
    }
  }

  const n = 300;
  const out = 40;
  const w = gaussianMatrix(n, out, 1); // the library's layout: n × out, a PyTorch (out, n) weight read row-major
  const bias = Float32Array.from({ length: out }, (_, j) => 0.25 * (j - out / 2));

  // Rotated and uncentred (the GEMV reads only R·x: f16 activations are rotated without an f32 copy),
  // centred (Σx read from x as f32) and unrotated (x itself multiplied).
  const forms = { rotated: {}, centred: { center: true }, unrotated: { rotate: false } } as const;
  for (const scheme of ['e8-q16', 'd3-q6', 'd3-q6-deterministic'] as const) {
    for (const activations of ['f32', 'f16'] as const) {
      it.each(Object.keys(forms) as (keyof typeof forms)[])(`lattice ${scheme}, ${activations} activations, bias, tokens 1 and 5 (%s)`, async (form) => {
        const q = quantize(w, { scheme, seed: 4, ...forms[form], ...(scheme.endsWith('deterministic') ? {} : { nonce: 9 }) }) as LatticeQuantizedMatrix;
        const gpuW = uploadLatticeMatrix(device, q);
        const layer = QuantizedLinear.create(device, gpuW as LinearWeight, { bias, activations, maxTokens: 8 });
        try {
          for (const tokens of [1, 5]) {
            const x = gaussianMatrix(n, tokens, 2 + tokens);
            const xValues = activations === 'f16' ? f16Matrix(x).values : x;
            const reference = matvecAT(q, xValues);
            const expected = Float32Array.from(reference.data, (v, i) => v + (bias[i % out] as number));
            expectClose(await run(layer, x), expected, Math.sqrt(n) * 40, activations === 'f16');
          }
        } finally {
          layer.destroy();
          gpuW.destroy();
        }
      });
    }
  }

  const int8Cases = [
    ['d3-q6', 'f32'],
    ['d3-q6', 'f16'],
    ['d3-q6-deterministic', 'f32'],
    ['d3-q6-deterministic', 'f16'],
    ['e8-q16-deterministic', 'f32'],
    ['e8-q16-deterministic', 'f16'],
    ['e8-4bit', 'f32'],
    ['e8-4bit', 'f16'],
    ['e8-q16', 'f32'],
  ] as const;
  for (const [scheme, activations] of int8Cases) {
    it.each(Object.keys(forms) as (keyof typeof forms)[])(`int8 inputs (${scheme}), ${activations} activations, bias, tokens 1, 5 and 8: within the int8 bound of matvecAT (%s)`, async (form) => {
      const q = quantize(w, { scheme, seed: 4, ...forms[form], ...(scheme.endsWith('deterministic') ? {} : { nonce: 9 }) }) as LatticeQuantizedMatrix;
      const gpuW = uploadLatticeMatrix(device, q);
      const layer = QuantizedLinear.create(device, gpuW as LinearWeight, { bias, activations, maxTokens: 8, int8Inputs: dotPathFor(suite.context.features) });
      const rotated = decodeRotated(q);
      const rotation = new RandomizedHadamard(n, q.seed);
      // One group per 4 blocks: 12 coordinates for D3, 32 for E8 (the residue and the point GEMV).
      const groups = Math.ceil(q.blocksPerColumn / 4);
      const groupSize = q.scheme.lattice === 'E8' ? 32 : 12;
      try {
        for (const tokens of [1, 5, 8]) {
          const x = gaussianMatrix(n, tokens, 2 + tokens);
          const xValues = activations === 'f16' ? f16Matrix(x).values : x;
          const reference = matvecAT(q, xValues);
          const y = await run(layer, x);
          for (let t = 0; t < tokens; t++) {
            // universalGemvI8.ts's bound, through Cauchy–Schwarz: ½·(1 + 10⁻³)·‖ŵ̃_j‖·√(groupSize·Σ_g s_g²).
            const xt = xValues.data.subarray(t * n, (t + 1) * n);
            const { scales } = quantizeInputsI8(q.rotate ? rotation.forward(xt) : xt, q.keptLength, groups, groupSize);
            let scaleSquares = 0;
            for (const s of scales) scaleSquares += s * s;
            for (let j = 0; j < out; j++) {
              let norm2 = 0;
              for (let k = 0; k < q.length; k++) norm2 += (rotated[j * q.length + k] as number) ** 2;
              const expected = (reference.data[t * out + j] as number) + (bias[j] as number);
              const tolerance = 0.5 * 1.001 * Math.sqrt(norm2 * groupSize * scaleSquares) + 1e-4 * Math.sqrt(n) * 40 + (activations === 'f16' ? 2 ** -10 * Math.abs(expected) : 0);
              expect(Math.abs((y[t * out + j] as number) - expected), `token ${t}, output ${j}`).toBeLessThanOrEqual(tolerance);
            }
          }
        }
      } finally {
        layer.destroy();
        gpuW.destroy();
      }
    });
  }

  for (const activations of ['f32', 'f16'] as const) {
    it(`a GpuE8ResidueMatrix as the weight (the upload destroyed after the repack) equals the layer that repacks it, bit for bit, alone and in a group (${activations})`, async () => {
      const q = quantize(w, { scheme: 'e8-q16-deterministic', seed: 4, center: true }) as LatticeQuantizedMatrix;
      const uploaded = uploadLatticeMatrix(device, q);
      const int8Inputs = dotPathFor(suite.context.features);
      const options = { bias, activations, maxTokens: 8, int8Inputs };
      const fromUpload = QuantizedLinear.create(device, uploaded as LinearWeight, options);
      const x = gaussianMatrix(n, 5, 31);
      const expected = await run(fromUpload, x);
      fromUpload.destroy();
      const residues = GpuE8ResidueMatrix.repack(device, uploaded as GpuDeterministicMatrix, 'test residues');
      uploaded.destroy();
      const layer = QuantizedLinear.create(device, residues, options);
      const d3 = uploadLatticeMatrix(device, quantize(w, { scheme: 'd3-q6-deterministic', seed: 4 }) as LatticeQuantizedMatrix);
      const d3Layer = QuantizedLinear.create(device, d3 as LinearWeight, options);
      try {
        expect([layer.inFeatures, layer.outFeatures]).toEqual([n, out]);
        expect(Array.from(await run(layer, x))).toEqual(Array.from(expected));
        // In a group with a D3 int8 layer of the same seed: one rotation, two roundings, the same bits.
        const group = QuantizedLinear.group([d3Layer, layer]);
        expect([group.rotationsPerRecord, group.int8RoundingsPerRecord]).toEqual([1, 2]);
        const xBuffer = createBufferWithData(device, 'group x', activations === 'f16' ? f16Matrix(x).bits : x.data, STORAGE_USAGE);
        await expectGroupAsLayers(group, [d3Layer, layer], xBuffer, 5, 'residue weight in a group');
        // A y that is one of the residue matrix's buffers is refused, as for any weight's.
        expect(() => layer.record(device.createCommandEncoder(), xBuffer, residues.columnSide)).toThrow(/is the weight's column side buffer/);
        group.destroy();
        xBuffer.destroy();
        // The layer does not own the weight: destroying the layer leaves it, destroying it refuses the layer.
        layer.destroy();
        expect(residues.isDestroyed).toBe(false);
        const again = QuantizedLinear.create(device, residues, options);
        residues.destroy();
        const [xSmall, ySmall] = [createBuffer(device, 'x', 4 * n, STORAGE_USAGE), createBuffer(device, 'y', 4 * out, STORAGE_USAGE)];
        expect(() => again.record(device.createCommandEncoder(), xSmall, ySmall)).toThrow(/was destroyed/);
        again.destroy();
        xSmall.destroy();
        ySmall.destroy();
      } finally {
        layer.destroy();
        d3Layer.destroy();
        d3.destroy();
        residues.destroy();
      }
      // Only the residue GEMV reads the form.
      const reuploaded = uploadLatticeMatrix(device, q);
      const other = GpuE8ResidueMatrix.repack(device, reuploaded as GpuDeterministicMatrix, 'test residues 2');
      // @ts-expect-error a quad form without int8Inputs does not compile (LinearOptionsFor); JS callers are refused at run time
      expect(() => QuantizedLinear.create(device, other, { bias })).toThrow(/GpuE8ResidueMatrix is read by the int8-input GEMV only: pass int8Inputs/);
      other.destroy();
      reuploaded.destroy();
    });
  }

  it('a GpuE8PointMatrix as the weight equals the layer that repacks it, bit for bit, and shares one int8 rounding with a residue layer of the same seed', async () => {
    const q = quantize(w, { scheme: 'e8-4bit', seed: 4, nonce: 9, center: true }) as LatticeQuantizedMatrix;
    const uploaded = uploadLatticeMatrix(device, q);
    const options = { bias, maxTokens: 8, int8Inputs: dotPathFor(suite.context.features) };
    const fromUpload = QuantizedLinear.create(device, uploaded as LinearWeight, options);
    const x = gaussianMatrix(n, 5, 37);
    const expected = await run(fromUpload, x);
    fromUpload.destroy();
    const points = GpuE8PointMatrix.repack(device, uploaded as GpuUniversalMatrix, 'test points');
    uploaded.destroy();
    await points.check();
    const layer = QuantizedLinear.create(device, points, options);
    const residueWeight = uploadLatticeMatrix(device, quantize(w, { scheme: 'e8-q16-deterministic', seed: 4 }) as LatticeQuantizedMatrix);
    const residueLayer = QuantizedLinear.create(device, residueWeight as LinearWeight, options);
    try {
      expect([layer.inFeatures, layer.outFeatures]).toEqual([n, out]);
      expect(Array.from(await run(layer, x))).toEqual(Array.from(expected));
      // The same rotation and E8 groups of 32: one rotation and one rounding for both forms.
      const group = QuantizedLinear.group([residueLayer, layer]);
      expect([group.rotationsPerRecord, group.int8RoundingsPerRecord]).toEqual([1, 1]);
      const xBuffer = createBufferWithData(device, 'group x', x.data, STORAGE_USAGE);
      await expectGroupAsLayers(group, [residueLayer, layer], xBuffer, 5, 'point weight in a group');
      expect(() => layer.record(device.createCommandEncoder(), xBuffer, points.keys)).toThrow(/is the weight's keys buffer/);
      group.destroy();
      xBuffer.destroy();
      layer.destroy();
      expect(points.isDestroyed).toBe(false);
      // @ts-expect-error a quad form without int8Inputs does not compile (LinearOptionsFor); JS callers are refused at run time
      expect(() => QuantizedLinear.create(device, points, { bias })).toThrow(/GpuE8PointMatrix is read by the int8-input GEMV only: pass int8Inputs/);
    } finally {
      layer.destroy();
      residueLayer.destroy();
      residueWeight.destroy();
      points.destroy();
    }
  });

  it('int8Inputs on a universal E8 weight with a point beyond int8: refused at create, naming the block, where the host had the codes; a GPU-quantized one keeps check()', async () => {
    // An unrotated column that is one spike: |λ| ≈ 2√N/β ≈ 212 at N = 1024 in one block of column 1.
    const data = gaussianMatrix(1024, 3, 8);
    data.data.fill(0, 1024, 2048).fill(5, 1100, 1101);
    const q = quantize(data, { scheme: 'e8-4bit', rotate: false }) as UniversalLatticeMatrix;
    const cpuRefusal = /block (\d+) of column 1 has a lattice point coordinate (-?\d+)/.exec((() => {
      try {
        e8PointForm(q);
        return '';
      } catch (error) {
        return (error as Error).message;
      }
    })());
    expect(cpuRefusal, 'e8PointForm refuses the CPU matrix').not.toBeNull();
    const [, block, coordinate] = cpuRefusal as RegExpExecArray;
    const int8Inputs = dotPathFor(suite.context.features);
    const uploaded = uploadLatticeMatrix(device, q);
    const sound = uploadLatticeMatrix(device, quantize(gaussianMatrix(1024, 3, 9), { scheme: 'e8-4bit', rotate: false }) as UniversalLatticeMatrix);
    const engine = GpuEngine.create(suite.context);
    const gpuQuantized = (await engine.quantize(data, { scheme: 'e8-4bit', rotate: false })) as GpuUniversalQuantizedMatrix;
    const x = createBufferWithData(device, 'overflow x', Float32Array.from({ length: 1024 }, (_, k) => Math.sin(k)), STORAGE_USAGE);
    const y = createBuffer(device, 'overflow y', 12, STORAGE_USAGE);
    const layers: QuantizedLinear[] = [];
    const outputs = async (layer: QuantizedLinear): Promise<Float32Array> => {
      const encoder = device.createCommandEncoder();
      layer.record(encoder, x, y);
      device.queue.submit([encoder.finish()]);
      return new Float32Array(await readBufferExclusive(device, y, 12));
    };
    try {
      // The upload found it on the host (the same block and coordinate as e8PointForm), so create refuses synchronously.
      expect(uploaded.e8PointOverflow).toEqual({ column: 1, block: Number(block), coordinate: Number(coordinate) });
      expect(sound.e8PointOverflow).toBeNull();
      const refused = (() => {
        try {
          QuantizedLinear.create(device, uploaded, { int8Inputs, label: 'spiky' });
          return null;
        } catch (error) {
          return error;
        }
      })();
      expect(refused).toBeInstanceOf(LatticeMatmulError);
      expect((refused as Error).message).toBe(
        `QuantizedLinear "spiky": int8Inputs: block ${block} of column 1 of the weight has a lattice point coordinate ${coordinate}, beyond the int8 lattice points' ±127 that the int8-input GEMV reads ` +
          "(a coordinate far above its column's RMS: an unrotated column's spike, or an explicit escape); create this layer without int8Inputs (the f32-input GEMV decodes every code; for your own weights, quantizing with the rotation avoids such points)",
      );
      // What the message says to do works: the f32-input layer on the same weight, finite outputs.
      layers.push(QuantizedLinear.create(device, uploaded));
      await (layers[0] as QuantizedLinear).check();
      expect(Array.from(await outputs(layers[0] as QuantizedLinear)).every(Number.isFinite)).toBe(true);
      layers.push(QuantizedLinear.create(device, sound, { int8Inputs }));
      await (layers[1] as QuantizedLinear).check();
      // Codes made on the GPU never were on the host: the documented path, NaN outputs until check() rejects.
      expect(gpuQuantized.e8PointOverflow).toBeUndefined();
      layers.push(QuantizedLinear.create(device, gpuQuantized, { int8Inputs }));
      await expect((layers[2] as QuantizedLinear).check()).rejects.toThrow(/beyond the int8 points' ±127 .*its GEMVs write NaN/);
      expect(Array.from(await outputs(layers[2] as QuantizedLinear)).every(Number.isNaN)).toBe(true);
    } finally {
      for (const layer of layers) layer.destroy();
      for (const buffer of [x, y]) buffer.destroy();
      for (const m of [uploaded, sound, gpuQuantized]) m.destroy();
      engine.destroy();
    }
  });

  it('a GpuD3QuadMatrix as the weight equals the layer that repacks it, bit for bit; multiples past the quad table\'s byte keep the codes as stored', async () => {
    const options = { bias, maxTokens: 8, int8Inputs: dotPathFor(suite.context.features) };
    const x = gaussianMatrix(n, 5, 38);
    const q = quantize(w, { scheme: 'd3-q6-deterministic', seed: 4, center: true }) as DeterministicLatticeMatrix;
    const uploaded = uploadLatticeMatrix(device, q);
    const fromUpload = QuantizedLinear.create(device, uploaded, options);
    const expected = await run(fromUpload, x);
    fromUpload.destroy();
    const quads = GpuD3QuadMatrix.repack(device, uploaded, 'test quads');
    uploaded.destroy();
    const layer = QuantizedLinear.create(device, quads, options);
    try {
      expect(Array.from(await run(layer, x))).toEqual(Array.from(expected));
      const xBuffer = createBufferWithData(device, 'x', x.data, STORAGE_USAGE);
      expect(() => layer.record(device.createCommandEncoder(), xBuffer, quads.indices)).toThrow(/is the weight's quad scale indices buffer/);
      xBuffer.destroy();
      layer.destroy();
      expect(quads.isDestroyed).toBe(false);
      // @ts-expect-error a quad form without int8Inputs does not compile (LinearOptionsFor); JS callers are refused at run time
      expect(() => QuantizedLinear.create(device, quads, { bias })).toThrow(/GpuD3QuadMatrix is read by the int8-input GEMV only: pass int8Inputs/);
    } finally {
      layer.destroy();
      quads.destroy();
    }
    // A custom ladder whose multiples pass 255 (16, 128, 1024, 8192): the quad form refuses it by name,
    // and the layer runs the kernel on the codes as stored, within the int8 inputs' bound of the exact product.
    const wide = quantize(w, { scheme: { kind: 'lattice', mode: 'deterministic', lattice: 'D3', q: 6, overload: { kind: 'ladder', beta: 0.4, ratio: 8, steps: 4 } }, seed: 4 }) as DeterministicLatticeMatrix;
    const wideUploaded = uploadLatticeMatrix(device, wide);
    expect(Array.from(wideUploaded.multiples)).toEqual([16, 128, 1024, 8192]);
    expect(() => GpuD3QuadMatrix.repack(device, wideUploaded, 'test')).toThrow(/in a byte .*16, 128, 1024, 8192/);
    const wideLayer = QuantizedLinear.create(device, wideUploaded, { maxTokens: 8, int8Inputs: dotPathFor(suite.context.features) });
    try {
      const y = await run(wideLayer, x);
      const exactW = decodeRotated(wide);
      for (let t = 0; t < 5; t++) {
        const xRotated = new RandomizedHadamard(n, wide.seed).forward(x.data.subarray(t * n, (t + 1) * n));
        const rounded = quantizeInputsI8(xRotated, wide.keptLength, Math.ceil(wide.blocksPerColumn / 4));
        for (let j = 0; j < out; j++) {
          let exact = 0;
          let bound = 0;
          let magnitude = 0;
          for (let k = 0; k < wide.keptLength; k++) {
            const wk = exactW[j * wide.length + k] as number;
            exact += wk * (xRotated[k] as number);
            magnitude += Math.abs(wk * (xRotated[k] as number));
            bound += (rounded.scales[Math.floor(k / 12)] as number) * (0.5 + 2e-4) * Math.abs(wk);
          }
          expect(Math.abs((y[t * out + j] as number) - exact), `token ${t}, column ${j}`).toBeLessThanOrEqual(bound + 64 * 2 ** -24 * magnitude);
        }
      }
    } finally {
      wideLayer.destroy();
      wideUploaded.destroy();
    }
  });

  it.each([
    [4, 'auto', 6],
    [2, 'auto', 3],
    [4, 'packed', 'packed'],
  ] as const)('weight-only weights (RTN at rate %i, Hadamard rotation, layout %s: %s), f32, y = Ŵ·x', async (rate, layout, codeBits) => {
    const wo = gaussianMatrix(256, out, 5); // the library's layout: n × outputs
    const q = quantizeWeights(wo, null, { method: 'rtn', rate, rotate: true, seed: 3 });
    expect(q.rotation).toBe('hadamard');
    const matrix = uploadWeightOnly(device, q, { layout });
    expect(matrix.codeBits).toBe(codeBits);
    const layer = QuantizedLinear.create(device, matrix);
    try {
      const x = gaussianMatrix(256, 2, 6);
      const decoded = q.decode(); // n × outputs, column-major
      const expected = new Float64Array(out * 2);
      for (let t = 0; t < 2; t++) {
        for (let j = 0; j < out; j++) {
          let sum = 0;
          for (let i = 0; i < 256; i++) sum += (decoded.data[j * 256 + i] as number) * (x.data[t * 256 + i] as number);
          expected[t * out + j] = sum;
        }
      }
      expectClose(await run(layer, x), expected, Math.sqrt(256) * 40, false);
    } finally {
      layer.destroy();
      matrix.destroy();
    }
  });

  it('refuses a weight-only matrix rotated with the dense "haar" rotation, naming n, the padded length and the remedies', () => {
    // n = 200: no Hadamard length and at most 256, so rotate: true picks haar (the one-stage length is 256).
    const q = quantizeWeights(gaussianMatrix(200, 64, 7), null, { method: 'rtn', rate: 4, rotate: true, seed: 2 });
    expect(q.rotation).toBe('haar');
    const matrix = uploadWeightOnly(device, q);
    try {
      expect(() => QuantizedLinear.create(device, matrix)).toThrow(
        /^QuantizedLinear: this weight-only matrix of n = 200 inputs was rotated with the dense "haar" rotation .*; quantize it with rotate: false, or pad W's inputs with zeros to 256 /,
      );
    } finally {
      matrix.destroy();
    }
  });

  describe('matrices of a version-2 file, rotated padded (300 → 320, 896 → 1024 rows: the plan before version 3)', () => {
    const file = readQuantizedContainer(new Uint8Array(readFileSync(new URL('../format/fixtures/padded-v2.safetensors', import.meta.url))));
    const latticeNames = file.entries.filter((e) => e.kind === 'universal' || e.kind === 'deterministic').map((e) => e.name);

    it.each(latticeNames)('%s: the layer rotates x to the matrix\'s own padded length (f32, and int8 inputs within 2 %)', async (name) => {
      const entry = file.get(name);
      if (entry.kind !== 'universal' && entry.kind !== 'deterministic') throw new Error(`${name} is ${entry.kind}`);
      const q = entry.matrix;
      expect(q.length).toBeGreaterThan(q.rows);
      const gpuW = uploadContainerEntry(device, entry);
      const layers = [QuantizedLinear.create(device, gpuW as LinearWeight, { maxTokens: 4 }), QuantizedLinear.create(device, gpuW as LinearWeight, { maxTokens: 4, int8Inputs: dotPathFor(suite.context.features) })];
      try {
        const x = gaussianMatrix(q.rows, 3, 41);
        const reference = matvecAT(q, x).data;
        const [exact, int8] = [await run(layers[0] as QuantizedLinear, x), await run(layers[1] as QuantizedLinear, x)];
        expectClose(exact, reference, Math.sqrt(q.rows) * 10, false);
        // x rotated with the two-window plan instead would leave a relative error near √2.
        expect(relativeSquaredError(int8, reference)).toBeLessThan(0.02 ** 2);
      } finally {
        for (const layer of layers) layer.destroy();
        gpuW.destroy();
      }
    });

    it('its weight-only matrix of 300 inputs, rotated with "haar" then, is refused with the advice to quantize it again', () => {
      const entry = file.get('weight_only_haar_300');
      if (entry.kind !== 'weight-only') throw new Error('not weight-only');
      const matrix = uploadContainerEntry(device, entry);
      try {
        expect(() => QuantizedLinear.create(device, matrix)).toThrow(/n = 300 inputs .* quantize it again \(rotate: true now rotates n > 256 inputs with the randomized Hadamard rotation\), or quantize it with rotate: false, or pad W's inputs with zeros to 320/);
      } finally {
        matrix.destroy();
      }
    });
  });

  it.each([
    [4, true, 'f32'],
    [2, false, 'f16'],
  ] as const)('weight-only weights with int8Inputs (RTN at rate %i, rotate %s, %s activations, bias): the bytes of WeightOnlyGpuMatrix.dispatch with int8Inputs, alone and in a group; a packed matrix refused', async (rate, rotate, activations) => {
    const n = 256;
    const q = quantizeWeights(gaussianMatrix(n, out, 5), null, { method: 'rtn', rate, rotate, ...(rotate ? { seed: 3 } : {}) });
    const matrix = uploadWeightOnly(device, q);
    expect(matrix.codeBits).not.toBe('packed');
    const dotPath = dotPathFor(suite.context.features);
    const layer = QuantizedLinear.create(device, matrix, { int8Inputs: dotPath, activations, bias, maxTokens: 2 });
    const plain = QuantizedLinear.create(device, matrix, { activations, bias, maxTokens: 2 });
    const group = QuantizedLinear.group([plain, layer]);
    const x = gaussianMatrix(n, 2, 6);
    const f16 = activations === 'f16';
    const bytes = (f16 ? 2 : 4) * out * 2;
    const xBuffer = createBufferWithData(device, 'int8 weight-only x', f16 ? f16Matrix(x).bits : x.data, STORAGE_USAGE);
    const biasBuffer = createBufferWithData(device, 'int8 weight-only bias', bias, STORAGE_USAGE);
    const [direct, single, grouped, plainY] = ['direct', 'single', 'grouped', 'plain'].map((what) => createBuffer(device, `int8 weight-only y (${what})`, bytes, STORAGE_USAGE)) as [GPUBuffer, GPUBuffer, GPUBuffer, GPUBuffer];
    const scratch = new GpuScratch(device);
    try {
      const encoder = device.createCommandEncoder({ label: 'int8 weight-only layer' });
      matrix.dispatch(encoder, scratch, { x: xBuffer, inputFormat: activations, y: direct, vectors: 2, bias: biasBuffer, outputFormat: activations, int8Inputs: dotPath });
      layer.record(encoder, xBuffer, single, { tokens: 2 });
      group.record(encoder, xBuffer, [plainY, grouped], { tokens: 2 });
      device.queue.submit([encoder.finish()]);
      const read = async (buffer: GPUBuffer): Promise<Uint8Array> => new Uint8Array(await readBufferExclusive(device, buffer, bytes));
      const expected = await read(direct);
      expect(await read(single)).toEqual(expected);
      expect(await read(grouped)).toEqual(expected);
      // The int8 path differs from the f32 one by x̂'s rounding only (≈ 10⁻⁵ in NMSE), not by a lost term.
      const asValues = (raw: Uint8Array): Float32Array => (f16 ? toFloat32Matrix({ rows: out, cols: 2, data: new Uint16Array(raw.buffer) }).data : new Float32Array(raw.buffer));
      const int8Y = asValues(expected);
      const f32Y = asValues(await read(plainY));
      expect(relativeSquaredError(int8Y, f32Y)).toBeLessThan(1e-3);
      const packed = uploadWeightOnly(device, q, { layout: 'packed' });
      expect(() => QuantizedLinear.create(device, packed, { int8Inputs: dotPath })).toThrow(/int8Inputs: .*fixed-width layout/);
      packed.destroy();
    } finally {
      scratch.destroy();
      group.destroy();
      layer.destroy();
      plain.destroy();
      matrix.destroy();
      for (const buffer of [xBuffer, biasBuffer, direct, single, grouped, plainY]) buffer.destroy();
    }
  });

  // x and the ys in one buffer (an arena of activations, as llama.cpp's tensors in one backend buffer),
  // y beside x or over it (in place): the same bytes as with separate buffers, for every path that
  // reads x (the rotation, int8 rounding, the f32 copy of unrotated and centred weights, weight-only).
  const arenaCases = [
    ['e8-q16', { center: true }, {}],
    ['d3-q6', { rotate: false }, {}],
    ['d3-q6', {}, { int8Inputs: 'plain' }],
    ['d3-q6-deterministic', {}, {}],
    ['weight-only rtn', {}, {}],
  ] as const;
  for (const [scheme, form, layerOptions] of arenaCases) {
    for (const activations of ['f32', 'f16'] as const) {
      it(`x and y in one buffer, side by side and in place: ${scheme} ${JSON.stringify({ ...form, ...layerOptions })}, ${activations}, tokens 1 and 3, alone and in a group`, async () => {
        const weight =
          scheme === 'weight-only rtn'
            ? uploadWeightOnly(device, quantizeWeights(w, null, { method: 'rtn', rate: 4 }))
            : uploadLatticeMatrix(device, quantize(w, { scheme, seed: 4, ...form, ...(scheme.endsWith('deterministic') ? {} : { nonce: 9 }) }) as LatticeQuantizedMatrix);
        const layer = QuantizedLinear.create(device, weight as LinearWeight, { bias, activations, maxTokens: 4, ...layerOptions });
        const second = QuantizedLinear.create(device, weight as LinearWeight, { activations, maxTokens: 4, ...layerOptions });
        const group = QuantizedLinear.group([layer, second]);
        const bytes = activations === 'f16' ? 2 : 4;
        try {
          for (const tokens of [1, 3]) {
            const x = gaussianMatrix(n, tokens, 20 + tokens);
            const xData = activations === 'f16' ? f16Matrix(x).bits : x.data;
            const xBytes = bytes * n * tokens;
            const yBytes = bytes * out * tokens;
            // Separate buffers: the reference.
            const xAlone = createBufferWithData(device, 'arena test x', xData, STORAGE_USAGE);
            const [yAlone, ySecond] = layerOutputs([layer, second], tokens, 'arena test y');
            // One arena: [y | y2 | x] (offsets multiples of 4), and a second one where y is written over x.
            const yOffset = 0;
            const y2Offset = Math.ceil(yBytes / 4) * 4;
            const xOffset = y2Offset + Math.ceil(yBytes / 4) * 4 + 256;
            const arena = createBuffer(device, 'arena', xOffset + Math.ceil(xBytes / 4) * 4, STORAGE_USAGE);
            const inPlace = createBuffer(device, 'in place', Math.ceil(Math.max(xBytes, yBytes) / 4) * 4, STORAGE_USAGE);
            const groupInPlace = createBuffer(device, 'group in place', Math.ceil(Math.max(xBytes, 2 * y2Offset) / 4) * 4, STORAGE_USAGE);
            const inPass = createBuffer(device, 'in place, in a pass', Math.ceil(Math.max(xBytes, yBytes) / 4) * 4, STORAGE_USAGE);
            // n is even, so x is whole words in f16 too.
            const upload = (buffer: GPUBuffer, offset: number): void => device.queue.writeBuffer(buffer, offset, new Uint8Array(xData.buffer as ArrayBuffer, xData.byteOffset, xData.byteLength));
            upload(arena, xOffset);
            upload(inPlace, 0);
            upload(groupInPlace, 0);
            upload(inPass, 0);
            const grouped = layerOutputs([layer, second], tokens, 'arena test group y');
            try {
              const encoder = device.createCommandEncoder({ label: 'arena test' });
              layer.record(encoder, xAlone, yAlone as GPUBuffer, { tokens });
              second.record(encoder, xAlone, ySecond as GPUBuffer, { tokens });
              layer.record(encoder, { buffer: arena, offset: xOffset, size: xBytes }, { buffer: arena, offset: yOffset, size: yBytes }, { tokens });
              group.record(encoder, { buffer: arena, offset: xOffset }, [{ buffer: grouped[0] as GPUBuffer }, { buffer: arena, offset: y2Offset }], { tokens });
              layer.record(encoder, inPlace, inPlace, { tokens });
              group.record(encoder, groupInPlace, [{ buffer: groupInPlace, offset: 0 }, { buffer: groupInPlace, offset: y2Offset }], { tokens });
              // Into a caller's own compute pass too: the copy of x is a dispatch.
              const pass = encoder.beginComputePass({ label: 'arena test pass' });
              layer.record(pass, inPass, inPass, { tokens });
              pass.end();
              device.queue.submit([encoder.finish()]);
              const expected = new Uint8Array(await readBufferExclusive(device, yAlone as GPUBuffer, yBytes));
              const expectedSecond = new Uint8Array(await readBufferExclusive(device, ySecond as GPUBuffer, yBytes));
              const arenaBytes = new Uint8Array(await readBufferExclusive(device, arena, arena.size));
              expect(arenaBytes.subarray(yOffset, yOffset + yBytes), 'y beside x').toEqual(expected);
              expect(arenaBytes.subarray(y2Offset, y2Offset + yBytes), "the group's second y beside x").toEqual(expectedSecond);
              expect(new Uint8Array(await readBufferExclusive(device, grouped[0] as GPUBuffer, yBytes)), "the group's first y").toEqual(expected);
              // x itself is left as it was where no y covers it.
              expect(arenaBytes.subarray(xOffset, xOffset + xBytes), 'x unchanged').toEqual(new Uint8Array(xData.buffer, xData.byteOffset, xBytes));
              expect(new Uint8Array(await readBufferExclusive(device, inPlace, yBytes)), 'y written over x').toEqual(expected);
              expect(new Uint8Array(await readBufferExclusive(device, inPass, yBytes)), 'y written over x, in a pass').toEqual(expected);
              const groupBytes = new Uint8Array(await readBufferExclusive(device, groupInPlace, groupInPlace.size));
              expect(groupBytes.subarray(0, yBytes), "the group's first y over x").toEqual(expected);
              expect(groupBytes.subarray(y2Offset, y2Offset + yBytes), "the group's second y over x").toEqual(expectedSecond);
            } finally {
              for (const buffer of [xAlone, yAlone, ySecond, arena, inPlace, groupInPlace, inPass, ...grouped]) buffer?.destroy();
            }
          }
        } finally {
          group.destroy();
          layer.destroy();
          second.destroy();
          weight.destroy();
        }
      });
    }
  }

  it('alternating inputs (buffers and offsets) each get their own commands, also past maxPrepared', async () => {
    const q = quantize(w, { scheme: 'd3-q6', seed: 4, nonce: 11 }) as LatticeQuantizedMatrix;
    const gpuW = uploadLatticeMatrix(device, q);
    const layer = QuantizedLinear.create(device, gpuW as LinearWeight, { maxPrepared: 1 });
    const reference = QuantizedLinear.create(device, gpuW as LinearWeight);
    const stride = 4 * n + 256 - ((4 * n) % 256); // the second input at an aligned offset of its own
    const inputs = gaussianMatrix(n, 3, 12);
    const shared = createBufferWithData(device, 'x at two offsets', (() => {
      const data = new Float32Array((2 * stride) / 4);
      data.set(inputs.data.subarray(0, n), 0);
      data.set(inputs.data.subarray(n, 2 * n), stride / 4);
      return data;
    })(), STORAGE_USAGE);
    const other = createBufferWithData(device, 'x elsewhere', inputs.data.subarray(2 * n, 3 * n), STORAGE_USAGE);
    const xs: BufferSlice[] = [{ buffer: shared, offset: 0 }, { buffer: shared, offset: stride }, other];
    const ys = [0, 1, 2, 3, 4, 5].map((i) => createBuffer(device, `y ${i}`, 4 * out, STORAGE_USAGE));
    const expected = [0, 1, 2].map((i) => createBuffer(device, `expected ${i}`, 4 * out, STORAGE_USAGE));
    try {
      // x0, x1, x0, x2, x1, x0 into one output each: every call differs from the one before (offsets
      // alone, or buffers), and with maxPrepared 1 each evicts the one before.
      const order = [0, 1, 0, 2, 1, 0];
      for (const [call, i] of order.entries()) {
        const encoder = device.createCommandEncoder();
        layer.record(encoder, xs[i] as BufferSlice, ys[call] as GPUBuffer);
        device.queue.submit([encoder.finish()]);
      }
      const encoder = device.createCommandEncoder();
      xs.forEach((x, i) => reference.record(encoder, x, expected[i] as GPUBuffer));
      device.queue.submit([encoder.finish()]);
      expect(layer.preparedCount).toBe(1);
      const read = async (b: GPUBuffer): Promise<Float32Array> => new Float32Array(await readBufferExclusive(device, b, 4 * out));
      const wanted = await Promise.all(expected.map(read));
      expect(wanted[0]).not.toEqual(wanted[1]);
      for (const [call, i] of order.entries()) expect(await read(ys[call] as GPUBuffer), `call ${call} (x${i})`).toEqual(wanted[i]);
      // One y for every call, x at its two offsets in turn: the offset alone tells the commands apart.
      for (const i of [0, 1, 0]) {
        const again = device.createCommandEncoder();
        reference.record(again, xs[i] as BufferSlice, ys[0] as GPUBuffer);
        device.queue.submit([again.finish()]);
        expect(await read(ys[0] as GPUBuffer), `x${i} into one y`).toEqual(wanted[i]);
      }
    } finally {
      layer.destroy();
      reference.destroy();
      gpuW.destroy();
      for (const b of [shared, other, ...ys, ...expected]) b.destroy();
    }
  });

  it('records again with the same buffers without creating a buffer or a bind group; past maxPrepared (default 16) the least recently used set is dropped', async () => {
    const q = quantize(w, { scheme: 'e8-q16', seed: 4, nonce: 9 }) as LatticeQuantizedMatrix;
    const gpuW = uploadLatticeMatrix(device, q);
    const layer = QuantizedLinear.create(device, gpuW as LinearWeight, { bias, activations: 'f16' });
    const xBuffer = createBufferWithData(device, 'x', f16Matrix(gaussianMatrix(n, 1, 7)).bits, STORAGE_USAGE);
    const yBuffer = createBuffer(device, 'y', 2 * out, STORAGE_USAGE);
    const counts = { buffers: 0, bindGroups: 0 };
    const originalBuffer = device.createBuffer.bind(device);
    const originalBindGroup = device.createBindGroup.bind(device);
    device.createBuffer = (descriptor) => {
      counts.buffers++;
      return originalBuffer(descriptor);
    };
    device.createBindGroup = (descriptor) => {
      counts.bindGroups++;
      return originalBindGroup(descriptor);
    };
    try {
      const first = device.createCommandEncoder();
      layer.record(first, xBuffer, yBuffer);
      device.queue.submit([first.finish()]);
      expect(counts.buffers + counts.bindGroups).toBeGreaterThan(0);
      counts.buffers = 0;
      counts.bindGroups = 0;
      const again = device.createCommandEncoder();
      for (let step = 0; step < 50; step++) layer.record(again, xBuffer, yBuffer);
      device.queue.submit([again.finish()]);
      expect(counts).toEqual({ buffers: 0, bindGroups: 0 });
      expect(layer.preparedCount).toBe(1);
      // The least recently used set is dropped: with room for 2, recording into y0, y1, y0, y2 drops
      // y1's commands, not y0's (which a first-in-first-out cache would drop).
      const lru = QuantizedLinear.create(device, gpuW as LinearWeight, { bias, activations: 'f16', maxPrepared: 2 });
      const ys = [yBuffer, createBuffer(device, 'y1', 2 * out, STORAGE_USAGE), createBuffer(device, 'y2', 2 * out, STORAGE_USAGE)] as const;
      try {
        const encoder = device.createCommandEncoder();
        for (const i of [0, 1, 0, 2]) lru.record(encoder, xBuffer, ys[i] as GPUBuffer);
        counts.buffers = 0;
        counts.bindGroups = 0;
        lru.record(encoder, xBuffer, ys[0]);
        expect(counts, 'y0, used more recently than y1').toEqual({ buffers: 0, bindGroups: 0 });
        lru.record(encoder, xBuffer, ys[1]);
        expect(counts.bindGroups, 'y1, dropped').toBeGreaterThan(0);
        device.queue.submit([encoder.finish()]);
      } finally {
        lru.destroy();
        ys[1].destroy();
        ys[2].destroy();
      }
      // The default maxPrepared (16, as documented): 17 outputs at 17 offsets of one buffer keep 16 sets.
      const many = createBuffer(device, 'y at 17 offsets', 4 * out * 17, STORAGE_USAGE);
      try {
        const encoder = device.createCommandEncoder();
        for (let i = 0; i < 17; i++) {
          layer.record(encoder, xBuffer, { buffer: many, offset: 4 * out * i });
          expect(layer.preparedCount, `after ${i + 2} combinations`).toBe(Math.min(i + 2, 16));
        }
        device.queue.submit([encoder.finish()]);
      } finally {
        many.destroy();
      }
    } finally {
      device.createBuffer = originalBuffer;
      device.createBindGroup = originalBindGroup;
      layer.destroy();
      gpuW.destroy();
      xBuffer.destroy();
      yBuffer.destroy();
    }
  });

  it('a ten-layer step in one encoder and one submit equals the layers one by one', async () => {
    const width = 96;
    const layers = Array.from({ length: 10 }, (_, l) => {
      const q = quantize(gaussianMatrix(width, width, 20 + l), { scheme: 'd3-q6', seed: 3, nonce: 100 + l }) as LatticeQuantizedMatrix;
      return QuantizedLinear.create(device, uploadLatticeMatrix(device, q) as LinearWeight, { bias: new Float32Array(width).fill(0.01) });
    });
    const x = gaussianMatrix(width, 1, 30);
    const buffers = [createBufferWithData(device, 'h0', x.data, STORAGE_USAGE), createBuffer(device, 'h1', 4 * width, STORAGE_USAGE)];
    try {
      // One by one, reading back between layers.
      let h = x;
      for (const layer of layers) h = { rows: width, cols: 1, data: await run(layer, h) };
      // All in one encoder, ping-ponging two buffers.
      const encoder = device.createCommandEncoder({ label: 'decode step' });
      layers.forEach((layer, l) => layer.record(encoder, buffers[l % 2] as GPUBuffer, buffers[(l + 1) % 2] as GPUBuffer));
      device.queue.submit([encoder.finish()]);
      const final = new Float32Array(await readBufferExclusive(device, buffers[layers.length % 2] as GPUBuffer, 4 * width));
      expect(final).toEqual(h.data);
    } finally {
      for (const layer of layers) {
        layer.destroy();
        (layer.weight as { destroy(): void }).destroy();
      }
      for (const buffer of buffers) buffer.destroy();
    }
  });

  // The README promises universal and weight-only weights the same bits at any batch size with f32
  // inputs too (a prefill's outputs equal the decode steps'); the int8-input paths are checked in
  // largeSplits.test.ts, and the tolerance tests above would pass a batched kernel that sums in
  // another order. Twin: each token recorded alone (the one-token kernels), at its own offsets. (f16
  // outputs round most one-ulp f32 differences away: the f32 cases are the sharp ones.)
  const batchForms = {
    'e8-q16': () => uploadLatticeMatrix(device, quantize(w, { scheme: 'e8-q16', seed: 4, nonce: 9 }) as LatticeQuantizedMatrix),
    'd3-q6, centred': () => uploadLatticeMatrix(device, quantize(w, { scheme: 'd3-q6', seed: 4, nonce: 9, center: true }) as LatticeQuantizedMatrix),
    'weight-only RTN': () => uploadWeightOnly(device, quantizeWeights(w, null, { method: 'rtn', rate: 4 })),
  } as const;
  for (const activations of ['f32', 'f16'] as const) {
    it.each(Object.keys(batchForms) as (keyof typeof batchForms)[])(`%s, ${activations} activations, no int8Inputs: 8 tokens in one record give each token the bits it gets alone`, async (form) => {
      const tokens = 8;
      const weight = batchForms[form]();
      const layer = QuantizedLinear.create(device, weight as LinearWeight, { bias, activations });
      const bytes = activations === 'f16' ? 2 : 4;
      const x = gaussianMatrix(n, tokens, 12);
      const xBuffer = createBufferWithData(device, 'test x', activations === 'f16' ? f16Matrix(x).bits : x.data, STORAGE_USAGE);
      const [batched, alone] = layerOutputs([layer, layer], tokens, 'batch') as [GPUBuffer, GPUBuffer];
      try {
        const encoder = device.createCommandEncoder({ label: 'batch of 8, and each token alone' });
        layer.record(encoder, xBuffer, batched, { tokens });
        for (let t = 0; t < tokens; t++) layer.record(encoder, { buffer: xBuffer, offset: t * n * bytes }, { buffer: alone, offset: t * out * bytes }, { tokens: 1 });
        device.queue.submit([encoder.finish()]);
        await expectSameOutputs([layer], tokens, [alone], [batched], `${form}, ${activations}`);
      } finally {
        layer.destroy();
        weight.destroy();
        xBuffer.destroy();
        batched.destroy();
        alone.destroy();
      }
    });
  }

  it('centred universal layers of one seed share one recording of the per-call sums (Σx for the means) in a group, with the bits of the layers alone', async () => {
    const weights = [9, 10].map((nonce) => uploadLatticeMatrix(device, quantize(w, { scheme: 'e8-q16', seed: 1, nonce, center: true }) as LatticeQuantizedMatrix));
    const layers = weights.map((weight) => QuantizedLinear.create(device, weight as LinearWeight));
    const group = QuantizedLinear.group(layers);
    const xBuffer = createBufferWithData(device, 'centred group x', gaussianMatrix(n, 1, 41).data, STORAGE_USAGE);
    const single = layerOutputs(layers, 1, 'centred single');
    const grouped = layerOutputs(layers, 1, 'centred grouped');
    try {
      // Where the products take the sums themselves (fusedFinishSupported), they cannot for centred W.
      expect(group.callSumsPerRecord).toBe(1);
      const encoder = device.createCommandEncoder({ label: 'centred group test' });
      layers.forEach((layer, i) => layer.record(encoder, xBuffer, single[i] as GPUBuffer));
      group.record(encoder, xBuffer, grouped);
      device.queue.submit([encoder.finish()]);
      await expectSameOutputs(layers, 1, single, grouped, 'centred group');
    } finally {
      group.destroy();
      for (const layer of layers) layer.destroy();
      for (const resource of [...weights, xBuffer, ...single, ...grouped]) resource.destroy();
    }
  });

  for (const activations of ['f32', 'f16'] as const) {
    it(`a group (one rotation per seed) equals its layers recorded one by one, bit for bit (${activations})`, async () => {
      const lattice = (scheme: 'd3-q6' | 'e8-q16' | 'd3-q6-deterministic' | 'e8-q16-deterministic', seed: number): LatticeQuantizedMatrix =>
        quantize(w, { scheme, seed, ...(scheme.endsWith('deterministic') ? {} : { nonce: 9 + seed }) }) as LatticeQuantizedMatrix;
      const weights = [
        uploadLatticeMatrix(device, lattice('d3-q6', 1)),
        uploadLatticeMatrix(device, lattice('e8-q16', 1)),
        uploadLatticeMatrix(device, lattice('d3-q6', 1)),
        uploadLatticeMatrix(device, lattice('d3-q6-deterministic', 1)),
        uploadLatticeMatrix(device, lattice('e8-q16', 2)), // another seed: a second rotation
        uploadWeightOnly(device, quantizeWeights(w, null, { method: 'rtn', rate: 4 })), // unrotated (n = 300 is no Hadamard length)
        uploadLatticeMatrix(device, lattice('d3-q6-deterministic', 1)), // int8 inputs (D3 quads: 4 groups of 12 per quad of 16 blocks): its own rounding of seed 1's x̃
        uploadLatticeMatrix(device, lattice('d3-q6', 2)), // int8 inputs of the second seed: a second rounding
        uploadLatticeMatrix(device, lattice('e8-q16', 1)), // shares layer 1's rotation and per-call sums
        uploadLatticeMatrix(device, lattice('e8-q16-deterministic', 1)), // int8 inputs (E8 residues): its own rounding (groups of 32) of seed 1's x̃
      ];
      const int8Layers = new Set([2, 6, 7, 9]);
      const layers = weights.map((weight, i) =>
        QuantizedLinear.create(device, weight as LinearWeight, { activations, maxTokens: 4, bias: i % 2 === 0 ? bias : null, int8Inputs: int8Layers.has(i) ? dotPathFor(suite.context.features) : null }),
      );
      const group = QuantizedLinear.group(layers);
      const bytes = activations === 'f16' ? 2 : 4;
      const x = gaussianMatrix(n, 3, 40);
      const xBuffer = createBufferWithData(device, 'group x', activations === 'f16' ? f16Matrix(x).bits : x.data, STORAGE_USAGE);
      const single = layerOutputs(layers, 3, 'single');
      const grouped = layerOutputs(layers, 3, 'grouped');
      try {
        expect(group.rotationsPerRecord).toBe(2);
        expect(group.int8RoundingsPerRecord).toBe(4);
        // The universal f32-input layers' per-call sums: taken by the products themselves where they
        // write Y (the layers are not centred), else recorded once per lattice and seed.
        const fusedSums = fusedFinishSupported(device);
        expect(group.callSumsPerRecord).toBe(fusedSums ? 0 : 3);
        const encoder = device.createCommandEncoder({ label: 'group test' });
        layers.forEach((layer, i) => layer.record(encoder, xBuffer, single[i] as GPUBuffer, { tokens: 3 }));
        group.record(encoder, xBuffer, grouped, { tokens: 3 });
        group.record(encoder, xBuffer, grouped, { tokens: 3 }); // replayed: the same commands again
        device.queue.submit([encoder.finish()]);
        await expectSameOutputs(layers, 3, single, grouped, 'group');
        // Recorded into the caller's compute pass (every kind here: dispatches only), the layers one by
        // one and the group after them in one pass: the same bytes.
        const inPass = layerOutputs(layers, 3, 'in pass');
        const groupInPass = layerOutputs(layers, 3, 'group in pass');
        const passEncoder = device.createCommandEncoder({ label: 'group test, one pass' });
        const pass = passEncoder.beginComputePass({ label: 'caller pass' });
        layers.forEach((layer, i) => layer.record(pass, xBuffer, inPass[i] as GPUBuffer, { tokens: 3 }));
        group.record(pass, xBuffer, groupInPass, { tokens: 3 });
        pass.end();
        device.queue.submit([passEncoder.finish()]);
        await expectSameOutputs(layers, 3, single, inPass, 'one by one in a pass');
        await expectSameOutputs(layers, 3, single, groupInPass, 'group in a pass');
        for (const buffer of [...inPass, ...groupInPass]) buffer.destroy();
        // Recording into an encoder that counts dispatches by the label of the pipeline they run
        // (prepared commands merge a layer's passes, so pass labels would not say which kernel ran).
        // Rotations: the group makes one per distinct seed of its lattice layers (2) where the layers
        // one by one make one each (9); the weight-only layer here is unrotated. D3 int8 roundings: one
        // per D3 int8 layer one by one (3), in the group one per seed for the universal layers (2) and
        // one for the D3 quad layer (its 4 groups per quad of 16 blocks: a key of its own); the E8
        // residue layer's (groups of 32) one in both; the products are the same four. The universal f32-input layers' per-call sums, where they
        // are recorded: one per layer one by one (4), one per lattice and seed in the group (3: layers
        // 1 and 8 share).
        const count = (record: (encoder: GPUCommandEncoder) => void): ((prefix: string) => number) => {
          const dispatches = dispatchesByPipeline(device, record);
          return (prefix) => [...dispatches].filter(([label]) => label.startsWith(prefix)).reduce((sum, [, n]) => sum + n, 0);
        };
        const one = count((encoder) => layers.forEach((layer, i) => layer.record(encoder, xBuffer, single[i] as GPUBuffer, { tokens: 3 })));
        const all = count((encoder) => group.record(encoder, xBuffer, grouped, { tokens: 3 }));
        const perRotation = all('hadamard') / 2;
        expect(perRotation).toBeGreaterThanOrEqual(1);
        expect(one('hadamard')).toBe(9 * perRotation);
        const callSums = (counted: (prefix: string) => number): number => counted('universal gemv finish D3: per-call sums') + counted('universal gemv finish E8: per-call sums');
        expect(callSums(one)).toBe(fusedSums ? 0 : 4);
        expect(callSums(all)).toBe(fusedSums ? 0 : 3);
        // Finishing passes: none where the product writes Y itself, else one per layer.
        expect(all('universal gemv finish D3') + all('universal gemv finish E8') - callSums(all)).toBe(fusedFinishSupported(device) ? 0 : 4);
        // Where the rotation takes one pass it rounds x̃ to int8 itself (dispatchRotatedInputsI8): no
        // rounding dispatch of its own.
        const fused = rotationRoundsInPass(device, n);
        expect(one('gemv int8 inputs')).toBe(fused ? 0 : 3);
        // In the group the D3 quad layer's rounding is a dispatch of its own (seed 1's rotation rounds
        // layer 2's groups in its pass).
        expect(all('gemv int8 inputs')).toBe(fused ? 1 : 3);
        // The E8 residue layer: alone, its rotation rounds its groups of 32 where it takes one pass; in
        // the group, the seed's rotation rounds layer 2's groups of 12, and the E8 layer rounds its own.
        expect(one('e8 inputs to int8')).toBe(fused ? 0 : 1);
        expect(all('e8 inputs to int8')).toBe(1);
        const int8Products = (counted: (prefix: string) => number): number =>
          counted('universal gemv (int8 inputs') + counted('d3 quad gemv (int8 inputs') + counted('e8 residue gemv (int8 inputs');
        expect(int8Products(one)).toBe(4);
        expect(int8Products(all)).toBe(4);
        // f16 activations are widened to f32 only for lattice layers that read x itself in f32: none
        // here (the rotations and the weight-only GEMV read f16); a centred layer (Σx) needs one
        // conversion, once for its group.
        expect(one('activation io (f16_to_f32)')).toBe(0);
        expect(all('activation io (f16_to_f32)')).toBe(0);
        const centredWeight = uploadLatticeMatrix(device, quantize(w, { scheme: 'd3-q6', seed: 1, nonce: 10, center: true }) as LatticeQuantizedMatrix);
        const centred = QuantizedLinear.create(device, centredWeight as LinearWeight, { activations, maxTokens: 4 });
        const centredOut = createBuffer(device, 'centred y', bytes * out * 3, STORAGE_USAGE);
        const withCentred = QuantizedLinear.group([layers[0] as QuantizedLinear, centred, layers[1] as QuantizedLinear]);
        expect(count((encoder) => withCentred.record(encoder, xBuffer, [grouped[0] as GPUBuffer, centredOut, grouped[1] as GPUBuffer], { tokens: 3 }))('activation io (f16_to_f32)')).toBe(activations === 'f16' ? 1 : 0);
        withCentred.destroy();
        centred.destroy();
        centredWeight.destroy();
        centredOut.destroy();
        // Refusals, with the reason named.
        expect(() => QuantizedLinear.group([])).toThrow(/non-empty array/);
        expect(() => QuantizedLinear.group([layers[0] as QuantizedLinear, layers[0] as QuantizedLinear])).toThrow(/appears twice/);
        const encoder2 = device.createCommandEncoder();
        expect(() => group.record(encoder2, xBuffer, grouped.slice(1))).toThrow(/one output per layer/);
        expect(() => group.record(encoder2, xBuffer, grouped, { tokens: 5 })).toThrow(/tokens must be/);
        const other = QuantizedLinear.create(device, uploadWeightOnly(device, quantizeWeights(gaussianMatrix(256, out, 5), null, { method: 'rtn', rate: 4 })));
        // By position too: both layers have the default label.
        expect(() => QuantizedLinear.group([layers[0] as QuantizedLinear, other])).toThrow(/^QuantizedLinear\.group: layer 1 \("quantized linear"\) has inFeatures 256, layer 0 \("quantized linear"\) \d+$/);
        other.destroy();
        group.destroy();
        expect(() => group.record(encoder2, xBuffer, grouped)).toThrow(/destroyed/);
      } finally {
        group.destroy();
        for (const layer of layers) layer.destroy();
        for (const weight of weights) weight.destroy();
        for (const buffer of [xBuffer, ...single, ...grouped]) buffer.destroy();
      }
    });
  }

  for (const activations of ['f32', 'f16'] as const) {
    it(`weight-only layers with a Hadamard rotation share x̃ in a group, with each other and with lattice layers of their seed (${activations})`, async () => {
      const n256 = 256;
      const w256 = gaussianMatrix(n256, out, 7);
      const weightOnly = (seed: number): LinearWeight => uploadWeightOnly(device, quantizeWeights(w256, null, { method: 'rtn', rate: 4, rotate: true, seed }));
      const weights: LinearWeight[] = [
        weightOnly(1),
        uploadLatticeMatrix(device, quantize(w256, { scheme: 'd3-q6-deterministic', seed: 1 }) as LatticeQuantizedMatrix) as LinearWeight, // int8 inputs: its rotation rounds x̃ too
        weightOnly(1),
        weightOnly(3), // another seed: a second rotation
        uploadLatticeMatrix(device, quantize(w256, { scheme: 'e8-q16', seed: 3, nonce: 5 }) as LatticeQuantizedMatrix) as LinearWeight,
      ];
      const layers = weights.map((weight, i) => QuantizedLinear.create(device, weight, { activations, maxTokens: 2, bias: i % 2 === 1 ? bias : null, int8Inputs: i === 1 ? dotPathFor(suite.context.features) : null }));
      const group = QuantizedLinear.group(layers);
      const bytes = activations === 'f16' ? 2 : 4;
      const x = gaussianMatrix(n256, 2, 41);
      const xBuffer = createBufferWithData(device, 'weight-only group x', activations === 'f16' ? f16Matrix(x).bits : x.data, STORAGE_USAGE);
      const single = layerOutputs(layers, 2, 'single');
      const grouped = layerOutputs(layers, 2, 'grouped');
      try {
        expect(group.rotationsPerRecord).toBe(2);
        const encoder = device.createCommandEncoder({ label: 'weight-only group test' });
        layers.forEach((layer, i) => layer.record(encoder, xBuffer, single[i] as GPUBuffer, { tokens: 2 }));
        group.record(encoder, xBuffer, grouped, { tokens: 2 });
        device.queue.submit([encoder.finish()]);
        await expectSameOutputs(layers, 2, single, grouped, 'group');
        // The weight-only layers' outputs against the CPU twin (decode()·x), so equal bytes are right bytes.
        const q = quantizeWeights(w256, null, { method: 'rtn', rate: 4, rotate: true, seed: 1 });
        const decoded = q.decode();
        const xValues = activations === 'f16' ? f16Matrix(x).values : x;
        const raw = await readBufferExclusive(device, grouped[2] as GPUBuffer, bytes * out * 2);
        const y = activations === 'f16' ? toFloat32Matrix({ rows: out, cols: 2, data: new Uint16Array(raw) }).data : new Float32Array(raw);
        const expected = Float64Array.from({ length: out * 2 }, (_, k) => {
          const t = Math.floor(k / out);
          const j = k % out;
          let sum = 0;
          for (let i = 0; i < n256; i++) sum += (decoded.data[j * n256 + i] as number) * (xValues.data[t * n256 + i] as number);
          return sum;
        });
        expectClose(y, expected, Math.sqrt(n256) * 40, activations === 'f16');
        // Rotations: one per seed in the group (2); one per rotated layer one by one (5).
        const hadamards = (record: (encoder: GPUCommandEncoder) => void): number =>
          [...dispatchesByPipeline(device, record)].filter(([label]) => label.startsWith('hadamard')).reduce((sum, [, count]) => sum + count, 0);
        const perRotation = hadamards((encoder) => group.record(encoder, xBuffer, grouped, { tokens: 2 })) / 2;
        expect(perRotation).toBeGreaterThanOrEqual(1);
        expect(hadamards((encoder) => layers.forEach((layer, i) => layer.record(encoder, xBuffer, single[i] as GPUBuffer, { tokens: 2 })))).toBe(5 * perRotation);
      } finally {
        group.destroy();
        for (const layer of layers) layer.destroy();
        for (const weight of weights) (weight as { destroy(): void }).destroy();
        for (const buffer of [xBuffer, ...single, ...grouped]) buffer.destroy();
      }
    });
  }

  it('refuses what it cannot do, with the argument named', () => {
    const q = quantize(w, { scheme: 'e8-q16', seed: 4, nonce: 9 }) as LatticeQuantizedMatrix;
    const gpuW = uploadLatticeMatrix(device, q);
    const layer = QuantizedLinear.create(device, gpuW as LinearWeight, { maxTokens: 2 });
    const small = createBuffer(device, 'small', 16, STORAGE_USAGE);
    const y = createBuffer(device, 'y', 4 * out * 4, STORAGE_USAGE);
    try {
      const encoder = device.createCommandEncoder();
      expect(() => layer.record(encoder, small, y)).toThrow(/x needs/);
      expect(() => layer.record(encoder, small, y, { tokens: 3 })).toThrow(/tokens must be/);
      // The range's other end and non-integers: refused as given (0 is not taken for the default 1).
      for (const bad of [0, -1, 1.5, Number.NaN]) {
        expect(() => layer.record(encoder, small, y, { tokens: bad })).toThrow(new RegExp(`^tokens must be an integer in \\[1, 2\\] \\(maxTokens\\), got ${String(bad)}$`));
      }
      expect(() => QuantizedLinear.create(device, gpuW as LinearWeight, { bias: new Float32Array(3) })).toThrow(/bias has 3 entries/);
      // A non-finite bias would make every output of its feature non-finite, for every x.
      for (const bad of [Number.NaN, Number.POSITIVE_INFINITY]) {
        const bias = new Float32Array(out);
        bias[out - 1] = bad;
        expect(() => QuantizedLinear.create(device, gpuW as LinearWeight, { bias })).toThrow(/^bias has a non-finite entry$/);
      }
      // A group takes its layers' smallest maxTokens.
      const wider = QuantizedLinear.create(device, gpuW as LinearWeight, { maxTokens: 4 });
      expect(() => QuantizedLinear.group([wider, layer]).record(encoder, small, [y, y], { tokens: 3 })).toThrow(/^tokens must be an integer in \[1, 2\] \(the layers' smallest maxTokens\), got 3$/);
      expect(() => QuantizedLinear.group([wider, layer]).record(encoder, small, [y, y], { tokens: 0 })).toThrow(/^tokens must be an integer in \[1, 2\] \(the layers' smallest maxTokens\), got 0$/);
      wider.destroy();
      // Universal E8 takes int8 inputs through the point form (it was refused before the point GEMV).
      QuantizedLinear.create(device, gpuW as LinearWeight, { int8Inputs: 'plain' }).destroy();
      // Deterministic E8 takes int8 inputs through the residue form, for q = 16 only.
      const e8q8 = { kind: 'lattice', mode: 'deterministic', lattice: 'E8', q: 8, overload: { kind: 'betaSet', betas: [0.2, 0.4] } } as const;
      const e8Deterministic = uploadLatticeMatrix(device, quantize(w, { scheme: e8q8, seed: 4 }) as LatticeQuantizedMatrix);
      expect(() => QuantizedLinear.create(device, e8Deterministic as LinearWeight, { int8Inputs: 'plain' })).toThrow(/int8Inputs: the residue form is for E8 with q = 16/);
      e8Deterministic.destroy();
      expect(() => QuantizedLinear.create(device, gpuW as LinearWeight, { int8Inputs: 'fast' as never })).toThrow(/int8Inputs must be/);
    } finally {
      layer.destroy();
      gpuW.destroy();
      small.destroy();
      y.destroy();
    }
  });

  it('an x or y too small for the layer is refused with what its length counts (a weight quantized with rows and cols swapped shows)', () => {
    // PyTorch's (out, in) = (40, 300) read as rows = out, cols = in: a layer of 40 inputs and 300 outputs.
    const swapped = uploadLatticeMatrix(device, quantize(gaussianMatrix(out, n, 2), { scheme: 'e8-q16', seed: 4, nonce: 9 }) as LatticeQuantizedMatrix);
    const layer = QuantizedLinear.create(device, swapped as LinearWeight, { maxTokens: 2 });
    const f16Layer = QuantizedLinear.create(device, swapped as LinearWeight, { activations: 'f16' });
    const xBuffer = createBuffer(device, 'swapped x', 4 * n, STORAGE_USAGE);
    const yBuffer = createBuffer(device, 'swapped y', 4 * out, STORAGE_USAGE);
    try {
      const encoder = device.createCommandEncoder();
      // The app's x (300 inputs) is more than the layer reads; its y (40 outputs) is what the layer cannot write.
      expect(() => layer.record(encoder, xBuffer, yBuffer)).toThrow(`y needs ${4 * n} bytes at offset 0, but its buffer has ${4 * out} (outFeatures ${n} × 1 token × 4 bytes)`);
      expect(() => f16Layer.record(encoder, xBuffer, { buffer: yBuffer, offset: 0, size: 2 * out })).toThrow(`y needs ${2 * n} bytes, but its size is ${2 * out} (outFeatures ${n} × 1 token × 2 bytes)`);
      // Two tokens of x need 2 × 40 inputs: 320 bytes, in a buffer of 300 × 4 … of which a slice of 256.
      expect(() => layer.record(encoder, { buffer: xBuffer, offset: 4 * n - 256 }, yBuffer, { tokens: 2 })).toThrow(`x needs ${8 * out} bytes at offset ${4 * n - 256}, but its buffer has ${4 * n} (inFeatures ${out} × 2 tokens × 4 bytes)`);
      expect(() => layer.record(encoder, { buffer: xBuffer, size: 256 }, yBuffer, { tokens: 2 })).toThrow(`x needs ${8 * out} bytes, but its size is 256 (inFeatures ${out} × 2 tokens × 4 bytes)`);
      // A refusal without a note (a bias's) ends at the buffer's size.
      expect(() => QuantizedLinear.create(device, swapped as LinearWeight, { bias: { buffer: xBuffer, offset: 16 } })).toThrow(new RegExp(`^bias needs ${4 * n} bytes at offset 16, but its buffer has ${4 * n}$`));
    } finally {
      layer.destroy();
      f16Layer.destroy();
      swapped.destroy();
      xBuffer.destroy();
      yBuffer.destroy();
    }
  });

  it('slices: { buffer, offset, size } bounds what a layer reads and writes; a slice without a buffer and overlapping outputs in a group are refused', async () => {
    const q = quantize(w, { scheme: 'd3-q6', seed: 4, nonce: 9 }) as LatticeQuantizedMatrix;
    const gpuW = uploadLatticeMatrix(device, q);
    const layers = [QuantizedLinear.create(device, gpuW as LinearWeight), QuantizedLinear.create(device, gpuW as LinearWeight, { bias })];
    const [layer, biased] = layers as [QuantizedLinear, QuantizedLinear];
    const group = QuantizedLinear.group(layers);
    const x = gaussianMatrix(n, 1, 11);
    const xBuffer = createBufferWithData(device, 'slices x', x.data, STORAGE_USAGE);
    const shared = createBuffer(device, 'slices ys', 4 * out * 2 + 256, STORAGE_USAGE);
    const encoder = device.createCommandEncoder({ label: 'slices test' });
    try {
      // A slice with no buffer: a LatticeMatmulError naming it, not a TypeError from the cache's keys.
      expect(() => layer.record(encoder, { buffer: undefined as never }, shared)).toThrow(/x\.buffer must be a GPUBuffer, got undefined/);
      expect(() => layer.record(encoder, xBuffer, { buffer: null as never, offset: 0 })).toThrow(/y\.buffer must be a GPUBuffer, got null/);
      expect(() => group.record(encoder, xBuffer, [{ buffer: 7 as never }, shared])).toThrow(/ys\[0\]\.buffer must be a GPUBuffer, got 7/);
      expect(() => layer.record(encoder, { buffer: xBuffer, size: -4 }, shared)).toThrow(/x size must be a non-negative integer/);
      // A GPUBufferBinding-style size is a bound: too small is refused, enough is used; also right after
      // the same buffer and offset were recorded with a size that fits (the size is part of the commands' key).
      layer.record(encoder, { buffer: xBuffer, offset: 0, size: 4 * n }, shared);
      expect(() => layer.record(encoder, { buffer: xBuffer, offset: 0, size: 4 * n - 4 }, shared)).toThrow(new RegExp(`x needs ${4 * n} bytes, but its size is ${4 * n - 4}`));
      expect(() => layer.record(encoder, xBuffer, { buffer: shared, offset: 0, size: 4 * out - 4 })).toThrow(new RegExp(`y needs ${4 * out} bytes, but its size is ${4 * out - 4}`));
      // A size past the buffer's end is refused, as WebGPU refuses such a binding (it was taken while what the layer reads fit).
      expect(() => layer.record(encoder, { buffer: xBuffer, size: 4 * n + 4 }, shared)).toThrow(new RegExp(`x: ${4 * n + 4} bytes at offset 0 go past the end of its buffer \\(${4 * n} bytes\\)`));
      expect(() => layer.record(encoder, xBuffer, { buffer: shared, offset: 256, size: 4 * out * 2 + 4 })).toThrow(/y: \d+ bytes at offset 256 go past the end of its buffer/);
      // Overlapping outputs in a group: one layer's result would replace the other's.
      expect(() => group.record(encoder, xBuffer, [shared, shared])).toThrow(/ys\[0\] \(bytes 0…160\) and ys\[1\] \(bytes 0…160\) overlap/);
      expect(() => group.record(encoder, xBuffer, [{ buffer: shared, offset: 16 }, shared])).toThrow(/ys\[0\] .* and ys\[1\] .* overlap/);
      // Side by side in one buffer (and a size that fits exactly) is fine, and each range holds its layer's output.
      group.record(encoder, xBuffer, [{ buffer: shared, offset: 0, size: 4 * out }, { buffer: shared, offset: 4 * out + 256, size: 4 * out }]);
      device.queue.submit([encoder.finish()]);
      const raw = new Float32Array(await readBufferExclusive(device, shared, shared.size));
      const reference = matvecAT(q, x).data;
      expectClose(raw.subarray(0, out), reference, Math.sqrt(n) * 40, false);
      expectClose(raw.subarray(out + 64, 2 * out + 64), Float32Array.from(reference, (v, j) => v + (bias[j] as number)), Math.sqrt(n) * 40, false);
      // A bias of the wrong array type names what it takes.
      expect(() => QuantizedLinear.create(device, gpuW as LinearWeight, { bias: new Float64Array(out) as never })).toThrow(/bias must be a Float32Array, a Uint16Array \(with biasFormat\), a GPUBuffer, a slice \{ buffer, offset \} or null, got a Float64Array/);
      // @ts-expect-error a Uint16Array bias without its format does not compile (LinearOptionsFor)
      expect(() => QuantizedLinear.create(device, gpuW as LinearWeight, { bias: new Uint16Array(out) })).toThrow(/a Uint16Array bias holds f16 or bf16 bits: say which with biasFormat: 'f16' or 'bf16'/);
      expect(() => QuantizedLinear.create(device, gpuW as LinearWeight, { bias: Array.from(bias) as never })).toThrow(/bias must be a Float32Array, a Uint16Array \(with biasFormat\), a GPUBuffer, a slice \{ buffer, offset \} or null, got an array/);
      expect(biased.outFeatures).toBe(out);
    } finally {
      group.destroy();
      for (const l of layers) l.destroy();
      gpuW.destroy();
      xBuffer.destroy();
      shared.destroy();
    }
  });

  // Every GEMV family reads the bias through the same offset argument: one weight of each.
  const biasSliceCases = [
    ['d3-q6', {}],
    ['d3-q6', { int8Inputs: 'plain' }],
    ['d3-q6-deterministic', { int8Inputs: 'plain' }],
    ['e8-q16', { activations: 'f16' }],
    ['e8-q16-deterministic', { int8Inputs: 'plain' }],
    ['weight-only rtn', {}],
  ] as const;
  it.each(biasSliceCases)('biases as slices of one buffer (offsets not aligned to 256) give the bytes of uploaded biases and outlive the layers; a slice too small is refused (%s, %j)', async (scheme, layerOptions) => {
    const gpuW =
      scheme === 'weight-only rtn'
        ? uploadWeightOnly(device, quantizeWeights(w, null, { method: 'rtn', rate: 4 }))
        : uploadLatticeMatrix(device, quantize(w, { scheme, seed: 4, ...(scheme.endsWith('deterministic') ? {} : { nonce: 9 }) }) as LatticeQuantizedMatrix);
    const other = Float32Array.from(bias, (b) => -2 * b + 1);
    const biases = createBuffer(device, 'biases side by side', 4 * (12 + 2 * out), STORAGE_USAGE);
    device.queue.writeBuffer(biases, 4 * 4, bias);
    device.queue.writeBuffer(biases, 4 * (8 + out), other);
    const layers = [
      QuantizedLinear.create(device, gpuW as LinearWeight, { bias, ...layerOptions }),
      QuantizedLinear.create(device, gpuW as LinearWeight, { bias: other, ...layerOptions }),
      QuantizedLinear.create(device, gpuW as LinearWeight, { bias: { buffer: biases, offset: 4 * 4 }, ...layerOptions }),
      QuantizedLinear.create(device, gpuW as LinearWeight, { bias: { buffer: biases, offset: 4 * (8 + out), size: 4 * out }, ...layerOptions }),
    ];
    const xValues = gaussianMatrix(n, 2, 31);
    const x = createBufferWithData(device, 'bias slices x', 'activations' in layerOptions ? f16Matrix(xValues).bits : xValues.data, STORAGE_USAGE);
    const ys = layerOutputs(layers, 2, 'bias slices y');
    try {
      const encoder = device.createCommandEncoder({ label: 'bias slices' });
      layers.forEach((layer, i) => layer.record(encoder, x, ys[i] as GPUBuffer, { tokens: 2 }));
      device.queue.submit([encoder.finish()]);
      await expectSameOutputs([layers[0], layers[1]] as QuantizedLinear[], 2, [ys[0], ys[1]] as GPUBuffer[], [ys[2], ys[3]] as GPUBuffer[], 'bias slice');
      expect(() => QuantizedLinear.create(device, gpuW as LinearWeight, { bias: { buffer: biases, offset: 4 * (13 + out) } })).toThrow(new RegExp(`bias needs ${4 * out} bytes at offset ${4 * (13 + out)}, but its buffer has ${biases.size}`));
      expect(() => QuantizedLinear.create(device, gpuW as LinearWeight, { bias: { buffer: biases, offset: 0, size: 4 * out - 4 } })).toThrow(new RegExp(`bias needs ${4 * out} bytes, but its size is ${4 * out - 4}`));
      expect(() => QuantizedLinear.create(device, gpuW as LinearWeight, { bias: { buffer: biases, offset: 2 } })).toThrow(/bias offset must be a non-negative multiple of 4, got 2/);
      // A misspelled key would have read the slice at byte 0 (and a y slice written there).
      expect(() => QuantizedLinear.create(device, gpuW as LinearWeight, { bias: { buffer: biases, ofset: 4 * 4 } as BufferSlice })).toThrow(/bias: unknown option 'ofset' \(did you mean 'offset'\?\)/);
      expect(() => (layers[0] as QuantizedLinear).record(device.createCommandEncoder(), x, { buffer: ys[0] as GPUBuffer, ofset: 256 } as BufferSlice, { tokens: 2 })).toThrow(/unknown option 'ofset'/);
      // Values instead of a buffer: said so, not "unknown option '0'" (a typed array has a .buffer too).
      expect(() => (layers[0] as QuantizedLinear).record(device.createCommandEncoder(), new Float32Array(8) as never, ys[0] as GPUBuffer, { tokens: 2 })).toThrow(
        /^x must be a GPUBuffer or \{ buffer, offset \}, got .*Float32Array.*: write the values into a GPUBuffer \(device\.queue\.writeBuffer\) and pass that$/,
      );
      // The caller's bias buffer stays the caller's: destroying the layers that read slices of it leaves it usable.
      for (const layer of layers.slice(2)) layer.destroy();
      expect(new Float32Array(await readBufferExclusive(device, biases, 4 * (4 + out))).subarray(4)).toEqual(bias);
    } finally {
      for (const layer of layers) layer.destroy();
      for (const buffer of [x, biases, ...ys]) buffer.destroy();
      gpuW.destroy();
    }
  });

  it("refuses a y that is a buffer the layer, or any member of its group, reads: a weight's (lattice or weight-only) or a bias", () => {
    const lattice = uploadLatticeMatrix(device, quantize(w, { scheme: 'd3-q6', seed: 4, nonce: 9 }));
    const other = uploadLatticeMatrix(device, quantize(w, { scheme: 'd3-q6', seed: 4, nonce: 10 }));
    const weightOnly = uploadWeightOnly(device, quantizeWeights(w, null, { method: 'rtn', rate: 4 }), { layout: 'packed' }); // every buffer, the layout table too
    const biasBuffer = createBufferWithData(device, 'aliasing bias', bias, STORAGE_USAGE);
    const layers = [QuantizedLinear.create(device, lattice), QuantizedLinear.create(device, other, { bias: biasBuffer }), QuantizedLinear.create(device, weightOnly)];
    const [first, second, third] = layers as [QuantizedLinear, QuantizedLinear, QuantizedLinear];
    const group = QuantizedLinear.group([first, second]);
    const xBuffer = createBufferWithData(device, 'aliasing x', gaussianMatrix(n, 1, 12).data, STORAGE_USAGE);
    const y = createBuffer(device, 'aliasing y', 4 * out, STORAGE_USAGE);
    const encoder = device.createCommandEncoder({ label: 'aliasing test' });
    try {
      expect(() => first.record(encoder, xBuffer, lattice.codes)).toThrow(/^y is the weight's codes buffer: the result would overwrite it/);
      // Before: a weight-only weight's buffer was accepted, and WebGPU rejected the caller's whole submission.
      for (const field of ['codes', 'codeLayout', 'columnScales', 'rowScales'] as const) {
        const target = weightOnly[field];
        if (target === null) throw new Error('a packed matrix has its layout table');
        expect(() => third.record(encoder, xBuffer, target)).toThrow(new RegExp(`^y is the weight's ${field} buffer`));
        // The low-level dispatch too (before: recorded, and WebGPU rejected the caller's submission).
        const scratch = new GpuScratch(device);
        expect(() => weightOnly.dispatch(encoder, scratch, { x: xBuffer, y: target })).toThrow(new RegExp(`^WeightOnlyGpuMatrix.dispatch: y is the matrix's ${field} buffer`));
        scratch.destroy();
      }
      // Before: ys[0] = the second member's codes or bias was accepted; its y came out wrong, and its weight stayed corrupt.
      expect(() => group.record(encoder, xBuffer, [other.codes, y])).toThrow(/^ys\[0\] is layer 1's weight's codes buffer/);
      expect(() => group.record(encoder, xBuffer, [biasBuffer, y])).toThrow(/^ys\[0\] is layer 1's bias buffer/);
      expect(() => group.record(encoder, xBuffer, [y, lattice.escapeBits])).toThrow(/^ys\[1\] is layer 0's weight's escapeBits buffer/);
    } finally {
      group.destroy();
      for (const layer of layers) layer.destroy();
      for (const m of [lattice, other, weightOnly]) m.destroy();
      for (const buffer of [biasBuffer, xBuffer, y]) buffer.destroy();
    }
  });

  it('records more (x, y, tokens) combinations than maxPrepared into one encoder, submitted once: every output equals the CPU twin', async () => {
    // A prefill recording a layer and a group for more combinations than they keep: the sets dropped
    // on the way must stay valid for the commands recorded from them (destroying their buffers made
    // WebGPU reject the whole submission, leaving every y unwritten).
    const q = quantize(w, { scheme: 'd3-q6', seed: 4, nonce: 13 }) as LatticeQuantizedMatrix;
    const gpuW = uploadLatticeMatrix(device, q);
    const layer = QuantizedLinear.create(device, gpuW as LinearWeight, { bias, maxTokens: 8, maxPrepared: 2 });
    const second = QuantizedLinear.create(device, gpuW as LinearWeight, { maxTokens: 8 });
    const group = QuantizedLinear.group([layer, second], { maxPrepared: 1 });
    const tokenCounts = [1, 2, 3, 4, 5];
    const x = gaussianMatrix(n, 5, 21);
    const xBuffer = createBufferWithData(device, 'x (5 tokens)', x.data, STORAGE_USAGE);
    const ys = tokenCounts.map((tokens) => createBuffer(device, `y (${tokens} tokens)`, 4 * out * tokens, STORAGE_USAGE));
    const groupYs = [0, 1, 2].map((i) => layerOutputs([layer, second], 2, `group call ${i}`));
    try {
      const encoder = device.createCommandEncoder({ label: 'prefill past maxPrepared' });
      for (const [i, tokens] of tokenCounts.entries()) layer.record(encoder, xBuffer, ys[i] as GPUBuffer, { tokens });
      for (const outputs of groupYs) group.record(encoder, xBuffer, outputs, { tokens: 2 });
      device.queue.submit([encoder.finish()]);
      expect(layer.preparedCount).toBe(2);
      const expected = (tokens: number, withBias: boolean): Float32Array => {
        const reference = matvecAT(q, { rows: n, cols: tokens, data: x.data.subarray(0, n * tokens) });
        return Float32Array.from(reference.data, (v, i) => v + (withBias ? (bias[i % out] as number) : 0));
      };
      for (const [i, tokens] of tokenCounts.entries()) {
        expectClose(new Float32Array(await readBufferExclusive(device, ys[i] as GPUBuffer, 4 * out * tokens)), expected(tokens, true), Math.sqrt(n) * 40, false);
      }
      for (const outputs of groupYs) {
        for (const [i, withBias] of [true, false].entries()) {
          expectClose(new Float32Array(await readBufferExclusive(device, outputs[i] as GPUBuffer, 4 * out * 2)), expected(2, withBias), Math.sqrt(n) * 40, false);
        }
      }
    } finally {
      group.destroy();
      layer.destroy();
      second.destroy();
      gpuW.destroy();
      for (const b of [xBuffer, ...ys, ...groupYs.flat()]) b.destroy();
    }
  });

  it.each([
    ['e8-q16', 'plain', false],
    ['e8-q16-deterministic', 'plain', false],
    ['d3-q6-deterministic', 'plain', false],
    ['d3-q6', 'plain', true],
    ['e8-q16', null, true],
  ] as const)('%s, int8Inputs %s, weight destroyed between record and submit: submission rejected %s (as record documents)', async (scheme, int8Inputs, rejected) => {
    const q = quantize(w, scheme.endsWith('deterministic') ? { scheme, seed: 4 } : { scheme, seed: 4, nonce: 17 }) as LatticeQuantizedMatrix;
    const gpuW = uploadLatticeMatrix(device, q);
    const layer = QuantizedLinear.create(device, gpuW as LinearWeight, { int8Inputs });
    const x = gaussianMatrix(n, 1, 23);
    const before = await run(layer, x); // the same layer with its weight alive
    const xBuffer = createBufferWithData(device, 'x', x.data, STORAGE_USAGE);
    const y = createBufferWithData(device, 'y (NaN before)', new Float32Array(out).fill(Number.NaN), STORAGE_USAGE);
    try {
      const encoder = device.createCommandEncoder({ label: 'record, then the weight destroyed' });
      layer.record(encoder, xBuffer, y);
      gpuW.destroy();
      device.pushErrorScope('validation');
      device.queue.submit([encoder.finish()]);
      const error = await device.popErrorScope();
      expect(error !== null, String(error?.message)).toBe(rejected);
      const result = new Float32Array(await readBufferExclusive(device, y, 4 * out));
      if (rejected) expect(result.every(Number.isNaN)).toBe(true);
      else expect(Array.from(result)).toEqual(Array.from(before));
      expect(() => layer.record(device.createCommandEncoder(), xBuffer, y)).toThrow(/destroyed/);
    } finally {
      layer.destroy();
      for (const b of [xBuffer, y]) b.destroy();
    }
  });

  it('refuses a weight uploaded to another device (lattice and weight-only)', async () => {
    const other = await testDevice({ label: 'other device' });
    const elsewhere = uploadLatticeMatrix(other.device, quantize(w, { scheme: 'd3-q6', seed: 4, nonce: 9 }) as LatticeQuantizedMatrix);
    const weightOnlyElsewhere = uploadWeightOnly(other.device, quantizeWeights(w, null, { method: 'rtn', rate: 4 }));
    try {
      expect(() => QuantizedLinear.create(device, elsewhere as LinearWeight)).toThrow(/another GPUDevice/);
      expect(() => QuantizedLinear.create(device, weightOnlyElsewhere)).toThrow(/another GPUDevice/);
    } finally {
      elsewhere.destroy();
      weightOnlyElsewhere.destroy();
      other.device.destroy();
    }
  });

  it('refuses a destroyed weight at create, and at record (alone or in a group) once it was destroyed since', () => {
    const destroyed = uploadLatticeMatrix(device, quantize(w, { scheme: 'd3-q6', seed: 4, nonce: 9 }) as LatticeQuantizedMatrix);
    destroyed.destroy();
    expect(() => QuantizedLinear.create(device, destroyed as LinearWeight)).toThrow(/the weight was destroyed/);
    const gpuW = uploadLatticeMatrix(device, quantize(w, { scheme: 'd3-q6', seed: 4, nonce: 9 }) as LatticeQuantizedMatrix);
    const weightOnly = uploadWeightOnly(device, quantizeWeights(w, null, { method: 'rtn', rate: 4 }));
    const layer = QuantizedLinear.create(device, gpuW as LinearWeight);
    const other = QuantizedLinear.create(device, weightOnly);
    const group = QuantizedLinear.group([layer, other]);
    const x = createBuffer(device, 'x', 4 * w.rows, STORAGE_USAGE);
    const y = createBuffer(device, 'y', 4 * w.cols, STORAGE_USAGE);
    const y2 = createBuffer(device, 'y2', 4 * w.cols, STORAGE_USAGE);
    try {
      weightOnly.destroy();
      const encoder = device.createCommandEncoder();
      expect(() => other.record(encoder, x, y)).toThrow(/the weight was destroyed/);
      expect(() => group.record(encoder, x, [y, y2])).toThrow(/the weight was destroyed/);
      layer.record(encoder, x, y); // its own weight is alive
      gpuW.destroy();
      expect(() => layer.record(encoder, x, y)).toThrow(/the weight was destroyed/);
    } finally {
      group.destroy();
      layer.destroy();
      other.destroy();
      for (const buffer of [x, y, y2]) buffer.destroy();
    }
  });

  it('a refused create leaves no GPU buffer behind (a Float32Array or Uint16Array bias is uploaded only once everything is checked, and freed when an allocation after it fails or by destroy)', () => {
    // Deterministic E8 with q = 8: no int8-input form (the residue form is for q = 16).
    const e8q8 = { kind: 'lattice', mode: 'deterministic', lattice: 'E8', q: 8, overload: { kind: 'betaSet', betas: [0.2, 0.4] } } as const;
    const gpuW = uploadLatticeMatrix(device, quantize(w, { scheme: e8q8, seed: 4 }) as LatticeQuantizedMatrix);
    const tracker = trackBuffers(device);
    try {
      // Refused after a valid bias.
      expect(() => QuantizedLinear.create(device, gpuW as LinearWeight, { bias, int8Inputs: 'plain' })).toThrow(LatticeMatmulError);
      expect(tracker.live()).toEqual([]);
      // Failing while it makes its own forms, after the bias went up (an allocation that throws): what it made is freed.
      tracker.failWhen = (descriptor) => descriptor.label?.includes('column norms') === true;
      expect(() => QuantizedLinear.create(device, gpuW as LinearWeight, { bias })).toThrow('allocation failed');
      expect(tracker.live()).toEqual([]);
      // A Uint16Array of bf16 bits is uploaded and owned as a Float32Array is: freed on failure and by destroy.
      const bf16Bias = Uint16Array.from(bias, (v) => new Uint32Array(new Float32Array([v]).buffer)[0]! >>> 16);
      expect(() => QuantizedLinear.create(device, gpuW as LinearWeight, { bias: bf16Bias, biasFormat: 'bf16' })).toThrow('allocation failed');
      expect(tracker.live()).toEqual([]);
      tracker.failWhen = null;
      QuantizedLinear.create(device, gpuW as LinearWeight, { bias: bf16Bias, biasFormat: 'bf16' }).destroy();
      expect(tracker.live()).toEqual([]);
    } finally {
      tracker.restore();
      gpuW.destroy();
    }
  });

  it('options are strict: unknown keys are refused with a suggestion, wrong types refused', () => {
    const q = quantize(w, { scheme: 'd3-q6', seed: 4, nonce: 9 }) as LatticeQuantizedMatrix;
    const gpuW = uploadLatticeMatrix(device, q);
    const layer = QuantizedLinear.create(device, gpuW as LinearWeight);
    const x = createBuffer(device, 'x', 4 * n * 4, STORAGE_USAGE);
    const y = createBuffer(device, 'y', 4 * out * 4, STORAGE_USAGE);
    const create = (options: unknown) => () => QuantizedLinear.create(device, gpuW as LinearWeight, options as QuantizedLinearOptions);
    try {
      expect(create({ activation: 'f16' })).toThrow(/unknown option 'activation' \(did you mean 'activations'\?\)/);
      expect(create({ int8Input: 'packed' })).toThrow(/unknown option 'int8Input' \(did you mean 'int8Inputs'\?\)/);
      expect(create({ maxToken: 128 })).toThrow(/unknown option 'maxToken' \(did you mean 'maxTokens'\?\)/);
      expect(create(null)).toThrow(/QuantizedLinear options must be an object/);
      expect(create({ label: 5 })).toThrow(/label must be a string/);
      expect(create({ bias: 5 })).toThrow(/bias must be a Float32Array, a Uint16Array \(with biasFormat\), a GPUBuffer, a slice \{ buffer, offset \} or null/);
      expect(create({ maxTokens: '8' })).toThrow(/maxTokens must be a positive integer/);
      expect(create({ maxPrepared: 0 })).toThrow(/maxPrepared must be a positive integer/);
      expect(create({ activations: Symbol('f16') })).toThrow(/activations must be 'f32' or 'f16', got a symbol/);
      expect(create({ int8Inputs: Symbol('plain') })).toThrow(/int8Inputs must be 'packed', 'plain' or null, got a symbol/);
      const encoder = device.createCommandEncoder();
      // { token: 4 } must not record one token and leave the other three columns of y unwritten.
      expect(() => layer.record(encoder, x, y, { token: 4 } as never)).toThrow(/unknown option 'token' \(did you mean 'tokens'\?\)/);
      expect(() => layer.record(encoder, x, y, { tokens: Symbol('2') } as never)).toThrow(/tokens must be an integer in \[1, 64\] \(maxTokens\), got a symbol/);
      expect(() => QuantizedLinear.group([layer], { maxPrepare: 2 } as never)).toThrow(/unknown option 'maxPrepare' \(did you mean 'maxPrepared'\?\)/);
      const group = QuantizedLinear.group([layer]);
      expect(() => group.record(encoder, x, [y], { token: 4 } as never)).toThrow(/unknown option 'token'/);
      group.destroy();
    } finally {
      layer.destroy();
      gpuW.destroy();
      x.destroy();
      y.destroy();
    }
  });

  // What a NaN or ±Infinity in x gives (the module's comment, "Range", documents it): every output of
  // that token non-finite, for each kind of weight, f32 and f16 activations, f32 and int8 inputs, rotated
  // or not; the other tokens' outputs the bytes they have without it.
  it.each([Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY])('non-finite x (%s in one token): that token\'s outputs are all non-finite, the others unchanged', async (bad) => {
    const n = 96;
    const out = 12;
    const tokens = 3;
    const w = gaussianMatrix(n, out, 31);
    const weights: [string, LinearWeight & { destroy(): void }][] = [];
    for (const scheme of ['e8-4bit', 'd3-q6', 'd3-q6-deterministic', 'e8-q16-deterministic'] as const) {
      for (const rotate of [true, false]) weights.push([`${scheme}, rotate ${rotate}`, uploadLatticeMatrix(device, quantize(w, { scheme, seed: 4, rotate }) as LatticeQuantizedMatrix)]);
    }
    for (const rotate of [true, false]) weights.push([`weight-only, rotate ${rotate}`, uploadWeightOnly(device, quantizeWeights(w, null, { method: 'rtn', step: 0.25, rotate, seed: 4 }))]);
    const x = gaussianMatrix(n, tokens, 32);
    const spoiled = Float32Array.from(x.data);
    spoiled[n + 17] = bad; // token 1 only
    const f16Bits = (values: Float32Array): Uint16Array => Uint16Array.from(values, (v) => (Number.isNaN(v) ? 0x7e00 : float16Bits(v)));
    let int8Layers = 0;
    try {
      for (const [name, weight] of weights) {
        for (const activations of ['f32', 'f16'] as const) {
          for (const int8Inputs of [null, dotPathFor(suite.context.features)]) {
            let layer: QuantizedLinear;
            try {
              layer = QuantizedLinear.create(device, weight, { activations, int8Inputs });
            } catch (error) {
              if (int8Inputs !== null) continue; // a weight the int8-input GEMVs do not take
              throw error;
            }
            if (int8Inputs !== null) int8Layers++;
            const what = `${name}, ${activations}, int8Inputs ${String(int8Inputs)}`;
            const f16 = activations === 'f16';
            const clean = createBufferWithData(device, 'x', f16 ? f16Bits(x.data) : x.data, STORAGE_USAGE);
            const dirty = createBufferWithData(device, 'x with a non-finite entry', f16 ? f16Bits(spoiled) : spoiled, STORAGE_USAGE);
            const bytes = (f16 ? 2 : 4) * out * tokens;
            const yClean = createBuffer(device, 'y', bytes, STORAGE_USAGE);
            const yDirty = createBuffer(device, 'y (non-finite x)', bytes, STORAGE_USAGE);
            try {
              const encoder = device.createCommandEncoder({ label: what });
              layer.record(encoder, clean, yClean, { tokens });
              layer.record(encoder, dirty, yDirty, { tokens });
              device.queue.submit([encoder.finish()]);
              const read = async (buffer: GPUBuffer): Promise<Float32Array> => {
                const raw = await readBufferExclusive(device, buffer, bytes);
                return f16 ? Float32Array.from(new Uint16Array(raw), (h) => ((h & 0x7c00) === 0x7c00 && (h & 0x3ff) !== 0 ? Number.NaN : fromFloat16Bits(h))) : new Float32Array(raw);
              };
              const [a, b] = [await read(yClean), await read(yDirty)];
              for (const t of [0, 2]) expect(b.subarray(t * out, (t + 1) * out), `${what}: token ${t}`).toEqual(a.subarray(t * out, (t + 1) * out));
              expect(Array.from(a).every(Number.isFinite), `${what}: clean outputs`).toBe(true);
              expect(Array.from(b.subarray(out, 2 * out)).filter(Number.isFinite), `${what}: token 1's finite outputs`).toEqual([]);
            } finally {
              layer.destroy();
              for (const buffer of [clean, dirty, yClean, yDirty]) buffer.destroy();
            }
          }
        }
      }
      // Not vacuous: every one of these weights takes int8 inputs, in both activation formats.
      expect(int8Layers).toBe(2 * weights.length);
    } finally {
      for (const [, weight] of weights) weight.destroy();
    }
  }, 120_000);
});
